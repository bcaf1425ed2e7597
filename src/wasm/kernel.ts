/**
 * The kernel module (native/wasm/logprobs.c, built by scripts/build-wasm.sh) instantiated over one
 * WebAssembly.Memory that this side creates, sizes and grows. Two builds of the same source ship, in base64
 * (./module.generated.ts): one importing a shared memory (what worker threads need: every thread's instance gets
 * the same memory), one importing an ordinary memory (for a browser page without cross-origin isolation, where a
 * shared memory cannot be created). Both need 128-bit SIMD; an engine without it fails WebAssembly.validate, and the
 * backend is then unavailable, saying so.
 */
import { GrpoRocError } from "../backends/contract.js";
import { SHARED_MODULE_BASE64, SINGLE_MODULE_BASE64 } from "./module.generated.js";

/** The kernel's exports; pointers are byte offsets into the memory (native/wasm/logprobs.c documents each). */
export interface KernelExports {
  forward_stats(
    logits: number,
    positions: number,
    vocab: number,
    inverseTemperature: number,
    withEntropy: number,
    active: number,
    outMax: number,
    outSum: number,
    outWeighted: number,
  ): void;
  backward(
    logits: number,
    grad: number,
    positions: number,
    vocab: number,
    inverseTemperature: number,
    reads: number,
    shift: number,
    logNorm: number,
    gradLogp: number,
    gradEntropy: number,
    entropy: number,
    tokens: number,
    outMax: number,
    outProbabilitySum: number,
  ): void;
  forward_backward(
    logits: number,
    grad: number,
    positions: number,
    vocab: number,
    inverseTemperature: number,
    withEntropy: number,
    active: number,
    tokens: number,
    oldLogp: number,
    advantage: number,
    weight: number,
    gradEntropy: number,
    params: number,
    outMax: number,
    outSum: number,
    outWeighted: number,
    outPredicted: number,
  ): void;
  exp_f32(input: number, output: number, count: number): void;
  exp_nonpositive_f32(input: number, output: number, count: number): void;
  readonly __heap_base: WasmGlobal;
}

/**
 * The part of the WebAssembly API used here, typed locally: the package compiles without the DOM library, and
 * Node's types declare the namespace only in part.
 */
interface WasmMemory {
  readonly buffer: ArrayBuffer | SharedArrayBuffer;
  grow(pages: number): number;
}
interface WasmGlobal {
  readonly value: unknown;
}
interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  Memory: new (descriptor: { initial: number; maximum: number; shared?: boolean }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { readonly exports: object };
}

/** The engine's WebAssembly, or undefined where it has none. */
function webAssembly(): WasmApi | undefined {
  return (globalThis as { WebAssembly?: WasmApi }).WebAssembly;
}

/** 64 KiB, WebAssembly's page. */
const PAGE = 65536;
/** wasm32 addresses 4 GiB: 65536 pages (the modules declare it as their maximum). */
const MAX_PAGES = 65536;

/** A memory too small for a chunk, and unable to grow (the 4 GiB of wasm32, or the engine's own limit). */
export class WasmMemoryError extends GrpoRocError {
  override name = "WasmMemoryError";
}

/** A region of the memory held across calls (a caller's logits and their gradient). */
export interface Allocation {
  readonly offset: number;
  readonly size: number;
}

/**
 * One instance of the kernel and its memory. The memory holds, above the module's own data, the allocations callers
 * hold across calls (`allocate`), then the scratch of the call running now (`reserve`).
 */
export class WasmKernel {
  private readonly allocations: Allocation[] = [];

  private constructor(
    readonly exports: KernelExports,
    /** The compiled module, which worker threads instantiate over the same memory. */
    readonly module: object,
    readonly memory: WasmMemory,
    /** Whether the memory is shared (the build worker threads use). */
    readonly shared: boolean,
    private readonly heapBase: number,
  ) {}

  /** Instantiates the shared build where shared memory can be created, else the single-thread build. */
  static create(): WasmKernel {
    const api = webAssembly()!;
    const shared = sharedMemory(api);
    const memory = shared ?? new api.Memory({ initial: 2, maximum: MAX_PAGES });
    const module = new api.Module(moduleBytes(shared !== undefined ? "shared" : "single"));
    const instance = new api.Instance(module, { env: { memory } });
    const exports = instance.exports as unknown as KernelExports;
    return new WasmKernel(exports, module, memory, shared !== undefined, exports.__heap_base.value as number);
  }

  /** Where the regions of the last `reserve` end. */
  reservedEnd = 0;

  /**
   * Byte offsets of regions of these sizes, each 16-byte aligned, from `from` (default: above the allocations; the
   * previous call's regions are reused: one call at a time uses the memory), the memory grown to hold them.
   */
  reserve(sizes: readonly number[], from = this.allocationsEnd()): number[] {
    let end = align(from);
    const offsets = sizes.map((size) => {
      const offset = end;
      end = align(end + size);
      return offset;
    });
    this.growTo(
      end,
      "one chunk",
      "use a smaller chunkBytes (a chunk holds at least one position's logits and gradient)",
    );
    this.reservedEnd = end;
    return offsets;
  }

  /** A region of `size` bytes held until `free`: the first gap between allocations it fits, else above them. */
  allocate(size: number): Allocation {
    let start = align(this.heapBase);
    let index = 0;
    for (; index < this.allocations.length; index++) {
      const next = this.allocations[index]!;
      if (next.offset - start >= size) break;
      start = align(next.offset + next.size);
    }
    this.growTo(align(start + size), "these logits", "allocate fewer positions, or pass the logits as typed arrays");
    const allocation = { offset: start, size };
    this.allocations.splice(index, 0, allocation);
    return allocation;
  }

  /** Gives an allocation's region back (a later allocate may reuse it). */
  free(allocation: Allocation): void {
    const index = this.allocations.indexOf(allocation);
    if (index >= 0) this.allocations.splice(index, 1);
  }

  private allocationsEnd(): number {
    const last = this.allocations.at(-1);
    return align(last === undefined ? this.heapBase : last.offset + last.size);
  }

  private growTo(end: number, what: string, fix: string): void {
    const pages = Math.ceil(end / PAGE);
    const current = this.memory.buffer.byteLength / PAGE;
    if (pages <= current) return;
    if (pages > MAX_PAGES) {
      throw new WasmMemoryError(
        `the wasm backend needs ${end} bytes of WebAssembly memory for ${what}, beyond wasm32's 4 GiB: ${fix}`,
      );
    }
    try {
      this.memory.grow(pages - current);
    } catch (error) {
      throw new WasmMemoryError(
        `the wasm backend could not grow its WebAssembly memory to ${end} bytes for ${what} ` +
          `(${(error as Error).message}): ${fix}`,
      );
    }
  }

  f32(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, length);
  }
  f64(offset: number, length: number): Float64Array {
    return new Float64Array(this.memory.buffer, offset, length);
  }
  u8(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.memory.buffer, offset, length);
  }
  i32(offset: number, length: number): Int32Array {
    return new Int32Array(this.memory.buffer, offset, length);
  }
}

function align(offset: number): number {
  return Math.ceil(offset / 16) * 16;
}

/** A shared memory of the kernel's maximum, or undefined where this engine (or page) cannot create one. */
function sharedMemory(api: WasmApi): WasmMemory | undefined {
  // A browser page that is not cross-origin isolated may not share memory with workers, even where it can create it.
  if ((globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated === false) return undefined;
  if (!api.validate(moduleBytes("shared"))) return undefined;
  try {
    return new api.Memory({ initial: 2, maximum: MAX_PAGES, shared: true });
  } catch {
    return undefined;
  }
}

const decoded: { shared?: Uint8Array; single?: Uint8Array } = {};

/** The kernel's bytes: the shared-memory build or the single-thread one, decoded from base64 once. */
export function moduleBytes(build: "shared" | "single"): Uint8Array {
  const cached = decoded[build];
  if (cached !== undefined) return cached;
  const text = atob(build === "shared" ? SHARED_MODULE_BASE64 : SINGLE_MODULE_BASE64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
  decoded[build] = bytes;
  return bytes;
}

/** Undefined where the kernel can run here; otherwise why not (no WebAssembly, or no 128-bit SIMD). */
export function unsupportedReason(): string | undefined {
  const api = webAssembly();
  if (typeof api !== "object" || typeof api.validate !== "function") return "this JavaScript engine has no WebAssembly";
  if (!api.validate(moduleBytes("single"))) {
    return (
      "this engine's WebAssembly lacks 128-bit SIMD (WebAssembly.validate rejects the kernel, built with " +
      "-msimd128): Node 20 (what the package needs), Chrome 91+, Firefox 89+ and Safari 16.4+ have it"
    );
  }
  return undefined;
}
