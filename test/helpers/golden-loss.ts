/**
 * The golden policy-loss cases as grpo-roc calls: verl's and TRL's hyperparameters (a real ActorConfig, GRPOConfig
 * fields) → PolicyLossOptionsInput through fromVerlConfig / fromTrlConfig, so that the translators run on every case;
 * their tensors → PolicyLossInputs, their metric names → ours. Shared by test/golden-{verl,trl}-loss.test.ts (the
 * reference implementation against the peers) and test/conformance/ (every backend against the same cases).
 */
import { expect } from "vitest";
import {
  fromTrlConfig,
  fromVerlConfig,
  type KlKind,
  klPenalty,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  type TrlConfig,
  type VerlConfig,
  type VerlKlName,
  type VerlVersion,
} from "../../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, type GoldenCase, type Tolerance } from "./golden.js";
import { matrix } from "./matrices.js";

// ---------------------------------------------------------------------------------------------------------------
// verl

export type VerlHyper = Record<string, unknown> & { loss_agg_mode: PolicyLossOptionsInput["aggregation"] };
type VerlActor = NonNullable<VerlConfig["actor"]>;

/**
 * The actor section of a golden case of verl_policy_loss.json: its hyperparameters are ActorConfig fields as they
 * stand. That file comes from verl b178a3c, whose seq-mean-token-sum-norm divides by the length alone (golden
 * README, "Version traps" 1): the translation follows that commit.
 */
export function verlLossOptions(actor: Record<string, unknown>): PolicyLossOptionsInput {
  return fromVerlConfig({ actor: actor as VerlActor }, { verlVersion: "b178a3c" }).loss!;
}

/**
 * Which `policy_loss` runs each golden case's function. The first batch's ActorConfig (b178a3c) lists no loss_mode
 * (the function was called directly); verl's REINFORCE is bypass mode's `loss_type: "reinforce"`, without rollout
 * correction (the case's `rollout_is_weights` are an input of the loss, as grpo-roc's importanceWeights).
 */
export const VERL_POLICY_LOSS_OF: Record<string, Record<string, unknown>> = {
  compute_policy_loss_vanilla: { loss_mode: "vanilla" },
  compute_policy_loss_gspo: { loss_mode: "gspo" },
  compute_policy_loss_sapo: { loss_mode: "sapo" },
  compute_policy_loss_cispo: { loss_mode: "cispo" },
  compute_policy_loss_gpg: { loss_mode: "gpg" },
  compute_policy_loss_reinforce: {
    loss_mode: "bypass_mode",
    rollout_correction: { rollout_is: null, rollout_rs: null, bypass_mode: true, loss_type: "reinforce" },
  },
};

/**
 * The loss modes grpo-roc ships without native kernels (src/loss/verl-objectives.ts), by golden function, and the
 * verl commit of the file that holds their cases: geo_mean, kl_cov and clip_cov come from verl_policy_loss.json
 * (b178a3c), dppo_tv, dppo_kl and dro from verl2_policy_loss.json (1dda039, whose ActorConfigs name them already).
 */
export const VERL_OBJECTIVE_LOSS_OF: Record<string, { policyLoss: Record<string, unknown>; verlVersion: VerlVersion }> =
  {
    compute_policy_loss_geo_mean: { policyLoss: { loss_mode: "geo_mean" }, verlVersion: "b178a3c" },
    compute_policy_loss_kl_cov: { policyLoss: { loss_mode: "kl_cov" }, verlVersion: "b178a3c" },
    compute_policy_loss_clip_cov: { policyLoss: { loss_mode: "clip_cov" }, verlVersion: "b178a3c" },
    compute_policy_loss_dppo_tv: { policyLoss: { loss_mode: "dppo_tv" }, verlVersion: "1dda039" },
    compute_policy_loss_dppo_kl: { policyLoss: { loss_mode: "dppo_kl" }, verlVersion: "1dda039" },
    compute_policy_loss_dro: { policyLoss: { loss_mode: "dro" }, verlVersion: "1dda039" },
  };

/** A golden case's ActorConfig with the loss_mode of its function. */
export function verlActorOf(h: Record<string, unknown>, fn: string): Record<string, unknown> {
  const policyLoss = VERL_POLICY_LOSS_OF[fn] ?? VERL_OBJECTIVE_LOSS_OF[fn]?.policyLoss;
  return { ...h, policy_loss: { ...(h.policy_loss as object | undefined), ...policyLoss } };
}

/** verl's loss modes as grpo-roc options, by golden function: fromVerlConfig of the case's ActorConfig. */
export const verlOptionsFor: Record<string, (h: VerlHyper) => PolicyLossOptionsInput> = Object.fromEntries(
  Object.keys(VERL_POLICY_LOSS_OF).map((fn) => [fn, (h: VerlHyper) => verlLossOptions(verlActorOf(h, fn))]),
);

/**
 * verl's loss modes that grpo-roc ships without native kernels (every backend runs them through the reference), as
 * grpo-roc options: fromVerlConfig of the case's ActorConfig at its file's verl commit (token-sum and 1dda039's
 * seq-mean-token-sum-norm as they are).
 */
export const verlReferenceOptionsFor: Record<string, (h: VerlHyper) => PolicyLossOptionsInput> = Object.fromEntries(
  Object.entries(VERL_OBJECTIVE_LOSS_OF).map(([fn, { verlVersion }]) => [
    fn,
    (h: VerlHyper) => fromVerlConfig({ actor: verlActorOf(h, fn) as VerlActor }, { verlVersion }).loss!,
  ]),
);

/** verl's metric names for one loss mode: kl_cov logs mean |log ρ| as actor/ppo_kl. */
export function verlMetricOf(fn: string, name: string): ((r: PolicyLossResult) => number) | undefined {
  if (fn === "compute_policy_loss_kl_cov" && name === "actor/ppo_kl") return (r) => r.metrics.meanAbsLogRatio!;
  return verlMetricFor[name];
}

/** verl's policy-loss tensors as PolicyLossInputs. */
export function verlInputsFor(c: GoldenCase): PolicyLossInputs {
  const inputs = c.inputs as Record<string, number[][]>;
  return {
    logp: matrix(inputs.log_prob!),
    oldLogp: matrix(inputs.old_log_prob!),
    advantages: matrix(inputs.advantages!),
    mask: matrix(inputs.response_mask!),
    ...(inputs.rollout_is_weights ? { importanceWeights: matrix(inputs.rollout_is_weights) } : {}),
  };
}

/** verl reports clip fractions in float32 (count/n computed in float32): compared after Math.fround. */
const float32 = (x: number) => Math.fround(x);

/** verl metric name → the grpo-roc metric it is, and how verl rounds it. */
export const verlMetricFor: Record<string, (r: PolicyLossResult) => number> = {
  "actor/pg_clipfrac": (r) => float32(r.metrics.clipFraction),
  "actor/pg_clipfrac_lower": (r) => float32(r.metrics.dualClipFraction),
  "actor/ppo_kl": (r) => r.metrics.approxKl,
};

export type VerlActorHyper = VerlHyper & { kl_loss_type: "k1"; kl_loss_coef: number; entropy_coeff: number };

/** The options of verl's actor step (dp_actor.update_policy): vanilla loss, KL loss, entropy bonus. */
export function verlActorStepOptions(h: VerlActorHyper): PolicyLossOptionsInput {
  return verlLossOptions(h);
}

/** The actor step's loss inputs, with the policy's log-probs and entropy computed from the case's logits. */
export function verlActorStepInputs(
  c: GoldenCase,
  forward: { logp: Float64Array; entropy?: Float64Array | undefined; shape: readonly [number, number] },
): PolicyLossInputs {
  const inputs = c.inputs as Record<string, number[][]>;
  return {
    logp: { data: forward.logp, shape: forward.shape },
    oldLogp: matrix(inputs.old_log_prob!),
    advantages: matrix(inputs.advantages!),
    mask: matrix(inputs.response_mask!),
    refLogp: matrix(inputs.ref_log_prob!),
    entropy: { data: forward.entropy!, shape: forward.shape },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// TRL

export interface TrlHyper {
  loss_type: "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo" | "luspo" | "vespo";
  epsilon: number;
  epsilon_high: number;
  beta: number;
  importance_sampling_level: "token" | "sequence";
  max_completion_length: number;
  delta: number | null;
  use_bias_correction_kl: boolean;
  entropy_coef: number;
  current_gradient_accumulation_steps: number;
  num_processes?: number;
  sapo_temperature_pos: number;
  sapo_temperature_neg: number;
  top_entropy_quantile: number;
  off_policy_mask_threshold: number | null;
  temperature?: number;
}

/**
 * A golden case's hyperparameters as the GRPOConfig that produced them: the trainer's runtime
 * `current_gradient_accumulation_steps` is TrainingArguments' `gradient_accumulation_steps`; `num_processes` (1) is
 * the world size, not a config field.
 */
export function trlConfigOf(h: Record<string, unknown>): TrlConfig {
  const { current_gradient_accumulation_steps: steps, num_processes: processes, ...config } = h;
  if (processes !== undefined && processes !== 1) throw new Error(`num_processes ${String(processes)} is not 1`);
  return { ...config, ...(steps !== undefined ? { gradient_accumulation_steps: steps } : {}) } as TrlConfig;
}

/** TRL's GRPOConfig as grpo-roc options (`numItems` is num_items_in_batch when the case passes one). */
export function trlOptionsFor(h: TrlHyper, numItems: number | undefined): PolicyLossOptionsInput {
  const { loss } = fromTrlConfig(trlConfigOf(h as unknown as Record<string, unknown>));
  // num_items_in_batch is an input of the step (the generation batch's tokens), not a config field.
  return numItems === undefined ? loss : { ...loss, normalizer: { ...loss.normalizer, tokens: numItems } };
}

/** TRL's tensors as PolicyLossInputs; `logp` and `entropy`, when given, replace the case's (computed from logits). */
export function trlInputsFor(c: GoldenCase, logp?: Float64Array, entropy?: Float64Array): PolicyLossInputs {
  const i = c.inputs as Record<string, number[][] | number[]>;
  const mask = i.completion_mask as number[][];
  const shape: [number, number] = [mask.length, mask[0]!.length];
  const advantages = i.advantages!;
  return {
    logp: logp !== undefined ? { data: logp, shape } : matrix(i.per_token_logps as number[][]),
    ...(i.old_per_token_logps ? { oldLogp: matrix(i.old_per_token_logps as number[][]) } : {}),
    ...(i.ref_per_token_logps ? { refLogp: matrix(i.ref_per_token_logps as number[][]) } : {}),
    advantages: Array.isArray(advantages[0]) ? matrix(advantages as number[][]) : (advantages as number[]),
    mask: matrix(mask),
    ...(entropy !== undefined
      ? { entropy: { data: entropy, shape } }
      : i.entropies
        ? { entropy: matrix(i.entropies as number[][]) }
        : {}),
  };
}

/**
 * TRL metric → our value, and whether TRL computed it in float32 (its clip metrics) rather than float64.
 * low_min / high_max (per-row extremes) have no counterpart and are not mapped.
 */
export function trlMappedMetrics(
  result: PolicyLossResult,
  h: TrlHyper,
): Record<string, { value: number; float32: boolean } | undefined> {
  const tokenLevel = h.importance_sampling_level === "token";
  const m = result.metrics;
  return {
    kl: m.kl === undefined ? undefined : { value: m.kl, float32: false },
    entropy: { value: m.entropy ?? 0, float32: false },
    // Sequence level, TRL averages its clip flags over rows rather than tokens.
    ...(tokenLevel && h.loss_type !== "cispo" && h.loss_type !== "sapo" && h.loss_type !== "vespo"
      ? {
          "clip_ratio/low_mean": { value: m.clipFractionLow, float32: true },
          "clip_ratio/high_mean": { value: m.clipFractionHigh, float32: true },
          "clip_ratio/region_mean": { value: m.clipFractionLow + m.clipFractionHigh, float32: true },
        }
      : {}),
    // TRL counts ρ > cap with A > 0.
    ...(h.loss_type === "cispo" ? { cispo_clip_ratio: { value: m.clipFractionHigh, float32: true } } : {}),
    ...(h.loss_type === "vespo" ? { "vespo/phi_seq_mean": { value: m.phiMean!, float32: false } } : {}),
  };
}

/**
 * The TRL cases that are one policyLoss call with fromTrlConfig's `loss` alone: those it translates without a token
 * mask or vLLM ratio (the entropy- and off-policy-mask cases are test/golden-trl-correction.test.ts's, with
 * `entropyMask` / `offPolicyMask` as importance weights). A refusal other than "not supported by grpo-roc yet" is a
 * bug in the translator, thrown.
 */
export function isSupportedTrlCase(c: GoldenCase): boolean {
  try {
    const t = fromTrlConfig(trlConfigOf(c.hyperparameters));
    return t.entropyMask === undefined && t.offPolicyMask === undefined && t.importanceSampling === undefined;
  } catch (error) {
    if (error instanceof Error && /not supported by grpo-roc yet/.test(error.message)) return false;
    throw error;
  }
}

/** trl_kl.json lists only the hyperparameters it sets; the rest are GRPOConfig's defaults. */
export const trlLossDefaults: TrlHyper = {
  loss_type: "grpo",
  epsilon: 0.2,
  epsilon_high: 0.2,
  beta: 0,
  importance_sampling_level: "token",
  max_completion_length: 256,
  delta: null,
  use_bias_correction_kl: false,
  entropy_coef: 0,
  current_gradient_accumulation_steps: 1,
  sapo_temperature_pos: 1,
  sapo_temperature_neg: 1.05,
  top_entropy_quantile: 1,
  off_policy_mask_threshold: null,
};

/** The outputs of a verl actor-step case (verl_policy_loss.json, `verl.pl.actor_step.*`). */
export interface VerlActorStepOutputs {
  log_prob: number[][];
  entropy: number[][];
  kld: number[][];
  policy_loss: number;
  grad_log_prob: number[][];
  grad_logits: number[][][];
  pg_metrics: Record<string, number>;
}

// ---------------------------------------------------------------------------------------------------------------
// verl 1dda039's agg_loss and kl_penalty cases (verl2_policy_loss.json) as policy losses, for every backend

/**
 * A verl2 `agg_loss` or `kl_penalty` case as a policyLoss call and the loss and gradient it must give, with the
 * options fromVerlConfig gives for the ActorConfig that runs it (verl 1dda039). agg_loss: GPG's REINFORCE with
 * advantage −1 has per-token loss logp, so logp = loss_mat and ∂loss/∂logp = grad_loss_mat; its kwargs are the
 * actor's loss_agg_mode and global_batch_info. kl_penalty: zero advantages leave the KL term alone (kl_loss_coef 1),
 * so the loss is kl_loss[mode] and its gradient grad_kl_loss[mode].
 */
export function verl2TermCase(c: GoldenCase): {
  inputs: PolicyLossInputs;
  options: PolicyLossOptionsInput;
  loss: number;
  grad: number[];
} {
  const h = c.hyperparameters;
  if (c.function === "agg_loss") {
    const i = c.inputs as { loss_mat: number[][]; loss_mask: number[][] };
    const { loss_agg_mode, ...globalBatchInfo } = h;
    return {
      inputs: {
        logp: matrix(i.loss_mat),
        oldLogp: matrix(i.loss_mat),
        advantages: i.loss_mat.map(() => -1),
        mask: matrix(i.loss_mask),
      },
      options: verlActorLoss({
        loss_agg_mode: loss_agg_mode as string,
        global_batch_info: globalBatchInfo,
        policy_loss: { loss_mode: "gpg" },
      }),
      loss: c.outputs.loss as number,
      grad: (c.outputs.grad_loss_mat as number[][]).flat(),
    };
  }
  const i = c.inputs as { logprob: number[][]; ref_logprob: number[][]; response_mask: number[][] };
  const mode = h.kl_loss_agg_mode as string;
  return {
    inputs: {
      logp: matrix(i.logprob),
      oldLogp: matrix(i.logprob),
      refLogp: matrix(i.ref_logprob),
      advantages: i.logprob.map(() => 0),
      mask: matrix(i.response_mask),
    },
    options: verlActorLoss({
      loss_agg_mode: mode,
      use_kl_loss: true,
      kl_loss_type: h.kl_penalty as string,
      kl_loss_coef: 1,
    }),
    loss: (c.outputs.kl_loss as Record<string, number>)[mode]!,
    grad: (c.outputs.grad_kl_loss as Record<string, number[][]>)[mode]!.flat(),
  };
}

/** fromVerlConfig's loss options for an ActorConfig, at verl 1dda039 (the default). */
export function verlActorLoss(actor: VerlActor): PolicyLossOptionsInput {
  return fromVerlConfig({ actor }).loss!;
}

/**
 * A kl_penalty case of verl_kl.json that verl b178a3c refuses (NotImplementedError): klPenalty over its log-probs
 * matches `outputs_patched`, verl 1dda039's values (kld at float64 precision, grad_logprob at `gradientTolerance`).
 */
export function expectPatchedKlPenalty(
  c: GoldenCase,
  kind: KlKind | VerlKlName,
  clamp: boolean,
  gradientTolerance: Tolerance,
): void {
  expect(c.outputs.error).toMatch(/NotImplementedError/);
  const inputs = c.inputs as { logprob: number[][]; ref_logprob: number[][] };
  const ref = inputs.ref_logprob.flat();
  const values = inputs.logprob.flat().map((lp, i) => klPenalty(kind, clamp, lp, ref[i]!));
  const patched = (c as GoldenCase & { outputs_patched: { kld: number[][]; grad_logprob: number[][] } })
    .outputs_patched;
  expectAllClose(
    values.map((v) => v.value),
    patched.kld.flat(),
    FLOAT64_TOLERANCE,
    "kld",
  );
  expectAllClose(
    values.map((v) => v.dLogp),
    patched.grad_logprob.flat(),
    gradientTolerance,
    "grad_logprob",
  );
}
