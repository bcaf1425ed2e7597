/**
 * Algebraic properties of the policy loss and of the token log-probs.
 *
 * (a) Micro-batch invariance (docs/spec.md §4, "a global normaliser"): cut a batch's rows into micro-batches in any way,
 *     give every micro-batch the whole batch's normaliser, and the micro-batch losses sum to the batch loss while
 *     the micro-batch gradients, put back in place, are the batch gradient. Tolerance: the loss to
 *     1e-13·(1 + Σ|per-token terms|) (summation order differs; the float64 bound for ≤ 42 terms is ~5e-15 of that
 *     sum), each gradient entry to 1e-14·(1 + |g|) (they are computed token by token with the same weight, so in
 *     practice they are bitwise equal).
 * (b) Permuting rows permutes perTokenLoss and grad and leaves the loss unchanged (same tolerances).
 * (c) tokenLogProbs: chunked online logsumexp over a vocabulary of several 4096-entry chunks equals a plain
 *     two-pass log-softmax written here (to 1e-12·(1 + |value|)); a temperature equals dividing the logits first;
 *     float32 logits give Float32Array gradients.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rng } from "./helpers/rng.js";
import {
  BUILTIN_OBJECTIVES,
  AGGREGATIONS,
  batchNormalizer,
  KL_KINDS,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  type Aggregation,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../src/index.js";

const real = (min: number, max: number) => fc.double({ min, max, noNaN: true, noDefaultInfinity: true });
const reals = (n: number, min: number, max: number) => fc.array(real(min, max), { minLength: n, maxLength: n });

// ---------------------------------------------------------------------------------------------------------------
// Batches as rows, so that they can be cut and permuted

interface Row {
  logp: number[];
  oldLogp: number[];
  mask: number[];
  advantage: number;
  tokenAdvantages: number[];
  refLogp: number[];
  importance: number[];
  entropy: number[];
}

interface Batch {
  T: number;
  rows: Row[];
  perTokenAdvantages: boolean;
  withImportance: boolean;
}

function rowArb(T: number, rowConstantImportance: boolean): fc.Arbitrary<Row> {
  return fc
    .record({
      logp: reals(T, -4, -0.01),
      logRatio: reals(T, -1.5, 1.5),
      // A prefix of valid tokens (responses of different lengths, some empty), then random holes.
      length: fc.integer({ min: 0, max: T }),
      holes: fc.array(fc.constantFrom(1, 1, 1, 1, 0), { minLength: T, maxLength: T }),
      advantage: real(-2, 2),
      tokenAdvantages: reals(T, -2, 2),
      refShift: reals(T, -2, 2),
      importance: reals(T, 0.2, 2),
      entropy: reals(T, 0, 3),
    })
    .map((r) => ({
      logp: r.logp,
      oldLogp: r.logp.map((v, t) => v - r.logRatio[t]!),
      mask: r.holes.map((h, t) => (t < r.length ? h : 0)),
      advantage: r.advantage,
      tokenAdvantages: r.tokenAdvantages,
      refLogp: r.logp.map((v, t) => v + r.refShift[t]!),
      importance: rowConstantImportance ? r.importance.map(() => r.importance[0]!) : r.importance,
      entropy: r.entropy,
    }));
}

function batchArb(maxRows: number, sequenceLevel: boolean): fc.Arbitrary<Batch> {
  return fc.integer({ min: 1, max: 6 }).chain((T) =>
    fc.record({
      T: fc.constant(T),
      rows: fc.array(rowArb(T, sequenceLevel), { minLength: 1, maxLength: maxRows }),
      // Sequence-level ratios take row-constant advantages (see loss-gradients.test.ts).
      perTokenAdvantages: sequenceLevel ? fc.constant(false) : fc.boolean(),
      withImportance: fc.boolean(),
    }),
  );
}

const flat = (
  rows: Row[],
  key: "logp" | "oldLogp" | "mask" | "tokenAdvantages" | "refLogp" | "importance" | "entropy",
) => Float64Array.from(rows.flatMap((r) => r[key]));

function inputsOf(batch: Batch, rows: Row[] = batch.rows): PolicyLossInputs {
  const shape: [number, number] = [rows.length, batch.T];
  const m = (key: Parameters<typeof flat>[1]) => ({ data: flat(rows, key), shape });
  return {
    logp: m("logp"),
    oldLogp: m("oldLogp"),
    mask: m("mask"),
    advantages: batch.perTokenAdvantages ? m("tokenAdvantages") : rows.map((r) => r.advantage),
    refLogp: m("refLogp"),
    entropy: m("entropy"),
    ...(batch.withImportance ? { importanceWeights: m("importance") } : {}),
  };
}

const fullMask = (batch: Batch) => batch.rows.map((r) => r.mask);
const tokenCount = (rows: Row[]) => rows.reduce((s, r) => s + r.mask.reduce((a, b) => a + b, 0), 0);

/** Random loss options: objective, clip, dual clip, clamp, KL of any kind, entropy bonus with any aggregation. */
function optionsArb(aggregation: Aggregation, ratioLevel: "token" | "sequence"): fc.Arbitrary<PolicyLossOptionsInput> {
  return fc.record({
    objective: ratioLevel === "sequence" ? fc.constant("clip") : fc.constantFrom(...BUILTIN_OBJECTIVES),
    ratioLevel: fc.constant(ratioLevel),
    aggregation: fc.constant(aggregation),
    clipLow: real(0.05, 0.4),
    clipHigh: real(0.05, 0.4),
    dualClip: fc.option(real(1.5, 3), { nil: null }),
    logRatioClamp: fc.option(fc.tuple(real(-1.5, -0.3), real(0.3, 1.5)), { nil: null }),
    kl: fc.option(
      fc.record({
        kind: fc.constantFrom(...KL_KINDS),
        coef: real(0, 1),
        clamp: fc.boolean(),
        importanceCorrected: fc.boolean(),
      }),
      { nil: null },
    ),
    entropyCoef: fc.constantFrom(0, 0.01, 0.5),
    entropyAggregation: fc.constantFrom(...AGGREGATIONS),
  });
}

function scale(r: PolicyLossResult, batch: Batch): number {
  let s = 1;
  const entropy = flat(batch.rows, "entropy");
  const mask = flat(batch.rows, "mask");
  for (let i = 0; i < r.perTokenLoss.length; i++) {
    s += Math.abs(r.perTokenLoss[i]!) + Math.abs(r.perTokenKl?.[i] ?? 0) + (mask[i] === 1 ? entropy[i]! : 0);
  }
  return s;
}

function expectClose(actual: number, expected: number, tolerance: number, label: string): void {
  expect(
    Math.abs(actual - expected) <= tolerance,
    `${label}: ${actual} vs ${expected} (|diff| ${Math.abs(actual - expected)}, tolerance ${tolerance})`,
  ).toBe(true);
}

function expectArrayClose(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++)
    expectClose(actual[i]!, expected[i]!, 1e-14 * (1 + Math.abs(expected[i]!)), `${label}[${i}]`);
}

/** Runs the batch as micro-batches (rows grouped by `assignment`), returns the summed loss and the reassembled arrays. */
function runMicroBatches(batch: Batch, assignment: number[], o: PolicyLossOptionsInput) {
  const T = batch.T;
  const size = batch.rows.length * T;
  const grad = new Float64Array(size);
  const gradEntropy = new Float64Array(size);
  const perTokenLoss = new Float64Array(size);
  let loss = 0;
  let calls = 0;
  for (const part of new Set(assignment)) {
    const members = assignment.flatMap((p, b) => (p === part ? [b] : []));
    const r = policyLoss(
      inputsOf(
        batch,
        members.map((b) => batch.rows[b]!),
      ),
      o,
    );
    loss += r.loss;
    calls++;
    members.forEach((b, k) => {
      grad.set(r.grad.subarray(k * T, (k + 1) * T), b * T);
      perTokenLoss.set(r.perTokenLoss.subarray(k * T, (k + 1) * T), b * T);
      if (r.gradEntropy) gradEntropy.set(r.gradEntropy.subarray(k * T, (k + 1) * T), b * T);
    });
  }
  return { loss, grad, gradEntropy, perTokenLoss, calls };
}

// ---------------------------------------------------------------------------------------------------------------

describe("(a) micro-batch invariance with the whole batch's normaliser", () => {
  const levels = [
    ...AGGREGATIONS.map((a) => [a, "token"] as const),
    ...AGGREGATIONS.map((a) => [a, "sequence"] as const),
  ];

  it.each(levels)(
    "%s, %s-level ratio: Σ micro-batch losses = batch loss, reassembled grads = batch grad, for any split of the rows",
    (aggregation, ratioLevel) => {
      let splits = 0;
      fc.assert(
        fc.property(
          batchArb(7, ratioLevel === "sequence")
            // A batch with no valid token at all is covered by its own test below: give this one a token.
            .map((batch) =>
              tokenCount(batch.rows) > 0
                ? batch
                : {
                    ...batch,
                    rows: [{ ...batch.rows[0]!, mask: [1, ...batch.rows[0]!.mask.slice(1)] }, ...batch.rows.slice(1)],
                  },
            )
            .chain((batch) =>
              fc.record({
                batch: fc.constant(batch),
                assignment: fc.array(fc.integer({ min: 0, max: 3 }), {
                  minLength: batch.rows.length,
                  maxLength: batch.rows.length,
                }),
              }),
            ),
          optionsArb(aggregation, ratioLevel),
          ({ batch, assignment }, options) => {
            const whole = policyLoss(inputsOf(batch), options);
            const micro = runMicroBatches(batch, assignment, {
              ...options,
              normalizer: batchNormalizer(fullMask(batch)),
            });
            if (micro.calls > 1) splits++;
            expectClose(micro.loss, whole.loss, 1e-13 * scale(whole, batch), "Σ micro-batch losses");
            expectArrayClose(micro.grad, whole.grad, "grad");
            expectArrayClose(micro.perTokenLoss, whole.perTokenLoss, "perTokenLoss");
            if (whole.gradEntropy) expectArrayClose(micro.gradEntropy, whole.gradEntropy, "gradEntropy");
          },
        ),
        { numRuns: 40 },
      );
      expect(splits).toBeGreaterThan(0);
    },
  );

  it("one row per micro-batch (the extreme split), every aggregation, rows of different lengths incl. an empty one", () => {
    const batch: Batch = {
      T: 4,
      perTokenAdvantages: false,
      withImportance: false,
      rows: [
        { mask: [1, 0, 0, 0], advantage: 1 },
        { mask: [1, 1, 1, 0], advantage: -0.5 },
        { mask: [0, 0, 0, 0], advantage: 3 },
        { mask: [1, 1, 1, 1], advantage: 0.25 },
      ].map(({ mask, advantage }, b) => ({
        logp: [-1, -0.5, -2, -0.3].map((v) => v - 0.1 * b),
        oldLogp: [-1.1, -0.4, -2.2, -0.3].map((v) => v - 0.1 * b),
        mask,
        advantage,
        tokenAdvantages: [0, 0, 0, 0],
        refLogp: [-1, -1, -1, -1],
        importance: [1, 1, 1, 1],
        entropy: [0, 0, 0, 0],
      })),
    };
    for (const aggregation of AGGREGATIONS) {
      const o: PolicyLossOptionsInput = { aggregation };
      const whole = policyLoss(inputsOf(batch), o);
      const micro = runMicroBatches(batch, [0, 1, 2, 3], { ...o, normalizer: batchNormalizer(fullMask(batch)) });
      expectClose(micro.loss, whole.loss, 1e-15, `${aggregation}: Σ micro-batch losses`);
      expectArrayClose(micro.grad, whole.grad, `${aggregation}: grad`);
    }
  });

  it("WITHOUT the global normaliser, token-mean micro-batches neither sum nor average to the batch loss (rows of 1 and 3 tokens)", () => {
    // On-policy (ratio 1): per-token loss −A. Row 0 has 1 token with A = 1, row 1 has 3 tokens with A = −0.5.
    const inputs = (rows: number[]) => ({
      logp: rows.map(() => [-1, -1, -1]),
      mask: rows.map(
        (b) =>
          [
            [1, 0, 0],
            [1, 1, 1],
          ][b]!,
      ),
      advantages: rows.map((b) => [1, -0.5][b]!),
    });
    const whole = policyLoss(inputs([0, 1]));
    expect(whole.loss).toBeCloseTo((-1 + 3 * 0.5) / 4, 15); // 0.125
    const local = [policyLoss(inputs([0])), policyLoss(inputs([1]))];
    const sum = local[0]!.loss + local[1]!.loss; // −1 + 0.5
    expect(sum).toBeCloseTo(-0.5, 15);
    expect(Math.abs(sum - whole.loss)).toBeGreaterThan(0.5);
    expect(Math.abs(sum / 2 - whole.loss)).toBeGreaterThan(0.3); // verl divides by the accumulation steps: still wrong
    // The short row's token weighs 1 instead of 1/4: 4× too much gradient.
    expect(local[0]!.grad[0]).toBeCloseTo(-1, 15);
    expect(whole.grad[0]).toBeCloseTo(-0.25, 15);
    // With the whole batch's normaliser the split is exact.
    const normalizer = batchNormalizer(inputs([0, 1]).mask);
    expect(normalizer).toEqual({ tokens: 4, sequences: 2, rows: 2, length: 3 });
    const fixed = policyLoss(inputs([0]), { normalizer }).loss + policyLoss(inputs([1]), { normalizer }).loss;
    expect(fixed).toBeCloseTo(whole.loss, 15);
  });

  it.each(["grpo", "dr_grpo", "seq-mean-token-sum", "seq-mean-token-mean"] as const)(
    "%s: batchNormalizer(fullMask) separates all rows (TRL) from non-empty rows (verl) when a row is empty",
    (aggregation) => {
      const inputs = (rows: number[]) => ({
        logp: rows.map(() => [-1, -1]),
        mask: rows.map(
          (b) =>
            [
              [1, 1],
              [0, 0],
              [1, 0],
            ][b]!,
        ),
        advantages: rows.map((b) => [1, 2, -3][b]!),
      });
      const whole = policyLoss(inputs([0, 1, 2]), { aggregation });
      const normalizer = batchNormalizer(inputs([0, 1, 2]).mask);
      expect(normalizer).toEqual({ tokens: 3, sequences: 2, rows: 3, length: 2 });
      const micro = [[0], [1], [2]].reduce(
        (s, rows) => s + policyLoss(inputs(rows), { aggregation, normalizer }).loss,
        0,
      );
      expect(micro).toBeCloseTo(whole.loss, 14);
      // …and the whole-batch value is the documented one: per-token loss −A, on-policy.
      const expected = {
        grpo: (-1 + 3) / 3,
        dr_grpo: (-2 + 3) / (3 * 2),
        "seq-mean-token-sum": (-2 + 3) / 2,
        "seq-mean-token-mean": (-1 + 3) / 2,
      }[aggregation];
      expect(whole.loss).toBeCloseTo(expected, 15);
    },
  );

  // Regression: batchNormalizer of a batch that selects nothing ({ tokens: 0, sequences: 0, … }) was once
  // rejected as a normaliser; such a batch has the documented loss 0.
  it("an all-masked batch: batchNormalizer(fullMask) is accepted as the micro-batches' normaliser (loss 0)", () => {
    const mask = [
      [0, 0],
      [0, 0],
    ];
    const normalizer = batchNormalizer(mask);
    const r = policyLoss({ logp: [[-1, -1]], mask: [[0, 0]], advantages: [1] }, { normalizer });
    expect(r.loss).toBe(0);
  });
});

describe("(b) permuting rows", () => {
  it.each(AGGREGATIONS)(
    "%s: permutes perTokenLoss, grad, gradEntropy and perTokenKl, leaves loss and metrics unchanged",
    (aggregation) => {
      fc.assert(
        fc.property(
          fc.constantFrom("token", "sequence").chain((level) =>
            fc.record({
              options: optionsArb(aggregation, level as "token" | "sequence"),
              batch: batchArb(6, level === "sequence").chain((batch) =>
                fc.record({
                  batch: fc.constant(batch),
                  order: fc.shuffledSubarray(
                    batch.rows.map((_, b) => b),
                    { minLength: batch.rows.length, maxLength: batch.rows.length },
                  ),
                }),
              ),
            }),
          ),
          ({ options, batch: { batch, order } }) => {
            const T = batch.T;
            const base = policyLoss(inputsOf(batch), options);
            const permuted = policyLoss(
              inputsOf(
                batch,
                order.map((b) => batch.rows[b]!),
              ),
              options,
            );
            expectClose(permuted.loss, base.loss, 1e-13 * scale(base, batch), "loss");
            const gather = (values: Float64Array) =>
              Float64Array.from(order.flatMap((b) => Array.from(values.subarray(b * T, (b + 1) * T))));
            expectArrayClose(permuted.grad, gather(base.grad), "grad");
            expectArrayClose(permuted.perTokenLoss, gather(base.perTokenLoss), "perTokenLoss");
            if (base.gradEntropy) expectArrayClose(permuted.gradEntropy!, gather(base.gradEntropy), "gradEntropy");
            if (base.perTokenKl) expectArrayClose(permuted.perTokenKl!, gather(base.perTokenKl), "perTokenKl");
            for (const key of [
              "tokens",
              "sequences",
              "clipFraction",
              "dualClipFraction",
              "ratioMin",
              "ratioMax",
            ] as const) {
              expect(permuted.metrics[key], key).toBe(base.metrics[key]);
            }
            expectClose(
              permuted.metrics.ratioMean,
              base.metrics.ratioMean,
              1e-13 * (1 + base.metrics.ratioMax),
              "ratioMean",
            );
          },
        ),
        { numRuns: 40 },
      );
    },
  );
});

// ---------------------------------------------------------------------------------------------------------------
// (c) token log-probs

/** Deterministic uniform [0, 1) stream (mulberry32). */
const prng = (seed: number) => rng(seed).next;

/** A plain two-pass log-softmax in float64: max over the whole vocabulary, then Σ exp(z − max). */
function reference(logits: ArrayLike<number>, offset: number, V: number, temperature: number, token: number) {
  let max = -Infinity;
  for (let v = 0; v < V; v++) max = Math.max(max, logits[offset + v]! / temperature);
  let sum = 0;
  for (let v = 0; v < V; v++) sum += Math.exp(logits[offset + v]! / temperature - max);
  const lse = max + Math.log(sum);
  let entropy = 0;
  const softmax = new Float64Array(V);
  for (let v = 0; v < V; v++) {
    const z = logits[offset + v]! / temperature;
    const p = Math.exp(z - lse);
    softmax[v] = p;
    if (p > 0) entropy -= p * (z - lse);
  }
  return { logp: logits[offset + token]! / temperature - lse, lse, entropy, softmax };
}

describe("(c) tokenLogProbs", () => {
  const CHUNK = 4096;

  it("vocabularies of several 4096-entry chunks: equal to a two-pass log-softmax (logp, logsumexp, entropy, gradient)", () => {
    fc.assert(
      fc.property(
        fc.record({
          seed: fc.integer(),
          V: fc.constantFrom(2 * CHUNK + 1, 3 * CHUNK - 7, 3 * CHUNK + 1000),
          // Where the largest logit sits: first, a middle or the last chunk (the running max must rescale).
          peakChunk: fc.integer({ min: 0, max: 3 }),
          peak: real(0, 40),
          offset: real(-300, 300),
          spread: real(0.1, 8),
          negativeInfinityChunk: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
          temperature: fc.constantFrom(1, 0.6, 1.7),
        }),
        (c) => {
          const B = 2;
          const T = 2;
          const random = prng(c.seed);
          const logits = new Float64Array(B * T * c.V);
          const tokens = new Float64Array(B * T);
          for (let i = 0; i < B * T; i++) {
            const offset = i * c.V;
            for (let v = 0; v < c.V; v++) logits[offset + v] = c.offset + c.spread * (2 * random() - 1);
            const chunks = Math.ceil(c.V / CHUNK);
            const peakAt = Math.min(
              c.V - 1,
              Math.min(c.peakChunk, chunks - 1) * CHUNK +
                Math.floor(random() * Math.min(CHUNK, c.V - Math.min(c.peakChunk, chunks - 1) * CHUNK)),
            );
            logits[offset + peakAt] = c.offset + c.peak;
            if (c.negativeInfinityChunk !== undefined && c.negativeInfinityChunk !== Math.floor(peakAt / CHUNK)) {
              // A whole chunk of −Infinity (a masked part of the vocabulary), not holding the peak.
              logits.fill(
                -Infinity,
                offset + c.negativeInfinityChunk * CHUNK,
                offset + Math.min(c.V, (c.negativeInfinityChunk + 1) * CHUNK),
              );
            }
            let token = Math.floor(random() * c.V);
            while (logits[offset + token] === -Infinity) token = (token + 1) % c.V;
            tokens[i] = token;
          }
          const logitsInput = { data: logits, shape: [B, T, c.V] as [number, number, number] };
          const tokensInput = { data: tokens, shape: [B, T] as [number, number] };
          const forward = tokenLogProbs(logitsInput, tokensInput, { temperature: c.temperature, entropy: true });
          const gradLogp = Float64Array.from([0.5, -1, 2, 0.25]);
          const backward = tokenLogProbsBackward(logitsInput, tokensInput, {
            temperature: c.temperature,
            gradLogp: { data: gradLogp, shape: [B, T] },
          });
          for (let i = 0; i < B * T; i++) {
            const ref = reference(logits, i * c.V, c.V, c.temperature, tokens[i]!);
            expectClose(forward.logp[i]!, ref.logp, 1e-12 * (1 + Math.abs(ref.logp)), `logp[${i}]`);
            expectClose(forward.logSumExp[i]!, ref.lse, 1e-12 * (1 + Math.abs(ref.lse)), `logSumExp[${i}]`);
            expectClose(forward.entropy![i]!, ref.entropy, 1e-12 * (1 + Math.abs(ref.lse)), `entropy[${i}]`);
            // ∂L/∂logit_v = g·(1[v = token] − softmax_v)/temperature.
            for (let v = 0; v < c.V; v += 97) {
              const expected = (gradLogp[i]! * ((v === tokens[i] ? 1 : 0) - ref.softmax[v]!)) / c.temperature;
              expectClose(backward.data[i * c.V + v]!, expected, 1e-12, `gradLogits[${i}][${v}]`);
            }
            const t = tokens[i]!;
            const expected = (gradLogp[i]! * (1 - ref.softmax[t]!)) / c.temperature;
            expectClose(backward.data[i * c.V + t]!, expected, 1e-12, `gradLogits[${i}][token]`);
          }
        },
      ),
      { numRuns: 12 },
    );
  });

  it("temperature τ equals dividing the logits by τ first (forward and backward, with entropy)", () => {
    fc.assert(
      fc.property(
        fc.record({ T: fc.integer({ min: 1, max: 3 }), V: fc.integer({ min: 1, max: 9 }) }).chain(({ T, V }) =>
          fc.record({
            T: fc.constant(T),
            V: fc.constant(V),
            logits: reals(T * V, -30, 30),
            tokens: fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: T, maxLength: T }),
            gradLogp: reals(T, -2, 2),
            gradEntropy: reals(T, -2, 2),
            temperature: real(0.05, 20),
          }),
        ),
        ({ T, V, logits, tokens, gradLogp, gradEntropy, temperature }) => {
          const shape: [number, number, number] = [1, T, V];
          const tokensInput = { data: tokens, shape: [1, T] as [number, number] };
          const divided = logits.map((x) => x / temperature);
          const a = tokenLogProbs({ data: logits, shape }, tokensInput, { temperature, entropy: true });
          const b = tokenLogProbs({ data: divided, shape }, tokensInput, { entropy: true });
          for (let i = 0; i < T; i++) {
            expectClose(a.logp[i]!, b.logp[i]!, 1e-12 * (1 + Math.abs(b.logSumExp[i]!)), "logp");
            expectClose(a.logSumExp[i]!, b.logSumExp[i]!, 1e-12 * (1 + Math.abs(b.logSumExp[i]!)), "logSumExp");
            expectClose(a.entropy![i]!, b.entropy![i]!, 1e-12 * (1 + Math.abs(b.logSumExp[i]!)), "entropy");
          }
          const g = {
            gradLogp: { data: gradLogp, shape: [1, T] as [number, number] },
            gradEntropy: { data: gradEntropy, shape: [1, T] as [number, number] },
          };
          const ga = tokenLogProbsBackward({ data: logits, shape }, tokensInput, { ...g, temperature });
          const gb = tokenLogProbsBackward({ data: divided, shape }, tokensInput, g);
          // Chain rule: ∂/∂x = (1/τ)·∂/∂(x/τ).
          for (let k = 0; k < T * V; k++) {
            const expected = gb.data[k]! / temperature;
            expectClose(
              ga.data[k]!,
              expected,
              1e-10 * (1 + Math.abs(expected)) * (1 + Math.max(...divided.map(Math.abs))),
              `gradLogits[${k}]`,
            );
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("float32 logits give Float32Array gradients equal to the float64 gradients rounded to float32; float64 and nested give Float64Array", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 10 }).chain((V) =>
          fc.record({
            V: fc.constant(V),
            logits: reals(2 * V, -10, 10),
            tokens: fc.array(fc.integer({ min: 0, max: V - 1 }), { minLength: 2, maxLength: 2 }),
          }),
        ),
        ({ V, logits, tokens }) => {
          const f32 = Float32Array.from(logits);
          const f64 = Float64Array.from(f32);
          const shape: [number, number, number] = [1, 2, V];
          const options = { gradLogp: [[1.5, -0.75]], gradEntropy: [[0.3, 0.2]], temperature: 0.9 };
          const g32 = tokenLogProbsBackward({ data: f32, shape }, [tokens], options);
          const g64 = tokenLogProbsBackward({ data: f64, shape }, [tokens], options);
          const nested = tokenLogProbsBackward(
            [[Array.from(f64.subarray(0, V)), Array.from(f64.subarray(V))]],
            [tokens],
            options,
          );
          expect(g32.data).toBeInstanceOf(Float32Array);
          expect(g64.data).toBeInstanceOf(Float64Array);
          expect(nested.data).toBeInstanceOf(Float64Array);
          // Every entry is the float64 value rounded once to float32, except the sampled token's, which adds
          // g/τ to an already rounded float32: within 2^-23·(|g| + 2) of the float64 value.
          for (let k = 0; k < 2 * V; k++) {
            const isToken = k % V === tokens[Math.floor(k / V)];
            if (isToken)
              expect(Math.abs(g32.data[k]! - g64.data[k]!)).toBeLessThanOrEqual(
                2 ** -23 * (Math.abs(g64.data[k]!) + 2),
              );
            else expect(g32.data[k]).toBe(Math.fround(g64.data[k]!));
          }
          expect(Array.from(nested.data)).toEqual(Array.from(g64.data));
          // The forward reads float32 logits in float64: the same numbers as their float64 copies.
          const l32 = tokenLogProbs({ data: f32, shape }, [tokens], { entropy: true });
          const l64 = tokenLogProbs({ data: f64, shape }, [tokens], { entropy: true });
          expect(Array.from(l32.logp)).toEqual(Array.from(l64.logp));
          expect(l32.logp).toBeInstanceOf(Float64Array);
        },
      ),
      { numRuns: 50 },
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// (d) caller-owned output buffers

describe("(d) policyLoss into caller-owned buffers", () => {
  it("buffers full of stale values give bit for bit the result of fresh outputs, and are the arrays returned", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("token", "sequence").chain((level) =>
          fc.record({
            options: optionsArb("token-mean", level as "token" | "sequence"),
            batch: batchArb(5, level === "sequence"),
            stale: real(-1e3, 1e3),
          }),
        ),
        ({ options, batch, stale }) => {
          const inputs = inputsOf(batch);
          const fresh = policyLoss(inputs, options);
          const size = batch.rows.length * batch.T;
          const into = {
            grad: new Float64Array(size).fill(stale),
            perTokenLoss: new Float64Array(size).fill(NaN),
            perTokenKl: new Float64Array(size).fill(stale),
            gradEntropy: new Float64Array(size).fill(-stale),
          };
          const reused = policyLoss(inputs, options, into);
          expect(reused.grad).toBe(into.grad);
          expect(reused.perTokenLoss).toBe(into.perTokenLoss);
          if (fresh.perTokenKl) expect(reused.perTokenKl).toBe(into.perTokenKl);
          if (fresh.gradEntropy) expect(reused.gradEntropy).toBe(into.gradEntropy);
          expect(reused.loss).toBe(fresh.loss);
          expect(reused.metrics).toEqual(fresh.metrics);
          for (const key of ["grad", "perTokenLoss", "perTokenKl", "gradEntropy"] as const) {
            expect(Array.from(reused[key] ?? []), key).toEqual(Array.from(fresh[key] ?? []));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});
