/**
 * A `serve` request's options: the flags of its command that shape the records, as JSON (`{ "keep": 16, "seed": 3,
 * "kept_only": true }`), read into the very values the command line parses, so that a request and a command line
 * mean the same thing and are checked by the same code. Keys are the flags' names in snake_case, the spelling of a
 * Python keyword argument.
 */
import { unknownKey, type ValidationIssue } from "../errors.js";
import { describeValue } from "../numeric.js";
import type { CommandSpec, OptionSpec, UsageError, Values } from "./args.js";

/** Flags about the process or its files, not the records: the server's own, or meaningless without a file. */
const PROCESS_FLAGS: ReadonlySet<string> = new Set([
  "output",
  "summary",
  "progress",
  "quiet",
  "help",
  "max-line-bytes",
  "import",
]);

/** String flags whose value is a JSON number; every other string flag is a JSON string, but for these two. */
const NUMBER_FLAGS: ReadonlySet<string> = new Set([
  "keep",
  "min-negatives",
  "min-positives",
  "error-weight",
  "format-weight",
  "no-tool-call-penalty",
  "epsilon",
]);
/** A number (the training step) or a string, as the library's `seed`. */
const SEED_FLAG = "seed";
/** A list of names: a JSON array of strings. */
const LIST_FLAG = "failure-kinds";

/** A flag's name as a request's option key: `keep-equal-rewards` → `keep_equal_rewards`. */
export function optionKey(flag: string): string {
  return flag.replace(/-/g, "_");
}

/** The options a request for the command of `spec` may give, by key. */
export function requestOptions(spec: CommandSpec): ReadonlyMap<string, OptionSpec> {
  return new Map(
    spec.sections.flatMap((section) =>
      section.options
        .filter((option) => !PROCESS_FLAGS.has(option.name))
        .map((option) => [optionKey(option.name), option]),
    ),
  );
}

/**
 * The command-line values that `options` stands for; throws a list of issues (`options.keep: expected a number,
 * received string ("16")`, `options.seeed: unknown key; did you mean "seed"?`) when it cannot.
 */
export function valuesFromOptions(spec: CommandSpec, options: Readonly<Record<string, unknown>>): Values {
  const known = requestOptions(spec);
  const values: Values = {};
  const issues: ValidationIssue[] = [];
  for (const [key, value] of Object.entries(options)) {
    const option = known.get(key);
    const problem = option === undefined ? unknownKey(key, [...known.keys()]) : setValue(values, option, value);
    if (problem !== undefined) issues.push({ path: `options.${key}`, message: problem });
  }
  if (issues.length > 0) throw new OptionsError(issues);
  return values;
}

/** Options a request cannot have: each issue names the option's path in the request. */
export class OptionsError extends Error {
  override name = "OptionsError";

  constructor(readonly issues: readonly ValidationIssue[]) {
    super(issues.map((issue) => `${issue.path}: ${issue.message}`).join("\n"));
  }
}

/** Sets the flag of `option` from a JSON value; what is wrong with the value, if anything. */
function setValue(values: Values, option: OptionSpec, value: unknown): string | undefined {
  if (option.type === "boolean") {
    if (typeof value !== "boolean") return `expected true or false, received ${describeValue(value)}`;
    if (value) values[option.name] = true;
    return undefined;
  }
  if (option.name === LIST_FLAG) {
    const names = Array.isArray(value) && value.every((item) => typeof item === "string" && !item.includes(","));
    if (!names)
      return `expected an array of names, such as ["execution_error", "timeout"], received ${describe(value)}`;
    values[option.name] = (value as string[]).join(",");
    return undefined;
  }
  const types = jsonTypes(option.name);
  if (!(types as readonly string[]).includes(typeof value)) {
    return `expected ${types.map((type) => `a ${type}`).join(" or ")}, received ${describeValue(value)}`;
  }
  values[option.name] = String(value);
  return undefined;
}

/** The JSON types a string flag's value may have in a request. */
function jsonTypes(flag: string): readonly ("number" | "string")[] {
  if (NUMBER_FLAGS.has(flag)) return ["number"];
  return flag === SEED_FLAG ? ["number", "string"] : ["string"];
}

function describe(value: unknown): string {
  return Array.isArray(value) ? JSON.stringify(value).slice(0, 60) : describeValue(value);
}

/**
 * A command's complaint about its values (a UsageError that names flags: `--keep: expected an integer ≥ 1`) as
 * issues that name the request's options (`options.keep`).
 */
export function optionIssues(error: UsageError, spec: CommandSpec): ValidationIssue[] {
  const flags = new Set([...requestOptions(spec).values()].map((option) => option.name));
  const text = error.message.replace(/--([a-z][a-z-]*)/g, (flag, name: string) =>
    flags.has(name) ? `options.${optionKey(name)}` : flag,
  );
  return text.split("\n").map((line) => {
    const match = /^(options\.[a-z_]+(?:\/options\.[a-z_]+)*): (.*)$/.exec(line);
    return match === null ? { path: "options", message: line } : { path: match[1]!, message: match[2]! };
  });
}
