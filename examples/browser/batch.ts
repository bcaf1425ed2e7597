/**
 * The example's batch: B = 4 rollouts of T = 16 tokens over a vocabulary of V = 512, made from a fixed seed so
 * that the page and the test (test/browser.test.ts) build exactly the same numbers.
 */
export const B = 4;
export const T = 16;
export const V = 512;

/** The paper preset clips the ratio to [1 − 0.2, 1 + 0.28]; old log-probs keep their log-ratio away from both. */
const CLIP_LOG_RATIOS = [Math.log(0.8), Math.log(1.28)];

/** mulberry32: a small seeded generator of floats in [0, 1). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** log softmax(logits)[token] per position, in float64: the log-probs of the policy being trained. */
function logProbs(logits: Float32Array, tokens: Int32Array): Float64Array {
  return Float64Array.from(tokens, (token, i) => {
    const row = logits.subarray(i * V, (i + 1) * V);
    const max = row.reduce((m, z) => Math.max(m, z), -Infinity);
    const sum = row.reduce((s, z) => s + Math.exp(z - max), 0);
    return row[token]! - max - Math.log(sum);
  });
}

/** The inputs of policyLossFromLogits (oldLogp, advantages and mask are also those of policyLoss). */
export interface ExampleBatch {
  readonly logits: { readonly data: Float32Array; readonly shape: readonly [number, number, number] };
  readonly tokens: { readonly data: Int32Array; readonly shape: readonly [number, number] };
  readonly oldLogp: { readonly data: Float64Array; readonly shape: readonly [number, number] };
  readonly advantages: Float64Array;
  readonly mask: { readonly data: Float64Array; readonly shape: readonly [number, number] };
}

export function exampleBatch(seed = 2025): ExampleBatch {
  const next = random(seed);
  // Logits as a model would emit them (float32), tokens drawn uniformly.
  const logits = Float32Array.from({ length: B * T * V }, () => 4 * (next() - 0.5) + 2 * (next() - 0.5) ** 3);
  const tokens = Int32Array.from({ length: B * T }, () => Math.floor(next() * V));
  // Row b has 16 − 3b response tokens; the rest is padding (mask 0).
  const mask = Float64Array.from({ length: B * T }, (_, i) => (i % T < T - 3 * Math.floor(i / T) ? 1 : 0));
  // One advantage per rollout, as GRPO gives them: above and below the group's mean.
  const advantages = Float64Array.from([1.2, -0.8, 0.5, -0.9]);
  // The sampling policy's log-probs: the current ones moved by up to ±0.4, so some ratios are clipped.
  const shape = [B, T] as const;
  const oldLogp = Float64Array.from(logProbs(logits, tokens), (logp) => {
    let logRatio = 0.8 * (next() - 0.5);
    // float32 rounding must not put a token on the other side of a clip bound than float64 (see tolerances.ts).
    for (const bound of CLIP_LOG_RATIOS) if (Math.abs(logRatio - bound) < 1e-3) logRatio += 2e-3;
    return logp - logRatio;
  });
  return {
    logits: { data: logits, shape: [B, T, V] },
    tokens: { data: tokens, shape },
    oldLogp: { data: oldLogp, shape },
    advantages,
    mask: { data: mask, shape },
  };
}
