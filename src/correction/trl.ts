/**
 * TRL's training/inference corrections and token masks (TRL f2cd577, `trl/trainer/grpo_trainer.py`): the vLLM
 * importance-sampling ratio of `_generate_and_score_completions` and its `sampling/*` metrics, the top-entropy mask
 * (`get_high_entropy_mask`) and the off-policy sequence mask (`get_off_policy_mask`, DeepSeek-V3.2's OPSM).
 *
 * Each returns per-token weights for `policyLoss`'s `importanceWeights`: TRL multiplies its per-token loss by them
 * (after the loss type's term, before `+ β·KL`) and aggregates over the **unchanged** completion mask, so a token or
 * row they zero still counts in every denominator. Pass the completion mask as `mask`, not a mask with those tokens
 * removed, to reproduce TRL. `multiplyWeights` combines several.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import { invalid, parseOrThrow } from "../errors.js";
import { readAdvantages } from "../loss/inputs.js";
import { readMatrices } from "../masked-inputs.js";
import type { NumericArray } from "../numeric.js";
import { type MatrixInput, matrixOf, toMatrix } from "../tensor.js";
import type { CorrectionMatrix, CorrectionMetrics } from "./shared.js";

/** TRL's `vllm_importance_sampling_mode` values. */
export const VLLM_IS_MODES = ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] as const;
/** One of VLLM_IS_MODES. */
export type VllmImportanceSamplingMode = (typeof VLLM_IS_MODES)[number];

/** vllmImportanceSamplingOptionsSchema's fields: a const of its own, so that the published types keep each comment. */
const vllmImportanceSamplingShape = /* @__PURE__ */ pure(() => ({
  /**
   * TRL `vllm_importance_sampling_mode` (GRPOConfig default "sequence_mask"): token_* ratios per token, sequence_*
   * one ratio per row, the **product** of its token ratios; *_truncate clamps to [clipMin, clipMax], *_mask sets
   * ratios outside it to 0.
   */
  mode: z._default(z.enum(VLLM_IS_MODES), "sequence_mask"),
  /** TRL `vllm_importance_sampling_clip_min` (default None: no lower bound). */
  clipMin: z._default(z.nullable(z.number().check(z.nonnegative())), null),
  /** TRL `vllm_importance_sampling_clip_max` (default 3.0; older TRL's `vllm_importance_sampling_cap`). */
  clipMax: z._default(z.nullable(z.number().check(z.positive())), 3),
}));

/** TRL's vLLM importance-sampling correction options; the rules of GRPOConfig.__post_init__ are checked too. */
export const vllmImportanceSamplingOptionsSchema: z.ZodMiniObject<typeof vllmImportanceSamplingShape, z.core.$strict> =
  /* @__PURE__ */ pure(() =>
    z.strictObject(vllmImportanceSamplingShape).check(
      z.superRefine((o, ctx) => {
        if (o.clipMin !== null && o.clipMax !== null && !(o.clipMin < o.clipMax)) {
          ctx.addIssue({
            code: "custom",
            path: ["clipMin"],
            message: "must be below clipMax (TRL's __post_init__ rule)",
          });
        }
        if (o.mode.endsWith("truncate") && o.clipMin === null && o.clipMax === null) {
          ctx.addIssue({
            code: "custom",
            path: ["clipMax"],
            message: `${o.mode} needs clipMin or clipMax (TRL's __post_init__ rule); both are null`,
          });
        }
      }),
    ),
  );
/** The options vllmImportanceSampling takes. */
export type VllmImportanceSamplingOptionsInput = z.input<typeof vllmImportanceSamplingOptionsSchema>;
/** The options with every default filled in. */
export type VllmImportanceSamplingOptions = z.output<typeof vllmImportanceSamplingOptionsSchema>;

/**
 * GRPOConfig's defaults (TRL f2cd577, `trl/trainer/grpo_config.py`): sequence_mask with clip_max 3.0 and no
 * clip_min. (The config docstring labels token_truncate "(default)", which the field's default contradicts.)
 */
export const vllmImportanceSamplingPresets = {
  /** GRPOConfig defaults: `vllm_importance_sampling_mode="sequence_mask"`, clip_max 3.0, clip_min None. */
  trl: { mode: "sequence_mask", clipMin: null, clipMax: 3 },
} as const satisfies Record<string, VllmImportanceSamplingOptionsInput>;

/** The recomputed π_old log-probs and vLLM's, with the completion mask (and the tool mask of agent rollouts). */
export interface VllmImportanceSamplingInputs {
  /** log π_old recomputed by the trainer (TRL `old_per_token_logps`), [B, T]. */
  readonly oldLogp: MatrixInput;
  /** log π_vLLM returned by the inference engine (TRL `sampling_per_token_logps`), [B, T]. */
  readonly samplingLogp: MatrixInput;
  /** TRL `completion_mask`, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
  /** TRL `tool_mask` (0 on tool output), [B, T]: multiplied into the mask, as TRL does. */
  readonly toolMask?: MatrixInput | undefined;
}

/** The ratio, what to feed policyLoss, and TRL's metrics. */
export interface VllmImportanceSamplingResult {
  /** "token" or "sequence", from the mode. */
  readonly level: "token" | "sequence";
  /**
   * TRL's `importance_sampling_ratio`: [B·T] at token level (padding and tool tokens hold exp(0) = 1 before the
   * clip, as in TRL), [B] at sequence level (an empty row holds 1).
   */
  readonly ratio: Float64Array;
  /** *_mask modes: 1 where TRL's `invalid_mis_mask` zeroed the ratio, aligned with `ratio`; undefined otherwise. */
  readonly rejected: Uint8Array | undefined;
  /** Pass as `importanceWeights` to policyLoss: the ratio on every token ([B, T]; a row's ratio on each of its tokens). */
  readonly importanceWeights: CorrectionMatrix;
  /**
   * TRL's `sampling/*` metrics: `sampling/sampling_logp_difference/mean` and `/max` (of |old − sampling| over the
   * mask), `sampling/importance_sampling_ratio/min`, `/mean`, `/max` (over the masked tokens at token level, over
   * all B rows at sequence level). Each is 0 when there is nothing to average, as in TRL.
   */
  readonly metrics: CorrectionMetrics;
}

/**
 * TRL's vLLM importance-sampling correction (`grpo_trainer.py: _generate_and_score_completions`, TRL f2cd577,
 * L2579–2623; metrics L2779–2813), with m = mask · toolMask and d = (old − sampling)·m:
 *
 *   token_*:    ρ_bt = exp(d_bt)                  sequence_*: ρ_b = exp(Σ_t d_bt)   (a product, not a geometric mean)
 *   *_truncate: ρ = clamp(ρ, clipMin, clipMax)    *_mask:     ρ = 0 where ρ < clipMin or ρ > clipMax
 *
 * No clamp before exp, as in TRL: a ratio that overflows float64 (a log-ratio above ~709 with no clipMax to bound
 * it) is refused rather than returned as Infinity.
 *
 * @example vllmImportanceSampling({ oldLogp: [[0, Math.log(4)]], samplingLogp: [[0, 0]] }, { mode: "token_truncate", clipMax: 3 }).ratio // => [1, 3]
 * @throws ValidationError for a non-finite log-prob where the mask selects, an overflowing ratio, or bad options.
 */
export function vllmImportanceSampling(
  inputs: VllmImportanceSamplingInputs,
  options: VllmImportanceSamplingOptionsInput = {},
): VllmImportanceSamplingResult {
  const o = parseOrThrow(vllmImportanceSamplingOptionsSchema, options, "options");
  const read = readMatrices(inputs, ["oldLogp", "samplingLogp"], { optional: ["toolMask"] });
  const [rows, cols] = read.shape;
  const oldLogp = read.values.oldLogp!;
  const samplingLogp = read.values.samplingLogp!;
  // The tool mask is a mask: its entries are 0 or 1 wherever the completion mask selects.
  const toolMask = read.values.toolMask;
  const selected = new Uint8Array(rows * cols);
  for (let i = 0; i < selected.length; i++) {
    if (read.mask[i] !== 1) continue;
    const tool = toolMask === undefined ? 1 : toolMask[i];
    if (tool !== 0 && tool !== 1) {
      throw invalid(
        `inputs.toolMask[${Math.floor(i / cols)}][${i % cols}]`,
        `mask entries must be 0 or 1, received ${tool}`,
      );
    }
    selected[i] = tool;
  }
  const sequence = o.mode.startsWith("sequence");
  const truncate = o.mode.endsWith("truncate");
  const low = o.clipMin ?? -Infinity;
  const high = o.clipMax ?? Infinity;
  const ratio = new Float64Array(sequence ? rows : rows * cols);
  const rejected = truncate ? undefined : new Uint8Array(ratio.length);
  const apply = (index: number, logRatio: number, where: string) => {
    let r = Math.exp(logRatio);
    if (truncate) r = r < low ? low : r > high ? high : r;
    else if (r < low || r > high) {
      r = 0;
      rejected![index] = 1;
    }
    if (!Number.isFinite(r)) {
      throw invalid(
        `inputs.oldLogp${where}`,
        `the importance ratio exp(${logRatio}) overflows float64 (TRL clamps no log-ratio); set clipMax to bound it`,
      );
    }
    ratio[index] = r;
  };
  let deltaSum = 0;
  let deltaMax = 0;
  let deltaCount = 0;
  for (let b = 0; b < rows; b++) {
    let rowSum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      const diff = selected[i] === 1 ? oldLogp[i]! - samplingLogp[i]! : 0;
      if (selected[i] === 1) {
        const delta = Math.abs(diff);
        deltaSum += delta;
        if (delta > deltaMax) deltaMax = delta;
        deltaCount++;
      }
      if (sequence) rowSum += diff;
      else apply(i, diff, `[${b}][${i - b * cols}]`);
    }
    // At sequence level the row's sum overflowed: the path names the row.
    if (sequence) apply(b, rowSum, `[${b}]`);
  }

  let ratioMin = Infinity;
  let ratioMax = -Infinity;
  let ratioSum = 0;
  let ratioCount = 0;
  for (let k = 0; k < ratio.length; k++) {
    if (!sequence && selected[k] !== 1) continue;
    const r = ratio[k]!;
    if (r < ratioMin) ratioMin = r;
    if (r > ratioMax) ratioMax = r;
    ratioSum += r;
    ratioCount++;
  }
  const weights = sequence ? new Float64Array(rows * cols) : Float64Array.from(ratio);
  if (sequence) for (let i = 0; i < weights.length; i++) weights[i] = ratio[Math.floor(i / cols)]!;
  return {
    level: sequence ? "sequence" : "token",
    ratio,
    rejected,
    importanceWeights: matrixOf(weights, read.shape),
    metrics: {
      "sampling/sampling_logp_difference/mean": deltaCount === 0 ? 0 : deltaSum / deltaCount,
      "sampling/sampling_logp_difference/max": deltaMax,
      "sampling/importance_sampling_ratio/min": ratioCount === 0 ? 0 : ratioMin,
      "sampling/importance_sampling_ratio/mean": ratioCount === 0 ? 0 : ratioSum / ratioCount,
      "sampling/importance_sampling_ratio/max": ratioCount === 0 ? 0 : ratioMax,
    },
  };
}

/** entropyMaskOptionsSchema's fields. */
const entropyMaskShape = /* @__PURE__ */ pure(() => ({
  /** TRL `top_entropy_quantile` q ∈ (0, 1]: keep the tokens whose entropy is in the top q of the batch's. */
  quantile: z.number().check(z.positive(), z.lte(1)),
}));
/** The top-entropy mask's options. */
export const entropyMaskOptionsSchema: z.ZodMiniObject<typeof entropyMaskShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(entropyMaskShape);
/** The options entropyMask takes. */
export type EntropyMaskOptionsInput = z.input<typeof entropyMaskOptionsSchema>;

/** The per-token entropies and the completion mask. */
export interface EntropyMaskInputs {
  /** The policy's entropy per token (TRL `entropies`), [B, T]. */
  readonly entropy: MatrixInput;
  /** TRL `completion_mask`, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/** The top-entropy mask, as weights for policyLoss, and the threshold it used. */
export interface EntropyMaskResult {
  /** 1 for the valid tokens kept, 0 elsewhere, [B, T]: pass as `importanceWeights` (TRL's `entropy_mask`). */
  readonly importanceWeights: CorrectionMatrix;
  /** The entropy threshold: the float32 (1 − q)-quantile of the valid tokens' entropies; NaN without any. */
  readonly threshold: number;
}

/**
 * TRL's top-entropy mask (`grpo_trainer.py: GRPOTrainer.get_high_entropy_mask`, TRL f2cd577, called from
 * `_compute_loss` with threshold 1 − top_entropy_quantile): the (1 − q)-quantile of the valid tokens' entropies,
 * computed as TRL computes it (entropies cast to float32, torch.quantile's linear interpolation in float32), and
 * keep = (entropy · mask ≥ threshold) & mask, each entropy compared as given, as TRL compares its tensor. With
 * float32 entropies (a model's, as TRL has them; Float32Array or Math.fround values) ties at the threshold are kept
 * and q = 1 keeps every valid token. With float64 entropies (tokenEntropy's, say) the float32 threshold can exceed
 * an entropy equal to it in float32, which is then dropped, even at q = 1, as TRL drops it given a float64 tensor
 * (trl_policy_loss.json's ragged top_entropy0.5 case): round them with Math.fround first. Without any valid token,
 * nothing is kept. TRL multiplies the per-token loss by it and leaves the loss's denominators as they are.
 *
 * @example entropyMask({ entropy: [[0.1, 0.9, 0.5, 0.3]] }, { quantile: 0.5 }).importanceWeights.data // => [0, 1, 1, 0]
 * @throws ValidationError for a non-finite entropy where the mask selects, or a quantile outside (0, 1].
 */
export function entropyMask(inputs: EntropyMaskInputs, options: EntropyMaskOptionsInput): EntropyMaskResult {
  const { quantile } = parseOrThrow(entropyMaskOptionsSchema, options, "options");
  const read = readMatrices(inputs, ["entropy"]);
  const entropy = read.values.entropy!;
  const { mask } = read;
  const local: number[] = [];
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1) local.push(Math.fround(entropy[i]!));
  const weights = new Float64Array(mask.length);
  if (local.length === 0) return { importanceWeights: matrixOf(weights, read.shape), threshold: NaN };
  const threshold = float32Quantile(local, 1 - quantile);
  for (let i = 0; i < mask.length; i++) if (mask[i] === 1 && entropy[i]! >= threshold) weights[i] = 1;
  return { importanceWeights: matrixOf(weights, read.shape), threshold };
}

/**
 * torch.quantile(values, q) on a float32 tensor (linear interpolation): q and the rank in float32, and torch's
 * lerp (a + w·(b − a) for w < 0.5, else b − (b − a)·(1 − w)) in float32.
 */
function float32Quantile(values: number[], q: number): number {
  const f = Math.fround;
  const sorted = values.slice().sort((a, b) => a - b);
  const rank = f(f(q) * (sorted.length - 1));
  const below = Math.trunc(rank);
  const above = Math.ceil(rank);
  const weight = f(rank - below);
  const a = sorted[below]!;
  const b = sorted[above]!;
  const gap = f(b - a);
  return weight < 0.5 ? f(a + f(weight * gap)) : f(b - f(gap * f(1 - weight)));
}

/** offPolicyMaskOptionsSchema's fields. */
const offPolicyMaskShape = /* @__PURE__ */ pure(() => ({
  /** TRL `off_policy_mask_threshold` δ: a row with A < 0 is dropped when its mean (old − logp) exceeds δ. */
  threshold: z.number(),
}));
/** The off-policy mask's options. */
export const offPolicyMaskOptionsSchema: z.ZodMiniObject<typeof offPolicyMaskShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(offPolicyMaskShape);
/** The options offPolicyMask takes. */
export type OffPolicyMaskOptionsInput = z.input<typeof offPolicyMaskOptionsSchema>;

/** The current log-probs, the sampler's, the advantages and the completion mask. */
export interface OffPolicyMaskInputs {
  /** log π_θ of the policy being trained (TRL `per_token_logps`, detached here), [B, T]. */
  readonly logp: MatrixInput;
  /**
   * The sampler's log-probs: vLLM's `sampling_per_token_logps` when TRL has them, else `old_per_token_logps`
   * (TRL's choice); omitted: on-policy, every row is kept.
   */
  readonly oldLogp?: MatrixInput | undefined;
  /** One per rollout [B], or one per token [B, T]. */
  readonly advantages: NumericArray | MatrixInput;
  /** TRL `completion_mask`, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
}

/** The off-policy mask, as weights for policyLoss. */
export interface OffPolicyMaskResult {
  /** 1 for kept tokens, 0 for dropped ones, on every column, [B, T]: pass as `importanceWeights`. */
  readonly importanceWeights: CorrectionMatrix;
  /** Each row's mean of old − logp over its valid tokens (0 for an empty row): TRL's `seq_kl`, [B]. */
  readonly sequenceKl: Float64Array;
}

/**
 * TRL's off-policy sequence mask (`grpo_trainer.py: GRPOTrainer.get_off_policy_mask`, TRL f2cd577; DeepSeek-V3.2's
 * OPSM): with kl_b = Σ_t (old − logp)·m / max(Σ_t m, 1), keep a token when A ≥ 0 or kl_b ≤ δ. With one advantage
 * per row, whole rows are kept or dropped; with per-token advantages, the test runs per token, as TRL's broadcast
 * does. TRL multiplies the per-token loss by it and leaves the loss's denominators as they are.
 *
 * @example offPolicyMask({ logp: [[-2], [-2]], oldLogp: [[-1], [-1]], advantages: [1, -1] }, { threshold: 0.5 }).importanceWeights.data // => [1, 0]
 * @throws ValidationError for a non-finite log-prob or advantage where the mask selects, or a non-number threshold.
 */
export function offPolicyMask(inputs: OffPolicyMaskInputs, options: OffPolicyMaskOptionsInput): OffPolicyMaskResult {
  const { threshold } = parseOrThrow(offPolicyMaskOptionsSchema, options, "options");
  if (typeof inputs !== "object" || inputs === null) {
    throw invalid("inputs", "expected an object with logp, advantages, an optional oldLogp and mask");
  }
  const { advantages: advantageInput, ...logps } = inputs;
  const read = readMatrices(logps, ["logp"], { optional: ["oldLogp"] });
  const [rows, cols] = read.shape;
  const { mask, rowTokens } = read;
  const logp = read.values.logp!;
  const oldLogp = read.values.oldLogp ?? logp;
  const { advantages, perTokenAdvantages } = readAdvantages(advantageInput, mask, rowTokens, read.shape);
  const sequenceKl = new Float64Array(rows);
  const weights = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let sum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) if (mask[i] === 1) sum += oldLogp[i]! - logp[i]!;
    const kl = sum / Math.max(rowTokens[b]!, 1);
    sequenceKl[b] = kl;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      weights[i] = advantages[perTokenAdvantages ? i : b]! >= 0 || kl <= threshold ? 1 : 0;
    }
  }
  return { importanceWeights: matrixOf(weights, read.shape), sequenceKl };
}

/**
 * The product of several [B, T] weights (TRL: `per_token_loss · off_policy_mask · entropy_mask · ρ`), for
 * policyLoss's `importanceWeights`.
 *
 * @example multiplyWeights([[1, 0.5]], [[2, 2]]).data // => [2, 1]
 * @throws ValidationError when shapes differ, a weight is negative or not finite, or a product overflows float64.
 */
export function multiplyWeights(...weights: readonly MatrixInput[]): CorrectionMatrix {
  if (weights.length === 0) throw invalid("weights", "give at least one [B, T] matrix");
  const first = toMatrix(weights[0]!, "weights[0]");
  const out = Float64Array.from(first.data);
  weights.forEach((input, k) => {
    const matrix = k === 0 ? first : toMatrix(input, `weights[${k}]`);
    if (matrix.shape[0] !== first.shape[0] || matrix.shape[1] !== first.shape[1]) {
      throw invalid(
        `weights[${k}]`,
        `has shape [${matrix.shape.join(", ")}] but weights[0] has [${first.shape.join(", ")}]`,
      );
    }
    const cols = first.shape[1];
    for (let i = 0; i < out.length; i++) {
      const w = matrix.data[i]!;
      if (!(w >= 0) || w === Infinity) {
        throw invalid(`weights[${k}][${Math.floor(i / cols)}][${i % cols}]`, `is ${w}; weights must be finite and ≥ 0`);
      }
      if (k > 0) {
        const product = out[i]! * w;
        if (product === Infinity) {
          throw invalid(
            `weights[${k}][${Math.floor(i / cols)}][${i % cols}]`,
            `times the product of the weights before it (${out[i]}) overflows float64; weights must multiply to a finite value`,
          );
        }
        out[i] = product;
      }
    }
  });
  return matrixOf(out, first.shape);
}
