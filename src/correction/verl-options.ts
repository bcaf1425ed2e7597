/**
 * The options of verl's rollout correction (verl 1dda039, `verl/trainer/config/algorithm.py`:
 * `RolloutCorrectionConfig`), as grpo-roc options: importance-sampling weights and rejection criteria as objects
 * instead of verl's threshold strings ("0.5_5.0"), and verl's preset class methods under their own names.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";

/** A positive, finite number (zod's number refuses ±Infinity and NaN). */
const positive = /* @__PURE__ */ pure(() => z.number().check(z.positive()));

/** The levels an importance weight is computed at: verl `rollout_is` "token" or "sequence". */
export const ROLLOUT_IS_LEVELS = ["token", "sequence"] as const;

/**
 * verl's rejection statistics (`SUPPORTED_ROLLOUT_RS_OPTIONS` of `rollout_corr_helper.py` at 1dda039), of the
 * clamped log-ratio ℓ = clamp(log π_train − log π_rollout, ±20): k1 = −ℓ, k2 = ℓ²/2, k3 = e^ℓ − 1 − ℓ, per token,
 * or per row as the sum, the mean or the max (k2, k3 only) over its valid tokens.
 */
export const ROLLOUT_RS_STATISTICS = [
  "token_k1",
  "token_k2",
  "token_k3",
  "seq_sum_k1",
  "seq_sum_k2",
  "seq_sum_k3",
  "seq_mean_k1",
  "seq_mean_k2",
  "seq_mean_k3",
  "seq_max_k2",
  "seq_max_k3",
] as const;
/** One of ROLLOUT_RS_STATISTICS (verl's `rollout_rs` option names). */
export type RolloutRejectionStatistic = (typeof ROLLOUT_RS_STATISTICS)[number];

/** rolloutWeightsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const rolloutWeightsShape = /* @__PURE__ */ pure(() => ({
  /** verl `rollout_is`: one weight per token, or one per row (the product of its token ratios) on every token. */
  level: z.enum(ROLLOUT_IS_LEVELS),
  /** The weights' upper bound C (verl `rollout_is_threshold`, default 2.0): TIS truncates to min(w, C). */
  upper: z._default(positive, 2),
  /**
   * IcePop's lower bound (verl's "lower_upper" threshold string): when set, weights outside [lower, upper] become 0
   * instead of being truncated (the mask is left as it is). Must not exceed `upper`.
   */
  lower: z.optional(positive),
  /** verl `rollout_is_batch_normalize`: divide the weights by their batch mean (after truncation). */
  batchNormalize: z._default(z.boolean(), false),
}));

/** Importance-sampling weights of π_train/π_rollout: TIS (`upper`) or IcePop (`lower` and `upper`), token or row. */
export const rolloutWeightsSchema: z.ZodMiniObject<typeof rolloutWeightsShape, z.core.$strict> = /* @__PURE__ */ pure(
  () =>
    z.strictObject(rolloutWeightsShape).check(
      z.refine((w) => w.lower === undefined || w.lower <= w.upper, {
        message: "lower must not exceed upper (verl: 'rollout_is_threshold lower bound must be <= upper bound')",
        path: ["lower"],
      }),
    ),
);
/** rolloutWeightsSchema's input: `level` required, the rest defaulted. */
export type RolloutWeightsOptionsInput = z.input<typeof rolloutWeightsSchema>;
/** rolloutWeightsSchema's output, every default filled in. */
export type RolloutWeightsOptions = z.output<typeof rolloutWeightsSchema>;

/** rolloutRejectionSchema's fields: a const of its own, so that the published types keep each field's comment. */
const rolloutRejectionShape = /* @__PURE__ */ pure(() => ({
  /** Which statistic is bounded: one of ROLLOUT_RS_STATISTICS. */
  statistic: z.enum(ROLLOUT_RS_STATISTICS),
  /**
   * k2/k3: keep where the statistic ≤ upper. k1: the kept range is log(lower) ≤ k1 ≤ log(upper), and as k1 = −log r
   * that bounds **1/r**, not r: lower ≤ 1/r ≤ upper (verl's surprise, reproduced).
   */
  upper: positive,
  /** k1 only: the lower bound (default 1/upper, as verl reads a single number). Refused for k2/k3, as verl does. */
  lower: z.optional(positive),
}));

/** One rejection criterion: a statistic and its bounds; a row or token is kept when every criterion passes. */
export const rolloutRejectionSchema: z.ZodMiniObject<typeof rolloutRejectionShape, z.core.$strict> =
  /* @__PURE__ */ pure(() =>
    z.strictObject(rolloutRejectionShape).check(
      z.superRefine((criterion, ctx) => {
        const k1 = criterion.statistic.endsWith("k1");
        if (!k1 && criterion.lower !== undefined) {
          ctx.addIssue({
            code: "custom",
            path: ["lower"],
            message: `${criterion.statistic} takes a single upper bound (verl refuses "lower_upper" for k2/k3)`,
          });
        }
        if (k1 && criterion.lower !== undefined && criterion.lower > criterion.upper) {
          ctx.addIssue({ code: "custom", path: ["lower"], message: "must not exceed upper (nothing would be kept)" });
        }
      }),
    ),
  );
/** One rejection criterion as callers write it. */
export type RolloutRejectionCriterionInput = z.input<typeof rolloutRejectionSchema>;
/** One rejection criterion as the functions read it. */
export type RolloutRejectionCriterion = z.output<typeof rolloutRejectionSchema>;

/** The rejection criteria, each statistic at most once (verl drops repeats; grpo-roc refuses them). */
export const rolloutRejectionListSchema = /* @__PURE__ */ pure(() =>
  z.readonly(z.array(rolloutRejectionSchema)).check(
    z.superRefine((criteria, ctx) => {
      const seen = new Set<string>();
      criteria.forEach((criterion, index) => {
        if (seen.has(criterion.statistic)) {
          ctx.addIssue({
            code: "custom",
            path: [index, "statistic"],
            message: `${criterion.statistic} is listed twice; give each statistic once`,
          });
        }
        seen.add(criterion.statistic);
      });
    }),
  ),
);

/** The losses verl's bypass mode can run (`RolloutCorrectionConfig.loss_type`). */
export const BYPASS_LOSS_TYPES = ["ppo_clip", "reinforce"] as const;

/** rolloutCorrectionOptionsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const rolloutCorrectionShape = /* @__PURE__ */ pure(() => ({
  /** IS weights (verl `rollout_is` + `rollout_is_threshold` + `rollout_is_batch_normalize`); null: none. */
  weights: z._default(z.nullable(rolloutWeightsSchema), null),
  /** Rejection criteria (verl `rollout_rs` + `rollout_rs_threshold`), all of which must pass; []: none. */
  rejection: z._default(rolloutRejectionListSchema, []),
  /**
   * Bypass mode's loss (verl `loss_type`): "ppo_clip" (the default; the weights are computed for the metrics only)
   * or "reinforce" (−A·log π·w). Read only by `bypassModePolicyLoss`.
   */
  lossType: z._default(z.enum(BYPASS_LOSS_TYPES), "ppo_clip"),
}));

/** verl's rollout correction as grpo-roc options. Unknown keys are errors naming the closest known one. */
export const rolloutCorrectionOptionsSchema: z.ZodMiniObject<typeof rolloutCorrectionShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(rolloutCorrectionShape);
/** The options `rolloutCorrection` and `bypassModePolicyLoss` take (see rolloutCorrectionPresets). */
export type RolloutCorrectionOptionsInput = z.input<typeof rolloutCorrectionOptionsSchema>;
/** The options with every default filled in. */
export type RolloutCorrectionOptions = z.output<typeof rolloutCorrectionOptionsSchema>;

/** TIS at 2.0, per token or per row: objects rather than calls, so that a bundler may drop the presets. */
const tokenTis = { level: "token", upper: 2, batchNormalize: false } as const;
const sequenceTis = { level: "sequence", upper: 2, batchNormalize: false } as const;
/** verl's geometric-mean RS: seq_mean_k1 with "0.999_1.001". */
const geoRs = [{ statistic: "seq_mean_k1", lower: 0.999, upper: 1.001 }] as const;
/** verl's k3 RS: seq_mean_k3 ≤ 0.01. */
const k3Rs = [{ statistic: "seq_mean_k3", upper: 0.01 }] as const;

/**
 * verl's `RolloutCorrectionConfig` class methods (verl/trainer/config/algorithm.py at 1dda039), one preset each,
 * named after the method in camelCase, plus `dataclassDefault` (`RolloutCorrectionConfig()`: sequence TIS at 2.0,
 * whereas the YAML default `rollout_correction.yaml` is off, which is `disabled`). Decoupled presets go to
 * `rolloutCorrection`; bypass presets to `bypassModePolicyLoss`.
 */
export const rolloutCorrectionPresets = {
  /** `RolloutCorrectionConfig.decoupled_token_is()`: token TIS at 2.0. */
  decoupledTokenIs: { weights: tokenTis, rejection: [], lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_seq_is()`: sequence TIS at 2.0. */
  decoupledSeqIs: { weights: sequenceTis, rejection: [], lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_token_icepop()`: token IcePop, weights outside [0.5, 5] set to 0. */
  decoupledTokenIcepop: {
    weights: { level: "token", lower: 0.5, upper: 5, batchNormalize: false },
    rejection: [],
    lossType: "ppo_clip",
  },
  /** `RolloutCorrectionConfig.decoupled_seq_is_rs()`: sequence TIS at 2.0 and seq_sum_k1 "0.5_2.0". */
  decoupledSeqIsRs: {
    weights: sequenceTis,
    rejection: [{ statistic: "seq_sum_k1", lower: 0.5, upper: 2 }],
    lossType: "ppo_clip",
  },
  /** `RolloutCorrectionConfig.decoupled_geo_rs()`: seq_mean_k1 "0.999_1.001", no weights. */
  decoupledGeoRs: { weights: null, rejection: geoRs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_geo_rs_seq_tis()`: sequence TIS at 2.0 and the geometric RS. */
  decoupledGeoRsSeqTis: { weights: sequenceTis, rejection: geoRs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_geo_rs_token_tis()`: token TIS at 2.0 and the geometric RS. */
  decoupledGeoRsTokenTis: { weights: tokenTis, rejection: geoRs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_k3_rs()`: seq_mean_k3 ≤ 0.01, no weights. */
  decoupledK3Rs: { weights: null, rejection: k3Rs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_k3_rs_seq_tis()`: sequence TIS at 2.0 and seq_mean_k3 ≤ 0.01. */
  decoupledK3RsSeqTis: { weights: sequenceTis, rejection: k3Rs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.decoupled_k3_rs_token_tis()`: token TIS at 2.0 and seq_mean_k3 ≤ 0.01. */
  decoupledK3RsTokenTis: { weights: tokenTis, rejection: k3Rs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.disabled()`: no weights, no rejection; the off-policy metrics only. */
  disabled: { weights: null, rejection: [], lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig()` (dataclass defaults): sequence TIS at 2.0, no rejection, ppo_clip. */
  dataclassDefault: { weights: sequenceTis, rejection: [], lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.bypass_ppo_clip()`: PPO clip against π_rollout, nothing else. */
  bypassPpoClip: { weights: null, rejection: [], lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.bypass_ppo_clip_geo_rs()`: PPO clip and the geometric RS. */
  bypassPpoClipGeoRs: { weights: null, rejection: geoRs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.bypass_ppo_clip_k3_rs()`: PPO clip and seq_mean_k3 ≤ 0.01. */
  bypassPpoClipK3Rs: { weights: null, rejection: k3Rs, lossType: "ppo_clip" },
  /** `RolloutCorrectionConfig.bypass_pg_is()`: REINFORCE with sequence TIS at 2.0. */
  bypassPgIs: { weights: sequenceTis, rejection: [], lossType: "reinforce" },
  /** `RolloutCorrectionConfig.bypass_pg_token_icepop()`: REINFORCE with token IcePop [0.5, 5]. */
  bypassPgTokenIcepop: {
    weights: { level: "token", lower: 0.5, upper: 5, batchNormalize: false },
    rejection: [],
    lossType: "reinforce",
  },
  /** `RolloutCorrectionConfig.bypass_pg_geo_rs()`: REINFORCE with the geometric RS. */
  bypassPgGeoRs: { weights: null, rejection: geoRs, lossType: "reinforce" },
  /** `RolloutCorrectionConfig.bypass_pg_geo_rs_seq_tis()`: REINFORCE, sequence TIS at 2.0, the geometric RS. */
  bypassPgGeoRsSeqTis: { weights: sequenceTis, rejection: geoRs, lossType: "reinforce" },
  /** `RolloutCorrectionConfig.bypass_pg_geo_rs_token_tis()`: REINFORCE, token TIS at 2.0, the geometric RS. */
  bypassPgGeoRsTokenTis: { weights: tokenTis, rejection: geoRs, lossType: "reinforce" },
} as const satisfies Record<string, RolloutCorrectionOptionsInput>;
