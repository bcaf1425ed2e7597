import {
  advantageEstimatorNames,
  advantagePresets,
  advantages,
  broadcastToTokens,
  gdpoAdvantages,
  gdpoPresets,
  gpgAdvantages,
  multiRewardAdvantages,
  multiRewardPresets,
  opoAdvantages,
  registerAdvantageEstimator,
  reinforcePlusPlusBaselineAdvantages,
} from "./advantages/index.js";
import {
  adaptiveKlCoefficient,
  fixedKlCoefficient,
  gaeAdvantages,
  klPenaltyRewards,
  klRatioRewards,
  optimalTokenBaselineAdvantages,
  reinforcePlusPlusAdvantages,
  remaxAdvantages,
  tirOptimalTokenBaselineAdvantages,
} from "./advantages/token/index.js";
import { tokenEntropy, tokenEntropyBackward, tokenLogProbs, tokenLogProbsBackward } from "./logprobs/index.js";
import {
  adaptiveEntropyCoefficient,
  aggregate,
  appliedEntropyCoefficient,
  batchNormalizer,
  lossPresets,
  policyLoss,
  registerPolicyObjective,
} from "./loss/index.js";
import { policyLossFromLogits } from "./logits-loss.js";
import {
  bypassModePolicyLoss,
  entropyMask,
  multiplyWeights,
  offPolicyMask,
  rolloutCorrection,
  rolloutCorrectionMetrics,
  rolloutCorrectionPresets,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  vllmImportanceSampling,
  vllmImportanceSamplingPresets,
} from "./correction/index.js";
import { rocPipeline } from "./pipeline.js";
import { createRocBatcher } from "./batcher/index.js";
import { fromTrlConfig, fromVerlConfig } from "./configs/index.js";
import { inspectMessages, qualityFromMessages } from "./messages/index.js";
import {
  isInfraFailed,
  paperCounts,
  parseTranscript,
  penalties,
  referenceCounts,
  resampleOnCorrect,
  rocPresets,
} from "./roc/index.js";

export * from "./advantages/index.js";
export * from "./advantages/token/index.js";
export * from "./roc/index.js";
export * from "./loss/index.js";
export * from "./correction/index.js";
export * from "./logprobs/index.js";
export * from "./backends/index.js";
export { composedPolicyLossFromLogits, policyLossFromLogits } from "./logits-loss.js";
export type { LogitsPolicyLossInputs, LogitsPolicyLossOptions, LogitsPolicyLossResult } from "./logits-loss.js";
export { rocPipeline } from "./pipeline.js";
export type { PipelineOptions, PipelineResult } from "./pipeline.js";
export { createRocBatcher } from "./batcher/index.js";
export type {
  GroupDropReason,
  GroupSource,
  RocBatch,
  RocBatcher,
  RocBatcherOptions,
  RocBatcherStatus,
  RocBatchGroup,
  RocBatchStats,
  RocDroppedGroup,
} from "./batcher/index.js";
export * from "./messages/index.js";
export * from "./configs/index.js";
export { GrpoRocError, ValidationError } from "./errors.js";
export type { ValidationIssue } from "./errors.js";
export type { GroupId } from "./groups.js";
export type { Matrix, MatrixInput } from "./tensor.js";
export type { NumericArray } from "./numeric.js";

/** Everything in one namespace: `import { grpoRoc } from "grpo-roc"`. */
export const grpoRoc = {
  advantages,
  advantagePresets,
  registerAdvantageEstimator,
  advantageEstimatorNames,
  broadcastToTokens,
  reinforcePlusPlusAdvantages,
  remaxAdvantages,
  gaeAdvantages,
  optimalTokenBaselineAdvantages,
  tirOptimalTokenBaselineAdvantages,
  klPenaltyRewards,
  klRatioRewards,
  fixedKlCoefficient,
  adaptiveKlCoefficient,
  gpgAdvantages,
  opoAdvantages,
  reinforcePlusPlusBaselineAdvantages,
  gdpoAdvantages,
  gdpoPresets,
  multiRewardAdvantages,
  multiRewardPresets,
  resampleOnCorrect,
  rocPresets,
  penalties,
  parseTranscript,
  qualityFromMessages,
  inspectMessages,
  isInfraFailed,
  paperCounts,
  referenceCounts,
  rocPipeline,
  createRocBatcher,
  policyLoss,
  lossPresets,
  batchNormalizer,
  aggregate,
  registerPolicyObjective,
  appliedEntropyCoefficient,
  adaptiveEntropyCoefficient,
  tokenLogProbs,
  tokenLogProbsBackward,
  tokenEntropy,
  tokenEntropyBackward,
  policyLossFromLogits,
  rolloutCorrection,
  rolloutCorrectionPresets,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  rolloutCorrectionMetrics,
  bypassModePolicyLoss,
  vllmImportanceSampling,
  vllmImportanceSamplingPresets,
  entropyMask,
  offPolicyMask,
  multiplyWeights,
  fromTrlConfig,
  fromVerlConfig,
} as const;
