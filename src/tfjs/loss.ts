import * as tf from "@tensorflow/tfjs";
import { invalid } from "../errors.js";
import {
  resolvePolicyLossOptions,
  type Aggregation,
  type Normalizer,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
} from "../loss/index.js";

/** policyLoss's inputs as tfjs tensors; [B, T] float32 unless noted. */
export interface PolicyLossTensors {
  readonly logp: tf.Tensor2D;
  readonly oldLogp?: tf.Tensor2D | undefined;
  /** [B] or [B, T]. */
  readonly advantages: tf.Tensor1D | tf.Tensor2D;
  readonly mask?: tf.Tensor2D | undefined;
  readonly refLogp?: tf.Tensor2D | undefined;
  readonly importanceWeights?: tf.Tensor2D | undefined;
  readonly entropy?: tf.Tensor2D | undefined;
}

export interface PolicyLossTensorResult {
  readonly loss: tf.Scalar;
  /** ∂loss/∂logp, [B, T]. */
  readonly grad: tf.Tensor2D;
  readonly gradEntropy: tf.Tensor2D | undefined;
  readonly perTokenLoss: tf.Tensor2D;
  readonly perTokenKl: tf.Tensor2D | undefined;
  /** Sums over valid tokens, to divide by `tokens`: the metrics of the reference backend. */
  readonly counts: {
    readonly tokens: tf.Scalar;
    readonly sequences: tf.Scalar;
    readonly clipped: tf.Scalar;
    readonly low: tf.Scalar;
    readonly high: tf.Scalar;
    readonly dual: tf.Scalar;
    readonly approxKl: tf.Scalar;
    readonly ratioMin: tf.Scalar;
    readonly ratioSum: tf.Scalar;
    readonly ratioMax: tf.Scalar;
    readonly klSum: tf.Scalar | undefined;
    readonly entropySum: tf.Scalar | undefined;
  };
}

/**
 * The reference backend's policyLoss written in tfjs ops (float32 on whatever tfjs backend is active): the same
 * per-token objectives, aggregations, KL and entropy terms, and the same analytic gradient. Call it inside
 * tf.tidy. Values at masked positions are replaced by 0 first, so NaN there cannot leak.
 */
export function policyLossTensors(
  inputs: PolicyLossTensors,
  options: PolicyLossOptionsInput = {},
): PolicyLossTensorResult {
  const o = resolvePolicyLossOptions(options);
  const [rows, cols] = inputs.logp.shape;
  const shape: [number, number] = [rows, cols];
  const requireShape = (t: tf.Tensor | undefined, name: string) => {
    if (t !== undefined && (t.rank !== 2 || t.shape[0] !== rows || t.shape[1] !== cols)) {
      throw invalid(`inputs.${name}`, `has shape [${t.shape.join(", ")}] but logp has [${rows}, ${cols}]`);
    }
  };
  requireShape(inputs.oldLogp, "oldLogp");
  requireShape(inputs.mask, "mask");
  requireShape(inputs.refLogp, "refLogp");
  requireShape(inputs.importanceWeights, "importanceWeights");
  requireShape(inputs.entropy, "entropy");
  if (inputs.advantages.rank === 2) requireShape(inputs.advantages, "advantages");
  else if (inputs.advantages.shape[0] !== rows)
    throw invalid(
      "inputs.advantages",
      `has ${inputs.advantages.shape[0]} entries, one per rollout, but logp has ${rows} rows`,
    );
  if (o.kl !== null && inputs.refLogp === undefined)
    throw invalid("inputs.refLogp", "options.kl is set: give the reference policy's log-probs");
  if (o.entropyCoef > 0 && inputs.entropy === undefined)
    throw invalid("inputs.entropy", "options.entropyCoef > 0: give the policy's per-token entropy");

  const mask: tf.Tensor2D = inputs.mask === undefined ? tf.ones(shape) : tf.cast(inputs.mask, "float32");
  const selected = tf.greater(mask, 0);
  const zeros = tf.zerosLike(mask);
  const clean = (t: tf.Tensor) => tf.where(selected, tf.cast(t, "float32"), zeros) as tf.Tensor2D;
  const logp = clean(inputs.logp);
  const oldLogp = inputs.oldLogp === undefined ? logp : clean(inputs.oldLogp);
  const advantages = clean(
    inputs.advantages.rank === 1 ? tf.tile(tf.reshape(inputs.advantages, [rows, 1]), [1, cols]) : inputs.advantages,
  );
  const importance = inputs.importanceWeights === undefined ? undefined : clean(inputs.importanceWeights);
  const rowTokens = tf.sum(mask, 1, true);
  const weights = tokenWeights(mask, rowTokens, o.aggregation, o.normalizer);

  const tokenLogRatio = tf.sub(logp, oldLogp);
  const sequenceLevel = o.ratioLevel !== "token";
  const rawLogRatio = sequenceLevel
    ? tf.mul(tf.div(tf.sum(tf.mul(tokenLogRatio, mask), 1, true), tf.maximum(rowTokens, 1)), tf.onesLike(mask))
    : tokenLogRatio;
  const [clampLow, clampHigh] = o.logRatioClamp ?? [-Infinity, Infinity];
  const inside = tf.logicalAnd(tf.greaterEqual(rawLogRatio, clampLow), tf.lessEqual(rawLogRatio, clampHigh));
  const logRatio = tf.clipByValue(rawLogRatio, Math.max(clampLow, -3e38), Math.min(clampHigh, 3e38));
  const ratio = tf.exp(logRatio);
  const token = objectiveTensors(o, { logp, ratio, advantages });

  const weighted = (t: tf.Tensor) =>
    importance === undefined ? tf.mul(weights, t) : tf.mul(tf.mul(weights, importance), t);
  const perTokenLoss = tf.mul(
    importance === undefined ? token.loss : tf.mul(token.loss, importance),
    mask,
  ) as tf.Tensor2D;
  const viaRatio = tf.where(inside, weighted(token.dLogRatio), zeros);
  // "sequence": through ρ_b to every token of the row; "sequence-token" and "token": each token its own.
  const throughRow = o.ratioLevel === "sequence";
  const ratioGrad = throughRow ? tf.mul(tf.div(tf.sum(viaRatio, 1, true), tf.maximum(rowTokens, 1)), mask) : viaRatio;
  let grad: tf.Tensor = tf.add(ratioGrad, weighted(token.dLogp));
  let loss: tf.Tensor = tf.sum(tf.mul(weights, perTokenLoss));

  let perTokenKl: tf.Tensor2D | undefined;
  let klSum: tf.Scalar | undefined;
  if (o.kl !== null) {
    const kl = klTensors(o.kl.kind, o.kl.clamp, logp, clean(inputs.refLogp!));
    let value: tf.Tensor = kl.value;
    let slope: tf.Tensor = kl.slope;
    if (o.kl.importanceCorrected) {
      // TRL multiplies the KL by the ratio without detaching it, so the ratio's own gradient comes along.
      const ratioSlope = tf.where(inside, tf.mul(value, ratio), zeros);
      slope = tf.mul(slope, ratio);
      if (sequenceLevel) {
        const rowSum = tf.sum(tf.mul(tf.mul(weights, ratioSlope), o.kl.coef), 1, true);
        grad = tf.add(grad, tf.mul(tf.div(rowSum, tf.maximum(rowTokens, 1)), mask));
      } else {
        slope = tf.add(slope, ratioSlope);
      }
      value = tf.mul(value, ratio);
    }
    perTokenKl = tf.mul(value, mask) as tf.Tensor2D;
    loss = tf.add(loss, tf.mul(tf.sum(tf.mul(weights, perTokenKl)), o.kl.coef));
    grad = tf.add(grad, tf.mul(tf.mul(weights, slope), o.kl.coef));
    klSum = tf.sum(perTokenKl) as tf.Scalar;
  }

  let gradEntropy: tf.Tensor2D | undefined;
  let entropySum: tf.Scalar | undefined;
  if (inputs.entropy !== undefined) {
    const entropy = clean(inputs.entropy);
    entropySum = tf.sum(entropy) as tf.Scalar;
    if (o.entropyCoef > 0) {
      const entropyWeights: tf.Tensor = tokenWeights(
        mask,
        rowTokens,
        o.entropyAggregation ?? o.aggregation,
        o.normalizer,
      );
      gradEntropy = tf.mul(entropyWeights, -o.entropyCoef) as tf.Tensor2D;
      loss = tf.add(loss, tf.sum(tf.mul(gradEntropy, entropy)));
    }
  }

  const count = (flag: tf.Tensor) => tf.sum(tf.mul(tf.cast(flag, "float32"), mask)) as tf.Scalar;
  const ratioOfValid = (fill: number) => tf.where(selected, ratio, tf.fill(shape, fill));
  return {
    loss: loss as tf.Scalar,
    grad: tf.mul(grad, mask) as tf.Tensor2D,
    gradEntropy,
    perTokenLoss,
    perTokenKl,
    counts: {
      tokens: tf.sum(mask) as tf.Scalar,
      sequences: tf.sum(tf.cast(tf.greater(rowTokens, 0), "float32")) as tf.Scalar,
      clipped: count(token.clipped),
      low: count(token.lowClipped),
      high: count(token.highClipped),
      dual: count(token.dualClipped),
      approxKl: tf.neg(tf.sum(tf.mul(sequenceLevel ? tokenLogRatio : logRatio, mask))) as tf.Scalar,
      ratioMin: tf.min(ratioOfValid(Infinity)) as tf.Scalar,
      ratioSum: tf.sum(tf.mul(ratio, mask)) as tf.Scalar,
      ratioMax: tf.max(ratioOfValid(-Infinity)) as tf.Scalar,
      klSum,
      entropySum,
    },
  };
}

interface ObjectiveTensors {
  readonly loss: tf.Tensor;
  readonly dLogRatio: tf.Tensor;
  readonly dLogp: tf.Tensor;
  readonly clipped: tf.Tensor;
  readonly dualClipped: tf.Tensor;
  readonly lowClipped: tf.Tensor;
  readonly highClipped: tf.Tensor;
}

/** The per-token objectives of src/loss/objectives.ts, elementwise. */
function objectiveTensors(
  o: PolicyLossOptions,
  t: { logp: tf.Tensor; ratio: tf.Tensor; advantages: tf.Tensor },
): ObjectiveTensors {
  const { ratio, advantages: a } = t;
  const zeros = tf.zerosLike(ratio);
  const none = tf.cast(tf.zerosLike(ratio), "bool");
  const negA = tf.neg(a);
  const low = 1 - o.clipLow;
  const high = 1 + o.clipHigh;
  switch (o.objective) {
    case "clip": {
      const clippedRatio = tf.clipByValue(ratio, low, high);
      const capped = o.delta === null ? none : tf.greater(ratio, o.delta);
      const unclippedRatio = o.delta === null ? ratio : tf.minimum(ratio, o.delta);
      const unclipped = tf.mul(negA, unclippedRatio);
      const clipped = tf.mul(negA, clippedRatio);
      const useUnclipped = tf.greaterEqual(unclipped, clipped);
      const slope = tf.mul(negA, ratio);
      let loss = tf.where(useUnclipped, unclipped, clipped);
      let dLogRatio = tf.where(
        useUnclipped,
        tf.where(capped, zeros, slope),
        tf.where(tf.equal(clippedRatio, ratio), slope, zeros),
      );
      let dualClipped = none;
      if (o.dualClip !== null) {
        const bound = tf.mul(negA, o.dualClip);
        dualClipped = tf.logicalAnd(tf.less(a, 0), tf.greater(loss, bound));
        loss = tf.where(dualClipped, bound, loss);
        dLogRatio = tf.where(dualClipped, zeros, dLogRatio);
      }
      return {
        loss,
        dLogRatio,
        dLogp: zeros,
        clipped: tf.greater(clipped, unclipped),
        dualClipped,
        lowClipped: tf.logicalAnd(tf.less(unclippedRatio, low), tf.less(a, 0)),
        highClipped: tf.logicalAnd(tf.greater(unclippedRatio, high), tf.greater(a, 0)),
      };
    }
    case "cispo": {
      const weight = tf.clipByValue(ratio, low, high);
      return {
        loss: tf.mul(tf.mul(tf.neg(weight), a), t.logp),
        dLogRatio: zeros,
        dLogp: tf.mul(tf.neg(weight), a),
        clipped: tf.notEqual(weight, ratio),
        dualClipped: none,
        lowClipped: tf.logicalAnd(tf.less(ratio, low), tf.less(a, 0)),
        highClipped: tf.logicalAnd(tf.greater(ratio, high), tf.greater(a, 0)),
      };
    }
    case "sapo": {
      const tau = tf.where(
        tf.greater(a, 0),
        tf.fill(ratio.shape, o.sapoTemperature.positive),
        tf.fill(ratio.shape, o.sapoTemperature.negative),
      );
      const sigma = tf.sigmoid(tf.mul(tau, tf.sub(ratio, 1)));
      return {
        loss: tf.div(tf.mul(tf.mul(negA, sigma), 4), tau),
        dLogRatio: tf.mul(tf.mul(tf.mul(tf.mul(negA, 4), sigma), tf.sub(1, sigma)), ratio),
        dLogp: zeros,
        clipped: none,
        dualClipped: none,
        lowClipped: none,
        highClipped: none,
      };
    }
    case "reinforce":
      return {
        loss: tf.mul(negA, t.logp),
        dLogRatio: zeros,
        dLogp: negA,
        clipped: none,
        dualClipped: none,
        lowClipped: none,
        highClipped: none,
      };
    default:
      throw invalid(
        "options.objective",
        `the tfjs backend has no "${o.objective}" objective (it has clip, cispo, sapo, reinforce)`,
      );
  }
}

/** src/loss/kl.ts elementwise: value and ∂value/∂logp. */
function klTensors(
  kind: "k1" | "abs" | "k2" | "k3",
  clamp: boolean,
  logp: tf.Tensor,
  refLogp: tf.Tensor,
): { value: tf.Tensor; slope: tf.Tensor } {
  const diff = tf.sub(logp, refLogp);
  switch (kind) {
    case "k1":
      return { value: diff, slope: tf.onesLike(diff) };
    case "abs":
      return { value: tf.abs(diff), slope: tf.sign(diff) };
    case "k2":
      return { value: tf.mul(tf.square(diff), 0.5), slope: diff };
    case "k3": {
      const rawX = tf.neg(diff);
      const x = clamp ? tf.clipByValue(rawX, -20, 20) : rawX;
      const xSlope = clamp
        ? tf.where(
            tf.logicalAnd(tf.greaterEqual(rawX, -20), tf.lessEqual(rawX, 20)),
            tf.fill(x.shape, -1),
            tf.zerosLike(x),
          )
        : tf.fill(x.shape, -1);
      const expX = tf.exp(x);
      const rawValue = tf.sub(tf.sub(expX, x), 1);
      const value = clamp ? tf.clipByValue(rawValue, -10, 10) : rawValue;
      let slope = tf.mul(tf.sub(expX, 1), xSlope);
      if (clamp)
        slope = tf.where(
          tf.logicalAnd(tf.greaterEqual(rawValue, -10), tf.lessEqual(rawValue, 10)),
          slope,
          tf.zerosLike(slope),
        );
      return { value, slope };
    }
  }
}

/**
 * src/loss/aggregation.ts's row weights as a [B, T] tensor (0 where the mask is 0, and where a normaliser of 0
 * would divide by zero), computed on the device so that no data has to come back first.
 */
function tokenWeights(mask: tf.Tensor2D, rowTokens: tf.Tensor, mode: Aggregation, n: Normalizer): tf.Tensor2D {
  const [rows, cols] = mask.shape;
  const scalar = (value: number | undefined, fallback: () => tf.Tensor) =>
    value === undefined ? fallback() : tf.scalar(value);
  const tokens = () => scalar(n.tokens, () => tf.sum(mask));
  const nonEmpty = () => scalar(n.sequences, () => tf.sum(tf.cast(tf.greater(rowTokens, 0), "float32")));
  const allRows = () => scalar(n.rows, () => tf.scalar(rows));
  const length = n.length ?? cols;
  const steps = n.gradientAccumulationSteps;
  let perRow: tf.Tensor;
  switch (mode) {
    case "token-mean":
      perRow = tf.div(n.dpSize, tokens());
      break;
    case "bnpo":
      perRow = tf.div(1, tf.mul(tf.maximum(tokens(), 1), steps));
      break;
    case "dapo":
      perRow = tf.div(1, tf.maximum(tokens(), 1));
      break;
    case "seq-mean-token-sum":
      perRow = tf.div(n.dpSize, nonEmpty());
      break;
    case "seq-mean-token-mean":
      perRow = tf.div(n.dpSize, tf.mul(rowTokens, nonEmpty()));
      break;
    case "seq-mean-token-sum-norm":
      perRow = tf.scalar(1 / length);
      break;
    case "grpo":
      perRow = tf.div(1, tf.mul(tf.mul(rowTokens, allRows()), steps));
      break;
    case "dr_grpo":
      perRow = tf.div(1, tf.mul(tf.mul(allRows(), length), steps));
      break;
  }
  const perToken = tf.mul(perRow, tf.onesLike(mask));
  const usable = tf.logicalAnd(tf.greater(mask, 0), tf.isFinite(perToken));
  return tf.where(usable, perToken, tf.zerosLike(mask)) as tf.Tensor2D;
}
