import { z } from "zod";
import { invalid } from "./errors.js";

export type NumericArray = ArrayLike<number>;

export function isArrayLike(value: unknown): value is ArrayLike<unknown> {
  return Array.isArray(value) || (ArrayBuffer.isView(value) && !(value instanceof DataView));
}

/** A plain array or any typed array of numbers; elements are checked by the callers that need finiteness. */
export const numericArraySchema = z.custom<NumericArray>(isArrayLike, {
  message: "expected an array or a typed array of numbers",
});

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
