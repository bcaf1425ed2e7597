/**
 * The bad-input contract on what is particular to the cuda backend (its float32 numerics, shared with webgpu, are
 * in ./webgpu-cuda-float32.test.ts): bfloat16 logits near the float range, the addon's own handling of saved
 * statistics it cannot use exactly and of its row checks, and the fused pass's float64 loss whose gradient would
 * overflow the float32 gradient pass. On cuda@host (the kernels' code on the CPU: the addon must be built, not a GPU);
 * on a CUDA device too, when there is one.
 */
import { describe, expect, it } from "vitest";
import { lossPresets, ValidationError } from "../../src/index.js";
import { createCudaBackend, cudaBackend, loadCudaAddon } from "../../src/cuda/index.js";
import { float32ToBfloat16 } from "../../src/logprobs/bfloat16.js";
import { inCi } from "../conformance/targets.js";
import { rejection } from "../helpers/errors.js";

const addon = loadCudaAddon();
const host = createCudaBackend({ exec: "host", chunkBytes: 4096 });
const device = await cudaBackend.probe();
const backends = [
  { name: "cuda@host", backend: host, available: addon.loaded, reason: addon.loaded ? "" : addon.reason },
  { name: "cuda", backend: cudaBackend, available: device.available, reason: device.reason },
];

type Shape3 = [number, number, number];

for (const { name, backend, available, reason } of backends) {
  describe.skipIf(!available && !(inCi && name === "cuda@host"))(
    `${name}: what the cuda backend does on hostile inputs${available ? "" : ` — skipped: ${reason}`}`,
    () => {
      it("bfloat16 logits near the float range ([3e38, 3e38], [3.39e38 ×4], ±1e30): the exact log-probs and gradients", async () => {
        const cases: [number[], number, number, number, number[]][] = [
          // values, token, temperature, expected logp, expected gradient for ∂L/∂logp = 1
          [[3e38, 3e38], 0, 1, -Math.LN2, [0.5, -0.5]],
          [[3.39e38, 3.39e38, 3.39e38, 3.39e38], 1, 0.5, -Math.log(4), [-0.5, 1.5, -0.5, -0.5]],
          [[1e30, -1e30, 0, 1e30], 3, 2, -Math.LN2, [-0.25, 0, 0, 0.25]],
        ];
        for (const [values, token, temperature, logp, gradient] of cases) {
          const logits = {
            data: float32ToBfloat16(Float32Array.from(values)),
            shape: [1, 1, values.length] as Shape3,
            dtype: "bfloat16" as const,
          };
          const forward = await backend.tokenLogProbs(logits, [[token]], { temperature, entropy: true });
          expect(forward.logp[0]).toBeCloseTo(logp, 5);
          expect(Number.isFinite(forward.entropy![0])).toBe(true);
          for (const saved of [undefined, forward]) {
            const grad = await backend.tokenLogProbsBackward(logits, [[token]], {
              temperature,
              gradLogp: [[1]],
              saved,
            });
            expect(Array.from(grad.data)).toEqual(gradient);
          }
        }
      });

      it("the fused pass's float64 loss gradient beyond what the float32 gradient pass holds: refused at the logits", async () => {
        const inputs = {
          logits: { data: Float32Array.of(0, 1, 2, 3), shape: [1, 1, 4] as Shape3 },
          tokens: [[2]],
          advantages: [3e38],
        };
        const error = await rejection(() =>
          backend.policyLossFromLogits(inputs, { ...lossPresets.paper, temperature: 0.01 }),
        );
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).issues[0]!.path).toBe("logits[0][0]");
        expect((error as Error).message).toMatch(/∂loss\/∂logp -3e\+38.*beyond the range of float32/);
        // At temperature 1 the same loss fits, and computes.
        const fits = await backend.policyLossFromLogits({ ...inputs, advantages: [1e30] }, lossPresets.paper);
        expect(Array.from(fits.gradLogits.data).every(Number.isFinite)).toBe(true);
      });
    },
  );
}

describe.skipIf(!addon.loaded && !inCi)(
  "the addon on saved statistics it cannot use exactly, and its row checks",
  () => {
    const cuda = addon.loaded ? addon.addon : undefined;
    const [positions, vocab] = [2, 4];
    const logits = Float32Array.of(3.4e38, 3.4e38, 3.4e38, 3.4e38, 0, 1, 2, 3);
    const common = () => ({
      exec: "host",
      logits,
      positions,
      vocab,
      tokens: Int32Array.of(1, 3),
      active: Uint8Array.of(1, 1),
      gradLogp: Float64Array.of(1, 1),
      grad: new Float32Array(positions * vocab),
    });

    it("a saved logsumexp that has lost its log sum (3.4e38 + log 4 = 3.4e38 in float64) is recomputed, not trusted", async () => {
      const args = {
        ...common(),
        savedLse: Float64Array.of(3.4e38, Math.log(Math.exp(0) + Math.exp(1) + Math.exp(2) + Math.exp(3))),
        savedEntropy: Float64Array.of(0, 0),
        outChecks: new Uint8Array(positions),
        outCheckSums: new Float64Array(positions),
      };
      await cuda!.backward(args);
      expect(Array.from(args.grad.subarray(0, 4))).toEqual([-0.25, 0.75, -0.25, -0.25]);
      expect(Array.from(args.outChecks)).toEqual([0, 0]);
      expect(args.outCheckSums[1]).toBeCloseTo(1, 6);
    });

    it("a saved logsumexp of other logits: the row is flagged 4 (mismatch) with its probability sum; NaN and −Infinity rows 1 and 2", async () => {
      const args = {
        ...common(),
        logits: Float32Array.of(0, 1, Number.NaN, 3, -Infinity, -Infinity, -Infinity, -Infinity),
        savedLse: Float64Array.of(5, 5),
        savedEntropy: Float64Array.of(0, 0),
        outChecks: new Uint8Array(positions),
        outCheckSums: new Float64Array(positions),
      };
      await cuda!.backward(args);
      expect(Array.from(args.outChecks)).toEqual([1, 2]);
      const stale = { ...common(), logits: Float32Array.of(9, 9, 9, 9, 0, 1, 2, 3), savedLse: Float64Array.of(5, 4) };
      const checked = {
        ...stale,
        savedEntropy: Float64Array.of(0, 0),
        outChecks: new Uint8Array(positions),
        outCheckSums: new Float64Array(positions),
      };
      await cuda!.backward(checked);
      expect(checked.outChecks[0]).toBe(4);
      expect(checked.outCheckSums[0]).toBeCloseTo(4 * Math.exp(4), 2);
    });

    it("outCheckSums without outChecks is an argument error, as every malformed addon call is", () => {
      let error: unknown;
      try {
        void cuda!.backward({ ...common(), outCheckSums: new Float64Array(positions) });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(TypeError);
      expect((error as Error & { code?: string }).code).toBe("ERR_GRPO_ROC_CUDA_ARGUMENT");
      expect((error as Error).message).toMatch(/outChecks: required with outCheckSums/);
    });
  },
);
