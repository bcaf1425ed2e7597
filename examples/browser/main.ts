/**
 * grpo-roc in the browser: the GRPO-RoC policy loss of a small batch and its gradient into the logits, computed in
 * float32 by the WebGPU backend (WGSL kernels on the GPU) or, where this browser has no WebGPU, by the wasm backend
 * (WebAssembly SIMD kernels on the CPU), and in float64 by the reference backend (plain TypeScript), side by side.
 *
 *   npm run example:browser     builds this page and serves it; open the URL it prints
 *
 * The outcome is also left on `window.__grpoRoc` (see Outcome), which test/browser.test.ts reads.
 */
import {
  lossPresets,
  referenceBackend,
  type Backend,
  type LogitsPolicyLossResult,
  type PolicyLossInputs,
  type PolicyLossResult,
} from "grpo-roc";
import { createWasmBackend } from "grpo-roc/wasm";
import { createWebGpuBackend } from "grpo-roc/webgpu";
import { B, type ExampleBatch, exampleBatch, T, V } from "./batch.js";

export interface Outcome {
  readonly done: true;
  /** The float32 backend that ran; "reference" when neither WebGPU nor WebAssembly could. */
  readonly backend: "webgpu" | "wasm" | "reference";
  /** That backend ran and agrees with the reference (loss and gradients to float32 precision). */
  readonly ok: boolean;
  /** A WebGPU device was obtained. */
  readonly webgpu: boolean;
  /** Why there is no WebGPU, or what the adapter is. */
  readonly reason: string;
  readonly adapter?: {
    vendor: string;
    architecture: string;
    device: string;
    description: string;
    isFallbackAdapter: boolean;
  };
  /** The wasm backend's probe(), asked only without WebGPU. */
  readonly wasm?: { readonly available: boolean; readonly reason: string };
  /** Whether the page may share memory between threads (the server's COOP and COEP headers allow it). */
  readonly crossOriginIsolated: boolean;
  /** policyLossFromLogits on the float32 backend and on the reference backend. */
  readonly loss?: number;
  readonly referenceLoss: number;
  /** max |Δ| of ∂loss/∂logits between the two. */
  readonly maxGradDiff?: number;
  /** An error thrown by the float32 backend, or a device error. */
  readonly error?: string;
  readonly results: {
    readonly reference: LogitsPolicyLossResult;
    readonly referencePolicyLoss: PolicyLossResult;
    readonly webgpu?: LogitsPolicyLossResult;
    readonly webgpuPolicyLoss?: PolicyLossResult;
    readonly wasm?: LogitsPolicyLossResult;
    readonly wasmPolicyLoss?: PolicyLossResult;
  };
  readonly milliseconds: { readonly reference: number; readonly webgpu?: number; readonly wasm?: number };
}

declare global {
  interface Window {
    __grpoRoc?: Outcome;
  }
}

const options = lossPresets.paper;

/** A GPU device, or why there is none. */
async function requestDevice(): Promise<{ device: GPUDevice; adapter: GPUAdapter } | { reason: string }> {
  if (!("gpu" in navigator))
    return { reason: "this browser has no WebGPU (navigator.gpu is missing; WebGPU also needs https or localhost)" };
  const adapter = await navigator.gpu.requestAdapter();
  if (adapter === null) {
    return {
      reason:
        "WebGPU is off or found no adapter (navigator.gpu.requestAdapter() gave null; headless Chromium needs --enable-unsafe-webgpu)",
    };
  }
  // The adapter's own limits, so that big inputs go through in fewer chunks.
  const { maxStorageBufferBindingSize, maxBufferSize } = adapter.limits;
  try {
    return {
      device: await adapter.requestDevice({ requiredLimits: { maxStorageBufferBindingSize, maxBufferSize } }),
      adapter,
    };
  } catch (error) {
    return { reason: `the adapter gave no device: ${String(error)}` };
  }
}

/** The largest |a − b| over two arrays of the same length. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

const maxAbs = (a: ArrayLike<number>) => maxDiff(a, new Float64Array(a.length));

/** Agreement to float32 precision: every |Δ| within 1e-5 of the reference's largest magnitude (or 1). */
const agrees = (a: ArrayLike<number>, b: ArrayLike<number>) => maxDiff(a, b) <= 1e-5 * Math.max(1, maxAbs(b));

/** The inputs of both losses, and the reference's results on them. */
interface Reference {
  readonly batch: ExampleBatch;
  readonly lossInputs: PolicyLossInputs;
  readonly reference: LogitsPolicyLossResult;
  readonly referencePolicyLoss: PolicyLossResult;
}

/** policyLossFromLogits and policyLoss on a float32 backend, timed, against the reference. */
async function compare(backend: Backend, { batch, lossInputs, reference, referencePolicyLoss }: Reference) {
  const start = performance.now();
  const logits = await backend.policyLossFromLogits(batch, options);
  const policyLoss = await backend.policyLoss(lossInputs, options);
  const milliseconds = performance.now() - start;
  const agreed =
    agrees([logits.loss], [reference.loss]) &&
    agrees(logits.gradLogits.data, reference.gradLogits.data) &&
    agrees([policyLoss.loss], [referencePolicyLoss.loss]) &&
    agrees(policyLoss.grad, referencePolicyLoss.grad);
  const maxGradDiff = maxDiff(logits.gradLogits.data, reference.gradLogits.data);
  return { logits, policyLoss, milliseconds, agreed, maxGradDiff };
}

async function run(): Promise<Outcome> {
  const batch = exampleBatch();

  // The reference: plain TypeScript, float64, on the CPU. policyLoss takes log-probs: those from the logits.
  const start = performance.now();
  const reference = await referenceBackend.policyLossFromLogits(batch, options);
  const lossInputs = {
    logp: { data: reference.logp, shape: [B, T] },
    oldLogp: batch.oldLogp,
    advantages: batch.advantages,
    mask: batch.mask,
  } as const;
  const referencePolicyLoss = await referenceBackend.policyLoss(lossInputs, options);
  const milliseconds = { reference: performance.now() - start };
  const inputs: Reference = { batch, lossInputs, reference, referencePolicyLoss };
  const base = {
    done: true,
    crossOriginIsolated,
    referenceLoss: reference.loss,
    results: { reference, referencePolicyLoss },
  } as const;

  const gpu = await requestDevice();
  if ("reason" in gpu) {
    const noGpu = { ...base, webgpu: false, reason: gpu.reason } as const;
    // Without WebGPU, the same comparison on the CPU: the wasm backend's float32 kernels.
    const backend = createWasmBackend();
    const { available, reason } = await backend.probe();
    const wasm = { available, reason };
    if (!available) return { ...noGpu, backend: "reference", ok: false, wasm, milliseconds };
    try {
      const result = await compare(backend, inputs);
      return {
        ...noGpu,
        backend: "wasm",
        ok: result.agreed,
        wasm,
        loss: result.logits.loss,
        maxGradDiff: result.maxGradDiff,
        results: { ...base.results, wasm: result.logits, wasmPolicyLoss: result.policyLoss },
        milliseconds: { ...milliseconds, wasm: result.milliseconds },
      };
    } catch (error) {
      return { ...noGpu, backend: "wasm", ok: false, wasm, error: String(error), milliseconds };
    }
  }

  const { vendor, architecture, device: deviceName, description, isFallbackAdapter } = gpu.adapter.info;
  const adapter = { vendor, architecture, device: deviceName, description, isFallbackAdapter };
  const describe =
    [vendor, architecture, deviceName, description].filter(Boolean).join(" ") +
    (isFallbackAdapter ? " (fallback adapter)" : "");
  const withGpu = { ...base, backend: "webgpu", webgpu: true, reason: describe, adapter } as const;
  const deviceErrors: string[] = [];
  gpu.device.addEventListener("uncapturederror", (event) =>
    deviceErrors.push((event as GPUUncapturedErrorEvent).error.message),
  );

  // The WebGPU backend: the same kernels in WGSL, float32, on the GPU.
  try {
    const result = await compare(createWebGpuBackend({ device: gpu.device }), inputs);
    return {
      ...withGpu,
      ok: deviceErrors.length === 0 && result.agreed,
      loss: result.logits.loss,
      maxGradDiff: result.maxGradDiff,
      ...(deviceErrors.length > 0 ? { error: deviceErrors.join("; ") } : {}),
      results: { ...base.results, webgpu: result.logits, webgpuPolicyLoss: result.policyLoss },
      milliseconds: { ...milliseconds, webgpu: result.milliseconds },
    };
  } catch (error) {
    return { ...withGpu, ok: false, error: [String(error), ...deviceErrors].join("; "), milliseconds };
  } finally {
    gpu.device.destroy();
  }
}

/** The outcome as a table on the page. */
function show(outcome: Outcome): void {
  const { reference, referencePolicyLoss } = outcome.results;
  const float32 = outcome.backend === "wasm" ? outcome.results.wasm : outcome.results.webgpu;
  const float32PolicyLoss =
    outcome.backend === "wasm" ? outcome.results.wasmPolicyLoss : outcome.results.webgpuPolicyLoss;
  const float32Ms = outcome.backend === "wasm" ? outcome.milliseconds.wasm : outcome.milliseconds.webgpu;
  const status = document.querySelector<HTMLElement>("#status")!;
  const failure = outcome.error ?? "results differ from the reference";
  if (outcome.webgpu) {
    status.textContent = outcome.ok
      ? `WebGPU agrees with the reference — ${outcome.reason}`
      : `WebGPU ran on ${outcome.reason} but failed: ${failure}`;
  } else {
    const wasm = outcome.wasm!;
    const verdict =
      outcome.backend === "reference"
        ? "The reference backend's results are shown alone."
        : outcome.ok
          ? "It agrees with the reference."
          : `It failed: ${failure}`;
    status.textContent = `No WebGPU: ${outcome.reason}. WebAssembly backend: ${wasm.reason}. ${verdict}`;
  }
  status.className = outcome.ok ? "ok" : "failed";
  document.querySelector("#float32")!.textContent =
    outcome.backend === "wasm" ? "WebAssembly (float32)" : outcome.backend === "webgpu" ? "WebGPU (float32)" : "–";

  const value = (x: number | undefined) => (x === undefined ? "–" : x.toPrecision(8));
  const diff = (x: number | undefined) => (x === undefined ? "–" : x.toExponential(1));
  const rows: [string, string, string, string][] = [
    [
      "loss (policyLossFromLogits)",
      value(float32?.loss),
      value(reference.loss),
      diff(float32 && Math.abs(float32.loss - reference.loss)),
    ],
    [
      "max |∂loss/∂logits|",
      value(float32 && maxAbs(float32.gradLogits.data)),
      value(maxAbs(reference.gradLogits.data)),
      diff(outcome.maxGradDiff),
    ],
    [
      "clip fraction",
      value(float32?.metrics.clipFraction),
      value(reference.metrics.clipFraction),
      diff(float32 && Math.abs(float32.metrics.clipFraction - reference.metrics.clipFraction)),
    ],
    [
      "loss (policyLoss from log-probs)",
      value(float32PolicyLoss?.loss),
      value(referencePolicyLoss.loss),
      diff(float32PolicyLoss && Math.abs(float32PolicyLoss.loss - referencePolicyLoss.loss)),
    ],
    [
      "max |∂loss/∂logp|",
      value(float32PolicyLoss && maxAbs(float32PolicyLoss.grad)),
      value(maxAbs(referencePolicyLoss.grad)),
      diff(float32PolicyLoss && maxDiff(float32PolicyLoss.grad, referencePolicyLoss.grad)),
    ],
    [
      "time (ms, first call; WebGPU's includes compiling the kernels)",
      float32Ms?.toFixed(1) ?? "–",
      outcome.milliseconds.reference.toFixed(1),
      "",
    ],
  ];
  const body = document.querySelector("#results tbody")!;
  for (const cells of rows) {
    const tr = body.appendChild(document.createElement("tr"));
    for (const cell of cells) tr.appendChild(document.createElement("td")).textContent = cell;
  }
  document.querySelector("#batch")!.textContent =
    `B = ${B} rollouts × T = ${T} tokens, vocabulary V = ${V}, lossPresets.paper; ` +
    (outcome.crossOriginIsolated ? "cross-origin isolated" : "not cross-origin isolated (no shared memory)");
}

run().then(
  (outcome) => {
    window.__grpoRoc = outcome;
    show(outcome);
  },
  (error: unknown) => {
    document.querySelector("#status")!.textContent = `The page failed: ${String(error)}`;
  },
);
