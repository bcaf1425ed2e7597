/**
 * The objectives without native kernels (verl's DPPO-TV, DPPO-KL, DRO, GMPO, KL-Cov, Clip-Cov; TRL's LUSPO and
 * VESPO): gradients against
 * central finite differences, and the properties that hold for each. Golden values: test/golden-verl-objectives.
 *
 * Finite differences use h = 1e-6 and |fd − g| ≤ 1e-7 + 1e-6·|g|, as test/loss-gradients.test.ts. Each objective's
 * discrete choices (DPPO's kept tokens, the clip bounds, KL-Cov's top-k, Clip-Cov's candidates) are constant in a
 * neighbourhood of a sample unless a quantity lies near its threshold: samples within MARGIN of one are rejected.
 * DPPO's weight sg(min(ρ, c)) is a stop-gradient, so its difference moves logp and oldLogp together (the log-ratio,
 * hence the weight, stays put), as CISPO's does; the others move logp alone.
 */
import fc from "fast-check";
import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import {
  AGGREGATIONS,
  BUILTIN_OBJECTIVES,
  batchNormalizer,
  GrpoRocError,
  lossPresets,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  policyLoss,
  policyObjectiveNames,
  REFERENCE_OBJECTIVES,
  type ReferenceObjective,
  registerPolicyObjective,
} from "../src/index.js";

const H = 1e-6;
const ATOL = 1e-7;
const RTOL = 1e-6;
const MARGIN = 1e-4;

interface Batch {
  readonly B: number;
  readonly T: number;
  readonly logp: Float64Array;
  readonly oldLogp: Float64Array;
  readonly mask: Float64Array;
  /** [B·T] when perToken, else [B]. */
  readonly advantages: Float64Array;
  readonly perToken: boolean;
  readonly importanceWeights: Float64Array | undefined;
}

function drawBatch(seed: number): Batch {
  const random = seedrandom(`grpo-roc verl objectives ${seed}`);
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * random();
  const B = 1 + Math.floor(random() * 4);
  const T = 1 + Math.floor(random() * 6);
  const n = B * T;
  const logp = Float64Array.from({ length: n }, () => uniform(-4, -0.01));
  const oldLogp = logp.map((v) => Math.min(-1e-3, v - uniform(-1.5, 1.5)));
  const mask = Float64Array.from({ length: n }, () => (random() < 0.8 ? 1 : 0));
  mask[Math.floor(random() * n)] = 1;
  if (B > 1 && random() < 0.3) {
    const empty = Math.floor(random() * B);
    if (mask.some((m, i) => m === 1 && Math.floor(i / T) !== empty)) mask.fill(0, empty * T, (empty + 1) * T);
  }
  const perToken = random() < 0.5;
  const advantages = Float64Array.from({ length: perToken ? n : B }, () => uniform(-2, 2));
  const importanceWeights = random() < 0.4 ? Float64Array.from({ length: n }, () => uniform(0.2, 2)) : undefined;
  return { B, T, logp, oldLogp, mask, advantages, perToken, importanceWeights };
}

function inputsOf(batch: Batch, logp = batch.logp, oldLogp = batch.oldLogp): PolicyLossInputs {
  const shape: [number, number] = [batch.B, batch.T];
  return {
    logp: { data: logp, shape },
    oldLogp: { data: oldLogp, shape },
    mask: { data: batch.mask, shape },
    advantages: batch.perToken ? { data: batch.advantages, shape } : batch.advantages,
    ...(batch.importanceWeights !== undefined ? { importanceWeights: { data: batch.importanceWeights, shape } } : {}),
  };
}

const advantageAt = (batch: Batch, i: number) => batch.advantages[batch.perToken ? i : Math.floor(i / batch.T)]!;
const validPositions = (batch: Batch) => [...batch.mask.keys()].filter((i) => batch.mask[i] === 1);
const near = (x: number, kink: number) => Math.abs(x - kink) < MARGIN;

/** (A − mean A)(log π − mean log π) over the valid tokens, as KL-Cov and Clip-Cov rank them. */
function covariances(batch: Batch): number[] {
  const valid = validPositions(batch);
  const meanA = valid.reduce((s, i) => s + advantageAt(batch, i), 0) / valid.length;
  const meanLogp = valid.reduce((s, i) => s + batch.logp[i]!, 0) / valid.length;
  return valid.map((i) => (advantageAt(batch, i) - meanA) * (batch.logp[i]! - meanLogp));
}

interface ObjectiveCase {
  readonly options: PolicyLossOptionsInput;
  /** DPPO: the difference moves oldLogp with logp (stop-gradient weight). */
  readonly movesOld: boolean;
  /** True where no threshold of the objective is within MARGIN. */
  readonly awayFromKinks: (batch: Batch) => boolean;
}

const everyValid = (batch: Batch, ok: (i: number) => boolean) => validPositions(batch).every(ok);
const probabilities = (batch: Batch, i: number) => [Math.exp(batch.logp[i]!), Math.exp(batch.oldLogp[i]!)] as const;
const binaryKl = (p: number, pOld: number, logp: number, oldLogp: number) =>
  pOld * (oldLogp - logp) + (1 - pOld) * Math.log((1 - pOld + 1e-8) / (1 - p + 1e-8));

const CASES: Record<ReferenceObjective, ObjectiveCase> = {
  luspo: {
    options: { ...lossPresets.trlLuspo, clipLow: 0.1, clipHigh: 0.15, delta: 1.6 },
    movesOld: false,
    awayFromKinks: (batch) => rowRatios(batch).every((s) => !near(s, 0.9) && !near(s, 1.15) && !near(s, 1.6)),
  },
  // φ is a stop-gradient (TRL computes it under no_grad): the difference moves oldLogp with logp, as for DPPO.
  vespo: {
    options: {
      ...lossPresets.trlVespo,
      vespo: { kPositive: 1.5, lambdaPositive: 2, kNegative: 2.5, lambdaNegative: 1.5, importanceWeights: "phi" },
    },
    movesOld: true,
    awayFromKinks: () => true,
  },
  "dppo-tv": {
    options: { ...lossPresets.verlDppoTv, clipLow: 0.1, clipHigh: 0.15, ratioCap: 2 },
    movesOld: true,
    awayFromKinks: (batch) =>
      everyValid(batch, (i) => {
        const [p, pOld] = probabilities(batch, i);
        return !near(p - pOld, 0.15) && !near(p - pOld, -0.1);
      }),
  },
  "dppo-kl": {
    options: { ...lossPresets.verlDppoKl, clipLow: 0.05, clipHigh: 0.2, ratioCap: 2 },
    movesOld: true,
    awayFromKinks: (batch) =>
      everyValid(batch, (i) => {
        const [p, pOld] = probabilities(batch, i);
        const kl = binaryKl(p, pOld, batch.logp[i]!, batch.oldLogp[i]!);
        return !near(kl, 0.05) && !near(kl, 0.2) && !near(p, pOld);
      }),
  },
  dro: { options: { ...lossPresets.verlDro, droBeta: 0.3 }, movesOld: false, awayFromKinks: () => true },
  gmpo: {
    options: { ...lossPresets.verlGmpo, clipLow: 0.4, clipHigh: 0.3 },
    movesOld: false,
    awayFromKinks: (batch) =>
      everyValid(batch, (i) => {
        const logRatio = batch.logp[i]! - batch.oldLogp[i]!;
        return !near(logRatio, -0.4) && !near(logRatio, 0.3);
      }),
  },
  "kl-cov": {
    options: { ...lossPresets.verlKlCov, klCov: { ratio: 0.3, coef: 0.2 } },
    movesOld: false,
    awayFromKinks: (batch) => {
      const valid = validPositions(batch);
      const sorted = covariances(batch).sort((x, y) => y - x);
      const k = Math.max(1, Math.trunc(valid.length * 0.3));
      const gap = k < sorted.length ? sorted[k - 1]! - sorted[k]! : Infinity;
      return gap > MARGIN && everyValid(batch, (i) => !near(batch.logp[i]! - batch.oldLogp[i]!, 0));
    },
  },
  "clip-cov": {
    options: { ...lossPresets.verlClipCov, clipCov: { ratio: 0.5, lowerBound: -0.3, upperBound: 1.5, seed: 3 } },
    movesOld: false,
    awayFromKinks: (batch) =>
      covariances(batch).every((c) => !near(c, -0.3) && !near(c, 1.5)) &&
      everyValid(batch, (i) => {
        const ratio = Math.exp(batch.logp[i]! - batch.oldLogp[i]!);
        return !near(ratio, 0.8) && !near(ratio, 1.2);
      }),
  },
};

/** LUSPO's sequence ratio s_b = exp(mean of the row's log-ratios). */
const rowRatios = (batch: Batch) =>
  Array.from({ length: batch.B }, (_, b) => {
    const valid = validPositions(batch).filter((i) => Math.floor(i / batch.T) === b);
    return Math.exp(valid.reduce((s, i) => s + batch.logp[i]! - batch.oldLogp[i]!, 0) / Math.max(valid.length, 1));
  });

/** The batch an objective is tested on: LUSPO takes one importance weight per row (TRL's sequence-level ratio). */
function batchFor(name: ReferenceObjective, seed: number): Batch {
  const batch = drawBatch(seed);
  if (name !== "luspo" || batch.importanceWeights === undefined) return batch;
  const weights = batch.importanceWeights;
  return { ...batch, importanceWeights: weights.map((_, i) => weights[Math.floor(i / batch.T) * batch.T]!) };
}

function optionsFor(name: ReferenceObjective, seed: number): PolicyLossOptionsInput {
  const aggregation = name === "gmpo" && seed % 2 === 0 ? "grpo" : AGGREGATIONS[seed % AGGREGATIONS.length]!;
  return { ...CASES[name].options, aggregation };
}

describe("the shipped objectives without native kernels", () => {
  it("are selectable by name and are not built-ins (every backend runs them through the reference)", () => {
    for (const name of REFERENCE_OBJECTIVES) {
      expect(policyObjectiveNames()).toContain(name);
      expect(BUILTIN_OBJECTIVES as readonly string[]).not.toContain(name);
      expect(() => registerPolicyObjective(name, () => () => ({}) as never)).toThrow(/already registered/);
    }
  });
});

describe.each(REFERENCE_OBJECTIVES)("%s: ∂loss/∂logp against central finite differences", (name) => {
  it("matches at every valid token, and is 0 at masked ones", () => {
    let checked = 0;
    for (let seed = 0; seed < 60 && checked < 25; seed++) {
      const batch = batchFor(name, seed);
      if (!CASES[name].awayFromKinks(batch)) continue;
      checked++;
      const options = optionsFor(name, seed);
      const result = policyLoss(inputsOf(batch), options);
      const lossAt = (logp: Float64Array, oldLogp: Float64Array) =>
        policyLoss(inputsOf(batch, logp, oldLogp), options).loss;
      for (let i = 0; i < batch.mask.length; i++) {
        if (batch.mask[i] !== 1) {
          expect(result.grad[i], `masked grad[${i}]`).toBe(0);
          continue;
        }
        const shifted = (step: number) => {
          const logp = batch.logp.slice();
          const oldLogp = batch.oldLogp.slice();
          logp[i] = batch.logp[i]! + step;
          if (CASES[name].movesOld) oldLogp[i] = batch.oldLogp[i]! + step;
          return lossAt(logp, oldLogp);
        };
        const fd = (shifted(H) - shifted(-H)) / (batch.logp[i]! + H - (batch.logp[i]! - H));
        const error = Math.abs(fd - result.grad[i]!);
        expect(
          error <= ATOL + RTOL * Math.abs(result.grad[i]!),
          `seed ${seed} token ${i}: analytic ${result.grad[i]}, finite difference ${fd}`,
        ).toBe(true);
      }
    }
    expect(checked).toBeGreaterThanOrEqual(15);
  });
});

/** The batch with its rows in another order. */
function permuteRows(batch: Batch, order: readonly number[]): Batch {
  const perRow = (values: Float64Array) =>
    Float64Array.from(order.flatMap((b) => [...values.subarray(b * batch.T, (b + 1) * batch.T)]));
  return {
    ...batch,
    logp: perRow(batch.logp),
    oldLogp: perRow(batch.oldLogp),
    mask: perRow(batch.mask),
    advantages: batch.perToken ? perRow(batch.advantages) : Float64Array.from(order, (b) => batch.advantages[b]!),
    importanceWeights: batch.importanceWeights === undefined ? undefined : perRow(batch.importanceWeights),
  };
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 + 1e-10 * Math.abs(b);

describe.each(REFERENCE_OBJECTIVES)("%s: properties", (name) => {
  // Clip-Cov with ratio 1 takes every candidate; below 1 its seeded draw follows the candidates' order.
  const options = (seed: number) =>
    name === "clip-cov"
      ? { ...optionsFor(name, seed), clipCov: { ratio: 1, lowerBound: -0.3, upperBound: 1.5 } }
      : optionsFor(name, seed);

  it("the loss does not depend on the order of the rows; the gradient follows them", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 10_000 }), (seed, shuffle) => {
        const batch = batchFor(name, seed);
        // Tied covariances at KL-Cov's k-th place (two valid tokens always tie) are broken by position.
        if (name === "kl-cov") fc.pre(CASES[name].awayFromKinks(batch));
        const random = seedrandom(`order ${shuffle}`);
        const order = [...Array(batch.B).keys()].sort(() => random() - 0.5);
        const whole = policyLoss(inputsOf(batch), options(seed));
        const permuted = policyLoss(inputsOf(permuteRows(batch, order)), options(seed));
        expect(close(permuted.loss, whole.loss), `${permuted.loss} vs ${whole.loss}`).toBe(true);
        order.forEach((b, k) => {
          for (let t = 0; t < batch.T; t++) {
            expect(close(permuted.grad[k * batch.T + t]!, whole.grad[b * batch.T + t]!)).toBe(true);
          }
        });
      }),
      { numRuns: 40 },
    );
  });

  // Not a property of KL-Cov and Clip-Cov: they choose their tokens over the whole call, so a micro-batch chooses
  // among its own (as in verl; docs/api.md says so).
  const choosesOverTheCall = name === "kl-cov" || name === "clip-cov";
  if (!choosesOverTheCall)
    it("micro-batches given the whole batch's normaliser sum to the whole batch's loss and gradient", () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 10_000 }), (seed) => {
          const batch = batchFor(name, seed);
          fc.pre(batch.B > 1);
          const cut = 1 + (seed % (batch.B - 1));
          const shape: [number, number] = [batch.B, batch.T];
          const normalizer = batchNormalizer({ data: batch.mask, shape });
          const whole = policyLoss(inputsOf(batch), { ...options(seed), normalizer });
          const part = (rows: number[]) =>
            policyLoss(inputsOf({ ...permuteRows(batch, rows), B: rows.length }), {
              ...options(seed),
              normalizer,
            });
          const rowsOf = (from: number, to: number) => [...Array(to - from).keys()].map((k) => k + from);
          const first = part(rowsOf(0, cut));
          const second = part(rowsOf(cut, batch.B));
          expect(close(first.loss + second.loss, whole.loss), `${first.loss + second.loss} vs ${whole.loss}`).toBe(
            true,
          );
          const grad = [...first.grad, ...second.grad];
          grad.forEach((g, i) => expect(close(g, whole.grad[i]!)).toBe(true));
        }),
        { numRuns: 40 },
      );
    });
});

describe("clip-cov's seed (documented: each call reseeds from clipCov.seed; vary it per step)", () => {
  it("the same seed picks the same tokens at every call; another seed (the next step) picks others", () => {
    const random = seedrandom("clip-cov seed per step");
    const logp = Array.from({ length: 4 }, () => Array.from({ length: 10 }, () => -0.5 - random()));
    const oldLogp = logp.map((row) => row.map((v) => v - 0.01));
    const inputs = { logp, oldLogp, advantages: [1, -1, 0.5, -0.5] };
    const at = (seed: number) =>
      Array.from(
        policyLoss(inputs, {
          ...lossPresets.verlClipCov,
          clipCov: { ratio: 0.1, lowerBound: -1e9, upperBound: 1e9, seed },
        }).grad,
        (g) => g === 0,
      );
    expect(at(0)).toEqual(at(0));
    expect(at(0).filter(Boolean)).toHaveLength(4);
    expect([1, 2, 3].some((step) => at(step).join() !== at(0).join())).toBe(true);
  });
});

describe("an objective with a batch step, registered at run time", () => {
  const NAME = "test-row-share";
  it("reads what its prepare step gave each token", () => {
    if (!policyObjectiveNames().includes(NAME)) {
      // loss = −A·ρ·s, with s the share of the call's valid tokens in the token's row.
      registerPolicyObjective(NAME, () => ({
        prepare: (batch) => {
          const [rows, cols] = batch.shape;
          const total = batch.rowTokens.reduce((s, n) => s + n, 0);
          const values = new Float64Array(rows * cols);
          for (let i = 0; i < values.length; i++) values[i] = batch.rowTokens[Math.floor(i / cols)]! / total;
          return { values };
        },
        kernel: ({ advantage: a, ratio, prepared: share }) => ({
          loss: -a * ratio * share,
          dLogRatio: -a * ratio * share,
          dLogp: 0,
          clipped: false,
          dualClipped: false,
          lowClipped: false,
          highClipped: false,
        }),
      }));
    }
    const inputs = { logp: [[-1, -2, -3]], oldLogp: [[-1, -2, -3]], advantages: [1], mask: [[1, 1, 0]] };
    const two = policyLoss(
      {
        ...inputs,
        logp: [
          [-1, -2, -3],
          [-1, -1, -1],
        ],
        oldLogp: [
          [-1, -2, -3],
          [-1, -1, -1],
        ],
        advantages: [1, 1],
        mask: [
          [1, 1, 0],
          [1, 0, 0],
        ],
      },
      { objective: NAME, aggregation: "seq-mean-token-sum" },
    );
    // Row 0 holds 2 of 3 tokens, row 1 one: −(2·2/3 + 1/3)/2 rows.
    expect(two.loss).toBeCloseTo(-(2 * (2 / 3) + 1 / 3) / 2, 14);
    expect(policyLoss(inputs, { objective: NAME }).loss).toBeCloseTo(-1, 14);
  });

  it("a factory that gives neither a kernel nor { prepare, kernel } is its author's error, named", () => {
    registerPolicyObjective("test-broken-prepared", () => ({ kernel: 1 }) as never);
    expect(() => policyLoss({ logp: [[-1]], advantages: [1] }, { objective: "test-broken-prepared" })).toThrow(
      GrpoRocError,
    );
    expect(() => policyLoss({ logp: [[-1]], advantages: [1] }, { objective: "test-broken-prepared" })).toThrow(
      /test-broken-prepared.*prepare, kernel/,
    );
  });
});
