/**
 * The backend contract holds in the source: a backend (src/tfjs, src/webgpu, src/cuda, src/wasm) takes nothing from
 * the core but src/backends/contract.ts; the core imports no backend; no module imports itself through a cycle; and the
 * native kernels name every built-in objective with the code the TypeScript side sends.
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { NATIVE_OBJECTIVES } from "../src/cuda/loss.js";
import { BUILTIN_OBJECTIVES, OBJECTIVE_CODE } from "../src/loss/objectives.js";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");
const src = join(root, "src");
const BACKENDS = ["tfjs", "webgpu", "cuda", "wasm"];

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(path);
    return entry.name.endsWith(".ts") ? [path] : [];
  });
}

/** The project files a module imports (relative specifiers resolved, .js mapped to .ts); packages are left out. */
function localImports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const specifiers = [...text.matchAll(/(?:^|\n)\s*(?:import|export)[^"';]*?from\s+"([^"]+)"/g)].map((m) => m[1]!);
  return specifiers.filter((s) => s.startsWith(".")).map((s) => resolve(dirname(file), s.replace(/\.js$/, ".ts")));
}

const files = sourceFiles(src);
const folderOf = (file: string) => relative(src, file).split("/")[0]!;

describe("the backend contract in the source", () => {
  it("finds the modules", () => expect(files.length).toBeGreaterThan(40));

  it.each(BACKENDS)("src/%s imports the core only through src/backends/contract.ts", (backend) => {
    const offending: string[] = [];
    for (const file of files.filter((f) => folderOf(f) === backend)) {
      for (const target of localImports(file)) {
        const folder = folderOf(target);
        const allowed = BACKENDS.includes(folder) || relative(src, target) === "backends/contract.ts";
        if (!allowed) offending.push(`${relative(src, file)} → ${relative(src, target)}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("the core (everything outside the backend folders and the command line) imports no backend", () => {
    const offending: string[] = [];
    for (const file of files.filter((f) => !BACKENDS.includes(folderOf(f)) && folderOf(f) !== "cli")) {
      for (const target of localImports(file)) {
        if (BACKENDS.includes(folderOf(target))) offending.push(`${relative(src, file)} → ${relative(src, target)}`);
      }
    }
    expect(offending).toEqual([]);
  });

  it("no module is part of an import cycle", () => {
    const graph = new Map(files.map((file) => [file, localImports(file)]));
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const visit = (file: string, path: string[]) => {
      if (state.get(file) === "done") return;
      if (state.get(file) === "open") {
        cycles.push([...path.slice(path.indexOf(file)), file].map((f) => relative(src, f)).join(" → "));
        return;
      }
      state.set(file, "open");
      for (const target of graph.get(file) ?? []) visit(target, [...path, file]);
      state.set(file, "done");
    };
    for (const file of files) visit(file, []);
    expect(cycles).toEqual([]);
  });
});

describe("the native kernels' objectives (native/src/grpo_math.h, native/src/addon.cc)", () => {
  const header = readFileSync(join(root, "native/src/grpo_math.h"), "utf8");
  const enumBody = /enum Objective \{([^}]*)\}/.exec(header)?.[1] ?? "";
  const constants = new Map<string, number>();
  let next = 0;
  for (const entry of enumBody.split(",").map((e) => e.trim())) {
    if (entry === "") continue;
    const [name, value] = entry.split("=").map((part) => part.trim());
    next = value === undefined ? next : Number(value);
    constants.set(name!, next++);
  }

  it.each(BUILTIN_OBJECTIVES)("%s is in enum Objective with its OBJECTIVE_CODE", (objective) => {
    expect(constants.get(NATIVE_OBJECTIVES[objective])).toBe(OBJECTIVE_CODE[objective]);
  });

  it("kObjectiveCount follows the last built-in objective, and the addon refuses codes from it on", () => {
    expect(constants.get("kObjectiveCount")).toBe(BUILTIN_OBJECTIVES.length);
    const addon = readFileSync(join(root, "native/src/addon.cc"), "utf8");
    expect(addon).toMatch(/objective >= grpo::kObjectiveCount\) throw ArgumentError/);
  });

  it("each objective's kernel is a case of token_objective's switch", () => {
    const body = header.slice(header.indexOf("void token_objective("), header.indexOf("void kl_penalty("));
    for (const objective of BUILTIN_OBJECTIVES) expect(body).toContain(`case ${NATIVE_OBJECTIVES[objective]}:`);
  });
});
