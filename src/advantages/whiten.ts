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
/** Below this |value| the squared deviations could underflow; the values are then scaled up by a power of two. */
const SMALL = 2 ** -256;

/**
 * The power of two `maskedWhiten` computes in: 1 for a largest |value| in [2^-256, 2^256] (ordinary values keep
 * their bits), down for larger values, up for smaller ones, subnormals included (at most 2^1000, and with ε > 0 no
 * more than keeps ε·scale² finite).
 */
function whitenScale(largest: number, epsilon: number): number {
  if (largest > LARGE) return 2 ** -Math.floor(Math.log2(largest));
  if (!(largest > 0) || largest >= SMALL) return 1;
  let exponent = Math.min(-Math.floor(Math.log2(largest)), 1000);
  if (epsilon > 0) exponent = Math.min(exponent, Math.floor((1000 - Math.log2(epsilon)) / 2));
  return 2 ** Math.max(exponent, 0);
}

/**
 * verl's masked_whiten in float64, as the peer computes it with an int64 mask: the count that divides
 * (`mask.sum() + 1e-8`) is float32 (the 1e-8 vanishes) and so is the Bessel factor n/(n − 1).
 *
 * Values above 2^256 or all below 2^-256 in magnitude are scaled by a power of two first, ε with them (exact): the
 * same bits as the formula for ordinary values, and the right value where the squared deviations would overflow, or
 * underflow to 0 (with ε = 0, [1e-170, 0] would otherwise whiten to [0, 0] instead of ±1/√2).
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
  const scale = whitenScale(largest, epsilon);
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
  // As in float64: an infinite inverseStd (ε of 0 and a variance of 0) means every deviation is 0, not 0·∞ = NaN.
  if (!Number.isFinite(inverseStd)) return out;
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
