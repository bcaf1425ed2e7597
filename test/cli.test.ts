import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  parseTranscript,
  penalties,
  resampleOnCorrect,
  rocPipeline,
  rocPresets,
  type Rollout,
} from "../src/index.js";
import { Progress, progressMode } from "../src/cli/progress.js";

// These tests run the built bin (dist/cli.js) as a child process, the way a trainer does; `npm test` builds first.
// Expected values are never written down: each is what the library gives when called on the same rollouts.
const root = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(root, "dist", "cli.js");
const FIXTURES = join(root, "test", "fixtures", "cli");
const fixture = (name: string) => join(FIXTURES, name);

type Record = { [key: string]: unknown; line: number; dropped: boolean };

interface Result {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly records: Record[];
}

function cli(args: readonly string[], input = ""): Result {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  return {
    code: result.status,
    stdout: result.stdout,
    stderr: result.stderr,
    // Parsed on demand: help and errors are not JSON Lines.
    get records() {
      return parseJsonl(result.stdout);
    },
  };
}

function parseJsonl(text: string): Record[] {
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Record);
}

function load(name: string): Rollout[] {
  return parseJsonl(readFileSync(fixture(name), "utf8")) as unknown as Rollout[];
}

const toJsonl = (rows: readonly unknown[]) =>
  `${rows.map((row) => (typeof row === "string" ? row : JSON.stringify(row))).join("\n")}\n`;
const nan = (value: number) => (Number.isNaN(value) ? null : value);
const tempDirs: string[] = [];
const tempDir = () => {
  mkdirSync(join(root, "out"), { recursive: true });
  tempDirs.push(mkdtempSync(join(root, "out", "cli-")));
  return tempDirs.at(-1)!;
};
afterAll(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  const newest = (dir: string): number =>
    Math.max(
      ...readdirSync(dir, { withFileTypes: true }).map((e) =>
        e.isDirectory() ? newest(join(dir, e.name)) : statSync(join(dir, e.name)).mtimeMs,
      ),
    );
  if (statSync(CLI).mtimeMs < newest(join(root, "src", "cli")))
    throw new Error("dist/cli.js is older than src/cli: run `npm run build`");
});

describe("grpo-roc --help", () => {
  it("lists the commands, the input contract and the exit codes", () => {
    const { code, stdout } = cli(["--help"]);
    expect(code).toBe(0);
    for (const name of ["penalties", "resample", "advantages", "pipeline"]) expect(stdout).toContain(`  ${name}`);
    expect(stdout).toMatch(/Exit codes: 0 ok, 1 invalid input/);
  });

  it.each([
    [
      "penalties",
      ["--dialect", "--failure-kinds", "--error-weight", "--no-tool-call-penalty", "--skip-invalid", "--output"],
    ],
    [
      "resample",
      [
        "--keep",
        "--mode",
        "--seed",
        "--undersized",
        "--min-negatives",
        "--kept-only",
        "--repeated-groups",
        "--summary",
      ],
    ],
    [
      "advantages",
      ["--preset", "--estimator", "--no-std", "--std-scope", "--epsilon", "--singleton", "trlBatch", "verlRloo"],
    ],
    [
      "pipeline",
      ["--keep", "--seed", "--preset", "--dialect", "--kept-only", "--progress", "--quiet", "contiguous lines"],
    ],
  ])("%s --help documents its options", (name, expected) => {
    const { code, stdout } = cli([name, "--help"]);
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: grpo-roc ${name} \\[options\\] \\[FILE\\]`));
    for (const text of expected) expect(stdout).toContain(text);
    expect(cli(["help", name]).stdout).toBe(stdout);
  });

  it.each([
    [["resample", "--keep", "--help"]],
    [["resample", "--frobnicate", "--help"]],
    [["pipeline", "-k", "0", "a.jsonl", "b.jsonl", "-h"]],
  ])("--help wins over arguments that would not parse: %j", (args) => {
    const { code, stdout, stderr } = cli(args);
    expect([code, stderr]).toEqual([0, ""]);
    expect(stdout).toBe(cli([args[0]!, "--help"]).stdout);
  });

  it("after --, --help is a file name (unreadable: exit 3); help of an unknown command is a usage error", () => {
    const afterDashes = cli(["penalties", "--", "--help"]);
    expect(afterDashes.code).toBe(3);
    expect(afterDashes.stderr).toContain("cannot read --help");
    const unknown = cli(["help", "frobnicate"]);
    expect([unknown.code, unknown.stdout]).toEqual([2, ""]);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
  });

  it("prints the version of package.json", () => {
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
    expect(cli(["--version"]).stdout.trim()).toBe(pkg.version);
  });
});

describe("usage errors exit with 2 and point to --help", () => {
  it.each([
    [["resample", fixture("structured.jsonl")], "--keep: required"],
    [["resample", "--keep", "0", "--seed", "1", fixture("structured.jsonl")], "--keep: expected an integer ≥ 1"],
    [["resample", "--keep", "4", fixture("structured.jsonl")], "--seed: paper mode samples at random"],
    [["resample", "--keep", "4", "--mode", "greedy"], "--mode: expected one of paper, reference"],
    [
      [
        "resample",
        "--keep",
        "4",
        "--mode",
        "reference",
        "--min-negatives",
        "3",
        "--min-positives",
        "2",
        fixture("structured.jsonl"),
      ],
      "--min-negatives: minNegatives + minPositives (5) exceeds keepPerGroup (4)",
    ],
    [["advantages", "--preset", "ppo"], "--preset: expected one of verl, verlNoStd"],
    [["penalties", "--failure-kinds", "timeout,crash"], "--failure-kinds: expected a comma-separated list"],
    [["penalties", "--error-weight=-1"], "--error-weight: expected a number ≥ 0"],
    [["penalties", "--frobnicate"], "Unknown option '--frobnicate'"],
    [["penalties", "a.jsonl", "b.jsonl"], "one input at most"],
  ])("%j", (args, message) => {
    const { code, stderr, stdout } = cli(args as string[]);
    expect(code).toBe(2);
    expect(stdout).toBe("");
    expect(stderr).toContain(message);
    expect(stderr).toContain(`Run 'grpo-roc ${(args as string[])[0]} --help'`);
  });

  it("a file that cannot be read is not a usage error: exit 3, without the pointer to --help", () => {
    const { code, stderr, stdout } = cli(["penalties", join(FIXTURES, "missing.jsonl")]);
    expect([code, stdout]).toEqual([3, ""]);
    expect(stderr).toContain(`cannot read ${join(FIXTURES, "missing.jsonl")}: no such file or directory (ENOENT)`);
    expect(stderr).not.toContain("--help");
  });

  it("an unknown command, and no command at all", () => {
    expect(cli(["frobnicate"]).code).toBe(2);
    const none = cli([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toContain("Usage: grpo-roc <command>");
  });
});

describe("penalties", () => {
  it.each([
    ["transcripts.jsonl", "strict"],
    ["transcripts.jsonl", "reference"],
    ["structured.jsonl", "strict"],
  ] as const)("%s (%s dialect): every rollout's penalties as resampleOnCorrect computes them", (name, dialect) => {
    const rollouts = load(name);
    const lib = resampleOnCorrect(rollouts, {
      ...rocPresets.paper,
      seed: 0,
      keepPerGroup: 4,
      transcriptDialect: dialect,
    }).penalties;
    const { code, records } = cli(["penalties", "--dialect", dialect, fixture(name)]);
    expect(code).toBe(0);
    expect(records.map((r) => r.line)).toEqual(rollouts.map((_, i) => i + 1));
    records.forEach((record, i) => {
      const rollout = rollouts[i]!;
      expect(record).toMatchObject({
        id: rollout.id,
        groupId: rollout.groupId,
        dropped: false,
        reward: rollout.reward,
      });
      expect([record.pErr, record.pFormat, record.pTotal]).toEqual([
        nan(lib.pErr[i]!),
        nan(lib.pFormat[i]!),
        nan(lib.pTotal[i]!),
      ]);
      if (rollout.transcript !== undefined) {
        const parsed = parseTranscript(rollout.transcript, dialect);
        expect(record).toMatchObject({
          source: "transcript",
          toolOutcomes: parsed.toolOutcomes,
          answers: parsed.answers,
          turns: parsed.turns,
          toolCalls: penalties(parsed).toolCalls,
        });
      } else {
        expect(record).toMatchObject({
          source: "structured",
          toolCalls: rollout.toolCalls!.length,
          answers: rollout.answers,
          turns: rollout.turns,
          formatOk: rollout.formatOk ?? true,
        });
      }
    });
  });

  it("--mode reference reads transcripts in the reference dialect; the penalty options change p_total as the library does", () => {
    expect(cli(["penalties", "--mode", "reference", fixture("transcripts.jsonl")]).stdout).toBe(
      cli(["penalties", "--dialect", "reference", fixture("transcripts.jsonl")]).stdout,
    );
    const rollouts = load("structured.jsonl");
    const options = {
      failureKinds: ["timeout"] as const,
      penaltyWeights: { error: 2, format: 0.5 },
      noToolCallPenalty: 0.25,
    };
    const lib = resampleOnCorrect(rollouts, {
      ...rocPresets.paper,
      seed: 0,
      keepPerGroup: 4,
      ...options,
      failureKinds: [...options.failureKinds],
    }).penalties;
    const { records } = cli([
      "penalties",
      "--failure-kinds",
      "timeout",
      "--error-weight",
      "2",
      "--format-weight",
      "0.5",
      "--no-tool-call-penalty",
      "0.25",
      fixture("structured.jsonl"),
    ]);
    expect(records.map((r) => r.pTotal)).toEqual(Array.from(lib.pTotal, nan));
  });

  it("a rollout without quality inputs gets null penalties, not a made-up number", () => {
    const { records } = cli(["penalties"], toJsonl([{ groupId: "a", reward: 1 }]));
    expect(records).toEqual([
      {
        line: 1,
        id: null,
        groupId: "a",
        dropped: false,
        correct: true,
        reward: 1,
        infraFailed: false,
        source: null,
        pErr: null,
        pFormat: null,
        pTotal: null,
      },
    ]);
  });
});

const MODES = [
  ["paper", ["--seed", "7"], { ...rocPresets.paper, seed: 7 }],
  ["reference", ["--mode", "reference"], { ...rocPresets.reference }],
] as const;

describe("resample", () => {
  it.each(
    MODES.flatMap(([mode, flags, roc]) =>
      ["structured.jsonl", "transcripts.jsonl"].map((name) => [mode, name, flags, roc] as const),
    ),
  )("%s mode on %s: kept and dropped exactly as resampleOnCorrect over the whole file", (_mode, name, flags, roc) => {
    const rollouts = load(name);
    const lib = resampleOnCorrect(rollouts, { ...roc, keepPerGroup: 4 });
    const { code, records, stderr } = cli(["resample", "--keep", "4", ...flags, fixture(name)]);
    expect(code).toBe(0);
    expect(records.map((r) => r.line)).toEqual(rollouts.map((_, i) => i + 1));
    expect(records.filter((r) => !r.dropped).map((r) => r.line - 1)).toEqual(Array.from(lib.kept));
    expect(records.filter((r) => r.dropped).map((r) => [r.line - 1, r.reasonCode])).toEqual(
      lib.dropped.map((d) => [d.index, d.reason]),
    );
    expect(records.map((r) => r.pTotal)).toEqual(Array.from(lib.penalties.pTotal, nan));
    expect(records.map((r) => [r.id, r.groupId])).toEqual(rollouts.map((r) => [r.id, r.groupId]));
    const m = lib.metrics;
    expect(stderr).toContain(
      `${m.groups.in} groups (${m.groups.resampled} resampled, ${m.groups.keptWhole} kept whole`,
    );
    expect(stderr).toContain(`kept ${m.rollouts.kept}, dropped ${m.rollouts.dropped}`);
  });

  it("says why each rollout was dropped", () => {
    const paper = cli(["resample", "--keep", "4", "--seed", "7", fixture("structured.jsonl")]).records.map(
      (r) => r.reason,
    );
    expect(paper).toContainEqual(
      expect.stringMatching(/^roc: downsampled positive, penalty [\d.]+ \(drew \d+ of \d+, weighted by 1\/penalty\)$/),
    );
    expect(paper).toContainEqual(expect.stringMatching(/^roc: not drawn among negatives \(drew \d+ of \d+\)$/));
    expect(paper).toContainEqual(expect.stringMatching(/^roc: every reward of the group is 0: no signal$/));
    const reference = cli(["resample", "--keep", "4", "--mode", "reference", fixture("structured.jsonl")]).records.map(
      (r) => r.reason,
    );
    expect(reference).toContainEqual(
      expect.stringMatching(/^roc: downsampled positive, penalty [\d.]+ \(kept the \d+ lowest of \d+\)$/),
    );
    expect(reference).toContainEqual(expect.stringMatching(/^roc: not among the first \d+ negatives \(of \d+\)$/));
    const undersized = toJsonl([
      { groupId: "u", reward: 1 },
      { groupId: "u", reward: 0 },
      { groupId: "u", reward: 0 },
    ]);
    expect(
      cli(["resample", "--keep", "4", "--mode", "reference", "-"], undersized).records.map((r) => r.reason),
    ).toEqual(
      Array(3).fill(
        "roc: group of 3, fewer than --keep 4: undersized groups are dropped (--undersized keep keeps them)",
      ),
    );
  });

  it("--kept-only writes the kept rollouts only; --include-rollout carries each input rollout", () => {
    const rollouts = load("structured.jsonl");
    const lib = resampleOnCorrect(rollouts, { ...rocPresets.paper, seed: 3, keepPerGroup: 4 });
    const { records } = cli([
      "resample",
      "-k",
      "4",
      "--seed",
      "3",
      "--kept-only",
      "--include-rollout",
      fixture("structured.jsonl"),
    ]);
    expect(records.map((r) => r.line - 1)).toEqual(Array.from(lib.kept));
    for (const record of records) expect(record.rollout).toEqual(rollouts[record.line - 1]);
  });

  it("the same seed gives the same output; another seed draws afresh", () => {
    const run = (seed: string) => cli(["resample", "-k", "4", "--seed", seed, fixture("transcripts.jsonl")]).stdout;
    expect(run("11")).toBe(run("11"));
    expect(run("12")).not.toBe(run("11"));
  });
});

describe("advantages", () => {
  const rollouts = load("structured.jsonl");
  const rewards = rollouts.map((r) => r.reward!);
  const ids = rollouts.map((r) => r.groupId);

  it.each(Object.keys(advantagePresets) as (keyof typeof advantagePresets)[])(
    "--preset %s equals advantages() over the whole file",
    (preset) => {
      const expected = Array.from(advantages(rewards, ids, advantagePresets[preset]));
      const { code, records } = cli(["advantages", "--preset", preset, fixture("structured.jsonl")]);
      expect(code).toBe(0);
      expect(records.map((r) => r.advantage)).toEqual(expected);
      expect(records.map((r) => r.line)).toEqual(rollouts.map((_, i) => i + 1));
    },
  );

  it("flags override the preset", () => {
    const expected = Array.from(
      advantages(rewards, ids, { ...advantagePresets.trl, scaleByStd: false, epsilon: 1e-3 }),
    );
    expect(
      cli(["advantages", "--preset", "trl", "--no-std", "--epsilon", "1e-3", fixture("structured.jsonl")]).records.map(
        (r) => r.advantage,
      ),
    ).toEqual(expected);
    const rloo = Array.from(advantages(rewards, ids, { estimator: "rloo", singleton: "zero", unbiasedStd: false }));
    expect(
      cli([
        "advantages",
        "--estimator",
        "rloo",
        "--singleton",
        "zero",
        "--biased-std",
        fixture("structured.jsonl"),
      ]).records.map((r) => r.advantage),
    ).toEqual(rloo);
  });

  it("the batch std (trlBatch) from stdin: copied to a temporary file, read twice, equal to the last bit", () => {
    const expected = Array.from(advantages(rewards, ids, advantagePresets.trlBatch));
    const { code, records } = cli(
      ["advantages", "--std-scope", "batch", "--preset", "trl", "-"],
      readFileSync(fixture("structured.jsonl"), "utf8"),
    );
    expect(code).toBe(0);
    expect(records.map((r) => r.advantage)).toEqual(expected);
  });

  it.skipIf(process.platform === "win32")(
    "the batch std from a named pipe (<(zcat ...)): read once and spooled like stdin, not read twice to nothing",
    async () => {
      // The input is a FIFO the test writes into: opened a second time, it would give no line and exit 0.
      const fromFifo = async (args: readonly string[]) => {
        const fifo = join(tempDir(), "rollouts.fifo");
        execFileSync("mkfifo", [fifo]);
        const child = spawn(process.execPath, [CLI, ...args, fifo], { stdio: ["ignore", "pipe", "pipe"] });
        let stdout = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
        const [code] = await Promise.all([
          new Promise<number | null>((resolve) => child.on("close", resolve)),
          writeFile(fifo, readFileSync(fixture("structured.jsonl"))),
        ]);
        return { code, records: parseJsonl(stdout) };
      };
      const batch = await fromFifo(["advantages", "--std-scope", "batch", "--preset", "trl"]);
      expect(batch.code).toBe(0);
      expect(batch.records.map((r) => r.advantage)).toEqual(
        Array.from(advantages(rewards, ids, advantagePresets.trlBatch)),
      );
      const lib = rocPipeline(rollouts, {
        roc: { ...rocPresets.reference, keepPerGroup: 4 },
        advantages: advantagePresets.trlBatch,
      });
      const pipeline = await fromFifo(["pipeline", "-k", "4", "--mode", "reference", "--preset", "trlBatch"]);
      expect(pipeline.code).toBe(0);
      expect(pipeline.records.filter((r) => !r.dropped).map((r) => r.advantage)).toEqual(Array.from(lib.advantages));
    },
  );
});

describe("pipeline", () => {
  it.each(
    MODES.flatMap(([mode, flags, roc]) =>
      (["verl", "trl", "trlBatch"] as const).flatMap((preset) =>
        ["structured.jsonl", "transcripts.jsonl"].map((name) => [mode, preset, name, flags, roc] as const),
      ),
    ),
  )(
    "%s mode, --preset %s, %s: the kept rollouts and their advantages are rocPipeline's",
    (_mode, preset, name, flags, roc) => {
      const rollouts = load(name);
      const lib = rocPipeline(rollouts, { roc: { ...roc, keepPerGroup: 4 }, advantages: advantagePresets[preset] });
      const { code, records } = cli(["pipeline", "--keep", "4", ...flags, "--preset", preset, fixture(name)]);
      expect(code).toBe(0);
      expect(records).toHaveLength(rollouts.length);
      const kept = records.filter((r) => !r.dropped);
      expect(kept.map((r) => r.line - 1)).toEqual(Array.from(lib.kept));
      expect(kept.map((r) => r.advantage)).toEqual(Array.from(lib.advantages));
      expect(records.filter((r) => r.dropped).every((r) => !("advantage" in r))).toBe(true);
    },
  );

  it("--summary writes the library's metrics for the whole file", () => {
    const dir = tempDir();
    const rollouts = load("transcripts.jsonl");
    const { metrics } = resampleOnCorrect(rollouts, { ...rocPresets.paper, keepPerGroup: 4, seed: 5 });
    expect(
      cli(["pipeline", "-k", "4", "--seed", "5", "--summary", join(dir, "s.json"), fixture("transcripts.jsonl")]).code,
    ).toBe(0);
    const summary = JSON.parse(readFileSync(join(dir, "s.json"), "utf8")) as { [key: string]: any };
    expect(summary.groups).toEqual({ ...metrics.groups, invalid: 0 });
    expect(summary.positives).toEqual(metrics.positives);
    expect(summary.negatives).toEqual(metrics.negatives);
    expect([summary.kept, summary.dropped, summary.rollouts, summary.records]).toEqual([
      metrics.rollouts.kept,
      metrics.rollouts.dropped,
      rollouts.length,
      rollouts.length,
    ]);
    for (const key of ["keptPositives", "droppedPositives", "allPositives"] as const) {
      expect(summary[key].count).toBe(metrics[key].count);
      for (const field of ["meanPErr", "meanPFormat", "toolErrorRatio"] as const)
        expect(summary[key][field]).toBeCloseTo(metrics[key][field]!, 12);
    }
  });
});

describe("bad input", () => {
  const good = load("structured.jsonl").slice(0, 16);
  const withLine = (at: number, line: unknown) => toJsonl(good.map((rollout, i) => (i === at - 1 ? line : rollout)));

  it.each([
    [
      { ...good[2], toolCalls: [{ outcome: "ok" }, { outcome: "ok" }, { outcome: "crashed" }], answers: 1, turns: 3 },
      "line 3: toolCalls[2].outcome: outcome must be one of ok, parse_error, execution_error, timeout",
    ],
    ['{"groupId": "prompt-0", "reward": 1,', "line 3: not JSON: "],
    [{ groupId: "prompt-0", id: "x" }, "line 3: reward: give a reward, a correct flag, or both"],
    [{ reward: 1 }, "line 3: groupId: group id must be a string or a finite number"],
    [[1, 2], "line 3: Invalid input: expected object, received array"],
    [
      { groupId: "prompt-0", reward: 1, toolCalls: [], answers: 1 },
      "line 3: structured quality inputs need toolCalls, answers and turns together",
    ],
  ])("%j: every command stops with exit 1, naming the line and the field", (line, message) => {
    for (const command of [
      ["penalties"],
      ["resample", "-k", "4", "--seed", "1"],
      ["advantages"],
      ["pipeline", "-k", "4", "--seed", "1"],
    ]) {
      const { code, stderr } = cli([...command, "-"], withLine(3, line));
      expect(code).toBe(1);
      expect(stderr).toContain(`grpo-roc ${command[0]}: ${message}`);
    }
  });

  it("a group the library rejects is located by line: ids on some rollouts of a group but not all", () => {
    const rollouts = good.slice(0, 8).map((r, i) => (i === 5 ? { ...r, id: undefined } : r));
    const { code, stderr } = cli(["resample", "-k", "4", "--seed", "1"], toJsonl(rollouts));
    expect(code).toBe(1);
    expect(stderr).toContain("grpo-roc resample: line 6: id: give an id to every rollout of a group, or to none");
  });

  it("--skip-invalid: bad lines are reported, counted and written as invalid records; no line is lost", () => {
    const text = readFileSync(fixture("bad-lines.jsonl"), "utf8");
    const lines = text.split("\n").slice(0, -1);
    for (const command of [
      ["penalties"],
      ["resample", "-k", "4", "--seed", "1"],
      ["advantages"],
      ["pipeline", "-k", "4", "--mode", "reference"],
    ]) {
      const { code, stderr, records } = cli([...command, "--skip-invalid", fixture("bad-lines.jsonl")]);
      expect(code).toBe(0);
      // Every non-empty input line is in the output, in order.
      expect(records.map((r) => r.line)).toEqual(lines.flatMap((line, i) => (line.trim() === "" ? [] : [i + 1])));
      const invalid = records.filter((r) => r.reasonCode === "invalid");
      expect(invalid.map((r) => r.line)).toEqual([3, 7, 9]);
      expect(invalid[0]).toEqual({
        line: 3,
        id: "g0-r2",
        groupId: "prompt-0",
        dropped: true,
        reasonCode: "invalid",
        reason:
          "invalid: toolCalls[2].outcome: outcome must be one of ok, parse_error, execution_error, timeout, infra_error",
      });
      expect(invalid[1]!.reason).toMatch(/^invalid: not JSON: /);
      expect(stderr).toContain(`grpo-roc ${command[0]}: skipped line 7: not JSON`);
      expect(stderr).toContain("3 invalid lines skipped");
      expect(stderr).toContain("10 rollouts from 14 lines (1 empty)");
    }
    const keptOnly = cli([
      "pipeline",
      "-k",
      "4",
      "--seed",
      "1",
      "--skip-invalid",
      "--kept-only",
      fixture("bad-lines.jsonl"),
    ]).records;
    expect(keptOnly.length).toBeGreaterThan(0);
    expect(keptOnly.every((r) => !r.dropped)).toBe(true);
  });

  it("--skip-invalid: bad lines before the first group go out first, in order; nothing but bad lines is all reported", () => {
    const text = toJsonl(["not json", { groupId: "g" }, ...good.slice(0, 8)]);
    for (const command of [["resample", "-k", "4", "--seed", "1"], ["advantages"]]) {
      const { code, records } = cli([...command, "--skip-invalid", "-"], text);
      expect(code).toBe(0);
      expect(records.map((r) => [r.line, r.reasonCode === "invalid"])).toEqual([
        [1, true],
        [2, true],
        ...good.slice(0, 8).map((_, i) => [i + 3, false]),
      ]);
    }
    const bad = cli(
      ["pipeline", "-k", "4", "--seed", "1", "--skip-invalid", "-"],
      toJsonl(Array.from({ length: 50 }, (_, i) => `{"line": ${i}`)),
    );
    expect(bad.code).toBe(0);
    expect(bad.records.map((r) => r.line)).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(bad.stderr).toContain("0 rollouts from 50 lines; 0 groups");
    expect(bad.stderr).toContain("50 invalid lines skipped");
  });

  it("--skip-invalid drops a whole group the library rejects, each of its lines with the reason", () => {
    const rollouts = [...good.slice(0, 8).map((r, i) => (i === 5 ? { ...r, id: undefined } : r)), ...good.slice(8, 16)];
    const { code, records, stderr } = cli(["resample", "-k", "4", "--seed", "1", "--skip-invalid"], toJsonl(rollouts));
    expect(code).toBe(0);
    expect(records).toHaveLength(16);
    expect(
      records
        .slice(0, 8)
        .every((r) => r.reasonCode === "invalid" && /^invalid group: line 6: id: give an id/.test(r.reason as string)),
    ).toBe(true);
    expect(records.slice(8).some((r) => r.reasonCode !== "invalid")).toBe(true);
    expect(stderr).toContain("1 invalid groups (8 rollouts) skipped");
  });

  it("empty lines are ignored and CRLF line ends are read as LF", () => {
    const text = readFileSync(fixture("structured.jsonl"), "utf8");
    const crlf = `\r\n${text.replace(/\n/g, "\r\n\r\n")}`;
    const plain = cli(["resample", "-k", "4", "--seed", "2", "-"], text).records;
    const spaced = cli(["resample", "-k", "4", "--seed", "2", "-"], crlf).records;
    expect(spaced.map(({ line: _line, ...rest }) => rest)).toEqual(plain.map(({ line: _line, ...rest }) => rest));
    expect(spaced[0]!.line).toBe(2);
  });
});

describe("groups must be contiguous", () => {
  it("a group id seen again after its group closed is an error naming both places", () => {
    const { code, stderr } = cli(["resample", "-k", "4", "--seed", "1", fixture("split-group.jsonl")]);
    expect(code).toBe(1);
    expect(stderr).toContain(
      'grpo-roc resample: line 5: groupId: group "prompt-0" comes back after its group (lines 1–2) was closed at line 3 by another group id',
    );
    expect(cli(["advantages", fixture("split-group.jsonl")]).code).toBe(1);
    // Line by line, penalties has no groups to split.
    expect(cli(["penalties", fixture("split-group.jsonl")]).code).toBe(0);
  });

  it("--repeated-groups separate makes each contiguous run a group of its own", () => {
    const rollouts = load("split-group.jsonl");
    const runs = ["a", "a", "b", "b", "c", "c"];
    const expected = Array.from(
      advantages(
        rollouts.map((r) => r.reward!),
        runs,
      ),
    );
    const { code, records, stderr } = cli([
      "advantages",
      "--repeated-groups",
      "separate",
      fixture("split-group.jsonl"),
    ]);
    expect(code).toBe(0);
    expect(records.map((r) => r.advantage)).toEqual(expected);
    expect(stderr).toContain("3 groups");
  });
});

describe("output files are written atomically", () => {
  const big = (groups: number) => {
    const one = load("structured.jsonl").slice(0, 8);
    const rows: unknown[] = [];
    for (let g = 0; g < groups; g++) for (const r of one) rows.push({ ...r, groupId: `p${g}` });
    return rows;
  };
  const leftovers = (dir: string) => readdirSync(dir).filter((name) => name.endsWith(".tmp"));

  it("-o FILE has what stdout would have, keeps the old file's mode, and leaves no temporary file", () => {
    const dir = tempDir();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old\n");
    chmodSync(out, 0o640);
    const args = ["pipeline", "-k", "4", "--seed", "9", fixture("transcripts.jsonl")];
    const result = cli([...args, "-o", out]);
    expect(result.code).toBe(0);
    expect(result.stdout).toBe("");
    expect(readFileSync(out, "utf8")).toBe(cli(args).stdout);
    expect(statSync(out).mode & 0o777).toBe(0o640);
    expect(leftovers(dir)).toEqual([]);
  });

  it("an unwritable --summary is reported before any input is read, and the -o destination is left as it was", () => {
    const dir = tempDir();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old content\n");
    const result = cli([
      "pipeline",
      "-k",
      "4",
      "--seed",
      "1",
      "-o",
      out,
      "--summary",
      join(dir, "missing", "s.json"),
      fixture("structured.jsonl"),
    ]);
    expect(result.code).toBe(3);
    expect(result.stderr).toContain(
      `cannot write ${join(dir, "missing", "s.json")}: folder ${join(dir, "missing")}: no such file or directory`,
    );
    expect(readFileSync(out, "utf8")).toBe("old content\n");
    expect(leftovers(dir)).toEqual([]);
  });

  it("a bad line deep in the input (after megabytes were written) leaves the destination untouched", () => {
    const dir = tempDir();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old content\n");
    const input = toJsonl([...big(2500), '{"groupId": "p9", "reward": ']);
    const result = cli(["pipeline", "-k", "4", "--seed", "1", "-o", out, "-"], input);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("line 20001: not JSON");
    expect(readFileSync(out, "utf8")).toBe("old content\n");
    expect(leftovers(dir)).toEqual([]);
  });

  it("an interrupt (SIGINT) mid-stream leaves the destination untouched and removes the temporary file", async () => {
    const dir = tempDir();
    const out = join(dir, "out.jsonl");
    writeFileSync(out, "old content\n");
    const child = spawn(process.execPath, [CLI, "pipeline", "-k", "4", "--seed", "1", "-o", out, "-"], {
      stdio: ["pipe", "ignore", "pipe"],
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    // The child dies with input still unread: the broken pipe is expected.
    child.stdin.on("error", () => {});
    // Enough groups that output has reached the temporary file; stdin stays open, so the CLI waits for more.
    child.stdin.write(toJsonl(big(1000)));
    const deadline = Date.now() + 20_000;
    while (!leftovers(dir).some((name) => statSync(join(dir, name)).size > 0)) {
      if (Date.now() > deadline) throw new Error("the temporary output file never received data");
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(readFileSync(out, "utf8")).toBe("old content\n");
    expect(leftovers(dir)).toEqual([]);
  });
});

describe("progress and quiet", () => {
  it("--progress draws a bar by bytes for a file, and counts lines for a pipe", () => {
    const file = cli(["penalties", "--progress", fixture("structured.jsonl")]);
    expect(file.stderr).toMatch(/grpo-roc penalties \[#+-*\] 100%/);
    const pipe = cli(["penalties", "--progress"], readFileSync(fixture("structured.jsonl"), "utf8"));
    expect(pipe.stderr).toMatch(/grpo-roc penalties {2}87 lines/);
  });

  it("unasked, the bar is for terminals and long runs only: never over records printed to the terminal", () => {
    const mode = (
      stderrIsTTY: boolean,
      recordsToTerminal: boolean,
      flags: { quiet?: boolean; forced?: boolean } = {},
    ) => progressMode({ quiet: false, forced: false, ...flags, stderrIsTTY, recordsToTerminal });
    expect([mode(true, false), mode(true, true), mode(false, false)]).toEqual(["auto", "off", "off"]);
    expect([mode(false, true, { forced: true }), mode(true, false, { forced: true, quiet: true })]).toEqual([
      "forced",
      "off",
    ]);
  });

  it("auto mode draws from the first second on, a run shorter than that leaves no trace; forced mode draws at once", () => {
    let now = 0;
    const run = (mode: "auto" | "forced", steps: number) => {
      let written = "";
      const progress = new Progress({
        mode,
        label: "grpo-roc test",
        total: 10 * 65536,
        stream: { write: (text: string) => ((written += text), true) },
        now: () => now,
      });
      for (let step = 0; step < steps; step++) {
        progress.addBytes(65536);
        now += 300;
      }
      progress.finish();
      return written;
    };
    expect(run("auto", 3)).toBe("");
    const long = run("auto", 10);
    expect(long.split("\r").filter((part) => part.startsWith("grpo-roc test [")).length).toBe(7);
    expect(long).not.toContain("[###-");
    expect(long).toMatch(/\[#{24}\] 100%.*\n$/);
    expect(run("forced", 1)).toMatch(
      /^\rgrpo-roc test \[#{2}-{22}\] {2}10%.*\rgrpo-roc test \[#{2}-{22}\] {2}10%.*\n$/s,
    );
  });

  it.skipIf(process.platform !== "linux" || spawnSync("script", ["--version"]).status !== 0)(
    "on a terminal, a short run shows its summary and no bar",
    () => {
      const dir = tempDir();
      const command = `${process.execPath} ${CLI} pipeline -k 4 --seed 1 -o ${join(dir, "out.jsonl")} ${fixture("structured.jsonl")}`;
      const terminal = spawnSync("script", ["-qec", command, "/dev/null"], { encoding: "utf8" });
      expect(terminal.status).toBe(0);
      expect(terminal.stdout).toMatch(/^grpo-roc pipeline: 87 rollouts from 87 lines; /);
      expect(terminal.stdout).not.toContain("[#");
    },
  );

  it("--quiet prints nothing on stderr when all goes well", () => {
    const result = cli(["pipeline", "-k", "4", "--seed", "1", "--quiet", fixture("structured.jsonl")]);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe("");
    expect(result.records.length).toBe(87);
  });
});

describe("the bin as users install it", () => {
  it("npx grpo-roc runs from the repository", () => {
    const out = execFileSync("npx", ["--no", "--", "grpo-roc", "--help"], {
      cwd: root,
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
    });
    expect(out).toContain("Usage: grpo-roc <command>");
  });
});
