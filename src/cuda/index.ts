/**
 * grpo-roc on CUDA: `import { cudaBackend } from "grpo-roc/cuda"`, then `registerBackend(cudaBackend)`. The
 * kernels live in an optional native addon that the package's install script builds when nvcc is present; without
 * it (or without a GPU) importing this entry point still works and `cudaBackend.probe()` says why it cannot run.
 */
export {
  cudaBackend,
  createCudaBackend,
  CudaDeviceError,
  CudaUnavailableError,
  type CudaBackendOptions,
} from "./backend.js";
export { cudaSelfCheck, type SelfCheckCase, type SelfCheckReport } from "./self-check.js";
export {
  addonPath as cudaAddonPath,
  loadAddon as loadCudaAddon,
  type AddonState,
  type BuildStatus,
  type CudaAddon,
  type DeviceProbe,
} from "./addon.js";
