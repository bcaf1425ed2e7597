/**
 * verl's and TRL's objectives without native kernels through TensorFlow.js's tensor API (policyLossTensors,
 * policyLossTf): the reference computes them on the CPU and hands back the loss, its analytic gradient and the
 * metrics, KL-Cov's meanAbsLogRatio and VESPO's phiMean included.
 */
import { beforeAll, describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossOptionsInput, REFERENCE_OBJECTIVES } from "../src/index.js";
import { useTfjsBackend } from "../src/tfjs/index.js";
import { expectTfLossAndGradient, referenceLoss, type SmallBatch, tfLossAndMetrics } from "./helpers/tfjs-reference.js";

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

const batch: SmallBatch = {
  shape: [2, 3],
  logp: [-1.2, -0.4, -2.5, -0.9, -3.1, -0.2],
  oldLogp: [-0.95, -0.5, -2.1, -1.3, -3.0, -0.35], // no log-ratio at a clip bound (float32 moves it)
  mask: [1, 1, 0, 1, 1, 1],
  advantages: [0.8, -1.3],
};

describe.each(REFERENCE_OBJECTIVES)("%s through the tfjs tensor API", (name) => {
  const options = OPTIONS[name];

  it("policyLossTf gives the reference's loss and, under tf.grad, its gradient", () => {
    expectTfLossAndGradient(batch, options, 5);
  });

  it("policyLossTensors reports the reference's metrics", async () => {
    const expected = referenceLoss(batch, options);
    const { metrics } = await tfLossAndMetrics(batch, options);
    expect(metrics.meanAbsLogRatio === undefined).toBe(name !== "kl-cov");
    expect(metrics.phiMean === undefined).toBe(name !== "vespo");
    for (const [metric, value] of Object.entries(expected.metrics)) {
      if (value === undefined) expect(metrics[metric as keyof typeof metrics], metric).toBeUndefined();
      else expect(metrics[metric as keyof typeof metrics], metric).toBeCloseTo(value, 5);
    }
  });
});
