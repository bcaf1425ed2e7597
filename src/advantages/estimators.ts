import { invalid } from "../errors.js";
import type { GroupId } from "../groups.js";
import { allEqual, moments } from "../stats.js";
import type { AdvantageOptions } from "./options.js";

/** What an advantage estimator is told besides its group's rewards. */
export interface EstimatorContext {
  /** The call's options, defaults filled in: an estimator of yours may read any of them. */
  readonly options: AdvantageOptions;
  /** Std over the whole batch's rewards; NaN unless options.stdScope is "batch". */
  readonly batchStd: number;
  /** The group's id, to name it in an error. */
  readonly groupId: GroupId;
  /** The input index of each of the group's rollouts, in the order of `rewards` (to name `rewards[i]` in an error). */
  readonly rollouts: Int32Array;
}

/** Maps the rewards of one group (in input order) to one advantage each. */
export type AdvantageEstimator = (rewards: Float64Array, context: EstimatorContext) => Float64Array;

/**
 * GRPO: A = (r − mean) / (std + ε), or r − mean without std scaling. A group of two or more whose rewards are all
 * equal gets exactly 0: r − mean would round to ±1e-17 for rewards like 0.1, which ε then divides into ±1e-11.
 */
export const grpo: AdvantageEstimator = (rewards, { options, batchStd, rollouts }) => {
  const singleton = rewards.length === 1;
  if (!singleton && allEqual(rewards)) return new Float64Array(rewards.length);
  const { mean, scale: units, scaledMean, scaledStd } = moments(rewards, options);
  if (options.scaleByStd && options.stdScope === "group" && !singleton) {
    // In the units the std was computed in (a power of two, 1 for ordinary rewards: the same bits): the std of
    // rewards near ±1.3e308 overflows float64 once un-scaled, and (r − mean)/∞ would be a silent 0.
    const divisor = scaledStd + options.epsilon * units;
    return rewards.map((r) => (r * units - scaledMean) / divisor);
  }
  // verl treats a singleton as mean 0, std 1; TRL centres it on itself, which gives 0.
  const center = singleton ? (options.singleton === "raw" ? 0 : rewards[0]!) : mean;
  let scale = 1;
  if (options.scaleByStd) {
    if (options.stdScope === "batch") {
      if (batchStd === Number.POSITIVE_INFINITY) {
        throw invalid(
          `rewards[${rollouts[0]}]`,
          `the batch std of the rewards is ${batchStd}: beyond float64 (rewards near ±1.3e308 or larger); use ` +
            'smaller rewards or stdScope "group"',
        );
      }
      scale = batchStd + options.epsilon;
    } else scale = options.singletonScaleFloat32 ? Math.fround(1 + options.epsilon) : 1 + options.epsilon;
  }
  return rewards.map((r) => (r - center) / scale);
};

/** RLOO: A_i = r_i − mean of the others = (r_i − mean)·n/(n−1); 0 for a group whose rewards are all equal. */
export const rloo: AdvantageEstimator = (rewards, { options }) => {
  if (rewards.length === 1) return Float64Array.of(options.singleton === "raw" ? rewards[0]! : 0);
  if (allEqual(rewards)) return new Float64Array(rewards.length);
  const { count, mean } = moments(rewards, options);
  const factor = count / (count - 1);
  // Written as verl writes it, so the rounding matches: r·n/(n−1) − mean·n/(n−1).
  return rewards.map((r) => r * factor - mean * factor);
};
