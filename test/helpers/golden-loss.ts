/**
 * The golden policy-loss cases as grpo-roc calls: verl's and TRL's hyperparameters → PolicyLossOptionsInput, their
 * tensors → PolicyLossInputs, their metric names → ours. Shared by test/golden-{verl,trl}-loss.test.ts (the
 * reference implementation against the peers) and test/conformance/ (every backend against the same cases).
 */
import {
  lossPresets,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../../src/index.js";
import type { GoldenCase } from "./golden.js";
import { matrix } from "./matrices.js";

// ---------------------------------------------------------------------------------------------------------------
// verl

export type VerlHyper = Record<string, unknown> & { loss_agg_mode: PolicyLossOptionsInput["aggregation"] };

/**
 * verl_policy_loss.json comes from verl b178a3c, whose seq-mean-token-sum-norm divides by the length alone (verl
 * 1dda039, grpo-roc's default, also divides by the sequences: golden README, "Version traps" 1).
 */
export const AT_B178A3C = { normalizer: { verlVersion: "b178a3c" } } as const satisfies PolicyLossOptionsInput;

/** verl's loss modes as grpo-roc options. */
export const verlOptionsFor: Record<string, (h: VerlHyper) => PolicyLossOptionsInput> = {
  compute_policy_loss_vanilla: (h) => ({
    ...lossPresets.verl,
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
    dualClip: h.clip_ratio_c as number,
    aggregation: h.loss_agg_mode,
    ...AT_B178A3C,
  }),
  // verl's GSPO ignores loss_agg_mode: always seq-mean-token-mean.
  compute_policy_loss_gspo: (h) => ({
    ...lossPresets.verlGspo,
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
  }),
  compute_policy_loss_sapo: (h) => ({
    objective: "sapo",
    logRatioClamp: [-20, 20],
    aggregation: "seq-mean-token-mean",
    sapoTemperature: { positive: h.tau_pos as number, negative: h.tau_neg as number },
  }),
  compute_policy_loss_cispo: (h) => ({
    objective: "cispo",
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
    logRatioClamp: [-20, 20],
    aggregation: h.loss_agg_mode,
    ...AT_B178A3C,
  }),
  compute_policy_loss_gpg: (h) => ({ objective: "reinforce", aggregation: h.loss_agg_mode, ...AT_B178A3C }),
  compute_policy_loss_reinforce: (h) => ({ objective: "reinforce", aggregation: h.loss_agg_mode, ...AT_B178A3C }),
};

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
  return {
    ...lossPresets.verl,
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
    dualClip: h.clip_ratio_c as number,
    aggregation: h.loss_agg_mode,
    kl: { kind: h.kl_loss_type, coef: h.kl_loss_coef, clamp: true },
    entropyCoef: h.entropy_coeff,
    ...AT_B178A3C,
  };
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
  loss_type: "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo";
  epsilon: number;
  epsilon_high: number;
  beta: number;
  importance_sampling_level: "token" | "sequence";
  max_completion_length: number;
  delta: number | null;
  use_bias_correction_kl: boolean;
  entropy_coef: number;
  current_gradient_accumulation_steps: number;
  sapo_temperature_pos: number;
  sapo_temperature_neg: number;
  top_entropy_quantile: number;
  off_policy_mask_threshold: number | null;
  temperature?: number;
}

/** TRL's GRPOConfig as grpo-roc options (`numItems` is num_items_in_batch when the case passes one). */
export function trlOptionsFor(h: TrlHyper, numItems: number | undefined): PolicyLossOptionsInput {
  const tokenCount = h.loss_type === "dapo" || h.loss_type === "cispo";
  const objective =
    h.loss_type === "cispo"
      ? // TRL's CISPO caps the ratio at epsilon_high itself, with no lower bound.
        { objective: "cispo", clipLow: 1, clipHigh: h.epsilon_high - 1 }
      : h.loss_type === "sapo"
        ? // TRL builds its per-token temperatures as a float32 tensor: 1.05 is 1.0499999523 there.
          {
            objective: "sapo",
            sapoTemperature: {
              positive: Math.fround(h.sapo_temperature_pos),
              negative: Math.fround(h.sapo_temperature_neg),
            },
          }
        : { objective: "clip", clipLow: h.epsilon, clipHigh: h.epsilon_high, delta: h.delta };
  return {
    ...lossPresets.trl,
    ...objective,
    ratioLevel: h.importance_sampling_level,
    aggregation:
      h.loss_type === "dapo" || h.loss_type === "cispo" ? "dapo" : h.loss_type === "sapo" ? "grpo" : h.loss_type,
    entropyAggregation: tokenCount ? "dapo" : "bnpo",
    normalizer: {
      ...(numItems !== undefined ? { tokens: numItems } : {}),
      length: h.max_completion_length,
      gradientAccumulationSteps: h.current_gradient_accumulation_steps,
    },
    kl: h.beta > 0 ? { kind: "k3", coef: h.beta, clamp: false, importanceCorrected: h.use_bias_correction_kl } : null,
    entropyCoef: h.entropy_coef,
  };
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
    ...(tokenLevel && h.loss_type !== "cispo" && h.loss_type !== "sapo"
      ? {
          "clip_ratio/low_mean": { value: m.clipFractionLow, float32: true },
          "clip_ratio/high_mean": { value: m.clipFractionHigh, float32: true },
          "clip_ratio/region_mean": { value: m.clipFractionLow + m.clipFractionHigh, float32: true },
        }
      : {}),
    // TRL counts ρ > cap with A > 0.
    ...(h.loss_type === "cispo" ? { cispo_clip_ratio: { value: m.clipFractionHigh, float32: true } } : {}),
  };
}

/** The TRL cases grpo-roc implements (no entropy masking, no off-policy mask). */
export function isSupportedTrlCase(c: GoldenCase): boolean {
  const h = c.hyperparameters as unknown as TrlHyper;
  return (
    ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"].includes(h.loss_type) &&
    h.top_entropy_quantile === 1 &&
    h.off_policy_mask_threshold === null
  );
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
 * A verl2 `agg_loss` or `kl_penalty` case as a policyLoss call and the loss and gradient it must give. agg_loss:
 * REINFORCE with advantage −1 has per-token loss logp, so logp = loss_mat and ∂loss/∂logp = grad_loss_mat. kl_penalty:
 * zero advantages leave the KL term alone (coef 1), so the loss is kl_loss[mode] and its gradient grad_kl_loss[mode].
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
    return {
      inputs: {
        logp: matrix(i.loss_mat),
        oldLogp: matrix(i.loss_mat),
        advantages: i.loss_mat.map(() => -1),
        mask: matrix(i.loss_mask),
      },
      options: {
        objective: "reinforce",
        aggregation: h.loss_agg_mode as PolicyLossOptionsInput["aggregation"],
        normalizer: {
          ...(h.batch_num_tokens != null ? { tokens: h.batch_num_tokens as number } : {}),
          ...(h.global_batch_size != null ? { sequences: h.global_batch_size as number } : {}),
          ...(h.loss_scale_factor != null ? { length: h.loss_scale_factor as number } : {}),
          ...(h.dp_size != null ? { dpSize: h.dp_size as number } : {}),
        },
      },
      loss: c.outputs.loss as number,
      grad: (c.outputs.grad_loss_mat as number[][]).flat(),
    };
  }
  const i = c.inputs as { logprob: number[][]; ref_logprob: number[][]; response_mask: number[][] };
  const mode = h.kl_loss_agg_mode as NonNullable<PolicyLossOptionsInput["aggregation"]>;
  return {
    inputs: {
      logp: matrix(i.logprob),
      oldLogp: matrix(i.logprob),
      refLogp: matrix(i.ref_logprob),
      advantages: i.logprob.map(() => 0),
      mask: matrix(i.response_mask),
    },
    options: {
      aggregation: mode,
      kl: { kind: h.kl_penalty as NonNullable<PolicyLossOptionsInput["kl"]>["kind"], coef: 1, clamp: true },
    },
    loss: (c.outputs.kl_loss as Record<string, number>)[mode]!,
    grad: (c.outputs.grad_kl_loss as Record<string, number[][]>)[mode]!.flat(),
  };
}
