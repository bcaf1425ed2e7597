import { GrpoRocError, invalid, parseOrThrow } from "../errors.js";
import { isArrayLike, numericArraySchema, type NumericArray } from "../numeric.js";
import { countRowTokens, toMatrix, type Matrix, type MatrixInput } from "../tensor.js";
import { rowWeights } from "./aggregation.js";
import { klPenalty } from "./kl.js";
import {
  clipObjective,
  cispoObjective,
  reinforceObjective,
  sapoObjective,
  type PolicyObjective,
  type TokenKernel,
} from "./objectives.js";
import { policyLossOptionsSchema, type PolicyLossOptions, type PolicyLossOptionsInput } from "./options.js";

export interface PolicyLossInputs {
  /** log π(token) under the policy being trained, [B, T]: the gradient is taken with respect to it. */
  readonly logp: MatrixInput;
  /** log π_old(token) under the policy that sampled, [B, T]; omitted: on-policy (ratio 1, as TRL does). */
  readonly oldLogp?: MatrixInput | undefined;
  /** One per rollout [B], or one per token [B, T]. */
  readonly advantages: NumericArray | MatrixInput;
  /** 1 for tokens the model wrote, 0 for padding and tool output, [B, T]; omitted: every token counts. */
  readonly mask?: MatrixInput | undefined;
  /** log π_ref(token), [B, T]: needed when options.kl is set. */
  readonly refLogp?: MatrixInput | undefined;
  /** Per-token importance weights (e.g. rollout correction), multiplying the policy term, [B, T]. */
  readonly importanceWeights?: MatrixInput | undefined;
  /** Per-token entropy of the policy, [B, T]: needed when options.entropyCoef > 0. */
  readonly entropy?: MatrixInput | undefined;
}

export interface PolicyLossMetrics {
  /** Valid tokens and non-empty rows of this call. */
  readonly tokens: number;
  readonly sequences: number;
  /** Share of valid tokens where the clipped branch is the larger loss (verl's pg_clipfrac). */
  readonly clipFraction: number;
  /** Share where ρ < 1 − ε_low with A < 0, and ρ > 1 + ε_high with A > 0 (TRL's clip_ratio/low_mean, high_mean). */
  readonly clipFractionLow: number;
  readonly clipFractionHigh: number;
  /** Share where the dual clip binds (verl's pg_clipfrac_lower). */
  readonly dualClipFraction: number;
  /** Mean of log π_old − log π over valid tokens (verl's ppo_kl; clamped like the ratio at token level). */
  readonly approxKl: number;
  readonly ratioMin: number;
  readonly ratioMean: number;
  readonly ratioMax: number;
  /** Mean KL estimate and mean entropy over valid tokens, when computed. */
  readonly kl: number | undefined;
  readonly entropy: number | undefined;
}

export interface PolicyLossResult {
  /** The loss to minimise, −J. */
  readonly loss: number;
  /** ∂loss/∂logp, [B, T] row-major; 0 where the mask is 0. */
  readonly grad: Float64Array;
  /** ∂loss/∂entropy when an entropy bonus is used, for tokenLogProbsBackward. */
  readonly gradEntropy: Float64Array | undefined;
  /** The policy term per token (after importance weights, before aggregation); 0 where the mask is 0. */
  readonly perTokenLoss: Float64Array;
  /** The KL term per token (before its coefficient), when options.kl is set. */
  readonly perTokenKl: Float64Array | undefined;
  readonly shape: readonly [number, number];
  readonly metrics: PolicyLossMetrics;
}

/**
 * Caller-owned output buffers, each a Float64Array of B·T entries. Each one given is overwritten completely (0 where
 * the mask is 0) and returned as the result's array, so a training loop that passes the same buffers every step
 * writes into warm memory instead of fresh pages. A buffer for an output the options do not produce is left alone.
 */
export interface PolicyLossBuffers {
  readonly grad?: Float64Array | undefined;
  readonly perTokenLoss?: Float64Array | undefined;
  readonly perTokenKl?: Float64Array | undefined;
  readonly gradEntropy?: Float64Array | undefined;
}

const objectives = new Map<string, PolicyObjective>([
  ["clip", clipObjective],
  ["cispo", cispoObjective],
  ["sapo", sapoObjective],
  ["reinforce", reinforceObjective],
]);

/** Adds a per-token policy objective, selectable by `options.objective`. */
export function registerPolicyObjective(name: string, objective: PolicyObjective): void {
  if (objectives.has(name)) throw new GrpoRocError(`policy objective "${name}" is already registered`);
  objectives.set(name, objective);
}

/**
 * One kernel per objective and option values, built once. V8 inlines the kernel into the hot loop, with its result
 * object kept in registers, only while the loop keeps seeing the same function: a closure built afresh on every
 * call made the loss about twice as slow (and allocate per token). The normaliser is left out of the key: it only
 * sets the aggregation weights, and it changes with every micro-batch.
 */
const kernels = new Map<string, TokenKernel>();
const KERNEL_CACHE_SIZE = 64;

function kernelFor(o: PolicyLossOptions): TokenKernel {
  const { normalizer: _normalizer, ...rest } = o;
  const key = JSON.stringify(rest, (_name, value: unknown) =>
    typeof value === "number" && !Number.isFinite(value) ? String(value) : value,
  );
  let kernel = kernels.get(key);
  if (kernel === undefined) {
    const makeKernel = objectives.get(o.objective);
    if (makeKernel === undefined) {
      throw invalid(
        "options.objective",
        `unknown objective "${o.objective}"; registered: ${policyObjectiveNames().join(", ")}`,
      );
    }
    if (kernels.size >= KERNEL_CACHE_SIZE) kernels.clear();
    kernel = makeKernel(o);
    kernels.set(key, kernel);
  }
  return kernel;
}

export function policyObjectiveNames(): string[] {
  return [...objectives.keys()];
}

export function resolvePolicyLossOptions(options: PolicyLossOptionsInput = {}): PolicyLossOptions {
  return parseOrThrow(policyLossOptionsSchema, options, "options");
}

/**
 * The clipped policy loss and its gradient with respect to logp (spec §4): per-token objective, optional KL to a
 * reference and entropy bonus, aggregated so that micro-batches given the whole batch's `normalizer` sum to the
 * whole batch's loss and gradient.
 */
export function policyLoss(
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput = {},
  into: PolicyLossBuffers = {},
): PolicyLossResult {
  const o = resolvePolicyLossOptions(options);
  const kernel = kernelFor(o);
  const t = readInputs(inputs, o);
  const [_rows, cols] = t.shape;
  const weights = rowWeights(t.rowTokens, cols, o.aggregation, o.normalizer);
  const entropyWeights =
    o.entropyCoef > 0 ? rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer) : undefined;
  const outputs = outputBuffers(into, t, { perTokenKl: o.kl !== null, gradEntropy: entropyWeights !== undefined });
  const sums = accumulate(t, o, kernel, weights, entropyWeights, outputs);
  const metrics = lossMetrics(sums, o.kl !== null, t.entropy !== undefined);
  const { grad, perTokenLoss, perTokenKl, gradEntropy } = outputs;
  return { loss: sums.loss, grad, gradEntropy, perTokenLoss, perTokenKl, shape: t.shape, metrics };
}

/** What a backend sums over the valid tokens of a call, to report the metrics. */
export interface MetricSums {
  readonly tokens: number;
  readonly sequences: number;
  readonly clipped: number;
  readonly low: number;
  readonly high: number;
  readonly dual: number;
  readonly approxKl: number;
  readonly ratioMin: number;
  readonly ratioSum: number;
  readonly ratioMax: number;
  readonly klSum: number;
  readonly entropySum: number;
}

/** The metrics from their sums, as every backend reports them (means over valid tokens; all 0 without any). */
export function lossMetrics(sums: MetricSums, withKl: boolean, withEntropy: boolean): PolicyLossMetrics {
  const { tokens } = sums;
  const mean = (sum: number) => (tokens === 0 ? 0 : sum / tokens);
  // Fixed shapes (optional fields present as undefined) keep callers' property accesses monomorphic.
  return {
    tokens,
    sequences: sums.sequences,
    clipFraction: mean(sums.clipped),
    clipFractionLow: mean(sums.low),
    clipFractionHigh: mean(sums.high),
    dualClipFraction: mean(sums.dual),
    approxKl: mean(sums.approxKl),
    ratioMin: tokens === 0 ? 0 : sums.ratioMin,
    ratioMean: mean(sums.ratioSum),
    ratioMax: tokens === 0 ? 0 : sums.ratioMax,
    kl: withKl ? mean(sums.klSum) : undefined,
    entropy: withEntropy ? mean(sums.entropySum) : undefined,
  };
}

interface Outputs {
  readonly grad: Float64Array;
  readonly perTokenLoss: Float64Array;
  readonly perTokenKl: Float64Array | undefined;
  readonly gradEntropy: Float64Array | undefined;
}

/** The arrays the loss writes: the caller's buffers, cleared and checked, or fresh zeroed ones. */
function outputBuffers(
  into: PolicyLossBuffers,
  t: Inputs,
  needed: { perTokenKl: boolean; gradEntropy: boolean },
): Outputs {
  if (typeof into !== "object" || into === null)
    throw invalid("into", "expected an object of Float64Array buffers ({ grad, perTokenLoss, … })");
  const size = t.shape[0] * t.shape[1];
  const taken: [string, ArrayBufferView][] = [];
  for (const [name, input] of Object.entries(t)) if (ArrayBuffer.isView(input)) taken.push([`inputs.${name}`, input]);
  const buffer = (name: keyof PolicyLossBuffers): Float64Array => {
    const given = into[name];
    if (given === undefined) return new Float64Array(size);
    if (!(given instanceof Float64Array)) throw invalid(`into.${name}`, "expected a Float64Array");
    if (given.length !== size)
      throw invalid(`into.${name}`, `has ${given.length} entries but the loss needs ${size} (B·T)`);
    const clash = taken.find(([, other]) => overlaps(given, other));
    if (clash !== undefined)
      throw invalid(`into.${name}`, `shares memory with ${clash[0]}; every output needs a buffer of its own`);
    taken.push([`into.${name}`, given]);
    return given.fill(0);
  };
  return {
    grad: buffer("grad"),
    perTokenLoss: buffer("perTokenLoss"),
    perTokenKl: needed.perTokenKl ? buffer("perTokenKl") : undefined,
    gradEntropy: needed.gradEntropy ? buffer("gradEntropy") : undefined,
  };
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  return (
    a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < a.byteOffset + a.byteLength
  );
}

/** The hot loop, in a function of its own so that its optimised code does not depend on the caller's. */
function accumulate(
  t: Inputs,
  o: PolicyLossOptions,
  kernel: TokenKernel,
  weights: Float64Array,
  entropyWeights: Float64Array | undefined,
  { grad, perTokenLoss, perTokenKl, gradEntropy }: Outputs,
) {
  const [rows, cols] = t.shape;
  // The options' clamp is a frozen array, whose entries V8 hands out boxed; a boxed bound in the clamp's select below
  // made it box every token's log-ratio too (an allocation per token). One subtraction here unboxes them for good.
  const clampLow = o.logRatioClamp === null ? -Infinity : o.logRatioClamp[0] - 0;
  const clampHigh = o.logRatioClamp === null ? Infinity : o.logRatioClamp[1] - 0;
  const sequenceLevel = o.ratioLevel !== "token";
  // "sequence": the gradient of the returned loss, through ρ_b to every token of the row (GSPO, TRL).
  // "sequence-token": GSPO-token, ρ_bt = sg(ρ_b)·π_t/sg(π_t), whose gradient stays with each token (verl).
  const throughRow = o.ratioLevel === "sequence";
  // The loop reads plain locals: property loads per token would cost as much as the arithmetic.
  const {
    logp: logps,
    oldLogp: oldLogps,
    mask,
    advantages,
    perTokenAdvantages,
    refLogp,
    importanceWeights,
    entropy,
  } = t;
  const kl = o.kl;
  let tokens = 0,
    sequences = 0,
    clipped = 0,
    low = 0,
    high = 0,
    dual = 0;
  let approxKl = 0,
    ratioMin = Infinity,
    ratioSum = 0,
    ratioMax = -Infinity,
    klSum = 0,
    entropySum = 0;
  let loss = 0;
  for (let b = 0; b < rows; b++) {
    const count = t.rowTokens[b]!;
    if (count === 0) continue;
    sequences++;
    const w = weights[b]!;
    const rowStart = b * cols;
    const rowEnd = rowStart + cols;
    let sequenceLogRatio = 0;
    if (sequenceLevel) {
      for (let k = rowStart; k < rowEnd; k++) if (mask[k] === 1) sequenceLogRatio += logps[k]! - oldLogps[k]!;
      sequenceLogRatio /= count;
    }
    // ∂loss/∂log ρ_b summed over the row, for gradients that reach every token of the row through ρ_b.
    let rowLogRatioGrad = 0;
    for (let i = rowStart; i < rowEnd; i++) {
      if (mask[i] !== 1) continue;
      const logp = logps[i]!;
      const tokenLogRatio = logp - oldLogps[i]!;
      // x − x is 0 for every finite x and NaN otherwise: one test covers both inputs.
      if (tokenLogRatio - tokenLogRatio !== 0) throw nonFinite(logps, oldLogps, i, cols);
      const rawLogRatio = sequenceLevel ? sequenceLogRatio : tokenLogRatio;
      const inside = rawLogRatio >= clampLow && rawLogRatio <= clampHigh;
      const logRatio = inside ? rawLogRatio : rawLogRatio < clampLow ? clampLow : clampHigh;
      const ratio = Math.exp(logRatio);
      const out = kernel({ logp, logRatio, ratio, advantage: advantages[perTokenAdvantages ? i : b]! });
      const importance = importanceWeights === undefined ? 1 : importanceWeights[i]!;
      const tokenLoss = out.loss * importance;
      perTokenLoss[i] = tokenLoss;
      loss += w * tokenLoss;
      const viaRatio = inside ? w * importance * out.dLogRatio : 0;
      if (throughRow) rowLogRatioGrad += viaRatio;
      grad[i] = (throughRow ? 0 : viaRatio) + w * importance * out.dLogp;

      if (kl !== null) {
        let { value, dLogp: slope } = klPenalty(kl.kind, kl.clamp, logp, refLogp![i]!);
        if (kl.importanceCorrected) {
          // TRL multiplies the KL by the ratio without detaching it, so the ratio's own gradient comes along.
          if (sequenceLevel) {
            if (inside) rowLogRatioGrad += w * kl.coef * value * ratio;
            slope *= ratio;
          } else {
            slope = slope * ratio + (inside ? value * ratio : 0);
          }
          value *= ratio;
        }
        perTokenKl![i] = value;
        loss += w * kl.coef * value;
        grad[i] = grad[i]! + w * kl.coef * slope;
        klSum += value;
      }
      if (entropy !== undefined) {
        if (entropyWeights !== undefined) {
          const bonus = entropyWeights[b]! * o.entropyCoef;
          loss -= bonus * entropy[i]!;
          gradEntropy![i] = -bonus;
        }
        entropySum += entropy[i]!;
      }

      tokens++;
      if (out.clipped) clipped++;
      if (out.lowClipped) low++;
      if (out.highClipped) high++;
      if (out.dualClipped) dual++;
      approxKl -= sequenceLevel ? tokenLogRatio : logRatio;
      if (ratio < ratioMin) ratioMin = ratio;
      if (ratio > ratioMax) ratioMax = ratio;
      ratioSum += ratio;
    }
    if (rowLogRatioGrad !== 0) {
      // log ρ_b is the mean of the row's log-ratios: each valid token gets 1/count of it.
      for (let i = rowStart; i < rowEnd; i++) if (mask[i] === 1) grad[i] = grad[i]! + rowLogRatioGrad / count;
    }
  }
  return {
    loss,
    tokens,
    sequences,
    clipped,
    low,
    high,
    dual,
    approxKl,
    ratioMin,
    ratioSum,
    ratioMax,
    klSum,
    entropySum,
  };
}

/** Validated policy-loss inputs as flat arrays; shared with the other backends so they validate alike. */
export interface Inputs {
  readonly shape: readonly [number, number];
  readonly logp: NumericArray;
  readonly oldLogp: NumericArray;
  readonly mask: NumericArray;
  readonly rowTokens: Int32Array;
  readonly advantages: NumericArray;
  readonly perTokenAdvantages: boolean;
  readonly refLogp?: NumericArray | undefined;
  readonly importanceWeights?: NumericArray | undefined;
  readonly entropy?: NumericArray | undefined;
}

/** Shapes must agree; every value that enters the loss (mask 1) must be finite; masked values are never read. */
export function readInputs(inputs: PolicyLossInputs, o: PolicyLossOptions): Inputs {
  if (typeof inputs !== "object" || inputs === null)
    throw invalid("inputs", "expected an object with logp, advantages, …");
  const logp = toMatrix(inputs.logp, "inputs.logp");
  const shape = logp.shape;
  const [rows, cols] = shape;
  const sameShape = (input: MatrixInput | undefined, name: string): Matrix | undefined => {
    if (input === undefined) return undefined;
    const matrix = toMatrix(input, `inputs.${name}`);
    if (matrix.shape[0] !== rows || matrix.shape[1] !== cols) {
      throw invalid(`inputs.${name}`, `has shape [${matrix.shape.join(", ")}] but logp has [${rows}, ${cols}]`);
    }
    return matrix;
  };
  const mask = sameShape(inputs.mask, "mask") ?? { data: new Uint8Array(rows * cols).fill(1), shape };
  const oldLogp = sameShape(inputs.oldLogp, "oldLogp") ?? logp;
  const refLogp = sameShape(inputs.refLogp, "refLogp");
  const importanceWeights = sameShape(inputs.importanceWeights, "importanceWeights");
  const entropy = sameShape(inputs.entropy, "entropy");
  if (o.kl !== null && refLogp === undefined)
    throw invalid("inputs.refLogp", "options.kl is set: give the reference policy's log-probs");
  if (o.entropyCoef > 0 && entropy === undefined)
    throw invalid("inputs.entropy", "options.entropyCoef > 0: give the policy's per-token entropy");

  const perTokenAdvantages = isMatrixInput(inputs.advantages);
  const advantages = perTokenAdvantages
    ? sameShape(inputs.advantages as MatrixInput, "advantages")!.data
    : parseOrThrow(numericArraySchema, inputs.advantages, "inputs.advantages");
  if (!perTokenAdvantages && advantages.length !== rows) {
    throw invalid("inputs.advantages", `has ${advantages.length} entries, one per rollout, but logp has ${rows} rows`);
  }

  const rowTokens = countRowTokens(mask, "inputs.mask");
  const maskData = mask.data;
  // logp and oldLogp are checked as the loss reads them (see policyLoss); the optional inputs here.
  const optional: [string, Matrix | undefined][] = [
    ["refLogp", refLogp],
    ["importanceWeights", importanceWeights],
    ["entropy", entropy],
  ];
  for (const [name, matrix] of optional)
    if (matrix !== undefined) requireFiniteWhereSelected(matrix.data, maskData, cols, `inputs.${name}`);
  if (perTokenAdvantages) {
    requireFiniteWhereSelected(advantages, maskData, cols, "inputs.advantages");
  } else {
    for (let b = 0; b < rows; b++) {
      if (rowTokens[b]! > 0 && !Number.isFinite(advantages[b]))
        throw invalid(`inputs.advantages[${b}]`, `is ${advantages[b]}; advantages must be finite`);
    }
  }
  return {
    shape,
    logp: logp.data,
    oldLogp: oldLogp.data,
    mask: mask.data,
    rowTokens,
    advantages,
    perTokenAdvantages,
    ...(refLogp !== undefined ? { refLogp: refLogp.data } : {}),
    ...(importanceWeights !== undefined ? { importanceWeights: importanceWeights.data } : {}),
    ...(entropy !== undefined ? { entropy: entropy.data } : {}),
  };
}

/** The check the reference does in its hot loop, as a pass of its own for backends that compute elsewhere. */
export function requireFiniteLogps(t: Inputs): void {
  const [, cols] = t.shape;
  for (let i = 0; i < t.mask.length; i++) {
    if (t.mask[i] !== 1) continue;
    const logRatio = t.logp[i]! - t.oldLogp[i]!;
    if (logRatio - logRatio !== 0) throw nonFinite(t.logp, t.oldLogp, i, cols);
  }
}

function nonFinite(logps: NumericArray, oldLogps: NumericArray, i: number, cols: number): Error {
  const [name, value] = Number.isFinite(logps[i]) ? ["oldLogp", oldLogps[i]] : ["logp", logps[i]];
  return invalid(
    `inputs.${name}[${Math.floor(i / cols)}][${i % cols}]`,
    `is ${value} at a position the mask selects; only masked positions may hold non-finite values`,
  );
}

function requireFiniteWhereSelected(values: NumericArray, mask: NumericArray, cols: number, name: string): void {
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1 && !Number.isFinite(values[i])) {
      throw invalid(
        `${name}[${Math.floor(i / cols)}][${i % cols}]`,
        `is ${values[i]} at a position the mask selects; only masked positions may hold non-finite values`,
      );
    }
  }
}

function isMatrixInput(value: unknown): value is MatrixInput {
  if (typeof value === "object" && value !== null && "shape" in value) return true;
  return Array.isArray(value) && value.length > 0 && isArrayLike(value[0]);
}
