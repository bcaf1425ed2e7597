import { GrpoRocError } from "../backends/contract.js";

/**
 * Errors the WebGPU device reported on its own (validation, out-of-memory, device lost), as one exception. The one
 * class for the whole package: grpo-roc/webgpu's kernels and grpo-roc/tfjs (its setup, and grpo-roc's kernels on
 * TensorFlow.js's device) throw it, and both entry points export it.
 */
export class WebGpuDeviceError extends GrpoRocError {
  override name = "WebGpuDeviceError";
  readonly errors: readonly string[];

  constructor(errors: readonly string[]) {
    const shown = errors.slice(0, 3).map((e) => `  - ${e.split("\n")[0]}`);
    if (errors.length > shown.length) shown.push(`  … and ${errors.length - shown.length} more`);
    super(
      `the WebGPU device reported ${errors.length} error(s); results computed since the last check are not ` +
        `valid:\n${shown.join("\n")}`,
    );
    this.errors = errors;
  }
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
