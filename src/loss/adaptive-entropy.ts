/**
 * TRL's adaptive entropy coefficient (GRPOConfig `use_adaptive_entropy`): a bang-bang controller that raises the
 * entropy bonus's coefficient by a fixed step while the policy's mean token entropy is at or below a target, and
 * lowers it otherwise, within bounds; the bonus itself is applied only while the last measured entropy is at or below
 * the target. Two pure functions: the coefficient the next optimizer step applies (`policyLoss`' `entropyCoef`), and
 * the controller's update from the step's entropy.
 *
 * Peer: TRL v1.9.0 `trl/trainer/grpo_trainer.py`, `GRPOTrainer._compute_loss`, the entropy-bonus block after the loss
 * aggregation ("Apply the coefficient and gating from the end of the previous optimizer step…" and "Adaptive
 * update…"), as read in public copies of that method that check themselves against TRL 1.9.0's source at import, and
 * in TRL's own `tests/experimental/test_gmpo_trainer.py` (`test_aux_loss_and_entropy_bonus`), whose expected loss
 * −1.2 = −1 − 0.25·2 + 0.1·3 is the gate open at `_last_world_entropy` 1.0 ≤ `entropy_target` 2.0. TRL's source at
 * f2cd577 (the golden files' commit) was not available here: there are no golden values for this controller, and
 * `GRPOTrainer.__init__`, which sets the controller's starting state, was not read (see appliedEntropyCoefficient).
 */
import * as z from "zod/mini";
import { invalid, parseOrThrow } from "../errors.js";
import { pure } from "../pure.js";

const nonnegative = /* @__PURE__ */ z.number().check(z.nonnegative());

/** adaptiveEntropyOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const adaptiveEntropyShape = /* @__PURE__ */ pure(() => ({
  /** The coefficient's lower bound, ≥ 0 (TRL `entropy_coef_min`, default 0.0). */
  coefMin: z._default(nonnegative, 0),
  /** The coefficient's upper bound, ≥ coefMin (TRL `entropy_coef_max`, default 1.0). */
  coefMax: z._default(nonnegative, 1),
  /** The step per optimizer step, ≥ 0 (TRL `entropy_coef_delta`, default 0.005). */
  delta: z._default(nonnegative, 0.005),
  /**
   * The target mean token entropy in nats (TRL `entropy_target`, default 0.2): at or below it the coefficient rises
   * and the bonus is applied, above it the coefficient falls and the bonus is off.
   */
  targetEntropy: z._default(z.number(), 0.2),
}));

/** Checks and fills in the adaptive entropy controller's options. Unknown keys are errors naming the closest key. */
export const adaptiveEntropyOptionsSchema: z.ZodMiniObject<typeof adaptiveEntropyShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(adaptiveEntropyShape);

/** The adaptive entropy controller's options with every default filled in. */
export type AdaptiveEntropyOptions = z.output<typeof adaptiveEntropyOptionsSchema>;
/** The adaptive entropy controller's options, every field optional (TRL's defaults: 0, 1, 0.005, 0.2). */
export type AdaptiveEntropyOptionsInput = z.input<typeof adaptiveEntropyOptionsSchema>;

/** The controller's state between optimizer steps (TRL `self.entropy_coef`, `self._last_world_entropy`). */
export interface AdaptiveEntropyState {
  /** The controller's coefficient, ≥ 0 (TRL `self.entropy_coef`). */
  readonly coef: number;
  /** The mean token entropy the last update measured, finite (TRL `self._last_world_entropy`). */
  readonly lastEntropy: number;
}

/** One optimizer step's measurement, for adaptiveEntropyCoefficient. */
export interface AdaptiveEntropyStep {
  /** The controller's coefficient during the step just taken, ≥ 0 (TRL `self.entropy_coef`). */
  readonly coef: number;
  /**
   * Σ H_t·mask_t over every micro-batch of the optimizer step on every process, ≥ 0 (TRL `window_stats[0]`: the
   * per-micro-batch `(entropies * effective_mask).sum()`, summed over the accumulation window and reduced over ranks).
   */
  readonly entropySum: number;
  /** Σ mask_t over the same tokens, ≥ 0 (TRL `window_stats[1]`). */
  readonly tokens: number;
}

/** What adaptiveEntropyCoefficient returns: the controller's state for the next optimizer step. */
export interface AdaptiveEntropyUpdate {
  /** The next coefficient (TRL's new `self.entropy_coef`). */
  readonly coef: number;
  /** The step's mean token entropy, entropySum / max(tokens, 1) (TRL `world_entropy`, the next `lastEntropy`). */
  readonly entropy: number;
}

const stateShape = /* @__PURE__ */ pure(() => ({ coef: nonnegative, lastEntropy: z.number() }));
const stateSchema: z.ZodMiniObject<typeof stateShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(stateShape);
const stepShape = /* @__PURE__ */ pure(() => ({ coef: nonnegative, entropySum: nonnegative, tokens: nonnegative }));
const stepSchema: z.ZodMiniObject<typeof stepShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(stepShape);

function parseOptions(options: AdaptiveEntropyOptionsInput): AdaptiveEntropyOptions {
  const parsed = parseOrThrow(adaptiveEntropyOptionsSchema, options, "options");
  if (parsed.coefMin > parsed.coefMax)
    throw invalid("options.coefMax", `is ${parsed.coefMax}, below coefMin ${parsed.coefMin}`);
  return parsed;
}

/**
 * The entropy bonus's coefficient for the next optimizer step, the same for each of its micro-batches: the
 * controller's coefficient while the last measured entropy is at or below the target, 0 above it.
 *
 *   applied = lastEntropy ≤ targetEntropy ? coef : 0
 *
 * Pass it as `policyLoss`' `entropyCoef` (the loss is then L_policy − applied·H, H aggregated as `entropyAggregation`
 * says). TRL's starting state is set in `GRPOTrainer.__init__`, which the sources read for grpo-roc did not include:
 * the first step's `lastEntropy` is the caller's to give (there is no default, so that no guessed gate is applied).
 *
 * Peer: TRL v1.9.0 `GRPOTrainer._compute_loss`, `apply_coef = self.entropy_coef if self._last_world_entropy <=
 * self.args.entropy_target else 0.0`.
 *
 * @param state - `coef` (the controller's coefficient) and `lastEntropy` (the last update's `entropy`).
 * @param options - `targetEntropy` (default 0.2); the bounds and the step are checked, not read.
 * @returns the coefficient to apply.
 * @throws ValidationError at `state.<key>` or `options.<key>`: an unknown key, a negative or non-finite coefficient,
 *   a non-finite entropy, bounds with coefMin > coefMax.
 *
 * @example appliedEntropyCoefficient({ coef: 0.25, lastEntropy: 1 }, { targetEntropy: 2 }) // => 0.25 (1 ≤ 2)
 */
export function appliedEntropyCoefficient(
  state: AdaptiveEntropyState,
  options: AdaptiveEntropyOptionsInput = {},
): number {
  const { coef, lastEntropy } = parseOrThrow(stateSchema, state, "state");
  const { targetEntropy } = parseOptions(options);
  return lastEntropy <= targetEntropy ? coef : 0;
}

/**
 * The controller's update at the end of an optimizer step: the step's mean token entropy over every micro-batch and
 * process, then the coefficient one `delta` up (entropy at or below the target) or down (above it), clamped to the
 * bounds on that side.
 *
 *   entropy = entropySum / max(tokens, 1)
 *   coef'   = entropy ≤ targetEntropy ? min(coef + delta, coefMax) : max(coef − delta, coefMin)
 *
 * in TRL's order, so the rounding matches (the coefficient arithmetic is Python floats, float64, in TRL). TRL divides
 * the two sums in the entropies' dtype (float32 when the model computes in float32) and compares the quotient as a
 * Python float; pass sums of that dtype's values to reproduce it. A step without tokens measures 0 (TRL clamps the
 * count to 1). Only the clamp on the side moved toward applies: a coefficient above coefMax still falls by delta.
 *
 * Peer: TRL v1.9.0 `GRPOTrainer._compute_loss`, the `if self.use_adaptive_entropy and mode == "train"` block: the
 * window statistics `torch.stack([(entropies * effective_mask).sum(), effective_mask.sum()])`, summed over the
 * accumulation window, `accelerator.reduce(…, reduction="sum")` at `sync_gradients`, then `world_entropy =
 * (window_stats[0] / window_stats[1].clamp(min=1.0)).item()` and the update of `self.entropy_coef`.
 *
 * @param step - `coef` (the coefficient during the step), `entropySum` and `tokens` (the step's sums).
 * @param options - `coefMin` (0), `coefMax` (1), `delta` (0.005), `targetEntropy` (0.2): TRL's defaults.
 * @returns `{ coef, entropy }`: the next state (`entropy` is the next appliedEntropyCoefficient's `lastEntropy`).
 * @throws ValidationError at `step.<key>` or `options.<key>`: an unknown key, a negative or non-finite value,
 *   bounds with coefMin > coefMax.
 *
 * @example adaptiveEntropyCoefficient({ coef: 0.01, entropySum: 1.5, tokens: 10 }, { targetEntropy: 0.2 })
 * // => { coef: 0.015, entropy: 0.15 } (0.15 ≤ 0.2: min(0.01 + 0.005, 1))
 */
export function adaptiveEntropyCoefficient(
  step: AdaptiveEntropyStep,
  options: AdaptiveEntropyOptionsInput = {},
): AdaptiveEntropyUpdate {
  const { coef, entropySum, tokens } = parseOrThrow(stepSchema, step, "step");
  const { coefMin, coefMax, delta, targetEntropy } = parseOptions(options);
  const entropy = entropySum / (tokens < 1 ? 1 : tokens);
  // Python's min/max: min(a, b) is b only when b < a; the same for finite values as the ternaries.
  const next =
    entropy <= targetEntropy
      ? coef + delta < coefMax
        ? coef + delta
        : coefMax
      : coef - delta > coefMin
        ? coef - delta
        : coefMin;
  return { coef: next, entropy };
}
