/**
 * The conformance suite (./suite.ts) on the wasm backend, four ways: `wasm` (the default backend: a thread per core,
 * its default chunks, in which the suite's logits fit), `wasm@1thread` (no workers), `wasm@chunked` (4 KiB chunks:
 * every chunk boundary a case can have, over 3 threads) and `wasm@resident` (logits in the backend's memory).
 */
import { afterAll } from "vitest";
import { defineConformanceSuite } from "./suite.js";
import { prepareTarget } from "./targets.js";

const targets = await Promise.all(
  (["wasm", "wasm@1thread", "wasm@chunked", "wasm@resident"] as const).map((name) => prepareTarget(name)),
);
for (const target of targets) defineConformanceSuite(target);
afterAll(async () => {
  for (const { backend } of targets) await (backend as { release?: () => Promise<void> }).release?.();
});
