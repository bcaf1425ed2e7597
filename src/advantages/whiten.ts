import { invalid } from "../errors.js";
import { powerOfTwoScale } from "../stats.js";
import type { Matrix } from "../tensor.js";

const f32 = Math.fround;

/**
 * verl `masked_whiten(values, mask)` (verl/utils/torch_functional.py) over **every valid token of the batch**:
 * (x − mean)·rsqrt(var + ε), mean and unbiased variance over the tokens where mask is 1, as verl computes them in
 * float64: masked_mean's `count + 1e-8` is float32 (so it is the count), and so is the Bessel factor n/(n−1).
 * Every position is whitened, masked ones too (callers multiply by the mask). Fewer than two valid tokens is an
 * error, as in verl's masked_var; a variance beyond float64 is refused rather than whitened to 0.
 *
 * @param values - Row-major values, as many as the mask has entries.
 * @param rewardPath - Names the input at fault when the variance overflows (`rewards`).
 */
export function maskedWhiten(
  values: Float64Array,
  mask: Matrix,
  maskPath: string,
  rewardPath: string,
  epsilon: number,
): Float64Array {
  const count = requireTwoTokens(mask, maskPath);
  const m = mask.data;
  // Values near ±1e308 are scaled by a power of two first (exact; 1 for ordinary values, which then give verl's bits):
  // whitening is scale-free but for ε, which is then scaled alike and is negligible against such a variance.
  const scale = powerOfTwoScale(values);
  let sum = 0;
  for (let i = 0; i < values.length; i++) if (m[i] === 1) sum += values[i]! * scale;
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    if (m[i] === 1) squares += (values[i]! * scale - mean) * (values[i]! * scale - mean);
  }
  const variance = (squares / count) * f32(count / (count - 1));
  if (!Number.isFinite(variance)) {
    throw invalid(rewardPath, "its spread is too large to whiten in float64 (the token variance overflows)");
  }
  const inverseStd = 1 / Math.sqrt(variance + epsilon * scale * scale);
  return values.map((v) => (v * scale - mean) * inverseStd);
}

/**
 * `maskedWhiten` as verl runs it on float32 values (GDPO's reward dimensions): every sum, product and quotient
 * rounded to float32.
 */
export function maskedWhitenFloat32(
  values: Float32Array,
  mask: Matrix,
  maskPath: string,
  epsilon: number,
): Float32Array {
  const count = requireTwoTokens(mask, maskPath);
  const m = mask.data;
  let sum = 0;
  for (let i = 0; i < values.length; i++) if (m[i] === 1) sum = f32(sum + values[i]!);
  const mean = f32(sum / count);
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    if (m[i] === 1) {
      const centred = f32(values[i]! - mean);
      squares = f32(squares + f32(centred * centred));
    }
  }
  const variance = f32(f32(squares / count) * f32(count / (count - 1)));
  const inverseStd = f32(1 / Math.sqrt(f32(variance + epsilon)));
  return values.map((v) => f32(f32(v - mean) * inverseStd));
}

/** verl's masked_var raises with 0 or 1 valid token ("division by zero" in the Bessel factor). */
function requireTwoTokens(mask: Matrix, maskPath: string): number {
  let count = 0;
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i] === 1) count++;
  if (count < 2) {
    throw invalid(
      maskPath,
      `has ${count} valid token${count === 1 ? "" : "s"}; whitening over the batch's tokens (verl masked_whiten) ` +
        "needs at least 2",
    );
  }
  return count;
}
