/**
 * Every backend on this machine, in one table, beside PyTorch on CPU (bench/peer_torch.py, as bench:loss runs it):
 *
 * - `policyLoss` + gradient, `lossPresets.reference`, float32 inputs, B=64 T=1024 and B=512 T=8192 (bench:loss's
 *   inputs: the same generator and seeds).
 * - `tokenLogProbs` forward + `tokenLogProbsBackward` (with `saved`) over [8, 512, 32000] float32 logits.
 * - For each tfjs backend, a whole training step (`trainStep`) of a small model: embedding 2000×128 → dense 128→2000
 *   (plain variables), B=8, T=128, Adam: median step time, peak RSS, and tfjs's own peak bytes (tf.profile).
 *
 * Backends: `reference` (typed-array loops, float64 math), and `tfjsBackend` on tfjs's cpu, wasm and webgpu
 * backends (`useTfjsBackend`); a backend that cannot run here is listed with its reason. Every backend is called
 * through the same `Backend` interface: typed arrays in, typed arrays out, transfers to and from the device included.
 *
 * Work is capped to keep the bench under about 7 minutes on a 2-core machine: tfjs backends run fewer repetitions than the
 * reference, and the [8, 512, 32000] case is timed on a 64-position slice first; a backend whose estimate exceeds
 * 60 s a pass (tfjs-cpu: ~150 s) is skipped, with the estimate printed.
 *
 * Run with `npm run bench:backends`. Prints the tables and writes out/bench-backends.json; asserts nothing about timing.
 */
import * as tf from "@tensorflow/tfjs";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { lossPresets, referenceBackend, type Backend, type PolicyLossResult } from "../src/index.js";
import { tfjsBackend, tokenLogProbsTf, trainStep, type TrainBatch } from "../src/tfjs/index.js";
import { releaseWebGpu, useTfjsBackend, type TfjsBackendName } from "../src/tfjs/setup.js";
import {
  asDtype,
  fillLogits,
  formulaGradLogp,
  formulaTokens,
  gc,
  lossInputs,
  machineCpuTicks,
  maxAbsDiff,
  measureAsync,
  MemoryProbe,
  MiB,
  ms,
  PEER_SCRIPT,
  PYTHON,
  readFloat64,
  runPeer,
  table,
  TUNED_MALLOC,
  writeLossInputs,
  XorShift32,
  type MemoryFigures,
  type PeerOutcome,
  type Timing,
} from "./shared.js";

const LOSS_CASES = [
  { name: "B64_T1024", rows: 64, cols: 1024, reference: { warmup: 40, runs: 50 }, tfjs: { warmup: 3, runs: 10 } },
  { name: "B512_T8192", rows: 512, cols: 8192, reference: { warmup: 2, runs: 7 }, tfjs: { warmup: 1, runs: 3 } },
] as const;
const LOGITS = {
  shape: [8, 512, 32000] as const,
  scale: 3,
  reference: { warmup: 1, runs: 3 },
  tfjs: { warmup: 1, runs: 2 },
  /** A backend whose estimated fwd+bwd exceeds this is skipped. */
  capS: 60,
  /** Positions timed first, to estimate the whole pass. */
  probePositions: 64,
} as const;
const LOGITS_CHECK = [2, 16, 1000] as const;
const TRAIN = {
  vocab: 2000,
  dim: 128,
  rows: 8,
  length: 128,
  prompt: 32,
  /** tfjs-cpu takes seconds a step (its matmul runs at ~0.3 GFLOP/s here): fewer steps there. */
  cpu: { warmup: 1, runs: 3 },
  other: { warmup: 2, runs: 5 },
  learningRate: 1e-4,
} as const;
const TORCH_THREADS = 2;
const PRESET = lossPresets.reference;
const TFJS_BACKENDS: readonly TfjsBackendName[] = ["cpu", "wasm", "webgpu"];

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-backends.json");

function progress(message: string): void {
  process.stderr.write(`[bench:backends] ${message}\n`);
}

type Measured = { readonly timing: Timing; readonly memory: MemoryFigures };
type Cell =
  | { readonly kind: "measured"; readonly measured: Measured }
  | { readonly kind: "skipped"; readonly reason: string };

interface Agreement {
  readonly what: string;
  /** max |a − b| / max |b|, against the reference backend. */
  readonly relative: number;
}

interface BackendRun {
  readonly id: string;
  readonly available: boolean;
  readonly reason: string;
  readonly cells: Record<string, Cell>;
  readonly agreement: Agreement[];
  train?: TrainFigures | { readonly skipped: string };
}

interface TrainFigures {
  readonly timing: Timing;
  readonly memory: MemoryFigures;
  readonly profilePeakMiB: number;
  readonly profileNewMiB: number;
  readonly heldMiB: number;
  readonly heldTensors: number;
  readonly leakedTensors: number;
  /** BatchMatMul's share of the profiled step's kernel time (NaN where the backend cannot time kernels). */
  readonly matmulShare: number;
  readonly firstLoss: number;
  readonly lastGradNorm: number;
}

const ROW_KEYS = ["loss_B64_T1024", "loss_B512_T8192", "logprobs_fwd_bwd"] as const;
const ROW_NAMES: Record<(typeof ROW_KEYS)[number], string> = {
  loss_B64_T1024: "policyLoss+grad B=64 T=1024 f32",
  loss_B512_T8192: "policyLoss+grad B=512 T=8192 f32",
  logprobs_fwd_bwd: "tokenLogProbs fwd+bwd [8,512,32000] f32",
};

// ── the kernels ──────────────────────────────────────────────────────────────────────────────────────────────

/** max |a − b| / max |b|. */
function relativeDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const { maxAbsDiff: diff } = maxAbsDiff(a, b);
  const { maxAbs } = maxAbsDiff(b, a);
  return maxAbs === 0 ? diff : diff / maxAbs;
}

interface Shared {
  readonly lossTyped: ReturnType<typeof asDtype>[];
  readonly referenceLoss: PolicyLossResult[];
  readonly logits: { data: Float32Array; readonly shape: readonly [number, number, number] };
  readonly tokens: ReturnType<typeof formulaTokens>;
  readonly gradLogp: ReturnType<typeof formulaGradLogp>;
  readonly check: { data: Float32Array; readonly shape: readonly [number, number, number] };
  checkReference?: { logp: Float64Array; grad: Float32Array | Float64Array };
}

async function runKernels(
  id: string,
  backend: Backend,
  isReference: boolean,
  shared: Shared,
  probe: MemoryProbe,
): Promise<BackendRun> {
  const cells: Record<string, Cell> = {};
  const agreement: Agreement[] = [];
  for (const [index, c] of LOSS_CASES.entries()) {
    const counts = isReference ? c.reference : c.tfjs;
    progress(`${id}: policyLoss ${c.rows}x${c.cols} (${counts.warmup} warm-up + ${counts.runs} runs)`);
    const typed = shared.lossTyped[index]!;
    const measured = await measureAsync(
      probe,
      () => backend.policyLoss(typed, PRESET),
      counts.warmup,
      counts.runs,
      false,
    );
    cells[`loss_${c.name}`] = { kind: "measured", measured: { timing: measured.timing, memory: measured.memory } };
    if (isReference) {
      shared.referenceLoss[index] = measured.result;
    } else {
      const ref = shared.referenceLoss[index]!;
      agreement.push({
        what: `loss ${c.name}`,
        relative: Math.abs(measured.result.loss - ref.loss) / Math.abs(ref.loss),
      });
      agreement.push({ what: `grad ${c.name}`, relative: relativeDiff(measured.result.grad, ref.grad) });
    }
  }

  // Small log-prob case: agreement only.
  const checkTokens = formulaTokens(LOGITS_CHECK[0], LOGITS_CHECK[1], LOGITS_CHECK[2]);
  const checkSaved = await backend.tokenLogProbs(shared.check, checkTokens);
  const checkGrad = await backend.tokenLogProbsBackward(shared.check, checkTokens, {
    gradLogp: formulaGradLogp(LOGITS_CHECK[0], LOGITS_CHECK[1]),
    saved: checkSaved,
  });
  if (isReference) {
    shared.checkReference = { logp: checkSaved.logp, grad: checkGrad.data };
  } else {
    agreement.push({
      what: `logp [${LOGITS_CHECK.join(",")}]`,
      relative: relativeDiff(checkSaved.logp, shared.checkReference!.logp),
    });
    agreement.push({
      what: `dlogits [${LOGITS_CHECK.join(",")}]`,
      relative: relativeDiff(checkGrad.data, shared.checkReference!.grad),
    });
  }

  const [B, T, V] = LOGITS.shape;
  const forwardBackward = async (
    logits: { data: Float32Array; readonly shape: readonly [number, number, number] },
    tokens: ReturnType<typeof formulaTokens>,
    gradLogp: ReturnType<typeof formulaGradLogp>,
  ) => {
    const saved = await backend.tokenLogProbs(logits, tokens);
    const grad = await backend.tokenLogProbsBackward(logits, tokens, { gradLogp, saved });
    return grad.data.byteLength;
  };
  let skip: string | undefined;
  if (!isReference) {
    // Estimate from a slice of the first positions (second call: the first compiles shaders, warms JIT).
    const n = LOGITS.probePositions;
    const slice = { data: shared.logits.data.subarray(0, n * V), shape: [1, n, V] as const };
    const sliceTokens = formulaTokens(1, n, V);
    const sliceGrad = formulaGradLogp(1, n);
    await forwardBackward(slice, sliceTokens, sliceGrad);
    const start = performance.now();
    await forwardBackward(slice, sliceTokens, sliceGrad);
    const estimateS = ((performance.now() - start) / 1000) * ((B * T) / n);
    progress(`${id}: fwd+bwd of ${n} positions scales to ~${estimateS.toFixed(0)} s for [${B},${T},${V}]`);
    if (estimateS > LOGITS.capS) skip = `skipped: est. ${estimateS.toFixed(0)} s a pass (> ${LOGITS.capS} s cap)`;
  }
  if (skip !== undefined) {
    cells.logprobs_fwd_bwd = { kind: "skipped", reason: skip };
  } else {
    const counts = isReference ? LOGITS.reference : LOGITS.tfjs;
    progress(`${id}: tokenLogProbs fwd+bwd [${B},${T},${V}] (${counts.warmup} warm-up + ${counts.runs} runs)`);
    const measured = await measureAsync(
      probe,
      () => forwardBackward(shared.logits, shared.tokens, shared.gradLogp),
      counts.warmup,
      counts.runs,
      true,
    );
    cells.logprobs_fwd_bwd = { kind: "measured", measured: { timing: measured.timing, memory: measured.memory } };
  }
  return { id, available: true, reason: "", cells, agreement };
}

// ── a training step ──────────────────────────────────────────────────────────────────────────────────────────

/** A GRPO-RoC micro-batch: 32 prompt tokens, response, a tool-output span (mask 0) in odd rows, right padding. */
function trainBatchData(): Omit<TrainBatch, "oldLogp"> & { tokens: Int32Array; mask: Uint8Array } {
  const { vocab: V, rows: B, length: L, prompt } = TRAIN;
  const rng = new XorShift32(0x7a1);
  const tokens = new Int32Array(B * L);
  const mask = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const length = L - (b % 4) * 8;
    for (let t = 0; t < L; t++) {
      const i = b * L + t;
      tokens[i] = t < length ? rng.nextUint32() % V : 0;
      mask[i] = t >= prompt && t < length && !(b % 2 === 1 && t >= 64 && t < 72) ? 1 : 0;
    }
  }
  return {
    shape: [B, L],
    tokens,
    mask,
    advantages: Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -1)),
  };
}

/**
 * Embedding V×D → dense D→V with bias, as plain variables (trainStep's `variables`). The embedding is a one-hot
 * matmul, not tf.gather: tfjs differentiates gather with UnsortedSegmentSum, which the wasm backend lacks ("Kernel
 * 'UnsortedSegmentSum' not registered for backend 'wasm'") and the cpu backend runs as one masked sum per vocabulary
 * entry, O(V·B·T·D): a tf.layers.embedding model of this size took ~100 s a step on tfjs-cpu here.
 */
function smallModel(): { apply: (ids: tf.Tensor2D) => tf.Tensor3D; variables: tf.Variable[] } {
  const { vocab: V, dim: D } = TRAIN;
  const rng = new XorShift32(0x5eed);
  // The same initial weights on every backend, so that their first-step losses can be compared.
  const E = tf.variable(
    tf.tensor2d(
      Float32Array.from({ length: V * D }, () => 0.1 * rng.normal()),
      [V, D],
    ),
    true,
    "embedding",
  );
  const W = tf.variable(
    tf.tensor2d(
      Float32Array.from({ length: D * V }, () => rng.normal() / Math.sqrt(D)),
      [D, V],
    ),
    true,
    "dense/kernel",
  );
  const bias = tf.variable(tf.zeros([V]), true, "dense/bias");
  const apply = (ids: tf.Tensor2D) =>
    tf.tidy(() => {
      const [rows, cols] = ids.shape;
      const hidden = tf.matMul(tf.oneHot(tf.reshape(ids, [rows * cols]), V), E);
      return tf.reshape(tf.add(tf.matMul(hidden, W), bias), [rows, cols, V]) as tf.Tensor3D;
    });
  return { apply, variables: [E, W, bias] };
}

async function trainBench(
  id: string,
  probe: MemoryProbe,
  counts: { readonly warmup: number; readonly runs: number },
): Promise<TrainFigures> {
  const { vocab: V, rows: B, length: L } = TRAIN;
  const { apply, variables } = smallModel();

  // Old log-probs: the initial model's, a little off (as after a few updates), token-aligned.
  const data = trainBatchData();
  const targets = new Int32Array(B * L);
  for (let b = 0; b < B; b++) for (let t = 0; t < L - 1; t++) targets[b * L + t] = data.tokens[b * L + t + 1]!;
  const initialLogp = tf.tidy(() =>
    tokenLogProbsTf(apply(tf.tensor2d(data.tokens, [B, L], "int32")), tf.tensor2d(targets, [B, L], "int32")),
  );
  const shifted = await initialLogp.data();
  initialLogp.dispose();
  const noise = new XorShift32(0xb0b);
  const oldLogp = new Float32Array(B * L);
  for (let b = 0; b < B; b++)
    for (let t = 1; t < L; t++) oldLogp[b * L + t] = shifted[b * L + t - 1]! + 0.1 * noise.normal();
  const batch: TrainBatch = { ...data, oldLogp };

  const optimizer = tf.train.adam(TRAIN.learningRate);
  const step = () => trainStep({ model: apply, batch, optimizer, loss: PRESET, variables, vocabSize: V });
  progress(`${id}: trainStep, ${counts.warmup} warm-up + ${counts.runs} runs`);
  const first = await step();
  const tensorsBefore = tf.memory().numTensors;
  const measured = await measureAsync(probe, step, counts.warmup - 1, counts.runs, false);
  const leakedTensors = tf.memory().numTensors - tensorsBefore;
  // tfjs's own peak: a profiled step, not timed (profiling syncs after every kernel on some backends).
  const profile = await tf.profile(async () => {
    await step();
  });
  const held = tf.memory();
  // Share of kernel time in the model's matmuls (forward and backward); "forward" entries are customGrad wrappers
  // around kernels that are listed themselves.
  const kernelMs = (filter: (name: string) => boolean) =>
    profile.kernels
      .filter((k) => filter(k.name))
      .reduce((sum, k) => sum + (typeof k.kernelTimeMs === "number" ? k.kernelTimeMs : NaN), 0);
  const matmulShare =
    kernelMs((name) => name === "BatchMatMul") / kernelMs((name) => name !== "forward" && name !== "");
  const figures: TrainFigures = {
    timing: measured.timing,
    memory: measured.memory,
    profilePeakMiB: profile.peakBytes / MiB,
    profileNewMiB: profile.newBytes / MiB,
    heldMiB: held.numBytes / MiB,
    heldTensors: held.numTensors,
    leakedTensors,
    matmulShare,
    firstLoss: first.loss,
    lastGradNorm: measured.result.gradNorm,
  };
  optimizer.dispose();
  tf.dispose(variables);
  return figures;
}

// ── report ───────────────────────────────────────────────────────────────────────────────────────────────────

function cellTime(cell: Cell | undefined, torch: number | undefined): string {
  if (cell === undefined) return "-";
  if (cell.kind === "skipped") return cell.reason;
  const median = cell.measured.timing.medianMs;
  return torch === undefined ? ms(median) : `${ms(median)} (${(median / torch).toFixed(2)}x)`;
}

function cellMemory(cell: Cell | undefined, expectedBytes: number): string {
  if (cell === undefined || cell.kind === "skipped") return "-";
  const m = cell.measured.memory;
  return `${m.peakRssMiB.toFixed(0)} (+${Math.max(0, m.peakRssMiB - m.baselineRssMiB - expectedBytes / MiB).toFixed(0)})`;
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const wallStart = performance.now();
  const cpuStart = machineCpuTicks();
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-backends-"));
  const probe = new MemoryProbe();
  try {
    // Inputs: bench:loss's generators and seeds.
    const peerCases: object[] = [];
    const lossTyped = LOSS_CASES.map((c, index) => {
      const inputs = lossInputs(c.rows, c.cols, 0x5eed + index);
      const file = path.join(dir, `loss_${c.name}.bin`);
      writeLossInputs(file, inputs);
      peerCases.push({
        name: c.name,
        rows: c.rows,
        cols: c.cols,
        warmup: c.reference.warmup,
        runs: c.reference.runs,
        file,
      });
      return asDtype(inputs, "float32");
    });
    const check = { data: new Float32Array(LOGITS_CHECK[0] * LOGITS_CHECK[1] * LOGITS_CHECK[2]), shape: LOGITS_CHECK };
    fillLogits(check.data, LOGITS.scale, 0xc0ffee);
    const checkFile = path.join(dir, "logits_check.f32");
    writeFileSync(checkFile, Buffer.from(check.data.buffer));
    const [B, T, V] = LOGITS.shape;
    progress(`generating [${B}, ${T}, ${V}] float32 logits`);
    const logits = { data: new Float32Array(B * T * V), shape: LOGITS.shape };
    fillLogits(logits.data, LOGITS.scale, 0x10915);
    const shared: Shared = {
      lossTyped,
      referenceLoss: [],
      logits,
      tokens: formulaTokens(B, T, V),
      gradLogp: formulaGradLogp(B, T),
      check,
    };

    const runs: BackendRun[] = [];
    runs.push(await runKernels("reference", referenceBackend, true, shared, probe));
    for (const name of TFJS_BACKENDS) {
      const id = `tfjs-${name}`;
      progress(`${id}: activating`);
      const status = await useTfjsBackend(name);
      if (!status.available) {
        progress(`${id}: unavailable: ${status.reason}`);
        runs.push({ id, available: false, reason: status.reason, cells: {}, agreement: [] });
        continue;
      }
      try {
        const run = await runKernels(id, tfjsBackend, false, shared, probe);
        run.train = await trainBench(id, probe, name === "cpu" ? TRAIN.cpu : TRAIN.other);
        runs.push({ ...run, reason: status.reason });
      } catch (error) {
        progress(`${id}: failed: ${(error as Error).stack ?? String(error)}`);
        runs.push({ id, available: false, reason: `failed: ${(error as Error).message}`, cells: {}, agreement: [] });
      } finally {
        if (name === "webgpu") await releaseWebGpu();
      }
    }
    await useTfjsBackend("cpu");
    // Drop the 524 MB logits before the peer starts.
    logits.data = new Float32Array(0);
    gc();
    const jsWallS = (performance.now() - wallStart) / 1000;
    const cpuJs = machineCpuTicks();

    // The peer: bench:loss's configuration with float32 only; then torch* (malloc keeping freed memory) without fwd+bwd.
    const peerConfig = {
      threads: TORCH_THREADS,
      loss: { cases: peerCases, dtypes: ["float32"], options: PRESET },
      logprobs: {
        shape: LOGITS.shape,
        scale: LOGITS.scale,
        ...LOGITS.reference,
        agreement: { shape: LOGITS_CHECK, file: checkFile },
      },
    };
    progress(`PyTorch peer (${PYTHON} ${path.relative(ROOT, PEER_SCRIPT)}, ${TORCH_THREADS} threads)`);
    const peer: PeerOutcome = runPeer(peerConfig, path.join(dir, "peer-default"), {});
    progress("PyTorch peer again, malloc keeping freed memory (torch*), without fwd+bwd");
    const peerTuned: PeerOutcome = peer.ran
      ? runPeer(
          { ...peerConfig, logprobs: { ...peerConfig.logprobs, forwardBackward: false } },
          path.join(dir, "peer-tuned"),
          TUNED_MALLOC,
        )
      : peer;
    const cpuEnd = machineCpuTicks();

    const torchMedian = (key: (typeof ROW_KEYS)[number], which: PeerOutcome): number | undefined => {
      if (!which.ran) return undefined;
      if (key === "logprobs_fwd_bwd") return which.report.logprobs.forward_backward?.timing.median_ms;
      return which.report.loss[`${key.slice("loss_".length)}_float32`]?.timing.median_ms;
    };
    const torchMemory = (key: (typeof ROW_KEYS)[number]): string => {
      if (!peer.ran) return "-";
      const section =
        key === "logprobs_fwd_bwd"
          ? peer.report.logprobs.forward_backward
          : peer.report.loss[`${key.slice("loss_".length)}_float32`];
      if (section === undefined) return "-";
      const expected = key === "logprobs_fwd_bwd" ? B * T * V * 4 : 0;
      return `${section.memory.peak_rss_mb.toFixed(0)} (+${Math.max(0, section.memory.peak_rss_mb - section.memory.baseline_rss_mb - expected / MiB).toFixed(0)})`;
    };
    // Agreement of the reference backend with torch (same inputs).
    const torchAgreement: Agreement[] = [];
    if (peer.ran) {
      for (const [index, c] of LOSS_CASES.entries()) {
        const section = peer.report.loss[`${c.name}_float32`];
        const ref = shared.referenceLoss[index]!;
        if (section !== undefined) {
          torchAgreement.push({
            what: `loss ${c.name}`,
            relative: Math.abs(ref.loss - section.loss) / Math.abs(section.loss),
          });
          torchAgreement.push({
            what: `grad ${c.name}`,
            relative: relativeDiff(ref.grad, readFloat64(section.grad_file)),
          });
        }
      }
      torchAgreement.push({
        what: `logp [${LOGITS_CHECK.join(",")}]`,
        relative: relativeDiff(shared.checkReference!.logp, readFloat64(peer.report.logprobAgreement.logp_file)),
      });
      torchAgreement.push({
        what: `dlogits [${LOGITS_CHECK.join(",")}]`,
        relative: relativeDiff(shared.checkReference!.grad, readFloat64(peer.report.logprobAgreement.grad_file)),
      });
    }

    // ── print ──
    const cpus = os.cpus().length;
    const busy = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
      (b.busy - a.busy) / Math.max(1, b.total - a.total);
    console.log(
      `\nBackends benchmark: node ${process.version}, ${cpus} x ${os.cpus()[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    );
    for (const run of runs)
      console.log(
        `  ${run.id}: ${run.available ? run.reason || "typed-array loops, float64 math" : `unavailable: ${run.reason}`}`,
      );
    if (peer.ran)
      console.log(
        `  torch: PyTorch ${peer.report.torch} CPU, ${peer.report.threads} threads, Python ${peer.report.python}`,
      );
    else console.log(`  torch: not run: ${peer.reason}`);
    console.log(
      `\nMedian ms (ratio to torch). Runs (warm-up + timed): reference ${LOSS_CASES.map((c) => `${c.reference.warmup}+${c.reference.runs}`).join(" / ")} (loss), ` +
        `${LOGITS.reference.warmup}+${LOGITS.reference.runs} (log-probs); tfjs ${LOSS_CASES.map((c) => `${c.tfjs.warmup}+${c.tfjs.runs}`).join(" / ")}, ` +
        `${LOGITS.tfjs.warmup}+${LOGITS.tfjs.runs}; torch as the reference. torch*: malloc keeping freed memory (loss only).\n`,
    );
    const cellOf = (run: BackendRun, key: string) =>
      run.available ? run.cells[key] : ({ kind: "skipped", reason: "unavailable" } as Cell);
    console.log(
      table(
        ["benchmark", ...runs.map((r) => r.id), "torch", "torch*"],
        ROW_KEYS.map((key) => {
          const torch = torchMedian(key, peer);
          const tuned = key === "logprobs_fwd_bwd" ? undefined : torchMedian(key, peerTuned);
          return [
            ROW_NAMES[key],
            ...runs.map((run) => cellTime(cellOf(run, key), torch)),
            torch === undefined ? "-" : ms(torch),
            tuned === undefined ? "-" : ms(tuned),
          ];
        }),
      ),
    );
    console.log("\nPeak RSS MiB (+rise over the section's start, less the 500 MiB logits' gradient for fwd+bwd):\n");
    console.log(
      table(
        ["benchmark", ...runs.map((r) => r.id), "torch"],
        ROW_KEYS.map((key) => [
          ROW_NAMES[key],
          ...runs.map((run) => cellMemory(cellOf(run, key), key === "logprobs_fwd_bwd" ? B * T * V * 4 : 0)),
          torchMemory(key),
        ]),
      ),
    );
    console.log(
      `\ntrainStep: embedding ${TRAIN.vocab}x${TRAIN.dim} (one-hot matmul) -> dense ${TRAIN.dim}->${TRAIN.vocab}, B=${TRAIN.rows} T=${TRAIN.length} ` +
        `(logits ${((TRAIN.rows * TRAIN.length * TRAIN.vocab * 4) / MiB).toFixed(1)} MiB), Adam, loss preset "reference"; median of ` +
        `${TRAIN.other.runs} steps after ${TRAIN.other.warmup} warm-up (tfjs-cpu: ${TRAIN.cpu.runs} after ${TRAIN.cpu.warmup}):\n`,
    );
    const trainRows = runs
      .filter((run) => run.id.startsWith("tfjs-"))
      .map((run) => {
        const t = run.train;
        if (t === undefined || "skipped" in t)
          return [run.id, run.available ? (t?.skipped ?? "-") : "unavailable", "-", "-", "-", "-", "-", "-", "-"];
        return [
          run.id,
          ms(t.timing.medianMs),
          ms(t.timing.minMs),
          `${t.memory.peakRssMiB.toFixed(0)} (+${Math.max(0, t.memory.peakRssMiB - t.memory.baselineRssMiB).toFixed(0)})`,
          t.profilePeakMiB.toFixed(1),
          `${t.heldMiB.toFixed(1)} / ${t.heldTensors}`,
          String(t.leakedTensors),
          Number.isFinite(t.matmulShare) ? `${(t.matmulShare * 100).toFixed(0)}%` : "-",
          t.firstLoss.toPrecision(7),
        ];
      });
    console.log(
      table(
        [
          "backend",
          "step median ms",
          "best ms",
          "peak RSS MiB (+rise)",
          "tfjs peak MiB (tf.profile)",
          "tfjs held MiB / tensors",
          "leaked tensors",
          "matmul share",
          "first-step loss",
        ],
        trainRows,
      ),
    );
    console.log("\nAgreement (max |diff| / max |reference|; loss: relative):");
    for (const run of runs) {
      if (run.agreement.length > 0)
        console.log(
          `  ${run.id} vs reference: ${run.agreement.map((a) => `${a.what} ${a.relative.toExponential(1)}`).join(", ")}`,
        );
    }
    if (torchAgreement.length > 0)
      console.log(
        `  reference vs torch: ${torchAgreement.map((a) => `${a.what} ${a.relative.toExponential(1)}`).join(", ")}`,
      );
    const busyJs = busy(cpuStart, cpuJs);
    const busyPeer = busy(cpuJs, cpuEnd);
    const totalS = (performance.now() - wallStart) / 1000;
    console.log(
      `\nmachine CPU busy (/proc/stat, all processes): ${(busyJs * 100).toFixed(0)}% of ${cpus} CPUs during the JS part (${jsWallS.toFixed(0)} s), ` +
        `${(busyPeer * 100).toFixed(0)}% during the peer. Whole bench ${totalS.toFixed(0)} s.`,
    );

    mkdirSync(path.dirname(OUT_FILE), { recursive: true });
    writeFileSync(
      OUT_FILE,
      `${JSON.stringify(
        {
          generatedAt: new Date().toISOString(),
          environment: {
            node: process.version,
            cpus,
            cpu: os.cpus()[0]?.model,
            totalMemGiB: os.totalmem() / 2 ** 30,
            machineCpuBusy: { jsPart: busyJs, peer: busyPeer },
          },
          workload: { lossCases: LOSS_CASES, logits: LOGITS, train: TRAIN, lossPreset: PRESET },
          backends: runs,
          peer: peer.ran
            ? {
                torch: peer.report.torch,
                threads: peer.report.threads,
                loss: peer.report.loss,
                logprobs: peer.report.logprobs,
                wallS: peer.wallS,
              }
            : { notRun: peer.reason },
          peerTunedMalloc: peerTuned.ran
            ? { loss: peerTuned.report.loss, wallS: peerTuned.wallS }
            : { notRun: peerTuned.reason },
          torchAgreement,
          totalS,
        },
        (_, value) => (value instanceof Float64Array || value instanceof Float32Array ? undefined : value),
        2,
      )}\n`,
    );
    console.log(`figures written to ${path.relative(ROOT, OUT_FILE)}`);
  } finally {
    await probe.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
