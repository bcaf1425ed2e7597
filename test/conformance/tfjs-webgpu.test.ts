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
import { assertNoDeviceErrors, maxBindingBytes, releaseWebGpu, tfjsBackend, tokenLogProbsTf, WebGpuDeviceError } from "../../src/tfjs/index.js";
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";
import { expectClose, logitGradScale, logProbScale, tolerance } from "./tolerances.js";

const target = await prepareTarget("tfjs@webgpu");
defineConformanceSuite(target);

// dawn.node keeps the process alive while its root object and device live.
afterAll(() => releaseWebGpu());

/** [4, 1024, 9000] float32 logits: 147.5 MB, over lavapipe's 128 MiB binding limit, so they must be chunked. */
const [B, T, V] = [4, 1024, 9000];
const positions = B * T;

function bigCase() {
  // xorshift32: 37M logits in a fraction of a second, the same every run.
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const logits = new Float32Array(positions * V);
  for (let i = 0; i < logits.length; i++) logits[i] = 6 * next() - 3;
  // A few positions with one dominant logit, so that some probabilities are near 1.
  for (let i = 0; i < positions; i += 97) logits[i * V + (i % V)] = 25;
  const tokens = Float64Array.from({ length: positions }, (_, i) => (i * 7919) % V);
  const gradLogp = Float64Array.from({ length: positions }, (_, i) => Math.sin(i) + 1.5);
  const gradEntropy = Float64Array.from({ length: positions }, (_, i) => 0.25 * Math.cos(3 * i));
  return { logits, tokens, gradLogp, gradEntropy };
}

/** One position's logits as a [1, 1, V] input for the reference backend. */
const one = (logits: Float32Array, i: number) => ({ data: logits.subarray(i * V, (i + 1) * V), shape: [1, 1, V] as [number, number, number] });
const scalar = (x: number) => ({ data: [x], shape: [1, 1] as [number, number] });

const limitTitle = `tfjs@webgpu: tensors over the device's binding limit${target.available ? "" : ` — skipped: ${target.reason}`}`;
describe.skipIf(!target.available)(limitTitle, () => {
  const big = target.available ? bigCase() : undefined;

  it("the logits are over the limit: the device reports it", () => {
    expect(big!.logits.byteLength).toBeGreaterThan(maxBindingBytes());
    expect(maxBindingBytes()).toBeLessThan(Infinity);
  });

  it(`tokenLogProbs and tokenLogProbsBackward of [${B}, ${T}, ${V}] logits (${(positions * V * 4 / 1e6).toFixed(0)} MB) are chunked: every position is right, none is silently zero`, async () => {
    const { logits, tokens, gradLogp, gradEntropy } = big!;
    const input = { data: logits, shape: [B, T, V] as [number, number, number] };
    const tokenMatrix = { data: tokens, shape: [B, T] as [number, number] };
    const forward = await tfjsBackend.tokenLogProbs(input, tokenMatrix, { entropy: true });
    await assertNoDeviceErrors();

    // Every position, cheaply: a zero read back (a skipped kernel) would give logsumexp = 0 and logp = 0. (Where a
    // logit of 25 dominates, p ≈ 1 − 1e-7: logp and entropy may round to 0 in float32 there.)
    let wrong = 0;
    for (let i = 0; i < positions; i++) {
      const dominant = i % 97 === 0;
      const lp = forward.logp[i]!;
      const h = forward.entropy![i]!;
      const ok =
        Number.isFinite(lp) && Number.isFinite(h) && forward.logSumExp[i]! > Math.log(V) - 3 && (dominant ? lp <= 0 && h > -1e-5 : lp < 0 && h > 0);
      if (!ok) wrong++;
    }
    expect(wrong, "positions whose logp / logsumexp / entropy are zero or not finite").toBe(0);

    // Spot checks against the reference: each chunk's first and last positions, and a spread of others.
    const spots = [0, 1, 97, 1863, 1864, 1865, 2000, 3727, 3728, 3729, 4000, 4095];
    for (const i of spots) {
      const ref = await referenceBackend.tokenLogProbs(one(logits, i), [[tokens[i]!]], { entropy: true });
      const d = target.dtype;
      expectClose(forward.logp[i]!, ref.logp[0]!, tolerance(d, "value", logProbScale(ref.logSumExp, ref.logp)[0]!), `logp[${i}]`);
      expectClose(forward.entropy![i]!, ref.entropy![0]!, tolerance(d, "value", logProbScale(ref.logSumExp, ref.entropy!)[0]!), `entropy[${i}]`);
    }

    const grad = await tfjsBackend.tokenLogProbsBackward(input, tokenMatrix, {
      gradLogp: { data: gradLogp, shape: [B, T] },
      gradEntropy: { data: gradEntropy, shape: [B, T] },
    });
    await assertNoDeviceErrors();
    expect(grad.data).toBeInstanceOf(Float32Array);
    expect(grad.data.length).toBe(positions * V);

    // Every position: the token's own entry is (g·(1 − p) − h·p·(z − lse + H)) at the token, from the forward
    // results; a zero chunk would fail it (g ≥ 0.5 everywhere).
    let badToken = 0;
    let firstBad = -1;
    for (let i = 0; i < positions; i++) {
      const p = Math.exp(forward.logp[i]!);
      const z = logits[i * V + tokens[i]!]!;
      const expected = gradLogp[i]! * (1 - p) - gradEntropy[i]! * p * (z - forward.logSumExp[i]! + forward.entropy![i]!);
      const actual = grad.data[i * V + tokens[i]!]!;
      if (!(Math.abs(actual - expected) <= 1e-5 * (1 + Math.abs(gradLogp[i]!) + Math.abs(gradEntropy[i]!) * (1 + Math.abs(z) + forward.logSumExp[i]!)))) {
        badToken++;
        if (firstBad < 0) firstBad = i;
      }
    }
    expect(badToken, `positions whose token entry of ∂L/∂logits is wrong (first: ${firstBad})`).toBe(0);

    for (const i of spots) {
      const options = { gradLogp: scalar(gradLogp[i]!), gradEntropy: scalar(gradEntropy[i]!) };
      const ref = await referenceBackend.tokenLogProbsBackward(one(logits, i), [[tokens[i]!]], options);
      const refForward = await referenceBackend.tokenLogProbs(one(logits, i), [[tokens[i]!]], { entropy: true });
      const scale = logitGradScale(one(logits, i).data, V, ref.data, refForward, [gradLogp[i]!], [gradEntropy[i]!], 1);
      expectClose(grad.data.subarray(i * V, (i + 1) * V), ref.data, tolerance(target.dtype, "grad", scale), `∂L/∂logits[${i}]`);
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
      expect((error as Error).message).toMatch(/logits: is 140\.6 MiB, over the 128 MiB one buffer may bind on the "webgpu" backend/);
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
      expect((error as WebGpuDeviceError).errors.join("\n")).toMatch(/larger than the maximum storage buffer binding size/);
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
