export type { Backend, BackendInfo, Dtype, Kernels } from "./contract.js";
export { referenceBackend } from "./reference.js";
export { getBackend, listBackends, registerBackend, setDefaultBackend } from "./registry.js";
