/**
 * Finding and loading the optional native addon (native/build/Release/grpo_roc_cuda.node), lazily, from the ESM
 * and the CommonJS builds alike, and saying why it is not there: never built (and why not, from the status file
 * native/build.mjs writes), built but not loadable, or loaded with no device to run on.
 */
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** What the addon's own probe() returns: the CUDA runtime's view of device 0. */
export interface DeviceProbe {
  readonly ok: boolean;
  readonly errorName: string;
  readonly errorString: string;
  readonly failedCall: string;
  readonly deviceCount: number;
  readonly name: string;
  readonly major: number;
  readonly minor: number;
  readonly totalMemory: number;
  readonly freeMemory: number;
  readonly runtimeVersion: number;
  readonly driverVersion: number;
}

/** The addon's functions (native/src/addon.cc). The async ones reject with the CUDA error's name and string. */
export interface CudaAddon {
  probe(): DeviceProbe;
  buildInfo(): { threads: number; architectures: string };
  forward(args: Record<string, unknown>): Promise<void>;
  backward(args: Record<string, unknown>): Promise<void>;
  policyLoss(args: Record<string, unknown>): Promise<void>;
  fused(args: Record<string, unknown>): Promise<{ stop: number; position: number; peakBytes: number }>;
  bench(args: Record<string, unknown>): Promise<Record<string, number | string>>;
  selfCheck(args: { exec: "device" | "host" }): Promise<unknown>;
  floatToBf16(values: Float32Array): Uint16Array;
  bf16ToFloat(bits: Uint16Array): Float32Array;
}

/** What native/build.mjs recorded about the last build attempt. */
export interface BuildStatus {
  readonly built: boolean;
  readonly reason: string;
  readonly [key: string]: unknown;
}

export type AddonState =
  | {
      readonly loaded: true;
      readonly addon: CudaAddon;
      readonly path: string;
      readonly status: BuildStatus | undefined;
    }
  | {
      readonly loaded: false;
      readonly reason: string;
      readonly path: string;
      readonly status: BuildStatus | undefined;
    };

/** How to build the addon, appended to every "not built" reason. */
export const HOW_TO_BUILD =
  "to build it, put the CUDA toolkit's nvcc on PATH (or set CUDA_HOME) and run `npm rebuild grpo-roc` " +
  "(or `node node_modules/grpo-roc/native/build.mjs --force`; in the grpo-roc repository: `npm run build:cuda`)";

/**
 * This module's folder. import.meta.url first: it is this file's own URL in ESM (the source under vitest/tsx, and
 * dist/cuda/index.js), while a global `__dirname` can exist in an ESM program that has nothing to do with this
 * file (`node -e 'import("grpo-roc/cuda")'` defines `__dirname = "."`). In the CommonJS build tsup's rollup pass
 * (treeshake) rewrites import.meta.url to this file's URL; a bundler that leaves `import.meta` empty instead (esbuild
 * alone gives `{}`) makes it undefined, and then CommonJS's own `__dirname` is this module's folder.
 */
function moduleDir(): string {
  return moduleDirFrom(import.meta.url, typeof __dirname === "string" ? __dirname : undefined);
}

/** moduleDir's choice, given what the module sees (exported for the tests). */
export function moduleDirFrom(metaUrl: string | undefined, cjsDirname: string | undefined): string {
  if (typeof metaUrl === "string" && metaUrl.startsWith("file:")) {
    try {
      return dirname(fileURLToPath(metaUrl));
    } catch {
      // Not a local file URL: fall through.
    }
  }
  if (typeof cjsDirname === "string") return cjsDirname;
  return process.cwd();
}

/** The folder of grpo-roc's package.json, walking up from this module (src/cuda or dist/cuda). */
export function packageRoot(from: string = moduleDir()): string {
  let dir = resolve(from);
  for (;;) {
    const manifest = join(dir, "package.json");
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, "utf8")) as { name?: string }).name === "grpo-roc") return dir;
      } catch {
        // An unreadable package.json on the way up is not ours.
      }
    }
    const parent = dirname(dir);
    if (parent === dir) return resolve(from, "..", "..");
    dir = parent;
  }
}

/** Where the addon is looked for: `path`, else $GRPO_ROC_CUDA_ADDON, else native/build/Release of the package. */
export function addonPath(path?: string): string {
  return (
    path ?? process.env.GRPO_ROC_CUDA_ADDON ?? join(packageRoot(), "native", "build", "Release", "grpo_roc_cuda.node")
  );
}

function readStatus(addon: string): BuildStatus | undefined {
  // native/build/Release/grpo_roc_cuda.node → native/build/status.json
  const file = join(dirname(dirname(addon)), "status.json");
  try {
    const status = JSON.parse(readFileSync(file, "utf8")) as BuildStatus;
    return typeof status.built === "boolean" && typeof status.reason === "string" ? status : undefined;
  } catch {
    return undefined;
  }
}

const states = new Map<string, AddonState>();

/** Loads the addon at `path` once per process; never throws. */
export function loadAddon(path?: string): AddonState {
  const file = addonPath(path);
  const cached = states.get(file);
  if (cached !== undefined) return cached;
  const status = readStatus(file);
  let state: AddonState;
  if (!existsSync(file)) {
    state = { loaded: false, path: file, status, reason: notBuiltReason(status) };
  } else {
    try {
      const require = createRequire(join(packageRoot(), "package.json"));
      state = { loaded: true, addon: require(file) as CudaAddon, path: file, status };
    } catch (error) {
      state = {
        loaded: false,
        path: file,
        status,
        reason: `built but cannot load: ${error instanceof Error ? error.message : String(error)}`,
      };
    }
  }
  states.set(file, state);
  return state;
}

function notBuiltReason(status: BuildStatus | undefined): string {
  if (status === undefined) {
    return (
      "not built: no build was attempted (npm did not run grpo-roc's install script: --ignore-scripts, or an " +
      "allowScripts policy that does not approve it; `npm install-scripts approve grpo-roc` approves it); " +
      HOW_TO_BUILD
    );
  }
  if (status.built) return `not built: the build reported success but the addon file is missing; ${HOW_TO_BUILD}`;
  return `not built: ${status.reason}; ${HOW_TO_BUILD}`;
}

/** A CUDA version number as the runtime reports it (13000) in the usual form ("13.0"). */
const cudaVersion = (v: number) => `${Math.floor(v / 1000)}.${Math.floor((v % 1000) / 10)}`;

/**
 * The reason a device probe gives when the addon loaded but cannot run (native/src/engine.cu,
 * describe_probe_failure, says the same for grpo_roc_bench). cudaErrorInsufficientDriver comes both from a
 * machine without an NVIDIA driver (cudaDriverGetVersion reports 0) and from a driver older than the CUDA runtime
 * linked into the addon: the second is "CUDA driver too old", not "no CUDA device".
 */
export function deviceReason(p: DeviceProbe, architectures: string): string {
  const error = `${p.errorName} (${p.errorString}) from ${p.failedCall}`;
  if (p.failedCall === "cudaFuncGetAttributes") {
    return (
      `no CUDA device this build can run on: ${p.name} (sm_${p.major}${p.minor}) has no kernel image among ` +
      `${architectures}: ${error}`
    );
  }
  if (p.errorName === "cudaErrorInsufficientDriver" && p.driverVersion > 0) {
    return (
      `CUDA driver too old (driver ${cudaVersion(p.driverVersion)}, runtime ${cudaVersion(p.runtimeVersion)}; ` +
      `update the NVIDIA driver): ${error}`
    );
  }
  return (
    `no CUDA device: ` +
    `${error}${p.driverVersion === 0 ? "; no NVIDIA driver is installed (cudaDriverGetVersion reports 0)" : ""}`
  );
}

const GiB = 2 ** 30;

export function deviceDescription(p: DeviceProbe): string {
  const version = cudaVersion;
  return (
    `${p.name} (sm_${p.major}${p.minor}, ${(p.totalMemory / GiB).toFixed(1)} GiB, ${(p.freeMemory / GiB).toFixed(1)} ` +
    `GiB free; ` +
    `driver ${version(p.driverVersion)}, runtime ${version(p.runtimeVersion)})`
  );
}
