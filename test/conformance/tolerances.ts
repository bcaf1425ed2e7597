/**
 * Every tolerance of the conformance suite, in one place.
 *
 * A comparison passes when, for every entry,  |actual − expected| ≤ rtol·|expected| + atol.
 *
 * float64 (the reference backend): the golden files' tolerances, fixed: values rtol 1e-12, atol 1e-12; gradients
 *   rtol 1e-10, atol 1e-12 (the peers' gradients come from float64 autograd). A golden case's own `tolerance`
 *   field, and the one documented exception of test/golden-trl-loss.test.ts, override them, as they do there.
 *
 * float32 (every tfjs backend): rtol = 1e-5 and atol = 1e-5 · scale, where `scale` is the magnitude of the
 *   numbers the value is computed from, not of the value itself. Why:
 *   - The inputs are rounded to float32 first (relative error 2^-24 ≈ 6e-8), and each kernel does a few float32
 *     operations (≈ 6e-8 each). A per-token value such as ρ = exp(logp − oldLogp) loses
 *     ≈ 6e-8·(|logp| + |oldLogp|) ≲ 1e-6 for log-probs down to −10: 1e-5 leaves ~10× headroom. (A float32
 *     kernel that is right cannot do better; one that is wrong — a dropped term, a wrong branch, a wrong weight —
 *     is off by the size of a token's weighted term, 1e-3 of the scale or more.)
 *   - A relative tolerance alone fails wherever the value is small because operands cancel: the loss is a sum of
 *     weighted per-token terms of both signs and can be ≈ 0 while its terms are O(1); verl's k3 KL,
 *     e^x − x − 1, is ≈ x²/2 but is computed from three O(1) numbers; a logit's gradient g·(1 − p) loses
 *     ≈ 6e-8·|g| when p → 1. The absolute error of such a value is set by its operands, hence atol = 1e-5·scale,
 *     with the scales below (each from the float64 reference result on the same inputs):
 *       loss            Σ_tokens w_b·(|ℓ| + coef·K) + entropy-bonus terms       (lossScale)
 *       ∂loss/∂logp     per token |g| + w_b·(|ℓ| + coef·K)                         (gradScale)
 *                       where K is the per-token KL's operand scale below: x = refLogp − logp is a
 *                       difference of two log-probs, and TRL's bias correction multiplies it by ρ
 *       per-token loss  |ℓ| (+ β·K where TRL adds β·KL)
 *       per-token KL    ρ̃·(1 + |logp| + |refLogp|) + |kl|   (ρ̃ = ρ with TRL's importance correction, else 1)
 *       logp, entropy   per position 1 + |value|: relative to their own size, since a kernel that computes
 *                       (z − max)/τ − log Σ keeps their digits at any logit magnitude (a scale that grew with
 *                       |logsumexp| let "0 instead of −log 3" pass at logits of 3e38)
 *       ∂L/∂logits      per position (|g| + |h|·(1 + |lse| + |H| + max|z|)) / τ, plus |value|
 *       metrics         the mean of K for the KL, 1 + mean(|logp| + |oldLogp|) for approxKl (a mean
 *                       log-ratio), 1 for the rest (fractions, ratios, mean entropy)            (metricScale)
 *
 * Finite differences (float64 only): central differences with step 1e-6, |fd − g| ≤ 1e-7 + 1e-6·|g| (as in
 *   test/loss-gradients.test.ts, where the largest error seen is ~3e-9). Float32 backends are NOT differenced:
 *   a float32 loss differenced at any step is noise (rounding 6e-8·|loss| / h swamps the derivative at small h,
 *   the truncation error h²·f''' at large h), so their analytic gradient is compared with the float64 reference
 *   gradient at the float32 gradient tolerance, and the reference gradient is itself checked by finite
 *   differences on the same inputs.
 *
 * Kinks: random inputs keep every log-ratio (and KL argument) at least KINK_MARGIN from a kink of the loss (the
 *   clip bounds, δ, the dual-clip bound, the clamps, |x| at 0, verl's k3 clamps): float32 rounding (≲ 1e-6 in the
 *   log-ratio) must not put a token on the other side of a kink than float64, and a finite difference must not
 *   straddle one.
 */
import { expect } from "vitest";
import {
  resolvePolicyLossOptions,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../../src/index.js";
import { rowWeights } from "../../src/loss/aggregation.js";
import { readLossInputs as readInputs } from "../../src/loss/inputs.js";

export type Dtype = "float64" | "float32";
export type Kind = "value" | "grad";

export interface Tolerance {
  readonly rtol: number;
  readonly atol: number | ArrayLike<number>;
}

export const TOLERANCES = {
  float64: { value: { rtol: 1e-12, atol: 1e-12 }, grad: { rtol: 1e-10, atol: 1e-12 } },
  /** atol is multiplied by the operands' scale (see above). */
  float32: { value: { rtol: 1e-5, atol: 1e-5 }, grad: { rtol: 1e-5, atol: 1e-5 } },
} as const;

/** Documented golden exceptions (float64), as in test/golden-trl-loss.test.ts. */
export const GOLDEN_OVERRIDES = {
  /** TRL computes its clip metrics in float32: the golden README's tolerance for float32 effects. */
  trlFloat32Metrics: { rtol: 1e-6, atol: 1e-7 },
  /**
   * With use_bias_correction_kl at ref − logp = 25, ∂(k3·ρ)/∂logp is the difference of two terms of size
   * w·β·ρ·e^25 ≈ 1e8, which float64 resolves to about 1e-8 in autograd and here alike.
   */
  trlBiasCorrectedKlGradient: { rtol: 1e-10, atol: 1e-7 },
} as const satisfies Record<string, Tolerance>;

export const FINITE_DIFFERENCES = { step: 1e-6, rtol: 1e-6, atol: 1e-7 } as const;

/** Random inputs keep log-ratios and KL arguments this far from a kink of the loss. */
export const KINK_MARGIN = 1e-4;

/**
 * The tolerance for `dtype`. `scale` (a number, or one per entry) only matters for float32; `float64Override`
 * replaces the float64 tolerance where a golden case documents its own.
 */
export function tolerance(
  dtype: Dtype,
  kind: Kind,
  scale: number | ArrayLike<number> = 1,
  float64Override?: Tolerance,
): Tolerance {
  if (dtype === "float64") return float64Override ?? TOLERANCES.float64[kind];
  const t = TOLERANCES.float32[kind];
  return { rtol: t.rtol, atol: typeof scale === "number" ? t.atol * scale : Array.from(scale, (s) => t.atol * s) };
}

/**
 * |actual − expected| ≤ rtol·|expected| + atol for every entry; NaN matches NaN, ±Infinity must be equal. Reports
 * the worst entry (index, both values, the bound) and how many entries fail.
 */
export function expectClose(
  actual: ArrayLike<number> | number,
  expected: ArrayLike<number> | number,
  tol: Tolerance,
  label: string,
): void {
  const a = typeof actual === "number" ? [actual] : actual;
  const e = typeof expected === "number" ? [expected] : expected;
  expect(a.length, `${label}: length`).toBe(e.length);
  let failures = 0;
  let worst = -1;
  let worstExcess = -Infinity;
  for (let i = 0; i < e.length; i++) {
    const x = a[i]!;
    const y = e[i]!;
    let excess: number;
    if (Number.isNaN(x) || Number.isNaN(y)) excess = Number.isNaN(x) === Number.isNaN(y) ? -Infinity : Infinity;
    else if (!Number.isFinite(y) || !Number.isFinite(x)) excess = x === y ? -Infinity : Infinity;
    else {
      const atol = typeof tol.atol === "number" ? tol.atol : tol.atol[i]!;
      const bound = atol + tol.rtol * Math.abs(y);
      excess = Math.abs(x - y) - bound;
      if (excess > 0) excess /= Math.max(bound, Number.MIN_VALUE);
    }
    if (excess > 0) failures++;
    if (excess > worstExcess) {
      worstExcess = excess;
      worst = i;
    }
  }
  if (failures > 0) {
    const atol = typeof tol.atol === "number" ? tol.atol : tol.atol[worst]!;
    const x = a[worst]!;
    const y = e[worst]!;
    expect.fail(
      `${label}: ${failures} of ${e.length} entries out of tolerance; worst [${worst}]: expected ${y}, got ${x} ` +
        `(|diff| ${Math.abs(x - y)}, allowed ${atol + tol.rtol * Math.abs(y)} = ${atol} + ${tol.rtol}·|expected|)`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Scales for float32 comparisons, from the float64 reference result on the same inputs.

interface LossParts {
  readonly rows: number;
  readonly cols: number;
  readonly mask: ArrayLike<number>;
  readonly weights: Float64Array;
  readonly entropyWeights: Float64Array | undefined;
  readonly klCoef: number;
  readonly entropyCoef: number;
  readonly entropy: ArrayLike<number> | undefined;
  /** Per token, the size of the operands of its KL term (0 without a KL). */
  readonly klOperands: Float64Array;
}

/**
 * Per token, the size of the numbers its KL term is computed from: logp and refLogp (every estimator takes their
 * difference x, whose float32 rounding error is ≈ 6e-8·(|logp| + |refLogp|), large next to a small x), e^x for k3
 * (through |kl|), times the ratio ρ when TRL's importance correction multiplies the KL by it.
 */
function klOperands(
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
  perTokenKl: ArrayLike<number> | undefined,
): Float64Array {
  const o = resolvePolicyLossOptions(options);
  const t = readInputs(inputs, o);
  const [rows, cols] = t.shape;
  const out = new Float64Array(rows * cols);
  if (o.kl === null || perTokenKl === undefined) return out;
  const ratios = o.kl.importanceCorrected ? tokenRatios(t, o.ratioLevel !== "token", o.logRatioClamp) : undefined;
  for (let i = 0; i < out.length; i++) {
    if (t.mask[i] !== 1) continue;
    out[i] = (ratios?.[i] ?? 1) * (1 + Math.abs(t.logp[i]!) + Math.abs(t.refLogp![i]!)) + Math.abs(perTokenKl[i]!);
  }
  return out;
}

/** The importance ratio each valid token's loss uses: its own or its row's (sequence level), clamped. */
function tokenRatios(
  t: ReturnType<typeof readInputs>,
  sequenceLevel: boolean,
  clamp: readonly [number, number] | null,
): Float64Array {
  const [rows, cols] = t.shape;
  const [low, high] = clamp ?? [-Infinity, Infinity];
  const out = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let mean = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) if (t.mask[i] === 1) mean += t.logp[i]! - t.oldLogp[i]!;
    mean /= Math.max(1, t.rowTokens[b]!);
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      const logRatio = sequenceLevel ? mean : t.logp[i]! - t.oldLogp[i]!;
      out[i] = Math.exp(Math.min(high, Math.max(low, logRatio)));
    }
  }
  return out;
}

function lossParts(inputs: PolicyLossInputs, options: PolicyLossOptionsInput, reference: PolicyLossResult): LossParts {
  const o = resolvePolicyLossOptions(options);
  const t = readInputs(inputs, o);
  const [rows, cols] = t.shape;
  return {
    rows,
    cols,
    mask: t.mask,
    weights: rowWeights(t.rowTokens, cols, o.aggregation, o.normalizer),
    entropyWeights:
      o.entropyCoef > 0
        ? rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer)
        : undefined,
    klCoef: o.kl?.coef ?? 0,
    entropyCoef: o.entropyCoef,
    entropy: t.entropy,
    klOperands: klOperands(inputs, options, reference.perTokenKl),
  };
}

/** Σ over valid tokens of the magnitudes of the loss's weighted terms (their operands, for the KL). */
export function lossScale(
  reference: PolicyLossResult,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
): number {
  const p = lossParts(inputs, options, reference);
  let sum = 0;
  for (let i = 0; i < p.rows * p.cols; i++) {
    if (p.mask[i] !== 1) continue;
    const b = Math.floor(i / p.cols);
    sum += p.weights[b]! * (Math.abs(reference.perTokenLoss[i]!) + p.klCoef * p.klOperands[i]!);
    if (p.entropyWeights !== undefined) sum += p.entropyWeights[b]! * p.entropyCoef * Math.abs(p.entropy![i]!);
  }
  return sum;
}

/** Per token: |g| + w_b·(|ℓ| + coef·(KL operands)), the size of the terms ∂loss/∂logp is computed from. */
export function gradScale(
  reference: PolicyLossResult,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
): Float64Array {
  const p = lossParts(inputs, options, reference);
  return Float64Array.from(reference.grad, (g, i) => {
    if (p.mask[i] !== 1) return 0;
    const w = p.weights[Math.floor(i / p.cols)]!;
    return Math.abs(g) + w * (Math.abs(reference.perTokenLoss[i]!) + p.klCoef * p.klOperands[i]!);
  });
}

/** Per token: the size of the KL term's operands (see klOperands). */
export function klScale(
  reference: PolicyLossResult,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
): Float64Array {
  return klOperands(inputs, options, reference.perTokenKl);
}

/**
 * The scale of a metric (a mean over valid tokens): the mean of its operands' scale for the KL (see klOperands)
 * and for approxKl (a mean log-ratio: 1 + mean(|logp| + |oldLogp|)); 1 for the rest (fractions, ratios, entropy).
 */
export function metricScale(
  name: string,
  reference: PolicyLossResult,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
): number {
  if (name !== "kl" && name !== "approxKl") return 1;
  const o = resolvePolicyLossOptions(options);
  const t = readInputs(inputs, o);
  const operands = name === "kl" ? klOperands(inputs, options, reference.perTokenKl) : undefined;
  let sum = 0;
  let n = 0;
  for (let i = 0; i < t.mask.length; i++) {
    if (t.mask[i] !== 1) continue;
    sum += operands !== undefined ? operands[i]! : Math.abs(t.logp[i]!) + Math.abs(t.oldLogp[i]!);
    n++;
  }
  return n === 0 ? 1 : 1 + sum / n;
}

/** Per position: 1 + |value|. */
export function logProbScale(values: ArrayLike<number>): Float64Array {
  return Float64Array.from(values, (value) => 1 + (Number.isFinite(value) ? Math.abs(value) : 0));
}

/** Per logit: (|g| + |h|·(1 + |lse| + |H| + max|z|))/τ of its position, plus |value|. */
export function logitGradScale(
  logits: ArrayLike<number>,
  vocab: number,
  expected: ArrayLike<number>,
  forward: { logSumExp: ArrayLike<number>; entropy?: ArrayLike<number> | undefined },
  gradLogp: ArrayLike<number>,
  gradEntropy: ArrayLike<number> | undefined,
  temperature: number,
): Float64Array {
  const out = new Float64Array(expected.length);
  for (let i = 0; i < gradLogp.length; i++) {
    let maxZ = 0;
    for (let v = 0; v < vocab; v++) {
      const z = Math.abs(logits[i * vocab + v]! / temperature);
      if (Number.isFinite(z) && z > maxZ) maxZ = z;
    }
    const lse = Number.isFinite(forward.logSumExp[i]!) ? Math.abs(forward.logSumExp[i]!) : 0;
    const h = Math.abs(gradEntropy?.[i] ?? 0) * (1 + lse + Math.abs(forward.entropy?.[i] ?? 0) + maxZ);
    const position = (Math.abs(gradLogp[i]!) + h) / temperature;
    for (let v = 0; v < vocab; v++) out[i * vocab + v] = position + Math.abs(expected[i * vocab + v]!);
  }
  return out;
}

export const infinityNorm = (values: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < values.length; i++)
    if (Number.isFinite(values[i]!) && Math.abs(values[i]!) > m) m = Math.abs(values[i]!);
  return m;
};
