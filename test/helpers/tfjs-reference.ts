/**
 * The tfjs cpu backend for a test file, and one small batch through TensorFlow.js's tensor API (policyLossTf, policyLossTensors) next to the reference
 * policyLoss on the same numbers: for objectives the tfjs backend hands to the reference (registered at run time, or
 * verl's objectives without native kernels).
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, expect } from "vitest";
import {
  type PolicyLossInputs,
  type PolicyLossMetrics,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  policyLoss,
} from "../../src/index.js";
import { policyLossTensors, policyLossTf, readPolicyLossMetrics } from "../../src/tfjs/index.js";

/** Runs the calling test file on tfjs's cpu backend, and gives the backend it found back afterwards. */
export function onTfjsCpu(): void {
  let previousBackend: string | undefined;
  beforeAll(async () => {
    previousBackend = tf.getBackend();
    await tf.setBackend("cpu");
    await tf.ready();
  });
  afterAll(async () => {
    if (previousBackend !== undefined && previousBackend !== "cpu") await tf.setBackend(previousBackend);
  });
}

/** A [B, T] batch as flat arrays, advantages one per row; refLogp when the options ask for a KL term. */
export interface SmallBatch {
  readonly shape: readonly [number, number];
  readonly logp: readonly number[];
  readonly oldLogp: readonly number[];
  readonly mask: readonly number[];
  readonly advantages: readonly number[];
  readonly refLogp?: readonly number[] | undefined;
}

/** The reference's result for the batch. */
export function referenceLoss(batch: SmallBatch, options: PolicyLossOptionsInput): PolicyLossResult {
  const { shape } = batch;
  const inputs: PolicyLossInputs = {
    logp: { data: batch.logp, shape },
    oldLogp: { data: batch.oldLogp, shape },
    mask: { data: batch.mask, shape },
    advantages: batch.advantages,
    ...(batch.refLogp === undefined ? {} : { refLogp: { data: batch.refLogp, shape } }),
  };
  return policyLoss(inputs, options);
}

/** policyLossTf's loss, and its gradient under tf.grad, equal the reference's to `digits` decimals. */
export function expectTfLossAndGradient(batch: SmallBatch, options: PolicyLossOptionsInput, digits: number): void {
  const expected = referenceLoss(batch, options);
  const shape = [...batch.shape] as [number, number];
  const constants = {
    oldLogp: tf.tensor2d(batch.oldLogp as number[], shape),
    mask: tf.tensor2d(batch.mask as number[], shape),
    advantages: tf.tensor1d(batch.advantages as number[]),
  };
  const logp = tf.tensor2d(batch.logp as number[], shape);
  const lossOf = (x: tf.Tensor) => policyLossTf({ ...constants, logp: x as tf.Tensor2D }, options);
  const loss = lossOf(logp);
  expect(loss.dataSync()[0]).toBeCloseTo(expected.loss, digits);
  const grad = tf.grad(lossOf)(logp);
  const got = grad.dataSync();
  expected.grad.forEach((g, i) => expect(got[i]).toBeCloseTo(g, digits));
  tf.dispose([loss, grad, logp, ...Object.values(constants)]);
}

/** policyLossTensors' loss and metrics for the batch, read back from the device. */
export async function tfLossAndMetrics(
  batch: SmallBatch,
  options: PolicyLossOptionsInput,
): Promise<{ loss: number; metrics: PolicyLossMetrics }> {
  const shape = [...batch.shape] as [number, number];
  const result = tf.tidy(
    () =>
      policyLossTensors(
        {
          logp: tf.tensor2d(batch.logp as number[], shape),
          oldLogp: tf.tensor2d(batch.oldLogp as number[], shape),
          mask: tf.tensor2d(batch.mask as number[], shape),
          advantages: tf.tensor1d(batch.advantages as number[]),
          ...(batch.refLogp === undefined ? {} : { refLogp: tf.tensor2d(batch.refLogp as number[], shape) }),
        },
        options,
      ) as unknown as tf.TensorContainer,
  ) as unknown as ReturnType<typeof policyLossTensors>;
  const { counts, loss, ...rest } = result;
  const { metrics, extra } = await readPolicyLossMetrics(counts, [loss]);
  tf.dispose(rest as unknown as tf.TensorContainer);
  return { loss: extra[0]!, metrics };
}
