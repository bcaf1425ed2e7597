import type { PolicyLossOptions } from "./options.js";

/** One valid token, as every objective sees it. */
export interface TokenTerms {
  /** log π(token), the quantity the gradient is taken with respect to. */
  logp: number;
  /** The (possibly clamped) log-ratio the objective uses: the token's own, or its sequence's (GSPO). */
  logRatio: number;
  /** exp(logRatio). */
  ratio: number;
  advantage: number;
}

/** What an objective writes for one token; reused across tokens, so objectives must set every field. */
export interface TokenLoss {
  loss: number;
  /** ∂loss/∂logRatio: the driver chains it to logp (zero where the clamp binds). */
  dLogRatio: number;
  /** ∂loss/∂logp through logp itself (CISPO, REINFORCE), not through the ratio. */
  dLogp: number;
  /** verl's pg_clipfrac event: the clipped branch is the larger loss. */
  clipped: boolean;
  /** verl's pg_clipfrac_lower event: the dual clip binds. */
  dualClipped: boolean;
  /** TRL's clip_ratio/low_mean and high_mean events. */
  lowClipped: boolean;
  highClipped: boolean;
}

/** A per-token kernel: the loss to minimise for one token and its local derivatives. */
export type TokenKernel = (token: TokenTerms, out: TokenLoss) => void;

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
  const dualClip = options.dualClip;
  return (token, out) => {
  const { advantage: a, ratio } = token;
  const clippedRatio = ratio < low ? low : ratio > high ? high : ratio;
  const capped = ratio > delta;
  const unclippedRatio = capped ? delta : ratio;
  const unclipped = -a * unclippedRatio;
  const clipped = -a * clippedRatio;
  // At a tie the two branches have equal value and, inside the clip range, equal slope: either branch is exact.
  if (unclipped >= clipped) {
    out.loss = unclipped;
    out.dLogRatio = capped ? 0 : -a * ratio;
  } else {
    out.loss = clipped;
    out.dLogRatio = clippedRatio === ratio ? -a * ratio : 0;
  }
  out.dLogp = 0;
  out.clipped = clipped > unclipped;
  out.dualClipped = false;
  if (dualClip !== null && a < 0) {
    const bound = -a * dualClip;
    if (out.loss > bound) {
      out.loss = bound;
      out.dLogRatio = 0;
      out.dualClipped = true;
    }
  }
  out.lowClipped = unclippedRatio < low && a < 0;
  out.highClipped = unclippedRatio > high && a > 0;
  };
};

/** CISPO: −sg(clip(ρ)) · A · log π. The clipped ratio only weighs the REINFORCE gradient. */
export const cispoObjective: PolicyObjective = (options) => {
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  return (token, out) => {
  const weight = token.ratio < low ? low : token.ratio > high ? high : token.ratio;
  out.loss = -weight * token.advantage * token.logp;
  out.dLogRatio = 0;
  out.dLogp = -weight * token.advantage;
  out.clipped = weight !== token.ratio;
  out.dualClipped = false;
  out.lowClipped = token.ratio < low && token.advantage < 0;
  out.highClipped = token.ratio > high && token.advantage > 0;
  };
};

/** SAPO: a smooth gate instead of a hard clip, −A · σ(τ(ρ − 1)) · 4/τ, τ by the sign of A. */
export const sapoObjective: PolicyObjective = (options) => {
  const { positive, negative } = options.sapoTemperature;
  return (token, out) => {
  const a = token.advantage;
  const tau = a > 0 ? positive : negative;
  const sigma = 1 / (1 + Math.exp(-tau * (token.ratio - 1)));
  out.loss = (-a * sigma * 4) / tau;
  out.dLogRatio = -a * 4 * sigma * (1 - sigma) * token.ratio;
  out.dLogp = 0;
  out.clipped = false;
  out.dualClipped = false;
  out.lowClipped = false;
  out.highClipped = false;
  };
};

/** REINFORCE / GPG: −A · log π, no ratio. */
export const reinforceObjective: PolicyObjective = () => (token, out) => {
  out.loss = -token.advantage * token.logp;
  out.dLogRatio = 0;
  out.dLogp = -token.advantage;
  out.clipped = false;
  out.dualClipped = false;
  out.lowClipped = false;
  out.highClipped = false;
};
