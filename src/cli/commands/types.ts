import type { Rollout } from "../../roc/schema.js";
import type { CommandSpec, Values } from "../args.js";
import type { LineId } from "../ids.js";
import type { RecordFields } from "../record.js";
import type { Tally } from "../summary.js";

export interface Member {
  readonly line: number;
  /** The parsed line, with number ids exact (a bigint beyond 2^53 − 1). */
  readonly rollout: Rollout;
  readonly groupId: LineId;
  readonly id: LineId | undefined;
  /** The line's own text, kept for --include-rollout only. */
  readonly text: string | undefined;
}

/**
 * One output line: a whole record, or the member it is about and the fields after its line, id and groupId.
 * `dropped` decides whether --kept-only writes it.
 */
export type OutputRecord = WholeRecord | MemberRecord;

interface OutputLine {
  readonly dropped: boolean;
  /** Under --include-rollout: the input line's text, written into the record verbatim. */
  readonly rollout?: string;
}

export interface WholeRecord extends OutputLine {
  readonly record: RecordFields;
}

/** A record per rollout, built without its member's line and ids, which serializeFields writes first. */
export interface MemberRecord extends OutputLine {
  readonly member: Member;
  /** The record's fields after line, id and groupId, in order. */
  readonly fields: object;
}

/** A command that needs nothing but the line itself. */
export interface LineCommand {
  readonly kind: "line";
  processLine(member: Member, tally: Tally): OutputRecord;
}

/**
 * A command over complete groups. `processGroup` returns one record per member, in order, and updates the tally
 * only once it cannot fail; it throws the library's errors, which the driver turns into line numbers.
 */
export interface GroupCommand {
  readonly kind: "group";
  processGroup(members: readonly Member[], tally: Tally): OutputRecord[];
  /** Set when an advantage needs the std of the whole batch: a first pass collects the rewards that enter it. */
  readonly batch?: {
    collect(members: readonly Member[]): readonly number[];
    setRewards(rewards: Float64Array): void;
  };
}

export type Command = LineCommand | GroupCommand;

export interface CommandDefinition {
  readonly spec: CommandSpec;
  create(values: Values): Command;
}

/** The fields every record starts with: where it came from. */
export function identity(member: Member): { line: number; id: LineId | null; groupId: LineId } {
  return { line: member.line, id: member.id ?? null, groupId: member.groupId };
}
