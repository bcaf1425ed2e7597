import type { RocGroupReport } from "../roc/resample.js";

/** Sums from which a PenaltySummary of the library is rebuilt over the whole input, group after group. */
export class PenaltyTally {
  count = 0;
  private withPenalties = 0;
  private pErr = 0;
  private pFormat = 0;
  private calls = 0;
  private failed = 0;

  add(pErr: number, pFormat: number, calls: number, failed: number): void {
    this.count++;
    if (Number.isNaN(pErr)) return;
    this.withPenalties++;
    this.pErr += pErr;
    this.pFormat += pFormat;
    this.calls += calls;
    this.failed += failed;
  }

  addWithout(): void {
    this.count++;
  }

  toJSON(): { count: number; meanPErr: number | null; meanPFormat: number | null; toolErrorRatio: number | null } {
    return {
      count: this.count,
      meanPErr: this.withPenalties === 0 ? null : this.pErr / this.withPenalties,
      meanPFormat: this.withPenalties === 0 ? null : this.pFormat / this.withPenalties,
      toolErrorRatio: this.calls === 0 ? null : this.failed / this.calls,
    };
  }
}

/**
 * What one run saw and did. The invariants that say no line was lost:
 * lines = emptyLines + invalidLines + rollouts, and rollouts = kept + dropped + invalidGroupRollouts;
 * records (lines written) = rollouts + invalidLines, unless --kept-only.
 */
export class Tally {
  lines = 0;
  emptyLines = 0;
  invalidLines = 0;
  rollouts = 0;
  invalidGroups = 0;
  invalidGroupRollouts = 0;
  kept = 0;
  dropped = 0;
  /** Infrastructure-failed rollouts: dropped, or kept as ordinary ones under --infra-failures keep. */
  infraFailed = 0;
  records = 0;
  readonly groups = {
    in: 0,
    resampled: 0,
    keptWhole: 0,
    droppedInfraFailure: 0,
    droppedEqualRewards: 0,
    droppedUndersized: 0,
  };
  readonly positives = { seen: 0, kept: 0 };
  readonly negatives = { seen: 0, kept: 0 };
  readonly keptPositives = new PenaltyTally();
  readonly droppedPositives = new PenaltyTally();
  readonly allPositives = new PenaltyTally();
  /** The penalties command: every rollout, correct or not. */
  readonly allRollouts = new PenaltyTally();

  constructor(readonly command: string) {}

  addRocGroup(report: RocGroupReport): void {
    this.groups.in++;
    this.infraFailed += report.infraFailed;
    if (report.status === "resampled") this.groups.resampled++;
    else if (report.status === "kept-whole") this.groups.keptWhole++;
    else if (report.reason === "infra-failure") this.groups.droppedInfraFailure++;
    else if (report.reason === "equal-rewards") this.groups.droppedEqualRewards++;
    else this.groups.droppedUndersized++;
    // As the library counts them: only groups that reached selection.
    if (report.status !== "dropped") {
      this.positives.seen += report.positives;
      this.positives.kept += report.keptPositives;
      this.negatives.seen += report.negatives;
      this.negatives.kept += report.keptNegatives;
    }
  }

  toJSON(): Record<string, unknown> {
    const common = {
      command: this.command,
      lines: this.lines,
      emptyLines: this.emptyLines,
      invalidLines: this.invalidLines,
      rollouts: this.rollouts,
      invalidGroups: this.invalidGroups,
      invalidGroupRollouts: this.invalidGroupRollouts,
      kept: this.kept,
      dropped: this.dropped,
      records: this.records,
    };
    if (this.command === "penalties") return { ...common, penalties: this.allRollouts.toJSON() };
    if (this.command === "advantages") return { ...common, infraFailed: this.infraFailed, groups: this.groups.in };
    return {
      ...common,
      infraFailed: this.infraFailed,
      groups: { ...this.groups, invalid: this.invalidGroups },
      positives: this.positives,
      negatives: this.negatives,
      keptPositives: this.keptPositives.toJSON(),
      droppedPositives: this.droppedPositives.toJSON(),
      allPositives: this.allPositives.toJSON(),
    };
  }

  /** The one line printed on stderr at the end. */
  line(): string {
    const parts = [`${this.rollouts} rollouts from ${this.lines} lines`];
    if (this.emptyLines > 0) parts[0] += ` (${this.emptyLines} empty)`;
    if (this.command === "penalties") {
      const p = this.allRollouts.toJSON();
      parts.push(`tool-error ratio ${p.toolErrorRatio === null ? "–" : p.toolErrorRatio.toFixed(4)}`);
    } else if (this.command === "advantages") {
      parts.push(`${this.groups.in} groups`);
      if (this.infraFailed > 0) parts.push(`${this.infraFailed} rollouts infrastructure-failed`);
    } else {
      const g = this.groups;
      const droppedGroups = g.droppedInfraFailure + g.droppedEqualRewards + g.droppedUndersized;
      const infraGroups = g.droppedInfraFailure > 0 ? `${g.droppedInfraFailure} infrastructure-failed, ` : "";
      parts.push(
        `${g.in} groups (${g.resampled} resampled, ${g.keptWhole} kept whole, ${droppedGroups} dropped: ` +
          `${infraGroups}${g.droppedEqualRewards} equal rewards, ${g.droppedUndersized} undersized)`,
        `kept ${this.kept}, dropped ${this.dropped}`,
      );
      if (this.infraFailed > 0) parts.push(`${this.infraFailed} rollouts infrastructure-failed`);
      const ratio = this.keptPositives.toJSON().toolErrorRatio;
      if (ratio !== null) parts.push(`tool-error ratio of kept positives ${ratio.toFixed(4)}`);
    }
    parts.push(`${this.invalidLines} invalid lines skipped`);
    if (this.invalidGroups > 0)
      parts.push(`${this.invalidGroups} invalid groups (${this.invalidGroupRollouts} rollouts) skipped`);
    return `grpo-roc ${this.command}: ${parts.join("; ")}`;
  }
}
