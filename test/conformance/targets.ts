/**
 * The backends the conformance suite runs on. Each test file prepares one (a tfjs backend is process-wide state,
 * and one file per backend lets vitest run them side by side), then defines the one suite of ./suite.ts on it.
 */
import * as tf from "@tensorflow/tfjs";
import { referenceBackend, type Backend } from "../../src/backends/index.js";
import { tfjsBackend, useTfjsBackend, type TfjsBackendName } from "../../src/tfjs/index.js";
import type { LogitsGradient, LogitsInput } from "../../src/backends/contract.js";
import type { WasmBackend } from "../../src/wasm/index.js";
import type { Dtype } from "./tolerances.js";

export type TargetName =
  | "reference"
  | "tfjs@cpu"
  | "tfjs@wasm"
  | "tfjs@webgpu"
  | "webgpu"
  | "webgpu@chunked"
  | "cuda"
  | "cuda@host"
  | "wasm"
  | "wasm@1thread"
  | "wasm@chunked"
  | "wasm@resident";

/**
 * How many random cases each part runs. The cases are small, so every backend runs all of them (on lavapipe, a CPU
 * Vulkan driver, webgpu's whole suite takes ~10 s besides the 147 MB logits test); a slower device could run fewer.
 */
export interface Budget {
  readonly randomLosses: number;
  readonly randomLogProbs: number;
  readonly gradientChecks: number;
  /** Random cases of the loss from logits (policyLossFromLogits). */
  readonly randomFromLogits: number;
  /** Aggregations × ratio levels of the micro-batch property. */
  readonly microBatchConfigs: number;
}

export interface Target {
  readonly name: TargetName;
  readonly backend: Backend;
  readonly dtype: Dtype;
  readonly available: boolean;
  readonly reason: string;
  readonly budget: Budget;
  /** Live device objects (tfjs tensors), to check that kernels free what they allocate. */
  readonly liveObjects?: () => number;
}

const FULL: Budget = {
  randomLosses: 40,
  randomLogProbs: 12,
  gradientChecks: 10,
  randomFromLogits: 12,
  microBatchConfigs: 16,
};

export async function prepareTarget(name: TargetName): Promise<Target> {
  if (name === "reference") {
    const info = await referenceBackend.probe();
    return {
      name,
      backend: referenceBackend,
      dtype: "float64",
      available: info.available,
      reason: info.reason,
      budget: FULL,
    };
  }
  if (name === "webgpu" || name === "webgpu@chunked") {
    // Loaded only here, so that the other targets never start Dawn.
    const { createWebGpuBackend, webgpuBackend } = await import("../../src/webgpu/index.js");
    const info = await webgpuBackend.probe();
    if (!info.available || name === "webgpu") {
      return {
        name,
        backend: webgpuBackend,
        dtype: "float32",
        available: info.available,
        reason: info.reason,
        budget: FULL,
        liveObjects: liveBuffers(webgpuBackend),
      };
    }
    // The same kernels on the same device with a 4 KiB binding limit, so that the suite's small logits are cut into
    // many chunks (the limit's own path: every chunk boundary a case can have).
    const backend = createWebGpuBackend({
      device: await webgpuBackend.getDevice(),
      name,
      maxBindingBytes: 4096,
      maxPooledBytes: 0,
    });
    const chunked = await backend.probe();
    return {
      name,
      backend,
      dtype: "float32",
      available: chunked.available,
      reason: chunked.reason,
      budget: FULL,
      liveObjects: liveBuffers(backend),
    };
  }
  if (name === "cuda" || name === "cuda@host") {
    // Loaded only here, so that the other targets never touch the native addon.
    const { cudaBackend, createCudaBackend } = await import("../../src/cuda/index.js");
    // The host executor with small chunks, so that chunk boundaries fall inside the suite's logits.
    const backend = name === "cuda" ? cudaBackend : createCudaBackend({ exec: "host", chunkBytes: 4096 });
    const info = await backend.probe();
    return { name, backend, dtype: "float32", available: info.available, reason: info.reason, budget: FULL };
  }
  if (name.startsWith("wasm")) {
    const { createWasmBackend, wasmBackend } = await import("../../src/wasm/index.js");
    // wasm: the default backend (a thread per core). wasm@1thread: no workers. wasm@chunked: 4 KiB of logits per
    // chunk, so that chunk boundaries fall inside the suite's logits (a row larger than that is a chunk of its own),
    // over 3 threads, so that a chunk's positions split unevenly. wasm@resident: every float32 logits copied into
    // the backend's memory first (allocateLogits), the gradient written there.
    const backend =
      name === "wasm"
        ? wasmBackend
        : name === "wasm@1thread"
          ? createWasmBackend({ name, threads: 1 })
          : name === "wasm@chunked"
            ? createWasmBackend({ name, chunkBytes: 4096, threads: 3 })
            : residentLogits(createWasmBackend({ name }));
    const info = await backend.probe();
    return { name, backend, dtype: "float32", available: info.available, reason: info.reason, budget: FULL };
  }
  const tfjsName = name.slice("tfjs@".length) as TfjsBackendName;
  const status = await useTfjsBackend(tfjsName);
  const info = status.available ? await tfjsBackend.probe() : undefined;
  const available = status.available && info?.available === true && tf.getBackend() === tfjsName;
  return {
    name,
    backend: tfjsBackend,
    dtype: "float32",
    available,
    reason: status.reason,
    budget: FULL,
    liveObjects: () => tf.memory().numTensors,
  };
}

/** Buffers a WebGPU backend holds beyond its pool: the suite checks that kernels give back what they take. */
function liveBuffers(backend: { bufferStats(): { live: number; pooled: number } }): () => number {
  return () => {
    const { live, pooled } = backend.bufferStats();
    return live - pooled;
  };
}

/** CI is set (and not "0" / "false"): then every backend must be available. */
export const inCi = (() => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
})();

/**
 * The wasm backend given its float32 `{ data, shape }` logits in its own memory: each call copies them into a
 * WasmLogitsBuffer, passes the buffer's logits, copies a gradient out (it lives in the buffer) and releases the
 * buffer. Other logits (nested arrays, float64, bfloat16, malformed shapes) go through as they are.
 */
function residentLogits(backend: WasmBackend): Backend {
  const withResident = async <R>(logits: LogitsInput, call: (logits: LogitsInput) => Promise<R>): Promise<R> => {
    const input = logits as { data?: unknown; shape?: unknown; dtype?: unknown };
    const shape = input.shape as [number, number, number] | undefined;
    const fits =
      input.data instanceof Float32Array &&
      input.dtype === undefined &&
      Array.isArray(shape) &&
      shape.length === 3 &&
      shape.every((d) => Number.isInteger(d) && d >= 0) &&
      shape[2] > 0 &&
      shape[0] * shape[1] * shape[2] === input.data.length;
    if (!fits) return call(logits);
    const buffer = await backend.allocateLogits(shape);
    try {
      buffer.logits.data.set(input.data as Float32Array);
      return await call(buffer.logits);
    } finally {
      buffer.release();
    }
  };
  const copied = (gradient: LogitsGradient): LogitsGradient => ({ ...gradient, data: gradient.data.slice() });
  return {
    ...backend,
    tokenLogProbs: (logits, tokens, options) => withResident(logits, (l) => backend.tokenLogProbs(l, tokens, options)),
    tokenLogProbsBackward: (logits, tokens, options) =>
      withResident(logits, async (l) => copied(await backend.tokenLogProbsBackward(l, tokens, options))),
    policyLossFromLogits: (inputs, options) =>
      withResident(inputs.logits, async (l) => {
        const result = await backend.policyLossFromLogits({ ...inputs, logits: l }, options);
        return { ...result, gradLogits: copied(result.gradLogits) };
      }),
  };
}
