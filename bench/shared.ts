/**
 * Helpers shared by the benchmarks (bench/loss.bench.ts, bench/backends.bench.ts, bench/wasm.bench.ts): deterministic inputs, the
 * memory probe and timing, and the PyTorch peer (bench/peer_torch.py) with its report types.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import v8 from "node:v8";
import vm from "node:vm";
import { Worker } from "node:worker_threads";

export const MiB = 2 ** 20;
/** Debian's Python, which has python3-torch (the pyenv python3 first on PATH does not). */
export const PYTHON = "/usr/bin/python3";
export const PEER_SCRIPT = fileURLToPath(new URL("./peer_torch.py", import.meta.url));
/** glibc malloc keeping freed memory for reuse instead of unmapping it (the peer's second run in bench:loss). */
export const TUNED_MALLOC = { MALLOC_MMAP_THRESHOLD_: "4294967296", MALLOC_TRIM_THRESHOLD_: "4294967296" } as const;
export type LossDtype = "float64" | "float32";

// ── deterministic inputs ─────────────────────────────────────────────────────────────────────────────────────

/** Marsaglia's xorshift32: fast, deterministic, plenty for benchmark inputs. */
export class XorShift32 {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }

  nextUint32(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }

  /** Uniform in (0, 1). */
  uniform(): number {
    return (this.nextUint32() + 0.5) / 2 ** 32;
  }

  normal(): number {
    return Math.sqrt(-2 * Math.log(this.uniform())) * Math.cos(2 * Math.PI * this.uniform());
  }
}

export interface LossInputs {
  readonly rows: number;
  readonly cols: number;
  readonly logp: Float64Array;
  readonly oldLogp: Float64Array;
  readonly advantages: Float64Array;
  /** 0/1; the loss gets it in the benchmarked dtype, the peer as bytes. */
  readonly mask: Uint8Array;
}

/**
 * A GRPO micro-batch: each row is one rollout with advantage ±1, its valid tokens first and 0-20% padding at the
 * end (10% on average). log π_old is a sampled token's log-prob (mostly near 0); the log-ratio is N(0, 0.05) for
 * 97% of tokens and ±U(0.5, 25) for 3%, so the clip, the dual clip and the ±20 clamp all bind somewhere.
 */
export function lossInputs(rows: number, cols: number, seed: number): LossInputs {
  const rng = new XorShift32(seed);
  const size = rows * cols;
  const logp = new Float64Array(size);
  const oldLogp = new Float64Array(size);
  const mask = new Uint8Array(size);
  const advantages = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    advantages[b] = rng.uniform() < 0.5 ? 1 : -1;
    const length = cols - Math.floor(rng.uniform() * 0.2 * cols);
    for (let t = 0; t < length; t++) {
      const i = b * cols + t;
      const old = 0.7 * Math.log(rng.uniform());
      const large = rng.uniform() < 0.03;
      const logRatio = large ? (rng.uniform() < 0.5 ? -1 : 1) * (0.5 + 24.5 * rng.uniform()) : 0.05 * rng.normal();
      oldLogp[i] = old;
      logp[i] = old + logRatio;
      mask[i] = 1;
    }
  }
  return { rows, cols, logp, oldLogp, advantages, mask };
}

/** The inputs as the benchmarked call receives them: every array in the one dtype. */
export function asDtype(inputs: LossInputs, dtype: LossDtype) {
  const cast = (values: ArrayLike<number>) =>
    dtype === "float64" ? Float64Array.from(values) : Float32Array.from(values);
  const shape = [inputs.rows, inputs.cols] as const;
  return {
    logp: { data: cast(inputs.logp), shape },
    oldLogp: { data: cast(inputs.oldLogp), shape },
    advantages: cast(inputs.advantages),
    mask: { data: cast(inputs.mask), shape },
  };
}

/** Peer input: logp f64 [B·T], oldLogp f64 [B·T], advantages f64 [B], mask u8 [B·T], little-endian. */
export function writeLossInputs(file: string, inputs: LossInputs): void {
  const bytes = (array: Float64Array | Uint8Array) => Buffer.from(array.buffer, array.byteOffset, array.byteLength);
  writeFileSync(
    file,
    Buffer.concat([bytes(inputs.logp), bytes(inputs.oldLogp), bytes(inputs.advantages), bytes(inputs.mask)]),
  );
}

/**
 * ~N(0, scale²) logits, fast: the sum of four 16-bit uniforms (two xorshift32 draws) is close to normal (bounded at
 * ±3.46σ). About 1 s for 131M values.
 */
export function fillLogits(data: Float32Array, scale: number, seed: number): void {
  let x = seed >>> 0 || 0x9e3779b9;
  const mean = 4 * 32767.5;
  const factor = scale / (65536 / Math.sqrt(3));
  for (let i = 0; i < data.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const a = x >>> 0;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const b = x >>> 0;
    data[i] = ((a & 0xffff) + (a >>> 16) + (b & 0xffff) + (b >>> 16) - mean) * factor;
  }
}

/** Position i's token, (i · 2654435761) mod V: the peer uses the same formula, so both read the same tokens. */
export function formulaTokens(
  rows: number,
  cols: number,
  vocab: number,
): { data: Int32Array; shape: readonly [number, number] } {
  const data = new Int32Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = (i * 2654435761) % vocab;
  return { data, shape: [rows, cols] };
}

/** ∂L/∂logp at position i, ((i mod 7) − 2.5) / (B·T) rounded to float32: nonzero everywhere, the peer's values. */
export function formulaGradLogp(rows: number, cols: number): { data: Float64Array; shape: readonly [number, number] } {
  const data = new Float64Array(rows * cols);
  for (let i = 0; i < data.length; i++) data[i] = Math.fround(((i % 7) - 2.5) / (rows * cols));
  return { data, shape: [rows, cols] };
}

// ── measuring ────────────────────────────────────────────────────────────────────────────────────────────────

/** global.gc without --expose-gc on the command line. */
export const gc = (() => {
  v8.setFlagsFromString("--expose-gc");
  return vm.runInNewContext("gc") as () => void;
})();

/** A field of /proc/<pid>/status in KiB: this process's by default. */
export function statusKiB(field: "VmRSS" | "VmHWM", pid: number | "self" = "self"): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${field}:`));
  return line === undefined ? 0 : Number.parseInt(line.split(/\s+/)[1]!, 10);
}

/** Resets the kernel's RSS high-water mark (VmHWM) to the current RSS; false where that is not allowed. */
export function resetHighWaterMark(): boolean {
  try {
    writeFileSync("/proc/self/clear_refs", "5");
    return true;
  } catch {
    return false;
  }
}

/** CPU time of the whole machine (all of /proc/stat's "cpu" line), to tell how busy it was apart from us. */
export function machineCpuTicks(): { busy: number; total: number } {
  const fields = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  const total = fields.reduce((sum, v) => sum + v, 0);
  return { busy: total - idle, total };
}

/**
 * The benchmarked calls are synchronous, so no timer on this thread fires during them: a worker samples the
 * process's RSS every 2 ms into shared memory. The kernel's high-water mark is the exact figure; the sampled peak
 * is a cross-check. arrayBuffers is this thread's own counter, so it is read at call boundaries.
 */
export class MemoryProbe {
  private readonly shared = new Int32Array(new SharedArrayBuffer(8));
  private readonly worker: Worker;
  private arrayBuffersPeak = 0;

  constructor() {
    this.worker = new Worker(
      `const { workerData } = require("node:worker_threads");
       const peak = new Int32Array(workerData);
       setInterval(() => {
         const kib = Math.round(process.memoryUsage.rss() / 1024);
         if (kib > Atomics.load(peak, 0)) Atomics.store(peak, 0, kib);
         Atomics.add(peak, 1, 1);
       }, 2);`,
      { eval: true, workerData: this.shared.buffer },
    );
    this.worker.unref();
  }

  /** Starts a section: returns the RSS it starts from. */
  start(): { baselineMiB: number; hwmReset: boolean; samplesAtStart: number } {
    const baselineMiB = statusKiB("VmRSS") / 1024;
    const hwmReset = resetHighWaterMark();
    Atomics.store(this.shared, 0, 0);
    this.arrayBuffersPeak = 0;
    this.sampleArrayBuffers();
    return { baselineMiB, hwmReset, samplesAtStart: Atomics.load(this.shared, 1) };
  }

  sampleArrayBuffers(): void {
    this.arrayBuffersPeak = Math.max(this.arrayBuffersPeak, process.memoryUsage().arrayBuffers);
  }

  end(started: ReturnType<MemoryProbe["start"]>): MemoryFigures {
    const sampled = Atomics.load(this.shared, 0) / 1024;
    const hwm = started.hwmReset ? statusKiB("VmHWM") / 1024 : 0;
    return {
      baselineRssMiB: started.baselineMiB,
      peakRssMiB: Math.max(hwm, sampled, statusKiB("VmRSS") / 1024),
      sampledPeakRssMiB: sampled,
      samples: Atomics.load(this.shared, 1) - started.samplesAtStart,
      arrayBuffersPeakMiB: this.arrayBuffersPeak / MiB,
      method: started.hwmReset ? "VmHWM after clear_refs" : "sampling every 2 ms",
    };
  }

  async stop(): Promise<void> {
    await this.worker.terminate();
  }
}

export interface MemoryFigures {
  /** RSS at the start of the section (inputs already allocated). */
  readonly baselineRssMiB: number;
  readonly peakRssMiB: number;
  readonly sampledPeakRssMiB: number;
  readonly samples: number;
  /** Highest process.memoryUsage().arrayBuffers seen before and after each call. */
  readonly arrayBuffersPeakMiB: number;
  readonly method: string;
}

export interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
  readonly samplesMs: number[];
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/**
 * Median and best wall time of `runs` calls after `warmup` calls, with the memory of the whole section. With
 * `gcBetween`, each result but the last is dropped and a full GC runs before each call (outside the timing), so a
 * peak is one call's own; the loss runs without it (see README: a full GC deoptimizes policyLoss).
 */
export function measure<T>(
  probe: MemoryProbe,
  fn: () => T,
  warmup: number,
  runs: number,
  gcBetween: boolean,
): { timing: Timing; memory: MemoryFigures; result: T } {
  gc();
  const started = probe.start();
  const samples: number[] = [];
  let result: T | undefined;
  for (let i = 0; i < warmup + runs; i++) {
    if (gcBetween) {
      result = undefined;
      gc();
    }
    probe.sampleArrayBuffers();
    const start = performance.now();
    result = fn();
    const elapsed = performance.now() - start;
    probe.sampleArrayBuffers();
    if (i >= warmup) samples.push(elapsed);
  }
  const memory = probe.end(started);
  return {
    timing: { medianMs: median(samples), minMs: Math.min(...samples), runs, samplesMs: samples },
    memory,
    result: result!,
  };
}

/** measure() for asynchronous work (device backends): the time until the promise settles. */
export async function measureAsync<T>(
  probe: MemoryProbe,
  fn: () => Promise<T>,
  warmup: number,
  runs: number,
  gcBetween: boolean,
): Promise<{ timing: Timing; memory: MemoryFigures; result: T }> {
  gc();
  const started = probe.start();
  const samples: number[] = [];
  let result: T | undefined;
  for (let i = 0; i < warmup + runs; i++) {
    if (gcBetween) {
      result = undefined;
      gc();
    }
    probe.sampleArrayBuffers();
    const start = performance.now();
    result = await fn();
    const elapsed = performance.now() - start;
    probe.sampleArrayBuffers();
    if (i >= warmup) samples.push(elapsed);
  }
  const memory = probe.end(started);
  return {
    timing: { medianMs: median(samples), minMs: Math.min(...samples), runs, samplesMs: samples },
    memory,
    result: result!,
  };
}

// ── the PyTorch peer ─────────────────────────────────────────────────────────────────────────────────────────

export interface PeerTiming {
  readonly median_ms: number;
  readonly min_ms: number;
  readonly runs: number;
  readonly samples_ms: number[];
}

export interface PeerMemory {
  readonly baseline_rss_mb: number;
  readonly peak_rss_mb: number;
  readonly sampled_peak_rss_mb: number;
  readonly method: string;
}

export interface PeerSection {
  readonly timing: PeerTiming;
  readonly memory: PeerMemory;
}

/** What bench/peer_torch.py prints. */
export interface PeerReport {
  readonly python: string;
  readonly torch: string;
  readonly threads: number;
  readonly ru_maxrss_mb: number;
  readonly loss: Record<
    string,
    PeerSection & { readonly loss: number; readonly metrics: Record<string, number>; readonly grad_file: string }
  >;
  readonly logprobAgreement: {
    readonly logp_file: string;
    readonly grad_file: string;
    /** Max |diff| of the reused-buffer formulation (and of torch's own backward kernel) against autograd. */
    readonly reused_vs_autograd?: Record<string, number>;
  };
  readonly logprobs: {
    readonly generate_s: number;
    readonly logits_mb: number;
    readonly grad_mb?: number;
    readonly forward: PeerSection;
    /** Absent when the config leaves it out. */
    readonly forward_backward?: PeerSection;
    /** With `reused` (bench:wasm): the same into buffers allocated once (out=). */
    readonly forward_reused?: PeerSection;
    readonly forward_backward_reused?: PeerSection;
  };
}

export type PeerOutcome =
  | { readonly ran: true; readonly report: PeerReport; readonly wallS: number; readonly machineBusy: number }
  | { readonly ran: false; readonly reason: string };

/** Runs the peer with the malloc settings given (none: glibc's defaults, whatever the bench was started with). */
export function runPeer(config: object, dir: string, malloc: Readonly<Record<string, string>>): PeerOutcome {
  mkdirSync(dir, { recursive: true });
  const configFile = path.join(dir, "config.json");
  writeFileSync(configFile, JSON.stringify({ ...config, outDir: dir }));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith("MALLOC_") && key !== "GLIBC_TUNABLES"),
  );
  const cpuBefore = machineCpuTicks();
  const start = performance.now();
  const child = spawnSync(PYTHON, [PEER_SCRIPT, configFile], {
    encoding: "utf8",
    maxBuffer: 64 * MiB,
    timeout: 240_000,
    env: { ...env, ...malloc },
  });
  const wallS = (performance.now() - start) / 1000;
  const cpuAfter = machineCpuTicks();
  if (child.error !== undefined) return { ran: false, reason: `${PYTHON} could not run: ${child.error.message}` };
  if (child.status !== 0) {
    const stderr = child.stderr.trim();
    const hint = stderr.includes("No module named 'torch'") ? " (install PyTorch: apt-get install python3-torch)" : "";
    return {
      ran: false,
      reason: `${PYTHON} exited with ${child.status ?? child.signal}${hint}: ${stderr.slice(-500)}`,
    };
  }
  try {
    const machineBusy = (cpuAfter.busy - cpuBefore.busy) / Math.max(1, cpuAfter.total - cpuBefore.total);
    return { ran: true, report: JSON.parse(child.stdout) as PeerReport, wallS, machineBusy };
  } catch (error) {
    return {
      ran: false,
      reason: `unreadable peer output (${(error as Error).message}): ${child.stdout.slice(0, 200)}`,
    };
  }
}

export function readFloat64(file: string): Float64Array {
  const buffer = readFileSync(file);
  return new Float64Array(buffer.buffer, buffer.byteOffset, buffer.byteLength / 8);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): { maxAbsDiff: number; maxAbs: number } {
  if (a.length !== b.length) throw new Error(`lengths differ: ${a.length} vs ${b.length}`);
  let diff = 0;
  let maxAbs = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    maxAbs = Math.max(maxAbs, Math.abs(a[i]!));
  }
  return { maxAbsDiff: diff, maxAbs };
}
// ── report helpers ─────────────────────────────────────────────────────────────────────────────────────────

export function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, c) => Math.max(header.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

export function ms(value: number): string {
  return value >= 100 ? value.toFixed(0) : value >= 10 ? value.toFixed(1) : value.toFixed(2);
}
