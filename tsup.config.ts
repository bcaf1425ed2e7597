import { defineConfig } from "tsup";

export default defineConfig([
  {
    // The core, grpo-roc/tfjs, grpo-roc/webgpu and grpo-roc/cuda: the core never loads TensorFlow.js, Dawn nor the
    // native addon.
    entry: {
      index: "src/index.ts",
      "tfjs/index": "src/tfjs/index.ts",
      "webgpu/index": "src/webgpu/index.ts",
      "cuda/index": "src/cuda/index.ts",
    },
    format: ["esm", "cjs"],
    // Shared chunks in the CommonJS build too (ESM has them anyway), so that grpo-roc, grpo-roc/tfjs and
    // grpo-roc/webgpu share one copy of each module: one GrpoRocError class, and `instanceof` holds across them.
    splitting: true,
    dts: true,
    sourcemap: true,
    // The CLI build below runs beside this one: its output must survive this clean.
    clean: ["!cli.js", "!cli.js.map"],
    target: "node20",
    treeshake: true,
  },
  {
    // The `grpo-roc` bin: ESM only, no types. The source's #! line is kept, and tsup makes the file executable.
    entry: { cli: "src/cli/main.ts" },
    format: ["esm"],
    dts: false,
    sourcemap: true,
    clean: false,
    target: "node20",
  },
]);
