import * as tf from "@tensorflow/tfjs";
import { z } from "zod";
import {
  invalid,
  isArrayLike,
  type NumericArray,
  parseOrThrow,
  type PolicyLossMetrics,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  policyLossOptionsSchema,
  resolvePolicyLossOptions,
} from "../backends/contract.js";
import { policyLossTf, readPolicyLossMetrics, type PolicyLossCounts } from "./differentiable.js";
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
  readonly tokens: NumericArray;
  readonly mask: NumericArray;
  readonly oldLogp?: NumericArray | undefined;
  readonly refLogp?: NumericArray | undefined;
  readonly importanceWeights?: NumericArray | undefined;
}

export interface TrainStepOptions {
  /** Token ids [B, L] (int32) → next-token logits [B, L, V] (float32): logits[b, t] predict token t + 1. */
  readonly model: (inputIds: tf.Tensor2D) => tf.Tensor3D;
  readonly batch: TrainBatch;
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

export interface TrainStepResult {
  /** The loss of this step's forward pass (before the update). */
  readonly loss: number;
  /**
   * The policy-loss metrics of the forward pass (clip fractions, approximate KL, ratios, KL and entropy when computed).
   */
  readonly metrics: PolicyLossMetrics;
  /** The global L2 norm of the gradient over `variables`, before clipping. */
  readonly gradNorm: number;
  /** False when the gradient norm was not finite and the update was skipped (verl's rule). */
  readonly applied: boolean;
}

const shapeSchema = z.tuple([z.number().int().positive(), z.number().int().min(2)]);
const arraySchema = z.custom<NumericArray>(isArrayLike, { message: "expected an array or a typed array of numbers" });

const trainBatchSchema = z.object({
  shape: shapeSchema,
  tokens: arraySchema,
  mask: arraySchema,
  oldLogp: arraySchema.optional(),
  advantages: arraySchema,
  refLogp: arraySchema.optional(),
  importanceWeights: arraySchema.optional(),
});

const trainStepOptionsSchema = z.object({
  model: z.custom<TrainStepOptions["model"]>((value) => typeof value === "function", {
    message: "expected a function (inputIds) => logits",
  }),
  batch: z.looseObject({}),
  optimizer: z.custom<tf.Optimizer>((value) => value instanceof tf.Optimizer, {
    message: "expected a tf.Optimizer (tf.train.adam(…), …)",
  }),
  loss: z.looseObject({}).optional(),
  temperature: z.number().positive().finite().optional(),
  variables: z
    .array(z.custom<tf.Variable>((value) => value instanceof tf.Variable, { message: "expected a tf.Variable" }))
    .min(1)
    .optional(),
  maxGradNorm: z.number().positive().optional(),
  vocabSize: z.number().int().positive().optional(),
  entropy: z.boolean().optional(),
  kernels: z.enum(["auto", "wgsl", "tfjs"]).optional(),
});

/** A validated batch, shifted to the predicted positions: column t of each array is about token t + 1. */
interface ShiftedBatch {
  readonly rows: number;
  readonly length: number;
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
 * [row][column] it is at. Values at masked positions (mask 0) are never read, so they may hold anything.
 */
export function validateTrainBatch(batch: TrainBatch, loss: PolicyLossOptionsInput = {}, vocabSize?: number): void {
  readBatch(batch, resolvePolicyLossOptions(loss), vocabSize);
}

function readBatch(input: TrainBatch, o: PolicyLossOptions, vocabSize: number | undefined): ShiftedBatch {
  const batch = parseOrThrow(trainBatchSchema, input, "batch");
  const [rows, length] = batch.shape;
  const size = rows * length;
  const sized = (values: NumericArray | undefined, name: string): NumericArray | undefined => {
    if (values !== undefined && values.length !== size) {
      throw invalid(`batch.${name}`, `has ${values.length} entries but shape [${rows}, ${length}] needs ${size}`);
    }
    return values;
  };
  const tokens = sized(batch.tokens, "tokens")!;
  const mask = sized(batch.mask, "mask")!;
  const oldLogp = sized(batch.oldLogp, "oldLogp");
  const refLogp = sized(batch.refLogp, "refLogp");
  const importanceWeights = sized(batch.importanceWeights, "importanceWeights");
  if (o.kl !== null && refLogp === undefined) {
    throw invalid("batch.refLogp", "options.kl is set: give the reference policy's log-probs");
  }
  // L ≥ 2, so B·L ≠ B: the length alone says which.
  const perTokenAdvantages = batch.advantages.length === size;
  if (!perTokenAdvantages && batch.advantages.length !== rows) {
    throw invalid(
      "batch.advantages",
      `has ${batch.advantages.length} entries: give one per rollout (${rows}) or one per token (${size})`,
    );
  }
  const layout: BatchLayout = { rows, length, mask };
  const { inputIds, maxToken } = readInputIds(tokens, layout, vocabSize);
  const rowTokens = readTrainMask(layout);
  requireFiniteWhereTrained(layout, oldLogp, "oldLogp");
  requireFiniteWhereTrained(layout, refLogp, "refLogp");
  requireFiniteWhereTrained(layout, importanceWeights, "importanceWeights");
  if (perTokenAdvantages) {
    requireFiniteWhereTrained(layout, batch.advantages, "advantages");
  } else {
    for (let b = 0; b < rows; b++) {
      if (rowTokens[b]! > 0 && !Number.isFinite(batch.advantages[b])) {
        throw invalid(`batch.advantages[${b}]`, `is ${batch.advantages[b]}; advantages must be finite`);
      }
    }
  }
  const shift = (values: NumericArray | undefined) => shiftToPredictions(layout, values);
  return {
    rows,
    length,
    inputIds,
    targets: shiftTargets(layout, inputIds),
    mask: shift(mask)!,
    oldLogp: shift(oldLogp),
    advantages: perTokenAdvantages
      ? shift(batch.advantages)!
      : Float32Array.from(batch.advantages, (a, b) => (rowTokens[b]! > 0 ? a : 0)),
    perTokenAdvantages,
    refLogp: shift(refLogp),
    importanceWeights: shift(importanceWeights),
    maxToken,
  };
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

function requireFiniteWhereTrained(layout: BatchLayout, values: NumericArray | undefined, name: string): void {
  if (values === undefined) return;
  for (let i = 0; i < layout.rows * layout.length; i++) {
    if (layout.mask[i] === 1 && !Number.isFinite(values[i])) {
      throw invalid(trainPath(layout, name, i), `is ${values[i]} at a position the mask selects; it must be finite`);
    }
  }
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

/**
 * Packs rollouts of different lengths into a right-padded TrainBatch (rows in the order given, so that
 * `advantages` from rocPipeline stay aligned with them). Padding gets token `padId` (default 0) and mask 0.
 */
export function packTrainBatch(
  rollouts: readonly TrainRollout[],
  advantages: NumericArray,
  options: { readonly padId?: number; readonly length?: number } = {},
): TrainBatch {
  const { padId, length: fixed } = parseOrThrow(
    z.object({ padId: z.number().int().nonnegative().default(0), length: z.number().int().min(2).optional() }),
    options,
    "options",
  );
  if (!Array.isArray(rollouts) || rollouts.length === 0)
    throw invalid("rollouts", "expected a non-empty array of rollouts");
  if (!isArrayLike(advantages) || advantages.length !== rollouts.length) {
    throw invalid("advantages", `expected one advantage per rollout (${rollouts.length})`);
  }
  const fields = ["oldLogp", "refLogp", "importanceWeights"] as const;
  const present = fields.filter((field) => rollouts[0]![field] !== undefined);
  let longest = 0;
  rollouts.forEach((rollout, r) => {
    const parsed = parseOrThrow(
      z.object({
        tokens: arraySchema,
        mask: arraySchema,
        oldLogp: arraySchema.optional(),
        refLogp: arraySchema.optional(),
        importanceWeights: arraySchema.optional(),
      }),
      rollout,
      `rollouts[${r}]`,
    );
    const n = parsed.tokens.length;
    if (parsed.mask.length !== n)
      throw invalid(`rollouts[${r}].mask`, `has ${parsed.mask.length} entries but tokens has ${n}`);
    for (const field of fields) {
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
    longest = Math.max(longest, n);
  });
  const length = fixed ?? Math.max(2, longest);
  if (longest > length)
    throw invalid("options.length", `is ${length}, shorter than the longest rollout (${longest} tokens)`);
  const rows = rollouts.length;
  const tokens = new Int32Array(rows * length).fill(padId);
  const mask = new Uint8Array(rows * length);
  const arrays = Object.fromEntries(present.map((field) => [field, new Float64Array(rows * length)])) as Partial<
    Record<(typeof fields)[number], Float64Array>
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
  return { shape: [rows, length], tokens, mask, advantages: Float64Array.from(advantages), ...arrays };
}

/**
 * One GRPO-RoC update: forward the batch through `model`, take each trained token's log-prob (tokenLogProbsTf,
 * analytic backward), the policy loss (policyLossTf, analytic gradient), backpropagate into the variables, clip
 * the global gradient norm when asked, and apply the optimizer. Returns the metrics as plain numbers, read from the
 * device in one transfer, and leaves no tensors behind (the optimizer's own state aside, created on its first step).
 *
 * The loss sees [B, L] positions, the last column and untrained tokens masked: aggregations with a fixed length
 * divisor (seq-mean-token-sum-norm, dr_grpo) divide by L − 1 unless `loss.normalizer.length` says otherwise.
 */
export async function trainStep(options: TrainStepOptions): Promise<TrainStepResult> {
  const parsed = parseOrThrow(trainStepOptionsSchema, options, "options");
  const o = parseOrThrow(policyLossOptionsSchema, options.loss ?? {}, "options.loss");
  const batch = readBatch(options.batch, o, parsed.vocabSize);
  const { rows, length } = batch;
  const lossOptions: PolicyLossOptions = {
    ...o,
    normalizer: { ...o.normalizer, length: o.normalizer.length ?? length - 1 },
  };
  const withEntropy = o.entropyCoef > 0 || options.entropy === true;
  const temperature = parsed.temperature ?? 1;
  const shape: [number, number] = [rows, length];

  const constants: tf.Tensor[] = [];
  const constant = <T extends tf.Tensor>(tensor: T): T => {
    constants.push(tensor);
    return tensor;
  };
  let counts: PolicyLossCounts | undefined;
  let value: tf.Scalar | undefined;
  let grads: tf.NamedTensorMap = {};
  try {
    const inputIds = constant(tf.tensor2d(batch.inputIds, shape, "int32"));
    const targets = constant(tf.tensor2d(batch.targets, shape, "int32"));
    const optional = (data: Float32Array | undefined) =>
      data === undefined ? undefined : constant(tf.tensor2d(data, shape));
    const lossInputs = {
      oldLogp: optional(batch.oldLogp),
      advantages: batch.perTokenAdvantages
        ? constant(tf.tensor2d(batch.advantages, shape))
        : constant(tf.tensor1d(batch.advantages)),
      mask: constant(tf.tensor2d(batch.mask, shape)),
      refLogp: optional(batch.refLogp),
      importanceWeights: optional(batch.importanceWeights),
    };

    ({ value, grads } = gradientsOrCleanUp(() => {
      const logits = options.model(inputIds);
      checkLogits(logits, rows, length, parsed.vocabSize, batch.maxToken);
      const out = tokenLogProbsTf(logits, targets, {
        temperature,
        entropy: withEntropy,
        ...(parsed.kernels !== undefined ? { kernels: parsed.kernels } : {}),
      });
      const [logp, entropy] = withEntropy
        ? (tf.unstack(out) as [tf.Tensor2D, tf.Tensor2D])
        : [out as tf.Tensor2D, undefined];
      return policyLossTf({ ...lossInputs, logp, entropy }, lossOptions, { onCounts: (c) => (counts = c) });
    }, parsed.variables));

    // variableGrads lists non-trainable variables it was given with a null gradient: leave them out.
    grads = Object.fromEntries(Object.entries(grads).filter(([, g]) => g != null));
    const gradList = Object.values(grads);
    const gradNorm = tf.tidy(
      () =>
        (gradList.length === 0
          ? tf.scalar(0)
          : tf.sqrt(tf.addN(gradList.map((g) => tf.sum(tf.square(g)))))) as tf.Scalar,
    );
    const read = await readPolicyLossMetrics(counts!, [value, gradNorm]);
    counts = undefined;
    value = undefined;
    const [loss, norm] = read.extra as [number, number];
    const applied = Number.isFinite(norm);
    if (applied) {
      const maxGradNorm = parsed.maxGradNorm;
      if (maxGradNorm !== undefined && norm > maxGradNorm) {
        // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6).
        const scale = maxGradNorm / (norm + 1e-6);
        const clipped = tf.tidy(() =>
          Object.fromEntries(Object.entries(grads).map(([name, g]) => [name, tf.mul(g, scale)])),
        );
        tf.dispose(grads);
        grads = clipped as tf.NamedTensorMap;
      }
      options.optimizer.applyGradients(grads);
    }
    return { loss, metrics: read.metrics, gradNorm: norm, applied };
  } finally {
    tf.dispose(grads);
    if (value !== undefined) value.dispose();
    if (counts !== undefined) tf.dispose(Object.values(counts).filter((c): c is tf.Scalar => c !== undefined));
    tf.dispose(constants);
  }
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
