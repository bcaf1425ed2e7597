/**
 * The closing summary of skipped tests (test/helpers/skip-summary.ts, the reporter vitest.config.ts registers):
 * reasons found in the titles this suite really uses, grouped, and the install command only where it helps.
 */
import { describe, expect, it } from "vitest";
import { groupSkips, INSTALL_COMMAND, skipReason, skipSummary, type SkippedTest } from "./helpers/skip-summary.js";

const VULKAN =
  "no WebGPU adapter: Dawn found no usable Vulkan driver (on Debian 12 install mesa-vulkan-drivers from bookworm-backports)";
const NO_DEVICE =
  "no CUDA device: cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version) " +
  "from cudaGetDeviceCount; no NVIDIA driver is installed (cudaDriverGetVersion reports 0)";
const JUPYTER =
  "Jupyter's Python packages are missing (ModuleNotFoundError: No module named 'nbclient'): apt-get install " +
  "python3-nbclient python3-nbformat python3-jupyter-client python3-ipykernel";

const webgpuSuite = (n: number): SkippedTest[] =>
  Array.from({ length: n }, (_, k) => ({
    file: k % 2 ? "test/conformance/webgpu.test.ts" : "test/hostile/webgpu.test.ts",
    titles: [`webgpu — skipped: ${VULKAN}`, "policyLoss", `random case ${k}`],
  }));

describe("skipReason", () => {
  it("finds the reason in an enclosing describe's title (— skipped: …)", () => {
    expect(skipReason(webgpuSuite(1)[0]!)).toEqual({ reason: VULKAN, need: "vulkan" });
  });

  it("takes the reason out of '(skipped: …)', keeping its own parentheses", () => {
    const title =
      "passes every case, float32 and bfloat16 (skipped: not built: this copy of grpo-roc holds no prebuilt addon " +
      "(a source checkout, or a package packed without CUDA))";
    expect(skipReason({ file: "test/cuda-self-check.test.ts", titles: ["cudaSelfCheck", title] })).toEqual({
      reason:
        "not built: this copy of grpo-roc holds no prebuilt addon (a source checkout, or a package packed without CUDA)",
      need: "cuda-addon",
    });
    expect(
      skipReason({
        file: "test/python-example.test.ts",
        titles: ["examples/python/trainer.py (skipped: no python3 3.9+ found)", "--mode paper"],
      }),
    ).toEqual({ reason: "no python3 3.9+ found", need: "python" });
  });

  it("prefers context.skip's note, then the test's own title, to an enclosing title", () => {
    const browser = "browser example in headless Chromium (/usr/bin/chromium)";
    expect(
      skipReason({
        file: "b",
        titles: [browser, "policyLoss on WebGPU"],
        note: "no WebGPU in this Chromium: no adapter",
      }),
    ).toEqual({ reason: "no WebGPU in this Chromium: no adapter", need: "chromium" });
    expect(skipReason({ file: "n", titles: ["executing the notebooks", `skipped: ${JUPYTER}`] })).toEqual({
      reason: JUPYTER,
      need: "jupyter",
    });
    expect(
      skipReason({ file: "c", titles: [`cuda (GPU) — conformance skipped: ${NO_DEVICE}`, "needs a CUDA device"] }),
    ).toEqual({ reason: NO_DEVICE, need: "gpu" });
  });

  it("checks that run only with CI set, a probe's reason in parentheses, and titles with no reason", () => {
    expect(
      skipReason({
        file: "b",
        titles: ["browser example: availability", "Chromium is installed (required when CI is set)"],
      }).need,
    ).toBe("ci");
    expect(
      skipReason({ file: "c", titles: ["cuda: the addon", "CI: the install step built the addon and it loads"] }).need,
    ).toBe("ci");
    expect(
      skipReason({
        file: "s",
        titles: ["cudaSelfCheck on the GPU", `passes every case, the loss kernels too (${NO_DEVICE})`],
      }),
    ).toEqual({ reason: NO_DEVICE, need: "gpu" });
    expect(
      skipReason({ file: "test/cli.test.ts", titles: ["the CLI", "the batch std from a named pipe (<(zcat ...))"] }),
    ).toEqual({ reason: "no reason in the title", need: "other" });
    expect(skipReason({ file: "t", titles: ["later"], mode: "todo" })).toEqual({ reason: "todo", need: "other" });
  });
});

describe("groupSkips and skipSummary", () => {
  const tests: SkippedTest[] = [
    ...webgpuSuite(5),
    { file: "test/notebooks.test.ts", titles: ["executing the notebooks", `skipped: ${JUPYTER}`] },
    {
      file: "test/conformance/cuda.test.ts",
      titles: [`cuda (GPU) — conformance skipped: ${NO_DEVICE}`, "needs a CUDA device"],
    },
    { file: "test/cuda-bfloat16.test.ts", titles: [`bfloat16 logits on cuda — skipped: ${NO_DEVICE}`, "a", "b"] },
    { file: "test/cli.test.ts", titles: ["the CLI", "the batch std from a named pipe (<(zcat ...))"] },
  ];

  it("groups identical reasons, largest first, with their files", () => {
    const groups = groupSkips(tests);
    expect(groups.map((g) => [g.count, g.need, g.files.length])).toEqual([
      [5, "vulkan", 2],
      [2, "gpu", 2],
      [1, "jupyter", 1],
      [1, "other", 1],
    ]);
  });

  it("prints the count, one line a reason, the install command and what it cannot install; short", () => {
    const lines = skipSummary(tests, 40);
    expect(lines[0]).toBe("Skipped 9 of 40 tests (23%), by reason:");
    expect(lines[1]).toMatch(
      /^ {2}5 {2}no WebGPU adapter: .*… {2}\[test\/conformance\/webgpu\.test\.ts, test\/hostile\/webgpu\.test\.ts\]$/,
    );
    expect(lines).toContain(`  ${INSTALL_COMMAND} && npm test`);
    expect(lines.join("\n")).toMatch(
      /^6 of them need a Vulkan driver \(Mesa ≥ 23\), Jupyter's Python packages: to install them/m,
    );
    expect(lines.join("\n")).toContain("2 tests need an NVIDIA GPU: cannot be installed.");
    expect(lines.join("\n")).not.toMatch(/CUDA addon|CI set/);
    expect(lines.length).toBeLessThanOrEqual(20);
  });

  it("folds the smallest groups into one line past maxGroups, and says so in one line when nothing was skipped", () => {
    const many = Array.from({ length: 30 }, (_, k) => ({ file: "f", titles: [`t (skipped: reason ${k})`] }));
    const lines = skipSummary(many, 30, { maxGroups: 8 });
    expect(lines).toContain("  22 more reasons (22 tests)");
    expect(lines.length).toBeLessThanOrEqual(20);
    expect(lines.join("\n")).not.toContain(INSTALL_COMMAND);
    expect(skipSummary([], 2562)).toEqual(["Skipped: none, all 2562 tests ran."]);
  });
});
