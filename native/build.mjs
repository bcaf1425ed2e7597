#!/usr/bin/env node
// Builds the CUDA addon grpo_roc_cuda.node from native/src with node-gyp and nvcc. It downloads nothing: the CUDA
// toolkit, Node's headers (--nodedir), node-gyp (npm's own), Python 3, make and a C++ compiler must be here, and
// when one is not, it says which and exits 1. Nothing runs at `npm install`; this runs in two ways:
//
//   node native/build.mjs [--archs "sm_80 sm_90 compute_90"] [--nodedir DIR] [--out DIR]
//       A rebuild from source with the toolkit found here (`npx grpo-roc build-cuda`; `npm run build:cuda` in the
//       repository), for another CUDA version (a driver too old for the prebuilt's runtime), other GPU
//       architectures (--archs) or a platform no prebuilt is shipped for. It goes into this package's own
//       native/build/Release/, which the cuda backend loads before the shipped prebuilt, and which goes away with
//       the package (an upgrade cannot leave a rebuild of older sources behind); or, where the package's folder is
//       not writable, into --out DIR, loaded with GRPO_ROC_CUDA_ADDON=DIR/grpo_roc_cuda.node.
//
//   node native/build.mjs --prebuilt
//       `npm run build:cuda:prebuilt`, run by `prepack`: the addon the package ships, for linux-x64, with the
//       default architectures, into prebuilds/linux-x64/ (after emptying prebuilds/). When it cannot build, the
//       pack fails: a package without its prebuilt addon is never packed by accident. To pack without CUDA on
//       purpose, set GRPO_ROC_PACK_WITHOUT_CUDA=1: prebuilds/ is then emptied, the pack goes on with a warning,
//       and the package's cuda backend reports "not built" until its user runs `npx grpo-roc build-cuda`.
//
// Either way the build runs in a fresh temporary folder (nothing of an earlier build is reused, and the package's
// folder gets only the result), and the result replaces the old file by a rename, so that a process that has the
// old addon loaded keeps a valid file. Beside the addon goes status.json ({ built: true, reason, ... }), which
// the backend reports. The CUDA runtime is linked statically (only the NVIDIA driver is needed at run time), and
// N-API 8 keeps the file loadable by every Node version the package supports. Quiet on success: one line (a
// rebuild also prints the command it runs); on failure, the compiler's last lines and the full log's path.
// Only Node built-ins: it runs from an installed package, where devDependencies do not exist.
import { spawnSync } from "node:child_process";
import {
  accessSync,
  constants,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  realpathSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const here = dirname(realpathSync(fileURLToPath(import.meta.url)));
const root = dirname(here);
const started = Date.now();
const ADDON = "grpo_roc_cuda.node";
/** What the package ships: sm_80 (A100; runs on sm_86/sm_89 too), sm_90 (H100/H200), compute_90 PTX for newer. */
const DEFAULT_ARCHS = "sm_80 sm_90 compute_90";
/** The one platform a prebuilt addon is packed for. */
const PREBUILT_PLATFORM = "linux-x64";

const USAGE = `Usage: node native/build.mjs [--archs LIST] [--nodedir DIR] [--out DIR] | --prebuilt

  --archs LIST    GPU code to build, space- or comma-separated: sm_XY for a GPU's machine code, compute_XY for PTX
                  that the driver compiles for newer GPUs (default "${DEFAULT_ARCHS}"; also $GRPO_ROC_CUDA_ARCHS)
  --nodedir DIR   Node's headers: a folder with include/node/node_api.h and include/node/common.gypi (default:
                  $npm_config_nodedir, else the folder Node itself is installed in, such as /usr or /usr/local)
  --out DIR       write grpo_roc_cuda.node there instead of the package's native/build/Release/ (then load it with
                  GRPO_ROC_CUDA_ADDON=DIR/grpo_roc_cuda.node)
  --prebuilt      build the addon the package ships (prebuilds/${PREBUILT_PLATFORM}/), as \`npm pack\` does
`;

let options;
try {
  options = parseArgs({
    options: {
      archs: { type: "string" },
      nodedir: { type: "string" },
      out: { type: "string" },
      prebuilt: { type: "boolean" },
      force: { type: "boolean" }, // Accepted for old scripts: every run builds.
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  }).values;
} catch (error) {
  console.error(`grpo-roc: ${error.message}\n${USAGE}`);
  process.exit(2);
}
if (options.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const prebuilt = options.prebuilt === true;
if (prebuilt && (options.archs !== undefined || options.out !== undefined)) {
  console.error("grpo-roc: --prebuilt builds what the package ships: it takes no --archs and no --out");
  process.exit(2);
}

/** Says why nothing was built, and exits 1 (a failed `npm pack` when packing). */
function fail(reason) {
  const what = prebuilt ? "the prebuilt CUDA addon for the package" : "the CUDA addon";
  console.error(`grpo-roc: cannot build ${what}: ${reason}`);
  if (prebuilt) {
    console.error(
      "grpo-roc: `npm pack` stops here so that the package is not packed without its CUDA addon; set " +
        "GRPO_ROC_PACK_WITHOUT_CUDA=1 to pack it without one on purpose",
    );
  }
  process.exit(1);
}

const optOut = /^(1|true|yes)$/i.test(process.env.GRPO_ROC_PACK_WITHOUT_CUDA ?? "");
if (prebuilt && optOut) {
  rmSync(join(root, "prebuilds"), { recursive: true, force: true });
  console.warn(
    "grpo-roc: WARNING: GRPO_ROC_PACK_WITHOUT_CUDA is set: the package is packed without a prebuilt CUDA addon " +
      "(its users must run `npx grpo-roc build-cuda`)",
  );
  process.exit(0);
}

/** The GPU code to build: the names, and nvcc's -gencode flags for them. */
function architectures(list) {
  const names = list
    .split(/[\s,]+/)
    .filter((a) => a !== "")
    .filter((a, i, all) => all.indexOf(a) === i);
  if (names.length === 0) fail("--archs is empty");
  const bad = names.filter((a) => !/^(sm|compute)_\d{2,3}[a-z]?$/.test(a));
  if (bad.length > 0)
    fail(`--archs: ${bad.join(", ")} is not sm_XY or compute_XY (e.g. sm_89 for an L4/RTX 40, compute_90 for PTX)`);
  const gencode = names.flatMap((a) => ["-gencode", `arch=compute_${a.replace(/^\w+?_/, "")},code=${a}`]);
  return { names: names.join(" "), gencode: gencode.join(" ") };
}
const archs = architectures(
  prebuilt ? DEFAULT_ARCHS : (options.archs ?? process.env.GRPO_ROC_CUDA_ARCHS ?? DEFAULT_ARCHS),
);

/** The executable `name`: a path, or a name looked up on PATH. */
function onPath(name) {
  const candidates = name.includes("/")
    ? [name]
    : (process.env.PATH ?? "").split(delimiter).flatMap((dir) => (dir === "" ? [] : [join(dir, name)]));
  for (const candidate of candidates) {
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // Not here.
    }
  }
  return undefined;
}

/** The CUDA toolkit: a folder with bin/nvcc, include/cuda_runtime.h and the static runtime library. */
function findCuda() {
  const homes = [process.env.GRPO_ROC_CUDA_HOME, process.env.CUDA_HOME, process.env.CUDA_PATH];
  const nvcc = onPath("nvcc");
  if (nvcc !== undefined) {
    homes.push(dirname(dirname(realpathSync(nvcc))));
    // A wrapper script on PATH (/usr/local/bin/nvcc → exec /usr/local/cuda-13.0/bin/nvcc): nvcc knows its home.
    const dry = spawnSync(nvcc, ["--dryrun", "--version"], { encoding: "utf8" });
    const top = /#\$ TOP=(.*)$/m.exec(`${dry.stdout ?? ""}${dry.stderr ?? ""}`)?.[1]?.trim();
    if (top) homes.push(top);
  }
  // The usual install folders; GRPO_ROC_CUDA_DEFAULT_HOMES replaces them (":"-separated; empty: none).
  homes.push(...(process.env.GRPO_ROC_CUDA_DEFAULT_HOMES ?? "/usr/local/cuda:/opt/cuda").split(delimiter));
  for (const home of homes) {
    if (!home || !existsSync(join(home, "bin", "nvcc"))) continue;
    if (!existsSync(join(home, "include", "cuda_runtime.h"))) continue;
    const lib = ["lib64", "lib", join("targets", "x86_64-linux", "lib"), join("targets", "sbsa-linux", "lib")]
      .map((d) => join(home, d))
      .find((d) => existsSync(join(d, "libcudart_static.a")));
    if (lib === undefined) continue;
    const real = realpathSync(home);
    return { home: real, lib, nvcc: join(real, "bin", "nvcc") };
  }
  return undefined;
}

/** Node's own headers (include/node/node_api.h and common.gypi), so that node-gyp downloads nothing. */
function findNodeDir() {
  const given = options.nodedir ?? process.env.npm_config_nodedir;
  const candidates = given !== undefined ? [resolve(given)] : [dirname(dirname(process.execPath))];
  return {
    tried: candidates[0],
    dir: candidates.find(
      (d) =>
        existsSync(join(d, "include", "node", "node_api.h")) && existsSync(join(d, "include", "node", "common.gypi")),
    ),
  };
}

/** npm's bundled node-gyp: npm names it to lifecycle scripts; outside them it sits in npm's install folder. */
function findNodeGyp() {
  const candidates = [process.env.npm_config_node_gyp];
  if (process.env.npm_execpath)
    candidates.push(join(dirname(process.env.npm_execpath), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  const prefix = dirname(dirname(process.execPath));
  candidates.push(join(prefix, "lib", "node_modules", "npm", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  const npm = onPath("npm");
  if (npm !== undefined)
    candidates.push(join(dirname(realpathSync(npm)), "..", "node_modules", "node-gyp", "bin", "node-gyp.js"));
  return candidates.find((c) => c && existsSync(c));
}

/** The folder the addon goes to, or why it cannot. */
function destination() {
  if (prebuilt) return join(root, "prebuilds", PREBUILT_PLATFORM);
  return options.out !== undefined ? resolve(options.out) : join(here, "build", "Release");
}

/** Whether `dir` (or the nearest folder above it that exists) can be written. */
function writable(dir) {
  let d = dir;
  while (!existsSync(d) && dirname(d) !== d) d = dirname(d);
  try {
    accessSync(d, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

// Everything missing is named at once.
const problems = [];
const platform = `${process.platform}-${process.arch}`;
if (process.platform !== "linux")
  problems.push(`building the CUDA addon is supported on Linux only (this is ${platform})`);
if (prebuilt && platform !== PREBUILT_PLATFORM)
  problems.push(
    `the package ships the ${PREBUILT_PLATFORM} addon: pack it on ${PREBUILT_PLATFORM} (this is ${platform})`,
  );
const cuda = findCuda();
if (cuda === undefined) {
  problems.push(
    "nvcc not found: no CUDA toolkit (bin/nvcc, include/cuda_runtime.h and libcudart_static.a) on PATH, in " +
      "$CUDA_HOME or in /usr/local/cuda; install the toolkit, or set CUDA_HOME to its folder",
  );
}
const node = findNodeDir();
if (node.dir === undefined) {
  problems.push(
    `Node's headers not found (no include/node/node_api.h and common.gypi under ${node.tried}); pass ` +
      "--nodedir=DIR with a folder that has them, such as an unpacked node-vX.Y.Z-headers.tar.gz from nodejs.org " +
      "(nothing is downloaded)",
  );
}
const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) problems.push("node-gyp not found (it comes with npm)");
if (process.env.PYTHON === undefined && onPath("python3") === undefined && onPath("python") === undefined)
  problems.push("Python 3 not found (node-gyp runs gyp with it; or set $PYTHON)");
if (onPath("make") === undefined) problems.push("make not found");
const cxx = (process.env.CXX ?? "g++").trim().split(/\s+/)[0];
if (onPath(cxx) === undefined) problems.push(`no C++ compiler: ${cxx} not found (nvcc needs one too; or set $CXX)`);
const out = destination();
if (!writable(out))
  problems.push(
    `${out} is not writable (a package installed by another user?): run as its owner, or pass --out DIR and load ` +
      "the result with GRPO_ROC_CUDA_ADDON=DIR/grpo_roc_cuda.node",
  );
if (problems.length > 0) fail(problems.join("; "));

const nvccVersion = spawnSync(cuda.nvcc, ["--version"], { encoding: "utf8" }).stdout ?? "";
const version = /release (\d+\.\d+)/.exec(nvccVersion)?.[1] ?? "?";

// A fresh copy of what binding.gyp reads, in a temporary folder, built there.
const scratch = mkdtempSync(join(tmpdir(), "grpo-roc-cuda-"));
process.on("exit", () => rmSync(scratch, { recursive: true, force: true }));
copyFileSync(join(here, "binding.gyp"), join(scratch, "binding.gyp"));
cpSync(join(here, "src"), join(scratch, "src"), { recursive: true });

const command = [process.execPath, nodeGyp, "rebuild", `--nodedir=${node.dir}`];
const env = {
  ...process.env,
  GRPO_ROC_CUDA_HOME: cuda.home,
  GRPO_ROC_CUDA_LIB: cuda.lib,
  GRPO_ROC_CUDA_ARCHS: archs.names,
  GRPO_ROC_CUDA_GENCODE: archs.gencode,
};
if (!prebuilt) {
  console.log(
    `grpo-roc: building the CUDA addon with nvcc ${version} (${cuda.home}) for ${archs.names}, Node's headers from ` +
      `${node.dir}:\n  ${command.join(" ")}   (in a temporary copy of ${here})`,
  );
}
const result = spawnSync(command[0], command.slice(1), {
  cwd: scratch,
  encoding: "utf8",
  env,
  maxBuffer: 64 * 2 ** 20,
});
const log = `${command.join(" ")}\n${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`;
const built = join(scratch, "build", "Release", ADDON);
const logFile = prebuilt ? join(here, "build", "prebuilt.log") : join(out, "build.log");
if (result.status !== 0 || !existsSync(built)) {
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, log);
  // The compiler's own words, so that a CI log shows what broke.
  const tail = log
    .split("\n")
    .filter((line) => !line.startsWith("gyp info"))
    .slice(-40)
    .join("\n");
  console.error(tail);
  fail(`node-gyp failed (exit ${result.status ?? result.signal}); the whole log: ${logFile}`);
}

// The result into its place: a new file renamed over the old one.
if (prebuilt) rmSync(join(root, "prebuilds"), { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const temporary = join(out, `.${ADDON}.${process.pid}`);
copyFileSync(built, temporary);
renameSync(temporary, join(out, ADDON));
const warnings = log.match(/warning/gi)?.length ?? 0;
if (warnings > 0) {
  mkdirSync(dirname(logFile), { recursive: true });
  writeFileSync(logFile, log);
} else rmSync(logFile, { force: true });
// The status file of the build.mjs before this one (native/build/status.json) is not this addon's.
if (!prebuilt && options.out === undefined) rmSync(join(here, "build", "status.json"), { force: true });

const reason = `${prebuilt ? "prebuilt" : "built"} with nvcc ${version} for ${archs.names}, CUDA runtime linked statically`;
// The prebuilt's status holds nothing of the machine that packed it (no paths, no date): the same sources and
// toolkit give the same package.
// The C library of the machine that built it: the oldest one the addon loads with (static libstdc++ and libgcc
// reference its newest symbols), which the backend names when the addon does not load for that reason.
const glibc = process.report?.getReport?.().header?.glibcVersionRuntime;
const status = prebuilt
  ? { built: true, reason, cudaVersion: version, architectures: archs.names, platform, napi: 8, glibc }
  : {
      built: true,
      reason,
      cudaVersion: version,
      architectures: archs.names,
      platform,
      napi: 8,
      glibc,
      nvcc: cuda.nvcc,
      cudaHome: cuda.home,
      nodeDir: node.dir,
      node: process.version,
      date: new Date().toISOString(),
      seconds: (Date.now() - started) / 1000,
    };
writeFileSync(join(out, "status.json"), `${JSON.stringify(status, null, 2)}\n`);
const seconds = ((Date.now() - started) / 1000).toFixed(1);
const where = relative(process.cwd(), join(out, ADDON)) || join(out, ADDON);
console.log(
  `grpo-roc: ${reason}: ${where.startsWith("..") ? join(out, ADDON) : where} in ${seconds} s` +
    (warnings > 0 ? ` (${warnings} compiler warnings: ${logFile})` : ""),
);
