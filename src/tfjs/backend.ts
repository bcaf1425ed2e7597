import * as tf from "@tensorflow/tfjs";
import {
  type Backend,
  type BackendInfo,
  badLogits,
  composedPolicyLossFromLogits,
  type Kernels,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  type MatrixInput,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  readBackwardInputsOf,
  readBackwardOptions,
  readForwardOptions,
  readLogits,
  readPolicyLossCall,
  readTokens,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  withRegisteredObjectives,
} from "../backends/contract.js";
import { maxBindingBytes } from "./device.js";
import { readPolicyLossMetrics } from "./differentiable.js";
import { tokenStatistics, tokenStatisticsBackward } from "./logprobs.js";
import { type PolicyLossTensorResult, policyLossTensors } from "./loss.js";

/** Logits are moved to the device in chunks of at most this many bytes (and below the device's binding limit). */
const CHUNK_BYTES = 64 * 2 ** 20;

const f32 = (data: ArrayLike<number>) => (data instanceof Float32Array ? data : Float32Array.from(data));

const kernels: Kernels = withRegisteredObjectives({
  policyLoss: tfjsPolicyLoss,
  tokenLogProbs: tfjsTokenLogProbs,
  tokenLogProbsBackward: tfjsTokenLogProbsBackward,
  policyLossFromLogits: (inputs, options) => composedPolicyLossFromLogits(kernels, inputs, options),
});

/**
 * grpo-roc's kernels on TensorFlow.js, with whatever tfjs backend is active (cpu, wasm, webgpu): typed arrays in,
 * tensors on the device, typed arrays out. Inputs are validated exactly as the reference backend validates them;
 * the math runs in float32.
 */
export const tfjsBackend: Backend = { name: "tfjs", probe: probeTfjs, ...kernels };

async function probeTfjs(): Promise<BackendInfo> {
  await tf.ready();
  const active = tf.getBackend();
  return {
    name: "tfjs",
    available: active !== undefined,
    reason:
      active === undefined ? "no tfjs backend could be initialised" : `TensorFlow.js, "${active}" backend, float32`,
    dtypes: ["float32"],
    maxBindingBytes: maxBindingBytes(),
  };
}

async function tfjsPolicyLoss(
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput = {},
): Promise<PolicyLossResult> {
  const { options: o, inputs: t } = readPolicyLossCall(inputs, options);
  const [rows, cols] = t.shape;
  const tensor = (data: ArrayLike<number> | undefined) =>
    data === undefined ? undefined : tf.tensor2d(f32(data), [rows, cols]);
  // tidy keeps the tensors returned (nested in the result object) and frees every intermediate.
  const result = tf.tidy(
    () =>
      policyLossTensors(
        {
          logp: tensor(t.logp)!,
          oldLogp: tensor(t.oldLogp),
          advantages: t.perTokenAdvantages ? tensor(t.advantages)! : tf.tensor1d(f32(t.advantages)),
          mask: tensor(t.mask),
          refLogp: tensor(t.refLogp),
          importanceWeights: tensor(t.importanceWeights),
          entropy: tensor(t.entropy),
        },
        o,
      ) as unknown as tf.TensorContainer,
  ) as unknown as PolicyLossTensorResult;
  const { counts, loss, ...perToken } = result;
  try {
    const read = async (x: tf.Tensor | undefined) => (x === undefined ? undefined : Float64Array.from(await x.data()));
    const [grad, gradEntropy, perTokenLoss, perTokenKl] = await Promise.all([
      read(perToken.grad),
      read(perToken.gradEntropy),
      read(perToken.perTokenLoss),
      read(perToken.perTokenKl),
    ]);
    const { metrics, extra } = await readPolicyLossMetrics(counts, [loss]);
    return {
      loss: extra[0]!,
      grad: grad!,
      gradEntropy,
      perTokenLoss: perTokenLoss!,
      perTokenKl,
      shape: t.shape,
      metrics,
    };
  } finally {
    tf.dispose(perToken as unknown as tf.TensorContainer);
  }
}

async function tfjsTokenLogProbs(
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature } = readForwardOptions(options);
  const l = readLogits(logitsInput);
  const { ids, mask } = readTokens(tokensInput, options.mask, l);
  const skipped = (i: number) => mask !== undefined && mask[i] === 0;
  const positions = l.rows * l.cols;
  const logp = new Float64Array(positions);
  const logSumExp = new Float64Array(positions).fill(NaN);
  const entropy = options.entropy ? new Float64Array(positions) : undefined;
  for (const [start, end] of chunks(positions, l.vocab)) {
    const stats = tf.tidy(() =>
      tokenStatistics(logitsChunk(l, start, end, skipped), tokensChunk(ids, skipped, start, end), temperature),
    );
    try {
      const [lp, lse, h] = await Promise.all([stats.logp.data(), stats.logSumExp.data(), stats.entropy.data()]);
      for (let k = 0; k < end - start; k++) {
        const i = start + k;
        if (skipped(i)) continue;
        if (!Number.isFinite(lse[k])) throw badLogits(i, l.cols, lse[k]!);
        logp[i] = lp[k]!;
        logSumExp[i] = lse[k]!;
        if (entropy !== undefined) entropy[i] = h[k]!;
      }
    } finally {
      tf.dispose([stats.logp, stats.logSumExp, stats.entropy]);
    }
  }
  return { logp, entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
}

/** `saved` is validated like the reference's, but not used: the device recomputes the statistics per chunk. */
async function tfjsTokenLogProbsBackward(
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsBackwardOptions,
): Promise<LogitsGradient> {
  const { temperature } = readBackwardOptions(options);
  const { l, ids, reads, gradLogp, gradEntropy } = readBackwardInputsOf(
    readLogits(logitsInput),
    temperature,
    tokensInput,
    options,
  );
  const skipped = (i: number) => reads[i] === 0;
  const positions = l.rows * l.cols;
  const out =
    l.data instanceof Float64Array ? new Float64Array(positions * l.vocab) : new Float32Array(positions * l.vocab);
  const upstream = (values: ArrayLike<number>, start: number, end: number) => {
    const chunk = new Float32Array(end - start);
    for (let k = 0; k < chunk.length; k++) chunk[k] = skipped(start + k) ? 0 : values[start + k]!;
    return tf.tensor1d(chunk);
  };
  for (const [start, end] of chunks(positions, l.vocab)) {
    const [grad, logSumExp] = tf.tidy(() => {
      const logits = logitsChunk(l, start, end, skipped);
      const tokens = tokensChunk(ids, skipped, start, end);
      const stats = tokenStatistics(logits, tokens, temperature);
      const h = gradEntropy === undefined ? undefined : upstream(gradEntropy, start, end);
      return [
        tokenStatisticsBackward(logits, tokens, temperature, stats, upstream(gradLogp, start, end), h),
        stats.logSumExp,
      ];
    });
    try {
      const lse = await logSumExp.data();
      for (let k = 0; k < end - start; k++) {
        if (!skipped(start + k) && !Number.isFinite(lse[k])) throw badLogits(start + k, l.cols, lse[k]!);
      }
      out.set(await grad.data(), start * l.vocab);
      // Skipped positions get exactly 0, as in the reference (the device's −g·p would be −0 there).
      for (let k = 0; k < end - start; k++) {
        if (skipped(start + k)) out.fill(0, (start + k) * l.vocab, (start + k + 1) * l.vocab);
      }
    } finally {
      tf.dispose([grad, logSumExp]);
    }
  }
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
}

/** Position ranges whose logits fit one device buffer (and one transfer of at most CHUNK_BYTES). */
function* chunks(positions: number, vocab: number): Generator<[number, number]> {
  const limit = Math.min(CHUNK_BYTES, maxBindingBytes());
  const perChunk = Math.max(1, Math.floor(limit / (vocab * 4)));
  for (let start = 0; start < positions; start += perChunk) yield [start, Math.min(positions, start + perChunk)];
}

/** A chunk of logits on the device; skipped positions are sent as zeros, so whatever they hold is never read. */
function logitsChunk(l: Logits, start: number, end: number, skipped: (i: number) => boolean): tf.Tensor2D {
  const chunk = new Float32Array((end - start) * l.vocab);
  for (let k = 0; k < end - start; k++) {
    if (skipped(start + k)) continue;
    const from = (start + k) * l.vocab;
    const row = l.data as ArrayLike<number>;
    if (ArrayBuffer.isView(row))
      chunk.set((row as Float32Array | Float64Array).subarray(from, from + l.vocab), k * l.vocab);
    else for (let v = 0; v < l.vocab; v++) chunk[k * l.vocab + v] = row[from + v]!;
  }
  return tf.tensor2d(chunk, [end - start, l.vocab]);
}

/** Skipped positions may hold any token id (padding): they are sent as 0 and their results discarded. */
function tokensChunk(ids: ArrayLike<number>, skipped: (i: number) => boolean, start: number, end: number): tf.Tensor1D {
  const chunk = new Int32Array(end - start);
  for (let k = 0; k < chunk.length; k++) chunk[k] = skipped(start + k) ? 0 : ids[start + k]!;
  return tf.tensor1d(chunk, "int32");
}
