/**
 * Bad input at the public boundary: every case either throws a GrpoRocError (a ValidationError when it is the
 * caller's data) whose message names the field path and index, or follows the documented behaviour.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantages,
  broadcastToTokens,
  GrpoRocError,
  parseTranscript,
  penalties,
  registerAdvantageEstimator,
  resampleOnCorrect,
  rocPipeline,
  ValidationError,
  type RocOptionsInput,
  type Rollout,
} from "../src/index.js";
import { expectValidationError, thrown } from "./helpers/errors.js";

const clean = { toolCalls: [{ outcome: "ok" }], answers: 1, turns: 1 } satisfies Partial<Rollout>;
/** A valid group of `n` rollouts (alternating right / wrong) with structured quality inputs. */
const group = (n: number, groupId: string | number = "g"): Rollout[] =>
  Array.from({ length: n }, (_, i) => ({ groupId, reward: i % 2, ...clean }));
const paper = (keepPerGroup: number): RocOptionsInput => ({ keepPerGroup, seed: 1 });
/** Replaces rollout `i` of a valid 4-rollout group (2 → kept: the group is resampled). */
const withRollout = (i: number, rollout: Record<string, unknown>): Rollout[] => {
  const rollouts = group(4);
  rollouts[i] = rollout as Rollout;
  return rollouts;
};

describe("non-finite rewards", () => {
  it.each([NaN, Infinity, -Infinity])("advantages: reward %d is rejected at rewards[i]", (bad) => {
    expectValidationError(() => advantages([1, 0, bad, 1], [0, 0, 0, 0]), "rewards[2]", /expected a finite number/);
  });

  it("advantages: a reward that is not a number is rejected at rewards[i]", () => {
    expectValidationError(
      () => advantages([1, "1" as unknown as number], [0, 0]),
      "rewards[1]",
      /expected a number, received string/,
    );
    expectValidationError(() => advantages(5 as unknown as number[], [0]), "rewards", /expected an array/);
  });

  it("advantages, missingRewards: 'ignore': NaN is left out of the statistics and gets A = 0; ±Infinity is still rejected", () => {
    const out = advantages([1, NaN, 0], ["a", "a", "a"], { missingRewards: "ignore" });
    // Statistics over {1, 0}: mean 0.5, unbiased std √0.5.
    expect(out[1]).toBe(0);
    expect(out[0]).toBeCloseTo(0.5 / (Math.SQRT1_2 + 1e-6), 14);
    expect(out[2]).toBeCloseTo(-0.5 / (Math.SQRT1_2 + 1e-6), 14);
    expectValidationError(() => advantages([1, Infinity, 0], [0, 0, 0], { missingRewards: "ignore" }), "rewards[1]");
  });

  it.each([NaN, Infinity, -Infinity])("rollouts: reward %d is rejected at rollouts[i].reward", (bad) => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(3, { groupId: "g", reward: bad, ...clean }), paper(2)),
      "rollouts[3].reward",
    );
    expectValidationError(
      () => rocPipeline(withRollout(3, { groupId: "g", reward: bad, ...clean }), { roc: paper(2) }),
      "rollouts[3].reward",
    );
  });

  it("broadcastToTokens: a non-finite advantage is rejected at advantages[i]", () => {
    expectValidationError(() => broadcastToTokens([1, NaN], [[1], [1]]), "advantages[1]");
    expectValidationError(() => broadcastToTokens([Infinity, 0], [[1], [1]]), "advantages[0]");
  });

  it("a ValidationError lists every issue but shows at most five in its message", () => {
    const rollouts = Array.from({ length: 7 }, () => ({ groupId: "g", reward: NaN }));
    const error = expectValidationError(() => resampleOnCorrect(rollouts, paper(2)), "rollouts[0].reward");
    expect(error.issues.map((issue) => issue.path)).toEqual(rollouts.map((_, i) => `rollouts[${i}].reward`));
    expect(error.message).toContain("rollouts[4].reward: ");
    expect(error.message).not.toContain("rollouts[5].reward: ");
    expect(error.message.split("\n")).toHaveLength(6);
    expect(error.message).toContain("… and 2 more");
  });
});

describe("empty input", () => {
  it("resampleOnCorrect and rocPipeline reject an empty batch", () => {
    expectValidationError(() => resampleOnCorrect([], paper(2)), "rollouts", /is empty/);
    expectValidationError(() => rocPipeline([], { roc: paper(2) }), "rollouts", /is empty/);
  });

  it("advantages and broadcastToTokens accept an empty batch and return an empty result", () => {
    const out = advantages([], []);
    expect(out).toBeInstanceOf(Float64Array);
    expect(out).toHaveLength(0);
    expect(broadcastToTokens([], [])).toEqual({ data: new Float64Array(0), shape: [0, 0] });
  });

  it("rollouts that are not an array, or not objects, are rejected", () => {
    expectValidationError(() => resampleOnCorrect({} as unknown as Rollout[], paper(2)), "rollouts", /expected array/);
    expectValidationError(
      () => resampleOnCorrect([...group(3), null as unknown as Rollout], paper(2)),
      "rollouts[3]",
      /expected object/,
    );
    expectValidationError(() => resampleOnCorrect(group(2), undefined as unknown as RocOptionsInput), "options");
  });
});

describe("group ids", () => {
  it.each([
    ["null", null],
    ["an object", {}],
    ["an array", [1]],
    ["a boolean", true],
    ["NaN", NaN],
    ["Infinity", Infinity],
    ["-Infinity", -Infinity],
    ["missing", undefined],
  ])("rollouts: a group id that is %s is rejected at rollouts[i].groupId", (_, bad) => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(2, { groupId: bad, reward: 1, ...clean }), paper(2)),
      "rollouts[2].groupId",
      /group id must be a string or a finite number/,
    );
  });

  it.each([
    ["null", null, "null"],
    ["an object", {}, "object"],
    ["NaN", NaN, "NaN"],
    ["Infinity", Infinity, "Infinity"],
    ["undefined", undefined, "undefined"],
  ])("advantages: a group id that is %s is rejected at groupIds[i], naming what it received", (_, bad, shown) => {
    expectValidationError(
      () => advantages([1, 0, 1], [0, 0, bad as unknown as number]),
      "groupIds[2]",
      new RegExp(`group id must be a string or a finite number, received ${shown}`),
    );
  });

  it("1 and '1' are different groups; 0 and -0 are the same group", () => {
    expect(Array.from(advantages([1, 0, 1, 0], [1, "1", 1, "1"]))).toEqual(
      Array.from(advantages([1, 0, 1, 0], ["a", "b", "a", "b"])),
    );
    expect(Array.from(advantages([1, 0], [0, -0]))).toEqual(Array.from(advantages([1, 0], [7, 7])));
  });

  it("a rollout id must be a string or a finite number", () => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, id: NaN, ...clean }), paper(2)),
      "rollouts[1].id",
    );
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, id: {}, ...clean }), paper(2)),
      "rollouts[1].id",
    );
  });
});

describe("structured quality inputs", () => {
  it.each([
    ["answers", -1, /expected number to be >=0/],
    ["turns", -2, /expected number to be >=0/],
    ["answers", 1.5, /expected int/],
    ["turns", 2.5, /expected int/],
    ["answers", NaN, /expected number/],
    ["turns", Infinity, /./],
  ] as const)("%s = %d is rejected at rollouts[i].%s", (field, value, message) => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, ...clean, [field]: value }), paper(2)),
      `rollouts[1].${field}`,
      message,
    );
  });

  it("a rollout that answered has at least one turn", () => {
    expectValidationError(
      () =>
        resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, toolCalls: [], answers: 1, turns: 0 }), paper(2)),
      "rollouts[1].turns",
      /at least one turn/,
    );
    // No answer and no turn is allowed: p_format is 1.
    const result = resampleOnCorrect(
      withRollout(1, { groupId: "g", reward: 1, toolCalls: [], answers: 0, turns: 0 }),
      paper(2),
    );
    expect(result.penalties.pFormat[1]).toBe(1);
  });

  it("an unknown tool outcome is rejected at rollouts[i].toolCalls[j].outcome, listing the valid ones", () => {
    expectValidationError(
      () =>
        resampleOnCorrect(
          withRollout(1, { groupId: "g", reward: 1, ...clean, toolCalls: [{ outcome: "ok" }, { outcome: "crash" }] }),
          paper(2),
        ),
      "rollouts[1].toolCalls[1].outcome",
      /outcome must be one of ok, parse_error, execution_error, timeout, infra_error/,
    );
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, ...clean, toolCalls: [{}] }), paper(2)),
      "rollouts[1].toolCalls[0].outcome",
    );
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, ...clean, toolCalls: "ok" }), paper(2)),
      "rollouts[1].toolCalls",
    );
  });

  it.each([
    ["toolCalls only", { toolCalls: [] }],
    ["answers only", { answers: 1 }],
    ["answers and turns without toolCalls", { answers: 1, turns: 2 }],
    ["toolCalls and turns without answers", { toolCalls: [], turns: 2 }],
  ])("incomplete structured inputs (%s) are rejected at rollouts[i]", (_, fields) => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(3, { groupId: "g", reward: 1, ...fields }), paper(2)),
      "rollouts[3]",
      /structured quality inputs need toolCalls, answers and turns together/,
    );
  });

  it("a transcript together with structured inputs is rejected at rollouts[i].transcript", () => {
    expectValidationError(
      () =>
        resampleOnCorrect(
          withRollout(1, { groupId: "g", reward: 1, ...clean, transcript: "<answer>1</answer>" }),
          paper(2),
        ),
      "rollouts[1].transcript",
      /either a transcript or structured quality inputs, not both/,
    );
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", reward: 1, answers: 1, transcript: "x" }), paper(2)),
      "rollouts[1].transcript",
    );
  });
});

describe("reward and correct", () => {
  it("a rollout with neither reward nor correct is rejected at rollouts[i].reward", () => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(1, { groupId: "g", ...clean }), paper(2)),
      "rollouts[1].reward",
      /give a reward, a correct flag, or both/,
    );
  });

  it("correct alone is enough: the reward is then 1 for correct and 0 for wrong", () => {
    const rollouts: Rollout[] = [
      { groupId: "g", correct: true, ...clean },
      { groupId: "g", correct: false, ...clean },
    ];
    const out = rocPipeline(rollouts, { roc: paper(2) });
    expect(Array.from(out.kept)).toEqual([0, 1]);
    expect(Array.from(out.advantages)).toEqual(Array.from(advantages([1, 0], ["g", "g"])));
  });

  it("correct must be a boolean", () => {
    expectValidationError(
      () => resampleOnCorrect(withRollout(0, { groupId: "g", reward: 1, correct: 1, ...clean }), paper(2)),
      "rollouts[0].correct",
    );
  });
});

describe("options", () => {
  it.each([
    [0, /expected number to be >=1/],
    [-3, /expected number to be >=1/],
    [1.5, /expected int/],
    [NaN, /expected number/],
    [undefined, /./],
  ])("keepPerGroup = %s is rejected at options.keepPerGroup", (G, message) => {
    expectValidationError(
      () => resampleOnCorrect(group(4), { keepPerGroup: G as number, seed: 1 }),
      "options.keepPerGroup",
      message,
    );
  });

  it("paper mode (the default) without a seed is rejected at options.seed", () => {
    expectValidationError(() => resampleOnCorrect(group(4), { keepPerGroup: 2 }), "options.seed", /pass a seed/);
    expectValidationError(() => resampleOnCorrect(group(4), { keepPerGroup: 2, mode: "paper" }), "options.seed");
    expectValidationError(() => resampleOnCorrect(group(4), { keepPerGroup: 2, seed: NaN }), "options.seed");
    // Reference mode does not sample, so it needs no seed.
    expect(resampleOnCorrect(group(4), { keepPerGroup: 4, mode: "reference" }).kept).toHaveLength(4);
  });

  it("an unknown mode is rejected at options.mode", () => {
    expectValidationError(
      () => resampleOnCorrect(group(4), { keepPerGroup: 2, seed: 1, mode: "greedy" as "paper" }),
      "options.mode",
    );
  });

  it("reference mode: minNegatives + minPositives > keepPerGroup is rejected at options.minNegatives", () => {
    expectValidationError(
      () => resampleOnCorrect(group(6), { keepPerGroup: 3, mode: "reference" }),
      "options.minNegatives",
      /minNegatives \+ minPositives \(4\) exceeds keepPerGroup \(3\)/,
    );
    expectValidationError(
      () => resampleOnCorrect(group(6), { keepPerGroup: 4, mode: "reference", minNegatives: 3, minPositives: 2 }),
      "options.minNegatives",
    );
    expectValidationError(
      () => resampleOnCorrect(group(6), { keepPerGroup: 4, mode: "reference", minNegatives: -1 }),
      "options.minNegatives",
    );
    // The floors are a reference-mode rule: paper mode accepts the same options.
    expect(resampleOnCorrect(group(6), { keepPerGroup: 3, seed: 1 }).kept).toHaveLength(3);
  });

  it("penalty options are validated", () => {
    expectValidationError(
      () => resampleOnCorrect(group(4), { ...paper(2), penaltyWeights: { error: -1, format: 1 } }),
      "options.penaltyWeights.error",
    );
    expectValidationError(
      () => resampleOnCorrect(group(4), { ...paper(2), noToolCallPenalty: -0.5 }),
      "options.noToolCallPenalty",
    );
    expectValidationError(
      () => resampleOnCorrect(group(4), { ...paper(2), failureKinds: ["timeout", "ok" as "timeout"] }),
      "options.failureKinds[1]",
    );
    expectValidationError(
      () => resampleOnCorrect(group(4), { ...paper(2), penalty: 1 as unknown as () => number }),
      "options.penalty",
      /expected a function/,
    );
  });
});

describe("groups smaller than keepPerGroup (G > N)", () => {
  // Group "small" (2 rollouts, at indices 1 and 3) next to a group "big" of 4; G = 4.
  const batch = (): Rollout[] => {
    const big = group(4, "big");
    const small = group(2, "small");
    return [big[0]!, small[0]!, big[1]!, small[1]!, big[2]!, big[3]!];
  };

  it("reference mode, by default: the group is dropped with reason 'undersized'", () => {
    const result = resampleOnCorrect(batch(), { keepPerGroup: 4, mode: "reference" });
    expect(result.groups.find((g) => g.id === "small")).toMatchObject({
      status: "dropped",
      reason: "undersized",
      keptPositives: 0,
      keptNegatives: 0,
    });
    expect(result.dropped).toEqual([
      { index: 1, reason: "undersized" },
      { index: 3, reason: "undersized" },
    ]);
    expect(result.metrics.groups.droppedUndersized).toBe(1);
  });

  it("undersized: 'error' throws, naming the first rollout of the group", () => {
    for (const mode of ["reference", "paper"] as const) {
      expectValidationError(
        () => resampleOnCorrect(batch(), { keepPerGroup: 4, mode, seed: 1, undersized: "error" }),
        "rollouts[1].groupId",
        /group "small" has 2 rollouts, fewer than keepPerGroup = 4/,
      );
    }
  });

  it("paper mode, by default: the group is kept whole and reported as undersized", () => {
    const result = resampleOnCorrect(batch(), { keepPerGroup: 4, seed: 1 });
    expect(result.groups.find((g) => g.id === "small")).toMatchObject({
      status: "kept-whole",
      reason: "undersized",
      keptPositives: 1,
      keptNegatives: 1,
    });
    expect(Array.from(result.kept)).toEqual([0, 1, 2, 3, 4, 5]);
    // And it can be made to drop instead.
    const dropped = resampleOnCorrect(batch(), { keepPerGroup: 4, seed: 1, undersized: "drop" });
    expect(dropped.groups.find((g) => g.id === "small")?.status).toBe("dropped");
  });

  it("the equal-reward filter runs first: an undersized all-equal group is dropped as 'equal-rewards', even with undersized: 'error'", () => {
    const rollouts = [...group(4, "big"), { groupId: "small", reward: 1, ...clean }];
    const result = resampleOnCorrect(rollouts, { keepPerGroup: 4, seed: 1, undersized: "error" });
    expect(result.groups.find((g) => g.id === "small")).toMatchObject({ status: "dropped", reason: "equal-rewards" });
    // With the filter off, the undersized rule applies.
    expectValidationError(
      () => resampleOnCorrect(rollouts, { keepPerGroup: 4, seed: 1, undersized: "error", filterEqualRewards: false }),
      "rollouts[4].groupId",
    );
  });
});

describe("quality inputs needed for selection", () => {
  it("a correct rollout of a resampled group with no quality inputs is rejected at rollouts[i]", () => {
    for (const options of [paper(2), { keepPerGroup: 4, mode: "reference" } as const]) {
      const rollouts = [...group(6), { groupId: "g", reward: 1 }];
      expectValidationError(() => resampleOnCorrect(rollouts, options), "rollouts[6]", /needs quality inputs/);
    }
  });

  it("…but not a wrong one, nor one of a group that is kept whole, nor when options.penalty scores it", () => {
    const wrong = resampleOnCorrect([...group(6), { groupId: "g", reward: 0 }], paper(2));
    expect(Number.isNaN(wrong.penalties.pTotal[6])).toBe(true);
    const whole = resampleOnCorrect([...group(3), { groupId: "g", reward: 1 }], paper(4));
    expect(whole.groups[0]!.status).toBe("kept-whole");
    const scored = resampleOnCorrect([...group(6), { groupId: "g", reward: 1 }], { ...paper(2), penalty: () => 0.5 });
    expect(scored.penalties.pTotal[6]).toBe(0.5);
    expect(Number.isNaN(scored.penalties.pErr[6])).toBe(true);
  });

  it.each([
    ["NaN", NaN],
    ["a negative number", -1],
    ["Infinity", Infinity],
    ["a string", "1"],
    ["undefined", undefined],
  ])("a custom penalty returning %s is rejected, naming the rollout", (_, value) => {
    expectValidationError(
      () => resampleOnCorrect(group(4), { ...paper(2), penalty: (() => value) as unknown as () => number }),
      "options.penalty(rollouts[1])",
      /must return a finite number ≥ 0/,
    );
  });

  it("the custom penalty is asked only about correct rollouts", () => {
    const asked: number[] = [];
    resampleOnCorrect(group(6), { ...paper(2), penalty: (_, i) => (asked.push(i), 0) });
    expect(asked).toEqual([1, 3, 5]);
  });
});

describe("reference mode: counts that cannot be met", () => {
  it("N = 14, G = 7, 7 correct: Python rounding gives 4 + 4 = 8 > G, and the group raises like the released code's assert", () => {
    // round(7·7/14) = round(3.5) = 4 for both classes; neither floor (2) applies, so the released code's
    // `assert len(choices) == down_sample_to_n` fails. This library throws a GrpoRocError (not a ValidationError).
    const rollouts = group(14);
    const error = thrown(() => resampleOnCorrect(rollouts, { keepPerGroup: 7, mode: "reference" }));
    expect(error).toBeInstanceOf(GrpoRocError);
    expect(error).not.toBeInstanceOf(ValidationError);
    expect((error as Error).message).toMatch(
      /group "g": rStar2-Agent.s counts ask for 4 positives \+ 4 negatives of 7 \+ 7, which is not keepPerGroup = 7/,
    );
    // Paper mode has no such case: k_neg = ⌊7·7/14⌋ = 3, k_pos = 4.
    expect(resampleOnCorrect(rollouts, paper(7)).groups[0]).toMatchObject({ keptPositives: 4, keptNegatives: 3 });
  });
});

describe("advantages: shape and options", () => {
  it("rewards and groupIds of different lengths are rejected at groupIds", () => {
    expectValidationError(() => advantages([1, 0, 1], [0, 0]), "groupIds", /has 2 entries but rewards has 3/);
    expectValidationError(() => advantages([1], [0, 0]), "groupIds", /has 2 entries but rewards has 1/);
    expectValidationError(() => advantages([1], 0 as unknown as number[]), "groupIds", /expected an array/);
  });

  it("an unknown estimator is rejected at options.estimator, listing the registered ones", () => {
    expectValidationError(
      () => advantages([1, 0], [0, 0], { estimator: "ppo" }),
      "options.estimator",
      /unknown estimator "ppo"; registered: grpo, rloo/,
    );
  });

  it("bad option values are rejected at their path", () => {
    expectValidationError(() => advantages([1, 0], [0, 0], { epsilon: -1 }), "options.epsilon");
    expectValidationError(() => advantages([1, 0], [0, 0], { stdScope: "global" as "group" }), "options.stdScope");
    expectValidationError(() => advantages([1, 0], [0, 0], { singleton: "one" as "raw" }), "options.singleton");
  });

  it("registering an estimator under a taken name is a GrpoRocError", () => {
    const error = thrown(() => registerAdvantageEstimator("grpo", (r) => r));
    expect(error).toBeInstanceOf(GrpoRocError);
    expect((error as Error).message).toMatch(/"grpo" is already registered/);
  });
});

describe("broadcastToTokens: masks", () => {
  it("a ragged mask is rejected at the first row whose length differs", () => {
    expectValidationError(
      () => broadcastToTokens([1, 2, 3], [[1, 1], [1, 1], [1]]),
      "mask[2]",
      /ragged rows: has 1 entries, row 0 has 2/,
    );
    expectValidationError(() => broadcastToTokens([1, 2], [[1], [1, 0]]), "mask[1]", /ragged rows/);
  });

  it.each([0.5, 2, -1, NaN, Infinity])("a mask entry %d (not 0 or 1) is rejected at mask[row][col]", (bad) => {
    expectValidationError(
      () =>
        broadcastToTokens(
          [1, 2],
          [
            [1, 1, 0],
            [1, bad, 0],
          ],
        ),
      "mask[1][1]",
      /mask entries must be 0 or 1/,
    );
  });

  it("a flat mask with a boolean or string entry is rejected at mask[row][col]", () => {
    expectValidationError(
      () => broadcastToTokens([1], { data: [1, true as unknown as number], shape: [1, 2] }),
      "mask[0][1]",
      /received true/,
    );
    expectValidationError(
      () => broadcastToTokens([1], { data: ["1" as unknown as number], shape: [1, 1] }),
      "mask[0][0]",
    );
    // A nested entry that does not even convert to a number is rejected as well.
    expectValidationError(() => broadcastToTokens([1], [["yes" as unknown as number]]), "mask[0][0]");
  });

  it("a null entry in a nested mask is rejected, not coerced to 0", () => {
    expectValidationError(
      () =>
        broadcastToTokens(
          [1, 2],
          [
            [1, 1],
            [1, null as unknown as number],
          ],
        ),
      "mask[1][1]",
    );
  });

  it("a flat mask is checked against its shape and for 0/1 entries", () => {
    expectValidationError(
      () => broadcastToTokens([1, 2], { data: [1, 0, 1], shape: [2, 2] }),
      "mask.data",
      /has 3 entries but shape \[2, 2\] needs 4/,
    );
    expectValidationError(
      () => broadcastToTokens([1, 2], { data: new Float64Array([1, 0, 1, 3]), shape: [2, 2] }),
      "mask[1][1]",
    );
    expectValidationError(
      () => broadcastToTokens([1, 2], { data: [1, 0, 1, 1], shape: [2, -2] as unknown as [number, number] }),
      "mask.shape[1]",
    );
  });

  it("a mask whose row count differs from the number of advantages is rejected at mask", () => {
    expectValidationError(
      () => broadcastToTokens([1, 2, 3], [[1], [1]]),
      "mask",
      /has 2 rows but there are 3 advantages/,
    );
  });

  it("a row that is not an array is rejected at mask[i]", () => {
    expectValidationError(
      () => broadcastToTokens([1, 2], [[1], null as unknown as number[]]),
      "mask[1]",
      /expected an array/,
    );
    expectValidationError(() => broadcastToTokens([1, 2], [[1], 3 as unknown as number[]]), "mask[1]");
  });

  it("a first row that is null is rejected at mask[0]", () => {
    expectValidationError(() => broadcastToTokens([1], [null as unknown as number[]]), "mask[0]");
  });
});

describe("rocPipeline: options", () => {
  it("missing options are rejected with a ValidationError", () => {
    expectValidationError(() => rocPipeline(group(2), undefined as unknown as { roc: RocOptionsInput }), "options");
  });

  it("bad advantage options are rejected at options.<field> after RoC", () => {
    expectValidationError(
      () => rocPipeline(group(4), { roc: paper(2), advantages: { estimator: "nope" } }),
      "options.estimator",
    );
  });
});

describe("malformed transcripts: never throw, p_format 1 when the answer markup is broken or missing", () => {
  const options = {
    failureKinds: ["parse_error", "execution_error", "timeout"],
    penaltyWeights: { error: 1, format: 1 },
    noToolCallPenalty: 0.5,
  } as const;
  const score = (text: string, dialect: "strict" | "reference") => penalties(parseTranscript(text, dialect), options);

  it.each(["strict", "reference"] as const)(
    "%s dialect: the empty string has no answer (p_format 1) and no tool call (p_err 0.5)",
    (dialect) => {
      const parsed = parseTranscript("", dialect);
      expect(parsed.answers).toBe(0);
      expect(parsed.unansweredCalls).toBe(0);
      expect(score("", dialect)).toMatchObject({ pErr: 0.5, pFormat: 1, pTotal: 1.5, toolCalls: 0 });
    },
  );

  it.each([
    ["an unclosed answer", "<tool_call>{}</tool_call><tool_response>Tool call success\n</tool_response><answer>42"],
    ["a lone closing tag", "The answer is 42</answer>"],
    ["tags in the wrong order", "</answer>42<answer>"],
    ["one closed and one unclosed answer", "<answer>\\boxed{1}</answer> wait <answer>\\boxed{2}"],
    ["a nested answer", "<answer><answer>\\boxed{1}</answer>"],
  ])("%s: formatOk is false and p_format is 1 in both dialects", (_, text) => {
    for (const dialect of ["strict", "reference"] as const) {
      expect(parseTranscript(text, dialect).formatOk).toBe(false);
      expect(score(text, dialect).pFormat).toBe(1);
    }
  });

  it("unclosed tool blocks are not counted: an open <tool_response> is no response, an open <tool_call> no call", () => {
    const parsed = parseTranscript(
      '<tool_call>{"name": "python"}</tool_call><tool_response>Tool call failure\nreason: timeout',
    );
    expect(parsed.toolOutcomes).toEqual({ ok: 0, parse_error: 0, execution_error: 0, timeout: 0, infra_error: 0 });
    expect(parsed.unansweredCalls).toBe(1);
    expect(score('<tool_call>{"name": ', "strict")).toMatchObject({ toolCalls: 0, pErr: 0.5 });
  });

  it("reference dialect: a transcript with a well-formed answer but no closed assistant turn has p_format 1", () => {
    const text = "<|im_start|>assistant\n<answer>\\boxed{4}</answer>";
    expect(parseTranscript(text, "reference")).toMatchObject({ answers: 1, turns: 0, formatOk: false });
    expect(score(text, "reference").pFormat).toBe(1);
    // The strict dialect counts the header itself as one turn and accepts the answer.
    expect(parseTranscript(text, "strict")).toMatchObject({ answers: 1, turns: 1, formatOk: true });
    expect(score(text, "strict").pFormat).toBe(0);
  });

  const tagSoup = fc
    .array(
      fc.oneof(
        fc.constantFrom(
          "<answer>",
          "</answer>",
          "<tool_call>",
          "</tool_call>",
          "<tool_response>",
          "</tool_response>",
          "<|im_start|>assistant",
          "<|im_start|>user",
          "<|im_end|>",
          "Tool call success\n",
          "Tool call failure\nreason: worker_timeout\n",
          "Failed to decode tool call",
          "Error when executing tool",
          "error",
          "\\boxed{42}",
          "<answer",
          "answer>",
        ),
        fc.string({ maxLength: 6 }),
        fc.string({ unit: "binary", maxLength: 6 }),
      ),
      { maxLength: 30 },
    )
    .map((parts) => parts.join(""));

  const count = (text: string, needle: string) => text.split(needle).length - 1;

  it("any text (tag soup, random bytes, lone surrogates): parsing never throws and the result is consistent", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          tagSoup,
          fc.string({ unit: "binary", maxLength: 200 }),
          fc.string({ unit: "grapheme", maxLength: 50 }),
        ),
        (text) => {
          for (const dialect of ["strict", "reference"] as const) {
            const parsed = parseTranscript(text, dialect);
            const p = penalties(parsed, options);
            const responses = Object.values(parsed.toolOutcomes).reduce((a, b) => a + b, 0);
            for (const n of [
              parsed.answers,
              parsed.turns,
              parsed.unrecognizedResponses,
              parsed.unansweredCalls,
              responses,
            ]) {
              expect(Number.isInteger(n) && n >= 0).toBe(true);
            }
            expect(responses).toBeLessThanOrEqual(count(text, "<tool_response>"));
            expect(parsed.answers).toBeLessThanOrEqual(Math.min(count(text, "<answer>"), count(text, "</answer>")));
            expect(p.pErr === 0.5 || (p.pErr >= 0 && p.pErr <= 1)).toBe(true);
            expect(p.pFormat >= 0 && p.pFormat <= 1).toBe(true);
            if (responses === 0) expect(p.pErr).toBe(0.5);
            // p_format is 1 whenever the answer markup is missing or broken.
            if (!text.includes("<answer>") || !text.includes("</answer>") || !parsed.formatOk)
              expect(p.pFormat).toBe(1);
            if (dialect === "reference") expect(parsed.unrecognizedResponses).toBe(0);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it("a malformed transcript in a resampled group scores p_format 1 and does not stop the selection", () => {
    const rollouts: Rollout[] = [
      { groupId: "g", reward: 1, transcript: "" },
      { groupId: "g", reward: 1, transcript: "<answer>42" },
      { groupId: "g", reward: 1, transcript: "\u0000\uffff\ud800<tool_response>" },
      { groupId: "g", reward: 0, transcript: "</answer>" },
      { groupId: "g", reward: 0 },
      {
        groupId: "g",
        reward: 1,
        transcript:
          "<tool_call>{}</tool_call><|im_end|>\n<|im_start|>user\n<tool_response>Tool call success\n</tool_response><|im_end|>\n<|im_start|>assistant\n<answer>\\boxed{1}</answer>",
      },
    ];
    for (const options of [paper(3), { keepPerGroup: 4, mode: "reference", transcriptDialect: "reference" } as const]) {
      const result = resampleOnCorrect(rollouts, options);
      for (const i of [0, 1, 2, 3]) expect(result.penalties.pFormat[i]).toBe(1);
      expect(result.groups[0]!.status).toBe("resampled");
    }
  });
});
