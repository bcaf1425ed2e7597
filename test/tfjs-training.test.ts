/**
 * Training with TensorFlow.js (tfjs "cpu" backend, float32): policyLossTf and tokenLogProbsTf as differentiable ops
 * with analytic gradients, and trainStep.
 *
 * - The gradient of a tiny model's variables through tokenLogProbsTf + policyLossTf equals plain tfjs autodiff
 *   through tf.logSoftmax and a hand-written clipped loss (verl's vanilla loss, written out with tf.maximum,
 *   tf.minimum and tf.clipByValue) on the same inputs, to float32 precision.
 * - With an entropy bonus and a KL term, ∂loss/∂logits from tfjs equals the reference backend's
 *   tokenLogProbsBackward(…, { gradLogp: result.grad, gradEntropy: result.gradEntropy }) of its policyLoss.
 * - trainStep: reports the reference policyLoss's loss and metrics on the same log-probs, leaks no tensors (also
 *   when it throws), lowers the loss of a toy problem, honours `variables` and `maxGradNorm`, and rejects bad batches
 *   with a ValidationError naming the field.
 *
 * Tolerances: float32 ops in different orders differ by a few ulps of the largest term; gradients are compared as
 * max |a − b| ≤ 2e-5 · max |b| (+ 1e-9), losses to 1e-5 relative. Inputs keep every log-ratio at least 1e-2 away from
 * a kink of the loss (clip bounds, dual clip, clamp), where float32 rounding could pick the other branch.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { rng } from "./helpers/rng.js";
import {
  GrpoRocError,
  lossPresets,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  ValidationError,
  type PolicyLossOptionsInput,
} from "../src/index.js";
import {
  packTrainBatch,
  policyLossTensors,
  policyLossTf,
  readPolicyLossMetrics,
  tokenLogProbsTf,
  trainStep,
  type PolicyLossCounts,
  type TrainBatch,
} from "../src/tfjs/index.js";
import { onTfjsCpu } from "./helpers/tfjs-reference.js";

onTfjsCpu();

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, relative = 2e-5, what = "values"): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  let maxAbs = 0;
  let maxDiff = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    maxAbs = Math.max(maxAbs, Math.abs(expected[i]!));
    const diff = Math.abs(actual[i]! - expected[i]!);
    if (!(diff <= maxDiff)) {
      maxDiff = diff;
      at = i;
    }
  }
  expect(maxAbs, `${what}: all zero, the comparison would prove nothing`).toBeGreaterThan(0);
  expect(
    maxDiff,
    `${what}: max |diff| ${maxDiff} at ${at} (${actual[at]} vs ${expected[at]}), max |expected| ${maxAbs}`,
  ).toBeLessThanOrEqual(relative * maxAbs + 1e-9);
}

/** Keeps log-ratios at least 1e-2 from the loss's kinks (ratio 1 − 0.2, 1 + 0.28, dual clip 3, clamp ±20). */
function awayFromKinks(logRatio: number): number {
  const kinks = [Math.log(0.8), Math.log(1.28), Math.log(3), -20, 20];
  for (const kink of kinks) if (Math.abs(logRatio - kink) < 1e-2) return kink + (logRatio < kink ? -2e-2 : 2e-2);
  return logRatio;
}

/**
 * Old log-probs around `logp`: mostly near, some clipped either side, and with `extreme` a few beyond the ±20 clamp
 * (only for losses that clamp: TRL's importance-corrected KL multiplies by an unclamped ratio of e^20 and more).
 */
function oldLogpNear(logp: ArrayLike<number>, r: ReturnType<typeof rng>, extreme = true): Float32Array {
  return Float32Array.from(logp, (lp) => {
    const u = r.next();
    const logRatio =
      extreme && u < 0.1
        ? (r.next() < 0.5 ? -1 : 1) * (20.5 + 3 * r.next())
        : u < 0.4
          ? 1.2 * r.normal()
          : 0.15 * r.normal();
    return lp - awayFromKinks(logRatio);
  });
}

interface TinyModel {
  readonly vocab: number;
  readonly variables: tf.Variable[];
  readonly model: (ids: tf.Tensor2D) => tf.Tensor3D;
  dispose(): void;
}

/** Embedding [E, D] → dense D×V + bias: logits [B, L, V]. `embeddings` may exceed V (a padded embedding table). */
function tinyModel(vocab: number, dim: number, seed: number, embeddings = vocab): TinyModel {
  const E = tf.variable(tf.randomNormal([embeddings, dim], 0, 1, "float32", seed));
  const W = tf.variable(tf.randomNormal([dim, vocab], 0, 0.7, "float32", seed + 1));
  const bias = tf.variable(tf.randomNormal([vocab], 0, 0.3, "float32", seed + 2));
  return {
    vocab,
    variables: [E, W, bias],
    model: (ids) =>
      tf.tidy(() => {
        const [rows, cols] = ids.shape;
        const hidden = tf.reshape(tf.gather(E, ids), [rows * cols, dim]) as tf.Tensor2D;
        return tf.reshape(tf.add(tf.matMul(hidden, W), bias), [rows, cols, vocab]) as tf.Tensor3D;
      }),
    dispose: () => tf.dispose([E, W, bias]),
  };
}

async function rejectsWith(promise: Promise<unknown>, path: string): Promise<ValidationError> {
  const error = await promise.then(
    () => expect.fail(`expected a ValidationError at ${path}, but the call resolved`),
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ValidationError);
  expect(error).toBeInstanceOf(GrpoRocError);
  const validation = error as ValidationError;
  expect(validation.issues.map((issue) => issue.path)).toContain(path);
  expect(validation.message).toContain(`${path}: `);
  return validation;
}

function disposeCounts(counts: PolicyLossCounts | undefined): void {
  if (counts !== undefined) tf.dispose(Object.values(counts).filter((c): c is tf.Scalar => c !== undefined));
}

// ── (a) end to end against tfjs autodiff ─────────────────────────────────────────────────────────────────────

/** verl's compute_policy_loss_vanilla + token-mean, written with differentiable tfjs ops. */
function handWrittenClipLoss(
  logp: tf.Tensor2D,
  oldLogp: tf.Tensor2D,
  advantages: tf.Tensor2D,
  mask: tf.Tensor2D,
  o: { clipLow: number; clipHigh: number; dualClip: number | null; clamp: number | null },
): tf.Scalar {
  const rawLogRatio = tf.sub(logp, oldLogp);
  const logRatio = o.clamp === null ? rawLogRatio : tf.clipByValue(rawLogRatio, -o.clamp, o.clamp);
  const ratio = tf.exp(logRatio);
  const negA = tf.neg(advantages);
  const unclipped = tf.mul(negA, ratio);
  const clipped = tf.mul(negA, tf.clipByValue(ratio, 1 - o.clipLow, 1 + o.clipHigh));
  // tf.maximum sends the gradient to its first argument on ties, as the library's analytic form does.
  let perToken = tf.maximum(unclipped, clipped);
  if (o.dualClip !== null)
    perToken = tf.where(tf.less(advantages, 0), tf.minimum(perToken, tf.mul(negA, o.dualClip)), perToken);
  // where, not multiply: masked positions may hold anything (here: clamp-range values that would still be finite).
  const masked = tf.where(tf.greater(mask, 0), perToken, tf.zerosLike(perToken));
  return tf.div(tf.sum(masked), tf.sum(mask)) as tf.Scalar;
}

describe("(a) tiny model: tokenLogProbsTf + policyLossTf gradients = tfjs autodiff through logSoftmax and a hand-written loss", () => {
  const cases = [
    {
      name: "reference preset (clip 0.2/0.28, dual clip 3, clamp ±20), temperature 1",
      options: lossPresets.reference,
      temperature: 1,
    },
    {
      name: "paper preset (clip 0.2/0.28, no dual clip, no clamp), temperature 0.7",
      options: lossPresets.paper,
      temperature: 0.7,
    },
  ] as const;
  for (const c of cases) {
    it(c.name, () => {
      const [B, L, V, D] = [3, 9, 13, 6];
      const tiny = tinyModel(V, D, 11);
      const r = rng(7);
      const ids = tf.tensor2d(
        Int32Array.from({ length: B * L }, () => r.int(V)),
        [B, L],
        "int32",
      );
      const targets = tf.tensor2d(
        Int32Array.from({ length: B * L }, () => r.int(V)),
        [B, L],
        "int32",
      );
      // Prompt columns and a tool-output span are masked out.
      const maskData = Float32Array.from({ length: B * L }, (_, i) =>
        i % L < 2 || (i % L >= 5 && i % L < 7 && i < L) ? 0 : 1,
      );
      const mask = tf.tensor2d(maskData, [B, L]);
      const perRow = Float32Array.from([1, -1, 0.5]);
      const advantages1d = tf.tensor1d(perRow);
      const advantages2d = tf.tile(tf.reshape(advantages1d, [B, 1]), [1, L]) as tf.Tensor2D;
      const initialLogp = tf.tidy(() => tokenLogProbsTf(tiny.model(ids), targets, { temperature: c.temperature }));
      const oldLogp = tf.tensor2d(oldLogpNear(initialLogp.dataSync(), r), [B, L]);
      const before = tf.memory().numTensors;

      const library = tf.variableGrads(() => {
        const logp = tokenLogProbsTf(tiny.model(ids), targets, { temperature: c.temperature }) as tf.Tensor2D;
        return policyLossTf({ logp, oldLogp, advantages: advantages1d, mask }, c.options);
      }, tiny.variables);
      const autodiff = tf.variableGrads(() => {
        const logits = tf.div(tiny.model(ids), c.temperature);
        const logp = tf.sum(tf.mul(tf.logSoftmax(logits), tf.oneHot(targets, V)), -1) as tf.Tensor2D;
        return handWrittenClipLoss(logp, oldLogp, advantages2d, mask, {
          clipLow: c.options.clipLow,
          clipHigh: c.options.clipHigh,
          dualClip: c.options.dualClip,
          clamp: c.options.logRatioClamp === null ? null : c.options.logRatioClamp[1],
        });
      }, tiny.variables);

      expect(library.value.dataSync()[0]).toBeCloseTo(autodiff.value.dataSync()[0]!, 5);
      for (const variable of tiny.variables) {
        expectClose(
          library.grads[variable.name]!.dataSync(),
          autodiff.grads[variable.name]!.dataSync(),
          2e-5,
          `∂loss/∂${variable.name}`,
        );
      }
      tf.dispose([library.value, autodiff.value, ...Object.values(library.grads), ...Object.values(autodiff.grads)]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([ids, targets, mask, advantages1d, advantages2d, initialLogp, oldLogp]);
      tiny.dispose();
    });
  }
});

// ── (b) entropy bonus and KL against the reference backend ──────────────────────────────────────────────────

describe("(b) ∂loss/∂logits with entropy bonus and KL = reference tokenLogProbsBackward of the reference policyLoss", () => {
  const cases: { name: string; options: PolicyLossOptionsInput; temperature: number; perTokenAdvantages?: boolean }[] =
    [
      {
        name: "reference preset + k3 KL (verl clamps) + entropy bonus",
        options: { ...lossPresets.reference, kl: { kind: "k3", coef: 0.05 }, entropyCoef: 0.01 },
        temperature: 1,
      },
      {
        name: "TRL dapo + importance-corrected k1 KL + bnpo entropy bonus, temperature 0.8",
        options: {
          ...lossPresets.trl,
          kl: { kind: "k1", coef: 0.1, importanceCorrected: true },
          entropyCoef: 0.02,
          entropyAggregation: "bnpo",
        },
        temperature: 0.8,
      },
      {
        name: "GSPO sequence ratio, seq-mean-token-mean + k2 KL + entropy bonus, per-token advantages",
        options: {
          ratioLevel: "sequence",
          clipLow: 3e-4,
          clipHigh: 4e-4,
          aggregation: "seq-mean-token-mean",
          kl: { kind: "k2", coef: 0.2 },
          entropyCoef: 0.01,
        },
        temperature: 1,
        perTokenAdvantages: true,
      },
      {
        name: "CISPO + abs KL + entropy bonus, grpo aggregation",
        options: { objective: "cispo", aggregation: "grpo", kl: { kind: "abs", coef: 0.1 }, entropyCoef: 0.03 },
        temperature: 1.3,
      },
    ];
  for (const c of cases) {
    it(c.name, () => {
      const [B, T, V] = [4, 7, 11];
      const r = rng(31);
      const logitsData = Float32Array.from({ length: B * T * V }, () => 2 * r.normal());
      const tokensData = Int32Array.from({ length: B * T }, () => r.int(V));
      const maskData = Float64Array.from({ length: B * T }, (_, i) =>
        i % T === 0 || (i >= T && i < T + 3) || i % T === T - 1 - Math.floor(i / T) ? 0 : 1,
      );
      const shape = [B, T] as const;
      const reference = tokenLogProbs(
        { data: logitsData, shape: [B, T, V] },
        { data: tokensData, shape },
        { entropy: true, temperature: c.temperature, mask: { data: maskData, shape } },
      );
      const clamped = "logRatioClamp" in c.options && c.options.logRatioClamp != null;
      const oldLogp = oldLogpNear(reference.logp, r, clamped);
      const refLogp = Float32Array.from(reference.logp, (lp) => lp + 0.3 * r.normal());
      const advantages = c.perTokenAdvantages
        ? Float32Array.from({ length: B * T }, () => r.normal())
        : Float32Array.from([1.2, -0.7, 0.4, -1.5]);
      const expected = policyLoss(
        {
          logp: { data: reference.logp, shape },
          entropy: { data: reference.entropy!, shape },
          oldLogp: { data: oldLogp, shape },
          refLogp: { data: refLogp, shape },
          advantages: c.perTokenAdvantages ? { data: advantages, shape } : advantages,
          mask: { data: maskData, shape },
        },
        c.options,
      );
      const expectedGrad = tokenLogProbsBackward(
        { data: logitsData, shape: [B, T, V] },
        { data: tokensData, shape },
        {
          gradLogp: { data: expected.grad, shape },
          gradEntropy: { data: expected.gradEntropy!, shape },
          temperature: c.temperature,
          mask: { data: maskData, shape },
        },
      );

      const logits = tf.tensor3d(logitsData, [B, T, V]);
      const tokens = tf.tensor2d(tokensData, [B, T], "int32");
      const constants = {
        oldLogp: tf.tensor2d(oldLogp, [B, T]),
        refLogp: tf.tensor2d(refLogp, [B, T]),
        advantages: c.perTokenAdvantages ? tf.tensor2d(advantages, [B, T]) : tf.tensor1d(advantages),
        mask: tf.tensor2d(Float32Array.from(maskData), [B, T]),
      };
      const before = tf.memory().numTensors;
      let counts: PolicyLossCounts | undefined;
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => {
        const [logp, entropy] = tf.unstack(
          tokenLogProbsTf(x as tf.Tensor3D, tokens, { entropy: true, temperature: c.temperature }),
        ) as [tf.Tensor2D, tf.Tensor2D];
        return policyLossTf({ ...constants, logp, entropy }, c.options, { onCounts: (kept) => (counts = kept) });
      })(logits);
      expect(Math.abs(value.dataSync()[0]! - expected.loss)).toBeLessThanOrEqual(1e-5 * Math.abs(expected.loss) + 1e-7);
      expectClose(grad.dataSync(), expectedGrad.data, 2e-5, "∂loss/∂logits");
      expect(counts).toBeDefined();
      const { metrics } = (() => {
        // Read synchronously for the comparison (readPolicyLossMetrics is async); dispose as it would.
        const k = counts!;
        const tokensCount = k.tokens.dataSync()[0]!;
        const m = {
          tokens: tokensCount,
          clipFraction: k.clipped.dataSync()[0]! / tokensCount,
          kl: k.klSum!.dataSync()[0]! / tokensCount,
          entropy: k.entropySum!.dataSync()[0]! / tokensCount,
        };
        disposeCounts(k);
        return { metrics: m };
      })();
      expect(metrics.tokens).toBe(expected.metrics.tokens);
      expect(metrics.clipFraction).toBeCloseTo(expected.metrics.clipFraction, 6);
      expect(metrics.kl).toBeCloseTo(expected.metrics.kl!, 5);
      expect(metrics.entropy).toBeCloseTo(expected.metrics.entropy!, 5);
      tf.dispose([value, grad]);
      expect(tf.memory().numTensors).toBe(before);
      tf.dispose([logits, tokens, ...Object.values(constants)]);
    });
  }
});

describe("no leaks outside a gradient scope", () => {
  it("tokenLogProbsTf called outside tf.tidy leaves only its output (it used to leave a reshaped copy of the tokens)", () => {
    const logits = tf.randomNormal([2, 3, 5], 0, 1, "float32", 3) as tf.Tensor3D;
    const tokens = tf.tensor2d(
      [
        [0, 1, 2],
        [3, 4, 0],
      ],
      [2, 3],
      "int32",
    );
    for (const entropy of [false, true]) {
      const before = tf.memory().numTensors;
      const out = tokenLogProbsTf(logits, tokens, { entropy });
      expect(tf.memory().numTensors).toBe(before + 1);
      out.dispose();
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([logits, tokens]);
  });

  it("policyLossTf called outside tf.tidy leaves only the loss", () => {
    const logp = tf.fill([2, 3], -1) as tf.Tensor2D;
    const advantages = tf.tensor1d([1, -1]);
    const before = tf.memory().numTensors;
    const loss = policyLossTf({ logp, advantages }, { entropyCoef: 0 });
    expect(tf.memory().numTensors).toBe(before + 1);
    loss.dispose();
    tf.dispose([logp, advantages]);
  });
});

describe("policyLossTf", () => {
  function inputs(B = 3, T = 5) {
    const r = rng(5);
    const logp = Float32Array.from({ length: B * T }, () => -Math.abs(r.normal()) - 0.1);
    return {
      shape: [B, T] as [number, number],
      logp,
      oldLogp: oldLogpNear(logp, r),
      entropy: Float32Array.from({ length: B * T }, () => 1 + r.next()),
      advantages: Float32Array.from({ length: B }, () => r.normal()),
      mask: Float32Array.from({ length: B * T }, (_, i) => (i % T === 0 ? 0 : 1)),
    };
  }

  it("is the loss of policyLossTensors; its gradients are dy·grad and dy·gradEntropy; other inputs get none", () => {
    const x = inputs();
    const options = { ...lossPresets.reference, entropyCoef: 0.05 };
    const t = {
      logp: tf.tensor2d(x.logp, x.shape),
      entropy: tf.tensor2d(x.entropy, x.shape),
      oldLogp: tf.tensor2d(x.oldLogp, x.shape),
      advantages: tf.tensor1d(x.advantages),
      mask: tf.tensor2d(x.mask, x.shape),
    };
    const before = tf.memory().numTensors;
    const expected = tf.tidy(() => {
      const result = policyLossTensors(t, options);
      return [result.loss, result.grad, result.gradEntropy!];
    });
    // dy = 2.5.
    const grads = tf.grads((logp: tf.Tensor, entropy: tf.Tensor) =>
      tf.mul(policyLossTf({ ...t, logp: logp as tf.Tensor2D, entropy: entropy as tf.Tensor2D }, options), 2.5),
    )([t.logp, t.entropy]);
    const value = tf.tidy(() => policyLossTf(t, options));
    expect(value.dataSync()[0]).toBe(expected[0]!.dataSync()[0]);
    expectClose(
      grads[0]!.dataSync(),
      Float32Array.from(expected[1]!.dataSync(), (g) => 2.5 * g),
      1e-6,
      "∂/∂logp",
    );
    expectClose(
      grads[1]!.dataSync(),
      Float32Array.from(expected[2]!.dataSync(), (g) => 2.5 * g),
      1e-6,
      "∂/∂entropy",
    );
    tf.dispose([...expected, ...grads, value]);
    expect(tf.memory().numTensors).toBe(before);
    // oldLogp is a constant of the op: tfjs finds no path from it to the loss.
    expect(() =>
      tf.grad((oldLogp: tf.Tensor) => policyLossTf({ ...t, oldLogp: oldLogp as tf.Tensor2D }, options))(t.oldLogp),
    ).toThrow(/Cannot compute gradient/);
    tf.dispose(Object.values(t));
  });

  it("without an entropy bonus the entropy gets a zero gradient (it feeds only the metric)", () => {
    const x = inputs();
    const t = {
      logp: tf.tensor2d(x.logp, x.shape),
      entropy: tf.tensor2d(x.entropy, x.shape),
      advantages: tf.tensor1d(x.advantages),
      mask: tf.tensor2d(x.mask, x.shape),
    };
    const [, gradEntropy] = tf.grads((logp: tf.Tensor, entropy: tf.Tensor) =>
      policyLossTf({ ...t, logp: logp as tf.Tensor2D, entropy: entropy as tf.Tensor2D }, lossPresets.paper),
    )([t.logp, t.entropy]);
    expect(Array.from(gradEntropy!.dataSync()).every((g) => g === 0)).toBe(true);
    tf.dispose([gradEntropy!, ...Object.values(t)]);
  });

  it("works under optimizer.minimize and reads its metrics with readPolicyLossMetrics, leaking nothing", async () => {
    const x = inputs();
    const logp = tf.variable(tf.tensor2d(x.logp, x.shape));
    const constants = {
      oldLogp: tf.tensor2d(x.oldLogp, x.shape),
      advantages: tf.tensor1d(x.advantages),
      mask: tf.tensor2d(x.mask, x.shape),
    };
    const optimizer = tf.train.sgd(0.1);
    const before = tf.memory().numTensors;
    let counts: PolicyLossCounts | undefined;
    const cost = optimizer.minimize(
      () => policyLossTf({ ...constants, logp }, lossPresets.reference, { onCounts: (c) => (counts = c) }),
      true,
      [logp],
    );
    const { metrics } = await readPolicyLossMetrics(counts!);
    const expected = policyLoss(
      {
        logp: { data: x.logp, shape: x.shape },
        oldLogp: { data: x.oldLogp, shape: x.shape },
        advantages: x.advantages,
        mask: { data: x.mask, shape: x.shape },
      },
      lossPresets.reference,
    );
    expect(cost!.dataSync()[0]).toBeCloseTo(expected.loss, 5);
    expect(metrics.tokens).toBe(expected.metrics.tokens);
    expect(metrics.clipFraction).toBeCloseTo(expected.metrics.clipFraction, 6);
    expect(metrics.dualClipFraction).toBeCloseTo(expected.metrics.dualClipFraction, 6);
    expect(metrics.approxKl).toBeCloseTo(expected.metrics.approxKl, 4);
    expect(metrics.ratioMax / expected.metrics.ratioMax).toBeCloseTo(1, 5);
    // SGD moved logp by −0.1·grad.
    const moved = Float64Array.from(logp.dataSync(), (v, i) => (x.logp[i]! - v) / 0.1);
    expectClose(moved, expected.grad, 1e-3, "SGD step / learning rate");
    cost!.dispose();
    expect(tf.memory().numTensors).toBe(before);
    optimizer.dispose();
    tf.dispose([logp, ...Object.values(constants)]);
  });
});

// ── trainStep ────────────────────────────────────────────────────────────────────────────────────────────────

/** B rollouts of length L: 3 prompt tokens, then response tokens, one tool-output span in row 0, right padding. */
function toyBatch(V: number, seed: number, B = 4, L = 10): TrainBatch {
  const r = rng(seed);
  const tokens = new Int32Array(B * L);
  const mask = new Uint8Array(B * L);
  for (let b = 0; b < B; b++) {
    const length = L - (b % 3);
    for (let t = 0; t < L; t++) {
      const i = b * L + t;
      tokens[i] = t < length ? r.int(V) : 0;
      mask[i] = t >= 3 && t < length && !(b === 0 && (t === 5 || t === 6)) ? 1 : 0;
    }
  }
  return {
    shape: [B, L],
    tokens,
    mask,
    advantages: Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -1)),
  };
}

/** Token-aligned log-probs of `batch` under `model`, by the reference backend: logp[b, t] from logits[b, t − 1]. */
function referenceLogp(model: TinyModel, batch: TrainBatch, temperature = 1): Float64Array {
  const [B, L] = batch.shape;
  const logits = tf.tidy(
    () => model.model(tf.tensor2d(Int32Array.from(batch.tokens), [B, L], "int32")).dataSync() as Float32Array,
  );
  const V = model.vocab;
  const out = new Float64Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let t = 1; t < L; t++) {
      const i = b * L + t;
      if (batch.mask[i] !== 1) continue;
      const row = logits.subarray((i - 1) * V, i * V);
      const lp = tokenLogProbs({ data: row, shape: [1, 1, V] }, [[batch.tokens[i]!]], { temperature });
      out[i] = lp.logp[0]!;
    }
  }
  return out;
}

describe("trainStep", () => {
  it("reports the reference policyLoss's loss and metrics on the same (token-aligned) log-probs", async () => {
    const tiny = tinyModel(9, 4, 21);
    const batch0 = toyBatch(9, 3);
    const r = rng(9);
    const logp = referenceLogp(tiny, batch0, 0.9);
    const batch: TrainBatch = {
      ...batch0,
      oldLogp: Float64Array.from(oldLogpNear(logp, r), (v, i) => (batch0.mask[i] === 1 ? v : NaN)),
    };
    const options = { ...lossPresets.reference, entropyCoef: 0 };
    const expected = policyLoss(
      {
        logp: { data: logp, shape: batch.shape },
        oldLogp: { data: batch.oldLogp!, shape: batch.shape },
        advantages: batch.advantages,
        mask: { data: batch.mask, shape: batch.shape },
      },
      options,
    );
    const result = await trainStep({
      model: tiny.model,
      batch,
      optimizer: tf.train.sgd(0),
      loss: options,
      temperature: 0.9,
    });
    expect(result.loss).toBeCloseTo(expected.loss, 5);
    expect(result.applied).toBe(true);
    expect(result.gradNorm).toBeGreaterThan(0);
    expect(result.metrics.tokens).toBe(expected.metrics.tokens);
    expect(result.metrics.sequences).toBe(expected.metrics.sequences);
    for (const key of ["clipFraction", "clipFractionLow", "clipFractionHigh", "dualClipFraction"] as const)
      expect(result.metrics[key]).toBeCloseTo(expected.metrics[key], 6);
    expect(result.metrics.approxKl).toBeCloseTo(expected.metrics.approxKl, 4);
    expect(result.metrics.ratioMean / expected.metrics.ratioMean).toBeCloseTo(1, 4);
    expect(result.metrics.kl).toBeUndefined();
    expect(result.metrics.entropy).toBeUndefined();
    tiny.dispose();
  });

  it("(c) leaks no tensors across several steps (SGD from the first step; Adam after it creates its slots), with entropy and KL", async () => {
    const tiny = tinyModel(12, 5, 41);
    const batch0 = toyBatch(12, 4);
    const logp = referenceLogp(tiny, batch0);
    const batch: TrainBatch = { ...batch0, oldLogp: logp, refLogp: Float64Array.from(logp, (v) => v - 0.05) };
    const loss = { ...lossPresets.reference, kl: { kind: "low_var_kl", coef: 0.01 }, entropyCoef: 0.01 } as const;
    const sgd = tf.train.sgd(0.05);
    let before = tf.memory().numTensors;
    for (let step = 0; step < 3; step++) {
      const result = await trainStep({ model: tiny.model, batch, optimizer: sgd, loss, maxGradNorm: 0.5 });
      expect(result.metrics.kl).toBeGreaterThanOrEqual(0);
      expect(result.metrics.entropy).toBeGreaterThan(0);
      expect(tf.memory().numTensors).toBe(before);
    }
    const adam = tf.train.adam(0.01);
    await trainStep({ model: tiny.model, batch, optimizer: adam, loss });
    before = tf.memory().numTensors;
    const bytes = tf.memory().numBytes;
    for (let step = 0; step < 3; step++)
      await trainStep({ model: tiny.model, batch, optimizer: adam, loss, temperature: 0.7, entropy: true });
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.memory().numBytes).toBe(bytes);
    sgd.dispose();
    adam.dispose();
    tiny.dispose();
  });

  it("(d) a few updates on a toy problem lower the loss and move log-probs with the advantages' sign", async () => {
    const tiny = tinyModel(8, 6, 51);
    const batch0 = toyBatch(8, 5, 6, 10);
    const initial = referenceLogp(tiny, batch0);
    const batch: TrainBatch = { ...batch0, oldLogp: initial, advantages: Float64Array.from([1, -1, 1, -1, 1, -1]) };
    // Small steps: with larger ones Adam runs the ratios into the clip bounds, where the loss stops moving.
    const optimizer = tf.train.adam(0.02);
    const losses: number[] = [];
    for (let step = 0; step < 6; step++)
      losses.push((await trainStep({ model: tiny.model, batch, optimizer, loss: lossPresets.paper })).loss);
    for (let step = 1; step < losses.length; step++) expect(losses[step]).toBeLessThan(losses[step - 1]!);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! - 0.05);
    const after = referenceLogp(tiny, batch);
    const [B, L] = batch.shape;
    const meanChange = (sign: number) => {
      let sum = 0;
      let count = 0;
      for (let i = 0; i < B * L; i++) {
        if (batch.mask[i] === 1 && Math.sign(batch.advantages[Math.floor(i / L)]!) === sign) {
          sum += after[i]! - initial[i]!;
          count++;
        }
      }
      return sum / count;
    };
    expect(meanChange(1)).toBeGreaterThan(0.05);
    expect(meanChange(-1)).toBeLessThan(-0.05);
    optimizer.dispose();
    tiny.dispose();
  });

  it("trains only `variables` when given, and clips the global gradient norm to maxGradNorm", async () => {
    const tiny = tinyModel(7, 3, 61);
    const batch = toyBatch(7, 6);
    const [E, W, bias] = tiny.variables as [tf.Variable, tf.Variable, tf.Variable];
    const snapshot = () => tiny.variables.map((v) => Float64Array.from(v.dataSync()));
    const start = snapshot();
    // SGD with learning rate 1: the update is minus the (clipped) gradient.
    const result = await trainStep({
      model: tiny.model,
      batch,
      optimizer: tf.train.sgd(1),
      variables: [E, W],
      maxGradNorm: 1e-3,
    });
    const end = snapshot();
    expect(result.gradNorm).toBeGreaterThan(1e-2);
    let squared = 0;
    for (const v of [0, 1]) for (let i = 0; i < start[v]!.length; i++) squared += (end[v]![i]! - start[v]![i]!) ** 2;
    expect(Math.sqrt(squared) / 1e-3).toBeCloseTo(1, 3);
    expect(end[2]).toEqual(start[2]);
    expect(bias.trainable).toBe(true);
    tiny.dispose();
  });

  it("packTrainBatch pads rollouts of different lengths, keeping rows and advantages aligned", () => {
    const batch = packTrainBatch(
      [
        { tokens: [5, 6, 7, 8], mask: [0, 0, 1, 1], oldLogp: [0, 0, -1, -2] },
        { tokens: [5, 9, 3], mask: [0, 1, 1], oldLogp: [0, -3, -4] },
      ],
      Float64Array.from([0.5, -0.5]),
      { padId: 2 },
    );
    expect(batch.shape).toEqual([2, 4]);
    expect(Array.from(batch.tokens)).toEqual([5, 6, 7, 8, 5, 9, 3, 2]);
    expect(Array.from(batch.mask)).toEqual([0, 0, 1, 1, 0, 1, 1, 0]);
    expect(Array.from(batch.oldLogp!)).toEqual([0, 0, -1, -2, 0, -3, -4, 0]);
    expect(Array.from(batch.advantages)).toEqual([0.5, -0.5]);
    expect(batch.refLogp).toBeUndefined();
  });
});

// ── (e) bad input ────────────────────────────────────────────────────────────────────────────────────────────

describe("(e) trainStep rejects bad input with a ValidationError naming the field, and leaks nothing", () => {
  const V = 6;
  let tiny: TinyModel;
  let optimizer: tf.Optimizer;
  beforeAll(() => {
    tiny = tinyModel(V, 3, 71, V + 4);
    optimizer = tf.train.sgd(0.1);
  });
  afterAll(() => {
    tiny.dispose();
    optimizer.dispose();
  });
  const good = (): TrainBatch & {
    tokens: Int32Array;
    mask: Uint8Array;
    oldLogp: Float64Array;
    advantages: Float64Array;
  } => {
    const b = toyBatch(V, 8, 3, 6);
    return {
      ...b,
      tokens: Int32Array.from(b.tokens),
      mask: Uint8Array.from(b.mask),
      oldLogp: new Float64Array(18).fill(-1.5),
      advantages: Float64Array.from(b.advantages),
    };
  };
  const step = (batch: TrainBatch, extra: Record<string, unknown> = {}) =>
    trainStep({ model: tiny.model, batch, optimizer, ...extra });

  it("accepts the good batch, with anything at masked positions", async () => {
    const batch = good();
    batch.oldLogp[0] = NaN;
    batch.oldLogp[1] = -Infinity;
    await expect(step(batch)).resolves.toMatchObject({ applied: true });
  });

  const cases: [string, (b: ReturnType<typeof good>) => TrainBatch, string, Record<string, unknown>?][] = [
    ["shape with L < 2", (b) => ({ ...b, shape: [18, 1] }), "batch.shape[1]"],
    ["tokens of the wrong length", (b) => ({ ...b, tokens: b.tokens.subarray(1) }), "batch.tokens"],
    ["a negative token id", (b) => (b.tokens.set([-1], 8), b), "batch.tokens[1][2]"],
    [
      "a fractional token id",
      (b) =>
        ((b as unknown as { tokens: number[] }).tokens = Array.from(b.tokens, (t, i) => (i === 13 ? 1.5 : t))) && b,
      "batch.tokens[2][1]",
    ],
    [
      "a token id over options.vocabSize (checked before the model runs)",
      (b) => (b.tokens.set([V], 9), b),
      "batch.tokens[1][3]",
      { vocabSize: V },
    ],
    [
      "a token id over the model's vocabulary (checked after the forward pass)",
      (b) => (b.tokens.set([V + 2], 10), b),
      "batch.tokens[1][4]",
    ],
    ["a mask entry of 2", (b) => (b.mask.set([2], 4), b), "batch.mask[0][4]"],
    ["a trained token in column 0", (b) => (b.mask.set([1], 6), b), "batch.mask[1][0]"],
    ["a NaN old log-prob where the mask is 1", (b) => (b.oldLogp.set([NaN], 3), b), "batch.oldLogp[0][3]"],
    ["advantages of the wrong length", (b) => ({ ...b, advantages: b.advantages.subarray(1) }), "batch.advantages"],
    ["an infinite advantage", (b) => (b.advantages.set([Infinity], 1), b), "batch.advantages[1]"],
    ["a KL term without refLogp", (b) => b, "batch.refLogp", { loss: { kl: { kind: "k3", coef: 0.1 } } }],
    ["a bad loss option", (b) => b, "options.loss.clipLow", { loss: { clipLow: -1 } }],
    ["a temperature of 0", (b) => b, "options.temperature", { temperature: 0 }],
    ["something that is not an optimizer", (b) => b, "options.optimizer", { optimizer: { minimize: () => 0 } }],
    [
      "a model whose logits have the wrong shape",
      (b) => b,
      "model",
      { model: (ids: tf.Tensor2D) => tf.tidy(() => tf.slice(tiny.model(ids), [0, 0, 0], [3, 5, V])) },
    ],
  ];
  for (const [name, mutate, path, extra] of cases) {
    it(name, async () => {
      const before = tf.memory().numTensors;
      await rejectsWith(step(mutate(good()), extra), path);
      expect(tf.memory().numTensors).toBe(before);
    });
  }

  it("packTrainBatch names the rollout and field", () => {
    expect(() =>
      packTrainBatch(
        [
          { tokens: [1, 2], mask: [0, 1] },
          { tokens: [1, 2, 3], mask: [0, 1] },
        ],
        [1, -1],
      ),
    ).toThrow(/rollouts\[1\]\.mask/);
    expect(() =>
      packTrainBatch(
        [
          { tokens: [1, 2], mask: [0, 1], oldLogp: [0, -1] },
          { tokens: [1, 2], mask: [0, 1] },
        ],
        [1, -1],
      ),
    ).toThrow(/rollouts\[1\]\.oldLogp/);
    expect(() => packTrainBatch([{ tokens: [1, 2], mask: [0, 1] }], [1, -1])).toThrow(ValidationError);
    expect(() => packTrainBatch([{ tokens: [1, 2.5], mask: [0, 1] }], [1])).toThrow(/rollouts\[0\]\.tokens\[1\]/);
    expect(() => packTrainBatch([{ tokens: [1, 2], mask: [0, 0.5] }], [1])).toThrow(/rollouts\[0\]\.mask\[1\]/);
  });
});
