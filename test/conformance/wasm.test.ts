/**
 * The conformance suite (./suite.ts) on the wasm backend, twice: `wasm` (its default chunks: the suite's logits fit
 * in one) and `wasm@chunked` (4 KiB chunks: every chunk boundary a case can have). One thread for now.
 */
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";

defineConformanceSuite(await prepareTarget("wasm"));
defineConformanceSuite(await prepareTarget("wasm@chunked"));
