/**
 * Infrastructure failures (docs/spec.md §1, §3): a rollout with an "infra_error" tool call, or `infraFailed: true`,
 * is infrastructure-failed. By default RoC drops it from its group before anything else, so that RoC and the
 * advantages see the group as if it had never been sampled; `infraFailures: "keep"` treats it as an ordinary
 * rollout whose infra_error calls are out of p_err. Worked examples first, then properties that hold the two
 * readings to the same group without the failures.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  GrpoRocError,
  isInfraFailed,
  parseTranscript,
  penalties,
  resampleOnCorrect,
  resolveRocOptions,
  rocPipeline,
  rocPresets,
  TOOL_FAILURES,
  TOOL_OUTCOMES,
  type PipelineResult,
  type RocOptionsInput,
  type Rollout,
  type ToolCall,
} from "../src/index.js";
import { HOSTILE_SEED } from "./hostile/shared.js";

const calls = (...outcomes: ToolCall["outcome"][]) => outcomes.map((outcome) => ({ outcome }));

/**
 * One prompt, eight rollouts: r2 failed by a tool call the sandbox could not run, r5 marked failed as a whole. Without
 * them: four positives (p_total 0, 0.5, 1, 0) and two negatives.
 */
const GROUP: readonly Rollout[] = [
  { id: "r0", groupId: "q", reward: 1, toolCalls: calls("ok"), answers: 1, turns: 1 },
  { id: "r1", groupId: "q", reward: 1, toolCalls: calls("ok", "execution_error"), answers: 1, turns: 1 },
  { id: "r2", groupId: "q", reward: 0, toolCalls: calls("infra_error"), answers: 0, turns: 1 },
  { id: "r3", groupId: "q", reward: 1, toolCalls: calls("execution_error"), answers: 1, turns: 1 },
  { id: "r4", groupId: "q", reward: 0, toolCalls: calls("ok"), answers: 1, turns: 1 },
  { id: "r5", groupId: "q", reward: 0, infraFailed: true, toolCalls: calls("ok"), answers: 1, turns: 1 },
  { id: "r6", groupId: "q", reward: 0, toolCalls: calls("parse_error"), answers: 1, turns: 1 },
  { id: "r7", groupId: "q", reward: 1, toolCalls: calls("ok", "ok"), answers: 1, turns: 1 },
];
const reference = { ...rocPresets.reference, keepPerGroup: 4 } as const;
/** verl's GRPO advantage of reward 1 in a group with rewards [1, 0, 0, 1]: 0.5 / (√(1/3) + 1e-6). */
const A = 0.5 / (Math.sqrt(1 / 3) + 1e-6);

describe("the outcome and the flag", () => {
  it('"infra_error" is an outcome but not one of the model\'s failures', () => {
    expect(TOOL_OUTCOMES).toContain("infra_error");
    expect(TOOL_FAILURES).not.toContain("infra_error");
    expect(() =>
      penalties(quality({ infra_error: 1 }), { ...defaults(), failureKinds: ["infra_error" as never] }),
    ).toThrow(/options\.failureKinds\[0\]/);
  });

  it("isInfraFailed: an infra_error call or infraFailed: true; infraFailed: false does not undo a call", () => {
    const base = { groupId: "q", reward: 0, answers: 0, turns: 1 };
    expect(isInfraFailed({ ...base, toolCalls: calls("ok", "infra_error") })).toBe(true);
    expect(isInfraFailed({ ...base, toolCalls: calls("ok"), infraFailed: true })).toBe(true);
    expect(isInfraFailed({ ...base, toolCalls: calls("infra_error"), infraFailed: false })).toBe(true);
    expect(isInfraFailed({ ...base, toolCalls: calls("ok", "timeout", "parse_error", "execution_error") })).toBe(false);
    expect(isInfraFailed({ groupId: "q", reward: 1, infraFailed: true })).toBe(true);
    expect(isInfraFailed({ groupId: "q", reward: 1, transcript: "<answer>1</answer>" })).toBe(false);
  });

  it("a transcript never yields infra_error, in either dialect, whatever its sandbox printed", () => {
    const text =
      "<tool_call>{}</tool_call><tool_response>Tool call failure\nreason: sandbox unreachable (HTTP 503)" +
      "</tool_response><answer>1</answer>";
    for (const dialect of ["strict", "reference"] as const)
      expect(parseTranscript(text, dialect).toolOutcomes.infra_error).toBe(0);
  });

  it("penalties leave infra_error calls out of p_err, numerator and denominator; only such calls count as none", () => {
    expect(penalties(quality({ ok: 1, execution_error: 1, infra_error: 2 }))).toMatchObject({
      pErr: 0.5,
      toolCalls: 2,
      failedToolCalls: 1,
    });
    expect(penalties(quality({ infra_error: 3 }))).toMatchObject({ pErr: 0.5, toolCalls: 0, failedToolCalls: 0 });
    expect(penalties(quality({ infra_error: 3 }), { ...defaults(), noToolCallPenalty: 0.25 }).pErr).toBe(0.25);
  });

  it("both presets and the defaults drop infrastructure failures", () => {
    expect(rocPresets.paper.infraFailures).toBe("drop");
    expect(rocPresets.reference.infraFailures).toBe("drop");
    expect(resolveRocOptions({ keepPerGroup: 1, seed: 0 }).infraFailures).toBe("drop");
  });
});

describe('infraFailures: "drop" (default), worked example', () => {
  it("r2 and r5 leave the group first; RoC and the advantages are those of the six others", () => {
    const result = rocPipeline(GROUP, { roc: reference });
    // Six left: counts 2 + 2 (floors of 2); the two lowest p_total of the positives (r0, r7), the first two negatives.
    expect(Array.from(result.kept)).toEqual([0, 4, 6, 7]);
    expect(Array.from(result.advantages)).toEqual([A, -A, -A, A]);
    expect(result.roc.dropped).toEqual([
      { index: 1, reason: "not-selected" },
      { index: 2, reason: "infra-failure" },
      { index: 3, reason: "not-selected" },
      { index: 5, reason: "infra-failure" },
    ]);
    expect(result.roc.groups).toEqual([
      {
        id: "q",
        size: 8,
        infraFailed: 2,
        positives: 4,
        negatives: 2,
        status: "resampled",
        keptPositives: 2,
        keptNegatives: 2,
      },
    ]);
    const { metrics } = result.roc;
    expect(metrics.groups).toEqual({
      in: 1,
      resampled: 1,
      keptWhole: 0,
      droppedInfraFailure: 0,
      droppedEqualRewards: 0,
      droppedUndersized: 0,
    });
    expect(metrics.rollouts).toEqual({ in: 8, kept: 4, dropped: 4, infraFailed: 2 });
    expect(metrics.negatives).toEqual({ seen: 2, kept: 2 });
    expect(metrics.allPositives.count).toBe(4);
  });

  it("a group whose every rollout failed is dropped as 'infra-failure', and counted", () => {
    const failed = GROUP.map((r) => ({ ...r, groupId: "down", infraFailed: true }));
    const result = resampleOnCorrect([...GROUP, ...failed], reference);
    expect(result.groups[1]).toMatchObject({ id: "down", status: "dropped", reason: "infra-failure", infraFailed: 8 });
    expect(result.groups[1]).toMatchObject({ positives: 0, negatives: 0, keptPositives: 0, keptNegatives: 0 });
    expect(result.metrics.groups.droppedInfraFailure).toBe(1);
    expect(result.metrics.rollouts.infraFailed).toBe(10);
    expect(result.dropped.filter((d) => d.index >= 8).every((d) => d.reason === "infra-failure")).toBe(true);
  });

  it("a group left with fewer than G follows `undersized`: dropped (reference), kept whole (paper), error", () => {
    const G = 7; // eight rollouts, two failed: six left
    expect(resampleOnCorrect(GROUP, { ...reference, keepPerGroup: G }).groups[0]).toMatchObject({
      status: "dropped",
      reason: "undersized",
      infraFailed: 2,
    });
    const paper = resampleOnCorrect(GROUP, { keepPerGroup: G, seed: 1 });
    expect(paper.groups[0]).toMatchObject({ status: "kept-whole", reason: "undersized" });
    expect(Array.from(paper.kept)).toEqual([0, 1, 3, 4, 6, 7]);
    expect(() => resampleOnCorrect(GROUP, { keepPerGroup: G, seed: 1, undersized: "error" })).toThrow(
      /rollouts\[0\]\.groupId: group "q" has 6 rollouts once 2 infrastructure-failed are dropped, fewer than/,
    );
    // Exactly G left: kept whole.
    expect(resampleOnCorrect(GROUP, { keepPerGroup: 6, seed: 1 }).groups[0]).toMatchObject({
      status: "kept-whole",
      reason: "exact-size",
    });
  });

  it("the equal-reward filter sees the group without them: a failed negative among positives is no signal", () => {
    const inputs = { toolCalls: [], answers: 1, turns: 1 };
    const group: Rollout[] = [
      { groupId: "g", reward: 1, ...inputs },
      { groupId: "g", reward: 1, ...inputs },
      { groupId: "g", reward: 0, infraFailed: true, ...inputs },
    ];
    const result = resampleOnCorrect(group, { keepPerGroup: 2, seed: 0 });
    expect(result.groups[0]).toMatchObject({ status: "dropped", reason: "equal-rewards", infraFailed: 1 });
    expect(result.dropped.map((d) => d.reason)).toEqual(["equal-rewards", "equal-rewards", "infra-failure"]);
    // Kept, the failure would have been the group's only negative: a signal the model did not earn.
    expect(resampleOnCorrect(group, { keepPerGroup: 2, seed: 0, infraFailures: "keep" }).groups[0]!.status).toBe(
      "resampled",
    );
  });
});

describe('infraFailures: "keep", worked example', () => {
  it("failed rollouts are ordinary ones: their rewards as given, their infra_error calls out of p_err", () => {
    const result = rocPipeline(GROUP, { roc: { ...reference, infraFailures: "keep" } });
    // Eight: four positives, four negatives (r2 and r5 among them), counts 2 + 2: the first two negatives are r2, r4.
    expect(Array.from(result.kept)).toEqual([0, 2, 4, 7]);
    expect(Array.from(result.advantages)).toEqual([A, -A, -A, A]);
    expect(result.roc.groups[0]).toMatchObject({ size: 8, infraFailed: 2, positives: 4, negatives: 4 });
    expect(result.roc.metrics.rollouts).toEqual({ in: 8, kept: 4, dropped: 4, infraFailed: 2 });
    expect(result.roc.dropped.every((d) => d.reason === "not-selected")).toBe(true);
    // r2 made only an infra_error call: no call of the model's, so p_err is noToolCallPenalty.
    expect(Array.from(result.roc.penalties.pErr)).toEqual([0, 0.5, 0.5, 1, 0, 0, 1, 0]);
  });

  it("a rewarded rollout with an infrastructure failure stays a positive, its p_err over its other calls", () => {
    const group: Rollout[] = [
      { groupId: "g", reward: 1, toolCalls: calls("infra_error", "ok", "timeout"), answers: 1, turns: 2 },
      { groupId: "g", reward: 0, toolCalls: calls("ok"), answers: 1, turns: 2 },
    ];
    const result = resampleOnCorrect(group, { keepPerGroup: 2, seed: 0, infraFailures: "keep" });
    expect(result.groups[0]).toMatchObject({ positives: 1, negatives: 1, status: "kept-whole", infraFailed: 1 });
    expect(result.penalties.pErr[0]).toBe(0.5);
    expect(result.metrics.keptPositives).toMatchObject({ count: 1, toolErrorRatio: 0.5 });
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties

const HEALTHY = ["ok", "parse_error", "execution_error", "timeout"] as const;

/** A rollout the model is answerable for: structured inputs without infra_error. */
const healthyArb = fc.record({
  correct: fc.boolean(),
  level: fc.nat({ max: 2 }),
  toolCalls: fc.array(fc.constantFrom(...HEALTHY), { maxLength: 5 }),
  answers: fc.nat({ max: 3 }),
  turns: fc.integer({ min: 1, max: 4 }),
});

/** How an infrastructure failure marks a rollout: an infra_error call at some position, the flag, or both. */
const failureArb = fc.record({
  how: fc.constantFrom("call", "flag", "both"),
  at: fc.nat({ max: 5 }),
});

type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never;
interface Draft {
  readonly groups: readonly (readonly {
    healthy: ValueOf<typeof healthyArb>;
    failure: ValueOf<typeof failureArb> | null;
  }[])[];
}

/** 1–4 groups of 1–24 rollouts, about one in four infrastructure-failed (now and then a whole group). */
const draftArb: fc.Arbitrary<Draft> = fc.record({
  groups: fc.array(
    fc.array(
      fc.record({
        healthy: healthyArb,
        failure: fc.oneof({ arbitrary: fc.constant(null), weight: 3 }, { arbitrary: failureArb, weight: 1 }),
      }),
      {
        minLength: 1,
        maxLength: 24,
      },
    ),
    { minLength: 1, maxLength: 4 },
  ),
});

/** The rollouts of a draft, groups interleaved in a fixed order; `withFailures: false` leaves the failed ones out. */
function build(draft: Draft, withIds: boolean, withFailures: boolean): Rollout[] {
  const rollouts: Rollout[] = [];
  const longest = Math.max(...draft.groups.map((g) => g.length));
  for (let k = 0; k < longest; k++) {
    draft.groups.forEach((group, g) => {
      const member = group[k];
      if (member === undefined || (member.failure !== null && !withFailures)) return;
      const { correct, level, toolCalls, answers, turns } = member.healthy;
      const outcomes: ToolCall["outcome"][] = [...toolCalls];
      const { failure } = member;
      if (failure !== null && failure.how !== "flag") outcomes.splice(failure.at, 0, "infra_error");
      rollouts.push({
        groupId: `group-${g}`,
        ...(withIds ? { id: `g${g}-r${k}` } : {}),
        reward: correct ? [1, 0.5, 2][level]! : [0, -1, 0][level]!,
        toolCalls: calls(...outcomes),
        answers,
        turns,
        ...(failure !== null && failure.how !== "call" ? { infraFailed: true } : {}),
      });
    });
  }
  return rollouts;
}

const optionsArb: fc.Arbitrary<RocOptionsInput> = fc.oneof(
  fc.record({
    keepPerGroup: fc.integer({ min: 1, max: 12 }),
    seed: fc.oneof(fc.nat(), fc.string({ maxLength: 4 })),
    undersized: fc.constantFrom("keep", "drop"),
    filterEqualRewards: fc.boolean(),
  }),
  fc.record({
    mode: fc.constant("reference"),
    keepPerGroup: fc.integer({ min: 4, max: 12 }),
    undersized: fc.constantFrom("keep", "drop"),
  }),
);

type Attempt<T> = { ok: true; value: T } | { ok: false; error: unknown };
function attempt<T>(run: () => T): Attempt<T> {
  try {
    return { ok: true, value: run() };
  } catch (error) {
    return { ok: false, error };
  }
}

/** What became of each rollout, by its object, for rollouts present in both inputs. */
function fates(rollouts: readonly Rollout[], result: PipelineResult) {
  const reasons = new Map(result.roc.dropped.map((d) => [d.index, d.reason]));
  const advantage = new Map(Array.from(result.kept, (index, k) => [index, result.advantages[k]!]));
  return rollouts.map((_, i) => ({
    reason: reasons.get(i),
    advantage: advantage.get(i),
    pTotal: result.roc.penalties.pTotal[i],
  }));
}

const RUNS = { seed: HOSTILE_SEED, numRuns: 200 };

describe("properties", () => {
  it.each([
    ["with ids", true],
    ["without ids", false],
  ] as const)(
    "drop (%s): kept set, reasons, penalties and advantages are those of the batch without the failures",
    (_, withIds) => {
      fc.assert(
        fc.property(draftArb, optionsArb, (draft, options) => {
          const all = build(draft, withIds, true);
          const healthy = build(draft, withIds, false);
          const failed = all.filter((r) => isInfraFailed(r));
          expect(all.length - failed.length).toBe(healthy.length);
          const a = attempt(() => rocPipeline(all, { roc: options }));
          const b = attempt(() => (healthy.length === 0 ? undefined : rocPipeline(healthy, { roc: options })));
          if (!b.ok) {
            // Reference mode's assertion (counts that do not add up) comes from the same group either way.
            expect(a.ok).toBe(false);
            expect((a as { error: unknown }).error).toBeInstanceOf(GrpoRocError);
            expect(((a as { error: Error }).error as Error).message).toBe((b.error as Error).message);
            return;
          }
          if (!a.ok) throw a.error;
          const withFailures = fates(all, a.value);
          const healthyFates = b.value === undefined ? [] : fates(healthy, b.value);
          // The same rollouts in the same order once the failed ones are taken out: bit for bit.
          expect(withFailures.filter((_, i) => !isInfraFailed(all[i]!))).toEqual(healthyFates);
          for (const [i, rollout] of all.entries())
            if (isInfraFailed(rollout)) expect(withFailures[i]!.reason).toBe("infra-failure");

          const m = a.value.roc.metrics;
          const emptied = draft.groups.filter((g) => g.every((member) => member.failure !== null)).length;
          expect(m.rollouts).toEqual({
            in: all.length,
            kept: a.value.kept.length,
            dropped: all.length - a.value.kept.length,
            infraFailed: failed.length,
          });
          expect(m.groups.droppedInfraFailure).toBe(emptied);
          expect(a.value.roc.groups.reduce((sum, g) => sum + g.infraFailed, 0)).toBe(failed.length);
          const { resampled, keptWhole, droppedInfraFailure, droppedEqualRewards, droppedUndersized } = m.groups;
          expect(resampled + keptWhole + droppedInfraFailure + droppedEqualRewards + droppedUndersized).toBe(
            m.groups.in,
          );
          if (b.value !== undefined) {
            const n = b.value.roc.metrics;
            expect({ ...m.groups, in: m.groups.in - emptied, droppedInfraFailure: 0 }).toEqual(n.groups);
            expect([m.positives, m.negatives]).toEqual([n.positives, n.negatives]);
            for (const which of ["keptPositives", "droppedPositives", "allPositives"] as const)
              expect(m[which]).toEqual(n[which]);
          }
        }),
        RUNS,
      );
    },
  );

  it("keep: the result is that of the same rollouts with their infra_error calls and flags removed", () => {
    fc.assert(
      fc.property(draftArb, optionsArb, (draft, options) => {
        const all = build(draft, true, true);
        const cleaned = all.map(({ infraFailed: _, ...rest }) => ({
          ...rest,
          toolCalls: rest.toolCalls!.filter((c) => c.outcome !== "infra_error"),
        }));
        const keep = { ...options, infraFailures: "keep" } as const;
        const a = attempt(() => rocPipeline(all, { roc: keep }));
        const b = attempt(() => rocPipeline(cleaned, { roc: keep }));
        expect(a.ok).toBe(b.ok);
        if (!a.ok || !b.ok) return;
        expect(fates(all, a.value)).toEqual(fates(cleaned, b.value));
        const failed = all.filter((r) => isInfraFailed(r)).length;
        expect(a.value.roc.metrics.rollouts).toEqual({ ...b.value.roc.metrics.rollouts, infraFailed: failed });
        const withoutCount = (result: PipelineResult) => result.roc.groups.map(({ infraFailed: _, ...g }) => g);
        expect(withoutCount(a.value)).toEqual(withoutCount(b.value));
        expect(b.value.roc.groups.every((g) => g.infraFailed === 0)).toBe(true);
        expect(a.value.roc.metrics.allPositives).toEqual(b.value.roc.metrics.allPositives);
      }),
      RUNS,
    );
  });

  it("isInfraFailed is exactly: some call is infra_error, or infraFailed is true", () => {
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...TOOL_OUTCOMES), { maxLength: 6 }),
        fc.option(fc.boolean(), { nil: undefined }),
        (outcomes, flag) => {
          const rollout = {
            groupId: 0,
            reward: 0,
            toolCalls: calls(...outcomes),
            answers: 0,
            turns: 1,
            infraFailed: flag,
          };
          expect(isInfraFailed(rollout)).toBe(outcomes.includes("infra_error") || flag === true);
        },
      ),
      RUNS,
    );
  });
});

function quality(counts: Partial<Record<(typeof TOOL_OUTCOMES)[number], number>>) {
  return {
    toolOutcomes: { ok: 0, parse_error: 0, execution_error: 0, timeout: 0, infra_error: 0, ...counts },
    answers: 1,
    turns: 1,
    formatOk: true,
  };
}

function defaults() {
  return { failureKinds: [...TOOL_FAILURES], penaltyWeights: { error: 1, format: 1 }, noToolCallPenalty: 0.5 };
}
