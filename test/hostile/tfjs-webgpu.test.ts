/**
 * Class 7 of the bad-input contract on tfjs's webgpu backend (Dawn, lavapipe on CI): the tensor API used to take NaN
 * or +Infinity logits, all −Infinity rows, NaN `oldLogp` and a mask of 0.5 silently (NaN log-probs and losses).
 * Values still on the CPU are checked at once; values that live on the device only are checked by the kernels (or
 * a small summary made on the device) and the error is thrown at the next read of any tensor, instead of values —
 * on both kernel paths (grpo-roc's WGSL kernels and tfjs ops). The error is the typed-array kernels' own.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { lossPresets, ValidationError } from "../../src/index.js";
import {
  assertNoDeviceErrors,
  policyLossTensors,
  policyLossTf,
  releaseWebGpu,
  tfjsBackend,
  tokenLogProbsTf,
  useTfjsBackend,
} from "../../src/tfjs/index.js";
import { inCi } from "../conformance/targets.js";

const status = await useTfjsBackend("webgpu");
afterAll(() => releaseWebGpu());

/** The tfjs webgpu backend's table of tensors, to move values to the device only. */
function deviceOnly<T extends tf.Tensor>(tensor: T): T {
  const backend = tf.backend() as unknown as {
    uploadToGPU(dataId: object): void;
    tensorMap: { get(dataId: object): { values?: unknown } | undefined };
  };
  backend.uploadToGPU(tensor.dataId);
  backend.tensorMap.get(tensor.dataId)!.values = null;
  return tensor;
}

async function rejection(run: () => Promise<unknown>): Promise<unknown> {
  try {
    await run();
  } catch (error) {
    return error;
  }
  return expect.fail("expected a rejection, but the read returned values");
}

describe("tfjs@webgpu: the tensor API's availability", () => {
  it(`tfjs's webgpu backend is available${inCi ? " (required when CI is set)" : ""}`, () => {
    if (inCi) expect(status.available, status.reason).toBe(true);
  });
});

describe.skipIf(!status.available)(
  `tfjs@webgpu: bad values in tensors are refused, at once or at the next read${
    status.available ? "" : ` — skipped: ${status.reason}`
  }`,
  () => {
    beforeAll(async () => {
      await useTfjsBackend("webgpu");
    });

    const [B, T, V] = [2, 3, 8];
    const base = () => Float32Array.from({ length: B * T * V }, (_, k) => Math.sin(k) * 2);
    const cases: [string, (data: Float32Array) => void, string, RegExp][] = [
      ["NaN", (d) => (d[4 * V + 3] = NaN), "logits[1][1]", /holds NaN or \+Infinity/],
      ["+Infinity", (d) => (d[2 * V] = Infinity), "logits[0][2]", /holds NaN or \+Infinity/],
      ["all −Infinity", (d) => d.fill(-Infinity, 5 * V, 6 * V), "logits[1][2]", /every logit is −Infinity/],
    ];

    for (const kernels of ["wgsl", "tfjs"] as const) {
      for (const [label, spoil, path, message] of cases) {
        it(`tokenLogProbsTf (${kernels} kernels), ${label} logits: the next read throws the typed-array kernel's error, never NaN`, async () => {
          const data = base();
          spoil(data);
          const tokens = [
            [0, 1, 2],
            [3, 4, 5],
          ];
          const expected = (await rejection(() =>
            tfjsBackend.tokenLogProbs({ data, shape: [B, T, V] }, tokens),
          )) as ValidationError;
          expect(expected.issues[0]!.path).toBe(path);
          const before = tf.memory().numTensors;
          const logits = tf.tensor3d(data, [B, T, V]);
          const ids = tf.tensor2d(tokens, [B, T], "int32");
          const out = tokenLogProbsTf(logits, ids, { entropy: true, kernels });
          const error = await rejection(() => out.data());
          expect(error).toBeInstanceOf(ValidationError);
          expect((error as ValidationError).issues).toEqual(expected.issues);
          expect((error as Error).message).toMatch(message);
          // Reported once: the next read returns values.
          expect((await logits.data()).length).toBe(B * T * V);
          tf.dispose([out, logits, ids]);
          await assertNoDeviceErrors();
          expect(tf.memory().numTensors).toBe(before);
        });
      }
    }

    it("tokenLogProbsTf: token ids on the CPU are checked at once; on the device only, at the next read (assertNoDeviceErrors too)", async () => {
      const logits = tf.tensor3d(base(), [B, T, V]);
      const bad = tf.tensor2d(
        [
          [0, 1, 2],
          [3, V, 5],
        ],
        [B, T],
        "int32",
      );
      try {
        expect(() => tokenLogProbsTf(logits, bad)).toThrow(
          /tokens\[1\]\[1\]: token id 8 is not an integer in \[0, 8\)/,
        );
        deviceOnly(bad);
        for (const kernels of ["wgsl", "tfjs"] as const) {
          const out = tokenLogProbsTf(logits, bad, { kernels });
          const error = await rejection(() => assertNoDeviceErrors());
          expect((error as Error).message).toMatch(/tokens\[1\]\[1\]: token id 8 is not an integer in \[0, 8\)/);
          out.dispose();
          // The read cached the ids on the CPU: move them back for the next path.
          deviceOnly(bad);
        }
      } finally {
        tf.dispose([logits, bad]);
      }
    });

    it("policyLossTensors and policyLossTf: a mask of 0.5 or a NaN oldLogp where the mask selects, on the device only, throws the typed-array kernel's error at the next read", async () => {
      const shape = [2, 3] as [number, number];
      const logp = [-1, -2, -0.5, -1.5, -1, -2];
      const variants: [string, number[], number[], string, RegExp][] = [
        [
          "mask 0.5",
          [1, 1, 0.5, 1, 0, 1],
          [-1, -2, -0.5, -1.5, -1, -2],
          "inputs.mask[0][2]",
          /mask entries must be 0 or 1/,
        ],
        [
          "mask −1",
          [1, 1, 1, 1, -1, 1],
          [-1, -2, -0.5, -1.5, -1, -2],
          "inputs.mask[1][1]",
          /mask entries must be 0 or 1/,
        ],
        [
          "NaN oldLogp",
          [1, 1, 1, 1, 0, 1],
          [-1, NaN, -0.5, -1.5, -1, -2],
          "inputs.oldLogp[0][1]",
          /at a position the mask selects/,
        ],
      ];
      for (const [label, mask, oldLogp, path, message] of variants) {
        const typed = {
          logp: { data: logp, shape },
          oldLogp: { data: oldLogp, shape },
          mask: { data: mask, shape },
          advantages: [1, -1],
        };
        const expected = (await rejection(() =>
          tfjsBackend.policyLoss(typed, lossPresets.reference),
        )) as ValidationError;
        expect(expected.issues[0]!.path, label).toBe(path);
        const tensors = {
          logp: deviceOnly(tf.tensor2d(logp, shape)),
          oldLogp: deviceOnly(tf.tensor2d(oldLogp, shape)),
          mask: deviceOnly(tf.tensor2d(mask, shape)),
          advantages: deviceOnly(tf.tensor1d([1, -1])),
        };
        try {
          const loss = tf.tidy(() => policyLossTensors(tensors, lossPresets.reference).loss);
          const error = await rejection(() => loss.data());
          loss.dispose();
          expect((error as ValidationError).issues, label).toEqual(expected.issues);
          expect((error as Error).message).toMatch(message);
          Object.values(tensors).forEach(deviceOnly);
          const viaTf = policyLossTf(tensors, lossPresets.reference);
          expect(((await rejection(() => viaTf.data())) as ValidationError).issues).toEqual(expected.issues);
          viaTf.dispose();
        } finally {
          tf.dispose(Object.values(tensors));
        }
      }
      await assertNoDeviceErrors();
    });
  },
);
