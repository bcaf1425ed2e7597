import * as tf from "@tensorflow/tfjs";
import { invalid } from "../backends/contract.js";

/** The largest storage buffer the active tfjs backend can bind (WebGPU reports it; the CPU backends have none). */
export function maxBindingBytes(): number {
  const backend = tf.backend() as unknown as { device?: { limits?: { maxStorageBufferBindingSize?: number } } };
  return backend.device?.limits?.maxStorageBufferBindingSize ?? Infinity;
}

/** Throws a clear error when a tensor is larger than one binding of the active device may be. */
export function requireBindable(tensor: tf.Tensor, name: string): void {
  const limit = maxBindingBytes();
  const bytes = tensor.size * 4;
  if (bytes > limit) {
    throw invalid(
      name,
      `is ${(bytes / 2 ** 20).toFixed(1)} MiB, over the ${(limit / 2 ** 20).toFixed(0)} MiB one buffer may bind on ` +
        `the ` +
        `"${tf.getBackend()}" backend: split the batch into micro-batches (with a global normalizer), or use the ` +
        `typed-array kernels, which chunk`,
    );
  }
}
