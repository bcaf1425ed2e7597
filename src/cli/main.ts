#!/usr/bin/env node
import { createRequire } from "node:module";
import { parseCommandLine, renderCommandHelp, stringOption, UsageError, wrap } from "./args.js";
import { advantagesCommand } from "./commands/advantages.js";
import { penaltiesCommand } from "./commands/penalties.js";
import { pipelineCommand } from "./commands/pipeline.js";
import { resampleCommand } from "./commands/resample.js";
import type { CommandDefinition } from "./commands/types.js";
import { loadExtension } from "./extensions.js";
import { openInput } from "./input.js";
import { installInterruptHandlers } from "./interrupt.js";
import { InputError } from "./lines.js";
import { repeatedGroupsFrom } from "./options.js";
import { OutputError } from "./output.js";
import { run } from "./run.js";

const COMMANDS: readonly CommandDefinition[] = [penaltiesCommand, resampleCommand, advantagesCommand, pipelineCommand];

const EXIT = { ok: 0, invalidInput: 1, usage: 2, io: 3 } as const;

function mainHelp(): string {
  const names = COMMANDS.map(
    (c) => `  ${c.spec.name.padEnd(12)}${wrap(c.spec.summary, 86).replace(/\n/g, `\n${" ".repeat(14)}`)}`,
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
    "FILE is a JSON Lines file, or - for stdin (the default when stdin is not a terminal). Empty lines are ignored.",
    "Output goes to stdout, or with -o FILE into FILE, atomically. Run 'grpo-roc <command> --help' for its options.",
    "",
    "Exit codes: 0 ok, 1 invalid input (a bad line, named by its number and field), 2 usage error, 3 I/O error,",
    "130 interrupted (the -o destination is left as it was).",
    "",
  ].join("\n");
}

function version(): string {
  // dist/cli.js sits beside package.json's folder; the version is read, not baked in, so it cannot go stale.
  const require = createRequire(import.meta.url);
  return (require("../package.json") as { version: string }).version;
}

export async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
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
    const settings = {
      command: definition.spec.name,
      output: stringOption(values, "output"),
      summary: stringOption(values, "summary"),
      skipInvalid: values["skip-invalid"] === true,
      keptOnly: values["kept-only"] === true,
      includeRollout: values["include-rollout"] === true,
      repeatedGroups: repeatedGroupsFrom(values),
      quiet: values.quiet === true,
      progress: values.progress === true,
    };
    installInterruptHandlers();
    const tally = await run(command, settings, openInput(input));
    if (!settings.quiet) process.stderr.write(`${tally.line()}\n`);
    return EXIT.ok;
  } catch (error) {
    if (error instanceof UsageError) {
      process.stderr.write(`${prefixLines(prefix, error.message)}\nRun '${prefix} --help' for the options.\n`);
      return EXIT.usage;
    }
    if (error instanceof InputError) {
      process.stderr.write(`${prefixLines(prefix, error.message)}\n`);
      return EXIT.invalidInput;
    }
    if (error instanceof OutputError || isSystemError(error)) {
      // A reader that went away (`| head`) is not worth a message; the exit code still says the output is incomplete.
      if ((error as NodeJS.ErrnoException).code !== "EPIPE" && !/EPIPE/.test((error as Error).message)) {
        process.stderr.write(`${prefix}: ${(error as Error).message}\n`);
      }
      return EXIT.io;
    }
    throw error;
  }
}

/** The command named `name`, or null after telling stderr that there is none. */
function findCommand(name: string): CommandDefinition | null {
  const definition = COMMANDS.find((c) => c.spec.name === name);
  if (definition !== undefined) return definition;
  process.stderr.write(
    `grpo-roc: unknown command ${JSON.stringify(name)}; commands: ${COMMANDS.map((c) => c.spec.name).join(", ")}. ` +
      `Run 'grpo-roc --help'.\n`,
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

function prefixLines(prefix: string, message: string): string {
  return message
    .split("\n")
    .map((line) => `${prefix}: ${line}`)
    .join("\n");
}

function isSystemError(error: unknown): boolean {
  return (
    error instanceof Error &&
    typeof (error as NodeJS.ErrnoException).code === "string" &&
    typeof (error as NodeJS.ErrnoException).syscall === "string"
  );
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
    process.exit(70);
  },
);
