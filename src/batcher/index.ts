import { GrpoRocError, invalid } from "../errors.js";
import { describeValue } from "../numeric.js";
import type { Rollout } from "../roc/schema.js";
import { assembleBatch, droppedGroup, type RocBatch, type RocBatchStats, type RocDroppedGroup } from "./batch.js";
import {
  closeBatch,
  countGroup,
  EMPTY_WINDOW,
  type FractionWindow,
  promptsToRequest,
  runningFraction,
} from "./estimate.js";
import { type GroupOutcome, resampleGroup } from "./group.js";
import { type ResolvedBatcherOptions, resolveBatcherOptions, type RocBatcherOptions } from "./options.js";

export type { RocBatch, RocBatchGroup, RocBatchStats, RocDroppedGroup } from "./batch.js";
export type { GroupDropReason } from "./group.js";
export type { RocBatcherOptions } from "./options.js";

/** Where a batcher stands between calls: what a scheduler reads before it requests prompts. */
export interface RocBatcherStatus {
  /** true once `flush` has ended it (or the source given to `batches` ended). */
  readonly closed: boolean;
  /** Groups pushed over its life; the next group's arrival. */
  readonly groupsPushed: number;
  /** Batches emitted, the partial last one included. */
  readonly batchesEmitted: number;
  /** Informative groups waiting for the batch being filled (always fewer than groupsPerBatch). */
  readonly pendingGroups: number;
  /** Groups pushed since the previous batch. */
  readonly groupsSeen: number;
  /** The informative fraction over the last `estimate.window` batches and the groups since, with the prior. */
  readonly runningInformativeFraction: number;
  /** Prompts to request to fill the batch being filled, on average: ⌈(groupsPerBatch − pendingGroups) / fraction⌉. */
  readonly promptsToRequest: number;
}

/** A source of groups for `batches`: each item the rollouts of one group. */
export type GroupSource = AsyncIterable<readonly Rollout[]> | Iterable<readonly Rollout[]>;

/**
 * Turns groups as they arrive into batches of exactly `groupsPerBatch` informative groups (see createRocBatcher).
 * Its calls are synchronous but `batches`; a refused call changes nothing.
 */
export interface RocBatcher {
  /**
   * Pushes one group (a round of one): RoC, then its advantages. Returns the batch it completes, if it does.
   *
   * @throws ValidationError naming the rollout and field (`rollouts[3].groupId`), or GrpoRocError once closed.
   */
  push(rollouts: readonly Rollout[]): RocBatch | undefined;
  /**
   * Pushes one round: the groups of one request for prompts, in order. With `surplus: "carry"` it is the same as
   * pushing them one by one, and may return several batches; with "drop", the round's informative groups beyond the
   * batch it completes are dropped as `surplus` (DAPO). All or nothing: a malformed group refuses the whole round.
   *
   * @throws ValidationError naming the group and rollout (`groups[2][3].reward`), or GrpoRocError once closed.
   */
  pushRound(groups: readonly (readonly Rollout[])[]): RocBatch[];
  /**
   * Pushes every group of `source` (each a round of one), yielding each batch as it fills, then `flush`'s last one.
   * A malformed group ends the iteration with its error and leaves the batcher open, without that group.
   *
   * @throws ValidationError at `source` unless it is an iterable or async iterable, or GrpoRocError once closed.
   */
  batches(source: GroupSource): AsyncGenerator<RocBatch, void, undefined>;
  /**
   * Ends the batcher and returns its last batch, flagged `partial`: the pending groups (`lastBatch: "emit"`) or none
   * (`"drop"`: they are in its `dropped`, with reason `partial-batch`), and the groups dropped since the previous one.
   *
   * @throws GrpoRocError once closed.
   */
  flush(): RocBatch;
  /** Where it stands now. */
  readonly status: RocBatcherStatus;
}

/**
 * A batcher that refills: groups go through RoC (and its infrastructure-failure and equal-reward filters) as they
 * arrive, uninformative ones are dropped with their reason, and informative ones fill batches of exactly
 * `groupsPerBatch`, with their advantages and the statistics a rollout scheduler needs. Seeded and deterministic:
 * the same groups in the same order give bit-identical batches, however they are split into calls.
 *
 * @throws ValidationError at `options.<field>` (`options.groupsPerBatch`, `options.roc.seed`).
 *
 * @example
 * const batcher = createRocBatcher({ groupsPerBatch: 64, roc: { ...rocPresets.paper, keepPerGroup: 16, seed: 7 } });
 * for await (const batch of batcher.batches(groupsFromYourSampler())) train(batch.rollouts, batch.advantages);
 */
export function createRocBatcher(options: RocBatcherOptions): RocBatcher {
  return new Batcher(resolveBatcherOptions(options));
}

/** A batcher's counters and lists as they were before a call, to put back if the call is refused. */
interface Snapshot {
  readonly arrivals: number;
  readonly batches: number;
  readonly pending: GroupOutcome[];
  readonly pendingLength: number;
  readonly dropped: RocDroppedGroup[];
  readonly droppedLength: number;
  readonly window: FractionWindow;
}

class Batcher implements RocBatcher {
  #arrivals = 0;
  #batches = 0;
  /** Informative groups of the batch being filled, in arrival order. */
  #pending: GroupOutcome[] = [];
  /** Groups dropped since the previous batch: small records, their rollouts let go. */
  #dropped: RocDroppedGroup[] = [];
  #window: FractionWindow = EMPTY_WINDOW;
  #closed = false;

  constructor(private readonly options: ResolvedBatcherOptions) {}

  push(rollouts: readonly Rollout[]): RocBatch | undefined {
    return this.atomically(() => this.add(rollouts, "rollouts", false))[0];
  }

  pushRound(groups: readonly (readonly Rollout[])[]): RocBatch[] {
    return this.atomically(() => {
      if (!Array.isArray(groups)) {
        throw invalid("groups", `expected an array of groups (arrays of rollouts), received ${describeValue(groups)}`);
      }
      const emitted: RocBatch[] = [];
      groups.forEach((group: unknown, g) => {
        emitted.push(...this.add(group, `groups[${g}]`, this.options.surplus === "drop" && emitted.length > 0));
      });
      return emitted;
    });
  }

  batches(source: GroupSource): AsyncGenerator<RocBatch, void, undefined> {
    this.requireOpen();
    if (!isGroupSource(source)) {
      throw invalid("source", `expected an iterable or async iterable of groups, received ${describeValue(source)}`);
    }
    return this.stream(source);
  }

  flush(): RocBatch {
    return this.atomically(() => {
      const emit = this.options.lastBatch === "emit";
      if (!emit) {
        // A new list, in arrival order: the pending groups arrived among the dropped ones.
        const unbatched = this.#pending.map((group) => droppedGroup(group, "partial-batch"));
        this.#dropped = [...this.#dropped, ...unbatched].sort((a, b) => a.arrival - b.arrival);
      }
      const batch = this.emit(true, emit ? this.#pending : []);
      this.#closed = true;
      return [batch];
    })[0]!;
  }

  get status(): RocBatcherStatus {
    return {
      closed: this.#closed,
      groupsPushed: this.#arrivals,
      batchesEmitted: this.#batches,
      pendingGroups: this.#pending.length,
      groupsSeen: this.#window.current.seen,
      runningInformativeFraction: runningFraction(this.#window, this.options),
      promptsToRequest: promptsToRequest(
        this.options.groupsPerBatch - this.#pending.length,
        this.#window,
        this.options,
      ),
    };
  }

  private async *stream(source: GroupSource): AsyncGenerator<RocBatch, void, undefined> {
    for await (const group of source) {
      const batch = this.push(group);
      if (batch !== undefined) yield batch;
    }
    yield this.flush();
  }

  /** One more group: RoC, then into the batch being filled or among the dropped. Returns the batch it completes. */
  private add(rollouts: unknown, root: string, surplus: boolean): RocBatch[] {
    const group = resampleGroup(rollouts, this.#arrivals, this.options, root);
    const informative = group.uninformative === undefined;
    this.#arrivals++;
    this.#window = countGroup(this.#window, informative);
    if (!informative || surplus) {
      this.#dropped.push(droppedGroup(group, group.uninformative ?? "surplus"));
      return [];
    }
    this.#pending.push(group);
    return this.#pending.length < this.options.groupsPerBatch ? [] : [this.emit(false, this.#pending)];
  }

  /** The batch of `members` with the drops and counts since the previous one; then a new batch begins. */
  private emit(partial: boolean, members: readonly GroupOutcome[]): RocBatch {
    const { seen, informative } = this.#window.current;
    // The estimate as it stands once this batch is out (its counts in the window, nothing pending): the same as
    // `status` gives right after.
    const window = closeBatch(this.#window, this.options);
    const stats: RocBatchStats = {
      groupsSeen: seen,
      informativeGroups: informative,
      informativeFraction: seen === 0 ? null : informative / seen,
      runningInformativeFraction: runningFraction(window, this.options),
      promptsToRequest: promptsToRequest(this.options.groupsPerBatch, window, this.options),
    };
    const batch = assembleBatch(this.#batches, partial, members, this.#dropped, stats, this.options);
    this.#batches++;
    // New lists, not emptied ones: a call refused later puts the old ones back as they were (see atomically).
    this.#pending = [];
    this.#dropped = [];
    this.#window = window;
    return batch;
  }

  /**
   * Runs one call all or nothing: if it throws, the batcher is put back as it was. The lists are only appended to
   * or replaced, never changed in place, so their lengths are enough to put them back.
   */
  private atomically<T>(call: () => T): T {
    this.requireOpen();
    const before: Snapshot = {
      arrivals: this.#arrivals,
      batches: this.#batches,
      pending: this.#pending,
      pendingLength: this.#pending.length,
      dropped: this.#dropped,
      droppedLength: this.#dropped.length,
      window: this.#window,
    };
    try {
      return call();
    } catch (error) {
      this.#arrivals = before.arrivals;
      this.#batches = before.batches;
      this.#pending = before.pending;
      this.#pending.length = before.pendingLength;
      this.#dropped = before.dropped;
      this.#dropped.length = before.droppedLength;
      this.#window = before.window;
      throw error;
    }
  }

  private requireOpen(): void {
    if (this.#closed) {
      throw new GrpoRocError(
        "this RoC batcher is closed: flush() (or the end of batches()' source) ended it; create another",
      );
    }
  }
}

function isGroupSource(source: unknown): source is GroupSource {
  if (typeof source !== "object" || source === null) return false;
  return Symbol.asyncIterator in source || Symbol.iterator in source;
}
