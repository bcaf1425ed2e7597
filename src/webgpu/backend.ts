/**
 * The `webgpu` backend: grpo-roc's WGSL kernels (logprobs.wgsl.ts, backward.wgsl.ts, loss.wgsl.ts) behind the
 * Backend interface, over any GPUDevice — a browser's, dawn.node's in Node, or TensorFlow.js's own.
 *
 * Typed arrays in and out, validated exactly as the reference validates them (its exported validators); the math
 * runs in float32, so inputs are also refused where float32 cannot hold them (float32.ts), and the statistics keep a
 * row's largest logit and its log Σ apart so that logits up to float32's range stay exact (logprobs.wgsl.ts). Each
 * backend also takes logits that are already on its device (`…OnDevice`), binding them in place and leaving the
 * gradient there.
 */
import * as z from "zod/mini";
import {
  type Backend,
  type BackendInfo,
  type BackwardInputs,
  type ComposableKernels,
  composedPolicyLossFromLogits,
  GrpoRocError,
  invalid,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  type MatrixInput,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  parseOrThrow,
  readBackwardInputsOf,
  readBackwardOptions,
  readForwardOptions,
  readLogits,
  readPolicyLossCall,
  readTokens,
  roundToBfloat16InPlace,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  withRegisteredObjectives,
} from "../backends/contract.js";
import { type Batch, type ContextOptions, DeviceContext } from "./context.js";
import { WebGpuDeviceError } from "./errors.js";
import { planFused, runFused } from "./fused.js";
import { BufferUsage, type GpuBuffer, type GpuDevice } from "./gpu.js";
import { type DeviceLogits, readDeviceLogits } from "./logits.js";
import { requireFloat32Logits, requireFloat32Temperature, requireFloat32Upstream } from "../backends/contract.js";
import {
  clearUnlistedRows,
  deviceSource,
  encodeBackward,
  encodeForward,
  type GradientTarget,
  hostSource,
  type LogitsSource,
  listPositions,
  readStatistics,
  requireValidStatistics,
  savedStatistics,
  type Statistics,
  tokenIds,
  toTokenLogProbs,
} from "./logprobs.js";
import { encodeLoss, lossResult, packLoss, readLoss } from "./loss.js";
import { requireFiniteLoss, requireFloat32LossInputs, requireFloat32Options } from "../backends/contract.js";

/** A gradient left on the device: float32 [B, T, V], row-major from byte 0. The caller owns it (destroy() it). */
export interface DeviceGradient {
  /** The buffer holding ∂loss/∂logits: yours, or a new one. */
  readonly buffer: GpuBuffer;
  /** [B, T, V]. */
  readonly shape: readonly [number, number, number];
}

/** policyLossFromLogits's inputs with the logits on the device (`policyLossFromLogitsOnDevice`). */
export type DeviceLogitsPolicyLossInputs = LogitsPolicyLossInputs<DeviceLogits>;
/** policyLossFromLogits's result with the gradient into the logits left on the device. */
export type DeviceLogitsPolicyLossResult = LogitsPolicyLossResult<DeviceGradient>;

/**
 * The kernels over logits that are already on the backend's device. The gradient goes into `into` when given (a
 * buffer of the caller's with STORAGE and COPY_DST usage and room for [B, T, V] float32 from byte 0, not sharing
 * memory with the logits: every entry is overwritten), else into a new buffer; either way the caller owns it. A
 * training loop that passes the same buffer each step skips allocating (and, on a CPU driver, first-touching) it.
 *
 * A promise resolves when the work is complete on the device, not when it was submitted: the gradient buffer holds
 * the whole result (and the device reported no error for it), so it may be read, copied or mapped by any means.
 * Calls that share a buffer (the gradient one writes, the logits another reads, or both) run one after another in
 * the order they were made, so that un-awaited calls writing one `into` leave the last call's result whole, never a
 * mix; calls on different buffers run side by side. The caller must not write the logits, or `into`, by other
 * means (queue.writeBuffer, tfjs) while a call that uses them is pending.
 *
 * `saved` (tokenLogProbsBackwardOnDevice's options) must come from the forward pass over these same logits: the
 * pass trusts its logsumexp and entropy instead of recomputing them. It still checks the logits it reads: NaN or
 * +Infinity, a row of −Infinity only, and rows whose probabilities under the saved statistics do not sum to 1 (the
 * logits changed since) are refused, the last at options.saved.
 */
export interface DeviceKernels {
  /** tokenLogProbs over logits on the device; the log-probs come back as typed arrays. */
  tokenLogProbsOnDevice(
    logits: DeviceLogits,
    tokens: MatrixInput,
    options?: TokenLogProbsOptions,
  ): Promise<TokenLogProbs>;
  /** tokenLogProbsBackward over logits on the device, the gradient left there (in `into` when given). */
  tokenLogProbsBackwardOnDevice(
    logits: DeviceLogits,
    tokens: MatrixInput,
    options: TokenLogProbsBackwardOptions,
    into?: GpuBuffer,
  ): Promise<DeviceGradient>;
  /** policyLossFromLogits over logits on the device, fused: the gradient into the logits stays there. */
  policyLossFromLogitsOnDevice(
    inputs: DeviceLogitsPolicyLossInputs,
    options?: LogitsPolicyLossOptions,
    into?: GpuBuffer,
  ): Promise<DeviceLogitsPolicyLossResult>;
}

/**
 * A Backend running grpo-roc's WGSL kernels on one WebGPU device, in float32, with kernels for logits already on
 * that device.
 */
export interface WebGpuBackend extends Backend, DeviceKernels {
  /** The device the kernels run on (webgpuBackend acquires its own on first use). */
  getDevice(): Promise<GpuDevice>;
  /** Destroys the pooled buffers (kept between calls for speed; see ContextOptions.maxPooledBytes). */
  trim(): void;
  /**
   * Scratch buffers this backend holds (pooled ones included; results it handed you are yours), and what the pool
   * holds.
   */
  bufferStats(): { readonly live: number; readonly pooled: number; readonly pooledBytes: number };
}

/** createWebGpuBackend's options: the device, and how the backend names itself and pools buffers. */
export interface WebGpuBackendOptions extends ContextOptions {
  /** The device to run on: a browser's GPUDevice, dawn.node's, or tfjs-backend-webgpu's `backend.device`. */
  readonly device: GpuDevice;
  /** The name it registers under (default "webgpu"). */
  readonly name?: string | undefined;
  /** What probe() reports it runs on. */
  readonly description?: string | undefined;
}

const optionsSchema = z.strictObject({
  device: z.custom<GpuDevice>(
    (d) => typeof d === "object" && d !== null && typeof (d as GpuDevice).createBuffer === "function",
    { message: "expected a GPUDevice" },
  ),
  name: z.optional(z.string().check(z.minLength(1))),
  description: z.optional(z.string()),
  maxPooledBytes: z.optional(z.number().check(z.nonnegative())),
  maxBindingBytes: z.optional(z.int().check(z.positive())),
  watchUncaptured: z.optional(z.boolean()),
});

/** The WGSL kernels on `device`. One backend per device is enough (it caches pipelines and buffers). */
export function createWebGpuBackend(options: WebGpuBackendOptions): WebGpuBackend {
  const parsed = parseOrThrow(optionsSchema, options, "options");
  const device = options.device;
  const context = new DeviceContext(device, {
    maxPooledBytes: parsed.maxPooledBytes,
    maxBindingBytes: parsed.maxBindingBytes,
    watchUncaptured: parsed.watchUncaptured,
  });
  const name = parsed.name ?? "webgpu";
  const description = parsed.description ?? "grpo-roc's WGSL kernels on a WebGPU device";
  const backend: WebGpuBackend = withRegisteredObjectives({
    name,
    probe: async () => probeWebGpu(context, name, description),
    policyLoss: (inputs: PolicyLossInputs, lossOptions?: PolicyLossOptionsInput) =>
      webgpuPolicyLoss(context, inputs, lossOptions),
    tokenLogProbs: (logits: LogitsInput, tokens: MatrixInput, forwardOptions?: TokenLogProbsOptions) =>
      webgpuTokenLogProbs(context, logits, tokens, forwardOptions),
    tokenLogProbsBackward: (logits: LogitsInput, tokens: MatrixInput, backwardOptions: TokenLogProbsBackwardOptions) =>
      webgpuTokenLogProbsBackward(context, logits, tokens, backwardOptions),
    policyLossFromLogits: (inputs: LogitsPolicyLossInputs, lossOptions: LogitsPolicyLossOptions = {}) =>
      webgpuPolicyLossFromLogits(context, backend, inputs, lossOptions),
    tokenLogProbsOnDevice: (logits: DeviceLogits, tokens: MatrixInput, forwardOptions?: TokenLogProbsOptions) =>
      webgpuTokenLogProbsOnDevice(context, logits, tokens, forwardOptions),
    tokenLogProbsBackwardOnDevice: (
      logits: DeviceLogits,
      tokens: MatrixInput,
      backwardOptions: TokenLogProbsBackwardOptions,
      into?: GpuBuffer,
    ) => webgpuTokenLogProbsBackwardOnDevice(context, logits, tokens, backwardOptions, into),
    policyLossFromLogitsOnDevice: (
      inputs: DeviceLogitsPolicyLossInputs,
      lossOptions: LogitsPolicyLossOptions = {},
      into?: GpuBuffer,
    ) => webgpuPolicyLossFromLogitsOnDevice(context, backend, inputs, lossOptions, into),
    getDevice: async () => device,
    trim: () => context.trim(),
    bufferStats: () => ({
      live: context.liveBuffers,
      pooled: context.pooled.buffers,
      pooledBytes: context.pooled.bytes,
    }),
  });
  return backend;
}

function probeWebGpu(context: DeviceContext, name: string, description: string): BackendInfo {
  const info = { name, dtypes: ["float32"] as const, maxBindingBytes: context.bindingLimit };
  try {
    context.requireAlive();
    return { ...info, available: true, reason: `${description}, float32` };
  } catch (error) {
    return { ...info, available: false, reason: error instanceof Error ? error.message : String(error) };
  }
}

/** The output array of a gradient: the logits' own precision, as the reference returns it. */
function gradientArray(l: Logits, size: number): Float32Array | Float64Array {
  return l.data instanceof Float64Array || Array.isArray(l.data) ? new Float64Array(size) : new Float32Array(size);
}

/** Where a pass finds the logits of the positions it reads: uploaded from typed arrays, or bound on the device. */
type SourceOf = (batch: Batch, positions: Uint32Array) => LogitsSource;

// ---------------------------------------------------------------------------------------------------------------
// The kernels

async function webgpuPolicyLoss(
  context: DeviceContext,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput = {},
): Promise<PolicyLossResult> {
  const { options: o, inputs: t } = readPolicyLossCall(inputs, options);
  requireFloat32Options(o);
  requireFloat32LossInputs(t, o, { fromStatistics: false, hasOldLogp: true });
  const packed = packLoss(t, o, { fromStatistics: false, hasOldLogp: true });
  const [rows, cols] = t.shape;
  if (rows * cols === 0) return lossResult(o, packed, new Float32Array(0), new Float32Array(rows * 12));
  const batch = context.batch();
  try {
    const buffers = await encodeLoss(batch, o, packed);
    const result = await readLoss(batch, o, packed, buffers);
    requireFiniteLoss(result, t, t.logp, "inputs.logp");
    return result;
  } finally {
    batch.finish();
  }
}

async function webgpuTokenLogProbs(
  context: DeviceContext,
  logits: LogitsInput,
  tokens: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy } = readForwardOptions(options);
  const l = readLogits(logits);
  const { ids, mask } = readTokens(tokens, options.mask, l);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => mask === undefined || mask[i] === 1);
  const source: SourceOf = (batch, positions) => hostSource(batch, l, positions, false);
  return runForward(context, source, l, ids, mask, temperature, entropy);
}

async function webgpuTokenLogProbsOnDevice(
  context: DeviceContext,
  logits: DeviceLogits,
  tokens: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy } = readForwardOptions(options);
  const l = readDeviceLogits(logits);
  const { ids, mask } = readTokens(tokens, options.mask, l);
  requireFloat32Temperature(temperature);
  const source: SourceOf = (batch, positions) => deviceSource(batch, logits, positions);
  return context.exclusive([logits.buffer], () => runForward(context, source, l, ids, mask, temperature, entropy));
}

async function webgpuTokenLogProbsBackward(
  context: DeviceContext,
  logits: LogitsInput,
  tokens: MatrixInput,
  options: TokenLogProbsBackwardOptions,
): Promise<LogitsGradient> {
  const { temperature } = readBackwardOptions(options);
  const inputs = readBackwardInputsOf(readLogits(logits), temperature, tokens, options);
  requireFloat32Backward(inputs);
  const { l } = inputs;
  const out = gradientArray(l, l.rows * l.cols * l.vocab);
  const source: SourceOf = (batch, positions) => hostSource(batch, l, positions, false);
  await runBackward(context, source, inputs, { kind: "host", out });
  if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
}

async function webgpuTokenLogProbsBackwardOnDevice(
  context: DeviceContext,
  logits: DeviceLogits,
  tokens: MatrixInput,
  options: TokenLogProbsBackwardOptions,
  into: GpuBuffer | undefined,
): Promise<DeviceGradient> {
  const { temperature } = readBackwardOptions(options);
  const inputs = readBackwardInputsOf(readDeviceLogits(logits), temperature, tokens, options);
  requireFloat32Backward(inputs);
  const { gradient, target } = gradientDestination(context, inputs.l, logits, into);
  return context.exclusive([logits.buffer, gradient.buffer], async () => {
    try {
      await runBackward(context, (batch, positions) => deviceSource(batch, logits, positions), inputs, target);
      return gradient;
    } catch (error) {
      if (target.fresh) gradient.buffer.destroy();
      throw error;
    }
  });
}

/** What the backward kernel computes in float32 beyond the reference's checks (see float32.ts). */
function requireFloat32Backward({ l, reads, gradLogp, gradEntropy, temperature }: BackwardInputs): void {
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => reads[i] === 1);
  requireFloat32Upstream(gradLogp, gradEntropy, reads, temperature, l);
}

/** Fused on the device when the plan allows (see fused.ts), else composed from this backend's own kernels. */
async function webgpuPolicyLossFromLogits(
  context: DeviceContext,
  backend: WebGpuBackend,
  inputs: LogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions,
): Promise<LogitsPolicyLossResult> {
  const plan = planFused(inputs, options, readLogits);
  if (plan === undefined) return composedPolicyLossFromLogits(backend, inputs, options);
  const l = plan.logits;
  requireStatisticsBinding(context, l.rows * l.cols);
  const out = gradientArray(l, l.rows * l.cols * l.vocab);
  const batch = context.batch();
  try {
    const result = await runFused(batch, plan, { host: l }, { kind: "host", out });
    if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
    return { ...result, gradLogits: { data: out, shape: [l.rows, l.cols, l.vocab] } };
  } finally {
    batch.finish();
  }
}

async function webgpuPolicyLossFromLogitsOnDevice(
  context: DeviceContext,
  backend: WebGpuBackend,
  inputs: DeviceLogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions,
  into: GpuBuffer | undefined,
): Promise<DeviceLogitsPolicyLossResult> {
  const plan = planFused(inputs, options, readDeviceLogits);
  if (plan === undefined) return composedPolicyLossFromLogits(onDevice(backend, into), inputs, options);
  const l = plan.logits;
  requireStatisticsBinding(context, l.rows * l.cols);
  const { gradient, target } = gradientDestination(context, l, inputs.logits, into);
  return context.exclusive([inputs.logits.buffer, gradient.buffer], async () => {
    const batch = context.batch();
    try {
      const result = await runFused(batch, plan, { device: inputs.logits }, target);
      return { ...result, gradLogits: gradient };
    } catch (error) {
      if (target.fresh) gradient.buffer.destroy();
      throw error;
    } finally {
      batch.finish();
    }
  });
}

/** The backend's kernels over device logits, for the composition (the gradient into `into`). */
function onDevice(
  backend: WebGpuBackend,
  into: GpuBuffer | undefined,
): ComposableKernels<DeviceLogits, DeviceGradient> {
  return {
    tokenLogProbs: (logits, tokens, options) => backend.tokenLogProbsOnDevice(logits, tokens, options),
    policyLoss: (inputs, options) => backend.policyLoss(inputs, options),
    tokenLogProbsBackward: (logits, tokens, options) =>
      backend.tokenLogProbsBackwardOnDevice(logits, tokens, options, into),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The passes over the logits

/** The statistics pass over the positions the mask selects, read back as the reference's TokenLogProbs. */
async function runForward(
  context: DeviceContext,
  source: SourceOf,
  l: Logits,
  ids: ArrayLike<number>,
  mask: ArrayLike<number> | undefined,
  temperature: number,
  withEntropy: boolean,
): Promise<TokenLogProbs> {
  const count = l.rows * l.cols;
  const positions = listPositions(count, (i) => mask === undefined || mask[i] === 1);
  let statistics: Statistics = { stats: new Float32Array(count * 4), sums: new Float32Array(count * 2) };
  if (positions.length > 0) {
    requireStatisticsBinding(context, count);
    const batch = context.batch();
    try {
      const buffers = {
        tokens: batch.upload(tokenIds(ids, positions, count)),
        positions: batch.upload(positions),
        stats: batch.buffer(count * 16, BufferUsage.STORAGE | BufferUsage.COPY_SRC),
        sums: batch.buffer(count * 8, BufferUsage.STORAGE | BufferUsage.COPY_SRC),
      };
      await encodeForward(batch, source(batch, positions), buffers, 1 / temperature);
      statistics = await readStatistics(batch, buffers, positions, count);
      await batch.check();
    } finally {
      batch.finish();
    }
  }
  requireValidStatistics(statistics.stats, positions, l.cols);
  return toTokenLogProbs(statistics, positions, [l.rows, l.cols], temperature, withEntropy);
}

/**
 * The gradient pass over the positions the backward reads (the contract's rule), into `destination`; statistics are
 * the saved ones (see savedStatistics), or computed in the same pass. Either way the statistics come back with the
 * pass's flags, checked as the reference's rowStatistics checks them (and, for saved ones, that they describe
 * these logits); reading them back also means the pass is complete when this resolves.
 */
async function runBackward(
  context: DeviceContext,
  source: SourceOf,
  inputs: BackwardInputs,
  destination: GradientTarget,
): Promise<void> {
  const { l, ids, reads, gradLogp, gradEntropy, temperature, saved } = inputs;
  const count = l.rows * l.cols;
  const positions = listPositions(count, (i) => reads[i] === 1);
  if (positions.length === 0) {
    await clearDestination(context, destination, count, l.vocab);
    return;
  }
  requireStatisticsBinding(context, count);
  const upstream = new Float32Array(count * 4);
  let withEntropy = false;
  for (const i of positions) {
    upstream[4 * i] = gradLogp[i]!;
    const h = gradEntropy?.[i] ?? 0;
    upstream[4 * i + 3] = h;
    if (h !== 0) withEntropy = true;
  }
  const batch = context.batch();
  try {
    const given = saved === undefined ? undefined : savedStatistics(saved, positions, count, temperature);
    const usage = BufferUsage.STORAGE | BufferUsage.COPY_SRC;
    const buffers = {
      tokens: batch.upload(tokenIds(ids, positions, count)),
      positions: batch.upload(positions),
      stats: given === undefined ? batch.buffer(count * 16, usage) : batch.upload(given.stats, usage),
      upstream: batch.upload(upstream),
      sums: given === undefined ? undefined : batch.upload(given.sums),
    };
    clearUnlistedRows(batch, destination, positions, count, l.vocab * 4);
    const pass = {
      inverseTemperature: 1 / temperature,
      withStatistics: saved === undefined,
      withEntropy,
      savedSums: saved !== undefined,
    };
    await encodeBackward(batch, source(batch, positions), buffers, pass, destination);
    const { stats } = await readStatistics(batch, { stats: buffers.stats }, positions, count);
    await batch.check();
    requireValidStatistics(stats, positions, l.cols);
  } finally {
    batch.finish();
  }
}

/** No position is read: a caller's buffer is still overwritten with zeros (a new one already is zero). */
async function clearDestination(context: DeviceContext, destination: GradientTarget, count: number, vocab: number) {
  if (destination.kind !== "device" || destination.fresh) return;
  const batch = context.batch();
  try {
    clearUnlistedRows(batch, destination, new Uint32Array(0), count, vocab * 4);
    await batch.complete();
  } finally {
    batch.finish();
  }
}

/**
 * Where a gradient left on the device goes: the caller's buffer (`into`), checked, or a new float32 [B, T, V]
 * buffer, which WebGPU zeroes.
 */
function gradientDestination(
  context: DeviceContext,
  l: Logits,
  logits: DeviceLogits,
  into: GpuBuffer | undefined,
): { gradient: DeviceGradient; target: GradientTarget & { kind: "device" } } {
  context.requireAlive();
  const shape = [l.rows, l.cols, l.vocab] as const;
  const bytes = l.rows * l.cols * l.vocab * 4;
  if (into !== undefined) {
    if (typeof into !== "object" || into === null || typeof into.destroy !== "function")
      throw invalid("into", "expected a GPUBuffer");
    if (into.size < bytes)
      throw invalid("into", `holds ${into.size} bytes but the gradient of [${shape.join(", ")}] logits needs ${bytes}`);
    const needed = BufferUsage.STORAGE | BufferUsage.COPY_DST;
    if ((into.usage & needed) !== needed)
      throw invalid(
        "into",
        "needs STORAGE and COPY_DST usage (the gradient is written by a kernel, and cleared where no position is)",
      );
    if (into === logits.buffer)
      throw invalid("into", "is the logits' own buffer; the gradient needs a buffer of its own");
    return { gradient: { buffer: into, shape }, target: { kind: "device", buffer: into, fresh: false } };
  }
  if (bytes > context.bufferLimit) {
    throw new GrpoRocError(
      `the gradient of [${l.rows}, ${l.cols}, ${l.vocab}] logits needs ${bytes} bytes, over this device's ` +
        `maxBufferSize (${context.bufferLimit})`,
    );
  }
  const buffer = context.create(bytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST);
  return { gradient: { buffer, shape }, target: { kind: "device", buffer, fresh: true } };
}

/** Per-position statistics (16 bytes each) are bound whole. */
function requireStatisticsBinding(context: DeviceContext, positions: number): void {
  if (positions * 16 <= context.bindingLimit) return;
  throw context.bindingTooSmall(
    "logits",
    `${positions} positions (B·T) have ${positions * 16} bytes of statistics (16 per position), bound whole`,
    `at most ${Math.floor(context.bindingLimit / 16)} positions per call`,
  );
}

export { WebGpuDeviceError };
