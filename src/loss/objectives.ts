import type { PolicyLossOptions } from "./options.js";

/** One valid token, as every objective sees it. */
export interface TokenTerms {
  /** log π(token), the quantity the gradient is taken with respect to. */
  readonly logp: number;
  /** The (possibly clamped) log-ratio the objective uses: the token's own, or its sequence's (GSPO). */
  readonly logRatio: number;
  /** exp(logRatio). */
  readonly ratio: number;
  readonly advantage: number;
}

/** What an objective gives for one token. */
export interface TokenLoss {
  readonly loss: number;
  /** ∂loss/∂logRatio: the driver chains it to logp (zero where the clamp binds). */
  readonly dLogRatio: number;
  /** ∂loss/∂logp through logp itself (CISPO, REINFORCE), not through the ratio. */
  readonly dLogp: number;
  /** verl's pg_clipfrac event: the clipped branch is the larger loss. */
  readonly clipped: boolean;
  /** verl's pg_clipfrac_lower event: the dual clip binds. */
  readonly dualClipped: boolean;
  /** TRL's clip_ratio/low_mean and high_mean events. */
  readonly lowClipped: boolean;
  readonly highClipped: boolean;
}

/**
 * A per-token kernel: the loss to minimise for one token and its local derivatives, as a pure function. The driver
 * calls it with a fresh object literal and reads the result at once, so V8 inlines it and never allocates either.
 */
export type TokenKernel = (token: TokenTerms) => TokenLoss;

/**
 * A policy objective builds its per-token kernel once per call from the options, so constants such as the clip
 * bounds are read from the options once, not once per token.
 */
export type PolicyObjective = (options: PolicyLossOptions) => TokenKernel;

/**
 * PPO / GRPO / DAPO / GSPO: max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high)), with TRL's δ capping the unclipped ratio
 * and verl's dual clip bounding the loss at −A·c for negative advantages.
 */
export const clipObjective: PolicyObjective = (options) => {
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  const delta = options.delta ?? Infinity;
  const dualClip = options.dualClip ?? Infinity;
  return ({ advantage: a, ratio }) => {
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
};

/** CISPO: −sg(clip(ρ)) · A · log π. The clipped ratio only weighs the REINFORCE gradient. */
export const cispoObjective: PolicyObjective = (options) => {
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  return ({ advantage: a, ratio, logp }) => {
    const weight = ratio < low ? low : ratio > high ? high : ratio;
    return {
      loss: -weight * a * logp,
      dLogRatio: 0,
      dLogp: -weight * a,
      clipped: weight !== ratio,
      dualClipped: false,
      lowClipped: ratio < low && a < 0,
      highClipped: ratio > high && a > 0,
    };
  };
};

/** SAPO: a smooth gate instead of a hard clip, −A · σ(τ(ρ − 1)) · 4/τ, τ by the sign of A. */
export const sapoObjective: PolicyObjective = (options) => {
  const { positive, negative } = options.sapoTemperature;
  return ({ advantage: a, ratio }) => {
    const tau = a > 0 ? positive : negative;
    const sigma = 1 / (1 + Math.exp(-tau * (ratio - 1)));
    const loss = (-a * sigma * 4) / tau;
    const dLogRatio = -a * 4 * sigma * (1 - sigma) * ratio;
    return { loss, dLogRatio, dLogp: 0, clipped: false, dualClipped: false, lowClipped: false, highClipped: false };
  };
};

/** REINFORCE / GPG: −A · log π, no ratio. */
export const reinforceObjective: PolicyObjective =
  () =>
  ({ advantage: a, logp }) => ({
    loss: -a * logp,
    dLogRatio: 0,
    dLogp: -a,
    clipped: false,
    dualClipped: false,
    lowClipped: false,
    highClipped: false,
  });
