/**
 * How the CUDA addon is built, shipped and found (native/build.mjs, package.json, src/cuda/addon.ts):
 *
 * - installing runs nothing (no install script); `npm pack` runs prepack, which builds the prebuilt addon;
 * - the package ships the prebuilt (prebuilds/linux-x64) and the sources a rebuild needs, and no bench-only C++;
 * - native/build.mjs names everything it is missing at once, downloads nothing, and under --prebuilt fails the pack
 *   unless GRPO_ROC_PACK_WITHOUT_CUDA opts out; `grpo-roc build-cuda` runs it;
 * - the loader takes a rebuild before the prebuilt, and says "not built for this platform" where there is neither;
 * - an addon built with the default flags holds sm_80 and sm_90 machine code and compute_90 PTX, and links the CUDA
 *   runtime statically (ldd shows no libcudart); a rebuild with --archs holds just what it was asked for.
 *
 * The builds need nvcc (skipped with the reason otherwise; with CI set nvcc must be there, as for the addon).
 */
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { type CudaAddon, deviceReason, loadAddon, locateAddon } from "../src/cuda/addon.js";
import { createCudaBackend } from "../src/cuda/index.js";
import { insufficientDriverProbe } from "./helpers/cuda-probe.js";

const repository = path.resolve(import.meta.dirname, "..");
const inCi = (() => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
})();
const nvcc = spawnSync("bash", ["-c", "command -v nvcc || ls /usr/local/cuda/bin/nvcc"], { encoding: "utf8" })
  .stdout.trim()
  .split("\n")[0];
const platform = `${process.platform}-${process.arch}`;
const scratch = realpathSync(mkdtempSync(path.join(os.tmpdir(), "grpo-roc-cuda-build-")));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));
let scratchCount = 0;
function tempDir(): string {
  const dir = path.join(scratch, String(scratchCount++));
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A copy of the package's native/ folder (what build.mjs reads) in a scratch package folder. */
function scratchPackage(): string {
  const root = tempDir();
  for (const entry of ["build.mjs", "binding.gyp", "src"])
    cpSync(path.join(repository, "native", entry), path.join(root, "native", entry), { recursive: true });
  return root;
}

/** Runs `node build.mjs args` of the package at `root`, with `env` over this process's. */
function build(root: string, args: readonly string[], env: Record<string, string | undefined> = {}) {
  const merged: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete merged[key];
  const result = spawnSync(process.execPath, [path.join(root, "native", "build.mjs"), ...args], {
    encoding: "utf8",
    env: merged,
    timeout: 280_000,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** An environment without any CUDA toolkit: no nvcc on PATH, no $CUDA_HOME, no default folders. */
const noCuda = {
  PATH: [path.dirname(process.execPath), "/usr/bin", "/bin"].join(path.delimiter),
  CUDA_HOME: undefined,
  CUDA_PATH: undefined,
  GRPO_ROC_CUDA_HOME: undefined,
  GRPO_ROC_CUDA_DEFAULT_HOMES: "",
};
const hasCudaWithoutPath = ["/usr/bin/nvcc", "/bin/nvcc"].some((p) => existsSync(p));

/** The GPU code in an ELF file's .nv_fatbin section, as cuobjdump --list-elf / --list-ptx name it. */
function fatbinEntries(file: string): string[] {
  const b = readFileSync(file);
  const shoff = Number(b.readBigUInt64LE(0x28));
  const [size, count, names] = [b.readUInt16LE(0x3a), b.readUInt16LE(0x3c), b.readUInt16LE(0x3e)];
  const section = (i: number) => {
    const o = shoff + i * size;
    return {
      name: b.readUInt32LE(o),
      offset: Number(b.readBigUInt64LE(o + 0x18)),
      size: Number(b.readBigUInt64LE(o + 0x20)),
    };
  };
  const strings = section(names);
  const nameOf = (n: number) => b.toString("latin1", strings.offset + n, b.indexOf(0, strings.offset + n));
  const entries: string[] = [];
  for (let i = 0; i < count; i++) {
    const s = section(i);
    if (nameOf(s.name) !== ".nv_fatbin") continue;
    // Fatbin containers (magic 0xBA55ED50, header size, payload size), each a list of entries: kind (1 PTX,
    // 2 ELF), header size, payload size, and the architecture at offset 28.
    for (let p = s.offset; p < s.offset + s.size; ) {
      if (b.readUInt32LE(p) !== 0xba55ed50) {
        p += 8;
        continue;
      }
      const [headerSize, fatSize] = [b.readUInt16LE(p + 6), Number(b.readBigUInt64LE(p + 8))];
      for (let q = p + headerSize; q < p + headerSize + fatSize; ) {
        const kind = b.readUInt16LE(q);
        const arch = b.readUInt32LE(q + 28);
        entries.push(kind === 1 ? `ptx compute_${arch}` : kind === 2 ? `elf sm_${arch}` : `kind ${kind} ${arch}`);
        q += b.readUInt32LE(q + 4) + Number(b.readBigUInt64LE(q + 8));
      }
      p += headerSize + fatSize;
    }
  }
  return entries.sort();
}

function sharedLibraries(file: string): string {
  const ldd = spawnSync("ldd", [file], { encoding: "utf8" });
  expect(ldd.status, ldd.stderr).toBe(0);
  return ldd.stdout;
}

describe("package.json: nothing runs at install, the pack builds the prebuilt", () => {
  const pkg = JSON.parse(readFileSync(path.join(repository, "package.json"), "utf8")) as {
    scripts: Record<string, string>;
    files: string[];
  };

  it("has no install-time script", () => {
    for (const hook of ["preinstall", "install", "postinstall", "prepare"])
      expect(pkg.scripts[hook], hook).toBeUndefined();
  });

  it("prepack builds the TypeScript and the prebuilt addon", () => {
    expect(pkg.scripts.prepack).toMatch(/npm run build(?!:)/);
    expect(pkg.scripts.prepack).toContain("npm run build:cuda:prebuilt");
    expect(pkg.scripts["build:cuda:prebuilt"]).toBe("node native/build.mjs --prebuilt");
  });

  it("ships the prebuilt, build.mjs, binding.gyp and exactly the sources the addon is built from", () => {
    const result = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], {
      cwd: repository,
      encoding: "utf8",
    });
    expect(result.status, result.stderr).toBe(0);
    const files = (JSON.parse(result.stdout) as { files: { path: string }[] }[])[0]!.files.map((f) => f.path);
    // The sources binding.gyp names, and every header they include, transitively.
    const gyp = readFileSync(path.join(repository, "native", "binding.gyp"), "utf8");
    const needed = new Set(["native/binding.gyp", "native/build.mjs"]);
    const queue = [...gyp.matchAll(/"(src\/[\w.]+)"/g)].map((m) => `native/${m[1]}`);
    while (queue.length > 0) {
      const file = queue.pop()!;
      if (needed.has(file)) continue;
      needed.add(file);
      const text = readFileSync(path.join(repository, file), "utf8");
      for (const m of text.matchAll(/^#include "([\w.]+)"/gm)) queue.push(`native/src/${m[1]}`);
    }
    expect(files.filter((f) => f.startsWith("native/")).sort()).toEqual([...needed].sort());
    expect(files).not.toContain("native/src/bench_main.cc");
    const prebuilt = files.filter((f) => f.startsWith("prebuilds/"));
    if (existsSync(path.join(repository, "prebuilds", "linux-x64", "grpo_roc_cuda.node")))
      expect(prebuilt.sort()).toEqual(["prebuilds/linux-x64/grpo_roc_cuda.node", "prebuilds/linux-x64/status.json"]);
    else expect(prebuilt).toEqual([]);
  });
});

describe("native/build.mjs says why it cannot build, and downloads nothing", () => {
  it.skipIf(hasCudaWithoutPath)("no toolkit and no Node headers: both named, exit 1, nothing written", () => {
    const root = scratchPackage();
    const { code, stderr } = build(root, ["--nodedir", path.join(root, "no-headers")], noCuda);
    expect(code).toBe(1);
    expect(stderr).toMatch(/^grpo-roc: cannot build the CUDA addon: .*nvcc not found/);
    expect(stderr).toContain(`Node's headers not found (no include/node/node_api.h and common.gypi under ${root}`);
    expect(stderr).toContain("--nodedir=DIR");
    expect(existsSync(path.join(root, "native", "build"))).toBe(false);
  });

  it("a bad --archs, and an unknown option", () => {
    const root = scratchPackage();
    const bad = build(root, ["--archs", "sm_80 sm8x"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--archs: sm8x is not sm_XY or compute_XY/);
    const unknown = build(root, ["--frobnicate"]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain("Usage: node native/build.mjs");
  });

  it.skipIf(hasCudaWithoutPath)("--prebuilt without a toolkit fails the pack, loudly", () => {
    const root = scratchPackage();
    const { code, stderr } = build(root, ["--prebuilt"], noCuda);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot build the prebuilt CUDA addon for the package: .*nvcc not found/);
    expect(stderr).toContain("set GRPO_ROC_PACK_WITHOUT_CUDA=1 to pack it without one on purpose");
  });

  it("--prebuilt with GRPO_ROC_PACK_WITHOUT_CUDA=1: a warning, and no stale prebuilt left to ship", () => {
    const root = scratchPackage();
    mkdirSync(path.join(root, "prebuilds", "linux-x64"), { recursive: true });
    writeFileSync(path.join(root, "prebuilds", "linux-x64", "grpo_roc_cuda.node"), "stale");
    const { code, stderr } = build(root, ["--prebuilt"], { ...noCuda, GRPO_ROC_PACK_WITHOUT_CUDA: "1" });
    expect(code).toBe(0);
    expect(stderr).toMatch(/WARNING: GRPO_ROC_PACK_WITHOUT_CUDA is set: the package is packed without a prebuilt/);
    expect(existsSync(path.join(root, "prebuilds"))).toBe(false);
  });
});

describe("grpo-roc build-cuda", () => {
  const cli = (args: readonly string[]) =>
    spawnSync(process.execPath, ["--import", "tsx", path.join(repository, "src", "cli", "main.ts"), ...args], {
      cwd: repository,
      encoding: "utf8",
      timeout: 60_000,
    });

  it("--help says what it does and where the result goes", () => {
    const help = cli(["build-cuda", "--help"]);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: grpo-roc build-cuda \[--archs LIST\] \[--nodedir DIR\] \[--out DIR\]/);
    expect(help.stdout).toContain("native/build/Release/");
    expect(cli(["help", "build-cuda"]).stdout).toBe(help.stdout);
    expect(cli(["--help"]).stdout).toMatch(/^ {2}build-cuda {2}Rebuild the CUDA addon/m);
  });

  it("runs the package's native/build.mjs, with its exit code and its reasons", () => {
    const bad = cli(["build-cuda", "--archs", "sm8x"]);
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/--archs: sm8x is not sm_XY or compute_XY/);
    expect(cli(["build-cuda", "--frobnicate"]).status).toBe(2);
  });
});

describe("where the addon is looked for (src/cuda/addon.ts)", () => {
  /** A package folder with a (fake) addon at each of `files`. */
  function packageWith(...files: string[]): string {
    const root = tempDir();
    for (const file of files) {
      mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
      writeFileSync(path.join(root, file), "not an ELF file");
    }
    return root;
  }
  const env = process.env.GRPO_ROC_CUDA_ADDON;
  const withoutEnv = <T>(run: () => T): T => {
    delete process.env.GRPO_ROC_CUDA_ADDON;
    try {
      return run();
    } finally {
      if (env !== undefined) process.env.GRPO_ROC_CUDA_ADDON = env;
    }
  };
  const prebuilt = `prebuilds/${platform}/grpo_roc_cuda.node`;
  const rebuild = "native/build/Release/grpo_roc_cuda.node";

  it("a rebuild first, then the prebuilt for this platform", () =>
    withoutEnv(() => {
      const both = packageWith(prebuilt, rebuild);
      expect(locateAddon(undefined, { root: both })).toMatchObject({ kind: "rebuild", file: path.join(both, rebuild) });
      const shipped = packageWith(prebuilt);
      expect(locateAddon(undefined, { root: shipped })).toMatchObject({
        kind: "prebuilt",
        file: path.join(shipped, prebuilt),
        shipped: [platform],
      });
      // An explicit file is the only place looked.
      expect(locateAddon(path.join(both, "elsewhere.node"), { root: both })).toMatchObject({
        kind: "explicit",
        file: undefined,
      });
    }));

  it("no prebuilt for this platform: 'not built for this platform', naming what is shipped and build-cuda", () =>
    withoutEnv(() => {
      const root = packageWith("prebuilds/linux-x64/grpo_roc_cuda.node");
      const state = loadAddon(undefined, { root, platform: "linux", arch: "arm64" });
      expect(state.loaded).toBe(false);
      expect(state.loaded ? "" : state.reason).toMatch(
        /^not built for this platform \(linux-arm64; the package ships a prebuilt addon for linux-x64 only\); run `npx grpo-roc build-cuda` to build it from source/,
      );
      expect(state.path).toBe(path.join(root, rebuild));
    }));

  it("no prebuilt at all (a source checkout, or packed without CUDA): 'not built', and build-cuda", () =>
    withoutEnv(() => {
      const state = loadAddon(undefined, { root: packageWith() });
      expect(state.loaded ? "" : state.reason).toMatch(
        /^not built: this copy of grpo-roc holds no prebuilt addon .*; run `npx grpo-roc build-cuda`/,
      );
    }));

  it("a prebuilt that does not load: 'built but cannot load', with the loader's words and build-cuda", () =>
    withoutEnv(() => {
      const root = packageWith(prebuilt);
      const state = loadAddon(undefined, { root });
      expect(state.loaded ? "" : state.reason).toMatch(
        new RegExp(`^built but cannot load ${path.join(root, prebuilt)}: .*; run \`npx grpo-roc build-cuda\``, "s"),
      );
    }));

  it("a missing explicit file says which option named it, and the backend's probe says the same", async () => {
    const missing = path.join(scratch, "missing", "grpo_roc_cuda.node");
    const state = loadAddon(missing);
    expect(state.loaded ? "" : state.reason).toMatch(/^not built: no addon at .* \(the addonPath option names it\)/);
    const info = await createCudaBackend({ addonPath: missing }).probe();
    expect(info.available).toBe(false);
    expect(info.reason).toBe(state.loaded ? "" : state.reason);
  });

  it("a driver older than the addon's runtime: both versions, and the two ways out", () => {
    const reason = deviceReason(
      insufficientDriverProbe({ runtimeVersion: 13000, driverVersion: 12080 }),
      "sm_80 sm_90 compute_90",
    );
    expect(reason).toMatch(/^CUDA driver too old \(driver 12\.8, runtime 13\.0; update the NVIDIA driver\): /);
    expect(reason).toMatch(/or build the addon with a CUDA 12\.8 \(or older\) toolkit: `npx grpo-roc build-cuda`$/);
  });
});

describe("the addon as built", () => {
  // What the package would load here: a rebuild with the default flags, else the prebuilt.
  const found = (() => {
    const env = process.env.GRPO_ROC_CUDA_ADDON;
    delete process.env.GRPO_ROC_CUDA_ADDON;
    try {
      return locateAddon();
    } finally {
      if (env !== undefined) process.env.GRPO_ROC_CUDA_ADDON = env;
    }
  })();
  const status = (() => {
    try {
      return JSON.parse(readFileSync(path.join(path.dirname(found.file ?? ""), "status.json"), "utf8")) as {
        architectures?: string;
      };
    } catch {
      return {};
    }
  })();
  const defaultBuild = found.file !== undefined && status.architectures === "sm_80 sm_90 compute_90";

  it.runIf(defaultBuild || inCi)(
    `sm_80 and sm_90 code and compute_90 PTX, the CUDA runtime linked in (${found.file ?? "no addon built"})`,
    () => {
      const file = found.file!;
      expect(fatbinEntries(file)).toEqual(["elf sm_80", "elf sm_90", "ptx compute_90"]);
      const libraries = sharedLibraries(file);
      expect(libraries).not.toMatch(/libcudart/);
      expect(libraries).not.toMatch(/libstdc\+\+/);
    },
  );

  it.runIf(existsSync(path.join(repository, "prebuilds", "linux-x64", "grpo_roc_cuda.node")))(
    `the prebuilt loads from a package folder, with its status, and its probe says why it cannot run here${
      existsSync(path.join(repository, "prebuilds", "linux-x64", "grpo_roc_cuda.node"))
        ? ""
        : " (skipped: no prebuilds/linux-x64 in this checkout; npm run build:cuda:prebuilt makes it)"
    }`,
    async () => {
      const root = tempDir();
      cpSync(path.join(repository, "prebuilds"), path.join(root, "prebuilds"), { recursive: true });
      const state = loadAddon(undefined, { root });
      expect(state.loaded, state.loaded ? "" : state.reason).toBe(true);
      expect(state.path).toBe(path.join(root, "prebuilds", "linux-x64", "grpo_roc_cuda.node"));
      expect(state.status).toMatchObject({ built: true, cudaVersion: expect.any(String), platform: "linux-x64" });
      // Nothing of the packing machine but its C library's version: no paths, no date.
      expect(JSON.stringify(state.status)).not.toMatch(/\/|date/);
      if (state.loaded) {
        expect(state.addon.buildInfo().architectures).toBe("sm_80 sm_90 compute_90");
        const probe = state.addon.probe();
        if (!probe.ok)
          expect(deviceReason(probe, "sm_80 sm_90 compute_90")).toMatch(/^(no CUDA device|CUDA driver too old)/);
      }
    },
  );

  it.runIf(nvcc !== "" || inCi)(
    `a rebuild with --archs sm_80 --out DIR: only sm_80 code, loadable from DIR${nvcc === "" ? " (skipped: no nvcc)" : ""}`,
    () => {
      const root = scratchPackage();
      const out = path.join(tempDir(), "addon");
      const { code, stdout, stderr } = build(root, ["--archs", "sm_80", "--out", out]);
      expect(code, stdout + stderr).toBe(0);
      // It says what it runs, then one line.
      expect(stdout).toMatch(
        /^grpo-roc: building the CUDA addon with nvcc \d+\.\d+ .* for sm_80, Node's headers from /,
      );
      expect(stdout).toMatch(/node-gyp(\.js)? rebuild --nodedir=/);
      expect(stdout.trim().split("\n").at(-1)).toMatch(
        /^grpo-roc: built with nvcc \d+\.\d+ for sm_80, CUDA runtime linked statically: /,
      );
      const file = path.join(out, "grpo_roc_cuda.node");
      expect(fatbinEntries(file)).toEqual(["elf sm_80"]);
      expect(sharedLibraries(file)).not.toMatch(/libcudart/);
      const addon = createRequire(import.meta.url)(file) as CudaAddon;
      expect(addon.buildInfo().architectures).toBe("sm_80");
      expect(JSON.parse(readFileSync(path.join(out, "status.json"), "utf8"))).toMatchObject({
        built: true,
        architectures: "sm_80",
      });
      // Nothing left in the package's folder: the build ran in a temporary copy.
      expect(existsSync(path.join(root, "native", "build"))).toBe(false);
    },
  );
});
