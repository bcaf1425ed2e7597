/**
 * grpo-roc on WebAssembly with 128-bit SIMD: `import { wasmBackend } from "grpo-roc/wasm"`, then
 * `registerBackend(wasmBackend)`. The kernel ships inside the package (no install script, no download, no toolchain)
 * and loads in Node and in browsers; where the engine lacks SIMD, `wasmBackend.probe()` says so.
 */
export {
  createWasmBackend,
  type WasmBackend,
  type WasmBackendOptions,
  WasmUnavailableError,
  wasmBackend,
} from "./backend.js";
export type { WasmLogitsBuffer } from "./engine.js";
export { WasmMemoryError } from "./kernel.js";
