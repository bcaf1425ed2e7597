import type { LineId } from "./ids.js";

/** The fields every record starts with: where it came from. */
export interface RecordFields {
  readonly line: number;
  readonly id: LineId | null;
  readonly groupId: LineId | null;
  readonly [field: string]: unknown;
}

/**
 * One output line. The ids are written as the input line wrote them (JSON.stringify could not write an integer
 * beyond 2^53 − 1 without rounding it), and `rollout`, the input line's own text under --include-rollout, verbatim:
 * the record carries the very bytes the trainer wrote.
 */
export function serializeRecord(record: RecordFields, rollout: string | undefined): string {
  const { line, id, groupId, ...rest } = record;
  return serializeFields(line, id, groupId, rest, rollout);
}

/**
 * serializeRecord for a record given as its first three fields and an object of the others, in order: a command
 * that writes a record per rollout builds that object directly, without a whole record to split again here.
 */
export function serializeFields(
  line: number,
  id: LineId | null,
  groupId: LineId | null,
  fields: object,
  rollout: string | undefined,
): string {
  const tail = JSON.stringify(fields);
  const rest = tail === "{}" ? "" : `,${tail.slice(1, -1)}`;
  const copy = rollout === undefined ? "" : `,"rollout":${rollout}`;
  return `{"line":${line},"id":${id?.json ?? "null"},"groupId":${groupId?.json ?? "null"}${rest}${copy}}`;
}
