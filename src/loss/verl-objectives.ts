/**
 * verl's policy objectives that have no kernel in the fast backends: every backend computes them through the
 * reference (float64 on the CPU). Each cites its function and line in verl/trainer/ppo/core_algos.py at the commit
 * of its golden file: 1dda039 for DPPO and DRO (verl2_policy_loss.json), b178a3c for GMPO, KL-Cov and Clip-Cov
 * (verl_policy_loss.json; not among the changes to 1dda039 that the golden README lists).
 */
import seedrandom from "seedrandom";
import {
  advantageOf,
  type ObjectiveBatch,
  type PolicyObjective,
  type PreparedBatch,
  type TokenKernel,
  type TokenLoss,
} from "./objective-types.js";
import type { PolicyLossOptions } from "./options.js";

const NO_FLAGS = { clipped: false, dualClipped: false, lowClipped: false, highClipped: false } as const;

/**
 * DPPO-Binary-TV and -KL (compute_policy_loss_dppo_tv, L1380; compute_policy_loss_dppo_kl, L1461, verl 1dda039):
 *
 *   loss = −A · sg(min(ρ, c)) · log π · sg(kept),   kept = A > 0 ? okUp(π, π_old) : okDown(π, π_old)
 *
 * A REINFORCE gradient (through log π itself, as CISPO) weighed by the truncated ratio, for the tokens whose
 * divergence from π_old stays within clipHigh (A > 0, the token's probability rising) or clipLow (A ≤ 0).
 * `clipped` counts the tokens left out (verl's pg_clipfrac); `dualClipped` the kept tokens whose ratio exceeds the
 * cap (verl's pg_clipfrac_lower, whatever dppo_kl's comment says).
 */
function dppoObjective(
  divergence: (p: number, pOld: number, logp: number, oldLogp: number) => number,
  kept: (up: boolean, divergence: number, p: number, pOld: number, low: number, high: number) => boolean,
): PolicyObjective {
  return (options) => {
    const low = options.clipLow;
    const high = options.clipHigh;
    const cap = options.ratioCap ?? Infinity;
    return ({ advantage: a, logp, oldLogp, ratio }): TokenLoss => {
      const p = Math.exp(logp);
      const pOld = Math.exp(oldLogp);
      const d = divergence(p, pOld, logp, oldLogp);
      const keep = kept(a > 0, d, p, pOld, low, high);
      const truncated = ratio > cap ? cap : ratio;
      const slope = keep ? -a * truncated : 0;
      return {
        // A NaN divergence (log-probs above 0) is reported at the token by the driver, never decided on.
        loss: Number.isNaN(d) ? Number.NaN : slope * logp,
        dLogRatio: 0,
        dLogp: slope,
        clipped: !keep,
        dualClipped: keep && ratio > cap,
        lowClipped: !keep && !(a > 0),
        highClipped: !keep && a > 0,
      };
    };
  };
}

/** DPPO-TV: the binary distribution's total variation π − π_old must stay ≤ ε_high (A > 0) or ≥ −ε_low (A ≤ 0). */
export const dppoTvObjective: PolicyObjective = dppoObjective(
  (p, pOld) => p - pOld,
  (up, d, _p, _pOld, low, high) => (up ? d <= high : d >= -low),
);

/**
 * DPPO-KL: the binary KL between (π_old, 1 − π_old) and (π, 1 − π), written as verl writes it (its 1e-8 included),
 * must stay within the bound, unless the token moves the way A does not push it (π ≤ π_old for A > 0).
 */
export const dppoKlObjective: PolicyObjective = dppoObjective(
  (p, pOld, logp, oldLogp) => pOld * (oldLogp - logp) + (1 - pOld) * Math.log((1.0 - pOld + 1e-8) / (1.0 - p + 1e-8)),
  (up, d, p, pOld, low, high) => (up ? d <= high || p <= pOld : d <= low || p >= pOld),
);

/**
 * DRO (compute_policy_loss_dro, L2014, verl 1dda039): −(log π · A − β/2 · (log π − log π_old)²), no ratio and no
 * clamp. ∂/∂log π = −A + β·(log π − log π_old): the quadratic through the log-ratio, the rest through log π.
 */
export const droObjective: PolicyObjective = (options) => {
  // The schema requires β for "dro"; a kernel built without it would be a bug of ours.
  const beta = options.droBeta!;
  return ({ advantage: a, logp, logRatio }) => ({
    loss: -(logp * a - 0.5 * beta * (logRatio * logRatio)),
    dLogRatio: beta * logRatio,
    dLogp: -a,
    ...NO_FLAGS,
  });
};

/** The log-ratio of position i as the driver computes it: logp − oldLogp, clamped by options.logRatioClamp. */
function logRatioReader(options: PolicyLossOptions): (batch: ObjectiveBatch, i: number) => number {
  const low = options.logRatioClamp === null ? -Infinity : options.logRatioClamp[0];
  const high = options.logRatioClamp === null ? Infinity : options.logRatioClamp[1];
  return (batch, i) => {
    const logRatio = batch.logp[i]! - batch.oldLogp[i]!;
    return logRatio < low ? low : logRatio > high ? high : logRatio;
  };
}

/**
 * GMPO, verl's "geo_mean" (compute_policy_loss_geo_mean, L1636 at b178a3c): per row b with L_b valid tokens,
 *
 *   ℓ_b = −Ā_b · exp(Σ_t m_t / L_b),   m_t = sgn(A_t)·min(sgn(A_t)·log ρ_t, sgn(A_t)·clip(log ρ_t, −ε_low, ε_high))
 *
 * with Ā_b the row's mean advantage, and the caller's importance weights replaced by their geometric mean over the
 * row, exp(Σ_t log(w_t + 1e-10) / L_b). `prepare` gives every valid token its row's ℓ_b; each token then carries
 * ℓ_b itself, so an aggregation that weighs a row's tokens alike (all of them) sums ℓ_b·L_b·w_b, and "grpo" gives
 * verl's mean over all rows. The kernel's ∂/∂log ρ_t = ℓ_b · ∂m_t/∂log ρ_t is L_b times ∂ℓ_b/∂log ρ_t: with the
 * row's L_b copies of ℓ_b, the chain rule is exact. A token with A = 0 adds m_t = 0, as sign(0) = 0 does in verl.
 */
export const gmpoObjective: PolicyObjective = (options) => {
  const low = options.clipLow;
  const high = options.clipHigh;
  const logRatioAt = logRatioReader(options);
  const prepare = (batch: ObjectiveBatch): PreparedBatch => {
    const [rows, cols] = batch.shape;
    const values = new Float64Array(rows * cols);
    const weights = batch.importanceWeights === undefined ? undefined : new Float64Array(rows * cols);
    for (let b = 0; b < rows; b++) {
      const count = batch.rowTokens[b]!;
      if (count === 0) continue;
      let clippedSum = 0;
      let advantageSum = 0;
      let logWeightSum = 0;
      for (let i = b * cols; i < (b + 1) * cols; i++) {
        if (batch.mask[i] !== 1) continue;
        const logRatio = logRatioAt(batch, i);
        const a = advantageOf(batch, i, b);
        const sign = Math.sign(a);
        const clamped = logRatio < -low ? -low : logRatio > high ? high : logRatio;
        const signedMin = Math.min(sign * logRatio, sign * clamped);
        clippedSum += sign * signedMin;
        advantageSum += a;
        if (weights !== undefined) logWeightSum += Math.log(batch.importanceWeights![i]! + 1e-10);
      }
      const rowLoss = -(advantageSum / count) * Math.exp(clippedSum / count);
      const rowWeight = weights === undefined ? 1 : Math.exp(logWeightSum / count);
      for (let i = b * cols; i < (b + 1) * cols; i++) {
        if (batch.mask[i] !== 1) continue;
        values[i] = rowLoss;
        if (weights !== undefined) weights[i] = rowWeight;
      }
    }
    return { values, importanceWeights: weights };
  };
  const kernel: TokenKernel = ({ advantage: a, logRatio, prepared: rowLoss }) => {
    const above = logRatio > high;
    const below = logRatio < -low;
    // m_t follows log ρ_t except where the clip binds on the side A pushes: above for A > 0, below for A < 0.
    const through = a > 0 ? !above : a < 0 ? !below : false;
    return {
      loss: rowLoss,
      dLogRatio: through ? rowLoss : 0,
      dLogp: 0,
      clipped: (above || below) && a > 0,
      dualClipped: (above || below) && a < 0,
      lowClipped: below && a < 0,
      highClipped: above && a > 0,
    };
  };
  return { prepare, kernel };
};

/** The valid positions in row-major order (torch.nonzero's), and the means of A and log π over them. */
function validTokenStatistics(batch: ObjectiveBatch): {
  readonly positions: Int32Array;
  readonly meanAdvantage: number;
  readonly meanLogp: number;
} {
  const [rows, cols] = batch.shape;
  let count = 0;
  for (const tokens of batch.rowTokens) count += tokens;
  const positions = new Int32Array(count);
  let advantageSum = 0;
  let logpSum = 0;
  let k = 0;
  for (let b = 0; b < rows; b++) {
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (batch.mask[i] !== 1) continue;
      positions[k++] = i;
      advantageSum += advantageOf(batch, i, b);
      logpSum += batch.logp[i]!;
    }
  }
  return { positions, meanAdvantage: advantageSum / count, meanLogp: logpSum / count };
}

/** (A − mean A)(log π − mean log π) at each valid position, in `positions` order. */
function covariances(batch: ObjectiveBatch, statistics: ReturnType<typeof validTokenStatistics>): Float64Array {
  const cols = batch.shape[1];
  const { positions, meanAdvantage, meanLogp } = statistics;
  return Float64Array.from(positions, (i) => {
    const a = advantageOf(batch, i, Math.floor(i / cols));
    return (a - meanAdvantage) * (batch.logp[i]! - meanLogp);
  });
}

/**
 * KL-Cov (compute_policy_loss_kl_cov, L1556 at b178a3c): −A·ρ, no clip and no clamp, plus coef·|log ρ| on the
 * k = max(1, ⌊N·ratio⌋) valid tokens of largest (A − mean A)(log π − mean log π) over the whole call (ties: the
 * earlier position first; torch.topk leaves their order unspecified). `clipped` marks the penalised tokens; the
 * batch step also reports verl's actor/ppo_kl for this loss, the mean |log ρ| (metrics.meanAbsLogRatio).
 */
export const klCovObjective: PolicyObjective = (options) => {
  const { ratio: share, coef } = options.klCov!;
  const logRatioAt = logRatioReader(options);
  const prepare = (batch: ObjectiveBatch): PreparedBatch => {
    const values = new Float64Array(batch.shape[0] * batch.shape[1]);
    const statistics = validTokenStatistics(batch);
    const { positions } = statistics;
    if (positions.length === 0) return { values, meanAbsLogRatio: 0 };
    const cov = covariances(batch, statistics);
    const k = Math.max(1, Math.trunc(positions.length * share));
    const order = Array.from(positions.keys()).sort((x, y) => cov[y]! - cov[x]! || x - y);
    for (let j = 0; j < k; j++) values[positions[order[j]!]!] = 1;
    let absSum = 0;
    for (const i of positions) absSum += Math.abs(logRatioAt(batch, i));
    return { values, meanAbsLogRatio: absSum / positions.length };
  };
  const kernel: TokenKernel = ({ advantage: a, ratio, logRatio, prepared }) => {
    const penalised = prepared === 1;
    return {
      loss: penalised ? -a * ratio + coef * Math.abs(logRatio) : -a * ratio,
      dLogRatio: penalised ? -a * ratio + coef * Math.sign(logRatio) : -a * ratio,
      dLogp: 0,
      ...NO_FLAGS,
      clipped: penalised,
    };
  };
  return { prepare, kernel };
};

/**
 * Clip-Cov (compute_policy_loss_clip_cov, L1451 at b178a3c): PPO's max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high)),
 * no dual clip and no clamp, times 0 on up to max(1, ⌊N·ratio⌋) tokens drawn from the candidates: valid, not
 * clipped already, and lowerBound < (A − mean A)(log π − mean log π) < upperBound. verl draws them with
 * torch.randperm; with more candidates than that, grpo-roc draws them uniformly from `clipCov.seed`, reseeded at
 * every call (so vary the seed per step, as verl's unseeded draw varies). `clipped`
 * marks the detached tokens (verl's pg_clipfrac for this loss).
 */
export const clipCovObjective: PolicyObjective = (options) => {
  const { ratio: share, lowerBound, upperBound, seed } = options.clipCov!;
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  const logRatioAt = logRatioReader(options);
  const prepare = (batch: ObjectiveBatch): PreparedBatch => {
    const values = new Float64Array(batch.shape[0] * batch.shape[1]);
    const statistics = validTokenStatistics(batch);
    const { positions } = statistics;
    const cov = covariances(batch, statistics);
    const cols = batch.shape[1];
    const candidates: number[] = [];
    positions.forEach((i, j) => {
      const a = advantageOf(batch, i, Math.floor(i / cols));
      const ratio = Math.exp(logRatioAt(batch, i));
      const clippedRatio = ratio < low ? low : ratio > high ? high : ratio;
      const clippedAlready = -a * clippedRatio > -a * ratio;
      if (!clippedAlready && cov[j]! > lowerBound && cov[j]! < upperBound) candidates.push(i);
    });
    const take = Math.max(1, Math.trunc(share * positions.length));
    if (candidates.length > take) {
      // A partial Fisher–Yates shuffle: the first `take` entries are a uniform draw without replacement.
      const random = seedrandom(`grpo-roc clip-cov\u0000${seed}`);
      for (let j = 0; j < take; j++) {
        const pick = j + Math.floor(random() * (candidates.length - j));
        [candidates[j], candidates[pick]] = [candidates[pick]!, candidates[j]!];
      }
      candidates.length = take;
    }
    for (const i of candidates) values[i] = 1;
    return { values };
  };
  const kernel: TokenKernel = ({ advantage: a, ratio, prepared }) => {
    const clippedRatio = ratio < low ? low : ratio > high ? high : ratio;
    const unclipped = -a * ratio;
    const clipped = -a * clippedRatio;
    const clippedBranch = clipped > unclipped;
    const detached = prepared === 1;
    const slope = detached || (clippedBranch && clippedRatio !== ratio) ? 0 : -a * ratio;
    return {
      loss: detached ? 0 : clippedBranch ? clipped : unclipped,
      dLogRatio: slope,
      dLogp: 0,
      clipped: detached,
      dualClipped: false,
      lowClipped: ratio < low && a < 0,
      highClipped: ratio > high && a > 0,
    };
  };
  return { prepare, kernel };
};

/** The shipped objectives without native kernels, by the name `options.objective` takes. */
export const verlObjectives = {
  "dppo-tv": dppoTvObjective,
  "dppo-kl": dppoKlObjective,
  dro: droObjective,
  gmpo: gmpoObjective,
  "kl-cov": klCovObjective,
  "clip-cov": clipCovObjective,
} as const satisfies Record<string, PolicyObjective>;
