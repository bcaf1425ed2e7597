/**
 * Making a TensorFlow.js backend active in Node: `await useTfjsBackend("webgpu")`, then the tfjs kernels
 * (`tfjsBackend`, `policyLossTf`, …) run on it. Never throws for a backend that cannot run here: it returns why.
 *
 * Node builtins and the optional peers (`@tensorflow/tfjs-backend-wasm`, `webgpu`, `@tensorflow/tfjs-backend-webgpu`)
 * are imported dynamically, inside the functions that need them, so that importing `grpo-roc/tfjs` loads none of
 * them (and stays loadable where they are absent, or in a bundle for the browser).
 */
import * as tf from "@tensorflow/tfjs";
import { messageOf, WebGpuDeviceError } from "../webgpu/errors.js";
import type { GpuRoot } from "../webgpu/gpu.js";
import { acquireDawn, releaseDawn } from "../webgpu/node.js";
import { invalid, closestKey } from "../backends/contract.js";
import {
  clearDeferredChecks,
  clearDeviceErrors,
  hasPendingDeviceErrors,
  markWatched,
  type RawRead,
  raisePendingDeviceErrors,
  recordDeviceErrors,
  runDeferredChecks,
  settleDeviceChecks,
} from "./device-errors.js";
import { releaseWgslKernels } from "./wgsl.js";

/** One class for the whole package: grpo-roc/webgpu's. */
export { WebGpuDeviceError };

/** The tfjs backends grpo-roc/tfjs is tested on and useTfjsBackend can set up. */
export type TfjsBackendName = "cpu" | "wasm" | "webgpu";

/** What useTfjsBackend found: whether the backend is active now, and why not or on what. */
export interface TfjsBackendStatus {
  /** The backend asked for. */
  readonly name: TfjsBackendName;
  /** The backend is now tfjs's active backend. */
  readonly available: boolean;
  /** Why it is unavailable, or what it runs on. */
  readonly reason: string;
}

/** The name this module holds the process's dawn.node root under (src/webgpu/node.ts). */
const DAWN_HOLDER = "grpo-roc/tfjs";

// -------------------------------------------------------------------------------------------------------------
// The structural types this module uses; not @webgpu/types, so that the published declarations need no GPU types.

interface AdapterLike {
  readonly info?: {
    readonly vendor?: string;
    readonly architecture?: string;
    readonly device?: string;
    readonly description?: string;
  };
  readonly limits: { readonly maxStorageBufferBindingSize: number };
}

interface DeviceLike {
  addEventListener(
    type: "uncapturederror",
    listener: (event: { readonly error?: { readonly message?: string } }) => void,
  ): void;
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
// Module state. The dawn.node root itself is held by src/webgpu/node.ts (one per process, shared with
// grpo-roc/webgpu): this module holds a claim on it from a successful useTfjsBackend("webgpu") until
// releaseWebGpu(), which destroys the device first (dawn.node crashes when the root goes while a device lives).

let heldDawn = false;
let device: DeviceLike | undefined;
/** The watched backend's own read, for the deferred checks (./device-errors.ts), which must not wait for themselves. */
let rawRead: RawRead | undefined;
/** tfjs-backend-webgpu's factory, kept across releaseWebGpu() (which unregisters it) for the next useTfjsBackend. */
let webgpuFactory: BackendFactory | undefined;
let wasmPathsSet = false;

const BACKEND_NAMES: readonly TfjsBackendName[] = ["cpu", "wasm", "webgpu"];

/**
 * Makes tfjs's `name` backend the active one (`tf.setBackend`) and returns whether that worked, and why not. Never
 * throws for unavailability: a missing optional package, no WebGPU adapter (no Vulkan driver), a failed
 * initialisation all come back as `{ available: false, reason }`, with the previously active backend left active.
 * A name other than "cpu", "wasm" or "webgpu" (a typo, an object) is a usage error, a ValidationError listing the
 * three, not an unavailable backend.
 */
export async function useTfjsBackend(name: TfjsBackendName): Promise<TfjsBackendStatus> {
  requireBackendName(name);
  const previous = tf.getBackend();
  try {
    switch (name) {
      case "cpu":
        return await activate("cpu", "TensorFlow.js cpu backend (plain JavaScript kernels), float32");
      case "wasm":
        return await useWasm();
      case "webgpu":
        return await useWebGpu();
    }
  } catch (error) {
    if (previous !== undefined && tf.getBackend() !== previous) await tf.setBackend(previous).catch(() => false);
    return { name, available: false, reason: `${name}: ${messageOf(error)}` };
  }
}

function requireBackendName(name: unknown): asserts name is TfjsBackendName {
  if (BACKEND_NAMES.includes(name as TfjsBackendName)) return;
  const received = typeof name === "string" ? JSON.stringify(name) : name === null ? "null" : typeof name;
  const meant = typeof name === "string" ? closestKey(name, BACKEND_NAMES) : undefined;
  const suggestion = meant === undefined ? "" : `; did you mean "${meant}"?`;
  throw invalid("name", `expected "cpu", "wasm" or "webgpu", received ${received}${suggestion}`);
}

async function activate(name: TfjsBackendName, note: string): Promise<TfjsBackendStatus> {
  // tf.setBackend returns false (after logging a warning) when the backend's factory throws.
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name)
    return { name, available: false, reason: `tf.setBackend("${name}") failed (tfjs logged why above)` };
  await tf.ready();
  return { name, available: true, reason: note };
}

async function useWasm(): Promise<TfjsBackendStatus> {
  let wasm: { setWasmPaths(prefix: string): void };
  try {
    wasm = (await import(/* @vite-ignore */ "@tensorflow/tfjs-backend-wasm")) as unknown as typeof wasm;
  } catch (error) {
    return {
      name: "wasm",
      available: false,
      reason:
        `@tensorflow/tfjs-backend-wasm cannot be imported (npm i @tensorflow/tfjs-backend-wasm): ` +
        `${messageOf(error)}`,
    };
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
  return {
    ...status,
    reason: `TensorFlow.js wasm backend (XNNPACK), SIMD ${simd ? "on" : "off"}, single-threaded, float32`,
  };
}

async function useWebGpu(): Promise<TfjsBackendStatus> {
  if (device !== undefined && tf.findBackend("webgpu") !== null) {
    // Already set up: make it the active backend again.
    const status = await activate("webgpu", describeDevice());
    return status;
  }
  // acquireDawn also sets XDG_RUNTIME_DIR (Mesa's Vulkan drivers want one) and installs the WebGPU globals a browser
  // has (GPUBufferUsage, GPUMapMode, GPUShaderStage…), which tfjs-backend-webgpu uses.
  const dawn = await acquireDawn(DAWN_HOLDER);
  if (!dawn.ok) return { name: "webgpu", available: false, reason: dawn.reason };
  heldDawn = true;
  let status: TfjsBackendStatus | undefined;
  try {
    const adapter: AdapterLike | null = await dawn.root.requestAdapter();
    status =
      adapter === null
        ? {
            name: "webgpu",
            available: false,
            reason:
              "no WebGPU adapter: Dawn found no usable Vulkan driver (on Debian 12 install mesa-vulkan-drivers from " +
              "bookworm-backports; its own Mesa 22 lavapipe is rejected)",
          }
        : await startTfjsWebGpu(dawn.root, adapter);
    return status;
  } finally {
    // Nothing runs on a device: let go of dawn.node again, so that a failed setup does not keep Node alive.
    if (status?.available !== true && device === undefined) releaseDawnClaim();
  }
}

async function startTfjsWebGpu(root: GpuRoot, adapter: AdapterLike): Promise<TfjsBackendStatus> {
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
    return {
      name: "webgpu",
      available: false,
      reason:
        `@tensorflow/tfjs-backend-webgpu cannot be imported (npm i @tensorflow/tfjs-backend-webgpu): ` +
        `${messageOf(error)}`,
    };
  }
  webgpuFactory = tf.findBackendFactory("webgpu") ?? undefined;
  if (webgpuFactory === undefined)
    return { name: "webgpu", available: false, reason: "@tensorflow/tfjs-backend-webgpu did not register a backend" };
  const status = await activate("webgpu", "");
  if (!status.available) return status;
  const backend = tf.findBackend("webgpu") as unknown as WebGpuTfBackend;
  watchDevice(backend);
  return { ...status, reason: describeDevice(adapter) };
}

function releaseDawnClaim(): void {
  if (heldDawn) releaseDawn(DAWN_HOLDER);
  heldDawn = false;
}

/**
 * A device reports validation errors, out-of-memory and loss through events, not exceptions: a kernel that binds
 * a buffer over maxStorageBufferBindingSize is skipped and its output reads back as zeros, with nothing thrown.
 * Every such event is recorded (./device-errors.ts), as are the errors grpo-roc's own kernels on this device
 * caught in their error scopes (./wgsl.ts); reading a tensor back (tensor.data(), dataSync) throws a
 * WebGpuDeviceError when any was recorded, and assertNoDeviceErrors() checks explicitly.
 */
function watchDevice(backend: WebGpuTfBackend): void {
  device = backend.device;
  clearDeviceErrors();
  device.addEventListener("uncapturederror", (event) => {
    recordDeviceErrors([event.error?.message ?? String(event.error)]);
  });
  const watched = device;
  void watched.lost.then((info) => {
    // releaseWebGpu() forgets the device before destroying it: that is not an error. Any other loss is, even a
    // destroy() by someone else: every later kernel on it is skipped, and its outputs would read as zeros.
    if (device === watched) recordDeviceErrors([`device lost: ${info.message || info.reason || "unknown reason"}`]);
  });
  // Every read of a tensor's values goes through the backend's read (tensor.data()) or readSync (dataSync). The
  // read submits the queued commands, so once it completes the device has reported what went wrong with them:
  // some errors come when a command is recorded (a bind group over the limit), the rest when it is submitted
  // (the invalid command buffer). After waiting for the queue, all of them are thrown together, instead of some
  // now and the rest at the next, innocent, read.
  const read = backend.read.bind(backend);
  const readSync = backend.readSync.bind(backend);
  rawRead = read;
  markWatched(backend);
  // The checks of input values that live on the device only (./checks.ts) run here too, after the read: their
  // ValidationError is thrown instead of the values, which the invalid input made meaningless.
  backend.read = async (dataId) => {
    let values: unknown;
    let failure: unknown;
    try {
      values = await read(dataId);
    } catch (error) {
      failure = error;
    }
    await settleDeviceChecks();
    if (hasPendingDeviceErrors() || failure !== undefined) await settle(watched);
    raisePendingDeviceErrors();
    if (failure !== undefined) throw failure;
    await runDeferredChecks(read);
    return values;
  };
  backend.readSync = (dataId) => {
    const values = readSync(dataId);
    raisePendingDeviceErrors();
    return values;
  };
}

/** Waits for the device's submitted work, then one turn of the event loop, for its error events to arrive. */
async function settle(watched: DeviceLike): Promise<void> {
  // On a lost device onSubmittedWorkDone may never resolve, or reject: the loss itself is what gets reported.
  await Promise.race([watched.queue.onSubmittedWorkDone().catch(() => undefined), watched.lost.then(() => undefined)]);
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
}

/**
 * Waits for the WebGPU device's submitted work and throws a WebGpuDeviceError if the device reported any error
 * since the last check (then clears them), or the ValidationError of a check of input values that waited for a
 * read (./checks.ts). Resolves at once when no WebGPU device is in use.
 */
export async function assertNoDeviceErrors(): Promise<void> {
  await settleDeviceChecks();
  if (device !== undefined) await settle(device);
  raisePendingDeviceErrors();
  if (rawRead !== undefined) await runDeferredChecks(rawRead);
}

/**
 * Destroys the WebGPU device and lets go of dawn.node (src/webgpu/node.ts drops its root when nobody else holds it),
 * so that Node can exit: a live dawn.node instance keeps the event loop alive. If webgpu was the active tfjs
 * backend, cpu becomes the active one. useTfjsBackend("webgpu") may be called again afterwards. Tensors on the
 * device are lost.
 */
export async function releaseWebGpu(): Promise<void> {
  if (tf.getBackend() === "webgpu") await tf.setBackend("cpu");
  // grpo-roc's own buffers on the device (./wgsl.ts), and tensors kept for checks, before the device goes.
  releaseWgslKernels();
  clearDeferredChecks();
  rawRead = undefined;
  if (tf.findBackendFactory("webgpu") !== null) {
    webgpuFactory = tf.findBackendFactory("webgpu") ?? webgpuFactory;
    // Disposes the tfjs backend (its buffers) and unregisters it, so that tfjs does not pick it (priority 3) again.
    tf.removeBackend("webgpu");
  }
  const destroyed = device;
  device = undefined;
  await settleDeviceChecks();
  clearDeviceErrors();
  destroyed?.destroy();
  // The device is gone: dropping the root is now safe, and lets the process exit.
  releaseDawnClaim();
  const nav = (globalThis as { navigator?: { gpu?: unknown } }).navigator;
  if (nav !== undefined && "gpu" in nav) delete nav.gpu;
}

function setNavigatorGpu(root: GpuRoot): void {
  const g = globalThis as { navigator?: object };
  if (g.navigator !== undefined) {
    // Node ≥ 21 has a navigator of its own (a getter on globalThis): add gpu to it rather than replace it.
    Object.defineProperty(g.navigator, "gpu", { value: root, configurable: true, writable: true, enumerable: true });
  } else {
    Object.defineProperty(globalThis, "navigator", {
      value: { gpu: root },
      configurable: true,
      writable: true,
      enumerable: false,
    });
  }
}

function describeDevice(adapter?: AdapterLike): string {
  const info = adapter?.info;
  const name =
    [info?.description || info?.device, info?.architecture, info?.vendor].filter((s) => s).join(", ") || "an adapter";
  const limit = device?.limits.maxStorageBufferBindingSize ?? adapter?.limits.maxStorageBufferBindingSize;
  return (
    `TensorFlow.js webgpu backend on ${name} (Dawn via the "webgpu" package), maxStorageBufferBindingSize ` +
    `${limit === undefined ? "?" : `${(limit / 2 ** 20).toFixed(0)} MiB`}, float32`
  );
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
