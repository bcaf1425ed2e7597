/**
 * bench/gpu/run-on-gpu.sh is what a GPU session runs, once and unattended, on a machine with no Node: it must
 * build the standalone grpo_roc_bench, run what it can, write "not run" with the reason for what it cannot, and
 * leave a summary even when its deadline cuts it short. On this machine (no GPU) it runs end to end: the build is
 * real, every GPU step reports why it did not run, and the built binary's self-check passes on the host executor.
 *
 * The end-to-end run needs nvcc (skipped with the reason otherwise; with CI set nvcc must be there, as for the
 * addon). The deadline test needs nothing.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { inCi } from "./conformance/targets.js";

const nvcc = spawnSync("bash", ["-c", "command -v nvcc || ls /usr/local/cuda/bin/nvcc"], {
  encoding: "utf8",
}).stdout.trim();
const hasGpu = spawnSync("nvidia-smi", ["-L"], { encoding: "utf8" }).status === 0;

function runScript(env: Record<string, string>) {
  const out = mkdtempSync(path.join(os.tmpdir(), "grpo-roc-gpu-script-"));
  // No Node for the script (as on the GPU machine): it must not start the conformance suite from inside this test.
  const run = spawnSync("bash", ["bench/gpu/run-on-gpu.sh", out], {
    encoding: "utf8",
    env: { ...process.env, NODE: "/nonexistent/node", ...env },
    timeout: 280_000,
  });
  const json = (name: string) => JSON.parse(readFileSync(path.join(out, name), "utf8")) as Record<string, unknown>;
  return { run, out, json, text: (name: string) => readFileSync(path.join(out, name), "utf8") };
}

describe("bench/gpu/run-on-gpu.sh", () => {
  it.runIf((nvcc !== "" || inCi) && !hasGpu)(
    `without a GPU: builds, says why each GPU step did not run, and leaves the summary${nvcc === "" ? " (skipped: no nvcc)" : ""}`,
    () => {
      const { run, out, json, text } = runScript({ GRPO_ROC_BENCH_SHAPE: "2 8 100", GRPO_ROC_BENCH_ITERATIONS: "1" });
      expect(run.status, run.stdout + run.stderr).toBe(1);
      expect(text("build.log")).not.toMatch(/error|warning/i);
      const binary = "native/build/bench/grpo_roc_bench";
      expect(existsSync(binary)).toBe(true);
      for (const file of ["check.json", "grpo-roc-float32.json", "grpo-roc-bfloat16.json"]) {
        expect(json(file).ok, file).toBe(false);
        expect(String(json(file).reason), file).toMatch(/^no CUDA device: cudaErrorInsufficientDriver/);
      }
      for (const file of ["torch-float32.json", "torch-bfloat16.json"]) expect(json(file).ok, file).toBe(false);
      const summary = text("summary.md");
      expect(summary).toMatch(/^\| float32 \| no device \| not run: no CUDA device/m);
      expect(summary).toMatch(/^\| bfloat16 \| no device \| not run: no CUDA device/m);
      expect(summary).toMatch(/^\| self-check on the GPU .*\| not run: no CUDA device/m);
      expect(text("run.log")).toMatch(/conformance on the GPU not run: needs a Node binary/);
      expect(text("run.log")).toMatch(/done in \d+ s, status 1/);

      // The binary's self-check on the host executor: the same cases, the kernels' code on the CPU.
      const check = spawnSync(binary, ["--check", "host", "--json", path.join(out, "host-check.json")], {
        encoding: "utf8",
      });
      expect(check.status, check.stdout + check.stderr).toBe(0);
      const report = json("host-check.json") as { ok: boolean; cases: { ok: boolean }[] };
      expect(report.ok).toBe(true);
      expect(report.cases.length).toBeGreaterThan(40);
      expect(check.stdout).toMatch(/grpo_roc_bench --check on the CPU \(host executor\): \d+ cases, 0 failed/);
    },
    300_000,
  );

  it("past its deadline: runs no step, says so for each, and still writes the summary", () => {
    const { run, text } = runScript({ GRPO_ROC_GPU_DEADLINE: "10", NVCC: "/nonexistent/nvcc" });
    expect(run.status).toBe(1);
    const log = text("run.log");
    for (const step of ["build", "PyTorch float32", "PyTorch bfloat16"]) {
      expect(log).toContain(`${step}: not run (the run's 10 s deadline is`);
    }
    expect(text("summary.md")).toMatch(/^\| float32 \| no device \| not run: no result/m);
    expect(text("summary.md")).toMatch(/self-check on the GPU .*\| not run: no result/);
  });
});
