/**
 * tokenLogProbs and tokenLogProbsBackward on the wasm kernel: inputs validated as the reference validates them (and
 * where float32 cannot hold them), the statistics and the gradient in wasm, the logarithms, checks and errors here
 * in float64.
 */
import {
  float32InverseTemperature,
  type Logits,
  type LogitsGradient,
  type LogitsInput,
  logProbOverflow,
  type MatrixInput,
  readBackwardInputsOf,
  readBackwardOptions,
  readForwardOptions,
  isBfloat16Logits,
  readBfloat16Logits,
  readLogits,
  readTokens,
  requireFloat32Logits,
  requireFloat32Temperature,
  requireFloat32Upstream,
  roundToBfloat16InPlace,
  savedIsExact,
  savedMismatch,
  savedShift,
  badLogits,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
} from "../backends/contract.js";
import {
  type Chunk,
  placedChunks,
  type Engine,
  type Exclusive,
  type Offsets,
  positionStatistics,
  residentOf,
  split,
} from "./engine.js";
import type { Prediction } from "./fused.js";
import type { WasmKernel } from "./kernel.js";

/**
 * forward_backward's params: the clip objective's six, 1/τ in float64, whether the policy is its own old one, and
 * whether the loss gradient is given (weight) rather than predicted.
 */
const PREDICTION_PARAMS = 9;

/** How far a row's probabilities may sum from 1 under saved statistics before they are taken for another row's. */
const MISMATCH_TOLERANCE = 1e-3;

/** The forward statistics' buffers for a chunk of `positions` rows (byte offsets into the kernel's memory). */
export function forwardLayout(kernel: WasmKernel, positions: number, vocab: number, staged: boolean, from?: number) {
  const [logits, active, max, sum, weighted] = kernel.reserve(
    forwardSizes(positions, vocab, staged),
    from,
  ) as Offsets<5>;
  return { logits, active, max, sum, weighted };
}

export function forwardSizes(positions: number, vocab: number, staged: boolean): number[] {
  return [staged ? positions * vocab * 4 : 0, positions, positions * 4, positions * 8, positions * 8];
}

/**
 * The backward pass's buffers under saved statistics: the staged logits, the rows it reads, the gradient (none for
 * resident logits: theirs is beside them), each position's inputs to it, and the row checks it returns.
 */
function backwardLayout(kernel: WasmKernel, positions: number, vocab: number, staged: boolean, from?: number) {
  const float32s = positions * 4;
  const block = staged ? positions * vocab * 4 : 0;
  const offsets = kernel.reserve(
    [block, positions, block, ...[float32s, float32s, float32s, float32s, float32s, float32s, float32s], positions * 8],
    from,
  ) as Offsets<11>;
  const [logits, active, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum] = offsets;
  return { logits, active, grad, shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum };
}

/** forward_stats over a chunk whose logits are at `logits`, its buffers at `at`, split among the threads. */
export function forwardStats(
  engine: Engine,
  logits: number,
  count: number,
  vocab: number,
  inverseTemperature: number,
  withEntropy: boolean,
  at: { active: number; max: number; sum: number; weighted: number },
  meanwhile?: () => void,
) {
  return split(
    engine,
    "forward_stats",
    count,
    (first, n) => [
      logits + first * vocab * 4,
      n,
      vocab,
      inverseTemperature,
      withEntropy ? 1 : 0,
      at.active + first,
      at.max + first * 4,
      at.sum + first * 8,
      at.weighted + first * 8,
    ],
    meanwhile,
  );
}

/**
 * tokenLogProbs; with `prediction` (fused.ts), also the gradient into the logits under the loss gradient the kernel
 * predicts at each position, in the same visit of each row, left in `prediction.outcome` for the backward step.
 */
export async function wasmTokenLogProbs(
  exclusive: Exclusive,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
  prediction?: Prediction,
): Promise<TokenLogProbs> {
  const { temperature, entropy: withEntropy } = readForwardOptions(options);
  const l = readWasmLogits(logitsInput);
  const tokens = readTokens(tokensInput, options.mask, l);
  // Copies: the call runs when the calls queued before it are done, and the caller may refill its arrays meanwhile.
  const ids = Int32Array.from(tokens.ids);
  const mask = tokens.mask === undefined ? undefined : Uint8Array.from(tokens.mask);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => mask === undefined || mask[i] === 1);
  return exclusive(async (engine) => {
    const { kernel } = engine;
    const resident = residentOf(engine, l);
    const positions = l.rows * l.cols;
    const logp = new Float64Array(positions);
    const logSumExp = new Float64Array(positions).fill(NaN);
    const entropy = withEntropy ? new Float64Array(positions) : undefined;
    const inverseTemperature = 1 / temperature;
    const inverse32 = float32InverseTemperature(temperature);
    const predicted = prediction === undefined ? undefined : new Float64Array(positions);
    // Counted before the kernels write, so that a call failing halfway still invalidates a gradient kept for later.
    const written = prediction !== undefined && resident !== undefined ? ++resident.writes : undefined;
    const gradient = prediction === undefined || resident !== undefined ? undefined : newGradient(l);
    const staged = resident === undefined;
    const layout = (count: number, from?: number) =>
      prediction === undefined
        ? forwardLayout(kernel, count, l.vocab, staged, from)
        : predictingLayout(kernel, count, l.vocab, staged, from);
    for (const { chunk, at, logits, meanwhile } of placedChunks(engine, l, resident, layout)) {
      const count = chunk.end - chunk.start;
      const active = kernel.u8(at.active, count);
      for (let k = 0; k < count; k++) active[k] = mask === undefined || mask[chunk.start + k] === 1 ? 1 : 0;
      if (prediction === undefined) {
        await forwardStats(engine, logits, count, l.vocab, inverse32, withEntropy, at, meanwhile);
      } else {
        const fused = at as ReturnType<typeof predictingLayout>;
        const grad = staged ? fused.grad : resident!.gradientOffset + chunk.start * l.vocab * 4;
        await forwardBackward(
          engine,
          chunk,
          l.vocab,
          ids,
          { predicted: prediction },
          { ...fused, logits, grad },
          inverse32,
          { withEntropy, inverseTemperature },
          meanwhile,
        );
        predicted!.set(kernel.f64(fused.predicted, count), chunk.start);
        gradient?.set(kernel.f32(grad, count * l.vocab), chunk.start * l.vocab);
      }
      const values = kernel.f32(logits, count * l.vocab);
      const max = kernel.f32(at.max, count);
      const sum = kernel.f64(at.sum, count);
      const weighted = kernel.f64(at.weighted, count);
      for (let k = 0; k < count; k++) {
        if (active[k] === 0) continue;
        const i = chunk.start + k;
        const stats = positionStatistics(i, l.cols, max[k]!, sum[k]!, weighted[k]!, inverseTemperature);
        logSumExp[i] = stats.logSumExp;
        // (z − max)/τ − log Σ: exact where z/τ − logsumexp would cancel two huge numbers (as the reference).
        const tokenLogit = values[k * l.vocab + ids[i]!]!;
        logp[i] = (tokenLogit - max[k]!) * inverseTemperature - stats.logSum;
        if (logp[i] === -Infinity && tokenLogit !== -Infinity) throw logProbOverflow(i, l.cols, tokenLogit, max[k]!);
        if (entropy !== undefined) entropy[i] = stats.entropy;
      }
    }
    if (prediction !== undefined) {
      if (gradient !== undefined && l.bfloat16 !== undefined) roundToBfloat16InPlace(gradient as Float32Array);
      const shape = [l.rows, l.cols, l.vocab] as const;
      if (resident === undefined) {
        const data = gradient!;
        prediction.outcome = { gradient: () => ({ data, shape }), predicted: predicted! };
      } else {
        // Another call may write these logits' gradient before the loss's gradient is compared with the prediction.
        const current = () =>
          resident.released || resident.writes !== written ? undefined : { data: resident.views().gradient, shape };
        prediction.outcome = { gradient: current, predicted: predicted! };
      }
    }
    return { logp, entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
  });
}

/**
 * The logits as the reference reads them, but bfloat16 ones left as their bits (no float32 copy of the whole batch:
 * each chunk is widened as it is staged).
 */
function readWasmLogits(input: LogitsInput): Logits {
  return isBfloat16Logits(input) ? readBfloat16Logits(input) : readLogits(input);
}

/** A gradient in the logits' own precision (float32 for float32 and bfloat16 logits). */
function newGradient(l: Logits): Float32Array | Float64Array {
  const size = l.rows * l.cols * l.vocab;
  return l.data instanceof Float64Array ? new Float64Array(size) : new Float32Array(size);
}

/** forward_backward's buffers for a chunk: forward_stats's, the gradient, and each position's loss inputs. */
function predictingLayout(kernel: WasmKernel, positions: number, vocab: number, staged: boolean, from?: number) {
  const doubles = positions * 8;
  const offsets = kernel.reserve(
    [
      ...forwardSizes(positions, vocab, staged),
      staged ? positions * vocab * 4 : 0,
      positions * 4,
      ...[doubles, doubles, doubles],
      positions * 4,
      PREDICTION_PARAMS * 8,
      doubles,
    ],
    from,
  ) as Offsets<13>;
  const [logits, active, max, sum, weighted, grad, tokens, old, advantage, weight, gradEntropy, params, predicted] =
    offsets;
  return { logits, active, max, sum, weighted, grad, tokens, old, advantage, weight, gradEntropy, params, predicted };
}

/**
 * The loss gradient forward_backward uses at each position: predicted from the clip objective's inputs (fused.ts),
 * or given (tokenLogProbsBackward's gradLogp and gradEntropy, at the positions it reads).
 */
type Upstream =
  | { readonly predicted: Prediction }
  | {
      readonly given: {
        readonly reads: ArrayLike<number>;
        readonly gradLogp: ArrayLike<number>;
        readonly gradEntropy: ArrayLike<number> | undefined;
      };
    };

/** forward_backward over a chunk: its inputs copied in, its positions split among the threads. */
function forwardBackward(
  engine: Engine,
  chunk: Chunk,
  vocab: number,
  ids: ArrayLike<number>,
  upstream: Upstream,
  at: ReturnType<typeof predictingLayout>,
  inverse32: number,
  { withEntropy, inverseTemperature }: { withEntropy: boolean; inverseTemperature: number },
  meanwhile?: () => void,
) {
  const { kernel } = engine;
  const count = chunk.end - chunk.start;
  const tokens = kernel.i32(at.tokens, count);
  for (let k = 0; k < count; k++) tokens[k] = ids[chunk.start + k]!;
  const params = kernel.f64(at.params, PREDICTION_PARAMS);
  if ("predicted" in upstream) {
    const prediction = upstream.predicted;
    const range = (array: Float64Array | Float32Array) => array.subarray(chunk.start, chunk.end);
    kernel.f64(at.old, count).set(range(prediction.old));
    kernel.f64(at.advantage, count).set(range(prediction.advantage));
    kernel.f64(at.weight, count).set(range(prediction.weight));
    kernel.f32(at.gradEntropy, count).set(range(prediction.gradEntropy));
    params.set([...prediction.params, inverseTemperature, prediction.onPolicy ? 1 : 0, 0]);
  } else {
    const { reads, gradLogp, gradEntropy } = upstream.given;
    const weight = kernel.f64(at.weight, count);
    const h = kernel.f32(at.gradEntropy, count);
    for (let k = 0; k < count; k++) {
      const i = chunk.start + k;
      weight[k] = reads[i] === 1 ? gradLogp[i]! : 0;
      h[k] = reads[i] === 1 && gradEntropy !== undefined ? gradEntropy[i]! : 0;
    }
    params.fill(0);
    params[6] = inverseTemperature;
    params[8] = 1;
  }
  return split(
    engine,
    "forward_backward",
    count,
    (first, n) => [
      at.logits + first * vocab * 4,
      at.grad + first * vocab * 4,
      n,
      vocab,
      inverse32,
      withEntropy ? 1 : 0,
      at.active + first,
      at.tokens + first * 4,
      at.old + first * 8,
      at.advantage + first * 8,
      at.weight + first * 8,
      at.gradEntropy + first * 4,
      at.params,
      at.max + first * 4,
      at.sum + first * 8,
      at.weighted + first * 8,
      at.predicted + first * 8,
    ],
    meanwhile,
  );
}

/**
 * tokenLogProbsBackward: under saved statistics, the backward kernel (which also checks that each row's
 * probabilities sum to 1 under them); without, each row's statistics and gradient in one visit (gradientInOnePass).
 * `kept`, asked once the inputs are checked and the call's turn has come, may give a gradient already computed
 * (the fused policyLossFromLogits's), which is then returned instead.
 */
export async function wasmTokenLogProbsBackward(
  exclusive: Exclusive,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsBackwardOptions,
  kept?: () => LogitsGradient | undefined,
): Promise<LogitsGradient> {
  const { temperature } = readBackwardOptions(options);
  const l = readWasmLogits(logitsInput);
  const backward = readBackwardInputsOf(l, temperature, tokensInput, options);
  // Copies: the call runs when the calls queued before it are done, and the caller may refill its arrays meanwhile.
  const ids = Int32Array.from(backward.ids);
  const reads = Uint8Array.from(backward.reads);
  const gradLogp = Float64Array.from(backward.gradLogp);
  const gradEntropy = backward.gradEntropy === undefined ? undefined : Float64Array.from(backward.gradEntropy);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(l, (i) => reads[i] === 1);
  requireFloat32Upstream(gradLogp, gradEntropy, reads, temperature, l);
  // Saved statistics that float32 kernels cannot use exactly (huge logits) are recomputed, for every row.
  const exact = backward.saved !== undefined && savedIsExact(backward.saved, reads) ? backward.saved : undefined;
  const saved =
    exact === undefined
      ? undefined
      : {
          logSumExp: Float64Array.from(exact.logSumExp),
          entropy: exact.entropy === undefined ? undefined : Float64Array.from(exact.entropy),
        };
  return exclusive(async (engine) => {
    // In the same turn of the queue as the pass it spares: no call can write the kept gradient in between.
    const gradient = kept?.();
    if (gradient !== undefined) return gradient;
    if (saved === undefined) return gradientInOnePass(engine, l, ids, { reads, gradLogp, gradEntropy }, temperature);
    const { kernel } = engine;
    const resident = residentOf(engine, l);
    if (resident !== undefined) resident.writes++;
    const out = resident !== undefined ? undefined : newGradient(l);
    const inverse32 = float32InverseTemperature(temperature);
    const layout = (count: number, from?: number) =>
      backwardLayout(kernel, count, l.vocab, resident === undefined, from);
    for (const { chunk, at, logits, meanwhile } of placedChunks(engine, l, resident, layout)) {
      const count = chunk.end - chunk.start;
      const { shift, logNorm, g, h, entropy, tokens, rowMax, probabilitySum } = at;
      const grad = resident === undefined ? at.grad : resident.gradientOffset + chunk.start * l.vocab * 4;
      const active = kernel.u8(at.active, count);
      for (let k = 0; k < count; k++) active[k] = reads[chunk.start + k]!;
      const [shifts, logNorms, entropies] = [
        kernel.f32(shift, count),
        kernel.f32(logNorm, count),
        kernel.f32(entropy, count),
      ];
      for (let k = 0; k < count; k++) {
        if (active[k] === 0) continue;
        const i = chunk.start + k;
        const H = saved.entropy?.[i] ?? 0;
        const exact = savedShift(saved.logSumExp[i]!, H, temperature)!;
        shifts[k] = exact.shift;
        logNorms[k] = exact.logSum;
        entropies[k] = H;
      }
      const gs = kernel.f32(g, count);
      const hs = kernel.f32(h, count);
      const ts = kernel.i32(tokens, count);
      for (let k = 0; k < count; k++) {
        const i = chunk.start + k;
        const read = active[k] === 1;
        gs[k] = read ? gradLogp[i]! : 0;
        hs[k] = read && gradEntropy !== undefined ? gradEntropy[i]! : 0;
        ts[k] = read ? ids[i]! : 0;
      }
      await split(
        engine,
        "backward",
        count,
        (first, n) => [
          logits + first * l.vocab * 4,
          grad + first * l.vocab * 4,
          n,
          l.vocab,
          inverse32,
          at.active + first,
          shift + first * 4,
          logNorm + first * 4,
          g + first * 4,
          h + first * 4,
          entropy + first * 4,
          tokens + first * 4,
          rowMax + first * 4,
          probabilitySum + first * 8,
        ],
        meanwhile,
      );
      if (saved !== undefined) requireSavedRows(kernel, chunk, active, rowMax, probabilitySum, l.cols);
      out?.set(kernel.f32(grad, count * l.vocab), chunk.start * l.vocab);
    }
    if (out === undefined) return { data: resident!.views().gradient, shape: [l.rows, l.cols, l.vocab] };
    if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
    return { data: out, shape: [l.rows, l.cols, l.vocab] };
  });
}

/**
 * tokenLogProbsBackward without saved statistics: each row's statistics and its gradient in one visit
 * (forward_backward with the loss gradient given), the statistics' errors (the reference's, in the order of the
 * rows) raised after each chunk.
 */
async function gradientInOnePass(
  engine: Engine,
  l: Logits,
  ids: ArrayLike<number>,
  given: { reads: ArrayLike<number>; gradLogp: ArrayLike<number>; gradEntropy: ArrayLike<number> | undefined },
  temperature: number,
): Promise<LogitsGradient> {
  const { kernel } = engine;
  const resident = residentOf(engine, l);
  if (resident !== undefined) resident.writes++;
  const out = resident !== undefined ? undefined : newGradient(l);
  const inverseTemperature = 1 / temperature;
  const withEntropy = given.gradEntropy !== undefined;
  const layout = (count: number, from?: number) =>
    predictingLayout(kernel, count, l.vocab, resident === undefined, from);
  for (const { chunk, at, logits, meanwhile } of placedChunks(engine, l, resident, layout)) {
    const count = chunk.end - chunk.start;
    const grad = resident === undefined ? at.grad : resident.gradientOffset + chunk.start * l.vocab * 4;
    const active = kernel.u8(at.active, count);
    for (let k = 0; k < count; k++) active[k] = given.reads[chunk.start + k]!;
    await forwardBackward(
      engine,
      chunk,
      l.vocab,
      ids,
      { given },
      { ...at, logits, grad },
      float32InverseTemperature(temperature),
      { withEntropy, inverseTemperature },
      meanwhile,
    );
    const max = kernel.f32(at.max, count);
    const sum = kernel.f64(at.sum, count);
    const weighted = kernel.f64(at.weighted, count);
    for (let k = 0; k < count; k++)
      if (active[k] === 1)
        positionStatistics(chunk.start + k, l.cols, max[k]!, sum[k]!, weighted[k]!, inverseTemperature);
    out?.set(kernel.f32(grad, count * l.vocab), chunk.start * l.vocab);
  }
  if (out === undefined) return { data: resident!.views().gradient, shape: [l.rows, l.cols, l.vocab] };
  if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
}

/**
 * Rows read under saved statistics, which the kernel did not compute: a NaN or +Infinity logit, or only −Infinity,
 * is the reference's error; probabilities that do not sum to 1 mean the statistics are not these logits'.
 */
function requireSavedRows(
  kernel: WasmKernel,
  chunk: Chunk,
  active: Uint8Array,
  rowMax: number,
  probabilitySum: number,
  cols: number,
): void {
  const count = chunk.end - chunk.start;
  const max = kernel.f32(rowMax, count);
  const sums = kernel.f64(probabilitySum, count);
  for (let k = 0; k < count; k++) {
    if (active[k] === 0) continue;
    const i = chunk.start + k;
    const m = max[k]!;
    // biome-ignore lint/suspicious/noSelfCompare: m !== m is the NaN test
    if (m === Infinity || m !== m) throw badLogits(i, cols, NaN);
    if (m === -Infinity) throw badLogits(i, cols, -Infinity);
    if (!(Math.abs(sums[k]! - 1) <= MISMATCH_TOLERANCE)) throw savedMismatch(i, cols, sums[k]!);
  }
}
