/**
 * The conformance suite (./suite.ts) on the cuda backend, twice:
 *
 *   cuda        the GPU. Runs when a CUDA device is present; otherwise skipped with the probe's reason.
 *   cuda@host   the same addon's host executor: the kernels' own per-thread code (grpo_math.h) run on the CPU,
 *               every emulated thread of every block, reduced in the GPU's order, with small chunks. It needs the
 *               addon built (nvcc), not a GPU, so CI runs the whole suite on it.
 *
 * The CI rule for the GPU target: with CI set, the addon must have been built and must load (CI machines have
 * nvcc, and `npm ci` runs the install script that builds it); then either a device is present and the whole
 * suite runs on it, or the probe must say "no CUDA device" with the CUDA runtime's error.
 */
import { describe, expect, it } from "vitest";
import { deviceReason, type DeviceProbe } from "../../src/cuda/addon.js";
import { loadCudaAddon } from "../../src/cuda/index.js";
import { insufficientDriverProbe } from "../helpers/cuda-probe.js";
import { defineConformanceSuite } from "./suite.js";
import { inCi, prepareTarget } from "./targets.js";

const device = await prepareTarget("cuda");
const host = await prepareTarget("cuda@host");

describe("cuda: the addon on this machine", () => {
  it.skipIf(!inCi)("CI: the install step built the addon and it loads (nvcc is on CI machines)", () => {
    const state = loadCudaAddon();
    const why = state.loaded ? "" : `${state.reason} (status: ${JSON.stringify(state.status)})`;
    expect(state.loaded, `the CUDA addon is not usable: ${why}`).toBe(true);
    expect(state.status?.built, "native/build/status.json says it was built").toBe(true);
  });

  it.skipIf(!inCi || device.available)(
    "CI without a GPU: the probe says no CUDA device, with the CUDA runtime's error",
    () => {
      expect(device.reason).toMatch(/^no CUDA device: cuda[A-Za-z]+ \(.+\) from cuda[A-Za-z]+/);
    },
  );

  it(`reports what it found: ${device.available ? "a device" : "no device"} (${device.reason})`, () => {
    expect(device.reason.length).toBeGreaterThan(0);
  });
});

describe("cuda: the probe's reasons", () => {
  const failed: DeviceProbe = insufficientDriverProbe({ runtimeVersion: 13000, driverVersion: 0 });

  it("cudaErrorInsufficientDriver without a driver (cudaDriverGetVersion 0) is 'no CUDA device'", () => {
    expect(deviceReason(failed, "sm_90")).toBe(
      "no CUDA device: cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version) from cudaGetDeviceCount; " +
        "no NVIDIA driver is installed (cudaDriverGetVersion reports 0)",
    );
  });

  it("cudaErrorInsufficientDriver with an older driver is 'CUDA driver too old (driver X, runtime Y)'", () => {
    const reason = deviceReason({ ...failed, driverVersion: 12020 }, "sm_90");
    expect(reason).toMatch(
      /^CUDA driver too old \(driver 12\.2, runtime 13\.0; update the NVIDIA driver\): cudaErrorInsufficientDriver /,
    );
    expect(reason).not.toMatch(/no CUDA device/);
  });

  it("no device with a driver present, and a device without a kernel image, keep their own words", () => {
    const none = {
      ...failed,
      errorName: "cudaErrorNoDevice",
      errorString: "no CUDA-capable device is detected",
      driverVersion: 13000,
    };
    expect(deviceReason(none, "sm_90")).toBe(
      "no CUDA device: cudaErrorNoDevice (no CUDA-capable device is detected) from cudaGetDeviceCount",
    );
    const old = {
      ...none,
      errorName: "cudaErrorNoKernelImageForDevice",
      errorString: "no kernel image",
      failedCall: "cudaFuncGetAttributes",
      name: "Tesla V100",
      major: 7,
    };
    expect(deviceReason(old, "sm_80 sm_90 compute_90")).toMatch(
      /^no CUDA device this build can run on: Tesla V100 \(sm_70\) has no kernel image among sm_80 sm_90 compute_90/,
    );
  });

  it(`this machine's probe says which of them it is (${device.reason})`, () => {
    expect(device.reason).toMatch(/^(no CUDA device|CUDA driver too old|not built|built but cannot load|CUDA on )/);
  });
});

const addonState = loadCudaAddon();
describe.skipIf(!addonState.loaded)(
  `cuda: the addon checks token ids itself (a direct call cannot read outside a row)${
    addonState.loaded ? "" : ` — skipped: ${addonState.reason}`
  }`,
  () => {
    const state = loadCudaAddon();
    const addon = state.loaded ? state.addon : undefined;
    const [positions, vocab] = [3, 7];
    const call = (tokens: number[], active = [1, 1, 1]) =>
      addon!.forward({
        exec: "host",
        logits: new Float32Array(positions * vocab),
        positions,
        vocab,
        tokens: Int32Array.from(tokens),
        active: Uint8Array.from(active),
        outLogp: new Float64Array(positions),
        outLse: new Float64Array(positions),
      });

    it.each([
      [[0, 7, 1], /tokens\[1\]: id 7 is outside \[0, 7\)/],
      [[0, 1, -1], /tokens\[2\]: id -1 is outside \[0, 7\)/],
    ])("forward with tokens %j throws an argument error", (tokens, message) => {
      let error: unknown;
      try {
        void call(tokens);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error & { code?: string }).code).toBe("ERR_GRPO_ROC_CUDA_ARGUMENT");
      expect((error as Error).message).toMatch(message);
    });

    it("backward and the fused pass check them too; an id where nothing is read (active / mask 0) is not checked", async () => {
      const common = {
        exec: "host",
        logits: new Float32Array(positions * vocab),
        positions,
        vocab,
        tokens: Int32Array.from([0, 99, 2]),
      };
      expect(() =>
        addon!.backward({
          ...common,
          active: Uint8Array.from([1, 1, 1]),
          gradLogp: new Float64Array(positions),
          grad: new Float32Array(positions * vocab),
        }),
      ).toThrow(/tokens\[1\]: id 99 is outside/);
      const loss = {
        rows: 1,
        cols: positions,
        rowTokens: Int32Array.from([3]),
        rowWeights: Float64Array.from([1 / 3]),
        advantages: Float64Array.from([1]),
        outLogp: new Float64Array(positions),
        outLse: new Float64Array(positions),
        outLoss: new Float64Array(positions),
        outGrad: new Float64Array(positions),
        outRatio: new Float64Array(positions),
        outApprox: new Float64Array(positions),
        outFlags: new Uint8Array(positions),
        grad: new Float32Array(positions * vocab),
      };
      expect(() => addon!.fused({ ...common, ...loss, mask: Uint8Array.from([1, 1, 1]) })).toThrow(
        /tokens\[1\]: id 99 is outside/,
      );
      // Skipped positions: the id is never read, so it is not checked (padding ids such as −1 or 99 are fine).
      await call([0, 99, -1], [1, 0, 0]);
      const result = await addon!.fused({
        ...common,
        ...loss,
        rowTokens: Int32Array.from([2]),
        mask: Uint8Array.from([1, 0, 1]),
      });
      expect(result.stop).toBe(0);
    });
  },
);

if (device.available) {
  defineConformanceSuite(device);
} else {
  describe(`cuda (GPU) — conformance skipped: ${device.reason}`, () => {
    it.skip("needs a CUDA device", () => {});
  });
}

defineConformanceSuite(host);
