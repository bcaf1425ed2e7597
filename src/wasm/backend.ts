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
 * (composedPolicyLossFromLogits). One thread for now.
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
import { unsupportedReason, WasmKernel } from "./kernel.js";

/** createWasmBackend's options. */
export interface WasmBackendOptions {
  /**
   * Bytes of logits one chunk stages in the kernel's memory (its gradient takes as many again); default 64 MiB. A
   * chunk holds at least one position, whatever this says.
   */
  readonly chunkBytes?: number | undefined;
  /** The registry name; default "wasm". */
  readonly name?: string | undefined;
}

const DEFAULT_CHUNK_BYTES = 64 * 2 ** 20;

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

/** Resolves to the kernel, or rejects with WasmUnavailableError; called after the inputs are validated. */
type KernelSource = () => Promise<WasmKernel>;

/** A wasm backend (see WasmBackendOptions); `wasmBackend` is the default one. */
export function createWasmBackend(options: WasmBackendOptions = {}): Backend {
  const name = options.name ?? "wasm";
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!(Number.isFinite(chunkBytes) && chunkBytes > 0))
    throw invalid("options.chunkBytes", `is ${chunkBytes}; expected a positive number of bytes`);
  let probed: { readonly info: BackendInfo; readonly kernel: WasmKernel | undefined } | undefined;
  const probe = async () => {
    probed ??= probeWasm(name);
    return probed.info;
  };
  const kernel: KernelSource = async () => {
    const info = await probe();
    if (probed?.kernel === undefined) throw new WasmUnavailableError(name, info.reason);
    return probed.kernel;
  };
  const logProbKernels = {
    policyLoss: async (inputs: PolicyLossInputs, lossOptions?: PolicyLossOptionsInput): Promise<PolicyLossResult> =>
      referencePolicyLoss(inputs, lossOptions),
    tokenLogProbs: (logits: LogitsInput, tokens: MatrixInput, forwardOptions?: TokenLogProbsOptions) =>
      wasmTokenLogProbs(kernel, chunkBytes, logits, tokens, forwardOptions),
    tokenLogProbsBackward: (logits: LogitsInput, tokens: MatrixInput, backwardOptions: TokenLogProbsBackwardOptions) =>
      wasmTokenLogProbsBackward(kernel, chunkBytes, logits, tokens, backwardOptions),
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
  return { name, probe, ...kernels };
}

/** The wasm backend: `registerBackend(wasmBackend)`; its probe() says why when it cannot run. */
export const wasmBackend: Backend = /* @__PURE__ */ createWasmBackend();

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

function probeWasm(name: string): { info: BackendInfo; kernel: WasmKernel | undefined } {
  const unsupported = unsupportedReason();
  if (unsupported !== undefined) {
    return { info: { name, available: false, reason: unsupported, dtypes: [], maxBindingBytes: 0 }, kernel: undefined };
  }
  try {
    const kernel = WasmKernel.create();
    const memory = kernel.shared
      ? "a shared memory (worker threads can join it)"
      : "an ordinary memory (shared memory is not allowed here: a browser page needs cross-origin isolation)";
    const reason =
      `WebAssembly with 128-bit SIMD, one thread, over ${memory}: float32 logits (float64 and bfloat16 are ` +
      "read as float32), float64 sums";
    return { info: { name, available: true, reason, dtypes: ["float32"], maxBindingBytes: Infinity }, kernel };
  } catch (error) {
    const reason = `the kernel did not instantiate: ${(error as Error).message}`;
    return { info: { name, available: false, reason, dtypes: [], maxBindingBytes: 0 }, kernel: undefined };
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Chunks of positions through the kernel's memory

/** Positions [start, end) of the logits, one chunk. */
interface Chunk {
  readonly start: number;
  readonly end: number;
}

function chunksOf(l: Logits, chunkBytes: number): Chunk[] {
  const positions = l.rows * l.cols;
  const per = Math.max(1, Math.floor(chunkBytes / (l.vocab * 4)));
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

/** The forward statistics' buffers for a chunk of `positions` rows (byte offsets into the kernel's memory). */
function forwardLayout(kernel: WasmKernel, positions: number, vocab: number) {
  const [logits, active, max, sum, weighted] = kernel.reserve(forwardSizes(positions, vocab)) as Offsets<5>;
  return { logits, active, max, sum, weighted };
}

function forwardSizes(positions: number, vocab: number): number[] {
  return [positions * vocab * 4, positions, positions * 4, positions * 8, positions * 8];
}

type Offsets<N extends number, T extends number[] = []> = T["length"] extends N ? T : Offsets<N, [...T, number]>;

/**
 * The backward pass's buffers: the forward statistics' (the same offsets: the statistics are recomputed there when
 * nothing was saved), then the gradient and each position's inputs to it.
 */
function backwardLayout(kernel: WasmKernel, positions: number, vocab: number) {
  const float32s = positions * 4;
  const offsets = kernel.reserve([
    ...forwardSizes(positions, vocab),
    positions * vocab * 4,
    ...[float32s, float32s, float32s, float32s, float32s, float32s, float32s],
    positions * 8,
  ]) as Offsets<14>;
  const [logits, active, max, sum, weighted, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum] =
    offsets;
  return { logits, active, max, sum, weighted, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum };
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
  source: KernelSource,
  chunkBytes: number,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy: withEntropy } = readForwardOptions(options);
  const l = readLogits(logitsInput);
  const { ids, mask } = readTokens(tokensInput, options.mask, l);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => mask === undefined || mask[i] === 1);
  const kernel = await source();
  const positions = l.rows * l.cols;
  const logp = new Float64Array(positions);
  const logSumExp = new Float64Array(positions).fill(NaN);
  const entropy = withEntropy ? new Float64Array(positions) : undefined;
  const inverseTemperature = 1 / temperature;
  for (const chunk of chunksOf(l, chunkBytes)) {
    const count = chunk.end - chunk.start;
    const at = forwardLayout(kernel, count, l.vocab);
    const staged = kernel.f32(at.logits, count * l.vocab);
    stage(l, chunk, staged);
    const active = kernel.u8(at.active, count);
    for (let k = 0; k < count; k++) active[k] = mask === undefined || mask[chunk.start + k] === 1 ? 1 : 0;
    kernel.exports.forward_stats(
      at.logits,
      count,
      l.vocab,
      float32InverseTemperature(temperature),
      withEntropy ? 1 : 0,
      at.active,
      at.max,
      at.sum,
      at.weighted,
    );
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
}

async function wasmTokenLogProbsBackward(
  source: KernelSource,
  chunkBytes: number,
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
  const kernel = await source();
  const positions = l.rows * l.cols;
  const out =
    l.data instanceof Float32Array ? new Float32Array(positions * l.vocab) : new Float64Array(positions * l.vocab);
  const inverseTemperature = 1 / temperature;
  const inverse32 = float32InverseTemperature(temperature);
  for (const chunk of chunksOf(l, chunkBytes)) {
    const count = chunk.end - chunk.start;
    const at = backwardLayout(kernel, count, l.vocab);
    const { grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum } = at;
    stage(l, chunk, kernel.f32(at.logits, count * l.vocab));
    const active = kernel.u8(at.active, count);
    for (let k = 0; k < count; k++) active[k] = reads[chunk.start + k]!;
    const shifts = kernel.f32(shift, count);
    const logNorms = kernel.f32(logNorm, count);
    const entropies = kernel.f32(entropy, count);
    if (saved === undefined) {
      kernel.exports.forward_stats(
        at.logits,
        count,
        l.vocab,
        inverse32,
        gradEntropy === undefined ? 0 : 1,
        at.active,
        at.max,
        at.sum,
        at.weighted,
      );
      const max = kernel.f32(at.max, count);
      const sum = kernel.f64(at.sum, count);
      const weighted = kernel.f64(at.weighted, count);
      for (let k = 0; k < count; k++) {
        if (active[k] === 0) continue;
        const stats = positionStatistics(chunk.start + k, l.cols, max[k]!, sum[k]!, weighted[k]!, inverseTemperature);
        shifts[k] = max[k]!;
        logNorms[k] = stats.logSum;
        entropies[k] = gradEntropy === undefined ? 0 : stats.entropy;
      }
    } else {
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
    kernel.exports.backward(
      at.logits,
      grad,
      count,
      l.vocab,
      inverse32,
      at.active,
      shift,
      logNorm,
      g,
      h,
      entropy,
      tokens,
      rowMax,
      probabilitySum,
    );
    if (saved !== undefined) requireSavedRows(kernel, chunk, active, rowMax, probabilitySum, l.cols);
    out.set(kernel.f32(grad, count * l.vocab), chunk.start * l.vocab);
  }
  if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
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
