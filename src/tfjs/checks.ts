/**
 * Validation for the tfjs API, so that it fails exactly as the typed-array kernels do:
 * - the values of tensors (token ids, masks, log-probs) checked by the core's own validators on a host copy — at
 *   once where tfjs can read them synchronously (cpu, wasm, or values still on the CPU), and at the next read of
 *   any tensor where they live on a WebGPU device only (a synchronous op cannot wait for the device; setup.ts's
 *   read runs the check and throws its error instead of returning values the bad input made meaningless; until
 *   then the check holds its tensors, a few small ones per call, which releaseWebGpu() also frees).
 * Typed-array inputs beyond float32 are refused by the contract's float32 checks, shared with the WebGPU backend.
 */
import * as tf from "@tensorflow/tfjs";
import * as z from "zod/mini";
import { invalid } from "../backends/contract.js";
import { activeBackendIsWatched, deferCheck } from "./device-errors.js";

/** A check of host copies of some tensors' values; it throws the ValidationError of the first thing wrong. */
export type ValuesCheck = (values: readonly ArrayLike<number>[]) => void;

/**
 * Runs `check` on the values of `tensors`: now when they can be read synchronously, else (a watched WebGPU device,
 * values on the device only) at the next read. Returns which, so that an op whose inputs are not checked yet can
 * make them safe to index with.
 */
export function checkValues(tensors: readonly tf.Tensor[], check: ValuesCheck): "checked" | "deferred" {
  const host = tensors.map(hostValues);
  if (host.every((values) => values !== undefined)) {
    check(host as ArrayLike<number>[]);
    return "checked";
  }
  if (activeBackendIsWatched()) {
    deferCheck(tensors, check);
    return "deferred";
  }
  // A WebGPU backend that setup.ts does not watch (made active by tf.setBackend): read synchronously, as tfjs can
  // in a browser.
  check(tensors.map((t) => t.dataSync() as ArrayLike<number>));
  return "checked";
}

/**
 * A tensor's values when tfjs can give them without waiting for a device: the CPU copy tfjs keeps on webgpu (read
 * from its table, not with dataSync, whose device-error check is not this one's to make), or dataSync on the CPU
 * backends. Undefined for values on a WebGPU device only.
 */
function hostValues(tensor: tf.Tensor): ArrayLike<number> | undefined {
  if (tf.getBackend() !== "webgpu") return tensor.dataSync() as ArrayLike<number>;
  const backend = tf.backend() as unknown as { tensorMap?: { get?(dataId: object): { values?: unknown } | undefined } };
  const values = backend.tensorMap?.get?.(tensor.dataId)?.values;
  return ArrayBuffer.isView(values) ? (values as unknown as ArrayLike<number>) : undefined;
}

/**
 * A small on-device summary for a check whose full values would be too much to read back every call: the index of
 * the first position where `bad` is true (int32 scalar; the number of positions when there is none), and `values`
 * at that position (float32 [k]). Call inside a tfjs scope.
 */
export function firstFlagged(bad: tf.Tensor, values: readonly tf.Tensor[]): [tf.Scalar, tf.Tensor1D] {
  const flags = tf.reshape(bad, [-1]);
  const n = flags.shape[0]!;
  // The smallest flagged index, not argMax: which of tied maxima a device's reduction returns is not specified.
  const index = tf.min(tf.where(flags, tf.range(0, n, 1, "int32"), tf.fill([n], n, "int32"))) as tf.Scalar;
  const at = tf.minimum(index, tf.scalar(n - 1, "int32"));
  const picked = values.map((v) => tf.reshape(tf.gather(tf.cast(tf.reshape(v, [-1]), "float32"), at), [1]));
  return [index, (picked.length === 0 ? tf.zeros([0]) : tf.concat(picked)) as tf.Tensor1D];
}

/** The error for a token id outside [0, V), at its position (the reference's `readTokens` message). */
export function badTokenId(i: number, cols: number, id: number, vocab: number) {
  return invalid(`tokens[${Math.floor(i / cols)}][${i % cols}]`, `token id ${id} is not an integer in [0, ${vocab})`);
}

/** Throws badTokenId for the first id that is not an integer in [0, vocab). */
export function requireTokenIds(ids: ArrayLike<number>, cols: number, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw badTokenId(i, cols, id, vocab);
  }
}

/** A tfjs tensor, for the zod schemas of the tensor API's input objects. */
export const tensorSchema = z.custom<tf.Tensor>((value) => value instanceof tf.Tensor, {
  message: "expected a tf.Tensor",
});
