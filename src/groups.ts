import * as z from "zod/mini";
import { invalid } from "./errors.js";
import { describeValue } from "./numeric.js";

/**
 * Rollouts of the same prompt share a group id: a string, a number, or a bigint (1 and "1" are different groups;
 * 1 and 1n the same). Numbers must be safe integers or other finite numbers: an integer beyond 2^53 − 1, such as a
 * 64-bit hash, has already lost digits as a JavaScript number, so it is refused; pass it as a string or a bigint.
 */
export type GroupId = string | number | bigint;

/** Why a number cannot be an id, or undefined when it can. */
function unsafeNumberId(id: number): string | undefined {
  if (!Number.isFinite(id)) return `must be a string or a finite number, received ${id}`;
  if (Number.isInteger(id) && !Number.isSafeInteger(id)) {
    return `${id} is an integer beyond 2^53 − 1, where numbers round; pass it as a string or a bigint`;
  }
  return undefined;
}

/** Why a value cannot be an id, or undefined when it can (one test per id: RoC checks thousands per call). */
function idProblem(what: string, value: unknown): string | undefined {
  if (typeof value === "string" || typeof value === "bigint") return undefined;
  if (typeof value !== "number") return `${what} must be a string or a finite number (or a bigint)`;
  const problem = unsafeNumberId(value);
  return problem === undefined ? undefined : `${what} ${problem}`;
}

/** Whether idSchema and groupIdSchema accept `value`, without zod (the command line's quick check of a line). */
export function isValidId(value: unknown): boolean {
  return idProblem("id", value) === undefined;
}

/** A string, a bigint, or a finite number that is not an unsafe integer (a group id or a rollout id). */
function idSchemaFor(what: string) {
  return z.custom<GroupId>((value) => idProblem(what, value) === undefined, {
    error: (issue) => idProblem(what, issue.input) ?? `${what} is not valid`,
  });
}

export const idSchema = idSchemaFor("id");
export const groupIdSchema = idSchemaFor("group id");

/**
 * The key that makes two ids one group in a Map: the id itself, but a bigint within the safe range as the number it
 * equals (1n and 1 one group; "1", a string, another), so no key is built as text.
 */
export function idKey(id: GroupId): string | number | bigint {
  return typeof id === "bigint" && id >= -MAX_SAFE && id <= MAX_SAFE ? Number(id) : id;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export interface Group {
  readonly id: GroupId;
  /** Indices of the group's members in the input, ascending. */
  readonly members: Int32Array;
}

/** Groups rollouts by id, in order of first appearance; ids need not be contiguous. */
export function groupBy(groupIds: ArrayLike<unknown>, name = "groupIds"): Group[] {
  const buckets = new Map<string | number | bigint, { id: GroupId; members: number[] }>();
  for (let i = 0; i < groupIds.length; i++) {
    const id = requireId(groupIds[i], `${name}[${i}]`, "group id");
    const key = idKey(id);
    let bucket = buckets.get(key);
    if (bucket === undefined) {
      // Map keys make −0 and 0 one group; the group is reported as 0 either way.
      bucket = { id: Object.is(id, -0) ? 0 : id, members: [] };
      buckets.set(key, bucket);
    }
    bucket.members.push(i);
  }
  return Array.from(buckets.values(), ({ id, members }) => ({ id, members: Int32Array.from(members) }));
}

/** `value` as an id (see GroupId), or the error at `path`. */
export function requireId(value: unknown, path: string, what: string): GroupId {
  if (typeof value === "string" || typeof value === "bigint") return value;
  if (typeof value !== "number") {
    throw invalid(
      path,
      `${what} must be a string or a finite number, received ${describeValue(value)}; a bigint works too`,
    );
  }
  const problem = unsafeNumberId(value);
  if (problem !== undefined) throw invalid(path, `${what} ${problem}`);
  return value;
}

/** A stable text key for grouping and for seeding per-group randomness: 1 and "1" apart, 1 and 1n together. */
export function groupKey(id: GroupId): string {
  return typeof id === "string" ? `s:${id}` : `n:${id}`;
}

/** An id as a message shows it: strings quoted, bigints with their n. */
export function showId(id: GroupId): string {
  return typeof id === "bigint" ? `${id}n` : JSON.stringify(id);
}
