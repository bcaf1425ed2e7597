/**
 * The wasm backend's engine: the kernel, its threads and the logits that live in its memory, and how a call's
 * positions go through that memory: in chunks staged from JavaScript memory (or in place, for resident logits),
 * each chunk's positions split among the threads.
 */
import { badLogits, invalid, type Logits, logitsOverflow } from "../backends/contract.js";
import type { Allocation, WasmKernel } from "./kernel.js";
import type { KernelCall, ThreadPool } from "./pool.js";

/** The kernel, its threads, and the queue that runs one call at a time over its memory. */
export interface Engine {
  readonly kernel: WasmKernel;
  readonly pool: ThreadPool;
  readonly chunkBytes: number;
  /** Logits that live in the kernel's memory, by the views handed out (WasmLogitsBuffer). */
  readonly resident: WeakMap<Float32Array, Resident>;
  /** The calling thread's share of a chunk's positions while it stages the next chunk (split). */
  readonly balance: { own: number };
}

/**
 * Runs `work` once the calls before it are done (they share the scratch memory), with the engine, or rejects with
 * WasmUnavailableError; called after the inputs are validated.
 */
export type Exclusive = <T>(work: (engine: Engine) => Promise<T>) => Promise<T>;

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

// ---------------------------------------------------------------------------------------------------------------
// Logits in the kernel's memory

/** A WasmLogitsBuffer's regions: its logits, then their gradient, and views of them. */
export interface Resident {
  readonly allocation: Allocation;
  readonly gradientOffset: number;
  released: boolean;
  /** Counts the calls that wrote the gradient: a gradient kept for later is still its call's while this is unchanged. */
  writes: number;
  /** The views of the current memory buffer, made again when growth (not shared: one thread) has replaced it. */
  views(field?: string): { readonly data: Float32Array; readonly gradient: Float32Array };
}

export function allocateLogits(engine: Engine, shape: readonly [number, number, number]): WasmLogitsBuffer {
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
    writes: 0,
    views: (field = "logits.data") => {
      if (resident.released) throw invalid(field, "belongs to a released WasmLogitsBuffer: allocate another");
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
      return resident.views("gradient").gradient;
    },
    release() {
      if (resident.released) return;
      resident.released = true;
      kernel.free(allocation);
    },
  };
}

/** The resident logits these are (the same view), or undefined for logits in JavaScript memory. */
export function residentOf(engine: Engine, l: Logits): Resident | undefined {
  if (!(l.data instanceof Float32Array)) return undefined;
  const resident = engine.resident.get(l.data);
  if (resident?.released) throw invalid("logits.data", "belongs to a released WasmLogitsBuffer: allocate another");
  return resident;
}

// ---------------------------------------------------------------------------------------------------------------
// Chunks of positions through the kernel's memory, split among threads

/** Positions [start, end) of the logits, one chunk. */
export interface Chunk {
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

/**
 * Copies the chunk's logits into the staging buffer, rounded to float32 (float64 input was checked to fit), or
 * widened from bfloat16 bits.
 */
function stage(l: Logits, chunk: Chunk, into: Float32Array): void {
  const from = chunk.start * l.vocab;
  const to = chunk.end * l.vocab;
  const data = l.data;
  if (l.bfloat16 !== undefined) {
    const bits = l.bfloat16;
    const out = new Uint32Array(into.buffer, into.byteOffset, to - from);
    for (let k = from; k < to; k++) out[k - from] = bits[k]! << 16;
  } else if (data instanceof Float32Array || data instanceof Float64Array) into.set(data.subarray(from, to));
  else for (let k = from; k < to; k++) into[k - from] = data[k]!;
}

/** A chunk with its logits in the kernel's memory, and its scratch regions. */
export interface Placed<A> {
  readonly chunk: Chunk;
  readonly at: A;
  /** Byte offset of the chunk's logits. */
  readonly logits: number;
  /** Stages the next chunk, for split to run while the workers compute this one; undefined when none is due. */
  readonly meanwhile: (() => void) | undefined;
}

/**
 * The chunks of `l`, each with its logits in the kernel's memory: resident logits where they are, logits in
 * JavaScript memory staged into `layout`'s region. With worker threads and more than one chunk, two regions take
 * turns: the calling thread stages the next chunk while the workers compute this one (Placed.meanwhile), and takes
 * fewer of this chunk's positions for it (split). Each chunk's work must be done before the next is asked for.
 */
export function* placedChunks<A extends { readonly logits: number }>(
  engine: Engine,
  l: Logits,
  resident: Resident | undefined,
  layout: (count: number, from?: number) => A,
): Generator<Placed<A>> {
  const { kernel } = engine;
  const chunks = chunksOf(l, engine.chunkBytes, resident);
  const stageAt = (chunk: Chunk, at: A) => stage(l, chunk, kernel.f32(at.logits, (chunk.end - chunk.start) * l.vocab));
  if (resident !== undefined || chunks.length < 2 || engine.pool.size < 2) {
    for (const chunk of chunks) {
      const at = layout(chunk.end - chunk.start);
      if (resident === undefined) stageAt(chunk, at);
      const logits = resident === undefined ? at.logits : resident.allocation.offset + chunk.start * l.vocab * 4;
      yield { chunk, at, logits, meanwhile: undefined };
    }
    return;
  }
  const per = chunks[0]!.end - chunks[0]!.start;
  const even = layout(per);
  const odd = layout(per, kernel.reservedEnd);
  const slot = (k: number) => (k % 2 === 0 ? even : odd);
  let staged = 0;
  stageAt(chunks[0]!, even);
  for (let k = 0; k < chunks.length; k++) {
    if (staged < k) stageAt(chunks[k]!, slot(k));
    const next = chunks[k + 1];
    const meanwhile =
      next === undefined
        ? undefined
        : () => {
            stageAt(next, slot(k + 1));
            staged = k + 1;
          };
    yield { chunk: chunks[k]!, at: slot(k), logits: slot(k).logits, meanwhile };
  }
}

/**
 * One kernel over `count` positions, split into contiguous ranges among the pool's threads. `args(first, n)` gives
 * the arguments for positions [first, first + n) of the chunk.
 */
export async function split(
  engine: Engine,
  fn: KernelCall["fn"],
  count: number,
  args: (first: number, n: number) => number[],
  meanwhile?: () => void,
): Promise<void> {
  const threads = Math.min(engine.pool.size, count);
  // With staging to do meanwhile, the calling thread takes fewer positions (engine.balance), else an equal share.
  const own =
    meanwhile === undefined || threads < 2 ? count / threads : count * Math.min(engine.balance.own, 1 / threads);
  const firstOwn = Math.round(own);
  const calls: KernelCall[] = [{ fn, args: args(0, firstOwn) }];
  for (let k = 1; k < threads; k++) {
    const first = firstOwn + Math.floor(((count - firstOwn) * (k - 1)) / (threads - 1));
    const next = firstOwn + Math.floor(((count - firstOwn) * k) / (threads - 1));
    calls.push({ fn, args: args(first, next - first) });
  }
  const took = await engine.pool.run(calls, meanwhile);
  if (meanwhile !== undefined && threads > 1) rebalance(engine.balance, took, firstOwn, count, threads);
}

/**
 * The calling thread's share of a chunk's positions when it also stages the next chunk: s + f·C = (1 − f)·C/(N − 1)
 * (its staging plus its share of the work C, against each of N − 1 workers' share) gives
 * f = (C − s·(N − 1))/(C·N), from the last chunk's staging time and the calling thread's time per position.
 */
function rebalance(
  balance: { own: number },
  took: { meanwhile: number; own: number },
  own: number,
  count: number,
  threads: number,
): void {
  if (own === 0 || took.own <= 0) return;
  const work = (took.own / own) * count;
  // At least a quarter of an equal share, so that the calling thread's time per position stays measured.
  const least = 1 / (4 * threads);
  balance.own = Math.max(least, Math.min(1 / threads, (work - took.meanwhile * (threads - 1)) / (work * threads)));
}

export type Offsets<N extends number, T extends number[] = []> = T["length"] extends N ? T : Offsets<N, [...T, number]>;

/** One position's statistics from the kernel's: log Σ, logsumexp and entropy, in float64, or the reference's error. */
export function positionStatistics(
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
