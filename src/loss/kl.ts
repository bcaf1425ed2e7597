import * as z from "zod/mini";
import { invalid, parseOrThrow } from "../errors.js";
import { type KlKind, klKindSchema, type VerlKlName } from "./options.js";

/** One token's KL estimate and its slope. */
export interface KlValue {
  /** The token's KL estimate (k1, |k1|, k2 or k3 of log π − log π_ref). */
  readonly value: number;
  /** ∂value/∂logp. */
  readonly dLogp: number;
}

/** One KL estimator of log π − log π_ref for one token: its value and slope in logp. */
export type KlEstimator = (logp: number, refLogp: number) => KlValue;

/** k3 = e^x − x − 1 with x = log(π_ref/π) ≥ 0: low variance, unbiased. */
const k3: KlEstimator = (logp, refLogp) => {
  const x = refLogp - logp;
  const expX = Math.exp(x);
  return { value: expX - x - 1, dLogp: 1 - expX };
};

/** verl's low_var_kl: k3 with x clamped to ±20 and the value to ±10 (the slope is 0 where a clamp binds). */
const k3Clamped: KlEstimator = (logp, refLogp) => {
  const rawX = refLogp - logp;
  const xInside = rawX >= -20 && rawX <= 20;
  const x = xInside ? rawX : rawX < -20 ? -20 : 20;
  const expX = Math.exp(x);
  const value = expX - x - 1;
  if (value < -10 || value > 10) return { value: value < -10 ? -10 : 10, dLogp: 0 };
  return { value, dLogp: xInside ? 1 - expX : 0 };
};

type BaseKlKind = "k1" | "abs" | "k2" | "k3";

/**
 * Per-token KL estimators of log π − log π_ref (Schulman's k1, k2, k3, and |k1|), chosen once per call so that the
 * loss's loop calls one small function it can inline. The clamp is verl's, and only k3 has one.
 */
const BASE_KL_ESTIMATORS = {
  k1: () => (logp, refLogp) => ({ value: logp - refLogp, dLogp: 1 }),
  abs: () => (logp, refLogp) => ({ value: Math.abs(logp - refLogp), dLogp: Math.sign(logp - refLogp) }),
  k2: () => (logp, refLogp) => {
    const diff = logp - refLogp;
    return { value: 0.5 * diff * diff, dLogp: diff };
  },
  k3: (clamp) => (clamp ? k3Clamped : k3),
} as const satisfies Record<BaseKlKind, (clamp: boolean) => KlEstimator>;

/**
 * verl 1dda039's "+" kinds: the base kind's value (its clamps included) with the k2 gradient logp − refLogp, i.e.
 * verl's `kl.detach() + k2 − k2.detach()` (straight-through; at b178a3c these raised NotImplementedError).
 */
function straightThrough(base: BaseKlKind): (clamp: boolean) => KlEstimator {
  return (clamp) => {
    const estimate = BASE_KL_ESTIMATORS[base](clamp);
    return (logp, refLogp) => ({ value: estimate(logp, refLogp).value, dLogp: logp - refLogp });
  };
}

const KL_ESTIMATORS = {
  ...BASE_KL_ESTIMATORS,
  "k1+": straightThrough("k1"),
  "abs+": straightThrough("abs"),
  "k2+": straightThrough("k2"),
  "k3+": straightThrough("k3"),
} as const satisfies Record<KlKind, (clamp: boolean) => KlEstimator>;

const estimators = new Map<string, KlEstimator>();

/** The estimator of `kind` (with verl's k3 clamps when `clamp`), built once and cached. */
export function klEstimator(kind: KlKind, clamp: boolean): KlEstimator {
  const key = `${kind}:${clamp}`;
  let estimator = estimators.get(key);
  if (estimator === undefined) {
    estimator = KL_ESTIMATORS[kind](clamp);
    estimators.set(key, estimator);
  }
  return estimator;
}

/**
 * TRL's importance-corrected KL: the estimate and its slope in logp, each times ρ = e^logRatio, computed so that a
 * product that is finite stays finite. k3's e^x·ρ is e^(x + log ρ): for logp far below refLogp and oldLogp, e^x
 * overflows while ρ underflows, and their product is an ordinary number (e^x·ρ = π_ref/π_old).
 */
export type KlTimesRatio = (logp: number, refLogp: number, logRatio: number) => KlValue;

const k3TimesRatio: KlTimesRatio = (logp, refLogp, logRatio) => {
  const x = refLogp - logp;
  const ratio = Math.exp(logRatio);
  const expXRatio = Math.exp(x + logRatio);
  return { value: expXRatio - (x + 1) * ratio, dLogp: ratio - expXRatio };
};

/** k3+ without clamps: k3's value times ρ as k3TimesRatio keeps it finite, the straight-through slope times ρ. */
const k3PlusTimesRatio: KlTimesRatio = (logp, refLogp, logRatio) => {
  const { value } = k3TimesRatio(logp, refLogp, logRatio);
  const slope = logp - refLogp;
  return { value, dLogp: slope === 0 ? 0 : slope * Math.exp(logRatio) };
};

/** The estimator of `kind` times the importance ratio, each product kept finite where it is (see KlTimesRatio). */
export function klTimesRatio(kind: KlKind, clamp: boolean): KlTimesRatio {
  if (kind === "k3" && !clamp) return k3TimesRatio;
  if (kind === "k3+" && !clamp) return k3PlusTimesRatio;
  const estimate = klEstimator(kind, clamp);
  return (logp, refLogp, logRatio) => {
    const { value, dLogp } = estimate(logp, refLogp);
    const ratio = Math.exp(logRatio);
    // 0 · ∞ is 0 here: a zero estimate or slope contributes nothing, whatever the ratio.
    return { value: value === 0 ? 0 : value * ratio, dLogp: dLogp === 0 ? 0 : dLogp * ratio };
  };
}

const klPenaltyArguments = z.tuple([klKindSchema, z.boolean(), z.number(), z.number()]);

/**
 * One token's KL estimate of log π − log π_ref and its slope in logp, as the loss computes it (validated: the loss
 * itself calls the estimators directly, once its inputs are).
 *
 * `kind` also takes verl's names ("low_var_kl", "k3+", "low_var_kl+", …).
 *
 * @example klPenalty("k3", true, -1, -1.5) // => { value: e^-0.5 + 0.5 − 1 ≈ 0.1065, dLogp: 1 − e^-0.5 ≈ 0.3935 }
 * @example klPenalty("k3+", true, -1, -1.5) // => { value: ≈ 0.1065, dLogp: 0.5 } (straight-through: logp − refLogp)
 */
export function klPenalty(kind: KlKind | VerlKlName, clamp: boolean, logp: number, refLogp: number): KlValue {
  const [resolved] = parseOrThrow(klPenaltyArguments, [kind, clamp, logp, refLogp], "arguments");
  const result = klEstimator(resolved, clamp)(logp, refLogp);
  if (!Number.isFinite(result.value) || !Number.isFinite(result.dLogp)) {
    throw invalid("arguments", `the ${kind} estimate of logp − refLogp = ${logp - refLogp} overflows float64`);
  }
  return result;
}
