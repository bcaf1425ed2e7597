/**
 * The bad-input contract (classes 1 to 4) for the outcome estimators of verl and TRL: the registry estimators
 * "grpo_passk", "grpo_vectorized" and "grpo_vectorized_b178a3c", and gpgAdvantages, opoAdvantages,
 * reinforcePlusPlusBaselineAdvantages, gdpoAdvantages and multiRewardAdvantages. Each property generates malformed or
 * extreme inputs (NaN, ±Infinity, ±1e308, wrong lengths, wrong types, unknown option keys) and checks that the call
 * either returns finite numbers or throws a ValidationError naming the field, the index and the rule.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  gdpoAdvantages,
  gdpoPresets,
  gpgAdvantages,
  multiRewardAdvantages,
  multiRewardPresets,
  opoAdvantages,
  reinforcePlusPlusBaselineAdvantages,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, misspellings } from "./shared.js";

/** A value that is not a finite number, and how it is named in a message. */
const nonFinite = fc.constantFrom(NaN, Infinity, -Infinity);
/** Finite rewards from ordinary to the edge of float64. */
const extreme = fc.oneof(
  fc.double({ min: -2, max: 2, noNaN: true }),
  fc.constantFrom(0, 1, 0.1, 1e308, -1e308, 1.7976931348623157e308, 5e-324, 1e154, -1e200),
);
const notANumber = fc.constantFrom<unknown>("1", null, undefined, true, {}, [1], 1n);

/** n rewards in groups of two (a, a, b, b, …), with a mask of n rows and 3 columns, every row non-empty. */
function batch(rewards: number[]) {
  return {
    rewards,
    ids: rewards.map((_, i) => `g${Math.floor(i / 2)}`),
    mask: rewards.map((_, i) => [1, i % 3 === 0 ? 0 : 1, 0]),
    lengths: rewards.map((_, i) => (i % 3 === 0 ? 1 : 2)),
  };
}

/** Every per-rollout function, called on a batch, with the path its rewards are named at. */
const PER_ROLLOUT: readonly {
  readonly label: string;
  readonly call: (b: ReturnType<typeof batch>) => unknown;
  readonly rewardPath: (i: number) => string;
}[] = [
  {
    label: "grpo_passk",
    call: (b) => advantages(b.rewards, b.ids, advantagePresets.verlPassK),
    rewardPath: (i) => `rewards[${i}]`,
  },
  {
    label: "grpo_vectorized",
    call: (b) => advantages(b.rewards, b.ids, advantagePresets.verlGrpoVectorized),
    rewardPath: (i) => `rewards[${i}]`,
  },
  {
    label: "grpo_vectorized_b178a3c",
    call: (b) => advantages(b.rewards, b.ids, advantagePresets.verlGrpoVectorizedB178a3c),
    rewardPath: (i) => `rewards[${i}]`,
  },
  { label: "gpgAdvantages", call: (b) => gpgAdvantages(b.rewards, b.ids), rewardPath: (i) => `rewards[${i}]` },
  {
    label: "opoAdvantages",
    call: (b) => opoAdvantages(b.rewards, b.ids, b.lengths),
    rewardPath: (i) => `rewards[${i}]`,
  },
  {
    label: "reinforcePlusPlusBaselineAdvantages",
    call: (b) => reinforcePlusPlusBaselineAdvantages(b.rewards, b.ids, b.mask),
    rewardPath: (i) => `rewards[${i}]`,
  },
  {
    label: "gdpoAdvantages (float64)",
    call: (b) =>
      gdpoAdvantages(
        b.rewards.map((r) => [r, 1]),
        b.ids,
        b.mask,
      ),
    rewardPath: (i) => `rewardsPerKey[${i}][0]`,
  },
  {
    label: "gdpoAdvantages (verl float32)",
    call: (b) =>
      gdpoAdvantages(
        b.rewards.map((r) => [r, 1]),
        b.ids,
        b.mask,
        gdpoPresets.verl,
      ),
    rewardPath: (i) => `rewardsPerKey[${i}][0]`,
  },
  {
    label: "multiRewardAdvantages (sum_then_normalize)",
    call: (b) =>
      multiRewardAdvantages(
        b.rewards.map((r) => [r, 0.5]),
        b.ids,
        { missingRewards: "error" },
      ),
    rewardPath: (i) => `rewardsPerFunc[${i}][0]`,
  },
  {
    label: "multiRewardAdvantages (normalize_then_sum)",
    call: (b) =>
      multiRewardAdvantages(
        b.rewards.map((r) => [r, 0.5]),
        b.ids,
        { ...multiRewardPresets.trlNormalizeThenSum, missingRewards: "error" },
      ),
    rewardPath: (i) => `rewardsPerFunc[${i}][0]`,
  },
];

describe("class 1: unknown option keys are errors naming the key meant", () => {
  const OPTIONS: readonly { label: string; value: Record<string, unknown>; call: (o: never) => unknown }[] = [
    { label: "gpgAdvantages", value: { fNorm: 1 }, call: (o) => gpgAdvantages([1, 0], ["a", "a"], o) },
    { label: "opoAdvantages", value: { singleton: "raw" }, call: (o) => opoAdvantages([1, 0], ["a", "a"], [1, 1], o) },
    {
      label: "reinforcePlusPlusBaselineAdvantages",
      value: { whitenEpsilon: 1e-8 },
      call: (o) => reinforcePlusPlusBaselineAdvantages([1, 0], ["a", "a"], [[1], [1]], o),
    },
    {
      label: "gdpoAdvantages",
      value: { ...gdpoPresets.verl, rewardWeights: [1] },
      call: (o) => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], o),
    },
    {
      label: "multiRewardAdvantages",
      value: { ...multiRewardPresets.trl, rewardWeights: [1] },
      call: (o) => multiRewardAdvantages([[1], [0]], ["a", "a"], o),
    },
  ];
  for (const { label, value, call } of OPTIONS) {
    it(`${label}: every misspelt key is refused at options.<key> with the key meant`, () => {
      expect(() => call(value as never)).not.toThrow();
      for (const key of Object.keys(value)) {
        for (const wrong of misspellings(key)) {
          const { [key]: _, ...rest } = value;
          const outcome = attempt(() => call({ ...rest, [wrong]: value[key] } as never));
          expectRefusedAt(outcome, `options.${wrong}`, new RegExp(`did you mean "${key}"`));
        }
      }
    });
  }

  it("options of the wrong type or out of range are refused at their path (every case, in turn)", () => {
    const cases: [() => unknown, string][] = [
      [() => gpgAdvantages([1, 0], ["a", "a"], { fNorm: 0 }), "options.fNorm"],
      [() => gpgAdvantages([1, 0], ["a", "a"], { fNorm: Infinity }), "options.fNorm"],
      [() => opoAdvantages([1, 0], ["a", "a"], [1, 1], { singleton: "none" as never }), "options.singleton"],
      [
        () => reinforcePlusPlusBaselineAdvantages([1, 0], ["a", "a"], [[1], [1]], { whitenEpsilon: -1 }),
        "options.whitenEpsilon",
      ],
      [
        () => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { precision: "float16" as never }),
        "options.precision",
      ],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { rewardWeights: [1, 2] }), "options.rewardWeights"],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { rewardWeights: [NaN] }), "options.rewardWeights[0]"],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], { rewardWeights: [Infinity] }), "options.rewardWeights[0]"],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], { aggregation: "sum" as never }), "options.aggregation"],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], { scaleRewards: true as never }), "options.scaleRewards"],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], { epsilon: -1e-4 }), "options.epsilon"],
      [
        () => multiRewardAdvantages([[1], [0]], ["a", "a"], { missingRewards: "skip" as never }),
        "options.missingRewards",
      ],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], { rewardWeights: "1" as never }), "options.rewardWeights"],
      [() => multiRewardAdvantages([[1], [0]], ["a", "a"], null as never), "options"],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { scaleByStd: "yes" as never }), "options.scaleByStd"],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { epsilon: -1 }), "options.epsilon"],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], { whitenEpsilon: NaN }), "options.whitenEpsilon"],
      [() => gdpoAdvantages([[1], [0]], ["a", "a"], [[1], [1]], "verl" as never), "options"],
      [() => opoAdvantages([1, 0], ["a", "a"], [1, 1], [] as never), "options"],
      [() => gpgAdvantages([1, 0], ["a", "a"], { fNorm: "1" as never }), "options.fNorm"],
      [() => advantages([1, 0], ["a", "a"], { ...advantagePresets.verlPassK, stdScope: "batch" }), "options.stdScope"],
      [
        () => advantages([1, 0], ["a", "a"], { ...advantagePresets.verlGrpoVectorized, unbiasedStd: false }),
        "options.unbiasedStd",
      ],
      [
        () => advantages([1, 0], ["a", "a"], { ...advantagePresets.verlPassK, estimator: "grpo_pass_k" }),
        "options.estimator",
      ],
    ];
    for (const [call, path] of cases) expectRefusedAt(attempt(call), path);
  });
});

describe("class 3: NaN, ±Infinity and non-numbers are refused at their index, never coerced", () => {
  for (const { label, call, rewardPath } of PER_ROLLOUT) {
    it(`${label}: a non-finite reward is named`, () => {
      hostile(
        fc
          .array(fc.double({ min: -1, max: 1, noNaN: true }), { minLength: 2, maxLength: 8 })
          .chain((rewards) => fc.tuple(fc.constant(rewards), fc.nat(rewards.length - 1), nonFinite)),
        ([rewards, at, bad]) => {
          const even = rewards.length % 2 === 0 ? rewards : [...rewards, 0];
          even[at] = bad;
          expectRefusedAt(
            attempt(() => call(batch(even))),
            rewardPath(at),
            /finite/,
          );
        },
        40,
      );
    });
    it(`${label}: a non-number reward is named`, () => {
      hostile(
        fc.tuple(fc.nat(3), notANumber),
        ([at, bad]) => {
          const rewards: unknown[] = [1, 0, 0.5, 0.25];
          rewards[at] = bad;
          const outcome = attempt(() => call(batch(rewards as number[])));
          expectRefusedAt(outcome, new RegExp(`^${rewardPath(at).replace(/[[\]]/g, "\\$&")}|^rewards`));
        },
        30,
      );
    });
  }

  it("multiRewardAdvantages: NaN is a missing reward by TRL's rule (an unscored row gets 0), else an error", () => {
    hostile(fc.nat(3), (at) => {
      const rows = [
        [1, 0.5],
        [0, 0.25],
        [1, 1],
        [0, 0],
      ];
      rows[at] = [NaN, NaN];
      const ids = ["a", "a", "b", "b"];
      const ignored = returned(attempt(() => multiRewardAdvantages(rows, ids)));
      expectAllFinite(ignored);
      expect(ignored[at]).toBe(0);
      expectRefusedAt(
        attempt(() => multiRewardAdvantages(rows, ids, { missingRewards: "error" })),
        `rewardsPerFunc[${at}][0]`,
      );
      expectRefusedAt(
        attempt(() =>
          gdpoAdvantages(
            rows,
            ids,
            rows.map(() => [1]),
          ),
        ),
        `rewardsPerKey[${at}][0]`,
      );
    });
  });

  it("missing rewards are refused by the verl registry estimators, which have no rule for them", () => {
    for (const preset of [advantagePresets.verlPassK, advantagePresets.verlGrpoVectorized]) {
      expectRefusedAt(
        attempt(() => advantages([1, NaN, 0, 1], ["a", "a", "b", "b"], { ...preset, missingRewards: "ignore" })),
        "rewards[1]",
        /missing/,
      );
    }
  });
});

describe("class 4: wrong lengths, shapes and types; inputs that contradict each other", () => {
  it("groupIds, responseLengths and responseMask of the wrong length are named", () => {
    hostile(fc.integer({ min: 1, max: 6 }), (n) => {
      const rewards = Array.from({ length: 4 }, (_, i) => i % 2);
      const ids = Array.from({ length: n === 4 ? 5 : n }, () => "a");
      expectRefusedAt(
        attempt(() => gpgAdvantages(rewards, ids)),
        "groupIds",
      );
      expectRefusedAt(
        attempt(() => opoAdvantages(rewards, ids, [1, 1, 1, 1])),
        "groupIds",
      );
      expectRefusedAt(
        attempt(() => reinforcePlusPlusBaselineAdvantages(rewards, ids, [[1], [1], [1], [1]])),
        "groupIds",
      );
      expectRefusedAt(
        attempt(() =>
          multiRewardAdvantages(
            rewards.map((r) => [r]),
            ids,
          ),
        ),
        "groupIds",
      );
      expectRefusedAt(
        attempt(() =>
          gdpoAdvantages(
            rewards.map((r) => [r]),
            ids,
            [[1], [1], [1], [1]],
          ),
        ),
        "groupIds",
      );
      const same = ["a", "a", "b", "b"];
      const rows = Array.from({ length: n === 4 ? 5 : n }, () => [1]);
      expectRefusedAt(
        attempt(() =>
          opoAdvantages(
            rewards,
            same,
            rows.map(() => 1),
          ),
        ),
        "responseLengths",
      );
      expectRefusedAt(
        attempt(() => reinforcePlusPlusBaselineAdvantages(rewards, same, rows)),
        "responseMask",
      );
      expectRefusedAt(
        attempt(() =>
          gdpoAdvantages(
            rewards.map((r) => [r]),
            same,
            rows,
          ),
        ),
        "responseMask",
      );
    });
  });

  it("bad lengths and masks are named at their entry", () => {
    hostile(fc.tuple(fc.nat(3), fc.constantFrom(-1, 0.5, NaN, Infinity, 2 ** 60)), ([at, bad]) => {
      const lengths = [1, 2, 3, 4];
      lengths[at] = bad;
      expectRefusedAt(
        attempt(() => opoAdvantages([1, 0, 1, 0], ["a", "a", "b", "b"], lengths)),
        `responseLengths[${at}]`,
      );
      const mask = [[1], [1], [1], [1]];
      mask[at] = [bad];
      expectRefusedAt(
        attempt(() => reinforcePlusPlusBaselineAdvantages([1, 0, 1, 0], ["a", "a", "b", "b"], mask)),
        `responseMask[${at}][0]`,
      );
    });
  });

  it("ragged reward matrices, no reward function, and non-arrays are refused", () => {
    expectRefusedAt(
      attempt(() => multiRewardAdvantages([[1, 2], [1]], ["a", "a"])),
      "rewardsPerFunc[1]",
      /ragged/,
    );
    expectRefusedAt(
      attempt(() => multiRewardAdvantages([[], []], ["a", "a"])),
      "rewardsPerFunc",
      /no reward function/,
    );
    expectRefusedAt(
      attempt(() => gdpoAdvantages([[], []], ["a", "a"], [[1], [1]])),
      "rewardsPerKey",
      /no reward function/,
    );
    expectRefusedAt(
      attempt(() => gpgAdvantages("1,0" as never, ["a", "a"])),
      "rewards",
    );
    expectRefusedAt(
      attempt(() => opoAdvantages([1, 0], ["a", "a"], { 0: 1, 1: 1 } as never)),
      "responseLengths",
    );
    expectRefusedAt(
      attempt(() => gpgAdvantages([1, 0], "aa" as never)),
      "groupIds",
    );
    expectRefusedAt(
      attempt(() => gpgAdvantages([1, 0], [NaN, 1])),
      "groupIds[0]",
    );
  });

  it("verl's own errors: pass@k on a group of one, whitening under 2 tokens, OPO on only empty responses", () => {
    expectRefusedAt(
      attempt(() => advantages([1, 0, 1], ["a", "a", "b"], advantagePresets.verlPassK)),
      "groupIds[2]",
      /pass@k/,
    );
    expectRefusedAt(
      attempt(() => reinforcePlusPlusBaselineAdvantages([1, 0], ["a", "a"], [[1], [0]])),
      "responseMask",
      /2/,
    );
    expectRefusedAt(
      attempt(() => gdpoAdvantages([[1], [0]], ["a", "a"], [[0], [0]])),
      "responseMask",
      /2/,
    );
    expectRefusedAt(
      attempt(() => opoAdvantages([1, 0, 1], ["a", "a", "b"], [0, 0, 0])),
      "responseLengths[0]",
      /0\/0/,
    );
  });
});

describe("class 2: extreme finite rewards give finite advantages or a named refusal", () => {
  for (const { label, call } of PER_ROLLOUT) {
    it(`${label}: rewards up to ±1.8e308`, () => {
      hostile(
        fc.array(extreme, { minLength: 2, maxLength: 8 }),
        (rewards) => {
          const even = rewards.length % 2 === 0 ? rewards : [...rewards, 0];
          const outcome = attempt(() => call(batch(even)));
          if (outcome.ok) expectAllFinite(outcome.value);
          else expectRefusedAt(outcome, /^(rewards|rewardsPerKey|rewardsPerFunc)(\[\d+\])*$/);
        },
        60,
      );
    });
  }

  it("an overflow is blamed on what caused it: fNorm, or a division by a zero scale, not 'rewards this large'", () => {
    expectRefusedAt(
      attempt(() => gpgAdvantages([1, 0], ["a", "a"], { fNorm: 5e-324 })),
      "options.fNorm",
      /larger fNorm/,
    );
    const zeroScale = expectRefusedAt(
      attempt(() => advantages([0.1, 0.1], ["a", "a"], { ...advantagePresets.verlGrpoVectorized, epsilon: 0 })),
      /^rewards\[\d\]$/,
      /divided by a scale of 0/,
    );
    expect(zeroScale.message).not.toMatch(/this large/);
  });

  it("float32 group statistics that overflow: refused at the group's first reward, not a silent 0", () => {
    for (const preset of ["verlGrpoVectorized", "verlGrpoVectorizedB178a3c"] as const) {
      expectRefusedAt(
        attempt(() => advantages([1e20, -1e20], ["a", "a"], advantagePresets[preset])),
        "rewards[0]",
        /group_mean_std.*overflow float32/,
      );
    }
    expectRefusedAt(
      attempt(() => gdpoAdvantages([[3e38], [-3e38]], ["a", "a"], [[1], [1]], { precision: "float32" })),
      "rewardsPerKey[0][0]",
      /beyond float32/,
    );
  });

  it("whitening with whitenEpsilon 0: a zero variance gives exactly 0 in float32 as in float64 (not NaN)", () => {
    const options = { precision: "float32", whitenEpsilon: 0 } as const;
    expect(Array.from(gdpoAdvantages([[1], [1]], ["a", "b"], [[1], [1]], options).data)).toEqual([0, 0]);
    expect(Array.from(gdpoAdvantages([[1], [1]], ["a", "b"], [[1], [1]], { whitenEpsilon: 0 }).data)).toEqual([0, 0]);
  });

  it("whitening with whitenEpsilon 0: tiny rewards (1e-170, subnormal) whiten to ±1/√2, not a silent 0", () => {
    for (const tiny of [1e-170, 5e-324]) {
      const result = reinforcePlusPlusBaselineAdvantages([tiny, 0], ["a", "a"], [[1], [1]], { whitenEpsilon: 0 });
      expect(result.data[0]).toBeCloseTo(Math.SQRT1_2, 12);
      expect(result.data[1]).toBeCloseTo(-Math.SQRT1_2, 12);
    }
    // With ε > 0 the variance of such rewards is negligible next to ε: (r − mean)/√ε, still not 0.
    const withEpsilon = reinforcePlusPlusBaselineAdvantages([1e-170, 0], ["a", "a"], [[1], [1]]);
    expect(withEpsilon.data[0]! / 5e-167).toBeCloseTo(1, 12);
  });
});

function returned<T>(outcome: { ok: true; value: T } | { ok: false; error: unknown }): T {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}
