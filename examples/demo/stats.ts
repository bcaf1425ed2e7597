/**
 * What the demo measures on a set of rollouts. The paper's curve is `toolErrorRatioCorrect`: failed tool calls /
 * tool calls, counted inside the correct rollouts only (a correct rollout that fumbled the tool on its way).
 */
import type { ToolOutcome } from "grpo-roc";
import type { Episode } from "./rollout.js";

export type OutcomeCounts = Record<ToolOutcome, number>;

export interface RolloutStats {
  readonly rollouts: number;
  readonly accuracy: number;
  /** Failed calls / calls over the correct rollouts; null when they made no call. */
  readonly toolErrorRatioCorrect: number | null;
  /** The same over every rollout. */
  readonly toolErrorRatioAll: number | null;
  /** Tool calls by outcome: of every rollout, and of the correct ones. */
  readonly calls: OutcomeCounts;
  readonly callsCorrect: OutcomeCounts;
  readonly callsPerRollout: number;
  /** Share of rollouts that answered without any tool call. */
  readonly noToolCall: number;
  /** Share of rollouts with a format issue: no answer, more than one, or not digits. */
  readonly formatIssues: number;
}

export const emptyCounts = (): OutcomeCounts => ({ ok: 0, parse_error: 0, execution_error: 0, timeout: 0 });

const failures = (counts: OutcomeCounts) => counts.parse_error + counts.execution_error + counts.timeout;
const total = (counts: OutcomeCounts) => counts.ok + failures(counts);

export function rolloutStats(episodes: readonly Episode[]): RolloutStats {
  const calls = emptyCounts();
  const callsCorrect = emptyCounts();
  let correct = 0;
  let noTool = 0;
  let formatIssues = 0;
  for (const e of episodes) {
    if (e.toolCalls.length === 0) noTool++;
    if (!e.formatOk) formatIssues++;
    if (e.reward > 0) correct++;
    for (const call of e.toolCalls) {
      calls[call.outcome]++;
      if (e.reward > 0) callsCorrect[call.outcome]++;
    }
  }
  const n = episodes.length;
  const ratio = (counts: OutcomeCounts) => (total(counts) === 0 ? null : failures(counts) / total(counts));
  return {
    rollouts: n,
    accuracy: n === 0 ? 0 : correct / n,
    toolErrorRatioCorrect: ratio(callsCorrect),
    toolErrorRatioAll: ratio(calls),
    calls,
    callsCorrect,
    callsPerRollout: n === 0 ? 0 : total(calls) / n,
    noToolCall: n === 0 ? 0 : noTool / n,
    formatIssues: n === 0 ? 0 : formatIssues / n,
  };
}
