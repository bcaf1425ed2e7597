/**
 * The conformance suite (./suite.ts) on grpo-roc's own WGSL kernels (the `webgpu` backend; Dawn through the `webgpu`
 * package, lavapipe on the CI machines), twice: on the device's own limits, and with a 4 KiB binding limit so that
 * the suite's small logits are cut into many chunks. Then what is particular to this backend: logits larger than one
 * binding (147 MB against lavapipe's 128 MiB), logits and gradients left on the device, the caller's gradient buffer
 * (`into`), and device errors as exceptions.
 */
import { afterAll, describe, expect, it } from "vitest";
import { referenceBackend } from "../../src/backends/index.js";
import { lossPresets, ValidationError } from "../../src/index.js";
import { BufferUsage, MapMode, type GpuBuffer, type GpuDevice } from "../../src/webgpu/gpu.js";
import { releaseWebGpuBackend, webgpuBackend, WebGpuDeviceError } from "../../src/webgpu/index.js";
import { bigLogitsCase } from "./big-logits.js";
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";
import { expectClose, logitGradScale, tolerance } from "./tolerances.js";

const target = await prepareTarget("webgpu");
defineConformanceSuite(target);
defineConformanceSuite(await prepareTarget("webgpu@chunked"));

// dawn.node keeps the process alive while its root object and device live.
afterAll(() => releaseWebGpuBackend());

const skipTitle = (title: string) => `webgpu: ${title}${target.available ? "" : ` — skipped: ${target.reason}`}`;

async function upload(device: GpuDevice, data: Float32Array): Promise<GpuBuffer> {
  const buffer = device.createBuffer({ size: data.byteLength, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}

async function download(device: GpuDevice, source: GpuBuffer, bytes: number): Promise<Float32Array> {
  const staging = device.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(source, 0, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(MapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

describe.skipIf(!target.available)(
  skipTitle("logits over one binding (147 MB against lavapipe's 128 MiB), from the host and on the device"),
  () => {
    const big = target.available ? bigLogitsCase() : undefined;

    it("the logits are over the device's binding limit", async () => {
      const info = await webgpuBackend.probe();
      expect(big!.logits.byteLength).toBeGreaterThan(info.maxBindingBytes);
    });

    it("typed arrays are chunked: every position's logp and gradient is right, none is silently zero", async () => {
      const { logits, tokens, gradLogp, gradEntropy, shape } = big!;
      const [B, T, V] = shape;
      const input = { data: logits, shape };
      const forward = await webgpuBackend.tokenLogProbs(input, { data: tokens, shape: [B, T] }, { entropy: true });
      const grad = await webgpuBackend.tokenLogProbsBackward(
        input,
        { data: tokens, shape: [B, T] },
        {
          gradLogp: { data: gradLogp, shape: [B, T] },
          gradEntropy: { data: gradEntropy, shape: [B, T] },
        },
      );
      expect(big!.badPositions(forward)).toBe(0);
      expect(big!.badTokenGradients(forward, grad.data)).toBe(0);
      for (const i of big!.spots) {
        const ref = await referenceBackend.tokenLogProbsBackward(big!.one(i), [[tokens[i]!]], {
          gradLogp: [[gradLogp[i]!]],
          gradEntropy: [[gradEntropy[i]!]],
        });
        const refForward = await referenceBackend.tokenLogProbs(big!.one(i), [[tokens[i]!]], { entropy: true });
        const scale = logitGradScale(big!.one(i).data, V, ref.data, refForward, [gradLogp[i]!], [gradEntropy[i]!], 1);
        expectClose(
          grad.data.subarray(i * V, (i + 1) * V),
          ref.data,
          tolerance(target.dtype, "grad", scale),
          `∂L/∂logits[${i}]`,
        );
      }
    }, 240_000);

    it("logits on the device: the fused loss writes the gradient into the caller's buffer, equal to the typed-array path's", async () => {
      const { logits, tokens, shape } = big!;
      const [B, T] = shape;
      const device = await webgpuBackend.getDevice();
      const buffer = await upload(device, logits);
      const into = device.createBuffer({
        size: logits.byteLength,
        usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
      });
      try {
        const advantages = Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -0.5));
        const inputs = { tokens: { data: tokens, shape: [B, T] as [number, number] }, advantages };
        const onDevice = await webgpuBackend.policyLossFromLogitsOnDevice(
          { ...inputs, logits: { buffer, shape } },
          lossPresets.paper,
          into,
        );
        expect(onDevice.gradLogits.buffer).toBe(into);
        const fromHost = await webgpuBackend.policyLossFromLogits(
          { ...inputs, logits: { data: logits, shape } },
          lossPresets.paper,
        );
        expectClose(onDevice.loss, fromHost.loss, { rtol: 1e-6, atol: 0 }, "loss");
        const gradient = await download(device, into, logits.byteLength);
        let maxDiff = 0;
        let maxAbs = 0;
        for (let i = 0; i < gradient.length; i++) {
          maxDiff = Math.max(maxDiff, Math.abs(gradient[i]! - fromHost.gradLogits.data[i]!));
          maxAbs = Math.max(maxAbs, Math.abs(fromHost.gradLogits.data[i]!));
        }
        expect(maxAbs).toBeGreaterThan(0);
        expect(maxDiff).toBeLessThanOrEqual(1e-6 * maxAbs);
      } finally {
        buffer.destroy();
        into.destroy();
      }
    }, 240_000);
  },
);

describe.skipIf(!target.available)(skipTitle("the caller's gradient buffer (into)"), () => {
  const [B, T, V] = [2, 3, 37];
  const logits = Float32Array.from({ length: B * T * V }, (_, i) => Math.sin(i * 0.37) * 3);
  const tokens = { data: [1, 5, 36, 0, 2, 9], shape: [B, T] as [number, number] };
  // Position [0][2] is masked: its row of the gradient must come out 0 even where the buffer held something else.
  const mask = { data: [1, 1, 0, 1, 1, 1], shape: [B, T] as [number, number] };
  const inputs = {
    tokens,
    mask,
    advantages: [1, -1],
    oldLogp: { data: [-3, -3.5, -2, -4, -3, -3.2], shape: [B, T] as [number, number] },
  };

  async function withBuffers<R>(run: (device: GpuDevice, logitsBuffer: GpuBuffer) => Promise<R>): Promise<R> {
    const device = await webgpuBackend.getDevice();
    const logitsBuffer = await upload(device, logits);
    try {
      return await run(device, logitsBuffer);
    } finally {
      logitsBuffer.destroy();
    }
  }

  it("a buffer full of stale values gives exactly what a fresh one gives, masked rows included (fused and backward alone)", async () => {
    await withBuffers(async (device, buffer) => {
      const bytes = B * T * V * 4;
      const stale = device.createBuffer({
        size: bytes + 64,
        usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
      });
      try {
        for (const run of ["fused", "backward"] as const) {
          device.queue.writeBuffer(stale, 0, new Float32Array((bytes + 64) / 4).fill(Number.NaN));
          const deviceLogits = { buffer, shape: [B, T, V] as [number, number, number] };
          let fresh: { buffer: GpuBuffer };
          let reused: { buffer: GpuBuffer };
          if (run === "fused") {
            fresh = (
              await webgpuBackend.policyLossFromLogitsOnDevice(
                { ...inputs, logits: deviceLogits },
                lossPresets.reference,
              )
            ).gradLogits;
            reused = (
              await webgpuBackend.policyLossFromLogitsOnDevice(
                { ...inputs, logits: deviceLogits },
                lossPresets.reference,
                stale,
              )
            ).gradLogits;
          } else {
            const options = { mask, gradLogp: { data: [0.5, -1, 3, 0, 2, 1], shape: [B, T] as [number, number] } };
            fresh = await webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, tokens, options);
            reused = await webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, tokens, options, stale);
          }
          expect(reused.buffer).toBe(stale);
          const expected = await download(device, fresh.buffer, bytes);
          fresh.buffer.destroy();
          const actual = await download(device, stale, bytes);
          expect(Array.from(actual), run).toEqual(Array.from(expected));
          // The masked position's row, and (backward) the row whose upstream gradient is 0, are zeros.
          expect(
            actual.subarray(2 * V, 3 * V).every((g) => g === 0),
            `${run}: masked row`,
          ).toBe(true);
        }
      } finally {
        stale.destroy();
      }
    });
  });

  it("a buffer too small, without STORAGE or COPY_DST usage, or the logits' own buffer is rejected at into", async () => {
    await withBuffers(async (device, buffer) => {
      const deviceLogits = { buffer, shape: [B, T, V] as [number, number, number] };
      const small = device.createBuffer({ size: B * T * V * 4 - 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
      const noCopy = device.createBuffer({ size: B * T * V * 4, usage: BufferUsage.STORAGE });
      try {
        for (const [into, says] of [
          [small, /needs 888/],
          [noCopy, /STORAGE and COPY_DST/],
          [buffer, /logits' own buffer/],
        ] as const) {
          const error = await webgpuBackend
            .policyLossFromLogitsOnDevice({ ...inputs, logits: deviceLogits }, lossPresets.paper, into)
            .catch((e: unknown) => e);
          expect(error).toBeInstanceOf(ValidationError);
          expect((error as ValidationError).issues[0]!.path).toBe("into");
          expect((error as Error).message).toMatch(says);
        }
      } finally {
        small.destroy();
        noCopy.destroy();
      }
    });
  });

  it("a destroyed gradient buffer is a WebGpuDeviceError, not zeros, and the device works on", async () => {
    await withBuffers(async (device, buffer) => {
      const deviceLogits = { buffer, shape: [B, T, V] as [number, number, number] };
      const gone = device.createBuffer({ size: B * T * V * 4, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST });
      gone.destroy();
      const error = await webgpuBackend
        .policyLossFromLogitsOnDevice({ ...inputs, logits: deviceLogits }, lossPresets.paper, gone)
        .catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WebGpuDeviceError);
      const after = await webgpuBackend.policyLossFromLogitsOnDevice(
        { ...inputs, logits: deviceLogits },
        lossPresets.paper,
      );
      expect(Number.isFinite(after.loss)).toBe(true);
      after.gradLogits.buffer.destroy();
    });
  });
});
