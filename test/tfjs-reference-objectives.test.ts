/**
 * verl's and TRL's objectives without native kernels through TensorFlow.js's tensor API (policyLossTensors,
 * policyLossTf): the reference computes them on the CPU and hands back the loss, its analytic gradient and the
 * metrics, KL-Cov's meanAbsLogRatio and VESPO's phiMean included.
 */
import * as tf from "@tensorflow/tfjs";
import { beforeAll, describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossOptionsInput, policyLoss, REFERENCE_OBJECTIVES } from "../src/index.js";
import { policyLossTensors, policyLossTf, readPolicyLossMetrics, useTfjsBackend } from "../src/tfjs/index.js";

beforeAll(async () => {
  await useTfjsBackend("cpu");
});

const OPTIONS: Record<(typeof REFERENCE_OBJECTIVES)[number], PolicyLossOptionsInput> = {
  "dppo-tv": lossPresets.verlDppoTv,
  "dppo-kl": lossPresets.verlDppoKl,
  dro: { ...lossPresets.verlDro, droBeta: 0.2 },
  gmpo: lossPresets.verlGmpo,
  "kl-cov": { ...lossPresets.verlKlCov, klCov: { ratio: 0.4, coef: 0.3 } },
  "clip-cov": { ...lossPresets.verlClipCov, clipCov: { ratio: 1, lowerBound: -1, upperBound: 1 } },
  luspo: { ...lossPresets.trlLuspo, clipLow: 0.1, clipHigh: 0.15 },
  vespo: lossPresets.trlVespo,
};

const shape = [2, 3] as const;
const logp = [-1.2, -0.4, -2.5, -0.9, -3.1, -0.2];
const oldLogp = [-0.95, -0.5, -2.1, -1.3, -3.0, -0.35]; // no log-ratio at a clip bound (float32 moves it)
const mask = [1, 1, 0, 1, 1, 1];
const advantages = [0.8, -1.3];

describe.each(REFERENCE_OBJECTIVES)("%s through the tfjs tensor API", (name) => {
  const options = OPTIONS[name];
  const expected = policyLoss(
    { logp: { data: logp, shape }, oldLogp: { data: oldLogp, shape }, mask: { data: mask, shape }, advantages },
    options,
  );

  it("policyLossTf gives the reference's loss and, under tf.grad, its gradient", () => {
    const constants = {
      oldLogp: tf.tensor2d(oldLogp, [...shape]),
      mask: tf.tensor2d(mask, [...shape]),
      advantages: tf.tensor1d(advantages),
    };
    const x = tf.tensor2d(logp, [...shape]);
    const lossOf = (value: tf.Tensor) => policyLossTf({ ...constants, logp: value as tf.Tensor2D }, options);
    const loss = lossOf(x);
    expect(loss.dataSync()[0]).toBeCloseTo(expected.loss, 5);
    const grad = tf.grad(lossOf)(x);
    const got = grad.dataSync();
    expected.grad.forEach((g, i) => expect(got[i]).toBeCloseTo(g, 5));
    tf.dispose([loss, grad, x, ...Object.values(constants)]);
  });

  it("policyLossTensors reports the reference's metrics", async () => {
    const result = tf.tidy(
      () =>
        policyLossTensors(
          {
            logp: tf.tensor2d(logp, [...shape]),
            oldLogp: tf.tensor2d(oldLogp, [...shape]),
            mask: tf.tensor2d(mask, [...shape]),
            advantages: tf.tensor1d(advantages),
          },
          options,
        ) as unknown as tf.TensorContainer,
    ) as unknown as ReturnType<typeof policyLossTensors>;
    const { counts, loss, ...rest } = result;
    const { metrics } = await readPolicyLossMetrics(counts, [loss]);
    expect(metrics.meanAbsLogRatio === undefined).toBe(name !== "kl-cov");
    expect(metrics.phiMean === undefined).toBe(name !== "vespo");
    for (const [metric, value] of Object.entries(expected.metrics)) {
      if (value === undefined) expect(metrics[metric as keyof typeof metrics], metric).toBeUndefined();
      else expect(metrics[metric as keyof typeof metrics], metric).toBeCloseTo(value, 5);
    }
    tf.dispose(rest as unknown as tf.TensorContainer);
  });
});
