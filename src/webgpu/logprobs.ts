/**
 * Token log-probs and their backward pass on a WebGPU device: the host side of logprobs.wgsl.ts and
 * backward.wgsl.ts, for logits given as typed arrays (uploaded chunk by chunk, results read back) or already on
 * the device (bound in place; the gradient stays there).
 */
import { badLogits, type Logits, type TokenLogProbs } from "../backends/contract.js";
import { backwardKernel, BACKWARD_BINDINGS } from "./backward.wgsl.js";
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
import { forwardKernel, FORWARD_BINDINGS, LOGITS_PARAM_WORDS } from "./logprobs.wgsl.js";

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
    if (host !== undefined) {
      this.layout = hostLayout(host);
      const limit = keep ? context.bindingLimit : Math.min(context.bindingLimit, STREAM_BYTES);
      this.chunks = planChunks(this.layout, positions, Math.max(limit, this.layout.rowBytes), 0);
    } else {
      this.layout = deviceLayout(device!);
      this.chunks = planChunks(this.layout, positions, context.bindingLimit, context.storageAlignment);
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

/**
 * The forward pass over every chunk of `source`: stats[pos] = (lse, logp, entropy, flag) for each listed position.
 * `stats` and `tokens` hold one entry per position of the whole batch.
 */
export async function encodeForward(
  batch: Batch,
  source: LogitsSource,
  tokens: GpuBuffer,
  positions: GpuBuffer,
  stats: GpuBuffer,
  inverseTemperature: number,
): Promise<void> {
  const lanes = source.layout.lanes;
  const pipeline = await batch.context.pipeline(forwardKey(lanes), () => forwardKernel({ lanes }));
  dispatchForward(batch, pipeline, source, { tokens, positions, stats }, inverseTemperature);
}

export const forwardKey = (lanes: 1 | 4) => `forward-${lanes}`;

/** encodeForward with its pipeline at hand: synchronous (the tfjs ops need that). */
export function dispatchForward(
  batch: Batch,
  pipeline: GpuComputePipeline,
  source: LogitsSource,
  buffers: { tokens: GpuBuffer; positions: GpuBuffer; stats: GpuBuffer },
  inverseTemperature: number,
): void {
  const { context } = batch;
  const params = new ParamSlots(batch, source.chunks.length, LOGITS_PARAM_WORDS);
  source.chunks.forEach((chunk, k) => {
    batch.guard(() => {
      const logits = source.bind(chunk);
      const count = chunk.entryEnd - chunk.entryStart;
      const [x, y] = grid(context, count);
      const group = bindGroup(batch, pipeline, FORWARD_BINDINGS, {
        params: params.write(
          k,
          logitsParams(count, chunk.entryStart, chunk.rowStart, source.layout, logits.shift, 0, x, inverseTemperature),
        ),
        logits,
        positions: { buffer: buffers.positions },
        tokens: { buffer: buffers.tokens },
        stats: { buffer: buffers.stats },
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
  readonly stats: GpuBuffer;
  readonly upstream: GpuBuffer;
}

export interface BackwardOptions {
  readonly inverseTemperature: number;
  readonly withStatistics: boolean;
  readonly withEntropy: boolean;
}

export const backwardKey = (lanes: 1 | 4, o: BackwardOptions) =>
  `backward-${lanes}-${o.withStatistics}-${o.withEntropy}`;

/**
 * The backward pass over every chunk: the gradient of each listed position, from `upstream[pos]` (g at .x, h at
 * .w) and either `stats` (lse, H) or, with `withStatistics`, statistics computed here (and written to `stats`).
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
  const form = { lanes: layout.lanes, withStatistics: options.withStatistics, withEntropy: options.withEntropy };
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
  const group = bindGroup(batch, pipeline, BACKWARD_BINDINGS, {
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

/**
 * Reads stats back and turns them into the reference's TokenLogProbs, throwing the reference's error for bad logits.
 */
export async function readStatistics(
  batch: Batch,
  stats: GpuBuffer,
  positions: Uint32Array,
  count: number,
): Promise<Float32Array> {
  const values = new Float32Array(count * 4);
  if (positions.length > 0)
    await batch.read(stats, 0, count * 16, (bytes) => values.set(new Float32Array(bytes, 0, count * 4)));
  return values;
}

/** Throws badLogits for the first listed position whose statistics are invalid (flags from the kernel). */
export function requireFiniteStatistics(stats: Float32Array, positions: Uint32Array, cols: number): void {
  for (const i of positions) {
    const flag = stats[4 * i + 3]!;
    if (flag !== 0) throw badLogits(i, cols, (flag & 1) !== 0 ? NaN : -Infinity);
  }
}

export function toTokenLogProbs(
  stats: Float32Array,
  positions: Uint32Array,
  shape: readonly [number, number],
  temperature: number,
  withEntropy: boolean,
): TokenLogProbs {
  const count = shape[0] * shape[1];
  const logp = new Float64Array(count);
  const logSumExp = new Float64Array(count).fill(NaN);
  const entropy = withEntropy ? new Float64Array(count) : undefined;
  for (const i of positions) {
    logSumExp[i] = stats[4 * i]!;
    logp[i] = stats[4 * i + 1]!;
    if (entropy !== undefined) entropy[i] = stats[4 * i + 2]!;
  }
  return { logp, entropy, logSumExp, temperature, shape: [shape[0], shape[1]] };
}

export function hostSource(batch: Batch, l: Logits, positions: Uint32Array, keep: boolean): LogitsSource {
  return LogitsSource.fromHost(batch, l, positions, keep);
}

export function deviceSource(batch: Batch, logits: DeviceLogits, positions: Uint32Array): LogitsSource {
  return LogitsSource.fromDevice(batch, logits, positions);
}

export type { DeviceContext };
