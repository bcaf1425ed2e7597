/**
 * verl's actor and algorithm configuration, as verl users write it (the YAML's `actor_rollout_ref.actor` and
 * `algorithm` sections), translated into grpo-roc's options.
 *
 * Field names and defaults: `ActorConfig` and `PolicyLossConfig` (`verl/workers/config/actor.py`), `AlgoConfig` and
 * `RolloutCorrectionConfig` (`verl/trainer/config/algorithm.py`), `verl/trainer/config/actor/actor.yaml`, and the code
 * that reads them (`verl/trainer/ppo/core_algos.py`: the policy losses, `agg_loss`, `kl_penalty`, the advantage
 * estimators; `dp_actor.update_policy`'s loss assembly), at the golden commits b178a3cd (volcengine/verl) and 1dda039b
 * (verl-project/verl), whose cases carry a real ActorConfig (test/golden/README.md). The aggregation follows b178a3c:
 * at 1dda039 `seq-mean-token-sum-norm` also divides by the batch's sequences (golden README, "Version traps" 1).
 */
import * as z from "zod/mini";
import { advantagePresets } from "../advantages/options.js";
import type { AdvantageOptionsInput } from "../advantages/options.js";
import { invalid, parseOrThrow } from "../errors.js";
import {
  type Aggregation,
  type KlKind,
  lossPresets,
  type NormalizerInput,
  policyLossOptionsSchema,
  type PolicyLossOptionsInput,
} from "../loss/options.js";
import {
  acceptedUnused,
  checkTranslated,
  finite,
  lookup,
  NOT_YET,
  nonnegative,
  positiveInt,
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
 * AlgoConfig's keys that change nothing grpo-roc computes: Hydra's `_target_`, the in-reward KL controller (read
 * only with use_kl_in_reward, which is refused), preference-feedback PPO's settings (read only with use_pf_ppo, which
 * is refused), and DAPO's group filter (`filter_groups` / `dynamic_filter`: which groups make up a batch, the
 * trainer's business; grpo-roc's pipeline has its own, reported, drop of all-equal groups).
 */
export const VERL_ALGORITHM_UNUSED_KEYS = ["_target_", "kl_ctrl", "pf_ppo", "filter_groups", "dynamic_filter"] as const;

const nullableFinite = z.nullable(finite);
const threshold = z.nullable(z.union([finite, z.string()]));

/** RolloutCorrectionConfig's fields (1dda039), with the dataclass defaults (the YAML's rollout_is is null). */
const rolloutCorrectionShape = {
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
};
const rolloutCorrectionSchema = z.strictObject(rolloutCorrectionShape);

/** PolicyLossConfig's fields, with verl's defaults. */
const policyLossShape = {
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
};

/** global_batch_info: the whole batch's counts, which verl's engine fills in (a single rank: `{}`). */
const globalBatchInfoShape = {
  /** Data-parallel ranks: multiplies the loss. */
  dp_size: z.optional(z.nullable(positiveInt)),
  /** Valid tokens of the global batch (token-mean's divisor). */
  batch_num_tokens: z.optional(z.nullable(z.int().check(z.nonnegative()))),
  /** Sequences of the global batch (the seq-mean-* modes' divisor). */
  global_batch_size: z.optional(z.nullable(z.int().check(z.nonnegative()))),
  /** seq-mean-token-sum-norm's divisor (actor.loss_scale_factor). */
  loss_scale_factor: z.optional(z.nullable(z.number().check(z.positive()))),
};

/** ActorConfig's fields that change the math, with verl's defaults. */
const actorShape = {
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
};

/** AlgoConfig's fields that change the math, with verl's defaults. */
const algorithmShape = {
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
  /** The in-reward KL estimator; default "kl". */
  kl_penalty: z._default(z.string(), "kl"),
  /** Preference-feedback PPO (reweights the batch); default False. */
  use_pf_ppo: z._default(z.boolean(), false),
  /** Decoupled rollout correction (importance weights and rejection); YAML default null. */
  rollout_correction: z._default(z.nullable(rolloutCorrectionSchema), null),
  /** GDPO's reward keys (read by adv_estimator "gdpo" only). */
  gdpo_reward_keys: z.optional(z.nullable(z.array(z.string()))),
  /** GDPO's reward weights. */
  gdpo_reward_weights: z.optional(z.nullable(z.array(finite))),
  ...acceptedUnused(VERL_ALGORITHM_UNUSED_KEYS),
};

const verlConfigShape = {
  /** `actor_rollout_ref.actor`: ActorConfig. */
  actor: z.optional(z.strictObject(actorShape)),
  /** `algorithm`: AlgoConfig. */
  algorithm: z.optional(z.strictObject(algorithmShape)),
};

/** Checks a verl configuration's actor and algorithm sections as verl names their fields. */
export const verlConfigSchema: z.ZodMiniObject<typeof verlConfigShape, z.core.$strict> =
  z.strictObject(verlConfigShape);

/** verl's actor (ActorConfig) and algorithm (AlgoConfig) sections, every field optional (verl's defaults). */
export type VerlConfig = z.input<typeof verlConfigSchema>;
/** verl's ActorConfig with its defaults filled in. */
type ResolvedVerlActor = NonNullable<z.output<typeof verlConfigSchema>["actor"]>;
/** verl's AlgoConfig with its defaults filled in. */
type ResolvedVerlAlgorithm = NonNullable<z.output<typeof verlConfigSchema>["algorithm"]>;

/** What fromVerlConfig returns: the options of the sections given, undefined for a section left out. */
export interface VerlTranslation {
  /** `policyLoss`'s options, from `actor`; undefined without it. */
  readonly loss: PolicyLossOptionsInput | undefined;
  /** `advantages`' options, from `algorithm`; undefined without it. */
  readonly advantages: AdvantageOptionsInput | undefined;
}

/** ε_low and ε_high: clip_ratio_low/high, or clip_ratio where they are None. */
function clipRange(a: ResolvedVerlActor): { clipLow: number; clipHigh: number } {
  return { clipLow: a.clip_ratio_low ?? a.clip_ratio, clipHigh: a.clip_ratio_high ?? a.clip_ratio };
}

/** lossPresets.verl without its aggregation: the modes below take loss_agg_mode, or say which one they force. */
const { aggregation: _verlAggregation, ...verlBase } = lossPresets.verl;

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
  bypass_mode: (a) => {
    const path = "config.actor.policy_loss.rollout_correction";
    const rc = parseOrThrow(rolloutCorrectionSchema, a.policy_loss.rollout_correction ?? {}, path);
    if (rc.rollout_is !== null) throw unsupported(`${path}.rollout_is`, `"${rc.rollout_is}" (rollout correction)`);
    if (rc.rollout_rs !== null) throw unsupported(`${path}.rollout_rs`, `"${rc.rollout_rs}" (rejection sampling)`);
    return lookup(VERL_BYPASS_LOSS_TYPES, rc.loss_type, `${path}.loss_type`)(a);
  },
  geo_mean: NOT_YET,
  kl_cov: NOT_YET,
  clip_cov: NOT_YET,
  dppo_tv: NOT_YET,
  dppo_kl: NOT_YET,
  dro: NOT_YET,
};

/** loss_agg_mode → aggregation (agg_loss at b178a3c). */
export const VERL_AGGREGATIONS: Table<Aggregation> = {
  "token-mean": "token-mean",
  "seq-mean-token-sum": "seq-mean-token-sum",
  "seq-mean-token-mean": "seq-mean-token-mean",
  "seq-mean-token-sum-norm": "seq-mean-token-sum-norm",
  "token-sum": NOT_YET,
};

/** kl_loss_type → the KL estimator (kl_penalty). "full" raises in verl itself; the "+" kinds work from 1dda039 on. */
export const VERL_KL_KINDS: Table<KlKind> = {
  kl: "k1",
  k1: "k1",
  abs: "abs",
  mse: "k2",
  k2: "k2",
  low_var_kl: "k3",
  k3: "k3",
  "kl+": NOT_YET,
  "k1+": NOT_YET,
  "abs+": NOT_YET,
  "mse+": NOT_YET,
  "k2+": NOT_YET,
  "low_var_kl+": NOT_YET,
  "k3+": NOT_YET,
  full: NOT_YET,
};

/** adv_estimator → the advantage options (core_algos.py's AdvantageEstimator). */
export const VERL_ESTIMATORS: Table<(algorithm: ResolvedVerlAlgorithm) => AdvantageOptionsInput> = {
  grpo: (g) => (g.norm_adv_by_std_in_grpo ? advantagePresets.verl : advantagePresets.verlNoStd),
  rloo: () => advantagePresets.verlRloo,
  rloo_vectorized: () => advantagePresets.verlRlooVectorized,
  gae: NOT_YET,
  reinforce_plus_plus: NOT_YET,
  reinforce_plus_plus_baseline: NOT_YET,
  remax: NOT_YET,
  opo: NOT_YET,
  grpo_passk: NOT_YET,
  gpg: NOT_YET,
  grpo_vectorized: NOT_YET,
  optimal_token_baseline: NOT_YET,
  tir_optimal_token_baseline: NOT_YET,
  gdpo: NOT_YET,
};

/**
 * grpo-roc's options for verl's actor and algorithm configuration written as verl names its fields: the policy loss
 * (loss_mode, clip ratios, dual clip, loss_agg_mode and global_batch_info, KL loss, entropy bonus) from `actor`, the
 * advantages (adv_estimator, norm_adv_by_std_in_grpo) from `algorithm`.
 *
 * @param config - `{ actor, algorithm }`, each optional; omitted fields take verl's defaults.
 * @throws ValidationError at `config.actor.<key>` or `config.algorithm.<key>`: an unknown key (with the closest known
 *   one), a wrong type or a non-finite number, or a known value grpo-roc does not implement yet (loss_mode
 *   "geo_mean", adv_estimator "gae", …).
 * @example fromVerlConfig({ actor: { clip_ratio_high: 0.28 } }).loss
 *   // => { objective: "clip", clipLow: 0.2, clipHigh: 0.28, dualClip: 3, logRatioClamp: [-20, 20], … }
 */
export function fromVerlConfig(config: VerlConfig): VerlTranslation {
  const c = parseOrThrow(verlConfigSchema, config, "config");
  return {
    loss: c.actor === undefined ? undefined : actorOptions(c.actor, writtenForLaterVerl(config)),
    advantages: c.algorithm === undefined ? undefined : algorithmOptions(c.algorithm),
  };
}

/**
 * Whether the config was written for verl 1dda039 or later, as far as it shows: its PolicyLossConfig has fields that
 * b178a3c's lacks (dro_beta, rollout_correction). A config that shows neither is read as b178a3c's.
 */
function writtenForLaterVerl(config: VerlConfig): boolean {
  const policyLoss = config.actor?.policy_loss;
  return typeof policyLoss === "object" && ("dro_beta" in policyLoss || "rollout_correction" in policyLoss);
}

function actorOptions(a: ResolvedVerlActor, laterVerl: boolean): PolicyLossOptionsInput {
  const mode = lookup(VERL_LOSS_MODES, a.policy_loss.loss_mode, "config.actor.policy_loss.loss_mode")(a);
  const aggregation = lookup(VERL_AGGREGATIONS, a.loss_agg_mode, "config.actor.loss_agg_mode");
  // At 1dda039 seq-mean-token-sum-norm also divides by the batch's sequences (golden README, "Version traps" 1).
  if (aggregation === "seq-mean-token-sum-norm" && laterVerl)
    throw unsupported(
      "config.actor.loss_agg_mode",
      '"seq-mean-token-sum-norm" as verl 1dda039 and later compute it (this config has policy_loss fields of that version)',
    );
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
    normalizer: normalizer(a),
    kl: kl === null ? null : { kind: kl, coef: a.kl_loss_coef, clamp: true },
    entropyCoef: a.entropy_coeff,
  };
  checkTranslated(policyLossOptionsSchema, loss, (path) => `config.actor.${verlActorKeyOf(path, a)}`);
  return loss;
}

/** The ActorConfig key that gave a loss option (for errors): the option's path → the key. */
function verlActorKeyOf(path: readonly PropertyKey[], a: ResolvedVerlActor): string {
  const [option, sub] = path;
  switch (option) {
    case "clipLow":
      return a.clip_ratio_low === null ? "clip_ratio" : "clip_ratio_low";
    case "clipHigh":
      return a.clip_ratio_high === null ? "clip_ratio" : "clip_ratio_high";
    case "dualClip":
      return "clip_ratio_c";
    case "sapoTemperature":
      return sub === "negative" ? "tau_neg" : "tau_pos";
    case "kl":
      return sub === "coef" ? "kl_loss_coef" : "kl_loss_type";
    case "entropyCoef":
      return "entropy_coeff";
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

function algorithmOptions(g: ResolvedVerlAlgorithm): AdvantageOptionsInput {
  if (g.use_kl_in_reward) throw unsupported("config.algorithm.use_kl_in_reward", "true (a KL penalty in the rewards)");
  if (g.use_pf_ppo) throw unsupported("config.algorithm.use_pf_ppo", "true (preference-feedback PPO)");
  const rc = g.rollout_correction;
  if (rc !== null && rc.rollout_is !== null)
    throw unsupported("config.algorithm.rollout_correction.rollout_is", `"${rc.rollout_is}" (rollout correction)`);
  if (rc !== null && rc.rollout_rs !== null)
    throw unsupported("config.algorithm.rollout_correction.rollout_rs", `"${rc.rollout_rs}" (rejection sampling)`);
  if (rc?.bypass_mode) throw unsupported("config.algorithm.rollout_correction.bypass_mode", "true");
  // A copy: the caller may change it, the preset stays as it is.
  return { ...lookup(VERL_ESTIMATORS, g.adv_estimator, "config.algorithm.adv_estimator")(g) };
}
