/** The conformance suite (./suite.ts) on the reference backend: plain TypeScript, float64. */
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";

defineConformanceSuite(await prepareTarget("reference"));
