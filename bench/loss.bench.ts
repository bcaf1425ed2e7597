/**
 * Benchmark of the reference backend of the policy loss and the token log-probs, beside PyTorch on CPU
 * (bench/peer_torch.py, run in the same bench with Debian's /usr/bin/python3 and its python3-torch):
 *
 * - `policyLoss` + gradient with the `reference` preset (verl's vanilla loss with clip-higher: clip 0.2/0.28, dual
 *   clip 3, log-ratio clamp ±20, token-mean) for B=64, T=1024 and B=512, T=8192, float64 and float32 inputs, with
 *   fresh outputs and with the same caller-owned output buffers every call (`into`, as a training loop would);
 *   the peer runs verl's compute_policy_loss_vanilla + agg_loss and .backward() on the same values.
 * - `tokenLogProbs` forward, and forward + `tokenLogProbsBackward` (with `saved`), for logits [8, 512, 32000]
 *   float32 (524 MB); the peer runs log_softmax(logits, -1).gather(...) forward and forward + backward.
 *
 * The peer runs twice: with glibc malloc as it comes (the headline figures), and with malloc told to keep freed
 * memory (MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_), because every tensor of 32 MiB or more otherwise comes
 * from fresh mmap'd pages and first-touch page faults are expensive on this VM.
 *
 * Run with `npm run bench:loss` (`tsx bench/loss.bench.ts`). It prints figures and writes them to
 * out/bench-loss.json; it asserts nothing about timing. Inputs are generated from fixed seeds.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { lossPresets, policyLoss, tokenLogProbs, tokenLogProbsBackward, type PolicyLossResult } from "../src/index.js";
import {
  asDtype,
  fillLogits,
  formulaGradLogp,
  formulaTokens,
  gc,
  lossInputs,
  machineCpuTicks,
  maxAbsDiff,
  measure,
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
  type MemoryFigures,
  type PeerSection,
  type Timing,
} from "./shared.js";

/** Small calls need many warm-up calls: V8 reaches steady TurboFan code after ~20 calls of the 64×1024 case. */
const LOSS_CASES = [
  { name: "B64_T1024", rows: 64, cols: 1024, warmup: 40, runs: 50 },
  { name: "B512_T8192", rows: 512, cols: 8192, warmup: 2, runs: 7 },
] as const;
const DTYPES = ["float64", "float32"] as const;
/** [B, T, V] logits; a pass over them takes seconds, so one warm-up and three timed runs. */
const LOGITS = { shape: [8, 512, 32000] as const, scale: 3, warmup: 1, runs: 3 } as const;
/** A small case both sides compute from the same logits, to check that they agree. */
const LOGITS_CHECK = [2, 16, 1000] as const;
/** Extra JS-only figure: the small loss with a full GC before every call. */
const GC_CASE = { warmup: 5, runs: 20 } as const;
const TORCH_THREADS = 2;
const PRESET = lossPresets.reference;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-loss.json");

function progress(message: string): void {
  process.stderr.write(`[bench:loss] ${message}\n`);
}

interface LossAgreement {
  readonly jsLoss: number;
  readonly torchLoss: number;
  readonly lossAbsDiff: number;
  readonly lossRelDiff: number;
  readonly gradMaxAbsDiff: number;
  /** The largest |gradient| entry, to read the difference against. */
  readonly gradMaxAbs: number;
  /** verl's metrics beside the library's. */
  readonly clipFraction: readonly [number, number];
  readonly dualClipFraction: readonly [number, number];
  readonly approxKl: readonly [number, number];
}

// ── report ───────────────────────────────────────────────────────────────────────────────────────────────────

interface Row {
  readonly name: string;
  /** Key of the peer's section. */
  readonly key: string;
  readonly js: Timing;
  readonly jsMemory: MemoryFigures;
  /** Bytes of buffers the work must hold beyond its inputs (the logits' gradient), left out of "extra". */
  readonly expectedBytes: number;
  /** Loss rows: outputs allocated by each call, or the same caller-owned buffers every call (`into`). */
  readonly outputs?: "fresh" | "into";
  peer?: PeerSection;
  peerTuned?: PeerSection | undefined;
}

function extraMiB(peak: number, baseline: number, expectedBytes: number): number {
  return peak - baseline - expectedBytes / MiB;
}

function ratio(js: number, torch: number | undefined): string {
  return torch === undefined ? "-" : `${(js / torch).toFixed(2)}x`;
}

function memoryCell(peak: number, baseline: number, expectedBytes: number): string {
  return `${peak.toFixed(0)} (+${Math.max(0, extraMiB(peak, baseline, expectedBytes)).toFixed(0)})`;
}

function resultTable(rows: readonly Row[]): string {
  return table(
    [
      "benchmark",
      "JS median ms",
      "torch median ms",
      "JS/torch time",
      "peak RSS MiB (+extra) JS / torch",
      "JS / torch best ms",
      "torch* median ms",
      "JS/torch*",
    ],
    rows.map((row) => [
      row.name,
      ms(row.js.medianMs),
      row.peer === undefined ? "-" : ms(row.peer.timing.median_ms),
      ratio(row.js.medianMs, row.peer?.timing.median_ms),
      `${memoryCell(row.jsMemory.peakRssMiB, row.jsMemory.baselineRssMiB, row.expectedBytes)} / ` +
        (row.peer === undefined
          ? "-"
          : memoryCell(row.peer.memory.peak_rss_mb, row.peer.memory.baseline_rss_mb, row.expectedBytes)),
      `${ms(row.js.minMs)} / ${row.peer === undefined ? "-" : ms(row.peer.timing.min_ms)}`,
      row.peerTuned === undefined ? "-" : ms(row.peerTuned.timing.median_ms),
      ratio(row.js.medianMs, row.peerTuned?.timing.median_ms),
    ]),
  );
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-loss-"));
  const probe = new MemoryProbe();
  try {
    run(dir, probe);
  } finally {
    await probe.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(dir: string, probe: MemoryProbe): void {
  const wallStart = performance.now();
  const cpuStart = machineCpuTicks();
  const rows: Row[] = [];
  const jsLoss = new Map<string, { loss: number; grad: Float64Array; metrics: PolicyLossResult["metrics"] }>();
  const peerCases: object[] = [];
  let gcCase: { timing: Timing; memory: MemoryFigures } | undefined;

  // 1. policyLoss + gradient.
  for (const [index, c] of LOSS_CASES.entries()) {
    progress(`policy loss ${c.rows}x${c.cols}: generating inputs`);
    const inputs = lossInputs(c.rows, c.cols, 0x5eed + index);
    const file = path.join(dir, `loss_${c.name}.bin`);
    writeLossInputs(file, inputs);
    peerCases.push({ name: c.name, rows: c.rows, cols: c.cols, warmup: c.warmup, runs: c.runs, file });
    for (const dtype of DTYPES) {
      progress(`policy loss ${c.rows}x${c.cols} ${dtype}`);
      const typed = asDtype(inputs, dtype);
      const measured = measure(probe, () => policyLoss(typed, PRESET), c.warmup, c.runs, false);
      const key = `${c.name}_${dtype}`;
      jsLoss.set(key, { loss: measured.result.loss, grad: measured.result.grad, metrics: measured.result.metrics });
      rows.push({
        name: `policyLoss+grad B=${c.rows} T=${c.cols} ${dtype}`,
        key,
        js: measured.timing,
        jsMemory: measured.memory,
        expectedBytes: 0,
        outputs: "fresh",
      });
      // A training loop passes the same output buffers every step (`into`): warm memory, no first-touch page faults.
      progress(`policy loss ${c.rows}x${c.cols} ${dtype}, into reused buffers`);
      const size = c.rows * c.cols;
      const into = { grad: new Float64Array(size), perTokenLoss: new Float64Array(size) };
      const reused = measure(probe, () => policyLoss(typed, PRESET, into), c.warmup, c.runs, false);
      rows.push({
        name: `  … into reused buffers`,
        key,
        js: reused.timing,
        jsMemory: reused.memory,
        expectedBytes: 0,
        outputs: "into",
      });
      if (index === 0 && dtype === "float64") {
        progress(`policy loss ${c.rows}x${c.cols} ${dtype}, full GC before each call`);
        const withGc = measure(probe, () => policyLoss(typed, PRESET), GC_CASE.warmup, GC_CASE.runs, true);
        gcCase = { timing: withGc.timing, memory: withGc.memory };
      }
    }
  }
  gc();

  // 2. token log-probs over [8, 512, 32000] float32 logits.
  const [B, T, V] = LOGITS.shape;
  const checkShape = [LOGITS_CHECK[0], LOGITS_CHECK[1], LOGITS_CHECK[2]] as const;
  const check = { data: new Float32Array(checkShape[0] * checkShape[1] * checkShape[2]), shape: checkShape };
  fillLogits(check.data, LOGITS.scale, 0xc0ffee);
  const checkFile = path.join(dir, "logits_check.f32");
  writeFileSync(checkFile, Buffer.from(check.data.buffer));
  const checkTokens = formulaTokens(checkShape[0], checkShape[1], checkShape[2]);
  const checkForward = tokenLogProbs(check, checkTokens);
  const checkBackward = tokenLogProbsBackward(check, checkTokens, {
    gradLogp: formulaGradLogp(checkShape[0], checkShape[1]),
    saved: checkForward,
  });

  progress(`token log-probs: generating [${B}, ${T}, ${V}] float32 logits`);
  const fillStart = performance.now();
  const logits: { data: Float32Array; readonly shape: readonly [number, number, number] } = {
    data: new Float32Array(B * T * V),
    shape: [B, T, V],
  };
  fillLogits(logits.data, LOGITS.scale, 0x10915);
  const fillS = (performance.now() - fillStart) / 1000;
  const logitsBytes = logits.data.byteLength;
  const tokens = formulaTokens(B, T, V);
  const gradLogp = formulaGradLogp(B, T);

  progress("token log-probs: forward");
  const forward = measure(probe, () => tokenLogProbs(logits, tokens), LOGITS.warmup, LOGITS.runs, true);
  rows.push({
    name: `tokenLogProbs fwd [${B},${T},${V}] float32`,
    key: "forward",
    js: forward.timing,
    jsMemory: forward.memory,
    expectedBytes: 0,
  });

  progress("token log-probs: forward + backward");
  const forwardBackward = measure(
    probe,
    () => {
      const saved = tokenLogProbs(logits, tokens);
      const grad = tokenLogProbsBackward(logits, tokens, { gradLogp, saved });
      return { dtype: grad.data instanceof Float32Array ? "float32" : "float64", bytes: grad.data.byteLength };
    },
    LOGITS.warmup,
    LOGITS.runs,
    true,
  );
  rows.push({
    name: `tokenLogProbs fwd+bwd [${B},${T},${V}] float32`,
    key: "forward_backward",
    js: forwardBackward.timing,
    jsMemory: forwardBackward.memory,
    expectedBytes: forwardBackward.result.bytes,
  });
  // Drop the 524 MB logits before the peer starts, so the two processes' peaks do not add up.
  logits.data = new Float32Array(0);
  gc();
  const jsWallS = (performance.now() - wallStart) / 1000;
  const cpuJs = machineCpuTicks();

  // 3. the peer: the same shapes, dtypes and loss inputs; malloc as it comes, then tuned.
  const peerConfig = {
    threads: TORCH_THREADS,
    loss: { cases: peerCases, dtypes: DTYPES, options: PRESET },
    logprobs: {
      shape: LOGITS.shape,
      scale: LOGITS.scale,
      warmup: LOGITS.warmup,
      runs: LOGITS.runs,
      agreement: { shape: LOGITS_CHECK, file: checkFile },
    },
  };
  progress(
    `PyTorch peer (${PYTHON} ${path.relative(ROOT, PEER_SCRIPT)}, ${TORCH_THREADS} threads), glibc malloc defaults`,
  );
  const peer = runPeer(peerConfig, path.join(dir, "peer-default"), {});
  progress("PyTorch peer again, malloc keeping freed memory");
  // Forward + backward is left out of this run: with freed memory kept, torch's heap grew to ~4.9 GB over it and its
  // times ranged from 0.2 to 3.2 s, so it gives no steady figure and would take the bench near its memory budget.
  const tunedConfig = { ...peerConfig, logprobs: { ...peerConfig.logprobs, forwardBackward: false } };
  const peerTuned = peer.ran ? runPeer(tunedConfig, path.join(dir, "peer-tuned"), TUNED_MALLOC) : peer;

  const agreements: Record<string, LossAgreement> = {};
  let logprobAgreement: { logpMaxAbsDiff: number; gradMaxAbsDiff: number; gradMaxAbs: number } | undefined;
  if (peer.ran) {
    for (const row of rows) {
      const section = row.key in peer.report.loss ? peer.report.loss[row.key] : undefined;
      if (section !== undefined) {
        row.peer = section;
        const js = jsLoss.get(row.key)!;
        const grad = maxAbsDiff(js.grad, readFloat64(section.grad_file));
        const lossAbsDiff = Math.abs(js.loss - section.loss);
        agreements[row.key] = {
          jsLoss: js.loss,
          torchLoss: section.loss,
          lossAbsDiff,
          lossRelDiff: lossAbsDiff / Math.abs(section.loss),
          gradMaxAbsDiff: grad.maxAbsDiff,
          gradMaxAbs: grad.maxAbs,
          clipFraction: [js.metrics.clipFraction, section.metrics.pg_clipfrac!],
          dualClipFraction: [js.metrics.dualClipFraction, section.metrics.pg_clipfrac_lower!],
          approxKl: [js.metrics.approxKl, section.metrics.ppo_kl!],
        };
      }
    }
    rows.find((row) => row.key === "forward")!.peer = peer.report.logprobs.forward;
    const forwardBackwardPeer = peer.report.logprobs.forward_backward;
    if (forwardBackwardPeer !== undefined)
      rows.find((row) => row.key === "forward_backward")!.peer = forwardBackwardPeer;
    const logp = maxAbsDiff(checkForward.logp, readFloat64(peer.report.logprobAgreement.logp_file));
    const grad = maxAbsDiff(checkBackward.data, readFloat64(peer.report.logprobAgreement.grad_file));
    logprobAgreement = { logpMaxAbsDiff: logp.maxAbsDiff, gradMaxAbsDiff: grad.maxAbsDiff, gradMaxAbs: grad.maxAbs };
  }
  if (peerTuned.ran) {
    const tuned = peerTuned.report;
    for (const row of rows) {
      if (row.key in tuned.loss) row.peerTuned = tuned.loss[row.key];
    }
    rows.find((row) => row.key === "forward")!.peerTuned = tuned.logprobs.forward;
    const tunedForwardBackward = tuned.logprobs.forward_backward;
    if (tunedForwardBackward !== undefined)
      rows.find((row) => row.key === "forward_backward")!.peerTuned = tunedForwardBackward;
  }
  const cpuEnd = machineCpuTicks();
  const busyShare = (a: { busy: number; total: number }, b: { busy: number; total: number }) =>
    (b.busy - a.busy) / Math.max(1, b.total - a.total);

  // ── print ──
  const cpus = os.cpus().length;
  console.log(
    `\nPolicy loss + token log-probs benchmark: node ${process.version}, ${cpus} x ${os.cpus()[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
  );
  console.log(
    `JS: one thread, no GC forced between loss calls; loss median of ${LOSS_CASES.map((c) => c.runs).join(" / ")} runs ` +
      `(B=${LOSS_CASES.map((c) => c.rows).join(" / ")}) after ${LOSS_CASES.map((c) => c.warmup).join(" / ")} warm-up calls; ` +
      `log-probs median of ${LOGITS.runs} after ${LOGITS.warmup}, a full GC before each (outside the timing).`,
  );
  if (peer.ran) {
    const r = peer.report;
    console.log(
      `peer: PyTorch ${r.torch} on CPU, torch.set_num_threads(${TORCH_THREADS}) -> ${r.threads} threads, Python ${r.python}, ` +
        `same run counts; wall ${peer.wallS.toFixed(0)} s` +
        (peerTuned.ran ? ` + ${peerTuned.wallS.toFixed(0)} s (torch*)` : ""),
    );
  } else {
    console.log(`peer not run: ${peer.reason}`);
  }
  if (!peerTuned.ran && peer.ran) console.log(`torch* not run: ${peerTuned.reason}`);
  console.log(
    `loss preset "reference": clip ${PRESET.clipLow}/${PRESET.clipHigh}, dual clip ${PRESET.dualClip}, log-ratio clamp ±${PRESET.logRatioClamp[1]}, ${PRESET.aggregation}\n`,
  );
  console.log(resultTable(rows));
  console.log(
    "\ntorch*: the same peer with glibc malloc keeping freed memory (" +
      Object.entries(TUNED_MALLOC)
        .map(([k, v]) => `${k}=${v}`)
        .join(" ") +
      "): without it every tensor of 32 MiB or more is fresh mmap'd memory, and first-touch page faults are expensive here. " +
      "Not run for fwd+bwd (its heap grew to ~4.9 GB and its times were unsteady).",
  );
  console.log(
    "peak RSS: the process's high-water mark during the section (VmHWM reset through /proc/self/clear_refs), MiB; (+extra): its rise " +
      "over the RSS at the section's start (inputs already in memory), less the logits' gradient itself for fwd+bwd " +
      `(${(forwardBackward.result.bytes / MiB).toFixed(0)} MiB). Node's and Python's base RSS differ: compare the extras.`,
  );
  console.log(
    `log-probs inputs: torch's logits are torch.randn*${LOGITS.scale} (seed 0), the bench's a xorshift sum of uniforms of the same spread: ` +
      "same shape, dtype, tokens and upstream gradient, different logit values (timing does not depend on them). Loss inputs are identical.",
  );
  if (gcCase !== undefined) {
    const steady = rows[0]!.js;
    console.log(
      `JS policyLoss B=${LOSS_CASES[0].rows} T=${LOSS_CASES[0].cols} float64 with a full GC before each call: median ${ms(gcCase.timing.medianMs)} ms ` +
        `(best ${ms(gcCase.timing.minMs)}), ${(gcCase.timing.medianMs / steady.medianMs).toFixed(1)}x the steady figure above.`,
    );
  }
  if (peer.ran) {
    console.log("\nagreement, JS vs torch (same inputs; torch float32 computes in float32, the library in float64):");
    for (const [key, a] of Object.entries(agreements)) {
      console.log(
        `  policy loss ${key}: loss ${a.jsLoss.toPrecision(10)} vs ${a.torchLoss.toPrecision(10)} (rel diff ${a.lossRelDiff.toExponential(1)}); ` +
          `grad max |diff| ${a.gradMaxAbsDiff.toExponential(1)} (max |grad| ${a.gradMaxAbs.toExponential(1)}); ` +
          `clipfrac ${a.clipFraction[0].toFixed(4)}/${a.clipFraction[1].toFixed(4)}, dual ${a.dualClipFraction[0].toFixed(4)}/${a.dualClipFraction[1].toFixed(4)}`,
      );
    }
    if (logprobAgreement !== undefined) {
      console.log(
        `  token log-probs [${LOGITS_CHECK.join(",")}] float32, same logits: logp max |diff| ${logprobAgreement.logpMaxAbsDiff.toExponential(1)}, ` +
          `grad max |diff| ${logprobAgreement.gradMaxAbsDiff.toExponential(1)} (max |grad| ${logprobAgreement.gradMaxAbs.toExponential(1)})`,
      );
    }
    const verdict = (which: "peer" | "peerTuned", outputs: "fresh" | "into") => {
      const compared = rows.filter((row) => row.outputs === outputs && row[which] !== undefined);
      const met = compared.filter((row) => row.js.medianMs <= row[which]!.timing.median_ms);
      return `${met.length === compared.length && compared.length > 0 ? "MET" : "NOT MET"} (${met.length} of ${compared.length} cases at or under torch's median)`;
    };
    console.log('\ntarget "policy loss not slower than PyTorch on CPU":');
    for (const outputs of ["into", "fresh"] as const) {
      const label = outputs === "into" ? "reused output buffers (into)" : "fresh outputs every call";
      console.log(
        `  ${label}: vs torch ${verdict("peer", outputs)}; vs torch* ${peerTuned.ran ? verdict("peerTuned", outputs) : "-"}`,
      );
    }
  }
  const perSecond = (count: number, timing: Timing) => ((count / timing.medianMs) * 1e3) / 1e6;
  console.log(
    `JS throughput: loss ${rows
      .filter((row) => row.outputs !== undefined)
      .map((row) => {
        const c = LOSS_CASES.find((lc) => row.key.startsWith(lc.name))!;
        return `${perSecond(c.rows * c.cols, row.js).toFixed(1)}M`;
      })
      .join(" / ")} tokens/s; log-probs ${perSecond(B * T * V, forward.timing).toFixed(0)}M logits/s forward, ` +
      `${perSecond(B * T * V, forwardBackward.timing).toFixed(0)}M logits/s forward+backward`,
  );
  const busyJs = busyShare(cpuStart, cpuJs);
  const busyPeer = busyShare(cpuJs, cpuEnd);
  console.log(
    `machine CPU busy (all processes, /proc/stat): ${(busyJs * 100).toFixed(0)}% of ${cpus} CPUs during the JS part (${jsWallS.toFixed(0)} s; ` +
      `this bench alone would be ~${(100 / cpus).toFixed(0)}%), ${(busyPeer * 100).toFixed(0)}% during the peer. Logits fill ${fillS.toFixed(1)} s.`,
  );

  writeFigures({
    generatedAt: new Date().toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus,
      cpu: os.cpus()[0]?.model,
      totalMemGiB: os.totalmem() / 2 ** 30,
      jsThreads: 1,
      torchThreads: TORCH_THREADS,
      nodeMallocEnv: Object.fromEntries(
        Object.entries(process.env).filter(([key]) => key.startsWith("MALLOC_") || key === "GLIBC_TUNABLES"),
      ),
      tunedMalloc: TUNED_MALLOC,
      machineCpuBusy: { jsPart: busyJs, peer: busyPeer },
    },
    workload: {
      lossPreset: PRESET,
      lossCases: LOSS_CASES,
      dtypes: DTYPES,
      logits: { ...LOGITS, bytes: logitsBytes, fillS },
      inputs:
        "loss: per-rollout advantages ±1, 0-20% padding at row ends (mask 0), log-ratio N(0,0.05) for 97% of tokens and ±U(0.5,25) for 3%; " +
        "identical on both sides. logits: JS xorshift sum of four uniforms, torch randn, both scale 3; tokens (i*2654435761) mod V and " +
        "grad_logp ((i mod 7) - 2.5)/(B*T) on both sides.",
    },
    results: rows.map((row) => ({
      name: row.name,
      js: {
        ...row.js,
        memory: row.jsMemory,
        extraMiB: extraMiB(row.jsMemory.peakRssMiB, row.jsMemory.baselineRssMiB, row.expectedBytes),
      },
      ...(row.peer && {
        torch: {
          ...row.peer.timing,
          memory: row.peer.memory,
          extraMiB: extraMiB(row.peer.memory.peak_rss_mb, row.peer.memory.baseline_rss_mb, row.expectedBytes),
        },
        jsOverTorch: row.js.medianMs / row.peer.timing.median_ms,
      }),
      ...(row.peerTuned && {
        torchTunedMalloc: { ...row.peerTuned.timing, memory: row.peerTuned.memory },
        jsOverTorchTunedMalloc: row.js.medianMs / row.peerTuned.timing.median_ms,
      }),
    })),
    jsPolicyLossWithGcBeforeEachCall: gcCase,
    jsLossMetrics: Object.fromEntries([...jsLoss].map(([key, result]) => [key, result.metrics])),
    peer: peer.ran
      ? {
          python: peer.report.python,
          torch: peer.report.torch,
          threads: peer.report.threads,
          wallS: peer.wallS,
          ruMaxRssMiB: peer.report.ru_maxrss_mb,
          logitsGenerateS: peer.report.logprobs.generate_s,
          agreement: { loss: agreements, logprobs: logprobAgreement },
        }
      : { notRun: peer.reason },
    peerTunedMalloc: peerTuned.ran
      ? { wallS: peerTuned.wallS, ruMaxRssMiB: peerTuned.report.ru_maxrss_mb }
      : { notRun: peerTuned.reason },
    jsMaxRssMiB: process.resourceUsage().maxRSS / 1024,
  });
  progress(`done in ${((performance.now() - wallStart) / 1000).toFixed(0)} s`);
}

function writeFigures(figures: object): void {
  mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  writeFileSync(OUT_FILE, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`\nfigures written to ${path.relative(ROOT, OUT_FILE)}`);
}

await main();
