/**
 * The `wasm` backend: the log-prob kernels compiled to WebAssembly with 128-bit SIMD (native/wasm/logprobs.c), for
 * machines without a GPU (Node on a laptop or a CI box, a browser without WebGPU). Inputs are validated exactly as
 * the reference validates them, with the contract's validators, and also where float32 cannot hold them (the
 * kernels compute in float32 and sum in float64), before anything runs. The logits live in JavaScript memory and
 * are streamed through a staging buffer in the kernel's memory, `chunkBytes` of them at a time, so that a batch
 * larger than wasm32's 4 GiB still runs; the gradient comes back the same way.
 *
 * What runs where: tokenLogProbs and tokenLogProbsBackward in wasm (the statistics and the gradient; the
 * logarithms, checks and errors here, in float64); policyLoss on the reference (the [B, T] loss is small next to the
 * logits); policyLossFromLogits composes the two wasm kernels around the reference's loss
 * (composedPolicyLossFromLogits): the logits are read twice (statistics, then gradient under the saved statistics)
 * and the gradient written once.
 *
 * Threads (./pool.ts): each kernel call's positions are split among `threads` threads over one shared memory.
 * Logits can also live in the kernel's memory from the start (allocateLogits): no staging copy, and the gradient
 * is written there too.
 */
import {
  type Backend,
  type BackendInfo,
  badLogits,
  composedPolicyLossFromLogits,
  float32InverseTemperature,
  GrpoRocError,
  invalid,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  logitsOverflow,
  logProbOverflow,
  lossGradientOverflow,
  type MatrixInput,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  readBackwardInputsOf,
  readBackwardOptions,
  readForwardOptions,
  readLogits,
  readTokens,
  referencePolicyLoss,
  requireFloat32Logits,
  requireFloat32Temperature,
  requireFloat32Upstream,
  roundToBfloat16InPlace,
  savedIsExact,
  savedMismatch,
  savedShift,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  withRegisteredObjectives,
} from "../backends/contract.js";
import * as z from "zod/mini";
import { parseOrThrow } from "../errors.js";
import { pure } from "../pure.js";
import { type Allocation, unsupportedReason, WasmKernel } from "./kernel.js";
import { type KernelCall, readNodeCores, ThreadPool, threadsAvailable } from "./pool.js";

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

/**
 * Logits that live in the wasm backend's memory (allocateLogits): write them into `logits.data` and pass `logits`
 * as the logits of this backend's calls: nothing is copied in, and the gradient of tokenLogProbsBackward and
 * policyLossFromLogits is written into `gradient` and returned as it (overwritten by the next such call on these
 * logits). Read `logits.data` and `gradient` afresh after each call: where the memory is not shared (one thread),
 * growing it for another call replaces the views. Other backends take `logits` too (it is plain float32 data).
 */
export interface WasmLogitsBuffer {
  /** [B, T, V] float32 logits in the backend's memory, zeroed at first. */
  readonly logits: { readonly data: Float32Array; readonly shape: readonly [number, number, number] };
  /** ∂loss/∂logits, [B, T, V] float32, written by the backward calls given `logits`. */
  readonly gradient: Float32Array;
  /** Gives the memory back; the buffer may not be used after. */
  release(): void;
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

const optionsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    chunkBytes: z.optional(z.number().check(z.positive(), z.refine(Number.isFinite, "expected a finite number"))),
    name: z.optional(z.string().check(z.minLength(1))),
    threads: z.optional(z.int().check(z.gte(1), z.lte(MAX_THREADS))),
  }),
);

/** How far a row's probabilities may sum from 1 under saved statistics before they are taken for another row's. */
const MISMATCH_TOLERANCE = 1e-3;

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

/** The kernel, its threads, and the queue that runs one call at a time over its memory. */
interface Engine {
  readonly kernel: WasmKernel;
  readonly pool: ThreadPool;
  readonly chunkBytes: number;
  /** Logits that live in the kernel's memory, by the views handed out (WasmLogitsBuffer). */
  readonly resident: WeakMap<Float32Array, Resident>;
}

/**
 * Runs `work` once the calls before it are done (they share the scratch memory), with the engine, or rejects with
 * WasmUnavailableError; called after the inputs are validated.
 */
type Exclusive = <T>(work: (engine: Engine) => Promise<T>) => Promise<T>;

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
      return work(engine);
    };
    const result = queue.then(run, run);
    queue = result.catch(() => undefined);
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
  const kernels = withRegisteredObjectives({
    ...logProbKernels,
    policyLossFromLogits: (
      inputs: LogitsPolicyLossInputs,
      lossOptions?: LogitsPolicyLossOptions,
    ): Promise<LogitsPolicyLossResult> =>
      composedPolicyLossFromLogits(
        { ...logProbKernels, tokenLogProbsBackward: backwardFromLoss(logProbKernels.tokenLogProbsBackward) },
        inputs,
        lossOptions,
      ),
  });
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

const shapeSchema = /* @__PURE__ */ pure(() =>
  z.tuple([z.int().check(z.nonnegative()), z.int().check(z.nonnegative()), z.int().check(z.positive())]),
);

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
    const engine = { kernel, pool: new ThreadPool(kernel, threads), chunkBytes, resident: new WeakMap() };
    return { info: { name, available: true, reason, dtypes: ["float32"], maxBindingBytes: Infinity }, engine };
  } catch (error) {
    const reason = `the kernel did not instantiate: ${(error as Error).message}`;
    return { info: { name, available: false, reason, dtypes: [], maxBindingBytes: 0 }, engine: undefined };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Logits in the kernel's memory

/** A WasmLogitsBuffer's regions: its logits, then their gradient, and views of them. */
interface Resident {
  readonly allocation: Allocation;
  readonly gradientOffset: number;
  released: boolean;
  /** The views of the current memory buffer, made again when growth (not shared: one thread) has replaced it. */
  views(): { readonly data: Float32Array; readonly gradient: Float32Array };
}

function allocateLogits(engine: Engine, shape: readonly [number, number, number]): WasmLogitsBuffer {
  const [rows, cols, vocab] = shape;
  const count = rows * cols * vocab;
  const { kernel } = engine;
  const allocation = kernel.allocate(count * 8);
  kernel.f32(allocation.offset, count * 2).fill(0);
  let views: { buffer: unknown; data: Float32Array; gradient: Float32Array } | undefined;
  const resident: Resident = {
    allocation,
    gradientOffset: allocation.offset + count * 4,
    released: false,
    views: () => {
      if (resident.released) throw invalid("logits.data", "belongs to a released WasmLogitsBuffer: allocate another");
      if (views?.buffer !== kernel.memory.buffer) {
        views = {
          buffer: kernel.memory.buffer,
          data: kernel.f32(allocation.offset, count),
          gradient: kernel.f32(resident.gradientOffset, count),
        };
        engine.resident.set(views.data, resident);
      }
      return views;
    },
  };
  const frozenShape = Object.freeze([rows, cols, vocab] as const);
  return {
    logits: {
      get data() {
        return resident.views().data;
      },
      shape: frozenShape,
    },
    get gradient() {
      return resident.views().gradient;
    },
    release() {
      if (resident.released) return;
      resident.released = true;
      kernel.free(allocation);
    },
  };
}

/** The resident logits these are (the same view), or undefined for logits in JavaScript memory. */
function residentOf(engine: Engine, l: Logits): Resident | undefined {
  if (!(l.data instanceof Float32Array)) return undefined;
  const resident = engine.resident.get(l.data);
  if (resident?.released) throw invalid("logits.data", "belongs to a released WasmLogitsBuffer: allocate another");
  return resident;
}

// ---------------------------------------------------------------------------------------------------------------
// Chunks of positions through the kernel's memory, split among threads

/** Positions [start, end) of the logits, one chunk. */
interface Chunk {
  readonly start: number;
  readonly end: number;
}

function chunksOf(l: Logits, chunkBytes: number, resident: Resident | undefined): Chunk[] {
  const positions = l.rows * l.cols;
  const per = resident !== undefined ? positions : Math.max(1, Math.floor(chunkBytes / (l.vocab * 4)));
  const chunks: Chunk[] = [];
  for (let start = 0; start < positions; start += per) chunks.push({ start, end: Math.min(positions, start + per) });
  return chunks;
}

/** Copies the chunk's logits into the staging buffer, rounded to float32 (float64 input was checked to fit). */
function stage(l: Logits, chunk: Chunk, into: Float32Array): void {
  const from = chunk.start * l.vocab;
  const to = chunk.end * l.vocab;
  const data = l.data;
  if (data instanceof Float32Array || data instanceof Float64Array) into.set(data.subarray(from, to));
  else for (let k = from; k < to; k++) into[k - from] = data[k]!;
}

/**
 * The chunk's logits in the kernel's memory: where they live (resident), else staged into `staging`, a region of
 * the scratch.
 */
function chunkLogits(engine: Engine, l: Logits, chunk: Chunk, resident: Resident | undefined, staging: number) {
  if (resident !== undefined) return resident.allocation.offset + chunk.start * l.vocab * 4;
  stage(l, chunk, engine.kernel.f32(staging, (chunk.end - chunk.start) * l.vocab));
  return staging;
}

/**
 * One kernel over `count` positions, split into contiguous ranges among the pool's threads. `args(first, n)` gives
 * the arguments for positions [first, first + n) of the chunk.
 */
function split(engine: Engine, fn: KernelCall["fn"], count: number, args: (first: number, n: number) => number[]) {
  const threads = Math.min(engine.pool.size, count);
  const calls: KernelCall[] = [];
  for (let k = 0; k < threads; k++) {
    const first = Math.floor((count * k) / threads);
    const next = Math.floor((count * (k + 1)) / threads);
    calls.push({ fn, args: args(first, next - first) });
  }
  return engine.pool.run(calls);
}

/** The forward statistics' buffers for a chunk of `positions` rows (byte offsets into the kernel's memory). */
function forwardLayout(kernel: WasmKernel, positions: number, vocab: number, staged: boolean) {
  const [logits, active, max, sum, weighted] = kernel.reserve(forwardSizes(positions, vocab, staged)) as Offsets<5>;
  return { logits, active, max, sum, weighted };
}

function forwardSizes(positions: number, vocab: number, staged: boolean): number[] {
  return [staged ? positions * vocab * 4 : 0, positions, positions * 4, positions * 8, positions * 8];
}

type Offsets<N extends number, T extends number[] = []> = T["length"] extends N ? T : Offsets<N, [...T, number]>;

/**
 * The backward pass's buffers: the forward statistics' (the same offsets: the statistics are recomputed there when
 * nothing was saved), then the gradient (none for resident logits: theirs is beside them) and each position's
 * inputs to it.
 */
function backwardLayout(kernel: WasmKernel, positions: number, vocab: number, staged: boolean) {
  const float32s = positions * 4;
  const offsets = kernel.reserve([
    ...forwardSizes(positions, vocab, staged),
    staged ? positions * vocab * 4 : 0,
    ...[float32s, float32s, float32s, float32s, float32s, float32s, float32s],
    positions * 8,
  ]) as Offsets<14>;
  const [logits, active, max, sum, weighted, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum] =
    offsets;
  return { logits, active, max, sum, weighted, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum };
}

/** forward_stats over a chunk whose logits are at `logits`, its buffers at `at`, split among the threads. */
function forwardStats(
  engine: Engine,
  logits: number,
  count: number,
  vocab: number,
  inverseTemperature: number,
  withEntropy: boolean,
  at: { active: number; max: number; sum: number; weighted: number },
) {
  return split(engine, "forward_stats", count, (first, n) => [
    logits + first * vocab * 4,
    n,
    vocab,
    inverseTemperature,
    withEntropy ? 1 : 0,
    at.active + first,
    at.max + first * 4,
    at.sum + first * 8,
    at.weighted + first * 8,
  ]);
}

/** One position's statistics from the kernel's: log Σ, logsumexp and entropy, in float64, or the reference's error. */
function positionStatistics(
  i: number,
  cols: number,
  max: number,
  sum: number,
  weighted: number,
  inverseTemperature: number,
) {
  // biome-ignore lint/suspicious/noSelfCompare: max !== max is the NaN test
  if (max === Infinity || max === -Infinity || max !== max)
    throw badLogits(i, cols, max === -Infinity ? -Infinity : NaN);
  const logSum = Math.log(sum);
  const logSumExp = max * inverseTemperature + logSum;
  if (!Number.isFinite(logSumExp)) throw logitsOverflow(i, cols, max, inverseTemperature);
  return { logSum, logSumExp, entropy: logSum - weighted / sum };
}

async function wasmTokenLogProbs(
  exclusive: Exclusive,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy: withEntropy } = readForwardOptions(options);
  const l = readLogits(logitsInput);
  const { ids, mask } = readTokens(tokensInput, options.mask, l);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => mask === undefined || mask[i] === 1);
  return exclusive(async (engine) => {
    const { kernel } = engine;
    const resident = residentOf(engine, l);
    const positions = l.rows * l.cols;
    const logp = new Float64Array(positions);
    const logSumExp = new Float64Array(positions).fill(NaN);
    const entropy = withEntropy ? new Float64Array(positions) : undefined;
    const inverseTemperature = 1 / temperature;
    for (const chunk of chunksOf(l, engine.chunkBytes, resident)) {
      const count = chunk.end - chunk.start;
      const at = forwardLayout(kernel, count, l.vocab, resident === undefined);
      const logits = chunkLogits(engine, l, chunk, resident, at.logits);
      const active = kernel.u8(at.active, count);
      for (let k = 0; k < count; k++) active[k] = mask === undefined || mask[chunk.start + k] === 1 ? 1 : 0;
      await forwardStats(engine, logits, count, l.vocab, float32InverseTemperature(temperature), withEntropy, at);
      const staged = kernel.f32(logits, count * l.vocab);
      const max = kernel.f32(at.max, count);
      const sum = kernel.f64(at.sum, count);
      const weighted = kernel.f64(at.weighted, count);
      for (let k = 0; k < count; k++) {
        if (active[k] === 0) continue;
        const i = chunk.start + k;
        const stats = positionStatistics(i, l.cols, max[k]!, sum[k]!, weighted[k]!, inverseTemperature);
        logSumExp[i] = stats.logSumExp;
        // (z − max)/τ − log Σ: exact where z/τ − logsumexp would cancel two huge numbers (as the reference).
        const tokenLogit = staged[k * l.vocab + ids[i]!]!;
        logp[i] = (tokenLogit - max[k]!) * inverseTemperature - stats.logSum;
        if (logp[i] === -Infinity && tokenLogit !== -Infinity) throw logProbOverflow(i, l.cols, tokenLogit, max[k]!);
        if (entropy !== undefined) entropy[i] = stats.entropy;
      }
    }
    return { logp, entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
  });
}

async function wasmTokenLogProbsBackward(
  exclusive: Exclusive,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsBackwardOptions,
): Promise<LogitsGradient> {
  const { temperature } = readBackwardOptions(options);
  const l = readLogits(logitsInput);
  const backward = readBackwardInputsOf(l, temperature, tokensInput, options);
  const { ids, reads, gradLogp, gradEntropy } = backward;
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => reads[i] === 1);
  requireFloat32Upstream(gradLogp, gradEntropy, reads, temperature, l);
  // Saved statistics that float32 kernels cannot use exactly (huge logits) are recomputed, for every row.
  const saved = backward.saved !== undefined && savedIsExact(backward.saved, reads) ? backward.saved : undefined;
  return exclusive(async (engine) => {
    const { kernel } = engine;
    const resident = residentOf(engine, l);
    const positions = l.rows * l.cols;
    const out =
      resident !== undefined
        ? undefined
        : l.data instanceof Float32Array
          ? new Float32Array(positions * l.vocab)
          : new Float64Array(positions * l.vocab);
    const inverseTemperature = 1 / temperature;
    const inverse32 = float32InverseTemperature(temperature);
    for (const chunk of chunksOf(l, engine.chunkBytes, resident)) {
      const count = chunk.end - chunk.start;
      const at = backwardLayout(kernel, count, l.vocab, resident === undefined);
      const { shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum } = at;
      const logits = chunkLogits(engine, l, chunk, resident, at.logits);
      const grad = resident === undefined ? at.grad : resident.gradientOffset + chunk.start * l.vocab * 4;
      const active = kernel.u8(at.active, count);
      for (let k = 0; k < count; k++) active[k] = reads[chunk.start + k]!;
      if (saved === undefined) {
        await forwardStats(engine, logits, count, l.vocab, inverse32, gradEntropy !== undefined, at);
        const max = kernel.f32(at.max, count);
        const sum = kernel.f64(at.sum, count);
        const weighted = kernel.f64(at.weighted, count);
        const [shifts, logNorms, entropies] = [
          kernel.f32(shift, count),
          kernel.f32(logNorm, count),
          kernel.f32(entropy, count),
        ];
        for (let k = 0; k < count; k++) {
          if (active[k] === 0) continue;
          const stats = positionStatistics(chunk.start + k, l.cols, max[k]!, sum[k]!, weighted[k]!, inverseTemperature);
          shifts[k] = max[k]!;
          logNorms[k] = stats.logSum;
          entropies[k] = gradEntropy === undefined ? 0 : stats.entropy;
        }
      } else {
        const [shifts, logNorms, entropies] = [
          kernel.f32(shift, count),
          kernel.f32(logNorm, count),
          kernel.f32(entropy, count),
        ];
        for (let k = 0; k < count; k++) {
          if (active[k] === 0) continue;
          const i = chunk.start + k;
          const H = saved.entropy?.[i] ?? 0;
          const exact = savedShift(saved.logSumExp[i]!, H, temperature)!;
          shifts[k] = exact.shift;
          logNorms[k] = exact.logSum;
          entropies[k] = H;
        }
      }
      const gs = kernel.f32(g, count);
      const hs = kernel.f32(h, count);
      const ts = kernel.i32(tokens, count);
      for (let k = 0; k < count; k++) {
        const i = chunk.start + k;
        const read = active[k] === 1;
        gs[k] = read ? gradLogp[i]! : 0;
        hs[k] = read && gradEntropy !== undefined ? gradEntropy[i]! : 0;
        ts[k] = read ? ids[i]! : 0;
      }
      await split(engine, "backward", count, (first, n) => [
        logits + first * l.vocab * 4,
        grad + first * l.vocab * 4,
        n,
        l.vocab,
        inverse32,
        at.active + first,
        shift + first * 4,
        logNorm + first * 4,
        g + first * 4,
        h + first * 4,
        entropy + first * 4,
        tokens + first * 4,
        rowMax + first * 4,
        probabilitySum + first * 8,
      ]);
      if (saved !== undefined) requireSavedRows(kernel, chunk, active, rowMax, probabilitySum, l.cols);
      out?.set(kernel.f32(grad, count * l.vocab), chunk.start * l.vocab);
    }
    if (out === undefined) return { data: resident!.views().gradient, shape: [l.rows, l.cols, l.vocab] };
    if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
    return { data: out, shape: [l.rows, l.cols, l.vocab] };
  });
}

/**
 * Rows read under saved statistics, which the kernel did not compute: a NaN or +Infinity logit, or only −Infinity,
 * is the reference's error; probabilities that do not sum to 1 mean the statistics are not these logits'.
 */
function requireSavedRows(
  kernel: WasmKernel,
  chunk: Chunk,
  active: Uint8Array,
  rowMax: number,
  probabilitySum: number,
  cols: number,
): void {
  const count = chunk.end - chunk.start;
  const max = kernel.f32(rowMax, count);
  const sums = kernel.f64(probabilitySum, count);
  for (let k = 0; k < count; k++) {
    if (active[k] === 0) continue;
    const i = chunk.start + k;
    const m = max[k]!;
    // biome-ignore lint/suspicious/noSelfCompare: m !== m is the NaN test
    if (m === Infinity || m !== m) throw badLogits(i, cols, NaN);
    if (m === -Infinity) throw badLogits(i, cols, -Infinity);
    if (!(Math.abs(sums[k]! - 1) <= MISMATCH_TOLERANCE)) throw savedMismatch(i, cols, sums[k]!);
  }
}
