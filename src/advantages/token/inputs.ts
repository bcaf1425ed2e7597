/**
 * The token-level estimators' inputs at the boundary and their results: every [B, T] input has tokenRewards' shape,
 * the mask is 0/1, every value the mask selects is finite, and values at mask 0 are never read (verl's golden inputs
 * hold finite garbage there; a caller's may hold NaN). Every output is checked before it is returned.
 */
import { invalid } from "../../errors.js";
import { readMatrices } from "../../masked-inputs.js";
import type { NumericArray } from "../../numeric.js";
import { type Matrix, type MatrixInput, matrixOf } from "../../tensor.js";

/** What every token-level estimator returns: two [B, T] matrices, 0 wherever the mask is 0. */
export interface TokenAdvantages {
  /** The advantage of each response token, [B, T]; 0 at mask-0 positions. */
  readonly advantages: Matrix<Float64Array>;
  /** The return (reward-to-go) the estimator computed for each response token, [B, T]; 0 at mask-0 positions. */
  readonly returns: Matrix<Float64Array>;
}

/** The [B, T] fields every token-level estimator reads: the rewards and the response mask. */
export interface TokenRewardInputs {
  /**
   * The reward of each response token, [B, T] (verl `token_level_rewards`): an outcome reward sits at the last
   * response token; process rewards anywhere. Values at mask-0 positions are never read.
   */
  readonly tokenRewards: MatrixInput;
  /** 1 for tokens the model wrote, 0 for padding and tool output, [B, T] (verl `response_mask`). */
  readonly mask: MatrixInput;
}

/** Validated inputs: flat row-major [B·T] arrays of tokenRewards' shape. */
export interface ReadTokenInputs {
  readonly rows: number;
  readonly cols: number;
  readonly tokenRewards: NumericArray;
  readonly mask: NumericArray;
  /** Valid (mask 1) tokens of each row. */
  readonly rowTokens: Int32Array;
  /** The other [B, T] fields that were asked for, by name (undefined when optional and absent). */
  readonly matrices: Readonly<Record<string, NumericArray | undefined>>;
}

/**
 * Reads `inputs`: an object whose keys are `known` (any other key is an error suggesting the closest), with
 * tokenRewards, mask and the `matrices` named (required unless listed in `optional`) all of tokenRewards' shape and
 * finite where the mask selects. Per-row fields (groupIds, rewardBaselines) are the caller's to read.
 */
export function readTokenInputs(
  inputs: unknown,
  known: readonly string[],
  matrices: readonly string[] = [],
  optional: readonly string[] = [],
): ReadTokenInputs {
  const required = ["tokenRewards", ...matrices.filter((name) => !optional.includes(name))];
  const read = readMatrices(inputs, required, { optional, maskRequired: true, otherKeys: known });
  const [rows, cols] = read.shape;
  const { values, mask, rowTokens } = read;
  return { rows, cols, tokenRewards: values.tokenRewards!, mask, rowTokens, matrices: values };
}

/**
 * Refuses a result that is not finite where the mask selects: finite inputs can still overflow float64 on the way
 * (rewards or values near ±1.8e308 summed along a row). Names the row of `blame` and the column where it happened.
 */
export function requireFiniteResult(
  values: Float64Array,
  mask: NumericArray,
  cols: number,
  what: string,
  blame: string,
): void {
  for (let i = 0; i < values.length; i++) {
    if (mask[i] === 1 && !Number.isFinite(values[i])) {
      const row = Math.floor(i / cols);
      throw invalid(
        `${blame}[${row}]`,
        `row ${row}'s ${what} at column ${i % cols} is ${values[i]}: it overflows float64; ` +
          "inputs this large (near ±1.8e308) cannot be summed along a row",
      );
    }
  }
}

/**
 * The reward-to-go of every valid token, G_t = Σ_{k ≥ t} r_k · mask_k, 0 at mask-0 positions: verl's
 * `(token_level_rewards * response_mask).flip(-1).cumsum(-1).flip(-1)`, a sequential sum from the end in which a
 * masked term adds 0 (ReMax, the optimal token baselines). Refused where it overflows float64.
 */
export function rewardToGo({ rows, cols, tokenRewards, mask }: ReadTokenInputs): Float64Array {
  const returns = new Float64Array(rows * cols);
  for (let b = 0; b < rows; b++) {
    let sum = 0;
    for (let t = cols - 1; t >= 0; t--) {
      const i = b * cols + t;
      if (mask[i] !== 1) continue;
      sum += tokenRewards[i]!;
      returns[i] = sum;
    }
  }
  requireFiniteResult(returns, mask, cols, "reward-to-go", "inputs.tokenRewards");
  return returns;
}

/** An estimator's result: its [B, T] advantages and returns, of the inputs' shape. */
export function tokenAdvantagesOf(
  advantages: Float64Array,
  returns: Float64Array,
  { rows, cols }: Pick<ReadTokenInputs, "rows" | "cols">,
): TokenAdvantages {
  return { advantages: matrixOf(advantages, [rows, cols]), returns: matrixOf(returns, [rows, cols]) };
}
