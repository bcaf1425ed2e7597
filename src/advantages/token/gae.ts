import * as z from "zod/mini";
import { pure } from "../../pure.js";
import { parseOrThrow } from "../../errors.js";
import type { MatrixInput } from "../../tensor.js";
import {
  readTokenInputs,
  requireFiniteResult,
  type TokenAdvantages,
  tokenAdvantagesOf,
  type TokenRewardInputs,
} from "./inputs.js";
import { maskedWhiten, VERL_WHITEN_EPSILON } from "../whiten.js";

/** GAE's inputs: the token rewards and mask, and the critic's value of each token. */
export interface GaeInputs extends TokenRewardInputs {
  /** The critic's value estimate V(s_t) of each response token, [B, T] (verl `values`); mask-0 positions unread. */
  readonly values: MatrixInput;
}

/** gaeOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const gaeOptionsShape = /* @__PURE__ */ pure(() => ({
  /** The discount γ in [0, 1] (verl `algorithm.gamma`, default 1.0). */
  gamma: z._default(z.number().check(z.gte(0), z.lte(1)), 1),
  /** GAE's λ in [0, 1] (verl `algorithm.lam`, default 1.0): 0 is the one-step TD error, 1 the Monte Carlo return. */
  lambda: z._default(z.number().check(z.gte(0), z.lte(1)), 1),
}));

/** Checks and fills in gaeAdvantages' options. Unknown keys are errors naming the closest key. */
export const gaeOptionsSchema: z.ZodMiniObject<typeof gaeOptionsShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  gaeOptionsShape,
);

/** gaeAdvantages' options with every default filled in. */
export type GaeOptions = z.output<typeof gaeOptionsSchema>;
/** The options gaeAdvantages takes: every field optional (γ = λ = 1, verl's defaults). */
export type GaeOptionsInput = z.input<typeof gaeOptionsSchema>;

const KNOWN_INPUTS = ["tokenRewards", "mask", "values"] as const satisfies readonly (keyof GaeInputs)[];

/**
 * Generalised advantage estimation (verl `adv_estimator=gae`, PPO with a critic). For t from T − 1 down to 0, over
 * the tokens the mask selects only (a mask-0 position, such as a tool output, is skipped: the next value and the
 * running estimate are carried across it):
 *
 *   δ_t = r_t + γ·V_next − V_t ;  Â_t = δ_t + (γλ)·Â_next ;  returns_t = Â_t + V_t
 *
 * then advantages = masked_whiten(Â, mask) over the batch's valid tokens, with verl's float32 count and Bessel
 * factor. γλ is one product, as in the peer.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_gae_advantage_return` (volcengine/verl b178a3c, L215).
 *
 * @param inputs - `tokenRewards`, `values` and `mask`, [B, T] each.
 * @param options - `gamma` and `lambda`, default 1 each.
 * @returns advantages (whitened) and returns (unwhitened Â + V, the critic's target), [B, T] each, 0 at mask-0
 *   positions (verl leaves the carried, whitened estimate there).
 * @throws ValidationError naming the field and position: a non-finite value the mask selects, a mask entry other
 *   than 0/1, mismatched shapes, fewer than 2 valid tokens in the batch (verl raises too), an estimate that overflows
 *   float64, an unknown or out-of-range option.
 *
 * @example gaeAdvantages({ tokenRewards: [[0, 1]], values: [[0.5, 0.5]], mask: [[1, 1]] }).returns.data
 * // => Float64Array [1, 1]
 */
export function gaeAdvantages(inputs: GaeInputs, options: GaeOptionsInput = {}): TokenAdvantages {
  const { gamma, lambda } = parseOrThrow(gaeOptionsSchema, options, "options");
  const read = readTokenInputs(inputs, KNOWN_INPUTS, ["values"]);
  const { rows, cols, tokenRewards, mask } = read;
  const values = read.matrices.values!;
  const gammaLambda = gamma * lambda;
  const estimates = new Float64Array(rows * cols);
  const returns = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let nextValue = 0;
    let nextEstimate = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = b * cols + t;
      if (mask[i] !== 1) continue;
      const delta = tokenRewards[i]! + gamma * nextValue - values[i]!;
      nextEstimate = delta + gammaLambda * nextEstimate;
      nextValue = values[i]!;
      estimates[i] = nextEstimate;
      returns[i] = nextEstimate + values[i]!;
    }
  }
  requireFiniteResult(estimates, mask, cols, "advantage estimate", "inputs.tokenRewards");
  requireFiniteResult(returns, mask, cols, "return", "inputs.values");
  const advantages = maskedWhiten(estimates, mask, VERL_WHITEN_EPSILON, "inputs.mask");
  return tokenAdvantagesOf(advantages, returns, { rows, cols });
}
