/**
 * The policy loss on a WebGPU device: inputs validated and row weights computed on the CPU exactly as the
 * reference does (readLossInputs, rowWeights), the per-token work in loss.wgsl.ts, the per-row sums added up on the
 * CPU in float64.
 */
import {
  type BuiltinObjective,
  KL_KIND_CODE,
  type LossInputs,
  lossMetrics,
  OBJECTIVE_CODE,
  type PolicyLossOptions,
  type PolicyLossResult,
  RATIO_LEVEL_CODE,
  rowWeights,
} from "../backends/contract.js";
import { alignUp, type Batch } from "./context.js";
import { BufferUsage, type GpuBuffer } from "./gpu.js";
import { grid, ParamSlots } from "./logits.js";
import { bindGroup } from "./logprobs.js";
import { LOSS_FLAGS, LOSS_PARAM_WORDS, lossBindings, lossKernel } from "./loss.wgsl.js";

const LOWEST = -3.4028234663852886e38;

export interface PackedLoss {
  readonly rows: number;
  readonly cols: number;
  readonly rowIn: Float32Array;
  readonly tokenIn: Float32Array;
  readonly tokenExtra: Float32Array | undefined;
  readonly flags: number;
  readonly rowTokens: Int32Array;
  readonly withEntropyInput: boolean;
  readonly entropyBonus: boolean;
}

/**
 * The validated inputs packed four to a vector (see loss.wgsl.ts). With `fromStatistics`, logp and entropy are
 * the device's (the fused pass) and `t.logp` / `t.entropy` are placeholders that are not packed.
 */
export function packLoss(
  t: LossInputs,
  o: PolicyLossOptions,
  options: { fromStatistics: boolean; hasOldLogp: boolean },
): PackedLoss {
  const [rows, cols] = t.shape;
  const size = rows * cols;
  const weights = rowWeights(t.rowTokens, cols, o.aggregation, o.normalizer);
  const entropyBonus = o.entropyCoef > 0;
  const entropyWeights = entropyBonus
    ? rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer)
    : undefined;
  const rowIn = new Float32Array(rows * 4);
  for (let b = 0; b < rows; b++) {
    const count = t.rowTokens[b]!;
    rowIn[4 * b] = !t.perTokenAdvantages && count > 0 ? t.advantages[b]! : 0;
    rowIn[4 * b + 1] = weights[b]!;
    rowIn[4 * b + 2] = entropyWeights?.[b] ?? 0;
    rowIn[4 * b + 3] = count;
  }
  const withEntropyInput = t.entropy !== undefined;
  const extraFromHost =
    o.kl !== null || t.importanceWeights !== undefined || (withEntropyInput && !options.fromStatistics);
  const tokenIn = new Float32Array(size * 4);
  const tokenExtra = extraFromHost ? new Float32Array(size * 4) : undefined;
  const { logp, oldLogp, mask, advantages, refLogp, importanceWeights, entropy } = t;
  const perToken = t.perTokenAdvantages;
  const fromStatistics = options.fromStatistics;
  // Masked entries stay 0: whatever the caller put there (NaN, ±Infinity) is never read.
  for (let i = 0; i < size; i++) {
    if (mask[i] !== 1) continue;
    const at = 4 * i;
    tokenIn[at] = fromStatistics ? 0 : logp[i]!;
    tokenIn[at + 1] = fromStatistics && !options.hasOldLogp ? 0 : oldLogp[i]!;
    tokenIn[at + 2] = 1;
    tokenIn[at + 3] = perToken ? advantages[i]! : 0;
    if (tokenExtra !== undefined) {
      tokenExtra[at] = refLogp === undefined ? 0 : refLogp[i]!;
      tokenExtra[at + 1] = importanceWeights === undefined ? 1 : importanceWeights[i]!;
      tokenExtra[at + 2] = entropy === undefined || fromStatistics ? 0 : entropy[i]!;
    }
  }
  let flags = 0;
  if (!fromStatistics || options.hasOldLogp) flags |= LOSS_FLAGS.oldLogp;
  if (perToken) flags |= LOSS_FLAGS.perTokenAdvantages;
  if (importanceWeights !== undefined) flags |= LOSS_FLAGS.importanceWeights;
  if (o.kl !== null) {
    flags |= LOSS_FLAGS.kl;
    if (o.kl.clamp) flags |= LOSS_FLAGS.klClamp;
    if (o.kl.importanceCorrected) flags |= LOSS_FLAGS.klImportanceCorrected;
  }
  if (withEntropyInput) flags |= LOSS_FLAGS.entropy;
  if (entropyBonus) flags |= LOSS_FLAGS.entropyBonus;
  if (o.dualClip !== null) flags |= LOSS_FLAGS.dualClip;
  if (o.delta !== null) flags |= LOSS_FLAGS.delta;
  return { rows, cols, rowIn, tokenIn, tokenExtra, flags, rowTokens: t.rowTokens, withEntropyInput, entropyBonus };
}

function lossParams(
  o: PolicyLossOptions,
  packed: PackedLoss,
  chunk: { rows: number; rowStart: number; tokenShift: number; statShift: number; groupsX: number },
): Uint32Array {
  const words = new Uint32Array(LOSS_PARAM_WORDS);
  words.set([chunk.rows, chunk.rowStart, packed.cols, chunk.groupsX, chunk.tokenShift, chunk.statShift]);
  words[6] = OBJECTIVE_CODE[o.objective as BuiltinObjective];
  words[7] = RATIO_LEVEL_CODE[o.ratioLevel];
  words[8] = packed.flags;
  words[9] = o.kl === null ? 0 : KL_KIND_CODE[o.kl.kind];
  const f = new Float32Array(words.buffer, 16 * 4);
  // ±Infinity clamp bounds become the largest finite floats: every finite log-ratio is inside either way.
  const [low, high] = o.logRatioClamp ?? [-Infinity, Infinity];
  f[0] = Math.max(low, LOWEST);
  f[1] = Math.min(high, -LOWEST);
  f[2] = 1 - o.clipLow;
  f[3] = 1 + o.clipHigh;
  f[4] = o.delta ?? 0;
  f[5] = o.dualClip ?? 0;
  f[6] = o.kl?.coef ?? 0;
  f[7] = o.entropyCoef;
  f[8] = o.sapoTemperature.positive;
  f[9] = o.sapoTemperature.negative;
  return words;
}

export interface LossBuffers {
  /** [B·T] vec4: (∂loss/∂logp, per-token loss, per-token KL, ∂loss/∂entropy): the backward pass's `upstream`. */
  readonly tokenOut: GpuBuffer;
  /** [B·3] vec4 of per-row sums. */
  readonly partials: GpuBuffer;
}

/**
 * Dispatches the loss over every row (in chunks of rows whose [rows, T] vectors fit one binding). With `stats`
 * (the forward pass's [B·T] vec4 statistics on the device), logp and entropy are read from it.
 */
export async function encodeLoss(
  batch: Batch,
  o: PolicyLossOptions,
  packed: PackedLoss,
  stats?: GpuBuffer,
): Promise<LossBuffers> {
  const { context } = batch;
  const fromStatistics = stats !== undefined;
  const pipeline = await context.pipeline(`loss-${fromStatistics}`, () => lossKernel({ fromStatistics }));
  const { rows, cols } = packed;
  const size = rows * cols;
  const tokenBytes = Math.max(1, size) * 16;
  if (fromStatistics && tokenBytes > context.bindingLimit) {
    throw context.bindingTooSmall(
      "logits",
      `${size} positions (B·T) have ${tokenBytes} bytes of statistics (16 per position), bound whole`,
      `at most ${Math.floor(context.bindingLimit / 16)} positions per call`,
    );
  }
  const rowIn = batch.upload(packed.rowIn);
  const tokenIn = batch.upload(packed.tokenIn);
  const tokenExtra =
    packed.tokenExtra !== undefined ? batch.upload(packed.tokenExtra) : batch.buffer(16, BufferUsage.STORAGE);
  const tokenOut = batch.buffer(tokenBytes, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
  const partials = batch.buffer(Math.max(1, rows) * 48, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
  const rowBytes = cols * 16;
  const perChunk = Math.max(1, Math.floor((context.bindingLimit - context.storageAlignment) / Math.max(rowBytes, 1)));
  if (rowBytes + context.storageAlignment > context.bindingLimit) {
    throw context.bindingTooSmall(
      fromStatistics ? "tokens" : "inputs.logp",
      `a row of ${cols} tokens has ${rowBytes} bytes of per-token data (16 per token), bound from a multiple of ` +
        `this device's minStorageBufferOffsetAlignment (${context.storageAlignment} bytes)`,
      `rows of at most ${Math.floor((context.bindingLimit - context.storageAlignment) / 16)} tokens`,
    );
  }
  const chunks: { rowStart: number; rowEnd: number }[] = [];
  for (let rowStart = 0; rowStart < rows; rowStart += perChunk)
    chunks.push({ rowStart, rowEnd: Math.min(rows, rowStart + perChunk) });
  const params = new ParamSlots(batch, chunks.length, LOSS_PARAM_WORDS);
  batch.guard(() => {
    const encoder = batch.device.createCommandEncoder();
    const pass = encoder.beginComputePass();
    pass.setPipeline(pipeline);
    chunks.forEach(({ rowStart, rowEnd }, k) => {
      const start = rowStart * rowBytes;
      const offset = Math.floor(start / context.storageAlignment) * context.storageAlignment;
      const length = Math.max(16, alignUp(rowEnd * rowBytes - offset, 16));
      const range = (buffer: GpuBuffer) => ({ buffer, offset, size: length });
      const [x, y] = grid(context, rowEnd - rowStart);
      const slot = params.write(
        k,
        lossParams(o, packed, {
          rows: rowEnd - rowStart,
          rowStart,
          tokenShift: (start - offset) / 16,
          statShift: rowStart * cols,
          groupsX: x,
        }),
      );
      const group = bindGroup(batch, pipeline, lossBindings({ fromStatistics }), {
        params: slot,
        rowIn: { buffer: rowIn },
        tokenIn: range(tokenIn),
        tokenExtra: packed.tokenExtra !== undefined ? range(tokenExtra) : { buffer: tokenExtra },
        tokenOut: range(tokenOut),
        partials: { buffer: partials },
        ...(stats !== undefined ? { stats: { buffer: stats } } : {}),
      });
      pass.setBindGroup(0, group);
      pass.dispatchWorkgroups(x, y);
    });
    pass.end();
    batch.device.queue.submit([encoder.finish()]);
  });
  return { tokenOut, partials };
}

/** Reads the loss kernel's outputs back as the reference's PolicyLossResult. */
export async function readLoss(
  batch: Batch,
  o: PolicyLossOptions,
  packed: PackedLoss,
  buffers: LossBuffers,
): Promise<PolicyLossResult> {
  const { rows, cols } = packed;
  const size = rows * cols;
  const tokenOut = new Float32Array(size * 4);
  const partials = new Float32Array(rows * 12);
  await Promise.all([
    size > 0
      ? batch.read(buffers.tokenOut, 0, size * 16, (bytes) => tokenOut.set(new Float32Array(bytes, 0, size * 4)))
      : undefined,
    rows > 0
      ? batch.read(buffers.partials, 0, rows * 48, (bytes) => partials.set(new Float32Array(bytes, 0, rows * 12)))
      : undefined,
  ]);
  await batch.check();
  return lossResult(o, packed, tokenOut, partials);
}

export function lossResult(
  o: PolicyLossOptions,
  packed: PackedLoss,
  tokenOut: Float32Array,
  partials: Float32Array,
): PolicyLossResult {
  const { rows, cols } = packed;
  const size = rows * cols;
  const grad = new Float64Array(size);
  const perTokenLoss = new Float64Array(size);
  const perTokenKl = o.kl !== null ? new Float64Array(size) : undefined;
  const gradEntropy = packed.entropyBonus ? new Float64Array(size) : undefined;
  for (let i = 0; i < size; i++) {
    grad[i] = tokenOut[4 * i]!;
    perTokenLoss[i] = tokenOut[4 * i + 1]!;
    if (perTokenKl !== undefined) perTokenKl[i] = tokenOut[4 * i + 2]!;
    if (gradEntropy !== undefined) gradEntropy[i] = tokenOut[4 * i + 3]!;
  }
  let tokens = 0;
  let sequences = 0;
  let loss = 0,
    clipped = 0,
    low = 0,
    high = 0,
    dual = 0,
    approxKl = 0,
    ratioSum = 0,
    klSum = 0,
    entropySum = 0;
  let ratioMin = Infinity;
  let ratioMax = -Infinity;
  for (let b = 0; b < rows; b++) {
    const count = packed.rowTokens[b]!;
    if (count === 0) continue;
    tokens += count;
    sequences++;
    const at = 12 * b;
    loss += partials[at]!;
    clipped += partials[at + 1]!;
    low += partials[at + 2]!;
    high += partials[at + 3]!;
    dual += partials[at + 4]!;
    approxKl += partials[at + 5]!;
    ratioSum += partials[at + 6]!;
    klSum += partials[at + 7]!;
    entropySum += partials[at + 8]!;
    ratioMin = Math.min(ratioMin, partials[at + 10]!);
    ratioMax = Math.max(ratioMax, partials[at + 11]!);
  }
  const metrics = lossMetrics(
    { tokens, sequences, clipped, low, high, dual, approxKl, ratioMin, ratioSum, ratioMax, klSum, entropySum },
    o.kl !== null,
    packed.withEntropyInput,
  );

  return { loss, grad, gradEntropy, perTokenLoss, perTokenKl, shape: [rows, cols], metrics };
}
