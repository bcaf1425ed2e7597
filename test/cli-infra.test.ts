/**
 * Infrastructure failures on the command line: resample and pipeline drop them as the library does (reasonCode
 * "infra-failure" with a reason naming what marked the rollout), advantages leaves them out of their group's
 * statistics, penalties flags them, and --infra-failures keep treats them as ordinary rollouts. Runs dist/cli.js;
 * every expected value is the library's own on the same rollouts.
 */
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  isInfraFailed,
  resampleOnCorrect,
  rocPipeline,
  rocPresets,
  type RocOptionsInput,
  type Rollout,
  type ToolCall,
} from "../src/index.js";
import { rng } from "./helpers/rng.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "cli.js");

type Record = { [key: string]: unknown; line: number; dropped: boolean };

function cli(args: readonly string[], input: string) {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8" });
  const records = () =>
    result.stdout
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Record);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, records };
}

const toJsonl = (rows: readonly unknown[]) => `${rows.map((row) => JSON.stringify(row)).join("\n")}\n`;

/**
 * Twelve groups of 2–12 rollouts, contiguous as the command line wants them; about one rollout in five is
 * infrastructure-failed (an infra_error call or the flag), and group "g-11" failed whole.
 */
function batch(): Rollout[] {
  const random = rng(15);
  const outcomes = ["ok", "ok", "parse_error", "execution_error", "timeout"] as const;
  const rollouts: Rollout[] = [];
  for (let g = 0; g < 12; g++) {
    const size = 2 + random.int(11);
    for (let k = 0; k < size; k++) {
      const toolCalls: ToolCall[] = Array.from({ length: random.int(4) }, () => ({
        outcome: outcomes[random.int(5)]!,
      }));
      const failure = g === 11 ? 2 : random.next() < 0.2 ? random.int(2) + 1 : 0;
      if (failure === 1) toolCalls.splice(random.int(toolCalls.length + 1), 0, { outcome: "infra_error" });
      rollouts.push({
        id: `g${g}-r${k}`,
        groupId: `g-${g}`,
        reward: random.next() < 0.4 ? 1 : 0,
        toolCalls,
        answers: 1 + random.int(2),
        turns: 1 + random.int(4),
        ...(failure === 2 ? { infraFailed: true } : {}),
      });
    }
  }
  return rollouts;
}

const ROLLOUTS = batch();
const INPUT = toJsonl(ROLLOUTS);
const FAILED = ROLLOUTS.flatMap((rollout, i) => (isInfraFailed(rollout) ? [i] : []));

const RUNS = [
  ["paper", ["--seed", "3"], { ...rocPresets.paper, seed: 3 }],
  ["reference", ["--mode", "reference"], { ...rocPresets.reference }],
  ["paper, keep", ["--seed", "3", "--infra-failures", "keep"], { ...rocPresets.paper, seed: 3, infraFailures: "keep" }],
] as const;

describe("resample and pipeline", () => {
  it("the batch has what the tests need: failures in several groups, one group failed whole", () => {
    expect(FAILED.length).toBeGreaterThan(ROLLOUTS.length / 10);
    expect(new Set(FAILED.map((i) => ROLLOUTS[i]!.groupId)).size).toBeGreaterThan(4);
  });

  it.each(RUNS)("%s: records and summary are the library's", (_, flags, roc) => {
    const options: RocOptionsInput = { ...roc, keepPerGroup: 4 };
    const lib = rocPipeline(ROLLOUTS, { roc: options });
    const run = cli(["pipeline", "-k", "4", ...flags, "--summary", "-", "-o", "/dev/null"], INPUT);
    expect(run.status).toBe(0);
    const records = cli(["pipeline", "-k", "4", ...flags, "-q"], INPUT).records();
    expect(records.filter((r) => !r.dropped).map((r) => r.line - 1)).toEqual(Array.from(lib.kept));
    expect(records.filter((r) => !r.dropped).map((r) => r.advantage)).toEqual(Array.from(lib.advantages));
    expect(records.filter((r) => r.dropped).map((r) => [r.line - 1, r.reasonCode])).toEqual(
      lib.roc.dropped.map((d) => [d.index, d.reason]),
    );
    const summary = JSON.parse(run.stdout) as { [key: string]: any };
    const m = lib.roc.metrics;
    expect(summary.groups).toEqual({ ...m.groups, invalid: 0 });
    expect(summary.infraFailed).toBe(m.rollouts.infraFailed);
    expect(summary.infraFailed).toBe(FAILED.length);
    expect([summary.kept, summary.dropped]).toEqual([m.rollouts.kept, m.rollouts.dropped]);
    for (const key of ["keptPositives", "droppedPositives", "allPositives"] as const) {
      expect(summary[key].count).toBe(m[key].count);
      for (const field of ["meanPErr", "meanPFormat", "toolErrorRatio"] as const)
        expect(summary[key][field]).toBeCloseTo(m[key][field]!, 12);
    }
    // resample writes the same records, without the advantages.
    const resample = cli(["resample", "-k", "4", ...flags, "-q"], INPUT).records();
    expect(resample).toEqual(records.map(({ advantage: _, ...rest }) => rest));
  });

  it('an infrastructure failure is dropped with reasonCode "infra-failure" and a reason naming what marked it', () => {
    const records = cli(["resample", "-k", "4", "--seed", "3", "-q"], INPUT).records();
    expect(records.filter((r) => r.reasonCode === "infra-failure").map((r) => r.line - 1)).toEqual(FAILED);
    for (const i of FAILED) {
      const rollout = ROLLOUTS[i]!;
      const k = rollout.toolCalls!.findIndex((c) => c.outcome === "infra_error");
      const cause = rollout.infraFailed ? "infraFailed: true" : `toolCalls[${k}].outcome is infra_error`;
      expect(records[i]!.reason).toBe(
        `roc: infrastructure failure (${cause}): not the model's failure, left out of its group before RoC ` +
          "(--infra-failures keep keeps it)",
      );
    }
    const kept = cli(["pipeline", "-k", "4", "--seed", "3", "--kept-only", "-q"], INPUT).records();
    expect(kept.some((r) => FAILED.includes(r.line - 1))).toBe(false);
  });

  it("the summary line on stderr counts them", () => {
    const { stderr } = cli(["resample", "-k", "4", "--seed", "3"], INPUT);
    const m = resampleOnCorrect(ROLLOUTS, { keepPerGroup: 4, seed: 3 }).metrics;
    expect(stderr).toContain(`dropped: ${m.groups.droppedInfraFailure} infrastructure-failed, `);
    expect(stderr).toContain(`; ${FAILED.length} rollouts infrastructure-failed;`);
  });
});

describe("advantages", () => {
  const healthy = ROLLOUTS.filter((r) => !isInfraFailed(r));

  it.each([
    ["verl", [], advantagePresets.verl],
    ["trlBatch (the batch std is the kept rollouts' too)", ["--preset", "trlBatch"], advantagePresets.trlBatch],
  ] as const)(
    "%s: failed rollouts are dropped, the others get the advantages of their groups without them",
    (_, flags, preset) => {
      const run = cli(["advantages", ...flags, "--summary", "-", "-o", "/dev/null"], INPUT);
      expect(run.status).toBe(0);
      const summary = JSON.parse(run.stdout) as { [key: string]: unknown };
      expect(summary).toMatchObject({ kept: healthy.length, dropped: FAILED.length, infraFailed: FAILED.length });
      const records = cli(["advantages", ...flags, "-q"], INPUT).records();
      expect(records.filter((r) => r.dropped).map((r) => [r.line - 1, r.reasonCode])).toEqual(
        FAILED.map((i) => [i, "infra-failure"]),
      );
      expect(records.filter((r) => r.dropped).every((r) => !("advantage" in r))).toBe(true);
      expect(records.filter((r) => !r.dropped).map((r) => r.advantage)).toEqual(
        Array.from(
          advantages(
            healthy.map((r) => r.reward!),
            healthy.map((r) => r.groupId),
            preset,
          ),
        ),
      );
      expect(records[FAILED[0]!]!.reason).toMatch(
        /^advantages: infrastructure failure \(.+\): not the model's failure/,
      );
    },
  );

  it("--infra-failures keep: every rollout, as before the option existed", () => {
    const records = cli(["advantages", "--infra-failures", "keep", "-q"], INPUT).records();
    expect(records.every((r) => !r.dropped)).toBe(true);
    expect(records.map((r) => r.advantage)).toEqual(
      Array.from(
        advantages(
          ROLLOUTS.map((r) => r.reward!),
          ROLLOUTS.map((r) => r.groupId),
        ),
      ),
    );
  });
});

describe("penalties", () => {
  it("each record says whether the rollout is infrastructure-failed; nothing is dropped", () => {
    const records = cli(["penalties", "-q"], INPUT).records();
    expect(records.every((r) => !r.dropped)).toBe(true);
    expect(records.flatMap((r, i) => (r.infraFailed === true ? [i] : []))).toEqual(FAILED);
    // p_err as the library scores it: infra_error calls are not among the calls counted.
    const lib = resampleOnCorrect(ROLLOUTS, { keepPerGroup: 4, seed: 3, infraFailures: "keep" }).penalties;
    expect(records.map((r) => r.pErr)).toEqual(Array.from(lib.pErr));
    records.forEach((r, i) => {
      const calls = ROLLOUTS[i]!.toolCalls!;
      expect(r.toolCalls).toBe(calls.filter((c) => c.outcome !== "infra_error").length);
    });
  });
});

describe("bad input", () => {
  it("--infra-failures takes drop or keep only", () => {
    for (const command of [
      ["resample", "-k", "2", "--seed", "1"],
      ["pipeline", "-k", "2", "--seed", "1"],
      ["advantages"],
    ]) {
      const run = cli([...command, "--infra-failures", "negative"], INPUT);
      expect(run.status).toBe(2);
      expect(run.stderr).toContain('--infra-failures: expected one of drop, keep, received "negative"');
    }
  });

  it("infraFailed that is not a boolean is an invalid line, named by line and field", () => {
    const input = toJsonl([
      { groupId: "a", reward: 1 },
      { groupId: "a", reward: 0, infraFailed: "yes" },
    ]);
    const run = cli(["resample", "-k", "2", "--seed", "1"], input);
    expect(run.status).toBe(1);
    expect(run.stderr).toMatch(/line 2: infraFailed: .*expected boolean/);
    const skipped = cli(["resample", "-k", "2", "--seed", "1", "--skip-invalid", "-q"], input).records();
    expect(skipped[1]).toMatchObject({ line: 2, dropped: true, reasonCode: "invalid" });
  });
});
