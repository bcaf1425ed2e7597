/**
 * verl's rollout correction (verl 1dda039, `verl/trainer/ppo/rollout_corr_helper.py`): importance weights of
 * π_train/π_rollout (TIS, IcePop, batch normalisation), rejection masks from k1/k2/k3 statistics, the off-policy
 * metrics, and bypass mode (`core_algos.py: compute_policy_loss_bypass_mode`) as a call of `policyLoss`.
 *
 * Everything here is detached in the peer (computed under no_grad): weights and masks carry no gradient. Masked
 * positions are never read; weights and masks there are 0, as verl's are.
 */
import { invalid, parseOrThrow, requireKnownKeys } from "../errors.js";
import type { NumericArray } from "../numeric.js";
import { float32Quotient } from "../stats.js";
import { type MatrixInput, matrixOf } from "../tensor.js";
import { type ReadMatrices, readMatrices } from "../masked-inputs.js";
import { lossPresets, type PolicyLossOptionsInput, policyLossOptionsSchema } from "../loss/options.js";
import { policyLoss, type PolicyLossResult } from "../loss/policy-loss.js";
import {
  type CorrectionMatrix,
  type CorrectionMetrics,
  requireFiniteMetrics,
  requireValidToken,
  sampleStd,
} from "./shared.js";
import {
  type RolloutCorrectionOptions,
  type RolloutCorrectionOptionsInput,
  rolloutCorrectionOptionsSchema,
  type RolloutRejectionCriterion,
  type RolloutRejectionCriterionInput,
  rolloutRejectionListSchema,
  type RolloutWeightsOptions,
  type RolloutWeightsOptionsInput,
  rolloutWeightsSchema,
} from "./verl-options.js";

/** verl's SAFETY_BOUND: log-ratios are clamped to ±20 before exp (exp(20) ≈ 4.85e8). */
export const SAFETY_BOUND = 20;

const clampLog = (x: number) => (x > SAFETY_BOUND ? SAFETY_BOUND : x < -SAFETY_BOUND ? -SAFETY_BOUND : x);

/** A log-ratio log π_train − log π_rollout per token, with its mask: the input of the weights and rejection steps. */
export interface RolloutLogRatioInputs {
  /** log π_train − log π_rollout, [B, T] (verl `log_ratio`). */
  readonly logRatio: MatrixInput;
  /** 1 for response tokens, 0 for padding, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/** Importance weights and their metrics (verl `compute_rollout_correction_weights`). */
export interface RolloutWeightsResult {
  /** The weights, [B, T]: 0 at masked positions (and where IcePop drops a token); divided by the batch mean when asked. */
  readonly weights: CorrectionMatrix;
  /**
   * verl's metrics, named as verl names them (no `rollout_corr/` prefix at this level): `rollout_is_mean`,
   * `_max`, `_min`, `_std`, `_eff_sample_size`, `_ratio_fraction_high/low`, `rollout_is_seq_mean/std/max/min`,
   * `_seq_max_deviation`, `_seq_fraction_high/low`; IcePop adds `rollout_is_oob_ratio`, batch normalisation
   * `rollout_is_batch_norm_factor`. Computed before batch normalisation, as verl computes them. One departure:
   * when every weight is 0 (IcePop dropped every token) verl logs an effective sample size of inf; grpo-roc
   * reports 0.
   */
  readonly metrics: CorrectionMetrics;
}

/**
 * verl's importance weights w of π_train/π_rollout (`rollout_corr_helper.py: compute_rollout_correction_weights`,
 * verl 1dda039, L522–657; metrics `compute_is_metrics` L660):
 *
 *   token:    w_bt = exp(clamp(ℓ_bt, ±20))                 sequence: w_bt = exp(clamp(Σ_t ℓ_bt·m_bt, ±20))
 *   TIS:      w = min(w, upper)                            IcePop:   w = lower ≤ w ≤ upper ? w : 0
 *   batchNormalize: w /= mean(w) (over tokens, or over the non-empty rows' weights), when that mean exceeds 1e-8.
 *
 * The sequence sum is not clamped before it is summed (only the sum is), as in verl.
 *
 * @example rolloutImportanceWeights({ logRatio: [[Math.log(3), 0]] }, { level: "token" }).weights.data // => [2, 1]
 * @throws ValidationError for a non-finite log-ratio where the mask selects, a mask without any valid token (verl
 *   raises ValueError), or bad options.
 */
export function rolloutImportanceWeights(
  inputs: RolloutLogRatioInputs,
  options: RolloutWeightsOptionsInput,
): RolloutWeightsResult {
  const resolved = parseOrThrow(rolloutWeightsSchema, options, "options");
  const read = readMatrices(inputs, ["logRatio"]);
  requireValidToken(read.tokens, "inputs.mask", "verl's compute_is_metrics");
  return weightsOf(read, read.values.logRatio!, resolved);
}

function weightsOf(read: ReadMatrices, logRatio: NumericArray, o: RolloutWeightsOptions): RolloutWeightsResult {
  const [rows, cols] = read.shape;
  const { mask, rowTokens, tokens } = read;
  const sequence = o.level === "sequence";
  const icepop = o.lower !== undefined;
  const upper = o.upper;
  const lower = o.lower ?? 0;
  const raw = new Float64Array(rows * cols);
  const weights = new Float64Array(rows * cols);
  // Σ_t ℓ·m per row: verl's `log_ratio_for_metrics` at sequence level (0 for an empty row).
  const rowLogSums = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    let sum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) if (mask[i] === 1) sum += logRatio[i]!;
    rowLogSums[b] = sum;
  }
  for (let i = 0; i < rows * cols; i++) {
    if (mask[i] !== 1) continue;
    const w = Math.exp(clampLog(sequence ? rowLogSums[Math.floor(i / cols)]! : logRatio[i]!));
    raw[i] = w;
    weights[i] = icepop ? (w >= lower && w <= upper ? w : 0) : w > upper ? upper : w;
  }

  const metrics: Record<string, number> = {};
  const lowerForMetrics = o.lower ?? 1 / upper;
  let weightSum = 0;
  for (let i = 0; i < weights.length; i++) weightSum += weights[i]!;
  if (sequence) {
    let logMax = -Infinity;
    let logMin = Infinity;
    for (const s of rowLogSums) {
      if (s > logMax) logMax = s;
      if (s < logMin) logMin = s;
    }
    // torch.log(torch.tensor(x)): the thresholds are float32 logs of float32 numbers.
    const logUpper = Math.fround(Math.log(Math.fround(upper)));
    const logLower = Math.fround(Math.log(Math.fround(lowerForMetrics)));
    let high = 0;
    let low = 0;
    for (const s of rowLogSums) {
      if (s > logUpper) high++;
      if (s < logLower) low++;
    }
    metrics.rollout_is_max = Math.exp(Math.min(logMax, SAFETY_BOUND));
    metrics.rollout_is_min = Math.exp(logMin);
    metrics.rollout_is_mean = weightSum / tokens;
    metrics.rollout_is_ratio_fraction_high = float32Quotient(high, rows);
    metrics.rollout_is_ratio_fraction_low = float32Quotient(low, rows);
  } else {
    let high = 0;
    let low = 0;
    let max = -Infinity;
    let min = Infinity;
    for (let i = 0; i < weights.length; i++) {
      if (mask[i] !== 1) continue;
      if (raw[i]! > upper) high++;
      if (raw[i]! < lowerForMetrics) low++;
      if (weights[i]! > max) max = weights[i]!;
      if (weights[i]! < min) min = weights[i]!;
    }
    metrics.rollout_is_mean = weightSum / tokens;
    metrics.rollout_is_ratio_fraction_high = float32Quotient(high, tokens);
    metrics.rollout_is_ratio_fraction_low = float32Quotient(low, tokens);
    metrics.rollout_is_max = max;
    metrics.rollout_is_min = min;
  }
  // std and ESS of the weights clamped to [0, upper] (a no-op but for batch-normalised inputs).
  let clampedSum = 0;
  let clampedSquares = 0;
  for (let i = 0; i < weights.length; i++) {
    if (mask[i] !== 1) continue;
    const w = weights[i]! > upper ? upper : weights[i]!;
    clampedSum += w;
    clampedSquares += w * w;
  }
  const clampedMean = clampedSum / tokens;
  metrics.rollout_is_std = tokens > 1 ? Math.sqrt(Math.max(clampedSquares / tokens - clampedMean * clampedMean, 0)) : 0;
  const essScale = clampedMean + 1e-8;
  let normalizedSquares = 0;
  for (let i = 0; i < weights.length; i++) {
    if (mask[i] !== 1) continue;
    const w = (weights[i]! > upper ? upper : weights[i]!) / essScale;
    normalizedSquares += w * w;
  }
  // Every weight 0 (IcePop dropped every token): verl's 1/mean(0) logs inf. There is no effective sample: 0.
  metrics.rollout_is_eff_sample_size = normalizedSquares === 0 ? 0 : 1 / (normalizedSquares / tokens);

  // Per-row means of the weights (0 for an empty row), over all B rows.
  const rowMeans = rowMeansOf(weights, read);
  const rawRowMeans = rowMeansOf(raw, read);
  let rowSum = 0;
  let rowMax = -Infinity;
  let rowMin = Infinity;
  let deviation = 0;
  let rowsHigh = 0;
  let rowsLow = 0;
  for (let b = 0; b < rows; b++) {
    const rho = rowMeans[b]!;
    rowSum += rho;
    if (rho > rowMax) rowMax = rho;
    if (rho < rowMin) rowMin = rho;
    if (Math.abs(rho - 1) > deviation) deviation = Math.abs(rho - 1);
    if (rawRowMeans[b]! > upper) rowsHigh++;
    if (rawRowMeans[b]! < lowerForMetrics) rowsLow++;
  }
  metrics.rollout_is_seq_mean = rowSum / rows;
  metrics.rollout_is_seq_std = sampleStd(rowMeans);
  metrics.rollout_is_seq_max = rowMax;
  metrics.rollout_is_seq_min = rowMin;
  metrics.rollout_is_seq_max_deviation = deviation;
  metrics.rollout_is_seq_fraction_high = float32Quotient(rowsHigh, rows);
  metrics.rollout_is_seq_fraction_low = float32Quotient(rowsLow, rows);
  if (icepop) {
    let outside = 0;
    for (let i = 0; i < raw.length; i++) if (mask[i] === 1 && (raw[i]! < lower || raw[i]! > upper)) outside++;
    metrics.rollout_is_oob_ratio = float32Quotient(outside, tokens);
  }

  if (o.batchNormalize) {
    let mean: number;
    if (sequence) {
      let sum = 0;
      let nonEmpty = 0;
      for (let b = 0; b < rows; b++) {
        if (rowTokens[b]! === 0) continue;
        sum += rowMeans[b]!;
        nonEmpty++;
      }
      mean = sum / nonEmpty;
    } else {
      mean = weightSum / tokens;
    }
    if (mean > 1e-8) {
      for (let i = 0; i < weights.length; i++) weights[i] = weights[i]! / mean;
      metrics.rollout_is_batch_norm_factor = mean;
    } else {
      metrics.rollout_is_batch_norm_factor = 1;
    }
  }
  requireFiniteMetrics(
    metrics,
    "exp of the smallest row's log-ratio sum (verl's unclamped rollout_is_min) overflows beyond ~709 (verl logs inf)",
  );
  return { weights: matrixOf(weights, read.shape), metrics };
}

/** verl's masked_mean over each row: the row's mean over its valid tokens, 0 for an empty row. */
function rowMeansOf(values: Float64Array, read: ReadMatrices): Float64Array {
  const [rows, cols] = read.shape;
  const means = new Float64Array(rows);
  for (let b = 0; b < rows; b++) {
    const count = read.rowTokens[b]!;
    if (count === 0) continue;
    let sum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) if (read.mask[i] === 1) sum += values[i]!;
    means[b] = sum / count;
  }
  return means;
}

/** A rejection mask and its metrics (verl `compute_rollout_rejection_mask`). */
export interface RolloutRejectionResult {
  /** The response mask with rejected tokens (or whole rows) set to 0, [B, T]: it only ever removes tokens. */
  readonly mask: CorrectionMatrix;
  /**
   * verl's metrics: per criterion `rollout_rs_<statistic>_mean`, `_max`, `_min`, `_std`, `_fraction_high`,
   * `_fraction_low` (0 but for k1), `_seq_mean`, `_seq_std`, `_seq_max`, `_seq_min`, `_seq_max_deviation`,
   * `_seq_fraction_high` (`_seq_fraction_low` for k1), `_masked_fraction`, `_seq_masked_fraction`; then
   * `rollout_rs_masked_fraction` and `rollout_rs_seq_masked_fraction` (over all B rows, empty ones included).
   */
  readonly metrics: CorrectionMetrics;
}

/**
 * verl's rejection sampling (`rollout_corr_helper.py: compute_rollout_rejection_mask`, verl 1dda039, L197–413;
 * metrics `compute_rs_metrics` L416): with ℓ = clamp(log-ratio, ±20), k1 = −ℓ, k2 = ℓ²/2, k3 = e^ℓ − 1 − ℓ, each
 * criterion keeps a token (token_*) or a whole row (seq_sum_*: Σ over the row, seq_mean_*: mean, seq_max_*: max)
 * when k2/k3 ≤ upper, or log(lower) ≤ k1 ≤ log(upper). Every criterion must pass.
 *
 * Reproduced as verl has it: as k1 = −log r, a k1 range bounds 1/r, so `{ lower: 0.5, upper: 5 }` keeps
 * 0.2 ≤ r ≤ 2, not 0.5 ≤ r ≤ 5. Symmetric bounds (lower = 1/upper) are unaffected.
 *
 * @example rolloutRejectionMask({ logRatio: [[0, 3]] }, [{ statistic: "token_k3", upper: 0.1 }]).mask.data // => [1, 0]
 * @throws ValidationError for a non-finite log-ratio where the mask selects, a mask without any valid token, or
 *   bad criteria.
 */
export function rolloutRejectionMask(
  inputs: RolloutLogRatioInputs,
  criteria: readonly RolloutRejectionCriterionInput[],
): RolloutRejectionResult {
  const resolved = parseOrThrow(rolloutRejectionListSchema, criteria, "criteria");
  const read = readMatrices(inputs, ["logRatio"]);
  if (read.shape[0] === 0) return { mask: matrixOf(new Float64Array(0), read.shape), metrics: {} };
  requireValidToken(read.tokens, "inputs.mask", "verl's compute_rs_metrics");
  return rejectionOf(read, read.values.logRatio!, resolved);
}

function rejectionOf(
  read: ReadMatrices,
  logRatio: NumericArray,
  criteria: readonly RolloutRejectionCriterion[],
): RolloutRejectionResult {
  const [rows, cols] = read.shape;
  const { mask, rowTokens, tokens } = read;
  const size = rows * cols;
  const keepAll = new Uint8Array(size).fill(1);
  const metrics: Record<string, number> = {};
  let nonEmpty = 0;
  for (const count of rowTokens) if (count > 0) nonEmpty++;

  for (const criterion of criteria) {
    const { statistic } = criterion;
    const k1 = statistic.endsWith("k1");
    const kind = statistic.slice(-2) as "k1" | "k2" | "k3";
    const tokenLevel = statistic.startsWith("token_");
    const upperBound = k1 ? Math.log(criterion.upper) : criterion.upper;
    const lowerBound = k1 ? Math.log(criterion.lower ?? 1 / criterion.upper) : 0;
    const passes = (x: number) => (k1 ? x >= lowerBound && x <= upperBound : x <= upperBound);

    // The per-token statistic (a row's value on each of its tokens at sequence level) and each row's value.
    const perToken = new Float64Array(size);
    const perRow = new Float64Array(rows);
    for (let b = 0; b < rows; b++) {
      let sum = 0;
      let max = -Infinity;
      for (let i = b * cols; i < (b + 1) * cols; i++) {
        if (mask[i] !== 1) continue;
        const k = divergence(kind, logRatio[i]!);
        perToken[i] = k;
        sum += k;
        if (k > max) max = k;
      }
      const count = rowTokens[b]!;
      if (!tokenLevel) {
        const value = statistic.startsWith("seq_sum")
          ? sum
          : statistic.startsWith("seq_mean")
            ? count > 0
              ? sum / count
              : 0
            : count > 0
              ? max
              : 0;
        perRow[b] = value;
        for (let i = b * cols; i < (b + 1) * cols; i++) perToken[i] = mask[i] === 1 ? value : 0;
      } else {
        perRow[b] = count > 0 ? sum / count : 0;
      }
    }

    // Which tokens pass, and the metrics of the statistic.
    let rejected = 0;
    let rowsRejected = 0;
    let statSum = 0;
    let tokenMax = -Infinity;
    let tokenMin = Infinity;
    let tokensHigh = 0;
    let tokensLow = 0;
    let clampedSum = 0;
    let clampedSquares = 0;
    for (let b = 0; b < rows; b++) {
      const rowKept = tokenLevel || passes(perRow[b]!);
      let rowLost = false;
      for (let i = b * cols; i < (b + 1) * cols; i++) {
        if (mask[i] !== 1) continue;
        const x = perToken[i]!;
        const kept = tokenLevel ? passes(x) : rowKept;
        if (!kept) {
          keepAll[i] = 0;
          rejected++;
          rowLost = true;
        }
        statSum += x;
        if (x > tokenMax) tokenMax = x;
        if (x < tokenMin) tokenMin = x;
        if (x > upperBound) tokensHigh++;
        if (x < lowerBound) tokensLow++;
        const clamped = x < lowerBound ? lowerBound : x > upperBound ? upperBound : x;
        clampedSum += clamped;
        clampedSquares += clamped * clamped;
      }
      if (rowLost) rowsRejected++;
    }
    const validRows: number[] = [];
    for (let b = 0; b < rows; b++) if (rowTokens[b]! > 0) validRows.push(perRow[b]!);
    let rowSum = 0;
    let rowMax = -Infinity;
    let rowMin = Infinity;
    let rowDeviation = 0;
    let rowsHigh = 0;
    let rowsLow = 0;
    for (const v of validRows) {
      rowSum += v;
      if (v > rowMax) rowMax = v;
      if (v < rowMin) rowMin = v;
      if (Math.abs(v) > rowDeviation) rowDeviation = Math.abs(v);
      if (v > upperBound) rowsHigh++;
      if (v < lowerBound) rowsLow++;
    }
    const prefix = `rollout_rs_${statistic}`;
    metrics[`${prefix}_mean`] = statSum / tokens;
    metrics[`${prefix}_max`] = tokenLevel ? tokenMax : rowMax;
    metrics[`${prefix}_min`] = tokenLevel ? tokenMin : rowMin;
    metrics[`${prefix}_fraction_high`] = tokenLevel
      ? float32Quotient(tokensHigh, tokens)
      : float32Quotient(rowsHigh, validRows.length);
    metrics[`${prefix}_fraction_low`] = !k1
      ? 0
      : tokenLevel
        ? float32Quotient(tokensLow, tokens)
        : float32Quotient(rowsLow, validRows.length);
    const clampedMean = clampedSum / tokens;
    metrics[`${prefix}_std`] =
      tokens > 1 ? Math.sqrt(Math.max(clampedSquares / tokens - clampedMean * clampedMean, 0)) : 0;
    metrics[`${prefix}_seq_mean`] = rowSum / validRows.length;
    metrics[`${prefix}_seq_std`] = sampleStd(validRows);
    metrics[`${prefix}_seq_max`] = rowMax;
    metrics[`${prefix}_seq_min`] = rowMin;
    metrics[`${prefix}_seq_max_deviation`] = rowDeviation;
    metrics[`${prefix}_seq_fraction_high`] = float32Quotient(rowsHigh, validRows.length);
    if (k1) metrics[`${prefix}_seq_fraction_low`] = float32Quotient(rowsLow, validRows.length);
    metrics[`${prefix}_masked_fraction`] = rejected / tokens;
    metrics[`${prefix}_seq_masked_fraction`] = rowsRejected / nonEmpty;
  }

  const out = new Float64Array(size);
  let rejected = 0;
  let rowsRejected = 0;
  for (let b = 0; b < rows; b++) {
    let rowLost = false;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      if (keepAll[i] === 1) out[i] = 1;
      else {
        rejected++;
        rowLost = true;
      }
    }
    if (rowLost) rowsRejected++;
  }
  metrics.rollout_rs_masked_fraction = rejected / tokens;
  metrics.rollout_rs_seq_masked_fraction = float32Quotient(rowsRejected, rows);
  return { mask: matrixOf(out, read.shape), metrics };
}

/** k1, k2 or k3 of a log-ratio clamped to ±20, as verl computes them for rejection. */
function divergence(kind: "k1" | "k2" | "k3", logRatio: number): number {
  const l = clampLog(logRatio);
  return kind === "k1" ? -l : kind === "k2" ? 0.5 * l * l : Math.exp(l) - 1 - l;
}

/** The two policies' log-probs per token, with the response mask. */
export interface RolloutCorrectionInputs {
  /** log π_train: π_old in decoupled mode (verl `old_log_probs`), the current policy in bypass mode, [B, T]. */
  readonly oldLogp: MatrixInput;
  /** log π_rollout from the inference engine (verl `rollout_log_probs`), [B, T]. */
  readonly rolloutLogp: MatrixInput;
  /** 1 for response tokens, 0 for padding and tool output, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/** What verl's decoupled correction hands to the loss: weights, the new response mask, and the metrics. */
export interface RolloutCorrectionResult {
  /** Pass as `importanceWeights` to `policyLoss`: [B, T], 0 at masked positions; undefined without `weights`. */
  readonly importanceWeights: CorrectionMatrix | undefined;
  /** Pass as `mask` to `policyLoss`: the response mask with rejected tokens removed (a copy when nothing rejects). */
  readonly mask: CorrectionMatrix;
  /**
   * Every metric under verl's name with its `rollout_corr/` prefix: the weights' and the rejection's (see
   * RolloutWeightsResult and RolloutRejectionResult) and the off-policy metrics (see rolloutCorrectionMetrics),
   * all computed on the original mask.
   */
  readonly metrics: CorrectionMetrics;
}

/**
 * verl's decoupled rollout correction (`rollout_corr_helper.py: compute_rollout_correction_and_add_to_batch`,
 * verl 1dda039, L1013, through `compute_rollout_correction_and_rejection_mask` L786): weights and rejection from
 * ℓ = oldLogp − rolloutLogp, and the off-policy metrics, under `rollout_corr/` names. Feed the result to
 * `policyLoss` as `importanceWeights` and `mask` (rejection shrinks the token-mean denominators, as in verl).
 *
 * @param options - see rolloutCorrectionPresets (verl's RolloutCorrectionConfig presets).
 * @throws ValidationError for a non-finite log-prob where the mask selects, a mask without any valid token, or bad
 *   options.
 */
export function rolloutCorrection(
  inputs: RolloutCorrectionInputs,
  options: RolloutCorrectionOptionsInput = {},
): RolloutCorrectionResult {
  const resolved = parseOrThrow(rolloutCorrectionOptionsSchema, options, "options");
  const read = readMatrices(inputs, ["oldLogp", "rolloutLogp"]);
  requireValidToken(read.tokens, "inputs.mask", "verl's compute_rollout_correction_and_rejection_mask");
  return correctionOf(read, read.values.oldLogp!, read.values.rolloutLogp!, resolved);
}

function correctionOf(
  read: ReadMatrices,
  trainLogp: NumericArray,
  rolloutLogp: NumericArray,
  o: RolloutCorrectionOptions,
): RolloutCorrectionResult {
  const logRatio = new Float64Array(trainLogp.length);
  for (let i = 0; i < logRatio.length; i++) if (read.mask[i] === 1) logRatio[i] = trainLogp[i]! - rolloutLogp[i]!;
  const metrics: Record<string, number> = {};
  let importanceWeights: CorrectionMatrix | undefined;
  if (o.weights !== null) {
    const weights = weightsOf(read, logRatio, o.weights);
    importanceWeights = weights.weights;
    Object.assign(metrics, weights.metrics);
  }
  let mask: CorrectionMatrix;
  if (o.rejection.length > 0) {
    const rejection = rejectionOf(read, logRatio, o.rejection);
    mask = rejection.mask;
    Object.assign(metrics, rejection.metrics);
  } else {
    mask = matrixOf(Float64Array.from(read.mask), read.shape);
  }
  Object.assign(metrics, offPolicyMetricsOf(read, trainLogp, rolloutLogp));
  const prefixed: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics)) prefixed[`rollout_corr/${name}`] = value;
  return { importanceWeights, mask, metrics: prefixed };
}

/** The current policy's and the rollout's log-probs, for the off-policy metrics. */
export interface RolloutMetricsInputs {
  /** log π_train (verl `log_prob`: the current policy in the actor, π_old in the trainer), [B, T]. */
  readonly logp: MatrixInput;
  /** log π_rollout, [B, T]. */
  readonly rolloutLogp: MatrixInput;
  /** 1 for response tokens, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/**
 * verl's off-policy diagnostics (`rollout_corr_helper.py: compute_rollout_corr_metrics_from_logprobs`, verl
 * 1dda039, L1070, through `compute_offpolicy_metrics` L904), under `rollout_corr/` names. With ℓ_b the mean log-prob
 * of row b (0 for an empty row, whose ppl is then 1) and d_b = ℓ^rollout_b − ℓ_b, means over all B rows:
 * `training_ppl` = mean exp(−ℓ), `training_log_ppl` = mean(−ℓ), `rollout_ppl`, `rollout_log_ppl`, `kl` =
 * mean over tokens of (rollout − train), `k3_kl` = mean of e^x − x − 1 with x = train − rollout **unclamped**,
 * `log_ppl_diff` = mean d, `log_ppl_abs_diff`, `log_ppl_diff_max`, `log_ppl_diff_min`, `ppl_ratio` = mean e^d,
 * `chi2_token` = mean over tokens of exp(clamp(x, ±20))² − 1, `chi2_seq` = mean over rows of exp(2·clamp(Σx, ±20)) − 1.
 *
 * @throws ValidationError for a non-finite log-prob where the mask selects, a mask without any valid token, or a
 *   `k3_kl` that overflows (a log-ratio above ~709: verl would log inf).
 */
export function rolloutCorrectionMetrics(inputs: RolloutMetricsInputs): CorrectionMetrics {
  const read = readMatrices(inputs, ["logp", "rolloutLogp"]);
  requireValidToken(read.tokens, "inputs.mask", "verl's compute_offpolicy_metrics");
  const metrics = offPolicyMetricsOf(read, read.values.logp!, read.values.rolloutLogp!);
  const prefixed: Record<string, number> = {};
  for (const [name, value] of Object.entries(metrics)) prefixed[`rollout_corr/${name}`] = value;
  return prefixed;
}

function offPolicyMetricsOf(
  read: ReadMatrices,
  trainLogp: NumericArray,
  rolloutLogp: NumericArray,
): Record<string, number> {
  const [rows, cols] = read.shape;
  const { mask, rowTokens, tokens } = read;
  let trainPpl = 0;
  let trainLogPpl = 0;
  let rolloutPpl = 0;
  let rolloutLogPpl = 0;
  let diffSum = 0;
  let absDiffSum = 0;
  let diffMax = -Infinity;
  let diffMin = Infinity;
  let pplRatio = 0;
  let klSum = 0;
  let k3Sum = 0;
  let chi2TokenSum = 0;
  let chi2SeqSum = 0;
  for (let b = 0; b < rows; b++) {
    let trainSum = 0;
    let rolloutSum = 0;
    let logRatioSum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      trainSum += trainLogp[i]!;
      rolloutSum += rolloutLogp[i]!;
      const x = trainLogp[i]! - rolloutLogp[i]!;
      logRatioSum += x;
      klSum += rolloutLogp[i]! - trainLogp[i]!;
      k3Sum += Math.exp(x) - x - 1;
      const rho = Math.exp(clampLog(x));
      chi2TokenSum += rho * rho;
    }
    const count = rowTokens[b]!;
    const trainMean = count > 0 ? trainSum / count : 0;
    const rolloutMean = count > 0 ? rolloutSum / count : 0;
    trainPpl += Math.exp(-trainMean);
    trainLogPpl += -trainMean;
    rolloutPpl += Math.exp(-rolloutMean);
    rolloutLogPpl += -rolloutMean;
    const d = rolloutMean - trainMean;
    diffSum += d;
    absDiffSum += Math.abs(d);
    if (d > diffMax) diffMax = d;
    if (d < diffMin) diffMin = d;
    pplRatio += Math.exp(d);
    chi2SeqSum += Math.exp(2 * clampLog(logRatioSum));
  }
  const metrics = {
    training_ppl: trainPpl / rows,
    training_log_ppl: trainLogPpl / rows,
    kl: klSum / tokens,
    k3_kl: k3Sum / tokens,
    rollout_ppl: rolloutPpl / rows,
    rollout_log_ppl: rolloutLogPpl / rows,
    log_ppl_diff: diffSum / rows,
    log_ppl_abs_diff: absDiffSum / rows,
    log_ppl_diff_max: diffMax,
    log_ppl_diff_min: diffMin,
    ppl_ratio: pplRatio / rows,
    chi2_token: chi2TokenSum / tokens - 1,
    chi2_seq: chi2SeqSum / rows - 1,
  };
  requireFiniteMetrics(
    metrics,
    "a log-prob gap beyond ~709 overflows exp (verl logs inf for the unclamped k3_kl and the ppl metrics)",
  );
  return metrics;
}

/** The current policy's log-probs, the rollout's, the advantages and the mask, for verl's bypass mode. */
export interface BypassModeInputs {
  /** log π_θ of the policy being trained, [B, T]: the gradient is taken with respect to it. */
  readonly logp: MatrixInput;
  /** log π_rollout, [B, T]: bypass mode uses it as the old log-prob. */
  readonly rolloutLogp: MatrixInput;
  /** One per rollout [B], or one per token [B, T]. */
  readonly advantages: NumericArray | MatrixInput;
  /** 1 for response tokens, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/** The options of bypassModePolicyLoss: the correction, and the loss's own options. */
export interface BypassModeOptions {
  /** verl's rollout_correction config (see rolloutCorrectionPresets.bypass*); `lossType` picks the loss. */
  readonly correction?: RolloutCorrectionOptionsInput | undefined;
  /**
   * The loss's options. Default for "ppo_clip": `lossPresets.verl` (verl's vanilla loss); for "reinforce": token-mean
   * REINFORCE. `objective` is set from `correction.lossType` and may not be given here; nor may a `logRatioClamp`
   * other than null with "reinforce" (unclamped, as verl).
   */
  readonly loss?: PolicyLossOptionsInput | undefined;
}

/** bypassModePolicyLoss's result: the loss as policyLoss returns it, and the correction that went into it. */
export interface BypassModeResult {
  /** policyLoss's result for the corrected inputs (loss, gradient with respect to logp, metrics). */
  readonly policyLoss: PolicyLossResult;
  /** The weights, the rejection mask the loss used, and the `rollout_corr/*` metrics (on the original mask). */
  readonly correction: RolloutCorrectionResult;
}

/**
 * verl's bypass mode (`core_algos.py: compute_policy_loss_bypass_mode`, verl 1dda039, L2413): the rollout's
 * log-probs stand in for π_old, and the correction is computed from ℓ = logp − rolloutLogp (detached). Then
 *
 *   "ppo_clip":  policyLoss with oldLogp = rolloutLogp, mask = the rejection mask; the weights are computed for the
 *                metrics only (verl passes rollout_is_weights=None to the vanilla loss).
 *   "reinforce": loss = −A · log π · w over the rejection mask (w = 1 without weights); verl's `actor/ppo_kl` is
 *                the mean of rolloutLogp − logp over that mask, unclamped.
 *
 * Rejection shrinks the aggregation's denominators, as in verl. The result's `policyLoss.grad` is ∂loss/∂logp.
 *
 * @throws ValidationError for bad inputs (as policyLoss and rolloutCorrection), a mask without any valid token,
 *   `loss.objective` given, or `loss.logRatioClamp` given with lossType "reinforce".
 */
export function bypassModePolicyLoss(inputs: BypassModeInputs, options: BypassModeOptions = {}): BypassModeResult {
  if (typeof inputs !== "object" || inputs === null) {
    throw invalid("inputs", "expected an object with logp, rolloutLogp, advantages and an optional mask");
  }
  if (typeof options !== "object" || options === null) {
    throw invalid("options", "expected an object with an optional correction and loss");
  }
  requireKnownKeys(options, ["correction", "loss"], "options");
  const correctionOptions = parseOrThrow(
    rolloutCorrectionOptionsSchema,
    options.correction ?? {},
    "options.correction",
  );
  if (options.loss !== undefined) {
    if (typeof options.loss !== "object" || options.loss === null) {
      throw invalid("options.loss", "expected policyLoss's options object");
    }
    if ("objective" in options.loss) {
      throw invalid("options.loss.objective", "is set by options.correction.lossType in bypass mode");
    }
    // Checked here first, so that a bad loss option is reported at its own path, options.loss.<key>.
    parseOrThrow(policyLossOptionsSchema, options.loss, "options.loss");
  }
  if (
    correctionOptions.lossType === "reinforce" &&
    options.loss !== undefined &&
    options.loss.logRatioClamp !== undefined &&
    options.loss.logRatioClamp !== null
  ) {
    // The reinforce loss takes log π itself, unclamped (verl): a clamp given here would be silently overwritten.
    throw invalid(
      "options.loss.logRatioClamp",
      'is not used with options.correction.lossType "reinforce" (verl\'s REINFORCE loss is unclamped); leave it out',
    );
  }
  const { advantages, ...logps } = inputs;
  const read = readMatrices(logps, ["logp", "rolloutLogp"]);
  requireValidToken(read.tokens, "inputs.mask", "verl's compute_rollout_correction_and_rejection_mask");
  const correction = correctionOf(read, read.values.logp!, read.values.rolloutLogp!, correctionOptions);
  const reinforce = correctionOptions.lossType === "reinforce";
  const lossOptions: PolicyLossOptionsInput = reinforce
    ? { aggregation: "token-mean", ...options.loss, objective: "reinforce", logRatioClamp: null }
    : { ...lossPresets.verl, ...options.loss, objective: "clip" };
  const result = policyLoss(
    {
      logp: inputs.logp,
      oldLogp: inputs.rolloutLogp,
      advantages,
      mask: correction.mask,
      ...(reinforce && correction.importanceWeights !== undefined
        ? { importanceWeights: correction.importanceWeights }
        : {}),
    },
    lossOptions,
  );
  return { policyLoss: result, correction };
}
