import { en } from "zod/locales";
import * as z from "zod/mini";

/** Every error grpo-roc throws on purpose is a GrpoRocError, so trainers can tell bad input from bugs. */
export class GrpoRocError extends Error {
  override name = "GrpoRocError";
}

/** One problem with an input: where it is, and the rule it breaks. */
export interface ValidationIssue {
  /** Where the problem is, written as the caller would index it: `rollouts[3].toolCalls[0].outcome`. */
  readonly path: string;
  /** The rule broken, and what was received where that helps: `outcome must be one of ok, parse_error, …`. */
  readonly message: string;
}

/**
 * Bad input at the public boundary: names the field, the index and the rule broken. Its message lists the first
 * five issues, one a line (`path: message`); `issues` has them all.
 */
export class ValidationError extends GrpoRocError {
  override name = "ValidationError";
  /** Every problem found, in input order. */
  readonly issues: readonly ValidationIssue[];

  constructor(issues: readonly ValidationIssue[]) {
    const shown = issues.slice(0, 5).map((issue) => `${issue.path}: ${issue.message}`);
    if (issues.length > shown.length) shown.push(`… and ${issues.length - shown.length} more`);
    super(shown.join("\n"));
    this.issues = issues;
  }
}

export function formatPath(root: string, path: readonly PropertyKey[]): string {
  let out = root;
  for (const key of path) out += typeof key === "number" ? `[${key}]` : `.${String(key)}`;
  return out;
}

export function invalid(path: string, message: string): ValidationError {
  return new ValidationError([{ path, message }]);
}

/**
 * Parses `value` with `schema`, throwing a ValidationError whose paths start at `root`. Objects are strict: an
 * unknown key is an issue at that key's own path, with the closest known key as a suggestion.
 */
export function parseOrThrow<T extends z.core.$ZodType>(schema: T, value: unknown, root: string): z.output<T> {
  const result = safeParse(schema, value);
  if (result.success) return result.data;
  throw new ValidationError(result.error.issues.flatMap((issue) => validationIssues(issue, root)));
}

/**
 * zod's safeParse with grpo-roc's messages, for every parse in the library. The messages are passed to each parse,
 * never set with z.config: the caller's zod configuration stays the caller's.
 */
export function safeParse<T extends z.core.$ZodType>(schema: T, value: unknown) {
  return z.safeParse(schema, value, { error: message });
}

/** zod/mini ships no messages; English is the only locale bundled, and the one the library's messages are in. */
const english = en().localeError;

const message: z.core.$ZodErrorMap = (issue) => unknownKeysMessage(issue) ?? english(issue);

/** Separates the per-key messages of one unrecognized_keys issue (zod gives one issue for all of an object's keys). */
const KEY_SEPARATOR = "\u0000";

/** For unknown keys, a message per key naming the closest known one. */
function unknownKeysMessage(issue: z.core.$ZodRawIssue): string | undefined {
  if (issue.code !== "unrecognized_keys") return undefined;
  const shape = (issue.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def?.shape;
  const known = Object.keys(shape ?? {});
  return issue.keys.map((key) => unknownKey(key, known)).join(KEY_SEPARATOR);
}

function validationIssues(issue: z.core.$ZodIssue, root: string): ValidationIssue[] {
  if (issue.code !== "unrecognized_keys") return [{ path: formatPath(root, issue.path), message: issue.message }];
  const messages = issue.message.split(KEY_SEPARATOR);
  return issue.keys.map((key, k) => ({ path: formatPath(root, [...issue.path, key]), message: messages[k]! }));
}

/** The message for a key an object does not have: what it is not, and what it most likely meant. */
export function unknownKey(key: string, known: readonly string[]): string {
  const suggestion = closestKey(key, known);
  if (suggestion !== undefined) return `unknown key; did you mean "${suggestion}"?`;
  return known.length === 0 ? "unknown key" : `unknown key; known keys: ${known.join(", ")}`;
}

/** A key with case, "_" and "-" folded away: `tool_calls`, `toolCalls` and `ToolCalls` are one key spelt three ways. */
export function foldKey(key: string): string {
  return key.toLowerCase().replace(/[_-]/g, "");
}

/**
 * The known key a misspelt one most likely meant: the same letters ignoring case, "_" and "-" (`tool_calls` for
 * `toolCalls`), else the nearest by edit distance, at most 2 edits (and fewer than a third of the key).
 */
export function closestKey(key: string, known: readonly string[]): string | undefined {
  const folded = foldKey(key);
  const same = known.find((candidate) => foldKey(candidate) === folded);
  if (same !== undefined) return same;
  let best: string | undefined;
  let bestDistance = Math.min(2, Math.ceil(folded.length / 3));
  for (const candidate of known) {
    const distance = editDistance(folded, foldKey(candidate));
    if (distance <= bestDistance && (best === undefined || distance < editDistance(folded, foldKey(best)))) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Levenshtein distance, with a swap of two neighbours counted as one edit. */
function editDistance(a: string, b: string): number {
  const rows = a.length + 1;
  const cols = b.length + 1;
  const d = Array.from({ length: rows }, (_, i) =>
    Array.from({ length: cols }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i < rows; i++) {
    for (let j = 1; j < cols; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let value = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        value = Math.min(value, d[i - 2]![j - 2]! + 1);
      d[i]![j] = value;
    }
  }
  return d[rows - 1]![cols - 1]!;
}

/** A registry's arguments: a non-empty name and a function (registerAdvantageEstimator, registerPolicyObjective). */
export function requireRegistration(name: unknown, fn: unknown, what: string): void {
  if (typeof name !== "string" || name === "") throw invalid("name", `the ${what}'s name must be a non-empty string`);
  if (typeof fn !== "function") throw invalid(what, `expected a function, received ${typeof fn}`);
}

/**
 * Checks that a plain object (an inputs or buffers object the library reads field by field) has no key outside
 * `known`: a misspelt field would otherwise be read as absent.
 */
export function requireKnownKeys(value: object, known: readonly string[], root: string): void {
  const issues = Object.keys(value)
    .filter((key) => !known.includes(key))
    .map((key) => ({ path: `${root}.${key}`, message: unknownKey(key, known) }));
  if (issues.length > 0) throw new ValidationError(issues);
}
