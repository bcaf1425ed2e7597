/**
 * Where a dispatch finds its logits: how rows are laid out (vec4 or f32 loads, the row stride), how positions are
 * cut into chunks whose binding stays under the device's limits, and how a chunk gets onto the device — uploaded
 * from typed arrays (host logits), or bound as a range of a buffer that is already there (device logits).
 */
import { invalid } from "../backends/contract.js";
import type { Logits } from "../backends/contract.js";
import { alignUp, type Batch, type DeviceContext } from "./context.js";
import { BufferUsage, type GpuBuffer } from "./gpu.js";
import { LOGITS_PARAM_WORDS } from "./logprobs.wgsl.js";

/** Logits already on the device: float32, row-major [B, T, V], from `byteOffset` (a multiple of 4) on. */
export interface DeviceLogits {
  /** The buffer holding them; it needs STORAGE usage. */
  readonly buffer: GpuBuffer;
  /** [B, T, V]. */
  readonly shape: readonly [number, number, number];
  /** Where they start in `buffer`, in bytes (default 0). */
  readonly byteOffset?: number | undefined;
}

export interface Layout {
  readonly lanes: 1 | 4;
  /** Vectors per row. */
  readonly stride: number;
  readonly rowBytes: number;
  readonly vocab: number;
  readonly positions: number;
}

export interface Chunk {
  readonly rowStart: number;
  readonly rowEnd: number;
  /** The listed positions of this chunk are entries [entryStart, entryEnd) of the positions array. */
  readonly entryStart: number;
  readonly entryEnd: number;
}

export interface Binding {
  readonly buffer: GpuBuffer;
  readonly offset: number;
  readonly size: number;
  /** Vectors between the binding's start and row `rowStart`. */
  readonly shift: number;
}

/** Host logits are always read as vec4: rows are padded to a multiple of 4 with −Infinity on the way up. */
export function hostLayout(l: Logits): Layout {
  const stride = Math.ceil(l.vocab / 4);
  return { lanes: 4, stride, rowBytes: stride * 16, vocab: l.vocab, positions: l.rows * l.cols };
}

export function deviceLayout(logits: DeviceLogits): Layout {
  const [rows, cols, vocab] = logits.shape;
  const offset = logits.byteOffset ?? 0;
  const lanes = vocab % 4 === 0 && offset % 16 === 0 ? 4 : 1;
  return { lanes, stride: vocab / lanes, rowBytes: vocab * 4, vocab, positions: rows * cols };
}

/** Checks a DeviceLogits (shape, offset, buffer size and usage) as readLogits checks typed ones. */
export function readDeviceLogits(logits: DeviceLogits): Logits {
  if (typeof logits !== "object" || logits === null || typeof logits.buffer !== "object" || logits.buffer === null) {
    throw invalid("logits", "expected { buffer: GPUBuffer, shape: [B, T, V], byteOffset? }");
  }
  const shape = logits.shape;
  if (
    !Array.isArray(shape) ||
    shape.length !== 3 ||
    !shape.every((n) => Number.isInteger(n) && n >= 0) ||
    shape[2] === 0
  ) {
    throw invalid("logits.shape", "expected [B, T, V]: non-negative integers, V > 0");
  }
  const offset = logits.byteOffset ?? 0;
  if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0)
    throw invalid("logits.byteOffset", "must be a non-negative multiple of 4");
  const [rows, cols, vocab] = shape as [number, number, number];
  const needed = offset + rows * cols * vocab * 4;
  if (logits.buffer.size < needed)
    throw invalid(
      "logits.buffer",
      `holds ${logits.buffer.size} bytes; shape [${rows}, ${cols}, ${vocab}] from byte ${offset} needs ${needed}`,
    );
  if ((logits.buffer.usage & BufferUsage.STORAGE) === 0)
    throw invalid("logits.buffer", "must have STORAGE usage (GPUBufferUsage.STORAGE)");
  return { data: [], rows, cols, vocab };
}

/** How many bytes one binding of logits may take, and why (for the error when a row does not fit). */
export interface BindingBudget {
  readonly bytes: number;
  /** Bytes a binding may need before its first row: device logits are bound from an aligned offset. */
  readonly slack: number;
  /** What sets `bytes` (DeviceContext.bindingLimitSource). */
  readonly source: string;
  /** Device logits (bound in place) or typed arrays (uploaded, rows padded to a multiple of 4 logits). */
  readonly onDevice: boolean;
}

/**
 * Contiguous position ranges whose rows fit one binding (`budget`), each with the range of `positions`
 * (ascending) that falls in it; chunks without any are left out.
 */
export function planChunks(layout: Layout, positions: Uint32Array, budget: BindingBudget): Chunk[] {
  const perChunk = Math.floor((budget.bytes - budget.slack) / layout.rowBytes);
  if (perChunk < 1) throw rowTooLarge(layout, budget);
  const chunks: Chunk[] = [];
  let entry = 0;
  for (let rowStart = 0; rowStart < layout.positions && entry < positions.length; rowStart += perChunk) {
    const rowEnd = Math.min(layout.positions, rowStart + perChunk);
    const entryStart = entry;
    while (entry < positions.length && positions[entry]! < rowEnd) entry++;
    if (entry > entryStart) chunks.push({ rowStart, rowEnd, entryStart, entryEnd: entry });
  }
  return chunks;
}

/** The error for a vocabulary whose one row does not fit a binding: which binding, which limit, what to do. */
function rowTooLarge(layout: Layout, budget: BindingBudget): Error {
  const row = `one position's ${layout.vocab} logits`;
  const need = budget.onDevice
    ? `${row} (${layout.rowBytes} bytes) do not fit one storage binding: device logits are bound from a multiple of ` +
      `this device's minStorageBufferOffsetAlignment (${budget.slack + 4} bytes), so one row's binding may take ` +
      `${budget.slack} bytes more (${layout.rowBytes + budget.slack} bytes)`
    : `${row} take ${layout.rowBytes} bytes on the device (rows are padded to a multiple of 4 logits), more than fit ` +
      "one storage binding";
  const hint = budget.onDevice ? "; logits passed as a typed array need no alignment slack" : "";
  return invalid("logits", `${need}; one binding may hold ${budget.bytes} bytes, set by ${budget.source}${hint}`);
}

/** The binding of rows [rowStart, rowEnd) of device logits (or of an output laid out like them, from offset 0). */
export function deviceBinding(
  context: DeviceContext,
  buffer: GpuBuffer,
  byteOffset: number,
  layout: Layout,
  chunk: Chunk,
): Binding {
  const start = byteOffset + chunk.rowStart * layout.rowBytes;
  const offset = Math.floor(start / context.storageAlignment) * context.storageAlignment;
  const size = alignUp(start + (chunk.rowEnd - chunk.rowStart) * layout.rowBytes - offset, 4);
  return { buffer, offset, size, shift: (start - offset) / (layout.lanes * 4) };
}

/**
 * Writes the listed rows of host logits for `chunk` into `target` (from byte 0, `layout.stride` vec4 per row,
 * padded with −Infinity), converting to float32 where needed. Float32 rows of a vocabulary divisible by 4 go up
 * straight from the caller's array, one write per run of consecutive listed rows; others through `scratch`.
 */
export function uploadRows(
  batch: Batch,
  target: GpuBuffer,
  l: Logits,
  layout: Layout,
  chunk: Chunk,
  positions: Uint32Array,
  scratch: () => Float32Array,
): void {
  const queue = batch.device.queue;
  const { vocab } = layout;
  const rowFloats = layout.stride * 4;
  const data = l.data;
  if (data instanceof Float32Array && rowFloats === vocab) {
    let i = chunk.entryStart;
    while (i < chunk.entryEnd) {
      const first = positions[i]!;
      let last = first;
      while (i + 1 < chunk.entryEnd && positions[i + 1] === last + 1) last = positions[++i]!;
      i++;
      queue.writeBuffer(
        target,
        (first - chunk.rowStart) * layout.rowBytes,
        data,
        first * vocab,
        (last - first + 1) * vocab,
      );
    }
    return;
  }
  const rows = chunk.rowEnd - chunk.rowStart;
  const buffer = scratch().subarray(0, rows * rowFloats);
  for (let i = chunk.entryStart; i < chunk.entryEnd; i++) {
    const position = positions[i]!;
    const at = (position - chunk.rowStart) * rowFloats;
    const from = position * vocab;
    if (ArrayBuffer.isView(data)) buffer.set((data as Float32Array | Float64Array).subarray(from, from + vocab), at);
    else for (let v = 0; v < vocab; v++) buffer[at + v] = data[from + v]!;
    if (rowFloats > vocab) buffer.fill(-Infinity, at + vocab, at + rowFloats);
  }
  const first = positions[chunk.entryStart]! - chunk.rowStart;
  const last = positions[chunk.entryEnd - 1]! - chunk.rowStart + 1;
  queue.writeBuffer(target, first * layout.rowBytes, buffer, first * rowFloats, (last - first) * rowFloats);
}

/**
 * Uniform blocks of a call's dispatches, one 256-byte-aligned slot each, in one buffer: a dispatch binds its slot.
 * Each slot is written through the queue before the submit that uses it.
 */
export class ParamSlots {
  readonly buffer: GpuBuffer;
  private readonly slotBytes: number;

  constructor(
    private readonly batch: Batch,
    slots: number,
    words: number,
  ) {
    this.slotBytes = alignUp(words * 4, batch.context.uniformAlignment);
    this.buffer = batch.buffer(Math.max(1, slots) * this.slotBytes, BufferUsage.UNIFORM | BufferUsage.COPY_DST);
  }

  /** Writes slot `index` and returns its binding. */
  write(index: number, words: Uint32Array): { buffer: GpuBuffer; offset: number; size: number } {
    this.batch.device.queue.writeBuffer(this.buffer, index * this.slotBytes, words);
    return { buffer: this.buffer, offset: index * this.slotBytes, size: words.byteLength };
  }
}

/** The uniform words of one logits dispatch (LOGITS_PARAMS). */
export function logitsParams(
  count: number,
  entryStart: number,
  rowStart: number,
  layout: Layout,
  shift: number,
  outShift: number,
  groupsX: number,
  inverseTemperature: number,
): Uint32Array {
  const words = new Uint32Array(LOGITS_PARAM_WORDS);
  words.set([count, entryStart, rowStart, layout.stride, shift, outShift, groupsX]);
  new Float32Array(words.buffer)[7] = inverseTemperature;
  return words;
}

/** A 2-D grid for `count` workgroups under maxComputeWorkgroupsPerDimension. */
export function grid(context: DeviceContext, count: number): [number, number] {
  const x = Math.min(count, context.maxGroupsPerDimension);
  return [x, Math.ceil(count / x)];
}
