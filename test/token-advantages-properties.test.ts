/**
 * Properties the math of verl's token-level estimators gives, over random batches (fast-check): identities between
 * estimators (γ = 1, λ = 1, λ = 0, contiguous masks), what whitening guarantees, row-permutation equivariance,
 * group-label invariance, and that nothing at a mask-0 position is ever read.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  gaeAdvantages,
  optimalTokenBaselineAdvantages,
  reinforcePlusPlusAdvantages,
  remaxAdvantages,
  type TokenAdvantages,
  tirOptimalTokenBaselineAdvantages,
} from "../src/index.js";

const SEED = 20261207;
const check = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void, numRuns = 150) =>
  fc.assert(fc.property(arbitrary, predicate), { seed: SEED, numRuns });

type Matrix = number[][];

interface Batch {
  readonly rows: number;
  readonly cols: number;
  readonly mask: Matrix;
  readonly tokenRewards: Matrix;
  readonly values: Matrix;
  readonly oldLogp: Matrix;
  readonly sumPiSquared: Matrix;
  readonly rolloutIsWeights: Matrix;
  readonly rewardBaselines: number[];
  readonly groupIds: number[];
}

/** A random batch: masks right-padded (`contiguous`) or with gaps (tool output inside a response). */
function batch({ contiguous = false, minTokens = 0 } = {}): fc.Arbitrary<Batch> {
  return fc
    .record({ rows: fc.integer({ min: 1, max: 6 }), cols: fc.integer({ min: 1, max: 7 }) })
    .chain(({ rows, cols }) => {
      const matrix = (arbitrary: fc.Arbitrary<number>) =>
        fc.array(fc.array(arbitrary, { minLength: cols, maxLength: cols }), { minLength: rows, maxLength: rows });
      const mask = contiguous
        ? fc
            .array(fc.integer({ min: 0, max: cols }), { minLength: rows, maxLength: rows })
            .map((lengths) => lengths.map((length) => Array.from({ length: cols }, (_, t) => (t < length ? 1 : 0))))
        : matrix(fc.integer({ min: 0, max: 1 }));
      const probability = fc.double({ min: 0, max: 1, noNaN: true });
      return fc.record({
        rows: fc.constant(rows),
        cols: fc.constant(cols),
        mask,
        tokenRewards: matrix(fc.double({ min: -3, max: 3, noNaN: true })),
        values: matrix(fc.double({ min: -2, max: 2, noNaN: true })),
        oldLogp: matrix(fc.double({ min: -6, max: 0, noNaN: true })),
        // Σπ² ≥ π² for the sampled token: u blends from π² to 1, so w = 1 − 2π + Σπ² ≥ 0 as from real logits.
        sumPiSquared: matrix(probability),
        rolloutIsWeights: matrix(fc.double({ min: 0, max: 2, noNaN: true })),
        rewardBaselines: fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: rows, maxLength: rows }),
        groupIds: fc.array(fc.integer({ min: 0, max: 2 }), { minLength: rows, maxLength: rows }),
      });
    })
    .map((b) => ({
      ...b,
      sumPiSquared: b.sumPiSquared.map((row, r) =>
        row.map((u, t) => {
          const p = Math.exp(b.oldLogp[r]![t]!);
          return p * p + u * (1 - p * p);
        }),
      ),
    }))
    .filter((b) => b.mask.flat().reduce((a, m) => a + m, 0) >= minTokens);
}

const rewardInputs = (b: Batch) => ({ tokenRewards: b.tokenRewards, mask: b.mask });
const gaeInputs = (b: Batch) => ({ ...rewardInputs(b), values: b.values });
const remaxInputs = (b: Batch) => ({ ...rewardInputs(b), rewardBaselines: b.rewardBaselines });
const otbInputs = (b: Batch, withWeights = false) => ({
  tokenRewards: b.tokenRewards,
  mask: b.mask,
  groupIds: b.groupIds,
  oldLogp: b.oldLogp,
  sumPiSquared: b.sumPiSquared,
  rolloutIsWeights: withWeights ? b.rolloutIsWeights : undefined,
});

/** |a − e| ≤ 1e-12 + 1e-12·|e| elementwise. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string, tol = 1e-12): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const ok = Math.abs(actual[i]! - expected[i]!) <= tol + tol * Math.abs(expected[i]!);
    if (!ok) expect.fail(`${label}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

const valid = (b: Batch, i: number) => b.mask[Math.floor(i / b.cols)]![i % b.cols] === 1;

describe("identities between the estimators", () => {
  it("REINFORCE++'s returns at γ = 1 are ReMax's reward-to-go, bit for bit (1dda039, any mask)", () => {
    check(batch({ minTokens: 2 }), (b) => {
      const rpp = reinforcePlusPlusAdvantages(rewardInputs(b), { gamma: 1 });
      const remax = remaxAdvantages(remaxInputs(b));
      expect(rpp.returns.data).toEqual(remax.returns.data);
    });
  });

  it("REINFORCE++ at b178a3c and 1dda039 agree on right-padded masks, for any γ", () => {
    check(fc.tuple(batch({ contiguous: true, minTokens: 2 }), fc.double({ min: 0, max: 1, noNaN: true })), ([b, g]) => {
      const current = reinforcePlusPlusAdvantages(rewardInputs(b), { gamma: g });
      const old = reinforcePlusPlusAdvantages(rewardInputs(b), { gamma: g, verlVersion: "b178a3c" });
      expect(old).toEqual(current);
    });
  });

  it("b178a3c's reset: a token before a mask-0 position never sees the rewards after it", () => {
    const result = reinforcePlusPlusAdvantages(
      { tokenRewards: [[0, 5, 1]], mask: [[1, 0, 1]] },
      { gamma: 1, verlVersion: "b178a3c" },
    );
    expect(Array.from(result.returns.data)).toEqual([0, 0, 1]);
    const current = reinforcePlusPlusAdvantages({ tokenRewards: [[0, 5, 1]], mask: [[1, 0, 1]] }, { gamma: 1 });
    // 1dda039 carries the return across the gap and drops the reward (5) at the masked position.
    expect(Array.from(current.returns.data)).toEqual([1, 0, 1]);
  });

  it("GAE at γ = λ = 1: the returns are the reward-to-go, whatever the values", () => {
    check(batch({ minTokens: 2 }), (b) => {
      const gae = gaeAdvantages(gaeInputs(b), { gamma: 1, lambda: 1 });
      expectClose(gae.returns.data, remaxAdvantages(remaxInputs(b)).returns.data, "returns", 1e-11);
    });
  });

  it("GAE at λ = 0: the estimate is the one-step TD error r_t + γ·V_next − V_t over the valid tokens", () => {
    check(fc.tuple(batch({ minTokens: 2 }), fc.double({ min: 0, max: 1, noNaN: true })), ([b, gamma]) => {
      const gae = gaeAdvantages(gaeInputs(b), { gamma, lambda: 0 });
      for (let r = 0; r < b.rows; r++) {
        let nextValue = 0;
        for (let t = b.cols - 1; t >= 0; t--) {
          if (b.mask[r]![t] !== 1) continue;
          const td = b.tokenRewards[r]![t]! + gamma * nextValue - b.values[r]![t]!;
          expect(gae.returns.data[r * b.cols + t]).toBe(td + b.values[r]![t]!);
          nextValue = b.values[r]![t]!;
        }
      }
    });
  });

  it("ReMax: advantage = reward-to-go − the row's greedy baseline", () => {
    check(batch(), (b) => {
      const remax = remaxAdvantages(remaxInputs(b));
      for (let i = 0; i < remax.returns.data.length; i++) {
        const expected = valid(b, i) ? remax.returns.data[i]! - b.rewardBaselines[Math.floor(i / b.cols)]! : 0;
        expect(remax.advantages.data[i]).toBe(expected);
      }
    });
  });

  it("the multi-turn optimal token baseline equals the plain one on right-padded masks without empty rows", () => {
    const full = batch({ contiguous: true }).filter((b) => b.mask.every((row) => row[0] === 1));
    check(fc.tuple(full, fc.boolean(), fc.boolean()), ([b, handleZeroTail, withWeights]) => {
      const plain = optimalTokenBaselineAdvantages(otbInputs(b, withWeights), { handleZeroTail });
      const tir = tirOptimalTokenBaselineAdvantages(otbInputs(b, withWeights), { handleZeroTail });
      expect(tir).toEqual(plain);
    });
  });

  it("the optimal token baseline of a group of one is 0: A = G", () => {
    check(batch(), (b) => {
      const distinct = { ...otbInputs(b), groupIds: b.groupIds.map((_, i) => `row ${i}`) };
      for (const estimate of [optimalTokenBaselineAdvantages, tirOptimalTokenBaselineAdvantages]) {
        const result = estimate(distinct);
        expect(result.advantages.data).toEqual(result.returns.data);
      }
    });
  });
});

describe("whitening (REINFORCE++, GAE)", () => {
  it("the advantages have mean 0 and unbiased variance var/(var + 1e-8) over the batch's valid tokens", () => {
    check(batch({ minTokens: 2 }), (b) => {
      const rpp = reinforcePlusPlusAdvantages(rewardInputs(b));
      const gae = gaeAdvantages(gaeInputs(b), { gamma: 0.99, lambda: 0.95 });
      // What was whitened: REINFORCE++'s returns; GAE's estimate, its returns − values.
      const gaeEstimate = gae.returns.data.map((x, i) => x - b.values[Math.floor(i / b.cols)]![i % b.cols]!);
      for (const [raw, result] of [
        [rpp.returns.data, rpp],
        [gaeEstimate, gae],
      ] as const) {
        const advantages = selected(b, result.advantages.data);
        const whitened = selected(b, raw);
        const n = advantages.length;
        const mean = advantages.reduce((a, x) => a + x, 0) / n;
        expect(Math.abs(mean)).toBeLessThan(1e-9);
        const rawMean = whitened.reduce((a, x) => a + x, 0) / n;
        const rawVariance = whitened.reduce((a, x) => a + (x - rawMean) ** 2, 0) / (n - 1);
        const variance = advantages.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1);
        expect(variance).toBeCloseTo(rawVariance / (rawVariance + 1e-8), 5);
      }
    });
  });
});

function selected(b: Batch, values: ArrayLike<number>): number[] {
  return Array.from(values).filter((_, i) => valid(b, i));
}

/** Every estimator on a batch, with the options that exercise the most. */
function everyEstimator(b: Batch): Record<string, TokenAdvantages> {
  const enough = b.mask.flat().reduce((a, m) => a + m, 0) >= 2;
  return {
    ...(enough && {
      rpp: reinforcePlusPlusAdvantages(rewardInputs(b), { gamma: 0.9 }),
      rppOld: reinforcePlusPlusAdvantages(rewardInputs(b), { gamma: 0.9, verlVersion: "b178a3c" }),
      gae: gaeAdvantages(gaeInputs(b), { gamma: 0.99, lambda: 0.95 }),
    }),
    remax: remaxAdvantages(remaxInputs(b)),
    otb: optimalTokenBaselineAdvantages(otbInputs(b, true)),
    tir: tirOptimalTokenBaselineAdvantages(otbInputs(b, true)),
  };
}

describe("invariances", () => {
  it("values at mask-0 positions are never read: NaN, ±Infinity or any number there changes nothing", () => {
    const garbage = fc.constantFrom(NaN, Infinity, -Infinity, 1e308, -7);
    check(fc.tuple(batch(), garbage), ([b, junk]) => {
      const spoil = (m: Matrix) => m.map((row, r) => row.map((x, t) => (b.mask[r]![t] === 1 ? x : junk)));
      const spoilt: Batch = {
        ...b,
        tokenRewards: spoil(b.tokenRewards),
        values: spoil(b.values),
        oldLogp: spoil(b.oldLogp),
        sumPiSquared: spoil(b.sumPiSquared),
        rolloutIsWeights: spoil(b.rolloutIsWeights),
        rewardBaselines: b.rewardBaselines.map((x, r) => (b.mask[r]!.includes(1) ? x : junk)),
      };
      expect(everyEstimator(spoilt)).toEqual(everyEstimator(b));
    });
  });

  it("permuting the rows permutes every output (and nothing else)", () => {
    check(
      batch().chain((b) =>
        fc.tuple(fc.constant(b), fc.shuffledSubarray([...Array(b.rows).keys()], { minLength: b.rows })),
      ),
      ([b, order]) => {
        const permute = <T>(rows: readonly T[]) => order.map((r) => rows[r]!);
        const permuted: Batch = {
          ...b,
          mask: permute(b.mask),
          tokenRewards: permute(b.tokenRewards),
          values: permute(b.values),
          oldLogp: permute(b.oldLogp),
          sumPiSquared: permute(b.sumPiSquared),
          rolloutIsWeights: permute(b.rolloutIsWeights),
          rewardBaselines: permute(b.rewardBaselines),
          groupIds: permute(b.groupIds),
        };
        const before = everyEstimator(b);
        const after = everyEstimator(permuted);
        for (const [name, result] of Object.entries(before)) {
          for (const field of ["advantages", "returns"] as const) {
            const rows = Array.from({ length: b.rows }, (_, r) =>
              Array.from(result[field].data.subarray(r * b.cols, (r + 1) * b.cols)),
            );
            expectClose(after[name]![field].data, permute(rows).flat(), `${name}.${field}`, 1e-10);
          }
        }
      },
    );
  });

  it("the optimal token baselines depend on which rows share a group, not on the group's label", () => {
    check(batch(), (b) => {
      const relabelled = { ...otbInputs(b), groupIds: b.groupIds.map((g) => `prompt-${g * 7}`) };
      expect(optimalTokenBaselineAdvantages(relabelled)).toEqual(optimalTokenBaselineAdvantages(otbInputs(b)));
      expect(tirOptimalTokenBaselineAdvantages(relabelled)).toEqual(tirOptimalTokenBaselineAdvantages(otbInputs(b)));
    });
  });
});

describe("the TSDoc examples", () => {
  it("hold as written", () => {
    const rpp = reinforcePlusPlusAdvantages({
      tokenRewards: [
        [0, 1],
        [0, 0],
      ],
      mask: [
        [1, 1],
        [1, 1],
      ],
    });
    expect(Array.from(rpp.returns.data)).toEqual([1, 1, 0, 0]);
    const remax = remaxAdvantages({ tokenRewards: [[0, 1]], mask: [[1, 1]], rewardBaselines: [0.25] });
    expect(Array.from(remax.advantages.data)).toEqual([0.75, 0.75]);
    const gae = gaeAdvantages({ tokenRewards: [[0, 1]], values: [[0.5, 0.5]], mask: [[1, 1]] });
    expect(Array.from(gae.returns.data)).toEqual([1, 1]);
    const otb = optimalTokenBaselineAdvantages({
      tokenRewards: [[1]],
      mask: [[1]],
      groupIds: ["q"],
      oldLogp: [[-1]],
      sumPiSquared: [[0.5]],
    });
    expect(Array.from(otb.advantages.data)).toEqual([1]);
    const tir = tirOptimalTokenBaselineAdvantages({
      tokenRewards: [[0, 0, 1]],
      mask: [[1, 0, 1]],
      groupIds: [0],
      oldLogp: [[-1, 0, -1]],
      sumPiSquared: [[0.5, 0, 0.5]],
    });
    expect(Array.from(tir.advantages.data)).toEqual([1, 0, 1]);
  });
});
