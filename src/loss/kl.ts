import type { KlKind } from "./options.js";

export interface KlValue {
  readonly value: number;
  /** ∂value/∂logp. */
  readonly dLogp: number;
}

/** Per-token KL estimators of log π − log π_ref (Schulman's k1, k2, k3, and |k1|), with verl's optional clamps. */
export function klPenalty(kind: KlKind, clamp: boolean, logp: number, refLogp: number): KlValue {
  const diff = logp - refLogp;
  switch (kind) {
    case "k1":
      return { value: diff, dLogp: 1 };
    case "abs":
      return { value: Math.abs(diff), dLogp: Math.sign(diff) };
    case "k2":
      return { value: 0.5 * diff * diff, dLogp: diff };
    case "k3": {
      // x = log(π_ref/π); k3 = e^x − x − 1 ≥ 0, low variance, unbiased.
      let x = -diff;
      let xSlope = -1;
      if (clamp && (x < -20 || x > 20)) {
        x = x < -20 ? -20 : 20;
        xSlope = 0;
      }
      const expX = Math.exp(x);
      let value = expX - x - 1;
      let slope = (expX - 1) * xSlope;
      if (clamp && (value < -10 || value > 10)) {
        value = value < -10 ? -10 : 10;
        slope = 0;
      }
      return { value, dLogp: slope };
    }
  }
}
