/**
 * verl's token-level advantage estimators: each returns [B, T] advantages and returns from [B, T] token rewards and
 * a response mask, rather than one advantage per rollout; and verl's KL penalty in the rewards that feed them, with its
 * KL controllers. Pure functions over typed arrays; see docs/api.md.
 */
export { gaeAdvantages, gaeOptionsSchema } from "./gae.js";
export type { GaeInputs, GaeOptions, GaeOptionsInput } from "./gae.js";
export type { TokenAdvantages, TokenRewardInputs } from "./inputs.js";
export {
  adaptiveKlCoefficient,
  adaptiveKlOptionsSchema,
  fixedKlCoefficient,
  klPenaltyRewards,
  klPenaltyRewardsOptionsSchema,
  klRatioRewards,
  klRatioRewardsOptionsSchema,
} from "./kl-in-reward.js";
export type {
  AdaptiveKlOptions,
  AdaptiveKlOptionsInput,
  KlControllerStep,
  KlPenaltyRewardsInputs,
  KlPenaltyRewardsMetrics,
  KlPenaltyRewardsOptions,
  KlPenaltyRewardsOptionsInput,
  KlPenaltyRewardsResult,
  KlRatioRewardsInputs,
  KlRatioRewardsOptions,
} from "./kl-in-reward.js";
export {
  optimalTokenBaselineAdvantages,
  optimalTokenBaselineOptionsSchema,
  tirOptimalTokenBaselineAdvantages,
} from "./optimal-token-baseline.js";
export type {
  OptimalTokenBaselineInputs,
  OptimalTokenBaselineOptions,
  OptimalTokenBaselineOptionsInput,
} from "./optimal-token-baseline.js";
export {
  REINFORCE_PLUS_PLUS_VERL_VERSIONS,
  reinforcePlusPlusAdvantages,
  reinforcePlusPlusOptionsSchema,
} from "./reinforce-plus-plus.js";
export type { ReinforcePlusPlusOptions, ReinforcePlusPlusOptionsInput } from "./reinforce-plus-plus.js";
export { remaxAdvantages } from "./remax.js";
export type { RemaxInputs } from "./remax.js";
