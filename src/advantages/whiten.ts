/**
 * verl `masked_whiten(values, mask)` (verl/utils/torch_functional.py, b178a3c and 1dda039), the one whitening of
 * REINFORCE++, GAE, REINFORCE++-baseline and GDPO: over every token the mask selects in the **whole batch**,
 * (x − mean) · rsqrt(var_unbiased + ε), then multiplied by the mask.
 */
import { invalid } from "../errors.js";
import type { NumericArray } from "../numeric.js";
import { float32Quotient } from "../stats.js";

const f32 = Math.fround;

/** verl's masked_whiten adds this to the variance, not to the std. */
export const VERL_WHITEN_EPSILON = 1e-8;

/** Above this |value| the sum of squared deviations could overflow; the values are then scaled by a power of two. */
const LARGE = 2 ** 256;

/**
 * verl's masked_whiten in float64, as the peer computes it with an int64 mask: the count that divides
 * (`mask.sum() + 1e-8`) is float32 (the 1e-8 vanishes) and so is the Bessel factor n/(n − 1).
 *
 * Values above 2^256 in magnitude are scaled by a power of two first, ε with them (exact): the same bits as the formula
 * wherever it does not overflow, and the right value where it would. Tiny values are not scaled up: against ε their
 * variance is negligible, as in the formula.
 *
 * @param values - Row-major [B·T] values; positions the mask does not select are never read.
 * @param mask - 0/1 of the same length.
 * @param maskPath - Names the mask in the error when it selects fewer than 2 tokens.
 * @returns A new array: the whitened values where the mask is 1, 0 elsewhere.
 * @throws ValidationError at `maskPath` when the mask selects fewer than 2 tokens (verl's masked_var raises).
 */
export function maskedWhiten(
  values: Float64Array,
  mask: NumericArray,
  epsilon: number,
  maskPath: string,
): Float64Array {
  const { divisor, bessel } = verlTokenCount(mask, maskPath);
  let largest = 0;
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1 && Math.abs(values[i]!) > largest) largest = Math.abs(values[i]!);
  }
  const scale = largest > LARGE ? 2 ** -Math.floor(Math.log2(largest)) : 1;
  let sum = 0;
  for (let i = 0; i < values.length; i++) if (mask[i] === 1) sum += values[i]! * scale;
  const mean = sum / divisor;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1) {
      const deviation = values[i]! * scale - mean;
      squares += deviation * deviation;
    }
  }
  const variance = (squares / divisor) * bessel;
  const inverseStd = 1 / Math.sqrt(variance + epsilon * scale * scale);
  const out = new Float64Array(values.length);
  // An infinite inverseStd (ε of 0, or underflowed by the scale) means every deviation is exactly 0.
  if (!Number.isFinite(inverseStd)) return out;
  for (let i = 0; i < values.length; i++) if (mask[i] === 1) out[i] = (values[i]! * scale - mean) * inverseStd;
  return out;
}

/**
 * `maskedWhiten` as verl runs it on float32 values (GDPO's reward dimensions): every sum, product and quotient
 * rounded to float32, as torch's float32 kernels (sequential sums) round them.
 */
export function maskedWhitenFloat32(
  values: Float32Array,
  mask: NumericArray,
  epsilon: number,
  maskPath: string,
): Float64Array {
  const { divisor, bessel } = verlTokenCount(mask, maskPath);
  let sum = 0;
  for (let i = 0; i < values.length; i++) if (mask[i] === 1) sum = f32(sum + values[i]!);
  const mean = f32(sum / divisor);
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1) {
      const deviation = f32(values[i]! - mean);
      squares = f32(squares + f32(deviation * deviation));
    }
  }
  const variance = f32(f32(squares / divisor) * bessel);
  const inverseStd = f32(1 / Math.sqrt(f32(variance + epsilon)));
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) if (mask[i] === 1) out[i] = f32(f32(values[i]! - mean) * inverseStd);
  return out;
}

/**
 * The batch's valid tokens n as verl divides by them: float32 n (int64 `mask.sum() + 1e-8`) and the float32 Bessel
 * factor n/(n − 1). Fewer than 2 is an error, as in verl's masked_var ("division by zero" in the Bessel factor).
 */
function verlTokenCount(mask: NumericArray, maskPath: string): { divisor: number; bessel: number } {
  let count = 0;
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) count++;
  if (count < 2) {
    throw invalid(
      maskPath,
      `selects ${count} token${count === 1 ? "" : "s"} in the batch; whitening over the batch's valid tokens ` +
        "(verl masked_whiten) needs at least 2, as verl's masked_var raises",
    );
  }
  return { divisor: f32(count), bessel: float32Quotient(count, count - 1) };
}
