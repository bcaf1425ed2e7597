import { roundHalfEven } from "../numeric.js";

export interface ClassCounts {
  readonly positives: number;
  readonly negatives: number;
}

/** Paper: keep the class proportions, k_neg = ⌊n_neg·G/N⌋ and k_pos = G − k_neg (never more than n_pos). */
export function paperCounts(n: ClassCounts, keep: number): ClassCounts {
  const size = n.positives + n.negatives;
  const negatives = Math.floor((n.negatives * keep) / size);
  return { positives: keep - negatives, negatives };
}

/**
 * rStar2-Agent's released code: Python-rounded proportions, then floors of minNegatives / minPositives per class.
 * That code also keeps a group whole when both rounded counts fall below their floors; it never happens, since the
 * rounded counts add up to at least G − 1 and the floors to at most G (both codes check that), so it is not here.
 */
export function referenceCounts(
  n: ClassCounts,
  keep: number,
  minimums: { readonly minNegatives: number; readonly minPositives: number },
): ClassCounts {
  const size = n.positives + n.negatives;
  let negatives = roundHalfEven((n.negatives * keep) / size);
  let positives = roundHalfEven((n.positives * keep) / size);
  const negativeFloor = Math.min(minimums.minNegatives, n.negatives);
  if (negatives <= negativeFloor) {
    negatives = negativeFloor;
    positives = keep - negatives;
  }
  const positiveFloor = Math.min(minimums.minPositives, n.positives);
  if (positives <= positiveFloor) {
    positives = positiveFloor;
    negatives = keep - positives;
  }
  return { positives, negatives };
}

/** Reference positives: the k lowest penalties, ties by position (a stable sort). */
export function lowestPenalties(members: readonly number[], pTotal: ArrayLike<number>, k: number): number[] {
  return [...members].sort((a, b) => pTotal[a]! - pTotal[b]!).slice(0, k);
}

/**
 * A weighted sample of k without replacement, weight ∝ 1/p_total (Efraimidis–Spirakis: the k largest keys v^(1/w),
 * here compared as p·ln v). p = 0 gives key 0, above every p > 0, so clean rollouts are taken first; among equal
 * keys the larger v wins, which keeps the choice uniform. With `pTotal` undefined every key ties and the result is a
 * uniform subset. `uniforms[i]` ∈ (0, 1] is rollout i's own random draw.
 */
export function weightedSample(
  members: readonly number[],
  pTotal: ArrayLike<number> | undefined,
  uniforms: ArrayLike<number>,
  k: number,
): number[] {
  const entries = members.map((index) => ({
    index,
    key: pTotal === undefined ? 0 : pTotal[index]! * Math.log(uniforms[index]!),
    draw: uniforms[index]!,
  }));
  entries.sort((a, b) => b.key - a.key || b.draw - a.draw || a.index - b.index);
  return entries.slice(0, k).map((entry) => entry.index);
}
