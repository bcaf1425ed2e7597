/**
 * The bad-input contract for fromTrlConfig and fromVerlConfig: strict keys at every level (class 1), wrong types,
 * NaN/±Infinity and out-of-range numbers (class 2), nulls and non-objects where objects belong (class 3). Every case
 * ends in a ValidationError (a GrpoRocError) whose path starts at `config`, or in options that grpo-roc's own schemas
 * accept, with finite numbers: a translation never hands a bad value on.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantageOptionsSchema,
  fromTrlConfig,
  fromVerlConfig,
  GrpoRocError,
  policyLossOptionsSchema,
  trlConfigSchema,
  TRL_UNUSED_KEYS,
  ValidationError,
  verlConfigSchema,
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
] as const;

/** A returned translation is one grpo-roc's schemas accept, with finite numbers (clamp bounds may be ±Infinity). */
function expectUsable(translation: { loss?: unknown; advantages?: unknown }): void {
  if (translation.loss !== undefined) {
    const parsed = policyLossOptionsSchema.safeParse(translation.loss);
    expect(parsed.success, JSON.stringify(translation.loss)).toBe(true);
    const { logRatioClamp: _clamp, ...rest } = translation.loss as Record<string, unknown>;
    expectAllFinite(rest, "loss");
  }
  if (translation.advantages !== undefined)
    expect(advantageOptionsSchema.safeParse(translation.advantages).success).toBe(true);
}

/** Refused with a ValidationError at a path under `config`, or returned usable options. */
function expectRefusedOrUsable(outcome: Outcome<{ loss?: unknown; advantages?: unknown }>): void {
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
