import { describe, expect, it } from "vitest";
import { advantagePresets, advantages, broadcastToTokens, type AdvantageOptionsInput } from "../src/index.js";
import { expectAllClose, flatten, FLOAT64_TOLERANCE, loadGolden, type GoldenCase } from "./helpers/golden.js";

describe("verl advantages (verl_advantages.json)", () => {
  const presetFor: Record<string, (c: GoldenCase) => AdvantageOptionsInput> = {
    compute_grpo_outcome_advantage: (c) =>
      c.hyperparameters.norm_adv_by_std_in_grpo ? advantagePresets.verl : advantagePresets.verlNoStd,
    compute_rloo_outcome_advantage: () => advantagePresets.verlRloo,
    compute_rloo_vectorized_outcome_advantage: () => advantagePresets.verlRlooVectorized,
  };
  const cases = loadGolden("verl_advantages.json").cases.filter((c) => c.function in presetFor);

  it("covers the GRPO, Dr. GRPO and both RLOO estimators", () => {
    expect(cases.length).toBeGreaterThanOrEqual(28);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const tokenRewards = c.inputs.token_level_rewards as number[][];
    const mask = c.inputs.response_mask as number[][];
    // verl's outcome score: the sum over every column, mask or not.
    const scores = tokenRewards.map((row) => row.reduce((a, b) => a + b, 0));
    const perRollout = advantages(scores, c.inputs.index as string[], presetFor[c.function]!(c));
    const perToken = broadcastToTokens(perRollout, mask);
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(perToken.data, flatten(c.outputs.advantages as number[][]), tolerance, `${c.id} advantages`);
  });
});

describe("TRL advantages (trl_advantages.json)", () => {
  const presetFor = (scale: unknown): AdvantageOptionsInput => {
    if (scale === "group" || scale === true) return advantagePresets.trl;
    if (scale === "batch") return advantagePresets.trlBatch;
    if (scale === "none" || scale === false) return advantagePresets.trlNoStd;
    throw new Error(`unknown scale_rewards ${String(scale)}`);
  };
  const cases = loadGolden("trl_advantages.json").cases.filter(
    (c) => c.hyperparameters.multi_objective_aggregation === "sum_then_normalize",
  );

  it("covers every scale_rewards mode, G = 1 to 16, None rewards", () => {
    expect(cases.length).toBeGreaterThanOrEqual(21);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const perFunction = c.inputs.rewards_per_func as number[][];
    const weights = c.hyperparameters.reward_weights as number[];
    const G = c.hyperparameters.num_generations as number;
    // TRL's reward combination (weighted nansum; a row where every function returned None is NaN) is the
    // trainer's business, done here; the library's part is the advantage of the combined reward.
    const rewards = perFunction.map((row) =>
      row.every(Number.isNaN) ? NaN : row.reduce((acc, r, k) => (Number.isNaN(r) ? acc : acc + r * weights[k]!), 0),
    );
    const groupIds = rewards.map((_, i) => Math.floor(i / G));
    const actual = advantages(rewards, groupIds, presetFor(c.hyperparameters.scale_rewards));
    expectAllClose(actual, c.outputs.advantages as number[], c.tolerance ?? FLOAT64_TOLERANCE, `${c.id} advantages`);
  });
});
