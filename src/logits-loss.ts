/**
 * The policy loss taken straight from the logits, and its gradient into them: what a training step needs from
 * everything between the model's output and the optimiser. Here it is three kernels composed (token log-probs →
 * policy loss → backward into the logits); device backends fuse them so that the logits are read twice (statistics,
 * then gradient) and the gradient written once, and they are checked against this.
 */
import {
  type LogitsInput,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  tokenLogProbs,
  tokenLogProbsBackward,
} from "./logprobs/index.js";
import { type PolicyLossInputs, type PolicyLossResult, policyLoss, resolvePolicyLossOptions } from "./loss/index.js";
import { type PolicyLossOptionsInput, policyLossOptionsSchema } from "./loss/options.js";
import { invalid, requireKnownKeys, ValidationError } from "./errors.js";
import { impossibleToken } from "./logprobs/token-logprobs.js";
import { type MatrixInput, toMatrix } from "./tensor.js";

/** A gradient with respect to the logits [B, T, V], in the logits' own precision. */
export interface LogitsGradient {
  readonly data: Float32Array | Float64Array;
  readonly shape: readonly [number, number, number];
}

/**
 * The policy loss's inputs with the logits and sampled tokens in place of logp (and of entropy, which is computed
 * when options.entropyCoef > 0).
 *
 * @typeParam Logits - Where the logits live: typed arrays here, a device buffer for grpo-roc/webgpu.
 */
export interface LogitsPolicyLossInputs<Logits = LogitsInput> extends Omit<PolicyLossInputs, "logp" | "entropy"> {
  /** The policy's logits [B, T, V], at the positions that predict each token. */
  readonly logits: Logits;
  /** The sampled token ids [B, T]. */
  readonly tokens: MatrixInput;
}

/** The policy loss's options, and the sampling temperature the log-probs are computed at. */
export interface LogitsPolicyLossOptions extends PolicyLossOptionsInput {
  /** The logits are divided by it first (the sampling temperature). */
  readonly temperature?: number | undefined;
}

/**
 * The policy loss's result, with the log-probs it was computed from and the gradient into the logits.
 *
 * @typeParam Gradient - Where the gradient lives: typed arrays here, a device buffer for grpo-roc/webgpu.
 */
export interface LogitsPolicyLossResult<Gradient = LogitsGradient> extends PolicyLossResult {
  /** log π(token) [B, T], 0 where the mask is 0. */
  readonly logp: Float64Array;
  /** Entropy per position [B, T], when options.entropyCoef > 0. */
  readonly entropy: Float64Array | undefined;
  /** ∂loss/∂logits [B, T, V], in the logits' own precision; 0 at masked positions. */
  readonly gradLogits: Gradient;
}

/** The three kernels a composition runs, over logits wherever they live (typed arrays, a device buffer). */
export interface ComposableKernels<Logits, Gradient> {
  tokenLogProbs(logits: Logits, tokens: MatrixInput, options: TokenLogProbsOptions): Promise<TokenLogProbs>;
  policyLoss(inputs: PolicyLossInputs, options: PolicyLossOptionsInput): Promise<PolicyLossResult>;
  tokenLogProbsBackward(logits: Logits, tokens: MatrixInput, options: TokenLogProbsBackwardOptions): Promise<Gradient>;
}

/**
 * The policy loss of `options` over log π computed from `inputs.logits`, with ∂loss/∂logits. Positions where the
 * mask is 0 are never read (their tokens and logits may be anything); the result's `grad` is ∂loss/∂logp as in
 * policyLoss.
 *
 * @throws ValidationError as policyLoss and tokenLogProbs do; a problem with log-probs computed here is named at the
 *   logits they came from (`logits[b][t]`).
 */
export function policyLossFromLogits(
  inputs: LogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions = {},
): LogitsPolicyLossResult {
  const steps = composition(inputs, options);
  const forward = tokenLogProbs(steps.logits, steps.tokens, steps.forwardOptions);
  const loss = namingLogits(() => policyLoss(steps.lossInputs(forward), steps.lossOptions));
  const gradLogits = tokenLogProbsBackward(steps.logits, steps.tokens, steps.backwardOptions(forward, loss));
  return steps.result(forward, loss, gradLogits);
}

/**
 * The same composition over any backend's kernels: the fused kernel of a backend that has none of its own, the
 * path a backend takes for an objective its device has no kernel for, and the device-logits variant of both.
 */
export async function composedPolicyLossFromLogits<Logits, Gradient>(
  kernels: ComposableKernels<Logits, Gradient>,
  inputs: LogitsPolicyLossInputs<Logits>,
  options: LogitsPolicyLossOptions = {},
): Promise<LogitsPolicyLossResult<Gradient>> {
  const steps = composition(inputs, options);
  const forward = await kernels.tokenLogProbs(steps.logits, steps.tokens, steps.forwardOptions);
  const loss = await namingLogitsAsync(() => kernels.policyLoss(steps.lossInputs(forward), steps.lossOptions));
  const gradLogits = await kernels.tokenLogProbsBackward(
    steps.logits,
    steps.tokens,
    steps.backwardOptions(forward, loss),
  );
  return steps.result(forward, loss, gradLogits);
}

/** The fields of LogitsPolicyLossInputs: the logits and tokens, and the policy loss's inputs but logp and entropy. */
const LOGITS_LOSS_INPUTS = [
  "logits",
  "tokens",
  "oldLogp",
  "advantages",
  "mask",
  "refLogp",
  "importanceWeights",
] as const;

/**
 * The logits and tokens apart from the rest of the loss's inputs; every key must be one of LOGITS_LOSS_INPUTS (a
 * `logp` given here would be silently replaced by the one computed from the logits).
 */
export function splitLogitsInputs<Logits>(inputs: LogitsPolicyLossInputs<Logits>) {
  if (typeof inputs !== "object" || inputs === null) {
    throw invalid("inputs", "expected an object with logits, tokens, advantages, …");
  }
  requireKnownKeys(inputs, LOGITS_LOSS_INPUTS, "inputs");
  const { logits, tokens, ...rest } = inputs;
  return { logits, tokens, rest };
}

/**
 * The temperature apart from the policy loss's options; every key must be one of those (the check the loss's own
 * schema makes, with `temperature` known too, so that `temprature` is caught with its suggestion).
 */
export function splitLogitsOptions(options: LogitsPolicyLossOptions) {
  if (typeof options === "object" && options !== null) {
    requireKnownKeys(options, [...Object.keys(policyLossOptionsSchema.shape), "temperature"], "options");
  }
  const { temperature, ...lossOptions } = options;
  return { temperature, lossOptions };
}

/** A sampled token of logit −Infinity has log-prob −Infinity, on which no loss is defined: named at the logits. */
function requirePossibleTokens(forward: TokenLogProbs, tokens: MatrixInput): void {
  const cols = forward.shape[1];
  for (let i = 0; i < forward.logp.length; i++) {
    if (forward.logp[i] === -Infinity) throw impossibleToken(i, cols, toMatrix(tokens, "tokens").data[i]!);
  }
}

/**
 * The loss step's errors about log-probs and entropies it was given are about the logits they came from: a
 * policy term that overflows at `inputs.logp[b][t]` is reported at `logits[b][t]`, the caller's input.
 */
function renameLogProbIssues(error: unknown): unknown {
  if (!(error instanceof ValidationError)) return error;
  const renamed = error.issues.map((issue) => ({
    ...issue,
    path: issue.path.replace(/^inputs\.(logp|entropy)\[/, "logits["),
  }));
  return new ValidationError(renamed);
}

function namingLogits<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    throw renameLogProbIssues(error);
  }
}

async function namingLogitsAsync<T>(run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (error) {
    throw renameLogProbIssues(error);
  }
}

/**
 * How the three steps pass their results on: the mask and temperature to both logits passes, the forward's
 * log-probs (and entropy, when the loss has an entropy bonus) to the loss, the loss's gradients back, with the
 * forward's statistics as `saved`.
 */
function composition<Logits>(inputs: LogitsPolicyLossInputs<Logits>, options: LogitsPolicyLossOptions) {
  const { logits, tokens, rest } = splitLogitsInputs(inputs);
  const { temperature, lossOptions } = splitLogitsOptions(options);
  const withEntropy = resolvePolicyLossOptions(lossOptions).entropyCoef > 0;
  const logProbOptions = { temperature, mask: rest.mask };
  return {
    logits,
    tokens,
    lossOptions,
    forwardOptions: { ...logProbOptions, entropy: withEntropy },
    lossInputs: (forward: TokenLogProbs): PolicyLossInputs => {
      requirePossibleTokens(forward, tokens);
      return {
        ...rest,
        logp: { data: forward.logp, shape: forward.shape },
        entropy: withEntropy ? { data: forward.entropy!, shape: forward.shape } : undefined,
      };
    },
    backwardOptions: (forward: TokenLogProbs, loss: PolicyLossResult): TokenLogProbsBackwardOptions => ({
      ...logProbOptions,
      gradLogp: { data: loss.grad, shape: forward.shape },
      gradEntropy: loss.gradEntropy === undefined ? undefined : { data: loss.gradEntropy, shape: forward.shape },
      saved: forward,
    }),
    result: <Gradient>(
      forward: TokenLogProbs,
      loss: PolicyLossResult,
      gradLogits: Gradient,
    ): LogitsPolicyLossResult<Gradient> => ({ ...loss, logp: forward.logp, entropy: forward.entropy, gradLogits }),
  };
}
