import { advantages } from "../advantages/index.js";
import { invalid, safeParse } from "../errors.js";
import { type GroupId, groupIdSchema, idKey, showId } from "../groups.js";
import { describeValue } from "../numeric.js";
import { type GroupReason, resampleOnCorrect, type RocResult } from "../roc/resample.js";
import { rewardOf, type Rollout } from "../roc/schema.js";
import type { ResolvedBatcherOptions } from "./options.js";
import { rewardPath, withRenamedPaths } from "./paths.js";

/**
 * Why the batcher left a group out of every batch: RoC dropped it (`infra-failure`, `equal-rewards`, `undersized`),
 * every advantage it kept is 0 (`zero-advantages`: e.g. `filterEqualRewards: false`, or a 32 → 16 group with one
 * negative, of which paper mode keeps ⌊1·16/32⌋ = 0), it came in a round beyond a full batch under
 * `surplus: "drop"` (`surplus`), or it was pending when `flush` ended the batcher under `lastBatch: "drop"`
 * (`partial-batch`).
 */
export type GroupDropReason = Exclude<GroupReason, "exact-size"> | "zero-advantages" | "surplus" | "partial-batch";

/** What RoC and the advantages made of one pushed group. */
export interface GroupOutcome {
  /** The group's 0-based arrival: how many groups were pushed before it. */
  readonly arrival: number;
  /** Its group id. */
  readonly id: GroupId;
  /** Indices into the pushed rollouts of those kept, ascending. */
  readonly kept: Int32Array;
  /** The kept rollouts, the objects pushed. */
  readonly rollouts: readonly Rollout[];
  /** advantages[k] belongs to rollouts[k]: computed over the group alone, with `stdScope: "group"`. */
  readonly advantages: Float64Array;
  /** RoC's result for the group alone: its indices are into the pushed rollouts. */
  readonly roc: RocResult;
  /** Why the group carries no signal, or undefined when it is informative. */
  readonly uninformative: GroupDropReason | undefined;
}

/**
 * RoC, then the advantages over the kept rollouts (docs/spec.md §1, as `rocPipeline` does it), for one group.
 * Paper mode draws from the seed `${seed}\u0000${arrival}`: one stream per arrival, so that the same prompt pushed
 * twice draws afresh, and splitting the arrivals into calls, rounds or batches changes nothing. Errors are named
 * from `root` (`rollouts[3].reward`, or `groups[2][3].reward` in a round) and from the batcher's options
 * (`options.roc.penalty(rollouts[1])`).
 */
export function resampleGroup(
  rollouts: unknown,
  arrival: number,
  options: ResolvedBatcherOptions,
  root: string,
): GroupOutcome {
  requireOneGroup(rollouts, root);
  const seed = options.roc.seed === undefined ? {} : { seed: `${options.roc.seed}\u0000${arrival}` };
  const roc = withRenamedPaths(
    () => resampleOnCorrect(rollouts as Rollout[], { ...options.roc, ...seed }),
    (path) =>
      path
        .replace(/^rollouts/, root)
        .replace(/^options\./, "options.roc.")
        .replace(/\(rollouts\[/, `(${root}[`),
  );
  const kept = Array.from(roc.kept, (i) => rollouts[i] as Rollout);
  // Group scope whatever the option: with stdScope "batch" the batch's std is applied when the batch is emitted;
  // here only which advantages are 0 matters, and one group's own std is not the batch's.
  const groupAdvantages = withRenamedPaths(
    () =>
      advantages(
        kept.map(rewardOf),
        kept.map((rollout) => rollout.groupId),
        { ...options.advantages, stdScope: "group" },
      ),
    (path) =>
      rewardPath(
        path,
        (k) => `${root}[${roc.kept[k]}]`,
        (other) => other.replace(/^options\./, "options.advantages."),
      ),
  );
  const report = roc.groups[0]!;
  let uninformative: GroupDropReason | undefined;
  if (report.status === "dropped" && report.reason !== undefined && report.reason !== "exact-size") {
    uninformative = report.reason;
  } else if (groupAdvantages.every((a) => a === 0)) {
    uninformative = "zero-advantages";
  }
  return { arrival, id: report.id, kept: roc.kept, rollouts: kept, advantages: groupAdvantages, roc, uninformative };
}

/** An array of at least one rollout, all of one group id (checked where the ids are valid; RoC checks the rest). */
function requireOneGroup(rollouts: unknown, root: string): asserts rollouts is readonly unknown[] {
  if (!Array.isArray(rollouts)) {
    throw invalid(root, `expected an array: the rollouts of one group, received ${describeValue(rollouts)}`);
  }
  if (rollouts.length === 0) throw invalid(root, "is empty: a group has at least one rollout");
  const first = validGroupId(rollouts[0]);
  if (first === undefined) return;
  for (let i = 1; i < rollouts.length; i++) {
    const id = validGroupId(rollouts[i]);
    if (id !== undefined && idKey(id) !== idKey(first)) {
      throw invalid(
        `${root}[${i}].groupId`,
        `is ${showId(id)} but ${root}[0].groupId is ${showId(first)}: push the rollouts of one group at a time`,
      );
    }
  }
}

function validGroupId(rollout: unknown): GroupId | undefined {
  if (typeof rollout !== "object" || rollout === null) return undefined;
  const id = (rollout as { groupId?: unknown }).groupId;
  return safeParse(groupIdSchema, id).success ? (id as GroupId) : undefined;
}
