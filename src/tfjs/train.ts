import * as tf from "@tensorflow/tfjs";
import * as z from "zod/mini";
import {
  invalid,
  isArrayLike,
  lossMetrics,
  type MetricSums,
  type NumericArray,
  parseOrThrow,
  type PolicyLossMetrics,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  policyLossOptionsSchema,
  requireFloat32Range,
  requireFloat32Temperature,
  resolvePolicyLossOptions,
} from "../backends/contract.js";
import { requireFloat32Options } from "../backends/contract.js";
import { checkValues, firstFlagged } from "./checks.js";
import { type PolicyLossCounts, policyLossOp, readPolicyLossMetrics } from "./differentiable.js";
import { tokenLogProbsTf } from "./logprobs.js";
import type { TfjsKernels } from "./wgsl.js";

/**
 * One GRPO-RoC training batch: the rollouts rocPipeline kept, as a right-padded [B, L] matrix (flat, row-major).
 * Every per-token array is aligned with `tokens`: entry [b, t] describes token t of rollout b. The log-prob of
 * token t comes from the model's logits at position t − 1, so column 0 (the first prompt token) is never trained.
 */
export interface TrainBatch {
  /** [B, L]: B kept rollouts, L the padded length of prompt + response. */
  readonly shape: readonly [rows: number, length: number];
  /** Prompt + response token ids, [B·L] integers ≥ 0; padding must be a valid id too (the model reads it). */
  readonly tokens: NumericArray;
  /**
   * [B·L] 0/1: 1 for response tokens the policy wrote, 0 for the prompt, tool outputs pasted into the transcript,
   * and padding. Column 0 must be 0.
   */
  readonly mask: NumericArray;
  /** log π_old of each token [B·L] (the sampling policy's log-probs); read only where mask is 1. Omitted: on-policy. */
  readonly oldLogp?: NumericArray | undefined;
  /** One per rollout [B] (rocPipeline's `advantages`, aligned with its `kept`), or one per token [B·L]. */
  readonly advantages: NumericArray;
  /** log π_ref of each token [B·L], when the loss has a KL term (options.kl). */
  readonly refLogp?: NumericArray | undefined;
  /** Per-token importance weights [B·L] (e.g. rollout correction). */
  readonly importanceWeights?: NumericArray | undefined;
}

/** One rollout for packTrainBatch: prompt + response, with per-token arrays of the same length. */
export interface TrainRollout {
  /** Prompt + response token ids. */
  readonly tokens: NumericArray;
  /** 0/1 per token: 1 for response tokens the policy wrote, 0 for the prompt and tool outputs. */
  readonly mask: NumericArray;
  /** log π_old of each token (the sampling policy's); omitted: on-policy. */
  readonly oldLogp?: NumericArray | undefined;
  /** log π_ref of each token, when the loss has a KL term. */
  readonly refLogp?: NumericArray | undefined;
  /** Per-token importance weights (e.g. rollout correction). */
  readonly importanceWeights?: NumericArray | undefined;
}

/** One optimiser step of trainStep: the model, the batch, the optimiser and the loss's options. */
export interface TrainStepOptions {
  /** Token ids [B, L] (int32) → next-token logits [B, L, V] (float32): logits[b, t] predict token t + 1. */
  readonly model: (inputIds: tf.Tensor2D) => tf.Tensor3D;
  /** The rollouts to train on, packed (packTrainBatch) and aligned with rocPipeline's advantages. */
  readonly batch: TrainBatch;
  /** The tfjs optimiser that applies the update (e.g. tf.train.adam); its state carries across steps. */
  readonly optimizer: tf.Optimizer;
  /** The policy-loss options (default: the library's defaults, which are the paper's clip 0.2/0.28, token-mean). */
  readonly loss?: PolicyLossOptionsInput | undefined;
  /** The sampling temperature: logits are divided by it before the softmax (default 1). */
  readonly temperature?: number | undefined;
  /**
   * The variables to train. Default: every trainable tfjs variable the loss reaches (tf.variableGrads' default),
   * which is right for a model that owns all its variables; pass them when other trainable variables exist.
   */
  readonly variables?: readonly tf.Variable[] | undefined;
  /** Clip the global gradient norm to this before the update (verl's grad_clip, usually 1). Default: no clipping. */
  readonly maxGradNorm?: number | undefined;
  /** The vocabulary size: token ids are checked against it before the model runs (and the logits' last axis after). */
  readonly vocabSize?: number | undefined;
  /** Compute the policy's entropy for the metric even without an entropy bonus (costs the entropy's backward terms). */
  readonly entropy?: boolean | undefined;
  /**
   * The kernels over the logits (tokenLogProbsTf's `kernels`): "auto" (default, or $GRPO_ROC_TFJS_KERNELS) runs
   * grpo-roc's WGSL kernels on the webgpu backend's device and buffers, tfjs ops elsewhere; "tfjs" forces tfjs ops.
   */
  readonly kernels?: TfjsKernels | undefined;
}

/** Why trainStep applied no update. */
export type TrainStepSkip = "empty batch" | "no trained tokens" | "gradient norm not finite";

/** What one trainStep did: the loss and metrics of its forward pass, and whether it updated the model. */
export interface TrainStepResult {
  /** The loss of this step's forward pass (before the update). */
  readonly loss: number;
  /**
   * The policy-loss metrics of the forward pass (clip fractions, approximate KL, ratios, KL and entropy when computed).
   */
  readonly metrics: PolicyLossMetrics;
  /** The global L2 norm of the gradient over `variables`, before clipping. */
  readonly gradNorm: number;
  /** Whether the optimizer applied an update; when not, `skipped` says why. */
  readonly applied: boolean;
  /**
   * Why no update was applied; undefined when one was.
   * - "empty batch" (B = 0: RoC dropped every group, or `packTrainBatch([], [])`) and "no trained tokens" (every
   *   mask entry 0): nothing to learn from. The model is not run and the optimizer is not called at all, so its
   *   state (Adam's moments and step count) and the variables stay bit for bit as they were — a zero gradient,
   *   applied, would still move them through the momentum. `loss`, `gradNorm` and every metric are 0 (the KL and
   *   entropy metrics 0 when computed, else undefined).
   * - "gradient norm not finite": the update is skipped (verl's rule); loss, metrics and norm are the pass's.
   */
  readonly skipped: TrainStepSkip | undefined;
}

/** [B, L]: B may be 0 (an empty batch, a no-op); L ≥ 2, since the first token is never predicted. */
const shapeSchema = z.tuple([z.int().check(z.nonnegative()), z.int().check(z.minimum(2))]);
const arraySchema = z.custom<NumericArray>(isArrayLike, { message: "expected an array or a typed array of numbers" });

const trainBatchSchema = z.strictObject({
  shape: shapeSchema,
  tokens: arraySchema,
  mask: arraySchema,
  oldLogp: z.optional(arraySchema),
  advantages: arraySchema,
  refLogp: z.optional(arraySchema),
  importanceWeights: z.optional(arraySchema),
});

const trainStepOptionsSchema = z.strictObject({
  model: z.custom<TrainStepOptions["model"]>((value) => typeof value === "function", {
    message: "expected a function (inputIds) => logits",
  }),
  batch: z.looseObject({}),
  // tf.Optimizer's instanceof reads `.minimize` of the value: check that it is an object first.
  optimizer: z.custom<tf.Optimizer>(
    (value) => typeof value === "object" && value !== null && value instanceof tf.Optimizer,
    {
      message: "expected a tf.Optimizer (tf.train.adam(…), …)",
    },
  ),
  loss: z.optional(z.looseObject({})),
  temperature: z.optional(z.number().check(z.positive())),
  variables: z.optional(
    z
      .array(z.custom<tf.Variable>((value) => value instanceof tf.Variable, { message: "expected a tf.Variable" }))
      .check(z.minLength(1)),
  ),
  maxGradNorm: z.optional(z.number().check(z.positive())),
  vocabSize: z.optional(z.int().check(z.positive())),
  entropy: z.optional(z.boolean()),
  kernels: z.optional(z.enum(["auto", "wgsl", "tfjs"])),
});

/** A validated batch, shifted to the predicted positions: column t of each array is about token t + 1. */
interface ShiftedBatch {
  readonly rows: number;
  readonly length: number;
  /** Tokens the loss trains on (mask 1): 0 makes trainStep a no-op. */
  readonly trainedTokens: number;
  readonly inputIds: Int32Array;
  readonly targets: Int32Array;
  readonly mask: Float32Array;
  readonly oldLogp: Float32Array | undefined;
  readonly advantages: Float32Array;
  readonly perTokenAdvantages: boolean;
  readonly refLogp: Float32Array | undefined;
  readonly importanceWeights: Float32Array | undefined;
  /** The largest token id, and where it is, to check against the logits' vocabulary. */
  readonly maxToken: { readonly id: number; readonly index: number };
}

/**
 * Validates a TrainBatch against the loss options: every error is a ValidationError naming the field and the
 * [row][column] it is at. Values at masked positions (mask 0) are never read, so they may hold anything; values
 * read are finite and within float32's range (tfjs computes in float32). The batch object is strict: an unknown key
 * (a misspelt `oldLogp`) is an error. An empty batch (B = 0) is valid.
 */
export function validateTrainBatch(batch: TrainBatch, loss: PolicyLossOptionsInput = {}, vocabSize?: number): void {
  readBatch(batch, resolvePolicyLossOptions(loss), vocabSize);
}

type ParsedBatch = z.output<typeof trainBatchSchema>;

function readBatch(input: TrainBatch, o: PolicyLossOptions, vocabSize: number | undefined): ShiftedBatch {
  const batch = parseOrThrow(trainBatchSchema, input, "batch");
  const [rows, length] = batch.shape;
  const layout: BatchLayout = { rows, length, mask: requireBatchSizes(batch).mask };
  if (o.kl !== null && batch.refLogp === undefined) {
    throw invalid("batch.refLogp", "options.kl is set: give the reference policy's log-probs");
  }
  // L ≥ 2, so B·L ≠ B unless B = 0: the length alone says which.
  const perTokenAdvantages = batch.advantages.length === rows * length && rows > 0;
  const { inputIds, maxToken } = readInputIds(batch.tokens, layout, vocabSize);
  const rowTokens = readTrainMask(layout);
  requireTrainedValues(layout, batch.oldLogp, "oldLogp");
  requireTrainedValues(layout, batch.refLogp, "refLogp");
  requireTrainedValues(layout, batch.importanceWeights, "importanceWeights");
  if (perTokenAdvantages) requireTrainedValues(layout, batch.advantages, "advantages");
  else requireRowAdvantages(batch.advantages, rowTokens);
  const shift = (values: NumericArray | undefined) => shiftToPredictions(layout, values);
  return {
    rows,
    length,
    trainedTokens: rowTokens.reduce((sum, n) => sum + n, 0),
    inputIds,
    targets: shiftTargets(layout, inputIds),
    mask: shift(batch.mask)!,
    oldLogp: shift(batch.oldLogp),
    advantages: perTokenAdvantages
      ? shift(batch.advantages)!
      : Float32Array.from(batch.advantages, (a, b) => (rowTokens[b]! > 0 ? a : 0)),
    perTokenAdvantages,
    refLogp: shift(batch.refLogp),
    importanceWeights: shift(batch.importanceWeights),
    maxToken,
  };
}

/** Every per-token array has B·L entries; advantages have B (one per rollout) or B·L. */
function requireBatchSizes(batch: ParsedBatch): ParsedBatch {
  const [rows, length] = batch.shape;
  const size = rows * length;
  for (const name of ["tokens", "mask", "oldLogp", "refLogp", "importanceWeights"] as const) {
    const values = batch[name];
    if (values !== undefined && values.length !== size) {
      throw invalid(`batch.${name}`, `has ${values.length} entries but shape [${rows}, ${length}] needs ${size}`);
    }
  }
  const advantages = batch.advantages.length;
  if (advantages !== rows && advantages !== size) {
    throw invalid(
      "batch.advantages",
      `has ${advantages} entries: give one per rollout (${rows}) or one per token (${size})`,
    );
  }
  return batch;
}

/** A batch's shape and mask, which every per-token check and the shift read. */
interface BatchLayout {
  readonly rows: number;
  readonly length: number;
  readonly mask: NumericArray;
}

/** `batch.name[row][column]` of flat index i. */
function trainPath(layout: BatchLayout, name: string, i: number): string {
  return `batch.${name}[${Math.floor(i / layout.length)}][${i % layout.length}]`;
}

/** The token ids as int32, each an integer ≥ 0 (below vocabSize when given), and the largest with its index. */
function readInputIds(tokens: NumericArray, layout: BatchLayout, vocabSize: number | undefined) {
  let maxToken = { id: -1, index: -1 };
  const inputIds = new Int32Array(tokens.length);
  for (let i = 0; i < tokens.length; i++) {
    const id = tokens[i];
    if (typeof id !== "number" || !Number.isInteger(id) || id < 0 || id > 2 ** 31 - 1) {
      throw invalid(trainPath(layout, "tokens", i), `token id ${String(id)} is not an integer ≥ 0`);
    }
    if (vocabSize !== undefined && id >= vocabSize) {
      throw invalid(trainPath(layout, "tokens", i), `token id ${id} is not below the vocabulary size ${vocabSize}`);
    }
    if (id > maxToken.id) maxToken = { id, index: i };
    inputIds[i] = id;
  }
  return { inputIds, maxToken };
}

/** Checks the mask (0 or 1, never column 0) and counts each row's trained tokens. */
function readTrainMask(layout: BatchLayout): Int32Array {
  const { rows, length, mask } = layout;
  const rowTokens = new Int32Array(rows);
  for (let i = 0; i < rows * length; i++) {
    const m = mask[i];
    if (m !== 0 && m !== 1) {
      throw invalid(trainPath(layout, "mask", i), `mask entries must be 0 or 1, received ${String(m)}`);
    }
    if (m === 1 && i % length === 0) {
      throw invalid(
        trainPath(layout, "mask", i),
        "column 0 cannot be trained: no logits predict a sequence's first token (it is part of the prompt)",
      );
    }
    const row = Math.floor(i / length);
    rowTokens[row] = rowTokens[row]! + m;
  }
  return rowTokens;
}

/** Values the loss reads (mask 1) are finite, and within float32's range, which tfjs computes in. */
function requireTrainedValues(layout: BatchLayout, values: NumericArray | undefined, name: string): void {
  if (values === undefined) return;
  for (let i = 0; i < layout.rows * layout.length; i++) {
    if (layout.mask[i] === 1 && !Number.isFinite(values[i])) {
      throw invalid(trainPath(layout, name, i), `is ${values[i]} at a position the mask selects; it must be finite`);
    }
  }
  requireFloat32Range(values, `batch.${name}`, layout.length, (i) => layout.mask[i] !== 1);
}

/** One advantage per rollout: finite and within float32's range for rows with a trained token. */
function requireRowAdvantages(advantages: NumericArray, rowTokens: Int32Array): void {
  for (let b = 0; b < rowTokens.length; b++) {
    if (rowTokens[b]! > 0 && !Number.isFinite(advantages[b])) {
      throw invalid(`batch.advantages[${b}]`, `is ${advantages[b]}; advantages must be finite`);
    }
  }
  requireFloat32Range(advantages, "batch.advantages", undefined, (b) => rowTokens[b] === 0);
}

/**
 * Values at predicted positions: column t holds token t + 1's value where token t + 1 is trained (0 elsewhere);
 * the last column is empty, since logits at position t predict token t + 1.
 */
function shiftToPredictions(layout: BatchLayout, values: NumericArray | undefined): Float32Array | undefined {
  if (values === undefined) return undefined;
  const { rows, length, mask } = layout;
  const out = new Float32Array(rows * length);
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < length - 1; t++) {
      const from = b * length + t + 1;
      if (mask[from] === 1) out[b * length + t] = values[from]!;
    }
  }
  return out;
}

/** The target of column t is token t + 1, trained or not (the loss reads only trained ones). */
function shiftTargets(layout: BatchLayout, inputIds: Int32Array): Int32Array {
  const { rows, length } = layout;
  const targets = new Int32Array(rows * length);
  for (let b = 0; b < rows; b++) {
    for (let t = 0; t < length - 1; t++) targets[b * length + t] = inputIds[b * length + t + 1]!;
  }
  return targets;
}

const packOptionsSchema = z.strictObject({
  padId: z._default(z.int().check(z.nonnegative()), 0),
  length: z.optional(z.int().check(z.minimum(2))),
});

const rolloutSchema = z.strictObject({
  tokens: arraySchema,
  mask: arraySchema,
  oldLogp: z.optional(arraySchema),
  refLogp: z.optional(arraySchema),
  importanceWeights: z.optional(arraySchema),
});

/** The optional per-token fields of a rollout: each is given for every rollout or for none. */
const ROLLOUT_FIELDS = ["oldLogp", "refLogp", "importanceWeights"] as const;
type RolloutField = (typeof ROLLOUT_FIELDS)[number];

/**
 * Packs rollouts of different lengths into a right-padded TrainBatch (rows in the order given, so that
 * `advantages` from rocPipeline stay aligned with them). Padding gets token `padId` (default 0) and mask 0.
 * `options` is strict. No rollouts (RoC dropped every group) give the empty batch, shape [0, options.length ?? 2],
 * which trainStep accepts as a no-op.
 */
export function packTrainBatch(
  rollouts: readonly TrainRollout[],
  advantages: NumericArray,
  options: { readonly padId?: number | undefined; readonly length?: number | undefined } = {},
): TrainBatch {
  const { padId, length: fixed } = parseOrThrow(packOptionsSchema, options, "options");
  if (!Array.isArray(rollouts)) throw invalid("rollouts", "expected an array of rollouts");
  if (!isArrayLike(advantages) || advantages.length !== rollouts.length) {
    throw invalid("advantages", `expected one advantage per rollout (${rollouts.length})`);
  }
  const present = ROLLOUT_FIELDS.filter((field) => rollouts[0]?.[field] !== undefined);
  const longest = rollouts.reduce((most, rollout, r) => Math.max(most, readRollout(rollout, r, present)), 0);
  const length = fixed ?? Math.max(2, longest);
  if (longest > length)
    throw invalid("options.length", `is ${length}, shorter than the longest rollout (${longest} tokens)`);
  return { ...packRows(rollouts, length, padId, present), advantages: Float64Array.from(advantages) };
}

/**
 * Validates rollout r (its arrays agree in length; it has the optional fields rollout 0 has) and returns its length.
 */
function readRollout(rollout: TrainRollout, r: number, present: readonly RolloutField[]): number {
  const parsed = parseOrThrow(rolloutSchema, rollout, `rollouts[${r}]`);
  const n = parsed.tokens.length;
  if (parsed.mask.length !== n)
    throw invalid(`rollouts[${r}].mask`, `has ${parsed.mask.length} entries but tokens has ${n}`);
  for (const field of ROLLOUT_FIELDS) {
    const values = parsed[field];
    if ((values !== undefined) !== present.includes(field)) {
      throw invalid(
        `rollouts[${r}].${field}`,
        `is ${values === undefined ? "missing" : "given"}, unlike rollouts[0]: give it for every rollout or none`,
      );
    }
    if (values !== undefined && values.length !== n)
      throw invalid(`rollouts[${r}].${field}`, `has ${values.length} entries but tokens has ${n}`);
  }
  return n;
}

/** The rollouts' arrays, right-padded to `length`: token ids and mask checked (typed arrays would truncate or wrap). */
function packRows(rollouts: readonly TrainRollout[], length: number, padId: number, present: readonly RolloutField[]) {
  const rows = rollouts.length;
  const tokens = new Int32Array(rows * length).fill(padId);
  const mask = new Uint8Array(rows * length);
  const arrays = Object.fromEntries(present.map((field) => [field, new Float64Array(rows * length)])) as Partial<
    Record<RolloutField, Float64Array>
  >;
  rollouts.forEach((rollout, r) => {
    const offset = r * length;
    for (let t = 0; t < rollout.tokens.length; t++) {
      // Checked here: the typed arrays below would truncate 1.5 to 1, or wrap −1, silently.
      const id = rollout.tokens[t]!;
      const m = rollout.mask[t]!;
      if (!Number.isInteger(id) || id < 0 || id > 2 ** 31 - 1)
        throw invalid(`rollouts[${r}].tokens[${t}]`, `token id ${id} is not an integer ≥ 0`);
      if (m !== 0 && m !== 1) throw invalid(`rollouts[${r}].mask[${t}]`, `mask entries must be 0 or 1, received ${m}`);
      tokens[offset + t] = id;
      mask[offset + t] = m;
    }
    for (const field of present) arrays[field]!.set(Float64Array.from(rollout[field]!), offset);
  });
  return { shape: [rows, length] as const, tokens, mask, ...arrays };
}

/**
 * One GRPO-RoC update: forward the batch through `model`, take each trained token's log-prob (tokenLogProbsTf,
 * analytic backward), the policy loss (policyLossTf, analytic gradient), backpropagate into the variables, clip
 * the global gradient norm when asked, and apply the optimizer. Returns the metrics as plain numbers, read from the
 * device in one transfer, and leaves no tensors behind (the optimizer's own state aside, created on its first step).
 *
 * The loss sees [B, L] positions, the last column and untrained tokens masked: aggregations with a fixed length
 * divisor (seq-mean-token-sum-norm, dr_grpo) divide by L − 1 unless `loss.normalizer.length` says otherwise.
 * `options` (and `batch`, `loss`) are strict: an unknown key is an error naming it. A batch with nothing to train
 * (B = 0, or no mask entry 1) applies no update at all: see TrainStepResult.skipped.
 */
export async function trainStep(options: TrainStepOptions): Promise<TrainStepResult> {
  const step = readTrainStep(options);
  if (step.batch.trainedTokens === 0)
    return skippedStep(step, step.batch.rows === 0 ? "empty batch" : "no trained tokens");
  const tensors: tf.Tensor[] = [];
  let grads: tf.NamedTensorMap = {};
  try {
    const pass = gradientPass(step, uploadBatch(step.batch, tensors));
    grads = pass.grads;
    // Reads the metric sums, the loss and the gradient norm in one transfer, and disposes them.
    const read = await readPolicyLossMetrics(pass.counts, [pass.value, pass.norm]);
    const [loss, norm] = read.extra as [number, number];
    // verl's rule: a step whose gradient norm is not finite is skipped.
    if (!Number.isFinite(norm)) {
      return { loss, metrics: read.metrics, gradNorm: norm, applied: false, skipped: "gradient norm not finite" };
    }
    grads = applyUpdate(step, grads, norm);
    return { loss, metrics: read.metrics, gradNorm: norm, applied: true, skipped: undefined };
  } finally {
    tf.dispose(grads);
    tf.dispose(tensors);
  }
}

/** trainStep's options, parsed; the batch validated and shifted. */
interface TrainStepCall {
  readonly options: TrainStepOptions;
  readonly parsed: z.output<typeof trainStepOptionsSchema>;
  /** The loss options, with the normalizer's length defaulting to L − 1 (the predicted positions). */
  readonly loss: PolicyLossOptions;
  readonly batch: ShiftedBatch;
  readonly withEntropy: boolean;
}

function readTrainStep(options: TrainStepOptions): TrainStepCall {
  const parsed = parseOrThrow(trainStepOptionsSchema, options, "options");
  const o = parseOrThrow(policyLossOptionsSchema, options.loss ?? {}, "options.loss");
  requireFloat32Options(o, "options.loss");
  if (parsed.temperature !== undefined) requireFloat32Temperature(parsed.temperature);
  const batch = readBatch(options.batch, o, parsed.vocabSize);
  const loss: PolicyLossOptions = {
    ...o,
    normalizer: { ...o.normalizer, length: o.normalizer.length ?? batch.length - 1 },
  };
  return { options, parsed, loss, batch, withEntropy: o.entropyCoef > 0 || options.entropy === true };
}

/** The result of a step with nothing to train: no model run, no optimizer call, every number 0. */
function skippedStep(step: TrainStepCall, skipped: TrainStepSkip): TrainStepResult {
  const zero: MetricSums = {
    tokens: 0,
    sequences: 0,
    clipped: 0,
    low: 0,
    high: 0,
    dual: 0,
    approxKl: 0,
    ratioMin: 0,
    ratioSum: 0,
    ratioMax: 0,
    klSum: 0,
    entropySum: 0,
  };
  const metrics = lossMetrics(zero, step.loss.kl !== null, step.withEntropy);
  return { loss: 0, metrics, gradNorm: 0, applied: false, skipped };
}

/** The batch's tensors (collected in `tensors`, for the caller to dispose). */
function uploadBatch(batch: ShiftedBatch, tensors: tf.Tensor[]) {
  const shape: [number, number] = [batch.rows, batch.length];
  const keep = <T extends tf.Tensor>(tensor: T): T => {
    tensors.push(tensor);
    return tensor;
  };
  const matrix = (data: Float32Array | undefined) => (data === undefined ? undefined : keep(tf.tensor2d(data, shape)));
  return {
    inputIds: keep(tf.tensor2d(batch.inputIds, shape, "int32")),
    targets: keep(tf.tensor2d(batch.targets, shape, "int32")),
    loss: {
      oldLogp: matrix(batch.oldLogp),
      advantages: batch.perTokenAdvantages ? matrix(batch.advantages)! : keep(tf.tensor1d(batch.advantages)),
      mask: matrix(batch.mask)!,
      refLogp: matrix(batch.refLogp),
      importanceWeights: matrix(batch.importanceWeights),
    },
  };
}

type BatchTensors = ReturnType<typeof uploadBatch>;

/** What a forward and backward pass leaves for the caller to read and dispose. */
interface GradientPass {
  readonly grads: tf.NamedTensorMap;
  readonly value: tf.Scalar;
  readonly counts: PolicyLossCounts;
  /** The global L2 norm of `grads`. */
  readonly norm: tf.Scalar;
}

/** The model, the log-probs and the loss forward, their gradient into the variables backward. */
function gradientPass(step: TrainStepCall, inputs: BatchTensors): GradientPass {
  const { parsed, batch, withEntropy } = step;
  let counts: PolicyLossCounts | undefined;
  try {
    const { value, grads } = gradientsOrCleanUp(() => {
      const logits = step.options.model(inputs.inputIds);
      checkLogits(logits, batch.rows, batch.length, parsed.vocabSize, batch.maxToken);
      const out = tokenLogProbsTf(logits, inputs.targets, {
        temperature: parsed.temperature ?? 1,
        entropy: withEntropy,
        kernels: parsed.kernels,
      });
      const [logp, entropy] = withEntropy
        ? (tf.unstack(out) as [tf.Tensor2D, tf.Tensor2D])
        : [out as tf.Tensor2D, undefined];
      checkTrainedLogProbs(logp, inputs.loss.mask, batch.length);
      return policyLossOp({ ...inputs.loss, logp, entropy }, step.loss, { onCounts: (c) => (counts = c) });
    }, parsed.variables);
    // variableGrads lists non-trainable variables it was given with a null gradient: leave them out.
    const nonNull = Object.fromEntries(Object.entries(grads).filter(([, g]) => g != null));
    return { grads: nonNull, value, counts: counts!, norm: globalNorm(nonNull) };
  } catch (error) {
    // The metric sums are kept (tf.keep) as soon as the loss is computed: free them if the pass fails after.
    if (counts !== undefined) tf.dispose(Object.values(counts).filter((c): c is tf.Scalar => c !== undefined));
    throw error;
  }
}

/**
 * A trained token whose logit is −Infinity (probability 0) has log-prob −Infinity, which the loss cannot take: the
 * error names the token (the logits were checked already, so nothing else makes a trained log-prob non-finite).
 */
function checkTrainedLogProbs(logp: tf.Tensor2D, mask: tf.Tensor2D, length: number): void {
  const [index] = firstFlagged(tf.logicalAnd(tf.equal(mask, 1), tf.logicalNot(tf.isFinite(logp))), []);
  checkValues([index], ([at]) => {
    const i = at![0]!;
    if (i >= logp.size) return;
    const [b, t] = [Math.floor(i / length), i % length];
    throw invalid(
      `batch.tokens[${b}][${t + 1}]`,
      `the model gives this trained token probability 0 (its logit at logits[${b}][${t}] is −Infinity): its ` +
        "log-prob is −Infinity, which the loss cannot take",
    );
  });
}

/** The global L2 norm of the gradients, a scalar on the device. */
function globalNorm(grads: tf.NamedTensorMap): tf.Scalar {
  const list = Object.values(grads);
  return tf.tidy(() =>
    list.length === 0 ? tf.scalar(0) : (tf.sqrt(tf.addN(list.map((g) => tf.sum(tf.square(g))))) as tf.Scalar),
  );
}

/** Clips the gradients to maxGradNorm when asked and applies them; returns the gradients it leaves to dispose. */
function applyUpdate(step: TrainStepCall, grads: tf.NamedTensorMap, norm: number): tf.NamedTensorMap {
  const maxGradNorm = step.parsed.maxGradNorm;
  let applied = grads;
  if (maxGradNorm !== undefined && norm > maxGradNorm) {
    // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6).
    const scale = maxGradNorm / (norm + 1e-6);
    applied = tf.tidy(() => Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.mul(g, scale)])));
    tf.dispose(grads);
  }
  step.options.optimizer.applyGradients(applied);
  return applied;
}

function checkLogits(
  logits: unknown,
  rows: number,
  length: number,
  vocabSize: number | undefined,
  maxToken: { id: number; index: number },
): asserts logits is tf.Tensor3D {
  if (!(logits instanceof tf.Tensor))
    throw invalid("model", `returned ${typeof logits}, expected a tf.Tensor of logits [${rows}, ${length}, V]`);
  const [b, t, v] = logits.shape;
  if (logits.rank !== 3 || b !== rows || t !== length) {
    throw invalid(
      "model",
      `returned logits of shape [${logits.shape.join(", ")}], expected [${rows}, ${length}, V] for input ids ` +
        `[${rows}, ${length}]`,
    );
  }
  if (logits.dtype !== "float32") throw invalid("model", `returned ${logits.dtype} logits, expected float32`);
  if (vocabSize !== undefined && v !== vocabSize)
    throw invalid("model", `returned logits over ${v} tokens, but options.vocabSize is ${vocabSize}`);
  if (maxToken.id >= v!) {
    throw invalid(
      `batch.tokens[${Math.floor(maxToken.index / length)}][${maxToken.index % length}]`,
      `token id ${maxToken.id} is not below the model's vocabulary size ${v}`,
    );
  }
}

/**
 * tf.variableGrads, except that an error thrown inside `f` does not leak: tfjs keeps the tensors its tape saved for
 * the backward pass until that pass runs, and when `f` throws it never does. This disposes them.
 */
function gradientsOrCleanUp(
  f: () => tf.Scalar,
  variables: readonly tf.Variable[] | undefined,
): { value: tf.Scalar; grads: tf.NamedTensorMap } {
  const engine = tf.engine() as unknown as {
    state?: { gradientDepth?: number; activeTape?: { saved?: tf.Tensor[] }[] | null };
  };
  const outermost = engine.state?.gradientDepth === 0;
  try {
    return tf.variableGrads(f, variables === undefined ? undefined : [...variables]);
  } catch (error) {
    const state = engine.state;
    if (outermost && state !== undefined && state.gradientDepth === 0 && Array.isArray(state.activeTape)) {
      for (const node of state.activeTape) tf.dispose(node.saved ?? []);
      state.activeTape = null;
    }
    throw error;
  }
}
