/**
 * grpo-roc's WGSL kernels (src/webgpu) on TensorFlow.js's own WebGPU device, over tfjs's own buffers: when the
 * active tfjs backend is `webgpu`, tokenLogProbsTf binds the logits tensor's GPUBuffer in place, and writes its
 * statistics and its gradient into buffers that tfjs allocates (and later recycles) for new tensors. Nothing goes
 * through the CPU but a few small uniform blocks and the list of positions.
 *
 * What this relies on in tfjs-backend-webgpu (4.22; checked at run time, see `internals`, and the tfjs-ops path is
 * taken instead when something is missing):
 * - `backend.device`, `backend.tensorMap.get(dataId).{values, resource}`, `backend.uploadToGPU(dataId)`: a
 *   tensor's GPUBuffer (STORAGE | COPY_SRC | COPY_DST, exactly size × 4 bytes), uploaded from the CPU first if
 *   its values are still there.
 * - `backend.makeTensorInfo(shape, dtype)` + `uploadToGPU` + `engine().makeTensorFromTensorInfo(info, backend)`: a
 *   new tensor whose buffer comes from tfjs's BufferManager and goes back to it when the tensor is disposed (what
 *   tfjs's own readToGPU does): no buffer of ours to destroy, nothing leaks.
 * - `backend.ensureCommandEncoderReady()`, `endComputePassEncoder()`, `submitQueue()`: tfjs records up to 15
 *   dispatches in a command encoder before submitting it. Its pending work (what produced the logits, the upload
 *   of the tokens) is submitted before ours; ours is submitted at once, so that everything tfjs records after it
 *   runs after it, in queue order. Buffers tfjs recycles after we bound them are safe for the same reason.
 *
 * The tfjs ops are synchronous, so these kernels are too: pipelines compile without waiting (DeviceContext's
 * pipelineNow), and the error scopes around every device call are checked later: their errors are recorded
 * (./device-errors.ts) and thrown as a WebGpuDeviceError at the next read of any tensor, or assertNoDeviceErrors().
 * A lost device throws at once.
 */
import * as tf from "@tensorflow/tfjs";
import { GrpoRocError, invalid } from "../backends/contract.js";
import { backwardKernel } from "../webgpu/backward.wgsl.js";
import { DeviceContext, type Batch } from "../webgpu/context.js";
import type { GpuBuffer, GpuDevice } from "../webgpu/gpu.js";
import { forwardKernel } from "../webgpu/logprobs.wgsl.js";
import { backwardKey, deviceSource, dispatchBackward, dispatchForward, forwardKey } from "../webgpu/logprobs.js";
import { trackDeviceCheck } from "./device-errors.js";

/**
 * Which kernels the tfjs ops over logits run: "wgsl" (grpo-roc's, on the webgpu backend's device and buffers),
 * "tfjs" (tfjs ops, on any backend), or "auto": wgsl when the active backend is webgpu, tfjs otherwise.
 */
export type TfjsKernels = "auto" | "wgsl" | "tfjs";

/** The environment variable that sets the default of the `kernels` option (auto when unset). */
export const KERNELS_ENV = "GRPO_ROC_TFJS_KERNELS";

interface TensorData {
  values?: unknown | undefined;
  resource?: unknown | undefined;
}

interface TensorInfoLike {
  readonly dataId: object;
  readonly shape: number[];
  readonly dtype: tf.DataType;
}

/** The parts of tfjs-backend-webgpu's WebGPUBackend used here. */
interface WebGpuTfInternals {
  readonly device: GpuDevice;
  readonly tensorMap: { get(dataId: object): TensorData | undefined };
  uploadToGPU(dataId: object): void;
  makeTensorInfo(shape: number[], dtype: tf.DataType): TensorInfoLike;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
}

const METHODS = [
  "uploadToGPU",
  "makeTensorInfo",
  "ensureCommandEncoderReady",
  "endComputePassEncoder",
  "submitQueue",
] as const;

/** tfjs's active backend as WebGpuTfInternals, or why it cannot serve. */
function internals(): { ok: true; backend: WebGpuTfInternals } | { ok: false; reason: string } {
  const name = tf.getBackend();
  if (name !== "webgpu") return { ok: false, reason: `the active tfjs backend is "${name}", not "webgpu"` };
  const backend = tf.backend() as unknown as Partial<Record<(typeof METHODS)[number], unknown>> & {
    device?: unknown;
    tensorMap?: { get?: unknown };
  };
  const missing: string[] = METHODS.filter((m) => typeof backend[m] !== "function");
  if (typeof backend.device !== "object" || backend.device === null) missing.unshift("device");
  if (typeof backend.tensorMap?.get !== "function") missing.unshift("tensorMap");
  if (missing.length > 0) {
    return {
      ok: false,
      reason:
        `this version of @tensorflow/tfjs-backend-webgpu lacks what grpo-roc binds its buffers through ` +
        `(${missing.join(", ")})`,
    };
  }
  return { ok: true, backend: backend as unknown as WebGpuTfInternals };
}

function requestedKernels(option: TfjsKernels | undefined): TfjsKernels {
  if (option !== undefined) {
    if (option !== "auto" && option !== "wgsl" && option !== "tfjs")
      throw invalid("options.kernels", `expected "auto", "wgsl" or "tfjs", received ${JSON.stringify(option)}`);
    return option;
  }
  const env = typeof process !== "undefined" ? process.env?.[KERNELS_ENV] : undefined;
  if (env === undefined || env === "") return "auto";
  if (env !== "auto" && env !== "wgsl" && env !== "tfjs")
    throw invalid(KERNELS_ENV, `expected "auto", "wgsl" or "tfjs", received ${JSON.stringify(env)}`);
  return env;
}

/**
 * The kernels tokenLogProbsTf (and trainStep) would run now: `option` if given, else $GRPO_ROC_TFJS_KERNELS, else
 * "auto". Throws when "wgsl" is asked for and cannot run (another backend is active).
 */
export function tfjsKernelPath(option?: TfjsKernels): "wgsl" | "tfjs" {
  const requested = requestedKernels(option);
  if (requested === "tfjs") return "tfjs";
  const found = internals();
  if (found.ok) return "wgsl";
  if (requested === "wgsl") throw new GrpoRocError(`kernels "wgsl" cannot run: ${found.reason}`);
  return "tfjs";
}

// -------------------------------------------------------------------------------------------------------------

/** grpo-roc's state on one tfjs webgpu backend: pipelines and a pool of small buffers (positions, uniforms). */
interface State {
  readonly backend: WebGpuTfInternals;
  readonly context: DeviceContext;
}

let state: State | undefined;

function stateFor(backend: WebGpuTfInternals): State {
  if (state?.backend !== backend) {
    state?.context.dispose();
    // tfjs's setup (./setup.ts) watches this device's uncaptured errors already: ours are caught in scopes.
    state = {
      backend,
      context: new DeviceContext(backend.device, { watchUncaptured: false, maxPooledBytes: 64 * 2 ** 20 }),
    };
  }
  return state;
}

/** Destroys grpo-roc's pooled buffers on tfjs's device and forgets its pipelines (releaseWebGpu calls it). */
export function releaseWgslKernels(): void {
  state?.context.dispose();
  state = undefined;
}

/**
 * grpo-roc's own buffers on tfjs's device (pooled ones included): `live` stays bounded across calls and is 0 after
 * releaseWgslKernels(). The statistics and gradients are tfjs tensors: tf.memory() counts those.
 */
export function wgslBufferStats(): { readonly live: number; readonly pooled: number; readonly pooledBytes: number } {
  if (state === undefined) return { live: 0, pooled: 0, pooledBytes: 0 };
  const { buffers, bytes } = state.context.pooled;
  return { live: state.context.liveBuffers, pooled: buffers, pooledBytes: bytes };
}

// -------------------------------------------------------------------------------------------------------------

function isBuffer(resource: unknown): resource is GpuBuffer {
  const r = resource as Partial<GpuBuffer> | null | undefined;
  return (
    typeof r === "object" &&
    r !== null &&
    typeof r.size === "number" &&
    typeof r.usage === "number" &&
    typeof r.mapAsync === "function"
  );
}

/** The GPUBuffer holding `tensor` (uploaded from the CPU first if it is not on the device yet). */
function bufferOf(backend: WebGpuTfInternals, tensor: tf.Tensor): GpuBuffer {
  backend.uploadToGPU(tensor.dataId);
  const resource = backend.tensorMap.get(tensor.dataId)?.resource;
  if (!isBuffer(resource))
    throw new GrpoRocError("internal error: a tfjs webgpu tensor is not held in a GPUBuffer (a texture?)");
  return resource;
}

/** A new float32 tensor whose buffer tfjs allocates (and recycles when it is disposed), for a kernel to fill. */
function newTensor(backend: WebGpuTfInternals, shape: number[]): { tensor: tf.Tensor; buffer: GpuBuffer } {
  const info = backend.makeTensorInfo(shape, "float32");
  const tensor = tf
    .engine()
    .makeTensorFromTensorInfo(info as unknown as tf.TensorInfo, backend as unknown as tf.KernelBackend);
  try {
    return { tensor, buffer: bufferOf(backend, tensor) };
  } catch (error) {
    tensor.dispose();
    throw error;
  }
}

/**
 * Whether `logits` can be bound in place: float32, on a buffer (not a texture), and small enough that one
 * position's statistics fit a binding. Undefined when it can; else why not.
 */
export function wgslRefusal(logits: tf.Tensor3D): string | undefined {
  const found = internals();
  if (!found.ok) return found.reason;
  if (logits.dtype !== "float32") return `the logits are ${logits.dtype}, the WGSL kernels read float32`;
  const resource = found.backend.tensorMap.get(logits.dataId)?.resource;
  if (resource !== undefined && resource !== null && !isBuffer(resource))
    return "the logits tensor is held in a texture, not a GPUBuffer";
  const [rows, cols, vocab] = logits.shape;
  if (rows * cols === 0 || vocab === 0) return "the logits are empty";
  const context = stateFor(found.backend).context;
  if (rows * cols * 16 > context.bindingLimit)
    return (
      `${rows * cols} positions need ${rows * cols * 16} bytes of statistics, over one binding ` +
      `(${context.bindingLimit} bytes)`
    );
  return undefined;
}

/** Submits tfjs's pending commands, so that ours (submitted next) run after them. */
function flushTfjs(backend: WebGpuTfInternals): void {
  backend.ensureCommandEncoderReady();
  backend.endComputePassEncoder();
  backend.submitQueue();
}

/** Runs `record` (device calls that submit grpo-roc's dispatches) as one batch: errors are checked later. */
function run(context: DeviceContext, record: (batch: Batch) => void): void {
  // Throws a WebGpuDeviceError at once when the device is lost.
  const batch = context.batch();
  try {
    record(batch);
  } finally {
    // Every dispatch is submitted: later uses of these pooled buffers (writeBuffer, submits) are queued after it.
    batch.finish();
    trackDeviceCheck(batch.check());
  }
}

/** Uniform positions list [0, 1, …, n − 1]: every position is computed (the tfjs ops have no mask either). */
function allPositions(n: number): Uint32Array {
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = i;
  return out;
}

export interface WgslForward {
  /** [B·T, 4] float32: (logsumexp, logp, entropy, flag) per position, of logits / τ. */
  readonly stats: tf.Tensor2D;
  /** The token ids the kernel read, int32 [B, T]. */
  readonly tokens: tf.Tensor2D;
}

/**
 * The forward kernel over `logits` [B, T, V] (bound in place) and `ids` [B, T], int32 in [0, V): the caller checks
 * them (tokenLogProbsTf), or clamps those it cannot check yet. Call inside a tfjs scope (tf.tidy, tf.customGrad):
 * the tensors it makes are tracked.
 */
export function wgslForward(logits: tf.Tensor3D, ids: tf.Tensor2D, temperature: number): WgslForward {
  const found = internals();
  if (!found.ok) throw new GrpoRocError(`internal error: ${found.reason}`);
  const backend = found.backend;
  const { context } = stateFor(backend);
  const [rows, cols, vocab] = logits.shape;
  const n = rows * cols;

  const stats = newTensor(backend, [n, 4]);
  try {
    const logitsBuffer = bufferOf(backend, logits);
    const tokensBuffer = bufferOf(backend, ids);
    flushTfjs(backend);
    run(context, (batch) => {
      const positions = allPositions(n);
      const source = deviceSource(batch, { buffer: logitsBuffer, shape: [rows, cols, vocab] }, positions);
      const lanes = source.layout.lanes;
      const pipeline = batch.guard(() => context.pipelineNow(forwardKey(lanes), () => forwardKernel({ lanes })));
      dispatchForward(
        batch,
        pipeline,
        source,
        { tokens: tokensBuffer, positions: batch.upload(positions), stats: stats.buffer },
        1 / temperature,
      );
    });
  } catch (error) {
    stats.tensor.dispose();
    throw error;
  }
  return { stats: stats.tensor as tf.Tensor2D, tokens: ids };
}

/**
 * The gradient into `logits` [B, T, V] from ∂L/∂logp and ∂L/∂entropy per position ([B·T] each), with the
 * statistics of wgslForward: a new tensor, written by the backward kernel in one pass over the logits.
 */
export function wgslBackward(
  logits: tf.Tensor3D,
  forward: WgslForward,
  temperature: number,
  gradLogp: tf.Tensor1D,
  gradEntropy: tf.Tensor1D | undefined,
): tf.Tensor3D {
  const found = internals();
  if (!found.ok) throw new GrpoRocError(`the WGSL kernels cannot compute the gradient: ${found.reason}`);
  const backend = found.backend;
  const { context } = stateFor(backend);
  const [rows, cols, vocab] = logits.shape;
  const n = rows * cols;
  const g = tf.cast(gradLogp, "float32");
  const zeros = tf.zerosLike(g);
  const upstream = tf.stack([g, zeros, zeros, gradEntropy === undefined ? zeros : tf.cast(gradEntropy, "float32")], 1);
  const grad = newTensor(backend, [rows, cols, vocab]);
  try {
    const buffers = {
      logits: bufferOf(backend, logits),
      tokens: bufferOf(backend, forward.tokens),
      stats: bufferOf(backend, forward.stats),
      upstream: bufferOf(backend, upstream),
    };
    flushTfjs(backend);
    run(context, (batch) => {
      const positions = allPositions(n);
      const source = deviceSource(batch, { buffer: buffers.logits, shape: [rows, cols, vocab] }, positions);
      const lanes = source.layout.lanes;
      const options = {
        inverseTemperature: 1 / temperature,
        withStatistics: false,
        withEntropy: gradEntropy !== undefined,
      };
      const pipeline = batch.guard(() =>
        context.pipelineNow(backwardKey(lanes, options), () => backwardKernel({ lanes, ...options })),
      );
      // Every position is listed: the kernel writes every entry of the gradient (tfjs's buffer may be recycled).
      dispatchBackward(
        batch,
        pipeline,
        source,
        {
          tokens: buffers.tokens,
          positions: batch.upload(positions),
          stats: buffers.stats,
          upstream: buffers.upstream,
        },
        options,
        grad.buffer,
      );
    });
  } catch (error) {
    grad.tensor.dispose();
    throw error;
  }
  return grad.tensor as tf.Tensor3D;
}
