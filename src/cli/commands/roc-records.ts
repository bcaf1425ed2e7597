import { infraFailureCause } from "../../roc/infra.js";
import type { DropReason, RocGroupReport, ScoredRocResult } from "../../roc/resample.js";
import { rewardOf, type RocOptions, type Rollout } from "../../roc/schema.js";
import { isPositive, orNull } from "../quality.js";
import type { Tally } from "../summary.js";
import type { Member, OutputRecord } from "./types.js";

/**
 * One record per member of a group that resampleOnCorrect has processed: kept, or dropped with a reason a person
 * can read (`reason`) and one a program can match (`reasonCode`: infra-failure, equal-rewards, undersized,
 * not-selected).
 * `advantageOf(k)` adds the advantage of the k-th member when it is kept (the pipeline).
 */
export function rocRecords(
  members: readonly Member[],
  scored: ScoredRocResult,
  options: RocOptions,
  tally: Tally,
  advantageOf?: (k: number) => number,
): OutputRecord[] {
  const { result } = scored;
  const report = result.groups[0]!;
  const { pErr, pFormat, pTotal } = result.penalties;
  const reasons: (DropReason | undefined)[] = new Array(members.length);
  for (const { index, reason } of result.dropped) reasons[index] = reason;
  tally.addRocGroup(report);
  const records: OutputRecord[] = new Array(members.length);
  for (let k = 0; k < members.length; k++) {
    const member = members[k]!;
    const { rollout } = member;
    const positive = isPositive(rollout);
    const reward = rewardOf(rollout);
    const reason = reasons[k];
    if (positive) tallyPositive(tally, scored, k, reason);
    tally.rollouts++;
    // The fields after line, id and groupId, as one object literal in their final order (the output line's):
    // spreading intermediate objects into a record was the larger part of building the records.
    if (reason === undefined) {
      tally.kept++;
      const fields =
        advantageOf === undefined
          ? {
              dropped: false,
              correct: positive,
              reward,
              pErr: orNull(pErr[k]),
              pFormat: orNull(pFormat[k]),
              pTotal: orNull(pTotal[k]),
            }
          : {
              dropped: false,
              correct: positive,
              reward,
              pErr: orNull(pErr[k]),
              pFormat: orNull(pFormat[k]),
              pTotal: orNull(pTotal[k]),
              advantage: advantageOf(k),
            };
      records[k] = { dropped: false, member, fields };
      continue;
    }
    tally.dropped++;
    const text =
      reason === "infra-failure"
        ? describeInfraFailure(rollout, "roc", "its group before RoC")
        : describeDrop(reason, positive, pTotal[k]!, reward, report, options);
    records[k] = {
      dropped: true,
      member,
      fields: {
        dropped: true,
        reasonCode: reason,
        reason: text,
        correct: positive,
        reward,
        pErr: orNull(pErr[k]),
        pFormat: orNull(pFormat[k]),
        pTotal: orNull(pTotal[k]),
      },
    };
  }
  return records;
}

/** A positive's penalties into the summary, with its tool calls as RoC counted them (0 and 0 without quality). */
function tallyPositive(tally: Tally, scored: ScoredRocResult, k: number, reason: DropReason | undefined): void {
  const pErr = scored.result.penalties.pErr[k]!;
  const pFormat = scored.result.penalties.pFormat[k]!;
  const calls = scored.toolCalls[k]!;
  const failed = scored.failedToolCalls[k]!;
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
        ? `drew ${report.keptPositives} of ${report.positives}, weighted by 1/penalty`
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
