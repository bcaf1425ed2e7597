/**
 * Benchmark of Resample-on-Correct: RoC + advantages on structured rollouts (paper and reference modes), the
 * transcript parser on rStar2-sized transcripts, and reference-mode RoC on transcripts end to end, each beside a
 * Python peer (bench/peer_roc.py) that follows rStar2-Agent's reference code.
 *
 * Run with `npm run bench`. It prints figures and writes them to out/bench-roc.json; it asserts nothing about timing.
 * Inputs are generated from fixed seeds, so every run measures the same work.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import seedrandom from "seedrandom";
import {
  parseTranscript,
  penalties,
  rocPipeline,
  rocPresets,
  rolloutsSchema,
  DEFAULT_PENALTY_OPTIONS,
  type PipelineResult,
  type Rollout,
} from "../src/index.js";
import {
  ANSWER_COUNT_WEIGHTS,
  intBetween,
  pick,
  type Rng,
  STRUCTURED,
  structuredRollouts,
  weighted,
} from "./rollouts.js";

/** rStar2 responses run to 8K-12K tokens: the reasoning budget below plus ~2.4 KB of calls and responses is ~30 KB. */
const TRANSCRIPTS = { count: 500, minReasoningBytes: 22_000, maxReasoningBytes: 34_000 } as const;
const END_TO_END_GROUPS = 64;
const WARMUP = 3;
// The structured pipeline allocates heavily, so its times swing with GC: more runs steady the median.
const RUNS = { structured: 40, parse: 15, endToEnd: 8 } as const;
const MB = 1e6;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const PEER_SCRIPT = fileURLToPath(new URL("./peer_roc.py", import.meta.url));
const OUT_FILE = path.join(ROOT, "out", "bench-roc.json");

// ── deterministic inputs ─────────────────────────────────────────────────────────────────────────────────────

const WORDS = (
  "let us check whether the sum over all divisors d of n is prime so we compute $x^2 + y^2 = z^2$ then " +
  "\\frac{a}{b} modulo 7 gives a remainder hence the bound holds for every integer k therefore we verify " +
  "with code carefully since the error term vanishes and $\\sum_{i=1}^{n} i = n(n+1)/2$ wait no recount"
).split(" ");

const CODE_SNIPPETS = [
  "from sympy import divisors\nprint(sum(divisors(2024)))",
  "import math\nprint([n for n in range(1, 200) if math.gcd(n, 84) == 1][:40])",
  "from itertools import permutations\nprint(sum(1 for p in permutations(range(7)) if all(p[i] != i for i in range(7))))",
  "def f(n):\n    return n * (n + 1) // 2\nprint(f(10**6) % 1000)",
];

/** The rStar2-Agent sandbox's wordings, including a clean run that prints "error" (the reference's false positive). */
const RESPONSE_KINDS: readonly (readonly [(rng: Rng) => string, number])[] = [
  [
    (rng) =>
      `Tool call success\nstdout: [${Array.from({ length: intBetween(rng, 1, 40) }, () => intBetween(rng, 0, 9999)).join(", ")}]\n`,
    0.55,
  ],
  [(rng) => `Tool call success\nstdout: the error term is ${rng().toFixed(6)}\n`, 0.08],
  [
    (rng) =>
      `Tool call failure\nreason: runtime\nstderr: Traceback (most recent call last):\n  File "<string>", line ${intBetween(rng, 1, 9)}, in <module>\nZeroDivisionError: division by zero`,
    0.15,
  ],
  [() => "Tool call failure\nreason: worker_timeout\nstdout: Suicide from timeout.", 0.08],
  [
    (rng) => `Failed to decode tool call: Expecting ',' delimiter: line 1 column ${intBetween(rng, 2, 80)} (char 19)`,
    0.09,
  ],
  [() => "Error when executing tool: unknown tool", 0.05],
];

function reasoning(rng: Rng, bytes: number): string {
  const words: string[] = [];
  let length = 0;
  while (length < bytes) {
    const word = words.length % 80 === 79 ? "\n\n" : pick(rng, WORDS);
    words.push(word);
    length += word.length + 1;
  }
  return words.join(" ");
}

function answers(rng: Rng): string {
  const text = `<answer>The answer is \\boxed{${intBetween(rng, 0, 999)}}</answer>`.repeat(
    weighted(rng, ANSWER_COUNT_WEIGHTS),
  );
  // A few responses end with the last answer tag left open: the format penalty's malformed case.
  return text.length > 0 && rng() < 0.05 ? text.slice(0, -"</answer>".length) : text;
}

/** One Hermes-format response: it starts inside the first assistant turn, as rStar2's responses do. */
function transcript(rng: Rng): string {
  const calls = intBetween(rng, 3, 10);
  const perTurn = Math.round(
    intBetween(rng, TRANSCRIPTS.minReasoningBytes, TRANSCRIPTS.maxReasoningBytes) / (calls + 1),
  );
  // Some responses carry their own first header, which changes the reference turn count.
  const parts = rng() < 0.1 ? ["<|im_start|>assistant\n"] : [];
  for (let c = 0; c < calls; c++) {
    const call = JSON.stringify({
      name: "python_code_with_standard_io",
      arguments: { code: pick(rng, CODE_SNIPPETS), input: "" },
    });
    parts.push(
      `<reason>${reasoning(rng, perTurn)}</reason><tool_call>${call}</tool_call><|im_end|>\n`,
      `<|im_start|>user\n<tool_response>${weighted(rng, RESPONSE_KINDS)(rng)}</tool_response><|im_end|>\n<|im_start|>assistant\n`,
    );
  }
  parts.push(`<reason>${reasoning(rng, perTurn)}</reason>`, answers(rng), "<|im_end|>");
  return parts.join("");
}

/** A transcript rollout as the peer receives it: the transcript by index, so the temp file holds each text once. */
interface TranscriptRef {
  readonly groupId: string;
  readonly reward: number;
  readonly transcript: number;
}

function transcriptRefs(rng: Rng): TranscriptRef[] {
  const refs: TranscriptRef[] = [];
  for (let g = 0; g < END_TO_END_GROUPS; g++) {
    const successRate = rng();
    for (let j = 0; j < STRUCTURED.perGroup; j++) {
      refs.push({
        groupId: `prompt-${g}`,
        reward: rng() < successRate ? 1 : 0,
        transcript: intBetween(rng, 0, TRANSCRIPTS.count - 1),
      });
    }
  }
  return refs;
}

// ── measuring ────────────────────────────────────────────────────────────────────────────────────────────────

interface Timing {
  readonly medianMs: number;
  readonly minMs: number;
  readonly runs: number;
}

interface MemoryFigures {
  readonly section: string;
  /** Highest RSS sampled between runs of the section. */
  readonly rssPeakMB: number;
  readonly heapUsedMB: number;
  /** The OS high-water mark so far: it also catches peaks inside a run, which sampling between runs misses. */
  readonly maxRssMB: number;
}

/** The benchmark code is synchronous, so a timer could never fire: RSS is sampled between runs instead. */
class MemoryLog {
  readonly sections: MemoryFigures[] = [];
  private peak = 0;

  sample(): void {
    this.peak = Math.max(this.peak, process.memoryUsage.rss());
  }

  endSection(section: string): void {
    this.sample();
    this.sections.push({
      section,
      rssPeakMB: this.peak / 2 ** 20,
      heapUsedMB: process.memoryUsage().heapUsed / 2 ** 20,
      maxRssMB: process.resourceUsage().maxRSS / 2 ** 10,
    });
    this.peak = 0;
  }
}

const memory = new MemoryLog();

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Median and best wall time of `runs` calls after WARMUP calls; also returns the last result, for the peer check. */
function time<T>(fn: () => T, runs: number): { timing: Timing; result: T } {
  let result = fn(); // the first of the WARMUP calls
  for (let i = 1; i < WARMUP; i++) result = fn();
  memory.sample();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    result = fn();
    samples.push(performance.now() - start);
    memory.sample();
  }
  return { timing: { medianMs: median(samples), minMs: Math.min(...samples), runs }, result };
}

function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}

// ── the Python peer ──────────────────────────────────────────────────────────────────────────────────────────

interface PeerTiming {
  readonly median_ms: number;
  readonly min_ms: number;
  readonly runs: number;
}

/** What bench/peer_roc.py prints. */
interface PeerReport {
  readonly python: string;
  readonly max_rss_mb: number;
  readonly timings: {
    readonly parse_reference: PeerTiming;
    readonly roc_structured: PeerTiming;
    readonly roc_transcripts: PeerTiming;
  };
  readonly results: {
    readonly p_err: number[];
    readonly p_format: number[];
    readonly kept_structured: number[];
    readonly advantages_structured: number[];
    readonly kept_transcripts: number[];
  };
}

type PeerOutcome =
  | { readonly ran: true; readonly report: PeerReport; readonly wallS: number }
  | { readonly ran: false; readonly reason: string };

function runPeer(
  transcripts: readonly string[],
  structured: readonly Rollout[],
  refs: readonly TranscriptRef[],
): PeerOutcome {
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-"));
  try {
    const input = path.join(dir, "input.json");
    writeFileSync(
      input,
      JSON.stringify({ keepPerGroup: STRUCTURED.keep, runs: RUNS, transcripts, structured, transcriptRollouts: refs }),
    );
    const start = performance.now();
    const child = spawnSync("python3", [PEER_SCRIPT, input], {
      encoding: "utf8",
      maxBuffer: 64 * 2 ** 20,
      timeout: 300_000,
    });
    const wallS = (performance.now() - start) / 1000;
    if (child.error !== undefined) return { ran: false, reason: `python3 could not run: ${child.error.message}` };
    if (child.status !== 0) {
      return {
        ran: false,
        reason: `python3 exited with ${child.status ?? child.signal}: ${child.stderr.trim().slice(-500)}`,
      };
    }
    try {
      return { ran: true, report: JSON.parse(child.stdout) as PeerReport, wallS };
    } catch (error) {
      return {
        ran: false,
        reason: `unreadable peer output (${(error as Error).message}): ${child.stdout.slice(0, 200)}`,
      };
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Agreement {
  /** Transcripts whose JS reference-dialect p_err or p_format differs from the peer's regexes. */
  readonly penaltyMismatches: number;
  readonly structuredKeptEqual: boolean;
  readonly structuredAdvantageMaxAbsDiff: number;
  readonly transcriptKeptEqual: boolean;
}

/** The timings only compare like with like if both sides computed the same thing: check that they did. */
function agreement(
  peer: PeerReport,
  transcripts: readonly string[],
  structured: PipelineResult,
  endToEnd: PipelineResult,
): Agreement {
  let penaltyMismatches = 0;
  transcripts.forEach((text, i) => {
    const p = penalties(parseTranscript(text, "reference"), DEFAULT_PENALTY_OPTIONS);
    if (p.pErr !== peer.results.p_err[i] || p.pFormat !== peer.results.p_format[i]) penaltyMismatches++;
  });
  const sameIndices = (a: ArrayLike<number>, b: readonly number[]) =>
    a.length === b.length && Array.from(a).every((v, i) => v === b[i]);
  const advantageDiff = Array.from(structured.advantages, (a, i) =>
    Math.abs(a - (peer.results.advantages_structured[i] ?? NaN)),
  );
  return {
    penaltyMismatches,
    structuredKeptEqual: sameIndices(structured.kept, peer.results.kept_structured),
    structuredAdvantageMaxAbsDiff: advantageDiff.length === 0 ? 0 : Math.max(...advantageDiff),
    transcriptKeptEqual: sameIndices(endToEnd.kept, peer.results.kept_transcripts),
  };
}

// ── report ───────────────────────────────────────────────────────────────────────────────────────────────────

interface Row {
  readonly name: string;
  readonly js: Timing;
  /** Work per call, for the throughput column: rollouts, and bytes of transcript where there are any. */
  readonly rollouts: number;
  readonly bytes?: number;
  readonly peer?: PeerTiming | undefined;
}

function rate(row: Row, ms: number): string {
  const perSecond = 1000 / ms;
  const rollouts = `${Math.round(row.rollouts * perSecond).toLocaleString("en-US")} rollouts/s`;
  return row.bytes === undefined ? rollouts : `${((row.bytes * perSecond) / MB).toFixed(1)} MB/s, ${rollouts}`;
}

function table(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, c) => Math.max(header.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join(" | ");
  return [line(headers), widths.map((w) => "-".repeat(w)).join("-|-"), ...rows.map(line)].join("\n");
}

function timingTable(rows: readonly Row[]): string {
  const ms = (value: number) => value.toFixed(1);
  return table(
    [
      "benchmark",
      "JS median ms",
      "JS min ms",
      "JS throughput",
      "Py median ms",
      "Py min ms",
      "Py throughput",
      "JS/Py time",
    ],
    rows.map((row) => [
      row.name,
      ms(row.js.medianMs),
      ms(row.js.minMs),
      rate(row, row.js.medianMs),
      row.peer === undefined ? "-" : ms(row.peer.median_ms),
      row.peer === undefined ? "-" : ms(row.peer.min_ms),
      row.peer === undefined ? "-" : rate(row, row.peer.median_ms),
      row.peer === undefined ? "-" : `${(row.js.medianMs / row.peer.median_ms).toFixed(2)}x`,
    ]),
  );
}

function memoryTable(sections: readonly MemoryFigures[]): string {
  const mb = (value: number) => value.toFixed(0);
  return table(
    ["section", "RSS peak MB (sampled)", "heapUsed MB after", "OS max RSS MB so far"],
    sections.map((s) => [s.section, mb(s.rssPeakMB), mb(s.heapUsedMB), mb(s.maxRssMB)]),
  );
}

// ── main ─────────────────────────────────────────────────────────────────────────────────────────────────────

interface Inputs {
  readonly structured: Rollout[];
  readonly transcripts: string[];
  readonly refs: TranscriptRef[];
  readonly transcriptRollouts: Rollout[];
  readonly transcriptBytes: number;
  readonly endToEndBytes: number;
}

function generateInputs(): Inputs {
  const structured = structuredRollouts(seedrandom.alea("grpo-roc bench: structured"));
  const transcriptRng = seedrandom.alea("grpo-roc bench: transcripts");
  const transcripts = Array.from({ length: TRANSCRIPTS.count }, () => transcript(transcriptRng));
  const refs = transcriptRefs(seedrandom.alea("grpo-roc bench: transcript groups"));
  const bytes = (text: string) => Buffer.byteLength(text);
  return {
    structured,
    transcripts,
    refs,
    transcriptRollouts: refs.map((ref) => ({
      groupId: ref.groupId,
      reward: ref.reward,
      transcript: transcripts[ref.transcript]!,
    })),
    transcriptBytes: transcripts.reduce((sum, text) => sum + bytes(text), 0),
    endToEndBytes: refs.reduce((sum, ref) => sum + bytes(transcripts[ref.transcript]!), 0),
  };
}

function measure(inputs: Inputs) {
  const { structured, transcripts, transcriptRollouts } = inputs;
  const keep = STRUCTURED.keep;

  progress("structured RoC + advantages");
  const paper = time(
    () => rocPipeline(structured, { roc: { ...rocPresets.paper, keepPerGroup: keep, seed: 1 } }),
    RUNS.structured,
  );
  const reference = time(
    () => rocPipeline(structured, { roc: { ...rocPresets.reference, keepPerGroup: keep } }),
    RUNS.structured,
  );
  const validation = time(() => rolloutsSchema.safeParse(structured), RUNS.structured);
  memory.endSection("structured RoC");

  progress("transcript parser");
  const parseAll = (dialect: "strict" | "reference") => () => transcripts.map((text) => parseTranscript(text, dialect));
  const strict = time(parseAll("strict"), RUNS.parse);
  const referenceParse = time(parseAll("reference"), RUNS.parse);
  memory.endSection("transcript parsing");

  progress("transcript RoC end to end");
  const endToEnd = time(
    () => rocPipeline(transcriptRollouts, { roc: { ...rocPresets.reference, keepPerGroup: keep } }),
    RUNS.endToEnd,
  );
  memory.endSection("transcript RoC end to end");

  return { paper, reference, validation, strict, referenceParse, endToEnd };
}

function main(): void {
  progress("generating inputs");
  const inputs = generateInputs();
  const { structured, transcripts, transcriptRollouts } = inputs;
  memory.endSection("generate inputs");

  const js = measure(inputs);

  progress("python peer");
  const peer = runPeer(transcripts, structured, inputs.refs);
  memory.endSection("python peer (node side)");
  const peerTimings = peer.ran ? peer.report.timings : undefined;

  const shape = `${STRUCTURED.groups}x${STRUCTURED.perGroup}->${STRUCTURED.keep}`;
  const sizeLabel = `${transcripts.length} x ${(inputs.transcriptBytes / transcripts.length / 1000).toFixed(1)} KB`;
  const rows: Row[] = [
    { name: `RoC+adv paper, ${shape}`, js: js.paper.timing, rollouts: structured.length },
    {
      name: `RoC+adv reference, ${shape}`,
      js: js.reference.timing,
      rollouts: structured.length,
      peer: peerTimings?.roc_structured,
    },
    { name: "  of which: rolloutsSchema.safeParse", js: js.validation.timing, rollouts: structured.length },
    {
      name: `parseTranscript strict, ${sizeLabel}`,
      js: js.strict.timing,
      rollouts: transcripts.length,
      bytes: inputs.transcriptBytes,
    },
    {
      name: `parseTranscript reference, ${sizeLabel}`,
      js: js.referenceParse.timing,
      rollouts: transcripts.length,
      bytes: inputs.transcriptBytes,
      peer: peerTimings?.parse_reference,
    },
    {
      name: `RoC+adv reference, ${END_TO_END_GROUPS}x${STRUCTURED.perGroup}->${STRUCTURED.keep} transcripts`,
      js: js.endToEnd.timing,
      rollouts: transcriptRollouts.length,
      bytes: inputs.endToEndBytes,
      peer: peerTimings?.roc_transcripts,
    },
  ];
  // Validation is timed apart from the pipelines and all three swing with GC, so give the share by median and by best run.
  const share = (pipeline: Timing) => ({
    median: js.validation.timing.medianMs / pipeline.medianMs,
    best: js.validation.timing.minMs / pipeline.minMs,
  });
  const validationShare = { ofPaper: share(js.paper.timing), ofReference: share(js.reference.timing) };
  const percent = (fraction: number) => `${(fraction * 100).toFixed(0)}%`;

  console.log(
    `\nGRPO-RoC benchmark: node ${process.version}, ${os.cpus().length} x ${os.cpus()[0]?.model ?? "unknown CPU"}`,
  );
  console.log(
    `median of ${RUNS.structured} / ${RUNS.parse} / ${RUNS.endToEnd} runs (structured / parse / end to end) ` +
      `after ${WARMUP} warm-up runs; MB = 10^6 bytes; JS/Py time < 1 means the library is faster\n`,
  );
  console.log(timingTable(rows));
  console.log(
    `\nvalidation alone (zod), median / best run: ${percent(validationShare.ofPaper.median)} / ${percent(validationShare.ofPaper.best)} ` +
      `of the paper-mode pipeline, ${percent(validationShare.ofReference.median)} / ${percent(validationShare.ofReference.best)} of the reference-mode one`,
  );
  const metrics = js.reference.result.roc.metrics;
  console.log(
    `structured reference RoC: ${metrics.groups.in} groups, ${metrics.groups.droppedEqualRewards} dropped (equal rewards), ` +
      `${metrics.rollouts.kept} rollouts kept`,
  );

  let peerFigures: object;
  if (peer.ran) {
    const check = agreement(peer.report, transcripts, js.reference.result, js.endToEnd.result);
    console.log(
      `\npeer: Python ${peer.report.python} (standard library re), wall ${peer.wallS.toFixed(1)} s, max RSS ${peer.report.max_rss_mb.toFixed(0)} MB`,
    );
    console.log(
      `peer agreement: penalties differ on ${check.penaltyMismatches} of ${transcripts.length} transcripts; ` +
        `structured kept ${check.structuredKeptEqual ? "identical" : "DIFFERENT"}, ` +
        `advantages max |diff| ${check.structuredAdvantageMaxAbsDiff.toExponential(1)}; ` +
        `transcript kept ${check.transcriptKeptEqual ? "identical" : "DIFFERENT"}`,
    );
    peerFigures = { python: peer.report.python, wallS: peer.wallS, maxRssMB: peer.report.max_rss_mb, agreement: check };
  } else {
    console.log(`\npeer not run: ${peer.reason}`);
    peerFigures = { notRun: peer.reason };
  }
  console.log(`\n${memoryTable(memory.sections)}`);

  writeFigures({
    generatedAt: new Date().toISOString(),
    environment: {
      node: process.version,
      platform: `${process.platform}-${process.arch}`,
      cpus: os.cpus().length,
      cpu: os.cpus()[0]?.model,
    },
    workload: {
      structured: { ...STRUCTURED, rollouts: structured.length },
      transcripts: { count: transcripts.length, bytes: inputs.transcriptBytes },
      endToEnd: { groups: END_TO_END_GROUPS, rollouts: transcriptRollouts.length, bytes: inputs.endToEndBytes },
      warmup: WARMUP,
      runs: RUNS,
    },
    results: rows.map((row) => ({
      name: row.name.trim(),
      js: row.js,
      jsRate: rate(row, row.js.medianMs),
      ...(row.peer && {
        python: row.peer,
        pythonRate: rate(row, row.peer.median_ms),
        jsOverPython: row.js.medianMs / row.peer.median_ms,
      }),
    })),
    validationShare,
    peer: peerFigures,
    memory: memory.sections,
  });
}

function writeFigures(figures: object): void {
  mkdirSync(path.dirname(OUT_FILE), { recursive: true });
  writeFileSync(OUT_FILE, `${JSON.stringify(figures, null, 2)}\n`);
  console.log(`\nfigures written to ${path.relative(ROOT, OUT_FILE)}`);
}

main();
