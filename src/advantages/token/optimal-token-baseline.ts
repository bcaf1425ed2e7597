import * as z from "zod/mini";
import { pure } from "../../pure.js";
import { invalid, parseOrThrow } from "../../errors.js";
import { type GroupId, groupBy } from "../../groups.js";
import { isArrayLike, type NumericArray } from "../../numeric.js";
import type { MatrixInput } from "../../tensor.js";
import {
  type ReadTokenInputs,
  readTokenInputs,
  requireFiniteResult,
  rewardToGo,
  type TokenAdvantages,
  tokenAdvantagesOf,
  type TokenRewardInputs,
} from "./inputs.js";

/** The optimal-token-baseline estimators' inputs (verl `compute_*optimal_token_baseline_advantage`). */
export interface OptimalTokenBaselineInputs extends TokenRewardInputs {
  /** The group (prompt) of each row, [B] (verl `index`, the `uid`): any order, any sizes; see GroupId. */
  readonly groupIds: ArrayLike<GroupId>;
  /** log π_old of each sampled token, [B, T] (verl `old_log_probs`). */
  readonly oldLogp: MatrixInput;
  /**
   * Σ_v π(v)² over the vocabulary at each position, [B, T] (verl `sum_pi_squared`, from its
   * `calculate_sum_pi_squared_from_logits` = exp(logsumexp(2·logits) − 2·logsumexp(logits))).
   */
  readonly sumPiSquared: MatrixInput;
  /** Truncated rollout importance weights ρ̄, [B, T] (verl `rollout_is_weights`): W is scaled by ρ̄². Omitted: none. */
  readonly rolloutIsWeights?: MatrixInput | undefined;
}

/** optimalTokenBaselineOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const optimalTokenBaselineOptionsShape = /* @__PURE__ */ pure(() => ({
  /**
   * Zero the baseline of a group's longest row beyond the second-longest row's length, when one row is strictly the
   * longest (verl `handle_zero_tail`). Default true, as at verl 1dda039; it was false at b178a3c for the non-TIR
   * estimator, and verl's trainer never passes it.
   */
  handleZeroTail: z._default(z.boolean(), true),
  /** Added to the baseline's denominator Σ W (verl `epsilon`, default 1e-8); must be > 0. */
  epsilon: z._default(z.number().check(z.positive()), 1e-8),
}));

/** Checks and fills in the optimal-token-baseline options. Unknown keys are errors naming the closest key. */
export const optimalTokenBaselineOptionsSchema: z.ZodMiniObject<
  typeof optimalTokenBaselineOptionsShape,
  z.core.$strict
> = /* @__PURE__ */ z.strictObject(optimalTokenBaselineOptionsShape);

/** The optimal-token-baseline options with every default filled in. */
export type OptimalTokenBaselineOptions = z.output<typeof optimalTokenBaselineOptionsSchema>;
/** The options both optimal-token-baseline estimators take: every field optional (verl 1dda039's defaults). */
export type OptimalTokenBaselineOptionsInput = z.input<typeof optimalTokenBaselineOptionsSchema>;

const KNOWN_INPUTS = [
  "tokenRewards",
  "mask",
  "groupIds",
  "oldLogp",
  "sumPiSquared",
  "rolloutIsWeights",
] as const satisfies readonly (keyof OptimalTokenBaselineInputs)[];

/** What both estimators compute before grouping: reward-to-go G and the cumulative path variance W, [B·T] each. */
interface PathTerms {
  readonly options: OptimalTokenBaselineOptions;
  readonly read: ReadTokenInputs;
  readonly groups: { readonly members: Int32Array }[];
  /** G_t = Σ_{k ≥ t} r_k · mask_k, 0 at mask-0 positions. */
  readonly returns: Float64Array;
  /** W_t = Σ_{j ≤ t} w_j · mask_j, with w_j = (1 − 2·exp(oldLogp_j) + sumPiSquared_j) · ρ̄_j². */
  readonly pathVariance: Float64Array;
}

function pathTerms(inputs: OptimalTokenBaselineInputs, optionsInput: OptimalTokenBaselineOptionsInput): PathTerms {
  const options = parseOrThrow(optimalTokenBaselineOptionsSchema, optionsInput, "options");
  const read = readTokenInputs(
    inputs,
    KNOWN_INPUTS,
    ["oldLogp", "sumPiSquared", "rolloutIsWeights"],
    ["rolloutIsWeights"],
  );
  const { rows, cols, mask } = read;
  const groupIds: unknown = inputs.groupIds;
  if (!isArrayLike(groupIds)) throw invalid("inputs.groupIds", "is required: one group id per row");
  if (groupIds.length !== rows) {
    throw invalid("inputs.groupIds", `has ${groupIds.length} entries, one per row, but tokenRewards has ${rows}`);
  }
  const groups = groupBy(groupIds, "inputs.groupIds");
  const oldLogp = read.matrices.oldLogp!;
  const sumPiSquared = read.matrices.sumPiSquared!;
  const weights: NumericArray | undefined = read.matrices.rolloutIsWeights;
  if (weights !== undefined) requireNonNegative(weights, mask, cols);
  const returns = rewardToGo(read);
  const pathVariance = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let cumulative = 0;
    for (let t = 0; t < cols; t++) {
      const i = b * cols + t;
      if (mask[i] !== 1) continue;
      // verl: 1 - 2 * pi_t + sum_pi_squared, then * rollout_is_weights**2 (a square is exact as x·x).
      let w = 1 - 2 * Math.exp(oldLogp[i]!) + sumPiSquared[i]!;
      if (weights !== undefined) w *= weights[i]! * weights[i]!;
      cumulative += w;
      pathVariance[i] = cumulative;
    }
  }
  // w comes from sumPiSquared (≤ 1 from real logits), exp(oldLogp) (≤ 1 for a log-prob) and ρ̄²: the row is named
  // under the field that can make it huge.
  requireFiniteResult(
    pathVariance,
    mask,
    cols,
    "cumulative path variance W = Σ (1 − 2·exp(oldLogp) + sumPiSquared)·ρ̄²",
    weights === undefined ? "inputs.sumPiSquared" : "inputs.rolloutIsWeights",
  );
  return { options, read, groups, returns, pathVariance };
}

/** An importance weight scales W by its square: a negative one is not a truncated IS weight. */
function requireNonNegative(weights: NumericArray, mask: NumericArray, cols: number): void {
  for (let i = 0; i < weights.length; i++) {
    if (mask[i] === 1 && weights[i]! < 0) {
      throw invalid(
        `inputs.rolloutIsWeights[${Math.floor(i / cols)}][${i % cols}]`,
        `is ${weights[i]}; rollout importance weights must be ≥ 0`,
      );
    }
  }
}

/**
 * The index within `lengths` of the one strictly longest member and the second-longest length, or undefined when the
 * longest is shared (verl: sort the lengths; act only when the maximum is unique and above the second).
 */
function zeroTail(lengths: readonly number[]): { longest: number; secondLength: number } | undefined {
  let longest = 0;
  for (let k = 1; k < lengths.length; k++) if (lengths[k]! > lengths[longest]!) longest = k;
  let secondLength = -1;
  let ties = 0;
  for (let k = 0; k < lengths.length; k++) {
    if (lengths[k] === lengths[longest]) ties++;
    else if (lengths[k]! > secondLength) secondLength = lengths[k]!;
  }
  return ties === 1 ? { longest, secondLength } : undefined;
}

/**
 * Both estimators: for each group (its rows without a valid token dropped when `dropEmptyRows`), A = G − B where
 * `positionsOf(b)[k]` is the flat index of row b's position k (−1 where it has none). With more than one row,
 * B_k = Σ G·W / (Σ W + ε) over the rows that have a position k, summed in row order as verl does; the zero tail sets
 * B = 0 from position L₂ on for a strictly longest row (lengths in valid tokens).
 */
function estimate(
  inputs: OptimalTokenBaselineInputs,
  options: OptimalTokenBaselineOptionsInput,
  dropEmptyRows: boolean,
  positionsOf: (row: number, read: ReadTokenInputs) => Int32Array,
): TokenAdvantages {
  const terms = pathTerms(inputs, options);
  const { read, returns, pathVariance } = terms;
  const { rows, cols, mask, rowTokens } = read;
  const { handleZeroTail, epsilon } = terms.options;
  const advantages = new Float64Array(returns.length);
  for (const group of terms.groups) {
    const members = dropEmptyRows ? group.members.filter((b) => rowTokens[b]! > 0) : group.members;
    const positions = Array.from(members, (b) => positionsOf(b, read));
    let width = 0;
    for (const at of positions) if (at.length > width) width = at.length;
    const baseline = new Float64Array(width);
    if (members.length > 1) {
      for (let k = 0; k < width; k++) {
        let numerator = 0;
        let denominator = 0;
        for (const at of positions) {
          const i = k < at.length ? at[k]! : -1;
          if (i < 0) continue;
          numerator += returns[i]! * pathVariance[i]!;
          denominator += pathVariance[i]!;
        }
        baseline[k] = numerator / (denominator + epsilon);
      }
    }
    const tail = handleZeroTail && members.length > 1 ? zeroTail(Array.from(members, (b) => rowTokens[b]!)) : undefined;
    positions.forEach((at, m) => {
      const zeroFrom = tail !== undefined && tail.longest === m ? tail.secondLength : width;
      for (let k = 0; k < at.length; k++) {
        const i = at[k]!;
        if (i >= 0) advantages[i] = returns[i]! - (k >= zeroFrom ? 0 : baseline[k]!);
      }
    });
  }
  requireFiniteResult(advantages, mask, cols, "advantage G − B (B from Σ G·W)", "inputs.tokenRewards");
  return tokenAdvantagesOf(advantages, returns, { rows, cols });
}

/**
 * The optimal token baseline (verl `adv_estimator=optimal_token_baseline`, OTB): a baseline per group and per
 * column, weighted by each row's cumulative path variance, so that A_t = G_t − B_t with
 *
 *   G_t = Σ_{k ≥ t} r_k·m_k ;  w_t = (1 − 2·π_t + Σπ²_t)·ρ̄_t² ;  W_t = Σ_{j ≤ t} w_j·m_j
 *   B_t = Σ_i G_it·W_it·m_it / (Σ_i W_it·m_it + ε)     over the rows i of the group, column t (absolute)
 *
 * A group of one row gets B = 0 (A = G). With `handleZeroTail`, when one row of a group is strictly the longest (in
 * valid tokens, L), its baseline is 0 from column L₂ on, L₂ the second-longest length. Rows with no valid token stay
 * in their group: they count in its size and lengths.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_optimal_token_baseline_advantage` (verl-project/verl
 * 1dda039, L872). The zero tail cuts at the absolute column L₂ although L₂ counts valid tokens: on multi-turn masks
 * (tool output inside a response) that is not the second row's end; `tirOptimalTokenBaselineAdvantages` fixes it.
 *
 * @param inputs - `tokenRewards`, `mask`, `oldLogp`, `sumPiSquared` and optionally `rolloutIsWeights` [B, T];
 *   `groupIds` [B].
 * @param options - `handleZeroTail` (default true) and `epsilon` (default 1e-8).
 * @returns advantages and returns (G), [B, T] each, 0 at mask-0 positions.
 * @throws ValidationError naming the field and position: a non-finite value the mask selects, a negative rollout
 *   weight, a bad group id, a mask entry other than 0/1, mismatched shapes or lengths, a result that overflows
 *   float64, an unknown or out-of-range option.
 *
 * @example optimalTokenBaselineAdvantages({ tokenRewards: [[1]], mask: [[1]], groupIds: ["q"], oldLogp: [[-1]],
 *   sumPiSquared: [[0.5]] }).advantages.data // => Float64Array [1] (a group of one: no baseline)
 */
export function optimalTokenBaselineAdvantages(
  inputs: OptimalTokenBaselineInputs,
  options: OptimalTokenBaselineOptionsInput = {},
): TokenAdvantages {
  // Position k is column k; a row has none where its mask is 0. Empty rows stay in their group.
  return estimate(inputs, options, false, (b, { cols, mask }) =>
    Int32Array.from({ length: cols }, (_, t) => (mask[b * cols + t] === 1 ? b * cols + t : -1)),
  );
}

/**
 * The optimal token baseline for tool-integrated (multi-turn) responses (verl
 * `adv_estimator=tir_optimal_token_baseline`): as `optimalTokenBaselineAdvantages`, but each row is first compressed
 * to its valid tokens, so position k is a row's k-th token the model wrote, wherever tool output sits between:
 *
 *   B_k = Σ_i G_ik·W_ik / (Σ_i W_ik + ε)     over the rows of the group that have a k-th token
 *
 * Rows with no valid token leave their group (a group left with one row gets B = 0). The zero tail is in compressed
 * positions. On contiguous masks without empty rows it equals `optimalTokenBaselineAdvantages`.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_multi_turn_optimal_token_baseline_advantage`
 * (verl-project/verl 1dda039, L991).
 *
 * @param inputs - as `optimalTokenBaselineAdvantages`.
 * @param options - `handleZeroTail` (default true) and `epsilon` (default 1e-8).
 * @returns advantages and returns (G, uncompressed), [B, T] each, 0 at mask-0 positions.
 * @throws ValidationError as `optimalTokenBaselineAdvantages`.
 *
 * @example tirOptimalTokenBaselineAdvantages({ tokenRewards: [[0, 0, 1]], mask: [[1, 0, 1]], groupIds: [0],
 *   oldLogp: [[-1, 0, -1]], sumPiSquared: [[0.5, 0, 0.5]] }).advantages.data // => Float64Array [1, 0, 1]
 */
export function tirOptimalTokenBaselineAdvantages(
  inputs: OptimalTokenBaselineInputs,
  options: OptimalTokenBaselineOptionsInput = {},
): TokenAdvantages {
  // Position k is a row's k-th valid token, wherever it sits. Empty rows leave their group.
  return estimate(inputs, options, true, (b, { cols, mask, rowTokens }) => {
    const valid = new Int32Array(rowTokens[b]!);
    for (let t = 0, k = 0; t < cols; t++) if (mask[b * cols + t] === 1) valid[k++] = b * cols + t;
    return valid;
  });
}
