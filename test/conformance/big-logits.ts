/**
 * [4, 1024, 9000] float32 logits (147.5 MB): over lavapipe's 128 MiB binding limit, so a WebGPU backend must chunk
 * them. Deterministic (xorshift32), with checks that cover every position cheaply: a chunk that was skipped or read
 * back as zeros fails them.
 */
import type { TokenLogProbs } from "../../src/index.js";

export const BIG_SHAPE = [4, 1024, 9000] as const;

export function bigLogitsCase() {
  const [B, T, V] = BIG_SHAPE;
  const positions = B * T;
  let state = 0x9e3779b9;
  const next = () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const logits = new Float32Array(positions * V);
  for (let i = 0; i < logits.length; i++) logits[i] = 6 * next() - 3;
  // A few positions with one dominant logit, so that some probabilities are near 1.
  for (let i = 0; i < positions; i += 97) logits[i * V + (i % V)] = 25;
  const tokens = Float64Array.from({ length: positions }, (_, i) => (i * 7919) % V);
  const gradLogp = Float64Array.from({ length: positions }, (_, i) => Math.sin(i) + 1.5);
  const gradEntropy = Float64Array.from({ length: positions }, (_, i) => 0.25 * Math.cos(3 * i));
  return {
    shape: [B, T, V] as [number, number, number],
    logits,
    tokens,
    gradLogp,
    gradEntropy,
    /** Each 128 MiB chunk's first and last positions, and a spread of others. */
    spots: [0, 1, 97, 1863, 1864, 1865, 2000, 3727, 3728, 3729, 4000, 4095],
    /** One position's logits as a [1, 1, V] input for the reference backend. */
    one: (i: number) => ({ data: logits.subarray(i * V, (i + 1) * V), shape: [1, 1, V] as [number, number, number] }),
    /**
     * Positions whose logp, logsumexp or entropy are zero or not finite. (Where a logit of 25 dominates,
     * p ≈ 1 − 1e-7: logp and entropy may round to 0 in float32 there.)
     */
    badPositions(forward: TokenLogProbs): number {
      let wrong = 0;
      for (let i = 0; i < positions; i++) {
        const dominant = i % 97 === 0;
        const lp = forward.logp[i]!;
        const h = forward.entropy![i]!;
        const ok =
          Number.isFinite(lp) &&
          Number.isFinite(h) &&
          forward.logSumExp[i]! > Math.log(V) - 3 &&
          (dominant ? lp <= 0 && h > -1e-5 : lp < 0 && h > 0);
        if (!ok) wrong++;
      }
      return wrong;
    },
    /**
     * Positions whose token entry of ∂L/∂logits is not g·(1 − p) − h·p·(z − lse + H), from the forward results; a
     * zero chunk fails it (g ≥ 0.5 everywhere).
     */
    badTokenGradients(forward: TokenLogProbs, grad: ArrayLike<number>): number {
      let bad = 0;
      for (let i = 0; i < positions; i++) {
        const p = Math.exp(forward.logp[i]!);
        const z = logits[i * V + tokens[i]!]!;
        const expected =
          gradLogp[i]! * (1 - p) - gradEntropy[i]! * p * (z - forward.logSumExp[i]! + forward.entropy![i]!);
        const actual = grad[i * V + tokens[i]!]!;
        if (
          !(
            Math.abs(actual - expected) <=
            1e-5 * (1 + Math.abs(gradLogp[i]!) + Math.abs(gradEntropy[i]!) * (1 + Math.abs(z) + forward.logSumExp[i]!))
          )
        )
          bad++;
      }
      return bad;
    },
  };
}
