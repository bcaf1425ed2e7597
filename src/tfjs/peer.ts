/**
 * TensorFlow.js is an optional peer dependency: grpo-roc/tfjs needs it, the core never loads it. When it is
 * missing, loading grpo-roc/tfjs in Node fails with an error that says what to install, not with the module
 * resolver's (load-esm.ts, load-cjs.ts).
 */
import { GrpoRocError } from "../backends/contract.js";

/** The versions grpo-roc/tfjs is tested with (package.json's peerDependencies; a test holds the two equal). */
export const TFJS_PEER_RANGE = "^4.22.0";

export function missingTensorflow(cause: unknown): GrpoRocError {
  return new GrpoRocError(
    `grpo-roc/tfjs needs TensorFlow.js, an optional peer dependency that is not installed: ` +
      `npm install @tensorflow/tfjs@"${TFJS_PEER_RANGE}"`,
    { cause },
  );
}

/** Whether loading failed because @tensorflow/tfjs itself (not a backend package, not a module of ours) is missing. */
export function isMissingTensorflow(error: unknown): boolean {
  const { code, message } = (error ?? {}) as { code?: unknown; message?: unknown };
  return (
    (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") &&
    typeof message === "string" &&
    /'@tensorflow\/tfjs'/.test(message)
  );
}
