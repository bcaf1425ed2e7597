/**
 * verl's token-level estimators against the golden files: REINFORCE++ at both verl commits, ReMax and GAE
 * (verl_advantages.json, b178a3c), the optimal token baseline and its multi-turn variant (verl2_advantages.json,
 * 1dda039). Every case at 1e-12 (verl's float32 steps are reproduced with Math.fround), compared where mask == 1:
 * at mask 0 verl keeps raw formula values, the library 0 (checked too).
 */
import { describe, expect, it } from "vitest";
import {
  fromVerlConfig,
  gaeAdvantages,
  optimalTokenBaselineAdvantages,
  reinforcePlusPlusAdvantages,
  remaxAdvantages,
  type TokenAdvantages,
  tirOptimalTokenBaselineAdvantages,
  type VerlAdvantageEstimator,
} from "../src/index.js";
import { expectAllClose, flatten, FLOAT64_TOLERANCE, type GoldenCase, loadGolden } from "./helpers/golden.js";

type Matrix = number[][];

/** Runs a golden case through the library's function for it. */
/** The adv_estimator whose function each golden case ran. */
const ESTIMATOR_OF: Record<string, string> = {
  compute_reinforce_plus_plus_outcome_advantage: "reinforce_plus_plus",
  compute_remax_outcome_advantage: "remax",
  compute_gae_advantage_return: "gae",
  compute_optimal_token_baseline_advantage: "optimal_token_baseline",
  compute_multi_turn_optimal_token_baseline_advantage: "tir_optimal_token_baseline",
};

/**
 * The case's AlgoConfig (adv_estimator, gamma, lam) through fromVerlConfig at the file's verl commit: the function
 * to call and its options.
 */
function estimatorOf(c: GoldenCase, commit: "b178a3c" | "1dda039"): VerlAdvantageEstimator {
  const h = c.hyperparameters;
  const gamma = h.gamma ?? h["config.gamma"];
  const algorithm = {
    adv_estimator: ESTIMATOR_OF[c.function]!,
    ...(gamma !== undefined ? { gamma: gamma as number } : {}),
    ...(h.lam !== undefined ? { lam: h.lam as number } : {}),
  };
  return fromVerlConfig({ algorithm }, { verlVersion: commit }).advantageEstimator!;
}

function run(c: GoldenCase, commit: "b178a3c" | "1dda039"): TokenAdvantages {
  const estimator = estimatorOf(c, commit);
  const tokenRewards = c.inputs.token_level_rewards as Matrix;
  const mask = c.inputs.response_mask as Matrix;
  switch (estimator.function) {
    case "reinforcePlusPlusAdvantages":
      return reinforcePlusPlusAdvantages({ tokenRewards, mask }, estimator.options);
    case "remaxAdvantages":
      return remaxAdvantages(
        { tokenRewards, mask, rewardBaselines: c.inputs.reward_baselines as number[] },
        estimator.options,
      );
    case "gaeAdvantages":
      return gaeAdvantages({ tokenRewards, values: c.inputs.values as Matrix, mask }, estimator.options);
    case "optimalTokenBaselineAdvantages":
    case "tirOptimalTokenBaselineAdvantages": {
      const run =
        estimator.function === "optimalTokenBaselineAdvantages"
          ? optimalTokenBaselineAdvantages
          : tirOptimalTokenBaselineAdvantages;
      // handle_zero_tail and epsilon are keyword arguments verl's trainer never passes (no config field): the cases
      // that set them otherwise than verl's defaults (which the translation gives) override them here.
      return run(otbInputs(c), { ...estimator.options, ...otbOptions(c) });
    }
    default:
      throw new Error(`unexpected estimator ${estimator.function}`);
  }
}

function otbInputs(c: GoldenCase) {
  return {
    tokenRewards: c.inputs.token_level_rewards as Matrix,
    mask: c.inputs.response_mask as Matrix,
    groupIds: c.inputs.index as string[],
    oldLogp: c.inputs.old_log_probs as Matrix,
    sumPiSquared: c.inputs.sum_pi_squared as Matrix,
    rolloutIsWeights: c.inputs.rollout_is_weights as Matrix | undefined,
  };
}

function otbOptions(c: GoldenCase) {
  return {
    handleZeroTail: c.hyperparameters.handle_zero_tail as boolean,
    epsilon: c.hyperparameters.epsilon as number,
  };
}

function expectMatches(actual: ArrayLike<number>, expected: Matrix, mask: Matrix, label: string): void {
  const flatMask = flatten(mask);
  const expectedFlat = flatten(expected);
  const selected = (values: ArrayLike<number>) => Array.from(values).filter((_, i) => flatMask[i] === 1);
  expectAllClose(selected(actual), selected(expectedFlat), FLOAT64_TOLERANCE, label);
  const masked = Array.from(actual).filter((_, i) => flatMask[i] !== 1);
  expect(
    masked.every((v) => v === 0),
    `${label}: 0 at mask-0 positions`,
  ).toBe(true);
}

function goldenSuite(file: string, commit: "b178a3c" | "1dda039", expected: Record<string, number>): void {
  const cases = loadGolden(file).cases.filter((c) => c.function in ESTIMATOR_OF);
  it(`holds the expected cases per function (${file})`, () => {
    const counts: Record<string, number> = {};
    for (const c of cases) counts[c.function] = (counts[c.function] ?? 0) + 1;
    expect(counts).toEqual(expected);
  });
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const mask = c.inputs.response_mask as Matrix;
    const result = run(c, commit);
    const rows = mask.length;
    const cols = mask[0]!.length;
    expect(result.advantages.shape).toEqual([rows, cols]);
    expect(result.returns.shape).toEqual([rows, cols]);
    expectMatches(result.advantages.data, c.outputs.advantages as Matrix, mask, `${c.id} advantages`);
    expectMatches(result.returns.data, c.outputs.returns as Matrix, mask, `${c.id} returns`);
  });
}

describe("verl b178a3c token-level estimators (verl_advantages.json)", () => {
  goldenSuite("verl_advantages.json", "b178a3c", {
    compute_reinforce_plus_plus_outcome_advantage: 3,
    compute_gae_advantage_return: 4,
    compute_remax_outcome_advantage: 2,
  });
});

describe("verl 1dda039 token-level estimators (verl2_advantages.json)", () => {
  goldenSuite("verl2_advantages.json", "1dda039", {
    compute_reinforce_plus_plus_outcome_advantage: 3,
    compute_optimal_token_baseline_advantage: 5,
    compute_multi_turn_optimal_token_baseline_advantage: 4,
  });

  it("defaults to verl 1dda039: REINFORCE++ carries the return through a tool output, OTB zeroes the tail", () => {
    const c = loadGolden("verl2_advantages.json").cases.find(
      (x) => x.id === "verl.adv.reinforce_plus_plus.at_1dda039.multiturn_B4_T8.gamma1.0",
    )!;
    const inputs = { tokenRewards: c.inputs.token_level_rewards as Matrix, mask: c.inputs.response_mask as Matrix };
    const byDefault = reinforcePlusPlusAdvantages(inputs);
    const explicit = reinforcePlusPlusAdvantages(inputs, { verlVersion: "1dda039" });
    expect(byDefault.advantages.data).toEqual(explicit.advantages.data);
    // The same multi-turn inputs under b178a3c's reset give other values: the version matters on these masks.
    const old = reinforcePlusPlusAdvantages(inputs, { verlVersion: "b178a3c" });
    expect(old.returns.data).not.toEqual(explicit.returns.data);

    const zeroTail = loadGolden("verl2_advantages.json").cases.find(
      (x) => x.id === "verl.adv.optimal_token_baseline.otb_process_G3x2_B6_T10.zero_tail_default",
    )!;
    const defaults = optimalTokenBaselineAdvantages(otbInputs(zeroTail));
    expectMatches(
      defaults.advantages.data,
      zeroTail.outputs.advantages as Matrix,
      zeroTail.inputs.response_mask as Matrix,
      "default options",
    );
    // The translation alone (no keyword arguments, as verl's trainer calls it) gives the same, at 1dda039.
    const translated = estimatorOf(zeroTail, "1dda039");
    expect(translated).toEqual({ function: "optimalTokenBaselineAdvantages", options: { handleZeroTail: true } });
    expect(estimatorOf(zeroTail, "b178a3c").options).toEqual({ handleZeroTail: false });
    if (translated.function !== "optimalTokenBaselineAdvantages") throw new Error("not the OTB");
    const viaConfig = optimalTokenBaselineAdvantages(otbInputs(zeroTail), translated.options);
    expect(viaConfig.advantages.data).toEqual(defaults.advantages.data);
  });
});
