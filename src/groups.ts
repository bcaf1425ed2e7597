import { z } from "zod";
import { invalid } from "./errors.js";

/** Rollouts of the same prompt share a group id: a string or a finite number (1 and "1" are different groups). */
export type GroupId = string | number;

export const groupIdSchema = z.union([z.string(), z.number()], {
  error: "group id must be a string or a finite number",
});

export interface Group {
  readonly id: GroupId;
  /** Indices of the group's members in the input, ascending. */
  readonly members: Int32Array;
}

/** Groups rollouts by id, in order of first appearance; ids need not be contiguous. */
export function groupBy(groupIds: ArrayLike<unknown>, name = "groupIds"): Group[] {
  const buckets = new Map<GroupId, number[]>();
  for (let i = 0; i < groupIds.length; i++) {
    const id = groupIds[i];
    const ok = typeof id === "string" || (typeof id === "number" && Number.isFinite(id));
    if (!ok) throw invalid(`${name}[${i}]`, `group id must be a string or a finite number, received ${describe(id)}`);
    let bucket = buckets.get(id);
    if (bucket === undefined) {
      bucket = [];
      buckets.set(id, bucket);
    }
    bucket.push(i);
  }
  return Array.from(buckets, ([id, members]) => ({ id, members: Int32Array.from(members) }));
}

/** A stable text key for seeding per-group randomness; keeps 1 and "1" apart. */
export function groupKey(id: GroupId): string {
  return typeof id === "number" ? `n:${id}` : `s:${id}`;
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (typeof value === "number") return String(value);
  return typeof value;
}
