/**
 * tokenEntropyTf (grpo-roc/tfjs): the entropy of logits [B, T, V] without tokens, differentiable with the analytic
 * gradient, against the reference's tokenEntropy / tokenEntropyBackward (float64) at float32 precision, on tfjs cpu.
 */
import * as tf from "@tensorflow/tfjs";
import { describe, expect, it } from "vitest";
import { tokenEntropy, tokenEntropyBackward, ValidationError } from "../src/index.js";
import { tokenEntropyTf } from "../src/tfjs/index.js";
import { loadGolden } from "./helpers/golden.js";
import { rng } from "./helpers/rng.js";
import { onTfjsCpu } from "./helpers/tfjs-reference.js";

onTfjsCpu();

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, scale: number) => {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    expect(Math.abs(actual[i]! - expected[i]!), `[${i}]`).toBeLessThanOrEqual(1e-5 * (scale + Math.abs(expected[i]!)));
  }
};

describe("tokenEntropyTf", () => {
  it.each([
    [1, 1, 2, 5, 1],
    [2, 3, 4, 300, 0.7],
    [3, 2, 1, 7, 2],
  ])(
    "seed %i [%i, %i, %i] at temperature %d: entropy and ∂/∂logits match the reference",
    (seed, B, T, V, temperature) => {
      const r = rng(seed);
      const data = Float32Array.from({ length: B * T * V }, () => r.normal() * 3);
      const h = Float32Array.from({ length: B * T }, () => r.normal());
      const logits = tf.tensor3d(data, [B, T, V]);
      const entropy = tokenEntropyTf(logits, { temperature });
      const expected = tokenEntropy({ data, shape: [B, T, V] }, { temperature });
      expect(entropy.shape).toEqual([B, T]);
      close(entropy.dataSync(), expected.entropy, 1);
      const grad = tf.grad((x: tf.Tensor) =>
        tf.sum(tf.mul(tokenEntropyTf(x as tf.Tensor3D, { temperature }), tf.tensor2d(h, [B, T]))),
      )(logits);
      const expectedGrad = tokenEntropyBackward(
        { data, shape: [B, T, V] },
        { temperature, gradEntropy: { data: Float64Array.from(h), shape: [B, T] } },
      );
      close(grad.dataSync(), expectedGrad.data, Math.max(...Array.from(h, Math.abs)) / temperature);
      tf.dispose([logits, entropy, grad]);
    },
  );

  it("trl_entropy.json's logits: the reference's entropy of the same float32 logits, at float32 precision", () => {
    // The golden logits reach 1e4, whose float32 rounding alone moves the entropy by more than 1e-5: the golden values
    // are the reference's to match (test/golden-verl2-terms.test.ts); this compares what float32 can hold.
    for (const c of loadGolden("trl_entropy.json").cases.filter((k) => k.function === "entropy_from_logits")) {
      const nested = (c.inputs as { logits: number[][][] }).logits;
      const logits = tf.tensor3d(nested);
      const data = logits.dataSync() as Float32Array;
      const expected = tokenEntropy({ data, shape: logits.shape as [number, number, number] });
      close(tokenEntropyTf(logits).dataSync(), expected.entropy, 1);
      close(expected.entropy, (c.outputs.entropy as number[][]).flat(), 1e3);
    }
  });

  it("refuses what tokenLogProbsTf refuses, and an entropy option", () => {
    expect(() => tokenEntropyTf(tf.tensor2d([[1, 2]]) as never)).toThrow(ValidationError);
    expect(() => tokenEntropyTf(tf.tensor3d([[[0, Number.NaN]]]))).toThrow(/logits\[0\]\[0\]/);
    expect(() => tokenEntropyTf(tf.tensor3d([[[0, 1]]]), { temperature: 0 })).toThrow(/options\.temperature/);
    expect(() => tokenEntropyTf(tf.tensor3d([[[0, 1]]]), { entropy: false } as never)).toThrow(/options\.entropy/);
    expect(() => tokenEntropyTf(tf.tensor3d([[[0, 1]]]), { temprature: 1 } as never)).toThrow(/options\.temprature/);
  });

  it("leaks no tensor: each call adds only its result, also when it refuses the logits", () => {
    const logits = tf.tensor3d([
      [
        [0, 1, 2],
        [0.5, -1, 3],
      ],
    ]);
    const nan = tf.tensor3d([[[0, Number.NaN]]]);
    const before = tf.memory().numTensors;
    for (let i = 0; i < 3; i++) {
      const entropy = tokenEntropyTf(logits);
      expect(tf.memory().numTensors).toBe(before + 1);
      entropy.dispose();
      expect(() => tokenEntropyTf(nan)).toThrow(ValidationError);
      expect(tf.memory().numTensors).toBe(before);
    }
    tf.dispose([logits, nan]);
  });

  it("an empty batch gives [B, T] zeros, and leaks no tensor", () => {
    const logits = tf.zeros([0, 3, 4]) as tf.Tensor3D;
    const before = tf.memory().numTensors;
    const entropy = tf.tidy(() => tokenEntropyTf(logits));
    expect(entropy.shape).toEqual([0, 3]);
    entropy.dispose();
    expect(tf.memory().numTensors).toBe(before);
  });
});
