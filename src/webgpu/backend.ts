/**
 * The `webgpu` backend: grpo-roc's WGSL kernels (logprobs.wgsl.ts, backward.wgsl.ts, loss.wgsl.ts) behind the
 * Backend interface, over any GPUDevice — a browser's, dawn.node's in Node, or TensorFlow.js's own.
 *
 * Typed arrays in and out, validated exactly as the reference validates them (its exported validators); the math
 * runs in float32. Each backend also takes logits that are already on its device (`…OnDevice`), binding them in
 * place and leaving the gradient there.
 */
import type { Backend, BackendInfo } from "../backends/types.js";
import { GrpoRocError } from "../errors.js";
import {
  composedPolicyLossFromLogits,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
} from "../logits-loss.js";
import { roundToBfloat16InPlace } from "../logprobs/bfloat16.js";
import {
  readBackwardInputsOf,
  savedSkipped,
  readForwardOptions,
  readLogits,
  readTokens,
  type Logits,
  type LogitsInput,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
} from "../logprobs/token-logprobs.js";
import {
  policyLoss as referencePolicyLoss,
  readInputs,
  requireFiniteLogps,
  resolvePolicyLossOptions,
  type PolicyLossResult,
} from "../loss/policy-loss.js";
import { invalid, parseOrThrow } from "../errors.js";
import type { MatrixInput } from "../tensor.js";
import { z } from "zod";
import { DeviceContext, type ContextOptions } from "./context.js";
import { WebGpuDeviceError } from "./errors.js";
import { planFused, runFused } from "./fused.js";
import { BufferUsage, type GpuBuffer, type GpuDevice } from "./gpu.js";
import { readDeviceLogits, type DeviceLogits } from "./logits.js";
import {
  clearUnlistedRows,
  deviceSource,
  encodeBackward,
  encodeForward,
  hostSource,
  listPositions,
  readStatistics,
  requireFiniteStatistics,
  tokenIds,
  toTokenLogProbs,
  type GradientTarget,
  type LogitsSource,
} from "./logprobs.js";
import { encodeLoss, isDeviceObjective, lossResult, packLoss, readLoss } from "./loss.js";

/** A gradient left on the device: float32 [B, T, V], row-major from byte 0. The caller owns it (destroy() it). */
export interface DeviceGradient {
  readonly buffer: GpuBuffer;
  readonly shape: readonly [number, number, number];
}

export interface DeviceLogitsPolicyLossInputs extends Omit<LogitsPolicyLossInputs, "logits"> {
  readonly logits: DeviceLogits;
}

export interface DeviceLogitsPolicyLossResult extends Omit<LogitsPolicyLossResult, "gradLogits"> {
  readonly gradLogits: DeviceGradient;
}

/**
 * The kernels over logits that are already on the backend's device. The gradient goes into `into` when given (a
 * buffer of the caller's with STORAGE and COPY_DST usage and room for [B, T, V] float32 from byte 0, not sharing
 * memory with the logits: every entry is overwritten), else into a new buffer; either way the caller owns it. A
 * training loop that passes the same buffer each step skips allocating (and, on a CPU driver, first-touching) it.
 */
export interface DeviceKernels {
  tokenLogProbsOnDevice(
    logits: DeviceLogits,
    tokens: MatrixInput,
    options?: TokenLogProbsOptions,
  ): Promise<TokenLogProbs>;
  tokenLogProbsBackwardOnDevice(
    logits: DeviceLogits,
    tokens: MatrixInput,
    options: TokenLogProbsBackwardOptions,
    into?: GpuBuffer,
  ): Promise<DeviceGradient>;
  policyLossFromLogitsOnDevice(
    inputs: DeviceLogitsPolicyLossInputs,
    options?: LogitsPolicyLossOptions,
    into?: GpuBuffer,
  ): Promise<DeviceLogitsPolicyLossResult>;
}

export interface WebGpuBackend extends Backend, DeviceKernels {
  /** The device the kernels run on (webgpuBackend acquires its own on first use). */
  getDevice(): Promise<GpuDevice>;
  /** Destroys the pooled buffers (kept between calls for speed; see ContextOptions.maxPooledBytes). */
  trim(): void;
  /** Scratch buffers this backend holds (pooled ones included; results it handed you are yours), and what the pool holds. */
  bufferStats(): { readonly live: number; readonly pooled: number; readonly pooledBytes: number };
}

export interface WebGpuBackendOptions extends ContextOptions {
  readonly device: GpuDevice;
  /** The name it registers under (default "webgpu"). */
  readonly name?: string | undefined;
  /** What probe() reports it runs on. */
  readonly description?: string | undefined;
}

const optionsSchema = z.object({
  device: z.custom<GpuDevice>(
    (d) => typeof d === "object" && d !== null && typeof (d as GpuDevice).createBuffer === "function",
    { message: "expected a GPUDevice" },
  ),
  name: z.string().min(1).optional(),
  description: z.string().optional(),
  maxPooledBytes: z.number().nonnegative().optional(),
  maxBindingBytes: z.number().int().positive().optional(),
});

/** The WGSL kernels on `device`. One backend per device is enough (it caches pipelines and buffers). */
export function createWebGpuBackend(options: WebGpuBackendOptions): WebGpuBackend {
  const parsed = parseOrThrow(optionsSchema, options, "options");
  const device = options.device;
  const context = new DeviceContext(device, {
    ...(parsed.maxPooledBytes !== undefined ? { maxPooledBytes: parsed.maxPooledBytes } : {}),
    ...(parsed.maxBindingBytes !== undefined ? { maxBindingBytes: parsed.maxBindingBytes } : {}),
  });
  const name = parsed.name ?? "webgpu";
  const description = parsed.description ?? "grpo-roc's WGSL kernels on a WebGPU device";
  const kernels = deviceKernels(context);
  const backend: WebGpuBackend = {
    name,
    async probe(): Promise<BackendInfo> {
      try {
        context.requireAlive();
        return {
          name,
          available: true,
          reason: `${description}, float32`,
          dtypes: ["float32"],
          maxBindingBytes: context.bindingLimit,
        };
      } catch (error) {
        return {
          name,
          available: false,
          reason: error instanceof Error ? error.message : String(error),
          dtypes: ["float32"],
          maxBindingBytes: context.bindingLimit,
        };
      }
    },
    policyLoss: (inputs, options) => kernels.policyLoss(inputs, options),
    tokenLogProbs: (logits, tokens, options) => kernels.tokenLogProbs(logits, tokens, options),
    tokenLogProbsBackward: (logits, tokens, options) => kernels.tokenLogProbsBackward(logits, tokens, options),
    policyLossFromLogits: (inputs, options = {}) => kernels.policyLossFromLogits(backend, inputs, options),
    tokenLogProbsOnDevice: (logits, tokens, options) => kernels.tokenLogProbsOnDevice(logits, tokens, options),
    tokenLogProbsBackwardOnDevice: (logits, tokens, options, into) =>
      kernels.tokenLogProbsBackwardOnDevice(logits, tokens, options, into),
    policyLossFromLogitsOnDevice: (inputs, options = {}, into) =>
      kernels.policyLossFromLogitsOnDevice(backend, inputs, options, into),
    getDevice: async () => device,
    trim: () => context.trim(),
    bufferStats: () => ({
      live: context.liveBuffers,
      pooled: context.pooled.buffers,
      pooledBytes: context.pooled.bytes,
    }),
  };
  return backend;
}

/** The output array of a gradient: the logits' own precision, as the reference returns it. */
function gradientArray(l: Logits, size: number): Float32Array | Float64Array {
  return l.data instanceof Float64Array || Array.isArray(l.data) ? new Float64Array(size) : new Float32Array(size);
}

function deviceKernels(context: DeviceContext) {
  const forward = async (
    source: (batch: ReturnType<DeviceContext["batch"]>, positions: Uint32Array) => LogitsSource,
    l: Logits,
    ids: ArrayLike<number>,
    mask: ArrayLike<number> | undefined,
    temperature: number,
    withEntropy: boolean,
  ): Promise<TokenLogProbs> => {
    const count = l.rows * l.cols;
    const positions = listPositions(count, (i) => mask === undefined || mask[i] === 1);
    let stats: Float32Array = new Float32Array(count * 4);
    if (positions.length > 0) {
      const batch = context.batch();
      try {
        const statsBuffer = batch.buffer(count * 16, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
        requireStatisticsBinding(context, count);
        await encodeForward(
          batch,
          source(batch, positions),
          batch.upload(tokenIds(ids, positions, count)),
          batch.upload(positions),
          statsBuffer,
          1 / temperature,
        );
        stats = await readStatistics(batch, statsBuffer, positions, count);
        await batch.check();
      } finally {
        batch.finish();
      }
    }
    requireFiniteStatistics(stats, positions, l.cols);
    return toTokenLogProbs(stats, positions, [l.rows, l.cols], temperature, withEntropy);
  };

  const backward = async (
    source: (batch: ReturnType<DeviceContext["batch"]>, positions: Uint32Array) => LogitsSource,
    inputs: ReturnType<typeof readBackwardInputsOf>,
    target: (count: number) => GradientTarget,
  ): Promise<void> => {
    const { l, ids, mask, gradLogp, gradEntropy, temperature, saved } = inputs;
    const count = l.rows * l.cols;
    // As in the reference: a position is not read when the mask skips it or nothing flows back into it.
    const positions = listPositions(
      count,
      (i) =>
        (mask === undefined || mask[i] === 1) &&
        (gradLogp[i] !== 0 || (gradEntropy !== undefined && gradEntropy[i] !== 0)),
    );
    if (saved !== undefined) {
      for (const i of positions) {
        if (Number.isNaN(saved.logSumExp[i])) {
          throw savedSkipped(i, l.cols);
        }
      }
    }
    const destination = target(count);
    if (positions.length === 0) {
      if (destination.kind === "device" && !destination.fresh) {
        const batch = context.batch();
        try {
          clearUnlistedRows(batch, destination, positions, count, l.vocab * 4);
          await batch.check();
        } finally {
          batch.finish();
        }
      }
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
      let stats: GpuBuffer;
      if (saved !== undefined) {
        const values = new Float32Array(count * 4);
        for (const i of positions) {
          values[4 * i] = saved.logSumExp[i]!;
          values[4 * i + 2] = saved.entropy?.[i] ?? 0;
        }
        stats = batch.upload(values);
      } else {
        stats = batch.buffer(count * 16, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
      }
      const buffers = {
        tokens: batch.upload(tokenIds(ids, positions, count)),
        positions: batch.upload(positions),
        stats,
        upstream: batch.upload(upstream),
      };
      clearUnlistedRows(batch, destination, positions, count, l.vocab * 4);
      await encodeBackward(
        batch,
        source(batch, positions),
        buffers,
        { inverseTemperature: 1 / temperature, withStatistics: saved === undefined, withEntropy },
        destination,
      );
      if (saved === undefined) {
        // Computed here, as the reference's rowStatistics does when nothing is saved: its errors are the reference's.
        const statistics = await readStatistics(batch, stats, positions, count);
        await batch.check();
        requireFiniteStatistics(statistics, positions, l.cols);
      }
      await batch.check();
    } finally {
      batch.finish();
    }
  };

  return {
    async policyLoss(
      inputs: Parameters<Backend["policyLoss"]>[0],
      options: Parameters<Backend["policyLoss"]>[1] = {},
    ): Promise<PolicyLossResult> {
      const o = resolvePolicyLossOptions(options);
      // An objective registered by the caller has no WGSL: the reference runs it (and rejects unknown names).
      if (!isDeviceObjective(o.objective)) return referencePolicyLoss(inputs, options);
      const t = readInputs(inputs, o);
      requireFiniteLogps(t);
      const packed = packLoss(t, o, { fromStatistics: false, hasOldLogp: true });
      const [rows, cols] = t.shape;
      if (rows * cols === 0) return lossResult(o, packed, new Float32Array(0), new Float32Array(rows * 12));
      const batch = context.batch();
      try {
        const buffers = await encodeLoss(batch, o, packed);
        return await readLoss(batch, o, packed, buffers);
      } finally {
        batch.finish();
      }
    },

    async tokenLogProbs(
      logits: LogitsInput,
      tokens: MatrixInput,
      options: TokenLogProbsOptions = {},
    ): Promise<TokenLogProbs> {
      const { temperature, entropy } = readForwardOptions(options);
      const l = readLogits(logits);
      const { ids, mask } = readTokens(tokens, options.mask, l);
      return forward((batch, positions) => hostSource(batch, l, positions, false), l, ids, mask, temperature, entropy);
    },

    async tokenLogProbsBackward(logits: LogitsInput, tokens: MatrixInput, options: TokenLogProbsBackwardOptions) {
      const { temperature } = readForwardOptions(options);
      const inputs = readBackwardInputsOf(readLogits(logits), temperature, tokens, options);
      const { l } = inputs;
      const out = gradientArray(l, l.rows * l.cols * l.vocab);
      await backward(
        (batch, positions) => hostSource(batch, l, positions, false),
        inputs,
        () => ({ kind: "host", out }),
      );
      if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
      return { data: out, shape: [l.rows, l.cols, l.vocab] as const };
    },

    async policyLossFromLogits(
      self: Backend,
      inputs: LogitsPolicyLossInputs,
      options: LogitsPolicyLossOptions,
    ): Promise<LogitsPolicyLossResult> {
      const plan = planFused(inputs, options);
      if (plan === undefined) return composedPolicyLossFromLogits(self, inputs, options);
      const { l } = plan;
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
    },

    async tokenLogProbsOnDevice(
      logits: DeviceLogits,
      tokens: MatrixInput,
      options: TokenLogProbsOptions = {},
    ): Promise<TokenLogProbs> {
      const { temperature, entropy } = readForwardOptions(options);
      const l = readDeviceLogits(logits);
      const { ids, mask } = readTokens(tokens, options.mask, l);
      return forward((batch, positions) => deviceSource(batch, logits, positions), l, ids, mask, temperature, entropy);
    },

    async tokenLogProbsBackwardOnDevice(
      logits: DeviceLogits,
      tokens: MatrixInput,
      options: TokenLogProbsBackwardOptions,
      into?: GpuBuffer,
    ): Promise<DeviceGradient> {
      const { temperature } = readForwardOptions(options);
      const inputs = readBackwardInputsOf(readDeviceLogits(logits), temperature, tokens, options);
      const { l } = inputs;
      const { gradient, target } = gradientDestination(context, l, logits, into);
      try {
        await backward(
          (batch, positions) => deviceSource(batch, logits, positions),
          inputs,
          () => target,
        );
        return gradient;
      } catch (error) {
        if (target.fresh) gradient.buffer.destroy();
        throw error;
      }
    },

    async policyLossFromLogitsOnDevice(
      self: DeviceKernels & Backend,
      inputs: DeviceLogitsPolicyLossInputs,
      options: LogitsPolicyLossOptions,
      into?: GpuBuffer,
    ): Promise<DeviceLogitsPolicyLossResult> {
      const plan = planFused(inputs as unknown as LogitsPolicyLossInputs, options, () =>
        readDeviceLogits(inputs.logits),
      );
      if (plan === undefined) return composeOnDevice(self, inputs, options, into);
      const { l } = plan;
      requireStatisticsBinding(context, l.rows * l.cols);
      const { gradient, target } = gradientDestination(context, l, inputs.logits, into);
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
    },
  };
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
      `the gradient of [${l.rows}, ${l.cols}, ${l.vocab}] logits needs ${bytes} bytes, over this device's maxBufferSize (${context.bufferLimit})`,
    );
  }
  const buffer = context.create(bytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST);
  return { gradient: { buffer, shape }, target: { kind: "device", buffer, fresh: true } };
}

/** Per-position statistics (16 bytes each) are bound whole. */
function requireStatisticsBinding(context: DeviceContext, positions: number): void {
  if (positions * 16 > context.bindingLimit) {
    throw new GrpoRocError(
      `${positions} positions need ${positions * 16} bytes of statistics, over the ${context.bindingLimit} bytes one binding may hold on this device: split the batch`,
    );
  }
}

/** The reference's composition (forward → loss → backward) over device logits, for plans the fused path declines. */
async function composeOnDevice(
  kernels: DeviceKernels & Backend,
  inputs: DeviceLogitsPolicyLossInputs,
  options: LogitsPolicyLossOptions,
  into: GpuBuffer | undefined,
): Promise<DeviceLogitsPolicyLossResult> {
  const { logits, tokens, ...rest } = inputs;
  const { temperature, ...lossOptions } = options;
  const withEntropy = resolvePolicyLossOptions(lossOptions).entropyCoef > 0;
  const logProbOptions = {
    ...(temperature !== undefined ? { temperature } : {}),
    ...(rest.mask !== undefined ? { mask: rest.mask } : {}),
  };
  const forward = await kernels.tokenLogProbsOnDevice(logits, tokens, { ...logProbOptions, entropy: withEntropy });
  const shape = forward.shape;
  const loss = await kernels.policyLoss(
    {
      ...rest,
      logp: { data: forward.logp, shape },
      ...(withEntropy ? { entropy: { data: forward.entropy!, shape } } : {}),
    },
    lossOptions,
  );
  const gradLogits = await kernels.tokenLogProbsBackwardOnDevice(
    logits,
    tokens,
    {
      ...logProbOptions,
      gradLogp: { data: loss.grad, shape },
      ...(loss.gradEntropy !== undefined ? { gradEntropy: { data: loss.gradEntropy, shape } } : {}),
      saved: forward,
    },
    into,
  );
  return { ...loss, logp: forward.logp, entropy: forward.entropy, gradLogits };
}

export { WebGpuDeviceError };
