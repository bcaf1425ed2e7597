/**
 * verl's and TRL's other outcome-level estimators against the peers' own values: pass@k, GPG, OPO,
 * REINFORCE++-baseline and the vectorised GRPO (verl b178a3c, verl_advantages.json), the vectorised GRPO and GDPO at
 * verl 1dda039 (verl2_advantages.json), and TRL's reward weights and normalize_then_sum (trl_advantages.json,
 * trl2_advantages.json). Every value is compared at 1e-12, float32 cases included: the library copies the peers'
 * float32 steps. The one exception is GDPO's float32 path, at its case's own tolerance (torch's float32 reductions).
 */
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  broadcastToTokens,
  gdpoAdvantages,
  gdpoPresets,
  gpgAdvantages,
  multiRewardAdvantages,
  multiRewardPresets,
  opoAdvantages,
  reinforcePlusPlusBaselineAdvantages,
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

/** The registry estimators: a preset each, then `advantages` and `broadcastToTokens`, as a verl user calls them. */
const registryPresets: Record<string, (c: GoldenCase) => AdvantageOptionsInput> = {
  compute_grpo_passk_outcome_advantage: (c) =>
    normalises(c) ? advantagePresets.verlPassK : advantagePresets.verlPassKNoStd,
  compute_grpo_vectorized_outcome_advantage: (c) =>
    normalises(c) ? advantagePresets.verlGrpoVectorizedB178a3c : advantagePresets.verlGrpoVectorizedB178a3cNoStd,
};

function runRegistry(c: GoldenCase, options: AdvantageOptionsInput): number[] {
  const perRollout = advantages(scoresOf(c), c.inputs.index as string[], options);
  return Array.from(broadcastToTokens(perRollout, maskOf(c)).data);
}

describe("verl b178a3c outcome estimators (verl_advantages.json)", () => {
  const all = loadGolden("verl_advantages.json").cases;
  const byFunction = (name: string) => all.filter((c) => c.function === name);

  for (const [fn, presetOf] of Object.entries(registryPresets)) {
    const cases = byFunction(fn);
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
    const perRollout = gpgAdvantages(scoresOf(c), c.inputs.index as string[]);
    const perToken = broadcastToTokens(perRollout, maskOf(c)).data;
    expectAllClose(perToken, expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  const opo = byFunction("compute_opo_outcome_advantage");
  it.each(opo.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const lengths = maskOf(c).map((row) => row.reduce((a, b) => a + b, 0));
    const perRollout = opoAdvantages(scoresOf(c), c.inputs.index as string[], lengths);
    const perToken = broadcastToTokens(perRollout, maskOf(c)).data;
    expectAllClose(perToken, expectedAdvantages(c), FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  const baseline = byFunction("compute_reinforce_plus_plus_baseline_outcome_advantage");
  it.each(baseline.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const actual = reinforcePlusPlusBaselineAdvantages(scoresOf(c), c.inputs.index as string[], maskOf(c));
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
    const options = normalises(c) ? advantagePresets.verlGrpoVectorized : advantagePresets.verlGrpoVectorizedNoStd;
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
      // verl's fallback: the float64 token-level scores as the one reward dimension.
      const actual = gdpoAdvantages(
        scoresOf(c).map((s) => [s]),
        ids,
        maskOf(c),
        { ...gdpoPresets.verlFallback, scaleByStd: normalises(c) },
      );
      expectAllClose(actual.data, expectedAdvantages(c), c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
      return;
    }
    const keys = config.gdpo_reward_keys ?? [];
    const byKey = c.inputs.non_tensor_batch as Record<string, number[]>;
    const rows = ids.map((_, b) => keys.map((key) => byKey[key]![b]!));
    const run = () =>
      gdpoAdvantages(rows, ids, maskOf(c), {
        ...gdpoPresets.verl,
        scaleByStd: normalises(c),
        ...(config.gdpo_reward_weights === null ? {} : { rewardWeights: config.gdpo_reward_weights }),
      });
    if ("error" in c.outputs) {
      // verl: AssertionError, GDPO requires algorithm.gdpo_reward_keys.
      expect(run).toThrow(ValidationError);
      expect(run).toThrow(/rewardsPerKey: has no reward function/);
      return;
    }
    expect(c.tolerance).toBeDefined();
    expectAllClose(run().data, expectedAdvantages(c), c.tolerance!, `${c.id} advantages`);
  });

  it("covers the changed vectorised GRPO and GDPO", () => {
    expect(vectorized.length).toBe(3);
    expect(gdpo.length).toBe(4);
  });
});

/** TRL's rewards_per_func: NaN stands for None. */
function trlCase(c: GoldenCase) {
  const G = c.hyperparameters.num_generations as number;
  const perFunc = c.inputs.rewards_per_func as number[][];
  const scale = c.hyperparameters.scale_rewards;
  return {
    perFunc,
    groupIds: perFunc.map((_, i) => Math.floor(i / G)),
    options: {
      aggregation: c.hyperparameters.multi_objective_aggregation as "sum_then_normalize" | "normalize_then_sum",
      rewardWeights: c.hyperparameters.reward_weights as number[],
      // TRL's legacy booleans: True = "group", False = "none".
      scaleRewards: (scale === true ? "group" : scale === false ? "none" : scale) as "group" | "batch" | "none",
    },
  };
}

describe("TRL multiple reward functions (trl_advantages.json, trl2_advantages.json)", () => {
  const cases = [...loadGolden("trl_advantages.json").cases, ...loadGolden("trl2_advantages.json").cases];

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const { perFunc, groupIds, options } = trlCase(c);
    const preset =
      options.aggregation === "normalize_then_sum" ? multiRewardPresets.trlNormalizeThenSum : multiRewardPresets.trl;
    const actual = multiRewardAdvantages(perFunc, groupIds, { ...preset, ...options });
    expectAllClose(actual, c.outputs.advantages as number[], c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
  });

  it("covers both aggregations, weights and None rewards", () => {
    expect(cases.filter((c) => c.hyperparameters.multi_objective_aggregation === "normalize_then_sum").length).toBe(4);
    expect(cases.length).toBe(25);
  });
});
