/**
 * TRL's policy objectives that have no kernel in the fast backends: every backend computes them through the
 * reference (float64 on the CPU). Each cites `GRPOTrainer._compute_loss` (and `get_gamma_weights`) in
 * trl/trainer/grpo_trainer.py at f2cd57710ae345ea6428ae95363267fcf38a3dc8, the commit of the golden files
 * (test/golden/trl_policy_loss.json, trl2_is_correction.json; `_compute_loss` spans L2991–3260 there).
 */
import { invalid } from "../errors.js";
import { clippedRatioLoss } from "./clip-term.js";
import {
  advantageOf,
  type ObjectiveBatch,
  type PolicyObjective,
  type PreparedBatch,
  type TokenKernel,
} from "./objective-types.js";
import type { PolicyLossOptions, VespoOptions } from "./options.js";

/**
 * LUSPO, TRL `loss_type="luspo"` (`_compute_loss`: the objective shares the grpo/bnpo/dr_grpo/dapo branch, the
 * aggregation is `(per_token_loss · mask.sum(1, keepdim=True)).mean() / gas`), with TRL's sequence-level ratio
 * (`importance_sampling_level="sequence"`):
 *
 *   s_b = exp(Σ_t (log π − log π_old)·m / L_b),   ℓ_b = −min(s_b·A, clip(s_b, 1 − ε_low, 1 + ε_high)·A)   (δ as "clip")
 *   loss = Σ_b L_b · ℓ_b / (B · gas)                              one advantage per row: ℓ is [B, 1]
 *   loss = Σ_b Σ_t L_b · ℓ_bt / (B · T · gas)                     per-token advantages: ℓ broadcasts to [B, T]
 *
 * Run with the "grpo" aggregation (1/(L_b·B·gas) per valid token, empty rows counted): `prepare` gives each valid
 * token log s_b and scales its weight by L_b (or L_b²/T), so the aggregated sum is TRL's. Every token of a row
 * shares s_b, so ∂loss/∂log π_bt = (1/L_b) Σ_t' ∂ℓ_bt'/∂log s_b: `prepare` computes that row sum
 * (`logRatioGradients`), exact also where the advantages differ along the row. TRL's [B, T] mean also runs over the
 * padding positions; grpo-roc never reads them, which is TRL's value when the padding advantages are 0.
 *
 * The importance weights must be one per row (TRL's sequence-level vLLM ratio): a per-token weight broadcasts
 * TRL's loss to [B, T], whose mean then counts padding (golden README, "shape trap"); it is refused.
 */
export const luspoObjective: PolicyObjective = (options) => {
  // TRL's clipped term at the sequence ratio s: "clip"'s, without the dual clip (TRL has none).
  const clip = clippedRatioLoss({ ...options, dualClip: null });
  const prepare = (batch: ObjectiveBatch): PreparedBatch => {
    const [rows, cols] = batch.shape;
    const values = new Float64Array(rows * cols);
    const gradients = new Float64Array(rows * cols);
    const weights = new Float64Array(rows * cols);
    const given = batch.importanceWeights;
    for (let b = 0; b < rows; b++) {
      const count = batch.rowTokens[b]!;
      if (count === 0) continue;
      const rowStart = b * cols;
      const rowEnd = rowStart + cols;
      let sum = 0;
      let first = -1;
      for (let i = rowStart; i < rowEnd; i++) {
        if (batch.mask[i] !== 1) continue;
        sum += batch.logp[i]! - batch.oldLogp[i]!;
        if (first < 0) first = i;
        else if (given !== undefined && given[i] !== given[first]) {
          throw invalid(
            `inputs.importanceWeights[${b}][${i - rowStart}]`,
            `is ${given[i]} but ${given[first]} at [${b}][${first - rowStart}]: the "luspo" objective needs one ` +
              "weight per row (TRL's sequence-level ratio); per-token weights make TRL's mean run over padding",
          );
        }
      }
      const logS = sum / count;
      const ratio = Math.exp(logS);
      if (ratio === Infinity) {
        throw invalid(
          `inputs.logp[${b}]`,
          `the row's sequence ratio exp(${logS}) overflows float64 (TRL clamps no log-ratio)`,
        );
      }
      // ℓ's weight: L_b for one advantage per row, L_b²/T where TRL's loss is [B, T].
      const scale = batch.perTokenAdvantages ? (count * count) / cols : count;
      let slopeSum = 0;
      for (let i = rowStart; i < rowEnd; i++) {
        if (batch.mask[i] !== 1) continue;
        slopeSum += clip(ratio, advantageOf(batch, i, b)).dLogRatio;
      }
      for (let i = rowStart; i < rowEnd; i++) {
        if (batch.mask[i] !== 1) continue;
        values[i] = logS;
        gradients[i] = slopeSum / count;
        weights[i] = scale * (given === undefined ? 1 : given[i]!);
      }
    }
    return { values, importanceWeights: weights, logRatioGradients: gradients };
  };
  const kernel: TokenKernel = ({ advantage, prepared: logS }) => clip(Math.exp(logS), advantage);
  return { prepare, kernel };
};

/** TRL's GRPOConfig defaults for VESPO (vespo_k_pos, vespo_lambda_pos, vespo_k_neg, vespo_lambda_neg). */
export const VESPO_DEFAULTS = {
  kPositive: 2,
  lambdaPositive: 3,
  kNegative: 3,
  lambdaNegative: 2,
  importanceWeights: "loss",
} as const satisfies VespoOptions;

const LOG_MIN_WEIGHT = Math.log(1e-8);
const clampLogWeight = (x: number) => (x < LOG_MIN_WEIGHT ? LOG_MIN_WEIGHT : x > 20 ? 20 : x);

/**
 * VESPO, TRL `loss_type="vespo"` (`_compute_loss`'s vespo branch and `GRPOTrainer.get_gamma_weights`, computed
 * under no_grad):
 *
 *   log w_b = clamp(Σ_t clamp(log π − log π_old, ±20)·m  [+ Σ_t clamp(log ρ_t, log 1e-8, 20)],  log 1e-8, 20)
 *   φ = exp(λ + k·log w_b − λ·w_b),  (k, λ) = (kPositive, lambdaPositive) if A ≥ 0 else (kNegative, lambdaNegative)
 *   loss_t = −sg(φ) · A · log π
 *
 * aggregated as TRL's dapo (Σ / num_items_in_batch). φ(1) = 1: a row on-policy is weighted 1, and a row far from it
 * in either direction is weighted towards 0. The bracketed term is TRL's vLLM importance ratio ρ, which for vespo
 * enters φ instead of multiplying the loss: `vespo.importanceWeights: "phi"` reads the caller's importance weights
 * that way (over the valid tokens: TRL sums over all T, where padding holds ρ = exp(0) = 1 and adds 0); "loss"
 * multiplies the loss by them, as for every other objective (TRL's entropy and off-policy masks).
 *
 * TRL replaces a φ that overflows (NaN, ±∞) by 0 (`nan_to_num`); grpo-roc refuses it, naming the row.
 */
export const vespoObjective: PolicyObjective = (options: PolicyLossOptions) => {
  const { kPositive, lambdaPositive, kNegative, lambdaNegative, importanceWeights } = options.vespo ?? VESPO_DEFAULTS;
  const intoPhi = importanceWeights === "phi";
  const phiOf = (logW: number, w: number, a: number) =>
    a >= 0
      ? Math.exp(lambdaPositive + kPositive * logW - lambdaPositive * w)
      : Math.exp(lambdaNegative + kNegative * logW - lambdaNegative * w);
  const prepare = (batch: ObjectiveBatch): PreparedBatch => {
    const [rows, cols] = batch.shape;
    const values = new Float64Array(rows * cols);
    const given = batch.importanceWeights;
    let phiSum = 0;
    let phiCount = 0;
    for (let b = 0; b < rows; b++) {
      const rowStart = b * cols;
      const rowEnd = rowStart + cols;
      let sum = 0;
      for (let i = rowStart; i < rowEnd; i++) {
        if (batch.mask[i] !== 1) continue;
        const logRatio = batch.logp[i]! - batch.oldLogp[i]!;
        sum += logRatio < -20 ? -20 : logRatio > 20 ? 20 : logRatio;
        // log 0 = −∞: a weight TRL's *_mask mode zeroed adds log 1e-8.
        if (intoPhi && given !== undefined) sum += clampLogWeight(Math.log(given[i]!));
      }
      const logW = clampLogWeight(sum);
      const w = Math.exp(logW);
      if (batch.rowTokens[b] === 0) {
        // TRL's φ of an empty row (log w = 0, φ = 1) counts in its row-level mean.
        if (!batch.perTokenAdvantages) {
          phiSum += phiOf(0, 1, batch.advantages[b]!);
          phiCount++;
        }
        continue;
      }
      let rowPhi = 0;
      for (let i = rowStart; i < rowEnd; i++) {
        if (batch.mask[i] !== 1) continue;
        const a = advantageOf(batch, i, b);
        const phi = phiOf(logW, w, a);
        if (!Number.isFinite(phi)) {
          throw invalid(
            `inputs.logp[${b}]`,
            `VESPO's weight φ = exp(λ + k·log w − λ·w) of this row (log w = ${logW}, A = ${a}) is ${phi} in ` +
              "float64 (TRL's nan_to_num would make it 0): choose options.vespo's k and λ so that φ stays finite",
          );
        }
        values[i] = phi;
        rowPhi = phi;
        if (batch.perTokenAdvantages) {
          phiSum += phi;
          phiCount++;
        }
      }
      if (!batch.perTokenAdvantages) {
        phiSum += rowPhi;
        phiCount++;
      }
    }
    return {
      values,
      // "phi": the weights are spent in φ; the loss is not multiplied by them.
      importanceWeights: intoPhi && given !== undefined ? new Float64Array(rows * cols).fill(1) : undefined,
      phiMean: phiCount === 0 ? 0 : phiSum / phiCount,
    };
  };
  const kernel: TokenKernel = ({ advantage: a, logp, prepared: phi }) => ({
    loss: -phi * a * logp,
    dLogRatio: 0,
    dLogp: -phi * a,
    clipped: false,
    dualClipped: false,
    lowClipped: false,
    highClipped: false,
  });
  return { prepare, kernel };
};

/** The shipped TRL objectives without native kernels, by the name `options.objective` takes. */
export const trlObjectives = {
  luspo: luspoObjective,
  vespo: vespoObjective,
} as const satisfies Record<string, PolicyObjective>;
