import {
  type AdvantageOptions,
  type AdvantageOptionsInput,
  advantageEstimatorNames,
  advantagePresets,
  resolveAdvantageOptions,
} from "../advantages/index.js";
import { SINGLETON_RULES, STD_SCOPES } from "../advantages/options.js";
import { ValidationError } from "../errors.js";
import { DEFAULT_PENALTY_OPTIONS, TOOL_FAILURES, type PenaltyOptions } from "../roc/penalties.js";
import { resolveRocOptions } from "../roc/resample.js";
import {
  INFRA_FAILURE_RULES,
  ROC_MODES,
  type RocOptions,
  type RocOptionsInput,
  rocPresets,
  UNDERSIZED_RULES,
} from "../roc/schema.js";
import { TRANSCRIPT_DIALECTS, type TranscriptDialect } from "../roc/transcript.js";
import { DEFAULT_MAX_LINE_BYTES, MAX_LINE_BYTES_LIMIT } from "./line-reader.js";
import {
  choiceOption,
  listOption,
  numberOption,
  stringOption,
  UsageError,
  type OptionSection,
  type Values,
} from "./args.js";

export const ioSection: OptionSection = {
  title: "Input and output",
  options: [
    {
      name: "output",
      short: "o",
      type: "string",
      arg: "FILE",
      help:
        "write to FILE instead of stdout (- is stdout): a regular file is written beside it and renamed into place " +
        "at the end, with --summary too, both or neither (on an error or a signal FILE is left as it was); a named " +
        "pipe or a device is written directly. FILE may not be the input or the --summary file",
    },
    {
      name: "skip-invalid",
      type: "boolean",
      help:
        "skip bad lines (and groups the library rejects) instead of stopping: each is reported on stderr, " +
        'counted in the summary and written as { line, dropped: true, reasonCode: "invalid", reason }',
    },
    {
      name: "kept-only",
      type: "boolean",
      help:
        "write only the records with dropped: false (by default every input line is in the output, kept or " +
        "dropped with its reason)",
    },
    {
      name: "include-rollout",
      type: "boolean",
      help: 'copy each input line into its record as "rollout", byte for byte (big integers and all)',
    },
    {
      name: "summary",
      type: "string",
      arg: "FILE",
      help: "also write the summary as JSON to FILE, committed together with -o; FILE - is stdout when -o names a file",
    },
    {
      name: "max-line-bytes",
      type: "string",
      arg: "N",
      help:
        `the longest line read, in bytes (default ${DEFAULT_MAX_LINE_BYTES}, 64 MiB; at most ` +
        `${MAX_LINE_BYTES_LIMIT}): a longer line is an invalid line, skipped unread, in bounded memory`,
    },
    {
      name: "progress",
      type: "boolean",
      help:
        "always show the progress bar on stderr (by default it appears on a terminal once a run has lasted a " +
        "second, unless the records go to that terminal)",
    },
    {
      name: "quiet",
      short: "q",
      type: "boolean",
      help: "no progress bar, no summary, no report of skipped lines on stderr (errors are still printed)",
    },
    { name: "help", short: "h", type: "boolean", help: "show this help" },
  ],
};

/** A group id that comes back after its group was closed by another id. */
const REPEATED_GROUP_RULES = ["error", "separate"] as const;

export const groupingSection: OptionSection = {
  title: "Groups",
  options: [
    {
      name: "repeated-groups",
      type: "string",
      arg: REPEATED_GROUP_RULES.join("|"),
      help:
        'a group id that comes back after its group was closed by another id: "error" (default; names both ' +
        "lines; each finished group costs about 100 bytes, a 128-bit digest of its id and its line span, whatever " +
        'the id\'s length) or "separate" (each contiguous run of lines is a group of its own, and nothing is ' +
        "remembered about finished groups)",
    },
  ],
};

export const penaltySection: OptionSection = {
  title: "Penalties",
  options: [
    {
      name: "dialect",
      type: "string",
      arg: TRANSCRIPT_DIALECTS.join("|"),
      help:
        'how transcripts are read: "strict" (the sandbox\'s verdicts) or "reference" (rStar2-Agent\'s ' +
        "heuristics); default: strict, or reference with --mode reference",
    },
    {
      name: "failure-kinds",
      type: "string",
      arg: "LIST",
      help: `which tool-call failures count in p_err, comma-separated (default: ${TOOL_FAILURES.join(",")})`,
    },
    { name: "error-weight", type: "string", arg: "W", help: "p_total = W·p_err + format-weight·p_format (default 1)" },
    { name: "format-weight", type: "string", arg: "W", help: "weight of p_format in p_total (default 1)" },
    {
      name: "no-tool-call-penalty",
      type: "string",
      arg: "P",
      help: "p_err of a rollout without a tool call (default 0.5)",
    },
  ],
};

export const infraSection: OptionSection = {
  title: "Infrastructure failures",
  options: [
    {
      name: "infra-failures",
      type: "string",
      arg: INFRA_FAILURE_RULES.join("|"),
      help:
        'rollouts the infrastructure failed (a tool call with outcome "infra_error", or infraFailed: true): "drop" ' +
        '(default; reasonCode "infra-failure", before anything else is computed over their group) or "keep" (as ' +
        "ordinary rollouts, their reward as given, their infra_error calls out of p_err)",
    },
  ],
};

/** --infra-failures, default "drop". */
export function infraFailuresFrom(values: Values): (typeof INFRA_FAILURE_RULES)[number] {
  return choiceOption(values, "infra-failures", INFRA_FAILURE_RULES) ?? "drop";
}

const modeOption = {
  name: "mode",
  type: "string",
  arg: ROC_MODES.join("|"),
  help:
    "RoC as the paper describes it (default: positives sampled ∝ 1/p_total, seeded) or as rStar2-Agent's " +
    "released code does it (lowest penalties, first negatives, floors of 2, reference transcript dialect)",
} as const;

export const penaltyModeSection: OptionSection = {
  title: "Mode",
  options: [
    {
      ...modeOption,
      help:
        "reference selects the reference transcript dialect (as --dialect reference); penalties are otherwise " +
        "the same in both modes",
    },
  ],
};

export const rocSection: OptionSection = {
  title: "Resample-on-Correct",
  options: [
    {
      name: "keep",
      short: "k",
      type: "string",
      arg: "G",
      help: "rollouts kept per group (required; the paper samples 2G = 32 and keeps G = 16)",
    },
    modeOption,
    {
      name: "seed",
      type: "string",
      arg: "S",
      help: "required in paper mode: pass the training step, so each step draws afresh and a rerun is identical",
    },
    {
      name: "undersized",
      type: "string",
      arg: UNDERSIZED_RULES.join("|"),
      help: "groups with fewer than G rollouts (default: keep in paper mode, drop in reference mode)",
    },
    {
      name: "keep-equal-rewards",
      type: "boolean",
      help: "do not drop groups whose rewards are all equal (dropped by default: they carry no signal)",
    },
    {
      name: "min-negatives",
      type: "string",
      arg: "N",
      help: "reference mode: floor on the negatives kept (default 2)",
    },
    {
      name: "min-positives",
      type: "string",
      arg: "N",
      help: "reference mode: floor on the positives kept (default 2)",
    },
  ],
};

const presetNames = Object.keys(advantagePresets) as (keyof typeof advantagePresets)[];

export const advantageSection: OptionSection = {
  title: "Advantages",
  options: [
    {
      name: "import",
      type: "string",
      arg: "MODULE",
      help:
        "load MODULE first (a path, or a package name) and call its default export with grpo-roc's API: how an " +
        "estimator registered with registerAdvantageEstimator becomes a choice of --estimator",
    },
    {
      name: "preset",
      type: "string",
      arg: "NAME",
      help:
        `conventions of a peer: ${presetNames.join(", ")} (default verl, which rStar2-Agent uses); the options ` +
        `below override it`,
    },
    {
      name: "estimator",
      type: "string",
      arg: "NAME",
      help:
        "a registered estimator: grpo (group mean/std), rloo (leave-one-out baseline), or one that --import " +
        "registers",
    },
    { name: "no-std", type: "boolean", help: "do not divide by the std: Dr. GRPO, A = r − mean" },
    {
      name: "std-scope",
      type: "string",
      arg: STD_SCOPES.join("|"),
      help:
        'std of the group, or of the whole input (TRL scale_rewards="batch"; the input is then read twice, and ' +
        "stdin is first copied to a temporary file)",
    },
    { name: "epsilon", type: "string", arg: "E", help: "added to the std (verl 1e-6, TRL 1e-4)" },
    { name: "biased-std", type: "boolean", help: "divide the variance by N instead of N − 1" },
    {
      name: "singleton",
      type: "string",
      arg: SINGLETON_RULES.join("|"),
      help: 'a group of one: "raw" keeps its reward uncentred (verl), "zero" gives 0 (TRL)',
    },
  ],
};

export function penaltyOptionsFrom(values: Values): PenaltyOptions & { readonly transcriptDialect: TranscriptDialect } {
  const mode = choiceOption(values, "mode", ROC_MODES) ?? "paper";
  return {
    transcriptDialect: choiceOption(values, "dialect", TRANSCRIPT_DIALECTS) ?? rocPresets[mode].transcriptDialect,
    failureKinds: listOption(values, "failure-kinds", TOOL_FAILURES) ?? [...DEFAULT_PENALTY_OPTIONS.failureKinds],
    penaltyWeights: {
      error: numberOption(values, "error-weight", { min: 0 }) ?? DEFAULT_PENALTY_OPTIONS.penaltyWeights.error,
      format: numberOption(values, "format-weight", { min: 0 }) ?? DEFAULT_PENALTY_OPTIONS.penaltyWeights.format,
    },
    noToolCallPenalty:
      numberOption(values, "no-tool-call-penalty", { min: 0 }) ?? DEFAULT_PENALTY_OPTIONS.noToolCallPenalty,
  };
}

/** The library's options as the flags give them, validated by the library itself; its complaints name the flag. */
export function rocOptionsFrom(values: Values): RocOptions {
  const mode = choiceOption(values, "mode", ROC_MODES) ?? "paper";
  const keep = numberOption(values, "keep", { min: 1, integer: true });
  if (keep === undefined) throw new UsageError("--keep: required: how many rollouts to keep per group (G)");
  const input: Record<string, unknown> = {
    ...rocPresets[mode],
    ...penaltyOptionsFrom(values),
    keepPerGroup: keep,
    infraFailures: infraFailuresFrom(values),
  };
  const seed = stringOption(values, "seed");
  // A numeric seed stays a number so the draws are those of `seed: step` in the library (the key is the same text).
  if (seed !== undefined) input.seed = /^-?\d{1,15}$/.test(seed) ? Number(seed) : seed;
  const undersized = choiceOption(values, "undersized", UNDERSIZED_RULES);
  if (undersized !== undefined) input.undersized = undersized;
  if (values["keep-equal-rewards"] === true) input.filterEqualRewards = false;
  const minNegatives = numberOption(values, "min-negatives", { min: 0, integer: true });
  if (minNegatives !== undefined) input.minNegatives = minNegatives;
  const minPositives = numberOption(values, "min-positives", { min: 0, integer: true });
  if (minPositives !== undefined) input.minPositives = minPositives;
  return withFlagNames(() => resolveRocOptions(input as RocOptionsInput));
}

export function advantageOptionsFrom(values: Values): AdvantageOptions {
  const preset = choiceOption(values, "preset", presetNames) ?? "verl";
  const input: Record<string, unknown> = { ...advantagePresets[preset] };
  const estimator = choiceOption(values, "estimator", advantageEstimatorNames());
  if (estimator !== undefined) input.estimator = estimator;
  if (values["no-std"] === true) input.scaleByStd = false;
  const scope = choiceOption(values, "std-scope", STD_SCOPES);
  if (scope !== undefined) input.stdScope = scope;
  const epsilon = numberOption(values, "epsilon", { min: 0 });
  if (epsilon !== undefined) input.epsilon = epsilon;
  if (values["biased-std"] === true) input.unbiasedStd = false;
  const singleton = choiceOption(values, "singleton", SINGLETON_RULES);
  if (singleton !== undefined) input.singleton = singleton;
  return withFlagNames(() => resolveAdvantageOptions(input as AdvantageOptionsInput));
}

/**
 * Only GRPO with std scaling over the batch needs a statistic of the whole input before the first advantage; every
 * other setting is computed group by group, as the input streams.
 */
export function needsBatchStd(options: AdvantageOptions): boolean {
  return options.estimator === "grpo" && options.scaleByStd && options.stdScope === "batch";
}

export function maxLineBytesFrom(values: Values): number {
  return (
    numberOption(values, "max-line-bytes", { min: 1, max: MAX_LINE_BYTES_LIMIT, integer: true }) ??
    DEFAULT_MAX_LINE_BYTES
  );
}

export function repeatedGroupsFrom(values: Values): "error" | "separate" {
  return choiceOption(values, "repeated-groups", REPEATED_GROUP_RULES) ?? "error";
}

const FLAG_OF: Record<string, string> = {
  keepPerGroup: "--keep",
  mode: "--mode",
  seed: "--seed",
  undersized: "--undersized",
  filterEqualRewards: "--keep-equal-rewards",
  minNegatives: "--min-negatives",
  minPositives: "--min-positives",
  failureKinds: "--failure-kinds",
  penaltyWeights: "--error-weight/--format-weight",
  noToolCallPenalty: "--no-tool-call-penalty",
  transcriptDialect: "--dialect",
  estimator: "--estimator",
  scaleByStd: "--no-std",
  stdScope: "--std-scope",
  epsilon: "--epsilon",
  unbiasedStd: "--biased-std",
  singleton: "--singleton",
};

function withFlagNames<T>(resolve: () => T): T {
  try {
    return resolve();
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    const lines = error.issues.map((issue) => {
      const field = /^options\.(\w+)/.exec(issue.path)?.[1];
      return `${(field && FLAG_OF[field]) ?? issue.path}: ${issue.message}`;
    });
    throw new UsageError(lines.join("\n"));
  }
}
