import * as tf from "@tensorflow/tfjs";
import { invalid } from "../errors.js";
import { requireBindable } from "./device.js";

export interface TokenLogProbsTensorOptions {
  readonly temperature?: number;
}

/** log softmax(logits/τ)[token], entropy and logsumexp, for logits [N, V] and tokens [N] (int32). */
export function tokenStatistics(
  logits: tf.Tensor2D,
  tokens: tf.Tensor1D,
  temperature: number,
): { logp: tf.Tensor1D; entropy: tf.Tensor1D; logSumExp: tf.Tensor1D } {
  const [positions, vocab] = logits.shape;
  const z = temperature === 1 ? logits : tf.div(logits, temperature);
  const logSumExp = tf.logSumExp(z, 1);
  const flatIndex = tf.add(tf.mul(tf.range(0, positions, 1, "int32"), tf.scalar(vocab, "int32")), tf.cast(tokens, "int32"));
  const logp = tf.sub(tf.gather(tf.reshape(z, [positions * vocab]), flatIndex), logSumExp) as tf.Tensor1D;
  const p = tf.exp(tf.sub(z, tf.reshape(logSumExp, [positions, 1])));
  // −Infinity logits have p = 0; their p·z would be 0·∞.
  const pz = tf.where(tf.greater(p, 0), tf.mul(p, z), tf.zerosLike(p));
  const entropy = tf.sub(logSumExp, tf.sum(pz, 1)) as tf.Tensor1D;
  return { logp, entropy, logSumExp: logSumExp as tf.Tensor1D };
}

/**
 * ∂L/∂logits for logits [N, V]: (g·(onehot − p) − h·p·(z − lse + H))/τ, with g = ∂L/∂logp and h = ∂L/∂entropy
 * per position; the analytic form, never autodiff through a softmax over the vocabulary.
 */
export function tokenStatisticsBackward(
  logits: tf.Tensor2D,
  tokens: tf.Tensor1D,
  temperature: number,
  saved: { logSumExp: tf.Tensor1D; entropy: tf.Tensor1D },
  gradLogp: tf.Tensor1D,
  gradEntropy: tf.Tensor1D | undefined,
): tf.Tensor2D {
  const [positions, vocab] = logits.shape;
  const z = temperature === 1 ? logits : tf.div(logits, temperature);
  const lse = tf.reshape(saved.logSumExp, [positions, 1]);
  const p = tf.exp(tf.sub(z, lse));
  const g = tf.reshape(gradLogp, [positions, 1]);
  let grad = tf.neg(tf.mul(g, p));
  if (gradEntropy !== undefined) {
    const h = tf.reshape(gradEntropy, [positions, 1]);
    const shifted = tf.add(tf.sub(z, lse), tf.reshape(saved.entropy, [positions, 1]));
    const term = tf.where(tf.greater(p, 0), tf.mul(tf.mul(h, p), shifted), tf.zerosLike(p));
    grad = tf.sub(grad, term);
  }
  // + g at each position's token.
  const flatIndex = tf.add(tf.mul(tf.range(0, positions, 1, "int32"), tf.scalar(vocab, "int32")), tf.cast(tokens, "int32"));
  const flat = tf.reshape(grad, [positions * vocab]);
  const atToken = tf.add(tf.gather(flat, flatIndex), gradLogp);
  const withToken = tf.tensorScatterUpdate(flat, tf.reshape(flatIndex, [positions, 1]), atToken);
  const out = tf.reshape(withToken, [positions, vocab]);
  return (temperature === 1 ? out : tf.div(out, temperature)) as tf.Tensor2D;
}

/**
 * Differentiable token log-probs for tfjs training: logits [B, T, V] → logp [B, T], and with `entropy` the
 * stacked [2, B, T] of logp and entropy. The gradient into the logits is the analytic one.
 */
export function tokenLogProbsTf(logits: tf.Tensor3D, tokens: tf.Tensor2D, options: TokenLogProbsTensorOptions & { entropy?: boolean } = {}): tf.Tensor {
  const [rows, cols, vocab] = logits.shape;
  if (tokens.shape[0] !== rows || tokens.shape[1] !== cols) {
    throw invalid("tokens", `has shape [${tokens.shape.join(", ")}] but logits are [${rows}, ${cols}, ${vocab}]`);
  }
  // The device cannot read a tensor larger than one binding: say so instead of returning zeros.
  requireBindable(logits, "logits");
  const temperature = options.temperature ?? 1;
  const op = tf.customGrad((x, saveArg) => {
    const save = saveArg as tf.GradSaveFunc;
    // Made (and saved for the backward pass) inside the op: tfjs frees it with the op's scope, or with the tape.
    const flatTokens = tf.reshape(tokens, [rows * cols]) as tf.Tensor1D;
    const flatLogits = tf.reshape(x as tf.Tensor3D, [rows * cols, vocab]) as tf.Tensor2D;
    const stats = tokenStatistics(flatLogits, flatTokens, temperature);
    save([flatLogits, stats.logSumExp, stats.entropy, flatTokens]);
    const value = options.entropy
      ? tf.reshape(tf.stack([stats.logp, stats.entropy]), [2, rows, cols])
      : tf.reshape(stats.logp, [rows, cols]);
    return {
      value,
      gradFunc: (dy, [savedLogits, logSumExp, entropy, savedTokens]) => {
        const upstream = dy as tf.Tensor;
        const gradLogp = tf.reshape(options.entropy ? tf.slice(upstream, [0, 0, 0], [1, rows, cols]) : upstream, [rows * cols]) as tf.Tensor1D;
        const gradEntropy = options.entropy ? (tf.reshape(tf.slice(upstream, [1, 0, 0], [1, rows, cols]), [rows * cols]) as tf.Tensor1D) : undefined;
        const grad = tokenStatisticsBackward(savedLogits as tf.Tensor2D, savedTokens as tf.Tensor1D, temperature, { logSumExp: logSumExp as tf.Tensor1D, entropy: entropy as tf.Tensor1D }, gradLogp, gradEntropy);
        return tf.reshape(grad, [rows, cols, vocab]);
      },
    };
  });
  return op(logits);
}
