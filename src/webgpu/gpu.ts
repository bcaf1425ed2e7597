/**
 * The parts of the WebGPU API that grpo-roc uses, as structural types: a browser's GPUDevice, dawn.node's, and
 * tfjs-backend-webgpu's `backend.device` all fit them, and the published declarations need no @webgpu/types.
 * Methods are declared as methods (not function-typed properties) so that TypeScript compares their parameters
 * bivariantly: a real GPUDevice, whose methods take the richer descriptor types of @webgpu/types, is assignable.
 * The objects grpo-roc only passes back to the device (shader modules, layouts, bind groups, command buffers) are
 * `Opaque`: with `unknown` there, neither direction of that comparison holds against @webgpu/types.
 */

// biome-ignore lint/suspicious/noExplicitAny: handles the library only passes back to WebGPU, never reads
type Opaque = any;

/** A WebGPU buffer (GPUBuffer), as grpo-roc uses it: where device logits and gradients live. */
export interface GpuBuffer {
  /** Its size in bytes. */
  readonly size: number;
  /** Its GPUBufferUsage flags (STORAGE, COPY_SRC, …) as a number. */
  readonly usage: number;
  mapAsync(mode: number, offset?: number, size?: number): Promise<void>;
  getMappedRange(offset?: number, size?: number): ArrayBuffer;
  unmap(): void;
  destroy(): void;
}

export interface GpuBufferBinding {
  readonly buffer: GpuBuffer;
  readonly offset?: number;
  readonly size?: number;
}

/** A WebGPU compute pipeline (GPUComputePipeline), as grpo-roc uses it. */
export interface GpuComputePipeline {
  getBindGroupLayout(index: number): unknown;
}

/** A WebGPU compute pass (GPUComputePassEncoder), as grpo-roc uses it. */
export interface GpuComputePass {
  setPipeline(pipeline: GpuComputePipeline): void;
  setBindGroup(index: number, group: unknown): void;
  dispatchWorkgroups(x: number, y?: number, z?: number): void;
  end(): void;
}

/** A WebGPU command encoder (GPUCommandEncoder), as grpo-roc uses it. */
export interface GpuCommandEncoder {
  beginComputePass(descriptor?: object): GpuComputePass;
  copyBufferToBuffer(
    source: GpuBuffer,
    sourceOffset: number,
    destination: GpuBuffer,
    destinationOffset: number,
    size: number,
  ): void;
  clearBuffer(buffer: GpuBuffer, offset?: number, size?: number): void;
  finish(): unknown;
}

/** A WebGPU device's queue (GPUQueue), as grpo-roc uses it. */
export interface GpuQueue {
  submit(commandBuffers: Iterable<Opaque>): void;
  writeBuffer(
    buffer: GpuBuffer,
    bufferOffset: number,
    data: ArrayBufferLike | ArrayBufferView,
    dataOffset?: number,
    size?: number,
  ): void;
  onSubmittedWorkDone(): Promise<void>;
}

/** The device limits (GPUSupportedLimits) grpo-roc sizes its bindings and dispatches by. */
export interface GpuLimits {
  readonly maxStorageBufferBindingSize: number;
  readonly maxBufferSize: number;
  readonly maxComputeWorkgroupsPerDimension: number;
  readonly minStorageBufferOffsetAlignment: number;
  readonly minUniformBufferOffsetAlignment: number;
  readonly maxComputeInvocationsPerWorkgroup: number;
  readonly maxStorageBuffersPerShaderStage: number;
}

/** A WebGPU error popped from an error scope (GPUError). */
export interface GpuError {
  readonly message: string;
}

/** A WebGPU device (GPUDevice), as grpo-roc uses it: any real GPUDevice is assignable to it. */
export interface GpuDevice {
  /** The limits grpo-roc sizes its bindings and dispatches by. */
  readonly limits: GpuLimits;
  /** The queue grpo-roc submits its work to and writes inputs through. */
  readonly queue: GpuQueue;
  /** Settles when the device is lost; grpo-roc then refuses further work with a WebGpuDeviceError. */
  readonly lost: Promise<{ readonly reason?: string; readonly message?: string }>;
  createBuffer(descriptor: { size: number; usage: number; mappedAtCreation?: boolean; label?: string }): GpuBuffer;
  createShaderModule(descriptor: { code: string; label?: string }): unknown;
  createComputePipeline(descriptor: {
    layout: "auto";
    label?: string;
    compute: { module: Opaque; entryPoint: string };
  }): GpuComputePipeline;
  createBindGroup(descriptor: {
    layout: Opaque;
    entries: {
      binding: number;
      resource: { readonly buffer: Opaque; readonly offset?: number; readonly size?: number };
    }[];
  }): unknown;
  createCommandEncoder(descriptor?: object): GpuCommandEncoder;
  pushErrorScope(filter: "validation" | "out-of-memory" | "internal"): void;
  popErrorScope(): Promise<GpuError | null>;
  addEventListener(
    type: "uncapturederror",
    listener: (event: { readonly error?: { readonly message?: string } }) => void,
  ): void;
  destroy(): void;
}

export interface GpuAdapter {
  readonly info?: {
    readonly vendor?: string;
    readonly architecture?: string;
    readonly device?: string;
    readonly description?: string;
  };
  readonly limits: GpuLimits;
  requestDevice(descriptor?: { requiredLimits?: Record<string, number>; label?: string }): Promise<GpuDevice>;
}

/** navigator.gpu, or the object `create()` of the `webgpu` package returns. */
export interface GpuRoot {
  requestAdapter(options?: object): Promise<GpuAdapter | null>;
}

/**
 * GPUBufferUsage and GPUMapMode as numbers: the WebGPU spec fixes them, and Node has no such globals until the
 * `webgpu` package's are installed.
 */
export const BufferUsage = {
  MAP_READ: 0x1,
  MAP_WRITE: 0x2,
  COPY_SRC: 0x4,
  COPY_DST: 0x8,
  UNIFORM: 0x40,
  STORAGE: 0x80,
} as const;

export const MapMode = { READ: 0x1, WRITE: 0x2 } as const;
