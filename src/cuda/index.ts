/**
 * grpo-roc on CUDA: `import { cudaBackend } from "grpo-roc/cuda"`, then `registerBackend(cudaBackend)`. The
 * kernels live in a native addon that the package ships prebuilt for linux-x64 (it needs only the NVIDIA driver)
 * and that `npx grpo-roc build-cuda` rebuilds from source elsewhere; installing runs nothing. Without it (or
 * without a GPU) importing this entry point still works and `cudaBackend.probe()` says why it cannot run.
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
