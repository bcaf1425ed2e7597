/**
 * verl's outcome estimators that need more than one group's scores: GPG (a batch-wide α), OPO (the response
 * lengths) and REINFORCE++-baseline (whitening over the batch's tokens). None is an AdvantageEstimator: those see
 * one group at a time, and the command line and the batcher compute groups one by one.
 * Source: verl/trainer/ppo/core_algos.py at b178a3cd (2026-01-29), unchanged at 1dda039b.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import { invalid, parseOrThrow } from "../errors.js";
import { type Group, type GroupId, groupBy, showId } from "../groups.js";
import { finiteFloat64, isArrayLike, type NumericArray, readNumbers } from "../numeric.js";
import { allEqual, float32Quotient, moments, powerOfTwoScale } from "../stats.js";
import { countRowTokens, type Matrix, type MatrixInput, matrixOf, toMatrix } from "../tensor.js";
import { SINGLETON_RULES } from "./options.js";
import { maskedWhiten } from "./whiten.js";

const groupIdsSchema = /* @__PURE__ */ z.custom<ArrayLike<GroupId>>(isArrayLike, { message: "expected an array" });

/** The rewards as finite float64 and the groups, checked as `advantages` checks them. */
export function readScoredGroups(rewards: NumericArray, groupIds: ArrayLike<GroupId>, rewardsPath = "rewards") {
  readNumbers(rewards, rewardsPath);
  parseOrThrow(groupIdsSchema, groupIds, "groupIds");
  if (rewards.length !== groupIds.length) {
    throw invalid("groupIds", `has ${groupIds.length} entries but ${rewardsPath} has ${rewards.length}`);
  }
  return { values: finiteFloat64(rewards, rewardsPath), groups: groupBy(groupIds) };
}

/** A response mask with one row per rollout. */
export function readResponseMask(responseMask: MatrixInput, rollouts: number, name = "responseMask"): Matrix {
  const mask = toMatrix(responseMask, name);
  countRowTokens(mask, name);
  if (mask.shape[0] !== rollouts) {
    throw invalid(name, `has ${mask.shape[0]} rows but there are ${rollouts} rollouts (one row each)`);
  }
  return mask;
}

/** `gpgAdvantages`' fields (a const of its own, so that the published types keep each field's comment). */
const gpgOptionsShape = /* @__PURE__ */ pure(() => ({
  /** verl's `f_norm`, the divisor of every advantage (1 in verl's trainer). */
  fNorm: z._default(z.number().check(z.positive()), 1),
}));

/** Checks and fills in the options of `gpgAdvantages`. Unknown keys are errors naming the closest key. */
export const gpgOptionsSchema: z.ZodMiniObject<typeof gpgOptionsShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  gpgOptionsShape,
);
/** The options `gpgAdvantages` takes: every field optional, defaults as verl. */
export type GpgOptionsInput = z.input<typeof gpgOptionsSchema>;

/**
 * verl GPG, `algorithm.adv_estimator=gpg` (verl/trainer/ppo/core_algos.py `compute_gpg_outcome_advantage`, b178a3c
 * L658, unchanged at 1dda039): A_i = α·(r_i − group mean)/f_norm, with α = B / max(number of non-zero rewards in the
 * batch, 1) computed in float32 as verl does (an int over an int64 tensor), B the batch size; no std. verl overwrites
 * its own `alpha` argument with this α. A group of one is centred on 0 (A = α·r); a group of two or more whose rewards
 * are all equal gets exactly 0. α depends on the whole batch: pass every rollout of the step in one call.
 *
 * @param rewards - One outcome score per rollout (verl: `token_level_rewards.sum(-1)`).
 * @param groupIds - The group (verl `uid`) of each rollout, any order.
 * @returns One advantage per rollout, in input order (`broadcastToTokens` gives verl's [B, T] tensor).
 * @throws ValidationError naming the entry or option at fault.
 *
 * @example gpgAdvantages([1, 0, 0, 0], ["a", "a", "b", "b"]) // => [2, -2, 0, 0] (α = 4/1, group means 0.5 and 0)
 */
export function gpgAdvantages(
  rewards: NumericArray,
  groupIds: ArrayLike<GroupId>,
  options: GpgOptionsInput = {},
): Float64Array {
  const { values, groups } = readScoredGroups(rewards, groupIds);
  const { fNorm } = parseOrThrow(gpgOptionsSchema, options, "options");
  let nonZero = 0;
  for (let i = 0; i < values.length; i++) if (values[i] !== 0) nonZero++;
  const alpha = float32Quotient(values.length, nonZero > 0 ? nonZero : 1);
  const centred = centredOnGroupMean(values, groups);
  requireFiniteAdvantages(centred);
  const out = centred.map((x) => (alpha * x) / fNorm);
  for (let i = 0; i < out.length; i++) {
    if (Number.isFinite(out[i])) continue;
    const scaled = alpha * centred[i]!;
    if (!Number.isFinite(scaled)) {
      throw invalid(
        `rewards[${i}]`,
        `its centred reward ${centred[i]} times α = ${alpha} is ${scaled}: beyond float64; use smaller rewards`,
      );
    }
    throw invalid(
      "options.fNorm",
      `is ${fNorm}: rewards[${i}]'s α·(r − mean) = ${scaled} divided by it is ${out[i]}, beyond float64; use a ` +
        "larger fNorm",
    );
  }
  return out;
}

/**
 * x_i = r_i − the mean of i's group, as verl's loops compute it: a group of one has mean 0 (x = r), and a group of
 * two or more whose rewards are all equal gets exactly 0 (r − mean can round to ±1e-17).
 */
function centredOnGroupMean(values: Float64Array, groups: readonly Group[]): Float64Array {
  const centred = new Float64Array(values.length);
  for (const { members } of groups) {
    const groupRewards = Float64Array.from(members, (i) => values[i]!);
    if (members.length > 1 && allEqual(groupRewards)) continue;
    const mean =
      members.length === 1 ? 0 : moments(groupRewards, { unbiasedStd: false, besselFactorFloat32: false }).mean;
    for (const i of members) centred[i] = values[i]! - mean;
  }
  return centred;
}

/** An advantage beyond float64 (rewards near ±1.8e308 centred) is refused at its reward, never returned. */
function requireFiniteAdvantages(out: Float64Array): void {
  for (let i = 0; i < out.length; i++) {
    if (!Number.isFinite(out[i])) {
      throw invalid(`rewards[${i}]`, `its advantage is ${out[i]}: rewards this large cannot be centred in float64`);
    }
  }
}

/** `opoAdvantages`' fields (a const of its own, so that the published types keep each field's comment). */
const opoOptionsShape = /* @__PURE__ */ pure(() => ({
  /** A group of one: "raw" keeps its reward (verl: baseline 0, A = r); "zero" gives 0. */
  singleton: z._default(z.enum(SINGLETON_RULES), "raw"),
}));

/** Checks and fills in the options of `opoAdvantages`. Unknown keys are errors naming the closest key. */
export const opoOptionsSchema: z.ZodMiniObject<typeof opoOptionsShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  opoOptionsShape,
);
/** The options `opoAdvantages` takes: every field optional, defaults as verl. */
export type OpoOptionsInput = z.input<typeof opoOptionsSchema>;

/**
 * verl OPO, `algorithm.adv_estimator=opo` (verl/trainer/ppo/core_algos.py `compute_opo_outcome_advantage`,
 * b178a3c L529): the baseline is the length-weighted group mean, A_i = r_i − Σ_j |o_j|·r_j / Σ_j |o_j|, with |o_j| the
 * number of response tokens of rollout j (`response_mask.sum(-1)`). A group of one keeps its reward (baseline 0); a
 * group whose rewards are all equal gets exactly 0. A group of two or more whose responses are all empty has no
 * baseline (verl: 0/0 = NaN) and is an error.
 *
 * @param rewards - One outcome score per rollout (verl: `token_level_rewards.sum(-1)`).
 * @param groupIds - The group (verl `uid`) of each rollout, any order.
 * @param responseLengths - Each rollout's number of response tokens: non-negative integers.
 * @returns One advantage per rollout, in input order (`broadcastToTokens` gives verl's [B, T] tensor).
 * @throws ValidationError naming the entry (`responseLengths[2]`) or option at fault.
 *
 * @example opoAdvantages([1, 0], ["a", "a"], [1, 3]) // => [0.75, -0.25] (baseline (1·1 + 3·0)/4)
 */
export function opoAdvantages(
  rewards: NumericArray,
  groupIds: ArrayLike<GroupId>,
  responseLengths: NumericArray,
  options: OpoOptionsInput = {},
): Float64Array {
  const { values, groups } = readScoredGroups(rewards, groupIds);
  const lengths = finiteFloat64(readNumbers(responseLengths, "responseLengths"), "responseLengths");
  if (lengths.length !== values.length) {
    throw invalid("responseLengths", `has ${lengths.length} entries but rewards has ${values.length}`);
  }
  for (let i = 0; i < lengths.length; i++) {
    if (!(Number.isSafeInteger(lengths[i]) && lengths[i]! >= 0)) {
      throw invalid(`responseLengths[${i}]`, `is ${lengths[i]}; a length is a non-negative integer (a token count)`);
    }
  }
  const { singleton } = parseOrThrow(opoOptionsSchema, options, "options");
  const out = new Float64Array(values.length);
  for (const { id, members } of groups) {
    if (members.length === 1) {
      const i = members[0]!;
      out[i] = singleton === "raw" ? values[i]! : 0;
      continue;
    }
    // Scaled by a power of two (exact, and 1 for ordinary rewards) so that Σ len·r of rewards near 1e308 does not
    // overflow before the division.
    const scale = powerOfTwoScale(Float64Array.from(members, (i) => values[i]!));
    let weighted = 0;
    let total = 0;
    for (const i of members) {
      weighted += lengths[i]! * (values[i]! * scale);
      total += lengths[i]!;
    }
    if (total === 0) {
      throw invalid(
        `responseLengths[${members[0]}]`,
        `every response of group ${showId(id)} is empty (length 0): OPO's length-weighted baseline is 0/0`,
      );
    }
    if (allEqual(Float64Array.from(members, (i) => values[i]!))) continue;
    const baseline = weighted / total / scale;
    for (const i of members) out[i] = values[i]! - baseline;
  }
  requireFiniteAdvantages(out);
  return out;
}

/** `reinforcePlusPlusBaselineAdvantages`' fields. */
const reinforcePlusPlusBaselineOptionsShape = /* @__PURE__ */ pure(() => ({
  /** Added to the token variance before the square root (verl masked_whiten: 1e-8). */
  whitenEpsilon: z._default(z.number().check(z.nonnegative()), 1e-8),
}));

/** Checks and fills in the options of `reinforcePlusPlusBaselineAdvantages`. Unknown keys are errors. */
export const reinforcePlusPlusBaselineOptionsSchema: z.ZodMiniObject<
  typeof reinforcePlusPlusBaselineOptionsShape,
  z.core.$strict
> = /* @__PURE__ */ z.strictObject(reinforcePlusPlusBaselineOptionsShape);
/** The options `reinforcePlusPlusBaselineAdvantages` takes: every field optional, defaults as verl. */
export type ReinforcePlusPlusBaselineOptionsInput = z.input<typeof reinforcePlusPlusBaselineOptionsSchema>;

/**
 * verl REINFORCE++-baseline, `algorithm.adv_estimator=reinforce_plus_plus_baseline` (verl/trainer/ppo/core_algos.py
 * `compute_reinforce_plus_plus_baseline_outcome_advantage`, b178a3c L425):
 * 1. x_i = r_i − group mean (a group of one: mean 0; an all-equal group: exactly 0), given to every response token;
 * 2. A = masked_whiten(x, mask)·mask: (x − μ)/sqrt(σ² + 1e-8), μ and the unbiased σ² over **all valid tokens of the
 *    batch** (long responses weigh more; the Bessel factor in float32, as verl's).
 *
 * @param rewards - One outcome score per rollout (verl: `token_level_rewards.sum(-1)`).
 * @param groupIds - The group (verl `uid`) of each rollout, any order.
 * @param responseMask - [B, T], 1 for a response token; an empty row gets 0, but its reward still enters its
 *   group's mean.
 * @returns The [B, T] advantages, 0 where the mask is 0.
 * @throws ValidationError naming the entry at fault; fewer than 2 valid tokens in the batch (verl raises) is one.
 *
 * @example reinforcePlusPlusBaselineAdvantages([1, 0], ["a", "a"], [[1], [1]]).data // => ≈ [0.707, -0.707]
 */
export function reinforcePlusPlusBaselineAdvantages(
  rewards: NumericArray,
  groupIds: ArrayLike<GroupId>,
  responseMask: MatrixInput,
  options: ReinforcePlusPlusBaselineOptionsInput = {},
): Matrix<Float64Array> {
  const { values, groups } = readScoredGroups(rewards, groupIds);
  const mask = readResponseMask(responseMask, values.length);
  const { whitenEpsilon } = parseOrThrow(reinforcePlusPlusBaselineOptionsSchema, options, "options");
  return whitenedTokens(centredOnGroupMean(values, groups), mask, whitenEpsilon);
}

/** x_b on every token of row b, whitened over the batch's valid tokens, then masked (verl: masked_whiten(x, m)·m). */
export function whitenedTokens(perRollout: Float64Array, mask: Matrix, epsilon: number): Matrix<Float64Array> {
  const [rows, cols] = mask.shape;
  const tokens = new Float64Array(rows * cols);
  for (let i = 0; i < tokens.length; i++) tokens[i] = perRollout[Math.floor(i / cols)]!;
  return matrixOf(maskedWhiten(tokens, mask.data, epsilon, "responseMask"), mask.shape);
}
