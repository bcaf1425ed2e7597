/**
 * Benchmark of `grpo-roc serve`: the round trip of one training step's selection (512 prompts × 32 structured
 * rollouts, keep 16, paper mode) through one long-lived server, from Node and from the Python client
 * (python/grpo_roc_client.py), against one `grpo-roc pipeline` process per call, which pays Node's start every step.
 * Then the server's memory over 1,000 requests (its RSS at the start and the end), and a request over the default
 * size limit, which must get an error response, not an out-of-memory crash.
 *
 * Run with `npm run bench:serve` (after `npm run build`: it runs dist/cli.js). Options: --runs N (default 30),
 * --memory-requests N (default 1000; 0 skips that section), --memory-groups N (prompts per request in the memory section, default 64),
 * --skip-limit. It prints figures, writes them to out/bench-serve.json, and asserts nothing about timing.
 */
import { type ChildProcessWithoutNullStreams, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { performance } from "node:perf_hooks";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import seedrandom from "seedrandom";
import { STRUCTURED, structuredRollouts } from "./rollouts.js";
import { median, ms, PYTHON, statusKiB, table } from "./shared.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CLI = path.join(ROOT, "dist", "cli.js");
const CLIENT_DIR = path.join(ROOT, "python");
const OUT_FILE = path.join(ROOT, "out", "bench-serve.json");
const WARMUP = 3;
/** The default --max-request-bytes, and a request a little over it. */
const DEFAULT_LIMIT = 256 * 2 ** 20;
const OVER_LIMIT = 300 * 2 ** 20;

const { values: flags } = parseArgs({
  options: {
    runs: { type: "string", default: "30" },
    "memory-requests": { type: "string", default: "1000" },
    "memory-groups": { type: "string", default: "64" },
    "skip-limit": { type: "boolean", default: false },
  },
});
/** A flag's value as a whole number of at least `min`; anything else stops the benchmark before it starts. */
function count(name: "runs" | "memory-requests" | "memory-groups", min: number): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < min) throw new Error(`--${name} must be a whole number ≥ ${min}`);
  return value;
}
const RUNS = count("runs", 1);
/** 0 skips the memory section. */
const MEMORY_REQUESTS = count("memory-requests", 0);
const MEMORY_GROUPS = count("memory-groups", 1);

interface Timings {
  readonly medianMs: number;
  readonly minMs: number;
  readonly samplesMs: readonly number[];
  /** The server's own time per request (elapsedMs): reading, selecting, writing; not the pipes or the client. */
  readonly serverMedianMs?: number | undefined;
}

const summarize = (samples: readonly number[], server?: readonly number[]): Timings => ({
  medianMs: median(samples),
  minMs: Math.min(...samples),
  samplesMs: samples,
  serverMedianMs: server === undefined ? undefined : median(server),
});

/** A request line over rollouts given as JSON Lines text, and the records' count it must answer with. */
function requestLine(id: number, jsonl: string, seed: number): string {
  const options = `{"keep":${STRUCTURED.keep},"seed":${seed}}`;
  const rollouts = jsonl.trimEnd().replaceAll("\n", ",");
  return `{"id":${id},"command":"pipeline","options":${options},"rollouts":[${rollouts}]}\n`;
}

/** A running server, asked from Node: each record line parsed, as a client would. */
class NodeClient {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;

  constructor(args: readonly string[] = []) {
    this.child = spawn(process.execPath, [CLI, "serve", ...args]);
    this.child.stderr.pipe(process.stderr);
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
  }

  /** Sends a request (a string, or chunks written as the pipe takes them); its records and last line. */
  async ask(request: string | Iterable<string>): Promise<{ records: unknown[]; last: Record<string, unknown> }> {
    if (typeof request === "string") this.child.stdin.write(request);
    else {
      for (const chunk of request) {
        if (!this.child.stdin.write(chunk)) await new Promise((resolve) => this.child.stdin.once("drain", resolve));
      }
    }
    const records: unknown[] = [];
    for (;;) {
      const next = await this.lines.next();
      if (next.done) throw new Error("grpo-roc serve ended");
      const line = JSON.parse(next.value) as Record<string, unknown>;
      if (line.type === "record") records.push(line.record);
      else return { records, last: line };
    }
  }

  rssMiB(field: "VmRSS" | "VmHWM" = "VmRSS"): number {
    return statusKiB(field, this.child.pid!) / 1024;
  }

  async end(): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) => this.child.on("exit", resolve));
    this.child.stdin.end();
    return exited;
  }
}

async function timeNode(jsonl: string): Promise<{ timings: Timings; records: unknown[] }> {
  const client = new NodeClient();
  const samples: number[] = [];
  const server: number[] = [];
  let records: unknown[] = [];
  for (let k = 0; k < WARMUP + RUNS; k++) {
    const request = requestLine(k, jsonl, k);
    const start = performance.now();
    const response = await client.ask(request);
    const elapsed = performance.now() - start;
    if (response.last.type !== "summary")
      throw new Error(`grpo-roc serve refused the request: ${JSON.stringify(response.last)}`);
    if (k === 0) records = response.records;
    if (k >= WARMUP) {
      samples.push(elapsed);
      server.push(response.last.elapsedMs as number);
    }
  }
  await client.end();
  return { timings: summarize(samples, server), records };
}

/** One `grpo-roc pipeline` process per call, reading the step's JSON Lines file: what each step pays without serve. */
async function timeProcesses(file: string): Promise<{ timings: Timings; records: unknown[] }> {
  const samples: number[] = [];
  let records: unknown[] = [];
  const runs = Math.max(5, Math.ceil(RUNS / 3));
  for (let k = 0; k < WARMUP + runs; k++) {
    const start = performance.now();
    const stdout = await runPipeline(["pipeline", "-k", String(STRUCTURED.keep), "--seed", String(k), "-q", file]);
    const parsed = stdout
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line) as unknown);
    const elapsed = performance.now() - start;
    if (k === 0) records = parsed;
    if (k >= WARMUP) samples.push(elapsed);
  }
  return { timings: summarize(samples), records };
}

function runPipeline(args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args]);
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stderr.pipe(process.stderr);
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(Buffer.concat(chunks).toString("utf8")) : reject(new Error(`pipeline exited ${code}`)),
    );
  });
}

/** The Python client's round trip, timed in Python: json.dumps of the rollouts, the pipes, and parsing the records. */
const PYTHON_CLIENT = `
import json, sys, time
sys.path.insert(0, sys.argv[1])
from grpo_roc_client import GrpoRocServer
with open(sys.argv[2], encoding="utf-8") as f:
    rollouts = json.load(f)
warmup, runs, keep = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
times, server_ms = [], []
with GrpoRocServer([sys.argv[6], sys.argv[7], "serve"]) as server:
    for k in range(warmup + runs):
        start = time.perf_counter()
        response = server.pipeline(rollouts, keep=keep, seed=k)
        elapsed = (time.perf_counter() - start) * 1000
        assert len(response.records) == len(rollouts)
        if k == 0:
            first = response.records
        if k >= warmup:
            times.append(elapsed)
            server_ms.append(response.elapsed_ms)
print(json.dumps({"times": times, "server": server_ms, "first": first, "python": sys.version.split()[0]}))
`;

async function timePython(rolloutsFile: string): Promise<{ timings: Timings; records: unknown[]; python: string }> {
  const stdout = await new Promise<string>((resolve, reject) => {
    const child = spawn(
      PYTHON,
      [
        "-c",
        PYTHON_CLIENT,
        CLIENT_DIR,
        rolloutsFile,
        String(WARMUP),
        String(RUNS),
        String(STRUCTURED.keep),
        process.execPath,
        CLI,
      ],
      { env: { ...process.env, PYTHONDONTWRITEBYTECODE: "1" } },
    );
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => chunks.push(chunk));
    child.stderr.pipe(process.stderr);
    child.on("error", reject);
    child.on("exit", (code) =>
      code === 0 ? resolve(Buffer.concat(chunks).toString("utf8")) : reject(new Error(`${PYTHON} exited ${code}`)),
    );
  });
  const report = JSON.parse(stdout) as { times: number[]; server: number[]; first: unknown[]; python: string };
  return { timings: summarize(report.times, report.server), records: report.first, python: report.python };
}

/** The server's RSS after its first request and after the last of `count`, with samples in between. */
async function memoryOverRequests(count: number, groups: number) {
  const rollouts = structuredRollouts(seedrandom.alea("grpo-roc bench: serve memory")).slice(
    0,
    groups * STRUCTURED.perGroup,
  );
  const jsonl = `${rollouts.map((r) => JSON.stringify(r)).join("\n")}\n`;
  const client = new NodeClient();
  const samples: { request: number; rssMiB: number }[] = [];
  const start = performance.now();
  for (let k = 1; k <= count; k++) {
    const response = await client.ask(requestLine(k, jsonl, k));
    if (response.records.length !== rollouts.length) throw new Error("a record is missing");
    if (k === 1 || k % Math.max(1, Math.floor(count / 10)) === 0 || k === count) {
      samples.push({ request: k, rssMiB: client.rssMiB() });
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const peakMiB = client.rssMiB("VmHWM");
  await client.end();
  return { requests: count, rolloutsPerRequest: rollouts.length, seconds, samples, peakMiB };
}

/** A request line over the default limit, streamed in chunks, then an ordinary request on the same server. */
async function overTheLimit(jsonl: string) {
  const client = new NodeClient();
  await client.ask(requestLine(0, jsonl, 0));
  const before = client.rssMiB();
  const filler = { groupId: "filler", reward: 1, toolCalls: [{ outcome: "ok" }], answers: 1, turns: 2 };
  const rollout = `${JSON.stringify(filler)},`;
  const chunk = rollout.repeat(Math.ceil(2 ** 20 / rollout.length));
  function* request(): Iterable<string> {
    yield '{"id":"too-big","command":"pipeline","options":{"keep":16,"seed":1},"rollouts":[';
    for (let sent = 0; sent < OVER_LIMIT; sent += chunk.length) yield chunk;
    yield `${rollout.slice(0, -1)}]}\n`;
  }
  const start = performance.now();
  const refused = await client.ask(request());
  const seconds = (performance.now() - start) / 1000;
  const after = client.rssMiB();
  const peak = client.rssMiB("VmHWM");
  const next = await client.ask(requestLine(1, jsonl, 1));
  const code = await client.end();
  return {
    bytes: OVER_LIMIT,
    response: refused.last,
    seconds,
    rssBeforeMiB: before,
    rssAfterMiB: after,
    peakMiB: peak,
    nextServed: next.last.type === "summary",
    exitCode: code,
  };
}

function sameRecords(a: readonly unknown[], b: readonly unknown[]): boolean {
  return a.length === b.length && JSON.stringify(a) === JSON.stringify(b);
}

async function main(): Promise<void> {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` first");
  const rollouts = structuredRollouts(seedrandom.alea("grpo-roc bench: structured"));
  const jsonl = `${rollouts.map((r) => JSON.stringify(r)).join("\n")}\n`;
  const dir = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-bench-serve-"));
  try {
    const jsonlFile = path.join(dir, "rollouts.jsonl");
    const jsonFile = path.join(dir, "rollouts.json");
    writeFileSync(jsonlFile, jsonl);
    writeFileSync(jsonFile, JSON.stringify(rollouts));
    const shape = `${STRUCTURED.groups} × ${STRUCTURED.perGroup} → ${STRUCTURED.keep}`;
    console.log(
      `grpo-roc serve: ${shape} structured rollouts (${(requestLine(0, jsonl, 0).length / 1e6).toFixed(2)} MB a ` +
        `request), ${WARMUP} warm-up and ${RUNS} timed calls; Node ${process.version}, ${os.cpus().length} CPUs`,
    );

    const node = await timeNode(jsonl);
    const python = await timePython(jsonFile);
    const processes = await timeProcesses(jsonlFile);
    const agree = sameRecords(node.records, processes.records) && sameRecords(python.records, processes.records);
    console.log(`records of serve (Node and Python clients) equal the pipeline command's: ${agree}`);
    if (!agree) process.exitCode = 1;

    const row = (name: string, t: Timings) => [
      name,
      ms(t.medianMs),
      ms(t.minMs),
      t.serverMedianMs === undefined ? "–" : ms(t.serverMedianMs),
      `${(processes.timings.medianMs / t.medianMs).toFixed(2)}×`,
    ];
    console.log(
      `\n${table(
        ["round trip per call", "median ms", "best ms", "server's own ms", "speed-up over a process"],
        [
          row("serve, Node client", node.timings),
          row(`serve, Python client (${python.python})`, python.timings),
          row("one pipeline process per call", processes.timings),
        ],
      )}`,
    );
    console.log(`target: ≤ 150 ms per round trip`);

    const memory = MEMORY_REQUESTS === 0 ? undefined : await memoryOverRequests(MEMORY_REQUESTS, MEMORY_GROUPS);
    if (memory !== undefined) {
      console.log(
        `\nmemory over ${memory.requests} requests of ${memory.rolloutsPerRequest} rollouts ` +
          `(${memory.seconds.toFixed(0)} s): ` +
          `server RSS ${memory.samples[0]!.rssMiB.toFixed(0)} MiB after the first, ` +
          `${memory.samples.at(-1)!.rssMiB.toFixed(0)} MiB after the last (peak ${memory.peakMiB.toFixed(0)} MiB); ` +
          `samples: ${memory.samples.map((s) => `${s.request}: ${s.rssMiB.toFixed(0)}`).join(", ")}`,
      );
    }

    const limit = flags["skip-limit"] ? undefined : await overTheLimit(jsonl);
    if (limit !== undefined) {
      const error =
        (limit.response as { error?: { message?: string } }).error?.message ?? JSON.stringify(limit.response);
      console.log(
        `\na request of ${(limit.bytes / 2 ** 20).toFixed(0)} MiB (default limit ${DEFAULT_LIMIT / 2 ** 20} MiB), ` +
          `streamed in ${limit.seconds.toFixed(1)} s: ${limit.response.type} response "${error}"; server RSS ` +
          `${limit.rssBeforeMiB.toFixed(0)} MiB before, ${limit.rssAfterMiB.toFixed(0)} MiB after (peak ` +
          `${limit.peakMiB.toFixed(0)} MiB); the next request served: ${limit.nextServed}; exit code ${limit.exitCode}`,
      );
    }

    mkdirSync(path.dirname(OUT_FILE), { recursive: true });
    const figures = {
      date: new Date().toISOString(),
      node: process.version,
      cpus: os.cpus().length,
      loadAverage: os.loadavg(),
      workload: { ...STRUCTURED, rollouts: rollouts.length, warmup: WARMUP, runs: RUNS },
      recordsAgree: agree,
      nodeClient: node.timings,
      pythonClient: { ...python.timings, python: python.python },
      processPerCall: processes.timings,
      memory,
      overTheLimit: limit,
    };
    writeFileSync(OUT_FILE, `${JSON.stringify(figures, null, 2)}\n`);
    console.log(`\nfigures written to ${path.relative(ROOT, OUT_FILE)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
