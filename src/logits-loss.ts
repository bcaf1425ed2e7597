/**
 * The policy loss taken straight from the logits, and its gradient into them: what a training step needs from
 * everything between the model's output and the optimiser. Here it is the three reference functions composed
 * (token log-probs → policy loss → backward into the logits); device backends fuse them so that the logits are
 * read twice (statistics, then gradient) and the gradient written once, and they are checked against this.
 */
import type { Kernels } from "./backends/types.js";
import {
  tokenLogProbs,
  tokenLogProbsBackward,
  type LogitsInput,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
} from "./logprobs/index.js";
import { policyLoss, resolvePolicyLossOptions, type PolicyLossInputs, type PolicyLossResult } from "./loss/index.js";
import type { PolicyLossOptionsInput } from "./loss/options.js";
import type { MatrixInput } from "./tensor.js";

export interface LogitsPolicyLossInputs extends Omit<PolicyLossInputs, "logp" | "entropy"> {
  /** The policy's logits [B, T, V], at the positions that predict each token. */
  readonly logits: LogitsInput;
  /** The sampled token ids [B, T]. */
  readonly tokens: MatrixInput;
}

export interface LogitsPolicyLossOptions extends PolicyLossOptionsInput {
  /** The logits are divided by it first (the sampling temperature). */
  readonly temperature?: number | undefined;
}

export interface LogitsPolicyLossResult extends PolicyLossResult {
  /** log π(token) [B, T], 0 where the mask is 0. */
  readonly logp: Float64Array;
  /** Entropy per position [B, T], when options.entropyCoef > 0. */
  readonly entropy: Float64Array | undefined;
  /** ∂loss/∂logits [B, T, V], in the logits' own precision; 0 at masked positions. */
  readonly gradLogits: {
    readonly data: Float32Array | Float64Array;
    readonly shape: readonly [number, number, number];
  };
}

/**
 * The policy loss of `options` over log π computed from `inputs.logits`, with ∂loss/∂logits. Positions where the
 * mask is 0 are never read (their tokens and logits may be anything); the result's `grad` is ∂loss/∂logp as in
 * policyLoss.
 */
export function policyLossFromLogits(
  inputs: LogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions = {},
): LogitsPolicyLossResult {
  const steps = composition(inputs, options);
  const forward = tokenLogProbs(steps.logits, steps.tokens, steps.forwardOptions);
  const loss = policyLoss(steps.lossInputs(forward), steps.lossOptions);
  return steps.result(
    forward,
    loss,
    tokenLogProbsBackward(steps.logits, steps.tokens, steps.backwardOptions(forward, loss)),
  );
}

/** The same composition over any backend's kernels: the fused kernel of a backend that has none of its own. */
export async function composedPolicyLossFromLogits(
  kernels: Pick<Kernels, "tokenLogProbs" | "policyLoss" | "tokenLogProbsBackward">,
  inputs: LogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions = {},
): Promise<LogitsPolicyLossResult> {
  const steps = composition(inputs, options);
  const forward = await kernels.tokenLogProbs(steps.logits, steps.tokens, steps.forwardOptions);
  const loss = await kernels.policyLoss(steps.lossInputs(forward), steps.lossOptions);
  return steps.result(
    forward,
    loss,
    await kernels.tokenLogProbsBackward(steps.logits, steps.tokens, steps.backwardOptions(forward, loss)),
  );
}

/** How the three steps pass their results on: the forward's log-probs (and entropy) to the loss, its gradients back. */
function composition(inputs: LogitsPolicyLossInputs, options: LogitsPolicyLossOptions) {
  const { logits, tokens, ...rest } = inputs;
  const { temperature, ...lossOptions } = options;
  const withEntropy = resolvePolicyLossOptions(lossOptions).entropyCoef > 0;
  const logProbOptions = {
    ...(temperature !== undefined ? { temperature } : {}),
    ...(rest.mask !== undefined ? { mask: rest.mask } : {}),
  };
  return {
    logits,
    tokens,
    lossOptions,
    forwardOptions: { ...logProbOptions, entropy: withEntropy },
    lossInputs: (forward: TokenLogProbs): PolicyLossInputs => ({
      ...rest,
      logp: { data: forward.logp, shape: forward.shape },
      ...(withEntropy ? { entropy: { data: forward.entropy!, shape: forward.shape } } : {}),
    }),
    backwardOptions: (forward: TokenLogProbs, loss: PolicyLossResult): TokenLogProbsBackwardOptions => ({
      ...logProbOptions,
      gradLogp: { data: loss.grad, shape: forward.shape },
      ...(loss.gradEntropy !== undefined ? { gradEntropy: { data: loss.gradEntropy, shape: forward.shape } } : {}),
      saved: forward,
    }),
    result: (
      forward: TokenLogProbs,
      loss: PolicyLossResult,
      gradLogits: LogitsPolicyLossResult["gradLogits"],
    ): LogitsPolicyLossResult => ({
      ...loss,
      logp: forward.logp,
      entropy: forward.entropy,
      gradLogits,
    }),
  };
}
