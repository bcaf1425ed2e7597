/**
 * The backends the conformance suite runs on. Each test file prepares one (a tfjs backend is process-wide state,
 * and one file per backend lets vitest run them side by side), then defines the one suite of ./suite.ts on it.
 */
import * as tf from "@tensorflow/tfjs";
import { referenceBackend, type Backend } from "../../src/backends/index.js";
import { tfjsBackend, useTfjsBackend, type TfjsBackendName } from "../../src/tfjs/index.js";
import type { Dtype } from "./tolerances.js";

export type TargetName = "reference" | "tfjs@cpu" | "tfjs@wasm" | "tfjs@webgpu";

/**
 * How many random cases each part runs. The cases are small, so every backend runs all of them (on lavapipe, a CPU
 * Vulkan driver, webgpu's whole suite takes ~10 s besides the 147 MB logits test); a slower device could run fewer.
 */
export interface Budget {
  readonly randomLosses: number;
  readonly randomLogProbs: number;
  readonly gradientChecks: number;
  /** Aggregations × ratio levels of the micro-batch property. */
  readonly microBatchConfigs: number;
}

export interface Target {
  readonly name: TargetName;
  readonly backend: Backend;
  readonly dtype: Dtype;
  readonly available: boolean;
  readonly reason: string;
  readonly budget: Budget;
  /** Live device objects (tfjs tensors), to check that kernels free what they allocate. */
  readonly liveObjects?: () => number;
}

const FULL: Budget = { randomLosses: 40, randomLogProbs: 12, gradientChecks: 10, microBatchConfigs: 16 };

export async function prepareTarget(name: TargetName): Promise<Target> {
  if (name === "reference") {
    const info = await referenceBackend.probe();
    return { name, backend: referenceBackend, dtype: "float64", available: info.available, reason: info.reason, budget: FULL };
  }
  const tfjsName = name.slice("tfjs@".length) as TfjsBackendName;
  const status = await useTfjsBackend(tfjsName);
  const info = status.available ? await tfjsBackend.probe() : undefined;
  const available = status.available && info?.available === true && tf.getBackend() === tfjsName;
  return {
    name,
    backend: tfjsBackend,
    dtype: "float32",
    available,
    reason: status.reason,
    budget: FULL,
    liveObjects: () => tf.memory().numTensors,
  };
}

/** CI is set (and not "0" / "false"): then every backend must be available. */
export const inCi = (() => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
})();
