/**
 * The clipped policy term, ρ's loss for one token: a module of its own, so that "clip" (objectives.ts, the registry)
 * and LUSPO's sequence ratio (trl-objectives.ts, which the registry imports) share it without importing each other.
 */
import type { TokenLoss } from "./objective-types.js";
import type { PolicyLossOptions } from "./options.js";

/**
 * max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high)), with TRL's δ capping the unclipped ratio (coef_1 = min(ρ, δ)) and
 * verl's dual clip bounding the loss at −A·c for negative advantages (none where `dualClip` is null); dLogRatio is
 * ∂/∂log ρ.
 */
export function clippedRatioLoss(
  options: Pick<PolicyLossOptions, "clipLow" | "clipHigh" | "delta" | "dualClip">,
): (ratio: number, a: number) => TokenLoss {
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  const delta = options.delta ?? Infinity;
  const dualClip = options.dualClip ?? Infinity;
  return (ratio, a) => {
    const clippedRatio = ratio < low ? low : ratio > high ? high : ratio;
    const capped = ratio > delta;
    const unclippedRatio = capped ? delta : ratio;
    const unclipped = -a * unclippedRatio;
    const clipped = -a * clippedRatio;
    // At a tie the two branches have equal value and, inside the clip range, equal slope: either branch is exact.
    const clippedBranch = clipped > unclipped;
    let loss = clippedBranch ? clipped : unclipped;
    let dLogRatio = (clippedBranch ? clippedRatio === ratio : !capped) ? -a * ratio : 0;
    // The dual clip bounds the loss of a negative advantage at −A·c (c = ∞ without it).
    const dualClipped = a < 0 && loss > -a * dualClip;
    if (dualClipped) {
      loss = -a * dualClip;
      dLogRatio = 0;
    }
    return {
      loss,
      dLogRatio,
      dLogp: 0,
      clipped: clippedBranch,
      dualClipped,
      lowClipped: unclippedRatio < low && a < 0,
      highClipped: unclippedRatio > high && a > 0,
    };
  };
}
