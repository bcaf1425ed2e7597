import { groupKey, type GroupId } from "../groups.js";
import { InputError } from "./lines.js";

interface ClosedGroup {
  readonly first: number;
  readonly last: number;
  /** The line whose different group id closed it. */
  readonly closedAt: number;
}

/**
 * Cuts a stream of lines into groups: the rollouts of one group are contiguous lines, and a group is complete when
 * a line of another group arrives (or the input ends). Items that belong to no group (invalid lines) ride along
 * with the open group so that the output keeps the input's order. Memory: the open group, plus, under
 * "error", the id and line span of each closed group, to catch an id that comes back.
 */
export class ContiguousGroups<T> {
  private openId: GroupId | undefined;
  private openKey: string | undefined;
  private openFirst = 0;
  private openLast = 0;
  private items: T[] = [];
  private readonly closed = new Map<string, ClosedGroup>();

  constructor(private readonly repeated: "error" | "separate") {}

  /**
   * Throws an InputError, before changing anything, when `id` belongs to a group closed earlier; so under
   * --skip-invalid the line can be reported and skipped while the open group goes on.
   */
  check(id: GroupId, line: number): void {
    if (this.repeated === "separate" || this.openKey === groupKey(id)) return;
    const closed = this.closed.get(groupKey(id));
    if (closed === undefined) return;
    throw new InputError(
      line,
      "groupId",
      `group ${JSON.stringify(id)} comes back after its group (lines ${span(closed)}) was closed at line ` +
        `${closed.closedAt} by another group id: the rollouts of a group must be contiguous lines (or pass ` +
        `--repeated-groups separate)`,
    );
  }

  /** Adds a member of group `id`; returns the items of the group this line closed, if any. */
  add(id: GroupId, line: number, item: T): { id: GroupId; items: T[] } | undefined {
    this.check(id, line);
    const key = groupKey(id);
    let completed: { id: GroupId; items: T[] } | undefined;
    if (this.openKey !== key) {
      completed = this.close(line);
      this.openId = id;
      this.openKey = key;
      this.openFirst = line;
    }
    this.openLast = line;
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
  finish(): { id: GroupId | undefined; items: T[] } | undefined {
    if (this.items.length === 0) return undefined;
    const id = this.openId;
    const items = this.items;
    this.items = [];
    return { id, items };
  }

  private close(closedAt: number): { id: GroupId; items: T[] } | undefined {
    const items = this.items;
    this.items = [];
    if (this.openKey === undefined) {
      // Loose items before the first group: handed out with the first group.
      this.items = items;
      return undefined;
    }
    if (this.repeated === "error")
      this.closed.set(this.openKey, { first: this.openFirst, last: this.openLast, closedAt });
    return { id: this.openId!, items };
  }
}

function span(group: ClosedGroup): string {
  return group.first === group.last ? `${group.first}` : `${group.first}–${group.last}`;
}
