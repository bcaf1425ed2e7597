/**
 * Gradients against central finite differences, in float64.
 *
 * `policyLoss` returns `grad` = ∂loss/∂logp and `gradEntropy` = ∂loss/∂entropy; `tokenLogProbsBackward` returns
 * ∂L/∂logits for L = Σ gradLogp·logp + Σ gradEntropy·entropy. Each is compared with
 *
 *   fd_i = (f(x + h·e_i) − f(x − h·e_i)) / ((x_i + h) − (x_i − h)),   h = H = 1e-6,
 *
 * and must satisfy |fd_i − g_i| ≤ ATOL + RTOL·|g_i| with ATOL = 1e-7, RTOL = 1e-6. The central-difference error
 * is O(h²·f''') + O(ε·|f|/h); the largest |fd − g| observed on these inputs is about 3e-9, so the bound has ~30×
 * headroom, while a wrong branch, a missing factor or a dropped term shows up as an error of the size of a token
 * weight (1e-3 or more).
 *
 * The loss has kinks (clip bounds 1 − ε_low and 1 + ε_high, δ, the dual-clip bound c, the log-ratio clamp, |x| at
 * 0, the k3 clamps at x = ±20 and at value 10). Central differences are only valid away from them, so samples
 * whose log-ratio (token or sequence) or KL argument lies within KINK_MARGIN = 10·H of a kink are rejected with
 * `fc.pre`; the tolerance is the same everywhere.
 *
 * On-policy (oldLogp omitted) means oldLogp = sg(logp), as TRL's `per_token_logps.detach()`: ratio 1 with the
 * ratio's gradient, so the difference holds oldLogp at the unperturbed logp.
 * CISPO's loss is −sg(clip(ρ))·A·log π: its gradient holds the ratio fixed. Its finite difference therefore moves
 * logp and oldLogp together (the log-ratio, hence the stop-gradient weight, stays put), which is exactly the
 * derivative CISPO defines. Every other objective is differenced in logp alone.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import {
  BUILTIN_OBJECTIVES,
  type BuiltinObjective,
  AGGREGATIONS,
  KL_KINDS,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  type Aggregation,
  type KlKind,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
} from "../src/index.js";
import { klKinks, nearAny, ratioKinks } from "./helpers/kinks.js";

const H = 1e-6;
const KINK_MARGIN = 10 * H;
const ATOL = 1e-7;
const RTOL = 1e-6;

type Objective = BuiltinObjective;
const OBJECTIVES: readonly Objective[] = BUILTIN_OBJECTIVES;

// ---------------------------------------------------------------------------------------------------------------
// Random batches

interface Batch {
  readonly B: number;
  readonly T: number;
  readonly logp: Float64Array;
  /** Undefined: on-policy (oldLogp omitted). */
  readonly oldLogp: Float64Array | undefined;
  readonly mask: Float64Array;
  /** Per rollout [B] or per token [B·T]. */
  readonly advantages: Float64Array;
  readonly perTokenAdvantages: boolean;
  readonly refLogp: Float64Array;
  readonly importanceWeights: Float64Array | undefined;
  readonly entropy: Float64Array;
}

const real = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const reals = (n: number, min: number, max: number) => fc.array(real(min, max), { minLength: n, maxLength: n });

interface BatchShape {
  /** Per-token advantages allowed (kept row-constant for sequence-level ratios; varying ones are tested below). */
  perToken: boolean;
  /** Importance weights vary per token (otherwise constant within a row). */
  tokenImportance: boolean;
  /** Range of x = refLogp − logp. */
  klArgument: [number, number];
}

function batchArb(shape: BatchShape): fc.Arbitrary<Batch> {
  return fc
    .record({ B: fc.integer({ min: 1, max: 4 }), T: fc.integer({ min: 1, max: 5 }) })
    .chain(({ B, T }) =>
      fc.record({
        B: fc.constant(B),
        T: fc.constant(T),
        logp: reals(B * T, -4, -0.01),
        logRatio: reals(B * T, -2, 2),
        onPolicy: fc.constantFrom(false, false, false, true),
        mask: fc.array(fc.constantFrom(1, 1, 1, 0), { minLength: B * T, maxLength: B * T }),
        emptyRow: fc.integer({ min: -1, max: B - 1 }),
        perToken: shape.perToken ? fc.boolean() : fc.constant(false),
        rowAdvantages: reals(B, -2, 2),
        tokenAdvantages: reals(B * T, -2, 2),
        klArgument: reals(B * T, shape.klArgument[0], shape.klArgument[1]),
        importance: fc.option(reals(shape.tokenImportance ? B * T : B, 0.1, 2), { nil: undefined }),
        entropy: reals(B * T, 0, 3),
      }),
    )
    .map((r) => {
      const n = r.B * r.T;
      const logp = Float64Array.from(r.logp);
      const mask = Float64Array.from(r.mask);
      if (r.emptyRow >= 0) mask.fill(0, r.emptyRow * r.T, (r.emptyRow + 1) * r.T);
      const importanceWeights =
        r.importance === undefined
          ? undefined
          : shape.tokenImportance
            ? Float64Array.from(r.importance)
            : Float64Array.from({ length: n }, (_, i) => r.importance![Math.floor(i / r.T)]!);
      return {
        B: r.B,
        T: r.T,
        logp,
        oldLogp: r.onPolicy ? undefined : logp.map((v, i) => v - r.logRatio[i]!),
        mask,
        advantages: Float64Array.from(r.perToken ? r.tokenAdvantages : r.rowAdvantages),
        perTokenAdvantages: r.perToken,
        refLogp: logp.map((v, i) => v + r.klArgument[i]!),
        importanceWeights,
        entropy: Float64Array.from(r.entropy),
      };
    });
}

function inputsOf(
  batch: Batch,
  logp: Float64Array = batch.logp,
  oldLogp = batch.oldLogp,
  entropy = batch.entropy,
): PolicyLossInputs {
  const shape: [number, number] = [batch.B, batch.T];
  return {
    logp: { data: logp, shape },
    ...(oldLogp !== undefined ? { oldLogp: { data: oldLogp, shape } } : {}),
    mask: { data: batch.mask, shape },
    advantages: batch.perTokenAdvantages ? { data: batch.advantages, shape } : batch.advantages,
    refLogp: { data: batch.refLogp, shape },
    ...(batch.importanceWeights !== undefined ? { importanceWeights: { data: batch.importanceWeights, shape } } : {}),
    entropy: { data: entropy, shape },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// Kinks

/** The log-ratio each valid token's objective sees: its own, or its row's mean (sequence level), before clamping. */
function objectiveLogRatios(batch: Batch, sequenceLevel: boolean): number[] {
  const out: number[] = [];
  for (let b = 0; b < batch.B; b++) {
    const row: number[] = [];
    for (let t = 0; t < batch.T; t++) {
      const i = b * batch.T + t;
      if (batch.mask[i] === 1) row.push(batch.oldLogp === undefined ? 0 : batch.logp[i]! - batch.oldLogp[i]!);
    }
    if (sequenceLevel && row.length > 0) {
      const mean = row.reduce((s, v) => s + v, 0) / row.length;
      out.push(...row.map(() => mean));
    } else out.push(...row);
  }
  return out;
}

/** Rejects samples where a finite difference of step H could cross a kink of the loss. */
function awayFromKinks(batch: Batch, o: PolicyLossOptionsInput): boolean {
  if (nearAny(objectiveLogRatios(batch, o.ratioLevel === "sequence"), ratioKinks(o), KINK_MARGIN)) return false;
  if (o.kl != null) {
    const xs: number[] = [];
    for (let i = 0; i < batch.mask.length; i++) if (batch.mask[i] === 1) xs.push(batch.refLogp[i]! - batch.logp[i]!);
    if (nearAny(xs, klKinks(o.kl.kind as KlKind, o.kl.clamp ?? true), KINK_MARGIN)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Finite differences

/** Central difference of `f` along coordinate i of x, dividing by the step actually taken. */
function centralDifference(f: (x: Float64Array) => number, x: Float64Array, i: number): number {
  const plus = x.slice();
  const minus = x.slice();
  plus[i] = x[i]! + H;
  minus[i] = x[i]! - H;
  return (f(plus) - f(minus)) / (plus[i]! - minus[i]!);
}

function expectGradientClose(analytic: number, fd: number, label: string): void {
  const error = Math.abs(analytic - fd);
  expect(
    error <= ATOL + RTOL * Math.abs(analytic),
    `${label}: analytic ${analytic}, finite difference ${fd} (|diff| ${error})`,
  ).toBe(true);
}

/**
 * Checks `grad` of policyLoss against finite differences in every valid logp, and that masked entries are 0.
 * Omitted oldLogp means on-policy, oldLogp = sg(logp) (TRL's `per_token_logps.detach()`): the ratio is 1 but its
 * gradient is not 0, so the difference is taken with oldLogp held at the unperturbed logp. CISPO moves oldLogp
 * with logp (its ratio weight is a stop-gradient).
 */
function checkLogpGradient(batch: Batch, o: PolicyLossOptionsInput): void {
  const result = policyLoss(inputsOf(batch), o);
  const oldLogp = batch.oldLogp ?? batch.logp;
  if (batch.oldLogp === undefined) {
    // On-policy is the same as passing oldLogp = logp.
    const explicit = policyLoss(inputsOf(batch, batch.logp, batch.logp.slice()), o);
    expect(explicit.loss).toBe(result.loss);
    expect(Array.from(explicit.grad)).toEqual(Array.from(result.grad));
  }
  for (let i = 0; i < batch.mask.length; i++) {
    if (batch.mask[i] === 0) {
      expect(result.grad[i], `grad[${i}] at a masked position`).toBe(0);
      continue;
    }
    const lossAt = (logp: Float64Array) => {
      const old = oldLogp.slice();
      if (o.objective === "cispo") old[i] = oldLogp[i]! + (logp[i]! - batch.logp[i]!);
      return policyLoss(inputsOf(batch, logp, old), o).loss;
    };
    expectGradientClose(result.grad[i]!, centralDifference(lossAt, batch.logp, i), `grad[${i}]`);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Options

const clipOptionsArb = fc.record({
  clipLow: real(0.05, 0.5),
  clipHigh: real(0.05, 0.5),
  dualClip: fc.option(real(1.5, 3), { nil: null }),
  delta: fc.option(real(1.3, 3), { nil: null }),
  logRatioClamp: fc.option(fc.tuple(real(-1.8, -0.3), real(0.3, 1.8)), { nil: null }),
  sapoTemperature: fc.record({ positive: real(0.5, 2), negative: real(0.5, 2) }),
});

/** Branches the properties below went through, checked at the end so that a generator change cannot hollow them out. */
const seen = {
  /** Property tests that ran to the end: the branch check below needs all of them (not a `-t` filtered run). */
  completed: 0,
  dualClipBinds: 0,
  deltaBinds: 0,
  clampBinds: 0,
  clipBinds: 0,
  perTokenAdvantages: 0,
  importanceWeights: 0,
  emptyRow: 0,
  onPolicy: 0,
  k3ValueClampBinds: 0,
  sequenceLevelClampBinds: 0,
};

function recordBranches(batch: Batch, o: PolicyLossOptionsInput): void {
  const r = policyLoss(inputsOf(batch), o);
  if (r.metrics.dualClipFraction > 0) seen.dualClipBinds++;
  if (r.metrics.clipFraction > 0) seen.clipBinds++;
  const logRatios = objectiveLogRatios(batch, o.ratioLevel === "sequence");
  if (o.delta != null && logRatios.some((v) => v > Math.log(o.delta!))) seen.deltaBinds++;
  if (o.logRatioClamp != null && logRatios.some((v) => v < o.logRatioClamp![0] || v > o.logRatioClamp![1])) {
    seen.clampBinds++;
    if (o.ratioLevel === "sequence") seen.sequenceLevelClampBinds++;
  }
  if (batch.perTokenAdvantages) seen.perTokenAdvantages++;
  if (batch.importanceWeights !== undefined) seen.importanceWeights++;
  if (batch.oldLogp === undefined) seen.onPolicy++;
  for (let b = 0; b < batch.B; b++)
    if (batch.mask.subarray(b * batch.T, (b + 1) * batch.T).every((m) => m === 0)) seen.emptyRow++;
  if (o.kl?.kind === "k3" && o.kl.clamp !== false) {
    for (let i = 0; i < batch.mask.length; i++) {
      const x = batch.refLogp[i]! - batch.logp[i]!;
      if (batch.mask[i] === 1 && Math.exp(x) - x - 1 > 10) seen.k3ValueClampBinds++;
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

/**
 * The KL kinds whose slope is the derivative of their value. The "+" kinds are straight-through (the k2 slope under
 * another kind's value), so no finite difference of the loss checks them: test/loss-verl2.test.ts does.
 */
const DIFFERENTIABLE_KL_KINDS = KL_KINDS.filter((kind) => !kind.endsWith("+"));

describe("policyLoss grad = ∂loss/∂logp (central differences, h = 1e-6, |Δ| ≤ 1e-7 + 1e-6·|g|)", () => {
  const cases: [Objective, "token" | "sequence", Aggregation][] = [
    ...OBJECTIVES.flatMap((objective) =>
      AGGREGATIONS.map((a) => [objective, "token", a] as [Objective, "token", Aggregation]),
    ),
    ...AGGREGATIONS.map((a) => ["clip", "sequence", a] as [Objective, "sequence", Aggregation]),
  ];

  it.each(cases)("%s, %s-level ratio, %s", (objective, ratioLevel, aggregation) => {
    const sequenceLevel = ratioLevel === "sequence";
    fc.assert(
      fc.property(
        batchArb({ perToken: !sequenceLevel, tokenImportance: !sequenceLevel, klArgument: [-3, 3] }),
        clipOptionsArb,
        fc.option(
          fc.record({ kind: fc.constantFrom(...DIFFERENTIABLE_KL_KINDS), coef: real(0.01, 1), clamp: fc.boolean() }),
          {
            nil: null,
          },
        ),
        (batch, clip, kl) => {
          const o: PolicyLossOptionsInput = { objective, ratioLevel, aggregation, ...clip, kl };
          fc.pre(awayFromKinks(batch, o));
          recordBranches(batch, o);
          checkLogpGradient(batch, o);
        },
      ),
      { numRuns: 25 },
    );
    seen.completed++;
  });

  it.each(
    DIFFERENTIABLE_KL_KINDS.flatMap((kind) =>
      [true, false].flatMap((clamp) => [true, false].map((ic) => [kind, clamp, ic] as const)),
    ),
  )(
    "KL %s, clamp %s, importanceCorrected %s (token and sequence level, every objective that allows it)",
    (kind, clamp, importanceCorrected) => {
      // CISPO holds its ratio fixed while the importance-corrected KL differentiates through it: no single
      // finite difference matches that mix, so CISPO is checked with the plain KL only.
      const objectives = importanceCorrected ? OBJECTIVES.filter((o) => o !== "cispo") : OBJECTIVES;
      const caseArb = fc.constantFrom<"token" | "sequence">("token", "sequence").chain((ratioLevel) =>
        fc.record({
          ratioLevel: fc.constant(ratioLevel),
          objective: ratioLevel === "sequence" ? fc.constant<Objective>("clip") : fc.constantFrom(...objectives),
          aggregation: fc.constantFrom(...AGGREGATIONS),
          coef: real(0.05, 1),
          clip: clipOptionsArb,
          batch: batchArb({
            perToken: ratioLevel === "token",
            tokenImportance: ratioLevel === "token",
            // verl's k3 value clamp binds for x ≥ 2.53 or x ≤ −11.0: reach both when clamping.
            klArgument: kind === "k3" && clamp ? [-13, 4] : [-3, 3],
          }),
        }),
      );
      fc.assert(
        fc.property(caseArb, ({ ratioLevel, objective, aggregation, coef, clip, batch }) => {
          const o: PolicyLossOptionsInput = {
            objective,
            ratioLevel,
            aggregation,
            ...clip,
            kl: { kind, coef, clamp, importanceCorrected },
          };
          fc.pre(awayFromKinks(batch, o));
          recordBranches(batch, o);
          checkLogpGradient(batch, o);
        }),
        { numRuns: 30 },
      );
      seen.completed++;
    },
  );

  it("a hand-made case through every branch at once: clip-higher, δ, dual clip, ±clamp, k3 with both clamps", () => {
    // Row 0 (A = 1): ratios e^−1.5 (clamped to e^−1), e^0.1, e^0.5 (clipped high), e^1.4 (> δ, clamped to e^1.2).
    // Row 1 (A = −1): e^−0.5 (clipped low), e^0.9 (dual clip c = 2 binds), e^0.05, masked.
    const logp = Float64Array.from([-1, -2, -0.5, -1.2, -0.7, -1.1, -3, -2]);
    const logRatio = [-1.5, 0.1, 0.5, 1.4, -0.5, 0.9, 0.05, 0];
    const batch: Batch = {
      B: 2,
      T: 4,
      logp,
      oldLogp: logp.map((v, i) => v - logRatio[i]!),
      mask: Float64Array.from([1, 1, 1, 1, 1, 1, 1, 0]),
      advantages: Float64Array.from([1, -1]),
      perTokenAdvantages: false,
      // x = refLogp − logp: −25 and 25 (x clamp), 3 and −12 (value clamp), small values inside.
      refLogp: logp.map((v, i) => v + [-25, 25, 3, -12, 0.3, -0.4, 1, 0][i]!),
      importanceWeights: Float64Array.from([1, 0.5, 2, 1.5, 0.7, 1, 1.2, 1]),
      entropy: new Float64Array(8),
    };
    const o: PolicyLossOptionsInput = {
      clipLow: 0.2,
      clipHigh: 0.28,
      delta: 2.5,
      dualClip: 2,
      logRatioClamp: [-1, 1.2],
      kl: { kind: "k3", coef: 0.1, clamp: true, importanceCorrected: true },
    };
    expect(awayFromKinks(batch, o)).toBe(true);
    const r = policyLoss(inputsOf(batch), o);
    expect(r.metrics.dualClipFraction).toBeCloseTo(1 / 7, 15);
    expect(r.metrics.clipFraction).toBeGreaterThan(0);
    checkLogpGradient(batch, o);
  });

  afterAll(() => {
    // Every kink-guarded branch was actually visited by the random samples (on top of the hand-made case).
    if (seen.completed < cases.length + DIFFERENTIABLE_KL_KINDS.length * 4) return;
    for (const [branch, count] of Object.entries(seen)) expect(count, `samples through ${branch}`).toBeGreaterThan(0);
  });
});

describe("sequence-level (GSPO) gradient with per-token advantages or importance weights", () => {
  // ratioLevel "sequence" differentiates the returned loss through ρ_b (Σ_j w·imp_j·ℓ'_j/|o| per token); verl's
  // per-token GSPO-token gradient is ratioLevel "sequence-token". They differ exactly when advantages or weights
  // vary within a row, which is what these two cases exercise.
  it("grad equals the finite difference of loss when advantages vary within a row", () => {
    const batch: Batch = {
      B: 1,
      T: 2,
      logp: Float64Array.from([-1, -1.5]),
      oldLogp: Float64Array.from([-1.1, -1.4]),
      mask: Float64Array.from([1, 1]),
      advantages: Float64Array.from([1, -0.5]),
      perTokenAdvantages: true,
      refLogp: Float64Array.from([-1, -1.5]),
      importanceWeights: undefined,
      entropy: new Float64Array(2),
    };
    checkLogpGradient(batch, { ratioLevel: "sequence" });
  });

  it("grad equals the finite difference of loss when importance weights vary within a row", () => {
    const batch: Batch = {
      B: 1,
      T: 2,
      logp: Float64Array.from([-1, -1.5]),
      oldLogp: Float64Array.from([-1.1, -1.4]),
      mask: Float64Array.from([1, 1]),
      advantages: Float64Array.from([1]),
      perTokenAdvantages: false,
      refLogp: Float64Array.from([-1, -1.5]),
      importanceWeights: Float64Array.from([0.5, 2]),
      entropy: new Float64Array(2),
    };
    checkLogpGradient(batch, { ratioLevel: "sequence" });
  });
});

describe("policyLoss gradEntropy = ∂loss/∂entropy", () => {
  it("matches central differences in the entropy input for every aggregation / entropyAggregation pair", () => {
    fc.assert(
      fc.property(
        batchArb({ perToken: true, tokenImportance: true, klArgument: [-3, 3] }),
        fc.constantFrom(...OBJECTIVES),
        fc.constantFrom(...AGGREGATIONS),
        fc.option(fc.constantFrom(...AGGREGATIONS), { nil: undefined }),
        real(0.01, 2),
        (batch, objective, aggregation, entropyAggregation, entropyCoef) => {
          const o: PolicyLossOptionsInput = {
            objective,
            aggregation,
            entropyCoef,
            ...(entropyAggregation ? { entropyAggregation } : {}),
          };
          const result = policyLoss(inputsOf(batch), o);
          expect(result.gradEntropy).toBeInstanceOf(Float64Array);
          const lossAt = (entropy: Float64Array) =>
            policyLoss(inputsOf(batch, batch.logp, batch.oldLogp, entropy), o).loss;
          let nonZero = 0;
          for (let i = 0; i < batch.mask.length; i++) {
            if (batch.mask[i] === 0) {
              expect(result.gradEntropy![i]).toBe(0);
              continue;
            }
            if (result.gradEntropy![i] !== 0) nonZero++;
            expectGradientClose(
              result.gradEntropy![i]!,
              centralDifference(lossAt, batch.entropy, i),
              `gradEntropy[${i}]`,
            );
          }
          // An entropy *bonus*: the loss falls as the entropy rises, at every valid token.
          expect(nonZero).toBe(batch.mask.reduce((s, m) => s + m, 0));
          for (let i = 0; i < batch.mask.length; i++) expect(result.gradEntropy![i]!).toBeLessThanOrEqual(0);
        },
      ),
      { numRuns: 60 },
    );
  });

  it("no gradEntropy without an entropy bonus", () => {
    const r = policyLoss({ logp: [[-1]], advantages: [1], entropy: [[2]] });
    expect(r.gradEntropy).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------------------------
// tokenLogProbsBackward

interface LogitsCase {
  B: number;
  T: number;
  V: number;
  logits: Float64Array;
  tokens: Float64Array;
  mask: Float64Array | undefined;
  gradLogp: Float64Array;
  gradEntropy: Float64Array;
  temperature: number;
}

const logitsCaseArb: fc.Arbitrary<LogitsCase> = fc
  .record({ B: fc.integer({ min: 1, max: 2 }), T: fc.integer({ min: 1, max: 3 }), V: fc.integer({ min: 2, max: 7 }) })
  .chain(({ B, T, V }) =>
    fc.record({
      B: fc.constant(B),
      T: fc.constant(T),
      V: fc.constant(V),
      logits: reals(B * T * V, -5, 5),
      negativeInfinity: fc.array(fc.constantFrom(false, false, false, true), {
        minLength: B * T * V,
        maxLength: B * T * V,
      }),
      tokens: fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: B * T, maxLength: B * T }),
      mask: fc.option(fc.array(fc.constantFrom(1, 1, 0), { minLength: B * T, maxLength: B * T }), { nil: undefined }),
      gradLogp: reals(B * T, -2, 2),
      gradEntropy: reals(B * T, -2, 2),
      temperature: fc.constantFrom(1, 0.7, 1.3, 2.5),
    }),
  )
  .map((r) => {
    const logits = Float64Array.from(r.logits);
    r.negativeInfinity.forEach((flag, k) => {
      const position = Math.floor(k / r.V);
      // The sampled token keeps a finite logit, so logp is finite and differentiable.
      if (flag && k % r.V !== r.tokens[position]) logits[k] = -Infinity;
    });
    return {
      B: r.B,
      T: r.T,
      V: r.V,
      logits,
      tokens: Float64Array.from(r.tokens),
      mask: r.mask === undefined ? undefined : Float64Array.from(r.mask),
      gradLogp: Float64Array.from(r.gradLogp),
      gradEntropy: Float64Array.from(r.gradEntropy),
      temperature: r.temperature,
    };
  });

describe("tokenLogProbsBackward = ∂L/∂logits for L = Σ gradLogp·logp + Σ gradEntropy·entropy", () => {
  const seenLogits = { completed: 0, negativeInfinity: 0, masked: 0, temperature: 0 };

  function objective(c: LogitsCase, withEntropy: boolean) {
    return (logits: Float64Array) => {
      const f = tokenLogProbs(
        { data: logits, shape: [c.B, c.T, c.V] },
        { data: c.tokens, shape: [c.B, c.T] },
        {
          temperature: c.temperature,
          entropy: true,
          ...(c.mask ? { mask: { data: c.mask, shape: [c.B, c.T] } } : {}),
        },
      );
      let sum = 0;
      for (let i = 0; i < c.B * c.T; i++)
        sum += c.gradLogp[i]! * f.logp[i]! + (withEntropy ? c.gradEntropy[i]! * f.entropy![i]! : 0);
      return sum;
    };
  }

  it.each([
    ["gradLogp only", false],
    ["gradLogp and gradEntropy", true],
  ] as const)("%s: matches central differences (h = 1e-6); −Infinity logits get exactly 0", (_name, withEntropy) => {
    fc.assert(
      fc.property(logitsCaseArb, (c) => {
        const shape2: [number, number] = [c.B, c.T];
        const options = {
          temperature: c.temperature,
          gradLogp: { data: c.gradLogp, shape: shape2 },
          ...(withEntropy ? { gradEntropy: { data: c.gradEntropy, shape: shape2 } } : {}),
          ...(c.mask ? { mask: { data: c.mask, shape: shape2 } } : {}),
        };
        const logitsInput = { data: c.logits, shape: [c.B, c.T, c.V] as [number, number, number] };
        const tokensInput = { data: c.tokens, shape: shape2 };
        const grad = tokenLogProbsBackward(logitsInput, tokensInput, options);
        expect(grad.shape).toEqual([c.B, c.T, c.V]);
        expect(grad.data).toBeInstanceOf(Float64Array);
        const f = objective(c, withEntropy);
        for (let k = 0; k < c.logits.length; k++) {
          const position = Math.floor(k / c.V);
          if (c.mask !== undefined && c.mask[position] === 0) {
            seenLogits.masked++;
            expect(grad.data[k], `masked position, logit ${k}`).toBe(0);
          } else if (c.logits[k] === -Infinity) {
            seenLogits.negativeInfinity++;
            expect(grad.data[k], `−Infinity logit ${k}`).toBe(0);
          } else {
            expectGradientClose(grad.data[k]!, centralDifference(f, c.logits, k), `gradLogits[${k}]`);
          }
        }
        if (c.temperature !== 1) seenLogits.temperature++;
        // Passing the forward result as `saved` gives the same gradient to rounding: log p is then z/τ − lse rather
        // than (z − max)/τ − log Σ, a few ulps of |z/τ| ≤ 7.2 apart, scaled by |gradLogp|, |gradEntropy| ≤ 2 and 1/τ.
        const forward = tokenLogProbs(logitsInput, tokensInput, {
          temperature: c.temperature,
          entropy: true,
          ...(c.mask ? { mask: { data: c.mask, shape: shape2 } } : {}),
        });
        const withSaved = tokenLogProbsBackward(logitsInput, tokensInput, { ...options, saved: forward });
        for (let k = 0; k < c.logits.length; k++)
          expect(Math.abs(withSaved.data[k]! - grad.data[k]!)).toBeLessThanOrEqual(1e-13);
      }),
      { numRuns: 80 },
    );
    seenLogits.completed++;
  });

  it("a row with some −Infinity logits (temperature 0.8): matches central differences in every finite logit", () => {
    const logits = [
      [
        [0.5, -Infinity, 2, -1, -Infinity],
        [-Infinity, -Infinity, 3, 0.1, 0.2],
      ],
    ];
    const c: LogitsCase = {
      B: 1,
      T: 2,
      V: 5,
      logits: Float64Array.from(logits.flat(2)),
      tokens: Float64Array.from([0, 3]),
      mask: undefined,
      gradLogp: Float64Array.from([0.7, -1.3]),
      gradEntropy: Float64Array.from([-0.4, 0.9]),
      temperature: 0.8,
    };
    const grad = tokenLogProbsBackward(logits, [[0, 3]], {
      temperature: 0.8,
      gradLogp: [[0.7, -1.3]],
      gradEntropy: [[-0.4, 0.9]],
    });
    const f = objective(c, true);
    for (let k = 0; k < 10; k++) {
      if (c.logits[k] === -Infinity) expect(grad.data[k]).toBe(0);
      else expectGradientClose(grad.data[k]!, centralDifference(f, c.logits, k), `gradLogits[${k}]`);
    }
  });

  afterAll(() => {
    if (seenLogits.completed < 2) return;
    for (const [branch, count] of Object.entries(seenLogits))
      expect(count, `logits visited: ${branch}`).toBeGreaterThan(0);
  });
});
