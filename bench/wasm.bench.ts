/**
 * The `wasm` backend (src/wasm: WebAssembly SIMD kernels over worker threads) beside the reference, tfjs's wasm
 * backend and PyTorch on CPU (bench/peer_torch.py, 2 threads), on [8, 512, 32000] float32 logits and on
 * [2, 512, 152064] (Qwen's vocabulary):
 *
 * - forward: `tokenLogProbs` (entropy off);
 * - forward + backward: `tokenLogProbs` then `tokenLogProbsBackward` with `saved`, ∂L/∂logp = formulaGradLogp;
 *   and `policyLossFromLogits` with `lossPresets.paper` (advantages ±1 per row, oldLogp = the forward's logp plus
 *   N(0, 0.05) noise) on the wasm backend.
 *
 * wasm runs with 2 threads and with 1, each with the logits in JavaScript memory ("staged": copied in chunks into
 * the kernel's memory, the gradient comes back as a new Float32Array) and with the logits resident in the kernel's
 * memory (`allocateLogits`: no copy, the gradient written beside them). torch runs as users call it
 * (`log_softmax(x, -1).gather(...)` under no_grad, and with autograd), and into reused buffers (`out=`), its upper
 * bound. tfjs-wasm is timed at full size where a pass is estimated under a cap from a slice of the first positions,
 * else the slice's time is extrapolated (as bench:backends does), and the output says which.
 *
 * Run with `npm run bench:wasm` (about 5 minutes on a 2-core machine); `-- --quick` (or BENCH_QUICK=1) shrinks it to
 * [2, 64, 32000] with one run, for a smoke test. Prints the tables, writes out/bench-wasm.json; asserts nothing.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import { type Backend, lossPresets, referenceBackend } from "../src/index.js";
import { tfjsBackend } from "../src/tfjs/index.js";
import { useTfjsBackend } from "../src/tfjs/setup.js";
import { createWasmBackend, type WasmBackend, type WasmLogitsBuffer } from "../src/wasm/index.js";
import {
  fillLogits,
  formulaGradLogp,
  formulaTokens,
  gc,
  type MemoryFigures,
  MemoryProbe,
  MiB,
  maxAbsDiff,
  measureAsync,
  ms,
  PEER_SCRIPT,
  type PeerOutcome,
  type PeerSection,
  PYTHON,
  readFloat64,
  runPeer,
  type Timing,
  table,
  XorShift32,
} from "./shared.js";

type Shape3 = readonly [number, number, number];
type Counts = { readonly warmup: number; readonly runs: number };

interface SectionSpec {
  readonly name: string;
  readonly shape: Shape3;
  /** wasm and torch. */
  readonly fast: Counts;
  /** The reference and tfjs-wasm at full size. */
  readonly slow: Counts;
  /** tfjs-wasm: "auto" times it at full size when the slice's estimate is under TFJS_CAP_S, else extrapolates. */
  readonly tfjs: "auto" | "extrapolate";
}

const QUICK = process.argv.includes("--quick") || process.env.BENCH_QUICK === "1";
const SECTIONS: readonly SectionSpec[] = QUICK
  ? [
      {
        name: "quick",
        shape: [2, 64, 32000],
        fast: { warmup: 1, runs: 1 },
        slow: { warmup: 0, runs: 1 },
        tfjs: "auto",
      },
    ]
  : [
      {
        name: "V32000",
        shape: [8, 512, 32000],
        fast: { warmup: 2, runs: 5 },
        slow: { warmup: 1, runs: 2 },
        tfjs: "auto",
      },
      {
        name: "V152064",
        shape: [2, 512, 152064],
        fast: { warmup: 1, runs: 3 },
        slow: { warmup: 1, runs: 1 },
        tfjs: "extrapolate",
      },
    ];
const SCALE = 3;
const THREADS = [2, 1] as const;
const TORCH_THREADS = 2;
/** tfjs-wasm runs at full size when a pass is estimated under this; otherwise its slice's time is extrapolated. */
const TFJS_CAP_S = 15;
const SLICE_POSITIONS = 64;
const CHECK: Shape3 = [2, 16, 1000];
/** Agreement with torch required before ratios are printed (max |diff|, absolute). */
const TOLERANCE = { logp: 1e-5, grad: 1e-6 } as const;
const TARGETS = { forward: 1.5, forwardBackward: 2.5 } as const;
const PRESET = lossPresets.paper;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-wasm.json");

function progress(message: string): void {
  process.stderr.write(`[bench:wasm] ${message}\n`);
}

type Pass = "fwd" | "fwd_bwd";

interface Row {
  readonly pass: Pass;
  readonly variant: string;
  readonly timing: Timing;
  /** Undefined where the figures are extrapolated (no memory of their own). */
  readonly memory: MemoryFigures | undefined;
  /** Bytes of new output the call returns (a gradient), left out of "+extra". */
  readonly returnedBytes: number;
  readonly note?: string;
}

interface LogitsCase {
  logits: { data: Float32Array; readonly shape: Shape3 };
  readonly tokens: ReturnType<typeof formulaTokens>;
  readonly gradLogp: ReturnType<typeof formulaGradLogp>;
}

// ── the JS side ──────────────────────────────────────────────────────────────────────────────────────────────

async function forward(backend: Backend, logits: LogitsCase["logits"], tokens: LogitsCase["tokens"]) {
  return backend.tokenLogProbs(logits, tokens, { entropy: false });
}

async function forwardBackward(
  backend: Backend,
  logits: LogitsCase["logits"],
  tokens: LogitsCase["tokens"],
  gradLogp: LogitsCase["gradLogp"],
) {
  const saved = await backend.tokenLogProbs(logits, tokens, { entropy: false });
  return backend.tokenLogProbsBackward(logits, tokens, { gradLogp, saved });
}

/** policyLossFromLogits' other inputs: advantages ±1 per row, oldLogp = logp + N(0, 0.05). */
function lossInputsFor(logp: Float64Array, shape: readonly [number, number]) {
  const rng = new XorShift32(0x01d);
  const old = Float64Array.from(logp, (v) => v + 0.05 * rng.normal());
  const advantages = Float64Array.from({ length: shape[0] }, () => (rng.uniform() < 0.5 ? 1 : -1));
  return { oldLogp: { data: old, shape }, advantages };
}

async function timeRow(
  probe: MemoryProbe,
  pass: Pass,
  variant: string,
  counts: Counts,
  fn: () => Promise<unknown>,
  returnedBytes: number,
): Promise<Row> {
  progress(`${variant} ${pass} (${counts.warmup} warm-up + ${counts.runs} runs)`);
  const measured = await measureAsync(probe, fn, counts.warmup, counts.runs, true);
  return { pass, variant, timing: measured.timing, memory: measured.memory, returnedBytes };
}

async function wasmRows(spec: SectionSpec, input: LogitsCase, probe: MemoryProbe, rows: Row[]): Promise<string> {
  const { tokens, gradLogp } = input;
  const gradientBytes = input.logits.data.byteLength;
  let reason = "";
  for (const threads of THREADS) {
    const id = `wasm ${threads}t`;
    const backend: WasmBackend = createWasmBackend({ threads });
    const info = await backend.probe();
    if (threads === THREADS[0]) reason = info.reason;
    if (!info.available) {
      progress(`${id}: unavailable: ${info.reason}`);
      continue;
    }
    rows.push(await timeRow(probe, "fwd", `${id} staged`, spec.fast, () => forward(backend, input.logits, tokens), 0));
    rows.push(
      await timeRow(
        probe,
        "fwd_bwd",
        `${id} staged`,
        spec.fast,
        () => forwardBackward(backend, input.logits, tokens, gradLogp),
        gradientBytes,
      ),
    );
    const buffer: WasmLogitsBuffer = await backend.allocateLogits(spec.shape);
    buffer.logits.data.set(input.logits.data);
    rows.push(
      await timeRow(probe, "fwd", `${id} resident`, spec.fast, () => forward(backend, buffer.logits, tokens), 0),
    );
    rows.push(
      await timeRow(
        probe,
        "fwd_bwd",
        `${id} resident`,
        spec.fast,
        () => forwardBackward(backend, buffer.logits, tokens, gradLogp),
        0,
      ),
    );
    if (threads === THREADS[0]) {
      const { logp } = await forward(backend, buffer.logits, tokens);
      const extra = lossInputsFor(logp, [spec.shape[0], spec.shape[1]]);
      const loss = (logits: LogitsCase["logits"]) => () =>
        backend.policyLossFromLogits({ logits, tokens, ...extra }, PRESET);
      rows.push({
        ...(await timeRow(probe, "fwd_bwd", `${id} resident policyLossFromLogits`, spec.fast, loss(buffer.logits), 0)),
        note: "paper",
      });
      rows.push({
        ...(await timeRow(
          probe,
          "fwd_bwd",
          `${id} staged policyLossFromLogits`,
          spec.fast,
          loss(input.logits),
          gradientBytes,
        )),
        note: "paper",
      });
    }
    buffer.release();
    await backend.release();
    gc();
  }
  return reason;
}

/** tfjs-wasm: full size under the cap (or always, "auto" and cheap), else the slice's time scaled up. */
async function tfjsRows(spec: SectionSpec, input: LogitsCase, probe: MemoryProbe, rows: Row[]): Promise<string> {
  const status = await useTfjsBackend("wasm");
  if (!status.available) {
    progress(`tfjs-wasm: unavailable: ${status.reason}`);
    return `unavailable: ${status.reason}`;
  }
  try {
    const [B, T, V] = spec.shape;
    const n = Math.min(SLICE_POSITIONS, B * T);
    const slice = { data: input.logits.data.subarray(0, n * V), shape: [1, n, V] as const };
    const sliceTokens = formulaTokens(1, n, V);
    const sliceGrad = formulaGradLogp(1, n);
    const passes: Record<Pass, () => Promise<unknown>> = {
      fwd: () => forward(tfjsBackend, slice, sliceTokens),
      fwd_bwd: () => forwardBackward(tfjsBackend, slice, sliceTokens, sliceGrad),
    };
    const full: Record<Pass, () => Promise<unknown>> = {
      fwd: () => forward(tfjsBackend, input.logits, input.tokens),
      fwd_bwd: () => forwardBackward(tfjsBackend, input.logits, input.tokens, input.gradLogp),
    };
    for (const pass of ["fwd", "fwd_bwd"] as const) {
      await passes[pass]();
      const start = performance.now();
      await passes[pass]();
      const sliceMs = performance.now() - start;
      const estimateMs = sliceMs * ((B * T) / n);
      progress(
        `tfjs-wasm ${pass}: ${n} positions in ${ms(sliceMs)} ms, ~${(estimateMs / 1000).toFixed(1)} s full size`,
      );
      if (spec.tfjs === "auto" && estimateMs <= TFJS_CAP_S * 1000) {
        rows.push(
          await timeRow(
            probe,
            pass,
            "tfjs-wasm",
            spec.slow,
            full[pass],
            pass === "fwd_bwd" ? input.logits.data.byteLength : 0,
          ),
        );
      } else {
        rows.push({
          pass,
          variant: "tfjs-wasm",
          timing: { medianMs: estimateMs, minMs: estimateMs, runs: 1, samplesMs: [sliceMs] },
          memory: undefined,
          returnedBytes: 0,
          note: `extrapolated from ${n} positions`,
        });
      }
    }
    return status.reason;
  } finally {
    await useTfjsBackend("cpu");
  }
}

// ── agreement ────────────────────────────────────────────────────────────────────────────────────────────────

interface SmallResult {
  readonly logp: Float64Array;
  readonly grad: ArrayLike<number>;
}

async function smallCase(backend: Backend, check: LogitsCase): Promise<SmallResult> {
  const saved = await backend.tokenLogProbs(check.logits, check.tokens, { entropy: false });
  const grad = await backend.tokenLogProbsBackward(check.logits, check.tokens, { gradLogp: check.gradLogp, saved });
  return { logp: saved.logp, grad: Float64Array.from(grad.data) };
}

function compare(what: string, a: SmallResult, b: SmallResult) {
  const logp = maxAbsDiff(a.logp, b.logp).maxAbsDiff;
  const grad = maxAbsDiff(a.grad, b.grad).maxAbsDiff;
  return { what, logp, grad, ok: logp <= TOLERANCE.logp && grad <= TOLERANCE.grad };
}

// ── report ───────────────────────────────────────────────────────────────────────────────────────────────────

function peerRow(pass: Pass, variant: string, section: PeerSection | undefined, returnedBytes: number): Row[] {
  if (section === undefined) return [];
  const t = section.timing;
  const m = section.memory;
  return [
    {
      pass,
      variant,
      timing: { medianMs: t.median_ms, minMs: t.min_ms, runs: t.runs, samplesMs: t.samples_ms },
      memory: {
        baselineRssMiB: m.baseline_rss_mb,
        peakRssMiB: m.peak_rss_mb,
        sampledPeakRssMiB: m.sampled_peak_rss_mb,
        samples: 0,
        arrayBuffersPeakMiB: 0,
        method: m.method,
      },
      returnedBytes,
    },
  ];
}

function rss(row: Row): string {
  if (row.memory === undefined) return "-";
  const extra = Math.max(0, row.memory.peakRssMiB - row.memory.baselineRssMiB - row.returnedBytes / MiB);
  return `${row.memory.peakRssMiB.toFixed(0)} (+${extra.toFixed(0)})`;
}

function ratio(row: Row, torch: Row | undefined, agreed: boolean): string {
  if (torch === undefined) return "-";
  if (!agreed) return "n/a (no agreement)";
  return `${(row.timing.medianMs / torch.timing.medianMs).toFixed(2)}x`;
}

const PASS_NAMES: Record<Pass, string> = { fwd: "fwd", fwd_bwd: "fwd+bwd" };

// ── main ─────────────────────────────────────────────────────────────────────────────────────────────────────

async function main(): Promise<void> {
  const wallStart = performance.now();
  const loadStart = os.loadavg();
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-wasm-"));
  const probe = new MemoryProbe();
  try {
    progress(`load average at start: ${loadStart.map((v) => v.toFixed(2)).join(" ")}${QUICK ? " (quick run)" : ""}`);
    // The small agreement case: the same logits on both sides (a temp file for the peer).
    const check: LogitsCase = {
      logits: { data: new Float32Array(CHECK[0] * CHECK[1] * CHECK[2]), shape: CHECK },
      tokens: formulaTokens(CHECK[0], CHECK[1], CHECK[2]),
      gradLogp: formulaGradLogp(CHECK[0], CHECK[1]),
    };
    fillLogits(check.logits.data, SCALE, 0xc0ffee);
    const checkFile = path.join(dir, "logits_check.f32");
    writeFileSync(checkFile, Buffer.from(check.logits.data.buffer));
    const small: Record<string, SmallResult> = { reference: await smallCase(referenceBackend, check) };
    for (const threads of THREADS) {
      const backend = createWasmBackend({ threads });
      if (!(await backend.probe()).available) continue;
      small[`wasm ${threads}t staged`] = await smallCase(backend, check);
      const buffer = await backend.allocateLogits(CHECK);
      buffer.logits.data.set(check.logits.data);
      small[`wasm ${threads}t resident`] = await smallCase(backend, { ...check, logits: buffer.logits });
      buffer.release();
      await backend.release();
    }

    const sections: {
      spec: SectionSpec;
      rows: Row[];
      peer: PeerOutcome;
      wasmReason: string;
      tfjsReason: string;
    }[] = [];
    let agreement: ReturnType<typeof compare>[] = [];
    let peerAgreement: Record<string, number> | undefined;
    for (const [index, spec] of SECTIONS.entries()) {
      const [B, T, V] = spec.shape;
      progress(`── [${B}, ${T}, ${V}]: generating ${((B * T * V * 4) / MiB).toFixed(0)} MiB of float32 logits`);
      const input: LogitsCase = {
        logits: { data: new Float32Array(B * T * V), shape: spec.shape },
        tokens: formulaTokens(B, T, V),
        gradLogp: formulaGradLogp(B, T),
      };
      fillLogits(input.logits.data, SCALE, 0x10915 + index);
      const rows: Row[] = [];
      const wasmReason = await wasmRows(spec, input, probe, rows);
      rows.push(
        await timeRow(
          probe,
          "fwd",
          "reference",
          spec.slow,
          () => forward(referenceBackend, input.logits, input.tokens),
          0,
        ),
      );
      rows.push(
        await timeRow(
          probe,
          "fwd_bwd",
          "reference",
          spec.slow,
          () => forwardBackward(referenceBackend, input.logits, input.tokens, input.gradLogp),
          input.logits.data.byteLength,
        ),
      );
      const tfjsReason = await tfjsRows(spec, input, probe, rows);
      // Drop the logits before the peer starts.
      input.logits.data = new Float32Array(0);
      gc();

      progress(`PyTorch peer (${PYTHON} ${path.relative(ROOT, PEER_SCRIPT)}, ${TORCH_THREADS} threads)`);
      const peer = runPeer(
        {
          threads: TORCH_THREADS,
          logprobs: {
            shape: spec.shape,
            scale: SCALE,
            ...spec.fast,
            reused: true,
            agreement: { shape: CHECK, file: checkFile },
          },
        },
        path.join(dir, `peer-${spec.name}`),
        {},
      );
      if (!peer.ran) progress(`peer not run: ${peer.reason}`);
      if (peer.ran && index === 0) {
        const files = peer.report.logprobAgreement;
        const torchSmall = { logp: readFloat64(files.logp_file), grad: readFloat64(files.grad_file) };
        agreement = Object.entries(small).map(([id, result]) => compare(`${id} vs torch`, result, torchSmall));
        peerAgreement = files.reused_vs_autograd;
      }
      const gradientBytes = B * T * V * 4;
      if (peer.ran) {
        const lp = peer.report.logprobs;
        rows.push(...peerRow("fwd", "torch", lp.forward, 0));
        rows.push(...peerRow("fwd", "torch reused", lp.forward_reused, 0));
        rows.push(...peerRow("fwd_bwd", "torch", lp.forward_backward, gradientBytes));
        rows.push(...peerRow("fwd_bwd", "torch reused", lp.forward_backward_reused, 0));
      }
      sections.push({ spec, rows, peer, wasmReason, tfjsReason });
    }
    const loadEnd = os.loadavg();
    const agreed = agreement.length > 0 && agreement.every((a) => a.ok);

    // ── print ──
    const firstPeer = sections.find((s) => s.peer.ran)?.peer;
    console.log(
      `\nwasm backend benchmark${QUICK ? " (QUICK SMOKE RUN: small shapes, 1 run; not a measurement)" : ""}: node ${process.version}, ` +
        `${os.cpus().length} x ${os.cpus()[0]?.model ?? "unknown CPU"}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB`,
    );
    console.log(
      `  load average at start ${loadStart.map((v) => v.toFixed(2)).join(" ")}, at end ${loadEnd.map((v) => v.toFixed(2)).join(" ")}`,
    );
    console.log(`  wasm probe(): ${sections[0]?.wasmReason ?? "-"}`);
    console.log(`  tfjs-wasm: ${sections[0]?.tfjsReason ?? "-"}`);
    if (firstPeer?.ran)
      console.log(
        `  torch: PyTorch ${firstPeer.report.torch} CPU, ${firstPeer.report.threads} threads, Python ${firstPeer.report.python} (${PYTHON})`,
      );
    else console.log(`  torch: not run: ${firstPeer?.ran === false ? firstPeer.reason : "-"}`);

    console.log(
      `\nAgreement on [${CHECK.join(", ")}] (the same logits both sides; max |diff|, tolerance logp ${TOLERANCE.logp}, gradient ${TOLERANCE.grad}):`,
    );
    for (const a of agreement)
      console.log(
        `  ${a.what}: logp ${a.logp.toExponential(1)}, dlogits ${a.grad.toExponential(1)} ${a.ok ? "ok" : "NOT OK"}`,
      );
    if (peerAgreement !== undefined)
      console.log(
        `  torch reused vs torch autograd: logp ${peerAgreement.logp!.toExponential(1)}, dlogits ${peerAgreement.grad!.toExponential(1)} ` +
          `(_log_softmax_backward_data: ${peerAgreement.log_softmax_backward_data_grad!.toExponential(1)})`,
      );
    if (!agreed) console.log("  agreement not established: ratios are not printed");

    const targets: { what: string; ratio: number | undefined; target: number }[] = [];
    for (const { spec, rows } of sections) {
      const [B, T, V] = spec.shape;
      console.log(
        `\n[${B}, ${T}, ${V}] float32 (${((B * T * V * 4) / MiB).toFixed(0)} MiB): median and best ms of ${spec.fast.warmup}+${spec.fast.runs} ` +
          `(warm-up + timed) for wasm and torch, ${spec.slow.warmup}+${spec.slow.runs} for the reference and tfjs-wasm; a full GC before each. ` +
          "Ratios: our time / torch's (< 1: faster). Peak RSS MiB (+extra over the section's start, less a returned gradient).\n",
      );
      const rowsOut: string[][] = [];
      for (const pass of ["fwd", "fwd_bwd"] as const) {
        const torch = rows.find((r) => r.pass === pass && r.variant === "torch");
        const torchReused = rows.find((r) => r.pass === pass && r.variant === "torch reused");
        for (const row of rows.filter((r) => r.pass === pass)) {
          const isTorch = row.variant.startsWith("torch");
          rowsOut.push([
            `${PASS_NAMES[pass]} ${row.variant}${row.note === undefined ? "" : ` (${row.note})`}`,
            ms(row.timing.medianMs),
            row.memory === undefined ? "-" : ms(row.timing.minMs),
            isTorch ? "-" : ratio(row, torch, agreed),
            isTorch ? "-" : ratio(row, torchReused, agreed),
            rss(row),
          ]);
        }
        const target = pass === "fwd" ? TARGETS.forward : TARGETS.forwardBackward;
        // Forward + backward two ways: tokenLogProbs then tokenLogProbsBackward (two calls, the logits read twice),
        // and the one call that gives log-probs, loss and gradient (policyLossFromLogits, fused: read once).
        const variants =
          pass === "fwd"
            ? ["wasm 2t staged", "wasm 2t resident"]
            : [
                "wasm 2t staged",
                "wasm 2t resident",
                "wasm 2t staged policyLossFromLogits",
                "wasm 2t resident policyLossFromLogits",
              ];
        for (const variant of variants) {
          const row = rows.find((r) => r.pass === pass && r.variant === variant);
          targets.push({
            what: `[${B},${T},${V}] ${PASS_NAMES[pass]} ${variant} vs torch ${pass === "fwd" ? "as users call it" : "autograd"}`,
            ratio:
              row !== undefined && torch !== undefined && agreed
                ? torch.timing.medianMs / row.timing.medianMs
                : undefined,
            target,
          });
        }
      }
      console.log(
        table(["benchmark", "median ms", "best ms", "/ torch", "/ torch reused", "peak RSS MiB (+extra)"], rowsOut),
      );
    }
    console.log("\nTargets (speed-up over torch's median; printed, not asserted):");
    for (const t of targets)
      console.log(
        `  ${t.what}: ${t.ratio === undefined ? "n/a" : `${t.ratio.toFixed(2)}x`} (target >= ${t.target}x) ${
          t.ratio === undefined ? "not measured" : t.ratio >= t.target ? "met" : "NOT met"
        }`,
      );
    const totalS = (performance.now() - wallStart) / 1000;
    console.log(`\nWhole bench ${totalS.toFixed(0)} s.`);

    mkdirSync(path.dirname(OUT_FILE), { recursive: true });
    writeFileSync(
      OUT_FILE,
      `${JSON.stringify(
        {
          generatedAt: new Date().toISOString(),
          quick: QUICK,
          environment: {
            node: process.version,
            cpus: os.cpus().length,
            cpu: os.cpus()[0]?.model,
            totalMemGiB: os.totalmem() / 2 ** 30,
            loadAverage: { start: loadStart, end: loadEnd },
            python: firstPeer?.ran ? firstPeer.report.python : undefined,
            torch: firstPeer?.ran ? firstPeer.report.torch : undefined,
          },
          workload: { sections: SECTIONS, scale: SCALE, threads: THREADS, torchThreads: TORCH_THREADS, preset: PRESET },
          agreement: { tolerance: TOLERANCE, agreed, results: agreement, torchReusedVsAutograd: peerAgreement },
          sections: sections.map(({ spec, rows, peer, wasmReason, tfjsReason }) => ({
            name: spec.name,
            shape: spec.shape,
            wasmReason,
            tfjsReason,
            rows,
            peer: peer.ran ? { logprobs: peer.report.logprobs, wallS: peer.wallS } : { notRun: peer.reason },
          })),
          targets,
          totalS,
        },
        null,
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
