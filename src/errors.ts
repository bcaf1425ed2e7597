import type { z } from "zod";

/** Every error grpo-roc throws on purpose is a GrpoRocError, so trainers can tell bad input from bugs. */
export class GrpoRocError extends Error {
  override name = "GrpoRocError";
}

export interface ValidationIssue {
  /** Where the problem is, written as the caller would index it: `rollouts[3].toolCalls[0].outcome`. */
  readonly path: string;
  readonly message: string;
}

/** Bad input at the public boundary: names the field, the index and the rule broken. */
export class ValidationError extends GrpoRocError {
  override name = "ValidationError";
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

/** Parses `value` with `schema`, throwing a ValidationError whose paths start at `root`. */
export function parseOrThrow<T extends z.ZodType>(schema: T, value: unknown, root: string): z.output<T> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  throw new ValidationError(
    result.error.issues.map((issue) => ({ path: formatPath(root, issue.path), message: issue.message })),
  );
}
