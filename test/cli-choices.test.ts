/**
 * The command line's choices come from the library: the schemas' lists (modes, undersized and infrastructure-failure
 * rules, dialects, std scopes, singleton rules) and the estimator registry, which `--import` extends with a module of
 * the user's.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { writeCenteredEstimatorModule } from "./helpers/estimators.js";
import { SINGLETON_RULES, STD_SCOPES } from "../src/advantages/options.js";
import { INFRA_FAILURE_RULES, ROC_MODES, UNDERSIZED_RULES } from "../src/roc/schema.js";
import { TRANSCRIPT_DIALECTS } from "../src/roc/transcript.js";

const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "dist", "cli.js");
const dir = mkdtempSync(join(tmpdir(), "grpo-roc-cli-choices-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function cli(args: readonly string[], input = "") {
  const result = spawnSync(process.execPath, [CLI, ...args], { input, encoding: "utf8" });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

const GROUP = ['{"groupId":"a","reward":1}', '{"groupId":"a","reward":0}', '{"groupId":"a","reward":0}'].join("\n");

describe("choices on the command line", () => {
  it("--help lists each choice from the library's own lists", () => {
    const help = cli(["pipeline", "--help"]).stdout;
    for (const list of [
      ROC_MODES,
      UNDERSIZED_RULES,
      INFRA_FAILURE_RULES,
      TRANSCRIPT_DIALECTS,
      STD_SCOPES,
      SINGLETON_RULES,
    ]) {
      expect(help).toContain(list.join("|"));
    }
  });

  it("an estimator nobody registered is a usage error that lists the registered ones", () => {
    const result = cli(["advantages", "--estimator", "centered", "-q"], GROUP);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(
      '--estimator: expected one of grpo, rloo, grpo_passk, grpo_vectorized, grpo_vectorized_b178a3c, received "centered"',
    );
  });

  it("--import registers an estimator that --estimator then selects", () => {
    const module = writeCenteredEstimatorModule(dir);
    const result = cli(["advantages", "--import", module, "--estimator", "centered", "-q"], GROUP);
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const advantages = result.stdout
      .trim()
      .split("\n")
      .map((line) => (JSON.parse(line) as { advantage: number }).advantage);
    expect(advantages).toEqual([1 - 1 / 3, 0 - 1 / 3, 0 - 1 / 3]);
  });

  it("--import of a module without a default export function is a usage error naming the module", () => {
    const module = join(dir, "nothing.mjs");
    writeFileSync(module, "export const estimator = 1;\n");
    const result = cli(["advantages", "--import", module, "-q"], GROUP);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain(`--import: ${module} has no default export function`);
  });

  it("--import of a module that cannot be loaded is a usage error", () => {
    const result = cli(["pipeline", "-k", "2", "--seed", "1", "--import", join(dir, "missing.mjs"), "-q"], GROUP);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain("--import: cannot load");
  });
});
