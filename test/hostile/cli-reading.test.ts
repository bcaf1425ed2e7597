/**
 * Property tests of the command line's readers, against oracles: the id scanner against JSON.parse, the line
 * splitter against splitting the whole input at once, the UTF-8 check against a fatal TextDecoder, and the escaping
 * of messages against the set of characters a terminal acts on. Seeded by fast-check; a failure prints its seed
 * and path to replay it.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { topLevelValueTexts } from "../../src/cli/ids.js";
import { firstInvalidUtf8, LineSplitter, type RawLine } from "../../src/cli/line-reader.js";
import { escapeForTerminal } from "../../src/cli/terminal.js";

const RUNS = { numRuns: 300 };

/** JSON text with any whitespace between tokens, as a hostile writer might format it. */
function formatted(value: unknown, spaces: readonly string[], at = { k: 0 }): string {
  const pad = () => spaces[at.k++ % spaces.length] ?? "";
  if (Array.isArray(value)) return `[${value.map((v) => `${pad()}${formatted(v, spaces, at)}${pad()}`).join(",")}]`;
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value).map(
      ([key, v]) => `${pad()}${JSON.stringify(key)}${pad()}:${pad()}${formatted(v, spaces, at)}${pad()}`,
    );
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value);
}

describe("the id scanner reads what JSON.parse reads", () => {
  it("every top-level value's text parses to JSON.parse's value for that key", () => {
    const whitespace = fc.array(fc.constantFrom("", " ", "\t", "\n", "\r\n", "  "), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue()), whitespace, (object, spaces) => {
        const text = formatted(object, spaces);
        const keys = Object.keys(object);
        const found = topLevelValueTexts(text, keys);
        const parsed = JSON.parse(text) as Record<string, unknown>;
        for (const key of keys) expect(JSON.parse(found.get(key)!)).toEqual(parsed[key]);
      }),
      RUNS,
    );
  });

  it("a key given twice: the last, as JSON.parse keeps; escaped keys are read as their value", () => {
    const text = '{"id":1,"x":{"id":2},"\\u0069d":18446744073709551615,"groupId":"a\\"b"}';
    const found = topLevelValueTexts(text, ["id", "groupId"]);
    expect(found.get("id")).toBe("18446744073709551615");
    expect(found.get("groupId")).toBe('"a\\"b"');
  });
});

describe("the line splitter", () => {
  /** Lines the way one read of the whole input would cut them. */
  function oracle(bytes: Buffer, limit: number): RawLine[] {
    const text = bytes.toString("latin1");
    const parts = text.split("\n");
    if (parts[parts.length - 1] === "") parts.pop();
    return parts.map((part, index) => {
      let line = Buffer.from(part, "latin1");
      if (line.length > limit) return { problem: expect.stringContaining(`${line.length} bytes, over the limit`) };
      if (index === 0 && line.subarray(0, 3).equals(Buffer.from([0xef, 0xbb, 0xbf]))) line = line.subarray(3);
      if (line[line.length - 1] === 0x0d) line = line.subarray(0, -1);
      const decoded = decodeStrict(line);
      return decoded === undefined ? { problem: expect.stringMatching(/^not UTF-8/) } : { text: decoded };
    }) as RawLine[];
  }

  it("cuts any chunking of any bytes as one read of the whole would, at any limit", () => {
    const byte = fc.oneof(
      fc.constantFrom(0x0a, 0x0d, 0x22, 0xef, 0xbb, 0xbf, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xc0),
      fc.integer({ min: 0x20, max: 0x7e }),
    );
    fc.assert(
      fc.property(
        fc.array(byte, { maxLength: 200 }),
        fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 10 }),
        fc.integer({ min: 1, max: 60 }),
        (values, cuts, limit) => {
          const bytes = Buffer.from(values);
          const splitter = new LineSplitter(limit);
          const lines: RawLine[] = [];
          let at = 0;
          for (let k = 0; at < bytes.length; k++) {
            const size = cuts[k % cuts.length]!;
            lines.push(...splitter.push(bytes.subarray(at, at + size)));
            at += size;
          }
          const last = splitter.end();
          if (last !== undefined) lines.push(last);
          expect(lines).toEqual(oracle(bytes, limit));
        },
      ),
      RUNS,
    );
  });
});

function decodeStrict(bytes: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

describe("the UTF-8 check", () => {
  it("finds the first invalid byte where a fatal TextDecoder stops", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const at = firstInvalidUtf8(bytes);
        expect(at === bytes.length).toBe(decodeStrict(bytes) !== undefined);
        // Everything before it is valid UTF-8.
        expect(decodeStrict(bytes.subarray(0, at))).toBeDefined();
      }),
      { numRuns: 2000 },
    );
  });
});

describe("messages escaped for the terminal", () => {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: looking for them is the point.
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;
  const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

  it("no control character, bidirectional override or lone surrogate survives; the rest is unchanged", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary" }), (text) => {
        const escaped = escapeForTerminal(text);
        expect(escaped).not.toMatch(UNSAFE);
        expect(escaped).not.toMatch(LONE_SURROGATE);
        if (!UNSAFE.test(text) && !LONE_SURROGATE.test(text)) expect(escaped).toBe(text);
      }),
      RUNS,
    );
  });
});
