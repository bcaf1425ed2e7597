/**
 * `webgpuBackend`: the WGSL kernels on a device this module acquires on first use — through `navigator.gpu` in a
 * browser, through the `webgpu` package (dawn.node, shared with grpo-roc/tfjs's setup) in Node. Importing it
 * acquires nothing; probe() tries, and reports why not instead of throwing. releaseWebGpuBackend() destroys the
 * device and lets Node exit.
 */
import type { BackendInfo } from "../backends/contract.js";
import { GrpoRocError } from "../backends/contract.js";
import { createWebGpuBackend, type WebGpuBackend } from "./backend.js";
import type { GpuAdapter, GpuDevice, GpuRoot } from "./gpu.js";
import { acquireDawn, inNode, releaseDawn } from "./node.js";

const HOLDER = "grpo-roc/webgpu";

let inner: WebGpuBackend | undefined;
let device: GpuDevice | undefined;
let heldDawn = false;
let pending: Promise<WebGpuBackend> | undefined;
let lastFailure: string | undefined;

class Unavailable extends GrpoRocError {
  override name = "WebGpuUnavailable";
}

async function acquire(): Promise<WebGpuBackend> {
  if (inner !== undefined) return inner;
  pending ??= (async () => {
    let root: GpuRoot | undefined;
    let node = false;
    const navigatorGpu = (globalThis as { navigator?: { gpu?: GpuRoot } }).navigator?.gpu;
    if (!inNode() && navigatorGpu !== undefined) {
      root = navigatorGpu;
    } else if (inNode()) {
      const dawn = await acquireDawn(HOLDER);
      if (!dawn.ok) throw new Unavailable(dawn.reason);
      root = dawn.root;
      node = true;
    } else {
      throw new Unavailable("no WebGPU here: navigator.gpu is undefined");
    }
    try {
      const adapter = await root.requestAdapter();
      if (adapter === null) {
        throw new Unavailable(
          node
            ? "no WebGPU adapter: Dawn found no usable Vulkan driver (on Debian 12 install mesa-vulkan-drivers from " +
                "bookworm-backports; its own Mesa 22 lavapipe is rejected)"
            : "no WebGPU adapter (navigator.gpu.requestAdapter() returned null)",
        );
      }
      // The adapter's own ceilings, not WebGPU's defaults (256 MiB buffers): device-resident logits are often larger.
      const acquired = await adapter.requestDevice({
        label: "grpo-roc",
        requiredLimits: {
          maxBufferSize: adapter.limits.maxBufferSize,
          maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
        },
      });
      device = acquired;
      heldDawn = node;
      inner = createWebGpuBackend({
        device: acquired,
        name: "webgpu",
        description: `grpo-roc's WGSL kernels on ${describe(adapter, node)}`,
      });
      return inner;
    } catch (error) {
      if (node) releaseDawn(HOLDER);
      throw error;
    }
  })();
  try {
    return await pending;
  } catch (error) {
    lastFailure = error instanceof Error ? error.message : String(error);
    throw error;
  } finally {
    pending = undefined;
  }
}

function describe(adapter: GpuAdapter, node: boolean): string {
  const info = adapter.info;
  const name =
    [info?.description || info?.device, info?.architecture, info?.vendor].filter((s) => s).join(", ") ||
    "a WebGPU adapter";
  const limit = adapter.limits.maxStorageBufferBindingSize;
  return (
    `${name}${node ? ' (Dawn via the "webgpu" package)' : ""}, maxStorageBufferBindingSize ` +
    `${(limit / 2 ** 20).toFixed(0)} MiB`
  );
}

const lazy = <K extends keyof WebGpuBackend>(key: K) =>
  (async (...args: unknown[]) => {
    const backend = await acquire();
    return (backend[key] as (...a: unknown[]) => unknown)(...args);
  }) as unknown as WebGpuBackend[K];

/**
 * The `webgpu` backend on a device of its own. Not registered by importing it:
 * `registerBackend(webgpuBackend)` (from "grpo-roc") makes `getBackend("webgpu")` return it.
 */
export const webgpuBackend: WebGpuBackend = {
  name: "webgpu",
  async probe(): Promise<BackendInfo> {
    try {
      return await (await acquire()).probe();
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      return { name: "webgpu", available: false, reason, dtypes: ["float32"], maxBindingBytes: 0 };
    }
  },
  policyLoss: lazy("policyLoss"),
  tokenLogProbs: lazy("tokenLogProbs"),
  tokenLogProbsBackward: lazy("tokenLogProbsBackward"),
  policyLossFromLogits: lazy("policyLossFromLogits"),
  tokenLogProbsOnDevice: lazy("tokenLogProbsOnDevice"),
  tokenLogProbsBackwardOnDevice: lazy("tokenLogProbsBackwardOnDevice"),
  policyLossFromLogitsOnDevice: lazy("policyLossFromLogitsOnDevice"),
  getDevice: async () => {
    await acquire();
    return device!;
  },
  trim: () => inner?.trim(),
  bufferStats: () => inner?.bufferStats() ?? { live: 0, pooled: 0, pooledBytes: 0 },
};

/**
 * Destroys webgpuBackend's device and buffers (buffers it returned to you included: they were made on it) and,
 * in Node, lets go of dawn.node so that the process can exit. The next call acquires a new device.
 */
export async function releaseWebGpuBackend(): Promise<void> {
  if (pending !== undefined) await pending.catch(() => undefined);
  inner?.trim();
  inner = undefined;
  const destroyed = device;
  device = undefined;
  destroyed?.destroy();
  if (heldDawn) releaseDawn(HOLDER);
  heldDawn = false;
}

/** Why the last acquisition failed (undefined when it did not), for diagnostics. */
export function webgpuBackendFailure(): string | undefined {
  return lastFailure;
}
