/**
 * verl 1dda039's terms, by their algebra (fast-check) and by finite differences:
 *
 * (a) The straight-through KL kinds: loss(k+) = loss(k) and grad(k+) = grad(k2), for every objective, aggregation,
 *     clamp and importance correction (the "+" gradient is by design not the derivative of the value, so the
 *     finite-difference suites check the base kinds; this checks the "+" kinds against them).
 * (b) token-sum: Σ mask·ℓ·dpSize; micro-batches need no normaliser, their losses and gradients sum to the batch's.
 *     seq-mean-token-sum-norm: at 1dda039 seq-mean-token-sum / length (micro-batch invariant with the whole batch's
 *     normaliser); at b178a3c Σ / length.
 * (c) tokenEntropy / tokenEntropyBackward: central finite differences of the entropy in the logits, and the same
 *     numbers as tokenLogProbs's entropy and tokenLogProbsBackward's entropy term.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  aggregate,
  AGGREGATIONS,
  BUILTIN_OBJECTIVES,
  batchNormalizer,
  KL_KINDS,
  type KlKind,
  klPenalty,
  type PolicyLossInputs,
  policyLoss,
  tokenEntropy,
  tokenEntropyBackward,
  tokenLogProbs,
  tokenLogProbsBackward,
} from "../src/index.js";
import { rng } from "./helpers/rng.js";

const real = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });

/** A [B, T] batch with at least one valid token, as flat arrays. */
const batchArb = fc.record({ B: fc.integer({ min: 1, max: 5 }), T: fc.integer({ min: 1, max: 6 }) }).chain(({ B, T }) =>
  fc.record({
    B: fc.constant(B),
    T: fc.constant(T),
    logp: fc.array(real(-5, -0.01), { minLength: B * T, maxLength: B * T }),
    logRatio: fc.array(real(-1, 1), { minLength: B * T, maxLength: B * T }),
    refShift: fc.array(real(-4, 4), { minLength: B * T, maxLength: B * T }),
    mask: fc
      .array(fc.constantFrom(0, 1, 1), { minLength: B * T, maxLength: B * T })
      .map((m) => (m.includes(1) ? m : [1, ...m.slice(1)])),
    advantages: fc.array(real(-2, 2), { minLength: B, maxLength: B }),
  }),
);
type Batch =
  fc.Arbitrary<typeof batchArb extends fc.Arbitrary<infer T> ? T : never> extends fc.Arbitrary<infer U> ? U : never;

function inputsOf(b: Batch, rows: readonly number[] = Array.from({ length: b.B }, (_, r) => r)): PolicyLossInputs {
  const pick = (x: readonly number[]) => Float64Array.from(rows.flatMap((r) => x.slice(r * b.T, (r + 1) * b.T)));
  const logp = pick(b.logp);
  const shape = [rows.length, b.T] as const;
  return {
    logp: { data: logp, shape },
    oldLogp: { data: logp.map((v, i) => v - pick(b.logRatio)[i]!), shape },
    refLogp: { data: logp.map((v, i) => v + pick(b.refShift)[i]!), shape },
    mask: { data: pick(b.mask), shape },
    advantages: rows.map((r) => b.advantages[r]!),
  };
}

const closeTo = (actual: number, expected: number, scale = 1) =>
  expect(Math.abs(actual - expected)).toBeLessThanOrEqual(1e-12 * (scale + Math.abs(expected)));

describe("(a) straight-through KL kinds: the base kind's loss, k2's gradient", () => {
  const plusKinds = KL_KINDS.filter((kind) => kind.endsWith("+"));
  it.each(plusKinds)("%s", (kind) => {
    const base = kind.slice(0, -1) as KlKind;
    fc.assert(
      fc.property(
        batchArb,
        fc.constantFrom(...BUILTIN_OBJECTIVES),
        fc.constantFrom(...AGGREGATIONS),
        fc.boolean(),
        fc.boolean(),
        real(0.01, 1),
        (batch, objective, aggregation, clamp, importanceCorrected, coef) => {
          const inputs = inputsOf(batch);
          const common = { objective, aggregation };
          const plus = policyLoss(inputs, { ...common, kl: { kind, coef, clamp, importanceCorrected } });
          const value = policyLoss(inputs, { ...common, kl: { kind: base, coef, clamp, importanceCorrected } });
          const slope = policyLoss(inputs, { ...common, kl: { kind: "k2", coef, clamp, importanceCorrected } });
          expect(plus.loss).toBe(value.loss);
          expect(Array.from(plus.perTokenKl!)).toEqual(Array.from(value.perTokenKl!));
          expect(plus.metrics.kl).toBe(value.metrics.kl);
          // With the importance correction the ratio's own term (value·ρ) is the base kind's; checked below.
          if (!importanceCorrected) expect(Array.from(plus.grad)).toEqual(Array.from(slope.grad));
        },
      ),
      { numRuns: 60 },
    );
  });

  it("importance-corrected: grad(k+) − grad(k) = coef·ρ·((logp − ref) − slope_k) per token (token-sum, REINFORCE)", () => {
    fc.assert(
      fc.property(batchArb, fc.constantFrom(...plusKinds), fc.boolean(), (batch, kind, clamp) => {
        const inputs = inputsOf(batch);
        const coef = 0.5;
        const base = kind.slice(0, -1) as KlKind;
        const o = { objective: "reinforce", aggregation: "token-sum" } as const;
        const plus = policyLoss(inputs, { ...o, kl: { kind, coef, clamp, importanceCorrected: true } });
        const plain = policyLoss(inputs, { ...o, kl: { kind: base, coef, clamp, importanceCorrected: true } });
        plus.grad.forEach((g, i) => {
          if (batch.mask[i] !== 1) return expect(g).toBe(0);
          const logp = batch.logp[i]!;
          const ref = logp + batch.refShift[i]!;
          const ratio = Math.exp(batch.logRatio[i]!);
          const slope = klPenalty(base, clamp, logp, ref).dLogp;
          closeTo(g - plain.grad[i]!, coef * ratio * (logp - ref - slope), 10);
        });
      }),
      { numRuns: 40 },
    );
  });
});

describe("(b) token-sum and seq-mean-token-sum-norm", () => {
  it("token-sum is Σ mask·ℓ·dpSize, and micro-batches sum to the batch without a normaliser", () => {
    fc.assert(
      fc.property(batchArb, fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 4 }), (batch, dpSize, cut) => {
        const o = { objective: "reinforce", aggregation: "token-sum", normalizer: { dpSize } } as const;
        const whole = policyLoss(inputsOf(batch), o);
        let expected = 0;
        batch.mask.forEach((m, i) => {
          if (m === 1) expected += -batch.advantages[Math.floor(i / batch.T)]! * batch.logp[i]! * dpSize;
        });
        closeTo(whole.loss, expected, 10);
        const split = Math.min(cut, batch.B);
        const parts = [
          Array.from({ length: split }, (_, r) => r),
          Array.from({ length: batch.B - split }, (_, r) => r + split),
        ].filter((rows) => rows.length > 0);
        let sum = 0;
        const grad: number[] = [];
        for (const rows of parts) {
          const part = policyLoss(inputsOf(batch, rows), o);
          sum += part.loss;
          grad.push(...part.grad);
        }
        closeTo(sum, whole.loss, 10);
        expect(grad).toEqual(Array.from(whole.grad));
      }),
      { numRuns: 100 },
    );
  });

  it("seq-mean-token-sum-norm at 1dda039 is seq-mean-token-sum / length, and micro-batch invariant", () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 64 }),
        (batch, dpSize, length) => {
          const all = inputsOf(batch);
          const counts = batchNormalizer(all.mask!);
          const normalizer = { sequences: counts.sequences + batch.B, dpSize, length };
          const o = { objective: "reinforce", normalizer } as const;
          const norm = policyLoss(all, { ...o, aggregation: "seq-mean-token-sum-norm" });
          const sum = policyLoss(all, { ...o, aggregation: "seq-mean-token-sum" });
          closeTo(norm.loss, sum.loss / length, 10);
          norm.grad.forEach((g, i) => closeTo(g, sum.grad[i]! / length));
          const old = policyLoss(all, {
            ...o,
            aggregation: "seq-mean-token-sum-norm",
            normalizer: { ...normalizer, verlVersion: "b178a3c" },
          });
          const tokens = policyLoss(all, { objective: "reinforce", aggregation: "token-sum" });
          closeTo(old.loss, tokens.loss / length, 10);
          let parts = 0;
          for (let r = 0; r < batch.B; r++) {
            parts += policyLoss(inputsOf(batch, [r]), { ...o, aggregation: "seq-mean-token-sum-norm" }).loss;
          }
          closeTo(parts, norm.loss, 10);
        },
      ),
      { numRuns: 100 },
    );
  });

  it("aggregate() follows the same weights", () => {
    const values = [
      [1, 2, 3],
      [4, 5, 6],
    ];
    const mask = [
      [1, 1, 0],
      [0, 0, 0],
    ];
    expect(aggregate(values, { mask, aggregation: "token-sum" }).value).toBe(3);
    expect(aggregate(values, { mask, aggregation: "token-sum", normalizer: { dpSize: 4, tokens: 99 } }).value).toBe(12);
    expect(aggregate(values, { mask, aggregation: "seq-mean-token-sum-norm" }).value).toBe(1);
    expect(
      aggregate(values, { mask, aggregation: "seq-mean-token-sum-norm", normalizer: { sequences: 2 } }).value,
    ).toBe(0.5);
  });
});

describe("(c) tokenEntropy and tokenEntropyBackward", () => {
  function randomLogits(seed: number, B: number, T: number, V: number, scale: number) {
    const r = rng(seed);
    return { data: Float64Array.from({ length: B * T * V }, () => r.normal() * scale), shape: [B, T, V] as const };
  }

  it.each([
    [1, 1, 1, 3, 1, 1],
    [2, 2, 3, 5, 3, 0.7],
    [3, 1, 2, 9, 0.5, 2],
    [4, 3, 2, 4, 10, 1.3],
  ])(
    "seed %i [%i, %i, %i], logit scale %d, temperature %d: central differences",
    (seed, B, T, V, scale, temperature) => {
      const logits = randomLogits(seed, B, T, V, scale);
      const r = rng(seed + 100);
      const h = Float64Array.from({ length: B * T }, () => r.normal());
      const mask = Float64Array.from({ length: B * T }, (_, i) => (i === 1 ? 0 : 1));
      const options = { temperature, mask: { data: mask, shape: [B, T] as const } };
      const L = (data: Float64Array) =>
        tokenEntropy({ data, shape: logits.shape }, options).entropy.reduce((s, e, i) => s + h[i]! * e, 0);
      const grad = tokenEntropyBackward(logits, { ...options, gradEntropy: { data: h, shape: [B, T] } });
      const step = 1e-6;
      for (let j = 0; j < logits.data.length; j++) {
        const plus = logits.data.slice();
        const minus = logits.data.slice();
        plus[j] = plus[j]! + step;
        minus[j] = minus[j]! - step;
        const fd = (L(plus) - L(minus)) / (2 * step);
        expect(Math.abs(grad.data[j]! - fd)).toBeLessThanOrEqual(1e-7 + 1e-6 * Math.abs(fd));
      }
    },
  );

  it("equals tokenLogProbs's entropy and tokenLogProbsBackward's entropy term, at any tokens", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 1000 }), real(0.2, 3), (seed, temperature) => {
        const logits = randomLogits(seed, 2, 3, 6, 4);
        const tokens = [
          [0, 5, 2],
          [1, 3, 4],
        ];
        const entropy = tokenEntropy(logits, { temperature });
        const forward = tokenLogProbs(logits, tokens, { temperature, entropy: true });
        expect(Array.from(entropy.entropy)).toEqual(Array.from(forward.entropy!));
        expect(Array.from(entropy.logSumExp)).toEqual(Array.from(forward.logSumExp));
        const gradEntropy = { data: Float64Array.from({ length: 6 }, (_, i) => i - 2.5), shape: [2, 3] as const };
        const alone = tokenEntropyBackward(logits, { temperature, gradEntropy });
        const viaLogProbs = tokenLogProbsBackward(logits, tokens, {
          temperature,
          gradLogp: { data: new Float64Array(6), shape: [2, 3] },
          gradEntropy,
        });
        alone.data.forEach((g, j) => expect(Math.abs(g - viaLogProbs.data[j]!)).toBeLessThanOrEqual(1e-15));
      }),
      { numRuns: 30 },
    );
  });

  it("float32 logits give a Float32Array gradient, float64 a Float64Array", () => {
    const logits64 = randomLogits(7, 1, 2, 3, 1);
    const logits32 = { data: Float32Array.from(logits64.data), shape: logits64.shape };
    const gradEntropy = [[1, -1]];
    expect(tokenEntropyBackward(logits64, { gradEntropy }).data).toBeInstanceOf(Float64Array);
    expect(tokenEntropyBackward(logits32, { gradEntropy }).data).toBeInstanceOf(Float32Array);
  });
});
