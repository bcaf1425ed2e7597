/**
 * The conformance suite (./suite.ts) on tfjsBackend with TensorFlow.js's webgpu backend (Dawn through the
 * `webgpu` package; lavapipe, a CPU Vulkan driver, on the CI machines), and what is particular to a device: a
 * buffer may bind at most maxStorageBufferBindingSize bytes (128 MiB on lavapipe), and going over it fails
 * silently (zeros, and error events) unless something turns the events into exceptions.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { referenceBackend } from "../../src/backends/index.js";
import { ValidationError } from "../../src/index.js";
import {
  assertNoDeviceErrors,
  maxBindingBytes,
  releaseWebGpu,
  tfjsBackend,
  tokenLogProbsTf,
  WebGpuDeviceError,
} from "../../src/tfjs/index.js";
import { BIG_SHAPE, bigLogitsCase } from "./big-logits.js";
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";
import { expectClose, logitGradScale, logProbScale, tolerance } from "./tolerances.js";

const target = await prepareTarget("tfjs@webgpu");
defineConformanceSuite(target);

// dawn.node keeps the process alive while its root object and device live.
afterAll(() => releaseWebGpu());

const [B, T, V] = BIG_SHAPE;
const positions = B * T;
const scalar = (x: number) => ({ data: [x], shape: [1, 1] as [number, number] });

const limitTitle = `tfjs@webgpu: tensors over the device's binding limit${target.available ? "" : ` — skipped: ${target.reason}`}`;
describe.skipIf(!target.available)(limitTitle, () => {
  const big = target.available ? bigLogitsCase() : undefined;

  it("the logits are over the limit: the device reports it", () => {
    expect(big!.logits.byteLength).toBeGreaterThan(maxBindingBytes());
    expect(maxBindingBytes()).toBeLessThan(Infinity);
  });

  it(`tokenLogProbs and tokenLogProbsBackward of [${B}, ${T}, ${V}] logits (${((positions * V * 4) / 1e6).toFixed(0)} MB) are chunked: every position is right, none is silently zero`, async () => {
    const { logits, tokens, gradLogp, gradEntropy } = big!;
    const input = { data: logits, shape: [B, T, V] as [number, number, number] };
    const tokenMatrix = { data: tokens, shape: [B, T] as [number, number] };
    const forward = await tfjsBackend.tokenLogProbs(input, tokenMatrix, { entropy: true });
    await assertNoDeviceErrors();

    expect(big!.badPositions(forward), "positions whose logp / logsumexp / entropy are zero or not finite").toBe(0);

    // Spot checks against the reference: each chunk's first and last positions, and a spread of others.
    const { spots, one } = big!;
    for (const i of spots) {
      const ref = await referenceBackend.tokenLogProbs(one(i), [[tokens[i]!]], { entropy: true });
      const d = target.dtype;
      expectClose(forward.logp[i]!, ref.logp[0]!, tolerance(d, "value", logProbScale(ref.logp)[0]!), `logp[${i}]`);
      expectClose(
        forward.entropy![i]!,
        ref.entropy![0]!,
        tolerance(d, "value", logProbScale(ref.entropy!)[0]!),
        `entropy[${i}]`,
      );
    }

    const grad = await tfjsBackend.tokenLogProbsBackward(input, tokenMatrix, {
      gradLogp: { data: gradLogp, shape: [B, T] },
      gradEntropy: { data: gradEntropy, shape: [B, T] },
    });
    await assertNoDeviceErrors();
    expect(grad.data).toBeInstanceOf(Float32Array);
    expect(grad.data.length).toBe(positions * V);

    expect(big!.badTokenGradients(forward, grad.data), "positions whose token entry of ∂L/∂logits is wrong").toBe(0);

    for (const i of spots) {
      const options = { gradLogp: scalar(gradLogp[i]!), gradEntropy: scalar(gradEntropy[i]!) };
      const ref = await referenceBackend.tokenLogProbsBackward(one(i), [[tokens[i]!]], options);
      const refForward = await referenceBackend.tokenLogProbs(one(i), [[tokens[i]!]], { entropy: true });
      const scale = logitGradScale(one(i).data, V, ref.data, refForward, [gradLogp[i]!], [gradEntropy[i]!], 1);
      expectClose(
        grad.data.subarray(i * V, (i + 1) * V),
        ref.data,
        tolerance(target.dtype, "grad", scale),
        `∂L/∂logits[${i}]`,
      );
    }
  }, 240_000);

  it("tokenLogProbsTf (the tensor API, which cannot chunk) refuses logits over the limit with a clear error, before any kernel runs", async () => {
    const { logits, tokens } = big!;
    const logitsTensor = tf.tensor3d(logits, [B, T, V]);
    const tokensTensor = tf.tensor2d(Int32Array.from(tokens), [B, T], "int32");
    try {
      let error: unknown;
      try {
        tokenLogProbsTf(logitsTensor, tokensTensor).dispose();
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ValidationError);
      expect((error as ValidationError).issues[0]!.path).toBe("logits");
      expect((error as Error).message).toMatch(
        /logits: is 140\.6 MiB, over the 128 MiB one buffer may bind on the "webgpu" backend/,
      );
      await assertNoDeviceErrors();
    } finally {
      tf.dispose([logitsTensor, tokensTensor]);
    }
  });

  it("a device error surfaces as an exception, never as zeros: a raw tf op over the limit rejects with WebGpuDeviceError, and the device works on", async () => {
    const x = tf.tensor2d(big!.logits, [positions, V]);
    const lse = tf.logSumExp(x, 1);
    try {
      const error = await lse.data().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(WebGpuDeviceError);
      expect((error as WebGpuDeviceError).errors.join("\n")).toMatch(
        /larger than the maximum storage buffer binding size/,
      );
    } finally {
      tf.dispose([x, lse]);
    }
    // Every error was reported with that read: the next one is clean.
    const sum = tf.tidy(() => tf.sum(tf.ones([3])));
    expect(Array.from(await sum.data())).toEqual([3]);
    sum.dispose();
    await assertNoDeviceErrors();
  });
});
