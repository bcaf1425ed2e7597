/**
 * [B, T] inputs read against one 0/1 mask, as the correction functions and the token-level advantage estimators take
 * them: shapes agree with the first required matrix, every value the mask selects is finite, masked positions are
 * never read (the peers' golden inputs hold finite garbage there; a caller's may hold NaN).
 */
import { invalid, requireKnownKeys } from "./errors.js";
import type { NumericArray } from "./numeric.js";
import { countRowTokens, type Matrix, type MatrixInput, toMatrix } from "./tensor.js";

/** [B, T] inputs read against one mask: flat data by name, the mask and each row's valid-token count. */
export interface ReadMatrices {
  readonly shape: readonly [number, number];
  /** The matrices read, by name; an optional one that was left out is absent. */
  readonly values: Readonly<Record<string, NumericArray | undefined>>;
  readonly mask: NumericArray;
  readonly rowTokens: Int32Array;
  /** Valid (mask 1) tokens in all. */
  readonly tokens: number;
}

/** How `readMatrices` reads beyond its required matrices. */
export interface ReadMatricesOptions {
  /** [B, T] inputs that may be left out. */
  readonly optional?: readonly string[] | undefined;
  /** Whether the mask must be given; otherwise an omitted mask selects every token. */
  readonly maskRequired?: boolean | undefined;
  /** Other keys `inputs` may hold, read by the caller (per-row fields such as groupIds). */
  readonly otherKeys?: readonly string[] | undefined;
}

/**
 * Reads the named [B, T] inputs of `inputs` and its mask, checks that their shapes agree with the first required one
 * and that every value the mask selects is finite; unknown keys are errors naming the closest one.
 */
export function readMatrices(
  inputs: unknown,
  required: readonly string[],
  { optional = [], maskRequired = false, otherKeys = [] }: ReadMatricesOptions = {},
): ReadMatrices {
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) {
    const mask = maskRequired ? "a mask" : "an optional mask";
    throw invalid("inputs", `expected an object with ${required.join(", ")} and ${mask}`);
  }
  const record = inputs as Record<string, unknown>;
  requireKnownKeys(record, [...required, ...optional, "mask", ...otherKeys], "inputs");
  const given = (name: string): MatrixInput => {
    if (record[name] === undefined) throw invalid(`inputs.${name}`, "is required: a [B, T] matrix");
    return record[name] as MatrixInput;
  };
  const first = required[0]!;
  const reference = toMatrix(given(first), `inputs.${first}`);
  const [rows, cols] = reference.shape;
  const sameShape = (name: string): Matrix => {
    if (name === first) return reference;
    const matrix = toMatrix(given(name), `inputs.${name}`);
    if (matrix.shape[0] !== rows || matrix.shape[1] !== cols) {
      throw invalid(`inputs.${name}`, `has shape [${matrix.shape.join(", ")}] but ${first} has [${rows}, ${cols}]`);
    }
    return matrix;
  };
  const mask =
    maskRequired || record.mask !== undefined
      ? sameShape("mask")
      : { data: new Uint8Array(rows * cols).fill(1), shape: reference.shape };
  const rowTokens = countRowTokens(mask, "inputs.mask");
  const values: Record<string, NumericArray> = {};
  for (const name of [...required, ...optional]) {
    if (record[name] === undefined && optional.includes(name)) continue;
    const matrix = sameShape(name);
    requireFiniteWhereSelected(matrix.data, mask.data, cols, `inputs.${name}`);
    values[name] = matrix.data;
  }
  let tokens = 0;
  for (const count of rowTokens) tokens += count;
  return { shape: [rows, cols], values, mask: mask.data, rowTokens, tokens };
}

/** A value the mask selects must be finite: the peers would carry NaN into every weight, loss and metric. */
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
