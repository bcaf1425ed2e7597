import type { Aggregation, Normalizer } from "./options.js";

/**
 * Every aggregation here is linear in the per-token losses: loss = Σ_b w_b · Σ_t mask[b, t] · ℓ[b, t]. Returns the
 * weight w_b of each valid token of row b, so the gradient is w_b · ∂ℓ/∂logp. A normaliser of 0 (no valid tokens
 * anywhere) gives weight 0: nothing to learn, rather than verl's 0/0 = NaN.
 */
export function rowWeights(rowTokens: Int32Array, length: number, mode: Aggregation, normalizer: Normalizer): Float64Array {
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
      return (count) => 1 / (count * (normalizer.sequences ?? local.rows) * steps);
    case "dr_grpo":
      return () => 1 / ((normalizer.sequences ?? local.rows) * length * steps);
  }
}

function safe(weight: number): number {
  return Number.isFinite(weight) ? weight : 0;
}

/** The whole batch's counts from its mask [B, T], to pass as `normalizer` to each of its micro-batches. */
export function batchNormalizer(mask: ArrayLike<number>, shape: readonly [number, number]): { tokens: number; sequences: number; length: number } {
  const [rows, cols] = shape;
  let tokens = 0;
  let sequences = 0;
  for (let b = 0; b < rows; b++) {
    let count = 0;
    for (let t = 0; t < cols; t++) count += mask[b * cols + t]!;
    tokens += count;
    if (count > 0) sequences++;
  }
  return { tokens, sequences, length: cols };
}
