import type { KlKind } from "./options.js";

export interface KlValue {
  value: number;
  /** ∂value/∂logp. */
  dLogp: number;
}

/** Per-token KL estimators of log π − log π_ref (Schulman's k1, k2, k3, and |k1|), with verl's optional clamps. */
export function klPenalty(kind: KlKind, clamp: boolean, logp: number, refLogp: number, out: KlValue): void {
  const diff = logp - refLogp;
  switch (kind) {
    case "k1":
      out.value = diff;
      out.dLogp = 1;
      return;
    case "abs":
      out.value = Math.abs(diff);
      out.dLogp = Math.sign(diff);
      return;
    case "k2":
      out.value = 0.5 * diff * diff;
      out.dLogp = diff;
      return;
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
      out.value = value;
      out.dLogp = slope;
      return;
    }
  }
}
