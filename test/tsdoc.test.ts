/**
 * The published declarations as an editor shows them: every export of every entry point in package.json "exports"
 * has a doc comment, and so has every field of the exported object types (Rollout's above all). Then code of a
 * user's, compiled against the same declarations: a Rollout or options literal with a misspelt field is a type
 * error, and a correct one compiles.
 *
 * Reads dist/, which `npm test` builds first (alone: `npx tsup`, then this file).
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";
// The fields the schema reads at run time: the published type must declare and document exactly these.
import { ROLLOUT_FIELDS } from "../src/roc/schema.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const at = (file: string) => join(root, file);

/** Each entry point of package.json "exports" and its ESM declarations. */
const ENTRY_POINTS = {
  "grpo-roc": "dist/index.d.ts",
  "grpo-roc/tfjs": "dist/tfjs/index.d.ts",
  "grpo-roc/webgpu": "dist/webgpu/index.d.ts",
  "grpo-roc/cuda": "dist/cuda/index.d.ts",
  "grpo-roc/wasm": "dist/wasm/index.d.ts",
} as const;

/** Exported types whose fields go without comments of their own, and why. */
const FIELDS_LEFT_UNDOCUMENTED: Record<string, string> = {
  NumericArray: "ArrayLike<number>: its one field is the standard library's `length`",
  ToolOutcomeCounts: "a Record keyed by the tool outcomes, which ToolOutcome documents",
  GpuBuffer: "its methods are WebGPU's own GPUBuffer methods",
  GpuDevice: "its methods are WebGPU's own GPUDevice methods",
  CudaAddon: "the native addon's entry points, documented in native/src/addon.cc",
  TrlUnusedFields: "the keys of TRL_UNUSED_KEYS, accepted and read by nobody: documented as that list",
};

const OPTIONS: ts.CompilerOptions = {
  strict: true,
  skipLibCheck: true,
  noEmit: true,
  target: ts.ScriptTarget.ES2022,
  module: ts.ModuleKind.ESNext,
  moduleResolution: ts.ModuleResolutionKind.Bundler,
  types: [],
};

function requireBuilt(): void {
  for (const file of Object.values(ENTRY_POINTS)) {
    if (!existsSync(at(file))) throw new Error(`${file} is missing: build first (npx tsup)`);
  }
}

function docOf(symbol: ts.Symbol, checker: ts.TypeChecker): string {
  return ts.displayPartsToString(symbol.getDocumentationComment(checker)).trim();
}

interface Export {
  readonly entry: string;
  readonly name: string;
  /** The declaring symbol: re-exports followed to the file that declares it (a shared chunk, often). */
  readonly symbol: ts.Symbol;
}

/** Every export of every entry point, with the program's checker. */
function readExports(): { readonly checker: ts.TypeChecker; readonly exports: readonly Export[] } {
  requireBuilt();
  const files = Object.values(ENTRY_POINTS).map(at);
  const program = ts.createProgram(files, OPTIONS);
  const checker = program.getTypeChecker();
  const exports = Object.entries(ENTRY_POINTS).flatMap(([entry, file]) => {
    const module = checker.getSymbolAtLocation(program.getSourceFile(at(file))!);
    if (module === undefined) throw new Error(`${file} is not a module`);
    return checker.getExportsOfModule(module).map((exported) => ({
      entry,
      name: exported.name,
      symbol: exported.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(exported) : exported,
    }));
  });
  return { checker, exports };
}

/** The exported interfaces and object type aliases, with their fields (methods included). */
function objectTypes(checker: ts.TypeChecker, exports: readonly Export[]) {
  return exports.flatMap(({ entry, name, symbol }) => {
    if (!(symbol.flags & (ts.SymbolFlags.Interface | ts.SymbolFlags.TypeAlias))) return [];
    const type = checker.getDeclaredTypeOfSymbol(symbol);
    if (!(type.flags & ts.TypeFlags.Object) || type.getCallSignatures().length > 0) return [];
    return [{ entry, name, type, fields: checker.getPropertiesOfType(type) }];
  });
}

describe("the published declarations carry their documentation", () => {
  const { checker, exports } = readExports();

  it("documents every export of every entry point", () => {
    const missing = exports.filter(({ symbol }) => docOf(symbol, checker) === "").map((e) => `${e.entry}: ${e.name}`);
    const perEntry = Object.keys(ENTRY_POINTS).map((entry) => {
      const all = exports.filter((e) => e.entry === entry);
      const documented = all.filter(({ symbol }) => docOf(symbol, checker) !== "");
      return `${entry} ${documented.length}/${all.length}`;
    });
    console.log(
      `TSDoc: ${exports.length - missing.length} of ${exports.length} exports documented (${perEntry.join(", ")})`,
    );
    expect(exports.length).toBeGreaterThan(150);
    expect(missing).toEqual([]);
  });

  it("documents every field of the exported object types, options included", () => {
    const types = objectTypes(checker, exports).filter(({ name }) => !(name in FIELDS_LEFT_UNDOCUMENTED));
    const fields = types.flatMap(({ entry, name, fields }) =>
      fields.map((field) => ({ where: `${entry}: ${name}.${field.name}`, doc: docOf(field, checker) })),
    );
    const missing = fields.filter(({ doc }) => doc === "").map(({ where }) => where);
    console.log(
      `TSDoc: ${fields.length - missing.length} of ${fields.length} fields of ${types.length} types documented`,
    );
    // The options types are zod's inferred ones: their fields are documented only while the schemas keep theirs.
    expect(types.map(({ name }) => name)).toEqual(
      expect.arrayContaining(["RocOptionsInput", "PolicyLossOptionsInput"]),
    );
    expect(missing).toEqual([]);
  });

  it("shows Rollout as its own documented fields, with no index signature to let a misspelt one through", () => {
    const rollout = exports.find(({ entry, name }) => entry === "grpo-roc" && name === "Rollout");
    expect(rollout).toBeDefined();
    const type = checker.getDeclaredTypeOfSymbol(rollout!.symbol);
    expect(checker.getIndexInfosOfType(type).map((info) => checker.typeToString(info.keyType))).toEqual([]);
    const fields = checker.getPropertiesOfType(type);
    expect(fields.map((field) => field.name).sort()).toEqual([...ROLLOUT_FIELDS].sort());
    for (const field of fields) expect(docOf(field, checker), `Rollout.${field.name}`).not.toBe("");
  });
});

/** One file of a user's: compiled against the published declarations, it has these errors (none: it compiles). */
interface UserCode {
  readonly name: string;
  readonly code: string;
  /** The error it must have, as a pattern of the message; absent: it must compile. */
  readonly error?: RegExp;
}

const USER_CODE: readonly UserCode[] = [
  {
    name: "a correct Rollout literal",
    code: `const r: Rollout = { groupId: "p", reward: 1, toolCalls: [{ outcome: "ok" }], answers: 1, turns: 2 };`,
  },
  {
    name: "a Rollout literal with tool_calls for toolCalls",
    code: `const r: Rollout = { groupId: "p", reward: 1, tool_calls: [{ outcome: "ok" }], answers: 1, turns: 2 };`,
    error: /'tool_calls' does not exist in type 'Rollout'/,
  },
  {
    name: "a misspelt field in a literal passed to resampleOnCorrect",
    code: `resampleOnCorrect([{ groupId: 1, reward: 1, transcrpt: "<answer>1</answer>" }], { keepPerGroup: 1, seed: 0 });`,
    error: /'transcrpt' does not exist in type 'Rollout'/,
  },
  {
    name: "a misspelt field in a literal passed to rocPipeline",
    code: `rocPipeline([{ groupId: 1, correct: true, format_ok: true }], { roc: { keepPerGroup: 1, seed: 0 } });`,
    error: /'format_ok' does not exist in type 'Rollout'/,
  },
  {
    name: "a tool call with an outcome that is not one",
    code: `const r: Rollout = { groupId: "p", reward: 1, toolCalls: [{ outcome: "crash" }], answers: 1, turns: 1 };`,
    error: /'"crash"' is not assignable/,
  },
  {
    name: "a misspelt option",
    code: `resampleOnCorrect([{ groupId: 1, reward: 1 }], { keepPerGroup: 1, seed: 0, filterEqualReward: false });`,
    error: /'filterEqualReward' does not exist/,
  },
  {
    name: "a record of the caller's with more fields (not a literal), and a penalty that reads them",
    code: [
      `interface Mine extends Rollout { readonly prompt: string; readonly cost: number }`,
      `const mine: Mine[] = [{ groupId: 1, reward: 1, prompt: "2 + 2", cost: 0.5 }];`,
      `resampleOnCorrect(mine, { keepPerGroup: 1, seed: 0, penalty: (r) => (r as Mine).cost });`,
    ].join("\n"),
  },
];

describe("a user's literals are checked against the published types", () => {
  it("rejects misspelt fields at compile time and compiles correct literals", () => {
    requireBuilt();
    const header = `import { type Rollout, resampleOnCorrect, rocPipeline } from "grpo-roc";\n`;
    const files = new Map(USER_CODE.map((c, k) => [at(`test/tsdoc-user-${k}.ts`), `${header}${c.code}\nexport {};\n`]));
    const host = ts.createCompilerHost(OPTIONS);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (file) => files.has(file) || fileExists(file);
    host.readFile = (file) => files.get(file) ?? readFile(file);
    host.getSourceFile = (file, language, ...rest) => {
      const text = files.get(file);
      return text === undefined ? getSourceFile(file, language, ...rest) : ts.createSourceFile(file, text, language);
    };
    const program = ts.createProgram([...files.keys()], OPTIONS, host);
    const outcomes = [...files.keys()].map((file, k) => {
      const messages = ts
        .getPreEmitDiagnostics(program, program.getSourceFile(file))
        .map((d) => ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      const { name, error } = USER_CODE[k]!;
      return {
        name,
        ok: error === undefined ? messages.length === 0 : messages.length === 1 && error.test(messages[0]!),
        messages,
      };
    });
    expect(outcomes.filter(({ ok }) => !ok)).toEqual([]);
  });
});
