import * as tf from "@tensorflow/tfjs";
import {
  type Backend,
  type BackendInfo,
  badLogits,
  logitsOverflow,
  logProbOverflow,
  composedPolicyLossFromLogits,
  type Kernels,
  invalid,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  type LossInputs,
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
  referencePolicyLoss,
  requireFloat32Logits,
  requireFloat32Temperature,
  requireFloat32Upstream,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  withRegisteredObjectives,
} from "../backends/contract.js";
import { maxBindingBytes } from "./device.js";
import { requireFiniteLoss, requireFloat32LossInputs, requireFloat32Options } from "../backends/contract.js";
import { readPolicyLossMetrics } from "./differentiable.js";
import { positionStatistics, tokenStatisticsBackward } from "./logprobs.js";
import { type PolicyLossTensorResult, type PolicyLossTensors, computePolicyLossTensors } from "./loss.js";

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
  requireFloat32Options(o);
  requireFloat32LossInputs(t, o, { fromStatistics: false, hasOldLogp: true });
  // An empty batch (RoC dropped every group) is the reference's no-op: loss 0, metrics 0. tfjs-wasm reduces empty
  // tensors to uninitialised memory, so no op runs on one.
  if (t.shape[0] * t.shape[1] === 0) return referencePolicyLoss(inputs, options);
  // tidy keeps the tensors returned (nested in the result object) and frees every intermediate.
  const result = tf.tidy(
    () => computePolicyLossTensors(lossTensors(t), o) as unknown as tf.TensorContainer,
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
    const shape = t.shape;
    const out = { loss: extra[0]!, grad: grad!, gradEntropy, perTokenLoss: perTokenLoss!, perTokenKl, shape, metrics };
    requireFiniteLoss(out, t, t.logp, "inputs.logp");
    requireFiniteMetrics(metrics);
    return out;
  } finally {
    tf.dispose(perToken as unknown as tf.TensorContainer);
  }
}

/** The validated inputs as tensors, [B, T] (advantages [B] unless per token). Call inside tf.tidy. */
function lossTensors(t: LossInputs): PolicyLossTensors {
  const [rows, cols] = t.shape;
  const tensor = (data: ArrayLike<number> | undefined) =>
    data === undefined ? undefined : tf.tensor2d(f32(data), [rows, cols]);
  return {
    logp: tensor(t.logp)!,
    oldLogp: t.oldLogp === t.logp ? undefined : tensor(t.oldLogp),
    advantages: t.perTokenAdvantages ? tensor(t.advantages)! : tf.tensor1d(f32(t.advantages)),
    mask: tensor(t.mask),
    refLogp: tensor(t.refLogp),
    importanceWeights: tensor(t.importanceWeights),
    entropy: tensor(t.entropy),
  };
}

/** The metrics that describe the ratio itself may be +Infinity where it overflows float32; nothing else may. */
const RATIO_METRICS: ReadonlySet<string> = new Set(["ratioMin", "ratioMean", "ratioMax"]);

/**
 * After requireFiniteLoss (the per-token terms and the loss): the metrics, means of float32 sums over the tokens, are
 * finite too, except those that describe the ratio itself, which are +Infinity where it overflows float32.
 */
function requireFiniteMetrics(metrics: PolicyLossResult["metrics"]): void {
  const overflowing = Object.entries(metrics).find(
    ([name, value]) => value !== undefined && !Number.isFinite(value) && !RATIO_METRICS.has(name),
  );
  if (overflowing === undefined) return;
  throw invalid(
    "inputs",
    `the metric ${overflowing[0]}, a sum over the tokens, is ${overflowing[1]} in float32, which this backend ` +
      "computes in: use a float64 backend",
  );
}

async function tfjsTokenLogProbs(
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy: withEntropy } = readForwardOptions(options);
  const l = readLogits(logitsInput);
  const { ids, mask } = readTokens(tokensInput, options.mask, l);
  const skipped = (i: number) => mask !== undefined && mask[i] === 0;
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => !skipped(i));
  const positions = l.rows * l.cols;
  const logp = new Float64Array(positions);
  const logSumExp = new Float64Array(positions).fill(NaN);
  const entropy = withEntropy ? new Float64Array(positions) : undefined;
  for (const [start, end] of chunks(positions, l.vocab)) {
    const stats = tf.tidy(() => chunkStatistics(logitsChunk(l, start, end, skipped), temperature, withEntropy));
    try {
      const [shift, logSum, h] = await Promise.all(stats.map((x) => x.data()));
      for (let k = 0; k < end - start; k++) {
        const i = start + k;
        if (skipped(i)) continue;
        const row = positionResult(l, i, ids[i]!, temperature, shift![k]!, logSum![k]!);
        logp[i] = row.logp;
        logSumExp[i] = row.logSumExp;
        if (entropy !== undefined) entropy[i] = h![k]!;
      }
    } finally {
      tf.dispose(stats);
    }
  }
  return { logp, entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
}

/** [shift, logSum] (and the entropy) of a chunk of positions: what the host needs to finish them. */
function chunkStatistics(logits: tf.Tensor2D, temperature: number, withEntropy: boolean): tf.Tensor1D[] {
  const { shift, logSum, entropy } = positionStatistics(logits, temperature, withEntropy);
  return entropy === undefined ? [shift, logSum] : [shift, logSum, entropy];
}

/**
 * Position i's logp and logsumexp from the device's shift and logSum, in float64 on the host: (z − shift)/τ − logSum
 * and shift/τ + logSum, which keep their digits (and their range) where float32 would round or overflow them.
 */
function positionResult(l: Logits, i: number, token: number, temperature: number, shift: number, logSum: number) {
  if (!Number.isFinite(logSum)) throw badLogits(i, l.cols, logSum);
  const logSumExp = shift / temperature + logSum;
  if (!Number.isFinite(logSumExp)) throw logitsOverflow(i, l.cols, shift, 1 / temperature);
  const tokenLogit = l.data[i * l.vocab + token]!;
  const logp = (tokenLogit - shift) / temperature - logSum;
  if (logp === -Infinity && tokenLogit !== -Infinity) throw logProbOverflow(i, l.cols, tokenLogit, shift);
  return { logp, logSumExp };
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
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => reads[i] === 1);
  requireFloat32Upstream(gradLogp, gradEntropy, reads, temperature, l);
  const positions = l.rows * l.cols;
  const out =
    l.data instanceof Float64Array ? new Float64Array(positions * l.vocab) : new Float32Array(positions * l.vocab);
  const upstream = (values: ArrayLike<number>, start: number, end: number) => {
    const chunk = new Float32Array(end - start);
    for (let k = 0; k < chunk.length; k++) chunk[k] = skipped(start + k) ? 0 : values[start + k]!;
    return tf.tensor1d(chunk);
  };
  for (const [start, end] of chunks(positions, l.vocab)) {
    const [grad, logSum] = tf.tidy(() => {
      const logits = logitsChunk(l, start, end, skipped);
      const tokens = tokensChunk(ids, skipped, start, end);
      const withEntropy = gradEntropy !== undefined;
      const { shift, logSum, entropy } = positionStatistics(logits, temperature, withEntropy);
      const h = withEntropy ? upstream(gradEntropy, start, end) : undefined;
      const saved = { shift, logSum, entropy: entropy ?? tf.zerosLike(logSum) };
      return [tokenStatisticsBackward(logits, tokens, temperature, saved, upstream(gradLogp, start, end), h), logSum];
    });
    try {
      const sums = await logSum.data();
      for (let k = 0; k < end - start; k++) {
        if (!skipped(start + k) && !Number.isFinite(sums[k])) throw badLogits(start + k, l.cols, sums[k]!);
      }
      out.set(await grad.data(), start * l.vocab);
      // Skipped positions get exactly 0, as in the reference (the device's −g·p would be −0 there).
      for (let k = 0; k < end - start; k++) {
        if (skipped(start + k)) out.fill(0, (start + k) * l.vocab, (start + k + 1) * l.vocab);
      }
    } finally {
      tf.dispose([grad, logSum]);
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
