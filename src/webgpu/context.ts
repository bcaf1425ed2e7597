/**
 * What grpo-roc keeps per GPUDevice: compiled pipelines, a pool of buffers, and the rule that every device error
 * becomes an exception.
 *
 * - Pipelines are compiled once per kernel variant and device (lavapipe needs a noticeable fraction of a second for
 *   each), and compilation errors are caught in an error scope.
 * - Buffers are pooled: allocating device memory is cheap, but on lavapipe (device memory is host memory) the
 *   first write into a fresh buffer pays a page fault per 4 KiB (~0.4 s for 512 MiB here), and later writes into
 *   the same buffer run at memcpy speed. Sizes are rounded up to 1/8-octave steps so that calls of similar sizes
 *   share buffers; the pool keeps at most `maxPooledBytes` and `trim()` empties it.
 * - Every batch of device calls runs inside error scopes (validation, out-of-memory, internal); `check()` awaits
 *   them and throws a WebGpuDeviceError with the device's messages. Errors that escape a scope (and device loss)
 *   are recorded from the device's events and thrown at the next check. A failed call never returns numbers.
 */
import { GrpoRocError, invalid } from "../backends/contract.js";
import { WebGpuDeviceError } from "./errors.js";
import {
  BufferUsage,
  MapMode,
  type GpuBuffer,
  type GpuCommandEncoder,
  type GpuComputePipeline,
  type GpuDevice,
} from "./gpu.js";
import { whileWaiting } from "./node.js";

/** How a WebGPU backend holds buffers between calls, and how large a binding it makes. */
export interface ContextOptions {
  /** Bytes of idle buffers kept for reuse (default 1 GiB). 0 turns pooling off. */
  readonly maxPooledBytes?: number | undefined;
  /**
   * Largest binding (and chunk) in bytes, below the device's own limits; default: the device's
   * maxStorageBufferBindingSize. Lower it to force chunking (tests) or to pipeline uploads in smaller pieces.
   */
  readonly maxBindingBytes?: number | undefined;
  /**
   * Record the device's uncaptured errors (and loss) and throw them at the next check (default true). Off for a
   * device someone else watches (tfjs's: grpo-roc/tfjs's setup reports its errors at the next tensor read), so
   * that errors of their work are not thrown from ours.
   */
  readonly watchUncaptured?: boolean | undefined;
}

const SCOPES = ["validation", "out-of-memory", "internal"] as const;

export class DeviceContext {
  readonly device: GpuDevice;
  /** Largest number of bytes one storage binding may cover here, a multiple of 256. */
  readonly bindingLimit: number;
  /** What sets bindingLimit, in words, for errors that hit it (the device's limits, or the backend's option). */
  readonly bindingLimitSource: string;
  readonly bufferLimit: number;
  readonly maxGroupsPerDimension: number;
  readonly storageAlignment: number;
  readonly uniformAlignment: number;
  private readonly maxPooledBytes: number;
  private readonly pipelines = new Map<string, GpuComputePipeline>();
  private readonly pool = new Map<string, GpuBuffer[]>();
  private pooledBytes = 0;
  private liveCount = 0;
  private readonly uncaptured: string[] = [];
  private lost: string | undefined;
  private scratchArray: Float32Array | undefined;
  /** The settling of the latest call holding each buffer (see `exclusive`). */
  private readonly holders = new Map<GpuBuffer, Promise<void>>();

  constructor(device: GpuDevice, options: ContextOptions = {}) {
    this.device = device;
    const limits = device.limits;
    const deviceBinding = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
    const requested = options.maxBindingBytes ?? deviceBinding;
    this.bindingLimit = Math.max(256, Math.floor(Math.min(requested, deviceBinding) / 256) * 256);
    this.bindingLimitSource =
      options.maxBindingBytes !== undefined && options.maxBindingBytes < deviceBinding
        ? `this backend's maxBindingBytes option (${this.bindingLimit} bytes; the device allows ${deviceBinding}: ` +
          "raise the option up to that)"
        : `this device's maxStorageBufferBindingSize (${limits.maxStorageBufferBindingSize} bytes) and ` +
          `maxBufferSize (${limits.maxBufferSize}): a device requested with higher requiredLimits, if its adapter ` +
          "allows them, binds more";
    this.bufferLimit = limits.maxBufferSize;
    this.maxGroupsPerDimension = limits.maxComputeWorkgroupsPerDimension;
    this.storageAlignment = Math.max(16, limits.minStorageBufferOffsetAlignment);
    this.uniformAlignment = Math.max(16, limits.minUniformBufferOffsetAlignment);
    this.maxPooledBytes = options.maxPooledBytes ?? 2 ** 30;
    if (options.watchUncaptured ?? true) {
      device.addEventListener("uncapturederror", (event) => {
        this.uncaptured.push(event.error?.message ?? String(event.error));
      });
    }
    void device.lost.then((info) => {
      this.lost =
        info.reason === "destroyed"
          ? "the device was destroyed"
          : `device lost: ${info.message ?? info.reason ?? "unknown reason"}`;
    });
  }

  /** Buffers created through this context and not yet destroyed (pooled ones included). */
  get liveBuffers(): number {
    return this.liveCount;
  }

  get pooled(): { readonly buffers: number; readonly bytes: number } {
    let buffers = 0;
    for (const list of this.pool.values()) buffers += list.length;
    return { buffers, bytes: this.pooledBytes };
  }

  /**
   * Runs `work` once every earlier call holding any of `buffers` has settled, and holds them until `work` settles:
   * calls that share a buffer on the device (the gradient one writes, the logits another reads) run one after
   * another, in the order they were made, instead of interleaving their submissions. Register synchronously at
   * the start of the call (before any await), so that the order is the callers'.
   */
  exclusive<T>(buffers: readonly GpuBuffer[], work: () => Promise<T>): Promise<T> {
    const earlier = buffers.flatMap((buffer) => this.holders.get(buffer) ?? []);
    let release: () => void = () => {};
    const settled = new Promise<void>((resolve) => {
      release = resolve;
    });
    for (const buffer of buffers) this.holders.set(buffer, settled);
    const run = async () => {
      try {
        // `settled` promises never reject: an earlier call's failure is its own caller's to see.
        await Promise.all(earlier);
        return await work();
      } finally {
        for (const buffer of buffers) if (this.holders.get(buffer) === settled) this.holders.delete(buffer);
        release();
      }
    };
    return run();
  }

  /**
   * The error for per-position or per-token data that must be bound whole and does not fit one binding: `what` says
   * which data and how large, `path` the input whose shape decides it, `split` how far to cut the batch.
   */
  bindingTooSmall(path: string, what: string, split: string): Error {
    return invalid(
      path,
      `${what}, more than fit one storage binding: one binding may hold ${this.bindingLimit} bytes, set by ` +
        `${this.bindingLimitSource}; or split the batch (${split})`,
    );
  }

  /** Throws if the device is gone: nothing can be computed on it. */
  requireAlive(): void {
    if (this.lost !== undefined) throw new WebGpuDeviceError([this.lost]);
  }

  /**
   * A compute pipeline created without waiting for the compiler's verdict (for synchronous tfjs ops): a kernel that
   * does not compile becomes an uncaptured device error, which grpo-roc/tfjs reports at the next tensor read.
   */
  pipelineNow(key: string, code: () => string): GpuComputePipeline {
    let pipeline = this.pipelines.get(key);
    if (pipeline === undefined) {
      const module = this.device.createShaderModule({ code: code(), label: `grpo-roc ${key}` });
      pipeline = this.device.createComputePipeline({
        layout: "auto",
        label: `grpo-roc ${key}`,
        compute: { module, entryPoint: "main" },
      });
      this.pipelines.set(key, pipeline);
    }
    return pipeline;
  }

  /** A compiled compute pipeline for `code`, cached under `key`. */
  async pipeline(key: string, code: () => string): Promise<GpuComputePipeline> {
    const cached = this.pipelines.get(key);
    if (cached !== undefined) return cached;
    const batch = this.batch();
    const pipeline = batch.guard(() => {
      const module = this.device.createShaderModule({ code: code(), label: `grpo-roc ${key}` });
      return this.device.createComputePipeline({
        layout: "auto",
        label: `grpo-roc ${key}`,
        compute: { module, entryPoint: "main" },
      });
    });
    try {
      await batch.check();
    } catch (error) {
      // A kernel that does not compile is a bug in grpo-roc, not bad input.
      throw new GrpoRocError(
        `internal error: the WGSL kernel "${key}" did not compile on this device: ` +
          `${error instanceof Error ? error.message : String(error)}`,
      );
    }
    this.pipelines.set(key, pipeline);
    return pipeline;
  }

  /** A buffer of at least `size` bytes (a multiple of 4), from the pool when one fits. */
  acquire(size: number, usage: number): GpuBuffer {
    const rounded = roundSize(Math.max(size, 16));
    if (rounded > this.bufferLimit) {
      throw new GrpoRocError(
        `internal error: a ${rounded}-byte buffer exceeds this device's maxBufferSize (${this.bufferLimit})`,
      );
    }
    const key = `${usage}:${rounded}`;
    const list = this.pool.get(key);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.pooledBytes -= rounded;
      return reused;
    }
    const buffer = this.device.createBuffer({ size: rounded, usage, label: "grpo-roc" });
    this.liveCount++;
    return buffer;
  }

  /** Gives a buffer back: pooled while the pool has room, destroyed otherwise. Never pass a mapped buffer. */
  release(buffer: GpuBuffer): void {
    if (this.pooledBytes + buffer.size <= this.maxPooledBytes && this.lost === undefined) {
      const key = `${buffer.usage}:${buffer.size}`;
      let list = this.pool.get(key);
      if (list === undefined) {
        list = [];
        this.pool.set(key, list);
      }
      list.push(buffer);
      this.pooledBytes += buffer.size;
    } else {
      this.destroyBuffer(buffer);
    }
  }

  /**
   * A buffer the caller keeps (a result left on the device): never pooled, and not in liveBuffers, since the
   * caller destroys it.
   */
  create(size: number, usage: number): GpuBuffer {
    const buffer = this.device.createBuffer({
      size: Math.max(16, Math.ceil(size / 4) * 4),
      usage,
      label: "grpo-roc result",
    });
    return buffer;
  }

  /**
   * A float32 staging array of at least `length` entries for converting logits on the way up, kept between calls
   * (a fresh one would pay its page faults on every call) until trim().
   */
  scratch(length: number): Float32Array {
    if (this.scratchArray === undefined || this.scratchArray.length < length)
      this.scratchArray = new Float32Array(length);
    return this.scratchArray;
  }

  /** Destroys every pooled buffer (and drops the scratch array). */
  trim(): void {
    this.scratchArray = undefined;
    for (const list of this.pool.values()) for (const buffer of list) this.destroyBuffer(buffer);
    this.pool.clear();
    this.pooledBytes = 0;
  }

  /** Destroys pooled buffers and forgets pipelines; the device itself is left alone. */
  dispose(): void {
    this.trim();
    this.pipelines.clear();
  }

  private destroyBuffer(buffer: GpuBuffer): void {
    buffer.destroy();
    this.liveCount--;
  }

  /** A batch of device work; `scoped: false` leaves errors uncaught (for synchronous tfjs ops: see pipelineNow). */
  batch({ scoped = true }: { scoped?: boolean } = {}): Batch {
    this.requireAlive();
    return new Batch(this, scoped);
  }

  /** @internal */
  takeUncaptured(): string[] {
    const errors = this.uncaptured.splice(0);
    if (this.lost !== undefined) errors.push(this.lost);
    return errors;
  }
}

/**
 * One kernel call's device work: the buffers it borrowed (given back at `finish`), and the error scopes of every
 * synchronous stretch of device calls (`guard`), checked together. Scopes never span an `await`, so errors of
 * other code using the same device in between (tfjs) are not mistaken for ours.
 */
export class Batch {
  private readonly borrowed: GpuBuffer[] = [];
  private readonly scopes: Promise<string[]>[] = [];

  constructor(
    readonly context: DeviceContext,
    private readonly scoped: boolean = true,
  ) {}

  get device(): GpuDevice {
    return this.context.device;
  }

  /** Runs `fn` (synchronous device calls) inside error scopes. */
  guard<T>(fn: () => T): T {
    if (!this.scoped) return fn();
    const device = this.context.device;
    for (const scope of SCOPES) device.pushErrorScope(scope);
    try {
      return fn();
    } finally {
      const popped = [...SCOPES].reverse().map(() =>
        device.popErrorScope().then(
          (error) => error?.message,
          (error: unknown) => `popErrorScope failed: ${error instanceof Error ? error.message : String(error)}`,
        ),
      );
      this.scopes.push(Promise.all(popped).then((messages) => messages.filter((m): m is string => m !== undefined)));
    }
  }

  /** A pooled buffer for this call, given back at finish(). */
  buffer(size: number, usage: number): GpuBuffer {
    const buffer = this.context.acquire(size, usage);
    this.borrowed.push(buffer);
    return buffer;
  }

  /** A pooled storage buffer holding `data` (written through the queue, in order with submitted work). */
  upload(data: ArrayBufferView, usage: number = BufferUsage.STORAGE): GpuBuffer {
    const buffer = this.buffer(data.byteLength, usage | BufferUsage.COPY_DST);
    this.device.queue.writeBuffer(buffer, 0, data);
    return buffer;
  }

  /** Throws a WebGpuDeviceError for any error the scopes caught so far, or that escaped them. */
  async check(): Promise<void> {
    const scoped = (await Promise.all(this.scopes.splice(0))).flat();
    const errors = [...scoped, ...this.context.takeUncaptured()];
    if (errors.length > 0) throw new WebGpuDeviceError(errors);
  }

  /**
   * Waits until the device has finished every submission so far (this call's included), then checks: a result
   * left on the device is complete, and usable by anything, once this resolves.
   */
  async complete(): Promise<void> {
    await whileWaiting(() => this.device.queue.onSubmittedWorkDone());
    await this.check();
  }

  /**
   * Copies `size` bytes at `offset` of `source` (a COPY_SRC buffer) back to the CPU: the copy is submitted at once
   * (in queue order after the work already submitted), then `consume` receives the bytes while they are mapped
   * (copy what you need: they are gone after). Later work can be submitted before this resolves.
   */
  async read(source: GpuBuffer, offset: number, size: number, consume: (bytes: ArrayBuffer) => void): Promise<void> {
    const length = alignUp(size, 4);
    const staging = this.context.acquire(length, BufferUsage.MAP_READ | BufferUsage.COPY_DST);
    let mapped = false;
    try {
      this.guard(() => {
        const encoder = this.device.createCommandEncoder();
        encoder.copyBufferToBuffer(source, offset, staging, 0, length);
        this.device.queue.submit([encoder.finish()]);
      });
      await whileWaiting(() => staging.mapAsync(MapMode.READ, 0, length));
      mapped = true;
      consume(staging.getMappedRange(0, length));
    } catch (error) {
      // A failed map is the symptom; the device's own error (caught by the scopes) says why.
      await this.check();
      throw error;
    } finally {
      if (mapped) staging.unmap();
      this.context.release(staging);
    }
  }

  /** Encodes with `encode` and submits, inside error scopes. */
  submit(encode: (encoder: GpuCommandEncoder) => void): void {
    this.guard(() => {
      const encoder = this.device.createCommandEncoder();
      encode(encoder);
      this.device.queue.submit([encoder.finish()]);
    });
  }

  /** Gives every borrowed buffer back. Call in `finally`, after the last read of this call has completed. */
  finish(): void {
    for (const buffer of this.borrowed.splice(0)) this.context.release(buffer);
  }
}

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

/** Rounds up to a size of the form m·2^k, 8 ≤ m < 16 (at most 12.5% more), and to a multiple of 256. */
function roundSize(size: number): number {
  const k = Math.max(0, Math.floor(Math.log2(size)) - 3);
  const step = 2 ** k;
  return alignUp(Math.ceil(size / step) * step, 256);
}
