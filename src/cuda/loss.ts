/**
 * The policy loss between the device's per-token results and a PolicyLossResult: the options as the kernels'
 * LossConfig (native/src/grpo_math.h), and the loss and metrics summed on the host from the per-token terms, in
 * the reference's order (src/loss/policy-loss.ts: the policy, KL and entropy terms each summed, then added), so that
 * only the per-token arithmetic differs.
 */
import {
  type BuiltinObjective,
  KL_KIND_CODE,
  type LossInputs,
  lossMetrics,
  OBJECTIVE_CODE,
  type PolicyLossOptions,
  type PolicyLossResult,
  RATIO_LEVEL_CODE,
  validCounts,
} from "../backends/contract.js";

/**
 * Each built-in objective's constant in native/src/grpo_math.h's `enum Objective`, whose value must be its
 * OBJECTIVE_CODE: test/native-objectives.test.ts reads the header and checks both, and that the addon refuses codes
 * past the last one. A new built-in objective is a compile error here until its kernel is written there.
 */
export const NATIVE_OBJECTIVES = {
  clip: "kClip",
  cispo: "kCispo",
  sapo: "kSapo",
  reinforce: "kReinforce",
} as const satisfies Record<BuiltinObjective, string>;

/** Bits of the per-token flags (grpo_math.h, Flags). */
export const FLAGS = { clipped: 1, dual: 2, low: 4, high: 8 } as const;

export function lossConfig(o: PolicyLossOptions) {
  const [clampLow, clampHigh] = o.logRatioClamp ?? [-Infinity, Infinity];
  return {
    objective: OBJECTIVE_CODE[o.objective as BuiltinObjective],
    ratioLevel: RATIO_LEVEL_CODE[o.ratioLevel],
    low: 1 - o.clipLow,
    high: 1 + o.clipHigh,
    delta: o.delta ?? Infinity,
    hasDualClip: o.dualClip !== null,
    dualClip: o.dualClip ?? 0,
    clampLow,
    clampHigh,
    klKind: o.kl !== null ? KL_KIND_CODE[o.kl.kind] : -1,
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
  t: LossInputs,
  o: PolicyLossOptions,
  weights: Float64Array,
  entropyWeights: Float64Array | undefined,
  out: LossOutputs,
): PolicyLossResult {
  const [rows, cols] = t.shape;
  const { mask, entropy } = t;
  const klCoef = o.kl?.coef ?? 0;
  const sums = {
    clipped: 0,
    low: 0,
    high: 0,
    dual: 0,
    approxKl: 0,
    ratioMin: Infinity,
    ratioSum: 0,
    ratioMax: -Infinity,
  };
  let policyLoss = 0;
  let klLoss = 0;
  let klSum = 0;
  let entropyLoss = 0;
  let entropySum = 0;
  for (let b = 0; b < rows; b++) {
    if (t.rowTokens[b] === 0) continue;
    const w = weights[b]!;
    const bonus = entropyWeights === undefined ? 0 : entropyWeights[b]! * o.entropyCoef;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      policyLoss += w * out.loss[i]!;
      if (out.kl !== undefined) {
        klLoss += w * klCoef * out.kl[i]!;
        klSum += out.kl[i]!;
      }
      if (entropy !== undefined) {
        entropyLoss -= bonus * entropy[i]!;
        entropySum += entropy[i]!;
      }
      const flags = out.flags[i]!;
      if (flags & FLAGS.clipped) sums.clipped++;
      if (flags & FLAGS.low) sums.low++;
      if (flags & FLAGS.high) sums.high++;
      if (flags & FLAGS.dual) sums.dual++;
      sums.approxKl -= out.approx[i]!;
      const ratio = out.ratio[i]!;
      if (ratio < sums.ratioMin) sums.ratioMin = ratio;
      if (ratio > sums.ratioMax) sums.ratioMax = ratio;
      sums.ratioSum += ratio;
    }
  }
  const metrics = lossMetrics({ ...validCounts(t), ...sums, klSum, entropySum }, o.kl !== null, entropy !== undefined);
  return {
    loss: policyLoss + klLoss + entropyLoss,
    grad: out.grad,
    gradEntropy: entropyWeights !== undefined ? out.gradEntropy : undefined,
    perTokenLoss: out.loss,
    perTokenKl: o.kl !== null ? out.kl : undefined,
    shape: t.shape,
    metrics,
  };
}
