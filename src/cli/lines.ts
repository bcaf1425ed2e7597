import { formatPath, GrpoRocError, safeParse, ValidationError, type ValidationIssue } from "../errors.js";
import { passesRolloutSchemaQuickly, ROLLOUT_FIELDS, rolloutSchema, type Rollout } from "../roc/schema.js";
import { type IdKeys, type LineId, readIds } from "./ids.js";

export interface LineIssue {
  /** The line it is about, or for a problem of a whole group its first and last lines. */
  readonly lines: readonly [first: number, last: number];
  /** For a problem of a whole group, the group's id as JSON. */
  readonly group?: string | undefined;
  /** The field inside the line's rollout, as it would be indexed (`toolCalls[2].outcome`); "" for the line itself. */
  readonly path: string;
  readonly message: string;
}

/** Invalid input, located by line number and field: exit code 1, or a skipped line under --skip-invalid. */
export class InputError extends Error {
  override name = "InputError";
  readonly issues: readonly LineIssue[];

  constructor(issues: readonly LineIssue[]);
  constructor(line: number, path: string, message: string);
  constructor(...args: [readonly LineIssue[]] | [number, string, string]) {
    const issues =
      args.length === 1 ? args[0] : [{ lines: [args[0], args[0]] as const, path: args[1], message: args[2] }];
    super(issues.map(describeIssue).join("\n"));
    this.issues = issues;
  }

  /** The text of an invalid record's reason: the issues without the line number the record already carries. */
  get reason(): string {
    return this.issues
      .map((issue) => (issue.path === "" ? issue.message : `${issue.path}: ${issue.message}`))
      .join("; ");
  }
}

function describeIssue(issue: LineIssue): string {
  const where = describeLines(issue);
  return issue.path === "" ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

/** "line 17", or for a whole group "lines 3–9 (group "q1")". */
function describeLines({ lines: [first, last], group }: LineIssue): string {
  const lines = first === last ? `line ${first}` : `lines ${first}–${last}`;
  return group === undefined ? lines : `${lines} (group ${group})`;
}

/** The ids of a line, as far as it has readable ones. */
export interface Identity {
  readonly id: LineId | undefined;
  readonly groupId: LineId | undefined;
}

export type ParsedLine =
  | { readonly ok: true; readonly rollout: Rollout; readonly id: LineId | undefined; readonly groupId: LineId }
  | ({ readonly ok: false; readonly error: InputError } & Identity);

const NO_IDS: Identity = { id: undefined, groupId: undefined };
const NO_PROBLEMS = { ...NO_IDS, problems: [] };

/**
 * The snake_case spelling of each rollout field that has one of its own (`group_id`, `tool_calls`, `format_ok`…),
 * derived from the library's field list so that a new field is covered too: Python writes these, and the command
 * line reads them as the library's fields. The library itself keeps refusing them (a typo there).
 */
const LIBRARY_FIELD_OF: ReadonlyMap<string, string> = new Map(
  ROLLOUT_FIELDS.flatMap((field) => {
    const snake = field.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    return snake === field ? [] : [[snake, field] as const];
  }),
);

/** A line's object with its fields under the library's names, and the name the line gave each renamed one. */
interface Respelled {
  readonly object: Record<string, unknown>;
  /** Library name → the line's own name, for each field the line spelt in snake_case. */
  readonly lineKeys: ReadonlyMap<string, string>;
  /** Fields the line gives under both spellings: the line is invalid. */
  readonly problems: readonly { readonly field: string; readonly message: string }[];
}

const AS_WRITTEN: Omit<Respelled, "object"> = { lineKeys: new Map(), problems: [] };

/**
 * `object` with its snake_case rollout fields renamed to the library's (a new object, in the same key order; the
 * line's own object when it has none, the common case, which costs one look at each key).
 */
function librarySpelling(object: Record<string, unknown>): Respelled {
  if (!hasSnakeCaseField(object)) return { object, ...AS_WRITTEN };
  const lineKeys = new Map<string, string>();
  const problems: { field: string; message: string }[] = [];
  const entries: [string, unknown][] = [];
  for (const [key, value] of Object.entries(object)) {
    const field = LIBRARY_FIELD_OF.get(key);
    if (field === undefined) entries.push([key, value]);
    else if (Object.hasOwn(object, field)) {
      problems.push({ field: key, message: `"${key}" and "${field}" are one field spelt two ways: give one` });
    } else {
      lineKeys.set(field, key);
      entries.push([field, value]);
    }
  }
  // Object.fromEntries, not assignment: a "__proto__" key stays a field, as JSON.parse made it.
  return { object: Object.fromEntries(entries), lineKeys, problems };
}

function hasSnakeCaseField(object: Record<string, unknown>): boolean {
  for (const key in object) if (LIBRARY_FIELD_OF.has(key)) return true;
  return false;
}

/**
 * One JSON Lines line, parsed and checked against the library's rolloutSchema, with its ids read exactly. Rollout
 * fields in snake_case (`tool_calls`) are read as the library's (`toolCalls`), and messages name them as the line
 * spelt them.
 */
export function parseLine(text: string, line: number): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: new InputError(line, "", `not JSON: ${(error as Error).message}`), ...NO_IDS };
  }
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  // Not an object: the schema says what it is ("expected object, received array").
  const spelling = isObject ? librarySpelling(value as Record<string, unknown>) : { object: value, ...AS_WRITTEN };
  const { object, lineKeys } = spelling;
  const keys: IdKeys = { id: "id", groupId: lineKeys.get("groupId") ?? "groupId" };
  const { id, groupId, problems } = isObject ? readIds(object as Record<string, unknown>, text, keys) : NO_PROBLEMS;
  const issues: LineIssue[] = [...spelling.problems, ...problems].map((problem) => ({
    lines: [line, line],
    path: lineKeys.get(problem.field) ?? problem.field,
    message: problem.message,
  }));
  // The quick check accepts only what the schema accepts; zod runs for the rest, and says what is wrong.
  if (!passesRolloutSchemaQuickly(object)) {
    const result = safeParse(rolloutSchema, object);
    if (!result.success) issues.push(...result.error.issues.map((issue) => schemaIssue(issue, line, lineKeys)));
  }
  if (issues.length > 0) return { ok: false, error: new InputError(issues), id, groupId };
  // A valid rollout's groupId is a string or a number, which readIds always reads.
  if (groupId === undefined) throw new Error(`line ${line}: groupId passed the schema but was not read`);
  // The library reads the object as given (its schema keeps unknown fields); pass that on, not zod's copy.
  return { ok: true, rollout: object as Rollout, id, groupId };
}

/** A schema issue of line `line`, its field named as the line spelt it. */
function schemaIssue(
  issue: { path: PropertyKey[]; message: string },
  line: number,
  lineKeys: ReadonlyMap<string, string>,
): LineIssue {
  const [field, ...rest] = issue.path;
  const spelt = typeof field === "string" ? [lineKeys.get(field) ?? field, ...rest] : issue.path;
  return { lines: [line, line], path: formatPath("", spelt).replace(/^\./, ""), message: issue.message };
}

/**
 * The library names a group's rollouts by their index in the array it was given (`rollouts[3].id`); here that
 * index becomes the rollout's line number. Errors that are not the library's own are bugs and go through.
 */
export function locateGroupError(error: unknown, lines: readonly number[], groupId: LineId): InputError {
  if (error instanceof InputError) return error;
  const whole = [lines[0]!, lines[lines.length - 1]!] as const;
  if (error instanceof ValidationError) {
    return new InputError(error.issues.map((issue) => locateIssue(issue, lines, whole)));
  }
  if (error instanceof GrpoRocError) {
    return new InputError([{ lines: whole, group: groupId.json, path: "", message: error.message }]);
  }
  throw error;
}

function locateIssue(issue: ValidationIssue, lines: readonly number[], whole: readonly [number, number]): LineIssue {
  const match = /^rollouts\[(\d+)\]\.?(.*)$/.exec(issue.path);
  const line = match === null ? undefined : lines[Number(match[1])];
  if (match !== null && line !== undefined) return { lines: [line, line], path: match[2]!, message: issue.message };
  return { lines: whole, path: issue.path.replace(/^rollouts(\[\])?\.?/, ""), message: issue.message };
}
