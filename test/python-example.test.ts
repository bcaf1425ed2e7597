import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeAll, describe, expect, it } from "vitest";
import { CLI, findPython, GRPO_ROC_CLI } from "./helpers/python.js";

// examples/python/trainer.py drives the built bin the way a Python trainer would. It runs here with /usr/bin/python3
// (CI has it), else the first python3 on PATH; only when there is none is the test skipped.
const root = fileURLToPath(new URL("..", import.meta.url));
const TRAINER = join(root, "examples", "python", "trainer.py");

const python = findPython();

function trainer(args: readonly string[], cli: string | undefined = GRPO_ROC_CLI) {
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (cli === undefined) delete env.GRPO_ROC_CLI;
  else env.GRPO_ROC_CLI = cli;
  const result = spawnSync(python!, [TRAINER, ...args], { cwd: root, encoding: "utf8", env, timeout: 60_000 });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

beforeAll(() => {
  if (!existsSync(CLI)) throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
});

describe.skipIf(python === undefined)(
  `examples/python/trainer.py (${python ?? "skipped: no python3 3.9+ found"})`,
  () => {
    it.each(["paper", "reference"])(
      "--mode %s: prints each step's selection and checks that every rollout came back once",
      (mode) => {
        const [steps, prompts, G] = [2, 6, 4];
        const { code, stdout, stderr } = trainer([
          "--steps",
          String(steps),
          "--prompts",
          String(prompts),
          "--group-size",
          String(G),
          "--mode",
          mode,
        ]);
        expect(stderr).toBe("");
        expect(code).toBe(0);
        const lines = stdout.trimEnd().split("\n");
        expect(lines).toHaveLength(2 * steps + 1);
        for (let step = 1; step <= steps; step++) {
          const head = new RegExp(
            `^step ${step}: ${prompts} groups \\((\\d+) trained on\\), ${prompts * 2 * G} rollouts -> kept (\\d+), dropped (\\d+) \\((.*)\\)$`,
          ).exec(lines[2 * step - 2]!);
          expect(head, lines[2 * step - 2]).not.toBeNull();
          const [trained, kept, dropped] = [Number(head![1]), Number(head![2]), Number(head![3])];
          // Every group of 2G is resampled to G, or dropped whole (all rewards equal).
          expect(kept).toBe(trained * G);
          expect(kept + dropped).toBe(prompts * 2 * G);
          const byReason = head![4]!.split(", ").map((part) => /^(\d+) ([a-z-]+)$/.exec(part)!);
          expect(byReason.reduce((sum, match) => sum + Number(match[1]), 0)).toBe(dropped);
          expect(byReason.map((match) => match[2])).toEqual(expect.arrayContaining(["not-selected"]));
          expect(lines[2 * step - 1]).toMatch(
            /^ {2}mean advantage of kept [+-]\d\.\d{4}; tool-error ratio: kept correct (\d\.\d{3}|nan) vs all correct (\d\.\d{3}|nan)$/,
          );
        }
        expect(lines.at(-1)).toBe(`ok: ${steps} steps, every rollout came back exactly once`);
      },
    );

    it("without GRPO_ROC_CLI it runs `npx --no-install grpo-roc`, the bin of this repository", () => {
      const { code, stdout } = trainer(["--steps", "1"], undefined);
      expect(code).toBe(0);
      expect(stdout).toBe(trainer(["--steps", "1"]).stdout);
    });

    it("the same seed gives the same run", () => {
      expect(trainer(["--steps", "2", "--seed", "5"]).stdout).toBe(trainer(["--steps", "2", "--seed", "5"]).stdout);
    });

    it("a non-zero exit of the CLI raises with the CLI's stderr", () => {
      const { code, stderr } = trainer(["--steps", "1", "--group-size", "0"]);
      expect(code).not.toBe(0);
      expect(stderr).toContain("GrpoRocError");
      expect(stderr).toContain("exited with code 2:");
      expect(stderr).toContain("grpo-roc pipeline: --keep: expected an integer ≥ 1, received 0");
    });
  },
);
