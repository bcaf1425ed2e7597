/**
 * The `wasm` backend: the log-prob kernels compiled to WebAssembly with 128-bit SIMD (native/wasm/logprobs.c), for
 * machines without a GPU (Node on a laptop or a CI box, a browser without WebGPU). Inputs are validated exactly as
 * the reference validates them, with the contract's validators, and also where float32 cannot hold them (the
 * kernels compute in float32 and sum in float64), before anything runs. Logits in JavaScript memory are streamed
 * through staging regions in the kernel's memory, `chunkBytes` of them at a time, so that a batch larger than
 * wasm32's 4 GiB still runs, and the gradient comes back the same way; logits from allocateLogits live in the
 * kernel's memory already, and their gradient is written beside them.
 *
 * What runs where: tokenLogProbs and tokenLogProbsBackward in wasm (the statistics and the gradient; the
 * logarithms, checks and errors here, in float64; without saved statistics, the backward visits each row once);
 * policyLoss on the reference (the [B, T] loss is small next to the logits); policyLossFromLogits around the
 * reference's loss, fused for the clip objective at the token level (./fused.ts: the logits read once), else
 * composed (the logits read twice: statistics, then gradient under the saved statistics).
 *
 * Threads (./pool.ts): each kernel call's positions are split among `threads` threads over one shared memory.
 */
import * as z from "zod/mini";
import {
  type Backend,
  type BackendInfo,
  GrpoRocError,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  lossGradientOverflow,
  type MatrixInput,
  parseOrThrow,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  referencePolicyLoss,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
} from "../backends/contract.js";
import { allocateLogits, type Engine, type Exclusive, type WasmLogitsBuffer } from "./engine.js";
import { fusedPolicyLossFromLogits } from "./fused.js";
import { unsupportedReason, WasmKernel } from "./kernel.js";
import { wasmTokenLogProbs, wasmTokenLogProbsBackward } from "./logprobs.js";
import { readNodeCores, ThreadPool, threadsAvailable } from "./pool.js";

/** createWasmBackend's options. */
export interface WasmBackendOptions {
  /**
   * Bytes of logits one chunk stages in the kernel's memory (its gradient takes as many again); default 64 MiB. A
   * chunk holds at least one position, whatever this says. Logits from allocateLogits are not staged.
   */
  readonly chunkBytes?: number | undefined;
  /** The registry name; default "wasm". */
  readonly name?: string | undefined;
  /**
   * Threads in all, the calling one included (1 to 256); default: the cores available (Node's
   * os.availableParallelism(), a browser's navigator.hardwareConcurrency). Where shared memory or workers are not
   * available (a browser page without cross-origin isolation), one, whatever this says: probe() tells.
   */
  readonly threads?: number | undefined;
}

/** The wasm backend: a Backend, with logits that live in its memory and its worker threads' release. */
export interface WasmBackend extends Backend {
  /** Room for [B, T, V] float32 logits and their gradient in the backend's memory (see WasmLogitsBuffer). */
  allocateLogits(shape: readonly [number, number, number]): Promise<WasmLogitsBuffer>;
  /**
   * Ends the worker threads (a later call starts new ones). Not needed for a Node process to exit: between calls
   * the workers keep nothing alive.
   */
  release(): Promise<void>;
}

const DEFAULT_CHUNK_BYTES = 64 * 2 ** 20;
const MAX_THREADS = 256;

const optionsSchema = z.strictObject({
  chunkBytes: z.optional(z.number().check(z.positive(), z.refine(Number.isFinite, "expected a finite number"))),
  name: z.optional(z.string().check(z.minLength(1))),
  threads: z.optional(z.int().check(z.gte(1), z.lte(MAX_THREADS))),
});

/** The backend cannot run here; `reason` is what probe() says. */
export class WasmUnavailableError extends GrpoRocError {
  override name = "WasmUnavailableError";
  constructor(
    readonly backend: string,
    readonly reason: string,
  ) {
    super(`the ${backend} backend is not available: ${reason}`);
  }
}

/** A wasm backend (see WasmBackendOptions); `wasmBackend` is the default one. */
export function createWasmBackend(options: WasmBackendOptions = {}): WasmBackend {
  const parsed = parseOrThrow(optionsSchema, options, "options");
  const name = parsed.name ?? "wasm";
  const chunkBytes = parsed.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  let probed: Promise<{ readonly info: BackendInfo; readonly engine: Engine | undefined }> | undefined;
  const probe = () => {
    probed ??= probeWasm(name, parsed.threads, chunkBytes);
    return probed;
  };
  let queue: Promise<unknown> = Promise.resolve();
  const exclusive: Exclusive = (work) => {
    const run = async () => {
      const { info, engine } = await probe();
      if (engine === undefined) throw new WasmUnavailableError(name, info.reason);
      // Workers ended by release() (or a death) may still be running: none may write over this call's inputs.
      await engine.pool.stopped();
      return work(engine);
    };
    const result = queue.then(run, run);
    // The queue holds no result: a returned gradient is freed when its caller drops it.
    queue = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  };
  const logProbKernels = {
    policyLoss: async (inputs: PolicyLossInputs, lossOptions?: PolicyLossOptionsInput): Promise<PolicyLossResult> =>
      referencePolicyLoss(inputs, lossOptions),
    tokenLogProbs: (logits: LogitsInput, tokens: MatrixInput, forwardOptions?: TokenLogProbsOptions) =>
      wasmTokenLogProbs(exclusive, logits, tokens, forwardOptions),
    tokenLogProbsBackward: (logits: LogitsInput, tokens: MatrixInput, backwardOptions: TokenLogProbsBackwardOptions) =>
      wasmTokenLogProbsBackward(exclusive, logits, tokens, backwardOptions),
  };
  // The loss is the reference's for every objective, registered ones included: policyLossFromLogits composes around
  // it for all of them (with its checks of the loss gradient), where withRegisteredObjectives would compose with
  // the unchecked backward step.
  const kernels = {
    ...logProbKernels,
    policyLossFromLogits: (
      inputs: LogitsPolicyLossInputs,
      lossOptions?: LogitsPolicyLossOptions,
    ): Promise<LogitsPolicyLossResult> =>
      fusedPolicyLossFromLogits(
        logProbKernels,
        backwardFromLoss,
        (logits, tokens, forwardOptions, prediction) =>
          wasmTokenLogProbs(exclusive, logits, tokens, forwardOptions, prediction),
        (logits, tokens, backwardOptions, kept) =>
          wasmTokenLogProbsBackward(exclusive, logits, tokens, backwardOptions, kept),
        inputs,
        lossOptions,
      ),
  };
  return {
    name,
    probe: async () => (await probe()).info,
    ...kernels,
    allocateLogits: async (shape) => {
      const dims = parseOrThrow(shapeSchema, shape, "shape");
      return exclusive(async (engine) => allocateLogits(engine, dims));
    },
    release: async () => {
      const engine = probed === undefined ? undefined : (await probed).engine;
      await engine?.pool.release();
    },
  };
}

/** The wasm backend: `registerBackend(wasmBackend)`; its probe() says why when it cannot run. */
export const wasmBackend: WasmBackend = /* @__PURE__ */ createWasmBackend();

const shapeSchema = z.tuple([
  z.int().check(z.nonnegative()),
  z.int().check(z.nonnegative()),
  z.int().check(z.positive()),
]);

/**
 * The composition's backward step (after the reference's float64 loss): a loss gradient whose gradient into the
 * logits float32 cannot hold is refused at the logits' position, naming the fix (lossGradientOverflow, as the fused
 * kernels of the cuda and webgpu backends do), not at an options.gradLogp the caller never passed.
 */
function backwardFromLoss(
  backward: (
    logits: LogitsInput,
    tokens: MatrixInput,
    options: TokenLogProbsBackwardOptions,
  ) => Promise<LogitsGradient>,
) {
  return (logits: LogitsInput, tokens: MatrixInput, options: TokenLogProbsBackwardOptions) => {
    // composedPolicyLossFromLogits passes the loss's gradients as { data, shape } and the forward result as `saved`.
    const saved = options.saved!;
    const gradLogp = (options.gradLogp as { data: ArrayLike<number> }).data;
    const gradEntropy = (options.gradEntropy as { data: ArrayLike<number> } | undefined)?.data;
    const [rows, cols] = saved.shape;
    const l: Logits = { data: [], rows, cols, vocab: vocabOf(logits) };
    for (let i = 0; i < gradLogp.length; i++) {
      const overflow = lossGradientOverflow(i, l, gradLogp[i]!, gradEntropy?.[i] ?? 0, saved.temperature);
      if (overflow !== undefined) throw overflow;
    }
    return backward(logits, tokens, options);
  };
}

/** The vocabulary of logits the forward pass has already read (and validated). */
function vocabOf(logits: LogitsInput): number {
  if ("shape" in logits) return logits.shape[2];
  return (logits as readonly (readonly (readonly number[])[])[])[0]?.[0]?.length ?? 0;
}

async function probeWasm(
  name: string,
  requestedThreads: number | undefined,
  chunkBytes: number,
): Promise<{ info: BackendInfo; engine: Engine | undefined }> {
  const unsupported = unsupportedReason();
  if (unsupported !== undefined) {
    return { info: { name, available: false, reason: unsupported, dtypes: [], maxBindingBytes: 0 }, engine: undefined };
  }
  try {
    await readNodeCores();
    const kernel = WasmKernel.create();
    const { threads, why } = threadsAvailable(kernel, requestedThreads);
    const how =
      threads === 1
        ? `one thread (${why})`
        : `${threads} threads (${why}), workers over one shared memory, started at the first call`;
    const reason =
      `WebAssembly with 128-bit SIMD, ${how}: float32 logits (float64 and bfloat16 are read as float32), ` +
      "float64 sums";
    const engine = {
      kernel,
      pool: new ThreadPool(kernel, threads),
      chunkBytes,
      resident: new WeakMap(),
      balance: { own: 1 / threads },
    };
    return { info: { name, available: true, reason, dtypes: ["float32"], maxBindingBytes: Infinity }, engine };
  } catch (error) {
    const reason = `the kernel did not instantiate: ${(error as Error).message}`;
    return { info: { name, available: false, reason, dtypes: [], maxBindingBytes: 0 }, engine: undefined };
  }
}
