/**
 * Class 6 of the bad-input contract on grpo-roc/tfjs: the empty step. When RoC drops every group the batch is empty;
 * it must flow through every tfjs kernel, the tensor API and trainStep as a defined no-op — loss 0, zero gradients,
 * every metric 0 — and trainStep must not touch the optimizer (a momentum optimizer would still move the weights
 * on a zero gradient). Run on tfjs's cpu and wasm backends (tfjs-wasm used to reduce empty tensors to garbage).
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossOptionsInput } from "../../src/index.js";
import {
  packTrainBatch,
  policyLossTensors,
  policyLossTf,
  readPolicyLossMetrics,
  type TfjsBackendName,
  tfjsBackend,
  tokenLogProbsTf,
  trainStep,
  useTfjsBackend,
  validateTrainBatch,
} from "../../src/tfjs/index.js";

const EVERY_OPTION: PolicyLossOptionsInput = {
  ...lossPresets.reference,
  kl: { kind: "k3", coef: 0.1 },
  entropyCoef: 0.01,
};

/** A tiny model: embedding → logits over V, as plain variables; counts its calls. */
function tinyModel(vocab: number, seed: number) {
  const embedding = tf.variable(tf.randomNormal([vocab, 4], 0, 0.5, "float32", seed));
  const out = tf.variable(tf.randomNormal([4, vocab], 0, 0.5, "float32", seed + 1));
  let calls = 0;
  const model = (ids: tf.Tensor2D): tf.Tensor3D =>
    tf.tidy(() => {
      calls++;
      const [b, l] = ids.shape;
      // One-hot × embedding, not tf.gather: its gradient needs UnsortedSegmentSum, which tfjs-wasm lacks.
      const hidden = tf.matMul(tf.oneHot(tf.reshape(ids, [-1]) as tf.Tensor1D, vocab), embedding);
      return tf.reshape(tf.matMul(hidden, out), [b, l, vocab]) as tf.Tensor3D;
    });
  return { model, variables: [embedding, out], calls: () => calls, dispose: () => tf.dispose([embedding, out]) };
}

async function snapshot(variables: readonly tf.Variable[], optimizer: tf.Optimizer): Promise<Float32Array[]> {
  const weights = await optimizer.getWeights();
  const all = [...variables, ...weights.map((w) => w.tensor)];
  return Promise.all(all.map(async (t) => Float32Array.from(await t.data())));
}

function expectAllZeroMetrics(metrics: Record<string, number | undefined>): void {
  for (const [name, value] of Object.entries(metrics)) expect(value === 0 || value === undefined, name).toBe(true);
}

describe.each(["cpu", "wasm"] as const)("the empty step on tfjs@%s", (name: TfjsBackendName) => {
  beforeAll(async () => {
    const status = await useTfjsBackend(name);
    expect(status.available, status.reason).toBe(true);
  });

  it("tfjsBackend: every kernel on B = 0 is the reference's no-op (loss 0, every metric 0, empty outputs)", async () => {
    for (const options of [{}, EVERY_OPTION, { ...lossPresets.trl, aggregation: "grpo" as const }]) {
      const withEntropy = { logp: { data: [], shape: [0, 5] as [number, number] }, advantages: [] };
      const inputs = { ...withEntropy, entropy: withEntropy.logp, refLogp: withEntropy.logp };
      const result = await tfjsBackend.policyLoss(inputs, options);
      expect(result.loss).toBe(0);
      expect(result.grad.length).toBe(0);
      expectAllZeroMetrics({ ...result.metrics });
    }
    // T = 0 with rows: nothing to read either.
    const noColumns = await tfjsBackend.policyLoss({ logp: { data: [], shape: [3, 0] }, advantages: [1, 2, 3] });
    expect(noColumns.loss).toBe(0);
    expectAllZeroMetrics({ ...noColumns.metrics });

    const logits = { data: new Float32Array(0), shape: [0, 4, 32] as [number, number, number] };
    const tokens = { data: [], shape: [0, 4] as [number, number] };
    const forward = await tfjsBackend.tokenLogProbs(logits, tokens, { entropy: true });
    expect([forward.logp.length, forward.entropy!.length, forward.logSumExp.length]).toEqual([0, 0, 0]);
    const backward = await tfjsBackend.tokenLogProbsBackward(logits, tokens, { gradLogp: tokens, gradEntropy: tokens });
    expect(backward.data.length).toBe(0);
    const fused = await tfjsBackend.policyLossFromLogits(
      { logits, tokens, advantages: [], refLogp: tokens },
      { ...EVERY_OPTION, entropyCoef: 0 },
    );
    expect(fused.loss).toBe(0);
    expect(fused.gradLogits.data.length).toBe(0);
    expectAllZeroMetrics({ ...fused.metrics });
  });

  it("the tensor API: policyLossTensors, policyLossTf (with its gradient) and tokenLogProbsTf on B = 0", async () => {
    const before = tf.memory().numTensors;
    const logp = tf.zeros([0, 6]) as tf.Tensor2D;
    const advantages = tf.zeros([0]) as tf.Tensor1D;
    const entropy = tf.zeros([0, 6]) as tf.Tensor2D;
    const refLogp = tf.zeros([0, 6]) as tf.Tensor2D;
    const result = tf.tidy(() => {
      const r = policyLossTensors({ logp, advantages, entropy, refLogp }, EVERY_OPTION);
      return [r.loss, r.counts.tokens, r.counts.clipped, r.counts.approxKl, r.grad];
    });
    const [loss, tokens, clipped, approxKl, grad] = await Promise.all(result.map((t) => t.data()));
    expect([loss![0], tokens![0], clipped![0], approxKl![0], grad!.length]).toEqual([0, 0, 0, 0, 0]);
    tf.dispose(result);

    let counts: Parameters<typeof readPolicyLossMetrics>[0] | undefined;
    const { value, grad: dLogp } = tf.valueAndGrad((x: tf.Tensor) =>
      policyLossTf({ logp: x as tf.Tensor2D, advantages, refLogp, entropy }, EVERY_OPTION, {
        onCounts: (c) => (counts = c),
      }),
    )(logp);
    expect((await value.data())[0]).toBe(0);
    expect(dLogp.shape).toEqual([0, 6]);
    const { metrics } = await readPolicyLossMetrics(counts!);
    expectAllZeroMetrics({ ...metrics });
    tf.dispose([value, dLogp]);

    const logits = tf.zeros([0, 6, 16]) as tf.Tensor3D;
    const ids = tf.zeros([0, 6], "int32") as tf.Tensor2D;
    const out = tokenLogProbsTf(logits, ids, { entropy: true });
    expect(out.shape).toEqual([2, 0, 6]);
    const dLogits = tf.grad((x: tf.Tensor) => tf.sum(tokenLogProbsTf(x as tf.Tensor3D, ids)))(logits);
    expect(dLogits.shape).toEqual([0, 6, 16]);
    tf.dispose([out, dLogits, logp, advantages, entropy, refLogp, logits, ids]);
    expect(tf.memory().numTensors).toBe(before);
  });

  it("packTrainBatch([]) is the empty batch; trainStep on it (and on a batch with no trained token) applies no update: Adam's state and the weights are bit-identical", async () => {
    const empty = packTrainBatch([], []);
    expect(empty.shape).toEqual([0, 2]);
    expect(packTrainBatch([], [], { length: 7 }).shape).toEqual([0, 7]);
    validateTrainBatch(empty);
    // A KL term still needs the (empty) reference log-probs, as for any batch.
    expect(() => validateTrainBatch(empty, EVERY_OPTION)).toThrow(/batch\.refLogp: options\.kl is set/);

    const tiny = tinyModel(12, 7);
    const optimizer = tf.train.adam(0.05);
    try {
      // One real step first, so that Adam has moments (and a step count) that a zero update would change.
      const real = packTrainBatch(
        [
          { tokens: [1, 2, 3, 4], mask: [0, 1, 1, 1], oldLogp: [0, -2, -2, -2], refLogp: [0, -2, -2, -2] },
          { tokens: [5, 6, 7], mask: [0, 1, 1], oldLogp: [0, -2, -2], refLogp: [0, -2, -2] },
        ],
        [1, -1],
      );
      const first = await trainStep({ model: tiny.model, batch: real, optimizer, loss: EVERY_OPTION });
      expect(first.applied).toBe(true);
      expect(first.skipped).toBeUndefined();
      const calls = tiny.calls();
      const before = await snapshot(tiny.variables, optimizer);
      const tensors = tf.memory().numTensors;

      const untrained = { ...real, mask: new Uint8Array(real.mask.length) };
      for (const [batch, reason] of [
        [{ ...empty, refLogp: new Float64Array(0) }, "empty batch"],
        [untrained, "no trained tokens"],
      ] as const) {
        const result = await trainStep({ model: tiny.model, batch, optimizer, loss: EVERY_OPTION, entropy: true });
        expect(result).toMatchObject({ loss: 0, gradNorm: 0, applied: false, skipped: reason });
        expectAllZeroMetrics({ ...result.metrics });
        expect(result.metrics.kl).toBe(0);
        expect(result.metrics.entropy).toBe(0);
      }
      expect(tiny.calls(), "the model is not run").toBe(calls);
      expect(tf.memory().numTensors).toBe(tensors);
      const after = await snapshot(tiny.variables, optimizer);
      expect(after.length).toBe(before.length);
      for (let k = 0; k < before.length; k++) expect(after[k]).toEqual(before[k]);
    } finally {
      optimizer.dispose();
      tiny.dispose();
    }
  });
});

afterAll(async () => {
  await useTfjsBackend("cpu");
});
