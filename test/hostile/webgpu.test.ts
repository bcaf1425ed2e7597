/**
 * The bad-input contract on what is particular to the webgpu backend (its float32 numerics are in
 * ./webgpu-cuda-float32.test.ts): calls left on the device that share a buffer, the binding limit, and logits on the
 * device that are bad or changed under saved statistics. Lavapipe (Mesa's CPU Vulkan driver) here.
 */
import { afterAll, describe, expect, it } from "vitest";
import { lossPresets, type TokenLogProbs, ValidationError } from "../../src/index.js";
import { BufferUsage, type GpuBuffer, type GpuDevice, MapMode } from "../../src/webgpu/gpu.js";
import { createWebGpuBackend, releaseWebGpuBackend, webgpuBackend } from "../../src/webgpu/index.js";
import { inCi } from "../conformance/targets.js";
import { rejection, expectRefused } from "../helpers/errors.js";

const info = await webgpuBackend.probe();
const title = (text: string) => `webgpu: ${text}${info.available ? "" : ` — skipped: ${info.reason}`}`;

// dawn.node keeps the process alive while its root object and device live.
afterAll(() => releaseWebGpuBackend());

type Shape3 = [number, number, number];
const [B, T, V] = [2, 3, 37];
const SHAPE: Shape3 = [B, T, V];
const BYTES = B * T * V * 4;
const LOGITS = Float32Array.from({ length: B * T * V }, (_, i) => Math.sin(i * 0.37) * 3);
const TOKENS = { data: [1, 5, 36, 0, 2, 9], shape: [B, T] as [number, number] };
const matrix = (data: number[]) => ({ data, shape: [B, T] as [number, number] });

function upload(device: GpuDevice, data: Float32Array): GpuBuffer {
  const buffer = device.createBuffer({
    size: data.byteLength,
    usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC,
  });
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

function gradientBuffer(device: GpuDevice): GpuBuffer {
  return device.createBuffer({ size: BYTES, usage: BufferUsage.STORAGE | BufferUsage.COPY_DST | BufferUsage.COPY_SRC });
}

describe.skipIf(!info.available && !inCi)(title("calls left on the device that share a buffer"), () => {
  // Two backward passes that differ in everything a mix would show: which rows they write, and their values.
  const first = { mask: matrix([1, 0, 1, 1, 0, 1]), gradLogp: matrix([0.5, 0, 3, -1, 0, 2]) };
  const second = { mask: matrix([0, 1, 1, 0, 1, 1]), gradLogp: matrix([0, -2, 1, 0, 4, 0.25]) };

  async function alone(device: GpuDevice, logits: GpuBuffer, options: typeof first): Promise<Float32Array> {
    const gradient = await webgpuBackend.tokenLogProbsBackwardOnDevice(
      { buffer: logits, shape: SHAPE },
      TOKENS,
      options,
    );
    const values = await download(device, gradient.buffer, BYTES);
    gradient.buffer.destroy();
    return values;
  }

  it("two un-awaited backward passes into one gradient buffer: it holds the second's result whole, not a mix", async () => {
    const device = await webgpuBackend.getDevice();
    const logits = upload(device, LOGITS);
    const into = gradientBuffer(device);
    try {
      const expected = await alone(device, logits, second);
      expect(expected).not.toEqual(await alone(device, logits, first));
      const deviceLogits = { buffer: logits, shape: SHAPE };
      const calls = [first, second, first, second].map((options) =>
        webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, options, into),
      );
      const results = await Promise.all(calls);
      expect(results.every((r) => r.buffer === into)).toBe(true);
      expect(Array.from(await download(device, into, BYTES))).toEqual(Array.from(expected));
    } finally {
      logits.destroy();
      into.destroy();
    }
  });

  it("the fused loss and a backward pass, un-awaited, into one buffer: the later call's result whole", async () => {
    const device = await webgpuBackend.getDevice();
    const logits = upload(device, LOGITS);
    const into = gradientBuffer(device);
    try {
      const deviceLogits = { buffer: logits, shape: SHAPE };
      const inputs = { logits: deviceLogits, tokens: TOKENS, mask: first.mask, advantages: [1, -1] };
      const fresh = await webgpuBackend.policyLossFromLogitsOnDevice(inputs, lossPresets.paper);
      const fusedAlone = await download(device, fresh.gradLogits.buffer, BYTES);
      fresh.gradLogits.buffer.destroy();
      const backwardAlone = await alone(device, logits, second);
      const [fused] = await Promise.all([
        webgpuBackend.policyLossFromLogitsOnDevice(inputs, lossPresets.paper, into),
        webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, second, into),
      ]);
      expect(fused.loss).toBeCloseTo(fresh.loss, 6);
      expect(Array.from(await download(device, into, BYTES))).toEqual(Array.from(backwardAlone));
      const [, fusedLast] = await Promise.all([
        webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, second, into),
        webgpuBackend.policyLossFromLogitsOnDevice(inputs, lossPresets.paper, into),
      ]);
      expect(fusedLast.gradLogits.buffer).toBe(into);
      expect(Array.from(await download(device, into, BYTES))).toEqual(Array.from(fusedAlone));
    } finally {
      logits.destroy();
      into.destroy();
    }
  });

  it("a call reading, as its logits, the buffer an earlier un-awaited call writes sees that call's whole result", async () => {
    const device = await webgpuBackend.getDevice();
    const logits = upload(device, LOGITS);
    const into = gradientBuffer(device);
    try {
      const deviceLogits = { buffer: logits, shape: SHAPE };
      const writing = webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, second, into);
      const reading = webgpuBackend.tokenLogProbsOnDevice({ buffer: into, shape: SHAPE }, TOKENS, { entropy: true });
      const [, read] = await Promise.all([writing, reading]);
      // The same pass over a copy of what the first call wrote, once it is done.
      const copy = upload(device, await download(device, into, BYTES));
      const expected = await webgpuBackend.tokenLogProbsOnDevice({ buffer: copy, shape: SHAPE }, TOKENS, {
        entropy: true,
      });
      copy.destroy();
      expect(Array.from(read.logp)).toEqual(Array.from(expected.logp));
    } finally {
      logits.destroy();
      into.destroy();
    }
  });

  it("a call that fails does not hold up the next one on the same buffer", async () => {
    const device = await webgpuBackend.getDevice();
    const logits = upload(device, LOGITS);
    const into = gradientBuffer(device);
    try {
      const deviceLogits = { buffer: logits, shape: SHAPE };
      const bad = webgpuBackend.tokenLogProbsBackwardOnDevice(
        deviceLogits,
        TOKENS,
        { ...second, saved: { ...(await webgpuBackend.tokenLogProbsOnDevice(deviceLogits, TOKENS)), temperature: 2 } },
        into,
      );
      const good = webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, second, into);
      expect(await rejection(() => bad)).toBeInstanceOf(ValidationError);
      expect((await good).buffer).toBe(into);
    } finally {
      logits.destroy();
      into.destroy();
    }
  });
});

describe.skipIf(!info.available && !inCi)(
  title("logits on the device that are bad, or changed under saved statistics"),
  () => {
    it("a backward pass over saved statistics of logits changed since to NaN, or to other values, on the device: refused", async () => {
      const device = await webgpuBackend.getDevice();
      const logits = upload(device, LOGITS);
      const into = gradientBuffer(device);
      try {
        const deviceLogits = { buffer: logits, shape: SHAPE };
        const saved: TokenLogProbs = await webgpuBackend.tokenLogProbsOnDevice(deviceLogits, TOKENS, { entropy: true });
        const options = { gradLogp: matrix([1, 1, 1, 1, 1, 1]), gradEntropy: matrix([0, 0, 0, 0, 0.5, 0]), saved };
        device.queue.writeBuffer(logits, (4 * V + 7) * 4, Float32Array.of(Number.NaN));
        await expectRefused(
          () => webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, options, into),
          "logits[1][1]",
          /holds NaN or \+Infinity/,
        );
        device.queue.writeBuffer(logits, 0, LOGITS);
        device.queue.writeBuffer(logits, 2 * V * 4, new Float32Array(V).fill(1));
        await expectRefused(
          () => webgpuBackend.tokenLogProbsBackwardOnDevice(deviceLogits, TOKENS, options),
          "options.saved",
          /does not describe the logits at \[0\]\[2\]/,
        );
      } finally {
        logits.destroy();
        into.destroy();
      }
    });

    it("the loss from device logits whose sampled token has logit −Infinity: refused at the logits' position", async () => {
      const device = await webgpuBackend.getDevice();
      const values = LOGITS.slice();
      values[3 * V + 0] = -Infinity;
      const logits = upload(device, values);
      try {
        const error = await expectRefused(
          () =>
            webgpuBackend.policyLossFromLogitsOnDevice(
              { logits: { buffer: logits, shape: SHAPE }, tokens: TOKENS, advantages: [1, -1] },
              lossPresets.paper,
            ),
          "logits[1][0]",
          /sampled token's logit \(tokens\[1\]\[0\] = 0\) is −Infinity/,
        );
        expect(error.message).not.toMatch(/inputs\.logp/);
      } finally {
        logits.destroy();
      }
    });
  },
);

describe.skipIf(!info.available && !inCi)(title("the binding limit: which binding, which limit, what to do"), () => {
  async function limited() {
    return createWebGpuBackend({
      device: await webgpuBackend.getDevice(),
      name: "webgpu@4KiB",
      maxBindingBytes: 4096,
      maxPooledBytes: 0,
    });
  }

  it("every option its type declares is accepted (watchUncaptured too), and only those", async () => {
    const device = await webgpuBackend.getDevice();
    const quiet = createWebGpuBackend({ device, name: "webgpu@quiet", watchUncaptured: false });
    const forward = await quiet.tokenLogProbs({ data: new Float32Array(4), shape: [1, 1, 4] }, [[0]]);
    expect(forward.logp[0]).toBeCloseTo(-Math.log(4), 6);
    expect(() => createWebGpuBackend({ device, watchUncaptured: "no" } as never)).toThrow(/options\.watchUncaptured/);
    expect(() => createWebGpuBackend({ device, watchUncapturd: false } as never)).toThrow(
      /did you mean "watchUncaptured"/,
    );
  });

  it("device logits whose row, with the offset alignment's slack, exceeds the option's 4096 bytes: the real cause", async () => {
    const backend = await limited();
    const device = await backend.getDevice();
    const logits = upload(device, new Float32Array(1000));
    try {
      const error = await expectRefused(
        () => backend.tokenLogProbsOnDevice({ buffer: logits, shape: [1, 1, 1000] }, [[0]]),
        "logits",
        /one position's 1000 logits \(4000 bytes\) do not fit one storage binding/,
      );
      expect(error.message).toMatch(/minStorageBufferOffsetAlignment \(256 bytes\)/);
      expect(error.message).toMatch(/252 bytes more \(4252 bytes\)/);
      expect(error.message).toMatch(/set by this backend's maxBindingBytes option \(4096 bytes; the device allows \d+/);
      expect(error.message).toMatch(/typed array/);
      // As a typed array, the same row fits: 4000 bytes, no slack.
      const forward = await backend.tokenLogProbs({ data: new Float32Array(1000), shape: [1, 1, 1000] }, [[0]]);
      expect(forward.logp[0]).toBeCloseTo(-Math.log(1000), 5);
    } finally {
      logits.destroy();
    }
  });

  it("typed logits whose padded row exceeds the limit, and statistics or loss rows that do not fit: the real cause", async () => {
    const backend = await limited();
    await expectRefused(
      () => backend.tokenLogProbs({ data: new Float32Array(1101), shape: [1, 1, 1101] }, [[0]]),
      "logits",
      /1101 logits take 4416 bytes on the device \(rows are padded to a multiple of 4 logits\).*4096 bytes, set by this backend's maxBindingBytes option/,
    );
    await expectRefused(
      () => backend.tokenLogProbs({ data: new Float32Array(300 * 4), shape: [1, 300, 4] }, [new Array(300).fill(0)]),
      "logits",
      /300 positions \(B·T\) have 4800 bytes of statistics.*at most 256 positions per call/,
    );
    await expectRefused(
      () => backend.policyLoss({ logp: [new Array(300).fill(-1)], advantages: [1] }),
      "inputs.logp",
      /a row of 300 tokens has 4800 bytes of per-token data.*rows of at most 240 tokens/,
    );
  });
});
