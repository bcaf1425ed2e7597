export interface Moments {
  /** Number of values that entered the statistics (NaN values are skipped when allowed). */
  readonly count: number;
  readonly mean: number;
  /** Standard deviation; NaN when it is undefined (unbiased with one value). */
  readonly std: number;
}

export interface StdConvention {
  readonly unbiasedStd: boolean;
  /** TRL's nanstd computes the Bessel factor n/(n−1) as an int/int division in float32. */
  readonly besselFactorFloat32: boolean;
}

/** Mean and std over `values`, skipping NaN (callers reject NaN first unless missing rewards are allowed). */
export function moments(values: ArrayLike<number>, convention: StdConvention): Moments {
  let count = 0;
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (Number.isNaN(v)) continue;
    count++;
    sum += v;
  }
  const mean = sum / count;
  let squares = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (!Number.isNaN(v)) squares += (v - mean) * (v - mean);
  }
  let variance = squares / count;
  if (convention.unbiasedStd) {
    const bessel = count / (count - 1);
    variance *= convention.besselFactorFloat32 ? Math.fround(bessel) : bessel;
  }
  return { count, mean, std: Math.sqrt(variance) };
}
