import { z } from "zod";
import { invalid, parseOrThrow } from "../errors.js";
import { assertBinaryMask, countRowTokens, toMatrix, type MatrixInput } from "../tensor.js";
import { AGGREGATIONS, normalizerSchema, type Aggregation, type Normalizer, type NormalizerInput } from "./options.js";

/**
 * Every aggregation here is linear in the per-token losses: loss = Σ_b w_b · Σ_t mask[b, t] · ℓ[b, t]. Returns the
 * weight w_b of each valid token of row b, so the gradient is w_b · ∂ℓ/∂logp. A normaliser of 0 (no valid tokens
 * anywhere) gives weight 0: nothing to learn, rather than verl's 0/0 = NaN.
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
  const weightOf = tokenWeight(mode, normalizer, { tokens, nonEmpty, rows, length });
  const weights = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    const count = rowTokens[b]!;
    if (count > 0) weights[b] = safe(weightOf(count));
  }
  return weights;
}

/** The weight of one valid token of a row with `count` valid tokens, for each mode (verl's and TRL's formulas). */
function tokenWeight(
  mode: Aggregation,
  normalizer: Normalizer,
  local: { tokens: number; nonEmpty: number; rows: number; length: number },
): (count: number) => number {
  const { dpSize, gradientAccumulationSteps: steps } = normalizer;
  const tokens = normalizer.tokens ?? local.tokens;
  const length = normalizer.length ?? local.length;
  switch (mode) {
    case "token-mean":
      return () => dpSize / tokens;
    case "bnpo":
      return () => 1 / (Math.max(tokens, 1) * steps);
    case "dapo":
      return () => 1 / Math.max(tokens, 1);
    case "seq-mean-token-sum":
      return () => dpSize / (normalizer.sequences ?? local.nonEmpty);
    case "seq-mean-token-mean":
      return (count) => dpSize / (count * (normalizer.sequences ?? local.nonEmpty));
    case "seq-mean-token-sum-norm":
      return () => 1 / length;
    case "grpo":
      // TRL counts empty rows in the mean over sequences.
      return (count) => 1 / (count * (normalizer.rows ?? local.rows) * steps);
    case "dr_grpo":
      return () => 1 / ((normalizer.rows ?? local.rows) * length * steps);
  }
}

function safe(weight: number): number {
  return Number.isFinite(weight) ? weight : 0;
}

/**
 * The whole batch's counts from its mask [B, T]: pass the result as `normalizer` to each of its micro-batches and
 * their losses and gradients sum to the whole batch's, in every aggregation mode.
 */
export function batchNormalizer(maskInput: MatrixInput): {
  tokens: number;
  sequences: number;
  rows: number;
  length: number;
} {
  const mask = toMatrix(maskInput, "mask");
  const [rows, cols] = mask.shape;
  let tokens = 0;
  let sequences = 0;
  for (const count of countRowTokens(mask, "mask")) {
    tokens += count;
    if (count > 0) sequences++;
  }
  return { tokens, sequences, rows, length: cols };
}

const aggregateOptionsSchema = z.strictObject({
  mask: z.unknown().optional(),
  aggregation: z.enum(AGGREGATIONS).default("token-mean"),
  normalizer: normalizerSchema,
});

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
