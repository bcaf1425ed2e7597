#!/usr/bin/env node
// Builds the optional CUDA addon (native/build/Release/grpo_roc_cuda.node) with node-gyp and nvcc.
//
//   node native/build.mjs            the package's `install` script: builds when nvcc, the CUDA runtime, Node's
//                                    headers and node-gyp are all here; otherwise prints one line saying why and
//                                    exits 0. It never fails an install and never downloads anything.
//   node native/build.mjs --force    `npm run build:cuda`: the same, but a failure exits 1, and it always rebuilds.
//
// Either way it writes native/build/status.json ({ built, reason, fingerprint, ... }): the cuda backend's probe()
// reads it to say why the addon is missing. Without --force, a build is skipped when status.json says the addon
// was built with the same fingerprint (a hash of native/'s sources, binding.gyp and this script, `nvcc --version`,
// the CUDA folders, and Node's ABI) and the addon file is there: `npm ci` in this repository runs the install
// script twice (once for the package, once for its own `"grpo-roc": "file:."` dev dependency), and the second run
// then costs a hash instead of a second nvcc build. Runs at the same time wait for each other (a lock in the OS's
// temporary folder). Only Node built-ins are used: this runs before devDependencies exist.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const buildDir = join(here, "build");
const force = process.argv.includes("--force");
const started = Date.now();

/** The one line the install log shows, and the status the backend reads. */
function finish(built, reason, details = {}) {
  mkdirSync(buildDir, { recursive: true });
  // A previous build's addon must not outlive a run that says "not built".
  if (!built) rmSync(join(buildDir, "Release"), { recursive: true, force: true });
  const status = {
    built,
    reason,
    node: process.version,
    napi: process.versions.napi,
    date: new Date().toISOString(),
    ...details,
  };
  writeFileSync(join(buildDir, "status.json"), `${JSON.stringify(status, null, 2)}\n`);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  if (built) console.log(`grpo-roc: built the CUDA addon in ${seconds} s (${reason})`);
  else
    console.log(
      `grpo-roc: CUDA addon not built: ${reason}. The cuda backend will report itself unavailable; everything else works.`,
    );
  process.exit(!built && force ? 1 : 0);
}

if (/^(1|true|yes)$/i.test(process.env.GRPO_ROC_SKIP_CUDA ?? "")) finish(false, "skipped (GRPO_ROC_SKIP_CUDA is set)");

/** An executable named `name` on PATH. */
function onPath(name) {
  for (const dir of (process.env.PATH ?? "").split(delimiter)) {
    if (dir !== "" && existsSync(join(dir, name))) return join(dir, name);
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

/** Node's own headers (include/node/node_api.h and common.gypi), so node-gyp needs no download. */
function findNodeDir() {
  const candidates = [process.env.npm_config_nodedir, dirname(dirname(process.execPath))];
  return candidates.find(
    (d) =>
      d &&
      existsSync(join(d, "include", "node", "node_api.h")) &&
      existsSync(join(d, "include", "node", "common.gypi")),
  );
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

const cuda = findCuda();
if (cuda === undefined) {
  finish(false, "nvcc not found at install (no CUDA toolkit on PATH, in $CUDA_HOME or in /usr/local/cuda)", {
    missing: "nvcc",
  });
}
const nodeDir = findNodeDir();
if (nodeDir === undefined) {
  finish(
    false,
    `Node's headers not found (no include/node/node_api.h under ${dirname(dirname(process.execPath))}; set npm_config_nodedir)`,
    {
      missing: "node-headers",
    },
  );
}
const nodeGyp = findNodeGyp();
if (nodeGyp === undefined) finish(false, "node-gyp not found (it comes with npm)", { missing: "node-gyp" });

const nvccVersion = spawnSync(cuda.nvcc, ["--version"], { encoding: "utf8" }).stdout ?? "";
const version = /release (\d+\.\d+)/.exec(nvccVersion)?.[1] ?? "?";

/** What the addon is built from: when this is unchanged, so is the addon. */
function fingerprint() {
  const hash = createHash("sha256");
  const add = (label, value) => hash.update(`${label}\0${value}\0`);
  const files = [join(here, "binding.gyp"), join(here, "build.mjs")];
  const walk = (dir) => {
    for (const entry of readdirSync(dir).sort()) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(join(here, "src"));
  for (const file of files) {
    add("file", file.slice(here.length));
    hash.update(readFileSync(file));
  }
  add("nvcc", nvccVersion);
  add("cuda", `${cuda.home}\0${cuda.lib}`);
  add(
    "node",
    `${process.versions.modules}\0${process.versions.napi}\0${process.platform}\0${process.arch}\0${nodeDir}`,
  );
  return hash.digest("hex");
}

const addon = join(buildDir, "Release", "grpo_roc_cuda.node");

/** The status file of the last build, if it is readable. */
function lastStatus() {
  try {
    return JSON.parse(readFileSync(join(buildDir, "status.json"), "utf8"));
  } catch {
    return undefined;
  }
}

/** One build at a time for this folder: a directory lock in the temporary folder (mkdir is atomic). */
function lock() {
  const path = join(
    tmpdir(),
    `grpo-roc-cuda-build-${createHash("sha256").update(here).digest("hex").slice(0, 16)}.lock`,
  );
  const deadline = Date.now() + 15 * 60_000;
  const nap = new Int32Array(new SharedArrayBuffer(4));
  for (;;) {
    try {
      mkdirSync(path);
      process.on("exit", () => rmSync(path, { recursive: true, force: true }));
      return;
    } catch (error) {
      if (error?.code !== "EEXIST") return; // No lock possible (read-only tmp): build unlocked, as before.
      let age = 0;
      try {
        age = Date.now() - statSync(path).mtimeMs;
      } catch {
        continue; // Released in between: try again.
      }
      // A lock left by a killed build (a build takes ~10-60 s).
      if (age > 15 * 60_000 || Date.now() > deadline) {
        rmSync(path, { recursive: true, force: true });
        continue;
      }
      Atomics.wait(nap, 0, 0, 500);
    }
  }
}

lock();
const print = fingerprint();
const previous = lastStatus();
if (!force && previous?.built === true && previous.fingerprint === print && existsSync(addon)) {
  console.log(
    `grpo-roc: the CUDA addon is already built from these sources (nvcc ${version}, Node ABI ${process.versions.modules}; ` +
      `native/build/status.json); not rebuilding (node native/build.mjs --force rebuilds)`,
  );
  process.exit(0);
}

const result = spawnSync(process.execPath, [nodeGyp, "rebuild", `--nodedir=${nodeDir}`], {
  cwd: here,
  encoding: "utf8",
  env: { ...process.env, GRPO_ROC_CUDA_HOME: cuda.home, GRPO_ROC_CUDA_LIB: cuda.lib },
  maxBuffer: 64 * 2 ** 20,
});
const log = `${result.stdout ?? ""}${result.stderr ?? ""}${result.error ? String(result.error) : ""}`;
mkdirSync(buildDir, { recursive: true });
writeFileSync(join(buildDir, "build.log"), log);
const details = {
  nvcc: cuda.nvcc,
  cudaVersion: version,
  cudaHome: cuda.home,
  nodeDir,
  seconds: (Date.now() - started) / 1000,
  fingerprint: print,
};
if (result.status !== 0 || !existsSync(addon)) {
  // The compiler's own words, so that a CI log shows what broke.
  const tail = log
    .split("\n")
    .filter((line) => !line.startsWith("gyp info"))
    .slice(-40)
    .join("\n");
  console.error(tail);
  finish(false, `node-gyp failed (exit ${result.status ?? result.signal}); log: native/build/build.log`, details);
}
const warnings = readFileSync(join(buildDir, "build.log"), "utf8").match(/warning/gi)?.length ?? 0;
finish(
  true,
  `nvcc ${version} from ${cuda.home}, sm_80 sm_90 + compute_90 PTX${warnings > 0 ? `, ${warnings} compiler warnings in native/build/build.log` : ""}`,
  details,
);
