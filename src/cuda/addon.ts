/**
 * Finding and loading the optional native addon, lazily, from the ESM and the CommonJS builds alike, and saying why
 * it is not there. It is looked for, in order:
 *
 *   1. a file named by the `addonPath` option or $GRPO_ROC_CUDA_ADDON (then only there);
 *   2. a rebuild from source, native/build/Release/grpo_roc_cuda.node in the package (`npx grpo-roc build-cuda`);
 *   3. the prebuilt addon the package ships for this platform, prebuilds/<platform>-<arch>/grpo_roc_cuda.node
 *      (linux-x64, built by `npm pack`'s prepack step: native/build.mjs --prebuilt).
 *
 * None there: "not built for this platform" (or "not built"), with how to build it. There but not loadable: "built
 * but cannot load", with the loader's error. Loaded: the backend asks it for a device (deviceReason says why not).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The addon's file name, in every place it is looked for. */
export const ADDON_FILE = "grpo_roc_cuda.node";

/** What the addon's own probe() returns: the CUDA runtime's view of device 0. */
export interface DeviceProbe {
  /** Whether device 0 could be used; when not, the error fields say why. */
  readonly ok: boolean;
  /** The CUDA error's name (e.g. cudaErrorNoDevice) when not ok. */
  readonly errorName: string;
  /** The CUDA error's description when not ok. */
  readonly errorString: string;
  /** The CUDA runtime call that failed, when not ok. */
  readonly failedCall: string;
  /** CUDA devices visible to the process. */
  readonly deviceCount: number;
  /** Device 0's name (e.g. "NVIDIA H100 80GB HBM3"). */
  readonly name: string;
  /** Its compute capability, major (9 for sm_90). */
  readonly major: number;
  /** Its compute capability, minor (0 for sm_90). */
  readonly minor: number;
  /** Its memory in bytes. */
  readonly totalMemory: number;
  /** Its free memory in bytes, at the probe. */
  readonly freeMemory: number;
  /** The CUDA runtime's version, as CUDA encodes it (12040 for 12.4). */
  readonly runtimeVersion: number;
  /** The driver's CUDA version, encoded likewise. */
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

/** What native/build.mjs wrote beside the addon (status.json): how it was built. */
export interface BuildStatus {
  /** Whether the build produced the addon. */
  readonly built: boolean;
  /** Why not, or what was built. */
  readonly reason: string;
  readonly [key: string]: unknown;
}

/**
 * loadAddon's answer: the addon with the file it came from, or why it is not loaded (no build for this platform, no
 * driver…); either way with the build's status.json when there is one.
 */
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
  "run `npx grpo-roc build-cuda` to build it from source with your CUDA toolkit (nvcc on PATH or in $CUDA_HOME; " +
  "nothing is downloaded; in the grpo-roc repository: `npm run build:cuda`)";

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

/** Where to look for the addon: the package and the platform (default: this package, this process's). */
export interface AddonSearch {
  readonly root?: string | undefined;
  readonly platform?: string | undefined;
  readonly arch?: string | undefined;
}

/** Where the addon was looked for, and what was found. */
export interface AddonLocation {
  /** The file to load: the first of the places below that holds one; undefined when none does. */
  readonly file: string | undefined;
  readonly kind: "explicit" | "rebuild" | "prebuilt" | "none";
  /** Where a rebuild goes (`npx grpo-roc build-cuda`): native/build/Release/grpo_roc_cuda.node. */
  readonly rebuild: string;
  /** The prebuilt for this platform: prebuilds/<platform>-<arch>/grpo_roc_cuda.node. */
  readonly prebuilt: string;
  /** "<platform>-<arch>" looked for. */
  readonly platform: string;
  /** The platforms the package ships a prebuilt addon for. */
  readonly shipped: readonly string[];
}

/**
 * Where the addon is: `path` (the addonPath option), else $GRPO_ROC_CUDA_ADDON, else a rebuild in the package's
 * native/build/Release, else the package's prebuilt for this platform.
 */
export function locateAddon(path?: string, search: AddonSearch = {}): AddonLocation {
  const root = search.root ?? packageRoot();
  const platform = `${search.platform ?? process.platform}-${search.arch ?? process.arch}`;
  const rebuild = join(root, "native", "build", "Release", ADDON_FILE);
  const prebuilt = join(root, "prebuilds", platform, ADDON_FILE);
  let shipped: string[] = [];
  try {
    shipped = readdirSync(join(root, "prebuilds"))
      .filter((p) => existsSync(join(root, "prebuilds", p, ADDON_FILE)))
      .sort();
  } catch {
    // No prebuilds/ folder: a source checkout, or a package packed without CUDA.
  }
  const common = { rebuild, prebuilt, platform, shipped };
  const explicit = path ?? process.env.GRPO_ROC_CUDA_ADDON;
  if (explicit !== undefined && explicit !== "") {
    const file = resolve(explicit);
    return { ...common, kind: "explicit", file: existsSync(file) ? file : undefined };
  }
  if (existsSync(rebuild)) return { ...common, kind: "rebuild", file: rebuild };
  if (existsSync(prebuilt)) return { ...common, kind: "prebuilt", file: prebuilt };
  return { ...common, kind: "none", file: undefined };
}

/**
 * The addon file that loadAddon(path) loads; when there is none, where `npx grpo-roc build-cuda` would put it (or
 * the file `path` / $GRPO_ROC_CUDA_ADDON names).
 */
export function addonPath(path?: string): string {
  const where = locateAddon(path);
  if (where.file !== undefined) return where.file;
  return where.kind === "explicit" ? resolve((path ?? process.env.GRPO_ROC_CUDA_ADDON) as string) : where.rebuild;
}

/** status.json beside the addon (native/build.mjs writes it there), when it is readable. */
function readStatus(addon: string): BuildStatus | undefined {
  try {
    const status = JSON.parse(readFileSync(join(dirname(addon), "status.json"), "utf8")) as BuildStatus;
    return typeof status.built === "boolean" && typeof status.reason === "string" ? status : undefined;
  } catch {
    return undefined;
  }
}

const states = new Map<string, AddonState>();

/**
 * Loads the addon (see locateAddon) once per process and file; never throws. `search` points the search at
 * another package folder or platform (for the tests).
 */
export function loadAddon(path?: string, search: AddonSearch = {}): AddonState {
  const where = locateAddon(path, search);
  const file = where.file;
  if (file === undefined) {
    // Not cached: a build later in this process is found.
    const target = where.kind === "explicit" ? resolve((path ?? process.env.GRPO_ROC_CUDA_ADDON) as string) : undefined;
    return {
      loaded: false,
      path: target ?? where.rebuild,
      status: undefined,
      reason: notFoundReason(where, target, path !== undefined),
    };
  }
  const cached = states.get(file);
  if (cached !== undefined) return cached;
  const status = readStatus(file);
  let state: AddonState;
  try {
    const require = createRequire(join(dirname(file), "package.json"));
    state = { loaded: true, addon: require(file) as CudaAddon, path: file, status };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    state = { loaded: false, path: file, status, reason: loadFailureReason(where, file, message, status) };
  }
  states.set(file, state);
  return state;
}

function notFoundReason(where: AddonLocation, target: string | undefined, fromOption: boolean): string {
  if (target !== undefined) {
    return (
      `not built: no addon at ${target} (${fromOption ? "the addonPath option" : "$GRPO_ROC_CUDA_ADDON"} names it); ` +
      HOW_TO_BUILD
    );
  }
  if (where.shipped.length === 0) {
    return (
      "not built: this copy of grpo-roc holds no prebuilt addon (a source checkout, or a package packed without " +
      `CUDA) and none was built for it; ${HOW_TO_BUILD}`
    );
  }
  return (
    `not built for this platform (${where.platform}; the package ships a prebuilt addon for ` +
    `${where.shipped.join(", ")} only); ${HOW_TO_BUILD}`
  );
}

function loadFailureReason(
  where: AddonLocation,
  file: string,
  message: string,
  status: BuildStatus | undefined,
): string {
  let reason = `built but cannot load ${file}: ${message}`;
  // A prebuilt built against a newer C library than this system's (`GLIBC_2.36' not found).
  if (/GLIBC_[\d.]+'? not found/.test(message)) {
    const glibc = typeof status?.glibc === "string" ? ` (it was built against glibc ${status.glibc})` : "";
    reason += `; this system's C library is older than the one the addon needs${glibc}`;
  }
  if (where.kind === "prebuilt") reason += `; ${HOW_TO_BUILD}`;
  return reason;
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
    // The driver's version is the newest CUDA it runs: a toolkit of that version or older builds an addon it runs.
    return (
      `CUDA driver too old (driver ${cudaVersion(p.driverVersion)}, runtime ${cudaVersion(p.runtimeVersion)}; ` +
      `update the NVIDIA driver): ${error}; or build the addon with a CUDA ${cudaVersion(p.driverVersion)} (or ` +
      "older) toolkit: `npx grpo-roc build-cuda`"
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
