import * as z from "zod/mini";
import { parseOrThrow } from "../errors.js";
/**
 * How one tool call ended. "parse_error", "execution_error" and "timeout" are the model's failures (TOOL_FAILURES),
 * each a tool error by default; "infra_error" is the infrastructure's (the sandbox down, over quota or unreachable):
 * it makes its rollout infrastructure-failed and is never a tool error of the model.
 */
export const TOOL_OUTCOMES = ["ok", "parse_error", "execution_error", "timeout", "infra_error"] as const;
/** How one tool call ended: "ok", "parse_error", "execution_error", "timeout" or "infra_error". */
export type ToolOutcome = (typeof TOOL_OUTCOMES)[number];
/** The model's failures: the kinds `failureKinds` may count as tool errors ("infra_error" is not one). */
export const TOOL_FAILURES = ["parse_error", "execution_error", "timeout"] as const;
/** A failed tool call's kind: "parse_error", "execution_error" or "timeout". */
export type ToolFailure = (typeof TOOL_FAILURES)[number];

/** How many of a rollout's tool calls ended each way. */
export type ToolOutcomeCounts = Record<ToolOutcome, number>;

/** What RoC needs to know about a rollout's quality, however it was obtained (structured record or transcript). */
export interface Quality {
  /** Tool calls by how they ended (each an integer ≥ 0). */
  readonly toolOutcomes: ToolOutcomeCounts;
  /** Answers given (closed answer tags, or the trainer's own count). */
  readonly answers: number;
  /** Assistant turns. */
  readonly turns: number;
  /** false when the answer markup is malformed (unbalanced tags, no turn found): p_format is then 1. */
  readonly formatOk: boolean;
}

/** How the penalties are scored: which failures count, and how p_err and p_format weigh in p_total. */
export interface PenaltyOptions {
  /** Which failure kinds count as tool errors in p_err. */
  readonly failureKinds: readonly ToolFailure[];
  /**
   * p_total = error·p_err + format·p_format. rStar2-Agent's roc_error_ratio / roc_answer_format switch each to 0 or 1.
   */
  readonly penaltyWeights: { readonly error: number; readonly format: number };
  /** p_err of a rollout that made no tool call (or only infra_error calls): 0.5, neither rewarded nor ideal. */
  readonly noToolCallPenalty: number;
}

/** rStar2-Agent's scoring: every failure kind counts, p_total = p_err + p_format, p_err 0.5 without a tool call. */
export const DEFAULT_PENALTY_OPTIONS: PenaltyOptions = {
  failureKinds: TOOL_FAILURES,
  penaltyWeights: { error: 1, format: 1 },
  noToolCallPenalty: 0.5,
};

/** A rollout's penalties (docs/spec.md §3): lower is cleaner, and RoC keeps positives with low p_total. */
export interface Penalties {
  /** Tool-error penalty: failed calls / `toolCalls`, or `noToolCallPenalty` when `toolCalls` is 0. */
  readonly pErr: number;
  /** Format penalty: 1 without an answer or with malformed markup, else min(1, (answers − 1)/turns). */
  readonly pFormat: number;
  /** error·p_err + format·p_format, with the weights of `penaltyWeights`. */
  readonly pTotal: number;
  /**
   * Tool calls made, "infra_error" calls left out: the infrastructure failed them, so they say nothing of the model,
   * neither as failures nor as successes.
   */
  readonly toolCalls: number;
  /** Tool calls that failed in a kind `failureKinds` counts. */
  readonly failedToolCalls: number;
}

export function emptyOutcomeCounts(): ToolOutcomeCounts {
  return { ok: 0, parse_error: 0, execution_error: 0, timeout: 0, infra_error: 0 };
}

const count = z.int().check(z.nonnegative());
const weight = z.number().check(z.nonnegative());

/** A rollout's quality: extra fields (a parsed transcript's counters) are allowed, the four read are required. */
const qualitySchema = z.looseObject({
  toolOutcomes: z.strictObject({
    ok: count,
    parse_error: count,
    execution_error: count,
    timeout: count,
    infra_error: count,
  }),
  answers: count,
  turns: count,
  formatOk: z.boolean(),
});

/** The failure kinds that count, each once (a kind listed twice would count its failures twice). */
export const failureKindsSchema = z
  .array(z.enum(TOOL_FAILURES))
  .check(z.refine((kinds) => new Set(kinds).size === kinds.length, { message: "lists a failure kind twice" }));

const penaltyOptionsSchema = z.strictObject({
  failureKinds: failureKindsSchema,
  penaltyWeights: z.strictObject({ error: weight, format: weight }),
  noToolCallPenalty: weight,
});

/**
 * p_err = failed calls / all calls but infra_error ones (0.5 with none); p_format = 1 without an answer, else
 * min(1, (answers − 1)/turns).
 * Validates both arguments; RoC itself scores with `scorePenalties`, once its rollouts are validated.
 *
 * @example penalties({ toolOutcomes: { ok: 3, parse_error: 1, execution_error: 0, timeout: 0, infra_error: 0 },
 *   answers: 1, turns: 2, formatOk: true })
 *   // => { pErr: 0.25, pFormat: 0, pTotal: 0.25, toolCalls: 4, failedToolCalls: 1 }
 */
export function penalties(quality: Quality, options: PenaltyOptions = DEFAULT_PENALTY_OPTIONS): Penalties {
  parseOrThrow(qualitySchema, quality, "quality");
  parseOrThrow(penaltyOptionsSchema, options, "options");
  return scorePenalties(quality, options);
}

/** penalties() without its checks, for inputs already validated. */
export function scorePenalties(quality: Quality, options: PenaltyOptions): Penalties {
  const counts = quality.toolOutcomes;
  // infra_error calls are out of both terms: counted as successes they would lower p_err, as failures raise it.
  const toolCalls = counts.ok + counts.parse_error + counts.execution_error + counts.timeout;
  let failedToolCalls = 0;
  for (const kind of options.failureKinds) failedToolCalls += counts[kind];
  const pErr = toolCalls === 0 ? options.noToolCallPenalty : failedToolCalls / toolCalls;
  const pFormat =
    !quality.formatOk || quality.answers === 0 || quality.turns === 0
      ? 1
      : Math.min(1, (quality.answers - 1) / quality.turns);
  const pTotal = options.penaltyWeights.error * pErr + options.penaltyWeights.format * pFormat;
  return { pErr, pFormat, pTotal, toolCalls, failedToolCalls };
}
