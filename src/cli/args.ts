import { parseArgs } from "node:util";

/** Bad command line: exit code 2, with a pointer to --help. */
export class UsageError extends Error {
  override name = "UsageError";
}

export interface OptionSpec {
  readonly name: string;
  readonly short?: string | undefined;
  readonly type: "string" | "boolean";
  /** Placeholder shown in --help for a string option. */
  readonly arg?: string | undefined;
  readonly help: string;
}

export interface OptionSection {
  readonly title: string;
  readonly options: readonly OptionSpec[];
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Paragraphs shown under the usage line. */
  readonly description: readonly string[];
  readonly sections: readonly OptionSection[];
  readonly examples: readonly string[];
  /** What follows the command's name on the usage line; default "[options] [FILE]". */
  readonly usage?: string | undefined;
  /** The exit-code lines of its help; default EXIT_CODES_HELP. */
  readonly exitCodes?: readonly string[] | undefined;
}

export type Values = Record<string, string | boolean | undefined>;

export interface ParsedCommandLine {
  readonly values: Values;
  /** The input: a file, "-" for stdin, or undefined when none was given (stdin unless it is a terminal). */
  readonly input: string | undefined;
}

/** Parses one subcommand's arguments against the same specs its --help is printed from, so the two cannot drift. */
export function parseCommandLine(spec: CommandSpec, argv: readonly string[]): ParsedCommandLine {
  const options: Record<string, { type: "string" | "boolean"; short?: string }> = {};
  for (const section of spec.sections) {
    for (const option of section.options) {
      options[option.name] =
        option.short === undefined ? { type: option.type } : { type: option.type, short: option.short };
    }
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs' own wording ("Unknown option '--x'", "Option '--keep <value>' argument missing") is clear enough.
    throw new UsageError(
      (error as Error).message.replace(/\. To specify a positional argument starting with a '-'.*$/s, ""),
    );
  }
  const positionals = parsed.positionals;
  if (positionals.length > 1)
    throw new UsageError(`one input at most, received ${positionals.length}: ${positionals.join(" ")}`);
  return { values: parsed.values as Values, input: positionals[0] };
}

export function stringOption(values: Values, name: string): string | undefined {
  const value = values[name];
  return typeof value === "string" ? value : undefined;
}

/**
 * Numbers on the command line are decimal, as written: an integer is plain digits (16, not 0x10, 1e1 or 16.0); other
 * numbers may have a fraction and an exponent (0.5, 1e-6). No hexadecimal, octal or binary, no Infinity, no spaces.
 */
const DECIMAL_INTEGER = /^-?\d+$/;
const DECIMAL_NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

export function numberOption(
  values: Values,
  name: string,
  rule: { min?: number; max?: number; integer?: boolean } = {},
): number | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const kind = rule.integer ? "an integer" : "a number";
  const value = (rule.integer ? DECIMAL_INTEGER : DECIMAL_NUMBER).test(text) ? Number(text) : NaN;
  if (!Number.isFinite(value) || (rule.integer && !Number.isSafeInteger(value))) {
    const how = rule.integer ? "an integer in plain decimal digits" : "a decimal number (such as 0.5 or 1e-6)";
    throw new UsageError(`--${name}: expected ${how}, received ${JSON.stringify(text)}`);
  }
  if (rule.min !== undefined && value < rule.min)
    throw new UsageError(`--${name}: expected ${kind} ≥ ${rule.min}, received ${text}`);
  if (rule.max !== undefined && value > rule.max)
    throw new UsageError(`--${name}: expected ${kind} ≤ ${rule.max}, received ${text}`);
  return value;
}

export function choiceOption<T extends string>(values: Values, name: string, choices: readonly T[]): T | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  if (!(choices as readonly string[]).includes(text)) {
    throw new UsageError(`--${name}: expected one of ${choices.join(", ")}, received ${JSON.stringify(text)}`);
  }
  return text as T;
}

export function listOption<T extends string>(values: Values, name: string, choices: readonly T[]): T[] | undefined {
  const text = stringOption(values, name);
  if (text === undefined) return undefined;
  const items = text
    .split(",")
    .map((item) => item.trim())
    .filter((item) => item !== "");
  for (const item of items) {
    if (!(choices as readonly string[]).includes(item)) {
      throw new UsageError(
        `--${name}: expected a comma-separated list of ${choices.join(", ")}, received ${JSON.stringify(item)}`,
      );
    }
  }
  return items as T[];
}

const WIDTH = 100;

/** The exit-code rule, as --help states it (the main help and every command's). */
export const EXIT_CODES_HELP = [
  "Exit codes: 0 ok, 1 invalid input (a bad line, named by its number and field), 2 usage error (a wrong or",
  "conflicting flag, such as two outputs that are one file), 3 a file that cannot be read or written (or a closed",
  "output pipe), 128+n on signal n (130 SIGINT, 143 SIGTERM; temporary files are removed first), 70 internal error.",
];

export const NUMBERS_HELP = "Numbers are decimal: integers in plain digits (16), other numbers also as 0.5 or 1e-6.";

export function renderCommandHelp(spec: CommandSpec): string {
  const out = [`Usage: grpo-roc ${spec.name} ${spec.usage ?? "[options] [FILE]"}`, "", wrap(spec.summary, WIDTH), ""];
  for (const paragraph of spec.description) out.push(wrap(paragraph, WIDTH), "");
  // One column for every section, so the help reads as one table.
  const column = Math.min(
    30,
    Math.max(...spec.sections.flatMap((s) => s.options.map((o) => optionLabel(o).length))) + 4,
  );
  for (const section of spec.sections) {
    out.push(`${section.title}:`);
    section.options.forEach((option) => {
      const label = optionLabel(option);
      const helpLines = wrap(option.help, WIDTH - column).split("\n");
      const first =
        label.length + 2 < column
          ? `  ${label.padEnd(column - 2)}${helpLines[0]}`
          : `  ${label}\n${" ".repeat(column)}${helpLines[0]}`;
      out.push(first, ...helpLines.slice(1).map((line) => " ".repeat(column) + line));
    });
    out.push("");
  }
  if (spec.examples.length > 0) out.push("Examples:", ...spec.examples.map((example) => `  ${example}`), "");
  out.push(...(spec.exitCodes ?? EXIT_CODES_HELP), NUMBERS_HELP);
  return `${out.join("\n")}\n`;
}

function optionLabel(option: OptionSpec): string {
  const long = `--${option.name}${option.type === "string" ? ` ${option.arg ?? "VALUE"}` : ""}`;
  return option.short === undefined ? long : `-${option.short}, ${long}`;
}

/** Greedy word wrap that keeps the paragraph's own line breaks. */
export function wrap(text: string, width: number): string {
  return text
    .split("\n")
    .map((line) => {
      const indent = /^\s*/.exec(line)![0];
      const words = line.trim().split(/\s+/);
      const lines: string[] = [];
      let current = "";
      for (const word of words) {
        if (current !== "" && indent.length + current.length + 1 + word.length > width) {
          lines.push(indent + current);
          current = word;
        } else {
          current = current === "" ? word : `${current} ${word}`;
        }
      }
      lines.push(indent + current);
      return lines.join("\n");
    })
    .join("\n");
}
