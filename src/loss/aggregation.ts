import * as z from "zod/mini";
import { pure } from "../pure.js";
import { invalid, parseOrThrow } from "../errors.js";
import { assertBinaryMask, countRowTokens, toMatrix, type MatrixInput } from "../tensor.js";
import { AGGREGATIONS, normalizerSchema, type Aggregation, type Normalizer, type NormalizerInput } from "./options.js";

/**
 * Every aggregation here is linear in the per-token losses: loss = Σ_b w_b · Σ_t mask[b, t] · ℓ[b, t]. Returns the
 * weight w_b of each valid token of row b, so the gradient is w_b · ∂ℓ/∂logp. A call without valid tokens has no
 * weights to give (loss 0, rather than verl's 0/0 = NaN); a normaliser that cannot describe a batch containing
 * this call is refused (`requireConsistentNormalizer`).
 */
export function rowWeights(
  rowTokens: Int32Array,
  length: number,
  mode: Aggregation,
  normalizer: Normalizer,
): Float64Array {
  const rows = rowTokens.length;
  let tokens = 0;
  let nonEmpty = 0;
  for (const count of rowTokens) {
    tokens += count;
    if (count > 0) nonEmpty++;
  }
  const local = { tokens, nonEmpty, rows, length };
  requireConsistentNormalizer(normalizer, local);
  const weightOf = tokenWeight(mode, normalizer, local);
  const weights = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    const count = rowTokens[b]!;
    if (count > 0) weights[b] = weightOf(count);
  }
  return weights;
}

/** The weight of one valid token of a row with `count` valid tokens, for each mode (verl's and TRL's formulas). */
function tokenWeight(
  mode: Aggregation,
  normalizer: Normalizer,
  local: { tokens: number; nonEmpty: number; rows: number; length: number },
): (count: number) => number {
  requireVerlCounts(mode, normalizer);
  const { dpSize, gradientAccumulationSteps: steps } = normalizer;
  const tokens = normalizer.tokens ?? local.tokens;
  const length = normalizer.length ?? local.length;
  switch (mode) {
    case "token-mean":
      return () => dpSize / tokens;
    case "token-sum":
      return () => dpSize;
    case "bnpo":
      return () => 1 / (Math.max(tokens, 1) * steps);
    case "dapo":
      return () => 1 / Math.max(tokens, 1);
    case "seq-mean-token-sum":
      return () => dpSize / (normalizer.sequences ?? local.nonEmpty);
    case "seq-mean-token-mean":
      return (count) => dpSize / (count * (normalizer.sequences ?? local.nonEmpty));
    case "seq-mean-token-sum-norm":
      // verl 1dda039 shares seq-mean-token-sum's branch, then divides by the length; b178a3c divided by it alone.
      if (normalizer.verlVersion === "b178a3c") return () => 1 / length;
      return () => dpSize / (normalizer.sequences ?? local.nonEmpty) / length;
    case "grpo":
      // TRL counts empty rows in the mean over sequences.
      return (count) => 1 / (count * (normalizer.rows ?? local.rows) * steps);
    case "dr_grpo":
      return () => 1 / ((normalizer.rows ?? local.rows) * length * steps);
  }
}

/**
 * The rules of verl's agg_loss on its options, for every backend (they read no data): from verl 1dda039, dp_size > 1
 * without the batch's count raises ValueError (token-mean needs `tokens`, the seq-mean-* modes `sequences`); at
 * b178a3c it scaled this call's own count. (token-sum, new in 1dda039, is offered at either version: Σ · dpSize.)
 */
export function requireVerlCounts(mode: Aggregation, normalizer: Normalizer): void {
  if (normalizer.verlVersion === "b178a3c" || normalizer.dpSize === 1) return;
  const field = mode === "token-mean" ? "tokens" : mode.startsWith("seq-mean-") ? "sequences" : undefined;
  if (field === undefined || normalizer[field] !== undefined) return;
  const peer = field === "tokens" ? "batch_num_tokens" : "global_batch_size";
  throw invalid(
    `options.normalizer.${field}`,
    `is required with dpSize ${normalizer.dpSize} and aggregation "${mode}" (verl 1dda039 raises "${peer} is ` +
      `required when dp_size > 1"): give the whole batch's count, or normalizer.verlVersion "b178a3c" to scale ` +
      "this call's own count by dpSize",
  );
}

/**
 * The whole batch's counts include this call's: a normaliser with fewer tokens, non-empty rows or rows than this
 * call alone has (`tokens: 1` with 4 valid tokens would scale the loss 4×; `tokens: 0` would zero it) cannot be
 * the batch's.
 */
function requireConsistentNormalizer(
  normalizer: Normalizer,
  local: { tokens: number; nonEmpty: number; rows: number },
): void {
  const atLeast = [
    ["tokens", normalizer.tokens, local.tokens, "valid tokens"],
    ["sequences", normalizer.sequences, local.nonEmpty, "non-empty rows"],
    ["rows", normalizer.rows, local.rows, "rows"],
  ] as const;
  for (const [field, given, here, what] of atLeast) {
    if (given !== undefined && given < here) {
      throw invalid(
        `options.normalizer.${field}`,
        `is ${given} but this call alone has ${here} ${what}: the whole batch's count must include them`,
      );
    }
  }
}

/**
 * The whole batch's counts from its mask [B, T]: pass the result as `normalizer` to each of its micro-batches and
 * their losses and gradients sum to the whole batch's, in every aggregation mode. An empty batch ([0, 0]: RoC kept
 * nothing) has no length; its normaliser gives every call loss 0.
 */
export function batchNormalizer(maskInput: MatrixInput): {
  tokens: number;
  sequences: number;
  rows: number;
  length: number | undefined;
} {
  const mask = toMatrix(maskInput, "mask");
  const [rows, cols] = mask.shape;
  let tokens = 0;
  let sequences = 0;
  for (const count of countRowTokens(mask, "mask")) {
    tokens += count;
    if (count > 0) sequences++;
  }
  return { tokens, sequences, rows, length: cols > 0 ? cols : undefined };
}

const aggregateOptionsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    mask: z.optional(z.unknown()),
    aggregation: z._default(z.enum(AGGREGATIONS), "token-mean"),
    normalizer: normalizerSchema,
  }),
);

/**
 * Aggregates any per-token quantity [B, T] the way the loss does (to log entropy, or add a term of your own):
 * the value and its gradient with respect to each entry (0 where the mask is 0; masked entries are never read).
 */
export function aggregate(
  values: MatrixInput,
  options: {
    readonly mask?: MatrixInput;
    readonly aggregation?: Aggregation;
    readonly normalizer?: NormalizerInput;
  } = {},
): { readonly value: number; readonly grad: Float64Array } {
  const { aggregation, normalizer } = parseOrThrow(aggregateOptionsSchema, options, "options");
  const v = toMatrix(values, "values");
  const [rows, cols] = v.shape;
  const mask = options.mask === undefined ? undefined : toMatrix(options.mask, "options.mask");
  if (mask !== undefined) {
    if (mask.shape[0] !== rows || mask.shape[1] !== cols)
      throw invalid("options.mask", `has shape [${mask.shape.join(", ")}] but values have [${rows}, ${cols}]`);
    assertBinaryMask(mask, "options.mask");
  }
  const selected = (i: number) => mask === undefined || mask.data[i] === 1;
  const rowTokens = new Int32Array(rows);
  for (let i = 0; i < rows * cols; i++) {
    if (!selected(i)) continue;
    if (!Number.isFinite(v.data[i]))
      throw invalid(`values[${Math.floor(i / cols)}][${i % cols}]`, `is ${v.data[i]} at a position the mask selects`);
    const row = Math.floor(i / cols);
    rowTokens[row] = rowTokens[row]! + 1;
  }
  const weights = rowWeights(rowTokens, cols, aggregation, normalizer);
  const grad = new Float64Array(rows * cols);
  let value = 0;
  for (let i = 0; i < rows * cols; i++) {
    if (!selected(i)) continue;
    const w = weights[Math.floor(i / cols)]!;
    value += w * v.data[i]!;
    grad[i] = w;
  }
  return { value, grad };
}
