/**
 * The contract between the core and its backends, and the only module of the core a backend imports
 * (test/contract.test.ts checks): the kernels every backend implements, the table of built-in objectives, the
 * validators every backend runs so that bad input fails alike everywhere, the rule for which positions the backward
 * pass reads, one composition of forward → loss → backward, and one fallback for objectives registered at run time.
 */
import type {
  LogitsGradient,
  LogitsPolicyLossInputs,
  LogitsPolicyLossOptions,
  LogitsPolicyLossResult,
} from "../logits-loss.js";
import { composedPolicyLossFromLogits } from "../logits-loss.js";
import type {
  LogitsInput,
  TokenLogProbs,
  TokenLogProbsBackwardOptions,
  TokenLogProbsOptions,
} from "../logprobs/index.js";
import type { PolicyLossInputs } from "../loss/inputs.js";
import { isBuiltinObjective } from "../loss/objectives.js";
import type { PolicyLossOptionsInput } from "../loss/options.js";
import { type PolicyLossResult, policyLoss } from "../loss/policy-loss.js";
import type { MatrixInput } from "../tensor.js";

export { closestKey, GrpoRocError, invalid, parseOrThrow, ValidationError } from "../errors.js";
export * from "./float32.js";
export {
  type ComposableKernels,
  composedPolicyLossFromLogits,
  type LogitsGradient,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  splitLogitsInputs,
  splitLogitsOptions,
} from "../logits-loss.js";
export { roundToBfloat16InPlace } from "../logprobs/bfloat16.js";
export {
  type BackwardInputs,
  badLogits,
  isBfloat16Logits,
  type Logits,
  logitsOverflow,
  logProbOverflow,
  type LogitsInput,
  readBackwardInputsOf,
  readBackwardOptions,
  readBfloat16Logits,
  readForwardOptions,
  readLogits,
  readTokens,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
} from "../logprobs/token-logprobs.js";
export { requireVerlCounts, rowWeights } from "../loss/aggregation.js";
export { type LossInputs, type PolicyLossInputs, readLossInputs, requireFiniteLogps } from "../loss/inputs.js";
export { KL_KIND_CODE, KL_STRAIGHT_THROUGH, RATIO_LEVEL_CODE } from "../loss/kernel-codes.js";
export { type MetricSums, lossMetrics, type PolicyLossMetrics } from "../loss/metrics.js";
export { BUILTIN_OBJECTIVES, type BuiltinObjective, isBuiltinObjective, OBJECTIVE_CODE } from "../loss/objectives.js";
export {
  type Aggregation,
  type KlKind,
  type KlOptions,
  type Normalizer,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  policyLossOptionsSchema,
} from "../loss/options.js";
export {
  policyLoss as referencePolicyLoss,
  type PolicyLossResult,
  readPolicyLossCall,
  resolvePolicyLossOptions,
  validCounts,
} from "../loss/policy-loss.js";
export { isArrayLike, type NumericArray, requireFloat32Range } from "../numeric.js";
export { type MatrixInput, toMatrix } from "../tensor.js";

/** A precision a backend's kernels compute in. */
export type Dtype = "float32" | "float64" | "bfloat16";

/** What a backend can do on this machine, and why not when it cannot. */
export interface BackendInfo {
  /** The backend's registered name. */
  readonly name: string;
  /** Whether its kernels can run here; when false, `reason` says why. */
  readonly available: boolean;
  /** Why it is unavailable (no adapter, no device, not built…), or a note on what it runs on. */
  readonly reason: string;
  /** The precision its kernels compute in. */
  readonly dtypes: readonly Dtype[];
  /** The largest buffer one kernel may bind, in bytes; inputs are chunked below it. Infinity for the CPU. */
  readonly maxBindingBytes: number;
}

/**
 * The kernels every backend implements, over plain typed arrays in and out. They are async because a device
 * backend must wait for its results; each is the same math as the reference backend, checked by the conformance
 * suite at the tolerance of the backend's dtype.
 */
export interface Kernels {
  /** `policyLoss` on this backend. */
  policyLoss(inputs: PolicyLossInputs, options?: PolicyLossOptionsInput): Promise<PolicyLossResult>;
  /** `tokenLogProbs` on this backend. */
  tokenLogProbs(logits: LogitsInput, tokens: MatrixInput, options?: TokenLogProbsOptions): Promise<TokenLogProbs>;
  /** `tokenLogProbsBackward` on this backend, its gradient in the logits' precision. */
  tokenLogProbsBackward(
    logits: LogitsInput,
    tokens: MatrixInput,
    options: TokenLogProbsBackwardOptions,
  ): Promise<LogitsGradient>;
  /**
   * The policy loss from the logits and its gradient into them (log-probs → loss → backward); a device backend
   * fuses it, reading the logits twice and writing their gradient once.
   */
  policyLossFromLogits(
    inputs: LogitsPolicyLossInputs,
    options?: LogitsPolicyLossOptions,
  ): Promise<LogitsPolicyLossResult>;
}

/**
 * Somewhere the kernels run (the reference on the CPU, TensorFlow.js, WebGPU, CUDA), with the same inputs, outputs
 * and errors as the core's functions; `registerBackend` adds one, `getBackend` returns one.
 */
export interface Backend extends Kernels {
  /** The name it is registered and selected by. */
  readonly name: string;
  /** Checks this machine; never throws (an unavailable backend says why). */
  probe(): Promise<BackendInfo>;
}

/**
 * Whether a backend's own kernels compute this objective: a built-in one. Anything else (an objective registered at
 * run time, one of REFERENCE_OBJECTIVES, or a name nobody registered) goes to the reference, which computes the
 * first two and rejects the last.
 * The option is read, not parsed: a malformed one is rejected by whichever kernel parses it, with the same error.
 */
export function usesBackendObjective(options: PolicyLossOptionsInput | undefined): boolean {
  const objective = (options as { objective?: unknown } | undefined)?.objective ?? "clip";
  return typeof objective !== "string" || isBuiltinObjective(objective);
}

/**
 * A backend's kernels, with objectives registered at run time added: the [B, T] policy loss of such an objective
 * runs on the reference (the CPU, float64), and the loss from logits composes this backend's own log-prob kernels
 * around it. Every backend is built with it, so a registered objective runs everywhere with the reference's results.
 */
export function withRegisteredObjectives<K extends Kernels>(kernels: K): K {
  const extended: K = {
    ...kernels,
    policyLoss: async (inputs: PolicyLossInputs, options: PolicyLossOptionsInput = {}) =>
      usesBackendObjective(options) ? kernels.policyLoss(inputs, options) : policyLoss(inputs, options),
    policyLossFromLogits: async (inputs: LogitsPolicyLossInputs, options: LogitsPolicyLossOptions = {}) =>
      usesBackendObjective(options)
        ? kernels.policyLossFromLogits(inputs, options)
        : composedPolicyLossFromLogits(extended, inputs, options),
  };
  return extended;
}
