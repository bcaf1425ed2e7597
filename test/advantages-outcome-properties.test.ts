/**
 * Properties of the outcome estimators of verl and TRL that the math promises: the order of the groups does not
 * matter, a constant added to every reward changes nothing where the baseline is a mean, pass@k teaches one rollout
 * per group, whitening centres the batch's tokens, and each aggregation reduces to the single-reward case.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  gdpoAdvantages,
  gdpoPresets,
  gpgAdvantages,
  grpoRoc,
  multiRewardAdvantages,
  multiRewardPresets,
  opoAdvantages,
  reinforcePlusPlusBaselineAdvantages,
} from "../src/index.js";

const SEED = 20261207;
const check = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void, numRuns = 100) =>
  fc.assert(fc.property(arbitrary, predicate), { seed: SEED, numRuns });

/** A reward as graders give them: binary, a few levels, or continuous. */
const reward = fc.oneof(
  fc.constantFrom(0, 1),
  fc.constantFrom(0, 0.25, 0.5, 1),
  fc.double({ min: -1, max: 1, noNaN: true, noDefaultInfinity: true }),
);

/** A batch of groups (2 to 6 rollouts each), each rollout with its rewards (k per rollout) and a response length. */
function batchOf(k: number) {
  return fc.array(
    fc.array(
      fc.record({ rewards: fc.array(reward, { minLength: k, maxLength: k }), length: fc.integer({ min: 1, max: 4 }) }),
      {
        minLength: 2,
        maxLength: 6,
      },
    ),
    { minLength: 1, maxLength: 5 },
  );
}
type Batch = { rewards: number[]; length: number }[][];

/** Flattens groups into the rollouts' arrays: rewards (first function), all rewards, ids, lengths, and a mask. */
function flat(groups: Batch) {
  const rollouts = groups.flatMap((members, g) => members.map((m) => ({ ...m, id: `g${g}` })));
  const width = 4;
  return {
    rewards: rollouts.map((r) => r.rewards[0]!),
    rows: rollouts.map((r) => r.rewards),
    ids: rollouts.map((r) => r.id),
    lengths: rollouts.map((r) => r.length),
    mask: rollouts.map((r) => Array.from({ length: width }, (_, t) => (t < r.length ? 1 : 0))),
  };
}

/** The per-rollout (or per-row, T columns) outputs of `run`, regrouped per group in the batch's group order. */
function perGroup(values: ArrayLike<number>, groups: Batch, width = 1): number[][] {
  const out: number[][] = [];
  let at = 0;
  for (const members of groups) {
    out.push(Array.from({ length: members.length * width }, (_, j) => values[at * width + j]!));
    at += members.length;
  }
  return out;
}

function expectClose(actual: readonly number[][], expected: readonly number[][], tolerance: number): void {
  expect(actual.length).toBe(expected.length);
  actual.forEach((row, g) =>
    row.forEach((v, j) => {
      const e = expected[g]![j]!;
      expect(Math.abs(v - e), `[${g}][${j}] ${v} vs ${e}`).toBeLessThanOrEqual(tolerance * (1 + Math.abs(e)));
    }),
  );
}

/** Every estimator, as a function of a batch, with its output's width per rollout and how exactly it is invariant. */
const ESTIMATORS: readonly {
  readonly label: string;
  readonly run: (b: ReturnType<typeof flat>) => ArrayLike<number>;
  readonly width: number;
  /** 0: bit for bit (per-group arithmetic only); otherwise the relative tolerance (batch-wide sums reorder). */
  readonly groupOrderTolerance: number;
}[] = [
  {
    label: "grpo_passk",
    run: (b) => advantages(b.rewards, b.ids, advantagePresets.verlPassK),
    width: 1,
    groupOrderTolerance: 0,
  },
  {
    label: "grpo_vectorized",
    run: (b) => advantages(b.rewards, b.ids, advantagePresets.verlGrpoVectorized),
    width: 1,
    groupOrderTolerance: 0,
  },
  {
    label: "grpo_vectorized_b178a3c",
    run: (b) => advantages(b.rewards, b.ids, advantagePresets.verlGrpoVectorizedB178a3c),
    width: 1,
    groupOrderTolerance: 0,
  },
  { label: "gpgAdvantages", run: (b) => gpgAdvantages(b.rewards, b.ids), width: 1, groupOrderTolerance: 0 },
  { label: "opoAdvantages", run: (b) => opoAdvantages(b.rewards, b.ids, b.lengths), width: 1, groupOrderTolerance: 0 },
  {
    label: "reinforcePlusPlusBaselineAdvantages",
    run: (b) => reinforcePlusPlusBaselineAdvantages(b.rewards, b.ids, b.mask).data,
    width: 4,
    groupOrderTolerance: 1e-12,
  },
  {
    label: "gdpoAdvantages",
    run: (b) => gdpoAdvantages(b.rows, b.ids, b.mask).data,
    width: 4,
    groupOrderTolerance: 1e-12,
  },
  {
    label: "gdpoAdvantages (verl float32)",
    run: (b) => gdpoAdvantages(b.rows, b.ids, b.mask, gdpoPresets.verl).data,
    width: 4,
    groupOrderTolerance: 1e-5,
  },
  {
    label: "multiRewardAdvantages (sum_then_normalize, batch std)",
    run: (b) => multiRewardAdvantages(b.rows, b.ids, { rewardWeights: [1, 0.5], scaleRewards: "batch" }),
    width: 1,
    groupOrderTolerance: 1e-12,
  },
  {
    label: "multiRewardAdvantages (normalize_then_sum)",
    run: (b) =>
      multiRewardAdvantages(b.rows, b.ids, { ...multiRewardPresets.trlNormalizeThenSum, rewardWeights: [1, 0.5] }),
    width: 1,
    groupOrderTolerance: 1e-12,
  },
];

describe("the order of the groups does not matter", () => {
  for (const { label, run, width, groupOrderTolerance } of ESTIMATORS) {
    it(`${label}: groups permuted give each group the same advantages`, () => {
      check(
        batchOf(2).chain((groups) =>
          fc.tuple(
            fc.constant(groups),
            fc.shuffledSubarray(
              groups.map((_, g) => g),
              { minLength: groups.length },
            ),
          ),
        ),
        ([groups, order]) => {
          const permuted = order.map((g) => groups[g]!);
          const original = perGroup(run(flat(groups)), groups, width);
          const shuffled = perGroup(run(flat(permuted)), permuted, width);
          const expected = order.map((g) => original[g]!);
          if (groupOrderTolerance === 0) expect(shuffled).toEqual(expected);
          else expectClose(shuffled, expected, groupOrderTolerance);
        },
        60,
      );
    });
  }

  it("interleaved groups give the same advantages as contiguous ones (verl uids need not be contiguous)", () => {
    check(batchOf(1), (groups) => {
      const b = flat(groups);
      // Round robin over the groups: each group's rollouts keep their order (verl sums a group's scores in row order).
      const rank = b.ids.map((id, i) => b.ids.slice(0, i).filter((other) => other === id).length);
      const group = b.ids.map((id) => Number(id.slice(1)));
      const order = b.ids.map((_, i) => i).sort((x, y) => rank[x]! - rank[y]! || group[x]! - group[y]!);
      const interleaved = {
        rewards: order.map((i) => b.rewards[i]!),
        ids: order.map((i) => b.ids[i]!),
        lengths: order.map((i) => b.lengths[i]!),
      };
      for (const options of [advantagePresets.verlGrpoVectorized, advantagePresets.verlPassK]) {
        const contiguous = advantages(b.rewards, b.ids, options);
        const mixed = advantages(interleaved.rewards, interleaved.ids, options);
        order.forEach((i, k) => expect(mixed[k] === contiguous[i], `${mixed[k]} vs ${contiguous[i]}`).toBe(true));
      }
      const opo = opoAdvantages(b.rewards, b.ids, b.lengths);
      const opoMixed = opoAdvantages(interleaved.rewards, interleaved.ids, interleaved.lengths);
      order.forEach((i, k) => expect(opoMixed[k] === opo[i], `${opoMixed[k]} vs ${opo[i]}`).toBe(true));
    });
  });
});

describe("a constant added to every reward changes nothing where the baseline is a mean", () => {
  const shift = fc.integer({ min: -8, max: 8 });
  const shifted = (b: ReturnType<typeof flat>, c: number) => ({
    ...b,
    rewards: b.rewards.map((r) => r + c),
    rows: b.rows.map((row) => row.map((r) => r + c)),
  });
  const invariant = [
    "grpo_passk",
    "opoAdvantages",
    "reinforcePlusPlusBaselineAdvantages",
    "gdpoAdvantages",
    "multiRewardAdvantages (normalize_then_sum)",
    "multiRewardAdvantages (sum_then_normalize, batch std)",
  ];
  for (const { label, run, width } of ESTIMATORS.filter((e) => invariant.includes(e.label))) {
    it(`${label}: r + c gives the same advantages`, () => {
      check(fc.tuple(batchOf(2), shift), ([groups, c]) => {
        const b = flat(groups);
        expectClose(perGroup(run(shifted(b, c)), groups, width), perGroup(run(b), groups, width), 1e-8);
      });
    });
  }
});

describe("what each estimator promises", () => {
  it("pass@k: only the group's best rollout learns, with (r_max − r_second)/(std + ε)", () => {
    check(batchOf(1), (groups) => {
      const b = flat(groups);
      const out = perGroup(advantages(b.rewards, b.ids, advantagePresets.verlPassK), groups);
      groups.forEach((members, g) => {
        const rewards = members.map((m) => m.rewards[0]!);
        const sorted = [...rewards].sort((x, y) => y - x);
        const nonZero = out[g]!.filter((a) => a !== 0);
        expect(nonZero.length).toBeLessThanOrEqual(1);
        if (sorted[0] === sorted[1]) expect(nonZero).toEqual([]);
        else {
          const best = rewards.indexOf(sorted[0]!);
          expect(out[g]![best]).toBeGreaterThan(0);
          const mean = rewards.reduce((x, y) => x + y, 0) / rewards.length;
          const std = Math.sqrt(rewards.reduce((x, r) => x + (r - mean) ** 2, 0) / (rewards.length - 1));
          expect(out[g]![best]).toBeCloseTo((sorted[0]! - sorted[1]!) / (std + 1e-6), 9);
        }
      });
    });
  });

  it("GPG: α·(r − group mean) with α = B / (non-zero rewards), the same α for every group", () => {
    check(batchOf(1), (groups) => {
      const b = flat(groups);
      const nonZero = b.rewards.filter((r) => r !== 0).length;
      const alpha = Math.fround(b.rewards.length / Math.max(nonZero, 1));
      const out = perGroup(gpgAdvantages(b.rewards, b.ids), groups);
      groups.forEach((members, g) => {
        const rewards = members.map((m) => m.rewards[0]!);
        const mean = rewards.reduce((x, y) => x + y, 0) / rewards.length;
        rewards.forEach((r, k) => expect(out[g]![k]).toBeCloseTo(alpha * (r - mean), 9));
      });
    });
  });

  it("OPO with equal lengths is the plain group mean baseline (Dr. GRPO)", () => {
    check(batchOf(1), (groups) => {
      const b = flat(groups);
      const opo = opoAdvantages(
        b.rewards,
        b.ids,
        b.rewards.map(() => 3),
      );
      const drGrpo = advantages(b.rewards, b.ids, advantagePresets.verlNoStd);
      opo.forEach((a, i) => expect(a).toBeCloseTo(drGrpo[i]!, 12));
    });
  });

  it("REINFORCE++-baseline and GDPO: the valid tokens are centred and (nearly) unit-variance", () => {
    check(batchOf(2), (groups) => {
      const b = flat(groups);
      const valid = b.mask.flat();
      for (const out of [
        reinforcePlusPlusBaselineAdvantages(b.rewards, b.ids, b.mask).data,
        gdpoAdvantages(b.rows, b.ids, b.mask).data,
      ]) {
        const tokens = Array.from(out).filter((_, i) => valid[i] === 1);
        const mean = tokens.reduce((x, y) => x + y, 0) / tokens.length;
        expect(Math.abs(mean)).toBeLessThan(1e-9);
        // Masked tokens are 0 or −0 (x·0 with x < 0), as in verl.
        Array.from(out).forEach((a, i) => valid[i] === 0 && expect(a === 0).toBe(true));
        const variance = tokens.reduce((x, a) => x + a * a, 0) / (tokens.length - 1);
        // Exactly 1 unless the tokens barely vary (then the 1e-8 of the whitening shows).
        if (variance > 1e-3) expect(variance).toBeCloseTo(1, 4);
      }
    });
  });

  it("the vectorised GRPOs agree with the loop GRPO to float32 precision on groups that vary", () => {
    check(batchOf(1), (groups) => {
      const b = flat(groups);
      const loop = advantages(b.rewards, b.ids, advantagePresets.verl);
      const spread = groups.every((members) => {
        const rs = members.map((m) => m.rewards[0]!);
        return Math.max(...rs) - Math.min(...rs) > 0.1;
      });
      if (!spread) return;
      for (const preset of [advantagePresets.verlGrpoVectorized, advantagePresets.verlGrpoVectorizedB178a3c]) {
        advantages(b.rewards, b.ids, preset).forEach((a, i) => expect(Math.abs(a - loop[i]!)).toBeLessThan(1e-4));
      }
    });
  });

  it("one reward function with weight 1 under sum_then_normalize is TRL's advantages, bit for bit", () => {
    check(
      fc.tuple(batchOf(1), fc.constantFrom("group", "batch", "none") as fc.Arbitrary<"group" | "batch" | "none">),
      ([groups, scale]) => {
        const b = flat(groups);
        const preset =
          scale === "batch"
            ? advantagePresets.trlBatch
            : scale === "none"
              ? advantagePresets.trlNoStd
              : advantagePresets.trl;
        expect(multiRewardAdvantages(b.rows, b.ids, { scaleRewards: scale })).toEqual(
          advantages(b.rewards, b.ids, preset),
        );
      },
    );
  });

  it("normalize_then_sum: weights scaled by a positive constant change nothing", () => {
    check(fc.tuple(batchOf(2), fc.constantFrom(0.5, 2, 3, 10)), ([groups, c]) => {
      const b = flat(groups);
      const run = (w: number[]) =>
        perGroup(
          multiRewardAdvantages(b.rows, b.ids, { ...multiRewardPresets.trlNormalizeThenSum, rewardWeights: w }),
          groups,
        );
      // ε = 1e-4 is added to the batch std, which scales with the weights: not exactly invariant.
      expectClose(run([c, c * 0.5]), run([1, 0.5]), 1e-3);
    });
  });

  it("subnormal rewards are scaled, not overflowed: [5e-324, 0] has finite advantages everywhere", () => {
    const rewards = [5e-324, 0];
    const ids = ["a", "a"];
    for (const out of [
      advantages(rewards, ids),
      advantages(rewards, ids, advantagePresets.verlPassK),
      gpgAdvantages(rewards, ids),
      opoAdvantages(rewards, ids, [1, 2]),
    ]) {
      for (const a of out) expect(Number.isFinite(a)).toBe(true);
    }
  });
});

describe("the doc comments' examples", () => {
  it("give the values they show", () => {
    expect(Array.from(gpgAdvantages([1, 0, 0, 0], ["a", "a", "b", "b"]))).toEqual([2, -2, 0, 0]);
    expect(Array.from(opoAdvantages([1, 0], ["a", "a"], [1, 3]))).toEqual([0.75, -0.25]);
    const whitened = reinforcePlusPlusBaselineAdvantages([1, 0], ["a", "a"], [[1], [1]]).data;
    expect(whitened[0]).toBeCloseTo(Math.SQRT1_2, 6);
    expect(whitened[1]).toBeCloseTo(-Math.SQRT1_2, 6);
    const weighted = multiRewardAdvantages(
      [
        [1, 0],
        [0, 1],
      ],
      ["a", "a"],
      { rewardWeights: [1, 0.5] },
    );
    expect(weighted[0]).toBeCloseTo(Math.SQRT1_2, 3);
    expect(weighted[1]).toBeCloseTo(-Math.SQRT1_2, 3);
  });
});

describe("the grpoRoc namespace", () => {
  it("has every new function and preset object", () => {
    expect(grpoRoc.gpgAdvantages).toBe(gpgAdvantages);
    expect(grpoRoc.opoAdvantages).toBe(opoAdvantages);
    expect(grpoRoc.reinforcePlusPlusBaselineAdvantages).toBe(reinforcePlusPlusBaselineAdvantages);
    expect(grpoRoc.gdpoAdvantages).toBe(gdpoAdvantages);
    expect(grpoRoc.gdpoPresets).toBe(gdpoPresets);
    expect(grpoRoc.multiRewardAdvantages).toBe(multiRewardAdvantages);
    expect(grpoRoc.multiRewardPresets).toBe(multiRewardPresets);
    expect(grpoRoc.advantageEstimatorNames()).toEqual(
      expect.arrayContaining(["grpo_passk", "grpo_vectorized", "grpo_vectorized_b178a3c"]),
    );
  });
});
