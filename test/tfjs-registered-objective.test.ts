/**
 * An objective registered at run time through TensorFlow.js's tensor API (policyLossTensors, policyLossTf): the
 * reference computes it on the CPU and hands the loss, the metrics and the analytic gradient back as tensors.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { policyObjectiveNames, registerPolicyObjective } from "../src/index.js";
import { policyLossTf, useTfjsBackend } from "../src/tfjs/index.js";
import { expectTfLossAndGradient, referenceLoss, type SmallBatch, tfLossAndMetrics } from "./helpers/tfjs-reference.js";

const NAME = "tfjs-registered-square";

beforeAll(async () => {
  await useTfjsBackend("cpu");
  if (!policyObjectiveNames().includes(NAME)) {
    // loss = −A·ρ² / 2: its gradient through the ratio is −A·ρ² (∂ρ²/∂logρ = 2ρ²).
    registerPolicyObjective(NAME, () => ({ advantage: a, ratio }) => ({
      loss: (-a * ratio * ratio) / 2,
      dLogRatio: -a * ratio * ratio,
      dLogp: 0,
      clipped: false,
      dualClipped: false,
      lowClipped: false,
      highClipped: false,
    }));
  }
});

const batch: SmallBatch = {
  shape: [2, 3],
  logp: [-1.2, -0.4, -2.5, -0.9, -3.1, -0.2],
  oldLogp: [-1.0, -0.5, -2.4, -1.1, -3.0, -0.3],
  mask: [1, 1, 0, 1, 1, 1],
  advantages: [0.8, -1.3],
};

describe("a registered objective through the tfjs tensor API", () => {
  it("policyLossTf gives the reference's loss and, under tf.grad, its gradient", () => {
    expectTfLossAndGradient(batch, { objective: NAME, aggregation: "seq-mean-token-mean" }, 6);
  });

  it("policyLossTensors reports the reference's metrics", async () => {
    const options = { objective: NAME, kl: { kind: "k3" as const, coef: 0.1 } };
    const withKl = { ...batch, refLogp: batch.oldLogp };
    const expected = referenceLoss(withKl, options);
    const { loss, metrics } = await tfLossAndMetrics(withKl, options);
    expect(loss).toBeCloseTo(expected.loss, 6);
    expect(metrics.entropy).toBeUndefined();
    expect(expected.metrics.entropy).toBeUndefined();
    for (const [name, value] of Object.entries(expected.metrics)) {
      if (value !== undefined) expect(metrics[name as keyof typeof metrics], name).toBeCloseTo(value, 5);
    }
  });

  it("an objective nobody registered is the reference's error", () => {
    const x = tf.tensor2d(batch.logp as number[], [...batch.shape]);
    const advantages = tf.tensor1d(batch.advantages as number[]);
    expect(() => policyLossTf({ logp: x, advantages }, { objective: "nobody" })).toThrow(
      /options\.objective: unknown objective "nobody"/,
    );
    tf.dispose([x, advantages]);
  });
});
