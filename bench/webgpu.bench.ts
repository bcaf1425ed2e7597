/**
 * grpo-roc's WGSL kernels (the `webgpu` backend) on token log-probs forward + backward over [8, 512, 32000] float32
 * logits, beside PyTorch on CPU (bench/peer_torch.py: log_softmax + gather, forward and backward, 2 threads), in
 * the same run. On the CI machine the device is lavapipe (Mesa's CPU Vulkan driver), so this measures the kernels
 * on 2 CPU cores; on a real GPU the same script measures that GPU.
 *
 * Paths, each timed as median and best of `runs` calls after `warmup`:
 * - logits on the device (uploaded once, as a trainer's model output would be): the forward alone
 *   (`tokenLogProbsOnDevice`), the backward alone (`tokenLogProbsBackwardOnDevice` with a forward's `saved`, into a
 *   reused buffer), and forward then backward with the gradient written into the same caller-owned buffer every
 *   call (`into`): the headline;
 * - forward then backward with a new gradient buffer every call (what a caller who does not pass `into` pays);
 * - log-probs + GRPO-RoC loss fused (`policyLossFromLogitsOnDevice`, `lossPresets.paper`, `into`): the logits read
 *   twice and the gradient written once;
 * - typed arrays in and out (`tokenLogProbs` + `tokenLogProbsBackward`): the upload of 524 MB and the download of
 *   its gradient included.
 *
 * Every timing ends when the device is idle: after each call's promise settles, the timed function also waits for
 * `queue.onSubmittedWorkDone()`, so a call that resolved at submission could not pass for a fast one. The wait
 * after the promise ("tail") is reported: near 0 means the call's own promise already meant "complete".
 *
 * The peer runs twice, as in bench:loss: glibc malloc as it comes, and malloc keeping freed memory (TUNED_MALLOC),
 * because without it each fresh 524 MB tensor is mmap'd and first-touched, and torch's time swings with that.
 * Agreement with the reference backend is checked first on [2, 16, 1000] logits (logp and ∂L/∂logits).
 * Run with `npm run bench:webgpu`; it prints figures and writes out/bench-webgpu.json, and asserts nothing.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { lossPresets, referenceBackend, type TokenLogProbs } from "../src/index.js";
import { BufferUsage, type GpuBuffer, type GpuDevice } from "../src/webgpu/gpu.js";
import { releaseWebGpuBackend, webgpuBackend } from "../src/webgpu/index.js";
import { whileWaiting } from "../src/webgpu/node.js";
import {
  fillLogits,
  formulaGradLogp,
  formulaTokens,
  gc,
  machineCpuTicks,
  maxAbsDiff,
  measureAsync,
  MemoryProbe,
  MiB,
  median,
  ms,
  PEER_SCRIPT,
  PYTHON,
  runPeer,
  table,
  TUNED_MALLOC,
  type MemoryFigures,
  type PeerOutcome,
  type PeerSection,
  type Timing,
} from "./shared.js";

const SHAPE = [8, 512, 32000] as const;
const SCALE = 3;
/** Two warm-up calls: the first compiles the pipelines and fills the buffer pool. */
const RUNS = { warmup: 2, runs: 7 } as const;
const HOST_RUNS = { warmup: 1, runs: 3 } as const;
/** Torch's times swing by 2× and more between calls here (page faults on fresh tensors): more runs than ours. */
const PEER_RUNS = { warmup: 1, runs: 9 } as const;
const CHECK = [2, 16, 1000] as const;
const TORCH_THREADS = 2;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-webgpu.json");

function progress(message: string): void {
  process.stderr.write(`[bench:webgpu] ${message}\n`);
}

/** Which PyTorch figure a row compares with: torch has no backward without its forward, so "none" for that one. */
type TorchPeer = "forward" | "forward_backward" | "none";

interface Row {
  readonly name: string;
  readonly peer: TorchPeer;
  /** Call until the device is idle: the figure every ratio uses. */
  readonly timing: Timing;
  /** Call until its own promise settled. */
  readonly resolvedMs: readonly number[];
  /** From the promise settling until queue.onSubmittedWorkDone(): the work the promise had not waited for. */
  readonly tailMs: readonly number[];
  readonly memory: MemoryFigures;
}

type Busy = { busy: number; total: number };
const busyShare = (a: Busy, b: Busy) => (b.busy - a.busy) / Math.max(1, b.total - a.total);

async function main(): Promise<void> {
  const info = await webgpuBackend.probe();
  if (!info.available) {
    console.log(`webgpu backend unavailable: ${info.reason}\nNothing measured.`);
    return;
  }
  progress(`device: ${info.reason}`);
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-webgpu-"));
  const probe = new MemoryProbe();
  try {
    await run(dir, probe, info.reason);
  } finally {
    await probe.stop();
    await releaseWebGpuBackend();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function run(dir: string, probe: MemoryProbe, device: string): Promise<void> {
  const loadAtStart = readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  const checkFile = path.join(dir, "logits_check.f32");
  const agreement = await checkAgreement(checkFile);

  const cpuStart = machineCpuTicks();
  const wallStart = performance.now();
  const { rows, uploadMs } = await measureKernels(probe);
  const jsWallS = (performance.now() - wallStart) / 1000;
  // The peer's 524 MB tensors should not meet ours: pooled device buffers go back to the driver first.
  webgpuBackend.trim();
  gc();
  const cpuJs = machineCpuTicks();

  const peerConfig = {
    threads: TORCH_THREADS,
    loss: { cases: [], dtypes: [], options: {} },
    logprobs: { shape: SHAPE, scale: SCALE, ...PEER_RUNS, agreement: { shape: CHECK, file: checkFile } },
  };
  const peerName = `${PYTHON} ${path.relative(ROOT, PEER_SCRIPT)}, ${TORCH_THREADS} threads`;
  progress(`PyTorch peer (${peerName}), glibc malloc defaults`);
  const peer = runPeer(peerConfig, path.join(dir, "peer-default"), {});
  const cpuPeer = machineCpuTicks();
  progress("PyTorch peer again, malloc keeping freed memory");
  const peerTuned = peer.ran ? runPeer(peerConfig, path.join(dir, "peer-tuned"), TUNED_MALLOC) : peer;
  const cpuEnd = machineCpuTicks();

  report({
    device,
    loadAtStart,
    agreement,
    rows,
    uploadMs,
    peer,
    peerTuned,
    busy: { js: busyShare(cpuStart, cpuJs), peer: busyShare(cpuJs, cpuPeer), peerTuned: busyShare(cpuPeer, cpuEnd) },
    jsWallS,
  });
}

/** Logp and ∂L/∂logits against the reference backend on a small case; its logits go to the peer as well. */
async function checkAgreement(checkFile: string) {
  const check = { data: new Float32Array(CHECK[0] * CHECK[1] * CHECK[2]), shape: CHECK };
  fillLogits(check.data, SCALE, 0xc0ffee);
  const checkTokens = formulaTokens(CHECK[0], CHECK[1], CHECK[2]);
  const checkGrad = formulaGradLogp(CHECK[0], CHECK[1]);
  const [ours, theirs] = await Promise.all(
    [webgpuBackend, referenceBackend].map(async (backend) => {
      const saved = await backend.tokenLogProbs(check, checkTokens);
      return { saved, grad: await backend.tokenLogProbsBackward(check, checkTokens, { gradLogp: checkGrad, saved }) };
    }),
  );
  writeFileSync(checkFile, Buffer.from(check.data.buffer));
  return {
    logp: maxAbsDiff(ours!.saved.logp, theirs!.saved.logp),
    grad: maxAbsDiff(ours!.grad.data, theirs!.grad.data),
  };
}

/** Every path, in one scope, so that the host logits (524 MB) can be collected before the peer runs. */
async function measureKernels(probe: MemoryProbe): Promise<{ rows: Row[]; uploadMs: number }> {
  const [B, T, V] = SHAPE;
  const tokens = formulaTokens(B, T, V);
  const gradLogp = formulaGradLogp(B, T);
  progress(`generating [${B}, ${T}, ${V}] float32 logits`);
  const logits = new Float32Array(B * T * V);
  fillLogits(logits, SCALE, 0x10915);
  const gpu: GpuDevice = await webgpuBackend.getDevice();
  const idle = () => whileWaiting(() => gpu.queue.onSubmittedWorkDone());

  const uploadStart = performance.now();
  const buffer = gpu.createBuffer({ size: logits.byteLength, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
  gpu.queue.writeBuffer(buffer, 0, logits);
  await idle();
  const uploadMs = performance.now() - uploadStart;
  const deviceLogits = { buffer, shape: SHAPE };
  const into = gpu.createBuffer({
    size: logits.byteLength,
    usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
  });

  const rows: Row[] = [];
  const time = async (
    name: string,
    peer: TorchPeer,
    call: () => Promise<unknown>,
    counts: { warmup: number; runs: number } = RUNS,
  ) => {
    progress(name);
    const resolvedMs: number[] = [];
    const tailMs: number[] = [];
    const measured = await measureAsync(
      probe,
      async () => {
        const start = performance.now();
        const result = await call();
        const resolved = performance.now();
        await idle();
        resolvedMs.push(resolved - start);
        tailMs.push(performance.now() - resolved);
        return result;
      },
      counts.warmup,
      counts.runs,
      true,
    );
    rows.push({
      name,
      peer,
      timing: measured.timing,
      resolvedMs: resolvedMs.slice(counts.warmup),
      tailMs: tailMs.slice(counts.warmup),
      memory: measured.memory,
    });
  };
  const forward = () => webgpuBackend.tokenLogProbsOnDevice(deviceLogits, tokens);
  const backward = (saved: TokenLogProbs, gradient?: GpuBuffer) =>
    webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, tokens, { gradLogp, saved }, gradient);
  try {
    await time("fwd, logits on the device", "forward", forward);
    const saved = await forward();
    await time("bwd alone (saved statistics), on the device, into a reused buffer", "none", () =>
      backward(saved, into),
    );
    await time("fwd+bwd, logits on the device, gradient into a reused buffer", "forward_backward", async () =>
      backward(await forward(), into),
    );
    await time("fwd+bwd, logits on the device, a new gradient buffer each call", "forward_backward", async () =>
      (await backward(await forward())).buffer.destroy(),
    );
    const advantages = Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -1));
    await time("log-probs + loss fused (paper preset), on the device, into a reused buffer", "forward_backward", () =>
      webgpuBackend.policyLossFromLogitsOnDevice({ logits: deviceLogits, tokens, advantages }, lossPresets.paper, into),
    );
    await time(
      "fwd+bwd, typed arrays in and out (524 MB up, 524 MB down)",
      "forward_backward",
      async () => {
        const host = { data: logits, shape: SHAPE };
        const saved = await webgpuBackend.tokenLogProbs(host, tokens);
        return (await webgpuBackend.tokenLogProbsBackward(host, tokens, { gradLogp, saved })).data.length;
      },
      HOST_RUNS,
    );
  } finally {
    buffer.destroy();
    into.destroy();
  }
  return { rows, uploadMs };
}

interface Report {
  readonly device: string;
  readonly loadAtStart: string;
  readonly agreement: Awaited<ReturnType<typeof checkAgreement>>;
  readonly rows: readonly Row[];
  readonly uploadMs: number;
  readonly peer: PeerOutcome;
  readonly peerTuned: PeerOutcome;
  readonly busy: { readonly js: number; readonly peer: number; readonly peerTuned: number };
  readonly jsWallS: number;
}

const torchSection = (outcome: PeerOutcome, which: TorchPeer): PeerSection | undefined =>
  !outcome.ran || which === "none" ? undefined : outcome.report.logprobs[which];

/** How many times faster ours is: torch's time over ours, median over median and best over best. */
function ratios(row: Row, torch: PeerSection | undefined): { median: number; best: number } | undefined {
  if (torch === undefined) return undefined;
  return { median: torch.timing.median_ms / row.timing.medianMs, best: torch.timing.min_ms / row.timing.minMs };
}

const times = (value: number) => `${value.toFixed(value >= 10 ? 0 : 1)}x`;
const ratioCell = (r: { median: number; best: number } | undefined) =>
  r === undefined ? "-" : `${times(r.median)} / ${times(r.best)}`;
const rssCell = (peak: number, baseline: number) => `${peak.toFixed(0)} (+${Math.max(0, peak - baseline).toFixed(0)})`;

function report(r: Report): void {
  const [B, T, V] = SHAPE;
  const cpus = os.cpus().length;
  const logitsMB = (B * T * V * 4) / 1e6;
  console.log(
    `\nWebGPU kernels: token log-probs forward + backward, [${B}, ${T}, ${V}] float32 logits ` +
      `(${logitsMB.toFixed(0)} MB)`,
  );
  console.log(`device: ${r.device}; node ${process.version}, ${cpus} x ${os.cpus()[0]?.model ?? "unknown CPU"}`);
  console.log(
    r.peer.ran
      ? `peer: PyTorch ${r.peer.report.torch} on CPU, ${r.peer.report.threads} threads, log_softmax(logits, -1)` +
          `.gather(...) forward (no_grad) and forward + .backward(grad_logp) (logits.grad set to None between ` +
          `calls, as zero_grad does), ${PEER_RUNS.runs} runs after ${PEER_RUNS.warmup}`
      : `peer: not run (${r.peer.reason})`,
  );
  console.log(
    `ours: ${RUNS.runs} runs after ${RUNS.warmup} (typed arrays: ${HOST_RUNS.runs} after ${HOST_RUNS.warmup}), ` +
      "a full GC before each, outside the timing; each run timed until queue.onSubmittedWorkDone() after the call",
  );
  console.log(`upload of the logits to the device, once: ${ms(r.uploadMs)} ms\n`);

  const tuned = r.peerTuned.ran;
  console.log(
    table(
      [
        "path",
        "median ms",
        "best ms",
        "x faster than torch (med/med / best/best)",
        ...(tuned ? ["x faster than torch* (med/med / best/best)"] : []),
        "peak RSS MiB (+rise)",
      ],
      [
        ...r.rows.map((row) => [
          row.name,
          ms(row.timing.medianMs),
          ms(row.timing.minMs),
          ratioCell(ratios(row, torchSection(r.peer, row.peer))),
          ...(tuned ? [ratioCell(ratios(row, torchSection(r.peerTuned, row.peer)))] : []),
          rssCell(row.memory.peakRssMiB, row.memory.baselineRssMiB),
        ]),
        ...torchRows(r.peer, "torch", tuned),
        ...(tuned ? torchRows(r.peerTuned, "torch*", tuned) : []),
      ],
    ),
  );
  console.log(
    "\ntorch: glibc malloc defaults; torch*: malloc keeping freed memory (" +
      Object.entries(TUNED_MALLOC)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") +
      "). Without it each 524 MB tensor (the softmax's output, the gradient) is fresh mmap'd memory, first-touched " +
      "on every call. Ratios are torch's time over ours; the fused row does more than torch's (the loss too), " +
      "the backward alone has no torch counterpart.",
  );
  console.log("\nsamples (ms, in order):");
  for (const row of r.rows) console.log(`  ${row.name}: ${row.timing.samplesMs.map(ms).join(", ")}`);
  for (const [label, outcome] of [
    ["torch", r.peer],
    ["torch*", r.peerTuned],
  ] as const) {
    if (!outcome.ran) continue;
    const { forward, forward_backward: fb } = outcome.report.logprobs;
    console.log(`  ${label} fwd: ${forward.timing.samples_ms.map(ms).join(", ")}`);
    if (fb !== undefined) console.log(`  ${label} fwd+bwd: ${fb.timing.samples_ms.map(ms).join(", ")}`);
  }

  console.log("\nevery device call ends when its work does (promise settled → queue idle, ms):");
  for (const row of r.rows) {
    console.log(
      `  ${row.name}: promise median ${ms(median(row.resolvedMs))}, then queue idle after ` +
        `median ${ms(median(row.tailMs))}, max ${ms(Math.max(...row.tailMs))}`,
    );
  }
  if (!tuned && r.peer.ran) console.log(`torch* not run: ${(r.peerTuned as { reason: string }).reason}`);

  const headline = r.rows.find((row) => row.name.startsWith("fwd+bwd, logits on the device, gradient into"));
  if (headline !== undefined && r.peer.ran) {
    const all = [r.peer, r.peerTuned].flatMap((p) => {
      const found = ratios(headline, torchSection(p, "forward_backward"));
      return found === undefined ? [] : [found.median, found.best];
    });
    console.log(
      `\nthe figures support: fwd+bwd with the logits on the device and a reused gradient is ` +
        `${times(Math.min(...all))}–${times(Math.max(...all))} faster than PyTorch on CPU ` +
        `(${ms(headline.timing.medianMs)} ms median, ${ms(headline.timing.minMs)} ms best)`,
    );
  }
  console.log(
    `\nagreement with the reference backend on [${CHECK.join(", ")}]: logp max |diff| ` +
      `${r.agreement.logp.maxAbsDiff.toExponential(1)}, ∂L/∂logits max |diff| ` +
      `${r.agreement.grad.maxAbsDiff.toExponential(1)} ` +
      `(max |∂L/∂logits| ${r.agreement.grad.maxAbs.toExponential(1)})`,
  );
  const pct = (share: number) => `${(share * 100).toFixed(0)}%`;
  console.log(
    `machine: load average ${r.loadAtStart} at the start; CPU busy (all processes, /proc/stat) ${pct(r.busy.js)} of ` +
      `${cpus} CPUs during ours (${r.jsWallS.toFixed(0)} s), ${pct(r.busy.peer)} during torch, ` +
      `${pct(r.busy.peerTuned)} during torch*`,
  );

  mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  writeFileSync(
    OUT_FILE,
    JSON.stringify(
      {
        generatedAt: new Date().toISOString(),
        device: r.device,
        shape: SHAPE,
        runs: { device: RUNS, host: HOST_RUNS, peer: PEER_RUNS },
        uploadMs: r.uploadMs,
        rows: r.rows,
        agreement: r.agreement,
        machine: { loadAtStart: r.loadAtStart, cpuBusy: r.busy, cpus, cpu: os.cpus()[0]?.model },
        tunedMalloc: TUNED_MALLOC,
        peer: r.peer.ran ? r.peer.report : { reason: r.peer.reason },
        peerTuned: r.peerTuned.ran ? r.peerTuned.report : { reason: r.peerTuned.reason },
      },
      null,
      1,
    ),
  );
  console.log(
    `\nfigures written to ${path.relative(ROOT, OUT_FILE)} (peak RSS includes the CPU driver's device memory; ` +
      `MiB = ${MiB} bytes)`,
  );
}

function torchRows(outcome: PeerOutcome, label: string, tuned: boolean): string[][] {
  if (!outcome.ran) return [];
  const { forward, forward_backward: fb } = outcome.report.logprobs;
  const row = (name: string, section: PeerSection) => [
    `${label}: log_softmax + gather, ${name}`,
    ms(section.timing.median_ms),
    ms(section.timing.min_ms),
    "",
    ...(tuned ? [""] : []),
    rssCell(section.memory.peak_rss_mb, section.memory.baseline_rss_mb),
  ];
  return [row("fwd (no_grad)", forward), ...(fb === undefined ? [] : [row("fwd+bwd", fb)])];
}

await main();
