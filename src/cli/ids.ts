/**
 * Group ids and rollout ids exactly as the line wrote them. JSON.parse turns 18446744073709551615 into
 * 18446744073709551616 and 9007199254740993 into 9007199254740992: distinct groups would merge and ids come back
 * altered. So a number id is read again from the line's own text: an integer stays a number while it is safe
 * (|n| ≤ 2^53 − 1) and becomes a bigint beyond, which the library takes as it is; and whatever the number, the
 * record gets the very digits of the line.
 */
import { type GroupId, groupKey } from "../groups.js";

/** The fields read as ids, in the order records write them. */
export const ID_FIELDS = ["id", "groupId"] as const;
export type IdField = (typeof ID_FIELDS)[number];

/** Longer integers are refused: decimal → bigint costs time quadratic in the digits. */
export const MAX_ID_DIGITS = 4096;

/** An id of a line: the value the library gets, and the text records write. */
export class LineId {
  private cachedKey: string | undefined;

  constructor(
    readonly value: GroupId,
    /** A number's text as the line wrote it; undefined for a string, which JSON writes back as the same string. */
    private readonly raw?: string,
  ) {}

  /** JSON text for records: a number with the line's very digits, a string as JSON. */
  get json(): string {
    return this.raw ?? JSON.stringify(this.value);
  }

  /** The library's grouping key: 1, 1.0 and 18446744073709551615 as bigint or digits are one id each; "1" another. */
  get key(): string {
    this.cachedKey ??= groupKey(this.value);
    return this.cachedKey;
  }
}

export interface IdProblem {
  readonly field: IdField;
  readonly message: string;
}

export interface LineIds {
  readonly id: LineId | undefined;
  readonly groupId: LineId | undefined;
  readonly problems: readonly IdProblem[];
}

/** Where each id field is in a line: under its own name, unless the line spells it another way (`group_id`). */
export type IdKeys = Readonly<Record<IdField, string>>;

const OWN_KEYS: IdKeys = { id: "id", groupId: "groupId" };

/**
 * The ids of one parsed line (`object`, parsed from `text`, its fields under their library names; `keys` says under
 * which names `text` has them). A number id is replaced in `object` by its exact value, so that the library validates
 * and groups what the line says; a field that is neither a string nor a number is left to the library's schema to
 * reject.
 */
export function readIds(object: Record<string, unknown>, text: string, keys: IdKeys = OWN_KEYS): LineIds {
  const hasNumber = ID_FIELDS.some((field) => typeof object[field] === "number");
  const raw = hasNumber ? topLevelValueTexts(text, [keys.id, keys.groupId]) : new Map<string, string>();
  const problems: IdProblem[] = [];
  const read = (field: IdField): LineId | undefined => {
    const value = object[field];
    if (typeof value === "string") return new LineId(value);
    const token = raw.get(keys[field]);
    if (typeof value !== "number" || token === undefined) return undefined;
    const exact = exactNumber(token, value);
    if ("value" in exact) {
      object[field] = exact.value;
      return new LineId(exact.value, token);
    }
    problems.push({ field, message: exact.problem });
    // The line is invalid already; its text keeps the schema from adding a second, vaguer issue on the same field.
    object[field] = token;
    return new LineId(value, token);
  };
  const id = read("id");
  const groupId = read("groupId");
  return { id, groupId, problems };
}

const PLAIN_INTEGER = /^-?(?:0|[1-9]\d*)$/;

/** The exact value of a JSON number token that JSON.parse read as `parsed`, or why it has none that a float holds. */
function exactNumber(token: string, parsed: number): { value: number | bigint } | { problem: string } {
  if (PLAIN_INTEGER.test(token)) {
    if (Number.isSafeInteger(parsed)) return { value: parsed };
    const digits = token.length - (token.startsWith("-") ? 1 : 0);
    if (digits > MAX_ID_DIGITS)
      return { problem: `an integer of ${digits} digits: at most ${MAX_ID_DIGITS}; write a longer id as a string` };
    return { value: BigInt(token) };
  }
  if (!Number.isFinite(parsed)) {
    return {
      problem: `${abbreviate(token)} is beyond the range of a float64 (it reads as ${parsed}); an id must be finite`,
    };
  }
  if (Number.isInteger(parsed) && !Number.isSafeInteger(parsed)) {
    return {
      problem:
        `${abbreviate(token)} is an integer beyond 2^53 − 1 written with a fraction or an exponent (it reads as ` +
        `${parsed}): write it as plain digits, which are kept exactly, or as a string`,
    };
  }
  if (decimalKey(token) !== decimalKey(String(parsed))) {
    return {
      problem:
        `${abbreviate(token)} has more digits than a float64 holds (it reads as ${parsed}, which other ids may ` +
        "read as too): write it as a string",
    };
  }
  return { value: parsed };
}

/** A decimal number's value as text, whatever its spelling: 1.50, 15e-1 and 1.5 all give "15e-1". */
function decimalKey(text: string): string {
  const match = /^(-?)(\d+)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(text);
  if (match === null) return text;
  const [, sign, whole, fraction = "", exponent = "0"] = match;
  const digits = `${whole}${fraction}`.replace(/^0+/, "");
  if (digits === "") return "0";
  const significant = digits.replace(/0+$/, "");
  const scale = Number(exponent) - fraction.length + (digits.length - significant.length);
  return `${sign}${significant}e${scale}`;
}

function abbreviate(text: string): string {
  return text.length <= 40 ? text : `${text.slice(0, 20)}…${text.slice(-10)} (${text.length} characters)`;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The text of the values of `keys` in the top-level object of `text`, which must be valid JSON; for a key given
 * twice, the last, as JSON.parse keeps. Linear in the text: strings are skipped with indexOf.
 */
export function topLevelValueTexts(text: string, keys: readonly string[]): Map<string, string> {
  const found = new Map<string, string>();
  let i = skipWhitespace(text, 0);
  if (text[i] !== "{") return found;
  i = skipWhitespace(text, i + 1);
  while (text.charCodeAt(i) === QUOTE) {
    const keyEnd = endOfString(text, i);
    const key = decodeKey(text.slice(i, keyEnd));
    const valueStart = skipWhitespace(text, skipWhitespace(text, keyEnd) + 1);
    const valueEnd = endOfValue(text, valueStart);
    if (keys.includes(key)) found.set(key, text.slice(valueStart, valueEnd));
    i = skipWhitespace(text, valueEnd);
    if (text[i] !== ",") break;
    i = skipWhitespace(text, i + 1);
  }
  return found;
}

/** The index of the first character at or after `i` that is not JSON whitespace. */
export function skipWhitespace(text: string, i: number): number {
  while (i < text.length && (text[i] === " " || text[i] === "\t" || text[i] === "\n" || text[i] === "\r")) i++;
  return i;
}

/** The index after the string that opens at `start`. */
function endOfString(text: string, start: number): number {
  for (let quote = text.indexOf('"', start + 1); quote >= 0; quote = text.indexOf('"', quote + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(quote - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return quote + 1;
  }
  return text.length;
}

function decodeKey(quoted: string): string {
  return quoted.includes("\\") ? (JSON.parse(quoted) as string) : quoted.slice(1, -1);
}

/**
 * The index after the value (string, object, array, number or literal) that starts at `start`, in valid JSON. In
 * other text it is some index at or after `start`: a caller that cannot trust the text parses the slice and checks
 * what follows it.
 */
export function endOfValue(text: string, start: number): number {
  const first = text[start];
  if (first === '"') return endOfString(text, start);
  if (first === "{" || first === "[") return endOfContainer(text, start);
  let i = start;
  while (i < text.length && !",}] \t\n\r".includes(text[i]!)) i++;
  return i;
}

function endOfContainer(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') i = endOfString(text, i) - 1;
    else if (c === "{" || c === "[") depth++;
    else if ((c === "}" || c === "]") && --depth === 0) return i + 1;
  }
  return text.length;
}
