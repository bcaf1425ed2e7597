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
