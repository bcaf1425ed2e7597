import { defineConfig, type Options } from "tsup";

// The core, grpo-roc/tfjs, grpo-roc/webgpu, grpo-roc/cuda and grpo-roc/wasm: the core never loads TensorFlow.js,
// Dawn, the native addon nor the WebAssembly kernel.
const entry = {
  index: "src/index.ts",
  "tfjs/index": "src/tfjs/index.ts",
  "webgpu/index": "src/webgpu/index.ts",
  "cuda/index": "src/cuda/index.ts",
  "wasm/index": "src/wasm/index.ts",
};

const library: Options = {
  // Shared chunks in the CommonJS build too (ESM has them anyway), so that grpo-roc, grpo-roc/tfjs and
  // grpo-roc/webgpu share one copy of each module: one GrpoRocError class, and `instanceof` holds across them.
  splitting: true,
  dts: { entry },
  // No source maps: the output is readable, unminified JavaScript, and maps would ship sources the package does not.
  target: "node20",
  treeshake: true,
};

export default defineConfig([
  {
    ...library,
    // grpo-roc/tfjs's entry points for Node load the rest dynamically (src/tfjs/load-esm.ts, load-cjs.ts).
    entry: { ...entry, "tfjs/node": "src/tfjs/load-esm.ts" },
    format: ["esm"],
    // The CLI build below runs beside this one: its output must survive this clean.
    clean: ["!cli.js", "!cli.js.map"],
  },
  {
    ...library,
    entry: { ...entry, "tfjs/node": "src/tfjs/load-cjs.ts" },
    format: ["cjs"],
    clean: false,
    // load-cjs.ts sets module.exports on purpose: it is the CommonJS entry point.
    esbuildOptions(options) {
      options.logOverride = { "commonjs-variable-in-esm": "silent" };
    },
  },
  {
    // The `grpo-roc` bin: ESM only, no types. The source's #! line is kept, and tsup makes the file executable.
    entry: { cli: "src/cli/main.ts" },
    format: ["esm"],
    dts: false,
    clean: false,
    target: "node20",
  },
]);
