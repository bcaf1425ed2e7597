export { policyLoss, policyObjectiveNames, registerPolicyObjective, resolvePolicyLossOptions } from "./policy-loss.js";
export type { PolicyLossBuffers, PolicyLossInputs, PolicyLossMetrics, PolicyLossResult } from "./policy-loss.js";
export { AGGREGATIONS, KL_KINDS, lossPresets, normalizerSchema, policyLossOptionsSchema } from "./options.js";
export type {
  Aggregation,
  KlKind,
  Normalizer,
  NormalizerInput,
  PolicyLossOptions,
  PolicyLossOptionsInput,
} from "./options.js";
export type { PolicyObjective, TokenKernel, TokenLoss, TokenTerms } from "./objectives.js";
export { aggregate, batchNormalizer } from "./aggregation.js";
export { klPenalty } from "./kl.js";
export type { KlValue } from "./kl.js";
