/**
 * `grpo-roc serve` as a client meets it (the built bin, dist/cli.js, as a child process): the protocol, responses
 * equal to what the commands write for the same rollouts, requests independent of each other, one error line per bad
 * request with the server still serving, end of input, the request size limit, signals and a closed stdout. Also
 * rollout fields in snake_case, in every command. Expected records are never written down: each is what the
 * command line gives for the same rollouts.
 */
import { type ChildProcessWithoutNullStreams, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { writeCenteredEstimatorModule } from "./helpers/estimators.js";
import { advantageSection, groupingSection, ioSection, penaltySection, rocSection } from "../src/cli/options.js";
import { optionKey, optionIssues, requestOptions, valuesFromOptions } from "../src/cli/serve-options.js";
import { MAX_ID_CHARACTERS, parseRequest, RequestError } from "../src/cli/serve-request.js";
import { UsageError } from "../src/cli/args.js";

const root = fileURLToPath(new URL("..", import.meta.url));
const CLI = join(root, "dist", "cli.js");
const fixture = (name: string) => join(root, "test", "fixtures", "cli", name);
const STRUCTURED = fixture("structured.jsonl");
const TRANSCRIPTS = fixture("transcripts.jsonl");

type Line = { [key: string]: unknown; id: unknown; type: "record" | "summary" | "error" };
type Record = { [key: string]: unknown; line: number; dropped: boolean };

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), "grpo-roc-serve-"));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const linesOf = (file: string) => readFileSync(file, "utf8").trimEnd().split("\n");
const parseLines = (text: string) =>
  text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as Line);

/** A request line whose rollouts are the given JSON texts, verbatim. */
function request(id: unknown, command: string, options: object, rollouts: readonly string[]): string {
  const head = `{"id":${JSON.stringify(id)},"command":"${command}","options":${JSON.stringify(options)}`;
  return `${head},"rollouts":[${rollouts.join(",")}]}`;
}

/** The command line's records and --summary for a file of rollouts. */
function command(args: readonly string[], file: string): { records: Record[]; summary: unknown } {
  const out = join(dir, "out.jsonl");
  const summary = join(dir, "summary.json");
  const result = spawnSync(process.execPath, [CLI, ...args, "-q", "-o", out, "--summary", summary, file], {
    encoding: "utf8",
  });
  expect(result.stderr).toBe("");
  expect(result.status).toBe(0);
  return {
    records: parseLines(readFileSync(out, "utf8")) as unknown as Record[],
    summary: JSON.parse(readFileSync(summary, "utf8")),
  };
}

/** Runs a server over the whole input at once. */
function serveAll(input: string, args: readonly string[] = []) {
  const result = spawnSync(process.execPath, [CLI, "serve", ...args], { input, encoding: "utf8", maxBuffer: 1 << 28 });
  return { code: result.status, signal: result.signal, stdout: result.stdout, stderr: result.stderr };
}

/** A running server, asked one request at a time, as a trainer asks it. */
class Server {
  readonly child: ChildProcessWithoutNullStreams;
  private readonly lines: AsyncIterator<string>;
  private stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: readonly string[] = []) {
    this.child = spawn(process.execPath, [CLI, "serve", ...args]);
    this.child.stderr.on("data", (chunk) => {
      this.stderr += chunk;
    });
    this.child.stdin.on("error", () => {});
    this.lines = createInterface({ input: this.child.stdout })[Symbol.asyncIterator]();
    this.exited = new Promise((resolve) => this.child.on("exit", (code, signal) => resolve({ code, signal })));
  }

  /** Sends one line; its response lines, raw, through the summary or the error. */
  async ask(line: string): Promise<string[]> {
    this.child.stdin.write(`${line}\n`);
    const response: string[] = [];
    for (;;) {
      const next = await this.lines.next();
      if (next.done) throw new Error(`the server ended; stderr: ${this.stderr}`);
      response.push(next.value);
      const { type } = JSON.parse(next.value) as Line;
      if (type === "summary" || type === "error") return response;
    }
  }

  async end(): Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> {
    this.child.stdin.end();
    return { ...(await this.exited), stderr: this.stderr };
  }
}

/** The records and summary of a response, checking that every line carries the request's id and a type. */
function unwrap(lines: readonly string[], id: unknown): { records: Record[]; summary: unknown; elapsedMs: number } {
  const parsed = lines.map((line) => JSON.parse(line) as Line);
  for (const line of parsed) expect(line.id).toEqual(id);
  expect(parsed.map((line) => line.type)).toEqual([...parsed.slice(0, -1).map(() => "record"), "summary"]);
  for (const line of parsed.slice(0, -1)) expect(Object.keys(line)).toEqual(["id", "type", "record"]);
  const last = parsed.at(-1)!;
  expect(Object.keys(last)).toEqual(["id", "type", "summary", "elapsedMs"]);
  return {
    records: parsed.slice(0, -1).map((line) => line.record as Record),
    summary: last.summary,
    elapsedMs: last.elapsedMs as number,
  };
}

function errorOf(lines: readonly string[]): {
  id: unknown;
  message: string;
  issues: { path: string; message: string }[];
} {
  expect(lines).toHaveLength(1);
  const line = JSON.parse(lines[0]!) as Line;
  expect(line.type).toBe("error");
  expect(Object.keys(line)).toEqual(["id", "type", "error"]);
  const error = line.error as { message: string; issues: { path: string; message: string }[] };
  return { id: line.id, ...error };
}

beforeAll(() => {
  if (spawnSync(process.execPath, [CLI, "--version"]).status !== 0) {
    throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  }
});

describe("responses: the records the commands write for the same rollouts", () => {
  const cases = [
    { name: "pipeline, paper", command: "pipeline", options: { keep: 4, seed: 7 }, flags: ["-k", "4", "--seed", "7"] },
    {
      name: "pipeline, reference mode, the trl preset over the batch std (two passes), kept only",
      command: "pipeline",
      options: { keep: 4, mode: "reference", preset: "trl", std_scope: "batch", kept_only: true },
      flags: ["-k", "4", "--mode", "reference", "--preset", "trl", "--std-scope", "batch", "--kept-only"],
    },
    {
      name: "resample with every kind of option",
      command: "resample",
      options: {
        keep: 4,
        seed: "step-3",
        undersized: "drop",
        keep_equal_rewards: true,
        failure_kinds: ["timeout", "parse_error"],
        error_weight: 0.5,
        format_weight: 2,
        no_tool_call_penalty: 0.25,
        include_rollout: true,
      },
      flags: [
        "-k",
        "4",
        "--seed",
        "step-3",
        "--undersized",
        "drop",
        "--keep-equal-rewards",
        "--failure-kinds",
        "timeout,parse_error",
        "--error-weight",
        "0.5",
        "--format-weight",
        "2",
        "--no-tool-call-penalty",
        "0.25",
        "--include-rollout",
      ],
    },
    {
      name: "advantages, Dr. GRPO",
      command: "advantages",
      options: { no_std: true, epsilon: 1e-4, singleton: "zero" },
      flags: ["--no-std", "--epsilon", "0.0001", "--singleton", "zero"],
    },
    {
      name: "penalties, reference dialect",
      command: "penalties",
      options: { dialect: "reference" },
      flags: ["--dialect", "reference"],
    },
  ] as const;

  it.each(
    cases.flatMap((c) => [STRUCTURED, TRANSCRIPTS].map((file) => [c.name, file.split("/").at(-1)!, c, file] as const)),
  )(
    "%s, %s: records and summary as the command's, every line with the request's id and its type",
    async (_, __, c, file) => {
      const expected = command([c.command, ...c.flags], file);
      const server = new Server();
      const response = unwrap(await server.ask(request({ step: 3 }, c.command, c.options, linesOf(file))), { step: 3 });
      expect(response.records).toEqual(expected.records);
      expect(response.summary).toEqual(expected.summary);
      expect(response.elapsedMs).toBeGreaterThan(0);
      expect(await server.end()).toEqual({ code: 0, signal: null, stderr: "" });
    },
  );

  it("ASCII rollouts get ASCII responses, reasons included: a client's JSON parser reads them a third faster", () => {
    const ascii = /^[\t\n\r\x20-\x7e]*$/;
    const requests = cases.flatMap((c) =>
      [STRUCTURED, TRANSCRIPTS].map((file, k) => {
        expect(readFileSync(file, "utf8")).toMatch(ascii);
        return request(k, c.command, c.options, linesOf(file));
      }),
    );
    const { stdout, code } = serveAll(`${requests.join("\n")}\n`);
    expect(code).toBe(0);
    // Every kind of reason is among them, the weighted draw of paper mode's positives included.
    for (const reason of ["not-selected", "equal-rewards", "weighted by 1/penalty", "not drawn among negatives"]) {
      expect(stdout).toContain(reason);
    }
    expect(stdout).toMatch(ascii);
  });

  it("ids are kept to the last digit, written back as the rollout wrote them; the request's id as written", () => {
    const rollouts = [
      '{"id":18446744073709551615,"groupId":18446744073709551615,"reward":1}',
      '{"id":18446744073709551614,"groupId":18446744073709551615,"reward":0}',
      '{"id":1.50,"groupId":18446744073709551614,"reward":1}',
      '{"id":2,"groupId":18446744073709551614,"reward":0}',
    ];
    const line = `{"id": 123456789012345678901234567890, "command":"advantages","rollouts":[${rollouts.join(" , ")}]}`;
    const { stdout, code } = serveAll(`${line}\n`);
    expect(code).toBe(0);
    const out = stdout.trimEnd().split("\n");
    for (const text of out) expect(text.startsWith('{"id":123456789012345678901234567890,"type":')).toBe(true);
    expect(out[0]).toContain('"record":{"line":1,"id":18446744073709551615,"groupId":18446744073709551615,');
    expect(out[1]).toContain('"record":{"line":2,"id":18446744073709551614,"groupId":18446744073709551615,');
    expect(out[2]).toContain('"record":{"line":3,"id":1.50,"groupId":18446744073709551614,');
    // Two groups, not one: the ids are not rounded to the same float.
    expect(JSON.parse(out[4]!).summary.groups).toBe(2);
  });

  it("no rollouts: no records, a summary of zeros", async () => {
    const server = new Server();
    const response = unwrap(
      await server.ask('{"command":"pipeline","options":{"keep":2,"seed":0},"rollouts":[]}'),
      null,
    );
    expect(response.records).toEqual([]);
    expect(response.summary).toMatchObject({ command: "pipeline", lines: 0, rollouts: 0, kept: 0, records: 0 });
    await server.end();
  });

  it("skip_invalid: a bad rollout is an invalid record in its place, as --skip-invalid writes it", async () => {
    const file = fixture("bad-lines.jsonl");
    // Its lines that are JSON: a rollout that is not makes a request not JSON, refused whole (tested below).
    const rollouts = linesOf(file).filter((line) => {
      try {
        return JSON.parse(line) !== undefined;
      } catch {
        return false;
      }
    });
    // The command over the same rollouts, one a line.
    writeFileSync(join(dir, "bad.jsonl"), `${rollouts.join("\n")}\n`);
    const expected = command(["resample", "-k", "2", "--seed", "1", "--skip-invalid"], join(dir, "bad.jsonl"));
    const server = new Server();
    const response = unwrap(
      await server.ask(request(1, "resample", { keep: 2, seed: 1, skip_invalid: true }, rollouts)),
      1,
    );
    expect(response.records).toEqual(expected.records);
    expect(response.records.some((record) => record.reasonCode === "invalid")).toBe(true);
    await server.end();
  });
});

describe("requests are independent", () => {
  it("the same request gives the same records whatever came before: other commands, errors, seeds", async () => {
    const rollouts = linesOf(STRUCTURED);
    const asked = request(1, "pipeline", { keep: 4, seed: 1 }, rollouts);
    const fresh = new Server();
    const alone = unwrap(await fresh.ask(asked), 1).records;
    await fresh.end();
    const server = new Server();
    const seen: Record[][] = [];
    for (const line of [
      asked,
      request(2, "pipeline", { keep: 4, seed: 2, std_scope: "batch" }, rollouts),
      "not json",
      request(3, "resample", { keep: 3, seed: 1, mode: "reference" }, rollouts),
      request(4, "pipeline", { keep: 4, seed: 1 }, ['{"groupId":"x","reward":"one"}']),
      request(1, "pipeline", { keep: 4, seed: 1 }, rollouts),
    ]) {
      const response = await server.ask(line);
      if (line === asked) seen.push(unwrap(response, 1).records);
    }
    expect(seen).toHaveLength(2);
    for (const records of seen) expect(records).toEqual(alone);
    expect(await server.end()).toEqual({ code: 0, signal: null, stderr: "" });
  });
});

describe("a bad request gets one error line, and the server goes on", () => {
  const valid = request("ok", "resample", { keep: 2, seed: 0 }, [
    '{"groupId":"q","reward":1}',
    '{"groupId":"q","reward":0}',
  ]);
  const cases: [string, string, unknown, string, RegExp][] = [
    ["not JSON", "{nope", null, "", /^not JSON: /],
    [
      "JSON that is not an object",
      "[1,2]",
      null,
      "",
      /^expected a request object \{ id, command, rollouts, options \}, received array$/,
    ],
    [
      "an unknown field",
      '{"id":1,"comand":"pipeline","rollouts":[]}',
      1,
      "comand",
      /^unknown key; did you mean "command"\?$/,
    ],
    [
      "no command",
      '{"id":2,"rollouts":[]}',
      2,
      "command",
      /^required: one of penalties, resample, advantages, pipeline$/,
    ],
    ["a misspelt command", '{"id":3,"command":"pipelin","rollouts":[]}', 3, "command", /did you mean "pipeline"\?$/],
    ["no rollouts", '{"id":4,"command":"pipeline"}', 4, "rollouts", /^required: the rollouts, an array$/],
    [
      "rollouts that are not an array",
      '{"id":5,"command":"pipeline","rollouts":{"a":1}}',
      5,
      "rollouts",
      /^expected an array of rollouts, received object$/,
    ],
    [
      "options that are not an object",
      '{"id":6,"command":"advantages","rollouts":[],"options":[]}',
      6,
      "options",
      /^expected an object, received array$/,
    ],
    [
      "a field given twice",
      '{"id":7,"command":"advantages","rollouts":[],"rollouts":[]}',
      7,
      "rollouts",
      /^given twice/,
    ],
    [
      "an unknown option",
      '{"id":8,"command":"pipeline","rollouts":[],"options":{"keep":2,"seeed":1}}',
      8,
      "options.seeed",
      /^unknown key; did you mean "seed"\?$/,
    ],
    [
      "an option of the process, not the records",
      '{"id":9,"command":"pipeline","rollouts":[],"options":{"output":"x"}}',
      9,
      "options.output",
      /^unknown key/,
    ],
    [
      "a number as a string",
      '{"id":10,"command":"pipeline","rollouts":[],"options":{"keep":"16"}}',
      10,
      "options.keep",
      /^expected a number, received string \("16"\)$/,
    ],
    [
      "a boolean flag given a number",
      '{"id":11,"command":"pipeline","rollouts":[],"options":{"keep":2,"seed":1,"kept_only":1}}',
      11,
      "options.kept_only",
      /^expected true or false, received 1$/,
    ],
    [
      "a list as a string",
      '{"id":12,"command":"penalties","rollouts":[],"options":{"failure_kinds":"timeout"}}',
      12,
      "options.failure_kinds",
      /^expected an array of names/,
    ],
    [
      "a value out of range",
      '{"id":13,"command":"pipeline","rollouts":[],"options":{"keep":0,"seed":1}}',
      13,
      "options.keep",
      /^expected an integer ≥ 1, received 0$/,
    ],
    [
      "a required option left out",
      '{"id":14,"command":"resample","rollouts":[],"options":{"seed":1}}',
      14,
      "options.keep",
      /^required: /,
    ],
    [
      "a choice that is not one",
      '{"id":15,"command":"pipeline","rollouts":[],"options":{"keep":2,"mode":"papr"}}',
      15,
      "options.mode",
      /^expected one of paper, reference, received "papr"$/,
    ],
    [
      "a bad rollout",
      request(16, "pipeline", { keep: 2, seed: 1 }, [
        '{"groupId":"q","reward":1}',
        '{"groupId":"q","reward":1,"toolCalls":[{"outcome":"boom"}],"answers":1,"turns":1}',
      ]),
      16,
      "rollouts[1].toolCalls[0].outcome",
      /^outcome must be one of /,
    ],
    [
      "a rollout that is not JSON, even under skip_invalid",
      '{"id":17,"command":"penalties","options":{"skip_invalid":true},' +
        '"rollouts":[{"groupId":"q","reward":1},{"groupId":"q",}]}',
      17,
      "rollouts[1]",
      /^not JSON: /,
    ],
    [
      "a group the library refuses",
      request(18, "resample", { keep: 3, seed: 1, undersized: "error" }, [
        '{"groupId":"q","reward":1}',
        '{"groupId":"q","reward":0}',
      ]),
      18,
      "rollouts[0].groupId",
      /^group "q" has 2 rollouts, fewer than keepPerGroup = 3$/,
    ],
    [
      "an id too long to echo",
      `{"id":"${"x".repeat(MAX_ID_CHARACTERS)}","command":"advantages","rollouts":[]}`,
      null,
      "id",
      /characters of JSON, over the limit of 1024/,
    ],
    ["trailing garbage", '{"id":19,"command":"advantages","rollouts":[]} x', 19, "", /^not JSON: /],
  ];

  it.each(cases)("%s: one error line naming it, with the request's id", async (_, line, id, path, message) => {
    const server = new Server();
    const error = errorOf(await server.ask(line));
    expect(error.id).toEqual(id);
    expect(error.issues.map((issue) => issue.path)).toContain(path);
    expect(error.issues.find((issue) => issue.path === path)!.message).toMatch(message);
    // The message lists the issues, one a line.
    expect(error.message.split("\n")[0]).toBe(
      error.issues[0]!.path === "" ? error.issues[0]!.message : `${error.issues[0]!.path}: ${error.issues[0]!.message}`,
    );
    expect(unwrap(await server.ask(valid), "ok").records).toHaveLength(2);
    expect(await server.end()).toEqual({ code: 0, signal: null, stderr: "" });
  });

  it("every problem of the request's own fields at once", () => {
    try {
      parseRequest('{"id":1,"command":"pipelines","rollouts":7,"options":3,"extra":true}', ["pipeline"]);
      expect.fail("parsed");
    } catch (error) {
      expect(error).toBeInstanceOf(RequestError);
      expect((error as RequestError).issues.map((issue) => issue.path)).toEqual([
        "extra",
        "command",
        "rollouts",
        "options",
      ]);
    }
  });
});

describe("end of input, empty lines, the size limit", () => {
  it("no input: exit 0, nothing written; empty lines are ignored; a last line without a newline is answered", () => {
    expect(serveAll("")).toEqual({ code: 0, signal: null, stdout: "", stderr: "" });
    const line = request(1, "advantages", {}, ['{"groupId":"q","reward":1}']);
    const result = serveAll(`\n  \n\r\n${line}`);
    expect(result.code).toBe(0);
    expect(parseLines(result.stdout).map((l) => l.type)).toEqual(["record", "summary"]);
  });

  it("a request over --max-request-bytes gets an error response, unread; the next one is served", async () => {
    const server = new Server(["--max-request-bytes", "1000"]);
    const big = request(1, "advantages", {}, Array(100).fill('{"groupId":"q","reward":1}'));
    const error = errorOf(await server.ask(big));
    expect(error).toMatchObject({
      id: null,
      issues: [
        {
          path: "",
          message:
            `${big.length} bytes, over the limit of 1000 bytes a request (--max-request-bytes); the request was ` +
            "skipped unparsed, holding no more than the limit in memory",
        },
      ],
    });
    unwrap(await server.ask(request(2, "advantages", {}, ['{"groupId":"q","reward":1}'])), 2);
    await server.end();
  });

  it("a request of 64 MB over a 1 MiB limit costs the server no more than the limit", async () => {
    const server = new Server(["--max-request-bytes", String(1 << 20)]);
    const chunk = `${'{"groupId":"q","reward":1},'.repeat(40_000)}`;
    server.child.stdin.write('{"id":1,"command":"advantages","rollouts":[');
    for (let sent = 0; sent < 64e6; sent += chunk.length) {
      if (!server.child.stdin.write(chunk)) await new Promise((resolve) => server.child.stdin.once("drain", resolve));
    }
    const error = errorOf(await server.ask('{"groupId":"q","reward":1}]}'));
    expect(error.message).toMatch(/^\d{8} bytes, over the limit of 1048576 bytes a request/);
    const status = readFileSync(`/proc/${server.child.pid}/status`, "utf8");
    const peakMiB = Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
    expect(peakMiB).toBeLessThan(150);
    await server.end();
  });

  it("the limit is checked as a usage error: a number of bytes from 1 to 2^29 − 24", () => {
    for (const value of ["0", "1e6", "-1", "536870889"]) {
      const result = serveAll("", [`--max-request-bytes=${value}`]);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(/^grpo-roc serve: --max-request-bytes: expected an integer/);
    }
  });
});

describe("the process: signals, a closed stdout, help, usage", () => {
  it.each([
    ["SIGTERM", 143],
    ["SIGINT", 130],
  ] as const)("%s: exit %d, whether idle or in the middle of a request", async (signal, code) => {
    const idle = new Server();
    unwrap(await idle.ask(request(1, "advantages", {}, ['{"groupId":"q","reward":1}'])), 1);
    idle.child.kill(signal);
    expect((await idle.exited).code).toBe(code);
    const busy = new Server();
    // Once it serves (a signal while Node itself starts has its default effect), half a request, then the signal.
    unwrap(await busy.ask(request(1, "advantages", {}, ['{"groupId":"q","reward":1}'])), 1);
    busy.child.stdin.write('{"id":2,"command":"advantages","rollouts":[');
    await new Promise((resolve) => setTimeout(resolve, 50));
    busy.child.kill(signal);
    expect((await busy.exited).code).toBe(code);
  });

  it("the client gone (stdout closed): exit 3, no message", async () => {
    const server = new Server();
    server.child.stdout.destroy();
    server.child.stdin.write(`${request(1, "pipeline", { keep: 4, seed: 1 }, linesOf(STRUCTURED))}\n`);
    server.child.stdin.write(`${request(2, "pipeline", { keep: 4, seed: 1 }, linesOf(STRUCTURED))}\n`);
    const { code, stderr } = await server.end();
    expect(code).toBe(3);
    expect(stderr).toBe("");
  });

  it("--help and `help serve` print its help; the main help lists it; a FILE or a wrong flag: usage errors", () => {
    const help = spawnSync(process.execPath, [CLI, "serve", "--help"], { encoding: "utf8" });
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: grpo-roc serve \[--max-request-bytes N\] \[--import MODULE\]\n/);
    expect(help.stdout).toContain("Exit codes: 0 end of input, 2 usage error, 3 stdin cannot be read or stdout");
    expect(spawnSync(process.execPath, [CLI, "help", "serve"], { encoding: "utf8" }).stdout).toBe(help.stdout);
    expect(spawnSync(process.execPath, [CLI, "--help"], { encoding: "utf8" }).stdout).toMatch(/^ {2}serve {7}Answer/m);
    const file = serveAll("", [STRUCTURED]);
    expect(file.code).toBe(2);
    expect(file.stderr).toContain("grpo-roc serve: requests are read from stdin; received an argument:");
    expect(serveAll("", ["--keep", "2"]).code).toBe(2);
  });

  it("a group's own error (a registered estimator's NaN) is named by the group's rollouts as a slice", async () => {
    const module = join(dir, "broken.mjs");
    writeFileSync(
      module,
      "export default ({ registerAdvantageEstimator }) =>\n" +
        "  registerAdvantageEstimator('broken', (rewards) => rewards.map(() => Number.NaN));\n",
    );
    const server = new Server(["--import", module]);
    const rollouts = ['{"groupId":"q","reward":1}', '{"groupId":"q","reward":0}', '{"groupId":"p","reward":1}'];
    const error = errorOf(await server.ask(request(1, "advantages", { estimator: "broken" }, rollouts)));
    expect(error.issues[0]).toEqual({
      path: "rollouts[0:2].rewards[0]",
      message: 'its advantage is NaN (estimator "broken", group "q"): not a finite number',
    });
    await server.end();
  });

  it("--import registers an estimator that requests then select", async () => {
    const module = writeCenteredEstimatorModule(dir);
    const server = new Server(["--import", module]);
    const rollouts = ['{"groupId":"q","reward":1}', '{"groupId":"q","reward":0}', '{"groupId":"q","reward":0}'];
    const { records } = unwrap(await server.ask(request(1, "advantages", { estimator: "centered" }, rollouts)), 1);
    expect(records.map((record) => record.advantage)).toEqual([1 - 1 / 3, 0 - 1 / 3, 0 - 1 / 3]);
    await server.end();
  });
});

describe("options: the command's flags in snake_case", () => {
  const specs = {
    pipeline: [rocSection, advantageSection, penaltySection, groupingSection, ioSection],
  };

  it("every flag that shapes the records is an option, under its snake_case name; the process's flags are not", () => {
    const spec = { name: "pipeline", summary: "", description: [], sections: specs.pipeline, examples: [] };
    const keys = [...requestOptions(spec).keys()];
    expect(keys).toEqual(expect.arrayContaining(["keep", "seed", "keep_equal_rewards", "std_scope", "kept_only"]));
    for (const flag of ["output", "summary", "progress", "quiet", "help", "max-line-bytes", "import"]) {
      expect(keys).not.toContain(optionKey(flag));
    }
    expect(valuesFromOptions(spec, { keep: 16, seed: 3, no_std: true, biased_std: false, failure_kinds: [] })).toEqual({
      keep: "16",
      seed: "3",
      "no-std": true,
      "failure-kinds": "",
    });
  });

  it("a command's complaint names the option, not the flag", () => {
    const spec = { name: "pipeline", summary: "", description: [], sections: specs.pipeline, examples: [] };
    expect(optionIssues(new UsageError("--keep: required\n--error-weight/--format-weight: too big"), spec)).toEqual([
      { path: "options.keep", message: "required" },
      { path: "options.error_weight/options.format_weight", message: "too big" },
    ]);
  });
});

describe("rollout fields in snake_case, in every command", () => {
  /** structured.jsonl with every field that has a snake_case spelling written that way. */
  const snake = (line: string) =>
    line
      .replace(/"groupId":/, '"group_id":')
      .replace(/"toolCalls":/, '"tool_calls":')
      .replace(/"formatOk":/, '"format_ok":');

  it.each([
    ["penalties", []],
    ["resample", ["-k", "4", "--seed", "1"]],
    ["advantages", ["--preset", "trl"]],
    ["pipeline", ["-k", "4", "--seed", "1", "--std-scope", "batch"]],
  ] as const)("%s: the same records as the library's spelling", (name, flags) => {
    const file = join(dir, `snake-${name}.jsonl`);
    const lines = linesOf(STRUCTURED);
    writeFileSync(file, `${lines.map(snake).join("\n")}\n`);
    expect(readFileSync(file, "utf8")).toContain('"tool_calls":');
    expect(command([name, ...flags], file)).toEqual(command([name, ...flags], STRUCTURED));
  });

  it("every rollout field is read in snake_case: infra_failed too, with infra_failures in serve", async () => {
    const quality = '"toolCalls":[],"answers":1,"turns":1';
    const camel = [
      `{"groupId":"q","reward":1,"infraFailed":true,${quality}}`,
      `{"groupId":"q","reward":0,${quality}}`,
      `{"groupId":"q","reward":1,${quality}}`,
    ];
    const file = join(dir, "infra.jsonl");
    for (const rule of ["drop", "keep"]) {
      writeFileSync(file, `${camel.join("\n")}\n`);
      const expected = command(
        ["resample", "-k", "2", "--seed", "1", "--infra-failures", rule, "--undersized", "keep"],
        file,
      );
      const server = new Server();
      const snaked = camel.map((line) =>
        line.replace('"infraFailed"', '"infra_failed"').replace('"groupId"', '"group_id"'),
      );
      const options = { keep: 2, seed: 1, infra_failures: rule, undersized: "keep" };
      const response = unwrap(await server.ask(request(1, "resample", options, snaked)), 1);
      expect(response.records).toEqual(expected.records);
      await server.end();
    }
    expect(command(["resample", "-k", "2", "--seed", "1"], file).records[0]).toMatchObject({
      reasonCode: "infra-failure",
    });
  });

  it("serve reads them too", async () => {
    const server = new Server();
    const lines = linesOf(STRUCTURED);
    const camel = unwrap(await server.ask(request(1, "pipeline", { keep: 4, seed: 1 }, lines)), 1);
    const snaked = unwrap(await server.ask(request(1, "pipeline", { keep: 4, seed: 1 }, lines.map(snake))), 1);
    expect(snaked.records).toEqual(camel.records);
    await server.end();
  });

  it("a field spelt both ways is an invalid line naming both; messages name a field as the line spelt it", () => {
    const run = (input: string, args: readonly string[]) =>
      spawnSync(process.execPath, [CLI, "penalties", ...args], { input, encoding: "utf8" });
    const both = run('{"group_id":"a","groupId":"b","reward":1}\n', []);
    expect(both.status).toBe(1);
    expect(both.stderr).toBe(
      'grpo-roc penalties: line 1: group_id: "group_id" and "groupId" are one field spelt two ways: give one\n',
    );
    const skipped = run('{"groupId":"b","reward":1,"format_ok":true,"formatOk":false}\n', ["--skip-invalid", "-q"]);
    expect(JSON.parse(skipped.stdout)).toMatchObject({ line: 1, groupId: "b", reasonCode: "invalid" });
    const spelt = run('{"group_id":"a","reward":1,"tool_calls":[{"outcome":"boom"}],"answers":1,"turns":1}\n', []);
    expect(spelt.stderr).toMatch(/^grpo-roc penalties: line 1: tool_calls\[0\]\.outcome: outcome must be one of /);
    const id = run('{"group_id":1e400,"reward":1}\n', []);
    expect(id.stderr).toMatch(/^grpo-roc penalties: line 1: group_id: 1e400 is beyond the range of a float64/);
  });

  it("a snake_case group id beyond 2^53 is read exactly, as the library's spelling is", () => {
    const input = '{"group_id":18446744073709551615,"reward":1}\n{"group_id":18446744073709551614,"reward":0}\n';
    const result = spawnSync(process.execPath, [CLI, "advantages"], { input, encoding: "utf8" });
    expect(result.status).toBe(0);
    expect(result.stdout).toContain('"groupId":18446744073709551615,');
    expect(result.stdout).toContain('"groupId":18446744073709551614,');
    expect(result.stderr).toContain("2 groups");
  });

  it("an unknown snake_case spelling is still the library's typo, with the suggestion", () => {
    const result = spawnSync(process.execPath, [CLI, "penalties"], {
      input: '{"groupId":"a","reward":1,"Tool_Calls":[]}\n',
      encoding: "utf8",
    });
    expect(result.status).toBe(1);
    expect(result.stderr).toContain('line 1: Tool_Calls: not a rollout field; did you mean "toolCalls"?');
  });
});
