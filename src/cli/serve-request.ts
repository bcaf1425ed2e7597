/**
 * One `grpo-roc serve` request line: `{ "id": …, "command": …, "rollouts": [ … ], "options": { … } }`. The
 * request's own fields are parsed here; the rollouts are only located (each one's text in the line), because each is
 * then read exactly as a line of a file is, ids to the last digit included. A request is one JSON value: what is not
 * valid JSON is refused whole, with JSON.parse's own words.
 */
import { closestKey, unknownKey, type ValidationIssue } from "../errors.js";
import { describeValue } from "../numeric.js";
import { endOfValue, skipWhitespace } from "./ids.js";

/** The fields of a request. */
export const REQUEST_FIELDS = ["id", "command", "rollouts", "options"] as const;

/** The longest id, as JSON text: it is written back on every line of the response. */
export const MAX_ID_CHARACTERS = 1024;

/** The id of a request that has none, or none that could be read: JSON null. */
export const NO_ID = "null";

/** A request that cannot be served: its id (as JSON text), and what is wrong, path by path. */
export class RequestError extends Error {
  override name = "RequestError";

  constructor(
    /** The request's id as JSON text, or "null" when it has none that could be read. */
    readonly id: string,
    readonly issues: readonly ValidationIssue[],
  ) {
    // As ValidationError's: the first five issues, one a line; `issues` has them all.
    const shown = issues
      .slice(0, 5)
      .map((issue) => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`));
    if (issues.length > shown.length) shown.push(`… and ${issues.length - shown.length} more`);
    super(shown.join("\n"));
  }
}

/** The rollouts of a request as texts in its line: rollout k is `line.slice(bounds[2k], bounds[2k + 1])`. */
export class RolloutTexts {
  constructor(
    private readonly line: string,
    private readonly bounds: readonly number[],
  ) {}

  get count(): number {
    return this.bounds.length / 2;
  }

  text(k: number): string {
    return this.line.slice(this.bounds[2 * k], this.bounds[2 * k + 1]);
  }
}

export interface ServeRequest {
  /** The request's id as the line wrote it (JSON text), "null" when it has none: echoed on every response line. */
  readonly id: string;
  readonly command: string;
  readonly rollouts: RolloutTexts;
  /** The options object as parsed; {} when there is none. */
  readonly options: Readonly<Record<string, unknown>>;
}

/**
 * Reads one request line. Throws a RequestError naming every problem of the request's own fields (unknown or
 * repeated keys, a command that is not one of `commands`, rollouts that are not an array, options that are not an
 * object) with the request's id when it could be read; the rollouts themselves are checked when they are read.
 */
export function parseRequest(line: string, commands: readonly string[]): ServeRequest {
  const { slices, bounds } = scan(line);
  const issues: ValidationIssue[] = [];
  const id = readId(line, slices.get("id"), issues);
  for (const key of slices.keys()) {
    if (!(REQUEST_FIELDS as readonly string[]).includes(key))
      issues.push({ path: key, message: unknownKey(key, REQUEST_FIELDS) });
  }
  const command = readCommand(line, slices.get("command"), commands, id, issues);
  const rollouts = slices.get("rollouts");
  if (rollouts === undefined) issues.push({ path: "rollouts", message: "required: the rollouts, an array" });
  else if (bounds === undefined) {
    issues.push({
      path: "rollouts",
      message: `expected an array of rollouts, received ${describeValue(parseSlice(line, rollouts, id))}`,
    });
  }
  const options = readOptions(line, slices.get("options"), id, issues);
  if (issues.length > 0) throw new RequestError(id, issues);
  return { id, command: command!, rollouts: new RolloutTexts(line, bounds!), options };
}

type Slice = readonly [start: number, end: number];

/** Each request field's value as a slice of the line, and the bounds of the rollouts when they are an array. */
function scan(line: string): { slices: Map<string, Slice>; bounds: number[] | undefined } {
  const slices = new Map<string, Slice>();
  let bounds: number[] | undefined;
  let id = NO_ID;
  const repeated: string[] = [];
  let i = skipWhitespace(line, 0);
  if (line[i] !== "{") throw notAnObject(line);
  i = skipWhitespace(line, i + 1);
  while (line[i] !== "}") {
    if (line[i] !== '"') throw notJson(line, id);
    const keyEnd = endOfValue(line, i);
    const key = parseSlice(line, [i, keyEnd], id) as string;
    i = skipWhitespace(line, keyEnd);
    if (line[i] !== ":") throw notJson(line, id);
    const start = skipWhitespace(line, i + 1);
    let end: number;
    if (key === "rollouts" && line[start] === "[") {
      bounds = [];
      end = scanArray(line, start, bounds);
    } else end = endOfValue(line, start);
    if (end <= start) throw notJson(line, id);
    if (slices.has(key)) repeated.push(key);
    slices.set(key, [start, end]);
    // The id as soon as it is read, so that an error further on is answered with it.
    if (key === "id") {
      parseSlice(line, [start, end], id);
      if (end - start <= MAX_ID_CHARACTERS) id = line.slice(start, end);
    }
    i = skipWhitespace(line, end);
    if (line[i] === ",") i = skipWhitespace(line, i + 1);
    else if (line[i] !== "}") throw notJson(line, id);
    else break;
  }
  if (skipWhitespace(line, i + 1) !== line.length) throw notJson(line, id);
  if (repeated.length > 0) {
    throw new RequestError(
      id,
      repeated.map((key) => ({ path: key, message: "given twice: a request gives each field once" })),
    );
  }
  return { slices, bounds };
}

/** The bounds of each element of the array at `start`, pushed onto `bounds`; the index after the array, or -1. */
function scanArray(line: string, start: number, bounds: number[]): number {
  let i = skipWhitespace(line, start + 1);
  if (line[i] === "]") return i + 1;
  for (;;) {
    const end = endOfValue(line, i);
    if (end <= i) return -1;
    bounds.push(i, end);
    i = skipWhitespace(line, end);
    if (line[i] === "]") return i + 1;
    if (line[i] !== ",") return -1;
    i = skipWhitespace(line, i + 1);
  }
}

function readId(line: string, slice: Slice | undefined, issues: ValidationIssue[]): string {
  if (slice === undefined) return NO_ID;
  const length = slice[1] - slice[0];
  if (length <= MAX_ID_CHARACTERS) return line.slice(slice[0], slice[1]);
  issues.push({
    path: "id",
    message:
      `${length} characters of JSON, over the limit of ${MAX_ID_CHARACTERS}: the id is written back on every ` +
      "response line",
  });
  return NO_ID;
}

function readCommand(
  line: string,
  slice: Slice | undefined,
  commands: readonly string[],
  id: string,
  issues: ValidationIssue[],
): string | undefined {
  if (slice === undefined) {
    issues.push({ path: "command", message: `required: one of ${commands.join(", ")}` });
    return undefined;
  }
  const command = parseSlice(line, slice, id);
  if (typeof command === "string" && commands.includes(command)) return command;
  const meant = typeof command === "string" ? closestKey(command, commands) : undefined;
  issues.push({
    path: "command",
    message:
      `expected one of ${commands.join(", ")}, received ${describeValue(command)}` +
      (meant === undefined ? "" : `; did you mean "${meant}"?`),
  });
  return undefined;
}

function readOptions(
  line: string,
  slice: Slice | undefined,
  id: string,
  issues: ValidationIssue[],
): Record<string, unknown> {
  if (slice === undefined) return {};
  const options = parseSlice(line, slice, id);
  if (typeof options === "object" && options !== null && !Array.isArray(options)) {
    return options as Record<string, unknown>;
  }
  issues.push({ path: "options", message: `expected an object, received ${describeValue(options)}` });
  return {};
}

/** The value of a slice of the line; a slice that is not JSON makes the whole line not JSON. */
function parseSlice(line: string, [start, end]: Slice, id: string): unknown {
  try {
    return JSON.parse(line.slice(start, end));
  } catch {
    throw notJson(line, id);
  }
}

/** The error for a line that is not JSON, in JSON.parse's words (it stops at the first fault, so this is cheap). */
function notJson(line: string, id: string): RequestError {
  try {
    JSON.parse(line);
  } catch (error) {
    return new RequestError(id, [{ path: "", message: `not JSON: ${(error as Error).message}` }]);
  }
  throw new Error("the request scanner refused a line that JSON.parse reads");
}

function notAnObject(line: string): RequestError {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return notJson(line, NO_ID);
  }
  return new RequestError(NO_ID, [
    {
      path: "",
      message: `expected a request object { id, command, rollouts, options }, received ${describeValue(value)}`,
    },
  ]);
}
