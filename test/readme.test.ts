import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const readme = readFileSync(join(root, "README.md"), "utf8");

/** The first ```ts block after a heading. */
function codeBlockAfter(heading: string): string {
  const section = readme.slice(readme.indexOf(heading));
  const match = /```ts\n([\s\S]*?)```/.exec(section);
  if (!match) throw new Error(`no ts block after ${heading}`);
  return match[1]!;
}

/** Runs the first ```ts block after `heading` against the built package; its stdout lines. */
function runBlock(heading: string, name: string): string[] {
  return runSource(codeBlockAfter(heading), name);
}

/** Runs TypeScript source against the built package; its stdout lines. */
function runSource(source: string, name: string): string[] {
  // Written inside the repository so that "grpo-roc" resolves to this package by self-reference.
  mkdirSync(join(root, "out"), { recursive: true });
  const dir = mkdtempSync(join(root, "out", "readme-"));
  const file = join(dir, name);
  writeFileSync(file, source);
  const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs");
  try {
    return execFileSync(process.execPath, [tsx, file], { cwd: root, encoding: "utf8" }).trim().split("\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("README", () => {
  it("quick start runs against the built package and prints what its comments say", () => {
    const lines = runBlock("## Quick start", "quickstart.mts");
    const kept = JSON.parse(lines[0]!.replace(/\s/g, "")) as number[];
    expect([
      [0, 2],
      [0, 3],
    ]).toContainEqual(kept);
    const advantages = JSON.parse(lines[1]!.replace(/\s/g, "")) as number[];
    expect(advantages[0]).toBeCloseTo(Math.SQRT1_2, 4);
    expect(advantages[1]).toBeCloseTo(-Math.SQRT1_2, 4);
    expect(lines[2]).toBe("0");
  });

  it("the batcher's example prints what its comments say", () => {
    const lines = runBlock("### Batches that do not shrink", "batcher.mts");
    expect(lines).toEqual([
      "4",
      "0 false [ 'q1', 'q3' ] [ 'q2: equal-rewards' ] 4",
      "1 true [] [ 'q4: equal-rewards' ] 4",
    ]);
  });

  it('each example of "From agent frameworks" runs against the built package', () => {
    const section = readme.slice(readme.indexOf("## From agent frameworks"), readme.indexOf("## The policy loss"));
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(blocks).toHaveLength(5);
    // The outputs are asserted value by value in test/messages.test.ts ("the README's examples"); here, that the
    // README's own text still compiles and runs as written.
    for (const [k, block] of blocks.entries()) {
      expect(runSource(block, `frameworks-${k}.mts`).length, `block ${k}`).toBeGreaterThan(0);
    }
  });

  it('the examples of "From a TRL or verl config" print what their comments say', () => {
    const section = readme.slice(
      readme.indexOf("## From a TRL or verl config"),
      readme.indexOf("## Training/inference"),
    );
    const blocks = [...section.matchAll(/```ts\n([\s\S]*?)```/g)].map((match) => match[1]!);
    expect(blocks.map((block, k) => runSource(block, `config-${k}.mts`))).toEqual([
      ["dapo 0.28 k3 4", "-0.123612"],
      ["0.28 3 [ -20, 20 ]", "-0.131876"],
      ["dppo-tv 3 token-sum advantages", "2.385618"],
      ['{"kind":"k3","beta":0.001} adaptive', "0.999976 -0.000075 0.018557 0.00099996"],
    ]);
  });

  it("the wasm backend's example prints what its comments say", () => {
    const lines = runBlock("### WebAssembly kernels", "wasm.mts");
    expect(lines).toEqual(["true", "-0.250000 true"]);
  });

  it("names the test command that CI runs", () => {
    const ci = readFileSync(join(root, ".ci", "run"), "utf8");
    expect(readme).toContain("npm test");
    expect(ci).toMatch(/^npm test$/m);
  });
});
