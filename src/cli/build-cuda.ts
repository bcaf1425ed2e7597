/**
 * `grpo-roc build-cuda`: rebuilds the CUDA addon from the sources the package ships, with the CUDA toolkit found
 * here, by running the package's native/build.mjs in a child Node (which prints the command it runs, and why it
 * cannot build when it cannot). Not a command over rollouts: it reads no input and writes no records.
 */
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../cuda/addon.js";
import { wrap } from "./args.js";
import { EXIT } from "./exit.js";
import { writeMessage } from "./terminal.js";

export const BUILD_CUDA_SUMMARY =
  "Rebuild the CUDA addon (grpo-roc/cuda) from source with the CUDA toolkit here; downloads nothing.";

export function buildCudaHelp(): string {
  return [
    "Usage: grpo-roc build-cuda [--archs LIST] [--nodedir DIR] [--out DIR]",
    "",
    wrap(BUILD_CUDA_SUMMARY, 100),
    "",
    wrap(
      "The package ships the addon prebuilt for linux-x64 (CUDA 13 runtime linked in; sm_80, sm_90 and compute_90 " +
        "PTX). Build it here for a driver too old for that runtime (with an older CUDA toolkit), for other GPUs " +
        "(--archs), or for a platform without a prebuilt. It needs nvcc (on PATH, or $CUDA_HOME), Node's headers, " +
        "Python 3, make and g++; when one is missing it says which and exits 1. The result goes into the " +
        "package's native/build/Release/, which grpo-roc/cuda loads before the prebuilt (remove that folder to go " +
        "back to the prebuilt); with --out DIR into DIR, loaded with GRPO_ROC_CUDA_ADDON=DIR/grpo_roc_cuda.node.",
      100,
    ),
    "",
    "Options:",
    '  --archs LIST    GPU code: sm_XY machine code, compute_XY PTX (default "sm_80 sm_90 compute_90")',
    "  --nodedir DIR   Node's headers (include/node/node_api.h); default: the folder Node is installed in",
    "  --out DIR       write the addon into DIR instead of the package's native/build/Release/",
    "  -h, --help      show this help",
    "",
    "Exit codes: 0 built, 1 cannot build (the reason, and the compiler's output, on stderr), 2 usage error.",
    "",
  ].join("\n");
}

/** Runs the build; its exit code. */
export function buildCuda(argv: readonly string[]): number {
  if (argv.includes("-h") || argv.includes("--help")) {
    process.stdout.write(buildCudaHelp());
    return EXIT.ok;
  }
  const script = join(packageRoot(), "native", "build.mjs");
  if (!existsSync(script)) {
    writeMessage("grpo-roc build-cuda", `${script} is missing: this copy of grpo-roc has no addon sources`);
    return 1;
  }
  const result = spawnSync(process.execPath, [script, ...argv], { stdio: "inherit" });
  if (result.error !== undefined) {
    writeMessage("grpo-roc build-cuda", `cannot run ${script}: ${result.error.message}`);
    return 1;
  }
  return result.status ?? 1;
}
