/**
 * qualityFromMessages / inspectMessages under the bad-input contract: every malformed record (the fixtures with one
 * value replaced, removed or wrapped, or any value at all) is read or refused with a ValidationError whose paths all
 * start at `messages` or `options` (class 16); strict options (class 1); callbacks that return what they should not
 * (class 17); and extreme inputs (class 18: thousands of calls, megabytes of output, nesting far deeper than any real
 * record), which finish, within the stack and in time.
 */
import { readFileSync, readdirSync } from "node:fs";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  inspectMessages,
  type MessagesOptions,
  type MessagesReport,
  qualityFromMessages,
  TOOL_OUTCOMES,
  ValidationError,
} from "../../src/index.js";
import { attempt, expectRefusedAt, hostile, misspellings, type Outcome } from "./shared.js";

interface Case {
  readonly name: string;
  readonly options?: MessagesOptions;
  readonly messages: unknown[];
}

const directory = new URL("../fixtures/messages/", import.meta.url);
const CASES: readonly Case[] = readdirSync(directory)
  .filter((file) => file.endsWith(".json") && file !== "malformed.json")
  .flatMap((file) => (JSON.parse(readFileSync(new URL(file, directory), "utf8")) as { cases: Case[] }).cases);

/** Returned: a well-formed report. Refused: a ValidationError, every issue at `messages…` or `options…`. */
function expectContract(outcome: Outcome<MessagesReport>, messages: unknown): void {
  if (!outcome.ok) {
    expect(outcome.error, String(outcome.error)).toBeInstanceOf(ValidationError);
    for (const { path } of (outcome.error as ValidationError).issues) expect(path).toMatch(/^(messages|options)\b/);
    return;
  }
  const { quality, calls } = outcome.value;
  for (const { outcome: o } of quality.toolCalls) expect(TOOL_OUTCOMES).toContain(o);
  expect(calls.filter((c) => c.outcome !== undefined)).toHaveLength(quality.toolCalls.length);
  const count = Array.isArray(messages) ? messages.length : 0;
  for (const call of calls) {
    expect(call.callIndex).toBeLessThan(count);
    if (call.resultIndex !== undefined) expect(call.resultIndex).toBeGreaterThanOrEqual(call.callIndex);
  }
  for (const n of [quality.answers, quality.turns]) {
    if (n !== undefined) expect(Number.isInteger(n) && n >= 0).toBe(true);
  }
}

/** Every path to a value inside `value` (objects and arrays), the root excluded. */
function pathsIn(value: unknown, prefix: PropertyKey[] = [], out: PropertyKey[][] = []): PropertyKey[][] {
  if (typeof value !== "object" || value === null) return out;
  for (const [key, child] of Object.entries(value)) {
    const path = [...prefix, Array.isArray(value) ? Number(key) : key];
    out.push(path);
    pathsIn(child, path, out);
  }
  return out;
}

/** A copy of `value` with the value at `path` replaced (or removed, for `remove`). */
function replaced(value: unknown, path: readonly PropertyKey[], replacement: unknown, remove: boolean): unknown {
  const copy = structuredClone(value) as Record<PropertyKey, unknown>;
  let at = copy;
  for (const key of path.slice(0, -1)) at = at[key] as Record<PropertyKey, unknown>;
  const last = path.at(-1)!;
  if (remove) delete at[last];
  else at[last] = replacement;
  return copy;
}

const strangeValue = fc.oneof(
  fc.constantFrom(null, undefined, "", 0, -1, 1.5, Number.NaN, true, false, [], {}, "tool_use", "tool-call", "2.0"),
  fc.jsonValue({ maxDepth: 2 }),
  fc.string({ maxLength: 12 }),
);

describe("class 16: malformed records — every value of every fixture replaced, removed or wrapped", () => {
  it.each(CASES.map((c) => [c.name, c] as const))("%s", (_name, c) => {
    const paths = pathsIn(c.messages);
    hostile(
      fc.record({
        at: fc.nat({ max: paths.length - 1 }),
        replacement: strangeValue,
        remove: fc.boolean(),
        wrap: fc.boolean(),
      }),
      ({ at, replacement, remove, wrap }) => {
        const path = paths[at]!;
        const original = path.reduce<unknown>((value, key) => (value as Record<PropertyKey, unknown>)[key], c.messages);
        const messages = replaced(c.messages, path, wrap ? [original] : replacement, remove && !wrap);
        expectContract(
          attempt(() => inspectMessages(messages as unknown[], c.options)),
          messages,
        );
      },
      60,
    );
  });

  it("any value as the record, or as one of its messages", () => {
    hostile(fc.anything(), (value) =>
      expectContract(
        attempt(() => inspectMessages(value as never)),
        value,
      ),
    );
    hostile(fc.tuple(fc.constantFrom(...CASES), fc.anything()), ([c, value]) => {
      const messages = [...c.messages, value];
      expectContract(
        attempt(() => inspectMessages(messages, c.options)),
        messages,
      );
    });
  });

  it("any JSON value as a tool call's arguments, input or result", () => {
    hostile(fc.tuple(fc.jsonValue(), fc.jsonValue()), ([args, output]) => {
      const records = [
        [
          { role: "assistant", content: [{ type: "tool_use", id: "t", name: "f", input: args }] },
          { role: "user", content: [{ type: "tool_result", tool_use_id: "t", content: output }] },
        ],
        [
          { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "f", arguments: args } },
          { jsonrpc: "2.0", id: 1, result: output },
        ],
        [
          {
            content: [
              { type: "tool-call", toolCallId: "a", toolName: "f", input: args },
              { type: "tool-result", toolCallId: "a", toolName: "f", output },
            ],
          },
        ],
      ];
      for (const messages of records) {
        const tools = [{ name: "f", parameters: { type: "object", properties: { x: { type: "string" } } } }];
        expectContract(
          attempt(() => inspectMessages(messages, { tools })),
          messages,
        );
      }
    });
  });
});

describe("class 1: strict options of qualityFromMessages", () => {
  const valid = { format: "openai-chat", tools: [], classify: () => undefined, answer: "tags", unanswered: "omit" };
  it("every misspelling of every option is refused with the option meant", () => {
    for (const key of Object.keys(valid)) {
      for (const typo of misspellings(key)) {
        const { [key as keyof typeof valid]: value, ...rest } = valid;
        const error = expectRefusedAt(
          attempt(() => qualityFromMessages([], { ...rest, [typo]: value } as never)),
          `options.${typo}`,
        );
        expect(error.message).toMatch(/unknown key/);
      }
    }
  });

  it("options of the wrong type are refused at their key", () => {
    hostile(
      fc.tuple(fc.constantFrom("format", "tools", "classify", "answer", "unanswered"), strangeValue),
      ([key, value]) => {
        const outcome = attempt(() => qualityFromMessages([], { [key]: value } as never));
        if (outcome.ok) expect(value === undefined || (key === "tools" && Array.isArray(value))).toBe(true);
        else expectRefusedAt(outcome, new RegExp(`^options\\.${key}`));
      },
    );
  });
});

describe("class 17: callbacks that return what they should not", () => {
  const chat = [
    { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }] },
    { role: "tool", tool_call_id: "c", content: "x" },
  ];
  it("classify may return an outcome or undefined; anything else is refused", () => {
    hostile(fc.oneof(strangeValue, fc.constantFrom(...TOOL_OUTCOMES)), (value) => {
      const outcome = attempt(() => qualityFromMessages(chat, { classify: () => value as never }));
      if ((TOOL_OUTCOMES as readonly unknown[]).includes(value) || value === undefined) {
        expect(outcome.ok).toBe(true);
      } else expectRefusedAt(outcome, "options.classify", /expected one of/);
    });
  });

  it("an answer extractor must return { answers: integer ≥ 0, formatOk: boolean }", () => {
    hostile(fc.record({ answers: fc.oneof(strangeValue, fc.nat()), formatOk: strangeValue }), (count) => {
      const outcome = attempt(() => qualityFromMessages(chat, { answer: () => count as never }));
      const valid =
        Number.isInteger(count.answers) && (count.answers as number) >= 0 && typeof count.formatOk === "boolean";
      if (valid) expect(outcome.ok).toBe(true);
      else expectRefusedAt(outcome, "options.answer");
    });
  });
});

describe("class 18: extreme inputs finish within the stack and in time", () => {
  it("10,000 parallel calls in each format", () => {
    const n = 10_000;
    const ids = Array.from({ length: n }, (_, k) => `c${k}`);
    const records = [
      [
        {
          role: "assistant",
          tool_calls: ids.map((id) => ({ id, type: "function", function: { name: "f", arguments: "{}" } })),
        },
        ...ids.map((id) => ({ role: "tool", tool_call_id: id, content: "ok" })),
      ],
      [
        ...ids.map((id) => ({ jsonrpc: "2.0", id, method: "tools/call", params: { name: "f" } })),
        ...ids.map((id) => ({ jsonrpc: "2.0", id, result: { content: [] } })),
      ],
    ];
    for (const messages of records) {
      const start = performance.now();
      const outcome = attempt(() => qualityFromMessages(messages));
      expect(outcome.ok && outcome.value.toolCalls.length).toBe(n);
      expect(performance.now() - start).toBeLessThan(5000);
    }
  });

  it("arguments and outputs nested 100,000 deep, against a schema", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    const nested = JSON.parse(deep) as unknown;
    const tools = [{ name: "f", parameters: { type: "object" } }];
    const chat = [
      { role: "assistant", tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: deep } }] },
      { role: "tool", tool_call_id: "c", content: "x" },
    ];
    const steps = [
      {
        content: [
          { type: "tool-call", toolCallId: "a", toolName: "f", input: nested },
          { type: "tool-result", toolCallId: "a", toolName: "f", output: nested },
        ],
      },
    ];
    for (const messages of [chat, steps]) {
      const outcome = attempt(() => inspectMessages(messages, { tools }));
      expect(outcome.ok && outcome.value.calls[0]).toMatchObject({ outcome: "parse_error", rule: "schema" });
    }
  });

  it("a schema nested 64 deep is read; 65 deep, or an enum value as deep, is refused", () => {
    const schema = (depth: number): unknown => (depth === 0 ? { type: "string" } : { items: schema(depth - 1) });
    expect(attempt(() => qualityFromMessages([], { tools: [{ name: "f", parameters: schema(64) }] })).ok).toBe(true);
    expectRefusedAt(
      attempt(() => qualityFromMessages([], { tools: [{ name: "f", parameters: schema(65) }] })),
      /^options\.tools\[0\]\.parameters(\.items)+$/,
      /nests deeper than 64/,
    );
    const value = (depth: number): unknown => (depth === 0 ? 1 : [value(depth - 1)]);
    expectRefusedAt(
      attempt(() => qualityFromMessages([], { tools: [{ name: "f", parameters: { enum: [value(80)] } }] })),
      "options.tools[0].parameters.enum[0]",
      /nests deeper/,
    );
  });

  it("megabytes of output and of answer text, in one line or many", () => {
    const huge = [
      `${"a".repeat(4 << 20)}`,
      `${"Error ".repeat(1 << 19)}`,
      "\n".repeat(1 << 21),
      `${"<answer>".repeat(1 << 18)}`,
      `${"\\boxed{".repeat(1 << 18)}`,
    ];
    for (const text of huge) {
      const messages = [
        {
          role: "assistant",
          content: text,
          tool_calls: [{ id: "c", type: "function", function: { name: "f", arguments: "{}" } }],
        },
        { role: "tool", tool_call_id: "c", content: text },
      ];
      for (const answer of ["tags", "boxed"] as const) {
        const start = performance.now();
        expectContract(
          attempt(() => inspectMessages(messages, { answer })),
          messages,
        );
        expect(performance.now() - start).toBeLessThan(3000);
      }
    }
  });

  it('ids and names of every kind: empty, unicode, huge numbers, 1 and "1" apart', () => {
    const log = [
      { jsonrpc: "2.0", id: 1, method: "tools/call", params: { name: "" } },
      { jsonrpc: "2.0", id: "1", method: "tools/call", params: { name: "ツール\u0000" } },
      { jsonrpc: "2.0", id: Number.MAX_VALUE, method: "tools/call", params: { name: "f" } },
      { jsonrpc: "2.0", id: "1", result: { content: [], isError: true } },
      { jsonrpc: "2.0", id: 1, result: { content: [] } },
    ];
    const outcome = attempt(() => inspectMessages(log));
    expect(outcome.ok && outcome.value.calls.map((c) => c.outcome)).toEqual([
      "ok",
      "execution_error",
      "execution_error",
    ]);
    expectRefusedAt(
      attempt(() => inspectMessages([{ ...log[0]!, id: Number.NaN }])),
      "messages[0].id",
      /request id/,
    );
    expectRefusedAt(
      attempt(() => inspectMessages([{ ...log[0]!, id: { n: 1 } }])),
      "messages[0].id",
      /request id/,
    );
  });
});
