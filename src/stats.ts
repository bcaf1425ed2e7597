export interface Moments {
  /** Number of values that entered the statistics (NaN values are skipped when allowed). */
  readonly count: number;
  readonly mean: number;
  /** Standard deviation; NaN when it is undefined (unbiased with one value). */
  readonly std: number;
  /**
   * The power of two the statistics were computed in (`powerOfTwoScale`; 1 for ordinary values), with the mean and
   * std in those units: dividing (r·scale − scaledMean) by (scaledStd + ε·scale) gives (r − mean)/(std + ε) even
   * where the std itself overflows float64 (|r| ≳ 1.3e308) or the squares underflow, and the same bits otherwise.
   */
  readonly scale: number;
  readonly scaledMean: number;
  readonly scaledStd: number;
}

export interface StdConvention {
  readonly unbiasedStd: boolean;
  /** TRL's nanstd computes the Bessel factor n/(n−1) as an int/int division in float32. */
  readonly besselFactorFloat32: boolean;
}

/**
 * A power of two that brings the largest |value| into [2^-500, 2^500]: squares of deviations then neither overflow
 * (|r| above ~1e154 did: [1e200, 0] had a variance of Infinity) nor underflow. Multiplying by a power of two is
 * exact, and the scale is 1 for every value in that range, so ordinary rewards give the same bits as without it.
 */
export function powerOfTwoScale(values: ArrayLike<number>): number {
  let largest = 0;
  for (let i = 0; i < values.length; i++) {
    const v = Math.abs(values[i]!);
    if (v > largest) largest = v;
  }
  if (!(largest > 0) || !Number.isFinite(largest)) return 1;
  const exponent = Math.floor(Math.log2(largest));
  // Subnormals (down to 2^-1074) are scaled by at most 2^1000: 2^1074 would be Infinity, and 0·Infinity NaN.
  if (exponent < -500) return 2 ** Math.min(-exponent, 1000);
  return exponent > 500 ? 2 ** -exponent : 1;
}

/**
 * a/b of two counts as torch divides them in float32 (an int by an int64 tensor, a share `(x > t).float().mean()`,
 * the Bessel factor n/(n − 1) of a float32 variance): each count and the quotient rounded to float32.
 *
 * @example float32Quotient(1, 3) // => 0.3333333432674408
 */
export function float32Quotient(a: number, b: number): number {
  return Math.fround(Math.fround(a) / Math.fround(b));
}

/** Mean and std over `values`, skipping NaN (callers reject NaN first unless missing rewards are allowed). */
export function moments(values: ArrayLike<number>, convention: StdConvention): Moments {
  const scale = powerOfTwoScale(values);
  let count = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    count++;
    sum += v * scale;
  }
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isNaN(v)) squares += (v * scale - mean) * (v * scale - mean);
  }
  let variance = squares / count;
  if (convention.unbiasedStd) {
    const bessel = count / (count - 1);
    variance *= convention.besselFactorFloat32 ? Math.fround(bessel) : bessel;
  }
  const scaledStd = Math.sqrt(variance);
  return { count, mean: mean / scale, std: scaledStd / scale, scale, scaledMean: mean, scaledStd };
}

/** Whether every value that is not NaN is the same (true for none or one). */
export function allEqual(values: ArrayLike<number>): boolean {
  let first = NaN;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    if (Number.isNaN(first)) first = v;
    else if (v !== first) return false;
  }
  return true;
}
