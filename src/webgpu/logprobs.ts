/**
 * Token log-probs and their backward pass on a WebGPU device: the host side of logprobs.wgsl.ts and
 * backward.wgsl.ts, for logits given as typed arrays (uploaded chunk by chunk, results read back) or already on
 * the device (bound in place; the gradient stays there).
 */
import { badLogits, type Logits, type TokenLogProbs } from "../backends/contract.js";
import { backwardBindings, backwardKernel } from "./backward.wgsl.js";
import type { Batch, DeviceContext } from "./context.js";
import { BufferUsage, type GpuBuffer, type GpuBufferBinding, type GpuComputePipeline } from "./gpu.js";
import {
  deviceBinding,
  deviceLayout,
  grid,
  hostLayout,
  logitsParams,
  ParamSlots,
  planChunks,
  uploadRows,
  type Binding,
  type Chunk,
  type DeviceLogits,
  type Layout,
} from "./logits.js";
import { float32InverseTemperature, savedMismatch, savedShift } from "../backends/contract.js";
import { forwardBindings, forwardKernel, LOGITS_PARAM_WORDS, STATISTICS_FLAGS } from "./logprobs.wgsl.js";

/**
 * Host logits are streamed through the device in pieces of at most this many bytes, so that uploading one piece
 * overlaps computing the last.
 */
const STREAM_BYTES = 64 * 2 ** 20;

/** The logits of one call, and how each chunk of them is bound. */
export class LogitsSource {
  readonly layout: Layout;
  readonly chunks: readonly Chunk[];
  private readonly resident = new Map<Chunk, GpuBuffer>();
  private streaming: GpuBuffer | undefined;

  private constructor(
    private readonly batch: Batch,
    private readonly host: Logits | undefined,
    private readonly device: DeviceLogits | undefined,
    readonly positions: Uint32Array,
    /** Keep every uploaded chunk for a second pass (the fused loss), instead of streaming through one buffer. */
    private readonly keep: boolean,
  ) {
    const context = batch.context;
    const limit = { bytes: context.bindingLimit, source: context.bindingLimitSource };
    if (host !== undefined) {
      this.layout = hostLayout(host);
      // Streamed in pieces of STREAM_BYTES, or of one row where a row is larger (up to the binding limit).
      const bytes = keep ? limit.bytes : Math.min(limit.bytes, Math.max(STREAM_BYTES, this.layout.rowBytes));
      this.chunks = planChunks(this.layout, positions, { ...limit, bytes, slack: 0, onDevice: false });
    } else {
      this.layout = deviceLayout(device!);
      // A binding starts at a multiple of the alignment; its start is a multiple of 4 bytes.
      const slack = context.storageAlignment - 4;
      this.chunks = planChunks(this.layout, positions, { ...limit, slack, onDevice: true });
    }
  }

  static fromHost(batch: Batch, logits: Logits, positions: Uint32Array, keep: boolean): LogitsSource {
    return new LogitsSource(batch, logits, undefined, positions, keep);
  }

  static fromDevice(batch: Batch, logits: DeviceLogits, positions: Uint32Array): LogitsSource {
    return new LogitsSource(batch, undefined, logits, positions, false);
  }

  /** The binding of `chunk`, uploading it first for host logits (call inside a guard, in dispatch order). */
  bind(chunk: Chunk): Binding {
    if (this.device !== undefined)
      return deviceBinding(this.batch.context, this.device.buffer, this.device.byteOffset ?? 0, this.layout, chunk);
    const size = (chunk.rowEnd - chunk.rowStart) * this.layout.rowBytes;
    let buffer = this.keep ? this.resident.get(chunk) : undefined;
    if (buffer === undefined) {
      if (this.keep || this.streaming === undefined) {
        const largest = Math.max(...this.chunks.map((c) => (c.rowEnd - c.rowStart) * this.layout.rowBytes));
        buffer = this.batch.buffer(this.keep ? size : largest, BufferUsage.STORAGE | BufferUsage.COPY_DST);
        if (this.keep) this.resident.set(chunk, buffer);
        else this.streaming = buffer;
      } else {
        buffer = this.streaming;
      }
      uploadRows(this.batch, buffer, this.host!, this.layout, chunk, this.positions, () =>
        this.batch.context.scratch(this.largestChunkFloats()),
      );
    }
    return { buffer, offset: 0, size, shift: 0 };
  }

  private largestChunkFloats(): number {
    return Math.max(...this.chunks.map((c) => (c.rowEnd - c.rowStart) * this.layout.stride * 4));
  }
}

export function bindGroup(
  batch: Batch,
  pipeline: GpuComputePipeline,
  names: readonly string[],
  resources: Record<string, GpuBufferBinding>,
): unknown {
  return batch.device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: names.map((name, binding) => {
      const resource = resources[name];
      if (resource === undefined) throw new Error(`internal error: no buffer for binding "${name}"`);
      return { binding, resource };
    }),
  });
}

/** Positions whose logits are read: all, or those the mask selects (and, backward, with something flowing back). */
export function listPositions(count: number, keep: (i: number) => boolean): Uint32Array {
  let n = 0;
  for (let i = 0; i < count; i++) if (keep(i)) n++;
  const out = new Uint32Array(n);
  let k = 0;
  for (let i = 0; i < count; i++) if (keep(i)) out[k++] = i;
  return out;
}

/** Token ids as u32, 0 at positions that are not read (their ids may be anything, −1 for padding). */
export function tokenIds(ids: ArrayLike<number>, positions: Uint32Array, count: number): Uint32Array {
  const out = new Uint32Array(count);
  for (const i of positions) out[i] = ids[i]!;
  return out;
}

/** The per-position buffers of a forward pass: tokens and positions in, statistics (and log Σ) out. */
export interface ForwardBuffers {
  readonly tokens: GpuBuffer;
  readonly positions: GpuBuffer;
  /** vec4 per position: (shift, logp, entropy, flag); see ROW_STATISTICS. */
  readonly stats: GpuBuffer;
  /** vec2 per position: (log Σ, the token's logit); the webgpu backend's passes have it, tfjs's do not. */
  readonly sums?: GpuBuffer | undefined;
}

/**
 * The forward pass over every chunk of `source`: stats[pos] = (shift, logp, entropy, flag) and, with `sums`,
 * sums[pos] = (log Σ, token logit) for each listed position. Per-position buffers hold one entry per position of the
 * whole batch.
 */
export async function encodeForward(
  batch: Batch,
  source: LogitsSource,
  buffers: ForwardBuffers,
  inverseTemperature: number,
): Promise<void> {
  const form = { lanes: source.layout.lanes, sums: buffers.sums !== undefined };
  const pipeline = await batch.context.pipeline(forwardKey(form.lanes, form.sums), () => forwardKernel(form));
  dispatchForward(batch, pipeline, source, buffers, inverseTemperature);
}

export const forwardKey = (lanes: 1 | 4, sums = false) => `forward-${lanes}${sums ? "-sums" : ""}`;

/** encodeForward with its pipeline at hand: synchronous (the tfjs ops need that). */
export function dispatchForward(
  batch: Batch,
  pipeline: GpuComputePipeline,
  source: LogitsSource,
  buffers: ForwardBuffers,
  inverseTemperature: number,
): void {
  const { context } = batch;
  const params = new ParamSlots(batch, source.chunks.length, LOGITS_PARAM_WORDS);
  const names = forwardBindings({ lanes: source.layout.lanes, sums: buffers.sums !== undefined });
  source.chunks.forEach((chunk, k) => {
    batch.guard(() => {
      const logits = source.bind(chunk);
      const count = chunk.entryEnd - chunk.entryStart;
      const [x, y] = grid(context, count);
      const group = bindGroup(batch, pipeline, names, {
        params: params.write(
          k,
          logitsParams(count, chunk.entryStart, chunk.rowStart, source.layout, logits.shift, 0, x, inverseTemperature),
        ),
        logits,
        positions: { buffer: buffers.positions },
        tokens: { buffer: buffers.tokens },
        stats: { buffer: buffers.stats },
        ...(buffers.sums !== undefined ? { sums: { buffer: buffers.sums } } : {}),
      });
      submitDispatch(batch, pipeline, group, x, y);
    });
  });
}

function submitDispatch(batch: Batch, pipeline: GpuComputePipeline, group: unknown, x: number, y: number): void {
  const encoder = batch.device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(x, y);
  pass.end();
  batch.device.queue.submit([encoder.finish()]);
}

/**
 * Where the backward pass writes: a buffer laid out like device logits, or one chunk at a time for the host. A
 * device buffer is `fresh` when WebGPU zeroed it at creation; otherwise (the caller's, reused) the rows the pass
 * will not write are cleared first.
 */
export type GradientTarget =
  | { readonly kind: "device"; readonly buffer: GpuBuffer; readonly fresh: boolean }
  | { readonly kind: "host"; readonly out: Float32Array | Float64Array };

/** Zeroes the rows of a reused device gradient that no listed position will write (one clear per run of them). */
export function clearUnlistedRows(
  batch: Batch,
  target: GradientTarget,
  positions: Uint32Array,
  count: number,
  rowBytes: number,
): void {
  if (target.kind !== "device" || target.fresh) return;
  const runs: [number, number][] = [];
  let next = 0;
  for (let k = 0; k <= positions.length; k++) {
    const i = k < positions.length ? positions[k]! : count;
    if (i > next) runs.push([next, i]);
    next = i + 1;
  }
  if (runs.length === 0) return;
  batch.submit((encoder) => {
    for (const [start, end] of runs) encoder.clearBuffer(target.buffer, start * rowBytes, (end - start) * rowBytes);
  });
}

export interface BackwardBuffers {
  readonly tokens: GpuBuffer;
  readonly positions: GpuBuffer;
  /** Read (saved statistics, whose flags the pass may set) or written (`withStatistics`). */
  readonly stats: GpuBuffer;
  readonly upstream: GpuBuffer;
  /** log Σ per position beside saved statistics (`savedSums`). */
  readonly sums?: GpuBuffer | undefined;
}

export interface BackwardOptions {
  readonly inverseTemperature: number;
  readonly withStatistics: boolean;
  readonly withEntropy: boolean;
  /** Saved statistics come with `sums` (see BackwardForm). */
  readonly savedSums?: boolean | undefined;
}

export const backwardKey = (lanes: 1 | 4, o: BackwardOptions) =>
  `backward-${lanes}-${o.withStatistics}-${o.withEntropy}${o.savedSums === true ? "-sums" : ""}`;

/**
 * The backward pass over every chunk: the gradient of each listed position, from `upstream[pos]` (g at .x, h at
 * .w) and either `stats` (saved: shift, logp, H, flag; see BackwardForm) or, with `withStatistics`, statistics
 * computed here (and written to `stats`).
 */
export async function encodeBackward(
  batch: Batch,
  source: LogitsSource,
  buffers: BackwardBuffers,
  options: BackwardOptions,
  target: GradientTarget,
): Promise<void> {
  const { context } = batch;
  const { layout, chunks } = source;
  const form = {
    lanes: layout.lanes,
    withStatistics: options.withStatistics,
    withEntropy: options.withEntropy,
    savedSums: options.savedSums,
  };
  const pipeline = await context.pipeline(backwardKey(layout.lanes, options), () => backwardKernel(form));
  if (target.kind === "device") {
    dispatchBackward(batch, pipeline, source, buffers, options, target.buffer);
    return;
  }
  const params = new ParamSlots(batch, chunks.length, LOGITS_PARAM_WORDS);
  const largest = Math.max(0, ...chunks.map((c) => (c.rowEnd - c.rowStart) * layout.rowBytes));
  const hostOut = batch.buffer(largest, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
  const reads: Promise<void>[] = [];
  for (const [k, chunk] of chunks.entries()) {
    // At most two chunks' results in flight: their staging buffers are as large as the chunks.
    if (reads.length >= 2) await reads.shift();
    const out: Binding = {
      buffer: hostOut,
      offset: 0,
      size: (chunk.rowEnd - chunk.rowStart) * layout.rowBytes,
      shift: 0,
    };
    batch.guard(() => backwardChunk(batch, pipeline, params, k, source, chunk, buffers, options, out));
    reads.push(readRows(batch, hostOut, layout, chunk, source.positions, target.out));
  }
  await Promise.all(reads);
}

/**
 * encodeBackward into a device buffer laid out like the logits (from byte 0), with its pipeline at hand: synchronous.
 */
export function dispatchBackward(
  batch: Batch,
  pipeline: GpuComputePipeline,
  source: LogitsSource,
  buffers: BackwardBuffers,
  options: BackwardOptions,
  gradient: GpuBuffer,
): void {
  const params = new ParamSlots(batch, source.chunks.length, LOGITS_PARAM_WORDS);
  source.chunks.forEach((chunk, k) => {
    batch.guard(() =>
      backwardChunk(
        batch,
        pipeline,
        params,
        k,
        source,
        chunk,
        buffers,
        options,
        deviceBinding(batch.context, gradient, 0, source.layout, chunk),
      ),
    );
  });
}

function backwardChunk(
  batch: Batch,
  pipeline: GpuComputePipeline,
  params: ParamSlots,
  k: number,
  source: LogitsSource,
  chunk: Chunk,
  buffers: BackwardBuffers,
  options: BackwardOptions,
  out: Binding,
): void {
  const logits = source.bind(chunk);
  const count = chunk.entryEnd - chunk.entryStart;
  const [x, y] = grid(batch.context, count);
  const group = bindGroup(batch, pipeline, backwardBindings(options), {
    params: params.write(
      k,
      logitsParams(
        count,
        chunk.entryStart,
        chunk.rowStart,
        source.layout,
        logits.shift,
        out.shift,
        x,
        options.inverseTemperature,
      ),
    ),
    logits,
    positions: { buffer: buffers.positions },
    tokens: { buffer: buffers.tokens },
    stats: { buffer: buffers.stats },
    upstream: { buffer: buffers.upstream },
    out,
    ...(buffers.sums !== undefined ? { sums: { buffer: buffers.sums } } : {}),
  });
  submitDispatch(batch, pipeline, group, x, y);
}

/** Copies the listed rows of a host chunk's gradient into `out` ([positions, V], unpadded). */
function readRows(
  batch: Batch,
  buffer: GpuBuffer,
  layout: Layout,
  chunk: Chunk,
  positions: Uint32Array,
  out: Float32Array | Float64Array,
): Promise<void> {
  const first = positions[chunk.entryStart]! - chunk.rowStart;
  const last = positions[chunk.entryEnd - 1]! - chunk.rowStart + 1;
  const rowFloats = layout.stride * layout.lanes;
  return batch.read(buffer, first * layout.rowBytes, (last - first) * layout.rowBytes, (bytes) => {
    const values = new Float32Array(bytes);
    const { vocab } = layout;
    for (let i = chunk.entryStart; i < chunk.entryEnd; i++) {
      const position = positions[i]!;
      const at = (position - chunk.rowStart - first) * rowFloats;
      out.set(values.subarray(at, at + vocab), position * vocab);
    }
  });
}

/** Per-position results read back: the statistics vec4 and, when the pass wrote them, the sums vec2. */
export interface Statistics {
  readonly stats: Float32Array;
  readonly sums: Float32Array | undefined;
}

/** Reads stats (and sums) back: entries of positions that were not listed are 0. */
export async function readStatistics(
  batch: Batch,
  buffers: { readonly stats: GpuBuffer; readonly sums?: GpuBuffer | undefined },
  positions: Uint32Array,
  count: number,
): Promise<Statistics> {
  const stats = new Float32Array(count * 4);
  const sums = buffers.sums === undefined ? undefined : new Float32Array(count * 2);
  if (positions.length > 0) {
    await Promise.all([
      batch.read(buffers.stats, 0, count * 16, (bytes) => stats.set(new Float32Array(bytes, 0, count * 4))),
      buffers.sums === undefined || sums === undefined
        ? undefined
        : batch.read(buffers.sums, 0, count * 8, (bytes) => sums.set(new Float32Array(bytes, 0, count * 2))),
    ]);
  }
  return { stats, sums };
}

/**
 * Throws for the first listed position the kernels flagged (STATISTICS_FLAGS): the reference's error for logits
 * holding NaN or +Infinity or only −Infinity, or, for saved statistics that do not describe the logits, one at
 * options.saved.
 */
export function requireValidStatistics(stats: Float32Array, positions: Uint32Array, cols: number): void {
  for (const i of positions) {
    const flag = stats[4 * i + 3]! & ~STATISTICS_FLAGS.recompute;
    if (flag === 0) continue;
    if ((flag & STATISTICS_FLAGS.invalid) !== 0) throw badLogits(i, cols, NaN);
    if ((flag & STATISTICS_FLAGS.empty) !== 0) throw badLogits(i, cols, -Infinity);
    throw savedMismatch(i, cols, stats[4 * i + 1]!);
  }
}

/**
 * The reference's TokenLogProbs from the forward statistics, in float64: logsumexp = shift/τ + log Σ, and
 * logp = (z_token − shift)/τ − log Σ, which stays finite (and exact) where the float32 kernel's logp overflowed. 1/τ
 * is the kernels' float32 one, so that a backward pass over these statistics (`savedStatistics`) is exact.
 */
export function toTokenLogProbs(
  { stats, sums }: Statistics,
  positions: Uint32Array,
  shape: readonly [number, number],
  temperature: number,
  withEntropy: boolean,
): TokenLogProbs {
  if (sums === undefined) throw new Error("internal error: the forward pass wrote no sums");
  const count = shape[0] * shape[1];
  const logp = new Float64Array(count);
  const logSumExp = new Float64Array(count).fill(NaN);
  const entropy = withEntropy ? new Float64Array(count) : undefined;
  const inverse = float32InverseTemperature(temperature);
  for (const i of positions) {
    const shift = stats[4 * i]!;
    const logSum = sums[2 * i]!;
    logSumExp[i] = shift * inverse + logSum;
    logp[i] = (sums[2 * i + 1]! - shift) * inverse - logSum;
    if (entropy !== undefined) entropy[i] = stats[4 * i + 2]!;
  }
  return { logp, entropy, logSumExp, temperature, shape: [shape[0], shape[1]] };
}

/**
 * A caller's saved statistics as the backward kernel reads them (`savedSums`): stats[pos] = (shift, ·, H, flag) and
 * sums[pos] = (log Σ, ·), from each position's logsumexp (float32.ts, savedShift). Where that cannot be exact (huge
 * logits, a value that is not finite) the position is flagged RECOMPUTE and the kernel computes its statistics
 * from the logits.
 */
export function savedStatistics(
  saved: TokenLogProbs,
  positions: Uint32Array,
  count: number,
  temperature: number,
): { stats: Float32Array; sums: Float32Array } {
  const stats = new Float32Array(count * 4);
  const sums = new Float32Array(count * 2);
  for (const i of positions) {
    const entropy = saved.entropy?.[i] ?? 0;
    const exact = savedShift(saved.logSumExp[i]!, entropy, temperature);
    if (exact === undefined) {
      stats[4 * i + 3] = STATISTICS_FLAGS.recompute;
      continue;
    }
    stats[4 * i] = exact.shift;
    stats[4 * i + 2] = entropy;
    sums[2 * i] = exact.logSum;
  }
  return { stats, sums };
}

export function hostSource(batch: Batch, l: Logits, positions: Uint32Array, keep: boolean): LogitsSource {
  return LogitsSource.fromHost(batch, l, positions, keep);
}

export function deviceSource(batch: Batch, logits: DeviceLogits, positions: Uint32Array): LogitsSource {
  return LogitsSource.fromDevice(batch, logits, positions);
}

export type { DeviceContext };
