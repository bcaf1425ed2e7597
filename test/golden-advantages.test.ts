import { describe, expect, it } from "vitest";
import { advantages, broadcastToTokens, fromTrlConfig, fromVerlConfig, type TrlConfig } from "../src/index.js";
import { expectAllClose, flatten, FLOAT64_TOLERANCE, loadGolden, type GoldenCase } from "./helpers/golden.js";

/** The adv_estimator (verl's AdvantageEstimator) whose function each golden case ran. */
const ESTIMATOR_OF: Record<string, string> = {
  compute_grpo_outcome_advantage: "grpo",
  compute_rloo_outcome_advantage: "rloo",
  compute_rloo_vectorized_outcome_advantage: "rloo_vectorized",
};
/**
 * The file's other estimators, by golden function, and the grpo-roc function fromVerlConfig names for each (their
 * values are matched in golden-advantages-outcome.test.ts and golden-token-advantages.test.ts).
 */
const OTHER_ESTIMATOR_OF: Record<string, { adv_estimator: string; function: string }> = {
  compute_grpo_vectorized_outcome_advantage: { adv_estimator: "grpo_vectorized", function: "advantages" },
  compute_grpo_passk_outcome_advantage: { adv_estimator: "grpo_passk", function: "advantages" },
  compute_opo_outcome_advantage: { adv_estimator: "opo", function: "opoAdvantages" },
  compute_reinforce_plus_plus_baseline_outcome_advantage: {
    adv_estimator: "reinforce_plus_plus_baseline",
    function: "reinforcePlusPlusBaselineAdvantages",
  },
  compute_gpg_outcome_advantage: { adv_estimator: "gpg", function: "gpgAdvantages" },
  compute_reinforce_plus_plus_outcome_advantage: {
    adv_estimator: "reinforce_plus_plus",
    function: "reinforcePlusPlusAdvantages",
  },
  compute_gae_advantage_return: { adv_estimator: "gae", function: "gaeAdvantages" },
  compute_remax_outcome_advantage: { adv_estimator: "remax", function: "remaxAdvantages" },
};

/**
 * A golden case's AlgoConfig: its estimator, and norm_adv_by_std_in_grpo (a kwarg of the GRPO functions, read from
 * the config by pass@k). `epsilon` is a kwarg verl never sets from the config: always 1e-6.
 */
function algorithmOf(c: GoldenCase, estimators: Record<string, string>) {
  const h = c.hyperparameters;
  if (h.epsilon !== undefined) expect(h.epsilon).toBe(1e-6);
  const norm = h.norm_adv_by_std_in_grpo ?? h["config.norm_adv_by_std_in_grpo"];
  return {
    adv_estimator: estimators[c.function]!,
    ...(norm !== undefined ? { norm_adv_by_std_in_grpo: norm as boolean } : {}),
  };
}

describe("verl advantages (verl_advantages.json)", () => {
  const file = loadGolden("verl_advantages.json");
  const cases = file.cases.filter((c) => c.function in ESTIMATOR_OF);

  it("covers the GRPO, Dr. GRPO and both RLOO estimators", () => {
    expect(cases.length).toBeGreaterThanOrEqual(28);
  });

  it("fromVerlConfig names the function of every other estimator of the file", () => {
    const others = file.cases.filter((c) => c.function in OTHER_ESTIMATOR_OF);
    expect(others.length).toBeGreaterThan(0);
    const estimators = Object.fromEntries(
      Object.entries(OTHER_ESTIMATOR_OF).map(([fn, { adv_estimator }]) => [fn, adv_estimator]),
    );
    for (const c of others) {
      const translation = fromVerlConfig({ algorithm: algorithmOf(c, estimators) }, { verlVersion: "b178a3c" });
      expect(translation.advantageEstimator?.function, c.id).toBe(OTHER_ESTIMATOR_OF[c.function]!.function);
      expect(translation.advantages !== undefined, c.id).toBe(
        translation.advantageEstimator?.function === "advantages",
      );
    }
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const tokenRewards = c.inputs.token_level_rewards as number[][];
    const mask = c.inputs.response_mask as number[][];
    // verl's outcome score: the sum over every column, mask or not.
    const scores = tokenRewards.map((row) => row.reduce((a, b) => a + b, 0));
    const options = fromVerlConfig({ algorithm: algorithmOf(c, ESTIMATOR_OF) }).advantages!;
    const perRollout = advantages(scores, c.inputs.index as string[], options);
    const perToken = broadcastToTokens(perRollout, mask);
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(perToken.data, flatten(c.outputs.advantages as number[][]), tolerance, `${c.id} advantages`);
  });
});

describe("TRL advantages (trl_advantages.json)", () => {
  const file = loadGolden("trl_advantages.json");
  const cases = file.cases.filter((c) => c.hyperparameters.multi_objective_aggregation === "sum_then_normalize");

  it("covers every scale_rewards mode, G = 1 to 16, None rewards", () => {
    expect(cases.length).toBeGreaterThanOrEqual(21);
  });

  it("normalize_then_sum has no advantages options: only multiRewardAdvantages computes it", () => {
    // This file's copy holds no normalize_then_sum case (trl2_advantages.json has them, matched through
    // fromTrlConfig's multiReward in golden-advantages-outcome.test.ts).
    const translation = fromTrlConfig({
      num_generations: 4,
      scale_rewards: "group",
      multi_objective_aggregation: "normalize_then_sum",
    });
    expect(translation.advantages).toBeUndefined();
    expect(translation.multiReward.aggregation).toBe("normalize_then_sum");
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const perFunction = c.inputs.rewards_per_func as number[][];
    const translation = fromTrlConfig(c.hyperparameters as TrlConfig);
    const weights = translation.rewardWeights ?? perFunction[0]!.map(() => 1);
    const G = translation.groupSize;
    // TRL's reward combination (weighted nansum; a row where every function returned None is NaN) is the
    // trainer's business, done here; the library's part is the advantage of the combined reward.
    const rewards = perFunction.map((row) =>
      row.every(Number.isNaN) ? NaN : row.reduce((acc, r, k) => (Number.isNaN(r) ? acc : acc + r * weights[k]!), 0),
    );
    const groupIds = rewards.map((_, i) => Math.floor(i / G));
    const actual = advantages(rewards, groupIds, translation.advantages!);
    expectAllClose(actual, c.outputs.advantages as number[], c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
  });
});
