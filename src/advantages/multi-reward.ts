/**
 * Advantages from several rewards per rollout: verl's GDPO and TRL's `multi_objective_aggregation`. Both take the
 * rewards as a [rollouts, reward functions] matrix (TRL's `rewards_per_func`; verl's `non_tensor_batch[key]` for
 * each key of `gdpo_reward_keys`, as columns).
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import { GrpoRocError, invalid, parseOrThrow } from "../errors.js";
import type { Group, GroupId } from "../groups.js";
import { describeValue } from "../numeric.js";
import { allEqual, moments } from "../stats.js";
import { type Matrix, type MatrixInput, matrixOf, toMatrix } from "../tensor.js";
import { readResponseMask, readScoredGroups, whitenedTokens } from "./batch-outcome.js";
import { grpo } from "./estimators.js";
import { type AdvantageOptions, advantagePresets } from "./options.js";
import { maskedWhitenFloat32 } from "./whiten.js";

const f32 = Math.fround;

/** The reward matrix, [rollouts][functions]: at least one function, every entry a number (finite: checked later). */
function readRewardMatrix(input: MatrixInput, name: string): Matrix {
  const matrix = toMatrix(input, name);
  if (matrix.shape[0] > 0 && matrix.shape[1] === 0) {
    throw invalid(name, "has no reward function (0 columns); give at least one reward per rollout");
  }
  return matrix;
}

/** The weights, one per reward function (1 each when absent). */
function readWeights(weights: readonly number[] | undefined, functions: number): Float64Array {
  if (weights === undefined) return new Float64Array(functions).fill(1);
  if (weights.length !== functions) {
    throw invalid("options.rewardWeights", `has ${weights.length} weights but there are ${functions} reward functions`);
  }
  return Float64Array.from(weights);
}

/** Column `k` of a row-major matrix. */
function column(matrix: Matrix, k: number): Float64Array {
  const [rows, cols] = matrix.shape;
  return Float64Array.from({ length: rows }, (_, b) => matrix.data[b * cols + k]!);
}

/** Every entry finite (or NaN, a missing reward, where `allowNaN`); otherwise an error naming the entry `[b][k]`. */
function requireFiniteEntries(matrix: Matrix, name: string, allowNaN: boolean): void {
  const cols = matrix.shape[1];
  for (let i = 0; i < matrix.data.length; i++) {
    const v = matrix.data[i]!;
    if (Number.isFinite(v) || (allowNaN && Number.isNaN(v))) continue;
    const rule = allowNaN ? "expected a finite number or NaN (a missing reward)" : "expected a finite number";
    throw invalid(`${name}[${Math.floor(i / cols)}][${i % cols}]`, `${rule}, received ${describeValue(v)}`);
  }
}

/**
 * The library's GRPO (the `grpo` estimator, as `advantages` runs it) of one reward per rollout: per group, with the
 * batch std where `options.stdScope` is "batch"; a NaN advantage (a missing reward) becomes 0 when missing rewards
 * are ignored, as TRL's nan_to_num. Called on values already checked, so only an overflow is left to refuse, at
 * `path(i)`. (Not `advantages` itself: it is exported by the module that exports this one.)
 */
function groupwiseGrpo(
  values: Float64Array,
  groups: readonly Group[],
  options: AdvantageOptions,
  path: (i: number) => string,
): Float64Array {
  const batchStd = options.stdScope !== "batch" ? NaN : values.length > 1 ? moments(values, options).std : 0;
  if (options.scaleByStd && batchStd === Number.POSITIVE_INFINITY) {
    throw invalid(path(0), `the batch std of the rewards is ${batchStd}: beyond float64; use smaller rewards`);
  }
  const out = new Float64Array(values.length);
  for (const { id, members } of groups) {
    const groupRewards = Float64Array.from(members, (i) => values[i]!);
    const groupAdvantages = grpo(groupRewards, { options, batchStd, groupId: id, rollouts: members });
    for (let k = 0; k < members.length; k++) out[members[k]!] = groupAdvantages[k]!;
  }
  for (let i = 0; i < out.length; i++) {
    if (Number.isNaN(out[i]) && options.missingRewards === "ignore") out[i] = 0;
    else if (!Number.isFinite(out[i])) {
      throw invalid(path(i), `its advantage is ${out[i]}: rewards this large cannot be centred in float64`);
    }
  }
  return out;
}

const PRECISIONS = ["float64", "float32"] as const;

/** `gdpoAdvantages`' fields (a const of its own, so that the published types keep each field's comment). */
const gdpoOptionsShape = /* @__PURE__ */ pure(() => ({
  /** One weight per reward key (verl `gdpo_reward_weights`); absent: 1 each. */
  rewardWeights: z.optional(z.array(z.number())),
  /** Divide each key's centred reward by its group std + ε (verl `norm_adv_by_std_in_grpo`); false: Dr. GRPO. */
  scaleByStd: z._default(z.boolean(), true),
  /** Added to each group's std (verl 1e-6). */
  epsilon: z._default(z.number().check(z.nonnegative()), 1e-6),
  /**
   * "float64" computes every step in float64. "float32" reproduces verl's multi-key path, which builds each key's
   * scores as float32 (`rm_scores` zeros) and so runs GRPO, the weighting and the whitening in float32 (agreement
   * with verl about 1e-6 relative: torch's float32 reductions sum in their own order). The group mean and std are
   * computed in float64 and then rounded to float32, so scores beyond about ±1.8e19, whose squares overflow a
   * float32 accumulator, still get a finite std here; a std beyond float32 itself is refused at the group's first
   * score.
   */
  precision: z._default(z.enum(PRECISIONS), "float64"),
  /** Added to the token variance in the final whitening (verl masked_whiten: 1e-8). */
  whitenEpsilon: z._default(z.number().check(z.nonnegative()), 1e-8),
}));

/** Checks and fills in the options of `gdpoAdvantages`. Unknown keys are errors naming the closest key. */
export const gdpoOptionsSchema: z.ZodMiniObject<typeof gdpoOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(gdpoOptionsShape);
/** The options `gdpoAdvantages` takes: every field optional (float64 by default; see `gdpoPresets.verl`). */
export type GdpoOptionsInput = z.input<typeof gdpoOptionsSchema>;
/** `gdpoAdvantages`' options with every default filled in. */
export type GdpoOptions = z.output<typeof gdpoOptionsSchema>;

/**
 * Plain option objects for `gdpoAdvantages`. Source: verl/trainer/ppo/core_algos.py `compute_gdpo_outcome_advantage`
 * (verl 1dda039b, L362; not in b178a3c).
 */
export const gdpoPresets = {
  /** verl's multi-key path (`algorithm.gdpo_reward_keys` set): float32 throughout, ε 1e-6. */
  verl: { scaleByStd: true, epsilon: 1e-6, precision: "float32", whitenEpsilon: 1e-8 },
  /**
   * verl's single-reward fallback (taken when `config`, `non_tensor_batch` or `batch` is absent): GRPO of the
   * float64 `token_level_rewards` scores, then the whitening, in float64. Pass the scores as a one-column matrix.
   */
  verlFallback: { scaleByStd: true, epsilon: 1e-6, precision: "float64", whitenEpsilon: 1e-8 },
} as const satisfies Record<string, GdpoOptions>;

/**
 * GDPO (verl/trainer/ppo/core_algos.py `compute_gdpo_outcome_advantage` at verl 1dda039b, L362;
 * `algorithm.adv_estimator=gdpo`): each reward key is normalised on its own within its group by verl's GRPO, then
 * the keys are summed with their weights and the sum is whitened over **every valid token of the batch**
 * (token-weighted: long responses weigh more):
 *
 *   A_k = GRPO(r_k) per group (mean 0 and std 1 for a group of one), S = Σ_k w_k·A_k,
 *   A = masked_whiten(S, mask)·mask.
 *
 * verl places each key's score on the response's last token and sums the row, which is the score itself, so only
 * the scores are taken here. Group normalisation follows the library's `grpo` (an all-equal group gets exactly 0).
 *
 * @param rewardsPerKey - [rollouts][keys]: column k is verl's `non_tensor_batch[gdpo_reward_keys[k]]`.
 * @param groupIds - The group (verl `uid`) of each rollout, any order.
 * @param responseMask - [B, T], 1 for a response token.
 * @returns The [B, T] advantages, 0 where the mask is 0.
 * @throws ValidationError naming the entry or option at fault; no reward key (verl: AssertionError), a weight count
 *   other than the key count, and fewer than 2 valid tokens in the batch are errors.
 */
export function gdpoAdvantages(
  rewardsPerKey: MatrixInput,
  groupIds: ArrayLike<GroupId>,
  responseMask: MatrixInput,
  options: GdpoOptionsInput = {},
): Matrix<Float64Array> {
  const name = "rewardsPerKey";
  const matrix = readRewardMatrix(rewardsPerKey, name);
  const [rows, keys] = matrix.shape;
  const resolved = parseOrThrow(gdpoOptionsSchema, options, "options");
  requireFiniteEntries(matrix, name, false);
  if (resolved.precision === "float32") {
    for (let i = 0; i < matrix.data.length; i++) {
      if (Number.isFinite(f32(matrix.data[i]!))) continue;
      throw invalid(
        `${name}[${Math.floor(i / keys)}][${i % keys}]`,
        `is ${matrix.data[i]}, beyond the range of float32 (±3.4028235e38), in which precision "float32" (verl's ` +
          "multi-key GDPO) computes",
      );
    }
  }
  const { groups } = readScoredGroups(new Float64Array(rows), groupIds, name);
  const mask = readResponseMask(responseMask, rows);
  const weights = readWeights(resolved.rewardWeights, keys);
  if (resolved.precision === "float32") return gdpoFloat32(matrix, groups, mask, weights, resolved);
  const grpoOptions: AdvantageOptions = {
    ...advantagePresets.verl,
    scaleByStd: resolved.scaleByStd,
    epsilon: resolved.epsilon,
  };
  const summed = new Float64Array(rows);
  for (let k = 0; k < keys; k++) {
    const perKey = groupwiseGrpo(column(matrix, k), groups, grpoOptions, (b) => `${name}[${b}][${k}]`);
    for (let b = 0; b < rows; b++) summed[b] = summed[b]! + perKey[b]! * weights[k]!;
  }
  for (let b = 0; b < rows; b++) {
    if (!Number.isFinite(summed[b])) {
      throw invalid(`${name}[${b}]`, "its weighted sum of normalised rewards overflows float64: use smaller weights");
    }
  }
  return whitenedTokens(summed, mask, resolved.whitenEpsilon);
}

/** verl's multi-key GDPO in float32: GRPO per key (torch.mean/torch.std of float32 scores), weights, whitening. */
function gdpoFloat32(
  matrix: Matrix,
  groups: readonly Group[],
  mask: Matrix,
  weights: Float64Array,
  options: GdpoOptions,
): Matrix<Float64Array> {
  const [rows, keys] = matrix.shape;
  const summed = new Float32Array(rows);
  const scale1 = f32(1 + options.epsilon);
  for (let k = 0; k < keys; k++) {
    const scores = Float32Array.from(column(matrix, k));
    const weight = f32(weights[k]!);
    for (const { members } of groups) {
      const groupScores = Float64Array.from(members, (i) => scores[i]!);
      let mean = 0;
      let scale = scale1;
      if (members.length > 1) {
        if (allEqual(groupScores)) continue;
        const stats = moments(groupScores, { unbiasedStd: true, besselFactorFloat32: false });
        mean = f32(stats.mean);
        scale = f32(f32(stats.std) + options.epsilon);
        if (options.scaleByStd && !Number.isFinite(scale)) {
          throw invalid(
            `rewardsPerKey[${members[0]}][${k}]`,
            `key ${k}'s group std is ${stats.std}, beyond float32 (±3.4028235e38), in which precision "float32" ` +
              "(verl's multi-key GDPO) divides; every advantage of the group would be a silent 0: use smaller scores",
          );
        }
      }
      for (const i of members) {
        const centred = f32(scores[i]! - mean);
        const advantage = options.scaleByStd ? f32(centred / scale) : centred;
        summed[i] = f32(summed[i]! + f32(weight * advantage));
      }
    }
  }
  const [, cols] = mask.shape;
  const tokens = new Float32Array(rows * cols);
  for (let i = 0; i < tokens.length; i++) tokens[i] = summed[Math.floor(i / cols)]! * mask.data[i]!;
  for (let b = 0; b < rows; b++) {
    if (!Number.isFinite(summed[b])) {
      throw invalid(
        `rewardsPerKey[${b}]`,
        "its weighted sum of normalised rewards overflows float32: use smaller weights",
      );
    }
  }
  return matrixOf(maskedWhitenFloat32(tokens, mask.data, options.whitenEpsilon, "responseMask"), mask.shape);
}

/** TRL's `multi_objective_aggregation` choices. */
export const MULTI_OBJECTIVE_AGGREGATIONS = ["sum_then_normalize", "normalize_then_sum"] as const;
/** TRL's `scale_rewards` choices. */
export const SCALE_REWARDS = ["group", "batch", "none"] as const;

/** `multiRewardAdvantages`' fields. */
const multiRewardOptionsShape = /* @__PURE__ */ pure(() => ({
  /**
   * TRL `multi_objective_aggregation`: "sum_then_normalize" (the default) sums the weighted rewards, then takes the
   * GRPO advantage of the sum; "normalize_then_sum" (GDPO-style) normalises each function within its group, sums
   * them with their weights, then normalises the sum over the whole batch.
   */
  aggregation: z._default(z.enum(MULTI_OBJECTIVE_AGGREGATIONS), "sum_then_normalize"),
  /** TRL `reward_weights`: one weight per reward function; absent: 1 each. */
  rewardWeights: z.optional(z.array(z.number())),
  /**
   * TRL `scale_rewards` for "sum_then_normalize": "group" std, "batch" std (the mean stays per group), or "none"
   * (Dr. GRPO). TRL ignores it under "normalize_then_sum", and so does this function.
   */
  scaleRewards: z._default(z.enum(SCALE_REWARDS), "group"),
  /** Added to every std (TRL 1e-4). */
  epsilon: z._default(z.number().check(z.nonnegative()), 1e-4),
  /**
   * NaN entries (a reward function that returned None): "ignore" follows TRL (left out of every statistic; a
   * partly scored row sums the functions it has; a row no function scored is NaN and gets A = 0); "error" refuses
   * them.
   */
  missingRewards: z._default(z.enum(["error", "ignore"] as const), "ignore"),
}));

/** Checks and fills in the options of `multiRewardAdvantages`. Unknown keys are errors naming the closest key. */
export const multiRewardOptionsSchema: z.ZodMiniObject<typeof multiRewardOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(multiRewardOptionsShape);
/** The options `multiRewardAdvantages` takes: every field optional, defaults as TRL's GRPOTrainer. */
export type MultiRewardOptionsInput = z.input<typeof multiRewardOptionsSchema>;
/** `multiRewardAdvantages`' options with every default filled in. */
export type MultiRewardOptions = z.output<typeof multiRewardOptionsSchema>;

/**
 * Plain option objects for `multiRewardAdvantages`. Source: TRL trl/trainer/grpo_trainer.py, the advantage block of
 * `GRPOTrainer._generate_and_score_completions` (f2cd5771, L2679-2730).
 */
export const multiRewardPresets = {
  /** TRL's default: `multi_objective_aggregation="sum_then_normalize"`, `scale_rewards="group"`. */
  trl: { aggregation: "sum_then_normalize", scaleRewards: "group", epsilon: 1e-4, missingRewards: "ignore" },
  /** TRL `multi_objective_aggregation="normalize_then_sum"` (GDPO-style; `scale_rewards` is not read). */
  trlNormalizeThenSum: {
    aggregation: "normalize_then_sum",
    scaleRewards: "group",
    epsilon: 1e-4,
    missingRewards: "ignore",
  },
} as const satisfies Record<string, MultiRewardOptions>;

/**
 * TRL's advantages from several reward functions (GRPOTrainer `reward_funcs` with `reward_weights` and
 * `multi_objective_aggregation`; trl/trainer/grpo_trainer.py, the advantage block of
 * `GRPOTrainer._generate_and_score_completions`, TRL f2cd5771, L2679-2730):
 *
 * - "sum_then_normalize": r = Σ_k w_k·r_k (NaN entries skipped), then `advantages(r, groupIds)` with TRL's
 *   conventions (ε 1e-4, float32 Bessel factor, a group of one gets 0) and `scaleRewards`.
 * - "normalize_then_sum": per group and function, x_k = (r_k − mean_k)/(std_k + ε) (std 0 for a group of one);
 *   x = Σ_k w_k·x_k (NaN skipped); A = (x − mean(x))/(std(x) + ε) over the **whole batch** (std 0 for one rollout).
 *
 * With missing rewards ignored, a row where every function is NaN (TRL: every function returned None) gets a NaN
 * reward and A = 0 (TRL's nan_to_num), and a function with one scored rollout in a group has a NaN std there (TRL's
 * nanstd: 0·n/(n−1) with n = 1), so it drops out of that group's sum. Groups may be in any order (TRL's are
 * contiguous blocks of `num_generations`). An all-equal group gets exactly 0 from its centring.
 *
 * @param rewardsPerFunc - [rollouts][functions]: TRL's `rewards_per_func`; NaN = the function returned None.
 * @param groupIds - The group (prompt) of each rollout.
 * @returns One advantage per rollout, in input order.
 * @throws ValidationError naming the entry (`rewardsPerFunc[3][1]`) or option at fault.
 *
 * @example multiRewardAdvantages([[1, 0], [0, 1]], ["a", "a"], { rewardWeights: [1, 0.5] }) // => ≈ [0.707, -0.707]
 */
export function multiRewardAdvantages(
  rewardsPerFunc: MatrixInput,
  groupIds: ArrayLike<GroupId>,
  options: MultiRewardOptionsInput = {},
): Float64Array {
  const name = "rewardsPerFunc";
  const matrix = readRewardMatrix(rewardsPerFunc, name);
  const [rows, functions] = matrix.shape;
  const resolved = parseOrThrow(multiRewardOptionsSchema, options, "options");
  const ignore = resolved.missingRewards === "ignore";
  requireFiniteEntries(matrix, name, ignore);
  const { groups } = readScoredGroups(new Float64Array(rows), groupIds, name);
  const weights = readWeights(resolved.rewardWeights, functions);
  if (resolved.aggregation === "sum_then_normalize") {
    const summed = weightedNanSum(matrix, weights, name, (b, k) => matrix.data[b * functions + k]!);
    const scale = resolved.scaleRewards;
    const grpoOptions: AdvantageOptions = {
      ...advantagePresets.trl,
      scaleByStd: scale !== "none",
      stdScope: scale === "batch" ? "batch" : "group",
      epsilon: resolved.epsilon,
      missingRewards: resolved.missingRewards,
    };
    return groupwiseGrpo(summed, groups, grpoOptions, (b) => `${name}[${b}]`);
  }
  const normalised = new Float64Array(rows * functions);
  const trlStd = { unbiasedStd: true, besselFactorFloat32: true };
  for (let k = 0; k < functions; k++) {
    for (const { members } of groups) {
      const groupRewards = Float64Array.from(members, (i) => matrix.data[i * functions + k]!);
      const stats = moments(groupRewards, trlStd);
      // In the units of the statistics (a power of two, 1 for ordinary rewards: the same bits), so that a std
      // beyond float64 (rewards near ±1.3e308) does not turn every advantage into 0.
      const units = stats.scale;
      const divisor = (members.length > 1 ? stats.scaledStd : 0) + resolved.epsilon * units;
      const equal = allEqual(groupRewards);
      for (const i of members) {
        const r = matrix.data[i * functions + k]!;
        normalised[i * functions + k] = equal && !Number.isNaN(r) ? 0 : (r * units - stats.scaledMean) / divisor;
      }
    }
  }
  const summed = weightedNanSum(matrix, weights, name, (b, k) => normalised[b * functions + k]!);
  return batchNormalised(summed, resolved.epsilon);
}

/**
 * Σ_k w_k·value(b, k) per row with NaN terms skipped (torch nansum); NaN where every entry of the row's matrix is NaN
 * (TRL: every function returned None). An overflow is an error naming the row.
 */
function weightedNanSum(
  matrix: Matrix,
  weights: Float64Array,
  name: string,
  value: (b: number, k: number) => number,
): Float64Array {
  const [rows, functions] = matrix.shape;
  const out = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    let sum = 0;
    let scored = false;
    for (let k = 0; k < functions; k++) {
      if (!Number.isNaN(matrix.data[b * functions + k])) scored = true;
      const term = value(b, k) * weights[k]!;
      if (!Number.isNaN(term)) sum += term;
    }
    if (!scored) sum = NaN;
    else if (!Number.isFinite(sum)) {
      throw invalid(
        `${name}[${b}]`,
        `its weighted reward sum is ${sum}: beyond float64; use smaller rewards or weights`,
      );
    }
    out[b] = sum;
  }
  return out;
}

/** TRL's final step of normalize_then_sum: (x − nanmean)/(nanstd + ε) over all rows (std 0 for one row); NaN → 0. */
function batchNormalised(summed: Float64Array, epsilon: number): Float64Array {
  const stats = moments(summed, { unbiasedStd: true, besselFactorFloat32: true });
  const units = stats.scale;
  const divisor = (summed.length > 1 ? stats.scaledStd : 0) + epsilon * units;
  const equal = allEqual(summed);
  return summed.map((x) => {
    const a = equal ? 0 : (x * units - stats.scaledMean) / divisor;
    if (Number.isNaN(a)) return 0;
    if (!Number.isFinite(a)) throw new GrpoRocError(`a batch-normalised advantage overflowed float64 (${a})`);
    return a;
  });
}
