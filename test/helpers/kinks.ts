/** The two roots of e^x − x − 1 = 10, where verl's k3 value clamp starts to bind (found by bisection). */
export const K3_VALUE_KINKS = [bisect(-20, 0), bisect(0, 20)];

function bisect(lo: number, hi: number): number {
  const f = (x: number) => Math.exp(x) - x - 1 - 10;
  const sign = Math.sign(f(lo));
  for (let k = 0; k < 200; k++) {
    const mid = (lo + hi) / 2;
    if (Math.sign(f(mid)) === sign) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Log-ratios where the clipped objectives change branch: the clip bounds, δ, the dual-clip bound, the clamp. */
export function ratioKinks(o: {
  clipLow?: number | undefined;
  clipHigh?: number | undefined;
  delta?: number | null | undefined;
  dualClip?: number | null | undefined;
  logRatioClamp?: readonly [number, number] | null | undefined;
}): number[] {
  const clipLow = o.clipLow ?? 0.2;
  const kinks = [Math.log(1 + (o.clipHigh ?? 0.28))];
  if (clipLow < 1) kinks.push(Math.log(1 - clipLow));
  if (o.delta != null) kinks.push(Math.log(o.delta));
  if (o.dualClip != null) kinks.push(Math.log(o.dualClip));
  if (o.logRatioClamp != null) kinks.push(...o.logRatioClamp.filter(Number.isFinite));
  return kinks;
}

/** Values of x = refLogp − logp where a KL estimate is not differentiable. */
export function klKinks(kind: string, clamp: boolean): number[] {
  if (kind === "abs") return [0];
  if (kind === "k3" && clamp) return [-20, 20, ...K3_VALUE_KINKS];
  return [];
}

export const nearAny = (values: readonly number[], kinks: readonly number[], margin: number) =>
  values.some((v) => kinks.some((k) => Math.abs(v - k) < margin));
