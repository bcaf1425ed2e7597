/**
 * TRL's GRPOConfig, as TRL users write it, translated into grpo-roc's options.
 *
 * Field names and defaults: `trl/trainer/grpo_config.py` (huggingface/trl) and the code that reads them,
 * `GRPOTrainer._compute_loss` and the advantage block of `_generate_and_score_completions`
 * (`trl/trainer/grpo_trainer.py`), at f2cd57710ae345ea6428ae95363267fcf38a3dc8, the commit of the golden files
 * (test/golden/README.md). The stored grpo_config.py read for this file (006d32c) lacks the fields added since (vespo_*,
 * entropy_coef, use_adaptive_entropy, vllm_importance_sampling_clip_min/_max); those come from the golden cases'
 * hyperparameters, which are the trainer's effective configuration at f2cd577, and from TRL v1.10's published
 * GRPOConfig signature. Two defaults changed between TRL versions (use_bias_correction_kl False → True,
 * max_completion_length 256 → 512), so the translation asks for them explicitly where they matter.
 */
import * as z from "zod/mini";
import { pure } from "../pure.js";
import { type MultiRewardOptionsInput, multiRewardPresets } from "../advantages/multi-reward.js";
import { advantagePresets } from "../advantages/options.js";
import type { AdvantageOptionsInput } from "../advantages/options.js";
import {
  type EntropyMaskOptionsInput,
  entropyMaskOptionsSchema,
  type OffPolicyMaskOptionsInput,
  type VllmImportanceSamplingMode,
  type VllmImportanceSamplingOptionsInput,
  vllmImportanceSamplingOptionsSchema,
} from "../correction/trl.js";
import { invalid, parseOrThrow } from "../errors.js";
import { type AdaptiveEntropyOptionsInput, adaptiveEntropyOptionsSchema } from "../loss/adaptive-entropy.js";
import { type Aggregation, policyLossOptionsSchema, type PolicyLossOptionsInput } from "../loss/options.js";
import {
  acceptedUnused,
  checkTranslated,
  finite,
  lookup,
  NOT_YET,
  positiveInt,
  requireDefault,
  type Table,
  unsupported,
} from "./shared.js";

/**
 * GRPOConfig's keys that change nothing grpo-roc computes, accepted and not read: TrainingArguments' optimiser,
 * schedule, precision, logging, saving, hub, data-loader and distributed settings; GRPOConfig's model loading,
 * generation sampling (top_p, top_k, min_p, repetition_penalty: they shape which completions exist, not the loss of
 * the given ones), vLLM server and colocation settings, reference-model syncing (TR-DPO changes π_ref's weights, whose
 * log-probs the caller passes), tool-calling limits and completion logging. `num_iterations`, `steps_per_generation`
 * and `generation_batch_size` decide how often old log-probs differ from the policy's and how many tokens
 * `num_items_in_batch` counts: both are inputs of the loss (`oldLogp`, `normalizer.tokens`), not options.
 */
export const TRL_UNUSED_KEYS = [
  // transformers.TrainingArguments
  "output_dir",
  "overwrite_output_dir",
  "per_device_train_batch_size",
  "per_device_eval_batch_size",
  "num_train_epochs",
  "max_steps",
  "learning_rate",
  "lr_scheduler_type",
  "lr_scheduler_kwargs",
  "warmup_steps",
  "warmup_ratio",
  "optim",
  "optim_args",
  "weight_decay",
  "adam_beta1",
  "adam_beta2",
  "adam_epsilon",
  "optim_target_modules",
  "average_tokens_across_devices",
  "max_grad_norm",
  "label_smoothing_factor",
  "bf16",
  "fp16",
  "bf16_full_eval",
  "fp16_full_eval",
  "tf32",
  "gradient_checkpointing",
  "gradient_checkpointing_kwargs",
  "torch_compile",
  "torch_compile_backend",
  "torch_compile_mode",
  "use_liger_kernel",
  "liger_kernel_config",
  "use_cache",
  "neftune_noise_alpha",
  "torch_empty_cache_steps",
  "auto_find_batch_size",
  "logging_dir",
  "logging_strategy",
  "logging_steps",
  "logging_first_step",
  "log_on_each_node",
  "logging_nan_inf_filter",
  "include_num_input_tokens_seen",
  "log_level",
  "log_level_replica",
  "disable_tqdm",
  "report_to",
  "run_name",
  "project",
  "trackio_space_id",
  "trackio_bucket_id",
  "trackio_static_space_id",
  "eval_strategy",
  "eval_steps",
  "eval_delay",
  "prediction_loss_only",
  "eval_on_start",
  "eval_do_concat_batches",
  "eval_use_gather_object",
  "eval_accumulation_steps",
  "include_for_metrics",
  "batch_eval_metrics",
  "save_only_model",
  "save_strategy",
  "save_steps",
  "save_on_each_node",
  "save_total_limit",
  "enable_jit_checkpoint",
  "push_to_hub",
  "hub_token",
  "hub_private_repo",
  "hub_model_id",
  "hub_strategy",
  "hub_always_push",
  "hub_revision",
  "load_best_model_at_end",
  "metric_for_best_model",
  "greater_is_better",
  "ignore_data_skip",
  "restore_callback_states_from_checkpoint",
  "full_determinism",
  "seed",
  "data_seed",
  "use_cpu",
  "accelerator_config",
  "parallelism_config",
  "dataloader_drop_last",
  "dataloader_num_workers",
  "dataloader_pin_memory",
  "dataloader_persistent_workers",
  "dataloader_prefetch_factor",
  "dataloader_multiprocessing_context",
  "dataloader_in_order",
  "remove_unused_columns",
  "label_names",
  "train_sampling_strategy",
  "length_column_name",
  "ddp_find_unused_parameters",
  "ddp_bucket_cap_mb",
  "ddp_broadcast_buffers",
  "ddp_static_graph",
  "ddp_backend",
  "ddp_timeout",
  "fsdp",
  "fsdp_config",
  "deepspeed",
  "debug",
  "skip_memory_metrics",
  "do_train",
  "do_eval",
  "do_predict",
  "resume_from_checkpoint",
  "local_rank",
  // GRPOConfig: model and reference model, data
  "model_init_kwargs",
  "trust_remote_code",
  "router_aux_loss_coef",
  "disable_dropout",
  "cast_lm_head_to_fp32",
  "num_generations_eval",
  "ds3_gather_for_generation",
  "shuffle_dataset",
  "pad_to_multiple_of",
  "max_prompt_length",
  // GRPOConfig: generation
  "generation_batch_size",
  "steps_per_generation",
  "top_p",
  "top_k",
  "min_p",
  "generation_kwargs",
  "chat_template_kwargs",
  "repetition_penalty",
  "cache_implementation",
  "use_transformers_paged",
  "use_transformers_continuous_batching",
  "transformers_continuous_batching_config",
  "max_tool_calling_iterations",
  // GRPOConfig: vLLM
  "vllm_mode",
  "vllm_model_impl",
  "vllm_enable_sleep_mode",
  "vllm_structured_outputs_regex",
  "vllm_server_base_url",
  "vllm_server_host",
  "vllm_server_port",
  "vllm_server_timeout",
  "vllm_group_port",
  "vllm_gpu_memory_utilization",
  "vllm_max_model_length",
  "vllm_tensor_parallel_size",
  // GRPOConfig: training loop and reference model
  "num_iterations",
  "sync_ref_model",
  "ref_model_mixup_alpha",
  "ref_model_sync_steps",
  // GRPOConfig: logging
  "log_completions",
  "log_multimodal",
  "num_completions_to_print",
  "log_unique_prompts",
  "log_completions_hub_repo",
] as const;

const nullableFinite = /* @__PURE__ */ z.nullable(finite);

/** The GRPOConfig keys that change the math, with TRL's defaults. */
const trlMathShape = /* @__PURE__ */ pure(() => ({
  /** `loss_type`, default "dapo": the objective and the aggregation (TRL_LOSS_TYPES). */
  loss_type: z._default(z.string(), "dapo"),
  /** ε: the ratio is clipped to [1 − epsilon, 1 + epsilon_high]; default 0.2. */
  epsilon: z._default(finite, 0.2),
  /** ε_high, default None (= epsilon); with loss_type "cispo", the ratio cap itself (ScaleRL: 5.0). */
  epsilon_high: z._default(nullableFinite, null),
  /** INTELLECT-2's two-sided clip: cap the unclipped ratio at delta; None (default) disables it. */
  delta: z._default(nullableFinite, null),
  /** The KL coefficient of the k3 estimator (unclamped); 0 (default) for none. */
  beta: z._default(finite, 0),
  /** "token" (default) or "sequence" (GSPO) importance ratios. */
  importance_sampling_level: z._default(z.string(), "token"),
  /** dr_grpo's divisor (with the number of rows); default 256 at f2cd577 (512 in TRL v1.10). */
  max_completion_length: z._default(z.nullable(positiveInt), 256),
  /** TrainingArguments' gradient_accumulation_steps: grpo, bnpo and dr_grpo divide by it; default 1. */
  gradient_accumulation_steps: z._default(positiveInt, 1),
  /** Keep only the top-q entropy tokens in the loss; 1.0 (default) keeps all. */
  top_entropy_quantile: z._default(finite, 1),
  /** DeepSeek-V3.2's off-policy sequence mask; None (default) disables it. */
  off_policy_mask_threshold: z._default(nullableFinite, null),
  /** Multiply the KL by the (not detached) importance ratio; default False at f2cd577 (True in TRL v1.10). */
  use_bias_correction_kl: z._default(z.boolean(), false),
  /** SAPO's gate temperature for positive advantages; default 1.0. */
  sapo_temperature_pos: z._default(finite, 1),
  /** SAPO's gate temperature for non-positive advantages; default 1.05. */
  sapo_temperature_neg: z._default(finite, 1.05),
  /** VESPO's k for A ≥ 0; default 2.0 (read by loss_type "vespo" only). */
  vespo_k_pos: z._default(finite, 2),
  /** VESPO's λ for A ≥ 0; default 3.0. */
  vespo_lambda_pos: z._default(finite, 3),
  /** VESPO's k for A < 0; default 3.0. */
  vespo_k_neg: z._default(finite, 3),
  /** VESPO's λ for A < 0; default 2.0. */
  vespo_lambda_neg: z._default(finite, 2),
  /** The entropy bonus's coefficient (loss −= coef · H); default 0. */
  entropy_coef: z._default(finite, 0),
  /** The adaptive entropy coefficient (`adaptiveEntropyCoefficient`); default False. */
  use_adaptive_entropy: z._default(z.boolean(), false),
  /** Adaptive entropy: the coefficient's lower bound (read only when use_adaptive_entropy). */
  entropy_coef_min: z._default(finite, 0),
  /** Adaptive entropy: the coefficient's upper bound. */
  entropy_coef_max: z._default(finite, 1),
  /** Adaptive entropy: the step per optimiser step. */
  entropy_coef_delta: z._default(finite, 0.005),
  /** Adaptive entropy: the target entropy in nats. */
  entropy_target: z._default(finite, 0.2),
  /** Logits are divided by it before the log-softmax (returned as `temperature`); default 1.0. */
  temperature: z._default(z.number().check(z.positive()), 1),
  /**
   * Completions per prompt: contiguous groups of this size; default 8. TRL's __post_init__ requires ≥ 2; 1 is
   * translated as its advantage code computes it (A = 0).
   */
  num_generations: z._default(positiveInt, 8),
  /** "group" (default) / True, "batch", "none" / False; "mean" (MaxRL) is refused (TRL_SCALE_REWARDS). */
  scale_rewards: z._default(z.union([z.string(), z.boolean()]), "group"),
  /** "sum_then_normalize" (default) or "normalize_then_sum" (GDPO). */
  multi_objective_aggregation: z._default(z.string(), "sum_then_normalize"),
  /** One weight per reward function; None (default): all 1. */
  reward_weights: z._default(z.nullable(z.array(finite)), null),
  /** Drop truncated completions from the loss; default False. */
  mask_truncated_completions: z._default(z.boolean(), false),
  /** Generate with vLLM; default False. vLLM importance sampling is active only with it. */
  use_vllm: z._default(z.boolean(), false),
  /** Correct the vLLM/trainer log-prob mismatch by importance sampling; default True (needs use_vllm). */
  vllm_importance_sampling_correction: z._default(z.boolean(), true),
  /** token_truncate, token_mask, sequence_truncate or sequence_mask (default). */
  vllm_importance_sampling_mode: z._default(z.string(), "sequence_mask"),
  /** The ratio's upper bound; default 3.0. */
  vllm_importance_sampling_clip_max: z._default(nullableFinite, 3),
  /** The ratio's lower bound; default None. */
  vllm_importance_sampling_clip_min: z._default(nullableFinite, null),
  /** The cap's older name (one bound, C); default None. */
  vllm_importance_sampling_cap: z._default(nullableFinite, null),
}));

/** trlConfigSchema's fields: those that change the math, and those accepted and not read. */
const trlShape = /* @__PURE__ */ pure(() => ({ ...trlMathShape, ...acceptedUnused(TRL_UNUSED_KEYS) }));

/** Checks a GRPOConfig written as TRL names its fields; unknown keys are errors naming the closest known one. */
export const trlConfigSchema: z.ZodMiniObject<typeof trlShape, z.core.$strict> = /* @__PURE__ */ z.strictObject(
  trlShape,
);

/** The GRPOConfig fields grpo-roc reads, as TRL names them, every one optional (TRL's defaults). */
export type TrlConfigFields = z.input<z.ZodMiniObject<typeof trlMathShape, z.core.$strict>>;
/** A key of TRL_UNUSED_KEYS: accepted, and read by nobody. */
export type TrlUnusedKey = (typeof TRL_UNUSED_KEYS)[number];
/** The GRPOConfig and TrainingArguments fields that change nothing grpo-roc computes (TRL_UNUSED_KEYS), any value. */
export type TrlUnusedFields = { readonly [K in TrlUnusedKey]?: unknown };
/** A GRPOConfig as TRL names its fields: those grpo-roc reads, and those it accepts and does not read. */
export type TrlConfig = TrlConfigFields & TrlUnusedFields;
/** A GRPOConfig with TRL's defaults filled in. */
type ResolvedTrlConfig = z.output<typeof trlConfigSchema>;

/** What fromTrlConfig returns: grpo-roc's options for TRL's loss and advantages, and what the trainer must do. */
export interface TrlTranslation {
  /**
   * `policyLoss`'s options. Add `normalizer.tokens` (TRL's num_items_in_batch) for dapo, cispo and vespo when
   * accumulating. With `importanceSampling`, `entropyMask` or `offPolicyMask`, pass their weights as `policyLoss`'s
   * `importanceWeights` (`multiplyWeights` of the ones present) over the unchanged completion mask, as TRL multiplies
   * them into the per-token loss.
   */
  readonly loss: PolicyLossOptionsInput;
  /**
   * `advantages`' options for the combined reward (multi_objective_aggregation "sum_then_normalize": the caller sums
   * the weighted rewards); undefined for "normalize_then_sum", which only `multiRewardAdvantages` computes.
   */
  readonly advantages: AdvantageOptionsInput | undefined;
  /**
   * `multiRewardAdvantages(rewardsPerFunc, groupIds, multiReward)`'s options: TRL's whole advantage block from the
   * rewards of every reward function (NaN for None), reward_weights, scale_rewards and multi_objective_aggregation.
   */
  readonly multiReward: MultiRewardOptionsInput;
  /** num_generations: TRL's groups are contiguous blocks of this many completions. */
  readonly groupSize: number;
  /**
   * reward_weights, or undefined (all 1): TRL's reward is nansum_k(w_k · r_k), NaN where every function returned
   * None; the caller combines the rewards, then calls `advantages` (or lets `multiRewardAdvantages` do both).
   */
  readonly rewardWeights: readonly number[] | undefined;
  /** temperature: the logits are divided by it before log-probs and entropy (`tokenLogProbs`' `temperature`). */
  readonly temperature: number;
  /**
   * `vllmImportanceSampling({ oldLogp, samplingLogp, mask }, importanceSampling)`'s options when TRL corrects the
   * vLLM/trainer mismatch (use_vllm and vllm_importance_sampling_correction); undefined otherwise. Its
   * `importanceWeights` multiply the policy term (not β·KL), with the completion mask unchanged.
   */
  readonly importanceSampling: VllmImportanceSamplingOptionsInput | undefined;
  /**
   * `entropyMask({ entropy, mask }, entropyMask)`'s options when top_entropy_quantile < 1 (TRL's
   * get_high_entropy_mask); undefined for 1 (no mask).
   */
  readonly entropyMask: EntropyMaskOptionsInput | undefined;
  /**
   * `offPolicyMask({ logp, oldLogp, advantages, mask }, offPolicyMask)`'s options when off_policy_mask_threshold is
   * set (TRL's get_off_policy_mask; `oldLogp` = vLLM's sampling log-probs when TRL has them, else π_old); undefined
   * for None.
   */
  readonly offPolicyMask: OffPolicyMaskOptionsInput | undefined;
  /**
   * With use_adaptive_entropy, the controller's options (entropy_coef_min, entropy_coef_max, entropy_coef_delta,
   * entropy_target) for `appliedEntropyCoefficient` and `adaptiveEntropyCoefficient`; undefined without it. The
   * controller starts from entropy_coef (`loss.entropyCoef`); before each optimizer step set `loss.entropyCoef` to
   * `appliedEntropyCoefficient({ coef, lastEntropy }, adaptiveEntropy)`, and after it update `{ coef, lastEntropy }`
   * with `adaptiveEntropyCoefficient({ coef, entropySum, tokens }, adaptiveEntropy)` over the step's entropies (every
   * micro-batch and process). TRL's starting `lastEntropy` is set in `GRPOTrainer.__init__`, which was not read:
   * the first step's gate is the caller's (appliedEntropyCoefficient).
   */
  readonly adaptiveEntropy: AdaptiveEntropyOptionsInput | undefined;
}

/** One loss_type: its objective's options, and how the policy term and the entropy bonus are aggregated. */
interface TrlLossType {
  readonly objective: (config: ResolvedTrlConfig) => PolicyLossOptionsInput;
  readonly aggregation: Aggregation;
  readonly entropyAggregation: Aggregation;
}

const clipObjective = (c: ResolvedTrlConfig): PolicyLossOptionsInput => {
  if (c.delta !== null && !(c.delta > 1))
    throw unsupported("config.delta", `${c.delta} (a cap ≤ 1 on the unclipped ratio)`);
  return { objective: "clip", clipLow: c.epsilon, clipHigh: c.epsilon_high ?? c.epsilon, delta: c.delta };
};

/**
 * TRL's loss_type → grpo-roc's objective, aggregation and entropy aggregation (`_compute_loss`): the entropy bonus is
 * divided by num_items_in_batch for dapo, cispo and vespo, by the local token count (bnpo) otherwise.
 */
export const TRL_LOSS_TYPES: Table<TrlLossType> = {
  grpo: { objective: clipObjective, aggregation: "grpo", entropyAggregation: "bnpo" },
  bnpo: { objective: clipObjective, aggregation: "bnpo", entropyAggregation: "bnpo" },
  dr_grpo: { objective: clipObjective, aggregation: "dr_grpo", entropyAggregation: "bnpo" },
  dapo: { objective: clipObjective, aggregation: "dapo", entropyAggregation: "dapo" },
  // TRL: −clamp(ρ, max=epsilon_high).detach()·A·logp. epsilon_high is the cap itself and there is no lower bound:
  // grpo-roc's clamp(ρ, 1 − clipLow, 1 + clipHigh) with clipLow 1 (a bound of 0, which ρ = e^x never crosses).
  cispo: {
    objective: (c) => {
      const cap = c.epsilon_high ?? c.epsilon;
      const clipHigh = cap - 1;
      if (!(clipHigh >= 0) || 1 + clipHigh !== cap)
        throw unsupported(
          c.epsilon_high === null ? "config.epsilon" : "config.epsilon_high",
          `a CISPO ratio cap of ${cap} (grpo-roc needs a cap ≥ 1, exact as 1 + (cap − 1); ScaleRL uses 5.0)`,
        );
      return { objective: "cispo", clipLow: 1, clipHigh };
    },
    aggregation: "dapo",
    entropyAggregation: "dapo",
  },
  // TRL builds the per-token temperatures with torch.where(A > 0, pos, neg) from Python floats: a float32 tensor, so
  // 1.05 is 1.0499999523162842 there (golden README, "float32 trap").
  sapo: {
    objective: (c) => ({
      objective: "sapo",
      sapoTemperature: {
        positive: Math.fround(c.sapo_temperature_pos),
        negative: Math.fround(c.sapo_temperature_neg),
      },
    }),
    aggregation: "grpo",
    entropyAggregation: "bnpo",
  },
  // TRL's luspo shares the clip branch (ε, ε_high, δ) and aggregates (ptl · L_b).mean() / gas: grpo-roc's "luspo"
  // objective scales each row by its length and computes the sequence ratio itself, under the "grpo" aggregation.
  luspo: {
    objective: (c) => ({ ...clipObjective(c), objective: "luspo" }),
    aggregation: "grpo",
    entropyAggregation: "bnpo",
  },
  // get_gamma_weights builds k and λ with torch.where from Python floats (float32, as SAPO's temperatures) and
  // clamps λ to ≥ 1e-4 in float32; with vLLM's correction on, the ratio enters φ instead of multiplying the loss.
  vespo: {
    objective: (c) => ({
      objective: "vespo",
      vespo: {
        kPositive: Math.fround(c.vespo_k_pos),
        lambdaPositive: Math.max(Math.fround(c.vespo_lambda_pos), Math.fround(1e-4)),
        kNegative: Math.fround(c.vespo_k_neg),
        lambdaNegative: Math.max(Math.fround(c.vespo_lambda_neg), Math.fround(1e-4)),
        importanceWeights: c.use_vllm && c.vllm_importance_sampling_correction ? "phi" : "loss",
      },
    }),
    aggregation: "dapo",
    entropyAggregation: "dapo",
  },
};

/** importance_sampling_level → ratioLevel. */
export const TRL_IMPORTANCE_SAMPLING_LEVELS: Table<"token" | "sequence"> = { token: "token", sequence: "sequence" };

/** One scale_rewards value: the advantage preset, and multiRewardAdvantages' scaleRewards. */
interface TrlScaleRewards {
  /** `advantages`' options for the summed reward (sum_then_normalize). */
  readonly advantages: AdvantageOptionsInput;
  /** `multiRewardAdvantages`' scaleRewards. */
  readonly scaleRewards: "group" | "batch" | "none";
}

/**
 * scale_rewards → the advantage preset (TRL's __post_init__ maps True/False to "group"/"none"). "mean" (MaxRL,
 * Tajwar et al. 2026: (r − mean)/mean by the group) is refused: the GRPOTrainer code that computes it was not in the
 * sources read for grpo-roc (only TRL's `examples/scripts/maxrl.py`, which sets it, and an experimental MaxRLConfig's
 * docstring, `(reward − mean_reward)/(mean_reward + epsilon)`, without the ε or the handling of a zero or None
 * mean), so it is not guessed.
 */
export const TRL_SCALE_REWARDS: Table<TrlScaleRewards> = /* @__PURE__ */ pure(() => ({
  group: { advantages: advantagePresets.trl, scaleRewards: "group" },
  true: { advantages: advantagePresets.trl, scaleRewards: "group" },
  batch: { advantages: advantagePresets.trlBatch, scaleRewards: "batch" },
  none: { advantages: advantagePresets.trlNoStd, scaleRewards: "none" },
  false: { advantages: advantagePresets.trlNoStd, scaleRewards: "none" },
  mean: NOT_YET,
}));

/** Why scale_rewards "mean" is refused (TRL_SCALE_REWARDS). */
const SCALE_REWARDS_MEAN =
  '"mean" (MaxRL: TRL divides by the group mean reward, but the GRPOTrainer code that does it, its ε and its ' +
  "handling of a zero mean, was not in the sources read for grpo-roc; scale it yourself from `trlNoStd`'s r − mean)";

/**
 * multi_objective_aggregation → multiRewardAdvantages' preset; sum_then_normalize is also `advantages` of the summed
 * rewards, normalize_then_sum (GDPO-style, scale_rewards ignored) only multiRewardAdvantages.
 */
export const TRL_MULTI_OBJECTIVE: Table<MultiRewardOptionsInput> = /* @__PURE__ */ pure(() => ({
  sum_then_normalize: multiRewardPresets.trl,
  normalize_then_sum: multiRewardPresets.trlNormalizeThenSum,
}));

/** vllm_importance_sampling_mode → vllmImportanceSampling's mode (TRL f2cd577's four). */
export const TRL_IMPORTANCE_SAMPLING_MODES: Table<VllmImportanceSamplingMode> = {
  token_truncate: "token_truncate",
  token_mask: "token_mask",
  sequence_truncate: "sequence_truncate",
  sequence_mask: "sequence_mask",
};

/**
 * grpo-roc's options for a TRL GRPOConfig written as TRL names its fields: the loss (objective, clip, aggregation
 * and its normaliser's max_completion_length and gradient_accumulation_steps, KL, entropy bonus), the advantages
 * (scale_rewards), the group size, reward weights and temperature.
 *
 * @param config - GRPOConfig's fields (snake_case, as in Python); omitted fields take TRL's defaults.
 * @throws ValidationError at `config.<key>`: an unknown key (with the closest known one), a wrong type or a non-finite
 *   number, a value grpo-roc's options refuse (reported at the TRL key that gave it), or a known value grpo-roc does
 *   not implement yet (scale_rewards "mean", mask_truncated_completions, …).
 * @example fromTrlConfig({ loss_type: "cispo", epsilon_high: 5 }).loss
 *   // => { objective: "cispo", clipLow: 1, clipHigh: 4, aggregation: "dapo", entropyAggregation: "dapo", … }
 */
export function fromTrlConfig(config: TrlConfig): TrlTranslation {
  const c = parseOrThrow(trlConfigSchema, config, "config");
  const given = (key: string) => typeof config === "object" && config !== null && Object.hasOwn(config, key);
  checkUnsupportedFeatures(c);

  const lossType = lookup(TRL_LOSS_TYPES, c.loss_type, "config.loss_type");
  const ratioLevel = lookup(
    TRL_IMPORTANCE_SAMPLING_LEVELS,
    c.importance_sampling_level,
    "config.importance_sampling_level",
  );
  if (ratioLevel !== "token" && (c.loss_type === "cispo" || c.loss_type === "sapo" || c.loss_type === "vespo"))
    throw unsupported("config.importance_sampling_level", `"sequence" with loss_type "${c.loss_type}"`);
  if (c.loss_type === "luspo") checkLuspo(c, ratioLevel);
  if (c.loss_type === "vespo") checkVespo(c);
  if (!(c.epsilon >= 0 && c.epsilon <= 1) && c.loss_type !== "cispo" && c.loss_type !== "sapo")
    throw invalid("config.epsilon", `is ${c.epsilon}; grpo-roc's lower clip 1 − epsilon needs 0 ≤ epsilon ≤ 1`);
  if (c.loss_type === "dr_grpo" && (c.max_completion_length === null || !given("max_completion_length")))
    throw invalid(
      "config.max_completion_length",
      "loss_type dr_grpo divides by it: give it explicitly (TRL's default changed from 256 to 512 between versions)",
    );
  if (c.beta < 0) throw unsupported("config.beta", `${c.beta} (a negative KL coefficient)`);
  if (c.beta !== 0 && !given("use_bias_correction_kl"))
    throw invalid(
      "config.use_bias_correction_kl",
      "with beta ≠ 0 it changes the KL term: give it explicitly (TRL's default changed from False to True)",
    );
  if (c.entropy_coef < 0)
    throw unsupported("config.entropy_coef", `${c.entropy_coef} (a negative entropy coefficient)`);

  const loss: PolicyLossOptionsInput = {
    dualClip: null,
    delta: null,
    logRatioClamp: null, // TRL clamps no log-ratio
    ...lossType.objective(c),
    // grpo-roc's "luspo" computes TRL's sequence ratio itself, over token-level inputs.
    ratioLevel: c.loss_type === "luspo" ? "token" : ratioLevel,
    aggregation: lossType.aggregation,
    entropyAggregation: lossType.entropyAggregation,
    normalizer: {
      ...(c.max_completion_length !== null ? { length: c.max_completion_length } : {}),
      gradientAccumulationSteps: c.gradient_accumulation_steps,
    },
    kl: c.beta === 0 ? null : { kind: "k3", coef: c.beta, clamp: false, importanceCorrected: c.use_bias_correction_kl },
    entropyCoef: c.entropy_coef,
  };
  checkTranslated(policyLossOptionsSchema, loss, (path) => `config.${trlKeyOf(path, c)}`);

  if (c.scale_rewards === "mean") throw unsupported("config.scale_rewards", SCALE_REWARDS_MEAN);
  const scale = lookup(TRL_SCALE_REWARDS, String(c.scale_rewards), "config.scale_rewards");
  const aggregation = lookup(TRL_MULTI_OBJECTIVE, c.multi_objective_aggregation, "config.multi_objective_aggregation");
  const multiReward: MultiRewardOptionsInput = {
    ...aggregation,
    scaleRewards: scale.scaleRewards,
    ...(c.reward_weights !== null ? { rewardWeights: c.reward_weights } : {}),
  };
  return {
    loss,
    // A copy: the caller may change it, the preset stays as it is.
    advantages: aggregation.aggregation === "normalize_then_sum" ? undefined : { ...scale.advantages },
    multiReward,
    groupSize: c.num_generations,
    rewardWeights: c.reward_weights ?? undefined,
    temperature: c.temperature,
    importanceSampling: importanceSampling(c, given),
    entropyMask: entropyMaskOptions(c),
    offPolicyMask: c.off_policy_mask_threshold === null ? undefined : { threshold: c.off_policy_mask_threshold },
    adaptiveEntropy: adaptiveEntropyOptions(c),
  };
}

/**
 * The adaptive entropy controller's options with use_adaptive_entropy (TRL then applies the bonus even when
 * entropy_coef is 0: the controller may raise it); undefined without it, when TRL reads none of these keys.
 */
function adaptiveEntropyOptions(c: ResolvedTrlConfig): AdaptiveEntropyOptionsInput | undefined {
  if (!c.use_adaptive_entropy) return undefined;
  const options: AdaptiveEntropyOptionsInput = {
    coefMin: c.entropy_coef_min,
    coefMax: c.entropy_coef_max,
    delta: c.entropy_coef_delta,
    targetEntropy: c.entropy_target,
  };
  checkTranslated(adaptiveEntropyOptionsSchema, options, ([field]) =>
    field === "coefMin"
      ? "config.entropy_coef_min"
      : field === "coefMax"
        ? "config.entropy_coef_max"
        : field === "delta"
          ? "config.entropy_coef_delta"
          : "config.entropy_target",
  );
  if (c.entropy_coef_min > c.entropy_coef_max)
    throw invalid("config.entropy_coef_max", `is ${c.entropy_coef_max}, below entropy_coef_min ${c.entropy_coef_min}`);
  return options;
}

/**
 * vllmImportanceSampling's options: active with use_vllm and vllm_importance_sampling_correction (TRL's condition).
 * vllm_importance_sampling_cap, the older name of the upper bound, is clipMax when set (it contradicts a different
 * clip_max given with it).
 */
function importanceSampling(
  c: ResolvedTrlConfig,
  given: (key: string) => boolean,
): VllmImportanceSamplingOptionsInput | undefined {
  // The mode is checked even when the correction is off: a misspelt mode is an error, not an ignored value.
  const mode = lookup(
    TRL_IMPORTANCE_SAMPLING_MODES,
    c.vllm_importance_sampling_mode,
    "config.vllm_importance_sampling_mode",
  );
  if (!(c.use_vllm && c.vllm_importance_sampling_correction)) return undefined;
  const cap = c.vllm_importance_sampling_cap;
  if (cap !== null && given("vllm_importance_sampling_clip_max") && c.vllm_importance_sampling_clip_max !== cap)
    throw invalid(
      "config.vllm_importance_sampling_cap",
      `is ${cap} but vllm_importance_sampling_clip_max is ${c.vllm_importance_sampling_clip_max}; the cap is the clip_max's older name: give one`,
    );
  const options: VllmImportanceSamplingOptionsInput = {
    mode,
    clipMin: c.vllm_importance_sampling_clip_min,
    clipMax: cap ?? c.vllm_importance_sampling_clip_max,
  };
  checkTranslated(vllmImportanceSamplingOptionsSchema, options, ([field]) =>
    field === "clipMin"
      ? "config.vllm_importance_sampling_clip_min"
      : field === "clipMax"
        ? cap !== null
          ? "config.vllm_importance_sampling_cap"
          : "config.vllm_importance_sampling_clip_max"
        : "config.vllm_importance_sampling_mode",
  );
  return options;
}

/** entropyMask's options for top_entropy_quantile < 1 (1 keeps every token: no mask). */
function entropyMaskOptions(c: ResolvedTrlConfig): EntropyMaskOptionsInput | undefined {
  if (c.top_entropy_quantile === 1) return undefined;
  const options: EntropyMaskOptionsInput = { quantile: c.top_entropy_quantile };
  checkTranslated(entropyMaskOptionsSchema, options, () => "config.top_entropy_quantile");
  return options;
}

/** The GRPOConfig key that gave a loss option (for errors): the option's path → the key. */
function trlKeyOf(path: readonly PropertyKey[], c: ResolvedTrlConfig): string {
  const [option, sub] = path;
  switch (option) {
    case "clipLow":
      return "epsilon";
    case "clipHigh":
      return c.epsilon_high === null ? "epsilon" : "epsilon_high";
    case "delta":
      return "delta";
    case "sapoTemperature":
      return sub === "negative" ? "sapo_temperature_neg" : "sapo_temperature_pos";
    case "kl":
      return "beta";
    case "entropyCoef":
      return "entropy_coef";
    case "normalizer":
      return sub === "length" ? "max_completion_length" : "gradient_accumulation_steps";
    case "ratioLevel":
      return "importance_sampling_level";
    case "vespo":
      return `vespo_${String(sub).startsWith("k") ? "k" : "lambda"}_${String(sub).endsWith("Positive") ? "pos" : "neg"}`;
    default:
      return "loss_type";
  }
}

/**
 * TRL's luspo mean `(per_token_loss · L_b).mean()` runs over every entry of per_token_loss: [B, 1] with a sequence
 * ratio, but [B, T] as soon as a [B, T] factor joins it (token-level ratios, β·KL, a token-mode vLLM ratio, the
 * entropy mask), and then over padding positions, whose log-probs are garbage. grpo-roc reads only valid positions:
 * those combinations are refused, not approximated.
 */
function checkLuspo(c: ResolvedTrlConfig, ratioLevel: "token" | "sequence"): void {
  const padding = "TRL's luspo mean then runs over the padding positions' values, which grpo-roc never reads";
  if (ratioLevel !== "sequence")
    throw unsupported("config.importance_sampling_level", `"token" with loss_type "luspo" (${padding})`);
  if (c.beta !== 0) throw unsupported("config.beta", `${c.beta} with loss_type "luspo" (β·KL is [B, T]: ${padding})`);
  if (c.top_entropy_quantile !== 1)
    throw unsupported("config.top_entropy_quantile", `${c.top_entropy_quantile} with loss_type "luspo" (${padding})`);
  if (c.use_vllm && c.vllm_importance_sampling_correction && c.vllm_importance_sampling_mode.startsWith("token"))
    throw unsupported(
      "config.vllm_importance_sampling_mode",
      `"${c.vllm_importance_sampling_mode}" with loss_type "luspo" (a [B, T] ratio: ${padding})`,
    );
}

/**
 * TRL's vespo with the vLLM correction: its __init__ allows only token_* modes, and get_gamma_weights sums log ρ over
 * all T positions, where padding holds clamp(exp(0), clip_min, clip_max): 1 (adding 0) unless the clip range
 * excludes 1. grpo-roc sums over the valid tokens, so a range that excludes 1 is refused.
 */
function checkVespo(c: ResolvedTrlConfig): void {
  if (!(c.use_vllm && c.vllm_importance_sampling_correction)) return;
  const mode = c.vllm_importance_sampling_mode;
  if (mode.startsWith("sequence"))
    throw invalid(
      "config.vllm_importance_sampling_mode",
      `is "${mode}"; TRL's loss_type "vespo" takes only token_truncate or token_mask (its ratio enters φ per token)`,
    );
  const min = c.vllm_importance_sampling_clip_min;
  const max = c.vllm_importance_sampling_clip_max ?? c.vllm_importance_sampling_cap;
  if ((min !== null && min > 1) || (max !== null && max < 1))
    throw unsupported(
      min !== null && min > 1 ? "config.vllm_importance_sampling_clip_min" : "config.vllm_importance_sampling_clip_max",
      `a clip range [${min}, ${max}] that excludes 1 with loss_type "vespo" (TRL's φ then counts the padding ` +
        "positions' clipped ratio)",
    );
}

/** The known keys whose non-default values select a TRL feature grpo-roc does not implement yet. */
function checkUnsupportedFeatures(c: ResolvedTrlConfig): void {
  if (c.top_entropy_quantile < 0 || c.top_entropy_quantile > 1)
    throw invalid("config.top_entropy_quantile", `is ${c.top_entropy_quantile}; TRL's range is [0, 1]`);
  // TRL's entropy bonus then averages over the kept tokens only, which policyLoss's entropy term (over the mask) is not.
  if (c.top_entropy_quantile !== 1 && c.entropy_coef !== 0)
    throw unsupported(
      "config.entropy_coef",
      `${c.entropy_coef} with top_entropy_quantile ${c.top_entropy_quantile} (TRL's entropy bonus over the kept tokens only)`,
    );
  // The controller's window then counts the kept tokens only, and the bonus averages over them (as above).
  if (c.use_adaptive_entropy && c.top_entropy_quantile !== 1)
    throw unsupported(
      "config.use_adaptive_entropy",
      `true with top_entropy_quantile ${c.top_entropy_quantile} (TRL's entropy bonus and controller over the kept tokens only)`,
    );
  requireDefault(
    "config.mask_truncated_completions",
    c.mask_truncated_completions,
    false,
    "masking truncated completions (zero their rows of the mask you pass instead)",
  );
}
