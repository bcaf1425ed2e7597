import { advantages } from "../advantages/index.js";
import type { GroupId } from "../groups.js";
import type { RocGroupReport, RocResult } from "../roc/resample.js";
import { rewardOf, type Rollout } from "../roc/schema.js";
import type { GroupDropReason, GroupOutcome } from "./group.js";
import type { ResolvedBatcherOptions } from "./options.js";
import { rewardPath, withRenamedPaths } from "./paths.js";

/** One informative group of a batch. */
export interface RocBatchGroup {
  /** Its 0-based arrival: how many groups were pushed before it over the batcher's life. */
  readonly arrival: number;
  /** Its group id. Two pushes with one id are two groups, told apart by their arrival. */
  readonly id: GroupId;
  /** Where its kept rollouts start in the batch's `rollouts` and `advantages`. */
  readonly offset: number;
  /** Indices into the rollouts pushed of those kept, ascending: `rollouts[offset + k]` is pushed `kept[k]`. */
  readonly kept: Int32Array;
  /** The group's advantages: a view of the batch's `advantages` from `offset`, one per kept rollout. */
  readonly advantages: Float64Array;
  /** RoC's result for the group alone (its indices are into the rollouts pushed): what was dropped, the metrics. */
  readonly roc: RocResult;
}

/** A group that is in no batch, and why. */
export interface RocDroppedGroup {
  /** Its 0-based arrival. */
  readonly arrival: number;
  /** Its group id. */
  readonly id: GroupId;
  /** Why it is in no batch (see GroupDropReason). */
  readonly reason: GroupDropReason;
  /** What RoC did with it. */
  readonly report: RocGroupReport;
}

/** What a rollout scheduler reads from a batch. */
export interface RocBatchStats {
  /** Groups pushed since the previous batch, up to the one that completed this one (or up to `flush`). */
  readonly groupsSeen: number;
  /** How many of those were informative (surplus ones included). */
  readonly informativeGroups: number;
  /** informativeGroups / groupsSeen; null when no group was seen. */
  readonly informativeFraction: number | null;
  /**
   * The informative fraction the estimate divides by, as this batch is emitted: over it and the `estimate.window − 1`
   * batches before it, with the prior (see `estimate`).
   */
  readonly runningInformativeFraction: number;
  /** Prompts to request so that the next batch fills, on average: ⌈groupsPerBatch / max(running, minFraction)⌉. */
  readonly promptsToRequest: number;
}

/** Exactly `groupsPerBatch` informative groups (fewer in the last, partial one), ready to train on. */
export interface RocBatch {
  /** 0-based: the batches emitted before this one. */
  readonly index: number;
  /** true for the last batch, the one `flush` (or the end of `batches`' source) returns; it may hold fewer groups. */
  readonly partial: boolean;
  /** The informative groups, in arrival order. */
  readonly groups: readonly RocBatchGroup[];
  /** The kept rollouts of every group, group after group: the objects pushed. */
  readonly rollouts: readonly Rollout[];
  /** advantages[k] belongs to rollouts[k]: per group (docs/spec.md §2), the std of the batch with stdScope "batch". */
  readonly advantages: Float64Array;
  /** The groups pushed since the previous batch that are in no batch, in arrival order, each with its reason. */
  readonly dropped: readonly RocDroppedGroup[];
  /** Counts and the refill estimate. */
  readonly stats: RocBatchStats;
}

/** A dropped group's record: its rollouts and RoC result are let go, only this is kept until the next batch. */
export function droppedGroup(outcome: GroupOutcome, reason: GroupDropReason): RocDroppedGroup {
  return { arrival: outcome.arrival, id: outcome.id, reason, report: outcome.roc.groups[0]! };
}

/**
 * The batch of `members`. With stdScope "group" their advantages are those computed per group at push, which are
 * what `advantages` gives over the whole batch grouped by arrival (a group's advantages read its own rewards only);
 * with "batch" they are computed here, over the batch, grouped by arrival, so that the std is the batch's.
 *
 * @throws ValidationError from `advantages` (stdScope "batch" only), before anything is changed.
 */
export function assembleBatch(
  index: number,
  partial: boolean,
  members: readonly GroupOutcome[],
  dropped: readonly RocDroppedGroup[],
  stats: RocBatchStats,
  options: ResolvedBatcherOptions,
): RocBatch {
  const rollouts = members.flatMap((group) => group.rollouts);
  const arrivals = members.flatMap((group) => Array.from(group.rollouts, () => group.arrival));
  const batchAdvantages =
    options.advantages.stdScope === "batch"
      ? withRenamedPaths(
          () => advantages(rollouts.map(rewardOf), arrivals, options.advantages),
          (path) =>
            rewardPath(
              path,
              (k) => `batches[${index}].rollouts[${k}]`,
              (other) => other.replace(/^options\./, "options.advantages."),
            ),
        )
      : concatenate(members.map((group) => group.advantages));
  let offset = 0;
  const groups = members.map((group): RocBatchGroup => {
    const start = offset;
    offset += group.kept.length;
    return {
      arrival: group.arrival,
      id: group.id,
      offset: start,
      kept: group.kept,
      advantages: batchAdvantages.subarray(start, offset),
      roc: group.roc,
    };
  });
  return { index, partial, groups, rollouts, advantages: batchAdvantages, dropped, stats };
}

function concatenate(parts: readonly Float64Array[]): Float64Array {
  const out = new Float64Array(parts.reduce((length, part) => length + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
