import * as z from "zod/mini";
import { invalid, parseOrThrow } from "./errors.js";
import { describeValue, isArrayLike, type NumericArray, readNumbers } from "./numeric.js";

/** A row-major [rows, cols] matrix: nested arrays, or flat data with its shape. */
export type MatrixInput =
  | readonly NumericArray[]
  | { readonly data: NumericArray; readonly shape: readonly [number, number] };

/** A row-major [rows, cols] matrix as the library returns it: flat data and its shape. */
export interface Matrix<D extends NumericArray = NumericArray> {
  /** rows · cols values, row after row: entry [r, c] is data[r · cols + c]. */
  readonly data: D;
  /** [rows, cols]. */
  readonly shape: readonly [rows: number, cols: number];
}

/** A result matrix of `data` and a copy of `shape` (so that no caller's shape tuple is shared). */
export function matrixOf<D extends NumericArray>(data: D, shape: readonly [number, number]): Matrix<D> {
  return { data, shape: [shape[0], shape[1]] };
}

const flatMatrixSchema = z.strictObject({
  data: z.unknown(),
  shape: z.tuple([z.int().check(z.nonnegative()), z.int().check(z.nonnegative())]),
});

/** Normalises a matrix input to flat row-major data; ragged rows and shape mismatches are errors. */
export function toMatrix(input: MatrixInput, name: string): Matrix {
  if (Array.isArray(input)) {
    const rows = input.length;
    const data: number[] = [];
    let cols = 0;
    for (let r = 0; r < rows; r++) {
      const row = input[r] as unknown;
      if (!isArrayLike(row)) throw invalid(`${name}[${r}]`, "expected an array (a row of the matrix)");
      if (r === 0) cols = row.length;
      if (row.length !== cols)
        throw invalid(`${name}[${r}]`, `ragged rows: has ${row.length} entries, row 0 has ${cols}`);
      for (let c = 0; c < cols; c++) {
        const v = row[c];
        if (typeof v !== "number")
          throw invalid(`${name}[${r}][${c}]`, `expected a number, received ${describeValue(v)}`);
        data.push(v);
      }
    }
    return { data: Float64Array.from(data), shape: [rows, cols] };
  }
  const { data: raw, shape } = parseOrThrow(flatMatrixSchema, input, name);
  if (!isArrayLike(raw)) throw invalid(`${name}.data`, "expected an array or a typed array of numbers");
  const [rows, cols] = shape;
  if (raw.length !== rows * cols) {
    throw invalid(`${name}.data`, `has ${raw.length} entries but shape [${rows}, ${cols}] needs ${rows * cols}`);
  }
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i++) {
      const v: unknown = raw[i];
      if (typeof v !== "number") {
        throw invalid(
          `${name}[${Math.floor(i / cols)}][${i % cols}]`,
          `expected a number, received ${describeValue(v)}`,
        );
      }
    }
  }
  const data = readNumbers(raw, `${name}.data`);
  return { data, shape: [shape[0], shape[1]] };
}

/** The number of selected (1) entries in each row of a mask, checking that every entry is 0 or 1. */
export function countRowTokens(mask: Matrix, name: string): Int32Array {
  const [rows, cols] = mask.shape;
  const data = mask.data;
  const counts = new Int32Array(rows);
  for (let b = 0; b < rows; b++) {
    let count = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      const v = data[i];
      if (v === 1) count++;
      else if (v !== 0) throw invalid(`${name}[${b}][${i - b * cols}]`, `mask entries must be 0 or 1, received ${v}`);
    }
    counts[b] = count;
  }
  return counts;
}

/** Checks that every entry of a mask is 0 or 1. */
export function assertBinaryMask(mask: Matrix, name: string): void {
  countRowTokens(mask, name);
}
