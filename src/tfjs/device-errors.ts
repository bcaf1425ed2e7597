/**
 * The errors of TensorFlow.js's WebGPU device not yet turned into an exception: those the device reported on its
 * own (uncaptured-error events, loss), and those the error scopes of grpo-roc's own kernels on that device caught
 * (./wgsl.ts), which arrive later, when the scopes' promises settle. setup.ts throws them all together as one
 * WebGpuDeviceError at the next read of a tensor (tensor.data(), dataSync) or assertNoDeviceErrors().
 */
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
