import { z } from "zod";

/**
 * How per-token losses become one number (docs/spec.md §4). verl's modes: token-mean, seq-mean-token-sum,
 * seq-mean-token-mean, seq-mean-token-sum-norm. TRL's loss types: grpo, bnpo, dr_grpo, dapo.
 */
export const AGGREGATIONS = [
  "token-mean",
  "seq-mean-token-sum",
  "seq-mean-token-mean",
  "seq-mean-token-sum-norm",
  "grpo",
  "bnpo",
  "dr_grpo",
  "dapo",
] as const;
export type Aggregation = (typeof AGGREGATIONS)[number];

export const KL_KINDS = ["k1", "abs", "k2", "k3"] as const;
export type KlKind = (typeof KL_KINDS)[number];
const KL_ALIASES: Record<string, KlKind> = { kl: "k1", mse: "k2", low_var_kl: "k3" };

const count = z.number().int().nonnegative();

/**
 * The whole batch's counts, for gradient accumulation and data parallelism: pass the same normaliser to every
 * micro-batch and the summed losses and gradients equal those of the whole batch at once.
 */
export const normalizerSchema = z
  .strictObject({
    /** Valid tokens of the whole batch (token-mean, bnpo; dapo's num_items_in_batch). */
    tokens: count.optional(),
    /** Non-empty rows of the whole batch, for verl's seq-mean-* modes (verl's global_batch_size). */
    sequences: count.optional(),
    /** All rows of the whole batch, empty ones included, for TRL's grpo and dr_grpo. */
    rows: count.optional(),
    /**
     * Fixed length divisor: seq-mean-token-sum-norm's loss_scale_factor (default T), dr_grpo's max_completion_length
     * (default T).
     */
    length: z.number().positive().finite().optional(),
    /** verl's dp_size: multiplies every mode but seq-mean-token-sum-norm. */
    dpSize: z.number().int().positive().default(1),
    /** TRL's gradient accumulation steps: divides grpo, bnpo and dr_grpo (not dapo, whose count already spans them). */
    gradientAccumulationSteps: z.number().int().positive().default(1),
  })
  .default({ dpSize: 1, gradientAccumulationSteps: 1 });
export type Normalizer = z.output<typeof normalizerSchema>;
export type NormalizerInput = z.input<typeof normalizerSchema>;

const klSchema = z.strictObject({
  kind: z.preprocess((kind) => (typeof kind === "string" ? (KL_ALIASES[kind] ?? kind) : kind), z.enum(KL_KINDS)),
  /** verl kl_loss_coef, TRL beta. */
  coef: z.number().nonnegative(),
  /** verl's k3 clamps (x to ±20, value to ±10); TRL clamps nothing. */
  clamp: z.boolean().default(true),
  /** TRL use_bias_correction_kl: multiply the KL by the importance ratio (not detached). */
  importanceCorrected: z.boolean().default(false),
});

/** A bound that may be infinite (one-sided clamps), but not NaN. */
const bound = z.custom<number>((value) => typeof value === "number" && !Number.isNaN(value), {
  message: "expected a number (±Infinity allowed)",
});

const logRatioClampSchema = z
  .tuple([bound, bound])
  // Readonly, so that `as const` presets (readonly tuples) satisfy the input type.
  .readonly()
  .refine(([low, high]) => low < high, { message: "clamp bounds must be [low, high] with low < high" });

export const policyLossOptionsSchema = z
  .strictObject({
    /** A registered per-token objective: "clip" (PPO/GRPO/DAPO/GSPO), "cispo", "sapo", "reinforce". */
    objective: z.string().default("clip"),
    /**
     * "token" ratios; "sequence": one ratio per rollout, ρ_b = exp(mean log-ratio), differentiated as it stands
     * (GSPO, TRL importance_sampling_level="sequence"); "sequence-token": GSPO-token, the same value with each
     * token's gradient kept to itself (verl's gspo). The two agree when advantages and weights are constant per row.
     */
    ratioLevel: z.enum(["token", "sequence", "sequence-token"]).default("token"),
    /** ε_low and ε_high: the ratio is clipped to [1 − clipLow, 1 + clipHigh]. */
    clipLow: z.number().nonnegative().default(0.2),
    clipHigh: z.number().nonnegative().default(0.28),
    /** Dual-clip c for negative advantages (loss ≤ −A·c); null disables it. Must exceed 1. */
    dualClip: z.number().gt(1).nullable().default(null),
    /** TRL's delta: cap the unclipped ratio at δ (two-sided clipping); null disables it. */
    delta: z.number().gt(1).nullable().default(null),
    /** Clamp of the log-ratio before exp, [low, high]; gradient 0 outside. verl: [−20, 20]; verl GSPO: [−∞, 10]. */
    logRatioClamp: logRatioClampSchema.nullable().default(null),
    aggregation: z.enum(AGGREGATIONS).default("token-mean"),
    normalizer: normalizerSchema,
    kl: klSchema.nullable().default(null),
    /** Entropy bonus coefficient (loss −= coef · aggregated entropy); needs `entropy` in the inputs. */
    entropyCoef: z.number().nonnegative().default(0),
    /** How the entropy is aggregated; defaults to `aggregation` (verl). TRL uses bnpo unless the loss is dapo. */
    entropyAggregation: z.enum(AGGREGATIONS).optional(),
    /** SAPO gate temperatures for positive and negative advantages. */
    sapoTemperature: z
      .strictObject({ positive: z.number().positive(), negative: z.number().positive() })
      .default({ positive: 1, negative: 1.05 }),
  })
  .superRefine((options, ctx) => {
    if (options.ratioLevel !== "token" && options.objective !== "clip") {
      ctx.addIssue({
        code: "custom",
        path: ["ratioLevel"],
        message: `sequence-level ratios need the "clip" objective, not "${options.objective}"`,
      });
    }
    if (options.clipLow > 1)
      ctx.addIssue({
        code: "custom",
        path: ["clipLow"],
        message: "must be at most 1 (the lower bound 1 − clipLow is a ratio ≥ 0)",
      });
  });

export type PolicyLossOptions = z.output<typeof policyLossOptionsSchema>;
export type PolicyLossOptionsInput = z.input<typeof policyLossOptionsSchema>;

/** verl's ActorConfig defaults for compute_policy_loss_vanilla. */
const verl = {
  objective: "clip",
  ratioLevel: "token",
  clipLow: 0.2,
  clipHigh: 0.2,
  dualClip: 3,
  delta: null,
  logRatioClamp: [-20, 20],
  aggregation: "token-mean",
  kl: null,
  entropyCoef: 0,
} as const satisfies PolicyLossOptionsInput;

/**
 * Plain option objects, side by side in the README. `paper` is the GRPO-RoC objective of the spec; `reference` is
 * what rStar2-Agent's released code runs (verl's vanilla loss with clip-higher).
 */
export const lossPresets = {
  paper: {
    objective: "clip",
    ratioLevel: "token",
    clipLow: 0.2,
    clipHigh: 0.28,
    dualClip: null,
    delta: null,
    logRatioClamp: null,
    aggregation: "token-mean",
    kl: null,
    entropyCoef: 0,
  },
  reference: { ...verl, clipHigh: 0.28 },
  verl,
  /**
   * verl's GSPO loss mode: sequence ratio, no ±20 clamp but log-ratio ≤ 10, no dual clip, seq-mean-token-mean always.
   */
  verlGspo: {
    ...verl,
    ratioLevel: "sequence-token",
    dualClip: null,
    logRatioClamp: [-Infinity, 10],
    aggregation: "seq-mean-token-mean",
  },
  /** TRL GRPOConfig defaults: loss_type "dapo", epsilon 0.2 both sides, beta 0, no clamp, no dual clip. */
  trl: {
    objective: "clip",
    ratioLevel: "token",
    clipLow: 0.2,
    clipHigh: 0.2,
    dualClip: null,
    delta: null,
    logRatioClamp: null,
    aggregation: "dapo",
    kl: null,
    entropyCoef: 0,
    entropyAggregation: "dapo",
  },
} as const satisfies Record<string, PolicyLossOptionsInput>;

export type KlOptions = NonNullable<PolicyLossOptions["kl"]>;
