import type { LogitsPolicyLossInputs, LogitsPolicyLossOptions, LogitsPolicyLossResult } from "../logits-loss.js";
import type {
  LogitsInput,
  TokenLogProbs,
  TokenLogProbsBackwardOptions,
  TokenLogProbsOptions,
} from "../logprobs/index.js";
import type { PolicyLossInputs, PolicyLossOptionsInput, PolicyLossResult } from "../loss/index.js";
import type { MatrixInput } from "../tensor.js";

export type Dtype = "float32" | "float64" | "bfloat16";

/** What a backend can do on this machine, and why not when it cannot. */
export interface BackendInfo {
  readonly name: string;
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
  policyLoss(inputs: PolicyLossInputs, options?: PolicyLossOptionsInput): Promise<PolicyLossResult>;
  tokenLogProbs(logits: LogitsInput, tokens: MatrixInput, options?: TokenLogProbsOptions): Promise<TokenLogProbs>;
  tokenLogProbsBackward(
    logits: LogitsInput,
    tokens: MatrixInput,
    options: TokenLogProbsBackwardOptions,
  ): Promise<{ readonly data: Float32Array | Float64Array; readonly shape: readonly [number, number, number] }>;
  /**
   * The policy loss from the logits and its gradient into them (log-probs → loss → backward); a device backend
   * fuses it, reading the logits twice and writing their gradient once.
   */
  policyLossFromLogits(
    inputs: LogitsPolicyLossInputs,
    options?: LogitsPolicyLossOptions,
  ): Promise<LogitsPolicyLossResult>;
}

export interface Backend extends Kernels {
  readonly name: string;
  /** Checks this machine; never throws (an unavailable backend says why). */
  probe(): Promise<BackendInfo>;
}
