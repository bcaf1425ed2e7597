import * as z from "zod/mini";
import { pure } from "../../pure.js";
import { parseOrThrow } from "../../errors.js";
import {
  readTokenInputs,
  requireFiniteResult,
  type TokenAdvantages,
  tokenAdvantagesOf,
  type TokenRewardInputs,
} from "./inputs.js";
import { maskedWhiten, VERL_WHITEN_EPSILON } from "../whiten.js";

/** The verl commits whose REINFORCE++ differs, newest first: the first is the default. */
export const REINFORCE_PLUS_PLUS_VERL_VERSIONS = ["1dda039", "b178a3c"] as const;

/** reinforcePlusPlusOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const reinforcePlusPlusOptionsShape = /* @__PURE__ */ pure(() => ({
  /** The discount γ in [0, 1] (verl `algorithm.gamma`, default 1.0). */
  gamma: z._default(z.number().check(z.gte(0), z.lte(1)), 1),
  /**
   * Which verl's discounted return: "1dda039" (the default, verl-project/verl 1dda039 and later) carries the running
   * return through mask-0 positions (a tool output inside a multi-turn response) and drops a reward that sits at one;
   * "b178a3c" (volcengine/verl b178a3c and earlier) resets it to 0 at every mask-0 position, so a token before a tool
   * output never sees the rewards after it. On right-padded masks both give the same values.
   */
  verlVersion: z._default(z.enum(REINFORCE_PLUS_PLUS_VERL_VERSIONS), "1dda039"),
}));

/** Checks and fills in reinforcePlusPlusAdvantages' options. Unknown keys are errors naming the closest key. */
export const reinforcePlusPlusOptionsSchema: z.ZodMiniObject<typeof reinforcePlusPlusOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(reinforcePlusPlusOptionsShape);

/** reinforcePlusPlusAdvantages' options with every default filled in. */
export type ReinforcePlusPlusOptions = z.output<typeof reinforcePlusPlusOptionsSchema>;
/** The options reinforcePlusPlusAdvantages takes: every field optional (γ = 1, verl 1dda039). */
export type ReinforcePlusPlusOptionsInput = z.input<typeof reinforcePlusPlusOptionsSchema>;

const KNOWN_INPUTS = ["tokenRewards", "mask"] as const satisfies readonly (keyof TokenRewardInputs)[];

/**
 * REINFORCE++ (verl `adv_estimator=reinforce_plus_plus`): the discounted return of each token, then whitened over
 * every valid token of the batch (no groups, no critic).
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_reinforce_plus_plus_outcome_advantage`, at
 * verl-project/verl 1dda039 (L694; the default) or volcengine/verl b178a3c (L583; `verlVersion: "b178a3c"`).
 * For t from T − 1 down to 0, with run = 0 at the start:
 *
 * - 1dda039: if mask_t = 1, run = r_t + γ·run and return_t = run; else return_t = 0 and run is carried unchanged
 *   (the reward at t is dropped).
 * - b178a3c: if mask_t = 1, run = r_t + γ·run and return_t = run; else run = 0.
 *
 * Then advantages = masked_whiten(returns, mask) · mask: (return − mean) · rsqrt(var_unbiased + 1e-8) over the
 * batch's valid tokens, with verl's float32 count and Bessel factor.
 *
 * @param inputs - `tokenRewards` and `mask`, [B, T] each.
 * @param options - `gamma` (default 1) and `verlVersion` (default "1dda039").
 * @returns advantages and returns, [B, T] each, 0 at mask-0 positions (verl keeps raw values there at b178a3c).
 * @throws ValidationError naming the field and position: a non-finite value the mask selects, a mask entry other
 *   than 0/1, mismatched shapes, fewer than 2 valid tokens in the batch (verl raises too), a return that overflows
 *   float64, an unknown or out-of-range option.
 *
 * @example reinforcePlusPlusAdvantages({ tokenRewards: [[0, 1], [0, 0]], mask: [[1, 1], [1, 1]] }).returns.data
 * // => Float64Array [1, 1, 0, 0]
 */
export function reinforcePlusPlusAdvantages(
  inputs: TokenRewardInputs,
  options: ReinforcePlusPlusOptionsInput = {},
): TokenAdvantages {
  const { gamma, verlVersion } = parseOrThrow(reinforcePlusPlusOptionsSchema, options, "options");
  const { rows, cols, tokenRewards, mask } = readTokenInputs(inputs, KNOWN_INPUTS);
  const returns = new Float64Array(rows * cols);
  const carryThroughMasked = verlVersion === "1dda039";
  for (let b = 0; b < rows; b++) {
    let running = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = b * cols + t;
      if (mask[i] === 1) {
        running = tokenRewards[i]! + gamma * running;
        returns[i] = running;
      } else if (!carryThroughMasked) {
        running = 0;
      }
    }
  }
  requireFiniteResult(returns, mask, cols, "discounted return", "inputs.tokenRewards");
  const advantages = maskedWhiten(returns, mask, VERL_WHITEN_EPSILON, "inputs.mask");
  return tokenAdvantagesOf(advantages, returns, { rows, cols });
}
