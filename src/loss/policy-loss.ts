/**
 * The policy loss of docs/spec.md §4 and its gradient with respect to logp:
 *
 *   loss = Σ_b w_b · Σ_t mask·(ℓ_bt · iw_bt)  +  β · Σ_b w_b · Σ_t mask·KL_bt  −  c · Σ_b w'_b · Σ_t mask·H_bt
 *
 * with ℓ the per-token objective (objectives.ts), iw the importance weights, w and w' the aggregation's row weights
 * (aggregation.ts), the KL estimators of kl.ts and the entropy bonus. Each term is one pass over the tokens.
 */
import { GrpoRocError, invalid, parseOrThrow, requireKnownKeys } from "../errors.js";
import type { NumericArray } from "../numeric.js";
import { rowWeights } from "./aggregation.js";
import { type LossInputs, nonFiniteLogp, type PolicyLossInputs, readLossInputs, requireFiniteLogps } from "./inputs.js";
import { klEstimator, klTimesRatio } from "./kl.js";
import { lossMetrics, type PolicyLossMetrics } from "./metrics.js";
import { objectiveKernel, type PreparedBatch, type TokenKernel, type TokenLoss } from "./objectives.js";
import {
  type KlOptions,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  policyLossOptionsSchema,
} from "./options.js";

/** The policy loss, its gradient with respect to logp, and what to log. */
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
  /** [B, T] of the per-token arrays above. */
  readonly shape: readonly [number, number];
  /** Clip fractions, ratio range, approximate KL and the rest, as verl and TRL log them. */
  readonly metrics: PolicyLossMetrics;
}

/**
 * Caller-owned output buffers, each a Float64Array of B·T entries. Each one given is overwritten completely (0 where
 * the mask is 0) and returned as the result's array, so a training loop that passes the same buffers every step
 * writes into warm memory instead of fresh pages. A buffer for an output the options do not produce is left alone.
 */
export interface PolicyLossBuffers {
  /** Receives the result's `grad`. */
  readonly grad?: Float64Array | undefined;
  /** Receives the result's `perTokenLoss`. */
  readonly perTokenLoss?: Float64Array | undefined;
  /** Receives the result's `perTokenKl`, when options.kl is set. */
  readonly perTokenKl?: Float64Array | undefined;
  /** Receives the result's `gradEntropy`, when options.entropyCoef > 0. */
  readonly gradEntropy?: Float64Array | undefined;
}

/**
 * The policy loss's options with every default filled in, as `policyLoss` reads them (to log the configuration a
 * run used).
 *
 * @throws ValidationError at `options.<field>` for an unknown key, a value out of range, or options that conflict.
 */
export function resolvePolicyLossOptions(options: PolicyLossOptionsInput = {}): PolicyLossOptions {
  return parseOrThrow(policyLossOptionsSchema, options, "options");
}

/**
 * A policy-loss call's options and inputs, checked as policyLoss checks them (its loop's finiteness check
 * included), for a backend that computes elsewhere.
 */
export function readPolicyLossCall(
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput = {},
): { readonly options: PolicyLossOptions; readonly inputs: LossInputs } {
  const resolved = resolvePolicyLossOptions(options);
  const read = readLossInputs(inputs, resolved);
  requireFiniteLogps(read);
  return { options: resolved, inputs: read };
}

/**
 * The clipped policy loss and its gradient with respect to logp (docs/spec.md §4): per-token objective, optional KL
 * to a reference and entropy bonus, aggregated so that micro-batches given the whole batch's `normalizer` sum to the
 * whole batch's loss and gradient.
 *
 * @param inputs - logp, advantages and the optional [B, T] inputs (see PolicyLossInputs).
 * @param options - Default: the paper's GRPO-RoC loss; see `lossPresets` for verl's and TRL's.
 * @param into - Buffers of yours to write the per-token outputs into, instead of fresh arrays.
 * @throws ValidationError naming the input, position and rule (`inputs.logp[2][5]: is NaN at a position the mask
 *   selects…`), or the option.
 */
export function policyLoss(
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput = {},
  into: PolicyLossBuffers = {},
): PolicyLossResult {
  const o = resolvePolicyLossOptions(options);
  const { kernel, prepare } = objectiveKernel(o);
  const t = readLossInputs(inputs, o);
  const weights = rowWeights(t.rowTokens, t.shape[1], o.aggregation, o.normalizer);
  const outputs = outputBuffers(into, t, o);
  const ratios = ratioRule(t, o);
  const prepared = prepare === undefined ? undefined : prepareBatch(t, prepare, o.objective);
  const policy = addPolicyTerm(t, ratios, kernel, weights, outputs, prepared);
  const kl = o.kl === null ? NO_TERM : addKlTerm(t, ratios, o.kl, weights, outputs);
  const entropy = addEntropyTerm(t, o, outputs);
  const metrics = lossMetrics(
    { ...validCounts(t), ...policy, klSum: kl.sum, entropySum: entropy.sum },
    o.kl !== null,
    t.entropy !== undefined,
    prepared?.meanAbsLogRatio,
    prepared?.phiMean,
  );
  const { grad, perTokenLoss, perTokenKl, gradEntropy } = outputs;
  return {
    loss: policy.loss + kl.loss + entropy.loss,
    grad,
    gradEntropy,
    perTokenLoss,
    perTokenKl,
    shape: t.shape,
    metrics,
  };
}

interface Outputs {
  readonly grad: Float64Array;
  readonly perTokenLoss: Float64Array;
  readonly perTokenKl: Float64Array | undefined;
  readonly gradEntropy: Float64Array | undefined;
}

/** The arrays the loss writes: the caller's buffers, cleared and checked, or fresh zeroed ones. */
function outputBuffers(into: PolicyLossBuffers, t: LossInputs, o: PolicyLossOptions): Outputs {
  if (typeof into !== "object" || into === null) {
    throw invalid("into", "expected an object of Float64Array buffers ({ grad, perTokenLoss, … })");
  }
  requireKnownKeys(into, ["grad", "perTokenLoss", "perTokenKl", "gradEntropy"], "into");
  const size = t.shape[0] * t.shape[1];
  const taken: [string, ArrayBufferView][] = [];
  for (const [name, input] of Object.entries(t)) if (ArrayBuffer.isView(input)) taken.push([`inputs.${name}`, input]);
  const buffer = (name: keyof PolicyLossBuffers): Float64Array => {
    const given = into[name];
    if (given === undefined) return new Float64Array(size);
    if (!(given instanceof Float64Array)) throw invalid(`into.${name}`, "expected a Float64Array");
    if (given.length !== size) {
      throw invalid(`into.${name}`, `has ${given.length} entries but the loss needs ${size} (B·T)`);
    }
    const clash = taken.find(([, other]) => overlaps(given, other));
    if (clash !== undefined) {
      throw invalid(`into.${name}`, `shares memory with ${clash[0]}; every output needs a buffer of its own`);
    }
    taken.push([`into.${name}`, given]);
    return given.fill(0);
  };
  return {
    grad: buffer("grad"),
    perTokenLoss: buffer("perTokenLoss"),
    perTokenKl: o.kl !== null ? buffer("perTokenKl") : undefined,
    gradEntropy: o.entropyCoef > 0 ? buffer("gradEntropy") : undefined,
  };
}

function overlaps(a: ArrayBufferView, b: ArrayBufferView): boolean {
  const aEnd = a.byteOffset + a.byteLength;
  return a.buffer === b.buffer && a.byteOffset < b.byteOffset + b.byteLength && b.byteOffset < aEnd;
}

/**
 * An objective's batch step (KL-Cov's choice of tokens, GMPO's row losses), on inputs whose log-probs are checked
 * finite first, as the token pass would check them; its result is checked to fit the call.
 */
function prepareBatch(t: LossInputs, prepare: (batch: LossInputs) => PreparedBatch, objective: string): PreparedBatch {
  requireFiniteLogps(t);
  const prepared = prepare(t);
  const size = t.shape[0] * t.shape[1];
  const weights = prepared.importanceWeights;
  const slopes = prepared.logRatioGradients;
  if (slopes !== undefined && (!(slopes instanceof Float64Array) || slopes.length !== size)) {
    throw new GrpoRocError(
      `policy objective "${objective}": prepare's logRatioGradients must be a Float64Array of B·T = ${size}`,
    );
  }
  if (!(prepared.values instanceof Float64Array) || prepared.values.length !== size) {
    throw new GrpoRocError(
      `policy objective "${objective}": prepare must give values as a Float64Array of B·T = ${size}`,
    );
  }
  if (weights !== undefined && weights.length !== size) {
    throw new GrpoRocError(
      `policy objective "${objective}": prepare's importanceWeights must have B·T = ${size} entries`,
    );
  }
  return prepared;
}

/** Which log-ratio a token's ratio is made of, and the clamp on it. */
interface RatioRule {
  /** The mean log-ratio of each row for sequence-level ratios (GSPO); undefined for token ratios. */
  readonly rowLogRatios: Float64Array | undefined;
  /** "sequence": the gradient reaches every token of the row through ρ_b (GSPO as TRL differentiates it). */
  readonly throughRow: boolean;
  readonly clampLow: number;
  readonly clampHigh: number;
}

function ratioRule(t: LossInputs, o: PolicyLossOptions): RatioRule {
  return {
    rowLogRatios: o.ratioLevel === "token" ? undefined : meanRowLogRatios(t),
    throughRow: o.ratioLevel === "sequence",
    // The options' clamp is a frozen array, whose entries V8 hands out boxed; a boxed bound in the clamp's select
    // made it box every token's log-ratio too (an allocation per token). One subtraction unboxes them for good.
    clampLow: o.logRatioClamp === null ? -Infinity : o.logRatioClamp[0] - 0,
    clampHigh: o.logRatioClamp === null ? Infinity : o.logRatioClamp[1] - 0,
  };
}

/** log ρ_b = the mean over the row's valid tokens of logp − oldLogp; a non-finite one is reported at its token. */
function meanRowLogRatios(t: LossInputs): Float64Array {
  const [rows, cols] = t.shape;
  const out = new Float64Array(rows);
  const { logp, oldLogp, mask, rowTokens } = t;
  for (let b = 0; b < rows; b++) {
    let sum = 0;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      const logRatio = logp[i]! - oldLogp[i]!;
      if (logRatio - logRatio !== 0) throw nonFiniteLogp(logp, oldLogp, i, cols);
      sum += logRatio;
    }
    out[b] = sum / rowTokens[b]!;
  }
  return out;
}

/** The policy term's sums for the metrics, and its share of the loss. */
interface PolicySums {
  readonly loss: number;
  readonly clipped: number;
  readonly low: number;
  readonly high: number;
  readonly dual: number;
  readonly approxKl: number;
  readonly ratioMin: number;
  readonly ratioSum: number;
  readonly ratioMax: number;
}

/**
 * Σ_b w_b Σ_t ℓ(ρ_bt, A)·iw_bt into perTokenLoss and grad: the hot loop, in a function of its own so that its
 * optimised code does not depend on the caller's. It reads plain locals: property loads per token would cost as
 * much as the arithmetic.
 */
function addPolicyTerm(
  t: LossInputs,
  ratios: RatioRule,
  kernel: TokenKernel,
  weights: Float64Array,
  { grad, perTokenLoss }: Outputs,
  prepared: PreparedBatch | undefined,
): PolicySums {
  const [rows, cols] = t.shape;
  const { logp: logps, oldLogp: oldLogps, mask, advantages, perTokenAdvantages } = t;
  const importanceWeights = prepared?.importanceWeights ?? t.importanceWeights;
  const preparedValues = prepared?.values;
  const preparedSlopes = prepared?.logRatioGradients;
  const { rowLogRatios, throughRow, clampLow, clampHigh } = ratios;
  const sequenceLevel = rowLogRatios !== undefined;
  let loss = 0;
  let clipped = 0;
  let low = 0;
  let high = 0;
  let dual = 0;
  let approxKl = 0;
  let ratioMin = Infinity;
  let ratioSum = 0;
  let ratioMax = -Infinity;
  for (let b = 0; b < rows; b++) {
    const count = t.rowTokens[b]!;
    if (count === 0) continue;
    const w = weights[b]!;
    const rowStart = b * cols;
    const rowEnd = rowStart + cols;
    const sequenceLogRatio = sequenceLevel ? rowLogRatios[b]! : 0;
    // ∂loss/∂log ρ_b summed over the row, for gradients that reach every token of the row through ρ_b.
    let rowLogRatioGrad = 0;
    for (let i = rowStart; i < rowEnd; i++) {
      if (mask[i] !== 1) continue;
      const logp = logps[i]!;
      const oldLogp = oldLogps[i]!;
      const tokenLogRatio = logp - oldLogp;
      // x − x is 0 for every finite x and NaN otherwise: one test covers both inputs.
      if (tokenLogRatio - tokenLogRatio !== 0) throw nonFiniteLogp(logps, oldLogps, i, cols);
      const rawLogRatio = sequenceLevel ? sequenceLogRatio : tokenLogRatio;
      const inside = rawLogRatio >= clampLow && rawLogRatio <= clampHigh;
      const logRatio = inside ? rawLogRatio : rawLogRatio < clampLow ? clampLow : clampHigh;
      const ratio = Math.exp(logRatio);
      const advantage = advantages[perTokenAdvantages ? i : b]!;
      const out = kernel({
        logp,
        oldLogp,
        logRatio,
        ratio,
        advantage,
        prepared: preparedValues === undefined ? 0 : preparedValues[i]!,
      });
      const importance = importanceWeights === undefined ? 1 : importanceWeights[i]!;
      let tokenLoss = out.loss * importance;
      const dLogRatio = preparedSlopes === undefined ? out.dLogRatio : preparedSlopes[i]!;
      let viaRatio = inside ? w * importance * dLogRatio : 0;
      let viaLogp = w * importance * out.dLogp;
      const terms = tokenLoss + viaRatio + viaLogp;
      if (terms - terms !== 0) {
        // A zero advantage or weight contributes exactly 0, also where the ratio overflowed (0·∞ gave NaN).
        if (advantage !== 0 && importance !== 0) throw policyTermOverflow(t, i, logRatio, out, ratios);
        tokenLoss = 0;
        viaRatio = 0;
        viaLogp = 0;
      }
      perTokenLoss[i] = tokenLoss;
      loss += w * tokenLoss;
      if (throughRow) rowLogRatioGrad += viaRatio;
      grad[i] = (throughRow ? 0 : viaRatio) + viaLogp;

      if (out.clipped) clipped++;
      if (out.lowClipped) low++;
      if (out.highClipped) high++;
      if (out.dualClipped) dual++;
      approxKl -= sequenceLevel ? tokenLogRatio : logRatio;
      if (ratio < ratioMin) ratioMin = ratio;
      if (ratio > ratioMax) ratioMax = ratio;
      ratioSum += ratio;
    }
    if (rowLogRatioGrad !== 0) spreadOverRow(grad, mask, rowStart, rowEnd, rowLogRatioGrad / count);
  }
  return { loss, clipped, low, high, dual, approxKl, ratioMin, ratioSum, ratioMax };
}

/**
 * The error for token i whose policy term is not finite: its ratio overflowed float64 (a log-ratio above ~709
 * without a clamp), or an objective returned NaN or ±Infinity.
 */
function policyTermOverflow(t: LossInputs, i: number, logRatio: number, out: TokenLoss, ratios: RatioRule): Error {
  const cols = t.shape[1];
  const where = `[${Math.floor(i / cols)}][${i % cols}]`;
  const values = `loss ${out.loss}, ∂/∂log-ratio ${out.dLogRatio}, ∂/∂logp ${out.dLogp}`;
  if (logRatio > 1 && ratios.clampHigh === Infinity) {
    return invalid(
      `inputs.logp${where}`,
      `its log-ratio ${logRatio} makes the policy term overflow float64 (${values}); ` +
        "clamp it with options.logRatioClamp (verl uses [-20, 20])",
    );
  }
  return invalid(`inputs.logp${where}`, `the objective gives a non-finite policy term here (${values})`);
}

/** log ρ_b is the mean of the row's log-ratios: each valid token gets 1/count of ∂loss/∂log ρ_b. */
function spreadOverRow(grad: Float64Array, mask: NumericArray, rowStart: number, rowEnd: number, share: number): void {
  for (let i = rowStart; i < rowEnd; i++) if (mask[i] === 1) grad[i] = grad[i]! + share;
}

/** A term's share of the loss, and the sum of its per-token values for its metric. */
interface TermSums {
  readonly loss: number;
  readonly sum: number;
}

const NO_TERM: TermSums = { loss: 0, sum: 0 };

/**
 * β · Σ_b w_b Σ_t KL_bt into perTokenKl, added to grad. TRL's importance-corrected KL multiplies it by the ratio
 * without detaching it, so the ratio's own gradient comes along (through ρ_b at sequence level).
 */
function addKlTerm(t: LossInputs, ratios: RatioRule, kl: KlOptions, weights: Float64Array, outputs: Outputs): TermSums {
  const [rows, cols] = t.shape;
  const { grad } = outputs;
  const perTokenKl = outputs.perTokenKl!;
  const { logp: logps, oldLogp: oldLogps, mask, rowTokens } = t;
  const refLogps = t.refLogp!;
  const { rowLogRatios, clampLow, clampHigh } = ratios;
  const { coef, importanceCorrected } = kl;
  const estimate = klEstimator(kl.kind, kl.clamp);
  const estimateTimesRatio = klTimesRatio(kl.kind, kl.clamp);
  let loss = 0;
  let sum = 0;
  for (let b = 0; b < rows; b++) {
    const count = rowTokens[b]!;
    if (count === 0) continue;
    const scale = weights[b]! * coef;
    const rowStart = b * cols;
    const rowEnd = rowStart + cols;
    let rowLogRatioGrad = 0;
    for (let i = rowStart; i < rowEnd; i++) {
      if (mask[i] !== 1) continue;
      const logp = logps[i]!;
      let value: number;
      let slope: number;
      if (importanceCorrected) {
        const rawLogRatio = rowLogRatios === undefined ? logp - oldLogps[i]! : rowLogRatios[b]!;
        const inside = rawLogRatio >= clampLow && rawLogRatio <= clampHigh;
        const logRatio = inside ? rawLogRatio : rawLogRatio < clampLow ? clampLow : clampHigh;
        ({ value, dLogp: slope } = estimateTimesRatio(logp, refLogps[i]!, logRatio));
        // The ratio's own gradient: through ρ_b to the row at sequence level, else to the token.
        if (rowLogRatios !== undefined) {
          if (inside) rowLogRatioGrad += scale * value;
        } else if (inside) {
          slope += value;
        }
      } else {
        ({ value, dLogp: slope } = estimate(logp, refLogps[i]!));
      }
      const terms = value + slope;
      if (terms - terms !== 0) throw klOverflow(t, i, kl, value, slope);
      perTokenKl[i] = value;
      loss += scale * value;
      grad[i] = grad[i]! + scale * slope;
      sum += value;
    }
    if (rowLogRatioGrad !== 0) spreadOverRow(grad, mask, rowStart, rowEnd, rowLogRatioGrad / count);
  }
  return { loss, sum };
}

/** The error for token i whose KL term overflows float64 (k2 or unclamped k3 of a log-prob difference far from 0). */
function klOverflow(t: LossInputs, i: number, kl: KlOptions, value: number, slope: number): Error {
  const cols = t.shape[1];
  const difference = t.logp[i]! - t.refLogp![i]!;
  const fix =
    (kl.kind === "k3" || kl.kind === "k3+") && !kl.clamp ? "; verl's clamps (options.kl.clamp: true) bound it" : "";
  return invalid(
    `inputs.refLogp[${Math.floor(i / cols)}][${i % cols}]`,
    `the ${kl.kind} KL estimate of logp − refLogp = ${difference} overflows float64 (value ${value}, slope ` +
      `${slope})${fix}`,
  );
}

/** −c · Σ_b w'_b Σ_t H_bt with its gradient into gradEntropy; the entropy's mean is a metric whenever it is given. */
function addEntropyTerm(t: LossInputs, o: PolicyLossOptions, { gradEntropy }: Outputs): TermSums {
  const entropy = t.entropy;
  if (entropy === undefined) return NO_TERM;
  const [rows, cols] = t.shape;
  const mask = t.mask;
  const bonusWeights =
    gradEntropy === undefined
      ? undefined
      : rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer);
  let loss = 0;
  let sum = 0;
  for (let b = 0; b < rows; b++) {
    const bonus = bonusWeights === undefined ? 0 : bonusWeights[b]! * o.entropyCoef;
    for (let i = b * cols; i < (b + 1) * cols; i++) {
      if (mask[i] !== 1) continue;
      sum += entropy[i]!;
      if (gradEntropy === undefined) continue;
      loss -= bonus * entropy[i]!;
      gradEntropy[i] = -bonus;
    }
  }
  return { loss, sum };
}

/** Valid tokens and non-empty rows. */
export function validCounts(t: LossInputs): { tokens: number; sequences: number } {
  let tokens = 0;
  let sequences = 0;
  for (const count of t.rowTokens) {
    tokens += count;
    if (count > 0) sequences++;
  }
  return { tokens, sequences };
}
