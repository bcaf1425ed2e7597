/**
 * The package as a new user meets it: packed from the repository's files (as `npm pack` on a clean clone packs
 * them, prepack included), installed from the tarball into an empty project. It prints the figures the README
 * quotes: packages and size of node_modules for the core, and the browser bundle.
 *
 * It needs the npm registry or npm's cache (the core's two dependencies, and TensorFlow.js for grpo-roc/tfjs).
 */
import { execFileSync, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  readdirSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { afterAll, beforeAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const bin = (name: string) => join(root, "node_modules", ".bin", name);

/** Targets from the issue that made tfjs optional: what installing the core may cost. */
const CORE_INSTALL = { packages: 5, bytes: 15e6 } as const;
const BROWSER_BUNDLE_GZIP_BYTES = 30 * 1024;

const work = mkdtempSync(join(tmpdir(), "grpo-roc-install-"));
const project = join(work, "project");
let tarball = "";
let manifest: { version: string; scripts?: Record<string, string>; peerDependencies: Record<string, string> };

function npm(args: string[], cwd: string): string {
  return execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], {
    cwd,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** Runs `code` with Node in the project; stdout, stderr and status. */
function node(code: string, type: "module" | "commonjs") {
  const args = type === "module" ? ["--input-type=module", "-e", code] : ["-e", code];
  return spawnSync(process.execPath, args, { cwd: project, encoding: "utf8" });
}

/** The repository's files as a clean clone has them (tracked, and untracked ones git does not ignore). */
function copyRepository(to: string): void {
  const files = execFileSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], {
    cwd: root,
    encoding: "utf8",
  })
    .split("\0")
    .filter((file) => file !== "" && existsSync(join(root, file)));
  for (const file of files) {
    mkdirSync(dirname(join(to, file)), { recursive: true });
    copyFileSync(join(root, file), join(to, file));
  }
  // The build tools, without installing them again.
  symlinkSync(join(root, "node_modules"), join(to, "node_modules"));
}

function installedPackages(): { count: number; names: string[]; bytes: number } {
  const lock = JSON.parse(readFileSync(join(project, "node_modules", ".package-lock.json"), "utf8")) as {
    packages: Record<string, unknown>;
  };
  const names = Object.keys(lock.packages).map((key) => key.replace(/^node_modules\//, ""));
  const bytes = Number(execFileSync("du", ["-sb", join(project, "node_modules")], { encoding: "utf8" }).split("\t")[0]);
  return { count: names.length, names, bytes };
}

beforeAll(() => {
  const clone = join(work, "clone");
  copyRepository(clone);
  // Packing runs prepack: the TypeScript build and the CUDA addon's prebuilt, in the copy, not in this checkout.
  // Its name from the folder: prepack's own output shares stdout with `npm pack --json`.
  npm(["pack", "--pack-destination", work], clone);
  tarball = join(work, readdirSync(work).find((name) => name.endsWith(".tgz"))!);
  manifest = JSON.parse(readFileSync(join(clone, "package.json"), "utf8"));
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true }));
  npm(["install", "--prefer-offline", tarball], project);
}, 600_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe("the packed tarball installed into an empty project", () => {
  it("runs no lifecycle script on install", () => {
    const scripts = Object.keys(manifest.scripts ?? {});
    expect(scripts.filter((name) => /^(preinstall|install|postinstall|prepare)$/.test(name))).toEqual([]);
    // node-gyp's default build, had anything built the addon on install.
    expect(existsSync(join(project, "node_modules", "grpo-roc", "native", "build"))).toBe(false);
  });

  it(`installs the core as at most ${CORE_INSTALL.packages} packages and ${CORE_INSTALL.bytes / 1e6} MB`, () => {
    const { count, names, bytes } = installedPackages();
    console.log(`core install: ${count} packages (${names.join(", ")}), ${(bytes / 1e6).toFixed(1)} MB`);
    expect(count).toBeLessThanOrEqual(CORE_INSTALL.packages);
    expect(bytes).toBeLessThanOrEqual(CORE_INSTALL.bytes);
  });

  it(`bundles { resampleOnCorrect, advantages, policyLoss } for the browser in at most 30 KB gzip`, async () => {
    const result = await build({
      stdin: {
        contents: 'export { resampleOnCorrect, advantages, policyLoss } from "grpo-roc";',
        resolveDir: project,
      },
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      write: false,
      logLevel: "silent",
    });
    const code = result.outputFiles[0]!.contents;
    const gzipped = gzipSync(code, { level: 9 }).length;
    console.log(
      `browser bundle: ${(code.length / 1024).toFixed(1)} KB minified, ${(gzipped / 1024).toFixed(1)} KB gzip`,
    );
    expect(gzipped).toBeLessThanOrEqual(BROWSER_BUNDLE_GZIP_BYTES);
  });

  it("passes publint and arethetypeswrong, and type-checks under node10, node16 and bundler resolution", () => {
    expect(() => execFileSync(bin("publint"), ["run", tarball, "--strict"], { encoding: "utf8" })).not.toThrow();
    expect(() => execFileSync(bin("attw"), [tarball], { encoding: "utf8" })).not.toThrow();
    const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
    writeFileSync(
      join(project, "check.ts"),
      'import { advantages, type Rollout } from "grpo-roc";\nconst r: Rollout[] = [];\nadvantages([1, 0], [1, 1]);\n',
    );
    for (const [module, resolution] of [
      ["commonjs", "node10"],
      ["node16", "node16"],
      ["esnext", "bundler"],
    ]) {
      // What `tsc --init` writes: an ES2015+ lib and esModuleInterop. zod's own declarations need both (Map,
      // Symbol.iterator; its locales' default imports under node10), for any project that uses zod, not only here.
      const args = ["--noEmit", "--strict", "--target", "es2020", "--esModuleInterop", "--module", module!];
      args.push("--moduleResolution", resolution!, "check.ts");
      const run = spawnSync(process.execPath, [tsc, ...args], { cwd: project, encoding: "utf8" });
      expect(run.stdout + run.stderr, `${module}/${resolution}`).toBe("");
    }
  });

  it("ships the bin executable, and it gives the library's numbers", () => {
    const out = execFileSync(join(project, "node_modules", ".bin", "grpo-roc"), ["advantages", "-"], {
      input: '{"groupId":1,"reward":1}\n{"groupId":1,"reward":0}\n',
      encoding: "utf8",
    });
    const library = node(
      'console.log(JSON.stringify(Array.from(require("grpo-roc").advantages([1, 0], [1, 1]))))',
      "commonjs",
    );
    const fromCommand = out
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line).advantage);
    expect(fromCommand).toEqual(JSON.parse(library.stdout));
    expect(fromCommand[0]).toBeCloseTo(Math.SQRT1_2, 5);
  });

  it("ships the prebuilt CUDA addon, which loads and says why it cannot run without a GPU", () => {
    const packed = join(project, "node_modules", "grpo-roc", "prebuilds", "linux-x64", "grpo_roc_cuda.node");
    if (process.env.GRPO_ROC_PACK_WITHOUT_CUDA === "1") return expect(existsSync(packed)).toBe(false);
    expect(existsSync(packed)).toBe(true);
    const run = node(
      'const { cudaBackend } = await import("grpo-roc/cuda"); console.log(JSON.stringify(await cudaBackend.probe()))',
      "module",
    );
    expect(run.status, run.stderr).toBe(0);
    const probe = JSON.parse(run.stdout) as { available: boolean; reason: string };
    // A GPU machine reports its device; any other says which of the two it lacks, never "not built".
    if (!probe.available) expect(probe.reason).toMatch(/^(no CUDA device|CUDA driver too old)/);
  });

  it("ships the wasm backend: its kernel loads from the package in ESM and CommonJS, runs on 2 threads, and the process exits", () => {
    const script = (load: string) =>
      `${load}; const backend = createWasmBackend({ threads: 2 }); ` +
      "const logits = { data: new Float32Array(4 * 64).fill(0.5), shape: [2, 2, 64] }; " +
      "Promise.all([backend.probe(), backend.tokenLogProbs(logits, [[1, 2], [3, 4]])])" +
      ".then(([info, r]) => console.log(JSON.stringify({ available: info.available, reason: info.reason, logp: r.logp[3] })));";
    for (const [load, type] of [
      ['import { createWasmBackend } from "grpo-roc/wasm"', "module"],
      ['const { createWasmBackend } = require("grpo-roc/wasm")', "commonjs"],
    ] as const) {
      const args = type === "module" ? ["--input-type=module", "-e", script(load)] : ["-e", script(load)];
      // A time limit: a process kept alive by its worker threads would not exit at all.
      const run = spawnSync(process.execPath, args, { cwd: project, encoding: "utf8", timeout: 60_000 });
      expect(run.status, `${run.stderr} (exit ${run.status}, signal ${run.signal})`).toBe(0);
      const result = JSON.parse(run.stdout) as { available: boolean; reason: string; logp: number };
      expect(result.available, result.reason).toBe(true);
      expect(result.reason).toMatch(/2 threads/);
      expect(result.logp).toBeCloseTo(-Math.log(64), 6);
    }
  });

  it("ships every file the README links to", () => {
    const readme = readFileSync(join(project, "node_modules", "grpo-roc", "README.md"), "utf8");
    const links = [...readme.matchAll(/\]\((?!https?:|#)([^)\s]+)\)/g)].map((match) => match[1]!.split("#")[0]!);
    expect(links.length).toBeGreaterThan(0);
    expect(links.filter((link) => !existsSync(join(project, "node_modules", "grpo-roc", link)))).toEqual([]);
    // Images come from the published package itself (the npm page has no repository to resolve relative ones):
    // this release's version, and a file the tarball holds.
    const images = [...readme.matchAll(/!\[[^\]]*\]\((https:[^)\s]+)\)/g)].map((match) => match[1]!);
    expect(images.length).toBeGreaterThan(0);
    for (const image of images) {
      const match = /^https:\/\/cdn\.jsdelivr\.net\/npm\/grpo-roc@([^/]+)\/(.+)$/.exec(image);
      expect(match, image).not.toBeNull();
      expect(match![1]).toBe(manifest.version);
      expect(existsSync(join(project, "node_modules", "grpo-roc", match![2]!)), image).toBe(true);
    }
  });

  describe("grpo-roc/tfjs, whose TensorFlow.js is the user's", () => {
    it("says what to install while TensorFlow.js is missing, from import and from require", () => {
      const range = manifest.peerDependencies["@tensorflow/tfjs"]!;
      const esm = node('await import("grpo-roc/tfjs")', "module");
      const cjs = node('require("grpo-roc/tfjs")', "commonjs");
      for (const run of [esm, cjs]) {
        expect(run.status).not.toBe(0);
        expect(run.stderr).toContain("GrpoRocError");
        expect(run.stderr).toContain(`npm install @tensorflow/tfjs@"${range}"`);
      }
      // The core never needed it.
      expect(node('const { advantages } = require("grpo-roc"); advantages([1, 0], [1, 1])', "commonjs").status).toBe(0);
    });

    // The lowest and the highest release the peer range allows (one, while 4.22.0 is the only 4.x ≥ 4.22).
    const releases = (): string[] => {
      const range = manifest.peerDependencies["@tensorflow/tfjs"]!;
      const found = JSON.parse(npm(["view", `@tensorflow/tfjs@${range}`, "version", "--json"], project)) as
        | string
        | string[];
      const versions = [found].flat();
      return [...new Set([versions[0]!, versions.at(-1)!])];
    };

    it("works once the user adds TensorFlow.js, with one copy of it, at the lowest and highest allowed release", () => {
      for (const version of releases()) {
        npm(["install", "--prefer-offline", `@tensorflow/tfjs@${version}`], project);
        const cores = npm(["ls", "@tensorflow/tfjs-core", "--all", "--parseable"], project).trim().split("\n");
        expect(cores, version).toHaveLength(1);
        const run = node(
          `const tf = await import("@tensorflow/tfjs");
           const { policyLossTf } = await import("grpo-roc/tfjs");
           const { policyLoss } = await import("grpo-roc");
           const inputs = { logp: [[-1, -2]], oldLogp: [[-1.1, -2]], advantages: [1] };
           const onTfjs = policyLossTf({ logp: tf.tensor2d(inputs.logp), oldLogp: tf.tensor2d(inputs.oldLogp),
             advantages: tf.tensor1d(inputs.advantages) });
           console.log(JSON.stringify([tf.version.tfjs, onTfjs.dataSync()[0], policyLoss(inputs).loss]));`,
          "module",
        );
        expect(run.status, run.stderr).toBe(0);
        const [loaded, tfjsLoss, referenceLoss] = JSON.parse(run.stdout) as [string, number, number];
        expect(loaded).toBe(version);
        expect(Math.abs(tfjsLoss - referenceLoss)).toBeLessThan(1e-6);
      }
    });
  });
});
