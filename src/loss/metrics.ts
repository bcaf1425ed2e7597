/** The policy loss's diagnostics for one call, named after verl's and TRL's logged metrics. */
export interface PolicyLossMetrics {
  /** Valid tokens (mask 1) of this call. */
  readonly tokens: number;
  /** Non-empty rows: rollouts with at least one valid token. */
  readonly sequences: number;
  /** Share of valid tokens where the clipped branch is the larger loss (verl's pg_clipfrac). */
  readonly clipFraction: number;
  /** Share where ρ < 1 − ε_low with A < 0: the lower bound binds (TRL's clip_ratio/low_mean). */
  readonly clipFractionLow: number;
  /** Share where ρ > 1 + ε_high with A > 0: the clip-higher bound binds (TRL's clip_ratio/high_mean). */
  readonly clipFractionHigh: number;
  /** Share where the dual clip binds (verl's pg_clipfrac_lower). */
  readonly dualClipFraction: number;
  /** Mean of log π_old − log π over valid tokens (verl's ppo_kl; clamped like the ratio at token level). */
  readonly approxKl: number;
  /** Smallest importance ratio ρ over valid tokens (0 without any). */
  readonly ratioMin: number;
  /** Mean ρ over valid tokens (0 without any). */
  readonly ratioMean: number;
  /** Largest ρ over valid tokens (0 without any). */
  readonly ratioMax: number;
  /** Mean KL estimate over valid tokens, when options.kl is set; undefined otherwise. */
  readonly kl: number | undefined;
  /** Mean entropy over valid tokens, when `entropy` was given; undefined otherwise. */
  readonly entropy: number | undefined;
  /**
   * Mean |log π − log π_old| over valid tokens, for objectives that report it ("kl-cov": verl's actor/ppo_kl for that
   * loss); undefined for the others.
   */
  readonly meanAbsLogRatio: number | undefined;
  /**
   * TRL's `vespo/phi_seq_mean` ("vespo" only): the mean of VESPO's weight φ over all rows (empty ones, φ = 1,
   * included), or over the valid tokens when advantages are per token; undefined for the other objectives.
   */
  readonly phiMean: number | undefined;
}

/** What a backend sums over the valid tokens of a call, to report the metrics. */
export interface MetricSums {
  readonly tokens: number;
  readonly sequences: number;
  readonly clipped: number;
  readonly low: number;
  readonly high: number;
  readonly dual: number;
  readonly approxKl: number;
  readonly ratioMin: number;
  readonly ratioSum: number;
  readonly ratioMax: number;
  readonly klSum: number;
  readonly entropySum: number;
}

/** The metrics from their sums, as every backend reports them (means over valid tokens; all 0 without any). */
export function lossMetrics(
  sums: MetricSums,
  withKl: boolean,
  withEntropy: boolean,
  meanAbsLogRatio?: number | undefined,
  phiMean?: number | undefined,
): PolicyLossMetrics {
  const { tokens } = sums;
  const mean = (sum: number) => (tokens === 0 ? 0 : sum / tokens);
  return {
    tokens,
    sequences: sums.sequences,
    clipFraction: mean(sums.clipped),
    clipFractionLow: mean(sums.low),
    clipFractionHigh: mean(sums.high),
    dualClipFraction: mean(sums.dual),
    approxKl: mean(sums.approxKl),
    ratioMin: tokens === 0 ? 0 : sums.ratioMin,
    ratioMean: mean(sums.ratioSum),
    ratioMax: tokens === 0 ? 0 : sums.ratioMax,
    kl: withKl ? mean(sums.klSum) : undefined,
    entropy: withEntropy ? mean(sums.entropySum) : undefined,
    meanAbsLogRatio,
    phiMean,
  };
}
