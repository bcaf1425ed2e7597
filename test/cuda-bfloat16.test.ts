/**
 * bfloat16 logits ({ data: Uint16Array of bits, shape, dtype: "bfloat16" }), which the conformance suite does not
 * cover:
 *
 * - The reference backend's own bfloat16 path: the same results as on the logits widened to float32 (widening is
 *   exact), with the gradient rounded to bfloat16 by roundToBfloat16InPlace.
 * - cuda@host (the CUDA kernels' own code on the CPU; the addon must be built, not a GPU), and the GPU: tokenLogProbs,
 *   tokenLogProbsBackward and policyLossFromLogits on bfloat16 logits against the reference on the widened logits,
 *   at the float32 tolerances of test/conformance/tolerances.ts. The gradient comes back as bfloat16 values: each
 *   entry must be a bfloat16 value, and lie between the bfloat16 roundings of (reference − tolerance) and
 *   (reference + tolerance) — rounding is monotone, so that is exactly "a float32 result within tolerance, rounded
 *   to bfloat16". With the forward statistics given (`saved`), every gradient entry is an elementwise function
 *   of its logit, so the bfloat16 gradient must equal roundToBfloat16InPlace of the same kernels' float32
 *   gradient bit for bit.
 * - The kernels' float32 → bfloat16 rounding (grpo_math.h float_to_bf16, through the addon) against the JS
 *   rounding on a sweep of bit patterns: every upper half with several lower halves (ties, just below and above
 *   them), so NaN (with payloads, both signs), ±Infinity, overflow to Infinity, subnormals and ±0 are all in it.
 *
 * - wasm@chunked (the wasm backend, 3 threads, 4 KiB chunks): the same checks as cuda@host.
 *
 * Skipped, with the probe's reason, when the addon is not built (CI has nvcc, and `npm ci` builds it). On a machine
 * with a CUDA device the same checks also run on the GPU (`cudaBackend`); without one that part is skipped.
 */
import { describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossInputs, type PolicyLossOptionsInput } from "../src/index.js";
import { referenceBackend } from "../src/backends/index.js";
import { createCudaBackend, cudaBackend, loadCudaAddon } from "../src/cuda/index.js";
import { createWasmBackend } from "../src/wasm/index.js";
import {
  bfloat16ToFloat32,
  float32ToBfloat16,
  roundToBfloat16InPlace,
  toBfloat16Bits,
} from "../src/logprobs/bfloat16.js";
import type { LogitsInput, TokenLogProbs } from "../src/logprobs/token-logprobs.js";
import { normal, rngFor, type Rng } from "./conformance/cases.js";
import {
  expectClose,
  gradScale,
  logitGradScale,
  logProbScale,
  lossScale,
  tolerance,
  type Tolerance,
} from "./conformance/tolerances.js";

const reference = referenceBackend;
const addonState = loadCudaAddon();
/** cuda@host always (when the addon is built); the GPU as well when there is one. */
const targets = await Promise.all(
  (
    [
      ["cuda@host", createCudaBackend({ exec: "host", chunkBytes: 4096 })],
      ["cuda (GPU)", cudaBackend],
      // The wasm backend stages bfloat16 bits chunk by chunk (widened to float32 as they are copied in).
      ["wasm@chunked", createWasmBackend({ name: "wasm@chunked", chunkBytes: 4096, threads: 3 })],
    ] as const
  ).map(async ([name, backend]) => ({ name, backend, info: await backend.probe() }) as const),
);

// ---------------------------------------------------------------------------------------------------------------
// Cases

type Shape3 = [number, number, number];
type Shape2 = [number, number];

interface Bf16Case {
  readonly title: string;
  readonly shape: Shape3;
  readonly bits: Uint16Array;
  /** The same logits widened to float32 (exact). */
  readonly widened: Float32Array;
  readonly tokens: { data: Float64Array; shape: Shape2 };
  readonly mask: { data: Float64Array; shape: Shape2 } | undefined;
  readonly temperature: number;
  readonly gradLogp: { data: Float64Array; shape: Shape2 };
  readonly gradEntropy: { data: Float64Array; shape: Shape2 };
}

const uniform = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng();

/**
 * Odd vocabularies (33, 257, 1000, 5) put the rows at every 2-byte offset from a 16-byte boundary, so the kernels'
 * scalar head, 8-wide bfloat16 vectors and scalar tail all run; chunkBytes 4096 puts chunk boundaries inside.
 */
const CASES: readonly {
  shape: Shape3;
  sigma: number;
  temperature: number;
  maskedVocabulary: boolean;
  masked: boolean;
}[] = [
  { shape: [2, 3, 257], sigma: 1, temperature: 1, maskedVocabulary: false, masked: false },
  { shape: [1, 4, 1000], sigma: 4, temperature: 0.7, maskedVocabulary: true, masked: true },
  { shape: [3, 2, 33], sigma: 4, temperature: 1.5, maskedVocabulary: true, masked: false },
  { shape: [2, 2, 5], sigma: 1, temperature: 1, maskedVocabulary: false, masked: true },
  { shape: [1, 2, 4099], sigma: 2, temperature: 0.8, maskedVocabulary: false, masked: false },
];

function makeCase(k: number): Bf16Case {
  const { shape, sigma, temperature, maskedVocabulary, masked } = CASES[k]!;
  const rng = rngFor(`grpo-roc cuda bfloat16 ${k}`);
  const [B, T, V] = shape;
  const n = B * T;
  const tokens = Float64Array.from({ length: n }, () => Math.floor(rng() * V));
  const values = Float32Array.from({ length: n * V }, () => sigma * normal(rng));
  // A masked vocabulary: −Infinity logits (bfloat16 0xff80), never at the sampled token.
  if (maskedVocabulary) {
    for (let i = 0; i < n * V; i++) if (i % V !== tokens[Math.floor(i / V)]! && rng() < 0.2) values[i] = -Infinity;
  }
  const bits = float32ToBfloat16(values);
  const mask = masked ? Float64Array.from({ length: n }, (_, i) => (i === 0 || rng() < 0.7 ? 1 : 0)) : undefined;
  if (mask !== undefined) for (let i = 0; i < n; i++) if (mask[i] === 0) tokens[i] = -1;
  return {
    title: `[${B}, ${T}, ${V}] σ ${sigma}, τ ${temperature}${maskedVocabulary ? ", −Infinity logits" : ""}${masked ? ", masked positions" : ""}`,
    shape,
    bits,
    widened: bfloat16ToFloat32(bits),
    tokens: { data: tokens, shape: [B, T] },
    mask: mask === undefined ? undefined : { data: mask, shape: [B, T] },
    temperature,
    gradLogp: { data: Float64Array.from({ length: n }, () => uniform(rng, -1, 1)), shape: [B, T] },
    gradEntropy: { data: Float64Array.from({ length: n }, () => uniform(rng, -0.5, 0.5)), shape: [B, T] },
  };
}

const cases = CASES.map((_, k) => makeCase(k));
const bf16 = (c: Bf16Case): LogitsInput => ({ data: c.bits, shape: c.shape, dtype: "bfloat16" });
const f32 = (c: Bf16Case): LogitsInput => ({ data: c.widened, shape: c.shape });
const maskOption = (c: Bf16Case) => (c.mask !== undefined ? { mask: c.mask } : {});
const bitsOf = (x: Float32Array) => Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));

// ---------------------------------------------------------------------------------------------------------------
// Comparisons

function expectSameLogProbs(actual: TokenLogProbs, expected: TokenLogProbs, label: string): void {
  expect(actual.shape).toEqual(expected.shape);
  expectClose(actual.logp, expected.logp, tolerance("float32", "value", logProbScale(expected.logp)), `${label} logp`);
  expectClose(
    actual.logSumExp,
    expected.logSumExp,
    tolerance("float32", "value", logProbScale(expected.logSumExp)),
    `${label} logSumExp`,
  );
  expect(actual.entropy === undefined).toBe(expected.entropy === undefined);
  if (expected.entropy !== undefined) {
    expectClose(
      actual.entropy!,
      expected.entropy,
      tolerance("float32", "value", logProbScale(expected.entropy)),
      `${label} entropy`,
    );
  }
}

/** x rounded to bfloat16 (through float32, as everything here is), as a number. */
const roundBf16 = (x: number) => bfloat16ToFloat32(Uint16Array.of(toBfloat16Bits(x)))[0]!;

/**
 * A bfloat16 gradient against a float32 (unrounded) expected one: every entry is a bfloat16 value, and lies in
 * [round(e − b), round(e + b)], b = atol + rtol·|e| (any float32 value within tolerance rounds into that range).
 */
function expectBfloat16Close(
  actual: Float32Array | Float64Array,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label: string,
): void {
  expect(actual).toBeInstanceOf(Float32Array);
  const a = actual as Float32Array;
  expect(a.length, `${label}: length`).toBe(expected.length);
  expect(bitsOf(roundToBfloat16InPlace(Float32Array.from(a))), `${label}: every entry is a bfloat16 value`).toEqual(
    bitsOf(a),
  );
  let failures = 0;
  let first = "";
  for (let i = 0; i < a.length; i++) {
    const e = expected[i]!;
    const x = a[i]!;
    const atol = typeof tol.atol === "number" ? tol.atol : tol.atol[i]!;
    const b = atol + tol.rtol * Math.abs(e);
    const ok = Number.isFinite(e)
      ? roundBf16(e - b) <= x && x <= roundBf16(e + b)
      : Object.is(x, e) || (Number.isNaN(x) && Number.isNaN(e));
    if (!ok) {
      if (failures === 0)
        first = `[${i}]: expected ${e} (±${b}, in bfloat16 [${roundBf16(e - b)}, ${roundBf16(e + b)}]), got ${x}`;
      failures++;
    }
  }
  expect(failures, `${label}: ${failures} of ${a.length} entries out of tolerance; first ${first}`).toBe(0);
}

/** The loss inputs of a case: advantages ±1 per row; log-ratios ≥ 0.02 from the clip kinks (log 0.8, log 1.28). */
function lossInputsFor(c: Bf16Case, logp: Float64Array, rng: Rng) {
  const [B, T] = c.tokens.shape;
  const deltas = [-0.5, -0.1, -0.02, 0.03, 0.1, 0.6];
  const oldLogp = Float64Array.from(logp, (l, i) =>
    c.mask === undefined || c.mask.data[i] === 1 ? l - deltas[Math.floor(rng() * deltas.length)]! : 0,
  );
  const refLogp = Float64Array.from(logp, (l) => l + uniform(rng, -0.3, 0.3));
  return {
    ...maskOption(c),
    advantages: Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -1)),
    oldLogp: { data: oldLogp, shape: [B, T] as Shape2 },
    refLogp: { data: refLogp, shape: [B, T] as Shape2 },
  };
}

const LOSS_OPTIONS: readonly (readonly [string, PolicyLossOptionsInput])[] = [
  ["paper", lossPresets.paper],
  [
    "reference + entropy bonus + k3 KL",
    { ...lossPresets.reference, entropyCoef: 0.01, kl: { kind: "k3", coef: 0.05 } },
  ],
];

// ---------------------------------------------------------------------------------------------------------------
// The reference backend's own bfloat16 path

describe("bfloat16 logits on the reference backend", () => {
  it.each(cases.map((c) => [c.title, c] as const))(
    "%s: the same as on the widened float32 logits; gradient rounded to bfloat16",
    async (_t, c) => {
      const options = { temperature: c.temperature, entropy: true, ...maskOption(c) };
      const [a, e] = await Promise.all([
        reference.tokenLogProbs(bf16(c), c.tokens, options),
        reference.tokenLogProbs(f32(c), c.tokens, options),
      ]);
      expect(a).toEqual(e);
      const backward = { ...options, gradLogp: c.gradLogp, gradEntropy: c.gradEntropy };
      const [ga, ge] = await Promise.all([
        reference.tokenLogProbsBackward(bf16(c), c.tokens, backward),
        reference.tokenLogProbsBackward(f32(c), c.tokens, backward),
      ]);
      expect(ga.data).toBeInstanceOf(Float32Array);
      expect(ge.data).toBeInstanceOf(Float32Array);
      expect(bitsOf(ga.data as Float32Array)).toEqual(bitsOf(roundToBfloat16InPlace(Float32Array.from(ge.data))));
    },
  );

  it("policyLossFromLogits: the loss of the widened logits, its gradient rounded to bfloat16", async () => {
    const c = cases[1]!;
    const forward = await reference.tokenLogProbs(f32(c), c.tokens, { temperature: c.temperature, ...maskOption(c) });
    const inputs = { ...lossInputsFor(c, forward.logp, rngFor("reference bf16 loss")), tokens: c.tokens };
    const options = { ...lossPresets.paper, temperature: c.temperature };
    const [a, e] = await Promise.all([
      reference.policyLossFromLogits({ ...inputs, logits: bf16(c) }, options),
      reference.policyLossFromLogits({ ...inputs, logits: f32(c) }, options),
    ]);
    expect(a.loss).toBe(e.loss);
    expect(a.logp).toEqual(e.logp);
    expect(bitsOf(a.gradLogits.data as Float32Array)).toEqual(
      bitsOf(roundToBfloat16InPlace(Float32Array.from(e.gradLogits.data))),
    );
  });
});

// ---------------------------------------------------------------------------------------------------------------
// cuda@host, the GPU when there is one, and wasm

for (const { name, backend: host, info } of targets) {
  const skip = !info.available;
  const suffix = skip ? ` — skipped: ${info.reason}` : ` (${info.reason})`;

  describe.skipIf(skip)(`bfloat16 logits on ${name}${suffix}`, () => {
    describe.each(cases.map((c) => [c.title, c] as const))("%s", (_t, c) => {
      it("tokenLogProbs: as the reference on the widened logits, at float32 tolerances", async () => {
        for (const entropy of [false, true]) {
          const options = { temperature: c.temperature, entropy, ...maskOption(c) };
          const [a, e] = await Promise.all([
            host.tokenLogProbs(bf16(c), c.tokens, options),
            reference.tokenLogProbs(f32(c), c.tokens, options),
          ]);
          expectSameLogProbs(a, e, `entropy ${entropy}`);
        }
      });

      it("tokenLogProbsBackward: bfloat16 values within float32 tolerance of the reference's gradient", async () => {
        const refForward = await reference.tokenLogProbs(f32(c), c.tokens, {
          temperature: c.temperature,
          entropy: true,
          ...maskOption(c),
        });
        for (const withEntropy of [false, true]) {
          for (const saved of [undefined, refForward]) {
            const options = {
              temperature: c.temperature,
              ...maskOption(c),
              gradLogp: c.gradLogp,
              ...(withEntropy ? { gradEntropy: c.gradEntropy } : {}),
              ...(saved !== undefined ? { saved } : {}),
            };
            const [a, e] = await Promise.all([
              host.tokenLogProbsBackward(bf16(c), c.tokens, options),
              reference.tokenLogProbsBackward(f32(c), c.tokens, options),
            ]);
            expect(a.shape).toEqual(c.shape);
            const gradLogp = Float64Array.from(c.gradLogp.data, (g, i) =>
              c.mask === undefined || c.mask.data[i] === 1 ? g : 0,
            );
            const gradEntropy = withEntropy
              ? Float64Array.from(c.gradEntropy.data, (h, i) => (c.mask === undefined || c.mask.data[i] === 1 ? h : 0))
              : undefined;
            const scale = logitGradScale(
              c.widened,
              c.shape[2],
              e.data,
              refForward,
              gradLogp,
              gradEntropy,
              c.temperature,
            );
            expectBfloat16Close(
              a.data,
              e.data,
              tolerance("float32", "grad", scale),
              `entropy ${withEntropy}, saved ${saved !== undefined}`,
            );
          }
        }
      });

      it("tokenLogProbsBackward with saved statistics: exactly roundToBfloat16InPlace of the same kernels' float32 gradient", async () => {
        const saved = await reference.tokenLogProbs(f32(c), c.tokens, {
          temperature: c.temperature,
          entropy: true,
          ...maskOption(c),
        });
        const options = {
          temperature: c.temperature,
          ...maskOption(c),
          gradLogp: c.gradLogp,
          gradEntropy: c.gradEntropy,
          saved,
        };
        const [a, f] = await Promise.all([
          host.tokenLogProbsBackward(bf16(c), c.tokens, options),
          host.tokenLogProbsBackward(f32(c), c.tokens, options),
        ]);
        expect(f.data).toBeInstanceOf(Float32Array);
        expect(bitsOf(a.data as Float32Array)).toEqual(bitsOf(roundToBfloat16InPlace(Float32Array.from(f.data))));
      });

      it.each(LOSS_OPTIONS)(
        "policyLossFromLogits (%s): the reference's loss on the widened logits, bfloat16 gradient",
        async (_name, lossOptions) => {
          const withEntropy = (lossOptions.entropyCoef ?? 0) > 0;
          const refForward = await reference.tokenLogProbs(f32(c), c.tokens, {
            temperature: c.temperature,
            entropy: true,
            ...maskOption(c),
          });
          const loss = lossInputsFor(c, refForward.logp, rngFor(`cuda bf16 loss ${c.title}`));
          const options = { ...lossOptions, temperature: c.temperature };
          const [a, e] = await Promise.all([
            host.policyLossFromLogits({ ...loss, tokens: c.tokens, logits: bf16(c) }, options),
            reference.policyLossFromLogits({ ...loss, tokens: c.tokens, logits: f32(c) }, options),
          ]);
          // The policy loss's inputs as the reference saw them, for the tolerances' scales.
          const shape = c.tokens.shape;
          const inputs: PolicyLossInputs = {
            ...loss,
            logp: { data: e.logp, shape },
            ...(withEntropy ? { entropy: { data: e.entropy!, shape } } : {}),
          };
          expectClose(a.loss, e.loss, tolerance("float32", "value", lossScale(e, inputs, lossOptions)), "loss");
          expectClose(a.grad, e.grad, tolerance("float32", "grad", gradScale(e, inputs, lossOptions)), "grad");
          expectClose(
            a.perTokenLoss,
            e.perTokenLoss,
            tolerance("float32", "value", Float64Array.from(e.perTokenLoss, Math.abs)),
            "perTokenLoss",
          );
          expectClose(a.logp, e.logp, tolerance("float32", "value", logProbScale(e.logp)), "logp");
          expect(a.entropy === undefined).toBe(!withEntropy);
          if (withEntropy)
            expectClose(a.entropy!, e.entropy!, tolerance("float32", "value", logProbScale(e.entropy!)), "entropy");
          expect(a.metrics.tokens).toBe(e.metrics.tokens);
          expect(a.metrics.clipFraction).toBe(e.metrics.clipFraction);
          expect(a.gradLogits.shape).toEqual(c.shape);
          const scale = logitGradScale(
            c.widened,
            c.shape[2],
            e.gradLogits.data,
            refForward,
            e.grad,
            e.gradEntropy,
            c.temperature,
          );
          expectBfloat16Close(a.gradLogits.data, e.gradLogits.data, tolerance("float32", "grad", scale), "gradLogits");
        },
      );
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// The kernels' bfloat16 conversions against the JS ones, bit for bit

describe.skipIf(!addonState.loaded)(
  `the kernels' bfloat16 conversions (grpo_math.h through the addon)${addonState.loaded ? "" : ` — skipped: ${addonState.reason}`}`,
  () => {
    const addon = addonState.loaded ? addonState.addon : undefined;

    /** Every upper half × lower halves at and around the rounding tie, and a few more; 65536 × 10 patterns. */
    const sweep = (() => {
      const lows = [0x0000, 0x0001, 0x3fff, 0x7fff, 0x8000, 0x8001, 0xbfff, 0xc000, 0xfffe, 0xffff];
      const bits = new Uint32Array(65536 * lows.length);
      let k = 0;
      for (let hi = 0; hi < 65536; hi++) for (const lo of lows) bits[k++] = ((hi << 16) | lo) >>> 0;
      return new Float32Array(bits.buffer);
    })();

    it("float32 → bfloat16: the kernels' float_to_bf16 is roundToBfloat16InPlace, bit for bit, on 655360 patterns", () => {
      const kernels = addon!.floatToBf16(sweep);
      const js = new Uint32Array(roundToBfloat16InPlace(Float32Array.from(sweep)).buffer);
      let mismatches = 0;
      let first = -1;
      for (let i = 0; i < sweep.length; i++) {
        if (kernels[i]! << 16 !== (js[i]! | 0) || (js[i]! & 0xffff) !== 0) {
          if (first < 0) first = i;
          mismatches++;
        }
      }
      const input = new Uint32Array(sweep.buffer);
      expect(
        mismatches,
        first < 0
          ? ""
          : `first at 0x${input[first]!.toString(16)}: kernels 0x${kernels[first]!.toString(16)}, JS 0x${(js[first]! >>> 16).toString(16)}`,
      ).toBe(0);
    });

    it("… and toBfloat16Bits agrees wherever the value is not NaN (a JS number does not keep a NaN's sign and payload)", () => {
      const kernels = addon!.floatToBf16(sweep);
      let mismatches = 0;
      for (let i = 0; i < sweep.length; i++)
        if (!Number.isNaN(sweep[i]!) && toBfloat16Bits(sweep[i]!) !== kernels[i]) mismatches++;
      expect(mismatches).toBe(0);
    });

    it("the special cases: ties to even, overflow to Infinity, ±Infinity, NaN stays a quiet NaN of its sign, subnormals, ±0", () => {
      const cases: readonly (readonly [number, number, string])[] = [
        [0x3f808000, 0x3f80, "tie, even below: down"],
        [0x3f818000, 0x3f82, "tie, odd below: up"],
        [0x3f808001, 0x3f81, "just above a tie: up"],
        [0x3f807fff, 0x3f80, "just below a tie: down"],
        [0x7f7fffff, 0x7f80, "the largest float32 rounds to +Infinity"],
        [0x7f7f7fff, 0x7f7f, "below the tie at the top: the largest bfloat16"],
        [0xff7fffff, 0xff80, "… and to −Infinity"],
        [0x7f800000, 0x7f80, "+Infinity"],
        [0xff800000, 0xff80, "−Infinity"],
        [0x7f800001, 0x7fc0, "a signalling NaN whose payload would carry into Infinity: a quiet NaN"],
        [0x7fffffff, 0x7fc0, "a NaN that would carry into the sign: a quiet NaN"],
        [0xffc00001, 0xffc0, "a negative NaN keeps its sign"],
        [0x00000001, 0x0000, "the smallest subnormal rounds to +0"],
        [0x80000001, 0x8000, "… and its negative to −0"],
        [0x00018000, 0x0002, "a subnormal tie, odd below: up"],
        [0x007fffff, 0x0080, "the largest subnormal rounds up to the smallest normal"],
        [0x00000000, 0x0000, "+0"],
        [0x80000000, 0x8000, "−0"],
      ];
      const input = new Float32Array(Uint32Array.from(cases.map(([bits]) => bits)).buffer);
      const kernels = addon!.floatToBf16(input);
      const js = new Uint32Array(roundToBfloat16InPlace(Float32Array.from(input)).buffer);
      cases.forEach(([bits, expected, what], i) => {
        expect(kernels[i], `${what} (0x${bits.toString(16)}): kernels`).toBe(expected);
        expect(js[i]! >>> 16, `${what} (0x${bits.toString(16)}): JS`).toBe(expected);
      });
    });

    it("bfloat16 → float32: the kernels' bf16_to_float is bfloat16ToFloat32, bit for bit, on all 65536 patterns", () => {
      const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
      expect(bitsOf(addon!.bf16ToFloat(all))).toEqual(bitsOf(bfloat16ToFloat32(all)));
    });
  },
);
