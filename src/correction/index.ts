export type { CorrectionMatrix, CorrectionMetrics } from "./shared.js";
export type {
  BypassModeInputs,
  BypassModeOptions,
  BypassModeResult,
  RolloutCorrectionInputs,
  RolloutCorrectionResult,
  RolloutLogRatioInputs,
  RolloutMetricsInputs,
  RolloutRejectionResult,
  RolloutWeightsResult,
} from "./verl.js";
export {
  bypassModePolicyLoss,
  rolloutCorrection,
  rolloutCorrectionMetrics,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  SAFETY_BOUND,
} from "./verl.js";
export type {
  RolloutCorrectionOptions,
  RolloutCorrectionOptionsInput,
  RolloutRejectionCriterion,
  RolloutRejectionCriterionInput,
  RolloutRejectionStatistic,
  RolloutWeightsOptions,
  RolloutWeightsOptionsInput,
} from "./verl-options.js";
export {
  BYPASS_LOSS_TYPES,
  ROLLOUT_IS_LEVELS,
  ROLLOUT_RS_STATISTICS,
  rolloutCorrectionOptionsSchema,
  rolloutCorrectionPresets,
  rolloutRejectionSchema,
  rolloutWeightsSchema,
} from "./verl-options.js";
export type {
  EntropyMaskInputs,
  EntropyMaskOptionsInput,
  EntropyMaskResult,
  OffPolicyMaskInputs,
  OffPolicyMaskOptionsInput,
  OffPolicyMaskResult,
  VllmImportanceSamplingInputs,
  VllmImportanceSamplingMode,
  VllmImportanceSamplingOptions,
  VllmImportanceSamplingOptionsInput,
  VllmImportanceSamplingResult,
} from "./trl.js";
export {
  entropyMask,
  entropyMaskOptionsSchema,
  multiplyWeights,
  offPolicyMask,
  offPolicyMaskOptionsSchema,
  VLLM_IS_MODES,
  vllmImportanceSampling,
  vllmImportanceSamplingOptionsSchema,
  vllmImportanceSamplingPresets,
} from "./trl.js";
