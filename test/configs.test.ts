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
  gdpoPresets,
  grpoRoc,
  lossPresets,
  multiRewardPresets,
  policyLoss,
  rolloutCorrectionPresets,
  TRL_UNUSED_KEYS,
  VERL_ACTOR_UNUSED_KEYS,
  VERL_ALGORITHM_UNUSED_KEYS,
  ValidationError,
  type VerlConfig,
  vllmImportanceSamplingPresets,
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
    // TRL's entropy bonus and the controller's window then count the kept tokens only.
    [{ use_adaptive_entropy: true, top_entropy_quantile: 0.5 }, "config.use_adaptive_entropy"],
    [{ mask_truncated_completions: true }, "config.mask_truncated_completions"],
    [{ loss_type: "sapo", importance_sampling_level: "sequence" }, "config.importance_sampling_level"],
    // TRL's entropy bonus then averages over the kept tokens only: not policyLoss's entropy term.
    [{ top_entropy_quantile: 0.5, entropy_coef: 0.01 }, "config.entropy_coef"],
  ] as const)("%j is refused as not supported yet, at %s", (config, path) => {
    const error = refusal(() => fromTrlConfig(config));
    expect(error.issues[0]!.path).toBe(path);
    expect(error.message).toMatch(NOT_YET);
  });

  it('scale_rewards "mean" (MaxRL) says why it is refused: TRL\'s code for it was not available', () => {
    const error = refusal(() => fromTrlConfig({ scale_rewards: "mean" }));
    expect(error.message).toMatch(/GRPOTrainer code that does it/);
    expect(error.message).toMatch(/not in the sources read/);
  });

  it("use_adaptive_entropy → the controller's options from entropy_coef_min/max/delta and entropy_target", () => {
    expect(fromTrlConfig({}).adaptiveEntropy).toBeUndefined();
    // TRL reads the controller's keys only with use_adaptive_entropy: without it they change nothing.
    expect(fromTrlConfig({ entropy_coef_min: 5, entropy_coef_max: 1 }).adaptiveEntropy).toBeUndefined();
    const defaults = fromTrlConfig({ use_adaptive_entropy: true });
    expect(defaults.adaptiveEntropy).toEqual({ coefMin: 0, coefMax: 1, delta: 0.005, targetEntropy: 0.2 });
    // The controller starts from entropy_coef: the loss's coefficient before the first update.
    expect(defaults.loss.entropyCoef).toBe(0);
    const t = fromTrlConfig({
      use_adaptive_entropy: true,
      entropy_coef: 0.01,
      entropy_coef_min: 0.001,
      entropy_coef_max: 0.05,
      entropy_coef_delta: 0.002,
      entropy_target: 0.6,
      loss_type: "grpo",
    });
    expect(t.adaptiveEntropy).toEqual({ coefMin: 0.001, coefMax: 0.05, delta: 0.002, targetEntropy: 0.6 });
    expect(t.loss).toMatchObject({ entropyCoef: 0.01, entropyAggregation: "bnpo" });
    // One step of TRL's controller from these options: 0.5 ≤ 0.6, so min(0.01 + 0.002, 0.05).
    const next = grpoRoc.adaptiveEntropyCoefficient({ coef: 0.01, entropySum: 5, tokens: 10 }, t.adaptiveEntropy);
    expect(next).toEqual({ coef: 0.01 + 0.002, entropy: 5 / 10 });
    expect(grpoRoc.appliedEntropyCoefficient({ coef: next.coef, lastEntropy: next.entropy }, t.adaptiveEntropy)).toBe(
      next.coef,
    );
  });

  it("the controller's bounds are checked at the TRL key that gave them", () => {
    const at = (config: Parameters<typeof fromTrlConfig>[0]) => refusal(() => fromTrlConfig(config)).issues[0]!.path;
    expect(at({ use_adaptive_entropy: true, entropy_coef_min: 0.2, entropy_coef_max: 0.1 })).toBe(
      "config.entropy_coef_max",
    );
    expect(at({ use_adaptive_entropy: true, entropy_coef_min: -1 })).toBe("config.entropy_coef_min");
    expect(at({ use_adaptive_entropy: true, entropy_coef_delta: -0.1 })).toBe("config.entropy_coef_delta");
  });

  it("multi_objective_aggregation, scale_rewards and reward_weights → multiRewardAdvantages' options", () => {
    const plain = fromTrlConfig({});
    expect(plain.multiReward).toEqual(multiRewardPresets.trl);
    const weighted = fromTrlConfig({ scale_rewards: "batch", reward_weights: [1, 0.5] });
    expect(weighted.multiReward).toEqual({ ...multiRewardPresets.trl, scaleRewards: "batch", rewardWeights: [1, 0.5] });
    expect(weighted.advantages).toEqual(advantagePresets.trlBatch);
    expect(fromTrlConfig({ scale_rewards: false }).multiReward.scaleRewards).toBe("none");
    // normalize_then_sum (GDPO-style) only multiRewardAdvantages computes: no `advantages` options.
    const gdpo = fromTrlConfig({ multi_objective_aggregation: "normalize_then_sum", reward_weights: [2, 1] });
    expect(gdpo.advantages).toBeUndefined();
    expect(gdpo.multiReward).toEqual({ ...multiRewardPresets.trlNormalizeThenSum, rewardWeights: [2, 1] });
  });

  it("vLLM importance sampling (use_vllm and vllm_importance_sampling_correction) → vllmImportanceSampling's options", () => {
    expect(fromTrlConfig({}).importanceSampling).toBeUndefined();
    expect(fromTrlConfig({ use_vllm: true }).importanceSampling).toEqual(vllmImportanceSamplingPresets.trl);
    expect(
      fromTrlConfig({
        use_vllm: true,
        vllm_importance_sampling_mode: "token_truncate",
        vllm_importance_sampling_clip_min: 0.5,
        vllm_importance_sampling_clip_max: 2,
      }).importanceSampling,
    ).toEqual({ mode: "token_truncate", clipMin: 0.5, clipMax: 2 });
    // The older name of the upper bound.
    expect(fromTrlConfig({ use_vllm: true, vllm_importance_sampling_cap: 4 }).importanceSampling).toMatchObject({
      clipMax: 4,
    });
    const clash = refusal(() =>
      fromTrlConfig({ use_vllm: true, vllm_importance_sampling_cap: 4, vllm_importance_sampling_clip_max: 2 }),
    );
    expect(clash.issues[0]!.path).toBe("config.vllm_importance_sampling_cap");
    // TRL's __post_init__ rules, at the key that breaks them.
    const order = refusal(() =>
      fromTrlConfig({
        use_vllm: true,
        vllm_importance_sampling_clip_min: 3,
        vllm_importance_sampling_clip_max: 2,
      }),
    );
    expect(order.issues[0]!.path).toBe("config.vllm_importance_sampling_clip_min");
    const unbounded = refusal(() =>
      fromTrlConfig({
        use_vllm: true,
        vllm_importance_sampling_mode: "sequence_truncate",
        vllm_importance_sampling_clip_max: null,
      }),
    );
    expect(unbounded.issues[0]!.path).toBe("config.vllm_importance_sampling_clip_max");
    // An unknown mode is an error even with the correction off.
    expect(refusal(() => fromTrlConfig({ vllm_importance_sampling_mode: "token" })).issues[0]!.path).toBe(
      "config.vllm_importance_sampling_mode",
    );
  });

  it("top_entropy_quantile → entropyMask's options, off_policy_mask_threshold → offPolicyMask's", () => {
    expect(fromTrlConfig({})).toMatchObject({ entropyMask: undefined, offPolicyMask: undefined });
    expect(fromTrlConfig({ top_entropy_quantile: 0.2 }).entropyMask).toEqual({ quantile: 0.2 });
    expect(fromTrlConfig({ off_policy_mask_threshold: 0.5 }).offPolicyMask).toEqual({ threshold: 0.5 });
    expect(fromTrlConfig({ off_policy_mask_threshold: -1 }).offPolicyMask).toEqual({ threshold: -1 });
    // q = 0 keeps only the batch's highest entropy in TRL; grpo-roc's quantile is in (0, 1].
    expect(refusal(() => fromTrlConfig({ top_entropy_quantile: 0 })).issues[0]!.path).toBe(
      "config.top_entropy_quantile",
    );
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
    const t = fromVerlConfig({ actor: { policy_loss: bypass } });
    expect(t.loss).toMatchObject({ objective: "reinforce" });
    expect(t.bypassMode).toEqual({
      correction: { weights: null, rejection: [], lossType: "reinforce" },
      loss: { ...t.loss, objective: undefined },
    });
    expect(t.bypassMode!.loss).not.toHaveProperty("objective");
    // Without rollout_correction: RolloutCorrectionConfig()'s defaults (sequence TIS 2.0), bypass's ppo_clip.
    const defaults = fromVerlConfig({ actor: { policy_loss: { loss_mode: "bypass_mode" } } });
    expect(defaults.bypassMode!.correction).toEqual(rolloutCorrectionPresets.dataclassDefault);
    expect(defaults.loss).toMatchObject({ objective: "clip", dualClip: 3 });
    expect(fromVerlConfig({ actor: {} }).bypassMode).toBeUndefined();
  });

  it("bypass mode's rollout_correction: verl's bypass presets", () => {
    const geoRs = {
      rollout_is: "sequence",
      rollout_is_threshold: 2,
      rollout_rs: "seq_mean_k1",
      rollout_rs_threshold: "0.999_1.001",
      loss_type: "reinforce",
    };
    const t = fromVerlConfig({ actor: { policy_loss: { loss_mode: "bypass_mode", rollout_correction: geoRs } } });
    expect(t.bypassMode!.correction).toEqual(rolloutCorrectionPresets.bypassPgGeoRsSeqTis);
  });

  it("geo_mean, kl_cov, clip_cov, dppo_tv, dppo_kl, dro → the objectives and their options", () => {
    const actor = (loss_mode: string, rest: Record<string, unknown> = {}) =>
      fromVerlConfig({
        actor: { clip_ratio_low: 0.3, clip_ratio_high: 0.4, clip_ratio_c: 5, policy_loss: { loss_mode, ...rest } },
      }).loss!;
    // GMPO: the mean over all rows whatever loss_agg_mode says; the entropy keeps loss_agg_mode.
    expect(actor("geo_mean")).toMatchObject({
      objective: "gmpo",
      clipLow: 0.3,
      clipHigh: 0.4,
      aggregation: "grpo",
      entropyAggregation: "token-mean",
    });
    expect(actor("kl_cov", { kl_cov_ratio: 0.01, ppo_kl_coef: 0.2 })).toMatchObject({
      objective: "kl-cov",
      klCov: { ratio: 0.01, coef: 0.2 },
      aggregation: "token-mean",
    });
    expect(actor("clip_cov", { clip_cov_ratio: 0.5, clip_cov_lb: 2, clip_cov_ub: 4 })).toMatchObject({
      objective: "clip-cov",
      clipLow: 0.3,
      clipHigh: 0.4,
      clipCov: { ratio: 0.5, lowerBound: 2, upperBound: 4, seed: 0 },
    });
    // DPPO: clip_ratio_c is the IS truncation (ratioCap), not a dual clip.
    for (const [mode, objective] of [
      ["dppo_tv", "dppo-tv"],
      ["dppo_kl", "dppo-kl"],
    ] as const)
      expect(actor(mode)).toMatchObject({ objective, clipLow: 0.3, clipHigh: 0.4, ratioCap: 5, dualClip: null });
    expect(actor("dro", { dro_beta: 0.1 })).toMatchObject({ objective: "dro", droBeta: 0.1 });
    // verl raises on dro_beta None (the default) or ≤ 0.
    for (const beta of [null, 0, -1])
      expect(refusal(() => actor("dro", { dro_beta: beta })).issues[0]!.path).toBe("config.actor.policy_loss.dro_beta");
    expect(refusal(() => actor("kl_cov", { kl_cov_ratio: 2 })).issues[0]!.path).toBe(
      "config.actor.policy_loss.kl_cov_ratio",
    );
    expect(refusal(() => actor("clip_cov", { clip_cov_ratio: 0 })).issues[0]!.path).toBe(
      "config.actor.policy_loss.clip_cov_ratio",
    );
  });

  it("a KL loss with geo_mean is refused (its aggregation is never loss_agg_mode's)", () => {
    const error = refusal(() =>
      fromVerlConfig({ actor: { use_kl_loss: true, policy_loss: { loss_mode: "geo_mean" } } }),
    );
    expect(error.issues[0]!.path).toBe("config.actor.use_kl_loss");
  });

  it("token-sum and the straight-through + KL kinds (verl 1dda039)", () => {
    expect(fromVerlConfig({ actor: { loss_agg_mode: "token-sum" } }).loss!.aggregation).toBe("token-sum");
    for (const [name, kind] of [
      ["kl+", "k1+"],
      ["k1+", "k1+"],
      ["abs+", "abs+"],
      ["mse+", "k2+"],
      ["k2+", "k2+"],
      ["low_var_kl+", "k3+"],
      ["k3+", "k3+"],
    ] as const)
      expect(fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_type: name } }).loss!.kl!.kind).toBe(kind);
  });

  it("use_kl_loss → kl { kind, coef, clamp: true }, verl's names for the kinds", () => {
    const { loss } = fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_coef: 0.05, kl_loss_type: "low_var_kl" } });
    expect(loss!.kl).toEqual({ kind: "k3", coef: 0.05, clamp: true });
    expect(fromVerlConfig({ actor: { use_kl_loss: true, kl_loss_type: "mse" } }).loss!.kl!.kind).toBe("k2");
    expect(fromVerlConfig({ actor: { kl_loss_type: "k3+" } }).loss!.kl).toBeNull();
    // A misspelt kl_loss_type is an error even while use_kl_loss is off.
    expect(() => fromVerlConfig({ actor: { use_kl_loss: false, kl_loss_type: "foo" } })).toThrow(
      /config\.actor\.kl_loss_type.*"foo" is not one of/,
    );
  });

  it("global_batch_info and loss_scale_factor → the normaliser", () => {
    const { loss } = fromVerlConfig({
      actor: {
        loss_scale_factor: 64,
        global_batch_info: { dp_size: 4, batch_num_tokens: 91, global_batch_size: 20, loss_scale_factor: 64 },
      },
    });
    expect(loss!.normalizer).toEqual({ dpSize: 4, tokens: 91, sequences: 20, length: 64, verlVersion: "1dda039" });
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

  it("every other adv_estimator → the function that computes it and its options", () => {
    const estimator = (algorithm: Record<string, unknown>, verlVersion?: "1dda039" | "b178a3c") => {
      const t = fromVerlConfig({ algorithm }, verlVersion === undefined ? {} : { verlVersion });
      return { ...t.advantageEstimator, advantages: t.advantages } as {
        function?: string;
        options?: unknown;
        rewardKeys?: readonly string[];
        advantages: unknown;
      };
    };
    // AlgoConfig's default estimator is GAE, with gamma and lam.
    expect(estimator({})).toEqual({
      function: "gaeAdvantages",
      options: { gamma: 1, lambda: 1 },
      advantages: undefined,
    });
    expect(estimator({ adv_estimator: "gae", gamma: 0.99, lam: 0.95 }).options).toEqual({ gamma: 0.99, lambda: 0.95 });
    expect(estimator({ adv_estimator: "grpo_passk" })).toMatchObject({
      function: "advantages",
      options: advantagePresets.verlPassK,
      advantages: advantagePresets.verlPassK,
    });
    expect(estimator({ adv_estimator: "grpo_passk", norm_adv_by_std_in_grpo: false }).options).toEqual(
      advantagePresets.verlPassKNoStd,
    );
    expect(estimator({ adv_estimator: "grpo_vectorized" }).options).toEqual(advantagePresets.verlGrpoVectorized);
    expect(estimator({ adv_estimator: "grpo_vectorized", norm_adv_by_std_in_grpo: false }).options).toEqual(
      advantagePresets.verlGrpoVectorizedNoStd,
    );
    expect(estimator({ adv_estimator: "grpo_vectorized" }, "b178a3c").options).toEqual(
      advantagePresets.verlGrpoVectorizedB178a3c,
    );
    for (const [name, fn] of [
      ["gpg", "gpgAdvantages"],
      ["opo", "opoAdvantages"],
      ["reinforce_plus_plus_baseline", "reinforcePlusPlusBaselineAdvantages"],
      ["remax", "remaxAdvantages"],
    ] as const)
      expect(estimator({ adv_estimator: name })).toEqual({ function: fn, options: {}, advantages: undefined });
    expect(estimator({ adv_estimator: "reinforce_plus_plus", gamma: 0.9 }).options).toEqual({
      gamma: 0.9,
      verlVersion: "1dda039",
    });
    expect(estimator({ adv_estimator: "reinforce_plus_plus" }, "b178a3c").options).toEqual({
      gamma: 1,
      verlVersion: "b178a3c",
    });
    for (const [name, fn] of [
      ["optimal_token_baseline", "optimalTokenBaselineAdvantages"],
      ["tir_optimal_token_baseline", "tirOptimalTokenBaselineAdvantages"],
    ] as const) {
      expect(estimator({ adv_estimator: name })).toMatchObject({ function: fn, options: { handleZeroTail: true } });
      expect(estimator({ adv_estimator: name }, "b178a3c").options).toEqual({ handleZeroTail: false });
    }
    expect(
      estimator({ adv_estimator: "gdpo", gdpo_reward_keys: ["acc", "fmt"], gdpo_reward_weights: [1, 0.5] }),
    ).toEqual({
      function: "gdpoAdvantages",
      options: { ...gdpoPresets.verl, rewardWeights: [1, 0.5] },
      rewardKeys: ["acc", "fmt"],
      advantages: undefined,
    });
    expect(estimator({ adv_estimator: "gdpo", gdpo_reward_keys: ["acc"], norm_adv_by_std_in_grpo: false })).toEqual({
      function: "gdpoAdvantages",
      options: { ...gdpoPresets.verl, scaleByStd: false },
      rewardKeys: ["acc"],
      advantages: undefined,
    });
    // verl asserts on GDPO without keys; a weight count other than the key count is a contradiction.
    expect(refusal(() => estimator({ adv_estimator: "gdpo" })).issues[0]!.path).toBe(
      "config.algorithm.gdpo_reward_keys",
    );
    expect(
      refusal(() => estimator({ adv_estimator: "gdpo", gdpo_reward_keys: ["a"], gdpo_reward_weights: [1, 2] }))
        .issues[0]!.path,
    ).toBe("config.algorithm.gdpo_reward_weights");
  });

  it("use_kl_in_reward → klInReward: klPenaltyRewards' options (kl_penalty, kl_ctrl.kl_coef) and the controller", () => {
    const kl = (algorithm: Record<string, unknown>, version?: "b178a3c") =>
      fromVerlConfig(
        { algorithm: { adv_estimator: "grpo", ...algorithm } },
        version === undefined ? {} : { verlVersion: version },
      ).klInReward;
    // Off by default (AlgoConfig.use_kl_in_reward = False): known kl_penalty and kl_ctrl values are not used.
    expect(kl({})).toBeUndefined();
    expect(kl({ kl_penalty: "full", kl_ctrl: { type: "adaptive", horizon: 0 } })).toBeUndefined();
    // A misspelt value is an error at its key even while off.
    expect(() => kl({ kl_penalty: "foo" })).toThrow(/config\.algorithm\.kl_penalty.*"foo" is not one of/);
    expect(() => kl({ kl_ctrl: { type: "adaptve" } })).toThrow(/config\.algorithm\.kl_ctrl\.type.*"adaptve"/);
    expect(fromVerlConfig({ actor: {} }).klInReward).toBeUndefined();
    // KLControlConfig's defaults: fixed, kl_coef 0.001; kl_penalty "kl" (k1).
    expect(kl({ use_kl_in_reward: true })).toEqual({
      options: { kind: "k1", beta: 0.001 },
      controller: { type: "fixed" },
    });
    expect(kl({ use_kl_in_reward: true, kl_ctrl: { type: "adaptive" } })).toEqual({
      options: { kind: "k1", beta: 0.001 },
      controller: { type: "adaptive", options: { targetKl: 0.1, horizon: 10000 } },
    });
    expect(
      kl({
        use_kl_in_reward: true,
        kl_penalty: "low_var_kl",
        kl_ctrl: {
          _target_: "verl.trainer.config.KLControlConfig",
          type: "adaptive",
          kl_coef: 0.05,
          target_kl: 6,
          horizon: 500,
        },
      }),
    ).toEqual({
      options: { kind: "k3", beta: 0.05 },
      controller: { type: "adaptive", options: { targetKl: 6, horizon: 500 } },
    });
    // verl's names for the kinds, as for kl_loss_type; the "+" kinds from 1dda039 on.
    for (const [name, kind] of [
      ["kl", "k1"],
      ["k1", "k1"],
      ["abs", "abs"],
      ["mse", "k2"],
      ["k2", "k2"],
      ["low_var_kl", "k3"],
      ["k3", "k3"],
      ["low_var_kl+", "k3+"],
      ["kl+", "k1+"],
    ] as const)
      expect(kl({ use_kl_in_reward: true, kl_penalty: name })!.options.kind).toBe(kind);
    expect(refusal(() => kl({ use_kl_in_reward: true, kl_penalty: "k3+" }, "b178a3c")).issues[0]!.path).toBe(
      "config.algorithm.kl_penalty",
    );
    expect(kl({ use_kl_in_reward: true, kl_penalty: "k3" }, "b178a3c")!.options.kind).toBe("k3");
    // A fixed controller does not read target_kl or horizon (verl's get_kl_controller).
    expect(kl({ use_kl_in_reward: true, kl_ctrl: { type: "fixed", target_kl: 0, horizon: 0 } })!.controller).toEqual({
      type: "fixed",
    });
    // The estimator and the actor's KL loss are unchanged by it.
    const both = fromVerlConfig({
      actor: { use_kl_loss: true },
      algorithm: { adv_estimator: "grpo", use_kl_in_reward: true },
    });
    expect(both.advantages).toEqual(advantagePresets.verl);
    expect(both.loss!.kl).toEqual({ kind: "k3", coef: 0.001, clamp: true });
  });

  it("use_kl_in_reward: verl's errors, and the values grpo-roc refuses, at the AlgoConfig key", () => {
    const at = (algorithm: Record<string, unknown>) =>
      refusal(() =>
        fromVerlConfig({ algorithm: { adv_estimator: "grpo", use_kl_in_reward: true, ...algorithm } } as never),
      ).issues[0]!;
    // verl: kl_penalty raises NotImplementedError on "full"; get_kl_controller on another type; asserts horizon > 0.
    expect(at({ kl_penalty: "full" }).path).toBe("config.algorithm.kl_penalty");
    expect(at({ kl_penalty: "full" }).message).toMatch(NOT_YET);
    expect(at({ kl_penalty: "k4" }).path).toBe("config.algorithm.kl_penalty");
    expect(at({ kl_ctrl: { type: "pid" } })).toMatchObject({
      path: "config.algorithm.kl_ctrl.type",
      message: expect.stringMatching(/fixed, adaptive/),
    });
    expect(at({ kl_ctrl: { type: "adaptive", horizon: 0 } }).path).toBe("config.algorithm.kl_ctrl.horizon");
    // verl's ZeroDivisionError at target 0; a negative target would steer β the wrong way; a negative β is a bonus.
    expect(at({ kl_ctrl: { type: "adaptive", target_kl: 0 } }).path).toBe("config.algorithm.kl_ctrl.target_kl");
    expect(at({ kl_ctrl: { type: "adaptive", target_kl: -0.1 } }).path).toBe("config.algorithm.kl_ctrl.target_kl");
    expect(at({ kl_ctrl: { kl_coef: -0.001 } }).path).toBe("config.algorithm.kl_ctrl.kl_coef");
    // KLControlConfig is strict: a misspelt key is named, whether or not use_kl_in_reward reads it.
    expect(at({ kl_ctrl: { targetKl: 0.1 } })).toEqual({
      path: "config.algorithm.kl_ctrl.targetKl",
      message: 'unknown key; did you mean "target_kl"?',
    });
    expect(refusal(() => fromVerlConfig({ algorithm: { kl_ctrl: { kl_coeff: 0.1 } } } as never)).issues[0]!.path).toBe(
      "config.algorithm.kl_ctrl.kl_coeff",
    );
    // horizon is an int in KLControlConfig.
    expect(at({ kl_ctrl: { type: "adaptive", horizon: 100.5 } }).path).toBe("config.algorithm.kl_ctrl.horizon");
  });

  it.each([
    [{ algorithm: { adv_estimator: "grpo", use_pf_ppo: true } }, "config.algorithm.use_pf_ppo"],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { bypass_mode: true } } },
      "config.algorithm.rollout_correction.bypass_mode",
    ],
    [{ actor: { use_kl_loss: true, kl_loss_type: "full" } }, "config.actor.kl_loss_type"],
  ] as const)("%j is refused as not supported yet, at %s", (config, path) => {
    const error = refusal(() => fromVerlConfig(config));
    expect(error.issues[0]!.path).toBe(path);
    expect(error.message).toMatch(NOT_YET);
  });

  it("verlVersion: 1dda039 by default, b178a3c's semantics by name; b178a3c refuses what it did not have", () => {
    const norm = { loss_agg_mode: "seq-mean-token-sum-norm", policy_loss: { dro_beta: null } };
    const current = fromVerlConfig({ actor: norm });
    expect(current.verlVersion).toBe("1dda039");
    expect(current.loss!.normalizer).toEqual({ verlVersion: "1dda039" });
    const old = fromVerlConfig({ actor: norm }, { verlVersion: "b178a3c" });
    expect(old.verlVersion).toBe("b178a3c");
    expect(old.loss!.normalizer).toEqual({ verlVersion: "b178a3c" });
    // The same per-token losses: 1dda039 divides by the sequences too.
    const inputs = {
      logp: [
        [-1, -2],
        [-0.5, -0.5],
      ],
      oldLogp: [
        [-1, -2],
        [-0.5, -0.5],
      ],
      advantages: [1, -1],
    };
    expect(policyLoss(inputs, current.loss!).loss).toBeCloseTo(policyLoss(inputs, old.loss!).loss / 2, 14);
    for (const [config, path] of [
      [{ actor: { policy_loss: { loss_mode: "dppo_tv" } } }, "config.actor.policy_loss.loss_mode"],
      [{ actor: { policy_loss: { loss_mode: "dro", dro_beta: 0.1 } } }, "config.actor.policy_loss.loss_mode"],
      [{ actor: { loss_agg_mode: "token-sum" } }, "config.actor.loss_agg_mode"],
      [{ actor: { use_kl_loss: true, kl_loss_type: "k3+" } }, "config.actor.kl_loss_type"],
      [{ algorithm: { adv_estimator: "gdpo", gdpo_reward_keys: ["a"] } }, "config.algorithm.adv_estimator"],
    ] satisfies [VerlConfig, string][]) {
      const error = refusal(() => fromVerlConfig(config, { verlVersion: "b178a3c" }));
      expect(error.issues[0]!.path).toBe(path);
      expect(error.message).toMatch(/does not exist at verl b178a3c/);
      expect(() => fromVerlConfig(config)).not.toThrow();
    }
    expect(refusal(() => fromVerlConfig({}, { verlVersion: "main" } as never)).issues[0]!.path).toBe(
      "options.verlVersion",
    );
  });

  it("algorithm.rollout_correction (decoupled) → rolloutCorrection's options: verl's presets", () => {
    const rc = (rollout_correction: Record<string, unknown> | null) =>
      fromVerlConfig({ algorithm: { adv_estimator: "grpo", rollout_correction } }).rolloutCorrection;
    expect(rc(null)).toBeUndefined();
    expect(fromVerlConfig({ algorithm: { adv_estimator: "grpo" } }).rolloutCorrection).toBeUndefined();
    // RolloutCorrectionConfig() (the dataclass) is sequence TIS 2.0; the YAML's is off.
    expect(rc({})).toEqual(rolloutCorrectionPresets.dataclassDefault);
    expect(rc({ rollout_is: null, rollout_rs: null, bypass_mode: false })).toEqual(rolloutCorrectionPresets.disabled);
    expect(rc({ rollout_is: "token", rollout_is_threshold: "2.0" })).toEqual(rolloutCorrectionPresets.decoupledTokenIs);
    expect(rc({ rollout_is: "token", rollout_is_threshold: "0.5_5.0" })).toEqual(
      rolloutCorrectionPresets.decoupledTokenIcepop,
    );
    expect(rc({ rollout_is: null, rollout_rs: "seq_mean_k3", rollout_rs_threshold: 0.01 })).toEqual(
      rolloutCorrectionPresets.decoupledK3Rs,
    );
    expect(
      rc({
        rollout_is: null,
        rollout_is_threshold: null,
        rollout_rs: "seq_mean_k1",
        rollout_rs_threshold: "0.999_1.001",
      }),
    ).toEqual(rolloutCorrectionPresets.decoupledGeoRs);
    // A comma list of options, one threshold for all or one each.
    expect(
      rc({ rollout_is: null, rollout_rs: "seq_max_k2, seq_mean_k2", rollout_rs_threshold: "0.5" })!.rejection,
    ).toEqual([
      { statistic: "seq_max_k2", upper: 0.5 },
      { statistic: "seq_mean_k2", upper: 0.5 },
    ]);
    expect(
      rc({ rollout_is: null, rollout_rs: "token_k1,seq_sum_k3", rollout_rs_threshold: "0.5_2.0,0.5" })!.rejection,
    ).toEqual([
      { statistic: "token_k1", lower: 0.5, upper: 2 },
      { statistic: "seq_sum_k3", upper: 0.5 },
    ]);
    // The rollout correction leaves the estimator alone.
    expect(fromVerlConfig({ algorithm: { adv_estimator: "grpo", rollout_correction: {} } }).advantages).toEqual(
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
