/**
 * bench:cuda — the cuda backend on the issue's benchmark, beside PyTorch eager on the same GPU in the same run:
 *
 * - [4, 4096, 151936] logits already in GPU memory (9.96 GB float32, 4.98 GB bfloat16), float32 then bfloat16:
 *   token log-probs + the GRPO-RoC policy loss (clip 0.2 / 0.28, token-mean) forward and backward, fused (one
 *   read of the logits for the statistics, the loss over [B, T] on the device, one more read and one write for
 *   the gradient). It runs through the addon's bench() (native/src/engine.cu), which times the fused call with
 *   CUDA events and also reports:
 *     - the copy-bandwidth bound: reading the logits twice and writing the gradient once at the device's measured
 *       device-to-device copy bandwidth, and the ratio of the fused time to it (target ≤ 1.5);
 *     - the peak device memory the fused call allocates beyond the logits and the gradient (target O(B·T));
 *     - the max error of log-probs and gradient rows against float64 on six positions.
 * - PyTorch eager (bench/peer_torch_cuda.py: log_softmax + gather + the same loss + backward, CUDA events,
 *   torch.cuda.max_memory_allocated), same shape and dtypes; the speed-up over it (target ≥ 2×).
 *
 * Without a CUDA device (or without the addon) it says so, with the probe's reason, measures nothing and exits 0.
 * GPU machines without Node: bash bench/gpu/run-on-gpu.sh OUT_DIR runs the same benchmark (native/src/bench_main.cc)
 * and the same peer.
 *
 * Run with `npm run bench:cuda`. Environment: GRPO_ROC_BENCH_SHAPE="4 4096 151936", GRPO_ROC_BENCH_ITERATIONS=10,
 * GRPO_ROC_PYTHON (default python3: the one with a CUDA build of torch). Writes out/bench-cuda.json.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { cudaBackend, loadCudaAddon } from "../src/cuda/index.js";

const [ROWS, COLS, VOCAB] = (process.env.GRPO_ROC_BENCH_SHAPE ?? "4 4096 151936").split(/[\s,]+/).map(Number) as [
  number,
  number,
  number,
];
const ITERATIONS = Number(process.env.GRPO_ROC_BENCH_ITERATIONS ?? 10);
const WARMUP = 2;
const PYTHON = process.env.GRPO_ROC_PYTHON ?? "python3";
const PEER = fileURLToPath(new URL("./peer_torch_cuda.py", import.meta.url));
const OUT = fileURLToPath(new URL("../out/bench-cuda.json", import.meta.url));
const DTYPES = ["float32", "bfloat16"] as const;
const TARGETS = { speedup: 2, ratioToBound: 1.5, extraBytesPerPosition: 1024 };

interface OurResult {
  readonly device: string;
  readonly logitsBytes: number;
  readonly fusedMs: number;
  readonly fusedMinMs: number;
  readonly statsMs: number;
  readonly lossMs: number;
  readonly gradMs: number;
  readonly copyGBps: number;
  readonly boundMs: number;
  readonly peakExtraBytes: number;
  readonly leakedBytes: number;
  readonly maxAbsErrLogp: number;
  readonly maxAbsErrGrad: number;
  readonly checkedPositions: number;
}

interface PeerVariant {
  readonly name: string;
  readonly ms: number;
  readonly minMs: number;
  readonly peakExtraBytes: number;
  readonly maxAbsErrLogp: number;
  readonly maxAbsErrGrad: number;
}

type PeerResult =
  | { readonly ok: true; readonly torch: string; readonly device: string; readonly variants: readonly PeerVariant[] }
  | { readonly ok: false; readonly reason: string };

const MiB = 2 ** 20;
const f = (x: number, digits = 2) => x.toFixed(digits);
const e = (x: number) => x.toExponential(1);
const verdict = (ok: boolean) => (ok ? "meets target" : "MISSES target");

function save(report: unknown): void {
  mkdirSync(path.dirname(OUT), { recursive: true });
  writeFileSync(OUT, `${JSON.stringify(report, null, 2)}\n`);
}

function runPeer(dtype: string): PeerResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-peer-cuda-"));
  const json = path.join(dir, "peer.json");
  try {
    const args = [PEER, "--dtype", dtype, "--rows", String(ROWS), "--cols", String(COLS), "--vocab", String(VOCAB)];
    args.push("--iterations", String(ITERATIONS), "--warmup", String(WARMUP), "--json", json);
    const run = spawnSync(PYTHON, args, { encoding: "utf8", timeout: 600_000, maxBuffer: 16 * MiB });
    try {
      const report = JSON.parse(readFileSync(json, "utf8")) as PeerResult;
      if (report.ok) return report;
      return { ok: false, reason: report.reason };
    } catch {
      const why = run.error
        ? String(run.error)
        : `exit ${run.status ?? run.signal}: ${(run.stderr ?? "").trim().split("\n").slice(-3).join(" ")}`;
      return { ok: false, reason: `${PYTHON} ${path.basename(PEER)} gave no result (${why})` };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const date = new Date().toISOString();
  const info = await cudaBackend.probe();
  const state = loadCudaAddon();
  if (!info.available || !state.loaded) {
    console.log(`bench:cuda: no CUDA device available. The cuda backend's probe says: ${info.reason}`);
    console.log(
      "Nothing was measured: no timings, no bandwidth bound, no memory figures, no errors, no PyTorch comparison. " +
        "Run `npm run bench:cuda` on a machine with a CUDA GPU, or `bash bench/gpu/run-on-gpu.sh OUT_DIR` on one without Node.",
    );
    save({ date, measured: false, reason: info.reason });
    return;
  }
  const addon = state.addon;
  const positions = ROWS * COLS;
  console.log(`bench:cuda on ${info.reason}`);
  console.log(
    `logits [${ROWS}, ${COLS}, ${VOCAB}] in GPU memory; ${ITERATIONS} timed runs after ${WARMUP} warm-up runs\n`,
  );
  const rows: unknown[] = [];
  for (const dtype of DTYPES) {
    let ours: OurResult;
    try {
      ours = (await addon.bench({
        rows: ROWS,
        cols: COLS,
        vocab: VOCAB,
        dtype,
        iterations: ITERATIONS,
        warmup: WARMUP,
      })) as unknown as OurResult;
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      console.log(`${dtype}: grpo-roc's benchmark failed: ${reason}\n`);
      rows.push({ dtype, grpoRoc: { ok: false, reason } });
      continue;
    }
    // The addon's own device memory is given back before the peer starts.
    const peer = runPeer(dtype);
    const ratio = ours.fusedMs / ours.boundMs;
    const perPosition = ours.peakExtraBytes / positions;
    console.log(`${dtype}: ${f(ours.logitsBytes / 1e9)} GB of logits on ${ours.device}`);
    console.log(
      `  grpo-roc fused (log-probs + loss + backward)  ${f(ours.fusedMs, 3)} ms (min ${f(ours.fusedMinMs, 3)} ms)`,
    );
    console.log(
      `    kernels alone: statistics ${f(ours.statsMs, 3)} ms, loss ${f(ours.lossMs, 3)} ms, gradient ${f(ours.gradMs, 3)} ms`,
    );
    console.log(
      `  copy-bandwidth bound (2 reads + 1 write)     ${f(ours.boundMs, 3)} ms at ${f(ours.copyGBps, 0)} GB/s`,
    );
    console.log(
      `  ratio to the bound                           ${f(ratio)}× (target ≤ ${TARGETS.ratioToBound}×: ${verdict(ratio <= TARGETS.ratioToBound)})`,
    );
    console.log(
      `  peak extra device memory                     ${f(ours.peakExtraBytes / MiB, 1)} MiB = ${f(perPosition, 0)} B per position ` +
        `(O(B·T): ${verdict(perPosition <= TARGETS.extraBytesPerPosition)}); not given back: ${ours.leakedBytes} B`,
    );
    console.log(
      `  max |error| vs float64 (${ours.checkedPositions} positions)        logp ${e(ours.maxAbsErrLogp)}, gradient ${e(ours.maxAbsErrGrad)}`,
    );
    if (peer.ok) {
      for (const v of peer.variants) {
        const speedup = v.ms / ours.fusedMs;
        console.log(
          `  PyTorch ${peer.torch} ${v.name.padEnd(13)}                ${f(v.ms, 3)} ms, peak extra ${f(v.peakExtraBytes / MiB, 0)} MiB, ` +
            `max |error| logp ${e(v.maxAbsErrLogp)}, gradient ${e(v.maxAbsErrGrad)}`,
        );
        console.log(
          `    speed-up of grpo-roc over it               ${f(speedup)}×${v.name === "eager" ? ` (target ≥ ${TARGETS.speedup}×: ${verdict(speedup >= TARGETS.speedup)})` : ""}`,
        );
      }
    } else {
      console.log(`  PyTorch eager: not measured: ${peer.reason}`);
    }
    console.log("");
    rows.push({
      dtype,
      grpoRoc: { ok: true, ...ours, ratioToBound: ratio, extraBytesPerPosition: perPosition },
      torch: peer,
    });
  }
  save({
    date,
    measured: true,
    device: info.reason,
    shape: [ROWS, COLS, VOCAB],
    iterations: ITERATIONS,
    warmup: WARMUP,
    targets: TARGETS,
    rows,
  });
  console.log(`wrote ${path.relative(process.cwd(), OUT)}`);
}

await main();
