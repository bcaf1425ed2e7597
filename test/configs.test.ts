/**
 * fromTrlConfig and fromVerlConfig, rule by rule: each translation the tables encode (CISPO's cap, SAPO's float32
 * temperatures, loss_type → aggregation and entropy aggregation, the normaliser's fill-in, verl's fallbacks and fixed
 * aggregations), the variants refused as "not supported yet", and the keys accepted and not used.
 */
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  fromTrlConfig,
  fromVerlConfig,
  grpoRoc,
  lossPresets,
  policyLoss,
  TRL_UNUSED_KEYS,
  VERL_ACTOR_UNUSED_KEYS,
  VERL_ALGORITHM_UNUSED_KEYS,
  ValidationError,
} from "../src/index.js";

const NOT_YET = /is not supported by grpo-roc yet/;

/** The ValidationError a call throws, for its paths and message. */
function refusal(run: () => unknown): ValidationError {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return error as ValidationError;
  }
  return expect.fail("expected a ValidationError");
}

it("both translators are in the grpoRoc namespace", () => {
  expect(grpoRoc.fromTrlConfig).toBe(fromTrlConfig);
  expect(grpoRoc.fromVerlConfig).toBe(fromVerlConfig);
});

describe("fromTrlConfig", () => {
  it("GRPOConfig's defaults: dapo, ε 0.2 both sides, no KL, no clamp, group-scaled advantages, G = 8", () => {
    const t = fromTrlConfig({});
    expect(t.loss).toEqual({
      dualClip: null,
      delta: null,
      logRatioClamp: null,
      objective: "clip",
      clipLow: 0.2,
      clipHigh: 0.2,
      ratioLevel: "token",
      aggregation: "dapo",
      entropyAggregation: "dapo",
      normalizer: { length: 256, gradientAccumulationSteps: 1 },
      kl: null,
      entropyCoef: 0,
    });
    expect(t.advantages).toEqual(advantagePresets.trl);
    expect(t.groupSize).toBe(8);
    expect(t.rewardWeights).toBeUndefined();
    expect(t.temperature).toBe(1);
  });

  it("agrees with lossPresets.trl on everything the preset sets", () => {
    const { loss } = fromTrlConfig({});
    for (const [key, value] of Object.entries(lossPresets.trl))
      expect(loss[key as keyof typeof loss], key).toEqual(value);
  });

  it.each([
    ["grpo", "grpo", "bnpo"],
    ["bnpo", "bnpo", "bnpo"],
    ["dr_grpo", "dr_grpo", "bnpo"],
    ["dapo", "dapo", "dapo"],
    ["cispo", "dapo", "dapo"],
    ["sapo", "grpo", "bnpo"],
  ] as const)("loss_type %s → aggregation %s, entropy aggregation %s", (lossType, aggregation, entropy) => {
    const { loss } = fromTrlConfig({ loss_type: lossType, epsilon_high: 5, max_completion_length: 64 });
    expect(loss.aggregation).toBe(aggregation);
    expect(loss.entropyAggregation).toBe(entropy);
  });

  it("CISPO: epsilon_high is the ratio cap itself → clipLow 1 (bound 0), clipHigh = epsilon_high − 1", () => {
    const { loss } = fromTrlConfig({ loss_type: "cispo", epsilon_high: 5 });
    expect(loss).toMatchObject({ objective: "cispo", clipLow: 1, clipHigh: 4 });
    // The cap as TRL applies it: min(ρ, 5), detached. ρ = e^2 ≈ 7.39 is capped, ρ = e^1 is not.
    const inputs = { logp: [[0, 0]], oldLogp: [[-2, -1]], advantages: [1], mask: [[1, 1]] };
    const result = policyLoss(inputs, loss);
    // TRL: −Σ min(ρ, 5)·A·logp / num_items; logp = 0 here, so the loss is 0 and the gradient is −min(ρ, 5)/2.
    expect(Array.from(result.grad)).toEqual([-5 / 2, -Math.E / 2]);
  });

  it("CISPO without epsilon_high caps at epsilon, which grpo-roc refuses below 1 (TRL would cap ρ at 0.2)", () => {
    const error = refusal(() => fromTrlConfig({ loss_type: "cispo" }));
    expect(error.issues[0]!.path).toBe("config.epsilon");
    expect(error.message).toMatch(NOT_YET);
    expect(refusal(() => fromTrlConfig({ loss_type: "cispo", epsilon_high: 0.5 })).issues[0]!.path).toBe(
      "config.epsilon_high",
    );
  });

  it("SAPO: the temperatures are float32 in TRL (torch.where of Python floats): Math.fround", () => {
    const { loss } = fromTrlConfig({ loss_type: "sapo" });
    expect(loss.sapoTemperature).toEqual({ positive: 1, negative: Math.fround(1.05) });
    expect(loss.sapoTemperature!.negative).toBe(1.0499999523162842);
    const custom = fromTrlConfig({ loss_type: "sapo", sapo_temperature_pos: 0.1, sapo_temperature_neg: 0.3 });
    expect(custom.loss.sapoTemperature).toEqual({ positive: Math.fround(0.1), negative: Math.fround(0.3) });
  });

  it("the normaliser: length = max_completion_length, gradientAccumulationSteps = gradient_accumulation_steps", () => {
    const { loss } = fromTrlConfig({
      loss_type: "dr_grpo",
      max_completion_length: 1024,
      gradient_accumulation_steps: 4,
    });
    expect(loss.normalizer).toEqual({ length: 1024, gradientAccumulationSteps: 4 });
    expect(fromTrlConfig({ max_completion_length: null }).loss.normalizer).toEqual({ gradientAccumulationSteps: 1 });
  });

  it("dr_grpo needs max_completion_length given (its default changed between TRL versions)", () => {
    expect(refusal(() => fromTrlConfig({ loss_type: "dr_grpo" })).issues[0]!.path).toBe("config.max_completion_length");
  });

  it("clip: epsilon, epsilon_high (None → epsilon), delta; importance_sampling_level → ratioLevel", () => {
    const { loss } = fromTrlConfig({
      epsilon: 0.1,
      epsilon_high: 0.28,
      delta: 4,
      importance_sampling_level: "sequence",
    });
    expect(loss).toMatchObject({ clipLow: 0.1, clipHigh: 0.28, delta: 4, ratioLevel: "sequence" });
    expect(fromTrlConfig({ epsilon: 0.3 }).loss.clipHigh).toBe(0.3);
    expect(refusal(() => fromTrlConfig({ delta: 1 })).issues[0]!.path).toBe("config.delta");
  });

  it("beta → unclamped k3 KL, use_bias_correction_kl → importanceCorrected (and it must be given with beta)", () => {
    const { loss } = fromTrlConfig({ beta: 0.04, use_bias_correction_kl: true });
    expect(loss.kl).toEqual({ kind: "k3", coef: 0.04, clamp: false, importanceCorrected: true });
    expect(refusal(() => fromTrlConfig({ beta: 0.04 })).issues[0]!.path).toBe("config.use_bias_correction_kl");
    expect(refusal(() => fromTrlConfig({ beta: -1, use_bias_correction_kl: false })).message).toMatch(NOT_YET);
  });

  it("entropy_coef → entropyCoef; scale_rewards (and the legacy booleans) → the advantage presets", () => {
    expect(fromTrlConfig({ entropy_coef: 0.01 }).loss.entropyCoef).toBe(0.01);
    expect(fromTrlConfig({ scale_rewards: "batch" }).advantages).toEqual(advantagePresets.trlBatch);
    expect(fromTrlConfig({ scale_rewards: "none" }).advantages).toEqual(advantagePresets.trlNoStd);
    expect(fromTrlConfig({ scale_rewards: false }).advantages).toEqual(advantagePresets.trlNoStd);
    expect(fromTrlConfig({ scale_rewards: true }).advantages).toEqual(advantagePresets.trl);
  });

  it("num_generations, reward_weights and temperature come back for the trainer", () => {
    const t = fromTrlConfig({ num_generations: 16, reward_weights: [1, 0.5], temperature: 0.7 });
    expect(t).toMatchObject({ groupSize: 16, rewardWeights: [1, 0.5], temperature: 0.7 });
  });

  it.each([
    // TRL's luspo mean runs over padding whenever a [B, T] factor joins the loss (token ratios, β·KL).
    [{ loss_type: "luspo" }, "config.importance_sampling_level"],
    [
      { loss_type: "luspo", importance_sampling_level: "sequence", beta: 0.04, use_bias_correction_kl: false },
      "config.beta",
    ],
    [{ loss_type: "vespo", importance_sampling_level: "sequence" }, "config.importance_sampling_level"],
    [{ scale_rewards: "mean" }, "config.scale_rewards"],
    [{ multi_objective_aggregation: "normalize_then_sum" }, "config.multi_objective_aggregation"],
    [{ top_entropy_quantile: 0.2 }, "config.top_entropy_quantile"],
    [{ off_policy_mask_threshold: 0.5 }, "config.off_policy_mask_threshold"],
    [{ use_adaptive_entropy: true }, "config.use_adaptive_entropy"],
    [{ mask_truncated_completions: true }, "config.mask_truncated_completions"],
    [{ use_vllm: true }, "config.vllm_importance_sampling_mode"],
    [{ use_vllm: true, vllm_importance_sampling_mode: "token_truncate" }, "config.vllm_importance_sampling_mode"],
    [{ loss_type: "sapo", importance_sampling_level: "sequence" }, "config.importance_sampling_level"],
  ] as const)("%j is refused as not supported yet, at %s", (config, path) => {
    const error = refusal(() => fromTrlConfig(config));
    expect(error.issues[0]!.path).toBe(path);
    expect(error.message).toMatch(NOT_YET);
  });

  it("vLLM without importance-sampling correction, and the VESPO fields outside vespo, change nothing", () => {
    const plain = fromTrlConfig({});
    expect(fromTrlConfig({ use_vllm: true, vllm_importance_sampling_correction: false })).toEqual(plain);
    expect(fromTrlConfig({ vespo_k_pos: 5, sapo_temperature_pos: 2 })).toEqual(plain);
  });

  it("keys that change no math are accepted and not read", () => {
    const plain = fromTrlConfig({});
    const config = Object.fromEntries(TRL_UNUSED_KEYS.map((key) => [key, { anything: [1, "x", null] }]));
    expect(fromTrlConfig(config)).toEqual(plain);
    expect(TRL_UNUSED_KEYS).toContain("learning_rate");
    expect(TRL_UNUSED_KEYS).toContain("vllm_server_host");
  });

  it("an unknown key names the closest known one; an unknown value lists the peer's", () => {
    const misspelt = refusal(() => fromTrlConfig({ epsilon_hihg: 0.28 } as never));
    expect(misspelt.issues).toEqual([
      { path: "config.epsilon_hihg", message: 'unknown key; did you mean "epsilon_high"?' },
    ]);
    const value = refusal(() => fromTrlConfig({ loss_type: "ppo" }));
    expect(value.issues[0]!.path).toBe("config.loss_type");
    expect(value.message).toMatch(/grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo/);
  });
});

describe("fromVerlConfig", () => {
  it("ActorConfig's defaults: vanilla, clip 0.2/0.2, dual clip 3, ±20 clamp, token-mean, no KL = lossPresets.verl", () => {
    const { loss, advantages } = fromVerlConfig({ actor: {} });
    expect(advantages).toBeUndefined();
    for (const [key, value] of Object.entries(lossPresets.verl))
      expect(loss![key as keyof typeof loss], key).toEqual(value);
    expect(loss).toMatchObject({ entropyAggregation: "token-mean", normalizer: {}, entropyCoef: 0 });
  });

  it("clip_ratio_low/high fall back to clip_ratio when None", () => {
    const { loss } = fromVerlConfig({ actor: { clip_ratio: 0.3, clip_ratio_low: null, clip_ratio_high: 0.28 } });
    expect(loss).toMatchObject({ clipLow: 0.3, clipHigh: 0.28 });
  });

  it("gspo and sapo aggregate with seq-mean-token-mean whatever loss_agg_mode says; the entropy keeps loss_agg_mode", () => {
    const gspo = fromVerlConfig({ actor: { loss_agg_mode: "token-mean", policy_loss: { loss_mode: "gspo" } } }).loss;
    expect(gspo).toMatchObject({ ...lossPresets.verlGspo, entropyAggregation: "token-mean" });
    const sapo = fromVerlConfig({ actor: { tau_pos: 1, tau_neg: 1.05, policy_loss: { loss_mode: "sapo" } } }).loss;
    // verl's taus are float64: no Math.fround (unlike TRL's).
    expect(sapo).toMatchObject({ objective: "sapo", aggregation: "seq-mean-token-mean", logRatioClamp: [-20, 20] });
    expect(sapo!.sapoTemperature).toEqual({ positive: 1, negative: 1.05 });
  });

  it("a KL loss with gspo/sapo and another loss_agg_mode is refused (verl aggregates the two terms differently)", () => {
    const error = refusal(() =>
      fromVerlConfig({ actor: { use_kl_loss: true, loss_agg_mode: "token-mean", policy_loss: { loss_mode: "gspo" } } }),
    );
    expect(error.issues[0]!.path).toBe("config.actor.use_kl_loss");
    expect(error.message).toMatch(NOT_YET);
  });

  it("cispo, gpg and bypass mode's reinforce", () => {
    expect(
      fromVerlConfig({ actor: { clip_ratio_high: 0.28, policy_loss: { loss_mode: "cispo" } } }).loss,
    ).toMatchObject({ objective: "cispo", clipLow: 0.2, clipHigh: 0.28, logRatioClamp: [-20, 20], dualClip: null });
    expect(fromVerlConfig({ actor: { policy_loss: { loss_mode: "gpg" } } }).loss).toMatchObject({
      objective: "reinforce",
      logRatioClamp: null,
    });
    const bypass = { loss_mode: "bypass_mode", rollout_correction: { rollout_is: null, loss_type: "reinforce" } };
    expect(fromVerlConfig({ actor: { policy_loss: bypass } }).loss).toMatchObject({ objective: "reinforce" });
    // RolloutCorrectionConfig()'s dataclass default is rollout_is="sequence": not implemented yet.
    const defaults = refusal(() => fromVerlConfig({ actor: { policy_loss: { loss_mode: "bypass_mode" } } }));
    expect(defaults.issues[0]!.path).toBe("config.actor.policy_loss.rollout_correction.rollout_is");
  });

  it("use_kl_loss → kl { kind, coef, clamp: true }, verl's names for the kinds", () => {
    const { loss } = fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_coef: 0.05, kl_loss_type: "low_var_kl" } });
    expect(loss!.kl).toEqual({ kind: "k3", coef: 0.05, clamp: true });
    expect(fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_type: "mse" } }).loss!.kl!.kind).toBe("k2");
    expect(fromVerlConfig({ actor: { kl_loss_type: "k3+" } }).loss!.kl).toBeNull();
  });

  it("global_batch_info and loss_scale_factor → the normaliser", () => {
    const { loss } = fromVerlConfig({
      actor: {
        loss_scale_factor: 64,
        global_batch_info: { dp_size: 4, batch_num_tokens: 91, global_batch_size: 20, loss_scale_factor: 64 },
      },
    });
    expect(loss!.normalizer).toEqual({ dpSize: 4, tokens: 91, sequences: 20, length: 64 });
    const clash = refusal(() =>
      fromVerlConfig({ actor: { loss_scale_factor: 64, global_batch_info: { loss_scale_factor: 32 } } }),
    );
    expect(clash.issues[0]!.path).toBe("config.actor.global_batch_info.loss_scale_factor");
  });

  it("adv_estimator and norm_adv_by_std_in_grpo → the advantage presets", () => {
    expect(fromVerlConfig({ algorithm: { adv_estimator: "grpo" } }).advantages).toEqual(advantagePresets.verl);
    expect(fromVerlConfig({ algorithm: { adv_estimator: "grpo", norm_adv_by_std_in_grpo: false } }).advantages).toEqual(
      advantagePresets.verlNoStd,
    );
    expect(fromVerlConfig({ algorithm: { adv_estimator: "rloo" } }).advantages).toEqual(advantagePresets.verlRloo);
    expect(fromVerlConfig({ algorithm: { adv_estimator: "rloo_vectorized" } }).advantages).toEqual(
      advantagePresets.verlRlooVectorized,
    );
  });

  it.each([
    [{ algorithm: {} }, "config.algorithm.adv_estimator"], // AlgoConfig's default is "gae"
    [{ algorithm: { adv_estimator: "grpo_passk" } }, "config.algorithm.adv_estimator"],
    [{ algorithm: { adv_estimator: "grpo", use_kl_in_reward: true } }, "config.algorithm.use_kl_in_reward"],
    [{ algorithm: { adv_estimator: "grpo", use_pf_ppo: true } }, "config.algorithm.use_pf_ppo"],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: {} } },
      "config.algorithm.rollout_correction.rollout_is",
    ],
    [{ actor: { loss_agg_mode: "token-sum" } }, "config.actor.loss_agg_mode"],
    [{ actor: { policy_loss: { loss_mode: "geo_mean" } } }, "config.actor.policy_loss.loss_mode"],
    [{ actor: { policy_loss: { loss_mode: "dppo_tv" } } }, "config.actor.policy_loss.loss_mode"],
    [{ actor: { use_kl_loss: true, kl_loss_type: "k3+" } }, "config.actor.kl_loss_type"],
  ] as const)("%j is refused as not supported yet, at %s", (config, path) => {
    const error = refusal(() => fromVerlConfig(config));
    expect(error.issues[0]!.path).toBe(path);
    expect(error.message).toMatch(NOT_YET);
  });

  it("seq-mean-token-sum-norm is b178a3c's; a config with 1dda039's policy_loss fields is refused with it", () => {
    expect(fromVerlConfig({ actor: { loss_agg_mode: "seq-mean-token-sum-norm" } }).loss!.aggregation).toBe(
      "seq-mean-token-sum-norm",
    );
    const later = { loss_agg_mode: "seq-mean-token-sum-norm", policy_loss: { dro_beta: null } };
    const error = refusal(() => fromVerlConfig({ actor: later }));
    expect(error.issues[0]!.path).toBe("config.actor.loss_agg_mode");
    expect(error.message).toMatch(NOT_YET);
  });

  it("a YAML-style rollout_correction with everything off is accepted", () => {
    const off = { rollout_is: null, rollout_rs: null, bypass_mode: false };
    expect(fromVerlConfig({ algorithm: { adv_estimator: "grpo", rollout_correction: off } }).advantages).toEqual(
      advantagePresets.verl,
    );
  });

  it("keys that change no math are accepted and not read", () => {
    const plain = fromVerlConfig({ actor: {}, algorithm: { adv_estimator: "grpo" } });
    const anything = { nested: [null, 1] };
    const actor = Object.fromEntries(VERL_ACTOR_UNUSED_KEYS.map((key) => [key, anything]));
    const algorithm = Object.fromEntries(VERL_ALGORITHM_UNUSED_KEYS.map((key) => [key, anything]));
    expect(fromVerlConfig({ actor, algorithm: { ...algorithm, adv_estimator: "grpo" } })).toEqual(plain);
  });

  it("an unknown key names its path and the closest known one", () => {
    const error = refusal(() => fromVerlConfig({ actor: { policy_loss: { los_mode: "gspo" } } } as never));
    expect(error.issues).toEqual([
      { path: "config.actor.policy_loss.los_mode", message: 'unknown key; did you mean "loss_mode"?' },
    ]);
    expect(refusal(() => fromVerlConfig({ actr: {} } as never)).issues[0]!.message).toMatch(/"actor"/);
  });
});
