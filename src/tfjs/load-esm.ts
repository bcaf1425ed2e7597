/**
 * grpo-roc/tfjs as Node loads it with `import`. ESM resolves every static import before it runs any code, so a
 * missing TensorFlow.js would surface as the resolver's "Cannot find package"; loading the entry point dynamically
 * lets this module say what to install instead. Bundlers use index.ts directly; `require` uses load-cjs.ts.
 */
import { isMissingTensorflow, missingTensorflow } from "./peer.js";

const api: typeof import("./index.js") = await import("./index.js").catch((error: unknown) => {
  throw isMissingTensorflow(error) ? missingTensorflow(error) : error;
});

// The same names as index.ts (test/package.test.ts compares the two lists); its types are index.ts's.
export const {
  assertNoDeviceErrors,
  KERNELS_ENV,
  maxBindingBytes,
  packTrainBatch,
  policyLossTensors,
  policyLossTf,
  readPolicyLossMetrics,
  releaseWebGpu,
  releaseWgslKernels,
  requireBindable,
  TFJS_PEER_RANGE,
  tfjsBackend,
  tfjsKernelPath,
  tokenEntropyTf,
  tokenLogProbsTf,
  tokenStatistics,
  tokenStatisticsBackward,
  trainStep,
  useTfjsBackend,
  validateTrainBatch,
  WebGpuDeviceError,
  wgslBufferStats,
} = api;
