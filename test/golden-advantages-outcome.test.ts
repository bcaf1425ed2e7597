/**
 * verl's and TRL's other outcome-level estimators against the peers' own values: pass@k, GPG, OPO,
 * REINFORCE++-baseline and the vectorised GRPO (verl b178a3c, verl_advantages.json), the vectorised GRPO and GDPO at
 * verl 1dda039 (verl2_advantages.json), and TRL's reward weights and normalize_then_sum (trl_advantages.json,
 * trl2_advantages.json). Every value is compared at 1e-12, float32 cases included: the library copies the peers'
 * float32 steps. The one exception is GDPO's float32 path, at its case's own tolerance (torch's float32 reductions).
 * Every case's options come from fromVerlConfig / fromTrlConfig of its hyperparameters, at its file's verl commit.
 */
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  broadcastToTokens,
  fromTrlConfig,
  fromVerlConfig,
  gdpoAdvantages,
  gdpoPresets,
  gpgAdvantages,
  multiRewardAdvantages,
  opoAdvantages,
  reinforcePlusPlusBaselineAdvantages,
  type TrlConfig,
  ValidationError,
  type AdvantageOptionsInput,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, flatten, type GoldenCase, loadGolden } from "./helpers/golden.js";

/** verl's outcome score: the sum over every column, mask or not. */
function scoresOf(c: GoldenCase): number[] {
  return (c.inputs.token_level_rewards as number[][]).map((row) => row.reduce((a, b) => a + b, 0));
}

function maskOf(c: GoldenCase): number[][] {
  return c.inputs.response_mask as number[][];
}

function expectedAdvantages(c: GoldenCase): number[] {
  return flatten(c.outputs.advantages as number[][]);
}

const normalises = (c: GoldenCase) =>
  (c.hyperparameters.norm_adv_by_std_in_grpo ?? c.hyperparameters["config.norm_adv_by_std_in_grpo"]) === true;

/** The case's AlgoConfig: its estimator, and norm_adv_by_std_in_grpo (a kwarg, or config.* for pass@k). */
function algorithmOf(c: GoldenCase, adv_estimator: string) {
  return { adv_estimator, norm_adv_by_std_in_grpo: normalises(c) };
}

/** The registry estimators: fromVerlConfig's `advantages` at the file's verl commit, then `broadcastToTokens`. */
const registryEstimators: Record<string, string> = {
  compute_grpo_passk_outcome_advantage: "grpo_passk",
  compute_grpo_vectorized_outcome_advantage: "grpo_vectorized",
};

/** fromVerlConfig's translation of the case's AlgoConfig at a verl commit. */
function translate(c: GoldenCase, adv_estimator: string, verlVersion: "b178a3c" | "1dda039") {
  return fromVerlConfig({ algorithm: algorithmOf(c, adv_estimator) }, { verlVersion });
}

function runRegistry(c: GoldenCase, options: AdvantageOptionsInput): number[] {
  const perRollout = advantages(scoresOf(c), c.inputs.index as string[], options);
  return Array.from(broadcastToTokens(perRollout, maskOf(c)).data);
}

describe("verl b178a3c outcome estimators (verl_advantages.json)", () => {
  const all = loadGolden("verl_advantages.json").cases;
  const byFunction = (name: string) => all.filter((c) => c.function === name);

  for (const [fn, estimator] of Object.entries(registryEstimators)) {
    const cases = byFunction(fn);
    const presetOf = (c: GoldenCase) => translate(c, estimator, "b178a3c").advantages!;
    it(`${fn}: has cases`, () => expect(cases.length).toBeGreaterThan(0));
    it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
      if ("error" in c.outputs) {
        // verl raises: pass@k needs two rollouts per group.
        expect(() => runRegistry(c, presetOf(c))).toThrow(ValidationError);
        expect(() => runRegistry(c, presetOf(c))).toThrow(/pass@k .* needs at least 2 per group/);
        return;
      }
      // 1e-12 even where the case suggests 1e-5: the float32 statistics are reproduced step by step.
      expectAllClose(runRegistry(c, presetOf(c)), expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
    });
  }

  const gpg = byFunction("compute_gpg_outcome_advantage");
  it.each(gpg.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const estimator = translate(c, "gpg", "b178a3c").advantageEstimator!;
    if (estimator.function !== "gpgAdvantages") throw new Error(estimator.function);
    expect(c.hyperparameters.f_norm).toBe(1); // verl's trainer passes no f_norm: 1
    const perRollout = gpgAdvantages(scoresOf(c), c.inputs.index as string[], estimator.options);
    const perToken = broadcastToTokens(perRollout, maskOf(c)).data;
    expectAllClose(perToken, expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  const opo = byFunction("compute_opo_outcome_advantage");
  it.each(opo.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const lengths = maskOf(c).map((row) => row.reduce((a, b) => a + b, 0));
    const estimator = translate(c, "opo", "b178a3c").advantageEstimator!;
    if (estimator.function !== "opoAdvantages") throw new Error(estimator.function);
    const perRollout = opoAdvantages(scoresOf(c), c.inputs.index as string[], lengths, estimator.options);
    const perToken = broadcastToTokens(perRollout, maskOf(c)).data;
    expectAllClose(perToken, expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  const baseline = byFunction("compute_reinforce_plus_plus_baseline_outcome_advantage");
  it.each(baseline.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const estimator = translate(c, "reinforce_plus_plus_baseline", "b178a3c").advantageEstimator!;
    if (estimator.function !== "reinforcePlusPlusBaselineAdvantages") throw new Error(estimator.function);
    const actual = reinforcePlusPlusBaselineAdvantages(
      scoresOf(c),
      c.inputs.index as string[],
      maskOf(c),
      estimator.options,
    );
    expectAllClose(actual.data, expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  it("covers GPG, OPO and REINFORCE++-baseline", () => {
    expect(gpg.length).toBe(7);
    expect(opo.length).toBe(7);
    expect(baseline.length).toBe(8);
  });
});

describe("verl 1dda039 (verl2_advantages.json)", () => {
  const all = loadGolden("verl2_advantages.json").cases;

  const vectorized = all.filter((c) => c.function === "compute_grpo_vectorized_outcome_advantage");
  it.each(vectorized.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const options = translate(c, "grpo_vectorized", "1dda039").advantages!;
    expect(options.estimator).toBe("grpo_vectorized");
    expectAllClose(runRegistry(c, options), expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  it("the vectorised GRPO gives verl's −0.001490116117595832 to an all-equal 0.1 group only when named", () => {
    const rewards = [0.1, 0.1, 0.1, 0.1];
    const ids = ["a", "a", "a", "a"];
    expect(Array.from(advantages(rewards, ids, advantagePresets.verlGrpoVectorized))).toEqual(
      Array(4).fill(-0.001490116117595832),
    );
    expect(Array.from(advantages(rewards, ids))).toEqual([0, 0, 0, 0]);
    expect(Array.from(advantages(rewards, ids, advantagePresets.verl))).toEqual([0, 0, 0, 0]);
  });

  const gdpo = all.filter((c) => c.function === "compute_gdpo_outcome_advantage");
  it.each(gdpo.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const ids = c.inputs.index as string[];
    const config = c.hyperparameters.config as {
      gdpo_reward_keys: string[] | null;
      gdpo_reward_weights: number[] | null;
    } | null;
    if (config === null) {
      // verl's fallback when the function gets no config (its trainer always passes one, so no config reaches it):
      // the float64 token-level scores as the one reward dimension.
      const actual = gdpoAdvantages(
        scoresOf(c).map((s) => [s]),
        ids,
        maskOf(c),
        { ...gdpoPresets.verlFallback, scaleByStd: normalises(c) },
      );
      expectAllClose(actual.data, expectedAdvantages(c), c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
      return;
    }
    // The multi-key path: the case's AlgoConfig (gdpo_reward_keys, gdpo_reward_weights) through fromVerlConfig.
    const translate = () =>
      fromVerlConfig({
        algorithm: {
          adv_estimator: "gdpo",
          norm_adv_by_std_in_grpo: normalises(c),
          gdpo_reward_keys: config.gdpo_reward_keys,
          gdpo_reward_weights: config.gdpo_reward_weights,
        },
      }).advantageEstimator!;
    if ("error" in c.outputs) {
      // verl: AssertionError, GDPO requires algorithm.gdpo_reward_keys; the translation refuses it there.
      expect(translate).toThrow(ValidationError);
      expect(translate).toThrow(/config\.algorithm\.gdpo_reward_keys/);
      return;
    }
    const estimator = translate();
    if (estimator.function !== "gdpoAdvantages") throw new Error(estimator.function);
    const byKey = c.inputs.non_tensor_batch as Record<string, number[]>;
    const rows = ids.map((_, b) => estimator.rewardKeys.map((key) => byKey[key]![b]!));
    const run = () => gdpoAdvantages(rows, ids, maskOf(c), estimator.options);
    expect(c.tolerance).toBeDefined();
    expectAllClose(run().data, expectedAdvantages(c), c.tolerance!, `${c.id} advantages`);
  });

  it("covers the changed vectorised GRPO and GDPO", () => {
    expect(vectorized.length).toBe(3);
    expect(gdpo.length).toBe(4);
  });
});

describe("TRL multiple reward functions (trl_advantages.json, trl2_advantages.json)", () => {
  const cases = [...loadGolden("trl_advantages.json").cases, ...loadGolden("trl2_advantages.json").cases];

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    // TRL's rewards_per_func (NaN stands for None), and the GRPOConfig fields through fromTrlConfig.
    const perFunc = c.inputs.rewards_per_func as number[][];
    const translation = fromTrlConfig(c.hyperparameters as TrlConfig);
    const groupIds = perFunc.map((_, i) => Math.floor(i / translation.groupSize));
    const actual = multiRewardAdvantages(perFunc, groupIds, translation.multiReward);
    expectAllClose(actual, c.outputs.advantages as number[], c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  it("covers both aggregations, weights and None rewards", () => {
    expect(cases.filter((c) => c.hyperparameters.multi_objective_aggregation === "normalize_then_sum").length).toBe(4);
    expect(cases.length).toBe(25);
  });
});
