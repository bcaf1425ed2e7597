import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";
import { parseConfig, parseSeeds, UsageError } from "../examples/demo/config.js";
import { describeSeeds } from "../examples/demo/report.js";
import { pairedComparison, signTest, tCritical } from "../examples/demo/stats.js";

// `npm run demo -- --quick`, run the way the script runs it (tsx with the demo's tsconfig), into a temporary folder.
// Only the outputs' presence and shape are checked: the numbers of a 4-step smoke run mean nothing.
const root = fileURLToPath(new URL("..", import.meta.url));
const TSX = join(root, "node_modules", ".bin", "tsx");
const ARGS = ["--tsconfig", "examples/demo/tsconfig.json", "examples/demo/main.ts"];

interface Result {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

function demo(args: readonly string[]): Promise<Result> {
  return new Promise((resolve) => {
    // stderr is a pipe here, so the progress bar writes plain lines.
    execFile(TSX, [...ARGS, ...args], { cwd: root, encoding: "utf8", maxBuffer: 1 << 26 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === "number" ? error.code : 1, stdout, stderr });
    });
  });
}

const ratio = z.number().min(0).max(1);
const counts = z.object({
  ok: z.number().int().min(0),
  parse_error: z.number().int().min(0),
  execution_error: z.number().int().min(0),
  timeout: z.number().int().min(0),
});
const stats = z.object({
  rollouts: z.number().int().positive(),
  accuracy: ratio,
  toolErrorRatioCorrect: ratio.nullable(),
  toolErrorRatioAll: ratio.nullable(),
  calls: counts,
  callsCorrect: counts,
  callsPerRollout: z.number().min(0),
  noToolCall: ratio,
  formatIssues: ratio,
});
const spread = z.object({
  mean: z.number(),
  sd: z.number().min(0),
  min: z.number(),
  max: z.number(),
  perSeed: z.array(z.number()),
});
const methodSummary = z.object({
  seeds: z.number().int().positive(),
  accuracy: z.object({ start: spread, final: spread }),
  toolErrorRatioCorrect: z.object({ start: spread, final: spread }),
  trainedToolErrorRatioCorrect: spread,
  finalCalls: counts,
  finalCallsCorrect: counts,
  seconds: spread,
});
const comparison = z.object({
  perSeed: z.array(z.object({ seed: z.number().int(), a: z.number(), b: z.number(), difference: z.number() })),
  mean: z.number(),
  sd: z.number().min(0),
  ci95: z.tuple([z.number(), z.number()]).nullable(),
  higher: z.number().int().min(0),
  lower: z.number().int().min(0),
  ties: z.number().int().min(0),
  signTestP: z.number().min(0).max(1),
});
const method = z.enum(["grpo", "roc"]);
const metricsSchema = z.object({
  schema: z.literal("grpo-roc-demo/2"),
  createdAt: z.string(),
  backend: z.literal("cpu"),
  seconds: z.number().positive(),
  config: z
    .object({
      seeds: z.array(z.number().int()),
      warmStart: z.object({ steps: z.number().int(), batch: z.number().int(), learningRate: z.number() }),
      rl: z
        .object({
          steps: z.number().int(),
          prompts: z.number().int(),
          groupSize: z.number().int(),
          evalEvery: z.number().int(),
          evalSamples: z.number().int(),
        })
        .loose(),
      evalTasks: z.number().int(),
    })
    .loose(),
  warmStart: z.object({ loss: z.number(), seconds: z.number(), cached: z.boolean() }),
  summary: z.object({ grpo: methodSummary, roc: methodSummary }),
  paired: z.object({
    a: z.literal("grpo"),
    b: z.literal("roc"),
    accuracy: comparison,
    toolErrorRatioCorrect: comparison,
    trainedToolErrorRatioCorrect: comparison,
  }),
  curves: z.array(
    z.object({
      method,
      seed: z.union([z.number().int(), z.literal("mean")]),
      step: z.number().int().min(0),
      accuracy: ratio,
      toolErrorRatioCorrect: ratio.nullable(),
    }),
  ),
  runs: z.array(
    z.object({
      method,
      seed: z.number().int(),
      seconds: z.number().positive(),
      steps: z.array(
        z.object({
          step: z.number().int().positive(),
          sampled: stats,
          trained: stats.extend({ rollouts: z.number().int().min(0) }),
          roc: z
            .object({
              groupsIn: z.number().int(),
              groupsDroppedEqualRewards: z.number().int(),
              positivesSeen: z.number().int(),
              positivesKept: z.number().int(),
            })
            .loose(),
          update: z
            .object({ loss: z.number(), clipFraction: ratio, approxKl: z.number(), gradNorm: z.number().min(0) })
            .nullable(),
        }),
      ),
      evals: z.array(z.object({ step: z.number().int().min(0), stats })),
    }),
  ),
});

describe("npm run demo -- --quick", () => {
  let out: string;
  let first: Result;

  beforeAll(async () => {
    out = mkdtempSync(join(tmpdir(), "grpo-roc-demo-"));
    first = await demo(["--quick", "--out", out]);
  }, 90_000);

  afterAll(() => rmSync(out, { recursive: true, force: true }));

  it("exits 0 and prints the summary table on stdout", () => {
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("held-out accuracy: step 0 → final");
    expect(first.stdout).toMatch(/^GRPO {3,}\d\.\d{3} → \d\.\d{3}/m);
    expect(first.stdout).toMatch(/^GRPO-RoC {3,}\d\.\d{3} → \d\.\d{3}/m);
    expect(first.stdout).toContain("Tool calls at the final evaluation, by outcome");
    expect(first.stdout).toMatch(/^GRPO-RoC +correct +\d+ +\d+ +\d+ +\d+$/m);
    expect(first.stdout).toMatch(/^GRPO vs GRPO-RoC: seed 1 × 4 RL steps/);
    expect(first.stdout).toMatch(/^1(?: +[+-]?\d\.\d{3}){9}$/m);
    // One seed has no spread, so no interval; a sign test over one seed cannot go below p = 1.
    expect(first.stdout).toMatch(
      /^held-out accuracy, final +[+-]?\d\.\d{3} \(one seed: no interval\) +\d \/ \d \/ \d +1\.000$/m,
    );
  });

  it("reports progress on stderr as plain lines when stderr is not a terminal", () => {
    expect(first.stderr).not.toContain("\r");
    expect(first.stderr).toContain("warm start");
    expect(first.stderr).toMatch(/\] 100% /);
    expect(first.stderr).toMatch(/done in \d+\.\d min/);
  });

  it("writes metrics.json with every step of every run", () => {
    const metrics = metricsSchema.parse(JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")));
    const { seeds, rl } = metrics.config;
    expect(metrics.runs).toHaveLength(seeds.length * 2);
    for (const run of metrics.runs) {
      expect(run.steps.map((s) => s.step)).toEqual(Array.from({ length: rl.steps }, (_, i) => i + 1));
      expect(run.evals[0]!.step).toBe(0);
      expect(run.evals.at(-1)!.step).toBe(rl.steps);
      // GRPO samples G per prompt, RoC 2G; both train on at most G per prompt.
      const perPrompt = run.method === "roc" ? 2 * rl.groupSize : rl.groupSize;
      for (const step of run.steps) {
        expect(step.sampled.rollouts).toBe(rl.prompts * perPrompt);
        expect(step.trained.rollouts).toBeLessThanOrEqual(rl.prompts * rl.groupSize);
      }
    }
    // Both methods start from the same warm start and are evaluated on the same draws: step 0 is identical.
    const start = (m: "grpo" | "roc") => metrics.runs.filter((r) => r.method === m).map((r) => r.evals[0]!.stats);
    expect(start("grpo")).toEqual(start("roc"));
    expect(metrics.warmStart.cached).toBe(false);
  });

  it("draws the figure as SVG and PNG", () => {
    const svg = readFileSync(join(out, "figure.svg"), "utf8");
    expect(svg.startsWith("<svg")).toBe(true);
    expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
    expect(svg).toContain("GRPO-RoC");
    expect(svg).toMatch(/font-weight="bold">[^<]*, seed 1 \(/);
    expect(svg.match(/<path/g)?.length ?? 0).toBeGreaterThan(4);
    const png = readFileSync(join(out, "figure.png"));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBeGreaterThan(1000); // width, from the IHDR chunk
    expect(png.length).toBeGreaterThan(10_000);
  });

  it("reuses the cached warm start on the next run, and pairs the chosen seeds", async () => {
    expect(existsSync(join(out, "warm-start-40x32.json"))).toBe(true);
    const again = await demo(["--quick", "--seeds", "5,2", "--steps", "1", "--out", out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("warm start loaded");
    const metrics = metricsSchema.parse(JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")));
    expect(metrics.warmStart.cached).toBe(true);
    expect(metrics.config.seeds).toEqual([2, 5]);
    for (const comparison of Object.values(metrics.paired).filter((v) => typeof v === "object")) {
      expect(comparison.perSeed.map((p) => p.seed)).toEqual([2, 5]);
      expect(comparison.higher + comparison.lower + comparison.ties).toBe(2);
      for (const p of comparison.perSeed) expect(p.difference).toBeCloseTo(p.b - p.a, 12);
    }
    const accuracy = (m: "grpo" | "roc", seed: number) =>
      metrics.runs.find((r) => r.method === m && r.seed === seed)!.evals.at(-1)!.stats.accuracy;
    expect(metrics.paired.accuracy.perSeed[1]).toMatchObject({
      seed: 5,
      a: accuracy("grpo", 5),
      b: accuracy("roc", 5),
    });
    expect(again.stdout).toMatch(/^GRPO vs GRPO-RoC: seeds 2, 5 × 1 RL steps/);
    expect(again.stdout).toMatch(/^held-out accuracy, final +[+-]?\d\.\d{3} \[[+-]?\d\.\d{3}, [+-]?\d\.\d{3}\]/m);
    expect(readFileSync(join(out, "figure.svg"), "utf8")).toMatch(/font-weight="bold">[^<]*, seeds 2, 5 \(/);
  }, 60_000);

  it("rejects a bad flag with the usage text", async () => {
    const bad = await demo(["--steps", "zero"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--steps must be a positive integer");
    expect(bad.stderr).toContain("--quick");
    const badSeeds = await demo(["--seeds", "1-x"]);
    expect(badSeeds.code).toBe(2);
    expect(badSeeds.stderr).toContain('received "1-x"');
  }, 30_000);
});

describe("the demo's command line", () => {
  const seeds = (...argv: string[]) => parseConfig(argv)!.seeds;

  it("runs seeds 1–10 by default and seed 1 with --quick", () => {
    expect(seeds()).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(seeds("--quick")).toEqual([1]);
  });

  it("takes one seed, a range, a list, or lists of ranges, ascending", () => {
    expect(seeds("--seeds", "7")).toEqual([7]);
    expect(seeds("--seeds", "101-105")).toEqual([101, 102, 103, 104, 105]);
    expect(seeds("--seeds", "9,3,5")).toEqual([3, 5, 9]);
    expect(seeds("--seeds", "1-3, 7")).toEqual([1, 2, 3, 7]);
    expect(seeds("--quick", "--seeds", "4")).toEqual([4]);
    expect(parseSeeds("2-2")).toEqual([2]);
  });

  it("names the malformed value instead of falling back to a default", () => {
    for (const text of ["", "x", "0", "-3", "1-", "3-1", "1,,2", "1.5", "1e3", "0x10", "2-4,3", "5,5", "1-100000"]) {
      expect(() => parseSeeds(text), text).toThrow(UsageError);
      expect(() => parseSeeds(text), text).toThrow(`"${text}"`);
    }
    expect(() => parseConfig(["--steps", "1e2"])).toThrow('--steps must be a positive integer, received "1e2"');
    expect(() => parseConfig(["--eval-every", " 4"])).toThrow(UsageError);
  });

  it("writes --quick somewhere else than the full run", () => {
    expect(parseConfig([])!.out).toBe("out/demo");
    expect(parseConfig(["--quick"])!.out).toBe("out/demo-quick");
    expect(parseConfig(["--quick", "--out", "x"])!.out).toBe("x");
  });

  it("says which seeds in words", () => {
    expect(describeSeeds([7])).toBe("seed 7");
    expect(describeSeeds([1, 2, 3, 4, 5, 6, 7, 8, 9, 10])).toBe("seeds 1–10");
    expect(describeSeeds([9, 1, 2, 3, 5])).toBe("seeds 1–3, 5, 9");
  });
});

describe("the demo's paired statistics", () => {
  it("gives Student's t critical values (scipy.stats.t.ppf)", () => {
    const known: [number, number, number][] = [
      [1, 0.95, 12.706204736174694],
      [2, 0.95, 4.302652729749462],
      [9, 0.95, 2.262157162798205],
      [10, 0.95, 2.228138851986274],
      [29, 0.95, 2.045229642132703],
      [1000, 0.95, 1.9623390808264083],
      [9, 0.99, 3.249835541592126],
    ];
    for (const [df, confidence, t] of known) expect(tCritical(df, confidence)).toBeCloseTo(t, 10);
    expect(() => tCritical(0)).toThrow(RangeError);
    expect(() => tCritical(2.5)).toThrow(RangeError);
  });

  it("gives the exact two-sided sign test", () => {
    expect(signTest(9, 1)).toBe(22 / 1024); // 0.02148
    expect(signTest(1, 9)).toBe(22 / 1024);
    expect(signTest(10, 0)).toBe(2 / 1024);
    expect(signTest(7, 3)).toBeCloseTo(0.34375, 15);
    expect(signTest(5, 5)).toBe(1);
    expect(signTest(0, 0)).toBe(1);
  });

  it("pairs by seed: mean difference, paired t interval, signs", () => {
    const p = pairedComparison([
      { seed: 1, a: 1, b: 2 },
      { seed: 2, a: 1, b: 3 },
      { seed: 3, a: 1, b: 4 },
      { seed: 4, a: 1, b: 5 },
      { seed: 5, a: 0, b: 1 },
    ]);
    // Differences 1, 2, 3, 4, 1: mean 2.2, sd √1.7, t(4) = 2.776445.
    expect(p.perSeed.map((s) => s.difference)).toEqual([1, 2, 3, 4, 1]);
    expect(p.mean).toBeCloseTo(2.2, 12);
    expect(p.sd).toBeCloseTo(Math.sqrt(1.7), 12);
    const half = (2.776445105197793 * Math.sqrt(1.7)) / Math.sqrt(5);
    expect(p.ci95![0]).toBeCloseTo(2.2 - half, 10);
    expect(p.ci95![1]).toBeCloseTo(2.2 + half, 10);
    expect([p.higher, p.lower, p.ties, p.signTestP]).toEqual([5, 0, 0, 2 / 32]);
    const tied = pairedComparison([
      { seed: 1, a: 0.5, b: 0.5 },
      { seed: 2, a: 0.5, b: 0.25 },
    ]);
    expect([tied.higher, tied.lower, tied.ties, tied.signTestP]).toEqual([0, 1, 1, 1]);
    expect(pairedComparison([{ seed: 7, a: 0.5, b: 0.75 }]).ci95).toBeNull();
  });
});
