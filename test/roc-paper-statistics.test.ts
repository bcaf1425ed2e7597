/**
 * Statistical tests of paper-mode Resample-on-Correct (docs/spec.md §3): positives are sampled without replacement with
 * probability ∝ w = 1/p_total (p_total = 0 taken first), negatives uniformly.
 *
 * Every test uses fixed seeds, so the outcome is deterministic (never flaky). The significance level is strict
 * (α = 1e-4), so a correct sampler passes, while a wrong one (uniform positives, biased negatives, wrong weights)
 * fails by a wide margin (see the "power" tests). The seeds were not tuned; the smallest p-value of a passing
 * goodness-of-fit test with them is about 0.02.
 *
 * One trial = one group of the batch under one seed. Each group draws from its own stream (seeded by the seed and
 * the group id), so a batch of B copies of the template under S seeds gives S·B independent trials.
 */
import seedrandom from "seedrandom";
import { beforeAll, describe, expect, it } from "vitest";
import { paperCounts, resampleOnCorrect, type RocResult, type Rollout } from "../src/index.js";

// ---------------------------------------------------------------------------------------------------------------
// Chi-square distribution: survival function via the regularized upper incomplete gamma Q(df/2, x/2).

function logGamma(x: number): number {
  // Lanczos approximation (g = 7, n = 9), accurate to ~1e-15 for x > 0.
  const c = [
    0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313, -176.61502916214059,
    12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6, 1.5056327351493116e-7,
  ];
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  x -= 1;
  let a = c[0]!;
  const t = x + 7.5;
  for (let i = 1; i < 9; i++) a += c[i]! / (x + i);
  return 0.5 * Math.log(2 * Math.PI) + (x + 0.5) * Math.log(t) - t + Math.log(a);
}

/** Regularized upper incomplete gamma Q(a, x) (Numerical Recipes gammq: series below a + 1, Lentz CF above). */
function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPrefix = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let sum = 1 / a;
    let term = sum;
    for (let n = 1; n < 10_000; n++) {
      term *= x / (a + n);
      sum += term;
      if (Math.abs(term) < Math.abs(sum) * 1e-16) break;
    }
    return 1 - sum * Math.exp(lnPrefix);
  }
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 10_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.exp(lnPrefix) * h;
}

function chiSquareSurvival(statistic: number, df: number): number {
  return gammaQ(df / 2, statistic / 2);
}

/** Pearson's statistic Σ (O − E)² / E. */
function pearson(observed: readonly number[], expected: readonly number[]): number {
  let x = 0;
  for (let i = 0; i < observed.length; i++) x += (observed[i]! - expected[i]!) ** 2 / expected[i]!;
  return x;
}

/** Strict significance level used by every goodness-of-fit test in this file. */
const ALPHA = 1e-4;

// ---------------------------------------------------------------------------------------------------------------
// Exact inclusion probabilities of successive sampling without replacement (enumerating the orderings).

/**
 * Probability of each k-subset (key: sorted positions joined by ",") when k items are drawn one at a time without
 * replacement, each draw choosing item i with probability w_i / Σ_remaining w. An infinite weight (p_total = 0)
 * means "taken first": while any is left, the draw is uniform among the infinite-weight items.
 */
function subsetProbabilities(weights: readonly number[], k: number): Map<string, number> {
  const out = new Map<string, number>();
  const visit = (chosen: number[], probability: number): void => {
    if (chosen.length === k) {
      const key = [...chosen].sort((a, b) => a - b).join(",");
      out.set(key, (out.get(key) ?? 0) + probability);
      return;
    }
    const remaining = weights.map((_, i) => i).filter((i) => !chosen.includes(i));
    const infinite = remaining.filter((i) => weights[i] === Infinity);
    if (infinite.length > 0) {
      for (const i of infinite) visit([...chosen, i], probability / infinite.length);
      return;
    }
    const total = remaining.reduce((acc, i) => acc + weights[i]!, 0);
    for (const i of remaining) visit([...chosen, i], (probability * weights[i]!) / total);
  };
  visit([], 1);
  return out;
}

function inclusionProbabilities(weights: readonly number[], k: number): number[] {
  const pi = weights.map(() => 0);
  for (const [key, p] of subsetProbabilities(weights, k))
    for (const i of key.split(",").map(Number)) pi[i] = pi[i]! + p;
  return pi;
}

// ---------------------------------------------------------------------------------------------------------------
// Running many trials of one group template.

interface Template {
  /** One entry per rollout of the group, in order: a positive with its p_total, or a negative. */
  readonly members: readonly (
    | { readonly positive: true; readonly rollout: Partial<Rollout> }
    | { readonly positive: false }
  )[];
}

interface Tally {
  readonly trials: number;
  /** inclusion[j]: how many trials kept the group's j-th rollout. */
  readonly inclusion: number[];
  /** How often each set of kept positive positions (into the positives list) occurred. */
  readonly positiveSubsets: Map<string, number>;
  readonly negativeSubsets: Map<string, number>;
  /** Positions (in the group) of the positives and of the negatives. */
  readonly positivePositions: number[];
  readonly negativePositions: number[];
  readonly first: RocResult;
}

function buildBatch(
  template: Template,
  groups: number,
  ids: ((position: number) => string | number) | undefined,
): Rollout[] {
  const batch: Rollout[] = [];
  for (let g = 0; g < groups; g++) {
    template.members.forEach((member, j) => {
      const base: Rollout = member.positive ? { groupId: g, reward: 1, ...member.rollout } : { groupId: g, reward: 0 };
      batch.push(ids === undefined ? base : { ...base, id: ids(j) });
    });
  }
  return batch;
}

function runTrials(
  template: Template,
  keepPerGroup: number,
  seeds: readonly (string | number)[],
  groupsPerSeed: number,
  options: { ids?: (position: number) => string | number; penalty?: (rollout: Rollout) => number } = {},
): Tally {
  const size = template.members.length;
  const positivePositions = template.members.flatMap((m, j) => (m.positive ? [j] : []));
  const negativePositions = template.members.flatMap((m, j) => (m.positive ? [] : [j]));
  const inclusion = new Array<number>(size).fill(0);
  const positiveSubsets = new Map<string, number>();
  const negativeSubsets = new Map<string, number>();
  const batch = buildBatch(template, groupsPerSeed, options.ids);
  let first: RocResult | undefined;
  for (const seed of seeds) {
    const result = resampleOnCorrect(batch, {
      keepPerGroup,
      mode: "paper",
      seed,
      ...(options.penalty === undefined ? {} : { penalty: options.penalty }),
    });
    first ??= result;
    const kept = new Uint8Array(batch.length);
    for (const i of result.kept) kept[i] = 1;
    for (let g = 0; g < groupsPerSeed; g++) {
      const base = g * size;
      for (let j = 0; j < size; j++) inclusion[j] = inclusion[j]! + kept[base + j]!;
      const posKey = positivePositions.flatMap((j, q) => (kept[base + j] ? [q] : [])).join(",");
      const negKey = negativePositions.flatMap((j, q) => (kept[base + j] ? [q] : [])).join(",");
      positiveSubsets.set(posKey, (positiveSubsets.get(posKey) ?? 0) + 1);
      negativeSubsets.set(negKey, (negativeSubsets.get(negKey) ?? 0) + 1);
    }
  }
  return {
    trials: seeds.length * groupsPerSeed,
    inclusion,
    positiveSubsets,
    negativeSubsets,
    positivePositions,
    negativePositions,
    first: first!,
  };
}

/** Chi-square of observed subset counts against exact subset probabilities (a multinomial: df = #subsets − 1). */
function subsetChiSquare(observed: Map<string, number>, probabilities: Map<string, number>, trials: number) {
  for (const key of observed.keys()) {
    // A subset the sampler cannot produce (probability 0) must never be observed.
    expect(probabilities.has(key), `unexpected kept subset {${key}}`).toBe(true);
  }
  const keys = [...probabilities.keys()];
  const statistic = pearson(
    keys.map((key) => observed.get(key) ?? 0),
    keys.map((key) => probabilities.get(key)! * trials),
  );
  const df = keys.length - 1;
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}

/**
 * Chi-square on the inclusion counts of n items when exactly k of them are drawn uniformly without replacement per
 * trial. The counts are not multinomial for k > 1: each is Binomial(M, k/n), with covariance −M·p(1−p)/(n−1) between
 * two items, so Σ (O − E)²/E is c·χ²(n − 1) with c = (n − k)/(n − 1). We divide by c (c = 1 when k = 1).
 */
function uniformInclusionChiSquare(counts: readonly number[], k: number, trials: number) {
  const n = counts.length;
  const expected = counts.map(() => (trials * k) / n);
  const statistic = pearson(counts, expected) / ((n - k) / (n - 1));
  const df = n - 1;
  return { statistic, df, pValue: chiSquareSurvival(statistic, df) };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

// Structured quality inputs with known penalties (p_err + p_format, both weights 1):
const P025: Partial<Rollout> = {
  // 1 failed call of 4 → p_err 0.25; one answer → p_format 0
  toolCalls: [{ outcome: "ok" }, { outcome: "ok" }, { outcome: "ok" }, { outcome: "parse_error" }],
  answers: 1,
  turns: 4,
};
const P05: Partial<Rollout> = { toolCalls: [{ outcome: "ok" }, { outcome: "timeout" }], answers: 1, turns: 2 }; // 0.5 + 0
const P1: Partial<Rollout> = { toolCalls: [{ outcome: "execution_error" }], answers: 1, turns: 1 }; // 1 + 0
const P15: Partial<Rollout> = { toolCalls: [{ outcome: "execution_error" }], answers: 2, turns: 2 }; // 1 + 1/2
const P2: Partial<Rollout> = { toolCalls: [{ outcome: "timeout" }], answers: 0, turns: 3 }; // 1 + 1 (no answer)
const P0: Partial<Rollout> = { toolCalls: [{ outcome: "ok" }], answers: 1, turns: 2 }; // 0 + 0: clean

const positive = (rollout: Partial<Rollout>) => ({ positive: true as const, rollout });
const negative = { positive: false as const };

// ---------------------------------------------------------------------------------------------------------------

describe("chi-square helper (sanity check against tabulated values, scipy.stats.chi2.sf)", () => {
  it.each([
    [3.841458820694124, 1, 0.05],
    [18.307038053275146, 10, 0.05],
    [23.512742444990838, 4, 1e-4],
    [42.57928895311299, 14, 1e-4],
    [574.7061422967304, 454, 1e-4],
    [100, 80, 0.064570368921133],
    [0.5, 3, 0.9188914116546758],
    [30, 4, 4.894437128029217e-6],
  ])("sf(%d, df=%d) = %d", (x, df, expected) => {
    expect(chiSquareSurvival(x, df)).toBeCloseTo(expected, 8);
    expect(Math.abs(chiSquareSurvival(x, df) - expected) / expected).toBeLessThan(1e-7);
  });

  it("exact successive-sampling probabilities: k = 1 gives w/Σw, inclusion probabilities sum to k", () => {
    const w = [4, 2, 1, 0.5];
    const pi1 = inclusionProbabilities(w, 1);
    pi1.forEach((p, i) => expect(p).toBeCloseTo(w[i]! / 7.5, 14));
    const pi2 = inclusionProbabilities(w, 2);
    expect(pi2.reduce((a, b) => a + b, 0)).toBeCloseTo(2, 14);
    // Hand computation for item 3 (w = 0.5): P(first) + Σ_j P(j first)·P(3 second | j).
    const manual = 0.5 / 7.5 + (4 / 7.5) * (0.5 / 3.5) + (2 / 7.5) * (0.5 / 5.5) + (1 / 7.5) * (0.5 / 6.5);
    expect(pi2[3]).toBeCloseTo(manual, 14);
    // Infinite weights are taken first, uniformly among themselves.
    const withZeroPenalty = subsetProbabilities([Infinity, Infinity, 1, 3], 3);
    expect(withZeroPenalty.get("0,1,2")).toBeCloseTo(0.25, 14);
    expect(withZeroPenalty.get("0,1,3")).toBeCloseTo(0.75, 14);
    expect(withZeroPenalty.get("0,2,3") ?? 0).toBe(0);
  });
});

describe("paper mode, k_pos = 1: the kept positive is drawn with probability w_i / Σw, w = 1/p_total", () => {
  // N = 20 (5 positives, 15 negatives), G = 4 → k_neg = ⌊15·4/20⌋ = 3, k_pos = 1.
  const template: Template = {
    members: [
      negative,
      positive(P15),
      negative,
      negative,
      positive(P025),
      negative,
      negative,
      negative,
      positive(P2),
      negative,
      negative,
      positive(P05),
      negative,
      negative,
      negative,
      negative,
      positive(P1),
      negative,
      negative,
      negative,
    ],
  };
  const pTotals = [1.5, 0.25, 2, 0.5, 1]; // of the positives, in group order
  const G = 4;
  let tally: Tally;
  beforeAll(() => {
    tally = runTrials(
      template,
      G,
      range(40).map((s) => `step-${s}`),
      500,
    ); // 20 000 trials
  });

  it("uses the penalties and counts the test assumes", () => {
    expect(paperCounts({ positives: 5, negatives: 15 }, G)).toEqual({ positives: 1, negatives: 3 });
    const pTotal = Array.from(tally.positivePositions, (j) => tally.first.penalties.pTotal[j]);
    expect(pTotal).toEqual(pTotals);
    for (const group of tally.first.groups) {
      expect(group.status).toBe("resampled");
      expect([group.keptPositives, group.keptNegatives]).toEqual([1, 3]);
    }
  });

  it("positive inclusion frequencies match w/Σw (chi-square, df = 4, α = 1e-4: reject if X² > 23.51)", () => {
    const w = pTotals.map((p) => 1 / p);
    const total = w.reduce((a, b) => a + b, 0);
    const observed = tally.positivePositions.map((j) => tally.inclusion[j]!);
    expect(observed.reduce((a, b) => a + b, 0)).toBe(tally.trials); // exactly one positive per trial
    const statistic = pearson(
      observed,
      w.map((wi) => (tally.trials * wi) / total),
    );
    expect(chiSquareSurvival(statistic, 4)).toBeGreaterThan(ALPHA);
    expect(statistic).toBeLessThan(23.512742444990838);
  });

  it("negative inclusion is uniform: 3 of 15 (chi-square corrected for k = 3, df = 14, α = 1e-4: X² < 42.58)", () => {
    const counts = tally.negativePositions.map((j) => tally.inclusion[j]!);
    const { statistic, df, pValue } = uniformInclusionChiSquare(counts, 3, tally.trials);
    expect(df).toBe(14);
    expect(pValue).toBeGreaterThan(ALPHA);
    expect(statistic).toBeLessThan(42.57928895311299);
  });

  it("the kept set of negatives is a uniform 3-subset (all C(15,3) = 455 subsets, df = 454, α = 1e-4: X² < 574.7)", () => {
    const subsets = new Map<string, number>();
    const all = range(15);
    for (const a of all)
      for (const b of all) for (const c of all) if (a < b && b < c) subsets.set(`${a},${b},${c}`, 1 / 455);
    const { statistic, df, pValue } = subsetChiSquare(tally.negativeSubsets, subsets, tally.trials);
    expect(df).toBe(454);
    expect(pValue).toBeGreaterThan(ALPHA);
    expect(statistic).toBeLessThan(574.7061422967304);
  });

  it("power: the lowest-penalty positive (p = 0.25) is kept far more often than the highest (p = 2)", () => {
    const low = tally.inclusion[tally.positivePositions[1]!]!;
    const high = tally.inclusion[tally.positivePositions[2]!]!;
    // Under uniform selection both are Binomial(M, 1/5), and low − high has variance 2·M/5 (multinomial cells).
    // One-sided test at α = 1e-4: z > 3.719.
    const z = (low - high) / Math.sqrt((2 * tally.trials) / 5);
    expect(z).toBeGreaterThan(3.719);
    // And against the uniform hypothesis as a whole (df = 4), the data is rejected at α = 1e-4.
    const uniform = pearson(
      tally.positivePositions.map((j) => tally.inclusion[j]!),
      pTotals.map(() => tally.trials / 5),
    );
    expect(chiSquareSurvival(uniform, 4)).toBeLessThan(ALPHA);
  });

  it("power: the same chi-square test rejects a uniform selector fed the same number of trials", () => {
    // A stand-in sampler that ignores penalties: it must fail the weighted test that the library passes.
    const random = seedrandom.alea("uniform stand-in");
    const counts = [0, 0, 0, 0, 0];
    for (let t = 0; t < tally.trials; t++) counts[Math.floor(random() * 5)]!++;
    const w = pTotals.map((p) => 1 / p);
    const total = w.reduce((a, b) => a + b, 0);
    const statistic = pearson(
      counts,
      w.map((wi) => (tally.trials * wi) / total),
    );
    expect(chiSquareSurvival(statistic, 4)).toBeLessThan(ALPHA);
  });
});

describe("paper mode with per-rollout ids (each rollout draws from its own id-keyed stream)", () => {
  // N = 10 (4 positives, 6 negatives), G = 2 → k_neg = ⌊6·2/10⌋ = 1, k_pos = 1; 10 seeds × 2000 groups = 20 000 trials.
  const template: Template = {
    members: [
      positive(P025),
      negative,
      positive(P05),
      negative,
      negative,
      positive(P1),
      negative,
      positive(P2),
      negative,
      negative,
    ],
  };
  const seeds = range(10);
  // The negatives get the ids 0..5 (what a trainer would use: the sample index), the positives string ids.
  const ids: (string | number)[] = ["a", 0, "b", 1, 2, "c", 3, "d", 4, 5];

  it("control: without ids, the one kept negative is uniform over the 6 (chi-square, df = 5, α = 1e-4)", () => {
    expect(paperCounts({ positives: 4, negatives: 6 }, 2)).toEqual({ positives: 1, negatives: 1 });
    const tally = runTrials(template, 2, seeds, 2000);
    const counts = tally.negativePositions.map((j) => tally.inclusion[j]!);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(tally.trials);
    expect(uniformInclusionChiSquare(counts, 1, tally.trials).pValue).toBeGreaterThan(ALPHA);
  });

  // Regression: per-id alea streams once gave correlated first draws for ids 0..5 (X² ≈ 314 at 100 000 trials);
  // draws now come from one ARC4 stream per group, dealt in id order.
  it("with numeric ids, the one kept negative is uniform over the 6 (chi-square, df = 5, α = 1e-4)", () => {
    const tally = runTrials(template, 2, seeds, 2000, { ids: (j) => ids[j]! });
    const counts = tally.negativePositions.map((j) => tally.inclusion[j]!);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(tally.trials);
    expect(uniformInclusionChiSquare(counts, 1, tally.trials).pValue).toBeGreaterThan(ALPHA);
  });
});

describe("paper mode, k_pos > 1: kept positives follow successive sampling without replacement ∝ 1/p_total", () => {
  // p_total from a custom penalty function, so the weights can be anything.
  const penalty = (rollout: Rollout) => Number((rollout as Rollout & { p: number }).p);
  const pos = (p: number) => positive({ p } as Partial<Rollout>);

  it("2 of 4 positives (N = 10, G = 4): subset frequencies (df = 5) and per-item z-scores", () => {
    const pTotals = [0.2, 0.5, 1, 2];
    const template: Template = {
      members: [negative, pos(0.2), negative, pos(0.5), negative, negative, pos(1), negative, pos(2), negative],
    };
    expect(paperCounts({ positives: 4, negatives: 6 }, 4)).toEqual({ positives: 2, negatives: 2 });
    const tally = runTrials(
      template,
      4,
      range(40).map((s) => s * 7919),
      500,
      { penalty },
    );
    const w = pTotals.map((p) => 1 / p);

    // Multinomial over the 6 possible pairs: chi-square with df = 5, α = 1e-4 (X² < 25.74).
    const subsets = subsetProbabilities(w, 2);
    expect(subsets.size).toBe(6);
    const { statistic, df, pValue } = subsetChiSquare(tally.positiveSubsets, subsets, tally.trials);
    expect(df).toBe(5);
    expect(pValue).toBeGreaterThan(ALPHA);
    expect(statistic).toBeLessThan(25.744831959055876);

    // Per-item inclusion: z = (O − Mπ)/√(Mπ(1−π)); Bonferroni over 4 items at two-sided α = 1e-4: |z| < 4.215.
    const pi = inclusionProbabilities(w, 2);
    tally.positivePositions.forEach((j, q) => {
      const z = (tally.inclusion[j]! - tally.trials * pi[q]!) / Math.sqrt(tally.trials * pi[q]! * (1 - pi[q]!));
      expect(Math.abs(z), `positive ${q} (p_total ${pTotals[q]})`).toBeLessThan(4.215);
    });

    // Negatives: 2 of 6 uniform (corrected chi-square, df = 5).
    const negCounts = tally.negativePositions.map((j) => tally.inclusion[j]!);
    expect(uniformInclusionChiSquare(negCounts, 2, tally.trials).pValue).toBeGreaterThan(ALPHA);

    // Power: under uniform selection every positive has π = 1/2; the cleanest one is far above, the dirtiest far below.
    const zUniform = (q: number) =>
      (tally.inclusion[tally.positivePositions[q]!]! - tally.trials / 2) / Math.sqrt(tally.trials / 4);
    expect(zUniform(0)).toBeGreaterThan(4.215);
    expect(zUniform(3)).toBeLessThan(-4.215);
  });

  it("3 of 5 positives (N = 8, G = 4): subset frequencies (df = 9) and per-item z-scores", () => {
    const pTotals = [2.4, 0.1, 1.2, 0.3, 0.6];
    const template: Template = {
      members: [pos(2.4), negative, pos(0.1), pos(1.2), negative, pos(0.3), negative, pos(0.6)],
    };
    expect(paperCounts({ positives: 5, negatives: 3 }, 4)).toEqual({ positives: 3, negatives: 1 });
    const tally = runTrials(
      template,
      4,
      range(40).map((s) => `seed ${s}`),
      500,
      { penalty },
    );
    const w = pTotals.map((p) => 1 / p);

    // Multinomial over the 10 triples: df = 9, α = 1e-4 (X² < 33.72).
    const { statistic, df, pValue } = subsetChiSquare(tally.positiveSubsets, subsetProbabilities(w, 3), tally.trials);
    expect(df).toBe(9);
    expect(pValue).toBeGreaterThan(ALPHA);
    expect(statistic).toBeLessThan(33.719948438964636);

    // Bonferroni over 5 items, two-sided α = 1e-4: |z| < 4.265.
    const pi = inclusionProbabilities(w, 3);
    tally.positivePositions.forEach((j, q) => {
      const z = (tally.inclusion[j]! - tally.trials * pi[q]!) / Math.sqrt(tally.trials * pi[q]! * (1 - pi[q]!));
      expect(Math.abs(z), `positive ${q} (p_total ${pTotals[q]})`).toBeLessThan(4.265);
    });

    // Negatives: 1 of 3 uniform (df = 2).
    const negCounts = tally.negativePositions.map((j) => tally.inclusion[j]!);
    expect(uniformInclusionChiSquare(negCounts, 1, tally.trials).pValue).toBeGreaterThan(ALPHA);
  });
});

describe("paper mode: positives with p_total = 0 are always taken first", () => {
  it("2 clean positives and k_pos = 3: both clean ones are kept in every trial, the third ∝ 1/p_total", () => {
    // N = 10: 5 positives (2 clean), 5 negatives; G = 6 → k_neg = ⌊5·6/10⌋ = 3, k_pos = 3.
    const template: Template = {
      members: [
        positive(P2),
        negative,
        positive(P0),
        negative,
        positive(P05),
        negative,
        negative,
        positive(P0),
        positive(P1),
        negative,
      ],
    };
    expect(paperCounts({ positives: 5, negatives: 5 }, 6)).toEqual({ positives: 3, negatives: 3 });
    const tally = runTrials(template, 6, range(20), 500);
    const pTotal = tally.positivePositions.map((j) => tally.first.penalties.pTotal[j]);
    expect(pTotal).toEqual([2, 0, 0.5, 0, 1]);

    const clean = [tally.positivePositions[1]!, tally.positivePositions[3]!];
    for (const j of clean) expect(tally.inclusion[j]).toBe(tally.trials);

    // The third positive: p_total 2, 0.5, 1 → weights 0.5, 2, 1 (df = 2, α = 1e-4: X² < 18.42).
    const others = [0, 2, 4].map((q) => tally.inclusion[tally.positivePositions[q]!]!);
    expect(others.reduce((a, b) => a + b, 0)).toBe(tally.trials);
    const statistic = pearson(
      others,
      [0.5, 2, 1].map((w) => (tally.trials * w) / 3.5),
    );
    expect(chiSquareSurvival(statistic, 2)).toBeGreaterThan(ALPHA);
  });

  it("3 clean positives and k_pos = 2: only clean ones are kept, uniformly among them", () => {
    const penalty = (rollout: Rollout) => Number((rollout as Rollout & { p: number }).p);
    const pos = (p: number) => positive({ p } as Partial<Rollout>);
    // N = 8: 5 positives (3 with p = 0, and p = 0.01, 0.02 that would otherwise dominate), 3 negatives;
    // G = 3 → k_neg = ⌊3·3/8⌋ = 1, k_pos = 2.
    const template: Template = {
      members: [pos(0.01), pos(0), negative, pos(0), negative, pos(0.02), pos(0), negative],
    };
    expect(paperCounts({ positives: 5, negatives: 3 }, 3)).toEqual({ positives: 2, negatives: 1 });
    const tally = runTrials(
      template,
      3,
      range(20).map((s) => `z${s}`),
      500,
      { penalty },
    );

    // Positions 0 and 3 of the positives list have p > 0: never kept.
    expect(tally.inclusion[tally.positivePositions[0]!]).toBe(0);
    expect(tally.inclusion[tally.positivePositions[3]!]).toBe(0);
    // The three pairs of clean positives, each with probability 1/3 (df = 2, α = 1e-4).
    const subsets = subsetProbabilities([100, Infinity, Infinity, 50, Infinity], 2);
    expect([...subsets.keys()].sort()).toEqual(["1,2", "1,4", "2,4"]);
    const { pValue } = subsetChiSquare(tally.positiveSubsets, subsets, tally.trials);
    expect(pValue).toBeGreaterThan(ALPHA);
  });
});
