/**
 * The Python client shipped in the package (python/grpo_roc_client.py), run with /usr/bin/python3 against the built
 * bin, and the verl-style example that uses it (examples/python/verl_style_step.py). Only where no Python 3.9+ is
 * found are these skipped.
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CLI, findPython, GRPO_ROC_CLI } from "./helpers/python.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const CLIENT_DIR = join(root, "python");
const EXAMPLE = join(root, "examples", "python", "verl_style_step.py");
const STRUCTURED = join(root, "test", "fixtures", "cli", "structured.jsonl");
const TRANSCRIPTS = join(root, "test", "fixtures", "cli", "transcripts.jsonl");
const python = findPython();

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "grpo-roc-python-"));
  if (spawnSync(process.execPath, [CLI, "--version"]).status !== 0) {
    throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Runs Python code with the client importable; no bytecode is written into the package's python/ folder. */
function runPython(code: string, env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(python!, ["-c", code], {
    cwd: root,
    encoding: "utf8",
    timeout: 120_000,
    maxBuffer: 1 << 28,
    env: { ...process.env, PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: "1", GRPO_ROC_CLI, ...env },
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** Python that prints one JSON value, the result of `expression` after `setup`. */
function evaluate(setup: string, expression: string): unknown {
  const { code, stdout, stderr } = runPython(`${setup}\nimport json as _json\nprint(_json.dumps(${expression}))`);
  expect(stderr).toBe("");
  expect(code).toBe(0);
  return JSON.parse(stdout);
}

const PRELUDE = `
import json
from grpo_roc_client import GrpoRocServer, GrpoRocRequestError, GrpoRocServerError, Response
def load(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
`;

/** The command line's records and --summary for a file. */
function command(args: readonly string[], file: string): { records: unknown[]; summary: unknown } {
  const out = join(dir, "out.jsonl");
  const summary = join(dir, "summary.json");
  const result = spawnSync(process.execPath, [CLI, ...args, "-q", "-o", out, "--summary", summary, file]);
  expect(result.status).toBe(0);
  return {
    records: readFileSync(out, "utf8")
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line)),
    summary: JSON.parse(readFileSync(summary, "utf8")),
  };
}

describe.skipIf(python === undefined)(
  `python/grpo_roc_client.py (${python ?? "skipped: no python3 3.9+ found"})`,
  () => {
    it.each([
      ["pipeline", STRUCTURED, "keep=4, seed=3", ["-k", "4", "--seed", "3"]],
      [
        "pipeline",
        TRANSCRIPTS,
        "keep=4, mode='reference', preset='trl', std_scope='batch'",
        ["-k", "4", "--mode", "reference", "--preset", "trl", "--std-scope", "batch"],
      ],
      ["resample", STRUCTURED, "keep=4, seed='a', kept_only=True", ["-k", "4", "--seed", "a", "--kept-only"]],
      ["advantages", STRUCTURED, "preset='verlRloo'", ["--preset", "verlRloo"]],
      ["penalties", TRANSCRIPTS, "failure_kinds=['timeout']", ["--failure-kinds", "timeout"]],
    ] as const)(
      "%s(%s, %s): the records and summary the command writes for the same file",
      (name, file, options, flags) => {
        const got = evaluate(
          `${PRELUDE}\nwith GrpoRocServer() as server:\n` +
            `    response = server.${name}(load(${JSON.stringify(file)}), ${options})`,
          "{'records': response.records, 'summary': response.summary, 'ms': response.elapsed_ms}",
        ) as { records: unknown[]; summary: unknown; ms: number };
        const expected = command([name, ...flags], file);
        expect(got.records).toEqual(expected.records);
        expect(got.summary).toEqual(expected.summary);
        expect(got.ms).toBeGreaterThan(0);
      },
    );

    it("many calls on one server; `kept` is the records not dropped; close() returns 0", () => {
      const got = evaluate(
        `${PRELUDE}
rollouts = load(${JSON.stringify(STRUCTURED)})
server = GrpoRocServer()
first = server.pipeline(rollouts, keep=4, seed=1)
again = [server.pipeline(rollouts, keep=4, seed=1).records == first.records for _ in range(3)]
kept = first.kept == [r for r in first.records if not r["dropped"]] and len(first.kept) > 0
code = server.close()`,
        "[again, kept, code]",
      );
      expect(got).toEqual([[true, true, true], true, 0]);
    });

    it("a bad request raises GrpoRocRequestError with the server's issues, and the next request works", () => {
      const got = evaluate(
        `${PRELUDE}
bad = {"tool_calls": [{"outcome": "boom"}], "answers": 1, "turns": 1}
with GrpoRocServer() as server:
    caught = []
    for call in (
        lambda: server.pipeline([dict(bad, group_id="q", reward=1)], keep=1, seed=0),
        lambda: server.pipeline([], keep=2, seeed=1),
        lambda: server.resample([], seed=1),
        lambda: server.request("pipelines", [], {}),
    ):
        try:
            call()
        except GrpoRocRequestError as error:
            issue = error.issues[0]
            caught.append([error.request_id, issue["path"], issue["message"], str(error) == error.message])
    after = server.resample([{"group_id": "q", "reward": 1}, {"group_id": "q", "reward": 0}], keep=2, seed=0).records`,
        "{'caught': caught, 'after': len(after)}",
      ) as { caught: [number, string, string, boolean][]; after: number };
      expect(got.caught).toEqual([
        [1, "rollouts[0].tool_calls[0].outcome", expect.stringMatching(/^outcome must be one of ok, /), true],
        [2, "options.seeed", 'unknown key; did you mean "seed"?', true],
        [3, "options.keep", expect.stringMatching(/^required: /), true],
        [4, "command", expect.stringMatching(/did you mean "pipeline"\?$/), true],
      ]);
      expect(got.after).toBe(2);
    });

    it("snake_case fields and camelCase fields give the same records; options left as None are not sent", () => {
      const got = evaluate(
        `${PRELUDE}
camel = load(${JSON.stringify(STRUCTURED)})
python_names = {"groupId": "group_id", "toolCalls": "tool_calls", "formatOk": "format_ok"}
snake = [{python_names.get(k, k): v for k, v in r.items()} for r in camel]
with GrpoRocServer() as server:
    same = server.pipeline(snake, keep=4, seed=2).records == server.pipeline(camel, keep=4, seed=2).records
    unset = server.pipeline(camel, keep=4, seed=2, mode=None).records
    default = unset == server.pipeline(camel, keep=4, seed=2).records`,
        "[same, default, any('tool_calls' in r for r in snake)]",
      );
      expect(got).toEqual([true, true, true]);
    });

    it("a value JSON cannot carry (a NaN reward) raises ValueError before anything is sent", () => {
      const got = evaluate(
        `${PRELUDE}
with GrpoRocServer() as server:
    try:
        server.advantages([{"group_id": "q", "reward": float("nan")}])
        raised = None
    except ValueError as error:
        raised = type(error).__name__
    after = len(server.advantages([{"group_id": "q", "reward": 1.0}]).records)`,
        "[raised, after]",
      );
      expect(got).toEqual(["ValueError", 1]);
    });

    it("a dead server (killed, exited, never started, or not speaking the protocol): GrpoRocServerError", () => {
      const got = evaluate(
        `${PRELUDE}
import os, signal
results = []
server = GrpoRocServer()
server.advantages([{"group_id": "q", "reward": 1}])
os.kill(server._process.pid, signal.SIGKILL)
server._process.wait()
try:
    server.advantages([{"group_id": "q", "reward": 1}])
except GrpoRocServerError as error:
    results.append(["killed", error.returncode])
failing = GrpoRocServer(["node", "-e", "process.stderr.write('cannot serve today'); process.exit(3)"])
try:
    failing.advantages([{"group_id": "q", "reward": 1}])
except GrpoRocServerError as error:
    results.append(["exit", error.returncode, error.stderr])
try:
    GrpoRocServer(["/nonexistent/grpo-roc", "serve"])
except GrpoRocServerError as error:
    results.append(["start", str(error).startswith("cannot start /nonexistent/grpo-roc serve")])
impostor = GrpoRocServer(["node", "-e", "process.stdin.once('data', () => console.log('{\\"hello\\":1}'))"])
try:
    impostor.advantages([])
except GrpoRocServerError as error:
    results.append(["protocol", "out of turn" in str(error)])`,
        "results",
      );
      expect(got).toEqual([
        ["killed", -9],
        ["exit", 3, "cannot serve today"],
        ["start", true],
        ["protocol", true],
      ]);
    });

    it("without a command it runs $GRPO_ROC_CLI serve, else `npx --no-install grpo-roc serve` (this bin)", () => {
      const code =
        `${PRELUDE}\nwith GrpoRocServer() as server:\n` +
        `    print(server.command[-1], len(server.advantages([{"group_id": "q", "reward": 1}]).records))`;
      const withEnv = runPython(code);
      expect(withEnv.stdout).toBe("serve 1\n");
      const env = { ...process.env };
      delete env.GRPO_ROC_CLI;
      const result = spawnSync(python!, ["-c", code], {
        cwd: root,
        encoding: "utf8",
        timeout: 120_000,
        env: { ...env, PYTHONPATH: CLIENT_DIR, PYTHONDONTWRITEBYTECODE: "1" },
      });
      expect(result.stdout).toBe("serve 1\n");
    });
  },
);

it("the client ships in the package: npm pack includes python/grpo_roc_client.py, and nothing else of python/", () => {
  const pack = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: root, encoding: "utf8" });
  expect(pack.status).toBe(0);
  const files = (JSON.parse(pack.stdout) as { files: { path: string }[] }[])[0]!.files.map((file) => file.path);
  expect(files.filter((file) => file.startsWith("python/"))).toEqual(["python/grpo_roc_client.py"]);
});

describe.skipIf(python === undefined)(`examples/python/verl_style_step.py (${python ?? "skipped: no python3"})`, () => {
  it("runs a verl-style step end to end: RoC after the rewards, the log-prob pass on the kept rollouts only", () => {
    const result = spawnSync(python!, [EXAMPLE, "--steps", "3", "--prompts", "6", "--group-size", "4"], {
      cwd: root,
      encoding: "utf8",
      timeout: 120_000,
      env: { ...process.env, GRPO_ROC_CLI, PYTHONDONTWRITEBYTECODE: "1" },
    });
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const lines = result.stdout.trimEnd().split("\n");
    expect(lines.at(-1)).toBe("ok: 3 steps");
    const steps = lines.filter((line) => line.startsWith("step "));
    expect(steps).toHaveLength(3);
    for (const line of steps) {
      const match = new RegExp(
        String.raw`^step \d: 48 rollouts -> (\d+) kept from (\d+) groups \((\d+) dropped: equal rewards\); ` +
          String.raw`old-log-prob pass over (\d+) of (\d+) tokens; advantages = GRPO's \(max diff (.*)\)$`,
      ).exec(line);
      expect(match, line).not.toBeNull();
      const [kept, groups, dropped, tokens, allTokens] = match!.slice(1, 6).map(Number) as [
        number,
        number,
        number,
        number,
        number,
      ];
      expect(kept).toBe(4 * groups);
      expect(groups + dropped).toBe(6);
      expect(tokens).toBeLessThan(allTokens);
      expect(Number(match![6])).toBeLessThan(1e-9);
    }
  });
});
