import seedrandom from "seedrandom";
import { GrpoRocError, invalid, parseOrThrow } from "../errors.js";
import { type GroupId, groupBy, groupKey, idKey, showId } from "../groups.js";
import { infraFailureCause } from "./infra.js";
import { emptyOutcomeCounts, scorePenalties, type Quality } from "./penalties.js";
import {
  rewardOf,
  rocOptionsSchema,
  rolloutsSchema,
  type RocOptions,
  type RocOptionsInput,
  type Rollout,
} from "./schema.js";
import { type ClassCounts, lowestPenalties, paperClassCounts, referenceClassCounts, weightedSample } from "./select.js";
import { readTranscript } from "./transcript.js";

/**
 * Why a group was not downsampled: every rollout of it was infrastructure-failed (and dropped), its rewards were all
 * equal, it had fewer than G rollouts, or exactly G.
 */
export type GroupReason = "infra-failure" | "equal-rewards" | "undersized" | "exact-size";
/**
 * Why a rollout was left out: the infrastructure failed it (`infraFailures: "drop"`), its group's rewards were all
 * equal, its group had fewer than G rollouts and `undersized` is "drop", or selection kept others of its group.
 */
export type DropReason = "infra-failure" | "equal-rewards" | "undersized" | "not-selected";

/** What RoC did with one group. */
export interface RocGroupReport {
  /** The group's id, as its first rollout gives it. */
  readonly id: GroupId;
  /** Rollouts in the group (N), infrastructure-failed ones included. */
  readonly size: number;
  /**
   * Its infrastructure-failed rollouts: dropped before anything else under `infraFailures: "drop"` (the rest of the
   * report is about the others), ordinary rollouts under "keep".
   */
  readonly infraFailed: number;
  /** Its correct rollouts, those dropped as infrastructure-failed left out. */
  readonly positives: number;
  /** Its wrong rollouts, those dropped as infrastructure-failed left out. */
  readonly negatives: number;
  /** "resampled": G of N chosen; "kept-whole": every rollout kept; "dropped": none kept. */
  readonly status: "resampled" | "kept-whole" | "dropped";
  /** Set unless the group was resampled. */
  readonly reason?: GroupReason | undefined;
  /** Positives kept. */
  readonly keptPositives: number;
  /** Negatives kept. */
  readonly keptNegatives: number;
}

/** Penalties over a set of correct rollouts, for logging. */
export interface PenaltySummary {
  /** Rollouts in the set, with built-in penalties or not. */
  readonly count: number;
  /** Means over the rollouts that have built-in penalties; null when there are none. */
  readonly meanPErr: number | null;
  /** Mean p_format, likewise. */
  readonly meanPFormat: number | null;
  /** Failed tool calls / all tool calls over these rollouts; null when they made no call. */
  readonly toolErrorRatio: number | null;
}

/** One step of RoC in numbers, to log: groups and rollouts in and out, and the penalties of the positives. */
export interface RocMetrics {
  /**
   * Groups seen, and what became of them: in = resampled + keptWhole + droppedInfraFailure + droppedEqualRewards +
   * droppedUndersized (droppedInfraFailure: groups whose every rollout was infrastructure-failed).
   */
  readonly groups: {
    readonly in: number;
    readonly resampled: number;
    readonly keptWhole: number;
    readonly droppedInfraFailure: number;
    readonly droppedEqualRewards: number;
    readonly droppedUndersized: number;
  };
  /**
   * Rollouts seen, kept and dropped, and how many of them were infrastructure-failed (dropped under
   * `infraFailures: "drop"`, among the others under "keep").
   */
  readonly rollouts: {
    readonly in: number;
    readonly kept: number;
    readonly dropped: number;
    readonly infraFailed: number;
  };
  /** Positives of the groups that reached selection (not dropped before it), and how many were kept. */
  readonly positives: { readonly seen: number; readonly kept: number };
  /** Negatives of the groups that reached selection, and how many were kept. */
  readonly negatives: { readonly seen: number; readonly kept: number };
  /** The positives kept: the tool-error ratio in the correct rollouts you train on. */
  readonly keptPositives: PenaltySummary;
  /** Positives that selection left out: what RoC filtered away. */
  readonly droppedPositives: PenaltySummary;
  /**
   * Every correct rollout of the input, dropped groups included, but not those dropped as infrastructure-failed: the
   * paper's "tool errors inside correct trajectories".
   */
  readonly allPositives: PenaltySummary;
}

/** Which rollouts RoC keeps, why it dropped the others, and what it saw. */
export interface RocResult {
  /** Indices into the input of the rollouts to train on, ascending. */
  readonly kept: Int32Array;
  /** Every other rollout with the reason, ascending by index. No rollout is in both lists; none is in neither. */
  readonly dropped: ReadonlyArray<{ readonly index: number; readonly reason: DropReason }>;
  /** One report per group, in order of first appearance. */
  readonly groups: readonly RocGroupReport[];
  /** Per rollout; NaN where none was computed (no quality inputs, or p_total from your penalty function). */
  readonly penalties: { readonly pErr: Float64Array; readonly pFormat: Float64Array; readonly pTotal: Float64Array };
  /** Counts and penalty summaries to log. */
  readonly metrics: RocMetrics;
}

/**
 * RoC's options with every default filled in, as `resampleOnCorrect` reads them (to log the configuration a run
 * used).
 *
 * @throws ValidationError at `options.<field>` for an unknown key, a value out of range, or paper mode without a seed.
 */
export function resolveRocOptions(options: RocOptionsInput): RocOptions {
  return parseOrThrow(rocOptionsSchema, options, "options");
}

/**
 * Resample-on-Correct: per group keep G of N, all kinds of failures but only the cleanest successes. Rollouts the
 * infrastructure failed are first left out of their group (`infraFailures: "drop"`, the default): what remains is
 * treated as if they had never been sampled, and a group left with fewer than G follows `undersized`.
 *
 * @param rollouts - The step's rollouts, any number of groups in any order (see Rollout).
 * @param options - keepPerGroup (G), and a seed in paper mode (see `rocPresets`).
 * @returns The indices to keep, and why every other rollout was dropped.
 * @throws ValidationError naming the rollout, field and rule (`rollouts[3].toolCalls[0].outcome`), or the option.
 */
export function resampleOnCorrect(rollouts: readonly Rollout[], options: RocOptionsInput): RocResult {
  parseOrThrow(rolloutsSchema, rollouts, "rollouts");
  return resampleValidated(rollouts, resolveRocOptions(options)).result;
}

/** resampleValidated's result: RoC's, and each rollout's tool-call counts as p_err counted them (0 where none). */
export interface ScoredRocResult {
  readonly result: RocResult;
  readonly toolCalls: Float64Array;
  readonly failedToolCalls: Float64Array;
}

/**
 * resampleOnCorrect without its checks, for rollouts each already checked with rolloutSchema and options that
 * resolveRocOptions returned. Internal, not exported from the package: the command line checks every line as it
 * reads it, and checking each group again was about a third of its time. It also returns the tool-call counts, so
 * that the command line's summary does not score every positive a second time.
 */
export function resampleValidated(rollouts: readonly Rollout[], resolved: RocOptions): ScoredRocResult {
  if (rollouts.length === 0) throw invalid("rollouts", "is empty: nothing to resample");

  const rewards = rollouts.map(rewardOf);
  const positive = rollouts.map((rollout, i) => rollout.correct ?? rewards[i]! > 0);
  const infraFailed = rollouts.map((rollout) => infraFailureCause(rollout) !== undefined);
  const dropInfra = resolved.infraFailures === "drop";
  const scored = scoreRollouts(rollouts, positive, resolved);

  const keptMask = new Uint8Array(rollouts.length);
  const dropReasons: (DropReason | undefined)[] = new Array(rollouts.length);
  const reports: RocGroupReport[] = [];
  const undersized = resolved.undersized ?? (resolved.mode === "paper" ? "keep" : "drop");
  const draws = new Float64Array(rollouts.length);

  for (const { id, members: memberArray } of groupBy(
    rollouts.map((r) => r.groupId),
    "rollouts[].groupId",
  )) {
    const all = Array.from(memberArray);
    requireUniqueIds(all, rollouts);
    const infraCount = all.filter((i) => infraFailed[i]).length;
    // Dropped infrastructure failures leave the group as if they had never been sampled: every rule below, the
    // paper-mode draws included, sees only the others.
    const members = dropInfra ? all.filter((i) => !infraFailed[i]) : all;
    if (dropInfra) for (const i of all) if (infraFailed[i]) dropReasons[i] = "infra-failure";
    const positives = members.filter((i) => positive[i]);
    const negatives = members.filter((i) => !positive[i]);
    const report = (status: RocGroupReport["status"], chosen: readonly number[], reason?: GroupReason): void => {
      for (const i of chosen) keptMask[i] = 1;
      const droppedReason: DropReason = status === "dropped" ? (reason as DropReason) : "not-selected";
      for (const i of members) if (!keptMask[i]) dropReasons[i] = droppedReason;
      const keptPositives = chosen.filter((i) => positive[i]).length;
      reports.push({
        id,
        size: all.length,
        infraFailed: infraCount,
        positives: positives.length,
        negatives: negatives.length,
        status,
        ...(reason === undefined ? {} : { reason }),
        keptPositives,
        keptNegatives: chosen.length - keptPositives,
      });
    };

    const G = resolved.keepPerGroup;
    if (members.length === 0) {
      report("dropped", [], "infra-failure");
    } else if (resolved.filterEqualRewards && members.every((i) => rewards[i] === rewards[members[0]!])) {
      report("dropped", [], "equal-rewards");
    } else if (members.length < G) {
      if (undersized === "error") {
        const infraDropped = all.length - members.length;
        const after = infraDropped === 0 ? "" : ` once ${infraDropped} infrastructure-failed are dropped`;
        throw invalid(
          `rollouts[${members[0]}].groupId`,
          `group ${showId(id)} has ${members.length} rollouts${after}, fewer than keepPerGroup = ${G}`,
        );
      }
      if (undersized === "keep") report("kept-whole", members, "undersized");
      else report("dropped", [], "undersized");
    } else if (members.length === G) {
      report("kept-whole", members, "exact-size");
    } else {
      const n = { positives: positives.length, negatives: negatives.length };
      const counts = resolved.mode === "paper" ? paperClassCounts(n, G) : referenceClassCounts(n, G, resolved);
      requirePenalties(positives, scored.pTotal);
      report("resampled", select(resolved, id, members, positives, negatives, counts, rollouts, scored.pTotal, draws));
    }
  }

  const kept: number[] = [];
  const dropped: { index: number; reason: DropReason }[] = [];
  keptMask.forEach((isKept, index) => {
    if (isKept) kept.push(index);
    else dropped.push({ index, reason: dropReasons[index]! });
  });
  const result: RocResult = {
    kept: Int32Array.from(kept),
    dropped,
    groups: reports,
    penalties: { pErr: scored.pErr, pFormat: scored.pFormat, pTotal: scored.pTotal },
    metrics: summarize(reports, dropReasons, positive, scored, infraFailed),
  };
  return { result, toolCalls: scored.toolCalls, failedToolCalls: scored.failedToolCalls };
}

function select(
  options: RocOptions,
  id: GroupId,
  members: readonly number[],
  positives: readonly number[],
  negatives: readonly number[],
  counts: ClassCounts,
  rollouts: readonly Rollout[],
  pTotal: Float64Array,
  draws: Float64Array,
): number[] {
  if (options.mode === "reference") {
    const chosen = [...lowestPenalties(positives, pTotal, counts.positives), ...negatives.slice(0, counts.negatives)];
    if (chosen.length !== options.keepPerGroup) {
      // The released code asserts here; so do we, rather than return a group of the wrong size.
      throw new GrpoRocError(
        `group ${showId(id)}: rStar2-Agent's counts ask for ${counts.positives} positives + ` +
          `${counts.negatives} negatives ` +
          `of ${positives.length} + ${negatives.length}, which is not keepPerGroup = ${options.keepPerGroup} (Python ` +
          `rounding ` +
          `half to even can overshoot with an odd keepPerGroup); the released code asserts here. Use paper mode, or ` +
          `sizes whose rounded counts add up`,
      );
    }
    return chosen;
  }
  drawUniforms(draws, options.seed!, id, members, rollouts);
  return [
    ...weightedSample(positives, pTotal, draws, counts.positives),
    ...weightedSample(negatives, undefined, draws, counts.negatives),
  ];
}

/**
 * One draw in (0, 1] per member, written into `draws` at its input index, from one stream per group, so reordering
 * groups changes nothing. When every member carries an `id`, draws are dealt in id order, so reordering rollouts
 * within the group changes nothing either.
 */
function drawUniforms(
  draws: Float64Array,
  seed: string | number,
  id: GroupId,
  members: readonly number[],
  rollouts: readonly Rollout[],
): void {
  // seedrandom's default ARC4 generator: keys that differ in one character still give unrelated streams.
  const stream = seedrandom(`${seed}\u0000${groupKey(id)}`);
  for (const i of drawOrder(members, rollouts)) draws[i] = 1 - stream();
}

/**
 * A rollout's id names it within its group (in either mode): a repeat is an error at the later one, naming the
 * earlier. Rollouts of different groups may share ids.
 */
function requireUniqueIds(members: readonly number[], rollouts: readonly Rollout[]): void {
  const seen = new Map<string | number | bigint, number>();
  for (const i of members) {
    const id = rollouts[i]!.id;
    if (id === undefined) continue;
    const first = seen.get(idKey(id));
    if (first !== undefined) {
      throw invalid(`rollouts[${i}].id`, `duplicate id ${showId(id)} in its group: rollouts[${first}] has it too`);
    }
    seen.set(idKey(id), i);
  }
}

function drawOrder(members: readonly number[], rollouts: readonly Rollout[]): readonly number[] {
  const keyed = members.filter((i) => rollouts[i]!.id !== undefined);
  if (keyed.length === 0) return members;
  if (keyed.length < members.length) {
    const missing = members.find((i) => rollouts[i]!.id === undefined)!;
    throw invalid(`rollouts[${missing}].id`, "give an id to every rollout of a group, or to none");
  }
  // Ids are unique within the group (requireUniqueIds), so this order is total.
  const keyOf = (i: number) => groupKey(rollouts[i]!.id!);
  return [...members].sort((a, b) => (keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0));
}

interface Scored {
  readonly pErr: Float64Array;
  readonly pFormat: Float64Array;
  readonly pTotal: Float64Array;
  readonly toolCalls: Float64Array;
  readonly failedToolCalls: Float64Array;
}

function scoreRollouts(rollouts: readonly Rollout[], positive: readonly boolean[], options: RocOptions): Scored {
  const n = rollouts.length;
  const scored: Scored = {
    pErr: new Float64Array(n).fill(NaN),
    pFormat: new Float64Array(n).fill(NaN),
    pTotal: new Float64Array(n).fill(NaN),
    toolCalls: new Float64Array(n),
    failedToolCalls: new Float64Array(n),
  };
  rollouts.forEach((rollout, i) => {
    const quality = qualityOf(rollout, options);
    if (quality !== undefined) {
      const p = scorePenalties(quality, options);
      scored.pErr[i] = p.pErr;
      scored.pFormat[i] = p.pFormat;
      scored.pTotal[i] = p.pTotal;
      scored.toolCalls[i] = p.toolCalls;
      scored.failedToolCalls[i] = p.failedToolCalls;
    }
    if (options.penalty !== undefined && positive[i]) {
      const value = options.penalty(rollout, i);
      if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
        const shown = typeof value === "number" ? String(value) : `${JSON.stringify(value)} (${typeof value})`;
        throw invalid(`options.penalty(rollouts[${i}])`, `must return a finite number ≥ 0, returned ${shown}`);
      }
      scored.pTotal[i] = value;
    }
  });
  return scored;
}

function qualityOf(rollout: Rollout, options: RocOptions): Quality | undefined {
  if (rollout.transcript !== undefined) return readTranscript(rollout.transcript, options.transcriptDialect);
  if (rollout.toolCalls === undefined) return undefined;
  const toolOutcomes = emptyOutcomeCounts();
  for (const call of rollout.toolCalls) toolOutcomes[call.outcome]++;
  return { toolOutcomes, answers: rollout.answers!, turns: rollout.turns!, formatOk: rollout.formatOk ?? true };
}

function requirePenalties(positives: readonly number[], pTotal: Float64Array): void {
  for (const i of positives) {
    if (Number.isNaN(pTotal[i])) {
      throw invalid(
        `rollouts[${i}]`,
        "a correct rollout of a group that is downsampled needs quality inputs: a transcript, or toolCalls + answers " +
          "+ turns (or pass options.penalty)",
      );
    }
  }
}

function summarize(
  reports: readonly RocGroupReport[],
  dropReasons: readonly (DropReason | undefined)[],
  positive: readonly boolean[],
  scored: Scored,
  infraFailed: readonly boolean[],
): RocMetrics {
  const total = positive.length;
  const countGroups = (status: RocGroupReport["status"], reason?: GroupReason) =>
    reports.filter((g) => g.status === status && (reason === undefined || g.reason === reason)).length;
  const selected = reports.filter((g) => g.status !== "dropped");
  const sum = (pick: (g: RocGroupReport) => number) => selected.reduce((acc, g) => acc + pick(g), 0);
  const dropped = dropReasons.filter((reason) => reason !== undefined).length;
  const positivesWhere = (pick: (reason: DropReason | undefined) => boolean) => {
    const indices: number[] = [];
    for (let i = 0; i < total; i++) if (positive[i] && pick(dropReasons[i])) indices.push(i);
    return summarizePenalties(indices, scored);
  };
  return {
    groups: {
      in: reports.length,
      resampled: countGroups("resampled"),
      keptWhole: countGroups("kept-whole"),
      droppedInfraFailure: countGroups("dropped", "infra-failure"),
      droppedEqualRewards: countGroups("dropped", "equal-rewards"),
      droppedUndersized: countGroups("dropped", "undersized"),
    },
    rollouts: { in: total, kept: total - dropped, dropped, infraFailed: infraFailed.filter(Boolean).length },
    positives: { seen: sum((g) => g.positives), kept: sum((g) => g.keptPositives) },
    negatives: { seen: sum((g) => g.negatives), kept: sum((g) => g.keptNegatives) },
    keptPositives: positivesWhere((reason) => reason === undefined),
    droppedPositives: positivesWhere((reason) => reason === "not-selected"),
    allPositives: positivesWhere((reason) => reason !== "infra-failure"),
  };
}

function summarizePenalties(indices: readonly number[], scored: Scored): PenaltySummary {
  let withPenalties = 0;
  let pErr = 0;
  let pFormat = 0;
  let calls = 0;
  let failed = 0;
  for (const i of indices) {
    if (Number.isNaN(scored.pErr[i])) continue;
    withPenalties++;
    pErr += scored.pErr[i]!;
    pFormat += scored.pFormat[i]!;
    calls += scored.toolCalls[i]!;
    failed += scored.failedToolCalls[i]!;
  }
  return {
    count: indices.length,
    meanPErr: withPenalties === 0 ? null : pErr / withPenalties,
    meanPFormat: withPenalties === 0 ? null : pFormat / withPenalties,
    toolErrorRatio: calls === 0 ? null : failed / calls,
  };
}
