/**
 * What a backend that computes in float32 (WebGPU's and CUDA's kernels) refuses beyond the
 * reference's validation: inputs finite in float64 but not in float32, and inputs whose float32 computation would
 * overflow although the result is representable. Each is a ValidationError naming the field, the position and
 * float32 as the cause, in the words of the contract's requireFloat32Range; and the one error for a sampled token
 * whose log-prob is −Infinity, named at the logits (the caller's input) rather than at a log-prob it never passed.
 * Only positions the kernels read are checked, once, before anything reaches the device.
 */
import { invalid } from "../errors.js";
import { impossibleToken, type Logits, type TokenLogProbs } from "../logprobs/token-logprobs.js";
import type { LossInputs } from "../loss/inputs.js";
import type { PolicyLossOptions } from "../loss/options.js";
import type { PolicyLossResult } from "../loss/policy-loss.js";
import { type NumericArray, requireFloat32Range } from "../numeric.js";

export const FLOAT32_MAX = 3.4028234663852886e38;
const SMALLEST_NORMAL = 2 ** -126;

/** What every float32 error says after the value: the range and why it matters here. */
const BEYOND = "beyond the range of float32 (±3.4028235e38), which this backend computes in";

/** The inverse temperature as the kernels hold it (a float32). */
export function float32InverseTemperature(temperature: number): number {
  return Math.fround(1 / temperature);
}

/**
 * The kernels multiply by 1/τ in float32: it must be a normal float32 (a subnormal may be flushed to 0, and an
 * infinite one turns the largest logit's 0·∞ into NaN).
 */
export function requireFloat32Temperature(temperature: number): void {
  const inverse = float32InverseTemperature(temperature);
  if (inverse >= SMALLEST_NORMAL && inverse <= FLOAT32_MAX) return;
  throw invalid(
    "options.temperature",
    `is ${temperature}: 1/temperature (${1 / temperature}) is not a normal float32, which this backend computes in ` +
      `(temperatures from ${1 / FLOAT32_MAX} to ${1 / SMALLEST_NORMAL} are)`,
  );
}

/**
 * Float64 (or plain-array) logits at the positions `reads` selects must be within float32's range: the device
 * would read ±Infinity there. Float32 and bfloat16 logits are in range by construction, and so are logits already
 * on a device (float32 buffers: their Logits carry no data).
 */
export function requireFloat32Logits(l: Logits, reads: (position: number) => boolean): void {
  const data = l.data;
  if (data instanceof Float32Array || l.bfloat16 !== undefined || data.length === 0) return;
  const { vocab, cols } = l;
  for (let i = 0; i < l.rows * cols; i++) {
    if (!reads(i)) continue;
    const offset = i * vocab;
    for (let v = 0; v < vocab; v++) {
      const x = data[offset + v]!;
      // The common case costs one comparison: only |x| > FLOAT32_MAX can be out of range (NaN fails it too).
      if (!(x > FLOAT32_MAX || x < -FLOAT32_MAX)) continue;
      const row = ArrayBuffer.isView(data)
        ? (data as Float64Array).subarray(offset, offset + vocab)
        : Array.prototype.slice.call(data, offset, offset + vocab);
      requireFloat32Range(row, `logits[${Math.floor(i / cols)}][${i % cols}]`);
    }
  }
}

/** How far the gradient into one position's logits reaches: |g|/τ + |h|/τ·(1/e + ln V) (see requireFloat32Upstream). */
function gradientReach(g: number, h: number, temperature: number, vocab: number): { g: number; h: number } {
  const inverse = float32InverseTemperature(temperature);
  return { g: Math.abs(g) * inverse, h: Math.abs(h) * inverse * (1 / Math.E + Math.log(vocab)) };
}

/**
 * The loss's gradient ∂loss/∂logp = g and ∂loss/∂entropy = h at position i, computed by the loss (float64 on cuda,
 * float32 on webgpu), would overflow float32 in the gradient into the logits: undefined when it fits, else the error
 * at the logits' position.
 */
export function lossGradientOverflow(
  i: number,
  l: Logits,
  g: number,
  h: number,
  temperature: number,
): Error | undefined {
  const reach = gradientReach(g, h, temperature, l.vocab);
  if (reach.g + reach.h <= FLOAT32_MAX) return undefined;
  return invalid(
    `logits[${Math.floor(i / l.cols)}][${i % l.cols}]`,
    `the loss's gradient there (∂loss/∂logp ${g}${h === 0 ? "" : `, ∂loss/∂entropy ${h}`}) reaches ` +
      `${reach.g + reach.h} in the logits at temperature ${temperature}, ${BEYOND}: bound the log-ratio ` +
      "(options.logRatioClamp), or scale the advantages (or the loss's coefficients) down",
  );
}

/**
 * ∂L/∂logp and ∂L/∂entropy of the backward pass at the positions it reads: within float32's range, and such that
 * the gradient into the logits, which reaches |g|/τ + |h|/τ·(1/e + ln V) (p·|log p| ≤ 1/e, entropy ≤ ln V), does
 * not overflow float32.
 */
export function requireFloat32Upstream(
  gradLogp: NumericArray,
  gradEntropy: NumericArray | undefined,
  reads: ArrayLike<number>,
  temperature: number,
  l: Logits,
): void {
  const skip = (i: number) => reads[i] !== 1;
  requireFloat32Range(gradLogp, "options.gradLogp", l.cols, skip);
  if (gradEntropy !== undefined) requireFloat32Range(gradEntropy, "options.gradEntropy", l.cols, skip);
  for (let i = 0; i < reads.length; i++) {
    if (reads[i] !== 1) continue;
    const { g, h } = gradientReach(gradLogp[i]!, gradEntropy?.[i] ?? 0, temperature, l.vocab);
    if (g + h <= FLOAT32_MAX) continue;
    const at = `[${Math.floor(i / l.cols)}][${i % l.cols}]`;
    const [name, value] =
      g > FLOAT32_MAX || gradEntropy === undefined ? ["gradLogp", gradLogp[i]!] : ["gradEntropy", gradEntropy[i]!];
    throw invalid(
      `options.${name}${at}`,
      `is ${value}: the gradient it sends into the logits at temperature ${temperature} reaches ${g + h}, ${BEYOND}`,
    );
  }
}

/**
 * A saved logsumexp as a float32 kernel can use it exactly, or undefined: shift ≈ logsumexp·τ (a float32) and
 * logSum = logsumexp − shift/τ, with 1/τ the kernels' float32 one, so that (z − shift)/τ − logSum = z/τ − logsumexp.
 * That holds to 1e-6 only while the shift is within an ulp of 1 of the row's largest logit (|logsumexp| ≤ 2^24: a
 * float64 logsumexp near 3e38 has lost log Σ altogether, 3e38 + log 4 = 3e38) and while the float32 1/τ agrees with
 * the 1/τ the logsumexp was computed with to 1e-6 over its size (always at τ = 1 and powers of two, and for a
 * logsumexp this backend's forward pass computed); elsewhere the kernel computes the statistics from the logits.
 */
export function savedShift(
  logSumExp: number,
  entropy: number,
  temperature: number,
): { shift: number; logSum: number } | undefined {
  const inverse = float32InverseTemperature(temperature);
  const inverseError = Math.abs(inverse * temperature - 1);
  if (!(Math.abs(logSumExp) <= 2 ** 24) || Math.abs(logSumExp) * inverseError > 2 ** -20) return undefined;
  if (!Number.isFinite(entropy)) return undefined;
  const shift = Math.fround(logSumExp / inverse);
  return { shift, logSum: logSumExp - shift * inverse };
}

/** Every read position's saved logsumexp gives float32 kernels their statistics exactly (savedShift). */
export function savedIsExact(saved: TokenLogProbs, reads: ArrayLike<number>): boolean {
  for (let i = 0; i < reads.length; i++) {
    if (reads[i] === 1 && savedShift(saved.logSumExp[i]!, saved.entropy?.[i] ?? 0, saved.temperature) === undefined)
      return false;
  }
  return true;
}

/** The error for saved statistics under which a row's probabilities do not sum to 1: the logits changed since. */
export function savedMismatch(i: number, cols: number, probabilitySum: number): Error {
  return invalid(
    "options.saved",
    `does not describe the logits at [${Math.floor(i / cols)}][${i % cols}]: under its logSumExp their ` +
      `probabilities sum to ${probabilitySum}, not 1 (the logits changed since the forward pass that computed it, ` +
      "or it is another call's); run the forward pass again on these logits, or leave `saved` out",
  );
}

/**
 * The error for a position whose sampled token has log-prob −Infinity: its logit is −Infinity (probability 0, so
 * the loss and its gradient are undefined there), or, with `logp` given, its log-prob is finite but beyond float32.
 */
export function sampledTokenError(i: number, cols: number, token: number, tokenLogit: number, logp?: number): Error {
  const at = `[${Math.floor(i / cols)}][${i % cols}]`;
  if (tokenLogit === -Infinity || logp === undefined) return impossibleToken(i, cols, token);
  return invalid(
    `logits${at}`,
    `the sampled token's log-prob (tokens${at} = ${token}, logit ${tokenLogit}) is ${logp}, ${BEYOND}`,
  );
}

/**
 * The loss's inputs at the positions the kernel reads (the mask's; row advantages of rows with tokens) within
 * float32's range. With `fromStatistics`, logp and entropy come from the device and are not the caller's.
 */
export function requireFloat32LossInputs(
  t: LossInputs,
  o: PolicyLossOptions,
  { fromStatistics, hasOldLogp }: { fromStatistics: boolean; hasOldLogp: boolean },
): void {
  const [, cols] = t.shape;
  const skip = (i: number) => t.mask[i] !== 1;
  if (!fromStatistics) requireFloat32Range(t.logp, "inputs.logp", cols, skip);
  if (!fromStatistics || hasOldLogp) requireFloat32Range(t.oldLogp, "inputs.oldLogp", cols, skip);
  if (t.perTokenAdvantages) requireFloat32Range(t.advantages, "inputs.advantages", cols, skip);
  else requireFloat32Range(t.advantages, "inputs.advantages", undefined, (b) => t.rowTokens[b] === 0);
  if (o.kl !== null && t.refLogp !== undefined) requireFloat32Range(t.refLogp, "inputs.refLogp", cols, skip);
  if (t.importanceWeights !== undefined)
    requireFloat32Range(t.importanceWeights, "inputs.importanceWeights", cols, skip);
  if (t.entropy !== undefined && !fromStatistics) requireFloat32Range(t.entropy, "inputs.entropy", cols, skip);
}

/**
 * The options' numbers as the kernel holds them: a float32 of the same size, not ±Infinity (beyond float32's range)
 * nor a subnormal or 0 (a coefficient of 1e-50 would silently drop its term). The log-ratio clamp's bounds need
 * no check: beyond float32 they bound nothing a float32 log-ratio can reach, as ±Infinity does.
 */
export function requireFloat32Options(o: PolicyLossOptions, root = "options"): void {
  const values: [string, number | null | undefined][] = [
    [`${root}.clipLow`, o.clipLow],
    [`${root}.clipHigh`, o.clipHigh],
    [`${root}.delta`, o.delta],
    [`${root}.dualClip`, o.dualClip],
    [`${root}.entropyCoef`, o.entropyCoef],
    [`${root}.kl.coef`, o.kl?.coef],
    [`${root}.sapoTemperature.positive`, o.sapoTemperature.positive],
    [`${root}.sapoTemperature.negative`, o.sapoTemperature.negative],
  ];
  for (const [path, value] of values) {
    if (typeof value !== "number" || value === 0 || !Number.isFinite(value)) continue;
    const magnitude = Math.abs(Math.fround(value));
    if (magnitude === Infinity)
      throw invalid(path, `is ${value}, beyond the range of float32 (±3.4028235e38), which this backend computes in`);
    if (magnitude < SMALLEST_NORMAL) {
      throw invalid(
        path,
        `is ${value}, below the smallest normal float32 (1.1754944e-38), which this backend computes in (it would ` +
          "be 0 there)",
      );
    }
  }
}

/**
 * The kernel's per-token results where the mask selects, and the loss, are finite: a term that overflows float32
 * (a log-ratio above ~88 makes e^x infinite; so does a KL estimate of log-probs far apart) is an error at its
 * position, never a NaN or ±Infinity in the result. `name` is where the log-probs came from: the caller's
 * inputs.logp, or the logits of the loss from logits; a KL term is named at inputs.refLogp, as the reference does.
 */
export function requireFiniteLoss(
  result: PolicyLossResult,
  t: LossInputs,
  logp: ArrayLike<number>,
  name: string,
): void {
  const [, cols] = t.shape;
  const { grad, perTokenLoss, perTokenKl, gradEntropy } = result;
  for (let i = 0; i < t.mask.length; i++) {
    if (t.mask[i] !== 1) continue;
    const sum = grad[i]! + perTokenLoss[i]! + (perTokenKl?.[i] ?? 0) + (gradEntropy?.[i] ?? 0);
    if (Number.isFinite(sum)) continue;
    const at = `[${Math.floor(i / cols)}][${i % cols}]`;
    if (perTokenKl !== undefined && !Number.isFinite(perTokenKl[i]) && t.refLogp !== undefined) {
      throw invalid(
        `inputs.refLogp${at}`,
        `the KL estimate of logp − refLogp = ${logp[i]! - t.refLogp[i]!} overflows float32, which this backend ` +
          "computes the loss in (verl's clamps, options.kl.clamp: true, bound k3), or use a float64 backend",
      );
    }
    throw invalid(
      `${name}${at}`,
      `the loss's terms at this position overflow float32, which this backend computes the loss in (log-ratio ` +
        `logp − oldLogp = ${logp[i]! - t.oldLogp[i]!}): clamp it with options.logRatioClamp (verl uses [-20, 20]), ` +
        "or use a float64 backend",
    );
  }
  if (!Number.isFinite(result.loss)) {
    throw invalid(
      name,
      `the loss, a float32 sum of finite per-token terms, overflows (${result.loss}): scale the advantages down`,
    );
  }
}
