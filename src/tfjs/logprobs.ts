import * as tf from "@tensorflow/tfjs";
import { invalid } from "../backends/contract.js";
import { requireBindable } from "./device.js";
import { tfjsKernelPath, wgslBackward, wgslForward, wgslRefusal, type TfjsKernels, type WgslForward } from "./wgsl.js";

export interface TokenLogProbsTensorOptions {
  readonly temperature?: number | undefined;
  /**
   * Which kernels run over the logits: "auto" (default, or $GRPO_ROC_TFJS_KERNELS): grpo-roc's WGSL kernels when
   * the active tfjs backend is webgpu — on tfjs's own device, binding the logits tensor's buffer in place, the
   * gradient written into a new tfjs tensor — and tfjs ops otherwise; "tfjs": tfjs ops always (to compare);
   * "wgsl": the WGSL kernels, or an error when the active backend is not webgpu.
   */
  readonly kernels?: TfjsKernels | undefined;
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
  const flatIndex = tf.add(
    tf.mul(tf.range(0, positions, 1, "int32"), tf.scalar(vocab, "int32")),
    tf.cast(tokens, "int32"),
  );
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
  const flatIndex = tf.add(
    tf.mul(tf.range(0, positions, 1, "int32"), tf.scalar(vocab, "int32")),
    tf.cast(tokens, "int32"),
  );
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
export function tokenLogProbsTf(
  logits: tf.Tensor3D,
  tokens: tf.Tensor2D,
  options: TokenLogProbsTensorOptions & { entropy?: boolean } = {},
): tf.Tensor {
  const [rows, cols, vocab] = logits.shape;
  if (tokens.shape[0] !== rows || tokens.shape[1] !== cols) {
    throw invalid("tokens", `has shape [${tokens.shape.join(", ")}] but logits are [${rows}, ${cols}, ${vocab}]`);
  }
  // The device cannot read a tensor larger than one binding: say so instead of returning zeros.
  requireBindable(logits, "logits");
  const temperature = options.temperature ?? 1;
  if (tfjsKernelPath(options.kernels) === "wgsl") {
    const refusal = wgslRefusal(logits);
    if (refusal === undefined) return tokenLogProbsWgsl(logits, tokens, temperature, options.entropy === true);
    if (options.kernels === "wgsl") throw invalid("logits", `the WGSL kernels cannot read them: ${refusal}`);
  }
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
        const { gradLogp, gradEntropy } = splitUpstream(dy as tf.Tensor, rows, cols, options.entropy === true);
        const grad = tokenStatisticsBackward(
          savedLogits as tf.Tensor2D,
          savedTokens as tf.Tensor1D,
          temperature,
          { logSumExp: logSumExp as tf.Tensor1D, entropy: entropy as tf.Tensor1D },
          gradLogp,
          gradEntropy,
        );
        return tf.reshape(grad, [rows, cols, vocab]);
      },
    };
  });
  return op(logits);
}

/** ∂L/∂logp and ∂L/∂entropy, [B·T] each, from the upstream gradient of the op's output ([B, T] or [2, B, T]). */
function splitUpstream(
  dy: tf.Tensor,
  rows: number,
  cols: number,
  withEntropy: boolean,
): { gradLogp: tf.Tensor1D; gradEntropy: tf.Tensor1D | undefined } {
  const gradLogp = tf.reshape(withEntropy ? tf.slice(dy, [0, 0, 0], [1, rows, cols]) : dy, [
    rows * cols,
  ]) as tf.Tensor1D;
  const gradEntropy = withEntropy
    ? (tf.reshape(tf.slice(dy, [1, 0, 0], [1, rows, cols]), [rows * cols]) as tf.Tensor1D)
    : undefined;
  return { gradLogp, gradEntropy };
}

/**
 * tokenLogProbsTf on grpo-roc's WGSL kernels (./wgsl.ts): one kernel pass over the logits forward, one backward,
 * both on the webgpu backend's device and buffers. The same outputs and analytic gradient as the tfjs-ops path;
 * positions whose statistics are invalid (NaN or +Infinity among the logits, all −Infinity, or a token id outside
 * the vocabulary) come out NaN rather than as numbers.
 */
function tokenLogProbsWgsl(
  logits: tf.Tensor3D,
  tokens: tf.Tensor2D,
  temperature: number,
  withEntropy: boolean,
): tf.Tensor {
  const [rows, cols] = logits.shape;
  const n = rows * cols;
  const op = tf.customGrad((x, saveArg) => {
    const save = saveArg as tf.GradSaveFunc;
    const input = x as tf.Tensor3D;
    const forward = wgslForward(input, tokens, temperature);
    save(
      forward.valid === undefined
        ? [input, forward.stats, forward.tokens]
        : [input, forward.stats, forward.tokens, forward.valid],
    );
    const column = (k: number) => tf.reshape(tf.slice(forward.stats, [0, k], [n, 1]), [n]);
    let invalidAt = tf.notEqual(column(3), 0);
    if (forward.valid !== undefined) invalidAt = tf.logicalOr(invalidAt, tf.logicalNot(forward.valid));
    const nan = tf.fill([n], NaN);
    const logp = tf.where(invalidAt, nan, column(1));
    const value = withEntropy
      ? tf.reshape(tf.stack([logp, tf.where(invalidAt, nan, column(2))]), [2, rows, cols])
      : tf.reshape(logp, [rows, cols]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [savedLogits, stats, savedTokens, valid] = saved as [
          tf.Tensor3D,
          tf.Tensor2D,
          tf.Tensor2D,
          tf.Tensor1D | undefined,
        ];
        const { gradLogp, gradEntropy } = splitUpstream(dy as tf.Tensor, rows, cols, withEntropy);
        return wgslBackward(
          savedLogits,
          { stats, tokens: savedTokens, valid } satisfies WgslForward,
          temperature,
          gradLogp,
          gradEntropy,
        );
      },
    };
  });
  return op(logits);
}
