import { createHash } from "node:crypto";
import type { LineId } from "./ids.js";
import { InputError } from "./lines.js";

/** What the grouping needs of a line: where it is and whose it is. */
export interface Placed {
  readonly line: number;
  readonly groupId: LineId;
  readonly id: LineId | undefined;
}

/**
 * Rollout ids are unique within a group. Remembers the ids of the current run of lines of one group (for the
 * grouping commands: the open group), so memory is bounded by the largest group.
 */
export class DuplicateIds {
  private runKey: string | undefined;
  private readonly seen = new Map<string, number>();

  /** Throws an InputError, before remembering anything, when `member`'s id is already in its run. */
  check(member: Placed): void {
    if (member.id === undefined || member.groupId.key !== this.runKey) return;
    const earlier = this.seen.get(member.id.key);
    if (earlier === undefined) return;
    throw new InputError(
      member.line,
      "id",
      `duplicate id ${member.id.json} in group ${member.groupId.json} (line ${earlier}): rollout ids must be ` +
        "unique within their group",
    );
  }

  add(member: Placed): void {
    if (member.groupId.key !== this.runKey) {
      this.runKey = member.groupId.key;
      this.seen.clear();
    }
    if (member.id !== undefined) this.seen.set(member.id.key, member.line);
  }
}

/** Bytes of a finished group's digest: 128 bits of SHA-256. */
export const DIGEST_BYTES = 16;

/**
 * A finished group's fixed-size stand-in, whatever the length of its id: 128 bits of SHA-256 of its key (UTF-16,
 * so that every JavaScript string, lone surrogates included, has its own bytes). Two of n groups share one with
 * probability about n² / 2^129 (10^-20 for a billion groups); should it happen, the later group is reported as
 * coming back (an error), never merged.
 */
function digest(key: string): string {
  return createHash("sha256").update(key, "utf16le").digest().toString("latin1", 0, DIGEST_BYTES);
}

/**
 * Cuts a stream of lines into groups: the rollouts of one group are contiguous lines, and a group is complete when
 * a line of another group arrives (or the input ends). Items that belong to no group (invalid lines) ride along
 * with the open group so that the output keeps the input's order. Memory: the open group, plus, under "error", a
 * digest and the line span of each finished group (about 90 bytes, measured), to catch an id that comes back.
 */
export class ContiguousGroups<T> {
  private openKey: string | undefined;
  private openDigest = "";
  /** The last key digested, so that each group is hashed once: when its first line is checked. */
  private lastDigested: { readonly key: string; readonly digest: string } | undefined;
  private openFirst = 0;
  private openLast = 0;
  private items: T[] = [];
  /** Digest of a finished group → its index in `spans`. */
  private readonly finished = new Map<string, number>();
  /** First line, last line, and the line that closed it, for each finished group. */
  private readonly spans: number[] = [];
  private readonly ids = new DuplicateIds();

  constructor(private readonly repeated: "error" | "separate") {}

  /**
   * Throws an InputError, before changing anything, when `member`'s group was finished earlier or its id is already
   * in the open group; so under --skip-invalid the line can be reported and skipped while the open group goes on.
   */
  check(member: Placed): void {
    this.checkComesBack(member);
    this.ids.check(member);
  }

  /** Adds a member that passed `check`; returns the items of the group its line closed, if any. */
  add(member: Placed, item: T): T[] | undefined {
    const key = member.groupId.key;
    let completed: T[] | undefined;
    if (this.openKey !== key) {
      completed = this.close(member.line);
      this.openKey = key;
      if (this.repeated === "error") this.openDigest = this.digestOf(key);
      this.openFirst = member.line;
    }
    this.openLast = member.line;
    this.ids.add(member);
    this.items.push(item);
    return completed;
  }

  /**
   * An item of no group, kept in its place in the order: it waits for the open group. Before the first group there
   * is nothing to wait for, and it is handed back to go out at once (an input of nothing but bad lines under
   * --skip-invalid is not held in memory).
   */
  addLoose(item: T): T | undefined {
    if (this.openKey === undefined && this.items.length === 0) return item;
    this.items.push(item);
    return undefined;
  }

  /** The last group, with any loose items after it. */
  finish(): T[] | undefined {
    if (this.items.length === 0) return undefined;
    const items = this.items;
    this.items = [];
    return items;
  }

  private checkComesBack(member: Placed): void {
    const key = member.groupId.key;
    if (this.repeated === "separate" || this.openKey === key) return;
    const index = this.finished.get(this.digestOf(key));
    if (index === undefined) return;
    const [first, last, closedAt] = this.spans.slice(index, index + 3) as [number, number, number];
    throw new InputError(
      member.line,
      "groupId",
      `group ${member.groupId.json} comes back after its group (lines ${span(first, last)}) was closed at line ` +
        `${closedAt} by another group id: the rollouts of a group must be contiguous lines (or pass ` +
        `--repeated-groups separate)`,
    );
  }

  private digestOf(key: string): string {
    if (this.lastDigested?.key !== key) this.lastDigested = { key, digest: digest(key) };
    return this.lastDigested.digest;
  }

  private close(closedAt: number): T[] | undefined {
    if (this.openKey === undefined) return undefined; // Loose items before the first group go out with it.
    const items = this.items;
    this.items = [];
    if (this.repeated === "error") {
      this.finished.set(this.openDigest, this.spans.length);
      this.spans.push(this.openFirst, this.openLast, closedAt);
    }
    return items;
  }
}

function span(first: number, last: number): string {
  return first === last ? `${first}` : `${first}–${last}`;
}
