/**
 * The bad-input contract on the backends whose kernels grpo-roc writes and which compute in float32: webgpu (WGSL;
 * lavapipe here), webgpu@chunked (the same with a 4 KiB binding limit), cuda@host (the CUDA kernels' own code on
 * the CPU), and wasm and wasm@chunked (the WebAssembly SIMD kernels, 4 KiB chunks for the second). Class 7 of the
 * hostile suite (backends that disagree with the reference on edge cases) and class 2's
 * log-prob numerics as they apply to these kernels:
 *
 *   - logits near the float32 range (3e38, ±1e30 beside ordinary ones, at temperatures 0.5 to 2) give the float64
 *     oracle's log-probs, entropies and gradients, within float32's tolerance relative to their own size;
 *   - vocabularies of 152,064 and 2^20 meet that tolerance too;
 *   - inputs finite in float64 but not in float32 (1e39), or whose float32 computation would overflow, are refused
 *     with a ValidationError that names the field, the position and float32;
 *   - the loss from logits names the logits' position and the real cause (a sampled token of logit −Infinity), not
 *     a log-prob the caller never passed;
 *   - a backward pass over saved statistics still finds NaN, +Infinity and −Infinity-only rows, and logits that
 *     changed since the forward pass.
 *
 * Every expectation is computed here, in float64, from the float32 values the kernels read (`oracle`). The property
 * runs from the hostile suite's seed (GRPO_ROC_HOSTILE_SEED); fast-check prints it with the counterexample.
 */
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { referenceBackend } from "../../src/backends/index.js";
import { lossPresets, type TokenLogProbs, ValidationError } from "../../src/index.js";
import { releaseWebGpuBackend } from "../../src/webgpu/index.js";
import { inCi, prepareTarget, type Target } from "../conformance/targets.js";
import { rng } from "../helpers/rng.js";
import { HOSTILE_SEED } from "./shared.js";
import { rejection, expectRefused } from "../helpers/errors.js";

const FLOAT32_MAX = 3.4028234663852886e38;

const targets = await Promise.all(
  (["webgpu", "webgpu@chunked", "cuda@host", "wasm", "wasm@chunked"] as const).map((name) => prepareTarget(name)),
);

// dawn.node keeps the process alive while its root object and device live.
afterAll(() => releaseWebGpuBackend());

type Shape3 = [number, number, number];

// ---------------------------------------------------------------------------------------------------------------
// The float64 oracle

interface Oracle {
  readonly logp: number;
  readonly entropy: number;
  readonly logSumExp: number;
  /** The row's largest logit and log Σ e^((z − max)/τ), kept apart (3e38 + log 4 is 3e38 even in float64). */
  readonly shift: number;
  readonly logSum: number;
}

/** One row's statistics in float64 from the values the kernels read; undefined for a row of −Infinity only. */
function oracle(row: ArrayLike<number>, token: number, temperature: number): Oracle | undefined {
  let max = -Infinity;
  for (let v = 0; v < row.length; v++) if (row[v]! > max) max = row[v]!;
  if (max === -Infinity) return undefined;
  let sum = 0;
  let weighted = 0;
  for (let v = 0; v < row.length; v++) {
    if (row[v] === -Infinity) continue;
    const d = (row[v]! - max) / temperature;
    const e = Math.exp(d);
    sum += e;
    if (e > 0) weighted += e * d;
  }
  const logSum = Math.log(sum);
  return {
    logp: (row[token]! - max) / temperature - logSum,
    entropy: logSum - weighted / sum,
    logSumExp: max / temperature + logSum,
    shift: max,
    logSum,
  };
}

/** ∂(g·logp + h·H)/∂z of one row, in float64. */
function oracleGradient(
  row: ArrayLike<number>,
  token: number,
  o: Oracle,
  g: number,
  h: number,
  temperature: number,
): Float64Array {
  const out = new Float64Array(row.length);
  for (let v = 0; v < row.length; v++) {
    const logProb = (row[v]! - o.shift) / temperature - o.logSum;
    const p = Math.exp(logProb);
    const entropyTerm = h === 0 || p === 0 ? 0 : -h * p * (logProb + o.entropy);
    out[v] = (g * ((v === token ? 1 : 0) - p) + entropyTerm) / temperature;
  }
  return out;
}

/** float32's tolerance for a log-prob, an entropy or a logsumexp, relative to its own size (−Infinity only equals itself). */
function expectCloseToOwnSize(actual: number, expected: number, label: string): void {
  if (!Number.isFinite(expected)) {
    expect(actual, label).toBe(expected);
    return;
  }
  const error = Math.abs(actual - expected);
  const allowed = 1e-5 * Math.abs(expected) + 1e-5 * (1 + Math.abs(expected));
  expect(error <= allowed, `${label}: ${actual} against ${expected} (|error| ${error} > ${allowed})`).toBe(true);
}

/**
 * A gradient row within float32's tolerance: rtol 1e-5, atol 1e-5·(|g| + |h|·(1 + |H|))/τ, and float32's smallest
 * normal (a kernel may flush subnormals to 0).
 */
function expectGradientClose(
  actual: ArrayLike<number>,
  expected: Float64Array,
  scale: number,
  label: string,
  offset = 0,
): void {
  for (let v = 0; v < expected.length; v++) {
    const got = actual[offset + v]!;
    const want = expected[v]!;
    const allowed = 1e-5 * Math.abs(want) + 1e-5 * scale + 2 ** -126;
    if (!(Math.abs(got - want) <= allowed)) expect.fail(`${label}[${v}]: ${got} against ${want} (allowed ±${allowed})`);
  }
}

const gradientScale = (g: number, h: number, o: Oracle, temperature: number) =>
  (Math.abs(g) + Math.abs(h) * (1 + Math.abs(o.entropy))) / temperature;

const one = (values: readonly number[]) => ({
  data: Float32Array.from(values),
  shape: [1, 1, values.length] as Shape3,
});

// ---------------------------------------------------------------------------------------------------------------

/** Rows near the float32 range: [title, logits, sampled token, temperature]. */
const HUGE: readonly (readonly [string, readonly number[], number, number])[] = [
  ["[3e38, 3e38]", [3e38, 3e38], 0, 1],
  ["[3.4e38 ×4]", [3.4e38, 3.4e38, 3.4e38, 3.4e38], 2, 1],
  ["[3.4e38 ×4] at τ = 0.5", [3.4e38, 3.4e38, 3.4e38, 3.4e38], 1, 0.5],
  ["[1e30, −1e30, 0, 1e30]", [1e30, -1e30, 0, 1e30], 3, 1],
  ["[1e30, −1e30, 0, 1e30] at τ = 2", [1e30, -1e30, 0, 1e30], 0, 2],
  ["[−3e38, 2e38, 1, 3e38] at τ = 0.5", [-3e38, 2e38, 1, 3e38], 3, 0.5],
  ["[−3e38, 2e38, 1, 3e38] at τ = 2", [-3e38, 2e38, 1, 3e38], 1, 2],
  ["[3.4e38, −1e38, 0]: a token 3.4e38 below the max", [3.4e38, -1e38, 0], 2, 1],
  ["[−3.4e38 ×3]", [-3.4e38, -3.4e38, -3.4e38], 1, 1],
  ["[1e30, −Infinity, 5, 1e30 − 2^77] at τ = 0.7", [1e30, -Infinity, 5, 1e30 - 2 ** 77], 3, 0.7],
];

for (const t of targets) {
  const b = t.backend;
  const skipped = t.available ? "" : ` — skipped: ${t.reason}`;
  describe.skipIf(!t.available && !inCi)(`${t.name}: float32 kernels on hostile inputs${skipped}`, () => {
    describe("logits near the float32 range: the float64 oracle, relative to each value's own size", () => {
      it.each(HUGE)("%s: log-probs, entropy, logsumexp and gradients (fresh, over saved statistics)", async (...c) => {
        const [, values, token, temperature] = c;
        const logits = one(values);
        const row = logits.data;
        const o = oracle(row, token, temperature)!;
        const tokens = [[token]];
        const forward = await b.tokenLogProbs(logits, tokens, { entropy: true, temperature });
        expectCloseToOwnSize(forward.logp[0]!, o.logp, "logp");
        expectCloseToOwnSize(forward.entropy![0]!, o.entropy, "entropy");
        expectCloseToOwnSize(forward.logSumExp[0]!, o.logSumExp, "logSumExp");
        const [g, h] = [1, 0.5];
        const expected = oracleGradient(row, token, o, g, h, temperature);
        const scale = gradientScale(g, h, o, temperature);
        const backward = { temperature, gradLogp: [[g]], gradEntropy: [[h]] };
        const referenceForward = await referenceBackend.tokenLogProbs(logits, tokens, { entropy: true, temperature });
        for (const [how, saved] of [
          ["fresh statistics", undefined],
          ["saved by this backend", forward],
          ["saved by the reference", referenceForward],
        ] as const) {
          const grad = await b.tokenLogProbsBackward(logits, tokens, { ...backward, saved });
          expectGradientClose(grad.data, expected, scale, `∂L/∂logits, ${how}`);
        }
      });

      it("[3e38, 3e38]: logp −0.693147 and, backward from ∂L/∂logp = 1, [0.5, −0.5]; [3.4e38 ×4]: entropy log 4", async () => {
        const pair = await b.tokenLogProbs(one([3e38, 3e38]), [[0]]);
        expect(pair.logp[0]).toBeCloseTo(-Math.LN2, 6);
        const grad = await b.tokenLogProbsBackward(one([3e38, 3e38]), [[0]], { gradLogp: [[1]] });
        expect(Array.from(grad.data)).toEqual([0.5, -0.5]);
        const four = await b.tokenLogProbs(one([3.4e38, 3.4e38, 3.4e38, 3.4e38]), [[0]], { entropy: true });
        expect(four.entropy![0]).toBeCloseTo(Math.log(4), 6);
      });

      it.each(HUGE)("%s: the loss from logits (fused) has the oracle's log-prob and gradient", async (...c) => {
        const [, values, token, temperature] = c;
        const logits = one(values);
        const o = oracle(logits.data, token, temperature)!;
        const result = await b.policyLossFromLogits(
          { logits, tokens: [[token]], advantages: [1] },
          { ...lossPresets.paper, temperature },
        );
        expectCloseToOwnSize(result.logp[0]!, o.logp, "logp");
        const g = result.grad[0]!;
        const expected = oracleGradient(logits.data, token, o, g, 0, temperature);
        expectGradientClose(result.gradLogits.data, expected, gradientScale(g, 0, o, temperature), "∂loss/∂logits");
      });

      it("any mix of ordinary, huge, −Infinity and extreme logits at τ 0.5 to 2: the oracle, or the reference's refusal", async () => {
        const logit = fc.oneof(
          fc.double({ min: -12, max: 12, noNaN: true }),
          fc.constantFrom(0, 1e30, -1e30, 3e38, -3e38, FLOAT32_MAX, -FLOAT32_MAX, -Infinity),
          fc.double({ min: -FLOAT32_MAX, max: FLOAT32_MAX, noNaN: true }),
        );
        const row = fc.array(logit, { minLength: 1, maxLength: 24 }).map((xs) => Float32Array.from(xs));
        const input = row.chain((data) =>
          fc.record({
            data: fc.constant(data),
            token: fc.nat({ max: data.length - 1 }),
            temperature: fc.constantFrom(0.5, 0.7, 1, 2),
            g: fc.double({ min: -2, max: 2, noNaN: true }),
            h: fc.double({ min: -1, max: 1, noNaN: true }),
          }),
        );
        await fc.assert(
          fc.asyncProperty(input, async ({ data, token, temperature, g, h }) => {
            const logits = { data, shape: [1, 1, data.length] as Shape3 };
            const tokens = [[token]];
            const o = oracle(data, token, temperature);
            const forward = () => b.tokenLogProbs(logits, tokens, { entropy: true, temperature });
            if (o === undefined) {
              await expectRefused(forward, "logits[0][0]", /every logit is −Infinity/);
              return;
            }
            const result = await forward();
            // A token of logit −Infinity has log-prob −Infinity, as in the reference (documented); all else is finite.
            expectCloseToOwnSize(result.logp[0]!, o.logp, "logp");
            expectCloseToOwnSize(result.entropy![0]!, o.entropy, "entropy");
            const expected = oracleGradient(data, token, o, g, h, temperature);
            const scale = gradientScale(g, h, o, temperature);
            for (const saved of [undefined, result]) {
              const grad = await b.tokenLogProbsBackward(logits, tokens, {
                temperature,
                gradLogp: [[g]],
                gradEntropy: [[h]],
                saved,
              });
              expectGradientClose(grad.data, expected, scale, saved === undefined ? "∂L/∂logits" : "saved: ∂L/∂logits");
            }
          }),
          { seed: HOSTILE_SEED, numRuns: 60 },
        );
      });
    });

    describe("vocabularies of 152,064 and 2^20: float32's tolerance, relative to each value's own size", () => {
      it.each([152_064, 2 ** 20])(
        "V = %i, logits [1, 2, V] ~ N(0, 3) with −Infinity and huge entries: log-probs, entropies and gradients",
        async (vocab) => {
          const random = rng(vocab);
          const data = new Float32Array(2 * vocab).map(() => 3 * random.normal());
          for (let k = 0; k < 40; k++) data[random.int(data.length)] = -Infinity;
          // Row 0 ordinary but for a peak; row 1 with two huge logits that take all the probability.
          data[17] = 25;
          data[vocab + 5] = 3e38;
          data[vocab + 9] = 2.9e38;
          const logits = { data, shape: [1, 2, vocab] as Shape3 };
          const tokens = [[3, 11]];
          const temperature = 0.9;
          const forward = await b
            .tokenLogProbs(logits, tokens, { entropy: true, temperature })
            .catch((error: unknown) => error);
          if (t.name === "webgpu@chunked") {
            // One row of 608 KB or 4 MiB does not fit its 4 KiB binding: the limit, named as the cause.
            expect(forward).toBeInstanceOf(ValidationError);
            expect((forward as Error).message).toMatch(/one storage binding.*maxBindingBytes option/);
            return;
          }
          if (forward instanceof Error) throw forward;
          const gradLogp = [1, -0.5];
          const gradEntropy = [0.2, 0.1];
          const grad = await b.tokenLogProbsBackward(logits, tokens, {
            temperature,
            gradLogp: [gradLogp],
            gradEntropy: [gradEntropy],
            saved: forward as TokenLogProbs,
          });
          for (let i = 0; i < 2; i++) {
            const row = data.subarray(i * vocab, (i + 1) * vocab);
            const o = oracle(row, tokens[0]![i]!, temperature)!;
            const f = forward as TokenLogProbs;
            expectCloseToOwnSize(f.logp[i]!, o.logp, `logp[${i}]`);
            expectCloseToOwnSize(f.entropy![i]!, o.entropy, `entropy[${i}]`);
            expectCloseToOwnSize(f.logSumExp[i]!, o.logSumExp, `logSumExp[${i}]`);
            const expected = oracleGradient(row, tokens[0]![i]!, o, gradLogp[i]!, gradEntropy[i]!, temperature);
            const scale = gradientScale(gradLogp[i]!, gradEntropy[i]!, o, temperature);
            expectGradientClose(grad.data, expected, scale, `∂L/∂logits[${i}]`, i * vocab);
          }
        },
        120_000,
      );
    });

    describe("inputs finite in float64 but not in float32, or whose float32 computation overflows: refused", () => {
      const wide = (at: number, value: number) => {
        const data = Float64Array.from({ length: 12 }, (_, k) => Math.sin(k));
        data[at] = value;
        return { data, shape: [1, 2, 6] as Shape3 };
      };

      it("float64 logits of ±1e39 (and 1e308) where they are read: refused at logits[b][t][v], naming float32", async () => {
        for (const value of [1e39, -1e39, 1e308]) {
          await expectRefused(() => b.tokenLogProbs(wide(8, value), [[0, 1]]), "logits[0][1][2]", /float32/);
          await expectRefused(
            () => b.tokenLogProbsBackward(wide(8, value), [[0, 1]], { gradLogp: [[1, 1]] }),
            "logits[0][1][2]",
            /float32/,
          );
          await expectRefused(
            () => b.policyLossFromLogits({ logits: wide(8, value), tokens: [[0, 1]], advantages: [1] }),
            "logits[0][1][2]",
            /float32/,
          );
        }
      });

      it("where they are not read (masked, or no gradient flows), the same logits compute", async () => {
        const mask = [[1, 0]];
        const forward = await b.tokenLogProbs(wide(8, 1e39), [[0, 1]], { mask });
        expect(Number.isFinite(forward.logp[0])).toBe(true);
        const grad = await b.tokenLogProbsBackward(wide(8, 1e39), [[0, 1]], { gradLogp: [[1, 0]] });
        expect(Array.from(grad.data.subarray(6)).every((x) => x === 0)).toBe(true);
      });

      it("∂L/∂logp or ∂L/∂entropy beyond float32, or whose gradient into the logits overflows at τ: refused at their position", async () => {
        const logits = one([0, 1, 2, 3]);
        const gradLogp = (value: number) => ({ data: Float64Array.of(value), shape: [1, 1] as [number, number] });
        await expectRefused(
          () => b.tokenLogProbsBackward(logits, [[0]], { gradLogp: gradLogp(1e39) }),
          "options.gradLogp[0][0]",
          /float32/,
        );
        await expectRefused(
          () => b.tokenLogProbsBackward(logits, [[0]], { gradLogp: gradLogp(3e38), temperature: 0.5 }),
          "options.gradLogp[0][0]",
          /temperature 0.5.*float32/,
        );
        await expectRefused(
          () =>
            b.tokenLogProbsBackward(logits, [[0]], { gradLogp: [[1]], gradEntropy: { data: [3e38], shape: [1, 1] } }),
          "options.gradEntropy[0][0]",
          /float32/,
        );
      });

      it("a loss gradient whose gradient into the logits overflows float32 at τ = 0.01: refused at the logits' position", async () => {
        const inputs = { logits: one([0, 1, 2, 3]), tokens: [[2]], advantages: [3e38] };
        await expectRefused(
          () => b.policyLossFromLogits(inputs, { ...lossPresets.paper, temperature: 0.01 }),
          "logits[0][0]",
          /∂loss\/∂logp -3(\.\d+)?e\+38.*temperature 0.01.*beyond the range of float32/,
        );
      });

      it("a temperature whose inverse is not a normal float32: refused at options.temperature", async () => {
        for (const temperature of [1e-40, 1e39]) {
          await expectRefused(
            () => b.tokenLogProbs(one([0, 1]), [[0]], { temperature }),
            "options.temperature",
            /float32/,
          );
        }
      });

      it("the loss's inputs beyond float32 where read: refused at their position on webgpu; cuda's loss is float64", async () => {
        const base = { logp: [[-1, -2]], oldLogp: [[-1, -2]], advantages: [1], mask: [[1, 1]] };
        const cases: [string, Record<string, unknown>, object][] = [
          ["inputs.oldLogp[0][1]", { oldLogp: { data: Float64Array.of(-1, -1e39), shape: [1, 2] } }, {}],
          ["inputs.advantages[0]", { advantages: Float64Array.of(1e39) }, {}],
          ["inputs.advantages[0][1]", { advantages: { data: Float64Array.of(1, 1e39), shape: [1, 2] } }, {}],
          [
            "inputs.importanceWeights[0][0]",
            { importanceWeights: { data: Float64Array.of(1e39, 1), shape: [1, 2] } },
            {},
          ],
          [
            "inputs.refLogp[0][0]",
            { refLogp: { data: Float64Array.of(-1e39, -1), shape: [1, 2] } },
            { kl: { kind: "k1", coef: 0.1 } },
          ],
          [
            "inputs.entropy[0][1]",
            { entropy: { data: Float64Array.of(1, 1e39), shape: [1, 2] } },
            { entropyCoef: 0.01 },
          ],
        ];
        for (const [path, inputs, options] of cases) {
          const call = () => b.policyLoss({ ...base, ...inputs } as never, { ...lossPresets.reference, ...options });
          if (t.name.startsWith("webgpu")) {
            await expectRefused(call, path, /float32/);
            // Masked, the same value is never read.
            const masked = await b.policyLoss({ ...base, ...inputs, mask: [[0, 0]] } as never, {
              ...lossPresets.reference,
              ...options,
            });
            expect(masked.loss).toBe(0);
          } else {
            // cuda computes the loss in float64, as the reference: the same result or the same refusal.
            const [actual, expected] = await Promise.all([
              rejection(call),
              rejection(() => referenceBackend.policyLoss({ ...base, ...inputs } as never, { ...options })),
            ]);
            expect(actual instanceof ValidationError, path).toBe(expected instanceof ValidationError);
          }
        }
        if (t.name.startsWith("webgpu")) {
          await expectRefused(
            () => b.policyLoss({ ...base, refLogp: [[-1, -1]] }, { kl: { kind: "k1", coef: 1e-50 } }),
            "options.kl.coef",
            /smallest normal float32/,
          );
          await expectRefused(
            () =>
              b.policyLossFromLogits({
                logits: one([0, 1]),
                tokens: [[1]],
                oldLogp: { data: Float64Array.of(-1e39), shape: [1, 1] },
                advantages: [1],
              }),
            "inputs.oldLogp[0][0]",
            /float32/,
          );
        }
      });
    });

    describe("the loss kernels where the ratio overflows: the reference's values, or a refusal naming the fix", () => {
      /** The reference's result or error beside this backend's: equal within float32's tolerance, or both refused. */
      async function asTheReference(inputs: object, options: object, refusal: RegExp): Promise<void> {
        const [actual, expected] = await Promise.all([
          b.policyLoss(inputs as never, options).catch((error: unknown) => error),
          referenceBackend.policyLoss(inputs as never, options).catch((error: unknown) => error),
        ]);
        if (expected instanceof Error) {
          expect(actual, "refused as the reference refuses").toBeInstanceOf(ValidationError);
          expect((actual as ValidationError).issues[0]!.path).toBe((expected as ValidationError).issues[0]!.path);
          return;
        }
        if (actual instanceof Error) {
          // Only float32's narrower range may refuse what the reference computes, and it must say so.
          expect(t.name.startsWith("webgpu"), (actual as Error).message).toBe(true);
          expect((actual as Error).message).toMatch(refusal);
          return;
        }
        const got = actual as { loss: number; grad: Float64Array };
        const want = expected as { loss: number; grad: Float64Array };
        expectCloseToOwnSize(got.loss, want.loss, "loss");
        want.grad.forEach((g, i) => expectCloseToOwnSize(got.grad[i]!, g, `grad[${i}]`));
      }

      it("a zero advantage contributes exactly 0 where the ratio overflows (log-ratios 100 and 710), on every objective", async () => {
        const inputs = {
          logp: [[100, -1, 710]],
          oldLogp: [[0, -1, 0]],
          advantages: { data: [0, 1, 0], shape: [1, 3] as [number, number] },
        };
        for (const objective of ["clip", "cispo", "sapo", "reinforce"] as const) {
          const result = await b.policyLoss(inputs, { ...lossPresets.paper, objective });
          expect(result.perTokenLoss[0] === 0 && result.perTokenLoss[2] === 0, objective).toBe(true);
          expect(result.grad[0] === 0 && result.grad[2] === 0, objective).toBe(true);
          expect(Number.isFinite(result.loss), objective).toBe(true);
        }
      });

      it("SAPO where σ = 1 (log-ratios 60, 100 and 710): ∂loss/∂log-ratio is 0, not 0·∞", async () => {
        for (const lr of [60, 100, 710]) {
          await asTheReference(
            { logp: [[lr - 3]], oldLogp: [[-3]], advantages: [1] },
            { ...lossPresets.paper, objective: "sapo" },
            /float32/,
          );
        }
      });

      it("TRL's importance-corrected k3 with logp 100 below refLogp: e^x·ρ as one exponential, finite", async () => {
        await asTheReference(
          { logp: [[-100, -2]], oldLogp: [[0, -2]], refLogp: [[0, -1]], advantages: [1] },
          { ...lossPresets.trl, kl: { kind: "k3", coef: 0.1, clamp: false, importanceCorrected: true } },
          /float32/,
        );
      });

      it("a nonzero advantage at log-ratios 100 and 710 without a clamp: the reference's value (float64) or the refusal naming logRatioClamp", async () => {
        for (const lr of [100, 710]) {
          await asTheReference(
            { logp: [[lr - 1]], oldLogp: [[-1]], advantages: [-1] },
            lossPresets.paper,
            /float32.*logRatioClamp/,
          );
        }
      });
    });

    describe("the loss from logits names the logits, and the real cause", () => {
      const inputs = (values: number[], token: number) => ({
        logits: { data: Float32Array.from(values), shape: [1, 2, values.length / 2] as Shape3 },
        tokens: [[0, token]],
        advantages: [1],
      });

      it("a sampled token whose logit is −Infinity: refused at logits[0][1], saying so, not at inputs.logp", async () => {
        const error = await expectRefused(
          () => b.policyLossFromLogits(inputs([0, 1, 2, 3, -Infinity, 5], 1), lossPresets.paper),
          "logits[0][1]",
          /sampled token's logit \(tokens\[0\]\[1\] = 1\) is −Infinity/,
        );
        expect(error.message).not.toMatch(/inputs\.logp/);
      });

      it("a log-ratio whose policy term overflows (oldLogp 710 below logp, A = −1): refused at the logits, naming logRatioClamp", async () => {
        const error = await expectRefused(
          () =>
            b.policyLossFromLogits(
              { ...inputs([0, 0, 0, 0, 0, 0], 1), oldLogp: [[-710, -710]], advantages: [-1] },
              lossPresets.paper,
            ),
          "logits[0][0]",
          /logRatioClamp/,
        );
        expect(error.message).not.toMatch(/inputs\.logp/);
      });

      it("NaN or +Infinity among the logits, or only −Infinity: the reference's error at logits[b][t]", async () => {
        await expectRefused(
          () => b.policyLossFromLogits(inputs([0, 1, 2, 3, Number.NaN, 5], 0), lossPresets.paper),
          "logits[0][1]",
          /holds NaN or \+Infinity/,
        );
        await expectRefused(
          () => b.policyLossFromLogits(inputs([Infinity, 1, 2, 3, 4, 5], 0), lossPresets.paper),
          "logits[0][0]",
          /holds NaN or \+Infinity/,
        );
        await expectRefused(
          () => b.policyLossFromLogits(inputs([-Infinity, -Infinity, -Infinity, 3, 4, 5], 0), lossPresets.paper),
          "logits[0][0]",
          /every logit is −Infinity/,
        );
      });

      it("a token 6.8e38 below the max: the log-prob only float64 holds; webgpu's float32 loss refuses it, cuda computes it", async () => {
        const call = () => b.policyLossFromLogits(inputs([0, 1, 2, 3.4e38, -3.4e38, 0], 1), lossPresets.paper);
        const forward = await b.tokenLogProbs(inputs([0, 1, 2, 3.4e38, -3.4e38, 0], 1).logits, [[0, 1]]);
        expectCloseToOwnSize(forward.logp[1]!, -2 * 3.4e38, "logp");
        if (t.name.startsWith("webgpu")) {
          await expectRefused(call, "logits[0][1]", /log-prob .* beyond the range of float32/);
        } else {
          const result = await call();
          expect(Number.isFinite(result.loss)).toBe(true);
          expect(Array.from(result.gradLogits.data).every(Number.isFinite)).toBe(true);
        }
      });
    });

    describe("a backward pass over saved statistics still checks the logits it reads", () => {
      const logits = () => ({ data: Float32Array.from([0.5, -1, 2, 0.25, 3, -2, 1, 0]), shape: [1, 2, 4] as Shape3 });
      const options = { gradLogp: [[1, -1]], gradEntropy: [[0.25, 0.5]] };

      async function savedFor(): Promise<TokenLogProbs> {
        return b.tokenLogProbs(logits(), [[0, 1]], { entropy: true });
      }

      it.each([
        ["NaN", (d: Float32Array) => (d[5] = Number.NaN), "logits[0][1]", /holds NaN or \+Infinity/],
        ["+Infinity", (d: Float32Array) => (d[2] = Infinity), "logits[0][0]", /holds NaN or \+Infinity/],
        ["−Infinity only", (d: Float32Array) => d.fill(-Infinity, 4), "logits[0][1]", /every logit is −Infinity/],
        ["another row's values", (d: Float32Array) => d.set([4, 4, 4, 4], 0), "options.saved", /does not describe/],
        [
          "all shifted by 1",
          (d: Float32Array) => d.forEach((x, k) => (d[k] = x + 1)),
          "options.saved",
          /logits at \[0\]\[0\]/,
        ],
      ] as const)("logits changed to %s since the forward pass: refused at %s", async (_title, change, path, says) => {
        const saved = await savedFor();
        const changed = logits();
        change(changed.data);
        await expectRefused(() => b.tokenLogProbsBackward(changed, [[0, 1]], { ...options, saved }), path, says);
      });

      it("saved statistics of the same logits from the reference (float64) give the reference's gradient", async () => {
        const saved = await referenceBackend.tokenLogProbs(logits(), [[0, 1]], { entropy: true });
        const grad = await b.tokenLogProbsBackward(logits(), [[0, 1]], { ...options, saved });
        for (let i = 0; i < 2; i++) {
          const row = logits().data.subarray(4 * i, 4 * i + 4);
          const o = oracle(row, i, 1)!;
          const g = options.gradLogp[0]![i]!;
          const h = options.gradEntropy[0]![i]!;
          expectGradientClose(
            grad.data,
            oracleGradient(row, i, o, g, h, 1),
            gradientScale(g, h, o, 1),
            "∂L/∂logits",
            4 * i,
          );
        }
      });
    });
  });
}

/** Targets this file runs on, for the record: every one must be available in CI. */
describe("the float32 targets", () => {
  it.each(targets.map((t) => [t.name, t] as const))("%s is available (required in CI)", (_name, t: Target) => {
    if (inCi) expect(t.available, t.reason).toBe(true);
  });
});
