/**
 * Classes 2 and 7 of the bad-input contract on grpo-roc/tfjs (float32): values finite in float64 but beyond float32
 * are refused with a message that says float32, at their position, wherever the kernel would read them (and ignored
 * where it would not); logits anywhere in float32's range give the float64 reference's log-probs, entropy and
 * gradient within the float32 tolerance, relative to the value's own size (|x − ref| ≤ 1e-5·|ref| +
 * 1e-5·(1 + |ref|)); and so do real vocabulary sizes (V = 152,064 and 2^20), where a plain float32 sum over the
 * vocabulary (tfjs-wasm's) was up to 300× over. Run on tfjs's cpu and wasm backends.
 */
import * as tf from "@tensorflow/tfjs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossInputs, tokenLogProbs, tokenLogProbsBackward } from "../../src/index.js";
import {
  packTrainBatch,
  policyLossTensors,
  type TfjsBackendName,
  tfjsBackend,
  tokenLogProbsTf,
  tokenStatistics,
  trainStep,
  useTfjsBackend,
  validateTrainBatch,
} from "../../src/tfjs/index.js";
import { attempt, attemptAsync, expectAllFinite, expectRefusedAt, HOSTILE_SEED, type Outcome } from "./shared.js";

const assertProperty = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, runs = 60) =>
  fc.assert(fc.asyncProperty(arbitrary, predicate), { seed: HOSTILE_SEED, numRuns: runs });

/** The float32 tolerance of a log-prob or an entropy, relative to its own size. */
const logProbBound = (ref: number) => 1e-5 * Math.abs(ref) + 1e-5 * (1 + Math.abs(ref));

function expectCloseToReference(actual: ArrayLike<number>, expected: ArrayLike<number>, label: string): number {
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const [a, e] = [actual[i]!, expected[i]!];
    if (a === e) continue;
    const ratio = Math.abs(a - e) / logProbBound(e);
    worst = Math.max(worst, ratio);
    if (!(ratio <= 1)) expect.fail(`${label}[${i}] is ${a}, the reference's ${e} (${ratio.toFixed(2)}× the tolerance)`);
  }
  return worst;
}

/** Beyond float32 (|x| > 3.4028235e38) but finite in float64. */
const beyondFloat32 = fc
  .oneof(fc.double({ min: 3.5e38, max: 1e308, noNaN: true }), fc.constantFrom(1e39, 3.41e38, Number.MAX_VALUE))
  .chain((x) => fc.constantFrom(x, -x));

const FLOAT32 = /beyond the range of float32 \(±3\.4028235e38\), which this backend computes in/;

describe.each(["cpu", "wasm"] as const)("float32 on tfjs@%s", (name: TfjsBackendName) => {
  beforeAll(async () => {
    const status = await useTfjsBackend(name);
    expect(status.available, status.reason).toBe(true);
  });

  it("a value beyond float32 in any typed-array input the kernel reads is refused at its position, naming float32; where the kernel does not read it, accepted", async () => {
    const fields = [
      "logp",
      "oldLogp",
      "refLogp",
      "importanceWeights",
      "entropy",
      "perTokenAdvantages",
      "rowAdvantages",
      "logits",
      "backwardLogits",
      "gradLogp",
      "gradEntropy",
    ] as const;
    await assertProperty(
      fc.record({ field: fc.constantFrom(...fields), value: beyondFloat32, at: fc.nat(5), masked: fc.boolean() }),
      async ({ field, value, at, masked }) => {
        const [rows, cols, vocab] = [2, 3, 4];
        const i = at;
        const [b, t] = [Math.floor(i / cols), i % cols];
        const mask = Float64Array.from({ length: 6 }, (_, k) => (k === i ? (masked ? 0 : 1) : 1));
        const matrix = (fill: number) => Float64Array.from({ length: 6 }, (_, k) => fill - k / 10);
        let outcome: Outcome<unknown>;
        let path: string;
        if (field === "logits" || field === "backwardLogits" || field === "gradLogp" || field === "gradEntropy") {
          const logits = Float64Array.from({ length: rows * cols * vocab }, (_, k) => Math.sin(k));
          const grads = { gradLogp: matrix(1), gradEntropy: matrix(0.5) };
          if (field === "gradLogp" || field === "gradEntropy") grads[field][i] = value;
          else logits[i * vocab + 2] = value;
          const input = { data: logits, shape: [rows, cols, vocab] as [number, number, number] };
          const tokens = [
            [0, 1, 2],
            [3, 0, 1],
          ];
          const options = { mask: { data: mask, shape: [rows, cols] as [number, number] } };
          outcome =
            field === "logits"
              ? await attemptAsync(() => tfjsBackend.tokenLogProbs(input, tokens, { ...options, entropy: true }))
              : await attemptAsync(() =>
                  tfjsBackend.tokenLogProbsBackward(input, tokens, {
                    ...options,
                    gradLogp: { data: grads.gradLogp, shape: [rows, cols] },
                    gradEntropy: { data: grads.gradEntropy, shape: [rows, cols] },
                  }),
                );
          path =
            field === "logits" || field === "backwardLogits" ? `logits[${b}][${t}][2]` : `options.${field}[${b}][${t}]`;
        } else {
          const values = {
            logp: matrix(-1),
            oldLogp: matrix(-1.1),
            refLogp: matrix(-0.9),
            importanceWeights: matrix(1),
            entropy: matrix(0.7),
            advantages: matrix(0.5),
          };
          const rowAdvantages = Float64Array.from([1, -1]);
          if (field === "rowAdvantages") {
            rowAdvantages[b] = value;
            // The row's only trained token is the one the mask may exclude.
            for (let k = b * cols; k < (b + 1) * cols; k++) mask[k] = masked ? 0 : 1;
          } else {
            // A negative importance weight is refused for its sign first (the reference's rule).
            const named = field === "perTokenAdvantages" ? "advantages" : field;
            values[named][i] = named === "importanceWeights" ? Math.abs(value) : value;
          }
          const shape = [rows, cols] as [number, number];
          const inputs: PolicyLossInputs = {
            logp: { data: values.logp, shape },
            oldLogp: { data: values.oldLogp, shape },
            refLogp: { data: values.refLogp, shape },
            importanceWeights: { data: values.importanceWeights, shape },
            entropy: { data: values.entropy, shape },
            mask: { data: mask, shape },
            advantages: field === "perTokenAdvantages" ? { data: values.advantages, shape } : rowAdvantages,
          };
          const options = { ...lossPresets.reference, kl: { kind: "k1" as const, coef: 0.1 }, entropyCoef: 0.01 };
          outcome = await attemptAsync(() => tfjsBackend.policyLoss(inputs, options));
          const named = field === "perTokenAdvantages" || field === "rowAdvantages" ? "advantages" : field;
          path = field === "rowAdvantages" ? `inputs.advantages[${b}]` : `inputs.${named}[${b}][${t}]`;
        }
        if (masked) {
          expect(outcome.ok, `${field} at a masked position is not read`).toBe(true);
          // (A forward pass's logSumExp is NaN at the positions its mask skips, as documented: left out.)
          const { logSumExp: _skipped, ...value } = (outcome as { value: Record<string, unknown> }).value;
          expectAllFinite(value, field);
        } else {
          expectRefusedAt(outcome, path, FLOAT32);
        }
      },
      150,
    );
  });

  it("options float32 cannot hold (a bound beyond its range, a coefficient it would flush to 0, a temperature whose inverse is not a normal float32, an upstream gradient that overflows in the logits): refused naming float32, on every entry point", async () => {
    const inputs = { logp: [[-1, -2]], oldLogp: [[-1.1, -2]], advantages: [1], entropy: [[0.5, 0.6]] };
    const logits = { data: Float32Array.from([0, 1, 2, 3]), shape: [1, 1, 4] as [number, number, number] };
    const tensors = tf.tidy(() => ({
      logp: tf.tensor2d(inputs.logp),
      oldLogp: tf.tensor2d(inputs.oldLogp),
      advantages: tf.tensor1d(inputs.advantages),
      entropy: tf.tensor2d(inputs.entropy),
      logits: tf.tensor3d([0, 1, 2, 3], [1, 1, 4]),
      ids: tf.tensor2d([[2]], [1, 1], "int32"),
    }));
    const optimizer = tf.train.sgd(0.1);
    const batch = packTrainBatch([{ tokens: [1, 2, 3], mask: [0, 1, 1] }], [1]);
    const model = (ids: tf.Tensor2D) => tf.tidy(() => tf.zeros([...ids.shape, 8]) as tf.Tensor3D);
    const { logits: logitsTensor, ids, ...lossTensors } = tensors;
    try {
      const cases: [() => unknown, string, RegExp][] = [
        [() => tfjsBackend.policyLoss(inputs, { clipHigh: 1e39 }), "options.clipHigh", /beyond the range of float32/],
        [
          () => tfjsBackend.policyLoss(inputs, { entropyCoef: 1e-50 }),
          "options.entropyCoef",
          /smallest normal float32/,
        ],
        [
          () => tfjsBackend.tokenLogProbs(logits, [[2]], { temperature: 1e-39 }),
          "options.temperature",
          /normal float32/,
        ],
        [
          () => tfjsBackend.tokenLogProbsBackward(logits, [[2]], { gradLogp: [[3e38]], temperature: 0.5 }),
          "options.gradLogp[0][0]",
          /beyond the range of float32/,
        ],
        [() => tokenLogProbsTf(logitsTensor, ids, { temperature: 1e-39 }), "options.temperature", /normal float32/],
        [
          () => tf.tidy(() => policyLossTensors(lossTensors, { clipLow: 0.2, dualClip: 1e39 }).loss),
          "options.dualClip",
          /float32/,
        ],
        [() => trainStep({ model, batch, optimizer, loss: { clipHigh: 1e39 } }), "options.loss.clipHigh", /float32/],
        [() => trainStep({ model, batch, optimizer, temperature: 1e-39 }), "options.temperature", /normal float32/],
      ];
      for (const [call, path, message] of cases) {
        expectRefusedAt(await attemptAsync(async () => call()), path, message);
      }
    } finally {
      optimizer.dispose();
      tf.dispose(Object.values(tensors));
    }
  });

  it("trainStep: batch values beyond float32 where the mask trains are refused at batch.<field>[b][t], naming float32", async () => {
    const rollouts = [
      { tokens: [1, 2, 3], mask: [0, 1, 1], oldLogp: [0, -1, -1], refLogp: [0, -1, -1], importanceWeights: [1, 1, 1] },
      {
        tokens: [4, 5, 6],
        mask: [0, 1, 0],
        oldLogp: [0, -1, 5e39],
        refLogp: [0, -1, -1],
        importanceWeights: [1, 1, 1],
      },
    ];
    const options = { ...lossPresets.reference, kl: { kind: "k1" as const, coef: 0.1 } };
    // 5e39 at a masked position is never read.
    validateTrainBatch(packTrainBatch(rollouts, [1, -1]), options);
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          field: fc.constantFrom("oldLogp", "refLogp", "importanceWeights", "advantages"),
          value: beyondFloat32,
          t: fc.constantFrom(1, 2),
        }),
        async ({ field, value, t }) => {
          const copy = rollouts.map((r) => ({
            ...r,
            oldLogp: [...r.oldLogp],
            refLogp: [...r.refLogp],
            importanceWeights: [...r.importanceWeights],
          }));
          const advantages = [1, -1];
          if (field === "advantages") advantages[0] = value;
          else copy[0]![field][t] = value;
          const batch = packTrainBatch(copy, advantages);
          const model = (ids: tf.Tensor2D) => tf.tidy(() => tf.zeros([...ids.shape, 8]) as tf.Tensor3D);
          const optimizer = tf.train.sgd(0.1);
          try {
            const outcome = await attemptAsync(() => trainStep({ model, batch, optimizer, loss: options }));
            expectRefusedAt(
              outcome,
              field === "advantages" ? "batch.advantages[0]" : `batch.${field}[0][${t}]`,
              FLOAT32,
            );
          } finally {
            optimizer.dispose();
          }
        },
      ),
      { seed: HOSTILE_SEED, numRuns: 30 },
    );
  });
});

describe.each(["cpu", "wasm"] as const)("log-prob numerics on tfjs@%s", (name: TfjsBackendName) => {
  beforeAll(async () => {
    const status = await useTfjsBackend(name);
    expect(status.available, status.reason).toBe(true);
  });

  it("[3e38, 3e38]: logp −log 2 and gradient [0.5, −0.5]; [3.4e38 ×4]: entropy log 4 — typed arrays and the tensor API", async () => {
    const pair = { data: Float32Array.from([3e38, 3e38]), shape: [1, 1, 2] as [number, number, number] };
    const forward = await tfjsBackend.tokenLogProbs(pair, [[1]], { entropy: true });
    expect(forward.logp[0]).toBeCloseTo(-Math.LN2, 6);
    expect(forward.entropy![0]).toBeCloseTo(Math.LN2, 6);
    expect(forward.logSumExp[0]).toBeCloseTo(3e38, -32);
    const grad = await tfjsBackend.tokenLogProbsBackward(pair, [[0]], { gradLogp: [[1]] });
    expect(Array.from(grad.data)).toEqual([0.5, -0.5]);

    const four = { data: new Float32Array(4).fill(3.4e38), shape: [1, 1, 4] as [number, number, number] };
    const h = await tfjsBackend.tokenLogProbs(four, [[2]], { entropy: true });
    expect(h.entropy![0]).toBeCloseTo(Math.log(4), 6);
    expect(h.logp[0]).toBeCloseTo(-Math.log(4), 6);
    const hg = await tfjsBackend.tokenLogProbsBackward(four, [[2]], { gradLogp: [[1]], gradEntropy: [[1]] });
    expectAllFinite(hg.data);
    expect(Array.from(hg.data)).toEqual([-0.25, -0.25, 0.75, -0.25]);

    const logits = tf.tensor3d([3e38, 3e38], [1, 1, 2]);
    const ids = tf.tensor2d([[0]], [1, 1], "int32");
    const { value, grad: dLogits } = tf.valueAndGrad((x: tf.Tensor) => tf.sum(tokenLogProbsTf(x as tf.Tensor3D, ids)))(
      logits,
    );
    expect((await value.data())[0]).toBeCloseTo(-Math.LN2, 6);
    expect(Array.from(await dLogits.data())).toEqual([0.5, -0.5]);
    const entropy = tokenLogProbsTf(tf.fill([1, 1, 4], 3.4e38) as tf.Tensor3D, ids, { entropy: true });
    expect((await entropy.data())[1]).toBeCloseTo(Math.log(4), 6);
    tf.dispose([logits, ids, value, dLogits, entropy]);
  });

  it("logits anywhere in float32's range (±3.4e38, ±1e30, −Infinity, ordinary), τ from 0.25 to 4: the reference's logp, entropy and gradient, or the reference's own refusal", async () => {
    const logit = fc.oneof(
      { weight: 4, arbitrary: fc.double({ min: -8, max: 8, noNaN: true }) },
      { weight: 2, arbitrary: fc.constantFrom(3.4e38, -3.4e38, 3e38, -3e38, 1e30, -1e30, 1e20, 88, -104, 1e-40) },
      { weight: 1, arbitrary: fc.constant(-Infinity) },
      { weight: 1, arbitrary: fc.float({ noNaN: true, noDefaultInfinity: true }) },
    );
    await assertProperty(
      fc
        .record({
          vocab: fc.integer({ min: 1, max: 7 }),
          temperature: fc.constantFrom(0.25, 0.5, 0.9, 1, 2, 4),
          seed: fc.nat(),
        })
        .chain(({ vocab, temperature, seed }) =>
          fc.record({
            vocab: fc.constant(vocab),
            temperature: fc.constant(temperature),
            logits: fc.array(logit, { minLength: 2 * vocab, maxLength: 2 * vocab }),
            tokens: fc.tuple(fc.integer({ min: 0, max: vocab - 1 }), fc.integer({ min: 0, max: vocab - 1 })),
            g: fc.tuple(fc.double({ min: -2, max: 2, noNaN: true }), fc.double({ min: -2, max: 2, noNaN: true })),
            seed: fc.constant(seed),
          }),
        ),
      async ({ vocab, temperature, logits, tokens, g }) => {
        const data = Float32Array.from(logits);
        const input = { data, shape: [1, 2, vocab] as [number, number, number] };
        const ids = [[tokens[0], tokens[1]]];
        const options = { entropy: true, temperature };
        const reference = attempt(() => tokenLogProbs(input, ids, options));
        const actual = await attemptAsync(() => tfjsBackend.tokenLogProbs(input, ids, options));
        if (!reference.ok) {
          expect(actual.ok, "refused as the reference refuses").toBe(false);
          expect((actual as { error: Error }).error.message).toBe((reference.error as Error).message);
          return;
        }
        expect(actual.ok, actual.ok ? "" : String((actual as { error: unknown }).error)).toBe(true);
        const [a, r] = [(actual as { value: typeof reference.value }).value, reference.value];
        expectCloseToReference(a.logp, r.logp, "logp");
        expectCloseToReference(a.entropy!, r.entropy!, "entropy");
        expectCloseToReference(a.logSumExp, r.logSumExp, "logSumExp");
        const backward = { temperature, gradLogp: [[g[0], g[1]]], gradEntropy: [[g[1], g[0]]] };
        const grad = await tfjsBackend.tokenLogProbsBackward(input, ids, backward);
        const refGrad = tokenLogProbsBackward(input, ids, backward);
        expectAllFinite(grad.data, "∂L/∂logits");
        for (let i = 0; i < 2; i++) {
          // Every entry is g·(1[v = token] − p) − h·p·(log p + H), bounded by (|g| + |h|·(1 + |H|)) / τ; below
          // float32's smallest normal number (2^-126) an upstream gradient keeps no relative precision in float32.
          const scale = (Math.abs(g[0]) + Math.abs(g[1]) * (2 + Math.abs(r.entropy![i]!))) / temperature;
          for (let v = 0; v < vocab; v++) {
            const [x, y] = [grad.data[i * vocab + v]!, refGrad.data[i * vocab + v]!];
            if (!(Math.abs(x - y) <= 1e-5 * Math.abs(y) + 1e-5 * scale + 2 ** -126))
              expect.fail(`∂L/∂logits[${i}][${v}] is ${x}, the reference's ${y}`);
          }
        }
      },
      200,
    );
  });

  it.each([152_064, 2 ** 20])(
    "V = %i: tokenStatistics within the tolerance of the float64 reference (it was up to 300× over on wasm)",
    async (vocab) => {
      const positions = 4;
      let state = 0x2545f491 ^ vocab;
      const random = () => {
        state ^= state << 13;
        state ^= state >>> 17;
        state ^= state << 5;
        return (state >>> 0) / 2 ** 32;
      };
      const normal = () => Math.sqrt(-2 * Math.log(random() + 1e-12)) * Math.cos(2 * Math.PI * random());
      for (const [label, logit, peak] of [
        ["N(8, 3)", () => 8 + 3 * normal(), undefined],
        ["N(0, 2) with one logit of 25", () => 2 * normal(), 25],
      ] as const) {
        for (const temperature of [1, 0.7]) {
          const data = new Float32Array(positions * vocab).map(logit);
          const tokens = Int32Array.from({ length: positions }, () => Math.floor(random() * vocab));
          if (peak !== undefined) for (let i = 0; i < positions; i++) data[i * vocab + ((i * 7919) % vocab)] = peak;
          const reference = tokenLogProbs(
            { data, shape: [1, positions, vocab] },
            { data: tokens, shape: [1, positions] },
            {
              entropy: true,
              temperature,
            },
          );
          const stats = tf.tidy(() => {
            const s = tokenStatistics(tf.tensor2d(data, [positions, vocab]), tf.tensor1d(tokens, "int32"), temperature);
            return [s.logp, s.entropy];
          });
          const [logp, entropy] = await Promise.all(stats.map((t) => t.data()));
          tf.dispose(stats);
          const at = `${label}, τ = ${temperature}`;
          expectCloseToReference(logp!, reference.logp, `logp (${at})`);
          expectCloseToReference(entropy!, reference.entropy!, `entropy (${at})`);
        }
      }
    },
  );
});

afterAll(async () => {
  await useTfjsBackend("cpu");
});
