import { execFile } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";

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
const method = z.enum(["grpo", "roc"]);
const metricsSchema = z.object({
  schema: z.literal("grpo-roc-demo/1"),
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
    expect(svg.match(/<path/g)?.length ?? 0).toBeGreaterThan(4);
    const png = readFileSync(join(out, "figure.png"));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    expect(png.readUInt32BE(16)).toBeGreaterThan(1000); // width, from the IHDR chunk
    expect(png.length).toBeGreaterThan(10_000);
  });

  it("reuses the cached warm start on the next run", async () => {
    expect(existsSync(join(out, "warm-start-40x32.json"))).toBe(true);
    const again = await demo(["--quick", "--steps", "1", "--out", out]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain("warm start loaded");
    const metrics = metricsSchema.parse(JSON.parse(readFileSync(join(out, "metrics.json"), "utf8")));
    expect(metrics.warmStart.cached).toBe(true);
  }, 60_000);

  it("rejects a bad flag with the usage text", async () => {
    const bad = await demo(["--steps", "zero"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("--steps must be a positive integer");
    expect(bad.stderr).toContain("--quick");
  }, 30_000);
});
