import * as z from "zod/mini";
import { pure } from "../pure.js";

/** The choices of the options below, one list each (the schema, the types and the command line read them). */
export const STD_SCOPES = ["group", "batch"] as const;
export const SINGLETON_RULES = ["raw", "zero"] as const;
export const MISSING_REWARD_RULES = ["error", "ignore"] as const;

/** advantageOptionsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const advantageOptionsShape = {
  /**
   * Registered estimator name: "grpo" (group mean/std), "rloo" (leave-one-out baseline), verl's "grpo_passk" (only
   * the best rollout learns), "grpo_vectorized" (verl 1dda039's float32 statistics) or "grpo_vectorized_b178a3c"
   * (the same at verl b178a3c), or one you registered.
   */
  estimator: z._default(z.string(), "grpo"),
  /**
   * GRPO: divide by std + epsilon. false gives Dr. GRPO (verl norm_adv_by_std_in_grpo=False, TRL scale_rewards="none").
   */
  scaleByStd: z._default(z.boolean(), true),
  /** GRPO: the std of the group, or of the whole batch (TRL scale_rewards="batch"; the mean stays per group). */
  stdScope: z._default(z.enum(STD_SCOPES), "group"),
  /** Added to the std, not the variance: verl 1e-6, TRL 1e-4. */
  epsilon: z._default(z.number().check(z.nonnegative()), 1e-6),
  /** Bessel-corrected std (N−1), as both verl and TRL use. */
  unbiasedStd: z._default(z.boolean(), true),
  /**
   * A group of one: "raw" keeps its reward uncentred (verl GRPO: mean 0, std 1, so A = r/(1+ε); verl RLOO: A = r);
   * "zero" gives 0 (TRL; verl's vectorised RLOO).
   */
  singleton: z._default(z.enum(SINGLETON_RULES), "raw"),
  /**
   * NaN rewards: "error" rejects them; "ignore" leaves them out of the statistics and gives them A = 0 (TRL's None
   * rewards).
   */
  missingRewards: z._default(z.enum(MISSING_REWARD_RULES), "error"),
  /** Reproduce TRL bit for bit: its nanstd computes n/(n−1) in float32. */
  besselFactorFloat32: z._default(z.boolean(), false),
  /** Reproduce verl bit for bit: a singleton's unit std + ε is computed in float32 (1.0000009536743164). */
  singletonScaleFloat32: z._default(z.boolean(), true),
};

/** Checks and fills in the options of `advantages` (AdvantageOptionsInput). Unknown keys are errors. */
export const advantageOptionsSchema: z.ZodMiniObject<typeof advantageOptionsShape, z.core.$strict> =
  z.strictObject(advantageOptionsShape);

/** The advantages' options with every default filled in (`resolveAdvantageOptions`), as an estimator sees them. */
export type AdvantageOptions = z.output<typeof advantageOptionsSchema>;
/** The options `advantages` takes: every field optional, defaults as verl's GRPO. */
export type AdvantageOptionsInput = z.input<typeof advantageOptionsSchema>;

const verl = {
  estimator: "grpo",
  scaleByStd: true,
  stdScope: "group",
  epsilon: 1e-6,
  unbiasedStd: true,
  singleton: "raw",
  missingRewards: "error",
  besselFactorFloat32: false,
  singletonScaleFloat32: true,
} as const satisfies AdvantageOptions;

const trl = {
  estimator: "grpo",
  scaleByStd: true,
  stdScope: "group",
  epsilon: 1e-4,
  unbiasedStd: true,
  singleton: "zero",
  missingRewards: "ignore",
  besselFactorFloat32: true,
  singletonScaleFloat32: false,
} as const satisfies AdvantageOptions;

/**
 * Plain option objects that reproduce each peer. The default is `verl`, which is also what rStar2-Agent's released
 * code uses (verl's compute_grpo_outcome_advantage: unbiased std + 1e-6).
 */
export const advantagePresets = /* @__PURE__ */ pure(
  () =>
    ({
      /** verl compute_grpo_outcome_advantage (the default): unbiased std + 1e-6, a group of one A = r/(1 + 1e-6). */
      verl,
      /** verl with norm_adv_by_std_in_grpo=False: Dr. GRPO, A = r − mean. */
      verlNoStd: { ...verl, scaleByStd: false },
      /** verl compute_rloo_outcome_advantage: a singleton keeps its raw score. */
      verlRloo: { ...verl, estimator: "rloo" },
      /** verl compute_rloo_vectorized_outcome_advantage: a singleton gets 0. */
      verlRlooVectorized: { ...verl, estimator: "rloo", singleton: "zero" },
      /**
       * verl pass@k, `algorithm.adv_estimator=grpo_passk`: verl/trainer/ppo/core_algos.py
       * `compute_grpo_passk_outcome_advantage` (b178a3c L361, unchanged at 1dda039). Only each group's best rollout gets
       * (r_max − r_second)/(std + 1e-6); a group of one is an error.
       */
      verlPassK: { ...verl, estimator: "grpo_passk" },
      /** verl pass@k with `norm_adv_by_std_in_grpo=False`: the best rollout gets r_max − r_second. */
      verlPassKNoStd: { ...verl, estimator: "grpo_passk", scaleByStd: false },
      /**
       * verl vectorised GRPO as of 1dda039b (the current verl), `algorithm.adv_estimator=grpo_vectorized`:
       * verl/trainer/ppo/core_algos.py `compute_grpo_vectorized_outcome_advantage` (L335) with verl/utils/groupwise.py
       * `group_mean_std` (L164, eps 0, centred float32 variance). Bit for bit as verl, **including its one departure
       * from the library's rule that an all-equal group gets 0**: four rollouts scored 0.1 get −0.001490116117595832
       * each ((0.1 − fround(0.1))/fround(1e-6)). Use `verl` for verl's loop GRPO, which gives them 0.
       */
      verlGrpoVectorized: { ...verl, estimator: "grpo_vectorized" },
      /** `verlGrpoVectorized` with `norm_adv_by_std_in_grpo=False`: A = r − float32 group mean. */
      verlGrpoVectorizedNoStd: { ...verl, estimator: "grpo_vectorized", scaleByStd: false },
      /**
       * verl vectorised GRPO as of b178a3cd (2026-01-29): verl/trainer/ppo/core_algos.py
       * `compute_grpo_vectorized_outcome_advantage` (L334) with verl/utils/groupwise.py `group_mean_std`, which floored
       * the float32 one-pass variance at ε (std ≥ 1e-3); the advantage then divides by std + ε. An all-equal group of
       * inexact scores gets advantages of order 1e-6.
       */
      verlGrpoVectorizedB178a3c: { ...verl, estimator: "grpo_vectorized_b178a3c" },
      /** `verlGrpoVectorizedB178a3c` with `norm_adv_by_std_in_grpo=False`: A = r − float32 group mean. */
      verlGrpoVectorizedB178a3cNoStd: { ...verl, estimator: "grpo_vectorized_b178a3c", scaleByStd: false },
      /** TRL GRPOTrainer, scale_rewards="group" (the default). */
      trl,
      /** TRL scale_rewards="batch": group mean, batch std. */
      trlBatch: { ...trl, stdScope: "batch" },
      /** TRL scale_rewards="none": Dr. GRPO. */
      trlNoStd: { ...trl, scaleByStd: false },
    }) as const satisfies Record<string, AdvantageOptions>,
);
