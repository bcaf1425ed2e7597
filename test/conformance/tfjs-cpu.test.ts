/** The conformance suite (./suite.ts) on tfjsBackend with TensorFlow.js's cpu backend (float32). */
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";

defineConformanceSuite(await prepareTarget("tfjs@cpu"));
