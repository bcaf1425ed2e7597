import { invalid } from "../errors.js";
import { finiteFloat64, type NumericArray } from "../numeric.js";
import { assertBinaryMask, toMatrix, type Matrix, type MatrixInput } from "../tensor.js";

/** Gives every response token of rollout b the advantage of b: out[b, t] = advantages[b] · mask[b, t]. */
export function broadcastToTokens(advantages: NumericArray, mask: MatrixInput): Matrix<Float64Array> {
  const values = finiteFloat64(advantages, "advantages");
  const m = toMatrix(mask, "mask");
  assertBinaryMask(m, "mask");
  const [rows, cols] = m.shape;
  if (rows !== values.length) throw invalid("mask", `has ${rows} rows but there are ${values.length} advantages`);
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[r * cols + c] = values[r]! * m.data[r * cols + c]!;
  }
  return { data: out, shape: [rows, cols] };
}
