import { defineConfig } from "tsup";

export default defineConfig({
  // Two entry points: the core, and grpo-roc/tfjs, so that the core never loads TensorFlow.js.
  entry: { index: "src/index.ts", "tfjs/index": "src/tfjs/index.ts" },
  format: ["esm", "cjs"],
  dts: true,
  sourcemap: true,
  clean: true,
  target: "node20",
  treeshake: true,
});
