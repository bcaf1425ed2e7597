import * as z from "zod/mini";
import { GrpoRocError, invalid, parseOrThrow, requireRegistration } from "../errors.js";
import { type GroupId, groupBy, showId } from "../groups.js";
import { describeValue, finiteFloat64, isArrayLike, type NumericArray, readNumbers } from "../numeric.js";
import { moments } from "../stats.js";
import { grpo, rloo, type AdvantageEstimator } from "./estimators.js";
import { grpoPassK, grpoVectorized, grpoVectorizedB178a3c } from "./verl-outcome.js";
import { advantageOptionsSchema, type AdvantageOptions, type AdvantageOptionsInput } from "./options.js";

export { advantagePresets, advantageOptionsSchema } from "./options.js";
export type { AdvantageOptions, AdvantageOptionsInput } from "./options.js";
export type { AdvantageEstimator, EstimatorContext } from "./estimators.js";
export { broadcastToTokens } from "./broadcast.js";
export {
  gpgAdvantages,
  gpgOptionsSchema,
  opoAdvantages,
  opoOptionsSchema,
  reinforcePlusPlusBaselineAdvantages,
  reinforcePlusPlusBaselineOptionsSchema,
} from "./batch-outcome.js";
export type { GpgOptionsInput, OpoOptionsInput, ReinforcePlusPlusBaselineOptionsInput } from "./batch-outcome.js";
export {
  gdpoAdvantages,
  gdpoOptionsSchema,
  gdpoPresets,
  MULTI_OBJECTIVE_AGGREGATIONS,
  multiRewardAdvantages,
  multiRewardOptionsSchema,
  multiRewardPresets,
  SCALE_REWARDS,
} from "./multi-reward.js";
export type { GdpoOptions, GdpoOptionsInput, MultiRewardOptions, MultiRewardOptionsInput } from "./multi-reward.js";

const estimators = new Map<string, AdvantageEstimator>([
  ["grpo", grpo],
  ["rloo", rloo],
  // verl's estimators under verl's names (algorithm.adv_estimator); see verl-outcome.ts.
  ["grpo_passk", grpoPassK],
  ["grpo_vectorized", grpoVectorized],
  ["grpo_vectorized_b178a3c", grpoVectorizedB178a3c],
]);

/** Adds an advantage estimator, selectable by `options.estimator`. */
export function registerAdvantageEstimator(name: string, estimator: AdvantageEstimator): void {
  requireRegistration(name, estimator, "estimator");
  if (estimators.has(name)) throw new GrpoRocError(`advantage estimator "${name}" is already registered`);
  estimators.set(name, estimator);
}

/**
 * The names `options.estimator` accepts: the built-ins "grpo", "rloo", "grpo_passk", "grpo_vectorized" and
 * "grpo_vectorized_b178a3c", then any you registered.
 */
export function advantageEstimatorNames(): string[] {
  return [...estimators.keys()];
}

const groupIdsSchema = z.custom<ArrayLike<GroupId>>(isArrayLike, { message: "expected an array" });

/**
 * The options with every default filled in, as `advantages` reads them (to log the configuration a run used).
 *
 * @throws ValidationError at `options.<field>` for an unknown key or a value out of range.
 */
export function resolveAdvantageOptions(options: AdvantageOptionsInput = {}): AdvantageOptions {
  return parseOrThrow(advantageOptionsSchema, options, "options");
}

/**
 * Group-relative advantages: one per rollout, computed within each group of `groupIds` (any order, any sizes).
 * Defaults reproduce verl's GRPO; see `advantagePresets` for TRL, Dr. GRPO and RLOO.
 *
 * @param rewards - One scalar reward per rollout.
 * @param groupIds - The group (prompt) of each rollout, as long as `rewards`.
 * @returns One advantage per rollout, in input order.
 * @throws ValidationError naming the entry (`rewards[3]`) or option at fault; a registered estimator's bad output
 *   is named with its group.
 *
 * @example advantages([1, 0, 0, 1], ["a", "a", "b", "b"]) // => ≈ [0.707, -0.707, -0.707, 0.707]
 */
export function advantages(
  rewards: NumericArray,
  groupIds: ArrayLike<GroupId>,
  options: AdvantageOptionsInput = {},
): Float64Array {
  readNumbers(rewards, "rewards");
  parseOrThrow(groupIdsSchema, groupIds, "groupIds");
  const resolved = resolveAdvantageOptions(options);
  const estimator = estimators.get(resolved.estimator);
  if (estimator === undefined) {
    throw invalid(
      "options.estimator",
      `unknown estimator "${resolved.estimator}"; registered: ${advantageEstimatorNames().join(", ")}`,
    );
  }
  if (rewards.length !== groupIds.length) {
    throw invalid("groupIds", `has ${groupIds.length} entries but rewards has ${rewards.length}`);
  }
  const values = finiteFloat64(rewards, "rewards", resolved.missingRewards === "ignore");
  // TRL: the std of a one-rollout batch is 0.
  const batchStd = resolved.stdScope !== "batch" ? NaN : values.length > 1 ? moments(values, resolved).std : 0;
  const out = new Float64Array(values.length);
  for (const { id, members } of groupBy(groupIds)) {
    const groupRewards = new Float64Array(members.length);
    for (let k = 0; k < members.length; k++) groupRewards[k] = values[members[k]!]!;
    const groupAdvantages = estimator(groupRewards, {
      options: resolved,
      batchStd,
      groupId: id,
      rollouts: members,
    });
    requireEstimatorOutput(groupAdvantages, members, id, resolved, groupRewards);
    for (let k = 0; k < members.length; k++) out[members[k]!] = groupAdvantages[k]!;
  }
  if (resolved.missingRewards === "ignore") {
    // TRL's nan_to_num: unscorable rollouts, and groups without enough scored ones, carry no signal.
    for (let i = 0; i < out.length; i++) if (Number.isNaN(out[i])) out[i] = 0;
  }
  return out;
}

/**
 * An estimator's advantages for one group: one finite number per rollout (NaN only where the reward is missing and
 * missing rewards are allowed). A registered estimator that returns anything else is named, with the group; an
 * advantage that overflows float64 (rewards near ±1.8e308) is refused rather than returned as ±Infinity.
 */
function requireEstimatorOutput(
  groupAdvantages: ArrayLike<number>,
  members: Int32Array,
  id: GroupId,
  options: AdvantageOptions,
  groupRewards: Float64Array,
): void {
  const group = () => `group ${showId(id)}`;
  if (!isArrayLike(groupAdvantages) || groupAdvantages.length !== members.length) {
    const length = isArrayLike(groupAdvantages) ? `${groupAdvantages.length} values` : describeValue(groupAdvantages);
    throw invalid(
      "options.estimator",
      `"${options.estimator}" returned ${length} for the ${members.length} rollouts of ${group()}; ` +
        "it must return one each",
    );
  }
  for (let k = 0; k < members.length; k++) {
    const value = groupAdvantages[k];
    if (
      typeof value === "number" &&
      (Number.isFinite(value) || (Number.isNaN(value) && options.missingRewards === "ignore"))
    ) {
      continue;
    }
    throw invalid(
      `rewards[${members[k]}]`,
      `its advantage is ${String(value)} (estimator "${options.estimator}", ${group()}): not a finite number` +
        (typeof value === "number" && !Number.isNaN(value) ? overflowReason(groupRewards, options) : ""),
    );
  }
}

/** Why an estimator's advantage came out ±Infinity: rewards too large to centre, or a division by a zero scale. */
function overflowReason(groupRewards: Float64Array, options: AdvantageOptions): string {
  let largest = 0;
  for (let i = 0; i < groupRewards.length; i++) {
    const v = Math.abs(groupRewards[i]!);
    if (v > largest) largest = v;
  }
  if (largest > 2 ** 1000) return "; rewards this large cannot be centred in float64";
  return (
    `; the rewards are finite and moderate, so the estimator divided by a scale of 0 or one that underflowed ` +
    `(epsilon is ${options.epsilon}: with a std of 0, epsilon 0 leaves nothing to divide by)`
  );
}
