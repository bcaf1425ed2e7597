import * as tf from "@tensorflow/tfjs";
import * as z from "zod/mini";
import { badLogits, invalid, parseOrThrow, requireFloat32Temperature } from "../backends/contract.js";
import { checkValues, firstFlagged, requireTokenIds } from "./checks.js";
import { requireBindable } from "./device.js";
import { tfjsKernelPath, wgslBackward, wgslForward, wgslRefusal, type TfjsKernels, type WgslForward } from "./wgsl.js";

/** tokenLogProbsTf's options. */
export interface TokenLogProbsTensorOptions {
  /** The logits are divided by it first (the sampling temperature, default 1). */
  readonly temperature?: number | undefined;
  /**
   * Which kernels run over the logits: "auto" (default, or $GRPO_ROC_TFJS_KERNELS): grpo-roc's WGSL kernels when
   * the active tfjs backend is webgpu — on tfjs's own device, binding the logits tensor's buffer in place, the
   * gradient written into a new tfjs tensor — and tfjs ops otherwise; "tfjs": tfjs ops always (to compare);
   * "wgsl": the WGSL kernels, or an error when the active backend is not webgpu.
   */
  readonly kernels?: TfjsKernels | undefined;
}

/** One position's statistics of softmax(logits/τ), for logits [N, V]: each a [N] float32 tensor. */
export interface TokenStatistics {
  /** log softmax(logits/τ)[token] = d[token] − logSum. */
  readonly logp: tf.Tensor1D;
  /** −Σ p·log p = logSum − Σ e^d·d / Σ e^d. */
  readonly entropy: tf.Tensor1D;
  /**
   * logsumexp(logits/τ) = shift/τ + logSum, in float32: ±Infinity where that is beyond float32 (logits near its
   * range at τ < 1). The backward pass reads `shift` and `logSum`, which stay exact there.
   */
  readonly logSumExp: tf.Tensor1D;
  /** The largest logit of each position (0 where none is finite), subtracted before dividing by τ. */
  readonly shift: tf.Tensor1D;
  /**
   * log Σ e^d with d = (z − shift)/τ: finite exactly where the position's logits are valid; −Infinity where every
   * logit is −Infinity, NaN or +Infinity where one is NaN or +Infinity.
   */
  readonly logSum: tf.Tensor1D;
}

/** What the backward pass needs of the forward statistics. */
export type SavedStatistics = Pick<TokenStatistics, "shift" | "logSum" | "entropy">;

/**
 * A floor for d = (z − shift)/τ where it multiplies e^d: below about −104, e^d is 0 in float32, and d itself may be
 * −Infinity (a masked vocabulary entry), whose 0·(−∞) would be NaN. Every term with e^d > 0 has d above it.
 */
const D_FLOOR = -1e4;

/** Columns added per block: a float32 sum of n terms may lose about n·2^-24 of its size, so n stays small. */
const SUM_BLOCK = 256;

/**
 * log softmax(logits/τ)[token], entropy and the logsumexp, for logits [N, V] and tokens [N] (int32, in [0, V)).
 * The shift comes before the division by τ and every term is of d ≤ 0, so that logits anywhere in float32's range
 * stay exact (d of two logits of 3e38 is 0, not ∞ − ∞), and the sums over the vocabulary are blocked so that their
 * float32 error does not grow with V (a plain float32 sum over 2^20 terms, as tfjs-wasm's is, loses ~1e-3).
 */
export function tokenStatistics(logits: tf.Tensor2D, tokens: tf.Tensor1D, temperature: number): TokenStatistics {
  const { shift, d, logSum, entropy } = positionStatistics(logits, temperature, true);
  return {
    logp: tf.sub(tokenEntries(d, tokens), logSum),
    entropy: entropy!,
    logSumExp: tf.add(temperature === 1 ? shift : tf.div(shift, temperature), logSum),
    shift,
    logSum,
  };
}

/** shift, d = (z − shift)/τ, logSum and (when asked) the entropy of each position of logits [N, V]. */
export function positionStatistics(logits: tf.Tensor2D, temperature: number, withEntropy: boolean) {
  const max = tf.max(logits, 1);
  // All −Infinity (or NaN, +Infinity) rows shift by 0: their logSum then says what is wrong (−∞, NaN, +∞).
  const shift = tf.where(tf.isFinite(max), max, tf.zerosLike(max)) as tf.Tensor1D;
  const d = shifted(logits, shift, temperature);
  const e = tf.exp(d);
  const sum = blockedRowSum(e);
  const logSum = tf.log(sum) as tf.Tensor1D;
  const entropy = withEntropy
    ? (tf.sub(logSum, tf.div(blockedRowSum(tf.mul(e, tf.maximum(d, D_FLOOR))), sum)) as tf.Tensor1D)
    : undefined;
  return { shift, d, logSum, entropy };
}

/** d = (z − shift)/τ, [N, V]. */
function shifted(logits: tf.Tensor2D, shift: tf.Tensor1D, temperature: number): tf.Tensor2D {
  const diff = tf.sub(logits, tf.reshape(shift, [-1, 1]));
  return (temperature === 1 ? diff : tf.div(diff, temperature)) as tf.Tensor2D;
}

/** x[i, tokens[i]] for x [N, V]. */
function tokenEntries(x: tf.Tensor2D, tokens: tf.Tensor1D): tf.Tensor1D {
  return tf.gather(tf.reshape(x, [-1]), flatTokenIndex(x.shape, tokens)) as tf.Tensor1D;
}

/** i·V + tokens[i]: the flat index of each position's token entry. */
function flatTokenIndex([positions, vocab]: [number, number], tokens: tf.Tensor1D): tf.Tensor1D {
  return tf.add(
    tf.mul(tf.range(0, positions, 1, "int32"), tf.scalar(vocab, "int32")),
    tf.cast(tokens, "int32"),
  ) as tf.Tensor1D;
}

/**
 * Σ over the columns of x [N, V]: blocks of SUM_BLOCK columns are added first, then their sums, recursively. A
 * block size that divides V is picked when one of at least 32 does (vocabularies are usually multiples of 128);
 * else the columns are padded with zeros, one copy of x.
 */
function blockedRowSum(x: tf.Tensor2D): tf.Tensor1D {
  const [rows, cols] = x.shape;
  if (cols <= SUM_BLOCK) return tf.sum(x, 1) as tf.Tensor1D;
  const block = blockSize(cols);
  const padded =
    cols % block === 0
      ? x
      : tf.pad(x, [
          [0, 0],
          [0, block - (cols % block)],
        ]);
  const blocks = padded.shape[1] / block;
  return blockedRowSum(tf.sum(tf.reshape(padded, [rows, blocks, block]), 2) as tf.Tensor2D);
}

function blockSize(cols: number): number {
  for (let block = SUM_BLOCK; block >= 32; block /= 2) if (cols % block === 0) return block;
  return SUM_BLOCK;
}

/**
 * ∂L/∂logits for logits [N, V]: (g·(onehot − p) − h·p·(log p + H))/τ, with g = ∂L/∂logp and h = ∂L/∂entropy per
 * position and log p = d − logSum; the analytic form, never autodiff through a softmax over the vocabulary. Terms
 * with p = 0 are 0 (log p = −∞ there).
 */
export function tokenStatisticsBackward(
  logits: tf.Tensor2D,
  tokens: tf.Tensor1D,
  temperature: number,
  saved: SavedStatistics,
  gradLogp: tf.Tensor1D,
  gradEntropy: tf.Tensor1D | undefined,
): tf.Tensor2D {
  // 1/τ is applied to g and h, [N] each, rather than to the [N, V] result.
  const perPosition = (x: tf.Tensor1D) => tf.reshape(temperature === 1 ? x : tf.div(x, temperature), [-1, 1]);
  const logP = tf.sub(shifted(logits, saved.shift, temperature), tf.reshape(saved.logSum, [-1, 1]));
  const p = tf.exp(logP);
  let grad = tf.mul(perPosition(tf.neg(gradLogp)), p);
  if (gradEntropy !== undefined) {
    const surprise = tf.add(tf.maximum(logP, D_FLOOR), tf.reshape(saved.entropy, [-1, 1]));
    grad = tf.sub(grad, tf.mul(tf.mul(perPosition(gradEntropy), p), surprise));
  }
  // + g/τ at each position's token.
  const flat = tf.reshape(grad, [-1]);
  const index = flatTokenIndex(logits.shape, tokens);
  const atToken = tf.add(tf.gather(flat, index), temperature === 1 ? gradLogp : tf.div(gradLogp, temperature));
  return tf.reshape(tf.tensorScatterUpdate(flat, tf.reshape(index, [-1, 1]), atToken), logits.shape) as tf.Tensor2D;
}

const tensorOptionsSchema = z.strictObject({
  temperature: z.optional(z.number().check(z.positive())),
  entropy: z.optional(z.boolean()),
  kernels: z.optional(z.enum(["auto", "wgsl", "tfjs"])),
});

/**
 * Differentiable token log-probs for tfjs training: logits [B, T, V] → logp [B, T], and with `entropy` the
 * stacked [2, B, T] of logp and entropy. The gradient into the logits is the analytic one.
 *
 * Validated as the typed-array kernels validate (same paths and rules): the options (strict: an unknown key is an
 * error), the token ids (integers in [0, V), read back from `tokens`), and every position's logits (NaN or
 * +Infinity among them, or all −Infinity, is an error at `logits[b][t]`). Where these values can be read at once
 * (cpu, wasm; webgpu while they are on the CPU) the error is thrown here; where they live on a WebGPU device only, at
 * the next read of any tensor (`tensor.data()`, `assertNoDeviceErrors()`), instead of its values. An empty batch
 * (B·T = 0) gives an empty result, and a zero gradient.
 */
export function tokenLogProbsTf(
  logits: tf.Tensor3D,
  tokens: tf.Tensor2D,
  options: TokenLogProbsTensorOptions & { readonly entropy?: boolean | undefined } = {},
): tf.Tensor {
  const parsed = parseOrThrow(tensorOptionsSchema, options, "options");
  if (parsed.temperature !== undefined) requireFloat32Temperature(parsed.temperature);
  requireLogProbTensors(logits, tokens);
  const [rows, cols, vocab] = logits.shape;
  const withEntropy = parsed.entropy === true;
  if (rows * cols === 0) return emptyLogProbs(logits, withEntropy);
  // The device cannot read a tensor larger than one binding: say so instead of returning zeros.
  requireBindable(logits, "logits");
  const ids = checkValues([tokens], ([values]) => requireTokenIds(values!, cols, vocab));
  const op = { temperature: parsed.temperature ?? 1, withEntropy, idsChecked: ids === "checked" };
  if (tfjsKernelPath(parsed.kernels) === "wgsl") {
    const refusal = wgslRefusal(logits);
    if (refusal === undefined) return tokenLogProbsWgsl(logits, tokens, op);
    if (parsed.kernels === "wgsl") throw invalid("logits", `the WGSL kernels cannot read them: ${refusal}`);
  }
  return tokenLogProbsOps(logits, tokens, op);
}

/**
 * Differentiable entropy for tfjs training, without tokens: logits [B, T, V] → H [B, T], its gradient into the
 * logits the analytic −h·p·(log p + H)/τ. tokenLogProbsTf's entropy with its log-prob part left out (token 0 is
 * read for it and gets no gradient), so it validates the logits and options alike.
 */
export function tokenEntropyTf(logits: tf.Tensor3D, options: TokenLogProbsTensorOptions = {}): tf.Tensor2D {
  if (!(logits instanceof tf.Tensor) || logits.rank !== 3) {
    throw invalid("logits", `expected a float32 tf.Tensor [B, T, V], received ${describeTensor(logits)}`);
  }
  if (typeof options === "object" && options !== null && "entropy" in options) {
    throw invalid("options.entropy", "is not an option of tokenEntropyTf (it always computes the entropy)");
  }
  const [rows, cols] = logits.shape;
  // tidy: the token ids, the stacked [2, B, T] result and the slice are intermediates (also when a check throws).
  return tf.tidy(() => {
    const stacked = tokenLogProbsTf(logits, tf.zeros([rows, cols], "int32"), { ...options, entropy: true });
    return tf.reshape(tf.slice(stacked, [1, 0, 0], [1, rows, cols]), [rows, cols]) as tf.Tensor2D;
  });
}

/** How tokenLogProbsTf's op runs: its options, and whether the token ids were checked (else clamp them first). */
interface LogProbsOp {
  readonly temperature: number;
  readonly withEntropy: boolean;
  readonly idsChecked: boolean;
}

function requireLogProbTensors(logits: unknown, tokens: unknown): asserts logits is tf.Tensor3D {
  if (!(logits instanceof tf.Tensor) || logits.rank !== 3 || logits.dtype !== "float32") {
    throw invalid("logits", `expected a float32 tf.Tensor [B, T, V], received ${describeTensor(logits)}`);
  }
  if (!(tokens instanceof tf.Tensor) || tokens.rank !== 2 || (tokens.dtype !== "int32" && tokens.dtype !== "float32")) {
    throw invalid("tokens", `expected an int32 (or float32) tf.Tensor [B, T], received ${describeTensor(tokens)}`);
  }
  const [rows, cols, vocab] = logits.shape;
  if (tokens.shape[0] !== rows || tokens.shape[1] !== cols) {
    throw invalid("tokens", `has shape [${tokens.shape.join(", ")}] but logits are [${rows}, ${cols}, ${vocab}]`);
  }
}

function describeTensor(value: unknown): string {
  if (value instanceof tf.Tensor) return `a ${value.dtype} tensor of shape [${value.shape.join(", ")}]`;
  return value === null ? "null" : typeof value;
}

/** B·T = 0: zeros of the output's shape, whose gradient into the logits is zero. */
function emptyLogProbs(logits: tf.Tensor3D, withEntropy: boolean): tf.Tensor {
  const [rows, cols] = logits.shape;
  const op = tf.customGrad((x) => ({
    value: tf.zeros(withEntropy ? [2, rows, cols] : [rows, cols]),
    gradFunc: () => tf.zerosLike(x as tf.Tensor),
  }));
  return op(logits);
}

/**
 * The token ids as int32 [N]; ids not checked yet (on the device only: checked at the next read) are clamped to
 * 0 where outside [0, V), so that no kernel indexes outside the logits meanwhile.
 */
function flatTokenIds(tokens: tf.Tensor2D, vocab: number, checked: boolean): tf.Tensor1D {
  const ids = tf.reshape(tokens.dtype === "int32" ? tokens : tf.cast(tokens, "int32"), [-1]) as tf.Tensor1D;
  if (checked) return ids;
  return tf.where(tf.logicalAnd(tf.greaterEqual(ids, 0), tf.less(ids, vocab)), ids, tf.zerosLike(ids));
}

/**
 * Checks every position's statistics, from a small summary made on the device (firstFlagged): logits that are
 * invalid (logSum not finite: the reference's error), or a finite sampled logit so far below the largest that its
 * log-prob is beyond float32.
 */
function checkStatistics(
  logits: tf.Tensor2D,
  tokens: tf.Tensor1D,
  stats: { shift: tf.Tensor1D; logSum: tf.Tensor1D },
  logp: tf.Tensor1D,
  cols: number,
): void {
  const tokenLogit = tokenEntries(logits, tokens);
  const overflow = tf.logicalAnd(tf.equal(logp, -Infinity), tf.greater(tokenLogit, -Infinity));
  const bad = tf.logicalOr(tf.logicalNot(tf.isFinite(stats.logSum)), overflow);
  checkValues(firstFlagged(bad, [stats.logSum, tokenLogit, stats.shift]), ([index, values]) => {
    const i = index![0]!;
    if (i >= logp.shape[0]) return;
    const [logSum, tokenLogit, shift] = Array.from(values!);
    if (!Number.isFinite(logSum)) throw badLogits(i, cols, logSum!);
    throw invalid(
      `logits[${Math.floor(i / cols)}][${i % cols}]`,
      `the sampled token's logit ${tokenLogit} is so far below the largest (${shift}) that its log-prob is beyond ` +
        "float32, which this backend computes in",
    );
  });
}

/** tokenLogProbsTf on tfjs ops (any backend). */
function tokenLogProbsOps(logits: tf.Tensor3D, tokens: tf.Tensor2D, op: LogProbsOp): tf.Tensor {
  const [rows, cols, vocab] = logits.shape;
  const { temperature, withEntropy } = op;
  const f = tf.customGrad((x, saveArg) => {
    const save = saveArg as tf.GradSaveFunc;
    // Made (and saved for the backward pass) inside the op: tfjs frees it with the op's scope, or with the tape.
    const flatTokens = flatTokenIds(tokens, vocab, op.idsChecked);
    const flatLogits = tf.reshape(x as tf.Tensor3D, [rows * cols, vocab]) as tf.Tensor2D;
    const stats = positionStatistics(flatLogits, temperature, withEntropy);
    const logp = tf.sub(tokenEntries(stats.d, flatTokens), stats.logSum) as tf.Tensor1D;
    checkStatistics(flatLogits, flatTokens, stats, logp, cols);
    const entropy = stats.entropy ?? tf.zerosLike(logp);
    save([flatLogits, stats.shift, stats.logSum, entropy, flatTokens]);
    const value = withEntropy ? tf.reshape(tf.stack([logp, entropy]), [2, rows, cols]) : tf.reshape(logp, [rows, cols]);
    return {
      value,
      gradFunc: (dy, [savedLogits, shift, logSum, savedEntropy, savedTokens]) => {
        const { gradLogp, gradEntropy } = splitUpstream(dy as tf.Tensor, rows, cols, withEntropy);
        const grad = tokenStatisticsBackward(
          savedLogits as tf.Tensor2D,
          savedTokens as tf.Tensor1D,
          temperature,
          { shift: shift as tf.Tensor1D, logSum: logSum as tf.Tensor1D, entropy: savedEntropy as tf.Tensor1D },
          gradLogp,
          gradEntropy,
        );
        return tf.reshape(grad, [rows, cols, vocab]);
      },
    };
  });
  return f(logits);
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
 * both on the webgpu backend's device and buffers. The same outputs and analytic gradient as the tfjs-ops path.
 * Positions whose statistics are invalid (NaN or +Infinity among the logits, or all −Infinity) come out NaN, and
 * the kernel's flags are checked at the next read, which throws the reference's error instead of the values.
 */
function tokenLogProbsWgsl(logits: tf.Tensor3D, tokens: tf.Tensor2D, op: LogProbsOp): tf.Tensor {
  const [rows, cols, vocab] = logits.shape;
  const n = rows * cols;
  const { temperature, withEntropy } = op;
  const f = tf.customGrad((x, saveArg) => {
    const save = saveArg as tf.GradSaveFunc;
    const input = x as tf.Tensor3D;
    const ids = tf.reshape(flatTokenIds(tokens, vocab, op.idsChecked), [rows, cols]) as tf.Tensor2D;
    const forward = wgslForward(input, ids, temperature);
    const [index, flag] = firstFlagged(tf.notEqual(tf.slice(forward.stats, [0, 3], [n, 1]), 0), [
      tf.slice(forward.stats, [0, 3], [n, 1]),
    ]);
    checkValues([index, flag], ([i, values]) => {
      if (i![0]! < n) throw badLogits(i![0]!, cols, (values![0]! & 1) !== 0 ? NaN : -Infinity);
    });
    save([input, forward.stats, forward.tokens]);
    const column = (k: number) => tf.reshape(tf.slice(forward.stats, [0, k], [n, 1]), [n]);
    const invalidAt = tf.notEqual(column(3), 0);
    const nan = tf.fill([n], NaN);
    const logp = tf.where(invalidAt, nan, column(1));
    const value = withEntropy
      ? tf.reshape(tf.stack([logp, tf.where(invalidAt, nan, column(2))]), [2, rows, cols])
      : tf.reshape(logp, [rows, cols]);
    return {
      value,
      gradFunc: (dy, saved) => {
        const [savedLogits, stats, savedTokens] = saved as [tf.Tensor3D, tf.Tensor2D, tf.Tensor2D];
        const { gradLogp, gradEntropy } = splitUpstream(dy as tf.Tensor, rows, cols, withEntropy);
        return wgslBackward(
          savedLogits,
          { stats, tokens: savedTokens } satisfies WgslForward,
          temperature,
          gradLogp,
          gradEntropy,
        );
      },
    };
  });
  return f(logits);
}
