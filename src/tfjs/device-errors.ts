/**
 * The errors of TensorFlow.js's WebGPU device not yet turned into an exception: those the device reported on its
 * own (uncaptured-error events, loss), and those the error scopes of grpo-roc's own kernels on that device caught
 * (./wgsl.ts), which arrive later, when the scopes' promises settle. setup.ts throws them all together as one
 * WebGpuDeviceError at the next read of a tensor (tensor.data(), dataSync) or assertNoDeviceErrors().
 *
 * Also the checks of input values that live on that device only (./checks.ts): a synchronous tfjs op cannot wait
 * for them, so they are made at the next asynchronous read, and their ValidationError is thrown there.
 */
import * as tf from "@tensorflow/tfjs";
import { messageOf, WebGpuDeviceError } from "../webgpu/errors.js";

const pending: string[] = [];
const inFlight = new Set<Promise<void>>();

/** Records errors the device reported. */
export function recordDeviceErrors(errors: readonly string[]): void {
  pending.push(...errors);
}

/** Records the errors `check` rejects with (a WebGpuDeviceError's list, or its message) when it settles. */
export function trackDeviceCheck(check: Promise<void>): void {
  const tracked: Promise<void> = check
    .catch((error: unknown) => {
      if (error instanceof WebGpuDeviceError) pending.push(...error.errors);
      else pending.push(messageOf(error));
    })
    .finally(() => inFlight.delete(tracked));
  inFlight.add(tracked);
}

/** Waits until every tracked check has settled (and recorded its errors). */
export async function settleDeviceChecks(): Promise<void> {
  while (inFlight.size > 0) await Promise.all([...inFlight]);
}

export function hasPendingDeviceErrors(): boolean {
  return pending.length > 0;
}

/** Throws every recorded error as one WebGpuDeviceError, and forgets them. */
export function raisePendingDeviceErrors(): void {
  if (pending.length === 0) return;
  throw new WebGpuDeviceError(pending.splice(0));
}

/** Forgets every recorded error (a new device). Checks still in flight record theirs when they settle. */
export function clearDeviceErrors(): void {
  pending.length = 0;
}

// -------------------------------------------------------------------------------------------------------------

/** Reads a tensor's values from the device, without the checks of setup.ts's read (which would wait for itself). */
export type RawRead = (dataId: object) => Promise<unknown>;

interface DeferredCheck {
  /** Clones (sharing the data) that this module owns, so that the caller may dispose its tensors meanwhile. */
  readonly tensors: readonly tf.Tensor[];
  readonly check: (values: readonly ArrayLike<number>[]) => void;
}

const deferred: DeferredCheck[] = [];

/** The backend objects whose reads run the deferred checks (setup.ts wraps them). */
const watched = new WeakSet<object>();

export function markWatched(backend: object): void {
  watched.add(backend);
}

/** Whether the active tfjs backend runs deferred checks at its next read. */
export function activeBackendIsWatched(): boolean {
  return watched.has(tf.backend());
}

/** Runs `check` on the values of `tensors` at the next read (`runDeferredChecks`); it throws what is wrong. */
export function deferCheck(tensors: readonly tf.Tensor[], check: DeferredCheck["check"]): void {
  deferred.push({ tensors: tensors.map((t) => tf.keep(t.clone())), check });
}

/**
 * Runs every deferred check, reading the values with `read`, and throws the first check's error. Every check is
 * taken off the list (and its tensors freed) whether it ran or not: an error is reported once.
 */
export async function runDeferredChecks(read: RawRead): Promise<void> {
  const due = deferred.splice(0);
  let failure: unknown;
  for (const { tensors, check } of due) {
    try {
      if (failure === undefined) check((await Promise.all(tensors.map((t) => read(t.dataId)))) as ArrayLike<number>[]);
    } catch (error) {
      failure = error;
    } finally {
      tf.dispose([...tensors]);
    }
  }
  if (failure !== undefined) throw failure;
}

/** Forgets the deferred checks (their device is going away). */
export function clearDeferredChecks(): void {
  for (const { tensors } of deferred.splice(0)) tf.dispose([...tensors]);
}

/** How many deferred checks wait for the next read (for tests). */
export function deferredCheckCount(): number {
  return deferred.length;
}
