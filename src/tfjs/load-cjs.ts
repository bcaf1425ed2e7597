/**
 * grpo-roc/tfjs as Node loads it with `require`: the CommonJS build of index.ts, loaded here so that a missing
 * TensorFlow.js is reported with what to install (see load-esm.ts).
 */
import { createRequire } from "node:module";
import { isMissingTensorflow, missingTensorflow } from "./peer.js";

function load(): unknown {
  try {
    // Resolved from this file, dist/tfjs/node.cjs: the CommonJS build of index.ts beside it.
    return createRequire(__filename)("./index.cjs");
  } catch (error) {
    throw isMissingTensorflow(error) ? missingTensorflow(error) : error;
  }
}

module.exports = load();
