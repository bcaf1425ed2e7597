import { z } from "zod";
import { closestKey } from "../errors.js";
import { describeValue } from "../numeric.js";
import { groupIdSchema, idSchema } from "../groups.js";
import { failureKindsSchema, TOOL_FAILURES, TOOL_OUTCOMES } from "./penalties.js";
import { TRANSCRIPT_DIALECTS } from "./transcript.js";

export const toolCallSchema = z.looseObject({
  outcome: z.enum(TOOL_OUTCOMES, { error: `outcome must be one of ${TOOL_OUTCOMES.join(", ")}` }),
});

const OUTCOMES: ReadonlySet<unknown> = new Set(TOOL_OUTCOMES);

/**
 * A rollout's tool calls. Valid calls are checked in place, not parsed by toolCallSchema: a step has tens of thousands
 * of calls, and zod's copy of each made garbage collection most of the cost of validating a batch. A call that fails
 * the quick check is parsed by toolCallSchema, so its error reads the same.
 */
const toolCallsSchema = z
  .custom<z.output<typeof toolCallSchema>[]>(Array.isArray, {
    error: (issue) => `expected an array of tool calls, received ${describeValue(issue.input)}`,
  })
  .check((ctx) => {
    ctx.value.forEach((call: unknown, k) => {
      if (typeof call === "object" && call !== null && OUTCOMES.has((call as { outcome?: unknown }).outcome)) return;
      for (const { path, message } of toolCallSchema.safeParse(call).error?.issues ?? []) {
        ctx.issues.push({ code: "custom", input: call, path: [k, ...path], message });
      }
    });
  });

const count = z.number().int().nonnegative();

/** The fields rolloutSchema reads; a rollout may carry others of the caller's. */
const ROLLOUT_FIELDS = [
  "id",
  "groupId",
  "reward",
  "correct",
  "toolCalls",
  "answers",
  "turns",
  "formatOk",
  "transcript",
];

const KNOWN_ROLLOUT_FIELDS = new Set(ROLLOUT_FIELDS);

/** A key with case, "_" and "-" folded away: `tool_calls` and `ToolCalls` fold to `toolCalls`'s `toolcalls`. */
const fold = (key: string) => key.toLowerCase().replace(/[_-]/g, "");

/**
 * One rollout as RoC sees it. Quality inputs are either structured (toolCalls + answers + turns, optionally formatOk)
 * or a raw `transcript`; they are needed for the positives of groups that are downsampled.
 */
export const rolloutSchema = z
  .looseObject({
    /** Optional stable identity: in paper mode it makes each rollout's random draw independent of its position. */
    id: idSchema.optional(),
    groupId: groupIdSchema,
    /** The scalar reward; advantages are computed from it. */
    reward: z.number().optional(),
    /** Whether the answer is right; defaults to reward > 0. */
    correct: z.boolean().optional(),
    toolCalls: toolCallsSchema.optional(),
    answers: count.optional(),
    turns: count.optional(),
    formatOk: z.boolean().optional(),
    transcript: z.string().optional(),
  })
  .superRefine((rollout, ctx) => {
    // A for-in loop over a Set, not Object.keys over the list: this check runs once per rollout, thousands per step.
    for (const key in rollout) {
      if (KNOWN_ROLLOUT_FIELDS.has(key)) continue;
      // Extra fields are the caller's own data; one that spells a known field another way is a typo to report.
      const meant = closestKey(key, ROLLOUT_FIELDS);
      if (meant !== undefined && fold(meant) === fold(key)) {
        ctx.addIssue({ code: "custom", path: [key], message: `not a rollout field; did you mean "${meant}"?` });
      }
    }
    if (rollout.reward === undefined && rollout.correct === undefined) {
      ctx.addIssue({ code: "custom", path: ["reward"], message: "give a reward, a correct flag, or both" });
    }
    const structured =
      Number(rollout.toolCalls !== undefined) +
      Number(rollout.answers !== undefined) +
      Number(rollout.turns !== undefined);
    if (structured > 0 && structured < 3) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: "structured quality inputs need toolCalls, answers and turns together",
      });
    }
    if (structured === 0 && rollout.formatOk !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["formatOk"],
        message: "formatOk belongs with the structured inputs (toolCalls, answers, turns)",
      });
    }
    if (structured > 0 && rollout.transcript !== undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["transcript"],
        message: "give either a transcript or structured quality inputs, not both",
      });
    }
    if (rollout.answers !== undefined && rollout.answers > 0 && rollout.turns === 0) {
      ctx.addIssue({ code: "custom", path: ["turns"], message: "a rollout that answered has at least one turn" });
    }
  });

export type Rollout = z.input<typeof rolloutSchema>;

export const rolloutsSchema = z.array(rolloutSchema);

/** The reward advantages are computed from: the given reward, else 1 for correct and 0 for wrong. */
export function rewardOf(rollout: Rollout): number {
  return rollout.reward ?? (rollout.correct ? 1 : 0);
}

export type PenaltyFunction = (rollout: Rollout, index: number) => number;

/** RoC as the paper describes it, or as rStar2-Agent's released code does it (docs/spec.md §3). */
export const ROC_MODES = ["paper", "reference"] as const;
/** What happens to a group with fewer than G rollouts. */
export const UNDERSIZED_RULES = ["keep", "drop", "error"] as const;

export const rocOptionsSchema = z
  .strictObject({
    /** G: rollouts kept per group (the paper samples 2G = 32 and keeps G = 16). */
    keepPerGroup: z.number().int().min(1),
    mode: z.enum(ROC_MODES).default("paper"),
    /** Required in paper mode; pass the training step so each step draws afresh and reruns are identical. */
    seed: z.union([z.string(), z.number()]).optional(),
    /** Drop groups whose rewards are all equal (they carry no signal) before RoC; reported per group. */
    filterEqualRewards: z.boolean().default(true),
    /**
     * Groups with fewer than G rollouts. Default: "keep" in paper mode, "drop" in reference mode (the released code
     * skips them).
     */
    undersized: z.enum(UNDERSIZED_RULES).optional(),
    /** Reference mode: floors on the kept negatives and positives. */
    minNegatives: count.default(2),
    minPositives: count.default(2),
    failureKinds: failureKindsSchema.default([...TOOL_FAILURES]),
    penaltyWeights: z
      .strictObject({ error: z.number().nonnegative().default(1), format: z.number().nonnegative().default(1) })
      .default({ error: 1, format: 1 }),
    noToolCallPenalty: z.number().nonnegative().default(0.5),
    transcriptDialect: z.enum(TRANSCRIPT_DIALECTS).default("strict"),
    /** Your own p_total for a rollout (finite, ≥ 0); replaces the built-in penalties. */
    penalty: z
      .custom<PenaltyFunction>((value) => typeof value === "function", { message: "expected a function" })
      .optional(),
  })
  .superRefine((options, ctx) => {
    if (options.mode === "paper" && options.seed === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["seed"],
        message: "paper mode samples at random: pass a seed (e.g. the training step)",
      });
    }
    if (options.mode === "reference" && options.minNegatives + options.minPositives > options.keepPerGroup) {
      ctx.addIssue({
        code: "custom",
        path: ["minNegatives"],
        message:
          `minNegatives + minPositives (${options.minNegatives + options.minPositives}) exceeds keepPerGroup ` +
          `(${options.keepPerGroup})`,
      });
    }
  });

export type RocOptions = z.output<typeof rocOptionsSchema>;
export type RocOptionsInput = z.input<typeof rocOptionsSchema>;

/** The two readings of the algorithm as plain options (add keepPerGroup, and a seed in paper mode). */
export const rocPresets = {
  /** The paper: positives sampled ∝ 1/p_total, negatives uniformly, proportions kept with a floor. */
  paper: { mode: "paper", filterEqualRewards: true, transcriptDialect: "strict" },
  /**
   * rStar2-Agent's released code: top-k positives, first negatives, rounding and floors of 2, its transcript
   * heuristics.
   */
  reference: {
    mode: "reference",
    filterEqualRewards: true,
    transcriptDialect: "reference",
    minNegatives: 2,
    minPositives: 2,
  },
} as const satisfies Record<string, Partial<RocOptionsInput>>;
