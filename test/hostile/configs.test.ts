/**
 * The bad-input contract for fromTrlConfig and fromVerlConfig: strict keys at every level (class 1), wrong types,
 * NaN/±Infinity and out-of-range numbers (class 2), nulls and non-objects where objects belong (class 3). Every case
 * ends in a ValidationError (a GrpoRocError) whose path starts at `config`, or in options that grpo-roc's own schemas
 * accept, with finite numbers: a translation never hands a bad value on.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  adaptiveKlOptionsSchema,
  advantageOptionsSchema,
  entropyMaskOptionsSchema,
  fromTrlConfig,
  fromVerlConfig,
  gaeOptionsSchema,
  gdpoOptionsSchema,
  gpgOptionsSchema,
  GrpoRocError,
  klPenaltyRewardsOptionsSchema,
  multiRewardOptionsSchema,
  offPolicyMaskOptionsSchema,
  opoOptionsSchema,
  optimalTokenBaselineOptionsSchema,
  policyLossOptionsSchema,
  reinforcePlusPlusBaselineOptionsSchema,
  reinforcePlusPlusOptionsSchema,
  rolloutCorrectionOptionsSchema,
  trlConfigSchema,
  TRL_UNUSED_KEYS,
  ValidationError,
  verlConfigSchema,
  vllmImportanceSamplingOptionsSchema,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, misspellings, type Outcome } from "./shared.js";

/** The keys of a zod object schema (its shape). */
function keysOf(schema: unknown): string[] {
  const shape = (schema as { _zod: { def: { shape: Record<string, unknown> } } })._zod.def.shape;
  return Object.keys(shape);
}
/** A nested object schema's own schema, through optional/default/prefault/nullable wrappers. */
function inner(schema: unknown): unknown {
  let s = schema as { _zod: { def: { innerType?: unknown; shape?: unknown } } };
  while (s._zod.def.shape === undefined && s._zod.def.innerType !== undefined) s = s._zod.def.innerType as typeof s;
  return s;
}
const field = (schema: unknown, key: string) =>
  inner((schema as { _zod: { def: { shape: Record<string, unknown> } } })._zod.def.shape[key]);

const TRL_KEYS = keysOf(trlConfigSchema);
const ACTOR = field(verlConfigSchema, "actor");
const ALGORITHM = field(verlConfigSchema, "algorithm");
const POLICY_LOSS = field(ACTOR, "policy_loss");
const GLOBAL_BATCH_INFO = field(ACTOR, "global_batch_info");
const ROLLOUT_CORRECTION = field(ALGORITHM, "rollout_correction");
const KL_CTRL = field(ALGORITHM, "kl_ctrl");

/** Where a verl section sits, and a config with `object` there. */
const VERL_SECTIONS = [
  { path: "config.actor", keys: keysOf(ACTOR), wrap: (o: object) => ({ actor: o }) },
  { path: "config.algorithm", keys: keysOf(ALGORITHM), wrap: (o: object) => ({ algorithm: o }) },
  {
    path: "config.actor.policy_loss",
    keys: keysOf(POLICY_LOSS),
    wrap: (o: object) => ({ actor: { policy_loss: o } }),
  },
  {
    path: "config.actor.global_batch_info",
    keys: keysOf(GLOBAL_BATCH_INFO),
    wrap: (o: object) => ({ actor: { global_batch_info: o } }),
  },
  {
    path: "config.algorithm.rollout_correction",
    keys: keysOf(ROLLOUT_CORRECTION),
    wrap: (o: object) => ({ algorithm: { adv_estimator: "grpo", rollout_correction: o } }),
  },
  {
    path: "config.actor.policy_loss.rollout_correction",
    keys: keysOf(ROLLOUT_CORRECTION),
    wrap: (o: object) => ({ actor: { policy_loss: { loss_mode: "bypass_mode", rollout_correction: o } } }),
  },
  {
    path: "config.algorithm.kl_ctrl",
    keys: keysOf(KL_CTRL),
    wrap: (o: object) => ({ algorithm: { adv_estimator: "grpo", use_kl_in_reward: true, kl_ctrl: o } }),
  },
] as const;

/** verl's estimators and loss modes: every one of them meets the hostile values. */
const VERL_ESTIMATORS = [
  "grpo",
  "rloo",
  "rloo_vectorized",
  "grpo_passk",
  "grpo_vectorized",
  "gpg",
  "opo",
  "reinforce_plus_plus_baseline",
  "gdpo",
  "reinforce_plus_plus",
  "remax",
  "gae",
  "optimal_token_baseline",
  "tir_optimal_token_baseline",
] as const;
const VERL_LOSS_MODES = [
  "vanilla",
  "gspo",
  "sapo",
  "cispo",
  "gpg",
  "bypass_mode",
  "geo_mean",
  "kl_cov",
  "clip_cov",
  "dppo_tv",
  "dppo_kl",
  "dro",
] as const;

/** A zod schema, as far as these checks need it. */
type Schema = { safeParse(value: unknown): { success: boolean } };

/** The schema of each function an estimator translation names (remax takes no options: `{}`). */
const ESTIMATOR_SCHEMAS: Record<string, Schema> = {
  advantages: advantageOptionsSchema,
  gpgAdvantages: gpgOptionsSchema,
  opoAdvantages: opoOptionsSchema,
  reinforcePlusPlusBaselineAdvantages: reinforcePlusPlusBaselineOptionsSchema,
  gdpoAdvantages: gdpoOptionsSchema,
  reinforcePlusPlusAdvantages: reinforcePlusPlusOptionsSchema,
  gaeAdvantages: gaeOptionsSchema,
  optimalTokenBaselineAdvantages: optimalTokenBaselineOptionsSchema,
  tirOptimalTokenBaselineAdvantages: optimalTokenBaselineOptionsSchema,
  remaxAdvantages: { safeParse: (value) => ({ success: Object.keys(value as object).length === 0 }) },
};

/** Options the function they are for accepts, with finite numbers. */
function expectAccepted(schema: Schema, options: unknown, label: string): void {
  expect(schema.safeParse(options).success, `${label}: ${JSON.stringify(options)}`).toBe(true);
  expectAllFinite(options, label);
}

/** What a translation may return: every field optional, as in TrlTranslation and VerlTranslation. */
interface AnyTranslation {
  loss?: unknown;
  advantages?: unknown;
  advantageEstimator?: { function: string; options: unknown; rewardKeys?: readonly string[] } | undefined;
  rolloutCorrection?: unknown;
  bypassMode?: { correction?: unknown; loss?: unknown } | undefined;
  multiReward?: unknown;
  importanceSampling?: unknown;
  entropyMask?: unknown;
  offPolicyMask?: unknown;
  klInReward?: { options: unknown; controller: { type: string; options?: unknown } } | undefined;
}

/**
 * A returned translation is one grpo-roc's schemas accept, with finite numbers (clamp bounds may be ±Infinity):
 * the loss, the advantage options, the estimator function's options, the corrections and the masks.
 */
function expectUsable(translation: AnyTranslation): void {
  if (translation.loss !== undefined) {
    const parsed = policyLossOptionsSchema.safeParse(translation.loss);
    expect(parsed.success, JSON.stringify(translation.loss)).toBe(true);
    const { logRatioClamp: _clamp, ...rest } = translation.loss as Record<string, unknown>;
    expectAllFinite(rest, "loss");
  }
  if (translation.advantages !== undefined)
    expect(advantageOptionsSchema.safeParse(translation.advantages).success).toBe(true);
  const estimator = translation.advantageEstimator;
  if (estimator !== undefined) {
    const schema = ESTIMATOR_SCHEMAS[estimator.function];
    expect(schema, estimator.function).toBeDefined();
    expectAccepted(schema!, estimator.options, estimator.function);
    if (estimator.rewardKeys !== undefined) expect(estimator.rewardKeys.length).toBeGreaterThan(0);
  }
  if (translation.rolloutCorrection !== undefined)
    expectAccepted(rolloutCorrectionOptionsSchema, translation.rolloutCorrection, "rolloutCorrection");
  if (translation.bypassMode !== undefined) {
    expectAccepted(rolloutCorrectionOptionsSchema, translation.bypassMode.correction, "bypassMode.correction");
    expect(policyLossOptionsSchema.safeParse(translation.bypassMode.loss).success).toBe(true);
  }
  if (translation.multiReward !== undefined)
    expectAccepted(multiRewardOptionsSchema, translation.multiReward, "multiReward");
  if (translation.importanceSampling !== undefined)
    expectAccepted(vllmImportanceSamplingOptionsSchema, translation.importanceSampling, "importanceSampling");
  if (translation.entropyMask !== undefined)
    expectAccepted(entropyMaskOptionsSchema, translation.entropyMask, "entropyMask");
  if (translation.offPolicyMask !== undefined)
    expectAccepted(offPolicyMaskOptionsSchema, translation.offPolicyMask, "offPolicyMask");
  if (translation.klInReward !== undefined) {
    expectAccepted(klPenaltyRewardsOptionsSchema, translation.klInReward.options, "klInReward.options");
    const { controller } = translation.klInReward;
    expect(["fixed", "adaptive"]).toContain(controller.type);
    if (controller.type === "adaptive")
      expectAccepted(adaptiveKlOptionsSchema, controller.options, "klInReward.controller.options");
    else expect(controller).toEqual({ type: "fixed" });
  }
}

/** Refused with a ValidationError at a path under `config`, or returned usable options. */
function expectRefusedOrUsable(outcome: Outcome<AnyTranslation>): void {
  if (outcome.ok) {
    expectUsable(outcome.value);
    return;
  }
  expect(outcome.error).toBeInstanceOf(ValidationError);
  expect(outcome.error).toBeInstanceOf(GrpoRocError);
  for (const issue of (outcome.error as ValidationError).issues) expect(issue.path).toMatch(/^config(\.|$|\[)/);
}

describe("class 1: every key is known or refused at its own path, with the closest known one", () => {
  it("each misspelling of each GRPOConfig key grpo-roc reads", () => {
    // The keys grpo-roc reads (the accepted-and-unused ones are a list, not a rule), four misspellings each: every
    // refusal ranks ~230 known keys by edit distance.
    let tried = 0;
    for (const key of TRL_KEYS.filter((k) => !TRL_UNUSED_KEYS.includes(k as never) && k.length > 4)) {
      for (const wrong of misspellings(key)
        .filter((w) => !TRL_KEYS.includes(w))
        .slice(0, 4)) {
        tried++;
        expectRefusedAt(
          attempt(() => fromTrlConfig({ [wrong]: 1 } as never)),
          `config.${wrong}`,
          /unknown key/,
        );
      }
    }
    expect(tried).toBeGreaterThan(100);
  });

  it("each misspelling of each key of verl's actor, algorithm, policy_loss, global_batch_info, rollout_correction", () => {
    for (const section of VERL_SECTIONS) {
      for (const key of section.keys.filter((k) => k.length > 4)) {
        for (const wrong of misspellings(key)
          .filter((w) => !section.keys.includes(w))
          .slice(0, 4)) {
          const error = expectRefusedAt(
            attempt(() => fromVerlConfig(section.wrap({ [wrong]: 1 }) as never)),
            `${section.path}.${wrong}`,
            /unknown key/,
          );
          expect(error.issues).toHaveLength(1);
        }
      }
    }
  });

  it("fromVerlConfig's options: verlVersion only, a misspelling named", () => {
    const error = expectRefusedAt(
      attempt(() => fromVerlConfig({}, { verlVerison: "b178a3c" } as never)),
      "options.verlVerison",
      /unknown key/,
    );
    expect(error.message).toMatch(/did you mean "verlVersion"\?/);
    for (const version of ["main", "", null, 3, "B178A3C", "1dda039b"])
      expectRefusedAt(
        attempt(() => fromVerlConfig({}, { verlVersion: version } as never)),
        "options.verlVersion",
      );
    for (const options of [null, 3, "b178a3c", []])
      expectRefusedAt(
        attempt(() => fromVerlConfig({}, options as never)),
        "options",
      );
  });

  it("a misspelt key names the key meant", () => {
    const error = expectRefusedAt(
      attempt(() => fromVerlConfig({ actor: { clip_ratio_hgih: 0.28 } } as never)),
      "config.actor.clip_ratio_hgih",
    );
    expect(error.message).toMatch(/did you mean "clip_ratio_high"\?/);
  });

  it("random keys: refused at their path unless they are known", () => {
    hostile(fc.string({ minLength: 1, maxLength: 12 }), (key) => {
      if (TRL_KEYS.includes(key) || key === "__proto__") return;
      expectRefusedAt(
        attempt(() => fromTrlConfig({ [key]: 0 } as never)),
        `config.${key}`,
      );
    });
  });
});

/** TRL's four vLLM importance-sampling modes. */
const VLLM_MODES = ["token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] as const;

/** Values of every kind a config file or a careless caller may hold. */
const hostileValue = fc.oneof(
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, -0, -1, 0, 1, 1e308, -1e308),
  fc.double(),
  fc.integer({ min: -10, max: 10 }),
  fc.constantFrom(null, undefined, true, false, "", "token", "sequence", "grpo", "dapo", "gspo", "NaN", "1e-3"),
  fc.string({ maxLength: 8 }),
  fc.array(fc.oneof(fc.double(), fc.constant(null)), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.constant(null), { maxKeys: 2 }),
);

const isNonFinite = (value: unknown) => typeof value === "number" && !Number.isFinite(value);

describe("class 2: wrong types, NaN/±Infinity and out-of-range numbers are refused at config.<key>", () => {
  it("one hostile value at a GRPOConfig key grpo-roc reads", () => {
    const mathKeys = TRL_KEYS.filter((k) => !/^(?!vllm_importance)(vllm_|log_|hub_|eval_|save_)/.test(k));
    hostile(
      fc.tuple(fc.constantFrom(...mathKeys), hostileValue),
      ([key, value]) => {
        const outcome = attempt(() => fromTrlConfig({ [key]: value } as never));
        expectRefusedOrUsable(outcome);
        if (isNonFinite(value) && outcome.ok) {
          // Only the keys read by nobody (accepted, not used) may hold a non-finite number.
          expect(outcome.value).toEqual(fromTrlConfig({}));
        }
      },
      2000,
    );
  });

  it("two hostile values at once: still one of the two outcomes", () => {
    hostile(
      fc.dictionary(fc.constantFrom(...TRL_KEYS), hostileValue, { maxKeys: 3 }),
      (config) => expectRefusedOrUsable(attempt(() => fromTrlConfig(config as never))),
      1000,
    );
  });

  it("one hostile value at a key of each verl section", () => {
    const slots = VERL_SECTIONS.flatMap((section) => section.keys.map((key) => ({ section, key })));
    hostile(
      fc.tuple(fc.constantFrom(...slots), hostileValue),
      ([{ section, key }, value]) => {
        const outcome = attempt(() => fromVerlConfig(section.wrap({ [key]: value }) as never));
        expectRefusedOrUsable(outcome);
      },
      2000,
    );
  });

  it("one hostile value at a key of the vLLM ratio, the masks or the rewards, with vLLM on", () => {
    const keys = [
      "vllm_importance_sampling_mode",
      "vllm_importance_sampling_clip_min",
      "vllm_importance_sampling_clip_max",
      "vllm_importance_sampling_cap",
      "top_entropy_quantile",
      "off_policy_mask_threshold",
      "multi_objective_aggregation",
      "scale_rewards",
      "reward_weights",
      "entropy_coef",
    ];
    hostile(
      fc.tuple(fc.constantFrom(...keys), hostileValue, fc.constantFrom(...VLLM_MODES)),
      ([key, value, mode]) => {
        const config = { use_vllm: true, vllm_importance_sampling_mode: mode, [key]: value };
        expectRefusedOrUsable(attempt(() => fromTrlConfig(config as never)));
      },
      2000,
    );
  });

  it("one hostile value at an AlgoConfig key, for every adv_estimator", () => {
    const keys = ["gamma", "lam", "norm_adv_by_std_in_grpo", "gdpo_reward_keys", "gdpo_reward_weights"];
    hostile(
      fc.tuple(fc.constantFrom(...VERL_ESTIMATORS), fc.constantFrom(...keys), hostileValue, fc.boolean()),
      ([estimator, key, value, b178a3c]) => {
        const algorithm = { adv_estimator: estimator, gdpo_reward_keys: ["a", "b"], [key]: value };
        const options = b178a3c ? { verlVersion: "b178a3c" as const } : {};
        expectRefusedOrUsable(attempt(() => fromVerlConfig({ algorithm } as never, options)));
      },
      2000,
    );
  });

  it("one hostile value at use_kl_in_reward, kl_penalty or a kl_ctrl key, for both controllers and both versions", () => {
    const klCtrlKeys = ["type", "kl_coef", "target_kl", "horizon"];
    hostile(
      fc.tuple(
        fc.constantFrom("use_kl_in_reward", "kl_penalty", ...klCtrlKeys),
        hostileValue,
        fc.constantFrom("fixed", "adaptive"),
        fc.constantFrom("kl", "low_var_kl", "abs+", "full"),
        fc.boolean(),
      ),
      ([key, value, type, kind, b178a3c]) => {
        const klCtrl = { type, ...(klCtrlKeys.includes(key) ? { [key]: value } : {}) };
        const algorithm = {
          adv_estimator: "grpo",
          use_kl_in_reward: true,
          kl_penalty: kind,
          kl_ctrl: klCtrl,
          ...(klCtrlKeys.includes(key) ? {} : { [key]: value }),
        };
        const options = b178a3c ? { verlVersion: "b178a3c" as const } : {};
        const outcome = attempt(() => fromVerlConfig({ algorithm } as never, options));
        expectRefusedOrUsable(outcome);
        if (!outcome.ok) expect((outcome.error as ValidationError).issues[0]!.path).toMatch(/^config\.algorithm\./);
      },
      2000,
    );
  });

  it("one hostile value at an ActorConfig or PolicyLossConfig key, for every loss_mode", () => {
    const actorKeys = ["clip_ratio_low", "clip_ratio_high", "clip_ratio_c", "loss_agg_mode", "kl_loss_type"];
    const policyKeys = ["dro_beta", "kl_cov_ratio", "ppo_kl_coef", "clip_cov_ratio", "clip_cov_lb", "clip_cov_ub"];
    hostile(
      fc.tuple(
        fc.constantFrom(...VERL_LOSS_MODES),
        fc.constantFrom(...actorKeys, ...policyKeys),
        hostileValue,
        fc.boolean(),
      ),
      ([mode, key, value, withKl]) => {
        const policyLoss = { loss_mode: mode, dro_beta: 0.1, ...(policyKeys.includes(key) ? { [key]: value } : {}) };
        const actor = {
          policy_loss: policyLoss,
          use_kl_loss: withKl,
          ...(actorKeys.includes(key) ? { [key]: value } : {}),
        };
        expectRefusedOrUsable(attempt(() => fromVerlConfig({ actor } as never)));
      },
      2000,
    );
  });

  it("hostile threshold strings and option lists in rollout_correction (decoupled and bypass)", () => {
    const spec = fc.oneof(
      fc.constantFrom("2.0", "0.5_5.0", "", " ", "_", "0.5_", "_2", "a_b", "1_2_3", "NaN", "Infinity", "-1", "0"),
      fc.constantFrom("1e400", "0x10", "2,", ",", "0.5_2.0,0.5", "0.5 _ 2.0", "5_0.5", "1e-3", "+2", ".5"),
      fc.double(),
      fc.constant(null),
      fc.string({ maxLength: 6 }),
    );
    const options = fc.oneof(
      fc.constantFrom("token_k1", "seq_mean_k3", "seq_max_k1", "token_k2", "k3", "", ",", "token_k1,token_k1"),
      fc.constantFrom("seq_max_k2, seq_mean_k2", "token_k1,seq_sum_k3", " seq_sum_k2 ", null),
      fc.string({ maxLength: 8 }),
    );
    hostile(
      fc.record({
        rollout_is: fc.constantFrom("token", "sequence", null, "tok", ""),
        rollout_is_threshold: spec,
        rollout_is_batch_normalize: fc.boolean(),
        rollout_rs: options,
        rollout_rs_threshold: spec,
        loss_type: fc.constantFrom("ppo_clip", "reinforce", "ppo"),
        bypass: fc.boolean(),
      }),
      ({ bypass, ...rc }) => {
        const config = bypass
          ? { actor: { policy_loss: { loss_mode: "bypass_mode", rollout_correction: rc } } }
          : { algorithm: { adv_estimator: "grpo", rollout_correction: rc } };
        expectRefusedOrUsable(attempt(() => fromVerlConfig(config as never)));
      },
      2000,
    );
  });

  it.each([
    [{ use_vllm: true, vllm_importance_sampling_clip_max: Number.NaN }, "config.vllm_importance_sampling_clip_max"],
    [{ use_vllm: true, vllm_importance_sampling_clip_min: -1 }, "config.vllm_importance_sampling_clip_min"],
    [{ use_vllm: true, vllm_importance_sampling_clip_max: 0 }, "config.vllm_importance_sampling_clip_max"],
    [{ use_vllm: true, vllm_importance_sampling_cap: Number.POSITIVE_INFINITY }, "config.vllm_importance_sampling_cap"],
    [{ use_vllm: true, vllm_importance_sampling_mode: "token" }, "config.vllm_importance_sampling_mode"],
    [{ use_vllm: true, vllm_importance_sampling_mode: null }, "config.vllm_importance_sampling_mode"],
    [{ off_policy_mask_threshold: Number.NaN }, "config.off_policy_mask_threshold"],
    [{ off_policy_mask_threshold: "0.5" }, "config.off_policy_mask_threshold"],
    [{ top_entropy_quantile: -0.1 }, "config.top_entropy_quantile"],
    [{ top_entropy_quantile: 0 }, "config.top_entropy_quantile"],
    [{ multi_objective_aggregation: "sum" }, "config.multi_objective_aggregation"],
    [{ reward_weights: [Number.POSITIVE_INFINITY] }, "config.reward_weights[0]"],
  ] as const)("TRL %j → %s", (config, path) => {
    expectRefusedAt(
      attempt(() => fromTrlConfig(config as never)),
      path,
    );
  });

  it.each([
    [{ epsilon: Number.NaN }, "config.epsilon"],
    [{ epsilon: Number.POSITIVE_INFINITY }, "config.epsilon"],
    [{ beta: Number.NEGATIVE_INFINITY }, "config.beta"],
    [{ epsilon: 1.5 }, "config.epsilon"],
    [{ num_generations: 0 }, "config.num_generations"],
    [{ num_generations: 2.5 }, "config.num_generations"],
    [{ gradient_accumulation_steps: -1 }, "config.gradient_accumulation_steps"],
    [{ reward_weights: [1, Number.NaN] }, "config.reward_weights[1]"],
    [{ temperature: 0 }, "config.temperature"],
    [{ top_entropy_quantile: 2 }, "config.top_entropy_quantile"],
    [{ loss_type: 3 }, "config.loss_type"],
    [{ scale_rewards: null }, "config.scale_rewards"],
  ] as const)("TRL %j → %s", (config, path) => {
    expectRefusedAt(
      attempt(() => fromTrlConfig(config as never)),
      path,
    );
  });

  it.each([
    [{ actor: { clip_ratio_high: Number.NaN } }, "config.actor.clip_ratio_high"],
    [{ actor: { clip_ratio: -0.1 } }, "config.actor.clip_ratio"],
    [{ actor: { clip_ratio_c: 1 } }, "config.actor.clip_ratio_c"],
    [{ actor: { clip_ratio_low: 1.5 } }, "config.actor.clip_ratio_low"],
    [{ actor: { clip_ratio: 1.5, clip_ratio_low: null } }, "config.actor.clip_ratio"],
    [{ actor: { tau_pos: 0, policy_loss: { loss_mode: "sapo" } } }, "config.actor.tau_pos"],
    [{ actor: { kl_loss_coef: Number.POSITIVE_INFINITY } }, "config.actor.kl_loss_coef"],
    [{ actor: { global_batch_info: { dp_size: 0 } } }, "config.actor.global_batch_info.dp_size"],
    [{ actor: { global_batch_info: { batch_num_tokens: 1.5 } } }, "config.actor.global_batch_info.batch_num_tokens"],
    [{ actor: { policy_loss: { loss_mode: "sapo" }, tau_neg: 0 } }, "config.actor.tau_neg"],
    [{ algorithm: { adv_estimator: "grpo", gamma: Number.NaN } }, "config.algorithm.gamma"],
    [
      { algorithm: { adv_estimator: "grpo", norm_adv_by_std_in_grpo: "yes" } },
      "config.algorithm.norm_adv_by_std_in_grpo",
    ],
    [{ algorithm: { adv_estimator: "ppo" } }, "config.algorithm.adv_estimator"],
    [{ algorithm: { adv_estimator: "gae", gamma: 2 } }, "config.algorithm.gamma"],
    [{ algorithm: { adv_estimator: "gae", lam: -0.5 } }, "config.algorithm.lam"],
    [{ algorithm: { adv_estimator: "reinforce_plus_plus", gamma: 1.5 } }, "config.algorithm.gamma"],
    [{ algorithm: { adv_estimator: "gae", lam: Number.POSITIVE_INFINITY } }, "config.algorithm.lam"],
    [{ algorithm: { adv_estimator: "gdpo", gdpo_reward_keys: [] } }, "config.algorithm.gdpo_reward_keys"],
    [{ algorithm: { adv_estimator: "gdpo", gdpo_reward_keys: [1] } }, "config.algorithm.gdpo_reward_keys[0]"],
    [
      { algorithm: { adv_estimator: "gdpo", gdpo_reward_keys: ["a"], gdpo_reward_weights: [Number.NaN] } },
      "config.algorithm.gdpo_reward_weights[0]",
    ],
    [{ actor: { policy_loss: { loss_mode: "dro", dro_beta: Number.NaN } } }, "config.actor.policy_loss.dro_beta"],
    [{ actor: { policy_loss: { loss_mode: "dro", dro_beta: 0 } } }, "config.actor.policy_loss.dro_beta"],
    [{ actor: { policy_loss: { loss_mode: "dro" } } }, "config.actor.policy_loss.dro_beta"],
    [{ actor: { policy_loss: { loss_mode: "kl_cov", kl_cov_ratio: 0 } } }, "config.actor.policy_loss.kl_cov_ratio"],
    [{ actor: { policy_loss: { loss_mode: "kl_cov", ppo_kl_coef: -1 } } }, "config.actor.policy_loss.ppo_kl_coef"],
    [
      { actor: { policy_loss: { loss_mode: "clip_cov", clip_cov_lb: 5, clip_cov_ub: 1 } } },
      "config.actor.policy_loss.clip_cov_ub",
    ],
    [{ actor: { clip_ratio_c: 0, policy_loss: { loss_mode: "dppo_tv" } } }, "config.actor.clip_ratio_c"],
    [{ actor: { loss_agg_mode: "token_sum" } }, "config.actor.loss_agg_mode"],
    [{ actor: { use_kl_loss: true, kl_loss_type: "k4+" } }, "config.actor.kl_loss_type"],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_is_threshold: "abc" } } },
      "config.algorithm.rollout_correction.rollout_is_threshold",
    ],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_is_threshold: "5.0_0.5" } } },
      "config.algorithm.rollout_correction.rollout_is_threshold",
    ],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_is_threshold: Number.NaN } } },
      "config.algorithm.rollout_correction.rollout_is_threshold",
    ],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_is: "both" } } },
      "config.algorithm.rollout_correction.rollout_is",
    ],
    [
      { algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_rs: "token_k3" } } },
      "config.algorithm.rollout_correction.rollout_rs_threshold",
    ],
    [
      {
        algorithm: {
          adv_estimator: "grpo",
          rollout_correction: { rollout_rs: "token_k3,seq_mean_k3", rollout_rs_threshold: "1,2,3" },
        },
      },
      "config.algorithm.rollout_correction.rollout_rs_threshold",
    ],
    [
      {
        algorithm: { adv_estimator: "grpo", rollout_correction: { rollout_rs: "seq_max_k1", rollout_rs_threshold: 2 } },
      },
      "config.algorithm.rollout_correction.rollout_rs",
    ],
    [
      {
        algorithm: {
          adv_estimator: "grpo",
          rollout_correction: { rollout_rs: "token_k3,token_k3", rollout_rs_threshold: 2 },
        },
      },
      "config.algorithm.rollout_correction.rollout_rs",
    ],
    [
      { actor: { policy_loss: { loss_mode: "bypass_mode", rollout_correction: { loss_type: "ppo" } } } },
      "config.actor.policy_loss.rollout_correction.loss_type",
    ],
    [{ algorithm: { use_kl_in_reward: "true" } }, "config.algorithm.use_kl_in_reward"],
    [{ algorithm: { use_kl_in_reward: true, kl_penalty: null } }, "config.algorithm.kl_penalty"],
    [{ algorithm: { use_kl_in_reward: true, kl_penalty: "KL" } }, "config.algorithm.kl_penalty"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: { kl_coef: Number.NaN } } }, "config.algorithm.kl_ctrl.kl_coef"],
    [
      { algorithm: { use_kl_in_reward: true, kl_ctrl: { kl_coef: Number.POSITIVE_INFINITY } } },
      "config.algorithm.kl_ctrl.kl_coef",
    ],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: { kl_coef: -1e-3 } } }, "config.algorithm.kl_ctrl.kl_coef"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: { kl_coef: "0.001" } } }, "config.algorithm.kl_ctrl.kl_coef"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: { type: "Adaptive" } } }, "config.algorithm.kl_ctrl.type"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: { type: null } } }, "config.algorithm.kl_ctrl.type"],
    [
      { algorithm: { use_kl_in_reward: true, kl_ctrl: { type: "adaptive", horizon: -10 } } },
      "config.algorithm.kl_ctrl.horizon",
    ],
    [
      { algorithm: { use_kl_in_reward: true, kl_ctrl: { type: "adaptive", horizon: Number.POSITIVE_INFINITY } } },
      "config.algorithm.kl_ctrl.horizon",
    ],
    [
      { algorithm: { use_kl_in_reward: true, kl_ctrl: { type: "adaptive", target_kl: Number.NaN } } },
      "config.algorithm.kl_ctrl.target_kl",
    ],
    [
      { algorithm: { use_kl_in_reward: true, kl_ctrl: { type: "adaptive", target_kl: 0 } } },
      "config.algorithm.kl_ctrl.target_kl",
    ],
  ] as const)("verl %j → %s", (config, path) => {
    expectRefusedAt(
      attempt(() => fromVerlConfig(config as never)),
      path,
    );
  });
});

describe("class 3: nulls and non-objects where an object belongs", () => {
  it.each([null, undefined, 42, "dapo", [], [1], true])("fromTrlConfig(%j) is refused at config", (config) => {
    expectRefusedAt(
      attempt(() => fromTrlConfig(config as never)),
      "config",
    );
  });

  it.each([null, undefined, 42, "x", []])("fromVerlConfig(%j) is refused at config", (config) => {
    expectRefusedAt(
      attempt(() => fromVerlConfig(config as never)),
      "config",
    );
  });

  it.each([
    [{ actor: null }, "config.actor"],
    [{ algorithm: null }, "config.algorithm"],
    [{ actor: { policy_loss: null } }, "config.actor.policy_loss"],
    [{ actor: { global_batch_info: null } }, "config.actor.global_batch_info"],
    [{ actor: { policy_loss: { loss_mode: null } } }, "config.actor.policy_loss.loss_mode"],
    [{ actor: [] }, "config.actor"],
    [{ algorithm: { kl_ctrl: null } }, "config.algorithm.kl_ctrl"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: [] } }, "config.algorithm.kl_ctrl"],
    [{ algorithm: { use_kl_in_reward: true, kl_ctrl: 0.001 } }, "config.algorithm.kl_ctrl"],
  ] as const)("verl %j → %s", (config, path) => {
    expectRefusedAt(
      attempt(() => fromVerlConfig(config as never)),
      path,
    );
  });

  it("nested nulls anywhere in a verl config: refused under config, or usable", () => {
    const nullish = fc.oneof(fc.constant(null), fc.constant({}), fc.constant([]), fc.constant({ x: null }));
    hostile(
      fc.record(
        {
          actor: fc.option(
            fc.record(
              { policy_loss: nullish, global_batch_info: nullish, loss_agg_mode: fc.constant(null) },
              { requiredKeys: [] },
            ),
          ),
          algorithm: fc.option(fc.record({ rollout_correction: nullish, adv_estimator: fc.constant("grpo") })),
        },
        { requiredKeys: [] },
      ),
      (config) => expectRefusedOrUsable(attempt(() => fromVerlConfig(config as never))),
    );
  });

  it("a null rollout_correction (the YAML's) is no rollout correction", () => {
    const outcome = attempt(() => fromVerlConfig({ algorithm: { adv_estimator: "grpo", rollout_correction: null } }));
    expect(outcome.ok).toBe(true);
  });
});
