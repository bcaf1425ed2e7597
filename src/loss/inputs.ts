/**
 * The policy loss's inputs at the boundary: shapes must agree, every value that enters the loss (mask 1) must be
 * finite, masked values are never read. Every backend validates with these functions, so they all reject the same
 * input at the same path.
 */
import { invalid, requireKnownKeys } from "../errors.js";
import { requireFiniteWhereSelected } from "../masked-inputs.js";
import { isArrayLike, type NumericArray, readNumbers } from "../numeric.js";
import { countRowTokens, type Matrix, type MatrixInput, toMatrix } from "../tensor.js";
import type { ObjectiveBatch } from "./objective-types.js";
import type { PolicyLossOptions } from "./options.js";

/**
 * The policy loss's inputs for B rollouts padded to T tokens. Every [B, T] input is a MatrixInput (nested arrays,
 * or flat data with its shape) of logp's shape; unknown keys are errors, so a misspelt `oldLogp` never means
 * on-policy.
 */
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

/** The fields of PolicyLossInputs: any other key is an error (a misspelt `oldLogp` must not mean on-policy). */
export const POLICY_LOSS_INPUTS = [
  "logp",
  "oldLogp",
  "advantages",
  "mask",
  "refLogp",
  "importanceWeights",
  "entropy",
] as const satisfies readonly (keyof PolicyLossInputs)[];

/**
 * Validated policy-loss inputs as flat row-major arrays [B·T] (advantages [B] unless per token): what an objective's
 * `prepare` step reads (ObjectiveBatch), and the reference log-probs and entropy the KL and entropy terms read.
 */
export interface LossInputs extends ObjectiveBatch {
  readonly refLogp: NumericArray | undefined;
  readonly entropy: NumericArray | undefined;
}

/**
 * Checks shapes, the inputs the options need, and the finiteness of the optional inputs where the mask selects.
 * logp and oldLogp are checked as the loss reads them (policyLoss's loop), or by `requireFiniteLogps`.
 */
export function readLossInputs(inputs: PolicyLossInputs, options: PolicyLossOptions): LossInputs {
  if (typeof inputs !== "object" || inputs === null) {
    throw invalid("inputs", "expected an object with logp, advantages, …");
  }
  requireKnownKeys(inputs, POLICY_LOSS_INPUTS, "inputs");
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
  if (options.kl !== null && refLogp === undefined) {
    throw invalid("inputs.refLogp", "options.kl is set: give the reference policy's log-probs");
  }
  if (options.entropyCoef > 0 && entropy === undefined) {
    throw invalid("inputs.entropy", "options.entropyCoef > 0: give the policy's per-token entropy");
  }

  const rowTokens = countRowTokens(mask, "inputs.mask");
  const optional: [string, Matrix | undefined][] = [
    ["refLogp", refLogp],
    ["importanceWeights", importanceWeights],
    ["entropy", entropy],
  ];
  for (const [name, matrix] of optional) {
    if (matrix !== undefined) requireFiniteWhereSelected(matrix.data, mask.data, cols, `inputs.${name}`);
  }
  if (importanceWeights !== undefined) requireNonNegativeWeights(importanceWeights.data, mask.data, cols);
  const { advantages, perTokenAdvantages } = readAdvantages(inputs.advantages, mask.data, rowTokens, shape);
  return {
    shape,
    logp: logp.data,
    oldLogp: oldLogp.data,
    mask: mask.data,
    rowTokens,
    advantages,
    perTokenAdvantages,
    refLogp: refLogp?.data,
    importanceWeights: importanceWeights?.data,
    entropy: entropy?.data,
  };
}

/**
 * The advantages as the loss reads them: one per rollout [B], or one per token [B, T] of logp's shape; finite wherever
 * the mask selects (a row's advantage, wherever its row has a valid token).
 */
export function readAdvantages(
  input: unknown,
  mask: NumericArray,
  rowTokens: Int32Array,
  [rows, cols]: readonly [number, number],
): { advantages: NumericArray; perTokenAdvantages: boolean } {
  if (isMatrixInput(input)) {
    const matrix = toMatrix(input, "inputs.advantages");
    if (matrix.shape[0] !== rows || matrix.shape[1] !== cols) {
      throw invalid("inputs.advantages", `has shape [${matrix.shape.join(", ")}] but logp has [${rows}, ${cols}]`);
    }
    requireFiniteWhereSelected(matrix.data, mask, cols, "inputs.advantages");
    return { advantages: matrix.data, perTokenAdvantages: true };
  }
  const advantages = readNumbers(input, "inputs.advantages");
  if (advantages.length !== rows) {
    throw invalid("inputs.advantages", `has ${advantages.length} entries, one per rollout, but logp has ${rows} rows`);
  }
  for (let b = 0; b < rows; b++) {
    if (rowTokens[b]! > 0 && !Number.isFinite(advantages[b])) {
      throw invalid(`inputs.advantages[${b}]`, `is ${advantages[b]}; advantages must be finite`);
    }
  }
  return { advantages, perTokenAdvantages: false };
}

/** The check policyLoss makes in its loop, as a pass of its own for backends that compute elsewhere. */
export function requireFiniteLogps(inputs: LossInputs): void {
  const [, cols] = inputs.shape;
  for (let i = 0; i < inputs.mask.length; i++) {
    if (inputs.mask[i] !== 1) continue;
    const logRatio = inputs.logp[i]! - inputs.oldLogp[i]!;
    if (logRatio - logRatio !== 0) throw nonFiniteLogp(inputs.logp, inputs.oldLogp, i, cols);
  }
}

/** The error for position i, where logp or oldLogp is not finite. */
export function nonFiniteLogp(logps: NumericArray, oldLogps: NumericArray, i: number, cols: number): Error {
  const [name, value] = Number.isFinite(logps[i]) ? ["oldLogp", oldLogps[i]] : ["logp", logps[i]];
  return invalid(
    `inputs.${name}[${Math.floor(i / cols)}][${i % cols}]`,
    `is ${value} at a position the mask selects; only masked positions may hold non-finite values`,
  );
}

/** An importance weight scales a token's policy term: a negative one would flip its gradient. */
function requireNonNegativeWeights(weights: NumericArray, mask: NumericArray, cols: number): void {
  for (let i = 0; i < weights.length; i++) {
    if (mask[i] === 1 && weights[i]! < 0) {
      throw invalid(
        `inputs.importanceWeights[${Math.floor(i / cols)}][${i % cols}]`,
        `is ${weights[i]}; importance weights must be ≥ 0 (a negative one would flip the token's gradient)`,
      );
    }
  }
}

function isMatrixInput(value: unknown): value is MatrixInput {
  if (typeof value === "object" && value !== null && "shape" in value) return true;
  return Array.isArray(value) && value.length > 0 && isArrayLike(value[0]);
}
