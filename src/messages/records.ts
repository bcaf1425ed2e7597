/**
 * Reading a provider's record field by field. Records are the provider's own objects: fields this package does not
 * read pass as they are, but a field that spells a read one another way (`toolCalls` for `tool_calls`), or a part
 * type that does (`tool_call` for `tool-call`), is an error: read as absent it would lose calls without a word.
 */
import { foldKey, invalid } from "../errors.js";
import { describeValue } from "../numeric.js";

/** A record's fields, as read. */
export type Fields = Readonly<Record<string, unknown>>;

export function objectAt(value: unknown, path: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalid(path, `expected an object, received ${describeValue(value)}`);
  }
  return value as Fields;
}

/**
 * An array's items, a hole in a sparse array read as undefined (forEach and map would pass over it without a word).
 * `expected` says what the field holds, for the error.
 */
export function arrayAt(value: unknown, path: string, expected = "an array"): readonly unknown[] {
  if (!Array.isArray(value)) throw invalid(path, `expected ${expected}, received ${describeValue(value)}`);
  return Array.from(value);
}

export function stringAt(value: unknown, path: string): string {
  if (typeof value !== "string") throw invalid(path, `expected a string, received ${describeValue(value)}`);
  return value;
}

export function optionalBooleanAt(value: unknown, path: string): boolean | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== "boolean") throw invalid(path, `expected a boolean, received ${describeValue(value)}`);
  return value;
}

export function oneOfAt<T extends string>(value: unknown, choices: readonly T[], path: string): T {
  if ((choices as readonly unknown[]).includes(value)) return value as T;
  const listed = choices.map((choice) => `"${choice}"`).join(", ");
  throw invalid(path, `expected one of ${listed}, received ${describeValue(value)}`);
}

/** Refuses a field that spells one of `read` another way (case, "_" and "-" folded). */
export function refuseRespelledKeys(record: Fields, read: readonly string[], path: string): void {
  for (const key of Object.keys(record)) {
    if (read.includes(key)) continue;
    const meant = read.find((known) => foldKey(known) === foldKey(key));
    if (meant !== undefined) throw invalid(`${path}.${key}`, `not a field here; did you mean "${meant}"?`);
  }
}

/** Refuses a part type that spells one of `read` another way: `tool_call` where the format writes `tool-call`. */
export function refuseRespelledType(type: string, read: readonly string[], path: string): void {
  if (read.includes(type)) return;
  const meant = read.find((known) => foldKey(known) === foldKey(type));
  if (meant !== undefined) throw invalid(path, `"${type}" is not a type here; did you mean "${meant}"?`);
}

/** The type of a typed part (`{ type: "text", … }`), checked for respellings of the types a reader reads. */
export function partTypeAt(part: Fields, read: readonly string[], path: string): string {
  const type = stringAt(part.type, `${path}.type`);
  refuseRespelledType(type, read, `${path}.type`);
  return type;
}

/**
 * A value as text, for a classifier: strings as they are, anything else as JSON. A value JSON cannot write (a cycle,
 * a bigint, nesting deeper than the stack) is written by String(), which never throws for such values.
 */
export function textOf(value: unknown): string {
  if (typeof value === "string") return value;
  if (value instanceof Error) return value.message;
  try {
    return JSON.stringify(value) ?? "";
  } catch {
    return safeString(value);
  }
}

function safeString(value: unknown): string {
  try {
    return String(value);
  } catch {
    // An object whose toString throws, or one without a prototype.
    return "";
  }
}
