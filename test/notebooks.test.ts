/**
 * The notebooks in examples/notebooks/ (TypeScript, tslab kernel) run headlessly through scripts/run-notebooks.py,
 * which fails on any cell error, error-looking stderr or asynchronous error and prints the failing cell.
 *
 * Needs Debian's Jupyter client packages under /usr/bin/python3 (.ci/run installs them). Without them the
 * execution tests are skipped, with the reason in their title, except under CI (the CI variable set), where
 * that is a failure. The static checks of the committed notebooks always run.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";

const root = fileURLToPath(new URL("..", import.meta.url));
const notebookDir = join(root, "examples", "notebooks");
const runner = join(root, "scripts", "run-notebooks.py");
const python = "/usr/bin/python3";

function jupyterMissing(): string | undefined {
  if (!existsSync(python)) return `${python} not found`;
  const probe = spawnSync(python, ["-c", "import nbclient, nbformat, jupyter_client"], { encoding: "utf8" });
  if (probe.status === 0) return undefined;
  const reason = (probe.stderr || probe.error?.message || "").trim().split("\n").pop();
  return `Jupyter's Python packages are missing (${reason}): apt-get install python3-nbclient python3-nbformat python3-jupyter-client python3-ipykernel`;
}

function run(args: string[], timeoutSeconds: number) {
  const result = spawnSync(python, [runner, ...args], { cwd: root, encoding: "utf8", timeout: timeoutSeconds * 1000 });
  const output = `${result.stdout ?? ""}${result.stderr ?? ""}`;
  return { status: result.status, output: result.error ? `${output}\n${result.error.message}` : output };
}

interface Notebook {
  metadata: { kernelspec?: { name?: string } };
  cells: { cell_type: string; source: string | string[]; outputs?: unknown[]; execution_count?: number | null }[];
}
const notebooks = readdirSync(notebookDir)
  .filter((name) => name.endsWith(".ipynb"))
  .sort()
  .map((name) => ({ name, nb: JSON.parse(readFileSync(join(notebookDir, name), "utf8")) as Notebook }));
const sourceOf = (nb: Notebook) =>
  nb.cells.map((c) => (Array.isArray(c.source) ? c.source.join("") : c.source)).join("\n");

describe("the committed notebooks", () => {
  it("are the three of the issue, at least", () => {
    expect(notebooks.map((n) => n.name)).toEqual(
      expect.arrayContaining([
        "01-roc-one-group.ipynb",
        "02-tfjs-training-loop.ipynb",
        "03-verl-trl-side-by-side.ipynb",
      ]),
    );
  });

  it.each(notebooks.map((n) => [n.name, n.nb] as const))(
    "%s: tslab kernel, no stored outputs, imports grpo-roc by name",
    (_name, nb) => {
      expect(nb.metadata.kernelspec?.name).toBe("tslab");
      for (const cell of nb.cells.filter((c) => c.cell_type === "code")) {
        expect(cell.outputs, "outputs are not committed (the runner writes executed copies to out/notebooks/)").toEqual(
          [],
        );
        expect(cell.execution_count ?? null).toBeNull();
      }
      expect(sourceOf(nb)).toMatch(/from "grpo-roc(\/tfjs)?"/);
      expect(sourceOf(nb)).not.toMatch(/from "\.\.?\/.*src\//);
    },
  );
});

const missing = jupyterMissing();
const requireJupyter = Boolean(process.env.CI);

describe("executing the notebooks (scripts/run-notebooks.py)", () => {
  if (missing !== undefined) {
    if (requireJupyter) {
      it("has Jupyter's Python packages (required under CI: .ci/run installs them)", () => {
        expect.fail(missing);
      });
    } else {
      it.skip(`skipped: ${missing}`, () => {});
    }
    return;
  }

  it("runs every notebook in examples/notebooks without an error", () => {
    const { status, output } = run([], 420);
    expect(status, output).toBe(0);
    for (const { name } of notebooks) expect(output).toContain(`ok   examples/notebooks/${name}`);
  }, 440_000);

  describe("fails, naming the cell and its error", () => {
    mkdirSync(join(root, "out"), { recursive: true });
    const dir = mkdtempSync(join(root, "out", "notebook-runner-test-"));
    afterAll(() => rmSync(dir, { recursive: true, force: true }));
    const write = (name: string, cells: string[]) => {
      const nb = {
        nbformat: 4,
        nbformat_minor: 5,
        metadata: { kernelspec: { name: "tslab", display_name: "TypeScript", language: "typescript" } },
        cells: cells.map((source, i) => ({
          id: `c${i}`,
          cell_type: "code",
          metadata: {},
          source,
          outputs: [],
          execution_count: null,
        })),
      };
      writeFileSync(join(dir, name), JSON.stringify(nb));
    };
    write("a-throws.ipynb", [
      'const answer = 42;\nconsole.log("cell 0 is fine", answer);',
      'function check(): void {\n  throw new Error("deliberate failure in cell 1");\n}\ncheck();',
      'console.log("cell 2 never runs");',
    ]);
    write("b-timer.ipynb", [
      'setTimeout(() => {\n  throw new Error("thrown in a timer, never awaited");\n}, 1);',
      'console.log("this cell succeeds");',
    ]);
    write("c-type-error.ipynb", ['const n: number = "not a number";']);

    let result: { status: number | null; output: string } | undefined;
    const outcome = () => (result ??= run([dir, "--out", ""], 120));

    it("exits non-zero and reports every failing notebook", () => {
      const { status, output } = outcome();
      expect(status, output).toBe(1);
      expect(output).toContain("notebooks: 0 passed, 3 failed");
    }, 150_000);

    it("a throwing cell: its index, its source, and the error from the cell's stderr (tslab's own message is only <Error>:)", () => {
      const { output } = outcome();
      const report = output.slice(output.indexOf("FAIL"), output.indexOf("FAIL", output.indexOf("FAIL") + 1));
      expect(report).toContain("a-throws.ipynb");
      expect(report).toContain("a cell raised an error");
      expect(report).toContain("--- cell 1 ");
      expect(report).toContain('throw new Error("deliberate failure in cell 1");');
      expect(report).toContain("Error: deliberate failure in cell 1");
      expect(report).toContain("<Error>:");
      expect(report).not.toContain("cell 2 never runs");
    }, 150_000);

    it("a throw in a timer, which tslab swallows: reported as an asynchronous error", () => {
      const { output } = outcome();
      expect(output).toMatch(/FAIL .*b-timer\.ipynb.*asynchronous error/);
      expect(output).toContain("uncaught exception");
      expect(output).toContain("Error: thrown in a timer, never awaited");
    }, 150_000);

    it("a type error: tslab's diagnostic", () => {
      const { output } = outcome();
      expect(output).toMatch(/FAIL .*c-type-error\.ipynb/);
      expect(output).toContain("1:7 - Type 'string' is not assignable to type 'number'.");
    }, 150_000);
  });
});
