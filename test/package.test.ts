import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// These tests exercise the built package (dist/) the way users load it: `npm test` builds first.
const root = fileURLToPath(new URL("..", import.meta.url));
const run = (args: string[]) => execFileSync(process.execPath, args, { cwd: root, encoding: "utf8" });

const probe = `
  const names = ["advantages", "resampleOnCorrect", "rocPipeline", "parseTranscript", "penalties", "broadcastToTokens"];
  const missing = names.filter((n) => typeof pkg[n] !== "function" || pkg.grpoRoc[n] !== pkg[n]);
  const adv = Array.from(pkg.grpoRoc.advantages([1, 0, 0, 1], ["a", "a", "b", "b"]));
  console.log(JSON.stringify({ missing, adv }));
`;

describe("the package as users install it", () => {
  it("is built", () => {
    expect(existsSync(`${root}/dist/index.js`) && existsSync(`${root}/dist/index.cjs`)).toBe(true);
  });

  it("loads from CommonJS with require('grpo-roc')", () => {
    const out = JSON.parse(run(["-e", `const pkg = require("grpo-roc"); ${probe}`]));
    expect(out.missing).toEqual([]);
    expect(out.adv[0]).toBeCloseTo(Math.SQRT1_2, 4);
  });

  it("loads from ESM with import", () => {
    const out = JSON.parse(run(["--input-type=module", "-e", `import * as pkg from "grpo-roc"; ${probe}`]));
    expect(out.missing).toEqual([]);
    expect(out.adv[1]).toBeCloseTo(-Math.SQRT1_2, 4);
  });

  // Each entry point loads on its own from both module systems, without starting anything (no device, no addon call).
  it.each([
    ["tfjs", "tfjsBackend"],
    ["webgpu", "createWebGpuBackend"],
    ["cuda", "createCudaBackend"],
    ["wasm", "createWasmBackend"],
  ])("grpo-roc/%s loads from ESM and from CommonJS", (entry, name) => {
    const check = `console.log(JSON.stringify([typeof pkg.${name}, Object.keys(pkg).sort()]))`;
    const fromEsm = JSON.parse(
      run(["--input-type=module", "-e", `import * as pkg from "grpo-roc/${entry}"; ${check}`]),
    );
    const fromCjs = JSON.parse(run(["-e", `const pkg = require("grpo-roc/${entry}"); ${check}`]));
    expect(fromEsm[0]).not.toBe("undefined");
    expect(fromCjs).toEqual(fromEsm);
  });

  it("grpo-roc/tfjs's Node entry points export what its bundler entry point does, and name the tested tfjs range", () => {
    // Node loads grpo-roc/tfjs through dist/tfjs/node.{js,cjs}, which load dist/tfjs/index.{js,cjs} dynamically.
    const keys = (load: string) =>
      `${load}; console.log(JSON.stringify([Object.keys(pkg).sort(), pkg.TFJS_PEER_RANGE]))`;
    const bundlerEntry = JSON.parse(
      run(["--input-type=module", "-e", keys(`const pkg = await import("./dist/tfjs/index.js")`)]),
    );
    const nodeEsm = JSON.parse(run(["--input-type=module", "-e", keys(`const pkg = await import("grpo-roc/tfjs")`)]));
    const nodeCjs = JSON.parse(run(["-e", keys(`const pkg = require("grpo-roc/tfjs")`)]));
    expect(nodeEsm).toEqual(bundlerEntry);
    expect(nodeCjs).toEqual(bundlerEntry);
    const manifest = JSON.parse(readFileSync(`${root}/package.json`, "utf8"));
    expect(bundlerEntry[1]).toBe(manifest.peerDependencies["@tensorflow/tfjs"]);
    expect(manifest.dependencies["@tensorflow/tfjs"]).toBeUndefined();
  });

  it("the entry points share one copy of each class, in CommonJS as in ESM: instanceof holds across them", () => {
    const check = (load: string) =>
      `${load}; const e = new webgpu.WebGpuDeviceError(["lost"]);
       console.log(JSON.stringify([e instanceof core.GrpoRocError, webgpu.WebGpuDeviceError === tfjs.WebGpuDeviceError]));`;
    const cjs = check(
      `const core = require("grpo-roc"), webgpu = require("grpo-roc/webgpu"), tfjs = require("grpo-roc/tfjs")`,
    );
    const esm = check(
      `const [core, webgpu, tfjs] = await Promise.all(["grpo-roc", "grpo-roc/webgpu", "grpo-roc/tfjs"].map((m) => import(m)))`,
    );
    expect(JSON.parse(run(["-e", cjs]))).toEqual([true, true]);
    expect(JSON.parse(run(["--input-type=module", "-e", esm]))).toEqual([true, true]);
  });

  it("ships types that resolve under node16 resolution for both import and require", () => {
    const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
    const project = fileURLToPath(new URL("./fixtures/tsconfig.json", import.meta.url));
    expect(() => run([tsc, "-p", project])).not.toThrow();
  });
});
