/**
 * Classes 1 and 7 of the bad-input contract on grpo-roc/tfjs's tensor API (tokenLogProbsTf, policyLossTensors,
 * policyLossTf) and on trainStep / packTrainBatch: every options object is strict, and bad values in tensors are
 * refused exactly as the typed-array kernels refuse them (the same issue paths and messages) — token ids outside
 * [0, V) or not integers, masks other than 0/1, NaN or +Infinity logits, all −Infinity rows, non-finite log-probs
 * or advantages where the mask selects — never turned into plausible numbers. Run on tfjs's cpu and wasm backends;
 * test/hostile/tfjs-webgpu.test.ts runs the webgpu side (checked at the next read).
 */
import * as tf from "@tensorflow/tfjs";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossInputs, ValidationError } from "../../src/index.js";
import {
  packTrainBatch,
  policyLossTensors,
  policyLossTf,
  type TfjsBackendName,
  tfjsBackend,
  tokenLogProbsTf,
  trainStep,
  useTfjsBackend,
  validateTrainBatch,
} from "../../src/tfjs/index.js";
import { attempt, attemptAsync, expectRefusedAt, HOSTILE_SEED, misspellings, type Outcome } from "./shared.js";

/** Both calls refused alike: ValidationErrors with the same issues (paths and messages). */
function expectSameRefusal(actual: Outcome<unknown>, expected: Outcome<unknown>, label: string): void {
  expect(expected.ok, `${label}: the typed-array kernel refuses it`).toBe(false);
  expect(actual.ok, `${label}: the tensor API refuses it`).toBe(false);
  const [a, e] = [actual, expected].map((o) => (o as { error: unknown }).error);
  expect(a, label).toBeInstanceOf(ValidationError);
  expect((a as ValidationError).issues, label).toEqual((e as ValidationError).issues);
}

const RUNS = 60;
const assertProperty = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => Promise<void>, runs = RUNS) =>
  fc.assert(fc.asyncProperty(arbitrary, predicate), { seed: HOSTILE_SEED, numRuns: runs });

/** A small [B, T, V] case: logits ~ N(0, 2) (as float32), valid token ids, a mask with column 0 masked. */
const logitsCase = fc
  .record({
    rows: fc.integer({ min: 1, max: 3 }),
    cols: fc.integer({ min: 1, max: 4 }),
    vocab: fc.integer({ min: 2, max: 9 }),
  })
  .chain(({ rows, cols, vocab }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      vocab: fc.constant(vocab),
      logits: fc.array(fc.double({ min: -6, max: 6, noNaN: true }), {
        minLength: rows * cols * vocab,
        maxLength: rows * cols * vocab,
      }),
      tokens: fc.array(fc.integer({ min: 0, max: vocab - 1 }), { minLength: rows * cols, maxLength: rows * cols }),
      at: fc.integer({ min: 0, max: rows * cols - 1 }),
    }),
  );

const BAD_TOKEN_IDS = [-1, 1.5, NaN, Infinity, 2 ** 31] as const;

describe.each(["cpu", "wasm"] as const)("the tfjs tensor API on tfjs@%s", (name: TfjsBackendName) => {
  beforeAll(async () => {
    const status = await useTfjsBackend(name);
    expect(status.available, status.reason).toBe(true);
  });

  it("tokenLogProbsTf: a token id ≥ V, negative, fractional or NaN is refused as tfjsBackend.tokenLogProbs refuses it", async () => {
    await assertProperty(
      fc.tuple(
        logitsCase,
        fc.oneof(
          fc.constantFrom(...BAD_TOKEN_IDS),
          fc.integer({ min: 0, max: 40 }).map((k) => -1 - k),
          fc.constant("V"),
        ),
      ),
      async ([c, bad]) => {
        const tokens = Float32Array.from(c.tokens);
        tokens[c.at] = bad === "V" ? c.vocab : bad;
        const expected = await attemptAsync(() =>
          tfjsBackend.tokenLogProbs(
            { data: Float32Array.from(c.logits), shape: [c.rows, c.cols, c.vocab] },
            {
              data: tokens,
              shape: [c.rows, c.cols],
            },
          ),
        );
        const before = tf.memory().numTensors;
        const logits = tf.tensor3d(c.logits, [c.rows, c.cols, c.vocab]);
        const ids = tf.tensor2d(
          tokens,
          [c.rows, c.cols],
          Number.isInteger(tokens[c.at]) && Math.abs(tokens[c.at]!) < 2 ** 31 ? "int32" : "float32",
        );
        try {
          const actual = attempt(() => tokenLogProbsTf(logits, ids, { entropy: true }).dispose());
          expectSameRefusal(actual, expected, `token id ${tokens[c.at]} at ${c.at}`);
          const gradient = attempt(() =>
            tf.grad((x: tf.Tensor) => tf.sum(tokenLogProbsTf(x as tf.Tensor3D, ids)))(logits),
          );
          expectSameRefusal(gradient, expected, "under tf.grad");
        } finally {
          tf.dispose([logits, ids]);
        }
        expect(tf.memory().numTensors, "no tensor leaks").toBe(before);
      },
    );
  });

  it("tokenLogProbsTf: NaN or +Infinity among a position's logits, or all −Infinity, is the typed-array kernel's error at logits[b][t]", async () => {
    await assertProperty(
      fc.tuple(logitsCase, fc.constantFrom("NaN", "+Infinity", "all −Infinity"), fc.nat()),
      async ([c, kind, v]) => {
        const data = Float32Array.from(c.logits);
        const row = c.at * c.vocab;
        if (kind === "all −Infinity") data.fill(-Infinity, row, row + c.vocab);
        else data[row + (v % c.vocab)] = kind === "NaN" ? NaN : Infinity;
        const tokens = { data: Float32Array.from(c.tokens), shape: [c.rows, c.cols] as [number, number] };
        const expected = await attemptAsync(() =>
          tfjsBackend.tokenLogProbs({ data, shape: [c.rows, c.cols, c.vocab] }, tokens),
        );
        const before = tf.memory().numTensors;
        const logits = tf.tensor3d(data, [c.rows, c.cols, c.vocab]);
        const ids = tf.tensor2d(c.tokens, [c.rows, c.cols], "int32");
        try {
          expectSameRefusal(
            attempt(() => tokenLogProbsTf(logits, ids).dispose()),
            expected,
            kind,
          );
          const { value } = attempt(() =>
            tf.grad((x: tf.Tensor) => tf.sum(tokenLogProbsTf(x as tf.Tensor3D, ids)))(logits),
          ) as { value?: tf.Tensor };
          expect(value, "no gradient of invalid logits").toBeUndefined();
        } finally {
          tf.dispose([logits, ids]);
        }
        expect(tf.memory().numTensors).toBe(before);
      },
    );
  });

  it("policyLossTensors and policyLossTf: masks of 2, 0.5, −1, NaN; NaN or ±Infinity logp, oldLogp or advantages where the mask selects: refused as tfjsBackend.policyLoss refuses them", async () => {
    const fields = [
      "mask",
      "logp",
      "oldLogp",
      "perTokenAdvantages",
      "rowAdvantages",
      "refLogp",
      "importanceWeights",
      "entropy",
    ] as const;
    const badValue = fc.constantFrom(2, 0.5, -1, NaN, Infinity, -Infinity);
    await assertProperty(
      fc.record({
        rows: fc.integer({ min: 1, max: 3 }),
        cols: fc.integer({ min: 1, max: 5 }),
        field: fc.constantFrom(...fields),
        bad: badValue,
        at: fc.nat(),
        seed: fc.integer({ min: 1, max: 1000 }),
      }),
      async ({ rows, cols, field, bad, at, seed }) => {
        const n = rows * cols;
        const i = at % n;
        const values = (offset: number) =>
          Float32Array.from({ length: n }, (_, k) => -0.5 - ((k * 37 + seed + offset) % 7) / 4);
        const matrices = {
          logp: values(0),
          oldLogp: values(1),
          mask: Float32Array.from({ length: n }, (_, k) => (k === i ? 1 : (k + seed) % 3 === 0 ? 0 : 1)),
          refLogp: values(2),
          importanceWeights: Float32Array.from({ length: n }, () => 1),
          entropy: Float32Array.from({ length: n }, () => 0.7),
          advantages: values(3),
        };
        const rowAdvantages = Float32Array.from({ length: rows }, (_, b) => (b % 2 === 0 ? 1 : -1));
        const target = field === "perTokenAdvantages" ? "advantages" : field === "rowAdvantages" ? undefined : field;
        if (target !== undefined) matrices[target][i] = bad;
        else rowAdvantages[Math.floor(i / cols)] = bad;
        if (field === "mask" && (bad === 0 || bad === 1)) return;
        const perToken = field === "perTokenAdvantages";
        const options = { ...lossPresets.reference, kl: { kind: "k1" as const, coef: 0.1 }, entropyCoef: 0.01 };
        const shape = [rows, cols] as [number, number];
        const typed: PolicyLossInputs = {
          logp: { data: matrices.logp, shape },
          oldLogp: { data: matrices.oldLogp, shape },
          mask: { data: matrices.mask, shape },
          refLogp: { data: matrices.refLogp, shape },
          importanceWeights: { data: matrices.importanceWeights, shape },
          entropy: { data: matrices.entropy, shape },
          advantages: perToken ? { data: matrices.advantages, shape } : rowAdvantages,
        };
        const expected = await attemptAsync(() => tfjsBackend.policyLoss(typed, options));
        if (expected.ok) {
          // A value the loss never reads: accepted alike (a non-finite one only where the mask is 0).
          expect(Number.isFinite(expected.value.loss)).toBe(true);
          return;
        }
        const before = tf.memory().numTensors;
        const tensors = {
          logp: tf.tensor2d(matrices.logp, shape),
          oldLogp: tf.tensor2d(matrices.oldLogp, shape),
          mask: tf.tensor2d(matrices.mask, shape),
          refLogp: tf.tensor2d(matrices.refLogp, shape),
          importanceWeights: tf.tensor2d(matrices.importanceWeights, shape),
          entropy: tf.tensor2d(matrices.entropy, shape),
          advantages: perToken ? tf.tensor2d(matrices.advantages, shape) : tf.tensor1d(rowAdvantages),
        };
        try {
          expectSameRefusal(
            attempt(() => tf.tidy(() => policyLossTensors(tensors, options).loss)),
            expected,
            field,
          );
          expectSameRefusal(
            attempt(() => policyLossTf(tensors, options)),
            expected,
            `policyLossTf, ${field}`,
          );
          const gradient = attempt(() =>
            tf.grad((x: tf.Tensor) => policyLossTf({ ...tensors, logp: x as tf.Tensor2D }, options))(tensors.logp),
          );
          expectSameRefusal(gradient, expected, `under tf.grad, ${field}`);
        } finally {
          tf.dispose(Object.values(tensors));
        }
        expect(tf.memory().numTensors).toBe(before);
      },
      120,
    );
  });

  it("the tensor API's options, inputs and hooks are strict: a misspelt key is refused at its path with the key meant", () => {
    const logits = tf.zeros([1, 2, 4]) as tf.Tensor3D;
    const ids = tf.zeros([1, 2], "int32") as tf.Tensor2D;
    const logp = tf.fill([1, 2], -1) as tf.Tensor2D;
    const advantages = tf.ones([1]) as tf.Tensor1D;
    const inputs = { logp, oldLogp: logp, advantages, mask: tf.ones([1, 2]) as tf.Tensor2D };
    try {
      for (const key of ["temperature", "entropy", "kernels"]) {
        for (const typo of misspellings(key)) {
          expectRefusedAt(
            attempt(() => tokenLogProbsTf(logits, ids, { [typo]: 1 } as never)),
            `options.${typo}`,
            /did you mean|unknown key/,
          );
        }
      }
      for (const key of Object.keys(inputs)) {
        for (const typo of misspellings(key).slice(0, 6)) {
          const misspelt = { ...inputs, [typo]: (inputs as Record<string, tf.Tensor>)[key] };
          expectRefusedAt(
            attempt(() => policyLossTensors(misspelt as never)),
            `inputs.${typo}`,
            /unknown key/,
          );
          expectRefusedAt(
            attempt(() => policyLossTf(misspelt as never)),
            `inputs.${typo}`,
            /unknown key/,
          );
        }
      }
      expectRefusedAt(
        attempt(() => policyLossTf(inputs, {}, { onCount: () => {} } as never)),
        "hooks.onCount",
        /did you mean "onCounts"/,
      );
      expectRefusedAt(
        attempt(() => policyLossTf(inputs, { clipHihg: 0.3 } as never)),
        "options.clipHihg",
        /did you mean "clipHigh"/,
      );
      expectRefusedAt(
        attempt(() => policyLossTensors({ ...inputs, logp: [[-1, -1]] } as never)),
        "inputs.logp",
        /tf\.Tensor/,
      );
      expectRefusedAt(
        attempt(() => tokenLogProbsTf([[[0]]] as never, ids)),
        "logits",
        /tf\.Tensor/,
      );
    } finally {
      tf.dispose([logits, ids, logp, advantages, inputs.mask]);
    }
  });
});

describe("trainStep, TrainBatch and packTrainBatch are strict; useTfjsBackend refuses a name it does not know", () => {
  beforeAll(async () => {
    await useTfjsBackend("cpu");
  });

  const batch = () =>
    packTrainBatch(
      [
        { tokens: [1, 2, 3], mask: [0, 1, 1], oldLogp: [0, -1, -1] },
        { tokens: [4, 5], mask: [0, 1], oldLogp: [0, -1] },
      ],
      [1, -1],
    );
  const model = (ids: tf.Tensor2D) => tf.tidy(() => tf.zeros([...ids.shape, 8]) as tf.Tensor3D);

  it("a misspelt key of trainStep's options, of the batch, of packTrainBatch's options or of a rollout: refused at its path, naming the key meant", async () => {
    const optimizer = tf.train.sgd(0.1);
    try {
      const options = {
        model,
        batch: batch(),
        optimizer,
        temperature: 1,
        maxGradNorm: 1,
        vocabSize: 8,
        entropy: true,
        kernels: "tfjs" as const,
      };
      let tried = 0;
      for (const key of Object.keys(options)) {
        for (const typo of misspellings(key).slice(0, 4)) {
          const { [key as keyof typeof options]: value, ...rest } = options;
          const outcome = await attemptAsync(() => trainStep({ ...rest, [typo]: value } as never));
          expect(outcome.ok, typo).toBe(false);
          const error = (outcome as { error: unknown }).error as ValidationError;
          expect(error).toBeInstanceOf(ValidationError);
          tried++;
        }
      }
      expect(tried).toBeGreaterThan(20);
      expectRefusedAt(
        await attemptAsync(() => trainStep({ ...options, maxGradNrom: 1 } as never)),
        "options.maxGradNrom",
        /did you mean "maxGradNorm"/,
      );
      for (const key of ["tokens", "mask", "oldLogp", "advantages", "shape"]) {
        for (const typo of misspellings(key).slice(0, 3)) {
          const misspelt = { ...batch(), [typo]: new Float64Array(1) };
          expectRefusedAt(
            attempt(() => validateTrainBatch(misspelt as never)),
            `batch.${typo}`,
            /unknown key/,
          );
        }
      }
      expectRefusedAt(
        attempt(() => validateTrainBatch({ ...batch(), oldLogps: [] } as never)),
        "batch.oldLogps",
        /did you mean "oldLogp"/,
      );
      expectRefusedAt(
        attempt(() => packTrainBatch([], [], { padID: 3 } as never)),
        "options.padID",
        /did you mean "padId"/,
      );
      expectRefusedAt(
        attempt(() => packTrainBatch([{ tokens: [1, 2], mask: [0, 1], oldlogp: [0, -1] } as never], [1])),
        "rollouts[0].oldlogp",
        /did you mean "oldLogp"/,
      );
    } finally {
      optimizer.dispose();
    }
  });

  it("useTfjsBackend: a name other than cpu, wasm or webgpu (a typo, an object) is a ValidationError, not an unavailable backend", async () => {
    for (const bad of ["wsam", "CPU", "", { name: "cpu" }, null, 3]) {
      const outcome = await attemptAsync(() => useTfjsBackend(bad as never));
      expectRefusedAt(outcome, "name", /"cpu", "wasm" or "webgpu"/);
    }
    expect(tf.getBackend()).toBe("cpu");
  });
});

afterAll(async () => {
  await useTfjsBackend("cpu");
});
