/**
 * The policy loss between the device's per-token results and a PolicyLossResult: the options as the kernels'
 * LossConfig (native/src/grpo_math.h), and the loss and metrics summed on the host from the per-token terms, in
 * the reference's order (src/loss/policy-loss.ts), so that only the per-token arithmetic differs.
 */
import { lossMetrics, type Inputs, type PolicyLossResult } from "../loss/policy-loss.js";
import type { PolicyLossOptions } from "../loss/options.js";

const OBJECTIVES: Record<string, number> = { clip: 0, cispo: 1, sapo: 2, reinforce: 3 };
const RATIO_LEVELS: Record<string, number> = { token: 0, sequence: 1, "sequence-token": 2 };
const KL_KINDS: Record<string, number> = { k1: 0, abs: 1, k2: 2, k3: 3 };

/** Bits of the per-token flags (grpo_math.h, Flags). */
export const FLAGS = { clipped: 1, dual: 2, low: 4, high: 8 } as const;

export function lossConfig(o: PolicyLossOptions) {
  const [clampLow, clampHigh] = o.logRatioClamp ?? [-Infinity, Infinity];
  return {
    objective: OBJECTIVES[o.objective]!,
    ratioLevel: RATIO_LEVELS[o.ratioLevel]!,
    low: 1 - o.clipLow,
    high: 1 + o.clipHigh,
    delta: o.delta ?? Infinity,
    hasDualClip: o.dualClip !== null,
    dualClip: o.dualClip ?? 0,
    clampLow,
    clampHigh,
    klKind: o.kl !== null ? KL_KINDS[o.kl.kind]! : -1,
    klClamp: o.kl?.clamp ?? false,
    klImportance: o.kl?.importanceCorrected ?? false,
    klCoef: o.kl?.coef ?? 0,
    entropyBonus: o.entropyCoef > 0,
    entropyCoef: o.entropyCoef,
    sapoPositive: o.sapoTemperature.positive,
    sapoNegative: o.sapoTemperature.negative,
  };
}

/** What the loss kernels write per token [B, T]. */
export interface LossOutputs {
  readonly loss: Float64Array;
  readonly grad: Float64Array;
  readonly kl: Float64Array | undefined;
  readonly gradEntropy: Float64Array | undefined;
  readonly ratio: Float64Array;
  /** What approxKl subtracts per token. */
  readonly approx: Float64Array;
  readonly flags: Uint8Array;
}

/** The loss and the metrics from the per-token terms (t.entropy: the entropy the loss saw, if any). */
export function assembleLoss(
  t: Inputs,
  o: PolicyLossOptions,
  weights: Float64Array,
  entropyWeights: Float64Array | undefined,
  out: LossOutputs,
): PolicyLossResult {
  const [rows, cols] = t.shape;
  const { mask, entropy } = t;
  let tokens = 0,
    sequences = 0,
    clipped = 0,
    low = 0,
    high = 0,
    dual = 0;
  let approxKl = 0,
    ratioMin = Infinity,
    ratioSum = 0,
    ratioMax = -Infinity,
    klSum = 0,
    entropySum = 0;
  let loss = 0;
  const klCoef = o.kl?.coef ?? 0;
  for (let b = 0; b < rows; b++) {
    if (t.rowTokens[b] === 0) continue;
    sequences++;
    const w = weights[b]!;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      loss += w * out.loss[i]!;
      if (out.kl !== undefined) {
        loss += w * klCoef * out.kl[i]!;
        klSum += out.kl[i]!;
      }
      if (entropy !== undefined) {
        if (entropyWeights !== undefined) loss -= entropyWeights[b]! * o.entropyCoef * entropy[i]!;
        entropySum += entropy[i]!;
      }
      tokens++;
      const f = out.flags[i]!;
      if (f & FLAGS.clipped) clipped++;
      if (f & FLAGS.low) low++;
      if (f & FLAGS.high) high++;
      if (f & FLAGS.dual) dual++;
      approxKl -= out.approx[i]!;
      const ratio = out.ratio[i]!;
      if (ratio < ratioMin) ratioMin = ratio;
      if (ratio > ratioMax) ratioMax = ratio;
      ratioSum += ratio;
    }
  }
  const metrics = lossMetrics(
    { tokens, sequences, clipped, low, high, dual, approxKl, ratioMin, ratioSum, ratioMax, klSum, entropySum },
    o.kl !== null,
    entropy !== undefined,
  );

  return {
    loss,
    grad: out.grad,
    gradEntropy: entropyWeights !== undefined ? out.gradEntropy : undefined,
    perTokenLoss: out.loss,
    perTokenKl: o.kl !== null ? out.kl : undefined,
    shape: t.shape,
    metrics,
  };
}
