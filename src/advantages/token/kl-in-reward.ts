/**
 * verl's KL penalty in the rewards (`algorithm.use_kl_in_reward=True`): the token scores minus β times a per-token
 * KL estimate of π_old against π_ref, before the advantage estimator runs, and the KL controllers that set the next
 * β. Pure functions over [B, T] matrices, in the token-level estimators' style (see docs/api.md).
 */
import * as z from "zod/mini";
import { pure } from "../../pure.js";
import { invalid, parseOrThrow, requireKnownKeys } from "../../errors.js";
import { readMatrices, requireFiniteWhereSelected } from "../../masked-inputs.js";
import { klEstimator } from "../../loss/kl.js";
import { klKindSchema } from "../../loss/options.js";
import type { NumericArray } from "../../numeric.js";
import { type Matrix, type MatrixInput, matrixOf, toMatrix } from "../../tensor.js";

/** klPenaltyRewards' inputs: four [B, T] matrices of one shape, as verl's `apply_kl_penalty` reads them. */
export interface KlPenaltyRewardsInputs {
  /**
   * The reward of each response token before the penalty, [B, T] (verl `token_level_scores`; an outcome score sits
   * at the last response token). Read at every position: verl copies the scores at mask-0 positions into
   * `token_level_rewards` unchanged, and its outcome estimators sum every column, so each one must be finite.
   */
  readonly tokenScores: MatrixInput;
  /** log π_old of each response token, [B, T] (verl `old_log_probs`); mask-0 positions are never read. */
  readonly oldLogp: MatrixInput;
  /** log π_ref of each response token, [B, T] (verl `ref_log_prob`); mask-0 positions are never read. */
  readonly refLogp: MatrixInput;
  /** 1 for tokens the model wrote, 0 for padding and tool output, [B, T] (verl `response_mask`). */
  readonly mask: MatrixInput;
}

/** klPenaltyRewardsOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const klPenaltyRewardsShape = /* @__PURE__ */ pure(() => ({
  /**
   * The KL estimator (verl `algorithm.kl_penalty`, default "kl" = k1): "k1", "abs", "k2", "k3" or verl's names "kl",
   * "mse", "low_var_kl", with verl's k3 clamps (verl `core_algos.kl_penalty`, b178a3c L1841). A "+" kind
   * ("k3+", "low_var_kl+", …) gives its base kind's value (verl 1dda039 L2187; at b178a3c it raised
   * NotImplementedError).
   */
  kind: z._default(klKindSchema, "k1"),
  /**
   * β ≥ 0, the coefficient the penalty is multiplied by (verl `kl_ctrl.value`: `algorithm.kl_ctrl.kl_coef`, default
   * 0.001, at the first step; then what fixedKlCoefficient or adaptiveKlCoefficient returns).
   */
  beta: z._default(z.number().check(z.nonnegative()), 0.001),
}));

/** Checks and fills in klPenaltyRewards' options. Unknown keys are errors naming the closest key. */
export const klPenaltyRewardsOptionsSchema: z.ZodMiniObject<typeof klPenaltyRewardsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(klPenaltyRewardsShape);

/** klPenaltyRewards' options with every default filled in (kind resolved to one of KL_KINDS). */
export type KlPenaltyRewardsOptions = z.output<typeof klPenaltyRewardsOptionsSchema>;
/** The options klPenaltyRewards takes: every field optional (kind "kl", β = 0.001: verl's defaults). */
export type KlPenaltyRewardsOptionsInput = z.input<typeof klPenaltyRewardsOptionsSchema>;

/** verl's two metrics of the in-reward KL, under verl's names (verl `ray_trainer.apply_kl_penalty`). */
export interface KlPenaltyRewardsMetrics {
  /** currentKl: the batch's mean over rows of each row's mean KL. */
  readonly "actor/reward_kl_penalty": number;
  /** The β the rewards were computed with (before any controller update). */
  readonly "actor/reward_kl_penalty_coeff": number;
}

/** What klPenaltyRewards returns: verl's `token_level_rewards`, its `kld`, `current_kl` and metrics. */
export interface KlPenaltyRewardsResult {
  /**
   * token_level_rewards = tokenScores − β·kl, [B, T] (verl `token_level_rewards`): the advantage estimators' input.
   * At mask-0 positions kl is 0, so the score is copied unchanged, as verl does.
   */
  readonly tokenRewards: Matrix<Float64Array>;
  /** The per-token KL estimate times the mask, [B, T] (verl `kld` after `kld * response_mask`); 0 at mask 0. */
  readonly kl: Matrix<Float64Array>;
  /**
   * The mean over rows of each row's masked mean KL (verl `current_kl`); a row with no valid token counts as 0.
   * The adaptive controller's `currentKl`.
   */
  readonly currentKl: number;
  /** `actor/reward_kl_penalty` (= currentKl) and `actor/reward_kl_penalty_coeff` (= β), as verl logs them. */
  readonly metrics: KlPenaltyRewardsMetrics;
}

/** klPenaltyRewards' [B, T] inputs besides the mask (required too). */
const KL_MATRICES = ["tokenScores", "oldLogp", "refLogp"] as const satisfies readonly (keyof KlPenaltyRewardsInputs)[];

/**
 * verl's KL penalty in the rewards (`algorithm.use_kl_in_reward=True`), per token and per row:
 *
 *   kl_t = kl_penalty(oldLogp_t, refLogp_t, kind) · mask_t ;  tokenRewards_t = tokenScores_t − β·kl_t
 *   currentKl = mean over rows b of (Σ_t kl_bt) / count_b   (a row with count_b = 0 gives 0)
 *
 * The row's count divides as verl's `masked_mean` has it: `mask.sum(-1) + 1e-8` with an int64 mask is float32, so
 * the 1e-8 vanishes for every count ≥ 1 and an empty row is 0 / 1e-8 = 0. The KL controller's update is separate:
 * pass currentKl and B to fixedKlCoefficient or adaptiveKlCoefficient for the next step's β.
 *
 * Peer: verl `verl/trainer/ppo/ray_trainer.py`, `apply_kl_penalty` (volcengine/verl b178a3c, L70–109; the same body
 * in verl-project/verl 0094eb2, L78–117), with `core_algos.kl_penalty` (b178a3c L1841) and
 * `torch_functional.masked_mean`.
 *
 * @param inputs - `tokenScores`, `oldLogp`, `refLogp` and `mask`, [B, T] each, B ≥ 1.
 * @param options - `kind` (default "kl") and `beta` (default 0.001).
 * @returns tokenRewards and kl, [B, T] each, currentKl and verl's two metrics.
 * @throws ValidationError naming the field and position: a non-finite log-prob the mask selects, a non-finite score
 *   anywhere, a mask entry other than 0/1, mismatched shapes, an empty batch (verl's mean over no rows is NaN), a KL
 *   estimate, reward or row sum that overflows float64, an unknown or out-of-range option.
 *
 * @example klPenaltyRewards({ tokenScores: [[0, 1]], oldLogp: [[-1, -2]], refLogp: [[-1.5, -2]], mask: [[1, 1]] },
 *   { kind: "kl", beta: 0.1 })
 * // => { tokenRewards: [[-0.05, 1]], kl: [[0.5, 0]], currentKl: 0.25, metrics: { "actor/reward_kl_penalty": 0.25,
 * //      "actor/reward_kl_penalty_coeff": 0.1 } }   (matrices as { data, shape })
 */
export function klPenaltyRewards(
  inputs: KlPenaltyRewardsInputs,
  options: KlPenaltyRewardsOptionsInput = {},
): KlPenaltyRewardsResult {
  const { kind, beta } = parseOrThrow(klPenaltyRewardsOptionsSchema, options, "options");
  const { rows, cols, tokenScores, oldLogp, refLogp, mask, rowTokens } = readKlRewardInputs(inputs);
  if (rows === 0) {
    throw invalid("inputs.tokenScores", "has no rows; the batch's mean KL over no rows is NaN (verl's torch.mean)");
  }
  // verl's kl_penalty always clamps k3 (x to ±20, the value to ±10).
  const estimate = klEstimator(kind, true);
  const kl = new Float64Array(rows * cols);
  const tokenRewards = new Float64Array(rows * cols);
  let rowMeanSum = 0;
  for (let b = 0; b < rows; b++) {
    let rowSum = 0;
    for (let t = 0; t < cols; t++) {
      const i = b * cols + t;
      if (mask[i] === 1) {
        const value = estimate(oldLogp[i]!, refLogp[i]!).value;
        if (!Number.isFinite(value)) {
          throw invalid(
            `inputs.oldLogp[${b}][${t}]`,
            `the ${kind} estimate of oldLogp − refLogp = ${oldLogp[i]! - refLogp[i]!} overflows float64`,
          );
        }
        kl[i] = value;
        rowSum += value;
      }
      // At mask 0, kl is 0 and the score passes through: verl's scores − β·(kld·0).
      tokenRewards[i] = tokenScores[i]! - beta * kl[i]!;
      if (!Number.isFinite(tokenRewards[i])) {
        throw invalid(
          `inputs.tokenScores[${b}][${t}]`,
          `the reward ${tokenScores[i]} − ${beta}·${kl[i]} overflows float64`,
        );
      }
    }
    if (!Number.isFinite(rowSum)) {
      throw invalid(`inputs.oldLogp[${b}]`, `row ${b}'s KL estimates sum past float64's range; their mean overflows`);
    }
    // torch: int64 count + 1e-8 is float32, fround(count) for counts ≥ 1; an empty row's 0 / 1e-8 is 0.
    if (rowTokens[b]! > 0) rowMeanSum += rowSum / Math.fround(rowTokens[b]!);
    if (!Number.isFinite(rowMeanSum)) {
      throw invalid(
        `inputs.oldLogp[${b}]`,
        `the rows' mean KL estimates up to row ${b} sum past float64's range: the batch's mean KL (currentKl) ` +
          "overflows; use log-probs whose differences are smaller",
      );
    }
  }
  const currentKl = rowMeanSum / rows;
  return {
    tokenRewards: matrixOf(tokenRewards, [rows, cols]),
    kl: matrixOf(kl, [rows, cols]),
    currentKl,
    metrics: { "actor/reward_kl_penalty": currentKl, "actor/reward_kl_penalty_coeff": beta },
  };
}

interface KlRewardInputs {
  readonly rows: number;
  readonly cols: number;
  readonly tokenScores: NumericArray;
  readonly oldLogp: NumericArray;
  readonly refLogp: NumericArray;
  readonly mask: NumericArray;
  readonly rowTokens: Int32Array;
}

/**
 * Reads klPenaltyRewards' inputs: known keys, one shape, a 0/1 mask; the log-probs finite where it selects, the
 * scores everywhere.
 */
function readKlRewardInputs(inputs: unknown): KlRewardInputs {
  const { shape, values, mask, rowTokens } = readMatrices(inputs, KL_MATRICES, {
    maskRequired: true,
  });
  const [rows, cols] = shape;
  const scores = { data: values.tokenScores! };
  for (let i = 0; i < scores.data.length; i++) {
    if (!Number.isFinite(scores.data[i])) {
      throw invalid(
        `inputs.tokenScores[${Math.floor(i / cols)}][${i % cols}]`,
        `is ${scores.data[i]} at a mask-0 position; verl copies scores there into token_level_rewards unchanged ` +
          "(its outcome estimators sum every column), so every score must be finite",
      );
    }
  }
  return {
    rows,
    cols,
    tokenScores: scores.data,
    oldLogp: values.oldLogp!,
    refLogp: values.refLogp!,
    mask,
    rowTokens,
  };
}

/** klRatioRewards' inputs: three [B, T] matrices of one shape, every value read. */
export interface KlRatioRewardsInputs {
  /** The reward of each token before the penalty, [B, T] (verl `token_level_scores`). */
  readonly tokenScores: MatrixInput;
  /** log π_old of each token, [B, T] (verl `old_log_prob`). */
  readonly oldLogp: MatrixInput;
  /** log π_ref of each token, [B, T] (verl `ref_log_prob`). */
  readonly refLogp: MatrixInput;
}

/** klRatioRewardsOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const klRatioRewardsShape = /* @__PURE__ */ pure(() => ({
  /** The coefficient ≥ 0 of the k1 penalty (verl `compute_rewards`'s `kl_ratio`; it has no default there). */
  klRatio: z.number().check(z.nonnegative()),
}));

/** Checks klRatioRewards' options. Unknown keys are errors naming the closest key. */
export const klRatioRewardsOptionsSchema: z.ZodMiniObject<typeof klRatioRewardsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(klRatioRewardsShape);

/** The options klRatioRewards takes: `klRatio`, required. */
export type KlRatioRewardsOptions = z.input<typeof klRatioRewardsOptionsSchema>;

const KNOWN_RATIO_INPUTS = [
  "tokenScores",
  "oldLogp",
  "refLogp",
] as const satisfies readonly (keyof KlRatioRewardsInputs)[];

/**
 * verl's `compute_rewards`: tokenScores − (oldLogp − refLogp)·klRatio at every position, with no mask and no clamp
 * (written in verl's order, so the rounding matches). It takes no mask, so every value is read and must be finite.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `compute_rewards` (volcengine/verl b178a3c, L1009).
 *
 * @param inputs - `tokenScores`, `oldLogp` and `refLogp`, [B, T] each.
 * @param options - `klRatio` ≥ 0.
 * @returns the rewards, [B, T].
 * @throws ValidationError naming the field and position: a non-finite value, mismatched shapes, a reward that
 *   overflows float64, an unknown or out-of-range option.
 *
 * @example klRatioRewards({ tokenScores: [[0, 1]], oldLogp: [[-1, -2]], refLogp: [[-1.5, -2]] }, { klRatio: 0.1 }).data
 * // => Float64Array [-0.05, 1]
 */
export function klRatioRewards(inputs: KlRatioRewardsInputs, options: KlRatioRewardsOptions): Matrix<Float64Array> {
  const { klRatio } = parseOrThrow(klRatioRewardsOptionsSchema, options, "options");
  if (typeof inputs !== "object" || inputs === null || Array.isArray(inputs)) {
    throw invalid("inputs", `expected an object with ${KNOWN_RATIO_INPUTS.join(", ")}`);
  }
  requireKnownKeys(inputs, KNOWN_RATIO_INPUTS, "inputs");
  const fields = inputs as unknown as Record<string, MatrixInput | undefined>;
  const matrices: Matrix[] = [];
  for (const name of KNOWN_RATIO_INPUTS) {
    const value = fields[name];
    if (value === undefined) throw invalid(`inputs.${name}`, "is required: a [B, T] matrix");
    const matrix = toMatrix(value, `inputs.${name}`);
    const [rows, cols] = matrices[0]?.shape ?? matrix.shape;
    if (matrix.shape[0] !== rows || matrix.shape[1] !== cols) {
      throw invalid(`inputs.${name}`, `has shape [${matrix.shape.join(", ")}] but tokenScores has [${rows}, ${cols}]`);
    }
    // No mask: every position is computed, so every position must be finite.
    requireFiniteWhereSelected(matrix.data, new Uint8Array(matrix.data.length).fill(1), cols, `inputs.${name}`);
    matrices.push(matrix);
  }
  const [scores, oldLogp, refLogp] = matrices as [Matrix, Matrix, Matrix];
  const [rows, cols] = scores.shape;
  const rewards = new Float64Array(rows * cols);
  for (let i = 0; i < rewards.length; i++) {
    const kl = oldLogp.data[i]! - refLogp.data[i]!;
    // A difference beyond float64 (log-probs 1e308 apart) still has a finite penalty when klRatio is small: 0 for
    // klRatio 0 (not 0·∞ = NaN), else computed on halves (exact) and doubled. Ordinary values keep kl·klRatio's bits.
    const penalty = Number.isFinite(kl)
      ? kl * klRatio
      : klRatio === 0
        ? 0
        : (oldLogp.data[i]! * 0.5 - refLogp.data[i]! * 0.5) * klRatio * 2;
    rewards[i] = scores.data[i]! - penalty;
    if (!Number.isFinite(rewards[i])) {
      throw invalid(
        `inputs.oldLogp[${Math.floor(i / cols)}][${i % cols}]`,
        `the reward ${scores.data[i]} − (${oldLogp.data[i]} − ${refLogp.data[i]})·${klRatio} overflows float64`,
      );
    }
  }
  return matrixOf(rewards, [rows, cols]);
}

/** The controller's state after a step: the β it used and what that step measured. */
export interface KlControllerStep {
  /** β ≥ 0, the coefficient of the step just taken (verl `kl_ctrl.value`; at first `algorithm.kl_ctrl.kl_coef`). */
  readonly klCoef: number;
  /** The step's KL, klPenaltyRewards' `currentKl` (verl `current_kl`); any finite number (k1 may be negative). */
  readonly currentKl: number;
  /** The step's batch size B, rows included whether or not empty (verl `n_steps = data.batch.batch_size[0]`). */
  readonly nSteps: number;
}

/** klControllerStepSchema's fields: a const of its own, so that the published types keep each comment. */
const klControllerStepShape = /* @__PURE__ */ pure(() => ({
  /** β ≥ 0 (verl `kl_ctrl.value`). */
  klCoef: z.number().check(z.nonnegative()),
  /** verl `current_kl`: finite. */
  currentKl: z.number(),
  /** verl `n_steps`, the batch size: an integer ≥ 0. */
  nSteps: z.int().check(z.nonnegative()),
}));

const klControllerStepSchema: z.ZodMiniObject<typeof klControllerStepShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(klControllerStepShape);

/**
 * verl's FixedKLController: β never changes (`update` is a no-op), so the next β is `klCoef`. Validates the step as
 * adaptiveKlCoefficient does, so that switching `algorithm.kl_ctrl.type` changes nothing else.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `FixedKLController.update` (volcengine/verl b178a3c; the same in
 * verl-project/verl 018f23b), built by `get_kl_controller` for `kl_ctrl.type == "fixed"`.
 *
 * @param step - `klCoef`, `currentKl`, `nSteps`.
 * @returns klCoef.
 * @throws ValidationError at `step.<key>`: an unknown key, a negative or non-finite β, a non-finite KL, an nSteps
 *   that is not an integer ≥ 0.
 *
 * @example fixedKlCoefficient({ klCoef: 0.001, currentKl: 0.5, nSteps: 256 }) // => 0.001
 */
export function fixedKlCoefficient(step: KlControllerStep): number {
  return parseOrThrow(klControllerStepSchema, step, "step").klCoef;
}

/** adaptiveKlOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const adaptiveKlShape = /* @__PURE__ */ pure(() => ({
  /**
   * The KL the controller steers toward, > 0 (verl `algorithm.kl_ctrl.target_kl`, default 0.1; at 0 verl's
   * `current_kl / target` raises ZeroDivisionError).
   */
  targetKl: z._default(z.number().check(z.positive()), 0.1),
  /** Samples per full correction, > 0 (verl `algorithm.kl_ctrl.horizon`, default 10000; verl asserts > 0). */
  horizon: z._default(z.number().check(z.positive()), 10000),
}));

/** Checks and fills in adaptiveKlCoefficient's options. Unknown keys are errors naming the closest key. */
export const adaptiveKlOptionsSchema: z.ZodMiniObject<typeof adaptiveKlShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(adaptiveKlShape);

/** adaptiveKlCoefficient's options with every default filled in. */
export type AdaptiveKlOptions = z.output<typeof adaptiveKlOptionsSchema>;
/** The options adaptiveKlCoefficient takes: every field optional (target 0.1, horizon 10000: verl's defaults). */
export type AdaptiveKlOptionsInput = z.input<typeof adaptiveKlOptionsSchema>;

/**
 * verl's AdaptiveKLController (Ziegler et al. 2019, arXiv:1909.08593): the next β from this step's KL.
 *
 *   error = clip(currentKl / targetKl − 1, −0.2, 0.2) ;  β_next = β · (1 + error · nSteps / horizon)
 *
 * written in verl's order, so the rounding matches. verl would return a negative β when nSteps / horizon > 5 and
 * the KL is far below target (1 + (−0.2)·nSteps/horizon < 0), which turns the penalty into a bonus: refused here.
 *
 * Peer: verl `verl/trainer/ppo/core_algos.py`, `AdaptiveKLController.update` (volcengine/verl b178a3c; the same
 * formula in verl-project/verl 018f23b), built by `get_kl_controller` for `kl_ctrl.type ==
 * "adaptive"`; `apply_kl_penalty` calls it with `n_steps = batch_size`.
 *
 * @param step - `klCoef` (the β just used), `currentKl` (klPenaltyRewards' currentKl), `nSteps` (the batch size B).
 * @param options - `targetKl` (default 0.1) and `horizon` (default 10000).
 * @returns the next β.
 * @throws ValidationError at `step.<key>` or `options.<key>`: an unknown key, an out-of-range value, and a next β
 *   that would be negative or overflow float64.
 *
 * @example adaptiveKlCoefficient({ klCoef: 0.001, currentKl: 0.2, nSteps: 1000 }, { targetKl: 0.1, horizon: 10000 })
 * // => 0.001 · (1 + 0.2 · 1000 / 10000) = 0.00102
 */
export function adaptiveKlCoefficient(step: KlControllerStep, options: AdaptiveKlOptionsInput = {}): number {
  const { klCoef, currentKl, nSteps } = parseOrThrow(klControllerStepSchema, step, "step");
  const { targetKl, horizon } = parseOrThrow(adaptiveKlOptionsSchema, options, "options");
  const ratioError = currentKl / targetKl - 1;
  // np.clip; an overflowing ratio (a tiny targetKl) is ±Infinity here and clips to ±0.2 as it does in numpy.
  const proportionalError = ratioError < -0.2 ? -0.2 : ratioError > 0.2 ? 0.2 : ratioError;
  const mult = 1 + (proportionalError * nSteps) / horizon;
  const next = klCoef * mult;
  if (mult < 0) {
    throw invalid(
      "step.nSteps",
      `is ${nSteps} with horizon ${horizon}: the multiplier 1 + ${proportionalError}·${nSteps}/${horizon} = ${mult} ` +
        "would make β negative (verl returns it); use a horizon of at least nSteps/5",
    );
  }
  if (!Number.isFinite(next)) {
    throw invalid("step.klCoef", `is ${klCoef}: the next β, ${klCoef}·${mult}, overflows float64`);
  }
  return next;
}
