#!/usr/bin/env node
import { createRequire } from "node:module";
import {
  EXIT_CODES_HELP,
  NUMBERS_HELP,
  parseCommandLine,
  renderCommandHelp,
  stringOption,
  UsageError,
  type Values,
  wrap,
} from "./args.js";
import { BUILD_CUDA_SUMMARY, buildCuda, buildCudaHelp } from "./build-cuda.js";
import { advantagesCommand } from "./commands/advantages.js";
import { penaltiesCommand } from "./commands/penalties.js";
import { pipelineCommand } from "./commands/pipeline.js";
import { resampleCommand } from "./commands/resample.js";
import type { CommandDefinition } from "./commands/types.js";
import { EXIT, FileError, isSystemError } from "./exit.js";
import { loadExtension } from "./extensions.js";
import { installInterruptHandlers } from "./interrupt.js";
import { InputError } from "./lines.js";
import { maxLineBytesFrom, repeatedGroupsFrom } from "./options.js";
import { type RunSettings, run } from "./run.js";
import { SERVE_SPEC, serve, serveSettings } from "./serve.js";
import { writeMessage } from "./terminal.js";

const COMMANDS: readonly CommandDefinition[] = [penaltiesCommand, resampleCommand, advantagesCommand, pipelineCommand];

function mainHelp(): string {
  const commands: [string, string][] = [
    ...COMMANDS.map((c): [string, string] => [c.spec.name, c.spec.summary]),
    [SERVE_SPEC.name, SERVE_SPEC.summary],
    ["build-cuda", BUILD_CUDA_SUMMARY],
  ];
  const names = commands.map(
    ([name, summary]) => `  ${name.padEnd(12)}${wrap(summary, 86).replace(/\n/g, `\n${" ".repeat(14)}`)}`,
  );
  return [
    "Usage: grpo-roc <command> [options] [FILE]",
    "",
    "GRPO-RoC (rStar2-Agent) over JSON Lines of rollouts: one rollout per line in the library's rolloutSchema",
    "({ groupId, reward?, correct?, id?, transcript | toolCalls + answers + turns }), written back as JSON Lines,",
    "streaming, with every input line in the output as kept or dropped with its reason.",
    "",
    "Commands:",
    ...names,
    "",
    "FILE is a UTF-8 JSON Lines file, or - for stdin (the default when stdin is not a terminal). Empty lines are",
    "ignored. Number ids are kept exactly, integers beyond 2^53 - 1 too, and written back as the line wrote them.",
    "Output goes to stdout, or with -o FILE into FILE, atomically. Run 'grpo-roc <command> --help' for its options.",
    "",
    ...EXIT_CODES_HELP,
    NUMBERS_HELP,
    "",
  ].join("\n");
}

function version(): string {
  // dist/cli.js sits beside package.json's folder; the version is read, not baked in, so it cannot go stale.
  const require = createRequire(import.meta.url);
  return (require("../package.json") as { version: string }).version;
}

export async function main(argv: readonly string[]): Promise<number> {
  // First: a signal at any point from here on removes what was made and exits 128 + n.
  installInterruptHandlers();
  // stderr closed early (`2>&1 | head`) must not turn a run into a crash; the exit code still tells.
  process.stderr.on("error", () => {});
  const [name, ...rest] = argv;
  if (name === "build-cuda") return buildCuda(rest);
  if (name === "help" && rest[0] === "build-cuda") {
    process.stdout.write(buildCudaHelp());
    return EXIT.ok;
  }
  if (name === "serve") return runServe(rest);
  if (name === "help" && rest[0] === "serve") {
    process.stdout.write(renderCommandHelp(SERVE_SPEC));
    return EXIT.ok;
  }
  if (name === undefined || name === "-h" || name === "--help" || name === "help") {
    const topic = name === "help" && rest[0] !== undefined ? findCommand(rest[0]) : undefined;
    if (topic === null) return EXIT.usage;
    process.stdout.write(topic === undefined ? mainHelp() : renderCommandHelp(topic.spec));
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  if (name === "--version" || name === "-V") {
    process.stdout.write(`${version()}\n`);
    return EXIT.ok;
  }
  const definition = findCommand(name);
  if (definition === null) return EXIT.usage;
  const prefix = `grpo-roc ${definition.spec.name}`;
  // --help wins over everything else on the line, even arguments that would not parse (`resample --keep --help`).
  if (asksForHelp(rest)) {
    process.stdout.write(renderCommandHelp(definition.spec));
    return EXIT.ok;
  }
  try {
    const { values, input } = parseCommandLine(definition.spec, rest);
    if (values.help === true) {
      process.stdout.write(renderCommandHelp(definition.spec));
      return EXIT.ok;
    }
    const extension = stringOption(values, "import");
    if (extension !== undefined) await loadExtension(extension);
    const command = definition.create(values);
    const settings = runSettings(definition.spec.name, values);
    const tally = await run(command, settings, input);
    if (!settings.quiet) process.stderr.write(`${tally.line()}\n`);
    return EXIT.ok;
  } catch (error) {
    return reportFailure(prefix, error);
  }
}

/** `grpo-roc serve`: no input file; requests on stdin until it ends. */
async function runServe(argv: readonly string[]): Promise<number> {
  if (asksForHelp(argv)) {
    process.stdout.write(renderCommandHelp(SERVE_SPEC));
    return EXIT.ok;
  }
  try {
    const { values, input } = parseCommandLine(SERVE_SPEC, argv);
    if (input !== undefined) throw new UsageError(`requests are read from stdin; received an argument: ${input}`);
    const extension = stringOption(values, "import");
    if (extension !== undefined) await loadExtension(extension);
    return await serve(serveSettings(values), COMMANDS);
  } catch (error) {
    return reportFailure("grpo-roc serve", error);
  }
}

function runSettings(command: string, values: Values): RunSettings {
  return {
    command,
    output: stringOption(values, "output"),
    summary: stringOption(values, "summary"),
    skipInvalid: values["skip-invalid"] === true,
    keptOnly: values["kept-only"] === true,
    includeRollout: values["include-rollout"] === true,
    repeatedGroups: repeatedGroupsFrom(values),
    maxLineBytes: maxLineBytesFrom(values),
    quiet: values.quiet === true,
    progress: values.progress === true,
  };
}

/** The message and exit code of a failed run, by the rule of EXIT; anything else is a bug and goes through. */
function reportFailure(prefix: string, error: unknown): number {
  if (error instanceof UsageError) {
    writeMessage(prefix, error.message);
    process.stderr.write(`Run '${prefix} --help' for the options.\n`);
    return EXIT.usage;
  }
  if (error instanceof InputError) {
    writeMessage(prefix, error.message);
    return EXIT.invalidInput;
  }
  if (error instanceof FileError || isSystemError(error)) {
    // A reader that went away (`| head`) is not worth a message; the exit code still says the output is incomplete.
    if ((error as NodeJS.ErrnoException).code !== "EPIPE") writeMessage(prefix, (error as Error).message);
    return EXIT.file;
  }
  throw error;
}

/** The command named `name`, or null after telling stderr that there is none. */
function findCommand(name: string): CommandDefinition | null {
  const definition = COMMANDS.find((c) => c.spec.name === name);
  if (definition !== undefined) return definition;
  const names = [...COMMANDS.map((c) => c.spec.name), SERVE_SPEC.name, "build-cuda"];
  writeMessage(
    "grpo-roc",
    `unknown command ${JSON.stringify(name)}; commands: ${names.join(", ")}. Run 'grpo-roc --help'.`,
  );
  return null;
}

/** -h or --help before any `--` (after it, arguments are file names). */
function asksForHelp(argv: readonly string[]): boolean {
  for (const arg of argv) {
    if (arg === "--") return false;
    if (arg === "-h" || arg === "--help") return true;
  }
  return false;
}

main(process.argv.slice(2)).then(
  (code) => {
    // On success let stdout drain and the process end by itself; on failure end now, whatever input is still open.
    if (code === EXIT.ok) process.exitCode = code;
    else process.exit(code);
  },
  (error: unknown) => {
    process.stderr.write(
      `grpo-roc: internal error (please report it): ` +
        `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(EXIT.internal);
  },
);
