/**
 * What the correction functions share besides reading their [B, T] inputs (src/masked-inputs.ts) and rounding the
 * peers' float32 shares (`float32Quotient`, src/stats.ts): their result types, and the refusals of a metric with no
 * valid token or one that overflowed.
 */
import { invalid } from "../errors.js";
import type { Matrix } from "../tensor.js";

/** Per-position values and masks as the correction functions return them: flat row-major data and [B, T]. */
export type CorrectionMatrix = Matrix<Float64Array>;

/** Metrics under the peer's own names (`rollout_corr/rollout_is_mean`, `sampling/importance_sampling_ratio/max`…). */
export type CorrectionMetrics = Readonly<Record<string, number>>;

/** verl's and TRL's metrics call `.item()` on every value: one with no valid token to average is refused here. */
export function requireValidToken(tokens: number, name: string, peer: string): void {
  if (tokens === 0) {
    throw invalid(name, `selects no token; ${peer} needs at least one valid token (it raises ValueError)`);
  }
}

/** Unbiased (n − 1) standard deviation, as torch's `Tensor.std()`; 0 for fewer than two values (verl's guard). */
export function sampleStd(values: ArrayLike<number>): number {
  const n = values.length;
  if (n < 2) return 0;
  let sum = 0;
  for (let i = 0; i < n; i++) sum += values[i]!;
  const mean = sum / n;
  let squares = 0;
  for (let i = 0; i < n; i++) squares += (values[i]! - mean) ** 2;
  return Math.sqrt(squares / (n - 1));
}

/**
 * Refuses a metric that overflowed: the peers log `inf` or `nan` there (an unclamped exp of a log-ratio beyond
 * ~709), which grpo-roc never returns silently.
 */
export function requireFiniteMetrics(metrics: Record<string, number>, cause: string): void {
  for (const [name, value] of Object.entries(metrics)) {
    if (!Number.isFinite(value)) throw invalid(`metrics["${name}"]`, `is ${value}: ${cause}`);
  }
}
