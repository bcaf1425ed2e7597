import * as z from "zod/mini";
import { invalid } from "./errors.js";

/**
 * Numbers as inputs take them: a plain array or any typed array (Float32Array, Float64Array, Int32Array…), read
 * without copying where the function allows.
 */
export type NumericArray = ArrayLike<number>;

export function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

/** A typed array of numbers (not of bigints): every element is a number by construction. */
function isNumberTypedArray(value: unknown): value is NumericArray {
  return (
    ArrayBuffer.isView(value) &&
    !(value instanceof DataView) &&
    !(value instanceof BigInt64Array) &&
    !(value instanceof BigUint64Array)
  );
}

/** A plain array or any typed array of numbers; elements are checked by the callers that need finiteness. */
export const numericArraySchema = z.custom<NumericArray>((value) => isNumberTypedArray(value) || Array.isArray(value), {
  message: "expected an array or a typed array of numbers",
});

/**
 * `value` as numbers: a typed array as it is, a plain array once every element is checked to be a number (null, a
 * string or a boolean is never read as one). NaN and ±Infinity are numbers: finiteness is the caller's rule.
 */
export function readNumbers(value: unknown, name: string): NumericArray {
  if (isNumberTypedArray(value)) return value;
  if (!Array.isArray(value)) throw invalid(name, "expected an array or a typed array of numbers");
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== "number") throw invalid(`${name}[${i}]`, `expected a number, received ${describeValue(v)}`);
  }
  return value as NumericArray;
}

/** What a value is, for an error message: small values as they are, the rest by type. */
export function describeValue(value: unknown): string {
  if (value === null || value === undefined || typeof value === "boolean" || typeof value === "number") {
    return String(value);
  }
  if (typeof value === "bigint") return `${value}n`;
  if (typeof value === "string")
    return `string (${JSON.stringify(value.length > 20 ? `${value.slice(0, 20)}…` : value)})`;
  if (Array.isArray(value)) return "array";
  return typeof value;
}

/** Copies `values` into a Float64Array, rejecting anything that is not a finite number. */
export function finiteFloat64(values: NumericArray, name: string, allowNaN = false): Float64Array {
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (typeof v !== "number") throw invalid(`${name}[${i}]`, `expected a number, received ${typeof v}`);
    if (!Number.isFinite(v) && !(allowNaN && Number.isNaN(v))) {
      throw invalid(`${name}[${i}]`, `expected a finite number, received ${v}`);
    }
    out[i] = v;
  }
  return out;
}

/** Python's round(): half to even, exact on the double it is given. */
export function roundHalfEven(x: number): number {
  const floor = Math.floor(x);
  const fraction = x - floor;
  if (fraction > 0.5) return floor + 1;
  if (fraction < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}

/*
 * e^x for the hot loops, inlined by V8 where Math.exp is a call into C that spills every live register of the loop
 * around it (a third of the policy loss's time). Tang's method: x = (64m + j)·ln2/64 + r with |r| ≤ ln2/128, so
 * e^x = 2^m · 2^(j/64) · e^r, the last from its Taylor series to r⁵ (truncation below 2⁻⁵⁴ relative). Within 2 ulp
 * of Math.exp (tested); |x| > 708, NaN and ±Infinity go to Math.exp.
 */
const EXP_SCALE = 64 / Math.LN2;
/**
 * ln2/64 in two parts (fdlibm's ln2_hi and ln2_lo over 64): the high part has 32 significant bits, so k·LN2_64_HIGH
 * is exact for |k| < 2²¹, and the low part carries ln2 beyond double precision.
 */
const LN2_64_HIGH = 0.6931471803691238 / 64;
const LN2_64_LOW = 1.9082149292705877e-10 / 64;
/** Adding then subtracting 1.5·2⁵² rounds a double of magnitude < 2⁵¹ to the nearest integer. */
const ROUNDING_SHIFT = 6755399441055744;
const TWO_TO_J_64 = Float64Array.from({ length: 64 }, (_, j) => 2 ** (j / 64));
const POW2_OFFSET = 1023;
const TWO_TO_M = Float64Array.from({ length: 2 * POW2_OFFSET + 1 }, (_, i) => 2 ** (i - POW2_OFFSET));

export function exp(x: number): number {
  if (!(x >= -708 && x <= 708)) return Math.exp(x);
  const k = x * EXP_SCALE + ROUNDING_SHIFT - ROUNDING_SHIFT;
  const r = x - k * LN2_64_HIGH - k * LN2_64_LOW;
  const p = r + r * r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120))));
  const kInt = k | 0;
  const j = kInt & 63;
  const scale = TWO_TO_J_64[j]!;
  return (scale + scale * p) * TWO_TO_M[((kInt - j) >> 6) + POW2_OFFSET]!;
}

/**
 * For backends that compute in float32: a finite float64 value beyond float32's range (about ±3.4e38) would become
 * ±Infinity there and give a wrong result, so it is refused at its position ([row][column] of `cols` columns, or
 * [index] without `cols`), naming float32 as the cause. Positions `skip` returns true for are never read.
 */
export function requireFloat32Range(
  values: NumericArray,
  name: string,
  cols?: number,
  skip?: (i: number) => boolean,
): void {
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isFinite(v) || Number.isFinite(Math.fround(v)) || skip?.(i) === true) continue;
    const at = cols === undefined ? `[${i}]` : `[${Math.floor(i / cols)}][${i % cols}]`;
    throw invalid(
      `${name}${at}`,
      `is ${v}, beyond the range of float32 (±3.4028235e38), which this backend computes in`,
    );
  }
}
