/**
 * WebGPU in Node through the optional `webgpu` package (dawn.node), for every part of grpo-roc that needs it
 * (the tfjs setup in grpo-roc/tfjs and the webgpu backend in grpo-roc/webgpu): one root object per process, and
 * the two dawn.node pitfalls handled in one place.
 *
 * - The object `create()` returns must stay reachable while any device made from it lives: when it is garbage
 *   collected dawn.node crashes the process (SIGSEGV, or "std::system_error" from a dead mutex). It is kept on
 *   globalThis under a registered symbol, with the names of those holding it, because the CommonJS builds of
 *   grpo-roc/tfjs and grpo-roc/webgpu each carry their own copy of this module and must still share one root.
 *   It is dropped when the last holder releases it, so that Node can exit (a live root keeps the event loop busy).
 * - dawn.node drives its promises (mapAsync, onSubmittedWorkDone, popErrorScope) by re-arming `setImmediate` for
 *   as long as one is pending: a busy loop on the main thread that, with a CPU Vulkan driver (lavapipe) on a
 *   2-core machine, takes ~40% of the CPU away from the driver's threads. `whileWaiting` turns those ticks into
 *   1 ms timers while grpo-roc waits for its own work.
 *
 * Node builtins and the `webgpu` package are imported dynamically, so that importing this module loads nothing.
 */
import type { GpuRoot } from "./gpu.js";

interface DawnModule {
  create(options: string[]): GpuRoot;
  globals: object;
}

interface SharedRoot {
  root: GpuRoot | undefined;
  readonly holders: Set<string>;
}

const KEY = Symbol.for("grpo-roc.webgpu.dawn-root");

function shared(): SharedRoot {
  const g = globalThis as { [KEY]?: SharedRoot };
  g[KEY] ??= { root: undefined, holders: new Set() };
  return g[KEY];
}

export function inNode(): boolean {
  return typeof process !== "undefined" && typeof process.versions?.node === "string";
}

/**
 * The process's dawn.node root, held for `holder` until releaseDawn(holder). Never throws: a missing `webgpu`
 * package comes back as `{ ok: false, reason }`. Also installs the `webgpu` package's WebGPU globals
 * (GPUBufferUsage, GPUMapMode…), which tfjs-backend-webgpu expects as a browser has them.
 */
export async function acquireDawn(
  holder: string,
): Promise<{ ok: true; root: GpuRoot } | { ok: false; reason: string }> {
  await ensureRuntimeDir();
  let webgpu: DawnModule;
  try {
    webgpu = (await import(/* @vite-ignore */ "webgpu")) as unknown as DawnModule;
  } catch (error) {
    return {
      ok: false,
      reason:
        `the "webgpu" package (dawn.node) cannot be imported (npm i webgpu): ` +
        `${error instanceof Error ? error.message : String(error)}`,
    };
  }
  Object.assign(globalThis, webgpu.globals);
  const state = shared();
  state.root ??= webgpu.create([]);
  state.holders.add(holder);
  return { ok: true, root: state.root };
}

/** Drops `holder`'s claim; the root goes when nobody holds it. Destroy the devices made from it first. */
export function releaseDawn(holder: string): void {
  const state = shared();
  state.holders.delete(holder);
  if (state.holders.size === 0) state.root = undefined;
}

/** Who holds the root now (for tests). */
export function dawnHolders(): readonly string[] {
  return [...shared().holders];
}

/**
 * Mesa's Vulkan drivers (lavapipe) want a per-user runtime folder; without XDG_RUNTIME_DIR they log errors and
 * some setups fail to create the device. A private temporary folder is enough.
 */
async function ensureRuntimeDir(): Promise<void> {
  if (!inNode() || process.env.XDG_RUNTIME_DIR) return;
  const [{ mkdtempSync }, { tmpdir }, { join }] = await Promise.all([
    import("node:fs"),
    import("node:os"),
    import("node:path"),
  ]);
  process.env.XDG_RUNTIME_DIR = mkdtempSync(join(tmpdir(), "grpo-roc-xdg-"));
}

let waiting = 0;
let original: typeof setImmediate | undefined;

/**
 * Runs `start` (which begins a dawn.node async operation) and awaits it with dawn.node's polling slowed from a
 * busy setImmediate loop to 1 ms timers. Other setImmediate callbacks in the process run ≥ 1 ms later meanwhile;
 * nothing else changes. Outside Node (browsers have no setImmediate) it just awaits.
 */
export async function whileWaiting<T>(start: () => Promise<T>): Promise<T> {
  const g = globalThis as { setImmediate?: typeof setImmediate };
  if (typeof g.setImmediate !== "function") return start();
  if (waiting++ === 0) {
    original = g.setImmediate;
    // dawn.node looks setImmediate up on the global object at every tick, so the replacement takes effect at once.
    const slowed = ((callback: (...args: unknown[]) => void, ...args: unknown[]) =>
      setTimeout(callback, 1, ...args)) as unknown as typeof setImmediate;
    g.setImmediate = slowed;
  }
  try {
    return await start();
  } finally {
    if (--waiting === 0 && original !== undefined) {
      g.setImmediate = original;
      original = undefined;
    }
  }
}
