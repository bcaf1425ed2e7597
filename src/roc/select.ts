import * as z from "zod/mini";
import { invalid, parseOrThrow } from "../errors.js";
import { roundHalfEven } from "../numeric.js";

/** A number of correct (positive) and wrong (negative) rollouts: a group's, or how many of each to keep. */
export interface ClassCounts {
  /** Correct rollouts. */
  readonly positives: number;
  /** Wrong rollouts. */
  readonly negatives: number;
}

const count = z.int().check(z.nonnegative());
const keepSchema = z.int().check(z.minimum(1));
const classCountsSchema = z.strictObject({ positives: count, negatives: count });
/** Read from any object that has them, such as resolved RoC options. */
const minimumsSchema = z.looseObject({ minNegatives: count, minPositives: count });

/** The arguments both counts take: a group larger than G (RoC keeps smaller groups whole, or drops them). */
function readCountsArguments(n: ClassCounts, keep: number): void {
  parseOrThrow(classCountsSchema, n, "counts");
  parseOrThrow(keepSchema, keep, "keep");
  const size = n.positives + n.negatives;
  if (keep >= size)
    throw invalid("keep", `is ${keep}, but a group of ${size} is resampled only when it is larger than G`);
}

/**
 * Paper: keep the class proportions, k_neg = ⌊n_neg·G/N⌋ and k_pos = G − k_neg (never more than n_pos).
 *
 * @example paperCounts({ positives: 20, negatives: 12 }, 16) // => { positives: 10, negatives: 6 }
 */
export function paperCounts(n: ClassCounts, keep: number): ClassCounts {
  readCountsArguments(n, keep);
  return paperClassCounts(n, keep);
}

/**
 * rStar2-Agent's released code: Python-rounded proportions, then floors of minNegatives / minPositives per class.
 *
 * @example referenceCounts({ positives: 2, negatives: 30 }, 16, { minNegatives: 2, minPositives: 2 })
 *   // => { positives: 2, negatives: 14 }
 */
export function referenceCounts(
  n: ClassCounts,
  keep: number,
  minimums: { readonly minNegatives: number; readonly minPositives: number },
): ClassCounts {
  readCountsArguments(n, keep);
  parseOrThrow(minimumsSchema, minimums, "minimums");
  return referenceClassCounts(n, keep, minimums);
}

/** paperCounts() without its checks, for a group RoC has already validated. */
export function paperClassCounts(n: ClassCounts, keep: number): ClassCounts {
  const size = n.positives + n.negatives;
  const negatives = Math.floor((n.negatives * keep) / size);
  return { positives: keep - negatives, negatives };
}

/**
 * referenceCounts() without its checks. The released code also keeps a group whole when both rounded counts fall
 * below their floors; it never happens, since the rounded counts add up to at least G − 1 and the floors to at most
 * G (both codes check that), so it is not here.
 */
export function referenceClassCounts(
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
