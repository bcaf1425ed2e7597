/**
 * grpo-roc on TensorFlow.js: `import { tfjsBackend, policyLossTf, tokenLogProbsTf, trainStep } from "grpo-roc/tfjs"`.
 * A separate entry point, so that the core package never loads tfjs.
 */
export { TFJS_PEER_RANGE } from "./peer.js";
export { tfjsBackend } from "./backend.js";
export { maxBindingBytes, requireBindable } from "./device.js";
export { policyLossTensors } from "./loss.js";
export type { PolicyLossTensorResult, PolicyLossTensors } from "./loss.js";
export { tokenEntropyTf, tokenLogProbsTf, tokenStatistics, tokenStatisticsBackward } from "./logprobs.js";
export type { SavedStatistics, TokenLogProbsTensorOptions, TokenStatistics } from "./logprobs.js";
export { policyLossTf, readPolicyLossMetrics } from "./differentiable.js";
export type { PolicyLossCounts, PolicyLossTfHooks } from "./differentiable.js";
export { packTrainBatch, trainStep, validateTrainBatch } from "./train.js";
export type { TrainBatch, TrainRollout, TrainStepOptions, TrainStepResult, TrainStepSkip } from "./train.js";
export {
  assertNoDeviceErrors,
  releaseWebGpu,
  useTfjsBackend,
  WebGpuDeviceError,
  type TfjsBackendName,
  type TfjsBackendStatus,
} from "./setup.js";
export { KERNELS_ENV, releaseWgslKernels, tfjsKernelPath, wgslBufferStats, type TfjsKernels } from "./wgsl.js";
