/**
 * cudaSelfCheck (src/cuda/self-check.ts → native/src/self_check.cc): the addon checks its own kernels against
 * float64 where they run.
 *
 * - On the host executor (the addon built, no GPU needed): every case passes, both dtypes and every kind of case
 *   are there, and each case compared something. These are the kernels' own per-thread code against an
 *   independent float64 computation, so a wrong kernel fails here (changing the entropy by 1e-4 relative, or the
 *   token's gradient when its logit is -Infinity, fails most of the cases). Logits near the float32 range (3e38,
 *   ±1e30, at temperatures 0.5 to 2) are among them, and a backward pass's own checks of the logits it reads under
 *   saved statistics (NaN, +Infinity, −Infinity only, changed logits).
 * - On the GPU, when there is one: the same cases plus the loss kernels against the host executor. Without a GPU
 *   that part is skipped with the probe's reason, and asking for it rejects with CudaUnavailableError.
 *
 * Skipped, with the reason, when the addon is not built; with CI set it must be built (see conformance/cuda.test.ts).
 */
import { describe, expect, it } from "vitest";
import { createCudaBackend, cudaSelfCheck, CudaUnavailableError, loadCudaAddon } from "../src/cuda/index.js";
import { inCi } from "./conformance/targets.js";

const addon = loadCudaAddon();
const device = await createCudaBackend().probe();
const addonMissing = addon.loaded ? "" : ` (skipped: ${addon.reason})`;

describe("cudaSelfCheck on the host executor", () => {
  it.runIf(addon.loaded || inCi)(`passes every case, float32 and bfloat16${addonMissing}`, async () => {
    const report = await cudaSelfCheck({ exec: "host" });
    const failed = report.cases.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
    expect(failed).toEqual([]);
    expect(report.ok).toBe(true);
    expect(report.exec).toBe("host");
    for (const c of report.cases) {
      expect(c.compared, c.name).toBeGreaterThan(0);
      expect(c.worst, c.name).toBeLessThanOrEqual(1);
    }
    const names = report.cases.map((c) => c.name);
    for (const kind of [
      "forward, ",
      "backward, ",
      "backward, saved statistics, entropy gradient, ",
      "forward, special rows, ",
      "fused, ",
    ]) {
      for (const dtype of ["float32", "bfloat16"]) {
        expect(
          names.some((n) => n.startsWith(kind) && n.endsWith(dtype)),
          `${kind}… ${dtype}`,
        ).toBe(true);
      }
    }
    expect(names.filter((n) => n.startsWith("backward, widened to float32, ")).length).toBeGreaterThan(0);
    for (const dtype of ["float32", "bfloat16"]) {
      for (const temperature of [1, 0.5, 2]) {
        const where = `logits near the float32 range, temperature ${temperature}, ${dtype}`;
        for (const kind of ["forward, ", "backward, ", "backward, saved statistics, "])
          expect(names, `${kind}${where}`).toContain(`${kind}${where}`);
      }
    }
    expect(names).toContain("backward, saved statistics, its checks of the logits it reads");
    expect(names.filter((n) => n.includes("stops it")).length).toBe(4);
    // The loss kernels are compared with the host executor, so only on the device.
    expect(names.some((n) => n.startsWith("policy loss"))).toBe(false);
  });

  it("rejects an exec it does not know, naming the option", async () => {
    await expect(cudaSelfCheck({ exec: "gpu" as "device" })).rejects.toThrow(
      /options\.exec.*expected "device" or "host", got "gpu"/,
    );
  });

  it("without the addon: CudaUnavailableError with the reason", async () => {
    const missing = "/nonexistent/grpo_roc_cuda.node";
    await expect(cudaSelfCheck({ exec: "host", addonPath: missing })).rejects.toBeInstanceOf(CudaUnavailableError);
    await expect(cudaSelfCheck({ exec: "host", addonPath: missing })).rejects.toThrow(/not built/);
  });
});

describe("cudaSelfCheck on the GPU", () => {
  it.runIf(addon.loaded && !device.available)(
    `without a device it rejects with the probe's reason (${device.reason})`,
    async () => {
      await expect(cudaSelfCheck()).rejects.toBeInstanceOf(CudaUnavailableError);
      await expect(cudaSelfCheck()).rejects.toThrow(device.reason);
    },
  );

  it.runIf(device.available)(
    `passes every case, the loss kernels against the host executor too (${device.reason})`,
    async () => {
      const report = await cudaSelfCheck();
      const failed = report.cases.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);
      expect(failed).toEqual([]);
      expect(report.exec).toBe("device");
      expect(report.cases.filter((c) => c.name.startsWith("policy loss")).length).toBe(16);
    },
  );
});
