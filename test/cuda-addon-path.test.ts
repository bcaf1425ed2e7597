/**
 * Where the built grpo-roc/cuda looks for its addon (src/cuda/addon.ts, locateAddon): in the package's own folder,
 * found from the module's own location, in the ESM and in the CommonJS build alike: the prebuilt the package ships
 * (prebuilds/<platform>-<arch>/), and before it a rebuild (native/build/Release/, `npx grpo-roc build-cuda`). The
 * ESM build once took a global `__dirname` for its own (`node -e 'import("grpo-roc/cuda")'` defines
 * `__dirname = "."`) and then looked in the current folder.
 *
 * The module is built here the way the package builds it: tsup, ESM and CJS, target node20, with treeshake (the
 * package's tsup.config.ts; its rollup pass rewrites import.meta.url in CJS) and without (esbuild alone leaves
 * import.meta empty in CJS, so the CJS code must fall back on __dirname). Each build goes into a scratch package
 * named grpo-roc, with a (fake) prebuilt addon for this platform, and is loaded by a fresh `node` from an unrelated
 * folder.
 */
import { spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { build } from "tsup";
import { addonPath, locateAddon, moduleDirFrom, packageRoot } from "../src/cuda/addon.js";

const root = realpathSync(mkdtempSync(path.join(os.tmpdir(), "grpo-roc-addon-path-")));
const elsewhere = realpathSync(mkdtempSync(path.join(os.tmpdir(), "grpo-roc-elsewhere-")));
const variants = [
  { name: "treeshake (as tsup.config.ts builds it)", treeshake: true },
  { name: "esbuild only (no treeshake)", treeshake: false },
] as const;

function packageFor(treeshake: boolean): string {
  return path.join(root, treeshake ? "treeshake" : "plain");
}

const platform = `${process.platform}-${process.arch}`;
const prebuiltOf = (pkg: string) => path.join(pkg, "prebuilds", platform, "grpo_roc_cuda.node");
const rebuildOf = (pkg: string) => path.join(pkg, "native", "build", "Release", "grpo_roc_cuda.node");

beforeAll(async () => {
  for (const v of variants) {
    const pkg = packageFor(v.treeshake);
    mkdirSync(pkg, { recursive: true });
    writeFileSync(path.join(pkg, "package.json"), JSON.stringify({ name: "grpo-roc", type: "module" }));
    mkdirSync(path.dirname(prebuiltOf(pkg)), { recursive: true });
    writeFileSync(prebuiltOf(pkg), "a prebuilt addon");
    await build({
      entry: { "cuda/index": "src/cuda/addon.ts" },
      format: ["esm", "cjs"],
      outDir: path.join(pkg, "dist"),
      target: "node20",
      treeshake: v.treeshake,
      dts: false,
      sourcemap: false,
      clean: false,
      config: false,
      silent: true,
    });
  }
}, 120_000);

afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(elsewhere, { recursive: true, force: true });
});

/** Runs `node ...args` in an unrelated folder, without $GRPO_ROC_CUDA_ADDON; its stdout, trimmed. */
function node(args: readonly string[]): string {
  const env = { ...process.env };
  delete env.GRPO_ROC_CUDA_ADDON;
  const result = spawnSync(process.execPath, args, { cwd: elsewhere, env, encoding: "utf8", timeout: 30_000 });
  expect(result.status, `node ${args.join(" ")}: ${result.stderr}`).toBe(0);
  return result.stdout.trim();
}

describe.each(variants)("the built grpo-roc/cuda finds its addon: $name", ({ treeshake }) => {
  const pkg = () => packageFor(treeshake);
  const expected = () => prebuiltOf(pkg());

  it("ESM, imported from `node -e` (a global __dirname of '.')", () => {
    const url = pathToFileURL(path.join(pkg(), "dist", "cuda", "index.js")).href;
    const out = node([
      "-e",
      `console.log(typeof __dirname); import(${JSON.stringify(url)}).then((m) => console.log(m.addonPath()))`,
    ]);
    // The premise: `node -e` does define __dirname, and the ESM build must not take it for its own folder.
    expect(out.split("\n")).toEqual(["string", expected()]);
  });

  it("ESM, imported from an .mjs file (no __dirname anywhere)", () => {
    const script = path.join(elsewhere, `esm-${treeshake}.mjs`);
    writeFileSync(
      script,
      `import { addonPath } from ${JSON.stringify(pathToFileURL(path.join(pkg(), "dist", "cuda", "index.js")).href)};\nconsole.log(addonPath());\n`,
    );
    expect(node([script])).toBe(expected());
  });

  it("CommonJS, required from `node -e`", () => {
    const file = path.join(pkg(), "dist", "cuda", "index.cjs");
    expect(node(["-e", `console.log(require(${JSON.stringify(file)}).addonPath())`])).toBe(expected());
  });

  it("a rebuild in the package's native/build/Release comes before the prebuilt (ESM and CommonJS)", () => {
    mkdirSync(path.dirname(rebuildOf(pkg())), { recursive: true });
    writeFileSync(rebuildOf(pkg()), "a rebuilt addon");
    const cjs = path.join(pkg(), "dist", "cuda", "index.cjs");
    expect(node(["-e", `console.log(require(${JSON.stringify(cjs)}).addonPath())`])).toBe(rebuildOf(pkg()));
    const esm = pathToFileURL(path.join(pkg(), "dist", "cuda", "index.js")).href;
    expect(node(["-e", `import(${JSON.stringify(esm)}).then((m) => console.log(m.addonPath()))`])).toBe(
      rebuildOf(pkg()),
    );
  });
});

describe("moduleDirFrom (src/cuda/addon.ts)", () => {
  it("prefers a file: import.meta.url to any __dirname", () => {
    expect(moduleDirFrom(pathToFileURL("/pkg/dist/cuda/index.js").href, ".")).toBe(path.resolve("/pkg/dist/cuda"));
  });

  it("falls back on CommonJS's __dirname when import.meta.url is missing or not a file: URL", () => {
    expect(moduleDirFrom(undefined, "/pkg/dist/cuda")).toBe("/pkg/dist/cuda");
    expect(moduleDirFrom("https://example.com/index.js", "/pkg/dist/cuda")).toBe("/pkg/dist/cuda");
  });

  it("from the source tree, the package root is this repository, and the addon is looked for in it", () => {
    const repository = path.resolve(import.meta.dirname, "..");
    expect(packageRoot()).toBe(repository);
    const env = process.env.GRPO_ROC_CUDA_ADDON;
    delete process.env.GRPO_ROC_CUDA_ADDON;
    try {
      const where = locateAddon();
      expect(where.rebuild).toBe(rebuildOf(repository));
      expect(where.prebuilt).toBe(prebuiltOf(repository));
      // The first of them that is there; none: where `grpo-roc build-cuda` puts it.
      expect(addonPath()).toBe(where.file ?? rebuildOf(repository));
      expect([rebuildOf(repository), prebuiltOf(repository)]).toContain(addonPath());
    } finally {
      if (env !== undefined) process.env.GRPO_ROC_CUDA_ADDON = env;
    }
  });
});
