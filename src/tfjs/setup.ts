/**
 * Making a TensorFlow.js backend active in Node: `await useTfjsBackend("webgpu")`, then the tfjs kernels
 * (`tfjsBackend`, `policyLossTf`, …) run on it. Never throws for a backend that cannot run here: it returns why.
 *
 * Node builtins and the optional peers (`@tensorflow/tfjs-backend-wasm`, `webgpu`, `@tensorflow/tfjs-backend-webgpu`)
 * are imported dynamically, inside the functions that need them, so that importing `grpo-roc/tfjs` loads none of
 * them (and stays loadable where they are absent, or in a bundle for the browser).
 */
import * as tf from "@tensorflow/tfjs";
import { GrpoRocError } from "../errors.js";

export type TfjsBackendName = "cpu" | "wasm" | "webgpu";

export interface TfjsBackendStatus {
  readonly name: TfjsBackendName;
  /** The backend is now tfjs's active backend. */
  readonly available: boolean;
  /** Why it is unavailable, or what it runs on. */
  readonly reason: string;
}

/** Errors the WebGPU device reported on its own (validation, out-of-memory, device lost), as one exception. */
export class WebGpuDeviceError extends GrpoRocError {
  override name = "WebGpuDeviceError";
  readonly errors: readonly string[];

  constructor(errors: readonly string[]) {
    const shown = errors.slice(0, 3).map((e) => `  - ${e.split("\n")[0]}`);
    if (errors.length > shown.length) shown.push(`  … and ${errors.length - shown.length} more`);
    super(`the WebGPU device reported ${errors.length} error(s); results computed since the last check are not valid:\n${shown.join("\n")}`);
    this.errors = errors;
  }
}

// -------------------------------------------------------------------------------------------------------------
// The structural types this module uses; not @webgpu/types, so that the published declarations need no GPU types.

interface GpuLike {
  requestAdapter(options?: object): Promise<AdapterLike | null>;
}

interface AdapterLike {
  readonly info?: { readonly vendor?: string; readonly architecture?: string; readonly device?: string; readonly description?: string };
  readonly limits: { readonly maxStorageBufferBindingSize: number };
}

interface DeviceLike {
  addEventListener(type: "uncapturederror", listener: (event: { readonly error?: { readonly message?: string } }) => void): void;
  readonly lost: Promise<{ readonly reason?: string; readonly message?: string }>;
  readonly queue: { onSubmittedWorkDone(): Promise<void> };
  readonly limits: { readonly maxStorageBufferBindingSize: number };
  destroy(): void;
}

interface WebGpuTfBackend {
  readonly device: DeviceLike;
  read(dataId: object): Promise<unknown>;
  readSync(dataId: object): unknown;
}

type BackendFactory = NonNullable<ReturnType<typeof tf.findBackendFactory>>;

// -------------------------------------------------------------------------------------------------------------
// Module state. `gpu` is the object `create()` of the `webgpu` package returned: dawn.node crashes the process
// (SIGSEGV, exit 139) when that object is garbage-collected while a device made from it lives, so a module-level
// reference keeps it alive until releaseWebGpu() has destroyed the device.

let gpu: GpuLike | undefined;
let device: DeviceLike | undefined;
/** tfjs-backend-webgpu's factory, kept across releaseWebGpu() (which unregisters it) for the next useTfjsBackend. */
let webgpuFactory: BackendFactory | undefined;
/** Device errors not yet turned into an exception. */
const pendingErrors: string[] = [];
let wasmPathsSet = false;

/**
 * Makes tfjs's `name` backend the active one (`tf.setBackend`) and returns whether that worked, and why not. Never
 * throws for unavailability: a missing optional package, no WebGPU adapter (no Vulkan driver), a failed
 * initialisation all come back as `{ available: false, reason }`, with the previously active backend left active.
 */
export async function useTfjsBackend(name: TfjsBackendName): Promise<TfjsBackendStatus> {
  const previous = tf.getBackend();
  try {
    switch (name) {
      case "cpu":
        return await activate("cpu", "TensorFlow.js cpu backend (plain JavaScript kernels), float32");
      case "wasm":
        return await useWasm();
      case "webgpu":
        return await useWebGpu();
      default:
        return { name, available: false, reason: `unknown tfjs backend "${String(name)}": cpu, wasm or webgpu` };
    }
  } catch (error) {
    if (previous !== undefined && tf.getBackend() !== previous) await tf.setBackend(previous).catch(() => false);
    return { name, available: false, reason: `${name}: ${messageOf(error)}` };
  }
}

async function activate(name: TfjsBackendName, note: string): Promise<TfjsBackendStatus> {
  // tf.setBackend returns false (after logging a warning) when the backend's factory throws.
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) return { name, available: false, reason: `tf.setBackend("${name}") failed (tfjs logged why above)` };
  await tf.ready();
  return { name, available: true, reason: note };
}

async function useWasm(): Promise<TfjsBackendStatus> {
  let wasm: { setWasmPaths(prefix: string): void };
  try {
    wasm = (await import(/* @vite-ignore */ "@tensorflow/tfjs-backend-wasm")) as unknown as typeof wasm;
  } catch (error) {
    return { name: "wasm", available: false, reason: `@tensorflow/tfjs-backend-wasm cannot be imported (npm i @tensorflow/tfjs-backend-wasm): ${messageOf(error)}` };
  }
  if (!wasmPathsSet && tf.findBackend("wasm") === null) {
    // The .wasm binaries ship in the package's dist/ folder, next to its Node entry point. Emscripten finds them
    // there on its own when the package is loaded from node_modules, but not when a bundler has moved its
    // JavaScript: pointing it at the installed package's folder works in both cases. Must precede the first init.
    const folder = await packageDistFolder("@tensorflow/tfjs-backend-wasm");
    if (folder !== undefined) wasm.setWasmPaths(folder);
    wasmPathsSet = true;
  }
  // SIMD is used when WebAssembly supports it (Node 20 does). Threads are not: tfjs-backend-wasm turns its
  // multi-threaded build off in Node (it needs browser Workers from Blob URLs), so there is nothing to set.
  const status = await activate("wasm", "");
  if (!status.available) return status;
  const simd = await tf.env().getAsync("WASM_HAS_SIMD_SUPPORT");
  return { ...status, reason: `TensorFlow.js wasm backend (XNNPACK), SIMD ${simd ? "on" : "off"}, single-threaded, float32` };
}

async function useWebGpu(): Promise<TfjsBackendStatus> {
  if (device !== undefined && tf.findBackend("webgpu") !== null) {
    // Already set up: make it the active backend again.
    const status = await activate("webgpu", describeDevice());
    return status;
  }
  // Mesa's Vulkan drivers (lavapipe here) want a per-user runtime folder; without XDG_RUNTIME_DIR they log errors
  // and some setups fail to create the device. A private temporary folder is enough.
  if (typeof process !== "undefined" && !process.env.XDG_RUNTIME_DIR) {
    const [{ mkdtempSync }, { tmpdir }, { join }] = await Promise.all([import("node:fs"), import("node:os"), import("node:path")]);
    process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), "grpo-roc-xdg-"));
  }
  let webgpu: { create(options: string[]): GpuLike; globals: object };
  try {
    webgpu = (await import(/* @vite-ignore */ "webgpu")) as unknown as typeof webgpu;
  } catch (error) {
    return { name: "webgpu", available: false, reason: `the "webgpu" package (dawn.node) cannot be imported (npm i webgpu): ${messageOf(error)}` };
  }
  // tfjs-backend-webgpu uses the WebGPU globals a browser has (GPUBufferUsage, GPUMapMode, GPUShaderStage…).
  Object.assign(globalThis, webgpu.globals);
  const root = gpu ?? webgpu.create([]);
  const adapter = await root.requestAdapter();
  if (adapter === null) {
    return {
      name: "webgpu",
      available: false,
      reason: "no WebGPU adapter: Dawn found no usable Vulkan driver (on Debian 12 install mesa-vulkan-drivers from bookworm-backports; its own Mesa 22 lavapipe is rejected)",
    };
  }
  gpu = root;
  // tfjs-backend-webgpu registers its backend at import time only if navigator.gpu exists then, and its factory
  // asks navigator.gpu for the adapter: give Node a navigator with this gpu before importing it.
  setNavigatorGpu(root);
  if (webgpuFactory !== undefined && tf.findBackendFactory("webgpu") === null) {
    // releaseWebGpu() unregistered it; the module (already imported) will not register it again by itself.
    tf.registerBackend("webgpu", webgpuFactory, 3);
  }
  try {
    await import(/* @vite-ignore */ "@tensorflow/tfjs-backend-webgpu");
  } catch (error) {
    return { name: "webgpu", available: false, reason: `@tensorflow/tfjs-backend-webgpu cannot be imported (npm i @tensorflow/tfjs-backend-webgpu): ${messageOf(error)}` };
  }
  webgpuFactory = tf.findBackendFactory("webgpu") ?? undefined;
  if (webgpuFactory === undefined) return { name: "webgpu", available: false, reason: "@tensorflow/tfjs-backend-webgpu did not register a backend" };
  const status = await activate("webgpu", "");
  if (!status.available) return status;
  const backend = tf.findBackend("webgpu") as unknown as WebGpuTfBackend;
  watchDevice(backend);
  return { ...status, reason: describeDevice(adapter) };
}

/**
 * A device reports validation errors, out-of-memory and loss through events, not exceptions: a kernel that binds
 * a buffer over maxStorageBufferBindingSize is skipped and its output reads back as zeros, with nothing thrown.
 * Every such event is recorded here; reading a tensor back (tensor.data(), dataSync) throws a WebGpuDeviceError
 * when any was recorded, and assertNoDeviceErrors() checks explicitly.
 */
function watchDevice(backend: WebGpuTfBackend): void {
  device = backend.device;
  pendingErrors.length = 0;
  device.addEventListener("uncapturederror", (event) => {
    pendingErrors.push(event.error?.message ?? String(event.error));
  });
  const watched = device;
  void watched.lost.then((info) => {
    // Destroyed on purpose by releaseWebGpu: not an error.
    if (info.reason !== "destroyed" && device === watched) pendingErrors.push(`device lost: ${info.message ?? info.reason ?? "unknown reason"}`);
  });
  // Every read of a tensor's values goes through the backend's read (tensor.data()) or readSync (dataSync). The
  // read submits the queued commands, so once it completes the device has reported what went wrong with them:
  // some errors come when a command is recorded (a bind group over the limit), the rest when it is submitted
  // (the invalid command buffer). After waiting for the queue, all of them are thrown together, instead of some
  // now and the rest at the next, innocent, read.
  const read = backend.read.bind(backend);
  const readSync = backend.readSync.bind(backend);
  backend.read = async (dataId) => {
    let values: unknown;
    let failure: unknown;
    try {
      values = await read(dataId);
    } catch (error) {
      failure = error;
    }
    if (pendingErrors.length > 0) await settle(watched);
    raisePending();
    if (failure !== undefined) throw failure;
    return values;
  };
  backend.readSync = (dataId) => {
    const values = readSync(dataId);
    raisePending();
    return values;
  };
}

/** Waits for the device's submitted work, then one turn of the event loop, for its error events to arrive. */
async function settle(watched: DeviceLike): Promise<void> {
  await watched.queue.onSubmittedWorkDone();
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
}

function raisePending(): void {
  if (pendingErrors.length === 0) return;
  const errors = pendingErrors.splice(0);
  throw new WebGpuDeviceError(errors);
}

/**
 * Waits for the WebGPU device's submitted work and throws a WebGpuDeviceError if the device reported any error
 * since the last check (then clears them). Resolves at once when no WebGPU device is in use.
 */
export async function assertNoDeviceErrors(): Promise<void> {
  if (device !== undefined) await settle(device);
  raisePending();
}

/**
 * Destroys the WebGPU device and drops the references this module holds (the `webgpu` root object included), so
 * that Node can exit: a live dawn.node instance keeps the event loop alive. If webgpu was the active tfjs backend,
 * cpu becomes the active one. useTfjsBackend("webgpu") may be called again afterwards. Tensors on the device are
 * lost.
 */
export async function releaseWebGpu(): Promise<void> {
  if (tf.getBackend() === "webgpu") await tf.setBackend("cpu");
  if (tf.findBackendFactory("webgpu") !== null) {
    webgpuFactory = tf.findBackendFactory("webgpu") ?? webgpuFactory;
    // Disposes the tfjs backend (its buffers) and unregisters it, so that tfjs does not pick it (priority 3) again.
    tf.removeBackend("webgpu");
  }
  const destroyed = device;
  device = undefined;
  pendingErrors.length = 0;
  destroyed?.destroy();
  // The device is gone: dropping the root is now safe, and lets the process exit.
  gpu = undefined;
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav !== undefined && "gpu" in nav) delete nav.gpu;
}

function setNavigatorGpu(root: GpuLike): void {
  const g = globalThis as { navigator?: object };
  if (g.navigator !== undefined) {
    // Node ≥ 21 has a navigator of its own (a getter on globalThis): add gpu to it rather than replace it.
    Object.defineProperty(g.navigator, "gpu", { value: root, configurable: true, writable: true, enumerable: true });
  } else {
    Object.defineProperty(globalThis, "navigator", { value: { gpu: root }, configurable: true, writable: true, enumerable: false });
  }
}

function describeDevice(adapter?: AdapterLike): string {
  const info = adapter?.info;
  const name = [info?.description || info?.device, info?.architecture, info?.vendor].filter((s) => s).join(", ") || "an adapter";
  const limit = device?.limits.maxStorageBufferBindingSize ?? adapter?.limits.maxStorageBufferBindingSize;
  return `TensorFlow.js webgpu backend on ${name} (Dawn via the "webgpu" package), maxStorageBufferBindingSize ${limit === undefined ? "?" : `${(limit / 2 ** 20).toFixed(0)} MiB`}, float32`;
}

/** The folder of a package's main file, with a trailing separator; undefined when it cannot be resolved. */
async function packageDistFolder(name: string): Promise<string | undefined> {
  try {
    const [{ createRequire }, { dirname, sep }] = await Promise.all([import("node:module"), import("node:path")]);
    // Resolved from this module, as the dynamic import() above resolved it (CommonJS build: __filename; ESM:
    // import.meta.url), so that the .wasm files are those of the very copy whose JavaScript was loaded.
    const require = createRequire(typeof __filename === "string" ? __filename : import.meta.url);
    return `${dirname(require.resolve(name))}${sep}`;
  } catch {
    return undefined;
  }
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
