import * as z from "zod/mini";
import { closestKey, foldKey, safeParse } from "../errors.js";
import { describeValue } from "../numeric.js";
import { type GroupId, groupIdSchema, idSchema, isValidId } from "../groups.js";
import { failureKindsSchema, TOOL_FAILURES, TOOL_OUTCOMES, type ToolOutcome } from "./penalties.js";
import { TRANSCRIPT_DIALECTS } from "./transcript.js";

/**
 * One tool call of a rollout, as RoC counts it. Only `outcome` is read; a record of yours with more fields (the code,
 * its output) passes as it is, but a literal written as a ToolCall has just this one.
 */
export interface ToolCall {
  /**
   * How the call ended: "ok"; one of the model's failures `parse_error`, `execution_error`, `timeout`; or
   * `infra_error`, the infrastructure's failure (sandbox down, over quota, unreachable), which makes the whole rollout
   * infrastructure-failed (see `infraFailures` in RoC's options).
   */
  readonly outcome: ToolOutcome;
}

/** Checks one tool call: its `outcome` is one of TOOL_OUTCOMES, other fields are the caller's and pass as they are. */
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
  .custom<readonly ToolCall[]>(Array.isArray, {
    error: (issue) => `expected an array of tool calls, received ${describeValue(issue.input)}`,
  })
  .check((ctx) => {
    ctx.value.forEach((call: unknown, k) => {
      if (typeof call === "object" && call !== null && OUTCOMES.has((call as { outcome?: unknown }).outcome)) return;
      for (const { path, message } of safeParse(toolCallSchema, call).error?.issues ?? []) {
        ctx.issues.push({ code: "custom", input: call, path: [k, ...path], message });
      }
    });
  });

const count = z.int().check(z.nonnegative());
const weight = z.number().check(z.nonnegative());

/**
 * The fields rolloutSchema reads; a rollout may carry others of the caller's. The command line also reads each in
 * snake_case (`tool_calls`), the spelling Python writes.
 */
export const ROLLOUT_FIELDS: readonly string[] = [
  "id",
  "groupId",
  "reward",
  "correct",
  "toolCalls",
  "answers",
  "turns",
  "formatOk",
  "transcript",
  "infraFailed",
];

const KNOWN_ROLLOUT_FIELDS = new Set(ROLLOUT_FIELDS);

/**
 * One sampled response to a prompt, as RoC and the advantages read it. Its quality inputs are either structured
 * (`toolCalls` + `answers` + `turns`, optionally `formatOk`) or a raw `transcript`; RoC needs them for the correct
 * rollouts of groups it downsamples, and scores the others when given.
 *
 * Deliberately no index signature: a literal with a misspelt field (`tool_calls`) is a type error. Your own records
 * may carry more fields (a prompt, the tokens) and pass as they are; at run time extra fields are allowed too, and
 * one that spells a rollout field another way is reported. A type rather than an interface, so that a rollout stays
 * assignable to `Record<string, unknown>`.
 *
 * @example { groupId: "prompt-7", reward: 1, toolCalls: [{ outcome: "ok" }], answers: 1, turns: 2 }
 */
export type Rollout = {
  /**
   * Optional stable identity, unique within its group: a string, a bigint or a finite number (not an integer beyond
   * 2^53 − 1). In paper mode it makes each rollout's random draw independent of its position in the batch.
   */
  readonly id?: GroupId | undefined;
  /** The prompt it answers: RoC and the advantages work within each group (1 and 1n are one group, "1" another). */
  readonly groupId: GroupId;
  /** The scalar reward, finite; advantages are computed from it. Omitted: 1 if `correct`, else 0. */
  readonly reward?: number | undefined;
  /**
   * Whether the answer is right: a correct rollout is a positive, which RoC keeps only if clean. Omitted: reward > 0.
   * Give a reward, a correct flag, or both.
   */
  readonly correct?: boolean | undefined;
  /** Every tool call the rollout made, each with its outcome; with `answers` and `turns`, all three or none. */
  readonly toolCalls?: readonly ToolCall[] | undefined;
  /** Answers given (closed answer tags, or your own count), an integer ≥ 0: none or more than one raise p_format. */
  readonly answers?: number | undefined;
  /** Assistant turns, an integer ≥ 0 (at least 1 when it answered): p_format = min(1, (answers − 1)/turns). */
  readonly turns?: number | undefined;
  /** false when the answer markup is malformed, which makes p_format 1. Default true; only with `toolCalls`. */
  readonly formatOk?: boolean | undefined;
  /**
   * The raw response transcript (Hermes / rStar2-Agent tags), read with `options.transcriptDialect` instead of the
   * structured inputs.
   */
  readonly transcript?: string | undefined;
  /**
   * true when the infrastructure failed the whole rollout (the sandbox was down, over quota or unreachable), whatever
   * its tool calls say: such a rollout says nothing about the policy, and RoC drops it by default (`infraFailures`).
   * A rollout with a tool call whose outcome is "infra_error" is infrastructure-failed too; false does not undo that.
   */
  readonly infraFailed?: boolean | undefined;
};

/**
 * Checks one rollout (see Rollout) as RoC and the pipeline do, with the same messages: the fields' types, and the
 * rules across them (a reward or a correct flag; the structured inputs together, or a transcript). Fields of your own
 * pass as they are, unless one spells a rollout field another way (`tool_calls`).
 */
export const rolloutSchema = z
  .looseObject({
    /** Optional stable identity: in paper mode it makes each rollout's random draw independent of its position. */
    id: z.optional(idSchema),
    groupId: groupIdSchema,
    /** The scalar reward; advantages are computed from it. */
    reward: z.optional(z.number()),
    /** Whether the answer is right; defaults to reward > 0. */
    correct: z.optional(z.boolean()),
    toolCalls: z.optional(toolCallsSchema),
    answers: z.optional(count),
    turns: z.optional(count),
    formatOk: z.optional(z.boolean()),
    transcript: z.optional(z.string()),
    /** true when the infrastructure failed the whole rollout (see Rollout). */
    infraFailed: z.optional(z.boolean()),
  })
  .check(
    z.superRefine((rollout, ctx) => {
      // A for-in loop over a Set, not Object.keys over the list: this check runs once per rollout, thousands per step.
      for (const key in rollout) {
        if (KNOWN_ROLLOUT_FIELDS.has(key)) continue;
        // Extra fields are the caller's own data; one that spells a known field another way is a typo to report.
        const meant = closestKey(key, ROLLOUT_FIELDS);
        if (meant !== undefined && foldKey(meant) === foldKey(key)) {
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
    }),
  );

/**
 * true only for a rollout that rolloutSchema accepts: the same rules, tested in place for the common case of plain
 * JSON with no field but the rollout fields, without zod's copy of the object. false means "ask rolloutSchema", which
 * says what is wrong, or accepts a rollout outside that case (fields of the caller's own). Internal, not exported
 * from the package: the command line checks each line with it first, since zod's parse was a third of a request's
 * time; test/rollout-quick-check.test.ts holds it to the schema.
 */
export function passesRolloutSchemaQuickly(value: unknown): boolean {
  if (typeof value !== "object" || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false;
  const rollout = value as Record<string, unknown>;
  for (const key in rollout) if (!KNOWN_ROLLOUT_FIELDS.has(key) || rollout[key] === undefined) return false;
  const { id, groupId, reward, correct, toolCalls, answers, turns, formatOk, transcript, infraFailed } = rollout;
  if (!isValidId(groupId) || (id !== undefined && !isValidId(id))) return false;
  if (reward !== undefined && !(typeof reward === "number" && Number.isFinite(reward))) return false;
  if (reward === undefined && correct === undefined) return false;
  if (!isOptional(correct, "boolean") || !isOptional(formatOk, "boolean") || !isOptional(infraFailed, "boolean")) {
    return false;
  }
  if (toolCalls === undefined && answers === undefined && turns === undefined) {
    return formatOk === undefined && isOptional(transcript, "string");
  }
  if (transcript !== undefined || !Array.isArray(toolCalls) || !isCount(answers) || !isCount(turns)) return false;
  if (answers > 0 && turns === 0) return false;
  for (const call of toolCalls) {
    if (typeof call !== "object" || call === null || !OUTCOMES.has((call as { outcome?: unknown }).outcome)) {
      return false;
    }
  }
  return true;
}

const isOptional = (value: unknown, type: "boolean" | "string") => value === undefined || typeof value === type;
const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0;

/** A type's named fields, mutable, without the index signature a loose object schema adds for the caller's own. */
type NamedFields<T> = { -readonly [K in keyof T as string extends K ? never : K]: T[K] };
/** true for exactly the same type: the same keys, each as optional and of the same type. */
type Same<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Holds<T extends true> = T;
/** Compiles only while the schemas read exactly the fields of Rollout and ToolCall, each as the type declares it. */
// biome-ignore lint/correctness/noUnusedVariables: a compile-time check, never read
type SchemasMatchTypes = Holds<
  Same<
    [
      NamedFields<z.input<typeof rolloutSchema>>,
      NamedFields<z.output<typeof rolloutSchema>>,
      NamedFields<z.output<typeof toolCallSchema>>,
    ],
    [NamedFields<Rollout>, NamedFields<Rollout>, NamedFields<ToolCall>]
  >
>;

/** Checks a batch of rollouts, each with rolloutSchema: an issue's path starts at the rollout's index. */
export const rolloutsSchema = z.array(rolloutSchema);

/** The reward advantages are computed from: the given reward, else 1 for correct and 0 for wrong. */
export function rewardOf(rollout: Rollout): number {
  return rollout.reward ?? (rollout.correct ? 1 : 0);
}

/**
 * Your own p_total for a correct rollout (`options.penalty`), finite and ≥ 0; it replaces the built-in penalties, and
 * lower is cleaner. It is given the object you passed, and its index in the batch: a field of your own is there to
 * read (`(rollout as MyRollout).cost`).
 */
export type PenaltyFunction = (rollout: Rollout, index: number) => number;

/** RoC as the paper describes it, or as rStar2-Agent's released code does it (docs/spec.md §3). */
export const ROC_MODES = ["paper", "reference"] as const;
/** What happens to a group with fewer than G rollouts. */
export const UNDERSIZED_RULES = ["keep", "drop", "error"] as const;
/**
 * What happens to an infrastructure-failed rollout: "drop" leaves it out of its group before anything else; "keep"
 * treats it as an ordinary rollout (its reward as given, its infra_error calls out of p_err).
 */
export const INFRA_FAILURE_RULES = ["drop", "keep"] as const;

/** rocOptionsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const rocOptionsShape = {
  /** G: rollouts kept per group (the paper samples 2G = 32 and keeps G = 16). */
  keepPerGroup: z.int().check(z.minimum(1)),
  /** "paper" (default): positives sampled ∝ 1/p_total; "reference": rStar2-Agent's released code. See rocPresets. */
  mode: z._default(z.enum(ROC_MODES), "paper"),
  /** Required in paper mode; pass the training step so each step draws afresh and reruns are identical. */
  seed: z.optional(z.union([z.string(), z.number()])),
  /**
   * Infrastructure-failed rollouts (an "infra_error" tool call, or `infraFailed: true`): "drop" (default) leaves them
   * out of their group before the equal-reward filter, selection and advantages; "keep" treats them as ordinary
   * rollouts.
   */
  infraFailures: z._default(z.enum(INFRA_FAILURE_RULES), "drop"),
  /** Drop groups whose rewards are all equal (they carry no signal) before RoC; reported per group. */
  filterEqualRewards: z._default(z.boolean(), true),
  /**
   * Groups with fewer than G rollouts. Default: "keep" in paper mode, "drop" in reference mode (the released code
   * skips them).
   */
  undersized: z.optional(z.enum(UNDERSIZED_RULES)),
  /** Reference mode: the floor on the kept negatives (default 2). */
  minNegatives: z._default(count, 2),
  /** Reference mode: the floor on the kept positives (default 2). */
  minPositives: z._default(count, 2),
  /** Which tool-call failures count as errors in p_err; default all three. */
  failureKinds: z._default(failureKindsSchema, [...TOOL_FAILURES]),
  /** p_total = error·p_err + format·p_format; default 1 and 1 (rStar2-Agent switches each to 0 or 1). */
  penaltyWeights: z._default(z.strictObject({ error: z._default(weight, 1), format: z._default(weight, 1) }), {
    error: 1,
    format: 1,
  }),
  /** p_err of a rollout that made no tool call (default 0.5: neither rewarded nor ideal). */
  noToolCallPenalty: z._default(weight, 0.5),
  /** How `transcript` fields are read: "strict" (default) or "reference" (see TranscriptDialect). */
  transcriptDialect: z._default(z.enum(TRANSCRIPT_DIALECTS), "strict"),
  /** Your own p_total for a rollout (finite, ≥ 0); replaces the built-in penalties. */
  penalty: z.optional(
    z.custom<PenaltyFunction>((value) => typeof value === "function", { message: "expected a function" }),
  ),
};

/**
 * Checks and fills in RoC's options (RocOptionsInput): each field's type and default, and the rules across them (a
 * seed in paper mode; reference-mode floors that fit in G). Unknown keys are errors that name the closest known one.
 */
export const rocOptionsSchema: z.ZodMiniObject<typeof rocOptionsShape, z.core.$strict> = z
  .strictObject(rocOptionsShape)
  .check(
    z.superRefine((options, ctx) => {
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
    }),
  );

/** RoC's options with every default filled in, as `resolveRocOptions` returns them. */
export type RocOptions = z.output<typeof rocOptionsSchema>;
/** The options `resampleOnCorrect` takes: keepPerGroup, a seed in paper mode, the rest optional (see `rocPresets`). */
export type RocOptionsInput = z.input<typeof rocOptionsSchema>;

/** The two readings of the algorithm as plain options (add keepPerGroup, and a seed in paper mode). */
export const rocPresets = {
  /**
   * The paper: positives sampled ∝ 1/p_total, negatives uniformly, proportions kept with a floor; infrastructure
   * failures dropped (the report does not discuss them; on inputs without any, the filter changes nothing).
   */
  paper: { mode: "paper", infraFailures: "drop", filterEqualRewards: true, transcriptDialect: "strict" },
  /**
   * rStar2-Agent's released code: top-k positives, first negatives, rounding and floors of 2, its transcript
   * heuristics. The code has no infrastructure filter, and none is needed to reproduce it: its inputs (transcripts
   * read in its dialect) never carry an infrastructure failure, so "drop" leaves them as they are.
   */
  reference: {
    mode: "reference",
    infraFailures: "drop",
    filterEqualRewards: true,
    transcriptDialect: "reference",
    minNegatives: 2,
    minPositives: 2,
  },
} as const satisfies Record<string, Partial<RocOptionsInput>>;
