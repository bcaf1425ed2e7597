/**
 * Classes 5, 6 and 8 of the bad-input contract: every exported helper validates what it receives; the empty step
 * (RoC keeps nothing) flows through as a defined no-op; ids are kept exactly or refused, never rounded or merged.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantages,
  aggregate,
  batchNormalizer,
  klPenalty,
  lossPresets,
  paperCounts,
  parseTranscript,
  penalties,
  policyLoss,
  policyLossFromLogits,
  referenceCounts,
  resampleOnCorrect,
  rocPipeline,
  rocPresets,
  tokenLogProbs,
  tokenLogProbsBackward,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, returned } from "./shared.js";

const anything = fc.oneof(
  fc.constantFrom(null, undefined, NaN, Infinity, -1, 1.5, "", "x", true, [], {}, 2 ** 60),
  fc.anything(),
);

describe("class 5: exported helpers validate their arguments", () => {
  const quality = {
    toolOutcomes: { ok: 1, parse_error: 0, execution_error: 0, timeout: 0, infra_error: 0 },
    answers: 1,
    turns: 1,
    formatOk: true,
  };

  it("penalties: a malformed quality record or options object is an error at its field, never NaN", () => {
    hostile(fc.tuple(fc.constantFrom("answers", "turns", "formatOk", "toolOutcomes"), anything), ([field, bad]) => {
      const outcome = attempt(() => penalties({ ...quality, [field]: bad } as never));
      if (outcome.ok) {
        expectAllFinite(outcome.value);
        return;
      }
      expectRefusedAt(outcome, new RegExp(`^quality\\.${field}`));
    });
    expectRefusedAt(
      attempt(() => penalties(quality, { noToolCallPenalty: -1 } as never)),
      /^options\./,
    );
  });

  it("parseTranscript: a dialect it does not know, or text that is not a string, is an error", () => {
    expectRefusedAt(
      attempt(() => parseTranscript("<answer>1</answer>", "strct" as never)),
      "dialect",
      /strict, reference/,
    );
    expectRefusedAt(
      attempt(() => parseTranscript(42 as never)),
      "text",
    );
  });

  it("paperCounts and referenceCounts: counts, G and floors are checked; G must be below the group's size", () => {
    hostile(fc.tuple(anything, fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })), ([G, p, n]) => {
      const outcome = attempt(() => paperCounts({ positives: p, negatives: n }, G as number));
      if (outcome.ok) {
        expect(Number.isInteger(G) && (G as number) >= 1 && (G as number) < p + n).toBe(true);
        expect(outcome.value.positives + outcome.value.negatives).toBe(G);
        return;
      }
      expectRefusedAt(outcome, /^keep$/);
    });
    expectRefusedAt(
      attempt(() => paperCounts({ positives: -1, negatives: 3 }, 1)),
      "counts.positives",
    );
    expectRefusedAt(
      attempt(() => referenceCounts({ positives: 2, negatives: 30 }, 16, { minNegatives: 2.5, minPositives: 2 })),
      "minimums.minNegatives",
    );
  });

  it("klPenalty: an unknown kind, a non-boolean clamp or non-finite log-probs are errors; overflow too", () => {
    expectRefusedAt(
      attempt(() => klPenalty("k4" as never, true, -1, -1)),
      "arguments[0]",
    );
    expectRefusedAt(
      attempt(() => klPenalty("k3", "yes" as never, -1, -1)),
      "arguments[1]",
    );
    expectRefusedAt(
      attempt(() => klPenalty("k3", true, NaN, -1)),
      "arguments[2]",
    );
    expectRefusedAt(
      attempt(() => klPenalty("k3", false, -1000, -1)),
      "arguments",
      /overflows/,
    );
    expect(klPenalty("k3", true, -1, -1.5).value).toBeCloseTo(Math.exp(-0.5) + 0.5 - 1, 15);
  });

  it("aggregate and batchNormalizer: malformed masks and values are errors", () => {
    expectRefusedAt(
      attempt(() => batchNormalizer([[1, 2]])),
      "mask[0][1]",
      /0 or 1/,
    );
    expectRefusedAt(
      attempt(() => aggregate([[1, NaN]])),
      "values[0][1]",
    );
    expectRefusedAt(
      attempt(() => aggregate([[1, 2]], { mask: [[1]] })),
      "options.mask",
    );
  });

  it("tokenLogProbsBackward: a `saved` that is not a forward result of these logits is refused, never a TypeError", () => {
    const logits = { data: new Float64Array([0, 1, 2, 3, 4, 5]), shape: [1, 2, 3] as const };
    const forward = tokenLogProbs(logits, [[0, 1]]);
    const options = { gradLogp: [[1, 1]] };
    expectRefusedAt(
      attempt(() => tokenLogProbsBackward(logits, [[0, 1]], { ...options, saved: {} as never })),
      /^options\.saved\./,
    );
    const short = { ...forward, logSumExp: forward.logSumExp.subarray(1) };
    expectRefusedAt(
      attempt(() => tokenLogProbsBackward(logits, [[0, 1]], { ...options, saved: short })),
      "options.saved.logSumExp",
    );
    const infinite = { ...forward, logSumExp: Float64Array.of(Infinity, forward.logSumExp[1]!) };
    expectRefusedAt(
      attempt(() => tokenLogProbsBackward(logits, [[0, 1]], { ...options, saved: infinite })),
      "options.saved.logSumExp[0][0]",
    );
  });
});

describe("class 6: the empty step is a defined no-op", () => {
  it("RoC keeps nothing (every group all-equal) → no advantages → an empty normaliser → loss 0 from log-probs and from logits", () => {
    const rollouts = [1, 1, 1, 1].map((reward, i) => ({
      groupId: "q",
      reward,
      toolCalls: [],
      answers: 1,
      turns: 1,
      id: i,
    }));
    const step = returned(
      attempt(() => rocPipeline(rollouts, { roc: { ...rocPresets.paper, keepPerGroup: 2, seed: 7 } })),
    );
    expect(step.kept.length).toBe(0);
    expect(step.advantages.length).toBe(0);
    const normalizer = batchNormalizer([]);
    expect(normalizer).toEqual({ tokens: 0, sequences: 0, rows: 0, length: undefined });
    const loss = returned(
      attempt(() => policyLoss({ logp: [], advantages: [], mask: [] }, { ...lossPresets.reference, normalizer })),
    );
    expect(loss.loss).toBe(0);
    expect(Object.values(loss.metrics).every((m) => m === 0 || m === undefined)).toBe(true);
    const fromLogits = policyLossFromLogits(
      { logits: { data: new Float32Array(0), shape: [0, 4, 10] }, tokens: { data: [], shape: [0, 4] }, advantages: [] },
      { ...lossPresets.paper, normalizer },
    );
    expect(fromLogits.loss).toBe(0);
    expect(fromLogits.gradLogits.data.length).toBe(0);
  });
});

describe("class 8: identity", () => {
  it("an integer id beyond 2^53 − 1 is refused (it has already been rounded); as a bigint or a string it is kept", () => {
    expectRefusedAt(
      attempt(() => advantages([1, 0], [2 ** 53 + 2, 2 ** 53 + 2])),
      "groupIds[0]",
      /bigint/,
    );
    const rollouts = (groupId: unknown) =>
      [1, 0, 1].map((reward) => ({ groupId, reward, toolCalls: [], answers: 1, turns: 1 })) as never;
    expectRefusedAt(
      attempt(() => resampleOnCorrect(rollouts(JSON.parse("18446744073709551615")), { keepPerGroup: 2, seed: 1 })),
      "rollouts[0].groupId",
    );
    const kept = resampleOnCorrect(rollouts(18446744073709551615n), { keepPerGroup: 2, seed: 1 });
    expect(kept.groups[0]!.id).toBe(18446744073709551615n);
  });

  it("bigint and number ids of the same integer are one group; distinct bigints beyond 2^53 stay distinct", () => {
    expect(Array.from(advantages([1, 0], [5n, 5]))).toEqual(Array.from(advantages([1, 0], ["g", "g"])));
    const ids = [2n ** 63n + 1n, 2n ** 63n, 2n ** 63n + 1n, 2n ** 63n];
    expect(Array.from(advantages([1, 0, 0, 1], ids))).toEqual(
      Array.from(advantages([1, 0, 0, 1], ["a", "b", "a", "b"])),
    );
  });

  it("a rollout id repeated within a group is an error in both modes", () => {
    for (const mode of ["paper", "reference"] as const) {
      const rollouts = [1, 0, 1].map((reward, i) => ({
        groupId: "q",
        reward,
        id: i === 2 ? 0 : i,
        toolCalls: [],
        answers: 1,
        turns: 1,
      }));
      expectRefusedAt(
        attempt(() =>
          resampleOnCorrect(rollouts, {
            ...rocPresets[mode],
            keepPerGroup: 2,
            seed: 1,
            minNegatives: 1,
            minPositives: 1,
          }),
        ),
        "rollouts[2].id",
        /duplicate id 0/,
      );
    }
  });
});
