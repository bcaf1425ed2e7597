import { formatPath, GrpoRocError, safeParse, ValidationError, type ValidationIssue } from "../errors.js";
import { rolloutSchema, type Rollout } from "../roc/schema.js";
import { type LineId, readIds } from "./ids.js";

export interface LineIssue {
  /** "line 17", or "lines 3–9" for a problem of a whole group. */
  readonly where: string;
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
    const issues = args.length === 1 ? args[0] : [{ where: `line ${args[0]}`, path: args[1], message: args[2] }];
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
  return issue.path === "" ? `${issue.where}: ${issue.message}` : `${issue.where}: ${issue.path}: ${issue.message}`;
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

/** One JSON Lines line, parsed and checked against the library's rolloutSchema, with its ids read exactly. */
export function parseLine(text: string, line: number): ParsedLine {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, error: new InputError(line, "", `not JSON: ${(error as Error).message}`), ...NO_IDS };
  }
  const isObject = typeof value === "object" && value !== null && !Array.isArray(value);
  // Not an object: the schema says what it is ("expected object, received array").
  const { id, groupId, problems } = isObject ? readIds(value as Record<string, unknown>, text) : NO_PROBLEMS;
  const issues: LineIssue[] = problems.map((problem) => ({
    where: `line ${line}`,
    path: problem.field,
    message: problem.message,
  }));
  const result = safeParse(rolloutSchema, value);
  if (!result.success) issues.push(...result.error.issues.map((issue) => schemaIssue(issue, line)));
  if (issues.length > 0) return { ok: false, error: new InputError(issues), id, groupId };
  // A valid rollout's groupId is a string or a number, which readIds always reads.
  if (groupId === undefined) throw new Error(`line ${line}: groupId passed the schema but was not read`);
  // The library reads the object as given (its schema keeps unknown fields); pass that on, not zod's copy.
  return { ok: true, rollout: value as Rollout, id, groupId };
}

function schemaIssue(issue: { path: PropertyKey[]; message: string }, line: number): LineIssue {
  return { where: `line ${line}`, path: formatPath("", issue.path).replace(/^\./, ""), message: issue.message };
}

/**
 * The library names a group's rollouts by their index in the array it was given (`rollouts[3].id`); here that
 * index becomes the rollout's line number. Errors that are not the library's own are bugs and go through.
 */
export function locateGroupError(error: unknown, lines: readonly number[], groupId: LineId): InputError {
  if (error instanceof InputError) return error;
  const whole = lines.length === 1 ? `line ${lines[0]}` : `lines ${lines[0]}–${lines[lines.length - 1]}`;
  if (error instanceof ValidationError) {
    return new InputError(error.issues.map((issue) => locateIssue(issue, lines, whole)));
  }
  if (error instanceof GrpoRocError) {
    return new InputError([{ where: `${whole} (group ${groupId.json})`, path: "", message: error.message }]);
  }
  throw error;
}

function locateIssue(issue: ValidationIssue, lines: readonly number[], whole: string): LineIssue {
  const match = /^rollouts\[(\d+)\]\.?(.*)$/.exec(issue.path);
  const line = match === null ? undefined : lines[Number(match[1])];
  if (match !== null && line !== undefined) return { where: `line ${line}`, path: match[2]!, message: issue.message };
  return { where: whole, path: issue.path.replace(/^rollouts(\[\])?\.?/, ""), message: issue.message };
}
