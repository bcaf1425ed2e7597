import { infraFailureCause } from "../../roc/infra.js";
import type { DropReason, RocGroupReport, RocResult } from "../../roc/resample.js";
import { rewardOf, type RocOptions, type Rollout } from "../../roc/schema.js";
import { isPositive, orNull, scoreRollout } from "../quality.js";
import type { Tally } from "../summary.js";
import { identity, type Member, type OutputRecord } from "./types.js";

/**
 * One record per member of a group that resampleOnCorrect has processed: kept, or dropped with a reason a person
 * can read (`reason`) and one a program can match (`reasonCode`: infra-failure, equal-rewards, undersized,
 * not-selected).
 * `advantageOf(k)` adds the advantage of the k-th member when it is kept (the pipeline).
 */
export function rocRecords(
  members: readonly Member[],
  result: RocResult,
  options: RocOptions,
  tally: Tally,
  advantageOf?: (k: number) => number,
): OutputRecord[] {
  const report = result.groups[0]!;
  const reasons = new Map<number, DropReason>(result.dropped.map(({ index, reason }) => [index, reason]));
  tally.addRocGroup(report);
  return members.map((member, k) => {
    const { rollout } = member;
    const positive = isPositive(rollout);
    const reward = rewardOf(rollout);
    const pTotal = result.penalties.pTotal[k]!;
    const reason = reasons.get(k);
    tallyPositive(tally, member, k, result, options, positive, reason);
    tally.rollouts++;
    const figures = {
      correct: positive,
      reward,
      pErr: orNull(result.penalties.pErr[k]),
      pFormat: orNull(result.penalties.pFormat[k]),
      pTotal: orNull(pTotal),
    };
    if (reason === undefined) {
      tally.kept++;
      const advantage = advantageOf === undefined ? {} : { advantage: advantageOf(k) };
      return { dropped: false, record: { ...identity(member), dropped: false, ...figures, ...advantage } };
    }
    tally.dropped++;
    const text =
      reason === "infra-failure"
        ? describeInfraFailure(rollout, "roc", "its group before RoC")
        : describeDrop(reason, positive, pTotal, reward, report, options);
    return {
      dropped: true,
      record: { ...identity(member), dropped: true, reasonCode: reason, reason: text, ...figures },
    };
  });
}

function tallyPositive(
  tally: Tally,
  member: Member,
  k: number,
  result: RocResult,
  options: RocOptions,
  positive: boolean,
  reason: DropReason | undefined,
): void {
  if (!positive) return;
  const pErr = result.penalties.pErr[k]!;
  const scored = Number.isNaN(pErr) ? undefined : scoreRollout(member.rollout, options);
  const calls = scored?.penalties.toolCalls ?? 0;
  const failed = scored?.penalties.failedToolCalls ?? 0;
  const pFormat = result.penalties.pFormat[k]!;
  // As the library counts them: a dropped infrastructure failure is no correct rollout of the model's.
  if (reason !== "infra-failure") tally.allPositives.add(pErr, pFormat, calls, failed);
  if (reason === undefined) tally.keptPositives.add(pErr, pFormat, calls, failed);
  else if (reason === "not-selected") tally.droppedPositives.add(pErr, pFormat, calls, failed);
}

/**
 * The readable reason of a rollout dropped as infrastructure-failed, naming what marked it; `step` ("roc",
 * "advantages") starts it as the other reasons of that command start, `leftOutOf` says what it was kept out of.
 */
export function describeInfraFailure(rollout: Rollout, step: string, leftOutOf: string): string {
  return (
    `${step}: infrastructure failure (${infraFailureCause(rollout)}): not the model's failure, left out of ` +
    `${leftOutOf} (--infra-failures keep keeps it)`
  );
}

function describeDrop(
  reason: DropReason,
  positive: boolean,
  pTotal: number,
  reward: number,
  report: RocGroupReport,
  options: RocOptions,
): string {
  const G = options.keepPerGroup;
  if (reason === "equal-rewards") return `roc: every reward of the group is ${reward}: no signal`;
  if (reason === "undersized")
    return (
      `roc: group of ${report.size}, fewer than --keep ${G}: undersized groups are dropped (--undersized keep ` +
      `keeps them)`
    );
  if (positive) {
    const how =
      options.mode === "paper"
        ? `drew ${report.keptPositives} of ${report.positives} ∝ 1/penalty`
        : `kept the ${report.keptPositives} lowest of ${report.positives}`;
    return `roc: downsampled positive, penalty ${round(pTotal)} (${how})`;
  }
  return options.mode === "paper"
    ? `roc: not drawn among negatives (drew ${report.keptNegatives} of ${report.negatives})`
    : `roc: not among the first ${report.keptNegatives} negatives (of ${report.negatives})`;
}

function round(value: number): string {
  return Number.isNaN(value) ? "none" : String(Number(value.toPrecision(4)));
}
