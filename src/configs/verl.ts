/**
 * verl's actor and algorithm configuration, as verl users write it (the YAML's `actor_rollout_ref.actor` and
 * `algorithm` sections), translated into grpo-roc's options.
 *
 * Field names and defaults: `ActorConfig` and `PolicyLossConfig` (`verl/workers/config/actor.py`), `AlgoConfig` and
 * `RolloutCorrectionConfig`, `KLControlConfig` (`verl/trainer/config/algorithm.py`), `verl/trainer/config/actor/actor.yaml`
 * and `ppo_trainer.yaml`, and the code that reads them (`verl/trainer/ppo/core_algos.py`: the policy losses,
 * `agg_loss`, `kl_penalty`, the advantage estimators, `get_kl_controller`; `dp_actor.update_policy`'s loss assembly;
 * `ray_trainer.apply_kl_penalty`), at the golden commits b178a3cd (volcengine/verl) and 1dda039b
 * (verl-project/verl), whose cases carry a real ActorConfig (test/golden/README.md). Where verl moved between the
 * two commits, `fromVerlConfig(config, { verlVersion })` picks which one to follow (default "1dda039", the current one;
 * "b178a3c" keeps the earlier semantics reachable): `seq-mean-token-sum-norm` (golden README, "Version traps" 1), the
 * vectorised GRPO, REINFORCE++'s return at mask-0 positions and the optimal token baseline's zero tail.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import {
  type GpgOptionsInput,
  gpgOptionsSchema,
  type OpoOptionsInput,
  opoOptionsSchema,
  type ReinforcePlusPlusBaselineOptionsInput,
  reinforcePlusPlusBaselineOptionsSchema,
} from "../advantages/batch-outcome.js";
import { type GdpoOptionsInput, gdpoOptionsSchema, gdpoPresets } from "../advantages/multi-reward.js";
import { advantageOptionsSchema, advantagePresets } from "../advantages/options.js";
import type { AdvantageOptionsInput } from "../advantages/options.js";
import { type GaeOptionsInput, gaeOptionsSchema } from "../advantages/token/gae.js";
import {
  type OptimalTokenBaselineOptionsInput,
  optimalTokenBaselineOptionsSchema,
} from "../advantages/token/optimal-token-baseline.js";
import {
  type AdaptiveKlOptionsInput,
  adaptiveKlOptionsSchema,
  type KlPenaltyRewardsOptionsInput,
  klPenaltyRewardsOptionsSchema,
} from "../advantages/token/kl-in-reward.js";
import {
  type ReinforcePlusPlusOptionsInput,
  reinforcePlusPlusOptionsSchema,
} from "../advantages/token/reinforce-plus-plus.js";
import type { BypassModeOptions } from "../correction/verl.js";
import {
  type RolloutCorrectionOptionsInput,
  rolloutCorrectionOptionsSchema,
  type RolloutRejectionCriterionInput,
  type RolloutWeightsOptionsInput,
} from "../correction/verl-options.js";
import { invalid, parseOrThrow } from "../errors.js";
import {
  type Aggregation,
  type KlKind,
  lossPresets,
  type NormalizerInput,
  policyLossOptionsSchema,
  type PolicyLossOptionsInput,
  VERL_VERSIONS,
  type VerlVersion,
} from "../loss/options.js";
import {
  acceptedUnused,
  checkTranslated,
  finite,
  lookup,
  NOT_YET,
  nonnegative,
  positiveInt,
  requireKnown,
  type Table,
  unsupported,
} from "./shared.js";

/**
 * ActorConfig's keys (and FSDPActorConfig's, McoreActorConfig's, VeOmniActorConfig's) that change nothing grpo-roc
 * computes, accepted and not read: batch and micro-batch sizes (the caller passes the whole batch's counts in
 * `global_batch_info`), parallelism, engines, optimiser, checkpoints, profiling, compilation and kernels, epochs and
 * shuffling, the model config, Hydra's `_target_`. `use_rollout_log_probs` picks which log-probs are "old": an input.
 */
export const VERL_ACTOR_UNUSED_KEYS = [
  "_target_",
  "strategy",
  "ppo_mini_batch_size",
  "ppo_micro_batch_size",
  "ppo_micro_batch_size_per_gpu",
  "ppo_infer_micro_batch_size_per_gpu",
  "use_dynamic_bsz",
  "ppo_max_token_len_per_gpu",
  "ppo_infer_max_token_len_per_gpu",
  "freeze_vision_tower",
  "calculate_entropy",
  "use_prefix_grouper",
  "use_torch_compile",
  "ppo_epochs",
  "shuffle",
  "data_loader_seed",
  "checkpoint",
  "optim",
  "use_fused_kernels",
  "profiler",
  "engine",
  "rollout_n",
  "model_config",
  "router_replay",
  "grad_clip",
  "ulysses_sequence_parallel_size",
  "entropy_from_logits_with_chunking",
  "entropy_checkpointing",
  "fsdp_config",
  "use_remove_padding",
  "use_rollout_log_probs",
  "calculate_sum_pi_squared",
  "sum_pi_squared_checkpointing",
  "load_weight",
  "megatron",
  "profile",
  "veomni",
] as const;

/**
 * AlgoConfig's keys that change nothing grpo-roc computes: Hydra's `_target_`, preference-feedback PPO's settings
 * (read only with use_pf_ppo, which is refused), and DAPO's group filter (`filter_groups` / `dynamic_filter`: which
 * groups make up a batch, the trainer's business; grpo-roc's pipeline has its own, reported, drop of all-equal
 * groups).
 */
export const VERL_ALGORITHM_UNUSED_KEYS = ["_target_", "pf_ppo", "filter_groups", "dynamic_filter"] as const;

const nullableFinite = /* @__PURE__ */ z.nullable(finite);
const threshold = /* @__PURE__ */ pure(() => z.nullable(z.union([finite, z.string()])));

/** RolloutCorrectionConfig's fields (1dda039), with the dataclass defaults (the YAML's rollout_is is null). */
const rolloutCorrectionShape = /* @__PURE__ */ pure(() => ({
  _target_: z.optional(z.unknown()),
  /** "token", "sequence" or null: importance weights π_train/π_rollout. */
  rollout_is: z._default(z.nullable(z.string()), "sequence"),
  /** TIS cap, or "lo_up" for IcePop. */
  rollout_is_threshold: z._default(threshold, 2),
  /** Divide the weights by their mean. */
  rollout_is_batch_normalize: z._default(z.boolean(), false),
  /** Rejection sampling options (comma list), or null. */
  rollout_rs: z._default(z.nullable(z.string()), null),
  /** Rejection thresholds. */
  rollout_rs_threshold: z._default(threshold, null),
  /** Bypass mode: the rollout's log-probs serve as the old ones. */
  bypass_mode: z._default(z.boolean(), false),
  /** Bypass mode's loss: "ppo_clip" or "reinforce". */
  loss_type: z._default(z.string(), "ppo_clip"),
}));
const rolloutCorrectionSchema = /* @__PURE__ */ z.strictObject(rolloutCorrectionShape);

/** PolicyLossConfig's fields, with verl's defaults. */
const policyLossShape = /* @__PURE__ */ pure(() => ({
  _target_: z.optional(z.unknown()),
  /** The registered policy loss: "vanilla" (default), "gspo", "sapo", "cispo", "gpg", "bypass_mode", … */
  loss_mode: z._default(z.string(), "vanilla"),
  /** clip_cov's share of tokens (read by loss_mode "clip_cov" only). */
  clip_cov_ratio: z._default(finite, 0.0002),
  /** clip_cov's lower covariance bound. */
  clip_cov_lb: z._default(finite, 1),
  /** clip_cov's upper covariance bound. */
  clip_cov_ub: z._default(finite, 5),
  /** kl_cov's share of tokens (read by loss_mode "kl_cov" only). */
  kl_cov_ratio: z._default(finite, 0.0002),
  /** kl_cov's KL coefficient. */
  ppo_kl_coef: z._default(finite, 0.1),
  /** DRO's β (read by loss_mode "dro" only). */
  dro_beta: z._default(nullableFinite, null),
  /** The rollout correction of bypass mode (read by loss_mode "bypass_mode" only). */
  rollout_correction: z.optional(z.nullable(rolloutCorrectionSchema)),
}));

/** global_batch_info: the whole batch's counts, which verl's engine fills in (a single rank: `{}`). */
const globalBatchInfoShape = /* @__PURE__ */ pure(() => ({
  /** Data-parallel ranks: multiplies the loss. */
  dp_size: z.optional(z.nullable(positiveInt)),
  /** Valid tokens of the global batch (token-mean's divisor). */
  batch_num_tokens: z.optional(z.nullable(z.int().check(z.nonnegative()))),
  /** Sequences of the global batch (the seq-mean-* modes' divisor). */
  global_batch_size: z.optional(z.nullable(z.int().check(z.nonnegative()))),
  /** seq-mean-token-sum-norm's divisor (actor.loss_scale_factor). */
  loss_scale_factor: z.optional(z.nullable(z.number().check(z.positive()))),
}));

/** ActorConfig's fields that change the math, with verl's defaults. */
const actorShape = /* @__PURE__ */ pure(() => ({
  /** The symmetric clip ε, the fallback of clip_ratio_low/high; default 0.2. */
  clip_ratio: z._default(nonnegative, 0.2),
  /** ε_low; default 0.2 (None: clip_ratio). */
  clip_ratio_low: z._default(z.nullable(nonnegative), 0.2),
  /** ε_high; default 0.2 (None: clip_ratio). DAPO's clip-higher: 0.28. */
  clip_ratio_high: z._default(z.nullable(nonnegative), 0.2),
  /** Dual-clip c for negative advantages; default 3.0. */
  clip_ratio_c: z._default(finite, 3),
  /** "token-mean" (default), "seq-mean-token-sum", "seq-mean-token-mean", "seq-mean-token-sum-norm". */
  loss_agg_mode: z._default(z.string(), "token-mean"),
  /** seq-mean-token-sum-norm's divisor; None (default): the response length T. */
  loss_scale_factor: z._default(z.nullable(z.number().check(z.positive())), null),
  /** The entropy bonus's coefficient; default 0. */
  entropy_coeff: z._default(finite, 0),
  /** SAPO's temperature for A > 0; default 1.0. */
  tau_pos: z._default(finite, 1),
  /** SAPO's temperature for A ≤ 0; default 1.05. */
  tau_neg: z._default(finite, 1.05),
  /** Add a KL loss to the reference policy; default False. */
  use_kl_loss: z._default(z.boolean(), false),
  /** The KL loss's coefficient; default 0.001. */
  kl_loss_coef: z._default(finite, 0.001),
  /** The KL estimator: "kl"/"k1", "abs", "mse"/"k2", "low_var_kl"/"k3" (default "low_var_kl"). */
  kl_loss_type: z._default(z.string(), "low_var_kl"),
  /** PolicyLossConfig. */
  policy_loss: z.prefault(z.strictObject(policyLossShape), {}),
  /** The whole batch's counts (dp_size, batch_num_tokens, global_batch_size, loss_scale_factor); default {}. */
  global_batch_info: z.prefault(z.strictObject(globalBatchInfoShape), {}),
  ...acceptedUnused(VERL_ACTOR_UNUSED_KEYS),
}));

/**
 * KLControlConfig's fields (`algorithm.kl_ctrl`), with verl's defaults: `verl/trainer/config/algorithm.py`
 * `KLControlConfig` (`type: str = "fixed"`, `kl_coef: float = 0.001`, `horizon: int = 10000`, `target_kl: float =
 * 0.1`; the same in volcengine/verl and verl-project/verl) and `ppo_trainer.yaml`'s `algorithm.kl_ctrl` (the same
 * four values, with `_target_: verl.trainer.config.KLControlConfig`). verl reads them only with use_kl_in_reward:
 * `get_kl_controller` (`core_algos.py`) builds FixedKLController(kl_coef) or, asserting horizon > 0,
 * AdaptiveKLController(kl_coef, target_kl, horizon), and raises NotImplementedError on any other type.
 */
const klControlShape = {
  _target_: z.optional(z.unknown()),
  /** "fixed" (β constant) or "adaptive" (Ziegler et al.'s controller); default "fixed". */
  type: z._default(z.string(), "fixed"),
  /** The first step's β; default 0.001. */
  kl_coef: z._default(finite, 0.001),
  /** The adaptive controller's horizon (an int in verl); default 10000. */
  horizon: z._default(z.int(), 10000),
  /** The adaptive controller's target KL; default 0.1. */
  target_kl: z._default(finite, 0.1),
};

/** AlgoConfig's fields that change the math, with verl's defaults. */
const algorithmShape = /* @__PURE__ */ pure(() => ({
  /** The advantage estimator; default "gae". */
  adv_estimator: z._default(z.string(), "gae"),
  /** GRPO: divide by std + ε (False: Dr. GRPO); default True. */
  norm_adv_by_std_in_grpo: z._default(z.boolean(), true),
  /** Discount (GAE, REINFORCE++); default 1.0. */
  gamma: z._default(finite, 1),
  /** GAE's λ; default 1.0. */
  lam: z._default(finite, 1),
  /** Subtract a KL penalty from the rewards; default False. */
  use_kl_in_reward: z._default(z.boolean(), false),
  /** The in-reward KL estimator: "kl", "abs", "mse", "low_var_kl", the "+" kinds, "full"; default "kl". */
  kl_penalty: z._default(z.string(), "kl"),
  /** KLControlConfig: the in-reward KL's β and its controller; default KLControlConfig(). */
  kl_ctrl: z.prefault(z.strictObject(klControlShape), {}),
  /** Preference-feedback PPO (reweights the batch); default False. */
  use_pf_ppo: z._default(z.boolean(), false),
  /** Decoupled rollout correction (importance weights and rejection); YAML default null. */
  rollout_correction: z._default(z.nullable(rolloutCorrectionSchema), null),
  /** GDPO's reward keys (read by adv_estimator "gdpo" only). */
  gdpo_reward_keys: z.optional(z.nullable(z.array(z.string()))),
  /** GDPO's reward weights. */
  gdpo_reward_weights: z.optional(z.nullable(z.array(finite))),
  ...acceptedUnused(VERL_ALGORITHM_UNUSED_KEYS),
}));

const verlConfigShape = /* @__PURE__ */ pure(() => ({
  /** `actor_rollout_ref.actor`: ActorConfig. */
  actor: z.optional(z.strictObject(actorShape)),
  /** `algorithm`: AlgoConfig. */
  algorithm: z.optional(z.strictObject(algorithmShape)),
}));

/** Checks a verl configuration's actor and algorithm sections as verl names their fields. */
export const verlConfigSchema: z.ZodMiniObject<typeof verlConfigShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  verlConfigShape,
);

/** verl's actor (ActorConfig) and algorithm (AlgoConfig) sections, every field optional (verl's defaults). */
export type VerlConfig = z.input<typeof verlConfigSchema>;
/** verl's ActorConfig with its defaults filled in. */
type ResolvedVerlActor = NonNullable<z.output<typeof verlConfigSchema>["actor"]>;
/** verl's AlgoConfig with its defaults filled in. */
type ResolvedVerlAlgorithm = NonNullable<z.output<typeof verlConfigSchema>["algorithm"]>;

/** fromVerlConfig's second argument: which verl commit to follow where verl moved. */
const verlTranslationOptionsShape = /* @__PURE__ */ pure(() => ({
  /**
   * The verl commit whose semantics to follow where they differ (`VERL_VERSIONS`): "1dda039" (default, the current
   * verl) or "b178a3c" (the earlier one: seq-mean-token-sum-norm as Σ / length, the vectorised GRPO with its 1e-3 std
   * floor, REINFORCE++ resetting its return at mask-0 positions, the optimal token baseline without its zero tail).
   */
  verlVersion: z._default(z.enum(VERL_VERSIONS), "1dda039"),
}));
/** Checks fromVerlConfig's second argument. */
export const verlTranslationOptionsSchema: z.ZodMiniObject<typeof verlTranslationOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(verlTranslationOptionsShape);
/** fromVerlConfig's second argument: `{ verlVersion? }`. */
export type VerlTranslationOptions = z.input<typeof verlTranslationOptionsSchema>;

/**
 * verl's `algorithm.adv_estimator` as the grpo-roc function that computes it and that function's options. verl's
 * registry estimators (grpo, rloo, rloo_vectorized, grpo_passk, grpo_vectorized) are `advantages(rewards, groupIds,
 * options)`; the others need more than one reward per rollout or the whole batch, so each has its own function.
 */
export type VerlAdvantageEstimator =
  | {
      /** `advantages(rewards, groupIds, options)`, then `broadcastToTokens` (grpo, rloo, rloo_vectorized, grpo_passk, grpo_vectorized). */
      readonly function: "advantages";
      /** Its options (also in `VerlTranslation.advantages`). */
      readonly options: AdvantageOptionsInput;
    }
  | {
      /** `gpgAdvantages(rewards, groupIds, options)`: GPG, α over the whole batch (pass every rollout of the step). */
      readonly function: "gpgAdvantages";
      /** Its options (verl passes none: f_norm 1). */
      readonly options: GpgOptionsInput;
    }
  | {
      /** `opoAdvantages(rewards, groupIds, responseLengths, options)`: OPO's length-weighted baseline. */
      readonly function: "opoAdvantages";
      /** Its options (verl's defaults). */
      readonly options: OpoOptionsInput;
    }
  | {
      /** `reinforcePlusPlusBaselineAdvantages(rewards, groupIds, responseMask, options)` → [B, T]. */
      readonly function: "reinforcePlusPlusBaselineAdvantages";
      /** Its options (verl's whitening ε 1e-8). */
      readonly options: ReinforcePlusPlusBaselineOptionsInput;
    }
  | {
      /** `gdpoAdvantages(rewardsPerKey, groupIds, responseMask, options)` → [B, T]: one reward column per key. */
      readonly function: "gdpoAdvantages";
      /** `gdpoPresets.verl` (float32) with `norm_adv_by_std_in_grpo` and `gdpo_reward_weights`. */
      readonly options: GdpoOptionsInput;
      /** `gdpo_reward_keys`: the order of `rewardsPerKey`'s columns (verl reads `non_tensor_batch[key]`). */
      readonly rewardKeys: readonly string[];
    }
  | {
      /** `reinforcePlusPlusAdvantages({ tokenRewards, mask }, options)` → { advantages, returns }. */
      readonly function: "reinforcePlusPlusAdvantages";
      /** `gamma` (algorithm.gamma) and `verlVersion`. */
      readonly options: ReinforcePlusPlusOptionsInput;
    }
  | {
      /** `remaxAdvantages({ tokenRewards, mask, rewardBaselines })`: the greedy responses' rewards as baselines. */
      readonly function: "remaxAdvantages";
      /** ReMax takes no options: `{}`. */
      readonly options: Readonly<Record<string, never>>;
    }
  | {
      /** `gaeAdvantages({ tokenRewards, values, mask }, options)`: GAE with a critic's values. */
      readonly function: "gaeAdvantages";
      /** `gamma` (algorithm.gamma) and `lambda` (algorithm.lam). */
      readonly options: GaeOptionsInput;
    }
  | {
      /** `optimalTokenBaselineAdvantages(inputs, options)` (optimal_token_baseline) or its multi-turn variant. */
      readonly function: "optimalTokenBaselineAdvantages" | "tirOptimalTokenBaselineAdvantages";
      /** `handleZeroTail`: verl's default at the commit followed (true at 1dda039, false at b178a3c). */
      readonly options: OptimalTokenBaselineOptionsInput;
    };

/**
 * verl's in-reward KL controller (`algorithm.kl_ctrl.type`): which function gives the next step's β after each
 * klPenaltyRewards step, `fixedKlCoefficient(step)` or `adaptiveKlCoefficient(step, options)`, with `step = { klCoef:
 * the β just used, currentKl: klPenaltyRewards' currentKl, nSteps: the batch size B }`.
 */
export type VerlKlController =
  | {
      /** kl_ctrl.type "fixed": `fixedKlCoefficient`, β never changes. */
      readonly type: "fixed";
    }
  | {
      /** kl_ctrl.type "adaptive": `adaptiveKlCoefficient`. */
      readonly type: "adaptive";
      /** `targetKl` (kl_ctrl.target_kl) and `horizon` (kl_ctrl.horizon). */
      readonly options: AdaptiveKlOptionsInput;
    };

/**
 * verl's KL penalty in the rewards (`algorithm.use_kl_in_reward: true`): call `klPenaltyRewards({ tokenScores,
 * oldLogp, refLogp, mask }, options)` on the token scores before the advantage estimator, give the estimator its
 * `tokenRewards` (the outcome estimators: each row's sum), then take the next β from `controller`.
 */
export interface VerlKlInReward {
  /** klPenaltyRewards' options: `kind` (algorithm.kl_penalty) and `beta` (kl_ctrl.kl_coef, the first step's β). */
  readonly options: KlPenaltyRewardsOptionsInput;
  /** The KL controller (kl_ctrl.type, target_kl, horizon) that sets the β of the steps after the first. */
  readonly controller: VerlKlController;
}

/** What fromVerlConfig returns: the options of the sections given, undefined for a section left out. */
export interface VerlTranslation {
  /**
   * `policyLoss`'s options, from `actor`; undefined without it. With loss_mode "bypass_mode", call
   * `bypassModePolicyLoss(inputs, bypassMode)` instead: `loss` is what it computes when the correction neither weighs
   * nor rejects.
   */
  readonly loss: PolicyLossOptionsInput | undefined;
  /**
   * `advantages`' options, from `algorithm`, when adv_estimator is one of verl's registry estimators (grpo, rloo,
   * rloo_vectorized, grpo_passk, grpo_vectorized); undefined otherwise (see `advantageEstimator`) or without `algorithm`.
   */
  readonly advantages: AdvantageOptionsInput | undefined;
  /** adv_estimator as the grpo-roc function to call and its options; undefined without `algorithm`. */
  readonly advantageEstimator: VerlAdvantageEstimator | undefined;
  /**
   * `algorithm.rollout_correction` (decoupled mode) as `rolloutCorrection`'s options: call
   * `rolloutCorrection({ oldLogp, rolloutLogp, mask }, rolloutCorrection)` and pass its `importanceWeights` and `mask`
   * to `policyLoss`. Undefined when rollout_correction is null (verl's YAML default) or without `algorithm`.
   */
  readonly rolloutCorrection: RolloutCorrectionOptionsInput | undefined;
  /**
   * With `actor.policy_loss.loss_mode` "bypass_mode": `bypassModePolicyLoss`'s options (`correction` from
   * `policy_loss.rollout_correction`, `loss` = `loss` without its objective, which `correction.lossType` sets).
   * Undefined for every other loss mode.
   */
  readonly bypassMode: BypassModeOptions | undefined;
  /**
   * With `algorithm.use_kl_in_reward: true`: klPenaltyRewards' options and the KL controller (`kl_penalty`,
   * `kl_ctrl`). Undefined when use_kl_in_reward is false (verl's default; kl_penalty and kl_ctrl are then not read)
   * or without `algorithm`.
   */
  readonly klInReward: VerlKlInReward | undefined;
  /** The verl commit the translation follows (fromVerlConfig's `verlVersion`; also in `loss.normalizer.verlVersion`). */
  readonly verlVersion: VerlVersion;
}

/** ε_low and ε_high: clip_ratio_low/high, or clip_ratio where they are None. */
function clipRange(a: ResolvedVerlActor): { clipLow: number; clipHigh: number } {
  return { clipLow: a.clip_ratio_low ?? a.clip_ratio, clipHigh: a.clip_ratio_high ?? a.clip_ratio };
}

/** lossPresets.verl without its aggregation: the modes below take loss_agg_mode, or say which one they force. */
const verlBase = /* @__PURE__ */ pure(() => withoutAggregation(lossPresets.verl));

/** compute_policy_loss_vanilla: log-ratio clamped to ±20, dual clip c for A < 0, loss_agg_mode. */
function vanilla(a: ResolvedVerlActor): PolicyLossOptionsInput {
  if (!(a.clip_ratio_c > 1)) throw invalid("config.actor.clip_ratio_c", `is ${a.clip_ratio_c}; verl requires c > 1`);
  return { ...verlBase, ...clipRange(a), dualClip: a.clip_ratio_c };
}

/** One loss_mode: its options, with an aggregation only where the mode ignores loss_agg_mode. */
type VerlLossMode = (actor: ResolvedVerlActor) => PolicyLossOptionsInput;

/** A loss mode that aggregates with seq-mean-token-mean whatever loss_agg_mode says (gspo, sapo). */
const FIXED_AGGREGATION = "seq-mean-token-mean" as const;

/** bypass_mode's loss_type (rollout_correction.loss_type) → the loss it runs, over the rollout's log-probs. */
export const VERL_BYPASS_LOSS_TYPES: Table<VerlLossMode> = {
  ppo_clip: vanilla,
  reinforce: () => ({ ...verlBase, objective: "reinforce", dualClip: null, logRatioClamp: null }),
};

/** The rollout_correction of bypass mode: PolicyLossConfig's, or RolloutCorrectionConfig()'s defaults without one. */
function bypassCorrection(a: ResolvedVerlActor) {
  const path = "config.actor.policy_loss.rollout_correction";
  return parseOrThrow(rolloutCorrectionSchema, a.policy_loss.rollout_correction ?? {}, path);
}

/** A preset without its aggregation: the loss mode takes loss_agg_mode. */
function withoutAggregation(preset: PolicyLossOptionsInput): PolicyLossOptionsInput {
  const { aggregation: _aggregation, ...rest } = preset;
  return rest;
}

/** DPPO-TV / DPPO-KL: clip_ratio_low/high bound the TV / binary KL; clip_ratio_c is the IS truncation, not dual clip. */
const dppo = (preset: PolicyLossOptionsInput, a: ResolvedVerlActor): PolicyLossOptionsInput => ({
  ...withoutAggregation(preset),
  ...clipRange(a),
  ratioCap: a.clip_ratio_c,
});

/** policy_loss.loss_mode → grpo-roc's objective (core_algos.py's POLICY_LOSS_REGISTRY). */
export const VERL_LOSS_MODES: Table<VerlLossMode> = {
  vanilla,
  // GSPO: sequence ratio, no ±20 clamp but log-ratio ≤ 10, no dual clip, always seq-mean-token-mean.
  gspo: (a) => ({ ...lossPresets.verlGspo, ...clipRange(a) }),
  // SAPO: verl builds its taus in the advantages' dtype (float64), so no Math.fround here, unlike TRL.
  sapo: (a) => {
    if (!(a.tau_pos > 0 && a.tau_neg > 0))
      throw invalid(a.tau_pos > 0 ? "config.actor.tau_neg" : "config.actor.tau_pos", "SAPO's temperatures must be > 0");
    return {
      ...verlBase,
      objective: "sapo",
      dualClip: null,
      aggregation: FIXED_AGGREGATION,
      sapoTemperature: { positive: a.tau_pos, negative: a.tau_neg },
    };
  },
  cispo: (a) => ({ ...verlBase, objective: "cispo", ...clipRange(a), dualClip: null }),
  // GPG: −logp·A, no ratio.
  gpg: () => ({ ...verlBase, objective: "reinforce", dualClip: null, logRatioClamp: null }),
  // The loss bypassModePolicyLoss runs; the correction itself is VerlTranslation.bypassMode.
  bypass_mode: (a) =>
    lookup(
      VERL_BYPASS_LOSS_TYPES,
      bypassCorrection(a).loss_type,
      "config.actor.policy_loss.rollout_correction.loss_type",
    )(a),
  // GMPO: the log-ratio clipped to [−clipLow, clipHigh], the mean over all rows whatever loss_agg_mode says.
  geo_mean: (a) => ({ ...lossPresets.verlGmpo, ...clipRange(a) }),
  kl_cov: (a) => ({
    ...withoutAggregation(lossPresets.verlKlCov),
    klCov: { ratio: a.policy_loss.kl_cov_ratio, coef: a.policy_loss.ppo_kl_coef },
  }),
  clip_cov: (a) => ({
    ...withoutAggregation(lossPresets.verlClipCov),
    ...clipRange(a),
    clipCov: {
      ratio: a.policy_loss.clip_cov_ratio,
      lowerBound: a.policy_loss.clip_cov_lb,
      upperBound: a.policy_loss.clip_cov_ub,
      seed: 0,
    },
  }),
  dppo_tv: (a) => dppo(lossPresets.verlDppoTv, a),
  dppo_kl: (a) => dppo(lossPresets.verlDppoKl, a),
  // dro_beta None (PolicyLossConfig's default) or ≤ 0 raises in verl: grpo-roc's droBeta rule refuses it there.
  dro: (a) => ({ ...withoutAggregation(lossPresets.verlDro), droBeta: a.policy_loss.dro_beta }),
};

/** loss_agg_mode → aggregation (agg_loss; seq-mean-token-sum-norm's meaning follows `normalizer.verlVersion`). */
export const VERL_AGGREGATIONS: Table<Aggregation> = {
  "token-mean": "token-mean",
  "seq-mean-token-sum": "seq-mean-token-sum",
  "seq-mean-token-mean": "seq-mean-token-mean",
  "seq-mean-token-sum-norm": "seq-mean-token-sum-norm",
  "token-sum": "token-sum",
};

/** kl_loss_type and algorithm.kl_penalty → the KL estimator (kl_penalty). "full" raises in verl itself; the "+" kinds work from 1dda039 on. */
export const VERL_KL_KINDS: Table<KlKind> = {
  kl: "k1",
  k1: "k1",
  abs: "abs",
  mse: "k2",
  k2: "k2",
  low_var_kl: "k3",
  k3: "k3",
  "kl+": "k1+",
  "k1+": "k1+",
  "abs+": "abs+",
  "mse+": "k2+",
  "k2+": "k2+",
  "low_var_kl+": "k3+",
  "k3+": "k3+",
  full: NOT_YET,
};

/**
 * The values verl b178a3c does not have (it raises on them: an unknown loss mode or estimator, agg_loss's "invalid
 * loss_agg_mode", kl_penalty's NotImplementedError for the "+" kinds), refused with `verlVersion: "b178a3c"`.
 */
const LATER_THAN_B178A3C = {
  "config.actor.policy_loss.loss_mode": ["dppo_tv", "dppo_kl", "dro"],
  "config.actor.loss_agg_mode": ["token-sum"],
  "config.actor.kl_loss_type": ["kl+", "k1+", "abs+", "mse+", "k2+", "low_var_kl+", "k3+"],
  "config.algorithm.kl_penalty": ["kl+", "k1+", "abs+", "mse+", "k2+", "low_var_kl+", "k3+"],
  "config.algorithm.adv_estimator": ["gdpo"],
} as const satisfies Record<string, readonly string[]>;

function requireInVersion(path: keyof typeof LATER_THAN_B178A3C, value: string, version: VerlVersion): void {
  if (version === "b178a3c" && (LATER_THAN_B178A3C[path] as readonly string[]).includes(value))
    throw invalid(path, `"${value}" does not exist at verl b178a3c (verl raises there); it is verl 1dda039's`);
}

/** One adv_estimator: the function and options, from AlgoConfig and the verl version followed. */
type VerlEstimator = (algorithm: ResolvedVerlAlgorithm, version: VerlVersion) => VerlAdvantageEstimator;

/** A registry estimator: `advantages` with these options. */
const registry = (options: AdvantageOptionsInput): VerlAdvantageEstimator => ({ function: "advantages", options });

/** adv_estimator → the grpo-roc function and its options (core_algos.py's AdvantageEstimator). */
export const VERL_ESTIMATORS: Table<VerlEstimator> = {
  grpo: (g) => registry(g.norm_adv_by_std_in_grpo ? advantagePresets.verl : advantagePresets.verlNoStd),
  rloo: () => registry(advantagePresets.verlRloo),
  rloo_vectorized: () => registry(advantagePresets.verlRlooVectorized),
  // pass@k reads config.norm_adv_by_std_in_grpo (its keyword argument is ignored).
  grpo_passk: (g) => registry(g.norm_adv_by_std_in_grpo ? advantagePresets.verlPassK : advantagePresets.verlPassKNoStd),
  // float32 group_mean_std, which changed between the commits (b178a3c: one-pass variance floored at ε).
  grpo_vectorized: (g, v) =>
    registry(
      v === "b178a3c"
        ? g.norm_adv_by_std_in_grpo
          ? advantagePresets.verlGrpoVectorizedB178a3c
          : advantagePresets.verlGrpoVectorizedB178a3cNoStd
        : g.norm_adv_by_std_in_grpo
          ? advantagePresets.verlGrpoVectorized
          : advantagePresets.verlGrpoVectorizedNoStd,
    ),
  gpg: () => ({ function: "gpgAdvantages", options: {} }),
  opo: () => ({ function: "opoAdvantages", options: {} }),
  reinforce_plus_plus_baseline: () => ({ function: "reinforcePlusPlusBaselineAdvantages", options: {} }),
  gdpo: (g) => {
    const keys = g.gdpo_reward_keys ?? [];
    // verl: AssertionError "GDPO requires 'algorithm.gdpo_reward_keys'".
    if (keys.length === 0)
      throw invalid("config.algorithm.gdpo_reward_keys", "adv_estimator gdpo needs its reward keys (verl asserts)");
    const weights = g.gdpo_reward_weights;
    if (weights != null && weights.length !== keys.length)
      throw invalid(
        "config.algorithm.gdpo_reward_weights",
        `has ${weights.length} weights for ${keys.length} gdpo_reward_keys`,
      );
    return {
      function: "gdpoAdvantages",
      options: {
        ...gdpoPresets.verl,
        scaleByStd: g.norm_adv_by_std_in_grpo,
        ...(weights != null ? { rewardWeights: weights } : {}),
      },
      rewardKeys: keys,
    };
  },
  reinforce_plus_plus: (g, v) => ({
    function: "reinforcePlusPlusAdvantages",
    options: { gamma: g.gamma, verlVersion: v },
  }),
  remax: () => ({ function: "remaxAdvantages", options: {} }),
  gae: (g) => ({ function: "gaeAdvantages", options: { gamma: g.gamma, lambda: g.lam } }),
  // handle_zero_tail is not a config field: verl's trainer never passes it, so its default at the commit applies.
  optimal_token_baseline: (_g, v) => ({
    function: "optimalTokenBaselineAdvantages",
    options: { handleZeroTail: v === "1dda039" },
  }),
  tir_optimal_token_baseline: (_g, v) => ({
    function: "tirOptimalTokenBaselineAdvantages",
    options: { handleZeroTail: v === "1dda039" },
  }),
};

/**
 * grpo-roc's options for verl's actor and algorithm configuration written as verl names its fields: the policy loss
 * (loss_mode, clip ratios, dual clip, loss_agg_mode and global_batch_info, KL loss, entropy bonus) from `actor`, the
 * advantage estimator (adv_estimator, norm_adv_by_std_in_grpo, gamma, lam, gdpo_reward_*), the decoupled rollout
 * correction and the KL penalty in the rewards (use_kl_in_reward, kl_penalty, kl_ctrl) from `algorithm`, bypass mode's
 * correction from `actor.policy_loss`.
 *
 * @param config - `{ actor, algorithm }`, each optional; omitted fields take verl's defaults.
 * @param options - `{ verlVersion }`: "1dda039" (default) or "b178a3c", the verl commit to follow where they differ.
 * @throws ValidationError at `config.actor.<key>` or `config.algorithm.<key>`: an unknown key (with the closest known
 *   one), a wrong type or a non-finite number, a value grpo-roc's options refuse (reported at the verl key that gave
 *   it), or a known value grpo-roc does not implement yet (kl_loss_type or kl_penalty "full", use_pf_ppo, …); at `options`
 *   for an unknown verlVersion.
 * @example fromVerlConfig({ actor: { clip_ratio_high: 0.28 } }).loss
 *   // => { objective: "clip", clipLow: 0.2, clipHigh: 0.28, dualClip: 3, logRatioClamp: [-20, 20], … }
 */
export function fromVerlConfig(config: VerlConfig, options: VerlTranslationOptions = {}): VerlTranslation {
  const { verlVersion } = parseOrThrow(verlTranslationOptionsSchema, options, "options");
  const c = parseOrThrow(verlConfigSchema, config, "config");
  if (c.algorithm !== undefined) {
    // Misspellings are errors even while use_kl_in_reward is off (as fromTrlConfig checks its values).
    requireKnown(VERL_KL_KINDS, c.algorithm.kl_penalty, "config.algorithm.kl_penalty");
    requireKnown(VERL_KL_CONTROLLERS, c.algorithm.kl_ctrl.type, "config.algorithm.kl_ctrl.type");
  }
  const loss = c.actor === undefined ? undefined : actorOptions(c.actor, verlVersion);
  const estimator = c.algorithm === undefined ? undefined : algorithmEstimator(c.algorithm, verlVersion);
  const rc = c.algorithm?.rollout_correction ?? null;
  return {
    loss,
    // Its own copy: changing one of the two fields leaves the other as it is.
    advantages: estimator?.function === "advantages" ? { ...estimator.options } : undefined,
    advantageEstimator: estimator,
    rolloutCorrection: rc === null ? undefined : correctionOptions(rc, "config.algorithm.rollout_correction"),
    bypassMode:
      c.actor !== undefined && loss !== undefined && c.actor.policy_loss.loss_mode === "bypass_mode"
        ? bypassModeOptions(c.actor, loss)
        : undefined,
    klInReward: c.algorithm?.use_kl_in_reward ? klInRewardOptions(c.algorithm, verlVersion) : undefined,
    verlVersion,
  };
}

/** kl_ctrl.type → the controller (get_kl_controller). */
const VERL_KL_CONTROLLERS: Table<"fixed" | "adaptive"> = { fixed: "fixed", adaptive: "adaptive" };

/**
 * use_kl_in_reward's klPenaltyRewards options and controller: kl_penalty → kind (as kl_loss_type; "full" and, at
 * b178a3c, the "+" kinds raise in verl), kl_ctrl.kl_coef → β, kl_ctrl.type / target_kl / horizon → the controller.
 * verl checks none of the numbers but horizon (asserted > 0); grpo-roc's schemas refuse a negative β, a target ≤ 0
 * (a ZeroDivisionError at 0, a controller that steers the wrong way below it), reported at the kl_ctrl key.
 */
function klInRewardOptions(g: ResolvedVerlAlgorithm, version: VerlVersion): VerlKlInReward {
  requireInVersion("config.algorithm.kl_penalty", g.kl_penalty, version);
  const kind = lookup(VERL_KL_KINDS, g.kl_penalty, "config.algorithm.kl_penalty");
  const options: KlPenaltyRewardsOptionsInput = { kind, beta: g.kl_ctrl.kl_coef };
  checkTranslated(klPenaltyRewardsOptionsSchema, options, ([option]) =>
    option === "beta" ? "config.algorithm.kl_ctrl.kl_coef" : "config.algorithm.kl_penalty",
  );
  const type = lookup(VERL_KL_CONTROLLERS, g.kl_ctrl.type, "config.algorithm.kl_ctrl.type");
  if (type === "fixed") return { options, controller: { type } };
  const adaptive: AdaptiveKlOptionsInput = { targetKl: g.kl_ctrl.target_kl, horizon: g.kl_ctrl.horizon };
  checkTranslated(adaptiveKlOptionsSchema, adaptive, ([option]) =>
    option === "horizon" ? "config.algorithm.kl_ctrl.horizon" : "config.algorithm.kl_ctrl.target_kl",
  );
  return { options, controller: { type, options: adaptive } };
}

/** bypassModePolicyLoss's options: the correction of policy_loss.rollout_correction and the loss without objective. */
function bypassModeOptions(a: ResolvedVerlActor, loss: PolicyLossOptionsInput): BypassModeOptions {
  const { objective: _objective, ...rest } = loss;
  return {
    correction: correctionOptions(bypassCorrection(a), "config.actor.policy_loss.rollout_correction"),
    loss: rest,
  };
}

function actorOptions(a: ResolvedVerlActor, version: VerlVersion): PolicyLossOptionsInput {
  requireInVersion("config.actor.policy_loss.loss_mode", a.policy_loss.loss_mode, version);
  const mode = lookup(VERL_LOSS_MODES, a.policy_loss.loss_mode, "config.actor.policy_loss.loss_mode")(a);
  requireInVersion("config.actor.loss_agg_mode", a.loss_agg_mode, version);
  const aggregation = lookup(VERL_AGGREGATIONS, a.loss_agg_mode, "config.actor.loss_agg_mode");
  // A misspelt kl_loss_type is an error even while use_kl_loss is off; a known one is then unused.
  requireKnown(VERL_KL_KINDS, a.kl_loss_type, "config.actor.kl_loss_type");
  if (a.use_kl_loss) requireInVersion("config.actor.kl_loss_type", a.kl_loss_type, version);
  const kl = a.use_kl_loss ? lookup(VERL_KL_KINDS, a.kl_loss_type, "config.actor.kl_loss_type") : null;
  // dp_actor aggregates the KL loss with loss_agg_mode; grpo-roc aggregates it as the policy term.
  if (kl !== null && mode.aggregation !== undefined && mode.aggregation !== aggregation)
    throw unsupported(
      "config.actor.use_kl_loss",
      `a KL loss with loss_mode "${a.policy_loss.loss_mode}" (whose ${mode.aggregation} differs from loss_agg_mode ${aggregation})`,
    );
  if (a.kl_loss_coef < 0 && kl !== null) throw unsupported("config.actor.kl_loss_coef", `${a.kl_loss_coef} (< 0)`);
  if (a.entropy_coeff < 0) throw unsupported("config.actor.entropy_coeff", `${a.entropy_coeff} (< 0)`);
  const loss: PolicyLossOptionsInput = {
    ...mode,
    aggregation: mode.aggregation ?? aggregation,
    // dp_actor aggregates the entropy with loss_agg_mode, whatever the loss mode does.
    entropyAggregation: aggregation,
    normalizer: { ...normalizer(a), verlVersion: version },
    kl: kl === null ? null : { kind: kl, coef: a.kl_loss_coef, clamp: true },
    entropyCoef: a.entropy_coeff,
  };
  checkTranslated(policyLossOptionsSchema, loss, (path) => `config.actor.${verlActorKeyOf(path, a)}`);
  return loss;
}

/** clipCov's fields → PolicyLossConfig's keys. */
const CLIP_COV_KEY: Record<string, string> = {
  ratio: "clip_cov_ratio",
  lowerBound: "clip_cov_lb",
  upperBound: "clip_cov_ub",
};

/** The ActorConfig key that gave a loss option (for errors): the option's path → the key. */
function verlActorKeyOf(path: readonly PropertyKey[], a: ResolvedVerlActor): string {
  const [option, sub] = path;
  switch (option) {
    case "clipLow":
      return a.clip_ratio_low === null ? "clip_ratio" : "clip_ratio_low";
    case "clipHigh":
      return a.clip_ratio_high === null ? "clip_ratio" : "clip_ratio_high";
    case "dualClip":
    case "ratioCap":
      return "clip_ratio_c";
    case "sapoTemperature":
      return sub === "negative" ? "tau_neg" : "tau_pos";
    case "kl":
      return sub === "coef" ? "kl_loss_coef" : "kl_loss_type";
    case "entropyCoef":
      return "entropy_coeff";
    case "droBeta":
      return "policy_loss.dro_beta";
    case "klCov":
      return sub === "coef" ? "policy_loss.ppo_kl_coef" : "policy_loss.kl_cov_ratio";
    case "clipCov":
      return `policy_loss.${CLIP_COV_KEY[String(sub)] ?? "clip_cov_ratio"}`;
    case "normalizer":
      return sub === "length" && a.global_batch_info.loss_scale_factor == null
        ? "loss_scale_factor"
        : `global_batch_info.${GLOBAL_BATCH_INFO_KEY[String(sub)] ?? String(sub)}`;
    default:
      return "policy_loss.loss_mode";
  }
}

/** The normaliser's fields → global_batch_info's keys. */
const GLOBAL_BATCH_INFO_KEY: Record<string, string> = {
  dpSize: "dp_size",
  tokens: "batch_num_tokens",
  sequences: "global_batch_size",
  length: "loss_scale_factor",
};

/** global_batch_info and loss_scale_factor → the normaliser. */
function normalizer(a: ResolvedVerlActor): NormalizerInput {
  const info = a.global_batch_info;
  const length = info.loss_scale_factor ?? a.loss_scale_factor;
  if (info.loss_scale_factor != null && a.loss_scale_factor !== null && info.loss_scale_factor !== a.loss_scale_factor)
    throw invalid(
      "config.actor.global_batch_info.loss_scale_factor",
      `is ${info.loss_scale_factor} but actor.loss_scale_factor is ${a.loss_scale_factor}; verl copies one into the other`,
    );
  return {
    ...(info.dp_size != null ? { dpSize: info.dp_size } : {}),
    ...(info.batch_num_tokens != null ? { tokens: info.batch_num_tokens } : {}),
    ...(info.global_batch_size != null ? { sequences: info.global_batch_size } : {}),
    ...(length != null ? { length } : {}),
  };
}

function algorithmEstimator(g: ResolvedVerlAlgorithm, version: VerlVersion): VerlAdvantageEstimator {
  if (g.use_pf_ppo) throw unsupported("config.algorithm.use_pf_ppo", "true (preference-feedback PPO)");
  if (g.rollout_correction?.bypass_mode)
    throw unsupported(
      "config.algorithm.rollout_correction.bypass_mode",
      'true (the trainer\'s switch; give actor.policy_loss.loss_mode "bypass_mode" with policy_loss.rollout_correction)',
    );
  requireInVersion("config.algorithm.adv_estimator", g.adv_estimator, version);
  const estimator = lookup(VERL_ESTIMATORS, g.adv_estimator, "config.algorithm.adv_estimator")(g, version);
  // The function's own rules (γ and λ in [0, 1], one weight per key, …), reported at the AlgoConfig key.
  const schema = ESTIMATOR_OPTION_SCHEMAS[estimator.function];
  if (schema !== undefined)
    checkTranslated(
      schema,
      estimator.options,
      ([option]) => `config.algorithm.${ALGORITHM_KEY_OF[String(option)] ?? "adv_estimator"}`,
    );
  // A copy: the caller may change it, the preset stays as it is.
  return { ...estimator, options: { ...estimator.options } } as VerlAdvantageEstimator;
}

/** The options schema of each function an estimator names (ReMax takes none). */
const ESTIMATOR_OPTION_SCHEMAS: Partial<Record<VerlAdvantageEstimator["function"], z.core.$ZodType>> = {
  advantages: advantageOptionsSchema,
  gpgAdvantages: gpgOptionsSchema,
  opoAdvantages: opoOptionsSchema,
  reinforcePlusPlusBaselineAdvantages: reinforcePlusPlusBaselineOptionsSchema,
  gdpoAdvantages: gdpoOptionsSchema,
  reinforcePlusPlusAdvantages: reinforcePlusPlusOptionsSchema,
  gaeAdvantages: gaeOptionsSchema,
  optimalTokenBaselineAdvantages: optimalTokenBaselineOptionsSchema,
  tirOptimalTokenBaselineAdvantages: optimalTokenBaselineOptionsSchema,
};

/** An estimator option → the AlgoConfig key that gave it (for errors). */
const ALGORITHM_KEY_OF: Record<string, string> = {
  gamma: "gamma",
  lambda: "lam",
  rewardWeights: "gdpo_reward_weights",
  scaleByStd: "norm_adv_by_std_in_grpo",
};

// ---------------------------------------------------------------------------------------------------------------
// RolloutCorrectionConfig → rolloutCorrection's options

/** A decimal number as Python's float() reads it in verl's threshold strings. */
const DECIMAL = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;

function parseNumber(text: string, path: string, whole: string): number {
  const value = DECIMAL.test(text) ? Number(text) : NaN;
  if (!Number.isFinite(value)) throw invalid(path, `"${whole}" is not a number or "lower_upper" pair of numbers`);
  return value;
}

/** One threshold spec: x → { upper: x }; "lo_up" → { lower: lo, upper: up } (verl's IcePop / k1 bounds). */
function thresholdOf(spec: string | number, path: string): { lower?: number; upper: number } {
  if (typeof spec === "number") return { upper: spec };
  const text = spec.trim();
  if (!text.includes("_")) return { upper: parseNumber(text, path, spec) };
  const parts = text.split("_");
  if (parts.length !== 2) throw invalid(path, `"${spec}" is not a number or "lower_upper" pair of numbers`);
  return { lower: parseNumber(parts[0]!.trim(), path, spec), upper: parseNumber(parts[1]!.trim(), path, spec) };
}

/** rollout_is → the weights' level. */
export const VERL_ROLLOUT_IS_LEVELS: Table<"token" | "sequence"> = { token: "token", sequence: "sequence" };

/** RolloutCorrectionConfig's fields, with their defaults filled in. */
type ResolvedRolloutCorrection = z.output<typeof rolloutCorrectionSchema>;

/**
 * RolloutCorrectionConfig (verl 1dda039, `rollout_corr_helper.py`'s reading of it) → rolloutCorrection's options:
 * rollout_is and rollout_is_threshold ("x" or "lo_up" for IcePop) → `weights`; rollout_rs (a comma list) and
 * rollout_rs_threshold (one spec per option, or one for all) → `rejection`; loss_type → `lossType`.
 */
function correctionOptions(rc: ResolvedRolloutCorrection, path: string): RolloutCorrectionOptionsInput {
  let weights: RolloutWeightsOptionsInput | null = null;
  if (rc.rollout_is !== null && rc.rollout_is_threshold !== null) {
    const level = lookup(VERL_ROLLOUT_IS_LEVELS, rc.rollout_is, `${path}.rollout_is`);
    const bounds = thresholdOf(rc.rollout_is_threshold, `${path}.rollout_is_threshold`);
    weights = { level, ...bounds, batchNormalize: rc.rollout_is_batch_normalize };
  }
  const rejection: RolloutRejectionCriterionInput[] = [];
  if (rc.rollout_rs !== null) {
    const names = rc.rollout_rs
      .split(",")
      .map((o) => o.trim())
      .filter((o) => o.length > 0);
    if (names.length === 0) throw invalid(`${path}.rollout_rs`, `"${rc.rollout_rs}" names no rejection option`);
    if (rc.rollout_rs_threshold === null)
      throw invalid(`${path}.rollout_rs_threshold`, `is null; rollout_rs "${rc.rollout_rs}" needs its thresholds`);
    const specs =
      typeof rc.rollout_rs_threshold === "number"
        ? [rc.rollout_rs_threshold]
        : rc.rollout_rs_threshold
            .split(",")
            .map((s) => s.trim())
            .filter((s) => s.length > 0);
    if (specs.length !== 1 && specs.length !== names.length)
      throw invalid(
        `${path}.rollout_rs_threshold`,
        `has ${specs.length} thresholds for ${names.length} rollout_rs options (give one for all, or one each)`,
      );
    names.forEach((statistic, k) => {
      const spec = specs.length === 1 ? specs[0]! : specs[k]!;
      rejection.push({
        statistic,
        ...thresholdOf(spec, `${path}.rollout_rs_threshold`),
      } as RolloutRejectionCriterionInput);
    });
  }
  const lossType = lookup({ ppo_clip: "ppo_clip", reinforce: "reinforce" } as const, rc.loss_type, `${path}.loss_type`);
  const options: RolloutCorrectionOptionsInput = { weights, rejection, lossType };
  checkTranslated(rolloutCorrectionOptionsSchema, options, (p) => {
    const [field, index, sub] = p;
    if (field === "weights")
      return `${path}.${sub === "level" || index === "level" ? "rollout_is" : "rollout_is_threshold"}`;
    if (field === "rejection") return `${path}.${sub === "statistic" ? "rollout_rs" : "rollout_rs_threshold"}`;
    return `${path}.loss_type`;
  });
  return options;
}
