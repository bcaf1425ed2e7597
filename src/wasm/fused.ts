/**
 * policyLossFromLogits on the wasm kernel with the logits read once. The loss gradient at a position, ∂loss/∂logp,
 * depends only on that position's own values for the clip objective at the token level without a KL term or
 * importance weights (lossPresets.paper, .reference, .verl): the kernel computes it from the log-prob as soon as a
 * row's statistics are known (in float64, as src/loss/clip-term.ts and policy-loss.ts do), and the row's gradient
 * in the same visit (forward_backward in native/wasm/logprobs.c), rather than reading the logits again after the
 * loss.
 *
 * The result is the composition's (composedPolicyLossFromLogits), with its checks and errors in its order: the
 * forward step is the fused kernel; the loss is the reference's, from the log-probs in float64; the backward step
 * keeps the fused kernel's gradient only when, at every position, the gradient it predicted is the reference
 * loss's own (to 2^-30 relative, and the entropy's exactly), and otherwise runs the backward kernel as without the
 * prediction (a log-ratio at a clip boundary, which float64 rounding may put on either side, is all that should
 * differ). Other objectives and options compose the two kernels as before.
 */
import {
  composedPolicyLossFromLogits,
  type Kernels,
  type LogitsGradient,
  type LogitsInput,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  type MatrixInput,
  readLossInputs,
  resolvePolicyLossOptions,
  rowWeights,
  splitLogitsInputs,
  splitLogitsOptions,
  toMatrix,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
} from "../backends/contract.js";

/** The loss inputs the kernel predicts each position's loss gradient from, and what it predicted. */
export interface Prediction {
  /** Old log-probs per position (0 where there are none: onPolicy). */
  readonly old: Float64Array;
  readonly onPolicy: boolean;
  /** The advantage at each position. */
  readonly advantage: Float64Array;
  /** The aggregation's weight of each position's loss (0 where the mask is 0). */
  readonly weight: Float64Array;
  /** ∂loss/∂entropy at each position (the entropy bonus's), float32 as the kernel takes it. */
  readonly gradEntropy: Float32Array;
  /** 1 − ε_low, 1 + ε_high, δ, the dual clip's c, the log-ratio clamp's bounds (±Infinity where off). */
  readonly params: readonly number[];
  /**
   * Set by the forward step: the gradient it wrote (undefined once another call has written over it) and the loss
   * gradient it predicted per position.
   */
  outcome?: { readonly gradient: () => LogitsGradient | undefined; readonly predicted: Float64Array };
}

/** How far (relative) the predicted loss gradient may be from the reference's for a position's row to be kept. */
const AGREEMENT = 2 ** -30;

/** Counts of fused calls, for the tests: whose gradient was kept, and whose was recomputed. */
export const fusedCounts = { kept: 0, recomputed: 0 };

/** The kernels policyLossFromLogits composes: this backend's (and the reference's loss). */
export type LogProbKernels = Pick<Kernels, "tokenLogProbs" | "tokenLogProbsBackward" | "policyLoss">;

/** A backward step, and the same step wrapped in the checks it needs before it runs (or keeps a gradient). */
type Backward = LogProbKernels["tokenLogProbsBackward"];

/** The backward step, given a gradient it may keep instead: asked in the call's own turn of the backend's queue. */
type BackwardUnlessKept = (
  ...args: [...Parameters<Backward>, kept: () => LogitsGradient | undefined]
) => ReturnType<Backward>;

/**
 * policyLossFromLogits: fused where the loss allows it (see above), composed otherwise. `forward` runs the forward
 * step with a prediction; `backward` the backward step, unless the forward's gradient is kept; `guard` wraps the
 * backward step, kept gradient or not, in the checks of the loss gradient.
 */
export async function fusedPolicyLossFromLogits(
  kernels: LogProbKernels,
  guard: (backward: Backward) => Backward,
  forward: (
    logits: LogitsInput,
    tokens: MatrixInput,
    options: TokenLogProbsOptions,
    prediction: Prediction,
  ) => Promise<TokenLogProbs>,
  backward: BackwardUnlessKept,
  inputs: LogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions = {},
): Promise<LogitsPolicyLossResult> {
  const prediction = predictionOf(inputs, options);
  if (prediction === undefined) {
    const composed = { ...kernels, tokenLogProbsBackward: guard(kernels.tokenLogProbsBackward) };
    return composedPolicyLossFromLogits(composed, inputs, options);
  }
  return composedPolicyLossFromLogits(
    {
      policyLoss: kernels.policyLoss,
      tokenLogProbs: (logits, tokens, forwardOptions) => forward(logits, tokens, forwardOptions, prediction),
      tokenLogProbsBackward: guard((logits, tokens, backwardOptions) =>
        backward(logits, tokens, backwardOptions, () => {
          const kept = keptGradient(prediction, backwardOptions);
          if (kept !== undefined) fusedCounts.kept++;
          else fusedCounts.recomputed++;
          return kept;
        }),
      ),
    },
    inputs,
    options,
  );
}

/**
 * The prediction's inputs, where the loss gradient at a position depends on that position alone; undefined for
 * other losses, and for inputs that do not validate (the composition then reports what the reference reports).
 */
function predictionOf(inputs: LogitsPolicyLossInputs, options: LogitsPolicyLossOptions): Prediction | undefined {
  try {
    const { tokens, rest } = splitLogitsInputs(inputs);
    const { lossOptions } = splitLogitsOptions(options);
    const o = resolvePolicyLossOptions(lossOptions);
    if (o.objective !== "clip" || o.ratioLevel !== "token" || o.kl !== null || rest.importanceWeights !== undefined)
      return undefined;
    const shape = toMatrix(tokens, "tokens").shape;
    const [rows, cols] = shape;
    const placeholder = { data: new Float64Array(rows * cols), shape };
    const withEntropy = o.entropyCoef > 0;
    const t = readLossInputs({ ...rest, logp: placeholder, entropy: withEntropy ? placeholder : undefined }, o);
    const weights = rowWeights(t.rowTokens, cols, o.aggregation, o.normalizer);
    const bonus = withEntropy
      ? rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer)
      : undefined;
    const size = rows * cols;
    const onPolicy = rest.oldLogp === undefined;
    const prediction = {
      old: new Float64Array(size),
      onPolicy,
      advantage: new Float64Array(size),
      weight: new Float64Array(size),
      gradEntropy: new Float32Array(size),
      params: [
        1 - o.clipLow,
        1 + o.clipHigh,
        o.delta ?? Infinity,
        o.dualClip ?? Infinity,
        o.logRatioClamp?.[0] ?? -Infinity,
        o.logRatioClamp?.[1] ?? Infinity,
      ],
    };
    for (let b = 0; b < rows; b++) {
      for (let i = b * cols; i < (b + 1) * cols; i++) {
        if (t.mask[i] !== 1) continue;
        if (!onPolicy) prediction.old[i] = t.oldLogp[i]!;
        prediction.advantage[i] = t.advantages[t.perTokenAdvantages ? i : b]!;
        prediction.weight[i] = weights[b]!;
        prediction.gradEntropy[i] = bonus === undefined ? 0 : -bonus[b]! * o.entropyCoef;
      }
    }
    return prediction;
  } catch {
    return undefined;
  }
}

/**
 * The forward step's gradient, when its predicted loss gradient is the reference loss's at every position and no
 * other call has written over it since; called in the backend's queue, so that none can until it is returned.
 */
export function keptGradient(
  prediction: Prediction,
  options: TokenLogProbsBackwardOptions,
): LogitsGradient | undefined {
  const outcome = prediction.outcome;
  if (outcome === undefined) return undefined;
  // The composition passes the loss's gradients as { data, shape } (composedPolicyLossFromLogits).
  const gradLogp = (options.gradLogp as { data: ArrayLike<number> }).data;
  const gradEntropy = (options.gradEntropy as { data: ArrayLike<number> } | undefined)?.data;
  const { predicted } = outcome;
  for (let i = 0; i < predicted.length; i++) {
    const expected = gradLogp[i]!;
    if (!(Math.abs(predicted[i]! - expected) <= AGREEMENT * Math.abs(expected))) return undefined;
    if (prediction.gradEntropy[i] !== Math.fround(gradEntropy?.[i] ?? 0)) return undefined;
  }
  return outcome.gradient();
}
