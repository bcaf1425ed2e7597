/**
 * grpo-roc on WebGPU: `import { webgpuBackend, createWebGpuBackend } from "grpo-roc/webgpu"`. A separate entry
 * point: importing it loads nothing else (the `webgpu` package is imported on first use, in Node only).
 */
export { createWebGpuBackend } from "./backend.js";
export type {
  DeviceGradient,
  DeviceKernels,
  DeviceLogitsPolicyLossInputs,
  DeviceLogitsPolicyLossResult,
  WebGpuBackend,
  WebGpuBackendOptions,
} from "./backend.js";
export { releaseWebGpuBackend, webgpuBackend } from "./default.js";
export { WebGpuDeviceError } from "./errors.js";
export type { DeviceLogits } from "./logits.js";
export type { GpuBuffer, GpuDevice } from "./gpu.js";
export type { ContextOptions as WebGpuPoolOptions } from "./context.js";
