export type {
  AdaptiveEntropyOptions,
  AdaptiveEntropyOptionsInput,
  AdaptiveEntropyState,
  AdaptiveEntropyStep,
  AdaptiveEntropyUpdate,
} from "./adaptive-entropy.js";
export {
  adaptiveEntropyCoefficient,
  adaptiveEntropyOptionsSchema,
  appliedEntropyCoefficient,
} from "./adaptive-entropy.js";
export { aggregate, batchNormalizer } from "./aggregation.js";
export type { PolicyLossInputs } from "./inputs.js";
export type { KlValue } from "./kl.js";
export { klPenalty } from "./kl.js";
export type { PolicyLossMetrics } from "./metrics.js";
export type {
  BuiltinObjective,
  ObjectiveBatch,
  PolicyObjective,
  PreparedBatch,
  PreparedObjective,
  ReferenceObjective,
  TokenKernel,
  TokenLoss,
  TokenTerms,
} from "./objectives.js";
export {
  BUILTIN_OBJECTIVES,
  policyObjectiveNames,
  REFERENCE_OBJECTIVES,
  registerPolicyObjective,
} from "./objectives.js";
export type {
  Aggregation,
  KlKind,
  Normalizer,
  NormalizerInput,
  PolicyLossOptions,
  PolicyLossOptionsInput,
  VerlKlName,
  VerlVersion,
  VespoOptions,
} from "./options.js";
export {
  AGGREGATIONS,
  KL_ALIASES,
  KL_KINDS,
  lossPresets,
  normalizerSchema,
  policyLossOptionsSchema,
  VERL_VERSIONS,
} from "./options.js";
export type { PolicyLossBuffers, PolicyLossResult } from "./policy-loss.js";
export { policyLoss, resolvePolicyLossOptions } from "./policy-loss.js";
