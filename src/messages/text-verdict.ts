/**
 * The default classifier of a result's text, for the formats that carry no error flag (OpenAI Chat Completions and
 * Responses), and for the kind of failure behind a flagged error. It recognises common sandbox outputs, in this order:
 *
 * 1. rStar2-Agent's sandbox verdicts, as the strict transcript dialect reads them (src/roc/transcript.ts):
 *    `Tool call success` ok; `Tool call failure` with a `reason:` line that names a timeout (`worker_timeout`)
 *    a timeout, else an execution error; `Failed to decode tool call` and `Error when executing tool` parse errors.
 * 2. The MCP TypeScript SDK's refusal of a call's arguments or tool name, relayed as text: `MCP error -32602: …`,
 *    a parse error.
 * 3. Timeouts: "timed out", "time limit exceeded", "deadline exceeded", or a line that starts with an exception
 *    named for a timeout (`TimeoutError`, `subprocess.TimeoutExpired: …`).
 * 4. Execution errors: a Python traceback (`Traceback (most recent call last):`), or a line that starts with an
 *    exception's name, alone or before a colon (`NameError: …`, `ZeroDivisionError: …`, `Error: …`).
 *
 * A text in none of these shapes has no verdict. It never answers "infra_error": telling a sandbox's own outage apart
 * from the model's failure needs that sandbox's wording, which your `classify` has.
 */
import type { ToolOutcome } from "../roc/penalties.js";
import { sandboxVerdict } from "../roc/transcript.js";

/** Which rule of the text classifier spoke. */
export type TextRule = "sandbox-verdict" | "invalid-params-text" | "timeout-text" | "traceback" | "error-line";

/** An outcome, and the rule that gave it. */
export interface Verdict {
  readonly outcome: ToolOutcome;
  readonly rule: TextRule;
}

const MCP_INVALID_PARAMS = /^\s*MCP error -32602:/;
const TIMEOUT_PHRASE = /\btimed out\b|\btime ?limit exceeded\b|\bdeadline exceeded\b/i;
const TRACEBACK = "Traceback (most recent call last):";
/** A dotted name at the start of a line. Linear: nothing after the name can make the engine backtrack into it. */
const LEADING_NAME = /^[A-Za-z_][\w.]*/;

export function textVerdict(text: string): Verdict | undefined {
  const sandbox = sandboxVerdict(text);
  if (sandbox !== undefined) return { outcome: sandbox, rule: "sandbox-verdict" };
  if (MCP_INVALID_PARAMS.test(text)) return { outcome: "parse_error", rule: "invalid-params-text" };
  const exception = leadingException(text);
  if (TIMEOUT_PHRASE.test(text) || exception?.includes("Timeout")) {
    return { outcome: "timeout", rule: "timeout-text" };
  }
  if (text.includes(TRACEBACK)) return { outcome: "execution_error", rule: "traceback" };
  if (exception !== undefined) return { outcome: "execution_error", rule: "error-line" };
  return undefined;
}

/**
 * The first line that starts with an exception's name, alone or before a colon (`ValueError: …`, `Error: …`,
 * `subprocess.TimeoutExpired: …`): its name's last part, if it names an error, an exception or a timeout.
 */
function leadingException(text: string): string | undefined {
  for (const line of text.split("\n")) {
    const start = line.trimStart();
    const name = LEADING_NAME.exec(start)?.[0];
    if (name === undefined) continue;
    const rest = start.slice(name.length).trimEnd();
    if (rest !== "" && !rest.startsWith(":")) continue;
    const last = name.slice(name.lastIndexOf(".") + 1);
    // A class name, capitalised: `timeout: 30` is a setting printed, not an exception.
    if (
      /^[A-Z]\w*(?:Error|Exception)$/.test(last) ||
      (/^[A-Z]\w*$/.test(last) && last.includes("Timeout")) ||
      last === "Error"
    )
      return last;
  }
  return undefined;
}
