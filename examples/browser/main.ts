/**
 * grpo-roc in the browser: the GRPO-RoC policy loss of a small batch and its gradient into the logits, computed on
 * the GPU by the WebGPU backend (WGSL kernels, float32) and on the CPU by the reference backend (plain TypeScript,
 * float64), side by side.
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
  type PolicyLossResult,
} from "grpo-roc";
import { createWebGpuBackend } from "grpo-roc/webgpu";
import { B, exampleBatch, T, V } from "./batch.js";

export interface Outcome {
  readonly done: true;
  /** WebGPU ran and agrees with the reference (loss and gradients to float32 precision). */
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
  /** policyLossFromLogits on WebGPU and on the reference backend. */
  readonly loss?: number;
  readonly referenceLoss: number;
  /** max |Δ| of ∂loss/∂logits between the two. */
  readonly maxGradDiff?: number;
  /** An error thrown by the WebGPU backend, or a device error. */
  readonly error?: string;
  readonly results: {
    readonly reference: LogitsPolicyLossResult;
    readonly referencePolicyLoss: PolicyLossResult;
    readonly webgpu?: LogitsPolicyLossResult;
    readonly webgpuPolicyLoss?: PolicyLossResult;
  };
  readonly milliseconds: { readonly reference: number; readonly webgpu?: number };
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

async function run(): Promise<Outcome> {
  const batch = exampleBatch();

  // The reference: plain TypeScript, float64, on the CPU. policyLoss takes log-probs: those from the logits.
  let start = performance.now();
  const reference = await referenceBackend.policyLossFromLogits(batch, options);
  const lossInputs = {
    logp: { data: reference.logp, shape: [B, T] },
    oldLogp: batch.oldLogp,
    advantages: batch.advantages,
    mask: batch.mask,
  } as const;
  const referencePolicyLoss = await referenceBackend.policyLoss(lossInputs, options);
  const referenceMs = performance.now() - start;
  const base = { done: true, referenceLoss: reference.loss, results: { reference, referencePolicyLoss } } as const;

  const gpu = await requestDevice();
  if ("reason" in gpu)
    return { ...base, ok: false, webgpu: false, reason: gpu.reason, milliseconds: { reference: referenceMs } };

  const { vendor, architecture, device: deviceName, description, isFallbackAdapter } = gpu.adapter.info;
  const adapter = { vendor, architecture, device: deviceName, description, isFallbackAdapter };
  const describe =
    [vendor, architecture, deviceName, description].filter(Boolean).join(" ") +
    (isFallbackAdapter ? " (fallback adapter)" : "");
  const deviceErrors: string[] = [];
  gpu.device.addEventListener("uncapturederror", (event) =>
    deviceErrors.push((event as GPUUncapturedErrorEvent).error.message),
  );

  // The WebGPU backend: the same kernels in WGSL, float32, on the GPU.
  const backend: Backend = createWebGpuBackend({ device: gpu.device });
  try {
    start = performance.now();
    const webgpu = await backend.policyLossFromLogits(batch, options);
    const webgpuPolicyLoss = await backend.policyLoss(lossInputs, options);
    const webgpuMs = performance.now() - start;
    const maxGradDiff = maxDiff(webgpu.gradLogits.data, reference.gradLogits.data);
    const ok =
      deviceErrors.length === 0 &&
      agrees([webgpu.loss], [reference.loss]) &&
      agrees(webgpu.gradLogits.data, reference.gradLogits.data) &&
      agrees([webgpuPolicyLoss.loss], [referencePolicyLoss.loss]) &&
      agrees(webgpuPolicyLoss.grad, referencePolicyLoss.grad);
    return {
      ...base,
      ok,
      webgpu: true,
      reason: describe,
      adapter,
      loss: webgpu.loss,
      maxGradDiff,
      ...(deviceErrors.length > 0 ? { error: deviceErrors.join("; ") } : {}),
      results: { ...base.results, webgpu, webgpuPolicyLoss },
      milliseconds: { reference: referenceMs, webgpu: webgpuMs },
    };
  } catch (error) {
    const message = [String(error), ...deviceErrors].join("; ");
    return {
      ...base,
      ok: false,
      webgpu: true,
      reason: describe,
      adapter,
      error: message,
      milliseconds: { reference: referenceMs },
    };
  } finally {
    gpu.device.destroy();
  }
}

/** The outcome as a table on the page. */
function show(outcome: Outcome): void {
  const { reference, referencePolicyLoss, webgpu, webgpuPolicyLoss } = outcome.results;
  const status = document.querySelector<HTMLElement>("#status")!;
  status.textContent = outcome.ok
    ? `WebGPU agrees with the reference — ${outcome.reason}`
    : outcome.webgpu
      ? `WebGPU ran on ${outcome.reason} but failed: ${outcome.error ?? "results differ from the reference"}`
      : `No WebGPU: ${outcome.reason}. The reference backend's results are shown alone.`;
  status.className = outcome.ok ? "ok" : "failed";

  const value = (x: number | undefined) => (x === undefined ? "–" : x.toPrecision(8));
  const diff = (x: number | undefined) => (x === undefined ? "–" : x.toExponential(1));
  const rows: [string, string, string, string][] = [
    [
      "loss (policyLossFromLogits)",
      value(webgpu?.loss),
      value(reference.loss),
      diff(webgpu && Math.abs(webgpu.loss - reference.loss)),
    ],
    [
      "max |∂loss/∂logits|",
      value(webgpu && maxAbs(webgpu.gradLogits.data)),
      value(maxAbs(reference.gradLogits.data)),
      diff(outcome.maxGradDiff),
    ],
    [
      "clip fraction",
      value(webgpu?.metrics.clipFraction),
      value(reference.metrics.clipFraction),
      diff(webgpu && Math.abs(webgpu.metrics.clipFraction - reference.metrics.clipFraction)),
    ],
    [
      "loss (policyLoss from log-probs)",
      value(webgpuPolicyLoss?.loss),
      value(referencePolicyLoss.loss),
      diff(webgpuPolicyLoss && Math.abs(webgpuPolicyLoss.loss - referencePolicyLoss.loss)),
    ],
    [
      "max |∂loss/∂logp|",
      value(webgpuPolicyLoss && maxAbs(webgpuPolicyLoss.grad)),
      value(maxAbs(referencePolicyLoss.grad)),
      diff(webgpuPolicyLoss && maxDiff(webgpuPolicyLoss.grad, referencePolicyLoss.grad)),
    ],
    [
      "time (ms; WebGPU: first call, compiles the kernels)",
      outcome.milliseconds.webgpu?.toFixed(1) ?? "–",
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
    `B = ${B} rollouts × T = ${T} tokens, vocabulary V = ${V}, lossPresets.paper`;
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
