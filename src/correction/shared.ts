/**
 * What the correction functions share: reading [B, T] inputs against one mask (masked positions are never read), the
 * float32 rounding of the peers' `bool.float().mean()` metrics, and the refusal of a metric that overflowed.
 */
import { invalid, requireKnownKeys } from "../errors.js";
import type { NumericArray } from "../numeric.js";
import { countRowTokens, type Matrix, type MatrixInput, toMatrix } from "../tensor.js";

/** Per-position values and masks as the correction functions return them: flat row-major data and [B, T]. */
export type CorrectionMatrix = Matrix<Float64Array>;

/** Metrics under the peer's own names (`rollout_corr/rollout_is_mean`, `sampling/importance_sampling_ratio/max`…). */
export type CorrectionMetrics = Readonly<Record<string, number>>;

/** [B, T] inputs read against one mask: flat data by name, the mask and each row's valid-token count. */
export interface ReadMatrices {
  readonly shape: readonly [number, number];
  readonly values: Readonly<Record<string, NumericArray>>;
  readonly mask: NumericArray;
  readonly rowTokens: Int32Array;
  /** Valid (mask 1) tokens in all. */
  readonly tokens: number;
}

/**
 * Reads the named [B, T] inputs and the optional mask (omitted: every token counts), checks that their shapes agree
 * and that every value the mask selects is finite; unknown keys of `inputs` are errors naming the closest one.
 */
export function readMatrices(
  inputs: unknown,
  required: readonly string[],
  optional: readonly string[] = [],
  root = "inputs",
): ReadMatrices {
  if (typeof inputs !== "object" || inputs === null) {
    throw invalid(root, `expected an object with ${required.join(", ")} and an optional mask`);
  }
  const record = inputs as Record<string, unknown>;
  requireKnownKeys(record, [...required, ...optional, "mask"], root);
  const first = required[0]!;
  if (record[first] === undefined) throw invalid(`${root}.${first}`, "is required");
  const reference = toMatrix(record[first] as MatrixInput, `${root}.${first}`);
  const [rows, cols] = reference.shape;
  const read = (name: string): Matrix | undefined => {
    const input = record[name];
    if (input === undefined) return undefined;
    const matrix = name === first ? reference : toMatrix(input as MatrixInput, `${root}.${name}`);
    if (matrix.shape[0] !== rows || matrix.shape[1] !== cols) {
      throw invalid(`${root}.${name}`, `has shape [${matrix.shape.join(", ")}] but ${first} has [${rows}, ${cols}]`);
    }
    return matrix;
  };
  const mask = read("mask") ?? { data: new Uint8Array(rows * cols).fill(1), shape: reference.shape };
  const rowTokens = countRowTokens(mask, `${root}.mask`);
  const values: Record<string, NumericArray> = {};
  for (const name of [...required, ...optional]) {
    const matrix = read(name);
    if (matrix === undefined) {
      if (required.includes(name)) throw invalid(`${root}.${name}`, "is required");
      continue;
    }
    requireFiniteWhereSelected(matrix.data, mask.data, cols, `${root}.${name}`);
    values[name] = matrix.data;
  }
  let tokens = 0;
  for (const count of rowTokens) tokens += count;
  return { shape: [rows, cols], values, mask: mask.data, rowTokens, tokens };
}

/** A value the mask selects must be finite: the peers would carry NaN into every weight and metric of the batch. */
export function requireFiniteWhereSelected(values: NumericArray, mask: NumericArray, cols: number, name: string): void {
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1 && !Number.isFinite(values[i])) {
      throw invalid(
        `${name}[${Math.floor(i / cols)}][${i % cols}]`,
        `is ${values[i]} at a position the mask selects; only masked positions may hold non-finite values`,
      );
    }
  }
}

/** verl's and TRL's metrics call `.item()` on every value: one with no valid token to average is refused here. */
export function requireValidToken(tokens: number, name: string, peer: string): void {
  if (tokens === 0) {
    throw invalid(name, `selects no token; ${peer} needs at least one valid token (it raises ValueError)`);
  }
}

/**
 * A share the peer computes in float32 (`(x > t).float().mean()`, or a masked mean of a float32 0/1 tensor):
 * count/n rounded to float32, as the peer logs it.
 */
export function float32Share(count: number, n: number): number {
  return Math.fround(Math.fround(count) / Math.fround(n));
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

/** A [B, T] matrix of the given data. */
export function matrixOf(data: Float64Array, shape: readonly [number, number]): CorrectionMatrix {
  return { data, shape: [shape[0], shape[1]] };
}
