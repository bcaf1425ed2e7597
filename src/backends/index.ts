export { getBackend, listBackends, registerBackend, setDefaultBackend } from "./registry.js";
export type { Backend, BackendInfo, Dtype, Kernels } from "./types.js";
export { referenceBackend } from "./reference.js";
