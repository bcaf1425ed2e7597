/**
 * The types a policy objective is written against: what one token gives the kernel (TokenTerms), what the kernel
 * gives back (TokenLoss), and the batch step some objectives take first (PreparedObjective). A module of their own,
 * so that the objectives' modules and the registry (objectives.ts) import them without importing each other.
 */
import type { NumericArray } from "../numeric.js";
import type { PolicyLossOptions } from "./options.js";

/** One valid token, as every objective sees it. */
export interface TokenTerms {
  /** log π(token), the quantity the gradient is taken with respect to. */
  readonly logp: number;
  /** log π_old(token), a constant (DPPO reads π_old = exp(oldLogp) itself); logp where the call is on-policy. */
  readonly oldLogp: number;
  /** The (possibly clamped) log-ratio the objective uses: the token's own, or its sequence's (GSPO). */
  readonly logRatio: number;
  /** exp(logRatio). */
  readonly ratio: number;
  /** The token's advantage A (its rollout's, or its own when advantages are per token). */
  readonly advantage: number;
  /** What the objective's `prepare` step gave this token (a batch-level choice, a row's loss); 0 without one. */
  readonly prepared: number;
}

/** What an objective gives for one token. */
export interface TokenLoss {
  /** The token's loss to minimise (−J for the token), before importance weights and aggregation. */
  readonly loss: number;
  /** ∂loss/∂logRatio: the driver chains it to logp (zero where the clamp binds). */
  readonly dLogRatio: number;
  /** ∂loss/∂logp through logp itself (CISPO, REINFORCE), not through the ratio. */
  readonly dLogp: number;
  /** verl's pg_clipfrac event: the clipped branch is the larger loss. */
  readonly clipped: boolean;
  /** verl's pg_clipfrac_lower event: the dual clip binds. */
  readonly dualClipped: boolean;
  /** TRL's clip_ratio/low_mean event: ρ < 1 − ε_low with A < 0. */
  readonly lowClipped: boolean;
  /** TRL's clip_ratio/high_mean event: ρ > 1 + ε_high with A > 0. */
  readonly highClipped: boolean;
}

/**
 * A per-token kernel: the loss to minimise for one token and its local derivatives, as a pure function. The driver
 * calls it with a fresh object literal and reads the result at once, so V8 inlines it and never allocates either.
 */
export type TokenKernel = (token: TokenTerms) => TokenLoss;

/**
 * The call's validated inputs as an objective's `prepare` step reads them: flat row-major [B·T] arrays, advantages
 * [B] unless per token. Only positions with mask 1 hold meaningful values, and their log-probs are finite.
 */
export interface ObjectiveBatch {
  /** [B, T]. */
  readonly shape: readonly [number, number];
  /** log π, [B·T]. */
  readonly logp: NumericArray;
  /** log π_old, [B·T] (logp itself on-policy). */
  readonly oldLogp: NumericArray;
  /** 1 for valid tokens, [B·T]. */
  readonly mask: NumericArray;
  /** Valid tokens of each row, [B]. */
  readonly rowTokens: Int32Array;
  /** [B], or [B·T] when `perTokenAdvantages`. */
  readonly advantages: NumericArray;
  /** Whether `advantages` holds one value per token. */
  readonly perTokenAdvantages: boolean;
  /** The caller's importance weights, [B·T], if any. */
  readonly importanceWeights: NumericArray | undefined;
}

/** What an objective's `prepare` step gives the token pass. */
export interface PreparedBatch {
  /** One number per position, [B·T], handed to the kernel as `TokenTerms.prepared` (read where the mask is 1). */
  readonly values: Float64Array;
  /**
   * Importance weights the driver applies instead of the caller's, [B·T] (GMPO aggregates them to the row by a
   * geometric mean); undefined: the caller's.
   */
  readonly importanceWeights?: NumericArray | undefined;
  /** Mean |log π − log π_old| over valid tokens, for objectives that report it (`metrics.meanAbsLogRatio`). */
  readonly meanAbsLogRatio?: number | undefined;
  /**
   * ∂loss/∂logRatio per position, [B·T], used by the driver in place of the kernel's `dLogRatio` (LUSPO: tokens that
   * share one sequence ratio get the row's summed slope over its length); undefined: the kernel's.
   */
  readonly logRatioGradients?: Float64Array | undefined;
  /** VESPO's mean weight φ, as TRL logs it (`metrics.phiMean`); undefined for the other objectives. */
  readonly phiMean?: number | undefined;
}

/**
 * An objective that is not per-token alone: `prepare` runs once per call over the whole batch (a batch-level choice
 * of tokens, a row's geometric mean) and gives each token a number; `kernel` is then the per-token loss as usual.
 * The driver checks logp and oldLogp are finite where the mask selects before calling `prepare`.
 */
export interface PreparedObjective {
  /** The batch step: per-token parameters for `kernel`, from the whole call's inputs. */
  readonly prepare: (batch: ObjectiveBatch) => PreparedBatch;
  /** The per-token kernel, which reads `TokenTerms.prepared`. */
  readonly kernel: TokenKernel;
}

/**
 * A policy objective builds its per-token kernel once per call from the options, so constants such as the clip
 * bounds are read from the options once, not once per token. An objective that needs the whole batch first (KL-Cov,
 * Clip-Cov, GMPO) returns a PreparedObjective instead.
 */
export type PolicyObjective = (options: PolicyLossOptions) => TokenKernel | PreparedObjective;

/** Token i's advantage (row `row`'s with one advantage per rollout): shared by the verl and TRL objectives. */
export const advantageOf = (batch: ObjectiveBatch, i: number, row: number): number =>
  batch.advantages[batch.perTokenAdvantages ? i : row]!;
