/**
 * The bad-input contract for `grpo-roc serve`: every malformed request line gets exactly one error response (or, for
 * a mutation that happens to be a valid request, its whole response), the server answers the next request
 * correctly, and it ends with exit 0 and nothing on stderr. In process, the request reader is held to JSON.parse
 * (class 1: what is not JSON is refused in JSON.parse's words, and rollouts are located exactly); then thousands of
 * generated lines go through one server (class 19): not JSON, not UTF-8, hostile fields, options and rollouts,
 * truncations, and requests over the size limit. Seeded (shared.ts); the counts are printed at the end.
 */
import { spawnSync } from "node:child_process";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseRequest, RequestError } from "../../src/cli/serve-request.js";
import { CLI } from "../helpers/python.js";
import { attempt, HOSTILE_SEED, misspellings, type Outcome } from "./shared.js";

const COMMANDS = ["penalties", "resample", "advantages", "pipeline"];
const VALID_ROLLOUTS = [
  '{"groupId":"q","reward":1,"toolCalls":[],"answers":1,"turns":1}',
  '{"groupId":"q","reward":0}',
];
const valid = (id: number) =>
  `{"id":${id},"command":"pipeline","options":{"keep":2,"seed":${id}},"rollouts":[${VALID_ROLLOUTS.join(",")}]}`;

beforeAll(() => {
  if (spawnSync(process.execPath, [CLI, "--version"]).status !== 0) {
    throw new Error("dist/cli.js is missing: run `npm run build` (npm test does)");
  }
});

/** JSON text with any whitespace between tokens, as a hostile writer might format it. */
function formatted(value: unknown, pad: () => string): string {
  if (Array.isArray(value)) return `[${value.map((v) => `${pad()}${formatted(v, pad)}${pad()}`).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).map(
      ([k, v]) => `${pad()}${JSON.stringify(k)}${pad()}:${pad()}${formatted(v, pad)}`,
    );
    return `{${entries.join(",")}${pad()}}`;
  }
  return JSON.stringify(value);
}

/** A line with one character inserted, deleted or replaced at `at` (as a fraction of its length). */
function mutated(line: string, at: number, how: 0 | 1 | 2, character: string): string {
  const i = Math.floor(at * line.length);
  if (how === 0) return line.slice(0, i) + character + line.slice(i);
  if (how === 1) return line.slice(0, i) + line.slice(i + 1);
  return line.slice(0, i) + character + line.slice(i + 1);
}

const mutation = fc.tuple(
  fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
  fc.constantFrom(0 as const, 1 as const, 2 as const),
  fc.constantFrom("{", "}", "[", "]", ",", ":", '"', "\\", " ", "x", "1", "\u2028", "\u0000"),
);

describe("class 1: the request reader refuses what JSON.parse refuses, in its words; finds rollouts exactly", () => {
  const request = fc.record({
    id: fc.jsonValue({ maxDepth: 2 }),
    command: fc.constantFrom(...COMMANDS),
    options: fc.dictionary(fc.string(), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
    rollouts: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 6 }),
  });
  const whitespace = fc.array(fc.constantFrom("", " ", "\t", "\r", "  "), { minLength: 1, maxLength: 4 });

  it("well-formed requests in any formatting: each rollout's text parses to JSON.parse's value", () => {
    fc.assert(
      fc.property(request, whitespace, (value, spaces) => {
        let k = 0;
        const line = formatted(value, () => spaces[k++ % spaces.length]!);
        const outcome = attempt(() => parseRequest(line, COMMANDS));
        const parsed = JSON.parse(line) as typeof value;
        if (!outcome.ok) {
          // Only an id too long to echo is refused in a well-formed request.
          expect((outcome.error as RequestError).issues.map((issue) => issue.path)).toEqual(["id"]);
          return;
        }
        const { rollouts, options, command, id } = outcome.value;
        expect([command, options, JSON.parse(id)]).toEqual([parsed.command, parsed.options, parsed.id]);
        expect(Array.from({ length: rollouts.count }, (_, i) => JSON.parse(rollouts.text(i)))).toEqual(parsed.rollouts);
      }),
      { seed: HOSTILE_SEED, numRuns: 300 },
    );
  });

  it("any line, and any one-character mutation of a request: not JSON exactly when JSON.parse refuses it", () => {
    const line = fc.oneof(
      fc.string({ unit: "binary", maxLength: 60 }),
      fc.jsonValue().map((value) => JSON.stringify(value) ?? ""),
      fc
        .tuple(request, mutation)
        .map(([value, [at, how, character]]) => mutated(JSON.stringify(value), at, how, character)),
    );
    fc.assert(
      fc.property(line, (text) => {
        const outcome = attempt(() => parseRequest(text, COMMANDS));
        let parseError: string | undefined;
        try {
          JSON.parse(text);
        } catch (error) {
          parseError = (error as Error).message;
        }
        if (outcome.ok) {
          expect(parseError).toBeUndefined();
          return;
        }
        expect(outcome.error).toBeInstanceOf(RequestError);
        const { issues } = outcome.error as RequestError;
        const notJson = issues.some((issue) => issue.message.startsWith("not JSON"));
        if (parseError === undefined) expect(notJson).toBe(false);
        else expect(issues).toEqual([{ path: "", message: `not JSON: ${parseError}` }]);
      }),
      { seed: HOSTILE_SEED, numRuns: 1500 },
    );
  });

  it("a misspelt field or command is refused with the field meant", () => {
    for (const field of ["command", "rollouts", "options"]) {
      for (const wrong of misspellings(field)) {
        const outcome = attempt(() =>
          parseRequest(`{"command":"pipeline","rollouts":[],${JSON.stringify(wrong)}:1}`, COMMANDS),
        );
        expect(refusal(outcome).issues).toContainEqual({
          path: wrong,
          message: `unknown key; did you mean "${field}"?`,
        });
      }
    }
    for (const wrong of misspellings("pipeline")) {
      const outcome = attempt(() => parseRequest(`{"command":${JSON.stringify(wrong)},"rollouts":[]}`, COMMANDS));
      expect(refusal(outcome).issues[0]!.message).toMatch(/did you mean "pipeline"\?$/);
    }
  });
});

/** The RequestError a parse was refused with. */
function refusal(outcome: Outcome<unknown>): RequestError {
  if (outcome.ok) return expect.fail("the request was accepted");
  expect(outcome.error).toBeInstanceOf(RequestError);
  return outcome.error as RequestError;
}

/** Runs one server over every case, each followed by a valid request, and splits its output back into responses. */
function serveCases(cases: readonly Buffer[], args: readonly string[] = []) {
  const input = Buffer.concat(cases.flatMap((line, k) => [line, Buffer.from(`\n${valid(1_000_000 + k)}\n`)]));
  const result = spawnSync(process.execPath, [CLI, "serve", ...args], { input, maxBuffer: 1 << 28, timeout: 300_000 });
  expect(result.stderr.toString()).toBe("");
  expect(result.status).toBe(0);
  const lines = result.stdout
    .toString()
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as { id: unknown; type: string; [key: string]: unknown });
  const responses: (typeof lines)[] = [];
  let current: typeof lines = [];
  let k = 0;
  for (const line of lines) {
    if (line.id === 1_000_000 + k) {
      if (line.type === "summary") {
        responses.push(current);
        current = [];
        k++;
      } else expect(line.type).toBe("record");
      continue;
    }
    current.push(line);
  }
  // Every valid request after a case was answered in full: the server survived each case.
  expect(responses).toHaveLength(cases.length);
  return responses;
}

/** One case's response: exactly one error line, or a whole valid response; counted as refused or returned. */
function checkResponse(
  response: readonly { id: unknown; type: string; [key: string]: unknown }[],
  ids: readonly unknown[],
) {
  attempt(() => {
    for (const line of response) expect(ids).toContainEqual(line.id);
    if (response.length === 1 && response[0]!.type === "error") {
      const { message, issues } = response[0]!.error as {
        message: string;
        issues: { path: string; message: string }[];
      };
      expect(issues.length).toBeGreaterThan(0);
      expect(typeof message).toBe("string");
      throw new Error(message);
    }
    expect(response.map((line) => line.type)).toEqual([...response.slice(1).map(() => "record"), "summary"]);
  });
}

describe("class 19: serve answers every malformed request line with one error, and goes on serving", () => {
  const sample = <T>(arbitrary: fc.Arbitrary<T>, count: number, salt: number) =>
    fc.sample(arbitrary, { seed: HOSTILE_SEED + salt, numRuns: count });

  it("lines that are not JSON, not objects, or not UTF-8", () => {
    const text = sample(fc.string({ unit: "binary", maxLength: 80 }), 300, 1).filter(
      (line) => !line.includes("\n") && line.trim() !== "",
    );
    const values = sample(fc.jsonValue({ maxDepth: 3 }), 200, 2)
      .map((value) => JSON.stringify(value))
      .filter((line) => !line.startsWith("{"));
    const bytes = sample(fc.uint8Array({ minLength: 1, maxLength: 40 }), 200, 3).map((array) =>
      Buffer.concat([Buffer.from('{"id":1,"x":"'), Buffer.from(array.filter((b) => b !== 0x0a)), Buffer.from('"}')]),
    );
    const cases = [...[...text, ...values].map((line) => Buffer.from(line)), ...bytes];
    const responses = serveCases(cases);
    responses.forEach((response) => checkResponse(response, [null, 1]));
    // Not one of them is a request.
    for (const response of responses) expect(response.map((line) => line.type)).toEqual(["error"]);
  });

  it("objects with hostile fields: unknown, misspelt, repeated, of every JSON type", () => {
    const key = fc.oneof(
      fc.constantFrom("id", "command", "rollouts", "options", "Command", "rollout", "opts"),
      fc.string(),
    );
    const objects = sample(fc.dictionary(key, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }), 400, 4).map((o) =>
      JSON.stringify(o),
    );
    const repeated = sample(fc.constantFrom("id", "command", "rollouts", "options"), 20, 5).map(
      (field) => `{"command":"advantages","rollouts":[],${JSON.stringify(field)}:null,${JSON.stringify(field)}:null}`,
    );
    const cases = [...objects, ...repeated];
    const responses = serveCases(cases.map((line) => Buffer.from(line)));
    responses.forEach((response, k) => checkResponse(response, [null, ...idsOf(cases[k]!)]));
  });

  it("valid envelopes with hostile options", () => {
    const optionKey = fc.oneof(
      fc.constantFrom(
        "keep",
        "seed",
        "mode",
        "preset",
        "std_scope",
        "failure_kinds",
        "kept_only",
        "epsilon",
        "undersized",
      ),
      fc.constantFrom(...misspellings("keep_equal_rewards"), "keep-equal-rewards", "keepPerGroup", "output", "import"),
      fc.string({ maxLength: 8 }),
    );
    const optionValue = fc.oneof(
      fc.jsonValue({ maxDepth: 2 }),
      fc.constantFrom(0, -1, 1.5, 1e21, 2 ** 53, -0, 1e-320, "16", "paper", "batch", ["timeout", "timeout"], [], true),
    );
    const options = sample(fc.dictionary(optionKey, optionValue, { maxKeys: 4 }), 400, 6);
    const cases = options.map((o, k) =>
      Buffer.from(
        `{"id":${k},"command":"${COMMANDS[k % 4]}","options":${JSON.stringify(o)},` +
          `"rollouts":[${VALID_ROLLOUTS.join(",")}]}`,
      ),
    );
    serveCases(cases).forEach((response, k) => checkResponse(response, [k]));
  });

  it("valid envelopes with hostile rollouts: any JSON, both spellings, ids beyond float64, __proto__, depth", () => {
    const field = fc.constantFrom(
      "groupId",
      "group_id",
      "id",
      "reward",
      "correct",
      "toolCalls",
      "tool_calls",
      "answers",
      "turns",
      "formatOk",
      "format_ok",
      "transcript",
      "__proto__",
      "constructor",
    );
    // Number texts no float64 holds exactly, and deep nesting, written into the rollout's text as they are.
    const raw = fc
      .constantFrom("18446744073709551616", "1e400", "-0", "1.0000000000000000001", "[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]")
      .map((text) => ({ raw: text }));
    const rollout = fc
      .dictionary(field, fc.oneof(fc.jsonValue({ maxDepth: 2 }), raw), { maxKeys: 6 })
      .map((o) => JSON.stringify(o).replace(/\{"raw":"([^"]*)"\}/g, (_, text: string) => text));
    const rollouts = sample(fc.array(rollout, { minLength: 1, maxLength: 5 }), 400, 7);
    const cases = rollouts.map((list, k) =>
      Buffer.from(
        `{"id":${k},"command":"${COMMANDS[k % 4]}","options":${k % 2 === 0 ? "{}" : '{"keep":2,"seed":1}'},` +
          `"rollouts":[${list.join(",")}]}`,
      ),
    );
    serveCases(cases).forEach((response, k) => checkResponse(response, [k]));
  });

  it("one-character mutations and truncations of a valid request", () => {
    const base = valid(7);
    const mutants = sample(mutation, 300, 8).map(([at, how, character]) => mutated(base, at, how, character));
    const cuts = sample(fc.integer({ min: 1, max: base.length - 1 }), 100, 9).map((n) => base.slice(0, n));
    const cases = [...mutants, ...cuts].filter((line) => !line.includes("\n") && line.trim() !== "");
    // An error names the id where it could be read: the base's, or the one a mutation made.
    serveCases(cases.map((line) => Buffer.from(line))).forEach((response, k) =>
      checkResponse(response, [null, 7, ...idsOf(cases[k]!)]),
    );
  });

  it("extremes: nesting 100,000 deep in the id, the options and a rollout; 100,000 rollouts; a megabyte of id", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const deepObject = `${'{"a":'.repeat(100_000)}1${"}".repeat(100_000)}`;
    const many = Array.from({ length: 100_000 }, (_, k) => `{"group_id":${k},"reward":${k % 2}}`).join(",");
    const cases = [
      `{"id":${deep},"command":"penalties","rollouts":[]}`,
      `{"id":1,"command":"penalties","options":${deepObject},"rollouts":[]}`,
      `{"id":2,"command":"penalties","rollouts":[${deep}]}`,
      `{"id":3,"command":"penalties","options":{"include_rollout":true},` +
        `"rollouts":[{"groupId":"q","reward":1,"x":${deep}}]}`,
      `{"id":4,"command":"advantages","rollouts":[${many}]}`,
      `{"id":"${"x".repeat(1 << 20)}","command":"penalties","rollouts":[]}`,
    ];
    const responses = serveCases(cases.map((line) => Buffer.from(line)));
    responses.forEach((response, k) => checkResponse(response, [null, k]));
    expect(responses.map((response) => response.at(-1)!.type)).toEqual([
      "error",
      "error",
      "error",
      "summary",
      "summary",
      "error",
    ]);
    expect(responses[4]).toHaveLength(100_001);
  });

  it("requests over --max-request-bytes: one error each, unread; those within it are served", () => {
    const lengths = sample(fc.integer({ min: 2000, max: 200_000 }), 60, 10);
    const cases = lengths.map((length) => {
      const padding = "x".repeat(Math.max(0, length - 100));
      return Buffer.from(`{"id":1,"command":"advantages","rollouts":[{"groupId":"${padding}","reward":1}]}`);
    });
    const responses = serveCases(cases, ["--max-request-bytes", "100000"]);
    responses.forEach((response, k) => {
      checkResponse(response, [null, 1]);
      if (cases[k]!.length > 100_000) {
        expect(response).toEqual([
          {
            id: null,
            type: "error",
            error: {
              message:
                `${cases[k]!.length} bytes, over the limit of 100000 bytes a request (--max-request-bytes); the ` +
                "request was skipped unparsed, holding no more than the limit in memory",
              issues: [expect.objectContaining({ path: "" })],
            },
          },
        ]);
      } else expect(response.at(-1)!.type).toBe("summary");
    });
  });
});

/** The ids a case's text may carry (any value it gives "id"), for the check that responses echo one of them. */
function idsOf(line: string): unknown[] {
  try {
    const value = JSON.parse(line) as { id?: unknown };
    return typeof value === "object" && value !== null && "id" in value ? [value.id] : [];
  } catch {
    return [];
  }
}
