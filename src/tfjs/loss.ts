import * as tf from "@tensorflow/tfjs";
import * as z from "zod/mini";
import {
  type Aggregation,
  type BuiltinObjective,
  invalid,
  isBuiltinObjective,
  type KlKind,
  type KlOptions,
  type Normalizer,
  type PolicyLossInputs,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  parseOrThrow,
  readPolicyLossCall,
  referencePolicyLoss,
  requireVerlCounts,
  resolvePolicyLossOptions,
} from "../backends/contract.js";
import { requireFloat32Options } from "../backends/contract.js";
import { checkValues, tensorSchema } from "./checks.js";

/** policyLoss's inputs as tfjs tensors; [B, T] float32 unless noted. */
export interface PolicyLossTensors {
  /** log π(token) under the policy being trained: the gradient is taken with respect to it. */
  readonly logp: tf.Tensor2D;
  /** log π_old(token) under the policy that sampled; omitted: on-policy (ratio 1). */
  readonly oldLogp?: tf.Tensor2D | undefined;
  /** [B] or [B, T]. */
  readonly advantages: tf.Tensor1D | tf.Tensor2D;
  /** 1 for tokens the model wrote, 0 for padding and tool output; omitted: every token counts. */
  readonly mask?: tf.Tensor2D | undefined;
  /** log π_ref(token): needed when options.kl is set. */
  readonly refLogp?: tf.Tensor2D | undefined;
  /** Per-token importance weights (e.g. rollout correction), multiplying the policy term. */
  readonly importanceWeights?: tf.Tensor2D | undefined;
  /** Per-token entropy of the policy: needed when options.entropyCoef > 0. */
  readonly entropy?: tf.Tensor2D | undefined;
}

/** policyLoss's result as tfjs tensors, each [B, T] float32 unless noted; the caller disposes them (or tf.tidy). */
export interface PolicyLossTensorResult {
  /** The loss to minimise, −J. */
  readonly loss: tf.Scalar;
  /** ∂loss/∂logp, [B, T]. */
  readonly grad: tf.Tensor2D;
  /** ∂loss/∂entropy when an entropy bonus is used. */
  readonly gradEntropy: tf.Tensor2D | undefined;
  /** The policy term per token (after importance weights, before aggregation); 0 where the mask is 0. */
  readonly perTokenLoss: tf.Tensor2D;
  /** The KL term per token (before its coefficient), when options.kl is set. */
  readonly perTokenKl: tf.Tensor2D | undefined;
  /** Sums over valid tokens, to divide by `tokens`: the metrics of the reference backend. */
  readonly counts: {
    /** Valid tokens (mask 1). */
    readonly tokens: tf.Scalar;
    /** Non-empty rows. */
    readonly sequences: tf.Scalar;
    /** Tokens where the clipped branch is the larger loss (clipFraction's numerator). */
    readonly clipped: tf.Scalar;
    /** Tokens where the lower clip bound binds (clipFractionLow's). */
    readonly low: tf.Scalar;
    /** Tokens where the upper clip bound binds (clipFractionHigh's). */
    readonly high: tf.Scalar;
    /** Tokens where the dual clip binds (dualClipFraction's). */
    readonly dual: tf.Scalar;
    /** Sum of log π_old − log π (approxKl's). */
    readonly approxKl: tf.Scalar;
    /** Smallest ratio (not a sum). */
    readonly ratioMin: tf.Scalar;
    /** Sum of the ratios (ratioMean's). */
    readonly ratioSum: tf.Scalar;
    /** Largest ratio (not a sum). */
    readonly ratioMax: tf.Scalar;
    /** Sum of the KL estimates, when options.kl is set. */
    readonly klSum: tf.Scalar | undefined;
    /** Sum of the entropies, when `entropy` was given. */
    readonly entropySum: tf.Scalar | undefined;
    /** Sum of |log π − log π_old|, for objectives that report its mean (kl-cov: metrics.meanAbsLogRatio). */
    readonly absLogRatioSum: tf.Scalar | undefined;
    /** VESPO's mean weight φ (not a sum), for "vespo" (metrics.phiMean). */
    readonly phiMean: tf.Scalar | undefined;
  };
}

/**
 * The reference backend's policyLoss written in tfjs ops (float32 on whatever tfjs backend is active): the same
 * per-token objectives, aggregations, KL and entropy terms, and the same analytic gradient. Call it inside
 * tf.tidy. Values at masked positions are replaced by 0 first, so NaN there cannot leak. An objective registered
 * at run time has no tfjs ops: the reference computes it on the CPU (`registeredObjectiveTensors`).
 *
 * Validated as the typed-array kernels validate (same paths and rules): the options and the inputs object are
 * strict (an unknown key is an error naming it), shapes agree, and the values — a mask of 0/1, finite log-probs and
 * advantages where the mask selects — are read back and checked by the reference's validator: at once where tfjs
 * can read them synchronously (cpu, wasm; webgpu while they are on the CPU), else at the next read of any tensor.
 * An empty batch (B·T = 0) gives loss 0, empty gradients and every metric sum 0.
 */
export function policyLossTensors(
  inputs: PolicyLossTensors,
  options: PolicyLossOptionsInput = {},
): PolicyLossTensorResult {
  return computePolicyLossTensors(inputs, validatePolicyLossTensors(inputs, options));
}

/** policyLossTensors on inputs and options already validated (the typed-array kernel, trainStep). */
export function computePolicyLossTensors(inputs: PolicyLossTensors, o: PolicyLossOptions): PolicyLossTensorResult {
  if (!isBuiltinObjective(o.objective)) return registeredObjectiveTensors(inputs, o);
  // No op runs on an empty batch: tfjs-wasm reduces empty tensors to uninitialised memory.
  if (inputs.logp.size === 0) return emptyLossTensors(inputs, o);
  const t = cleanTensors(inputs, o);
  const ratios = ratioTensors(t, o);
  const policy = policyTermTensors(t, ratios, o, o.objective);
  const kl = o.kl === null ? undefined : klTermTensors(t, ratios, o.kl, inputs.refLogp!);
  const entropy = inputs.entropy === undefined ? undefined : entropyTermTensors(t, o, inputs.entropy);
  let loss: tf.Tensor = policy.loss;
  let grad: tf.Tensor = policy.grad;
  if (kl !== undefined) {
    loss = tf.add(loss, kl.loss);
    grad = tf.add(grad, kl.grad);
  }
  if (entropy?.loss !== undefined) loss = tf.add(loss, entropy.loss);
  const count = (flag: tf.Tensor) => tf.sum(tf.mul(tf.cast(flag, "float32"), t.mask)) as tf.Scalar;
  const ratioOfValid = (fill: number) => tf.where(t.selected, ratios.ratio, tf.fill(t.shape, fill));
  return {
    loss: loss as tf.Scalar,
    grad: tf.mul(grad, t.mask) as tf.Tensor2D,
    gradEntropy: entropy?.grad,
    perTokenLoss: policy.perTokenLoss,
    perTokenKl: kl?.perTokenKl,
    counts: {
      tokens: tf.sum(t.mask) as tf.Scalar,
      sequences: tf.sum(tf.cast(tf.greater(t.rowTokens, 0), "float32")) as tf.Scalar,
      clipped: count(policy.token.clipped),
      low: count(policy.token.lowClipped),
      high: count(policy.token.highClipped),
      dual: count(policy.token.dualClipped),
      approxKl: tf.neg(
        tf.sum(tf.mul(ratios.sequenceLevel ? ratios.tokenLogRatio : ratios.logRatio, t.mask)),
      ) as tf.Scalar,
      ratioMin: tf.min(ratioOfValid(Infinity)) as tf.Scalar,
      ratioSum: tf.sum(tf.mul(ratios.ratio, t.mask)) as tf.Scalar,
      ratioMax: tf.max(ratioOfValid(-Infinity)) as tf.Scalar,
      klSum: kl?.sum,
      entropySum: entropy?.sum,
      absLogRatioSum: undefined,
      phiMean: undefined,
    },
  };
}

/** B·T = 0: loss 0, empty per-token tensors, every metric sum 0 (the ratio's extremes as the empty min and max). */
function emptyLossTensors(inputs: PolicyLossTensors, o: PolicyLossOptions): PolicyLossTensorResult {
  const empty = () => tf.zeros(inputs.logp.shape) as tf.Tensor2D;
  const zero = () => tf.scalar(0);
  return {
    loss: zero(),
    grad: empty(),
    gradEntropy: inputs.entropy !== undefined && o.entropyCoef > 0 ? empty() : undefined,
    perTokenLoss: empty(),
    perTokenKl: o.kl === null ? undefined : empty(),
    counts: {
      tokens: zero(),
      sequences: zero(),
      clipped: zero(),
      low: zero(),
      high: zero(),
      dual: zero(),
      approxKl: zero(),
      ratioMin: tf.scalar(Infinity),
      ratioSum: zero(),
      ratioMax: tf.scalar(-Infinity),
      klSum: o.kl === null ? undefined : zero(),
      entropySum: inputs.entropy === undefined ? undefined : zero(),
      absLogRatioSum: undefined,
      phiMean: undefined,
    },
  };
}

const tensorInputsSchema = z.strictObject({
  logp: tensorSchema,
  oldLogp: z.optional(tensorSchema),
  advantages: tensorSchema,
  mask: z.optional(tensorSchema),
  refLogp: z.optional(tensorSchema),
  importanceWeights: z.optional(tensorSchema),
  entropy: z.optional(tensorSchema),
} satisfies Record<keyof PolicyLossTensors, z.ZodMiniType>);

/** The fields of PolicyLossTensors that are [B, T] matrices, in the reference's reading order. */
const MATRIX_FIELDS = ["logp", "oldLogp", "mask", "refLogp", "importanceWeights", "entropy"] as const;

/**
 * Validates a policy-loss call on tensors as the typed-array kernels validate one, and returns the resolved options:
 * options, keys and shapes at once; the values by the reference's own validator on a host copy (see
 * policyLossTensors for when). Objectives registered at run time are validated by the reference when they run.
 */
export function validatePolicyLossTensors(
  inputs: PolicyLossTensors,
  options: PolicyLossOptionsInput,
): PolicyLossOptions {
  const o = resolvePolicyLossOptions(options);
  requireFloat32Options(o);
  parseOrThrow(tensorInputsSchema, inputs, "inputs");
  requireTensorShapes(inputs, o);
  if (!isBuiltinObjective(o.objective)) return o;
  const fields = MATRIX_FIELDS.filter((name) => inputs[name] !== undefined);
  const tensors = [...fields.map((name) => inputs[name]!), inputs.advantages];
  const shape = [inputs.logp.shape[0]!, inputs.logp.shape[1]!] as const;
  checkValues(tensors, (values) => {
    const read = Object.fromEntries(fields.map((name, k) => [name, { data: values[k]!, shape }]));
    const advantages = values[fields.length]!;
    readPolicyLossCall(
      {
        ...read,
        advantages: inputs.advantages.rank === 2 ? { data: advantages, shape } : advantages,
      } as PolicyLossInputs,
      options,
    );
  });
  return o;
}

function requireTensorShapes(inputs: PolicyLossTensors, o: PolicyLossOptions): void {
  if (inputs.logp.rank !== 2) {
    throw invalid("inputs.logp", `expected a tf.Tensor [B, T], received shape [${inputs.logp.shape.join(", ")}]`);
  }
  const [rows, cols] = inputs.logp.shape;
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
  if (inputs.advantages.rank === 2) {
    requireShape(inputs.advantages, "advantages");
  } else if (inputs.advantages.rank !== 1) {
    const shape = inputs.advantages.shape.join(", ");
    throw invalid("inputs.advantages", `expected a tf.Tensor [B] or [B, T], received shape [${shape}]`);
  } else if (inputs.advantages.shape[0] !== rows) {
    const entries = inputs.advantages.shape[0];
    throw invalid("inputs.advantages", `has ${entries} entries, one per rollout, but logp has ${rows} rows`);
  }
  if (o.kl !== null && inputs.refLogp === undefined) {
    throw invalid("inputs.refLogp", "options.kl is set: give the reference policy's log-probs");
  }
  if (o.entropyCoef > 0 && inputs.entropy === undefined) {
    throw invalid("inputs.entropy", "options.entropyCoef > 0: give the policy's per-token entropy");
  }
}

/** The inputs with 0 wherever the mask is 0, the mask as float32, and the aggregation's weights per token. */
interface CleanTensors {
  readonly shape: [number, number];
  readonly mask: tf.Tensor2D;
  readonly selected: tf.Tensor;
  readonly zeros: tf.Tensor2D;
  readonly clean: (t: tf.Tensor) => tf.Tensor2D;
  readonly logp: tf.Tensor2D;
  readonly oldLogp: tf.Tensor2D;
  readonly advantages: tf.Tensor2D;
  readonly importance: tf.Tensor2D | undefined;
  readonly rowTokens: tf.Tensor;
  readonly weights: tf.Tensor2D;
}

function cleanTensors(inputs: PolicyLossTensors, o: PolicyLossOptions): CleanTensors {
  const [rows, cols] = inputs.logp.shape;
  const shape: [number, number] = [rows, cols];
  const mask: tf.Tensor2D = inputs.mask === undefined ? tf.ones(shape) : tf.cast(inputs.mask, "float32");
  const selected = tf.greater(mask, 0);
  const zeros = tf.zerosLike(mask);
  const clean = (t: tf.Tensor) => tf.where(selected, tf.cast(t, "float32"), zeros) as tf.Tensor2D;
  const logp = clean(inputs.logp);
  const perRow = inputs.advantages.rank === 1;
  const rowTokens = tf.sum(mask, 1, true);
  return {
    shape,
    mask,
    selected,
    zeros,
    clean,
    logp,
    oldLogp: inputs.oldLogp === undefined ? logp : clean(inputs.oldLogp),
    advantages: clean(perRow ? tf.tile(tf.reshape(inputs.advantages, [rows, 1]), [1, cols]) : inputs.advantages),
    importance: inputs.importanceWeights === undefined ? undefined : clean(inputs.importanceWeights),
    rowTokens,
    weights: tokenWeights(mask, rowTokens, o.aggregation, o.normalizer),
  };
}

interface RatioTensors {
  /** One ratio per row (GSPO): gradients that go through the ratio reach the whole row. */
  readonly sequenceLevel: boolean;
  readonly tokenLogRatio: tf.Tensor;
  /** Where the raw log-ratio is inside the clamp (the gradient through the ratio is 0 outside). */
  readonly inside: tf.Tensor;
  readonly logRatio: tf.Tensor;
  readonly ratio: tf.Tensor;
}

/** The ratio each token's objective sees: its own, or its row's mean log-ratio (GSPO), clamped, exponentiated. */
function ratioTensors(t: CleanTensors, o: PolicyLossOptions): RatioTensors {
  const tokenLogRatio = tf.sub(t.logp, t.oldLogp);
  const rawLogRatio =
    o.ratioLevel === "token"
      ? tokenLogRatio
      : tf.mul(tf.div(tf.sum(tf.mul(tokenLogRatio, t.mask), 1, true), tf.maximum(t.rowTokens, 1)), tf.onesLike(t.mask));
  const [clampLow, clampHigh] = o.logRatioClamp ?? [-Infinity, Infinity];
  const inside = tf.logicalAnd(tf.greaterEqual(rawLogRatio, clampLow), tf.lessEqual(rawLogRatio, clampHigh));
  const logRatio = tf.clipByValue(rawLogRatio, Math.max(clampLow, -3e38), Math.min(clampHigh, 3e38));
  return { sequenceLevel: o.ratioLevel !== "token", tokenLogRatio, inside, logRatio, ratio: tf.exp(logRatio) };
}

/** Σ_b w_b Σ_t ℓ·iw and its gradient (through the row's ratio for "sequence" level). */
function policyTermTensors(t: CleanTensors, ratios: RatioTensors, o: PolicyLossOptions, objective: BuiltinObjective) {
  const token = TFJS_OBJECTIVES[objective](o, { logp: t.logp, ratio: ratios.ratio, advantages: t.advantages });
  // A token with a zero advantage or importance weight contributes exactly +0, as in the reference, even where its
  // ratio overflowed float32 (0·∞ would be NaN) or the product would be −0.
  let contributes = tf.logicalAnd(t.selected, tf.notEqual(t.advantages, 0));
  if (t.importance !== undefined) contributes = tf.logicalAnd(contributes, tf.notEqual(t.importance, 0));
  const only = (x: tf.Tensor) => tf.where(contributes, x, t.zeros);
  const weighted = (x: tf.Tensor) =>
    only(t.importance === undefined ? tf.mul(t.weights, x) : tf.mul(tf.mul(t.weights, t.importance), x));
  const perTokenLoss = only(t.importance === undefined ? token.loss : tf.mul(token.loss, t.importance)) as tf.Tensor2D;
  const viaRatio = tf.where(ratios.inside, weighted(token.dLogRatio), t.zeros);
  const ratioGrad =
    o.ratioLevel === "sequence"
      ? tf.mul(tf.div(tf.sum(viaRatio, 1, true), tf.maximum(t.rowTokens, 1)), t.mask)
      : viaRatio;
  return {
    token,
    perTokenLoss,
    grad: tf.add(ratioGrad, weighted(token.dLogp)),
    loss: tf.sum(tf.mul(t.weights, perTokenLoss)),
  };
}

/** β · Σ_b w_b Σ_t KL with its gradient; TRL's importance correction multiplies by the ratio, not detached. */
function klTermTensors(t: CleanTensors, ratios: RatioTensors, kl: KlOptions, refLogp: tf.Tensor2D) {
  const estimate = klTensors(kl.kind, kl.clamp, t.logp, t.clean(refLogp));
  let value: tf.Tensor = estimate.value;
  let slope: tf.Tensor = estimate.slope;
  let grad: tf.Tensor = t.zeros;
  if (kl.importanceCorrected) {
    const ratioSlope = tf.where(ratios.inside, tf.mul(value, ratios.ratio), t.zeros);
    slope = tf.mul(slope, ratios.ratio);
    if (ratios.sequenceLevel) {
      const rowSum = tf.sum(tf.mul(tf.mul(t.weights, ratioSlope), kl.coef), 1, true);
      grad = tf.mul(tf.div(rowSum, tf.maximum(t.rowTokens, 1)), t.mask);
    } else {
      slope = tf.add(slope, ratioSlope);
    }
    value = tf.mul(value, ratios.ratio);
  }
  const perTokenKl = tf.mul(value, t.mask) as tf.Tensor2D;
  return {
    perTokenKl,
    loss: tf.mul(tf.sum(tf.mul(t.weights, perTokenKl)), kl.coef),
    grad: tf.add(grad, tf.mul(tf.mul(t.weights, slope), kl.coef)),
    sum: tf.sum(perTokenKl) as tf.Scalar,
  };
}

/** −c · Σ_b w'_b Σ_t H with its gradient ∂loss/∂H, and Σ H for the metric. */
function entropyTermTensors(t: CleanTensors, o: PolicyLossOptions, entropyInput: tf.Tensor2D) {
  const entropy = t.clean(entropyInput);
  const sum = tf.sum(entropy) as tf.Scalar;
  if (o.entropyCoef <= 0) return { sum, loss: undefined, grad: undefined };
  const bonusWeights = tokenWeights(t.mask, t.rowTokens, o.entropyAggregation ?? o.aggregation, o.normalizer);
  const grad = tf.mul(bonusWeights, -o.entropyCoef) as tf.Tensor2D;
  return { sum, loss: tf.sum(tf.mul(grad, entropy)), grad };
}

/**
 * An objective registered at run time, computed by the reference on the CPU (float64) from the tensors' values and
 * handed back as tensors: the same result every backend gives for it. It reads the tensors synchronously.
 */
function registeredObjectiveTensors(
  inputs: PolicyLossTensors,
  options: PolicyLossOptionsInput,
): PolicyLossTensorResult {
  const matrix = (x: tf.Tensor | undefined) =>
    x === undefined ? undefined : { data: x.dataSync() as Float32Array, shape: [x.shape[0]!, x.shape[1]!] as const };
  const advantages =
    inputs.advantages.rank === 1 ? (inputs.advantages.dataSync() as Float32Array) : matrix(inputs.advantages)!;
  const result = referencePolicyLoss(
    {
      logp: matrix(inputs.logp)!,
      oldLogp: matrix(inputs.oldLogp),
      advantages,
      mask: matrix(inputs.mask),
      refLogp: matrix(inputs.refLogp),
      importanceWeights: matrix(inputs.importanceWeights),
      entropy: matrix(inputs.entropy),
    },
    options,
  );
  const shape = [result.shape[0], result.shape[1]] as [number, number];
  const tensor = (x: Float64Array | undefined) =>
    x === undefined ? undefined : tf.tensor2d(Float32Array.from(x), shape);
  const m = result.metrics;
  const sum = (mean: number) => tf.scalar(mean * m.tokens);
  return {
    loss: tf.scalar(result.loss),
    grad: tensor(result.grad)!,
    gradEntropy: tensor(result.gradEntropy),
    perTokenLoss: tensor(result.perTokenLoss)!,
    perTokenKl: tensor(result.perTokenKl),
    counts: {
      tokens: tf.scalar(m.tokens),
      sequences: tf.scalar(m.sequences),
      clipped: sum(m.clipFraction),
      low: sum(m.clipFractionLow),
      high: sum(m.clipFractionHigh),
      dual: sum(m.dualClipFraction),
      approxKl: sum(m.approxKl),
      ratioMin: tf.scalar(m.tokens === 0 ? Infinity : m.ratioMin),
      ratioSum: sum(m.ratioMean),
      ratioMax: tf.scalar(m.tokens === 0 ? -Infinity : m.ratioMax),
      klSum: m.kl === undefined ? undefined : sum(m.kl),
      entropySum: m.entropy === undefined ? undefined : sum(m.entropy),
      absLogRatioSum: m.meanAbsLogRatio === undefined ? undefined : sum(m.meanAbsLogRatio),
      phiMean: m.phiMean === undefined ? undefined : tf.scalar(m.phiMean),
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

/** One objective's per-token tensors from the ratio, logp and the advantages (broadcast to [B, T]). */
type ObjectiveOps = (
  o: PolicyLossOptions,
  t: { readonly logp: tf.Tensor; readonly ratio: tf.Tensor; readonly advantages: tf.Tensor },
) => ObjectiveTensors;

/** No event on any token: a boolean tensor of false. */
const never = (like: tf.Tensor) => tf.cast(tf.zerosLike(like), "bool");

/**
 * The per-token objectives of src/loss/objectives.ts, elementwise. A new built-in objective is a compile error here
 * until its ops are written.
 */
const TFJS_OBJECTIVES = {
  clip: (o, { ratio, advantages: a }) => {
    const zeros = tf.zerosLike(ratio);
    const negA = tf.neg(a);
    const low = 1 - o.clipLow;
    const high = 1 + o.clipHigh;
    const clippedRatio = tf.clipByValue(ratio, low, high);
    const capped = o.delta === null ? never(ratio) : tf.greater(ratio, o.delta);
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
    let dualClipped = never(ratio);
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
  },
  cispo: (o, { ratio, logp, advantages: a }) => {
    const low = 1 - o.clipLow;
    const high = 1 + o.clipHigh;
    const weight = tf.clipByValue(ratio, low, high);
    return {
      loss: tf.mul(tf.mul(tf.neg(weight), a), logp),
      dLogRatio: tf.zerosLike(ratio),
      dLogp: tf.mul(tf.neg(weight), a),
      clipped: tf.notEqual(weight, ratio),
      dualClipped: never(ratio),
      lowClipped: tf.logicalAnd(tf.less(ratio, low), tf.less(a, 0)),
      highClipped: tf.logicalAnd(tf.greater(ratio, high), tf.greater(a, 0)),
    };
  },
  sapo: (o, { ratio, advantages: a }) => {
    const { positive, negative } = o.sapoTemperature;
    const tau = tf.where(tf.greater(a, 0), tf.fill(ratio.shape, positive), tf.fill(ratio.shape, negative));
    const sigma = tf.sigmoid(tf.mul(tau, tf.sub(ratio, 1)));
    const negA = tf.neg(a);
    return {
      loss: tf.div(tf.mul(tf.mul(negA, sigma), 4), tau),
      dLogRatio: tf.mul(tf.mul(tf.mul(tf.mul(negA, 4), sigma), tf.sub(1, sigma)), ratio),
      dLogp: tf.zerosLike(ratio),
      clipped: never(ratio),
      dualClipped: never(ratio),
      lowClipped: never(ratio),
      highClipped: never(ratio),
    };
  },
  reinforce: (_o, { ratio, logp, advantages: a }) => ({
    loss: tf.mul(tf.neg(a), logp),
    dLogRatio: tf.zerosLike(ratio),
    dLogp: tf.neg(a),
    clipped: never(ratio),
    dualClipped: never(ratio),
    lowClipped: never(ratio),
    highClipped: never(ratio),
  }),
} as const satisfies Record<BuiltinObjective, ObjectiveOps>;

/** src/loss/kl.ts elementwise: value and ∂value/∂logp. */
function klTensors(
  kind: KlKind,
  clamp: boolean,
  logp: tf.Tensor,
  refLogp: tf.Tensor,
): { value: tf.Tensor; slope: tf.Tensor } {
  const diff = tf.sub(logp, refLogp);
  switch (kind) {
    // Straight-through (verl 1dda039): the base kind's value, the k2 slope logp − refLogp.
    case "k1+":
    case "abs+":
    case "k2+":
    case "k3+":
      return { value: klTensors(baseKlKind(kind), clamp, logp, refLogp).value, slope: diff };
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

/** The kind a straight-through "+" kind takes its value from. */
function baseKlKind(kind: "k1+" | "abs+" | "k2+" | "k3+"): "k1" | "abs" | "k2" | "k3" {
  return kind.slice(0, -1) as "k1" | "abs" | "k2" | "k3";
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
  requireVerlCounts(mode, n);
  let perRow: tf.Tensor;
  switch (mode) {
    case "token-mean":
      perRow = tf.div(n.dpSize, tokens());
      break;
    case "token-sum":
      perRow = tf.scalar(n.dpSize);
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
      // verl 1dda039 divides by the sequences (× dpSize) and then by the length; b178a3c by the length alone.
      perRow = n.verlVersion === "b178a3c" ? tf.scalar(1 / length) : tf.div(tf.div(n.dpSize, nonEmpty()), length);
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
