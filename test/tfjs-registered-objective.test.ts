/**
 * An objective registered at run time through TensorFlow.js's tensor API (policyLossTensors, policyLossTf): the
 * reference computes it on the CPU and hands the loss, the metrics and the analytic gradient back as tensors.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { policyLoss, policyObjectiveNames, registerPolicyObjective } from "../src/index.js";
import { policyLossTensors, policyLossTf, readPolicyLossMetrics, useTfjsBackend } from "../src/tfjs/index.js";

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

const shape = [2, 3] as const;
const logp = [-1.2, -0.4, -2.5, -0.9, -3.1, -0.2];
const oldLogp = [-1.0, -0.5, -2.4, -1.1, -3.0, -0.3];
const mask = [1, 1, 0, 1, 1, 1];
const advantages = [0.8, -1.3];

describe("a registered objective through the tfjs tensor API", () => {
  it("policyLossTf gives the reference's loss and, under tf.grad, its gradient", () => {
    const options = { objective: NAME, aggregation: "seq-mean-token-mean" as const };
    const expected = policyLoss(
      { logp: { data: logp, shape }, oldLogp: { data: oldLogp, shape }, mask: { data: mask, shape }, advantages },
      options,
    );
    const constants = {
      oldLogp: tf.tensor2d(oldLogp, [...shape]),
      mask: tf.tensor2d(mask, [...shape]),
      advantages: tf.tensor1d(advantages),
    };
    const logpTensor = tf.tensor2d(logp, [...shape]);
    const lossOf = (x: tf.Tensor) => policyLossTf({ ...constants, logp: x as tf.Tensor2D }, options);
    const loss = lossOf(logpTensor);
    expect(loss.dataSync()[0]).toBeCloseTo(expected.loss, 6);
    const grad = tf.grad(lossOf)(logpTensor);
    const got = grad.dataSync();
    expected.grad.forEach((g, i) => expect(got[i]).toBeCloseTo(g, 6));
    tf.dispose([loss, grad, logpTensor, ...Object.values(constants)]);
  });

  it("policyLossTensors reports the reference's metrics", async () => {
    const options = { objective: NAME, kl: { kind: "k3" as const, coef: 0.1 } };
    const inputs = {
      logp: { data: logp, shape },
      oldLogp: { data: oldLogp, shape },
      refLogp: { data: oldLogp, shape },
      mask: { data: mask, shape },
      advantages,
    };
    const expected = policyLoss(inputs, options);
    const result = tf.tidy(
      () =>
        policyLossTensors(
          {
            logp: tf.tensor2d(logp, [...shape]),
            oldLogp: tf.tensor2d(oldLogp, [...shape]),
            refLogp: tf.tensor2d(oldLogp, [...shape]),
            mask: tf.tensor2d(mask, [...shape]),
            advantages: tf.tensor1d(advantages),
          },
          options,
        ) as unknown as tf.TensorContainer,
    ) as unknown as ReturnType<typeof policyLossTensors>;
    const { counts, loss, ...rest } = result;
    const { metrics, extra } = await readPolicyLossMetrics(counts, [loss]);
    expect(extra[0]).toBeCloseTo(expected.loss, 6);
    expect(metrics.entropy).toBeUndefined();
    expect(expected.metrics.entropy).toBeUndefined();
    for (const [name, value] of Object.entries(expected.metrics)) {
      if (value !== undefined) expect(metrics[name as keyof typeof metrics], name).toBeCloseTo(value, 5);
    }
    tf.dispose(rest as unknown as tf.TensorContainer);
  });

  it("an objective nobody registered is the reference's error", () => {
    const x = tf.tensor2d(logp, [...shape]);
    expect(() => policyLossTf({ logp: x, advantages: tf.tensor1d(advantages) }, { objective: "nobody" })).toThrow(
      /options\.objective: unknown objective "nobody"/,
    );
    x.dispose();
  });
});
