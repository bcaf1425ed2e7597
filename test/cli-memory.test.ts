import { spawn } from "node:child_process";
import {
  closeSync,
  createReadStream,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

// The CLI streams: its memory is bounded by the largest group, not by the file. Checked by running the built bin on
// two inputs, one ten times the other, and comparing the peak resident set size (VmHWM) of the two processes, which
// test/fixtures/cli/peak-rss.mjs (preloaded with --import) writes to a file when the process exits. Both runs copy
// every input rollout into its output record (--include-rollout), so an output held in memory shows as plainly as an
// input held in memory. Measured: 100–120 MB on 5 MB of input, 20–25 MB more on 50 MB (the garbage collector's heaps
// growing to their working size; no more on 150 MB); the bound, 1.5× + 8 MB, is 160–180 MB; holding every output
// line in memory took the 50 MB pipeline run to about 300 MB.
const root = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(root, "dist", "cli.js");
const PEAK_RSS = pathToFileURL(join(root, "test", "fixtures", "cli", "peak-rss.mjs")).href;
const MB = 1e6;

/**
 * About `megabytes` of JSON Lines: groups of 8 structured rollouts of about 1 KB each (a response text rides along,
 * as in a real trainer's rollouts), rewards mixed in most groups and all equal in some. One group is formatted
 * once and repeated with a new group id, so generating 50 MB takes well under a second.
 */
function generate(path: string, megabytes: number): { lines: number } {
  const outcomes = ["ok", "ok", "parse_error", "execution_error", "timeout"];
  const group = (allWrong: boolean) =>
    `${Array.from({ length: 8 }, (_, s) => {
      const toolCalls = Array.from({ length: s % 4 }, (_, c) => ({ outcome: outcomes[(s + c) % 5], name: "python" }));
      const reward = allWrong ? 0 : s % 3 === 0 ? 1 : 0;
      return JSON.stringify({
        id: `r${s}`,
        groupId: "@G@",
        reward,
        toolCalls,
        answers: 1 + (s % 5 === 4 ? 1 : 0),
        turns: toolCalls.length + 1,
        response: "x".repeat(800),
      });
    })
      .join("\n")
      .replaceAll('"@G@"', "@G@")}\n`;
  const templates = [group(false), group(true)];
  const fd = openSync(path, "w");
  let bytes = 0;
  let groups = 0;
  let chunk: string[] = [];
  while (bytes < megabytes * MB) {
    const text = templates[groups % 7 === 6 ? 1 : 0]!.replaceAll("@G@", String(groups));
    groups++;
    chunk.push(text);
    bytes += text.length;
    if (chunk.length === 256) {
      writeSync(fd, chunk.join(""));
      chunk = [];
    }
  }
  writeSync(fd, chunk.join(""));
  closeSync(fd);
  return { lines: groups * 8 };
}

interface Run {
  readonly peakRss: number;
  /** Lines written to stdout, or to the -o file. */
  readonly records: number;
}

/** Runs the CLI with `input` as FILE, or piped into its stdin; counts the records without keeping them. */
async function run(
  args: readonly string[],
  input: { file: string } | { stdin: string },
  output?: string,
): Promise<Run> {
  const rssFile = join(dir, `rss-${Math.random().toString(36).slice(2)}`);
  const child = spawn(
    process.execPath,
    [
      "--import",
      PEAK_RSS,
      CLI,
      ...args,
      "--quiet",
      ...(output ? ["-o", output] : []),
      ...("file" in input ? [input.file] : ["-"]),
    ],
    {
      env: { ...process.env, GRPO_ROC_PEAK_RSS_FILE: rssFile },
      stdio: ["stdin" in input ? "pipe" : "ignore", "pipe", "pipe"],
    },
  );
  if ("stdin" in input) createReadStream(input.stdin).pipe(child.stdin!);
  let newlines = 0;
  child.stdout!.on("data", (chunk: Buffer) => {
    for (let i = chunk.indexOf(10); i >= 0; i = chunk.indexOf(10, i + 1)) newlines++;
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  expect(stderr).toBe("");
  expect(code).toBe(0);
  if (output !== undefined) newlines = countLines(output);
  return { peakRss: Number(readFileSync(rssFile, "utf8")), records: newlines };
}

function countLines(path: string): number {
  const fd = openSync(path, "r");
  const buffer = Buffer.alloc(1 << 20);
  let lines = 0;
  try {
    for (let n: number; (n = readSync(fd, buffer, 0, buffer.length, null)) > 0; ) {
      for (let i = buffer.indexOf(10); i >= 0 && i < n; i = buffer.indexOf(10, i + 1)) lines++;
    }
  } finally {
    closeSync(fd);
  }
  return lines;
}

let dir = "";
const inputs = { small: { path: "", lines: 0 }, big: { path: "", lines: 0 } };

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  dir = mkdtempSync(join(tmpdir(), "grpo-roc-memory-"));
  for (const [name, megabytes] of [
    ["small", 5],
    ["big", 50],
  ] as const) {
    const path = join(dir, `${name}.jsonl`);
    inputs[name] = { path, ...generate(path, megabytes) };
  }
});

afterAll(() => {
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

const figures: string[] = [];
afterAll(() => {
  if (figures.length > 0) console.log(`peak RSS of the CLI:\n${figures.join("\n")}`);
});

/** The 10× larger input may use at most 1.5× the memory, plus 8 MB of slack for the garbage collector's moods. */
function expectBounded(command: string, small: Run, big: Run): void {
  figures.push(
    `  ${command}: ${(small.peakRss / MB).toFixed(0)} MB on 5 MB of input, ${(big.peakRss / MB).toFixed(0)} MB on 50 MB`,
  );
  expect(big.peakRss).toBeGreaterThan(0);
  expect(big.peakRss).toBeLessThan(1.5 * small.peakRss + 8 * MB);
}

describe("the CLI's memory does not grow with the input", () => {
  it("resample, from a file, to stdout, with every input rollout copied into its record", async () => {
    const args = ["resample", "--keep", "4", "--seed", "1", "--include-rollout"];
    const small = await run(args, { file: inputs.small.path });
    const big = await run(args, { file: inputs.big.path });
    expect([small.records, big.records]).toEqual([inputs.small.lines, inputs.big.lines]);
    expectBounded("resample", small, big);
  });

  it("pipeline, from stdin, with every input rollout copied into the -o file", async () => {
    const args = ["pipeline", "--keep", "4", "--seed", "1", "--include-rollout"];
    const small = await run(args, { stdin: inputs.small.path }, join(dir, "small-out.jsonl"));
    const big = await run(args, { stdin: inputs.big.path }, join(dir, "big-out.jsonl"));
    expect([small.records, big.records]).toEqual([inputs.small.lines, inputs.big.lines]);
    expectBounded("pipeline", small, big);
  });
});
