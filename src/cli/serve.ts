/**
 * `grpo-roc serve`: one long-lived process that answers requests, JSON Lines on stdin and stdout, so that a trainer
 * in another language pays Node's start once. A request is one line, `{ id, command, rollouts, options }`; its
 * response is the records the command writes for those rollouts, one line each, then a summary line, or instead a
 * single error line. Every response line is `{ "id": <the request's id>, "type": "record" | "summary" | "error",
 * … }`.
 * Requests are independent: each is run as the command runs over a file whose lines are the request's rollouts.
 */
import { performance } from "node:perf_hooks";
import type { ValidationIssue } from "../errors.js";
import { type CommandSpec, numberOption, UsageError, type Values } from "./args.js";
import type { CommandDefinition } from "./commands/types.js";
import { EXIT, fileError, isSystemError } from "./exit.js";
import { type LineKind, MAX_LINE_BYTES_LIMIT, type RawLine, readLines } from "./line-reader.js";
import { InputError, type LineIssue } from "./lines.js";
import { optionIssues, OptionsError, valuesFromOptions } from "./serve-options.js";
import { NO_ID, parseRequest, RequestError, type ServeRequest } from "./serve-request.js";
import { ResponseBuffer } from "./serve-response.js";
import { type PassInput, type RunSettings, runPasses } from "./run.js";
import { repeatedGroupsFrom } from "./options.js";

/**
 * 256 MiB. A step of 512 prompts × 32 structured rollouts is about 2 MB; one of 16,384 rStar2-sized transcripts
 * (30 KB each) is 500 MB, more than this and near the longest line Node can hold: it goes as several requests of
 * whole groups.
 */
export const DEFAULT_MAX_REQUEST_BYTES = 256 * 1024 * 1024;

const REQUEST_LINE: LineKind = { noun: "request", flag: "--max-request-bytes" };

export const SERVE_SPEC: CommandSpec = {
  name: "serve",
  usage: "[--max-request-bytes N] [--import MODULE]",
  summary:
    "Answer requests on stdin, one JSON line each, with the records of pipeline, resample, advantages or " +
    "penalties on stdout: one process for a whole training run.",
  description: [
    'Request: { "id": any JSON (echoed), "command": "pipeline" | "resample" | "advantages" | "penalties", ' +
      '"rollouts": [ rollout, … ], "options": { … } }. The options are the command\'s flags in snake_case, as ' +
      'JSON: { "keep": 16, "seed": 3, "mode": "reference", "keep_equal_rewards": true, "failure_kinds": ' +
      '["timeout"], "kept_only": true }; a flag left out has its default, a boolean flag is true or false.',
    'Response, one line each, every line with the request\'s "id" and a "type": { "type": "record", "record": … } ' +
      "for each record the command writes for those rollouts (line is the rollout's 1-based position in the " +
      'request), then { "type": "summary", "summary": …, "elapsedMs": … } with the figures of --summary; or ' +
      "instead " +
      '{ "type": "error", "error": { "message", "issues": [ { "path", "message" } ] } } for a request that is not ' +
      "JSON, not a request, has a bad option or a bad rollout (rollouts[3].toolCalls[0].outcome), or is over " +
      "--max-request-bytes. The server then reads the next request; a request never changes another's result.",
    "Rollout fields may be written in snake_case (group_id, tool_calls, format_ok), here and in every command. " +
      "Empty lines are ignored. End of input ends the server (exit 0). A Python client ships in the package: " +
      "python/grpo_roc_client.py.",
  ],
  sections: [
    {
      title: "Options",
      options: [
        {
          name: "max-request-bytes",
          type: "string",
          arg: "N",
          help:
            `the longest request line, in bytes (default ${DEFAULT_MAX_REQUEST_BYTES}, 256 MiB; at most ` +
            `${MAX_LINE_BYTES_LIMIT}): a longer one gets an error response, unread, in bounded memory`,
        },
        {
          name: "import",
          type: "string",
          arg: "MODULE",
          help:
            "load MODULE first and call its default export with grpo-roc's API (to register an advantage " +
            "estimator that requests name)",
        },
        { name: "help", short: "h", type: "boolean", help: "show this help" },
      ],
    },
  ],
  examples: [
    `echo '{"id":1,"command":"advantages","rollouts":[{"group_id":"q","reward":1},{"group_id":"q","reward":0}]}' | ` +
      "grpo-roc serve",
  ],
  exitCodes: [
    "Exit codes: 0 end of input, 2 usage error, 3 stdin cannot be read or stdout is closed (the client is gone; no",
    "message), 128+n on signal n (130 SIGINT, 143 SIGTERM), 70 internal error. A bad request is an error response,",
    "not an exit.",
  ],
};

export interface ServeSettings {
  readonly maxRequestBytes: number;
}

export function serveSettings(values: Values): ServeSettings {
  return {
    maxRequestBytes:
      numberOption(values, "max-request-bytes", { min: 1, max: MAX_LINE_BYTES_LIMIT, integer: true }) ??
      DEFAULT_MAX_REQUEST_BYTES,
  };
}

/**
 * Serves requests until stdin ends, one at a time: the next line is read only once a response is written, so a
 * client that sends faster than the server answers is held back by the pipe. Resolves with the exit code.
 */
export async function serve(settings: ServeSettings, commands: readonly CommandDefinition[]): Promise<number> {
  const stdout = new Responses();
  for await (const raw of requestLines(settings.maxRequestBytes)) {
    if ("text" in raw && raw.text.trim() === "") continue;
    await stdout.write(await respond(raw, commands));
  }
  return EXIT.ok;
}

async function* requestLines(maxRequestBytes: number): AsyncGenerator<RawLine> {
  try {
    yield* readLines(process.stdin, maxRequestBytes, () => {}, REQUEST_LINE);
  } catch (error) {
    throw isSystemError(error) ? fileError("cannot read stdin", error) : error;
  }
}

/** stdout, written one response at a time; a write that fails (EPIPE: the client is gone) rejects. */
class Responses {
  private failure: Error | undefined;

  constructor() {
    // Without a listener a failed write would be an uncaught exception; the write's callback reports it.
    process.stdout.on("error", (error) => {
      this.failure ??= error;
    });
  }

  /**
   * Writes a response; resolves once the operating system has all of it. Its pieces are queued at once (they are
   * already in memory), so that the pipe never waits between two of them.
   */
  write(response: ResponseBuffer): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const pieces = response.pieces();
      if (pieces.length === 0) resolve();
      pieces.forEach((piece, k) => {
        const last = k === pieces.length - 1;
        process.stdout.write(piece, (error) => {
          if (error) reject(error);
          else if (last) resolve();
        });
      });
    });
  }
}

/** The response to one request line. */
async function respond(raw: RawLine, commands: readonly CommandDefinition[]): Promise<ResponseBuffer> {
  const started = performance.now();
  if ("problem" in raw) return errorLine(new RequestError(NO_ID, [{ path: "", message: raw.problem }]));
  let request: ServeRequest;
  try {
    request = parseRequest(
      raw.text,
      commands.map((c) => c.spec.name),
    );
  } catch (error) {
    if (error instanceof RequestError) return errorLine(error);
    throw error;
  }
  // parseRequest accepts only the commands' names.
  const definition = commands.find((c) => c.spec.name === request.command)!;
  try {
    return await run(request, definition, started);
  } catch (error) {
    const issues = requestIssues(error, definition.spec);
    if (issues === undefined) throw error;
    return errorLine(new RequestError(request.id, issues));
  }
}

/** Runs the request's command over its rollouts; its records and summary as response lines. */
async function run(request: ServeRequest, definition: CommandDefinition, started: number): Promise<ResponseBuffer> {
  const values = valuesFromOptions(definition.spec, request.options);
  const command = definition.create(values);
  const settings = runSettings(request.command, values);
  const head = `{"id":${request.id},"type":`;
  const response = new ResponseBuffer();
  const sink = {
    write(record: string): undefined {
      response.append(`${head}"record","record":${record}}\n`);
      return undefined;
    },
  };
  const tally = await runPasses(command, settings, rolloutLines(request, settings.skipInvalid), sink);
  const elapsedMs = Math.round((performance.now() - started) * 1000) / 1000;
  response.append(`${head}"summary","summary":${JSON.stringify(tally.toJSON())},"elapsedMs":${elapsedMs}}\n`);
  return response;
}

function runSettings(command: string, values: Values): RunSettings {
  return {
    command,
    output: undefined,
    summary: undefined,
    skipInvalid: values["skip-invalid"] === true,
    keptOnly: values["kept-only"] === true,
    includeRollout: values["include-rollout"] === true,
    repeatedGroups: repeatedGroupsFrom(values),
    maxLineBytes: MAX_LINE_BYTES_LIMIT,
    // Nothing on stderr: what a request did is in its response.
    quiet: true,
    progress: false,
  };
}

/**
 * The rollouts as the lines of a file. A rollout that is not JSON makes the request not JSON: it is refused whole
 * even under skip_invalid (without it, the rollout's own error refuses it), so that check runs only then.
 */
function rolloutLines(request: ServeRequest, skipInvalid: boolean): PassInput {
  const { rollouts } = request;
  return {
    size: undefined,
    *lines() {
      for (let k = 0; k < rollouts.count; k++) {
        const text = rollouts.text(k);
        if (skipInvalid) checkJson(text, k, request.id);
        yield { text };
      }
    },
  };
}

function checkJson(text: string, k: number, id: string): void {
  try {
    JSON.parse(text);
  } catch (error) {
    throw new RequestError(id, [{ path: `rollouts[${k}]`, message: `not JSON: ${(error as Error).message}` }]);
  }
}

/** What is wrong with a request, for an error response; undefined for an error that is a bug. */
function requestIssues(error: unknown, spec: CommandSpec): readonly ValidationIssue[] | undefined {
  if (error instanceof RequestError || error instanceof OptionsError) return error.issues;
  if (error instanceof UsageError) return optionIssues(error, spec);
  if (error instanceof InputError) return error.issues.map(rolloutIssue);
  return undefined;
}

/** An issue of line n as one of rollouts[n − 1]; a whole group's as rollouts[first:last] (a Python slice). */
function rolloutIssue(issue: LineIssue): ValidationIssue {
  const [first, last] = issue.lines;
  const where = first === last ? `rollouts[${first - 1}]` : `rollouts[${first - 1}:${last}]`;
  return {
    path: issue.path === "" ? where : `${where}.${issue.path}`,
    message: issue.group === undefined ? issue.message : `group ${issue.group}: ${issue.message}`,
  };
}

function errorLine({ id, message, issues }: RequestError): ResponseBuffer {
  const response = new ResponseBuffer();
  response.append(`{"id":${id},"type":"error","error":${JSON.stringify({ message, issues })}}\n`);
  return response;
}
