/**
 * qualityFromMessages and inspectMessages: the fixtures of test/fixtures/messages/ (one file per format, written from
 * the providers' documentation, whose pages each file cites), the README's examples, each classification rule, the
 * answer counters, the parameter schema subset, and properties: one conversation written in every format reads the
 * same, and the order of parallel calls' results changes no outcome.
 */
import { readFileSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  grpoRoc,
  inspectMessages,
  isInfraFailed,
  type MessageFormat,
  type MessagesOptions,
  qualityFromMessages,
  resampleOnCorrect,
  type Rollout,
  ValidationError,
} from "../src/index.js";
import { HOSTILE_SEED } from "./hostile/shared.js";

interface FixtureCase {
  readonly name: string;
  readonly options?: MessagesOptions;
  readonly messages: unknown[];
  readonly expected: {
    readonly calls: [string | null, string][];
    readonly answers: number | null;
    readonly turns: number | null;
    readonly formatOk: boolean | null;
  };
}

interface MalformedCase {
  readonly name: string;
  readonly options?: MessagesOptions;
  readonly messages: unknown[];
  readonly error: { readonly path: string; readonly message: string };
}

function fixture<T>(name: string): { sources: string[]; cases: T[] } {
  return JSON.parse(readFileSync(new URL(`fixtures/messages/${name}.json`, import.meta.url), "utf8"));
}

const FORMATS: readonly MessageFormat[] = ["openai-chat", "openai-responses", "anthropic", "mcp", "ai-sdk"];

describe("fixtures written from each provider's documentation", () => {
  for (const format of FORMATS) {
    const { sources, cases } = fixture<FixtureCase>(format);
    it(`${format}: the fixture cites its sources`, () => {
      expect(sources.length).toBeGreaterThan(0);
    });
    it.each(cases.map((c) => [c.name, c] as const))(`${format}: %s`, (_name, c) => {
      const report = inspectMessages(c.messages, c.options);
      expect(report.format).toBe(format);
      expect(report.calls.map((call) => [call.outcome ?? null, call.rule])).toEqual(c.expected.calls);
      const toolCalls = c.expected.calls.flatMap(([outcome]) => (outcome === null ? [] : [{ outcome }]));
      expect(report.quality).toEqual({
        toolCalls,
        answers: c.expected.answers ?? undefined,
        turns: c.expected.turns ?? undefined,
        formatOk: c.expected.formatOk ?? undefined,
      });
      // Named explicitly, the format reads the same; qualityFromMessages is the report's quality.
      expect(inspectMessages(c.messages, { ...c.options, format })).toEqual(report);
      expect(qualityFromMessages(c.messages, c.options)).toEqual(report.quality);
    });
  }

  it("each call's detail says where the call and its result are", () => {
    const { cases } = fixture<FixtureCase>("openai-chat");
    const [first] = inspectMessages(cases[0]!.messages).calls;
    expect(first).toEqual({
      name: "python",
      id: "call_1",
      outcome: "ok",
      rule: "no-error-found",
      detail: undefined,
      callIndex: 2,
      callPath: "messages[2].tool_calls[0]",
      resultIndex: 3,
      resultPath: "messages[3]",
    });
    const notJson = inspectMessages(cases[0]!.messages).calls[3]!;
    expect(notJson.detail).toMatch(/JSON/);
  });
});

describe("malformed records: a ValidationError naming the message's index and the field", () => {
  const { cases } = fixture<MalformedCase>("malformed");
  it.each(cases.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    let thrown: unknown;
    try {
      inspectMessages(c.messages, c.options);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    const issues = (thrown as ValidationError).issues;
    expect(issues.map((issue) => issue.path)).toContain(c.error.path);
    expect(issues.find((issue) => issue.path === c.error.path)!.message).toContain(c.error.message);
  });

  it("messages that are not an array", () => {
    expect(() => qualityFromMessages("hello" as never)).toThrow(/^messages: expected an array of messages/);
  });
});

describe("the README's examples (From agent frameworks)", () => {
  it("OpenAI Chat Completions", () => {
    const messages = [
      { role: "user", content: "What is 17 * 23?" },
      {
        role: "assistant",
        content: null,
        tool_calls: [
          { id: "call_1", type: "function", function: { name: "python", arguments: '{"code": "print(17 * 23)"}' } },
        ],
      },
      { role: "tool", tool_call_id: "call_1", content: "391" },
      { role: "assistant", content: "<answer>391</answer>" },
    ];
    const rollout: Rollout = { groupId: "q1", reward: 1, ...qualityFromMessages(messages) };
    expect(rollout.toolCalls).toEqual([{ outcome: "ok" }]);
    expect([rollout.answers, rollout.turns, rollout.formatOk]).toEqual([1, 2, true]);
  });

  it("OpenAI Responses API", () => {
    const items = [
      { role: "user", content: "What is 1 / 0?" },
      { type: "function_call", call_id: "call_1", name: "python", arguments: '{"code": "print(1 / 0)"}' },
      { type: "function_call_output", call_id: "call_1", output: "ZeroDivisionError: division by zero" },
      { type: "message", role: "assistant", content: [{ type: "output_text", text: "<answer>undefined</answer>" }] },
    ];
    const quality = qualityFromMessages(items);
    expect(quality).toEqual({ toolCalls: [{ outcome: "execution_error" }], answers: 1, turns: 2, formatOk: true });
  });

  it("Anthropic Messages, with tool definitions", () => {
    const tools = [
      {
        name: "python",
        input_schema: { type: "object", properties: { code: { type: "string" } }, required: ["code"] },
      },
    ];
    const messages = [
      { role: "user", content: "What is 2 ** 10?" },
      { role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "python", input: { src: "2 ** 10" } }] },
      { role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1", content: "no code", is_error: true }] },
      { role: "assistant", content: [{ type: "text", text: "<answer>1024</answer>" }] },
    ];
    const report = inspectMessages(messages, { tools });
    expect(report.quality.toolCalls).toEqual([{ outcome: "parse_error" }]);
    expect(report.calls[0]!.rule).toBe("schema");
    expect(report.calls[0]!.detail).toBe("arguments.code: required, and missing");
  });

  it("an MCP client's log", () => {
    const log = [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "python", arguments: { code: "print(4)" } } },
      { jsonrpc: "2.0", id: 1, result: { content: [{ type: "text", text: "4" }], isError: false } },
      { jsonrpc: "2.0", id: 2, method: "tools/call", params: { name: "python", arguments: { code: "sleep(99)" } } },
      { jsonrpc: "2.0", method: "notifications/cancelled", params: { requestId: 2, reason: "timed out" } },
    ];
    const quality = qualityFromMessages(log);
    expect(quality).toEqual({
      toolCalls: [{ outcome: "ok" }, { outcome: "timeout" }],
      answers: undefined,
      turns: undefined,
      formatOk: undefined,
    });
    // The log has no assistant text: give the answers and turns from your own record of the conversation.
    const rollouts: Rollout[] = [
      { groupId: "q1", reward: 1, ...quality, answers: 1, turns: 3 },
      { groupId: "q1", reward: 0, toolCalls: [], answers: 0, turns: 1 },
    ];
    expect(Array.from(resampleOnCorrect(rollouts, { keepPerGroup: 2, seed: 0 }).kept)).toEqual([0, 1]);
    // Without them, RoC refuses the rollout.
    const bare: Rollout = { groupId: "q1", reward: 1, ...quality };
    expect(() => resampleOnCorrect([bare, rollouts[1]!], { keepPerGroup: 2, seed: 0 })).toThrow(
      /rollouts\[0\]: structured quality inputs need toolCalls, answers and turns together/,
    );
  });

  it("Vercel AI SDK steps, with a classify that marks sandbox outages", () => {
    const steps = [
      {
        content: [
          { type: "tool-call", toolCallId: "a", toolName: "python", input: { code: "print(4)" } },
          { type: "tool-error", toolCallId: "a", toolName: "python", error: "sandbox unavailable (503)" },
        ],
      },
      { content: [{ type: "text", text: "<answer>4</answer>" }] },
    ];
    const quality = qualityFromMessages(steps, {
      classify: (result) => (result?.text.includes("sandbox unavailable") ? "infra_error" : undefined),
    });
    expect(quality.toolCalls).toEqual([{ outcome: "infra_error" }]);
    expect(isInfraFailed({ groupId: "q1", reward: 0, ...quality })).toBe(true);
  });
});

describe("classification rules", () => {
  const chat = (content: string, args = '{"code": "x"}') => [
    { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "python", arguments: args } }] },
    { role: "tool", tool_call_id: "c", content },
  ];

  it("classify overrides the text classifier; undefined falls back to it", () => {
    expect(qualityFromMessages(chat("Traceback (most recent call last):"), { classify: () => "ok" }).toolCalls).toEqual(
      [{ outcome: "ok" }],
    );
    expect(
      qualityFromMessages(chat("Traceback (most recent call last):"), { classify: () => undefined }).toolCalls,
    ).toEqual([{ outcome: "execution_error" }]);
  });

  it("classify sees the result and the call, with the arguments parsed", () => {
    const seen: unknown[] = [];
    qualityFromMessages(chat("42"), { classify: (result, call) => void seen.push(result, call) });
    expect(seen[0]).toMatchObject({ text: "42", isError: undefined, index: 1, path: "messages[1]" });
    expect(seen[1]).toMatchObject({ name: "python", id: "c", arguments: { code: "x" }, index: 0 });
  });

  it("classify is consulted for an unanswered call, with no result", () => {
    const calls: unknown[] = [];
    const quality = qualityFromMessages(chat("").slice(0, 1), {
      classify: (result) => (calls.push(result), "timeout"),
    });
    expect(calls).toEqual([undefined]);
    expect(quality.toolCalls).toEqual([{ outcome: "timeout" }]);
  });

  it("a parse error of the call comes before classify and before the format's flag", () => {
    let consulted = false;
    const quality = qualityFromMessages(chat("fine", "{not json"), { classify: () => ((consulted = true), "ok") });
    expect(quality.toolCalls).toEqual([{ outcome: "parse_error" }]);
    expect(consulted).toBe(false);
  });

  it("classify returning something that is not an outcome is refused, naming the call", () => {
    expect(() => qualityFromMessages(chat("x"), { classify: () => "fine" as never })).toThrow(
      /options\.classify: returned string \("fine"\) for the call at messages\[0\]\.tool_calls\[0\]/,
    );
  });

  it("the default classifier never says infra_error", () => {
    for (const text of ["sandbox unavailable", "503 Service Unavailable", "quota exceeded", "connection refused"]) {
      expect(qualityFromMessages(chat(text)).toolCalls[0]!.outcome).not.toBe("infra_error");
    }
  });

  it.each([
    ["execution_error", "execution_error"],
    ["timeout", "timeout"],
    ["parse_error", "parse_error"],
    ["omit", undefined],
  ] as const)("unanswered: %s", (unanswered, outcome) => {
    const report = inspectMessages(chat("").slice(0, 1), { unanswered });
    expect(report.calls[0]).toMatchObject({ outcome, rule: "no-result", resultIndex: undefined });
    expect(report.quality.toolCalls).toEqual(outcome === undefined ? [] : [{ outcome }]);
  });

  it("JSON-RPC error codes: -32602 parse error, -32001 timeout, others execution errors", () => {
    const log = (code: number) => [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "python" } },
      { jsonrpc: "2.0", id: 1, error: { code, message: "m" } },
    ];
    expect(inspectMessages(log(-32602)).calls[0]).toMatchObject({ outcome: "parse_error", rule: "invalid-params" });
    expect(inspectMessages(log(-32001)).calls[0]).toMatchObject({ outcome: "timeout", rule: "request-timeout" });
    expect(inspectMessages(log(-32603)).calls[0]).toMatchObject({ outcome: "execution_error", rule: "jsonrpc-error" });
  });

  it("an MCP result with structuredContent and no content is read as the TypeScript SDK reads it", () => {
    const log = [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "python" } },
      { jsonrpc: "2.0", id: 1, result: { structuredContent: { value: 4 } } },
    ];
    expect(inspectMessages(log).calls[0]).toMatchObject({ outcome: "ok", rule: "no-error-flag" });
  });

  it("an AI SDK execution-denied output is an execution error", () => {
    const messages = [
      { role: "assistant", content: [{ type: "tool-call", toolCallId: "a", toolName: "rm", input: {} }] },
      {
        role: "tool",
        content: [{ type: "tool-result", toolCallId: "a", toolName: "rm", output: { type: "execution-denied" } }],
      },
    ];
    expect(inspectMessages(messages).calls[0]).toMatchObject({ outcome: "execution_error", rule: "execution-denied" });
  });

  it("an error flag with a parse failure in its text is a parse error", () => {
    const messages = [
      { role: "assistant", content: [{ type: "tool_use", id: "t", name: "python", input: {} }] },
      {
        role: "user",
        content: [{ type: "tool_result", tool_use_id: "t", content: "Failed to decode tool call", is_error: true }],
      },
    ];
    expect(inspectMessages(messages).calls[0]).toMatchObject({ outcome: "parse_error", rule: "sandbox-verdict" });
  });

  it("the text classifier stays linear on a megabyte of output", () => {
    const start = performance.now();
    expect(qualityFromMessages(chat(`${"x".repeat(1 << 20)}\n${"a.".repeat(1 << 18)}`)).toolCalls).toEqual([
      { outcome: "ok" },
    ]);
    expect(performance.now() - start).toBeLessThan(2000);
  });
});

describe("answers and format", () => {
  const turns = (...texts: string[]) => texts.map((content) => ({ role: "assistant", content }));

  it("answer tags are counted over every turn, as a transcript counts them", () => {
    expect(qualityFromMessages(turns("<answer>1</answer>", "<answer>2</answer>"))).toMatchObject({
      answers: 2,
      turns: 2,
      formatOk: true,
    });
    expect(qualityFromMessages(turns("<answer>1</answer></answer>"))).toMatchObject({ answers: 1, formatOk: false });
    expect(qualityFromMessages(turns("no answer"))).toMatchObject({ answers: 0, formatOk: true });
  });

  it('"boxed" counts \\boxed{} answers, nested braces included', () => {
    expect(qualityFromMessages(turns("so \\boxed{\\frac{1}{2}}"), { answer: "boxed" })).toMatchObject({
      answers: 1,
      formatOk: true,
    });
    expect(qualityFromMessages(turns("\\boxed{1} \\boxed{2"), { answer: "boxed" })).toMatchObject({
      answers: 1,
      formatOk: false,
    });
  });

  it("a function counts answers from the turns' texts", () => {
    const answer = (texts: readonly string[]) => ({
      answers: texts.at(-1)!.startsWith("Final:") ? 1 : 0,
      formatOk: true,
    });
    expect(qualityFromMessages(turns("thinking", "Final: 4"), { answer })).toMatchObject({ answers: 1, turns: 2 });
  });

  it("a function returning a malformed count is refused", () => {
    expect(() => qualityFromMessages(turns("x"), { answer: () => ({ answers: -1, formatOk: true }) })).toThrow(
      /options\.answer: the answer extractor returned answers -1; expected an integer ≥ 0/,
    );
    expect(() => qualityFromMessages(turns("x"), { answer: () => 3 as never })).toThrow(/returned 3/);
  });
});

describe("tool definitions and the parameter schema subset", () => {
  const call = (args: string) => [
    { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: args } }] },
    { role: "tool", tool_call_id: "c", content: "ok" },
  ];
  const verdict = (parameters: unknown, args: string) => {
    const [detail] = inspectMessages(call(args), { tools: [{ name: "f", parameters }] }).calls;
    return detail!.outcome === "ok" ? "ok" : detail!.detail;
  };

  it.each([
    [{ type: "object" }, "[]", "arguments: expected object, received array"],
    [{ type: ["string", "null"] }, "null", "ok"],
    [{ type: "integer" }, "1.5", "arguments: expected integer, received number"],
    [{ type: "number" }, "2", "ok"],
    [{ enum: ["a", { b: [1] }] }, '{"b": [1]}', "ok"],
    [{ enum: ["a"] }, '"b"', "arguments: not one of the enum's values"],
    [{ const: 3 }, "3", "ok"],
    [
      { anyOf: [{ type: "string" }, { type: "null" }] },
      "1",
      "arguments: matches none of anyOf (arguments: expected string, received integer)",
    ],
    [
      { properties: { x: { type: "string" } }, required: ["x", "y"] },
      '{"x": "s"}',
      "arguments.y: required, and missing",
    ],
    [
      { properties: { x: {} }, additionalProperties: false },
      '{"x": 1, "z": 2}',
      "arguments.z: not a declared property",
    ],
    [{ additionalProperties: { type: "number" } }, '{"z": "2"}', "arguments.z: expected number, received string"],
    [{ items: { type: "string" } }, '["a", 1]', "arguments[1]: expected string, received integer"],
    [{ items: [{ type: "string" }, { type: "number" }] }, '["a", 1, true]', "ok"],
    [{ type: "string", pattern: "^a$", minLength: 9 }, '"b"', "ok"],
    [true, "1", "ok"],
    [false, "1", "arguments: the schema allows no value here"],
  ])("%j on %s", (schema, args, expected) => {
    expect(verdict(schema, args)).toBe(expected);
  });

  it.each([
    ["Chat Completions", { type: "function", function: { name: "f", parameters: { required: ["x"] } } }],
    ["Responses", { type: "function", name: "f", parameters: { required: ["x"] }, strict: true }],
    ["Anthropic", { name: "f", description: "d", input_schema: { required: ["x"] } }],
    ["MCP", { name: "f", title: "F", inputSchema: { required: ["x"] }, annotations: {} }],
    ["neutral", { name: "f", parameters: { required: ["x"] } }],
  ])("a definition in the %s shape", (_shape, definition) => {
    const [detail] = inspectMessages(call("{}"), { tools: [definition] }).calls;
    expect(detail).toMatchObject({
      outcome: "parse_error",
      rule: "schema",
      detail: "arguments.x: required, and missing",
    });
  });

  it("a custom tool (free text) is known by name and has no schema", () => {
    const messages = [
      { role: "assistant", tool_calls: [{ id: "c", type: "custom", custom: { name: "sh", input: "ls" } }] },
      { role: "tool", tool_call_id: "c", content: "a b" },
    ];
    const tools = [{ type: "custom", custom: { name: "sh" } }];
    expect(qualityFromMessages(messages, { tools }).toolCalls).toEqual([{ outcome: "ok" }]);
    expect(qualityFromMessages(messages, { tools: [{ name: "other" }] }).toolCalls).toEqual([
      { outcome: "parse_error" },
    ]);
  });

  it.each([
    [[{ name: "f" }, { name: "f" }], "options.tools[1].name", /defined twice/],
    [[{ name: "f", paramters: {} }], "options.tools[0].paramters", /did you mean "parameters"/],
    [[{ name: "f", parameters: { type: "text" } }], "options.tools[0].parameters.type", /expected one of object/],
    [
      [{ name: "f", parameters: { properties: { a: { required: "a" } } } }],
      "options.tools[0].parameters.properties.a.required",
      /expected an array/,
    ],
    [[{ name: "f", parameters: { type: "object" }, input_schema: {} }], "options.tools[0].input_schema", /one schema/],
    [[{ parameters: {} }], "options.tools[0].name", /expected a string/],
    [[5], "options.tools[0]", /expected an object/],
  ])("a malformed definition %j is refused at %s", (tools, path, message) => {
    let thrown: unknown;
    try {
      qualityFromMessages([], { tools: tools as never });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ValidationError);
    const issue = (thrown as ValidationError).issues[0]!;
    expect(issue.path).toBe(path);
    expect(issue.message).toMatch(message);
  });

  it("a schema that refers to itself or nests too deep is refused, not recursed into", () => {
    const cyclic: Record<string, unknown> = { type: "object" };
    cyclic.properties = { self: cyclic };
    expect(() => qualityFromMessages([], { tools: [{ name: "f", parameters: cyclic }] })).toThrow(
      /nests deeper than 64/,
    );
  });
});

describe("options", () => {
  it("are strict: a misspelt key is refused with a suggestion", () => {
    expect(() => qualityFromMessages([], { fromat: "mcp" } as never)).toThrow(
      /options\.fromat: unknown key; did you mean "format"\?/,
    );
    expect(() => qualityFromMessages([], { format: "openai" } as never)).toThrow(/options\.format/);
    expect(() => qualityFromMessages([], { unanswered: "skip" } as never)).toThrow(/options\.unanswered/);
  });

  it("are in the grpoRoc namespace", () => {
    expect(grpoRoc.qualityFromMessages).toBe(qualityFromMessages);
    expect(grpoRoc.inspectMessages).toBe(inspectMessages);
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties: one conversation written in every format

type ResultKind = "ok" | "error" | "timeout" | "none";
interface AbstractCall {
  readonly code: string;
  readonly result: ResultKind;
  /** Where its result goes among the turn's results: the results of parallel calls come in any order. */
  readonly rank: number;
}
interface AbstractTurn {
  readonly text: string;
  readonly calls: readonly AbstractCall[];
}

const RESULT_TEXT: Record<Exclude<ResultKind, "none">, string> = {
  ok: "4",
  error: "Traceback (most recent call last):\nValueError: bad",
  timeout: "Execution timed out",
};
const EXPECTED: Record<ResultKind, string> = {
  ok: "ok",
  error: "execution_error",
  timeout: "timeout",
  none: "execution_error",
};

const turnArb: fc.Arbitrary<AbstractTurn> = fc.record({
  text: fc.constantFrom(
    "",
    "thinking",
    "<answer>4</answer>",
    "<answer>4",
    "a</answer>",
    "<answer>1</answer><answer>2</answer>",
  ),
  calls: fc.array(
    fc.record({
      code: fc.string({ maxLength: 8 }),
      result: fc.constantFrom<ResultKind>("ok", "error", "timeout", "none"),
      rank: fc.integer(),
    }),
    { maxLength: 4 },
  ),
});
const conversationArb = fc.array(turnArb, { minLength: 1, maxLength: 5 });

/** The turn's calls with their ids, and its answered calls in result order. */
function turnCalls(turn: AbstractTurn, t: number) {
  const calls = turn.calls.map((call, k) => ({ ...call, id: `call_${t}_${k}` }));
  const answered = calls.filter((call) => call.result !== "none").sort((a, b) => a.rank - b.rank);
  return { calls, answered };
}

const text = (kind: ResultKind) => RESULT_TEXT[kind as Exclude<ResultKind, "none">];
const isError = (kind: ResultKind) => kind !== "ok";

function render(format: MessageFormat | "ai-sdk-steps", turns: readonly AbstractTurn[]): unknown[] {
  const out: unknown[] = [];
  const user = (content: string) => (format === "anthropic" ? { role: "user", content } : { role: "user", content });
  turns.forEach((turn, t) => {
    const { calls, answered } = turnCalls(turn, t);
    switch (format) {
      case "openai-chat":
        out.push(user("go"), {
          role: "assistant",
          content: turn.text,
          ...(calls.length > 0 && {
            tool_calls: calls.map((c) => ({
              id: c.id,
              type: "function",
              function: { name: "python", arguments: JSON.stringify({ code: c.code }) },
            })),
          }),
        });
        for (const c of answered) out.push({ role: "tool", tool_call_id: c.id, content: text(c.result) });
        break;
      case "openai-responses":
        out.push(user("go"), {
          type: "message",
          role: "assistant",
          content: [{ type: "output_text", text: turn.text }],
        });
        for (const c of calls) {
          out.push({
            type: "function_call",
            call_id: c.id,
            name: "python",
            arguments: JSON.stringify({ code: c.code }),
          });
        }
        for (const c of answered) out.push({ type: "function_call_output", call_id: c.id, output: text(c.result) });
        break;
      case "anthropic":
        out.push(user("go"), {
          role: "assistant",
          content: [
            { type: "text", text: turn.text },
            ...calls.map((c) => ({ type: "tool_use", id: c.id, name: "python", input: { code: c.code } })),
          ],
        });
        if (answered.length > 0) {
          out.push({
            role: "user",
            content: answered.map((c) => ({
              type: "tool_result",
              tool_use_id: c.id,
              content: [{ type: "text", text: text(c.result) }],
              is_error: isError(c.result),
            })),
          });
        }
        break;
      case "ai-sdk":
        out.push(user("go"), {
          role: "assistant",
          content: [
            { type: "text", text: turn.text },
            ...calls.map((c) => ({ type: "tool-call", toolCallId: c.id, toolName: "python", input: { code: c.code } })),
          ],
        });
        if (answered.length > 0) {
          out.push({
            role: "tool",
            content: answered.map((c) => ({
              type: "tool-result",
              toolCallId: c.id,
              toolName: "python",
              output: { type: isError(c.result) ? "error-text" : "text", value: text(c.result) },
            })),
          });
        }
        break;
      case "ai-sdk-steps":
        out.push({
          content: [
            { type: "text", text: turn.text },
            ...calls.map((c) => ({ type: "tool-call", toolCallId: c.id, toolName: "python", input: { code: c.code } })),
            ...answered.map((c) =>
              isError(c.result)
                ? { type: "tool-error", toolCallId: c.id, toolName: "python", error: text(c.result) }
                : { type: "tool-result", toolCallId: c.id, toolName: "python", output: text(c.result) },
            ),
          ],
        });
        break;
      case "mcp":
        for (const c of calls) {
          out.push({
            jsonrpc: "2.0",
            id: c.id,
            method: "tools/call",
            params: { name: "python", arguments: { code: c.code } },
          });
        }
        for (const c of answered) {
          out.push({
            jsonrpc: "2.0",
            id: c.id,
            result: { content: [{ type: "text", text: text(c.result) }], isError: isError(c.result) },
          });
        }
        break;
    }
  });
  return out;
}

const RENDERED = ["openai-chat", "openai-responses", "anthropic", "ai-sdk", "ai-sdk-steps", "mcp"] as const;

describe("properties", () => {
  it("one conversation written in each format reads as the same quality (MCP: the same tool calls)", () => {
    fc.assert(
      fc.property(conversationArb, (turns) => {
        const expectedCalls = turns.flatMap((turn) => turn.calls.map((call) => ({ outcome: EXPECTED[call.result] })));
        const chat = qualityFromMessages(render("openai-chat", turns));
        expect(chat.toolCalls).toEqual(expectedCalls);
        expect(chat.turns).toBe(turns.length);
        for (const format of RENDERED) {
          const quality = qualityFromMessages(render(format, turns));
          if (format === "mcp") expect(quality.toolCalls).toEqual(chat.toolCalls);
          else expect(quality).toEqual(chat);
        }
      }),
      { seed: HOSTILE_SEED, numRuns: 200 },
    );
  });

  it("the order of parallel calls' results changes no outcome", () => {
    const unranked = (turns: AbstractTurn[]) =>
      turns.map((turn) => ({ ...turn, calls: turn.calls.map((call, k) => ({ ...call, rank: k })) }));
    fc.assert(
      fc.property(conversationArb, (turns) => {
        for (const format of RENDERED) {
          expect(inspectMessages(render(format, turns)).calls.map((c) => [c.id, c.outcome])).toEqual(
            inspectMessages(render(format, unranked(turns))).calls.map((c) => [c.id, c.outcome]),
          );
        }
      }),
      { seed: HOSTILE_SEED, numRuns: 100 },
    );
  });

  it("the quality spreads into a Rollout RoC accepts, and qualityFromMessages is inspectMessages' quality", () => {
    fc.assert(
      fc.property(conversationArb, fc.constantFrom(...RENDERED), (turns, format) => {
        const messages = render(format, turns);
        const quality = qualityFromMessages(messages);
        expect(inspectMessages(messages).quality).toEqual(quality);
        const extra = format === "mcp" ? { answers: 1, turns: 1, formatOk: true } : {};
        const rollouts: Rollout[] = [0, 1].map((reward) => ({ groupId: "q", reward, ...quality, ...extra }));
        expect(() => resampleOnCorrect(rollouts, { keepPerGroup: 2, seed: 0 })).not.toThrow();
      }),
      { seed: HOSTILE_SEED, numRuns: 100 },
    );
  });
});
