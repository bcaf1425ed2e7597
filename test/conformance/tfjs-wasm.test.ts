/** The conformance suite (./suite.ts) on tfjsBackend with TensorFlow.js's wasm backend (XNNPACK, SIMD, float32). */
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";

defineConformanceSuite(await prepareTarget("tfjs@wasm"));
