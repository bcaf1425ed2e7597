/**
 * grpo-roc's WGSL kernels (the `webgpu` backend) on token log-probs forward + backward over [8, 512, 32000] float32
 * logits, beside PyTorch on CPU (bench/peer_torch.py: log_softmax + gather, forward and backward, 2 threads), in
 * the same run. On the CI machine the device is lavapipe (Mesa's CPU Vulkan driver), so this measures the kernels
 * on 2 CPU cores; on a real GPU the same script measures that GPU.
 *
 * Paths, each timed as median and best of `runs` calls after `warmup`:
 * - logits on the device (uploaded once, as a trainer's model output would be), forward (`tokenLogProbsOnDevice`),
 *   then backward with the forward's statistics (`tokenLogProbsBackwardOnDevice`, `saved`), the gradient written
 *   into the same caller-owned buffer every call (`into`): the figure;
 * - the same with a new gradient buffer every call (what a caller who does not pass `into` pays);
 * - log-probs + GRPO-RoC loss fused (`policyLossFromLogitsOnDevice`, `lossPresets.paper`, `into`): the logits read
 *   twice and the gradient written once;
 * - typed arrays in and out (`tokenLogProbs` + `tokenLogProbsBackward`): the upload of 524 MB and the download of
 *   its gradient included.
 *
 * Agreement with the reference backend is checked first on [2, 16, 1000] logits (logp and ∂L/∂logits).
 * Run with `npm run bench:webgpu`; it prints figures and writes out/bench-webgpu.json, and asserts nothing.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { lossPresets, referenceBackend, type TokenLogProbs } from "../src/index.js";
import { BufferUsage, type GpuBuffer, type GpuDevice } from "../src/webgpu/gpu.js";
import { releaseWebGpuBackend, webgpuBackend } from "../src/webgpu/index.js";
import {
  fillLogits,
  formulaGradLogp,
  formulaTokens,
  gc,
  maxAbsDiff,
  measureAsync,
  MemoryProbe,
  MiB,
  ms,
  PEER_SCRIPT,
  PYTHON,
  runPeer,
  table,
  type MemoryFigures,
  type PeerSection,
  type Timing,
} from "./shared.js";

const SHAPE = [8, 512, 32000] as const;
const SCALE = 3;
const RUNS = { warmup: 1, runs: 3 } as const;
const HOST_RUNS = { warmup: 1, runs: 2 } as const;
const CHECK = [2, 16, 1000] as const;
const TORCH_THREADS = 2;
/** The target for this machine: at least this many times faster than PyTorch on CPU. */
const TARGET_SPEEDUP = 4;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-webgpu.json");

function progress(message: string): void {
  process.stderr.write(`[bench:webgpu] ${message}\n`);
}

interface Row {
  readonly name: string;
  readonly timing: Timing;
  readonly memory: MemoryFigures;
}

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
  const [B, T, V] = SHAPE;
  const tokens = formulaTokens(B, T, V);
  const gradLogp = formulaGradLogp(B, T);

  // 1. Agreement on a small case, against the reference backend (and the same logits go to the peer).
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
  const agreement = {
    logp: maxAbsDiff(ours!.saved.logp, theirs!.saved.logp),
    grad: maxAbsDiff(ours!.grad.data, theirs!.grad.data),
  };
  const checkFile = path.join(dir, "logits_check.f32");
  writeFileSync(checkFile, Buffer.from(check.data.buffer));

  // 2. The logits: generated here, uploaded once.
  progress(`generating [${B}, ${T}, ${V}] float32 logits`);
  const logits = new Float32Array(B * T * V);
  fillLogits(logits, SCALE, 0x10915);
  const gpu: GpuDevice = await webgpuBackend.getDevice();
  const uploadStart = performance.now();
  const buffer = gpu.createBuffer({ size: logits.byteLength, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
  gpu.queue.writeBuffer(buffer, 0, logits);
  await gpu.queue.onSubmittedWorkDone();
  const uploadMs = performance.now() - uploadStart;
  const deviceLogits = { buffer, shape: SHAPE };
  const into = gpu.createBuffer({
    size: logits.byteLength,
    usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
  });
  const rows: Row[] = [];
  const time = async (name: string, fn: () => Promise<unknown>, counts: { warmup: number; runs: number } = RUNS) => {
    progress(name);
    const measured = await measureAsync(probe, fn, counts.warmup, counts.runs, true);
    rows.push({ name, timing: measured.timing, memory: measured.memory });
  };
  const forwardBackward = async (gradient?: GpuBuffer) => {
    const saved: TokenLogProbs = await webgpuBackend.tokenLogProbsOnDevice(deviceLogits, tokens);
    return webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, tokens, { gradLogp, saved }, gradient);
  };
  try {
    await time("fwd+bwd, logits on the device, gradient into a reused buffer", () => forwardBackward(into));
    await time("fwd+bwd, logits on the device, a new gradient buffer each call", async () =>
      (await forwardBackward()).buffer.destroy(),
    );
    const advantages = Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -1));
    await time("log-probs + loss fused (paper preset), on the device, into a reused buffer", () =>
      webgpuBackend.policyLossFromLogitsOnDevice({ logits: deviceLogits, tokens, advantages }, lossPresets.paper, into),
    );
    await time(
      "fwd+bwd, typed arrays in and out (524 MB up, 524 MB down)",
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
  gc();

  // 3. The peer, in the same run.
  progress(`PyTorch peer (${PYTHON} ${path.relative(ROOT, PEER_SCRIPT)}, ${TORCH_THREADS} threads)`);
  const peer = runPeer(
    {
      threads: TORCH_THREADS,
      loss: { cases: [], dtypes: [], options: {} },
      logprobs: { shape: SHAPE, scale: SCALE, ...RUNS, agreement: { shape: CHECK, file: checkFile } },
    },
    path.join(dir, "peer"),
    {},
  );
  const torch: PeerSection | undefined = peer.ran ? peer.report.logprobs.forward_backward : undefined;

  // ── print ──
  console.log(
    `\nWebGPU kernels: token log-probs forward + backward, [${B}, ${T}, ${V}] float32 logits (${(logits.byteLength / 1e6).toFixed(0)} MB)`,
  );
  console.log(
    `device: ${device}; node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "unknown CPU"}`,
  );
  console.log(
    peer.ran
      ? `peer: PyTorch ${peer.report.torch} on CPU, ${peer.report.threads} threads, log_softmax(logits, -1).gather(...) forward + .backward(grad_logp), median of ${RUNS.runs} after ${RUNS.warmup}`
      : `peer: not run (${peer.reason})`,
  );
  console.log(`upload of the logits to the device, once: ${ms(uploadMs)} ms\n`);
  const speedup = (row: Row) =>
    torch === undefined ? "-" : `${(torch.timing.median_ms / row.timing.medianMs).toFixed(2)}x`;
  console.log(
    table(
      ["path", "median ms", "best ms", "torch median ms", "speed-up over torch", "peak RSS MiB (+rise)"],
      [
        ...rows.map((row) => [
          row.name,
          ms(row.timing.medianMs),
          ms(row.timing.minMs),
          torch === undefined ? "-" : ms(torch.timing.median_ms),
          speedup(row),
          `${row.memory.peakRssMiB.toFixed(0)} (+${Math.max(0, row.memory.peakRssMiB - row.memory.baselineRssMiB).toFixed(0)})`,
        ]),
        ...(torch === undefined
          ? []
          : [
              [
                "PyTorch log_softmax + gather, fwd+bwd",
                ms(torch.timing.median_ms),
                ms(torch.timing.min_ms),
                "",
                "1x",
                `${torch.memory.peak_rss_mb.toFixed(0)} (+${Math.max(0, torch.memory.peak_rss_mb - torch.memory.baseline_rss_mb).toFixed(0)})`,
              ],
            ]),
      ],
    ),
  );
  console.log(
    `\nagreement with the reference backend on [${CHECK.join(", ")}]: logp max |diff| ${agreement.logp.maxAbsDiff.toExponential(1)}, ` +
      `∂L/∂logits max |diff| ${agreement.grad.maxAbsDiff.toExponential(1)} (max |∂L/∂logits| ${agreement.grad.maxAbs.toExponential(1)})`,
  );
  const headline = rows[0]!;
  if (torch !== undefined) {
    const factor = torch.timing.median_ms / headline.timing.medianMs;
    console.log(
      `target "at least ${TARGET_SPEEDUP}x faster than PyTorch on CPU" (logits on the device, reused gradient): ${factor >= TARGET_SPEEDUP ? "MET" : "NOT MET"} (${factor.toFixed(2)}x)`,
    );
  }
  mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  writeFileSync(
    OUT_FILE,
    JSON.stringify(
      { device, shape: SHAPE, uploadMs, rows, agreement, peer: peer.ran ? peer.report : { reason: peer.reason } },
      null,
      1,
    ),
  );
  console.log(
    `\nfigures written to ${path.relative(ROOT, OUT_FILE)} (peak RSS includes the CPU driver's device memory; MiB = ${MiB} bytes)`,
  );
}

await main();
