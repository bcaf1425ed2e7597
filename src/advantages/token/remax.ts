import * as z from "zod/mini";
import { invalid, parseOrThrow } from "../../errors.js";
import { readNumbers, type NumericArray } from "../../numeric.js";
import {
  readTokenInputs,
  requireFiniteResult,
  rewardToGo,
  type TokenAdvantages,
  tokenAdvantagesOf,
  type TokenRewardInputs,
} from "./inputs.js";

/** ReMax's inputs: the sampled responses' token rewards and mask, and the greedy response's reward per row. */
export interface RemaxInputs extends TokenRewardInputs {
  /**
   * The reward of the greedy (argmax-decoded) response to the same prompt, one per row [B] (verl
   * `reward_baselines`); read only for rows with at least one valid token.
   */
  readonly rewardBaselines: NumericArray;
}

/** ReMax has no options: an object with any key (a `gamma`, say: ReMax never discounts) is refused. */
const remaxOptionsSchema = /* @__PURE__ */ z.strictObject({});

const KNOWN_INPUTS = ["tokenRewards", "mask", "rewardBaselines"] as const satisfies readonly (keyof RemaxInputs)[];

/**
 * ReMax (verl `adv_estimator=remax`): the reward-to-go of each token minus the greedy response's reward, no
 * whitening. returns_t = Σ_{k ≥ t} r_k · mask_k (rewards at mask-0 positions dropped); A_t = returns_t − baseline.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_remax_outcome_advantage` (volcengine/verl b178a3c, L622;
 * unchanged at 1dda039).
 *
 * @param inputs - `tokenRewards` and `mask` [B, T], `rewardBaselines` [B].
 * @param options - none: an empty object, or left out (any key is refused, so that a `gamma` is never ignored).
 * @returns advantages and returns, [B, T] each, 0 at mask-0 positions (verl keeps the reward-to-go at a mask-0
 *   position inside a multi-turn response).
 * @throws ValidationError naming the field and position: a non-finite value the mask selects, a non-finite baseline
 *   of a row with valid tokens, a mask entry other than 0/1, mismatched shapes or lengths, a sum that overflows
 *   float64, any option.
 *
 * @example remaxAdvantages({ tokenRewards: [[0, 1]], mask: [[1, 1]], rewardBaselines: [0.25] }).advantages.data
 * // => Float64Array [0.75, 0.75]
 */
export function remaxAdvantages(inputs: RemaxInputs, options: Readonly<Record<string, never>> = {}): TokenAdvantages {
  parseOrThrow(remaxOptionsSchema, options, "options");
  const read = readTokenInputs(inputs, KNOWN_INPUTS);
  const { rows, cols, mask, rowTokens } = read;
  const baselines = readNumbers(inputs.rewardBaselines, "inputs.rewardBaselines");
  if (baselines.length !== rows) {
    throw invalid(
      "inputs.rewardBaselines",
      `has ${baselines.length} entries, one per row, but tokenRewards has ${rows}`,
    );
  }
  for (let b = 0; b < rows; b++) {
    if (rowTokens[b]! > 0 && !Number.isFinite(baselines[b])) {
      throw invalid(
        `inputs.rewardBaselines[${b}]`,
        `is ${baselines[b]}; the baseline of a row with tokens must be finite`,
      );
    }
  }
  const returns = rewardToGo(read);
  const advantages = new Float64Array(rows * cols);
  for (let i = 0; i < returns.length; i++) {
    if (mask[i] === 1) advantages[i] = returns[i]! - baselines[Math.floor(i / cols)]!;
  }
  requireFiniteResult(advantages, mask, cols, "advantage (reward-to-go − baseline)", "inputs.rewardBaselines");
  return tokenAdvantagesOf(advantages, returns, { rows, cols });
}
