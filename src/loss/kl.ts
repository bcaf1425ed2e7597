import type { KlKind } from "./options.js";

export interface KlValue {
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

/**
 * Per-token KL estimators of log π − log π_ref (Schulman's k1, k2, k3, and |k1|), chosen once per call so that the
 * loss's loop calls one small function it can inline. The clamp is verl's, and only k3 has one.
 */
const KL_ESTIMATORS = {
  k1: () => (logp, refLogp) => ({ value: logp - refLogp, dLogp: 1 }),
  abs: () => (logp, refLogp) => ({ value: Math.abs(logp - refLogp), dLogp: Math.sign(logp - refLogp) }),
  k2: () => (logp, refLogp) => {
    const diff = logp - refLogp;
    return { value: 0.5 * diff * diff, dLogp: diff };
  },
  k3: (clamp) => (clamp ? k3Clamped : k3),
} as const satisfies Record<KlKind, (clamp: boolean) => KlEstimator>;

const estimators = new Map<string, KlEstimator>();

export function klEstimator(kind: KlKind, clamp: boolean): KlEstimator {
  const key = `${kind}:${clamp}`;
  let estimator = estimators.get(key);
  if (estimator === undefined) {
    estimator = KL_ESTIMATORS[kind](clamp);
    estimators.set(key, estimator);
  }
  return estimator;
}

/** One token's KL estimate of log π − log π_ref and its slope in logp, as the loss computes it. */
export function klPenalty(kind: KlKind, clamp: boolean, logp: number, refLogp: number): KlValue {
  return klEstimator(kind, clamp)(logp, refLogp);
}
