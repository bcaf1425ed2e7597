import * as z from "zod/mini";
import { pure } from "../pure.js";
import { invalid, parseOrThrow, type ValidationError } from "../errors.js";
import { exp, readNumbers } from "../numeric.js";
import { assertBinaryMask, toMatrix, type Matrix, type MatrixInput } from "../tensor.js";
import { bfloat16ToFloat32, roundToBfloat16InPlace } from "./bfloat16.js";

/**
 * bfloat16 logits [B, T, V]: the raw bits (the upper half of each float32) in a Uint16Array. The CUDA backend
 * reads them as they are; the CPU backends widen them to float32 (exactly) and compute on that.
 */
export interface Bfloat16Logits {
  /** B·T·V bfloat16 bit patterns, row-major (`float32ToBfloat16` makes them from numbers). */
  readonly data: Uint16Array;
  /** [B, T, V]. */
  readonly shape: readonly [number, number, number];
  /** Marks `data` as bfloat16 bits, not integers. */
  readonly dtype: "bfloat16";
}

/** Logits [B, T, V], row-major: flat data with its shape (float64, float32 or bfloat16 bits), or nested arrays. */
export type LogitsInput =
  | {
      readonly data: Float32Array | Float64Array | readonly number[];
      readonly shape: readonly [number, number, number];
    }
  | Bfloat16Logits
  | readonly (readonly (readonly number[])[])[];

/** How tokenLogProbs reads the logits, and what else it computes. */
export interface TokenLogProbsOptions {
  /** The logits are divided by it first (sampling temperature). */
  readonly temperature?: number | undefined;
  /** Also compute the entropy of each position's distribution. */
  readonly entropy?: boolean | undefined;
  /** [B, T] 0/1: positions with 0 are skipped (logp 0, gradient 0), so their tokens and logits are never read. */
  readonly mask?: MatrixInput | undefined;
}

/** The sampled tokens' log-probabilities, and the statistics the backward pass reuses. */
export interface TokenLogProbs {
  /** log softmax(logits / temperature)[token], [B, T]. */
  readonly logp: Float64Array;
  /** Entropy per position, [B, T], when asked for; undefined otherwise. */
  readonly entropy: Float64Array | undefined;
  /** logsumexp(logits / temperature) per position, NaN where the mask skipped it: what the backward pass needs. */
  readonly logSumExp: Float64Array;
  /** The temperature these were computed at, so the backward pass can refuse a mismatched `saved`. */
  readonly temperature: number;
  /** [B, T] of the arrays above. */
  readonly shape: readonly [number, number];
}

/** What flows back into the logits: the gradients with respect to logp (and entropy), and the forward options. */
export interface TokenLogProbsBackwardOptions extends TokenLogProbsOptions {
  /** ∂L/∂logp, [B, T]. */
  readonly gradLogp: MatrixInput;
  /** ∂L/∂entropy, [B, T], when the loss has an entropy term. */
  readonly gradEntropy?: MatrixInput | undefined;
  /**
   * The forward result, to skip recomputing logsumexp (and entropy). Precondition: it is tokenLogProbs's result on
   * these same logits at this temperature; what can be checked is (shape, temperature, finiteness, positions the
   * forward mask skipped), and float32 backends also refuse statistics under which a row's probabilities do not
   * sum to 1. A logsumexp beyond 2^24 (logits near the float range) is recomputed, since z/τ − lse loses p there.
   */
  readonly saved?: TokenLogProbs | undefined;
}

/** The vocabulary is read in chunks this long: a running max and sum merge them (online logsumexp). */
const VOCAB_CHUNK = 4096;

/** The forward pass's options; the mask is read with the tokens. */
const forwardOptionsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    temperature: z._default(z.number().check(z.positive()), 1),
    entropy: z._default(z.boolean(), false),
    mask: z.optional(z.unknown()),
  }),
);

/** The backward pass's options: the forward's, and what flows back (read with the logits' shape). */
const backwardOptionsSchema = /* @__PURE__ */ pure(() =>
  z.extend(forwardOptionsSchema, {
    gradLogp: z.unknown(),
    gradEntropy: z.optional(z.unknown()),
    saved: z.optional(z.unknown()),
  }),
);

export interface Logits {
  readonly data: ArrayLike<number>;
  readonly rows: number;
  readonly cols: number;
  readonly vocab: number;
  /** The bits, when the logits came as bfloat16 (`data` then holds them widened to float32). */
  readonly bfloat16?: Uint16Array | undefined;
}

/**
 * Log-probabilities of the sampled tokens: logit[token] − logsumexp(logits), in float64 with the running-max
 * trick, streaming the vocabulary in chunks; beyond the outputs it keeps O(1) per position, never [B, T, V].
 * −Infinity logits (masked vocabulary) are fine; NaN or +Infinity at a selected position is an error.
 */
export function tokenLogProbs(
  logits: LogitsInput,
  tokens: MatrixInput,
  options: TokenLogProbsOptions = {},
): TokenLogProbs {
  const { temperature, entropy: withEntropy } = parseOrThrow(forwardOptionsSchema, options, "options");
  const l = readLogits(logits);
  const { ids, mask } = readTokens(tokens, options.mask, l);
  const positions = l.rows * l.cols;
  const logp = new Float64Array(positions);
  const logSumExp = new Float64Array(positions).fill(NaN);
  const entropy = withEntropy ? new Float64Array(positions) : undefined;
  const inverseTemperature = 1 / temperature;
  const stats = newRowStatistics();
  for (let i = 0; i < positions; i++) {
    if (mask !== undefined && mask[i] === 0) continue;
    rowStatistics(l, i, inverseTemperature, withEntropy, stats);
    logSumExp[i] = stats.logSumExp;
    // (z − max)/τ − log Σ: exact where z/τ − logsumexp would cancel two huge numbers.
    const tokenLogit = l.data[i * l.vocab + ids[i]!]!;
    logp[i] = (tokenLogit - stats.max) * inverseTemperature - stats.logSum;
    if (logp[i] === -Infinity && tokenLogit !== -Infinity) throw logProbOverflow(i, l.cols, tokenLogit, stats.max);
    if (entropy !== undefined) entropy[i] = stats.entropy;
  }
  return { logp, entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
}

/**
 * ∂L/∂logits from ∂L/∂logp (and ∂L/∂entropy): g·(onehot − softmax) + h·(−p·(z − lse + H)), divided by the
 * temperature. Returns a gradient of the logits' own precision: a Float64Array for float64 logits, a Float32Array
 * for float32 logits, and for bfloat16 logits a Float32Array whose entries are rounded to bfloat16 (JavaScript has
 * no bfloat16 array; `float32ToBfloat16` gives the bits).
 */
export function tokenLogProbsBackward(
  logits: LogitsInput,
  tokens: MatrixInput,
  options: TokenLogProbsBackwardOptions,
): { readonly data: Float32Array | Float64Array; readonly shape: readonly [number, number, number] } {
  const { l, ids, reads, gradLogp, gradEntropy, temperature, saved } = readBackwardInputs(logits, tokens, options);
  const size = l.rows * l.cols * l.vocab;
  const out = l.data instanceof Float32Array ? new Float32Array(size) : new Float64Array(size);
  const inverseTemperature = 1 / temperature;
  const stats = newRowStatistics();
  for (let i = 0; i < l.rows * l.cols; i++) {
    if (reads[i] === 0) continue;
    const g = gradLogp[i]!;
    const h = gradEntropy === undefined ? 0 : gradEntropy[i]!;
    // log p_v = (z_v − shift)/τ − offset: the saved logsumexp as (0, lse) while it is small enough for z/τ − lse to
    // keep its digits; otherwise (huge logits) the row's max and log Σ, recomputed.
    let shift = 0;
    let logNormalizer: number;
    let H: number;
    if (saved !== undefined && Math.abs(saved.logSumExp[i]!) <= SAVED_LOGSUMEXP_LIMIT) {
      logNormalizer = saved.logSumExp[i]!;
      H = saved.entropy?.[i] ?? 0;
    } else {
      rowStatistics(l, i, inverseTemperature, h !== 0, stats);
      shift = stats.max;
      logNormalizer = stats.logSum;
      H = stats.entropy;
    }
    const offset = i * l.vocab;
    for (let v = 0; v < l.vocab; v++) {
      const logProbability = (l.data[offset + v]! - shift) * inverseTemperature - logNormalizer;
      const p = exp(logProbability);
      // p = 0 for −Infinity logits, whose entropy term would be 0·∞.
      const entropyTerm = h === 0 || p === 0 ? 0 : -h * p * (logProbability + H);
      out[offset + v] = (-g * p + entropyTerm) * inverseTemperature;
    }
    const at = offset + ids[i]!;
    out[at] = out[at]! + g * inverseTemperature;
  }
  if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
}

/**
 * The backward pass's inputs, validated as every backend validates them: shapes, token ids, temperature, that
 * ∂L/∂logp and ∂L/∂entropy are finite where the mask selects, and that `saved` belongs to this pass.
 */
export function readBackwardInputs(logits: LogitsInput, tokens: MatrixInput, options: TokenLogProbsBackwardOptions) {
  const { temperature } = readBackwardOptions(options);
  return readBackwardInputsOf(readLogits(logits), temperature, tokens, options);
}

/** readBackwardInputs for logits a backend has read itself (bfloat16 bits it keeps as they are), in the same order. */
export function readBackwardInputsOf(
  l: Logits,
  temperature: number,
  tokens: MatrixInput,
  options: TokenLogProbsBackwardOptions,
) {
  const { ids, mask } = readTokens(tokens, options.mask, l);
  const gradLogp = positional(options.gradLogp, "options.gradLogp", l);
  const gradEntropy =
    options.gradEntropy === undefined ? undefined : positional(options.gradEntropy, "options.gradEntropy", l);
  for (const [name, values] of [
    ["gradLogp", gradLogp],
    ["gradEntropy", gradEntropy],
  ] as const) {
    if (values === undefined) continue;
    for (let i = 0; i < values.length; i++) {
      if ((mask === undefined || mask[i] === 1) && !Number.isFinite(values[i])) {
        throw invalid(
          `options.${name}[${Math.floor(i / l.cols)}][${i % l.cols}]`,
          `is ${values[i]}; must be finite where the mask selects`,
        );
      }
    }
  }
  const saved = options.saved === undefined ? undefined : readSaved(options.saved, l, temperature);
  if (gradEntropy !== undefined && saved !== undefined && saved.entropy === undefined) {
    throw invalid("options.saved", "has no entropy: run the forward pass with { entropy: true } or leave `saved` out");
  }
  const reads = backwardReads(mask, gradLogp, gradEntropy);
  if (saved !== undefined) requireSavedStatistics(saved, reads, gradEntropy !== undefined, l.cols);
  return { l, ids, mask, reads, gradLogp, gradEntropy, temperature, saved };
}

const float64ArraySchema = /* @__PURE__ */ z.custom<Float64Array>((value) => value instanceof Float64Array, {
  message: "expected a Float64Array",
});

/** A TokenLogProbs given as `saved`: the forward result of these logits, at this temperature. */
const savedSchema = /* @__PURE__ */ pure(() =>
  z.looseObject({
    logp: float64ArraySchema,
    logSumExp: float64ArraySchema,
    entropy: z.optional(float64ArraySchema),
    temperature: z.number(),
    shape: z.tuple([z.number(), z.number()]),
  }),
);

/** `saved` checked against this pass: the forward result of tokenLogProbs on the same logits and temperature. */
function readSaved(input: TokenLogProbs, l: Logits, temperature: number): TokenLogProbs {
  const saved = parseOrThrow(savedSchema, input, "options.saved") as TokenLogProbs;
  if (saved.shape[0] !== l.rows || saved.shape[1] !== l.cols) {
    throw invalid("options.saved", `is for shape [${saved.shape.join(", ")}], logits are [${l.rows}, ${l.cols}, …]`);
  }
  if (saved.temperature !== temperature) {
    throw invalid("options.saved", `was computed at temperature ${saved.temperature}, this pass is at ${temperature}`);
  }
  const positions = l.rows * l.cols;
  for (const field of ["logp", "logSumExp", "entropy"] as const) {
    const values = saved[field];
    if (values !== undefined && values.length !== positions) {
      throw invalid(`options.saved.${field}`, `has ${values.length} entries, the logits have ${positions} positions`);
    }
  }
  return saved;
}

/**
 * At every position the backward reads, the saved statistics must be a forward pass's: NaN there means the forward
 * mask skipped it; ±Infinity, or an entropy that is not finite, cannot come from a forward pass over finite logits.
 */
function requireSavedStatistics(saved: TokenLogProbs, reads: Uint8Array, withEntropy: boolean, cols: number): void {
  for (let i = 0; i < reads.length; i++) {
    if (reads[i] === 0) continue;
    const logSumExp = saved.logSumExp[i]!;
    if (Number.isNaN(logSumExp)) throw savedSkipped(i, cols);
    const where = `[${Math.floor(i / cols)}][${i % cols}]`;
    if (!Number.isFinite(logSumExp)) {
      throw invalid(`options.saved.logSumExp${where}`, `is ${logSumExp}; not a forward pass's logsumexp`);
    }
    const entropy = saved.entropy?.[i];
    if (withEntropy && !Number.isFinite(entropy)) {
      throw invalid(`options.saved.entropy${where}`, `is ${entropy}; not a forward pass's entropy`);
    }
  }
}

/** The backward pass's validated inputs, as every backend reads them. */
export type BackwardInputs = ReturnType<typeof readBackwardInputsOf>;

/**
 * The positions the backward pass reads, 1 each: those the mask selects and into which a gradient flows (∂L/∂logp or
 * ∂L/∂entropy ≠ 0). Every other position's gradient is exactly 0 and its logits are never read.
 */
function backwardReads(
  mask: ArrayLike<number> | undefined,
  gradLogp: ArrayLike<number>,
  gradEntropy: ArrayLike<number> | undefined,
): Uint8Array {
  const reads = new Uint8Array(gradLogp.length);
  for (let i = 0; i < reads.length; i++) {
    const selected = mask === undefined || mask[i] === 1;
    reads[i] = selected && (gradLogp[i] !== 0 || (gradEntropy !== undefined && gradEntropy[i] !== 0)) ? 1 : 0;
  }
  return reads;
}

/** The forward pass's options, validated. */
export function readForwardOptions(options: TokenLogProbsOptions): { temperature: number; entropy: boolean } {
  const { temperature, entropy } = parseOrThrow(forwardOptionsSchema, options, "options");
  return { temperature, entropy };
}

/** The backward pass's options, validated (every key known); its arrays are read by readBackwardInputsOf. */
export function readBackwardOptions(options: TokenLogProbsBackwardOptions): { temperature: number } {
  const { temperature } = parseOrThrow(backwardOptionsSchema, options, "options");
  return { temperature };
}

/**
 * A saved logsumexp beyond this is recomputed by the backward pass: z/τ − lse of two numbers this large keeps
 * fewer than 53 − 24 bits after the point, too few for p (logits this large are rare; the recomputation is exact).
 */
const SAVED_LOGSUMEXP_LIMIT = 2 ** 24;

/** One position's statistics over its vocabulary, relative to the largest logit. */
interface RowStatistics {
  /** The largest raw logit (before the temperature). */
  max: number;
  /** log Σ_v e^((z_v − max)/τ). */
  logSum: number;
  /** max/τ + logSum. */
  logSumExp: number;
  entropy: number;
}

function newRowStatistics(): RowStatistics {
  return { max: 0, logSum: 0, logSumExp: 0, entropy: 0 };
}

/**
 * logsumexp and entropy of position i's distribution, one streamed pass over its vocabulary in chunks, with every
 * exponent taken as (z − max)/τ: shifting before scaling keeps z/τ from overflowing, and (z − max)/τ − log Σ keeps
 * its digits for logits near the float range (z/τ − logsumexp cancelled them: [3e38, 3e38] gave logp 0, not −log 2).
 */
function rowStatistics(
  l: Logits,
  i: number,
  inverseTemperature: number,
  withEntropy: boolean,
  out: RowStatistics,
): void {
  const data = l.data;
  const offset = i * l.vocab;
  let max = -Infinity;
  let sum = 0;
  // Σ e^d·d with d = (z − max)/τ, for the entropy H = log Σ e^d − Σ e^d·d / Σ e^d.
  let weighted = 0;
  for (let start = 0; start < l.vocab; start += VOCAB_CHUNK) {
    const end = Math.min(l.vocab, start + VOCAB_CHUNK);
    let chunkMax = -Infinity;
    for (let v = start; v < end; v++) {
      const z = data[offset + v]!;
      // biome-ignore lint/suspicious/noSelfCompare: z !== z is the NaN test; NaN must win the max to be reported
      if (z > chunkMax || z !== z) chunkMax = z;
    }
    if (chunkMax === -Infinity) continue;
    // biome-ignore lint/suspicious/noSelfCompare: a NaN chunk maximum must reach the checks below, which report it
    if (chunkMax > max || chunkMax !== chunkMax) {
      if (sum > 0) {
        // Re-express the running sums relative to the new max: d' = d + δ, e' = e·e^δ.
        const delta = (max - chunkMax) * inverseTemperature;
        const rescale = Math.exp(delta);
        weighted = rescale * (weighted + delta * sum);
        sum *= rescale;
      }
      max = chunkMax;
    }
    for (let v = start; v < end; v++) {
      const d = (data[offset + v]! - max) * inverseTemperature;
      const e = exp(d);
      sum += e;
      if (withEntropy && e > 0) weighted += e * d;
    }
  }
  // biome-ignore lint/suspicious/noSelfCompare: max !== max is the NaN test
  if (max === Infinity || max === -Infinity || max !== max)
    throw badLogits(i, l.cols, max === -Infinity ? -Infinity : NaN);
  const logSum = Math.log(sum);
  const logSumExp = max * inverseTemperature + logSum;
  if (!Number.isFinite(logSumExp)) throw logitsOverflow(i, l.cols, max, inverseTemperature);
  out.max = max;
  out.logSum = logSum;
  out.logSumExp = logSumExp;
  out.entropy = withEntropy ? logSum - weighted / sum : 0;
}

/**
 * A finite logit so far below its position's largest that its log-prob is below −1.8e308: not a number float64
 * holds (a −Infinity logit's log-prob is −Infinity by definition, and allowed).
 */
export function logProbOverflow(i: number, cols: number, tokenLogit: number, max: number) {
  return invalid(
    `logits[${Math.floor(i / cols)}][${i % cols}]`,
    `the sampled token's logit ${tokenLogit} is so far below the largest (${max}) that its log-prob overflows float64`,
  );
}

/** Logits whose largest divided by the temperature is beyond float64: their logsumexp cannot be represented. */
export function logitsOverflow(i: number, cols: number, max: number, inverseTemperature: number) {
  return invalid(
    `logits[${Math.floor(i / cols)}][${i % cols}]`,
    `the largest logit ${max} divided by the temperature (${1 / inverseTemperature}) overflows float64`,
  );
}

/**
 * A sampled token whose logit is −Infinity: it has probability 0 and log-prob −Infinity, which tokenLogProbs
 * returns (documented), but on which no loss is defined. The loss from logits says so at the logits, the input the
 * caller gave, rather than at a log-prob it never passed.
 */
export function impossibleToken(i: number, cols: number, token: number): ValidationError {
  const at = `[${Math.floor(i / cols)}][${i % cols}]`;
  return invalid(
    `logits${at}`,
    `the sampled token's logit (tokens${at} = ${token}) is −Infinity: the token has probability 0, so its ` +
      "log-prob is −Infinity and the loss is undefined there; give it a finite logit, or mask the position out",
  );
}

/** The error when `saved` lacks position i, which the backward pass needs: its forward mask was 0. */
export function savedSkipped(i: number, cols: number) {
  return invalid(
    "options.saved",
    `skipped position [${Math.floor(i / cols)}][${i % cols}] (its forward mask was 0), which this pass needs`,
  );
}

/** The error for position i whose logsumexp is not finite: all −Infinity, or NaN / +Infinity among its logits. */
export function badLogits(i: number, cols: number, logSumExp: number) {
  const where = `logits[${Math.floor(i / cols)}][${i % cols}]`;
  return invalid(
    where,
    logSumExp === -Infinity ? "every logit is −Infinity: no token has probability" : "holds NaN or +Infinity",
  );
}

export function readLogits(input: LogitsInput): Logits {
  if (isBfloat16Logits(input)) {
    const l = readBfloat16Logits(input);
    return { data: bfloat16ToFloat32(l.bfloat16), rows: l.rows, cols: l.cols, vocab: l.vocab, bfloat16: l.bfloat16 };
  }
  if (Array.isArray(input)) {
    const rows = input.length;
    const first = input[0] as unknown;
    if (rows > 0 && !(Array.isArray(first) && first.every(Array.isArray))) {
      throw invalid("logits[0]", "expected nested arrays [B][T][V] (or { data, shape })");
    }
    const cols = rows === 0 ? 0 : (first as readonly unknown[]).length;
    const vocab = cols === 0 ? 0 : ((first as readonly (readonly unknown[])[])[0] ?? []).length;
    const data = new Float64Array(rows * cols * vocab);
    input.forEach((row: readonly (readonly number[])[], b: number) => {
      if (!Array.isArray(row) || row.length !== cols) throw invalid(`logits[${b}]`, `expected ${cols} positions`);
      row.forEach((position, t) => {
        if (!Array.isArray(position) || position.length !== vocab)
          throw invalid(`logits[${b}][${t}]`, `expected ${vocab} logits`);
        position.forEach((value, v) => {
          if (typeof value !== "number") throw invalid(`logits[${b}][${t}][${v}]`, "expected a number");
          data[(b * cols + t) * vocab + v] = value;
        });
      });
    });
    return { data, rows, cols, vocab };
  }
  const parsed = parseOrThrow(flatLogitsSchema, input, "logits");
  const data = Array.isArray(parsed.data) ? readNumbers(parsed.data, "logits.data") : parsed.data;
  return { data, ...logitsShape(data, parsed.shape) };
}

/** [B, T, V]: B and T may be 0, the vocabulary may not. */
const logitsShapeSchema = /* @__PURE__ */ pure(() =>
  z.tuple([z.int().check(z.nonnegative()), z.int().check(z.nonnegative()), z.int().check(z.positive())]),
);

const flatLogitsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    /** float32 and float64 logits declare no dtype (the array says it); bfloat16 ones do. */
    dtype: z.optional(z.undefined()),
    data: z.custom<ArrayLike<number>>(
      (d) => d instanceof Float32Array || d instanceof Float64Array || Array.isArray(d),
      {
        message: "expected a Float32Array, a Float64Array or an array",
      },
    ),
    shape: logitsShapeSchema,
  }),
);

const bfloat16LogitsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    dtype: z.literal("bfloat16", {
      message: 'the only dtype logits may declare is "bfloat16" (leave it out for float32 / float64 data)',
    }),
    data: z.custom<Uint16Array>((d) => d instanceof Uint16Array, {
      message: "bfloat16 logits are their bits in a Uint16Array",
    }),
    shape: logitsShapeSchema,
  }),
);

/** The shape's dimensions, once the data is known to hold B·T·V entries. */
function logitsShape(data: ArrayLike<unknown>, shape: readonly [number, number, number]) {
  const [rows, cols, vocab] = shape;
  if (data.length !== rows * cols * vocab) {
    throw invalid(
      "logits.data",
      `has ${data.length} entries but shape [${shape.join(", ")}] needs ${rows * cols * vocab}`,
    );
  }
  return { rows, cols, vocab };
}

/** Has a `dtype` field: bfloat16 logits (or a dtype this package does not know, which readBfloat16Logits rejects). */
export function isBfloat16Logits(input: LogitsInput): input is Bfloat16Logits {
  return (
    typeof input === "object" &&
    input !== null &&
    !Array.isArray(input) &&
    "dtype" in input &&
    (input as { dtype?: unknown }).dtype !== undefined
  );
}

/** bfloat16 logits validated without widening them: their bits and shape (`data` is left empty). */
export function readBfloat16Logits(input: Bfloat16Logits): Logits & { readonly bfloat16: Uint16Array } {
  const parsed = parseOrThrow(bfloat16LogitsSchema, input, "logits");
  return { data: [], ...logitsShape(parsed.data, parsed.shape), bfloat16: parsed.data };
}

export function readTokens(
  tokens: MatrixInput,
  maskInput: MatrixInput | undefined,
  l: Logits,
): { ids: ArrayLike<number>; mask: ArrayLike<number> | undefined } {
  const ids = positionalMatrix(tokens, "tokens", l);
  const mask = maskInput === undefined ? undefined : positionalMatrix(maskInput, "options.mask", l);
  if (mask !== undefined) assertBinaryMask(mask, "options.mask");
  for (let i = 0; i < ids.data.length; i++) {
    if (mask !== undefined && mask.data[i] === 0) continue;
    const id = ids.data[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= l.vocab) {
      throw invalid(
        `tokens[${Math.floor(i / l.cols)}][${i % l.cols}]`,
        `token id ${id} is not an integer in [0, ${l.vocab})`,
      );
    }
  }
  return { ids: ids.data, mask: mask?.data };
}

function positionalMatrix(input: MatrixInput, name: string, l: Logits): Matrix {
  const matrix = toMatrix(input, name);
  if (matrix.shape[0] !== l.rows || matrix.shape[1] !== l.cols) {
    throw invalid(name, `has shape [${matrix.shape.join(", ")}] but logits are [${l.rows}, ${l.cols}, ${l.vocab}]`);
  }
  return matrix;
}

export function positional(input: MatrixInput, name: string, l: Logits): ArrayLike<number> {
  return positionalMatrix(input, name, l).data;
}

/** How tokenEntropy reads the logits. */
export interface TokenEntropyOptions {
  /** The logits are divided by it first (sampling temperature, default 1). */
  readonly temperature?: number | undefined;
  /** [B, T] 0/1: positions with 0 are skipped (entropy 0, gradient 0), so their logits are never read. */
  readonly mask?: MatrixInput | undefined;
}

/** The entropy of each position's distribution softmax(logits / temperature). */
export interface TokenEntropy {
  /** H = −Σ_v p_v·log p_v per position, [B, T]; 0 where the mask skipped it. */
  readonly entropy: Float64Array;
  /** logsumexp(logits / temperature) per position, NaN where the mask skipped it. */
  readonly logSumExp: Float64Array;
  /** The temperature these were computed at. */
  readonly temperature: number;
  /** [B, T] of the arrays above. */
  readonly shape: readonly [number, number];
}

/** What flows back into the logits from the entropy alone. */
export interface TokenEntropyBackwardOptions extends TokenEntropyOptions {
  /** ∂L/∂entropy, [B, T]; must be finite where the mask selects. */
  readonly gradEntropy: MatrixInput;
}

const entropyOptionsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({
    temperature: z._default(z.number().check(z.positive()), 1),
    mask: z.optional(z.unknown()),
  }),
);

const entropyBackwardOptionsSchema = /* @__PURE__ */ pure(() =>
  z.extend(entropyOptionsSchema, { gradEntropy: z.unknown() }),
);

/** The mask of an entropy-only call, read against the logits' [B, T]. */
function readPositionMask(maskInput: MatrixInput | undefined, l: Logits): ArrayLike<number> | undefined {
  if (maskInput === undefined) return undefined;
  const mask = positionalMatrix(maskInput, "options.mask", l);
  assertBinaryMask(mask, "options.mask");
  return mask.data;
}

/**
 * The entropy of each position, H = logsumexp(z/τ) − Σ softmax(z/τ)·z/τ (verl's and TRL's entropy_from_logits), for
 * logits [B, T, V] and no tokens: one streamed pass over the vocabulary per position in float64, as tokenLogProbs
 * computes it. −Infinity logits (a masked vocabulary) count as probability 0 (verl and TRL give NaN there); NaN or
 * +Infinity at a selected position, or a position whose logits are all −Infinity, is an error.
 *
 * @example tokenEntropy([[[0, 0]]]).entropy // => Float64Array [0.6931471805599453] (log 2)
 */
export function tokenEntropy(logits: LogitsInput, options: TokenEntropyOptions = {}): TokenEntropy {
  const { temperature } = parseOrThrow(entropyOptionsSchema, options, "options");
  const l = readLogits(logits);
  const mask = readPositionMask(options.mask, l);
  const positions = l.rows * l.cols;
  const entropy = new Float64Array(positions);
  const logSumExp = new Float64Array(positions).fill(NaN);
  const inverseTemperature = 1 / temperature;
  const stats = newRowStatistics();
  for (let i = 0; i < positions; i++) {
    if (mask !== undefined && mask[i] === 0) continue;
    rowStatistics(l, i, inverseTemperature, true, stats);
    logSumExp[i] = stats.logSumExp;
    entropy[i] = stats.entropy;
  }
  return { entropy, logSumExp, temperature, shape: [l.rows, l.cols] };
}

/**
 * ∂L/∂logits from ∂L/∂entropy alone: −h·p_v·(log p_v + H)/τ at each entry, with h = ∂L/∂entropy of the position
 * (verl's compute_entropy_loss backward). Positions the mask skips or where h = 0 get exactly 0 and their logits are
 * never read. The gradient has the logits' precision, as tokenLogProbsBackward's.
 *
 * @example tokenEntropyBackward([[[0, 0]]], { gradEntropy: [[1]] }).data // => Float64Array [0, 0] (a maximum)
 */
export function tokenEntropyBackward(
  logits: LogitsInput,
  options: TokenEntropyBackwardOptions,
): { readonly data: Float32Array | Float64Array; readonly shape: readonly [number, number, number] } {
  const { temperature } = parseOrThrow(entropyBackwardOptionsSchema, options, "options");
  const l = readLogits(logits);
  const mask = readPositionMask(options.mask, l);
  const gradEntropy = positional(options.gradEntropy, "options.gradEntropy", l);
  for (let i = 0; i < gradEntropy.length; i++) {
    if ((mask === undefined || mask[i] === 1) && !Number.isFinite(gradEntropy[i])) {
      throw invalid(
        `options.gradEntropy[${Math.floor(i / l.cols)}][${i % l.cols}]`,
        `is ${gradEntropy[i]}; must be finite where the mask selects`,
      );
    }
  }
  const size = l.rows * l.cols * l.vocab;
  const out = l.data instanceof Float32Array ? new Float32Array(size) : new Float64Array(size);
  const inverseTemperature = 1 / temperature;
  const stats = newRowStatistics();
  for (let i = 0; i < l.rows * l.cols; i++) {
    const h = gradEntropy[i]!;
    if ((mask !== undefined && mask[i] === 0) || h === 0) continue;
    rowStatistics(l, i, inverseTemperature, true, stats);
    const offset = i * l.vocab;
    for (let v = 0; v < l.vocab; v++) {
      const logProbability = (l.data[offset + v]! - stats.max) * inverseTemperature - stats.logSum;
      const p = exp(logProbability);
      // p = 0 for −Infinity logits, whose term would be 0·∞.
      out[offset + v] = p === 0 ? 0 : -h * p * (logProbability + stats.entropy) * inverseTemperature;
    }
  }
  if (l.bfloat16 !== undefined) roundToBfloat16InPlace(out as Float32Array);
  return { data: out, shape: [l.rows, l.cols, l.vocab] };
}
