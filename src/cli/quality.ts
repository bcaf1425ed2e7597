import {
  emptyOutcomeCounts,
  penalties,
  type Penalties,
  type PenaltyOptions,
  type ToolOutcomeCounts,
} from "../roc/penalties.js";
import { rewardOf, type Rollout } from "../roc/schema.js";
import { parseTranscript, type TranscriptDialect } from "../roc/transcript.js";

export interface ScoredRollout {
  readonly source: "transcript" | "structured";
  readonly toolOutcomes: ToolOutcomeCounts;
  readonly answers: number;
  readonly turns: number;
  readonly formatOk: boolean;
  /** Transcripts only: responses in no known shape, and calls left without a response. */
  readonly unrecognizedResponses?: number | undefined;
  readonly unansweredCalls?: number | undefined;
  readonly penalties: Penalties;
}

export type PenaltySettings = PenaltyOptions & { readonly transcriptDialect: TranscriptDialect };

/**
 * The quality inputs of one rollout read as resampleOnCorrect reads them (a transcript in the chosen dialect, or
 * the structured fields with formatOk defaulting to true), scored by the library's `penalties`; undefined when the
 * rollout has none. The CLI tests check these figures against resampleOnCorrect's own.
 */
export function scoreRollout(rollout: Rollout, settings: PenaltySettings): ScoredRollout | undefined {
  // The library's options are strict: only the penalty options go to penalties() (the settings may be all of RoC's).
  const { failureKinds, penaltyWeights, noToolCallPenalty } = settings;
  const options: PenaltyOptions = { failureKinds, penaltyWeights, noToolCallPenalty };
  if (rollout.transcript !== undefined) {
    const parsed = parseTranscript(rollout.transcript, settings.transcriptDialect);
    return { source: "transcript", ...parsed, penalties: penalties(parsed, options) };
  }
  if (rollout.toolCalls === undefined) return undefined;
  const toolOutcomes = emptyOutcomeCounts();
  for (const call of rollout.toolCalls) toolOutcomes[call.outcome]++;
  const quality = {
    toolOutcomes,
    answers: rollout.answers!,
    turns: rollout.turns!,
    formatOk: rollout.formatOk ?? true,
  };
  return { source: "structured", ...quality, penalties: penalties(quality, options) };
}

export function isPositive(rollout: Rollout): boolean {
  return rollout.correct ?? rewardOf(rollout) > 0;
}

/** NaN (no penalty computed) has no JSON form; records say null. */
export function orNull(value: number | undefined): number | null {
  return value === undefined || Number.isNaN(value) ? null : value;
}
