import * as z from "zod/mini";
import { pure } from "../pure.js";

/**
 * How per-token losses become one number (docs/spec.md §4). verl's modes: token-mean, token-sum (verl 1dda039),
 * seq-mean-token-sum, seq-mean-token-mean, seq-mean-token-sum-norm (its meaning depends on `normalizer.verlVersion`).
 * TRL's loss types: grpo, bnpo, dr_grpo, dapo.
 */
export const AGGREGATIONS = [
  "token-mean",
  "token-sum",
  "seq-mean-token-sum",
  "seq-mean-token-mean",
  "seq-mean-token-sum-norm",
  "grpo",
  "bnpo",
  "dr_grpo",
  "dapo",
] as const;
/** How per-token losses become one number: one of AGGREGATIONS (verl's modes and TRL's loss types). */
export type Aggregation = (typeof AGGREGATIONS)[number];

/**
 * The KL estimators of log π − log π_ref: Schulman's k1 (verl "kl"), k2 (verl "mse") and k3 (verl "low_var_kl", TRL's
 * only one), and |k1|. A "+" kind (verl 1dda039) is straight-through: the value of its base kind with the k2 gradient
 * logp − refLogp (at verl b178a3c these raised NotImplementedError). verl's names ("kl", "mse", "low_var_kl", and
 * the same with "+") are accepted as aliases in `options.kl.kind`.
 */
export const KL_KINDS = ["k1", "abs", "k2", "k3", "k1+", "abs+", "k2+", "k3+"] as const;
/** A KL estimator's name: "k1", "abs", "k2", "k3", or one of them with "+" (straight-through, k2 gradient). */
export type KlKind = (typeof KL_KINDS)[number];
/** verl's names for the KL kinds, as `options.kl.kind` and `klPenalty` accept them. */
export const KL_ALIASES = {
  kl: "k1",
  mse: "k2",
  low_var_kl: "k3",
  "kl+": "k1+",
  "mse+": "k2+",
  "low_var_kl+": "k3+",
} as const satisfies Record<string, KlKind>;
/** One of verl's KL names: "kl", "mse", "low_var_kl", or one of them with "+". */
export type VerlKlName = keyof typeof KL_ALIASES;

/**
 * The verl commits whose aggregation semantics `normalizer.verlVersion` selects (golden README, "Version traps" 1
 * and 6). "1dda039" (default): seq-mean-token-sum-norm divides by the sequences (× dpSize) and then by the length,
 * and dpSize > 1 needs the batch's count. "b178a3c": seq-mean-token-sum-norm is Σ / length, and dpSize > 1 without
 * the count scales this call's own count.
 */
export const VERL_VERSIONS = ["1dda039", "b178a3c"] as const;
/** A verl commit whose aggregation semantics to follow: one of VERL_VERSIONS. */
export type VerlVersion = (typeof VERL_VERSIONS)[number];

/**
 * The objectives grpo-roc ships without a kernel in the fast backends (verl's DPPO-TV, DPPO-KL, DRO, GMPO, KL-Cov,
 * Clip-Cov: src/loss/verl-objectives.ts; TRL's LUSPO and VESPO: src/loss/trl-objectives.ts). Every backend runs
 * them through the reference, as objectives registered at run time (`withRegisteredObjectives`): the device
 * computes the log-probs, the CPU the loss in float64.
 */
export const REFERENCE_OBJECTIVES = [
  "dppo-tv",
  "dppo-kl",
  "dro",
  "gmpo",
  "kl-cov",
  "clip-cov",
  "luspo",
  "vespo",
] as const;
/**
 * The shipped objectives whose lower ratio bound is 1 − clipLow (so clipLow ≤ 1): PPO's clip, CISPO, Clip-Cov and
 * LUSPO. The others read clipLow as another bound (DPPO-TV: π − π_old; DPPO-KL: a binary KL; GMPO: the log-ratio)
 * or not at all; an objective registered at run time reads it as its author says.
 */
const CLIP_LOW_RATIO_OBJECTIVES = ["clip", "cispo", "clip-cov", "luspo"] as const;

/** A shipped objective that every backend computes through the reference: one of REFERENCE_OBJECTIVES. */
export type ReferenceObjective = (typeof REFERENCE_OBJECTIVES)[number];

const count = z.int().check(z.nonnegative());

/** normalizerSchema's fields: a const of its own, so that the published types keep each field's comment. */
const normalizerShape = {
  /** Valid tokens of the whole batch (token-mean, bnpo; dapo's num_items_in_batch). */
  tokens: z.optional(count),
  /**
   * Rows of the whole batch for verl's seq-mean-* modes (verl's global_batch_size). `batchNormalizer` gives the
   * non-empty ones (what verl counts without it); verl 1dda039's trainer passes all rows, empty ones included.
   */
  sequences: z.optional(count),
  /** All rows of the whole batch, empty ones included, for TRL's grpo and dr_grpo. */
  rows: z.optional(count),
  /**
   * Fixed length divisor: seq-mean-token-sum-norm's loss_scale_factor (default T), dr_grpo's max_completion_length
   * (default T).
   */
  length: z.optional(z.number().check(z.positive())),
  /**
   * verl's dp_size: multiplies verl's modes (seq-mean-token-sum-norm only from verl 1dda039). From 1dda039, more than
   * 1 needs `tokens` (token-mean) or `sequences` (seq-mean-*), as verl raises without them.
   */
  dpSize: z._default(z.int().check(z.positive()), 1),
  /** TRL's gradient accumulation steps: divides grpo, bnpo and dr_grpo (not dapo, whose count already spans them). */
  gradientAccumulationSteps: z._default(z.int().check(z.positive()), 1),
  /** Which verl commit's agg_loss to follow (default "1dda039", the current one; see VERL_VERSIONS). */
  verlVersion: z._default(z.enum(VERL_VERSIONS), "1dda039"),
};

/**
 * The whole batch's counts, for gradient accumulation and data parallelism: pass the same normaliser to every
 * micro-batch and the summed losses and gradients equal those of the whole batch at once.
 */
export const normalizerSchema: z.ZodMiniDefault<z.ZodMiniObject<typeof normalizerShape, z.core.$strict>> = z._default(
  z.strictObject(normalizerShape),
  { dpSize: 1, gradientAccumulationSteps: 1, verlVersion: "1dda039" },
);
/** A normaliser with its defaults filled in (dpSize and gradientAccumulationSteps 1, verlVersion "1dda039"). */
export type Normalizer = z.output<typeof normalizerSchema>;
/**
 * The whole batch's counts, as `options.normalizer` takes them: `batchNormalizer(mask)` of the whole batch, plus
 * dpSize or gradientAccumulationSteps where they apply. Omitted counts are this call's own.
 */
export type NormalizerInput = z.input<typeof normalizerSchema>;

/** A KL kind as the options take it: one of KL_KINDS, or one of verl's names (KL_ALIASES), resolved to its kind. */
export const klKindSchema = z.pipe(
  z.transform((kind: unknown) =>
    typeof kind === "string" && Object.hasOwn(KL_ALIASES, kind) ? KL_ALIASES[kind as VerlKlName] : kind,
  ),
  z.enum(KL_KINDS),
);

/** klSchema's fields: a const of its own, so that the published types keep each field's comment. */
const klShape = {
  /**
   * The estimator: "k1", "abs", "k2", "k3", verl's names "kl", "mse", "low_var_kl", or any of them with "+"
   * (straight-through: the base kind's value, the gradient logp − refLogp; verl 1dda039).
   */
  kind: klKindSchema,
  /** verl kl_loss_coef, TRL beta. */
  coef: z.number().check(z.nonnegative()),
  /** verl's k3 clamps (x to ±20, value to ±10); TRL clamps nothing. */
  clamp: z._default(z.boolean(), true),
  /** TRL use_bias_correction_kl: multiply the KL by the importance ratio (not detached). */
  importanceCorrected: z._default(z.boolean(), false),
};

/** options.kl: the estimator, its coefficient, and verl's and TRL's variants. */
const klSchema: z.ZodMiniObject<typeof klShape, z.core.$strict> = z.strictObject(klShape);

/** A share of the batch's valid tokens, in (0, 1]. */
const tokenShare = z
  .number()
  .check(z.refine((share) => share > 0 && share <= 1, { message: "must be in (0, 1]: a share of the valid tokens" }));

/** klCovSchema's fields: a const of its own, so that the published types keep each field's comment. */
const klCovShape = {
  /** Share k/N of valid tokens penalised: those with the largest (A − mean A)(log π − mean log π); verl 0.0002. */
  ratio: z._default(tokenShare, 0.0002),
  /** The penalty coef·|log π − log π_old| added to the chosen tokens' −A·ρ; verl's ppo_kl_coef, 0.1. */
  coef: z._default(z.number().check(z.nonnegative()), 0.1),
};

/** options.klCov (verl compute_policy_loss_kl_cov). */
const klCovSchema: z.ZodMiniObject<typeof klCovShape, z.core.$strict> = z.strictObject(klCovShape);

/** clipCovSchema's fields: a const of its own, so that the published types keep each field's comment. */
const clipCovShape = {
  /** At most this share of valid tokens (at least one) is detached from the loss; verl 0.0002. */
  ratio: z._default(tokenShare, 0.0002),
  /** Candidates have lowerBound < (A − mean A)(log π − mean log π) < upperBound; verl clip_cov_lb, 1. */
  lowerBound: z._default(z.number(), 1),
  /** verl clip_cov_ub, 5. */
  upperBound: z._default(z.number(), 5),
  /**
   * Seeds the uniform choice among more candidates than `ratio` allows (verl draws them with torch.randperm, so no
   * seed reproduces verl's draw); with ratio 1 every candidate is taken and the seed is never used. Each call
   * reseeds from it, so equal candidate counts pick the same positions at every step, where verl draws afresh:
   * vary it per step (pass the training step) to draw as verl does. fromVerlConfig sets 0.
   */
  seed: z._default(z.int(), 0),
};

/** options.clipCov (verl compute_policy_loss_clip_cov). */
const clipCovSchema: z.ZodMiniObject<typeof clipCovShape, z.core.$strict> = z.strictObject(clipCovShape).check(
  z.refine((c) => c.lowerBound < c.upperBound, {
    message: "lowerBound must be below upperBound",
    path: ["upperBound"],
  }),
);

/** vespoSchema's fields: a const of its own, so that the published types keep each field's comment. */
const vespoShape = {
  /** The shape k of φ for A ≥ 0; TRL vespo_k_pos, 2. */
  kPositive: z._default(z.number(), 2),
  /** The rate λ > 0 of φ for A ≥ 0; TRL vespo_lambda_pos, 3 (TRL clamps λ to ≥ 1e-4). */
  lambdaPositive: z._default(z.number().check(z.positive()), 3),
  /** The shape k of φ for A < 0; TRL vespo_k_neg, 3. */
  kNegative: z._default(z.number(), 3),
  /** The rate λ > 0 of φ for A < 0; TRL vespo_lambda_neg, 2. */
  lambdaNegative: z._default(z.number().check(z.positive()), 2),
  /**
   * What the caller's importance weights are: "loss" (default) multiplies the loss by them, as for every objective
   * (TRL's entropy and off-policy masks); "phi" adds Σ_t clamp(log w_t, log 1e-8, 20) to the row's log w inside φ and
   * leaves the loss unweighted, as TRL does with its vLLM importance ratio (use_vllm with
   * vllm_importance_sampling_correction).
   */
  importanceWeights: z._default(z.enum(["loss", "phi"]), "loss"),
};

/** options.vespo (TRL GRPOTrainer.get_gamma_weights's parameters). */
const vespoSchema: z.ZodMiniObject<typeof vespoShape, z.core.$strict> = z.strictObject(vespoShape);
/** VESPO's parameters with their defaults filled in. */
export type VespoOptions = z.output<typeof vespoSchema>;

/** A bound that may be infinite (one-sided clamps), but not NaN. */
const bound = z.custom<number>((value) => typeof value === "number" && !Number.isNaN(value), {
  message: "expected a number (±Infinity allowed)",
});

// Readonly, so that `as const` presets (readonly tuples) satisfy the input type.
const logRatioClampSchema = z
  .readonly(z.tuple([bound, bound]))
  .check(z.refine(([low, high]) => low < high, { message: "clamp bounds must be [low, high] with low < high" }));

/** policyLossOptionsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const policyLossOptionsShape = {
  /**
   * A registered objective: the built-ins "clip" (PPO/GRPO/DAPO/GSPO), "cispo", "sapo", "reinforce"; verl's
   * "dppo-tv", "dppo-kl", "dro", "gmpo" (geo_mean), "kl-cov", "clip-cov"; TRL's "luspo", "vespo"
   * (REFERENCE_OBJECTIVES); or one of yours.
   */
  objective: z._default(z.string(), "clip"),
  /**
   * "token" ratios; "sequence": one ratio per rollout, ρ_b = exp(mean log-ratio), differentiated as it stands
   * (GSPO, TRL importance_sampling_level="sequence"); "sequence-token": GSPO-token, the same value with each
   * token's gradient kept to itself (verl's gspo). The two agree when advantages and weights are constant per row.
   */
  ratioLevel: z._default(z.enum(["token", "sequence", "sequence-token"]), "token"),
  /**
   * ε_low, default 0.2: the ratio is clipped to [1 − clipLow, 1 + clipHigh] (at most 1 for clip, CISPO, Clip-Cov and
   * LUSPO; DPPO, GMPO read it as their own bound, see docs/api.md).
   */
  clipLow: z._default(z.number().check(z.nonnegative()), 0.2),
  /** ε_high, default 0.28: clip-higher, wider than ε_low so that rare tokens can still gain probability. */
  clipHigh: z._default(z.number().check(z.nonnegative()), 0.28),
  /** Dual-clip c for negative advantages (loss ≤ −A·c); null disables it. Must exceed 1. */
  dualClip: z._default(z.nullable(z.number().check(z.gt(1))), null),
  /** TRL's delta: cap the unclipped ratio at δ (two-sided clipping); null disables it. */
  delta: z._default(z.nullable(z.number().check(z.gt(1))), null),
  /** Clamp of the log-ratio before exp, [low, high]; gradient 0 outside. verl: [−20, 20]; verl GSPO: [−∞, 10]. */
  logRatioClamp: z._default(z.nullable(logRatioClampSchema), null),
  /** How per-token losses become one number (default "token-mean"; see AGGREGATIONS). */
  aggregation: z._default(z.enum(AGGREGATIONS), "token-mean"),
  /** The whole batch's counts, for micro-batches; omitted: this call is the whole batch. */
  normalizer: normalizerSchema,
  /** A KL penalty to a reference policy, { kind, coef }; null (default) for none. Needs `refLogp` in the inputs. */
  kl: z._default(z.nullable(klSchema), null),
  /** Entropy bonus coefficient (loss −= coef · aggregated entropy); needs `entropy` in the inputs. */
  entropyCoef: z._default(z.number().check(z.nonnegative()), 0),
  /** How the entropy is aggregated; defaults to `aggregation` (verl). TRL uses bnpo unless the loss is dapo. */
  entropyAggregation: z.optional(z.enum(AGGREGATIONS)),
  /** SAPO gate temperatures for positive and negative advantages. */
  sapoTemperature: z._default(
    z.strictObject({ positive: z.number().check(z.positive()), negative: z.number().check(z.positive()) }),
    { positive: 1, negative: 1.05 },
  ),
  /**
   * DPPO's truncated importance weight sg(min(ρ, c)) ("dppo-tv", "dppo-kl" only): verl's clip_ratio_c there (the
   * same config field as vanilla PPO's dual clip, but a cap on the detached weight, not a bound on the loss); null:
   * ρ uncapped.
   */
  ratioCap: z._default(z.nullable(z.number().check(z.positive())), null),
  /** DRO's β > 0 in −(A·log π − β/2·(log π − log π_old)²) ("dro" only, which needs it: verl has no default). */
  droBeta: z._default(z.nullable(z.number().check(z.positive())), null),
  /** KL-Cov's selection and penalty ("kl-cov" only, which needs it): verl's kl_cov_ratio and ppo_kl_coef. */
  klCov: z._default(z.nullable(klCovSchema), null),
  /** Clip-Cov's selection ("clip-cov" only, which needs it): verl's clip_cov_ratio, clip_cov_lb and clip_cov_ub. */
  clipCov: z._default(z.nullable(clipCovSchema), null),
  /**
   * VESPO's φ parameters and what the importance weights are ("vespo" only); null: TRL's defaults (k 2, λ 3 for
   * A ≥ 0; k 3, λ 2 for A < 0; weights multiply the loss).
   */
  vespo: z._default(z.nullable(vespoSchema), null),
};

/** Options read by one objective alone, and whether that objective needs them. */
const OBJECTIVE_OPTIONS = [
  { field: "ratioCap", objectives: ["dppo-tv", "dppo-kl"], required: false },
  { field: "droBeta", objectives: ["dro"], required: true },
  { field: "klCov", objectives: ["kl-cov"], required: true },
  { field: "clipCov", objectives: ["clip-cov"], required: true },
  { field: "vespo", objectives: ["vespo"], required: false },
] as const;

/** The reference objectives that read TRL's δ: LUSPO shares the clip branch of TRL's _compute_loss. */
const READS_DELTA: readonly string[] = ["luspo"];
/** The reference objectives that compute their own log-ratios, as TRL does (no clamp, or VESPO's ±20 inside φ). */
const OWN_LOG_RATIOS: readonly string[] = ["luspo", "vespo"];

/**
 * Checks and fills in the policy loss's options (PolicyLossOptionsInput): each field's type and default (the paper's
 * GRPO-RoC loss), and the rules across them. Unknown keys are errors that name the closest known one.
 */
export const policyLossOptionsSchema: z.ZodMiniObject<typeof policyLossOptionsShape, z.core.$strict> = z
  .strictObject(policyLossOptionsShape)
  .check(
    z.superRefine((options, ctx) => {
      if (options.ratioLevel !== "token" && options.objective !== "clip") {
        ctx.addIssue({
          code: "custom",
          path: ["ratioLevel"],
          message: `sequence-level ratios need the "clip" objective, not "${options.objective}"`,
        });
      }
      // Only where 1 − clipLow bounds the ratio: DPPO's clipLow bounds π − π_old or a binary KL, GMPO's the log-ratio.
      if (options.clipLow > 1 && (CLIP_LOW_RATIO_OBJECTIVES as readonly string[]).includes(options.objective))
        ctx.addIssue({
          code: "custom",
          path: ["clipLow"],
          message: `must be at most 1 for the "${options.objective}" objective (the lower bound 1 − clipLow is a ratio ≥ 0)`,
        });
      if ((REFERENCE_OBJECTIVES as readonly string[]).includes(options.objective)) {
        const dppo = options.objective.startsWith("dppo");
        if (options.dualClip !== null)
          ctx.addIssue({
            code: "custom",
            path: ["dualClip"],
            message: `the "${options.objective}" objective has no dual clip; leave it null${dppo ? " (verl's clip_ratio_c is its ratioCap)" : ""}`,
          });
        if (options.delta !== null && !READS_DELTA.includes(options.objective))
          ctx.addIssue({
            code: "custom",
            path: ["delta"],
            message: `the "${options.objective}" objective has no δ cap; leave it null`,
          });
        if (options.logRatioClamp !== null && OWN_LOG_RATIOS.includes(options.objective))
          ctx.addIssue({
            code: "custom",
            path: ["logRatioClamp"],
            message: `the "${options.objective}" objective computes its own log-ratios as TRL does (no clamp${options.objective === "vespo" ? "; ±20 inside φ" : ""}); leave it null`,
          });
      }
      for (const { field, objectives, required } of OBJECTIVE_OPTIONS) {
        const readBy = (objectives as readonly string[]).includes(options.objective);
        const names = objectives.map((name) => `"${name}"`).join(" and ");
        if (options[field] !== null && !readBy) {
          ctx.addIssue({
            code: "custom",
            path: [field],
            message: `is read only by the ${names} objective${objectives.length > 1 ? "s" : ""}, not "${options.objective}"; leave it null`,
          });
        } else if (options[field] === null && readBy && required) {
          ctx.addIssue({
            code: "custom",
            path: [field],
            message: `the ${names} objective needs it (verl has no usable default; see lossPresets)`,
          });
        }
      }
    }),
  );

/** The policy loss's options with every default filled in, as an objective's kernel sees them. */
export type PolicyLossOptions = z.output<typeof policyLossOptionsSchema>;
/** The options `policyLoss` takes, every field optional (defaults: the paper's loss); see `lossPresets`. */
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

/** TRL's GRPOConfig defaults for the loss (lossPresets.trl, which trlLuspo spreads). */
const trl = {
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
} as const satisfies PolicyLossOptionsInput;

/**
 * Plain option objects, side by side in the README. `paper` is the GRPO-RoC objective of the spec; `reference` is
 * what rStar2-Agent's released code runs (verl's vanilla loss with clip-higher).
 */
export const lossPresets = /* @__PURE__ */ pure(
  () =>
    ({
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
      /**
       * verl's DPPO-Binary-TV (verl/trainer/ppo/core_algos.py compute_policy_loss_dppo_tv, verl 1dda039): clipLow and
       * clipHigh are the bounds on π − π_old, ratioCap is ActorConfig's clip_ratio_c (3), the log-ratio clamp ±20.
       * verl's example (examples/dppo_trainer) uses 0.15 and a cap of 10000 with seq-mean-token-sum-norm.
       */
      verlDppoTv: { ...verl, objective: "dppo-tv", dualClip: null, ratioCap: 3 },
      /**
       * verl's DPPO-Binary-KL (core_algos.py compute_policy_loss_dppo_kl, verl 1dda039): clipLow and clipHigh bound the
       * binary KL between (π_old, 1 − π_old) and (π, 1 − π); ratioCap 3 and the ±20 clamp as in verlDppoTv.
       */
      verlDppoKl: { ...verl, objective: "dppo-kl", dualClip: null, ratioCap: 3 },
      /**
       * verl's DRO (core_algos.py compute_policy_loss_dro, verl 1dda039): no ratio, no clamp. verl has no default β
       * (PolicyLossConfig.dro_beta is None, and the loss raises): add one, `{ ...lossPresets.verlDro, droBeta: 0.1 }`.
       */
      verlDro: { ...verl, objective: "dro", dualClip: null, logRatioClamp: null },
      /**
       * verl's GMPO, loss_mode "geo_mean" (core_algos.py compute_policy_loss_geo_mean, verl b178a3c): the
       * geometric mean of token ratios whose log is clipped to [−clipLow, clipHigh], no ±20 clamp, the mean over all rows
       * whatever loss_agg_mode says ("grpo" here: each row's loss once, empty rows counted).
       */
      verlGmpo: { ...verl, objective: "gmpo", dualClip: null, logRatioClamp: null, aggregation: "grpo" },
      /**
       * verl's KL-Cov (core_algos.py compute_policy_loss_kl_cov, verl b178a3c): −A·ρ unclipped and unclamped,
       * plus ppo_kl_coef·|log ρ| on the kl_cov_ratio share of tokens of largest covariance; ActorConfig's 0.0002 and 0.1.
       */
      verlKlCov: {
        ...verl,
        objective: "kl-cov",
        dualClip: null,
        logRatioClamp: null,
        klCov: { ratio: 0.0002, coef: 0.1 },
      },
      /**
       * verl's Clip-Cov (core_algos.py compute_policy_loss_clip_cov, verl b178a3c): PPO's clip without dual
       * clip or clamp, with a clip_cov_ratio share of the tokens whose covariance lies in (1, 5) detached (loss 0).
       */
      verlClipCov: {
        ...verl,
        objective: "clip-cov",
        dualClip: null,
        logRatioClamp: null,
        clipCov: { ratio: 0.0002, lowerBound: 1, upperBound: 5, seed: 0 },
      },
      /** TRL GRPOConfig defaults: loss_type "dapo", epsilon 0.2 both sides, beta 0, no clamp, no dual clip. */
      trl,
      /**
       * TRL's LUSPO, `loss_type="luspo"` with `importance_sampling_level="sequence"` (trl/trainer/grpo_trainer.py
       * GRPOTrainer._compute_loss, TRL f2cd577): GSPO's clipped sequence ratio, each row's loss times its length L_b,
       * the mean over all rows (the "grpo" aggregation with the objective's L_b scaling), GRPOConfig's ε = 0.2 both
       * sides. The entropy bonus is divided by the local token count (bnpo), as TRL's non-dapo loss types do.
       */
      trlLuspo: { ...trl, objective: "luspo", aggregation: "grpo", entropyAggregation: "bnpo" },
      /**
       * TRL's VESPO, `loss_type="vespo"` (trl/trainer/grpo_trainer.py GRPOTrainer._compute_loss and
       * get_gamma_weights, TRL f2cd577): −sg(φ(w_b))·A·log π with φ(w) = exp(λ + k·log w − λ·w), GRPOConfig's
       * k/λ (2, 3 for A ≥ 0; 3, 2 for A < 0), aggregated as dapo (Σ / num_items_in_batch). With TRL's vLLM importance
       * correction, pass its ratio as importanceWeights with `vespo.importanceWeights: "phi"`.
       */
      trlVespo: {
        objective: "vespo",
        ratioLevel: "token",
        dualClip: null,
        delta: null,
        logRatioClamp: null,
        aggregation: "dapo",
        kl: null,
        entropyCoef: 0,
        entropyAggregation: "dapo",
        vespo: { kPositive: 2, lambdaPositive: 3, kNegative: 3, lambdaNegative: 2, importanceWeights: "loss" },
      },
    }) as const satisfies Record<string, PolicyLossOptionsInput>,
);

export type KlOptions = NonNullable<PolicyLossOptions["kl"]>;
