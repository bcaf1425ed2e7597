import { invalid } from "../../errors.js";
import type { NumericArray } from "../../numeric.js";

/** verl's masked_whiten adds this to the variance, not to the std. */
const WHITEN_EPSILON = 1e-8;

/** Above this |value| the squares of deviations could overflow; the values are then scaled by a power of two. */
const LARGE = 2 ** 256;

/**
 * verl `masked_whiten(values, mask)` (verl/utils/torch_functional.py, b178a3c and 1dda039): over every token the
 * mask selects in the whole batch, (x − mean) · rsqrt(var_unbiased + 1e-8). Two float32 steps reproduced, as the peer
 * computes them with an int64 mask: the counts that divide (`mask.sum() + 1e-8`) are float32 (so the 1e-8 vanishes)
 * and the Bessel factor n/(n − 1) is an int/int division in float32. Returns a new array, 0 at mask-0 positions.
 *
 * Values above 2^256 in magnitude are scaled by a power of two first (exact), with the 1e-8 scaled alike: the same
 * bits as the formula wherever it does not overflow, and the right value where it would.
 *
 * @throws ValidationError at `inputs.mask` when the mask selects fewer than 2 tokens (verl's masked_var raises).
 */
export function verlMaskedWhiten(values: Float64Array, mask: NumericArray, count: number, who: string): Float64Array {
  if (count < 2) {
    throw invalid(
      "inputs.mask",
      `selects ${count} token${count === 1 ? "" : "s"} in the batch; ${who} whitens over the batch's valid tokens ` +
        "and needs at least 2 (verl's masked_var raises too)",
    );
  }
  let largest = 0;
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1 && Math.abs(values[i]!) > largest) largest = Math.abs(values[i]!);
  }
  const scale = largest > LARGE ? 2 ** -Math.floor(Math.log2(largest)) : 1;
  // torch: int64 count + 1e-8 is float32; for counts ≥ 1 that is fround(count) (the 1e-8 is below half an ulp).
  const divisor = Math.fround(count);
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
  const bessel = Math.fround(Math.fround(count) / Math.fround(count - 1));
  const variance = (squares / divisor) * bessel;
  const inverseStd = 1 / Math.sqrt(variance + WHITEN_EPSILON * scale * scale);
  const out = new Float64Array(values.length);
  // An infinite inverseStd (only when scaled, the 1e-8 underflowing) means every deviation is exactly 0.
  if (!Number.isFinite(inverseStd)) return out;
  for (let i = 0; i < values.length; i++) if (mask[i] === 1) out[i] = (values[i]! * scale - mean) * inverseStd;
  return out;
}
