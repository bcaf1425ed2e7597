/**
 * verl's outcome estimators that map one group's scores to one advantage each: pass@k and both versions of the
 * vectorised GRPO. Each is an AdvantageEstimator, registered under verl's own name (`algorithm.adv_estimator`).
 * Sources: verl/trainer/ppo/core_algos.py and verl/utils/groupwise.py at b178a3cd (2026-01-29) and 1dda039b.
 */
import { invalid } from "../errors.js";
import { showId } from "../groups.js";
import { allEqual, moments } from "../stats.js";
import type { AdvantageEstimator, EstimatorContext } from "./estimators.js";

const f32 = Math.fround;

/** These verl estimators have no missing rewards: a NaN (allowed by missingRewards "ignore") is refused by name. */
function requireScored(rewards: Float64Array, { options, rollouts }: EstimatorContext): void {
  for (let k = 0; k < rewards.length; k++) {
    if (Number.isNaN(rewards[k])) {
      throw invalid(
        `rewards[${rollouts[k]}]`,
        `is NaN; estimator "${options.estimator}" has no rule for missing rewards (verl has none): ` +
          'use missingRewards "error" and score every rollout',
      );
    }
  }
}

/** `group_mean_std` casts the scores to float32: one beyond its range would become ±Infinity there. */
function requireFloat32(rewards: Float64Array, { options, rollouts }: EstimatorContext): void {
  for (let k = 0; k < rewards.length; k++) {
    if (!Number.isFinite(f32(rewards[k]!))) {
      throw invalid(
        `rewards[${rollouts[k]}]`,
        `is ${rewards[k]}, beyond the range of float32 (±3.4028235e38), in which estimator "${options.estimator}" ` +
          "computes its group statistics (verl group_mean_std)",
      );
    }
  }
}

/**
 * An option the estimator has no rule for is refused by name rather than ignored: these are verl's group statistics,
 * always per group.
 */
function requireGroupStd({ options }: EstimatorContext, unbiasedOnly: boolean): void {
  if (options.stdScope !== "group") {
    throw invalid("options.stdScope", `estimator "${options.estimator}" has only verl's per-group std; use "group"`);
  }
  if (unbiasedOnly && !options.unbiasedStd) {
    throw invalid("options.unbiasedStd", `estimator "${options.estimator}" uses verl's unbiased (N−1) std; use true`);
  }
}

/**
 * verl pass@k (verl/trainer/ppo/core_algos.py `compute_grpo_passk_outcome_advantage`, b178a3cd L361, unchanged at
 * 1dda039b): only the group's best rollout learns, with
 * A = (r_max − r_second) / (std + ε) (or r_max − r_second without std scaling); every other rollout gets 0. A tie for
 * the maximum gives 0 to all. A group of one is an error, as in verl ("Pass@k requires at least 2 samples per
 * group"). verl reads `norm_adv_by_std_in_grpo` from the config here, not from its keyword argument: `scaleByStd`.
 * The std follows `unbiasedStd` and `besselFactorFloat32` (verl: torch.std, unbiased, float64).
 */
export const grpoPassK: AdvantageEstimator = (rewards, context) => {
  requireScored(rewards, context);
  requireGroupStd(context, false);
  const { options, groupId, rollouts } = context;
  if (rewards.length < 2) {
    throw invalid(
      `groupIds[${rollouts[0]}]`,
      `group ${showId(groupId)} has 1 rollout; pass@k (verl compute_grpo_passk_outcome_advantage) needs at least 2 ` +
        "per group",
    );
  }
  const out = new Float64Array(rewards.length);
  if (allEqual(rewards)) return out;
  let best = 0;
  for (let k = 1; k < rewards.length; k++) if (rewards[k]! > rewards[best]!) best = k;
  let second = -Infinity;
  for (let k = 0; k < rewards.length; k++) if (k !== best && rewards[k]! > second) second = rewards[k]!;
  if (!options.scaleByStd) {
    out[best] = rewards[best]! - second;
    return out;
  }
  // In units of a power of two (exact; 1 for ordinary rewards): a gap beyond float64 between rewards near ±1e308
  // still has a finite ratio to the std.
  const { scale, scaledStd } = moments(rewards, options);
  out[best] = (rewards[best]! * scale - second * scale) / (scaledStd + options.epsilon * scale);
  return out;
};

/** A group's float32 statistics as verl's `group_mean_std` returns them (mean 0 and std 1 for a group of one). */
interface GroupStats32 {
  readonly mean: number;
  readonly std: number;
}

/**
 * `group_mean_std` at 1dda039 (verl/utils/groupwise.py), called with eps = 0: float32 scores, s1 summed in row order,
 * mean = s1/n, a centred second pass var = Σ(s − mean)²/(n − 1), std = sqrt(max(var, 0)); every step in float32.
 */
function groupMeanStd1dda039(rewards: Float64Array): GroupStats32 {
  const n = rewards.length;
  if (n === 1) return { mean: 0, std: 1 };
  let s1 = 0;
  for (let k = 0; k < n; k++) s1 = f32(s1 + f32(rewards[k]!));
  const mean = f32(s1 / n);
  let squares = 0;
  for (let k = 0; k < n; k++) {
    const centred = f32(f32(rewards[k]!) - mean);
    squares = f32(squares + f32(centred * centred));
  }
  const variance = f32(squares / (n - 1));
  return { mean, std: f32(Math.sqrt(variance > 0 ? variance : 0)) };
}

/**
 * `group_mean_std` at b178a3c, called with eps = ε: float32 one-pass sums s1 = Σs and s2 = Σs²,
 * var = (s2 − s1²/n)/(n − 1) floored at ε before the square root (with ε = 1e-6 the std is at least 1e-3); every step
 * in float32.
 */
function groupMeanStdB178a3c(rewards: Float64Array, epsilon: number): GroupStats32 {
  const n = rewards.length;
  if (n === 1) return { mean: 0, std: 1 };
  let s1 = 0;
  let s2 = 0;
  for (let k = 0; k < n; k++) {
    const s = f32(rewards[k]!);
    s1 = f32(s1 + s);
    s2 = f32(s2 + f32(s * s));
  }
  const mean = f32(s1 / n);
  const variance = f32(f32(s2 - f32(f32(s1 * s1) / n)) / (n - 1));
  const floor = f32(epsilon);
  // torch.clamp keeps a NaN variance (s2 and s1² both overflowed float32) NaN rather than flooring it.
  const floored = Number.isNaN(variance) ? variance : variance > floor ? variance : floor;
  return { mean, std: f32(Math.sqrt(floored)) };
}

/**
 * verl's vectorised GRPO: the float64 score minus the float32 group mean, over float32 (std + ε):
 * A = (r − mean₃₂) / fround(std₃₂ + ε), or r − mean₃₂ without std scaling.
 */
function vectorized(stats: (rewards: Float64Array, epsilon: number) => GroupStats32): AdvantageEstimator {
  return (rewards, context) => {
    requireScored(rewards, context);
    requireGroupStd(context, true);
    requireFloat32(rewards, context);
    const { options } = context;
    // verl gives a group of one mean 0 and std 1; singleton "zero" (not verl) gives it 0.
    if (rewards.length === 1 && options.singleton === "zero") return new Float64Array(1);
    const { mean, std } = stats(rewards, options.epsilon);
    if (!options.scaleByStd) return rewards.map((r) => r - mean);
    const scale = f32(std + options.epsilon);
    if (!Number.isFinite(scale)) {
      // (r − mean)/∞ would be a silent 0: verl's float32 statistics have no finite std for this group.
      throw invalid(
        `rewards[${context.rollouts[0]}]`,
        `group ${showId(context.groupId)}: the float32 std of verl's group_mean_std is ${std} (estimator ` +
          `"${options.estimator}"): the squares of these rewards (or their deviations) overflow float32 ` +
          '(beyond ±1.8e19), so verl has no finite std here; use smaller rewards or the float64 estimator "grpo"',
      );
    }
    return rewards.map((r) => (r - mean) / scale);
  };
}

/**
 * verl `compute_grpo_vectorized_outcome_advantage` at 1dda039 (the current verl), which reproduces the float32
 * statistics of `group_mean_std` bit for bit: A = (r − mean₃₂)/fround(std₃₂ + ε), std = sqrt of the centred float32
 * variance with no floor; a group of one gets mean 0 and std 1.
 *
 * Unlike the library's `grpo`, a group whose rewards are all equal does **not** get exactly 0 here: its float32 mean
 * differs from the float64 scores by the float32 rounding, and the std is 0, so verl gives (0.1 − fround(0.1))/1e-6 =
 * −0.001490116117595832 to each of four rollouts scored 0.1. This is verl's behaviour, reached only by naming this
 * estimator (`advantagePresets.verlGrpoVectorized`); the default estimator gives such a group 0.
 */
export const grpoVectorized: AdvantageEstimator = vectorized(groupMeanStd1dda039);

/**
 * verl `compute_grpo_vectorized_outcome_advantage` at b178a3c: as `grpoVectorized`, but `group_mean_std` floored the
 * float32 one-pass variance at ε, so the std is at least sqrt(1e-6) = 1e-3 and ε is applied twice. An all-equal
 * group of inexact scores gets advantages of order 1e-6 (float32 rounding over ≈1.001e-3), not 0.
 */
export const grpoVectorizedB178a3c: AdvantageEstimator = vectorized(groupMeanStdB178a3c);
