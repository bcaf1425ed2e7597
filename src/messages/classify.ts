/**
 * Each call's outcome, by the first rule that applies, in this order:
 *
 * 1. What the model sent. Arguments written as JSON text (OpenAI) that are not valid JSON: "arguments-not-json". A
 *    call the format itself marks unparseable (AI SDK `invalid: true`): "invalid-call". With `options.tools`: a
 *    name not defined, "unknown-tool"; arguments the tool's parameter schema refuses, "schema". All parse errors,
 *    whatever the result says: a parse error takes precedence over the format's error flag.
 * 2. Your `classify`, when it returns an outcome: "classify".
 * 3. No result in the record: `options.unanswered` (default execution_error), "no-result".
 * 4. The format's verdict. A JSON-RPC error: -32602 (invalid params: an unknown tool or bad arguments, in the MCP
 *    specification) a parse error, "invalid-params"; -32001 (the TypeScript SDK's request timeout) a timeout,
 *    "request-timeout"; any other code an execution error, "jsonrpc-error". An MCP cancellation: a timeout,
 *    "cancelled". An AI SDK denial: an execution error, "execution-denied". An error flag (`is_error`, `isError`,
 *    `error-text` / `error-json`, `tool-error`): an execution error, "error-flag", unless the text classifier finds
 *    a timeout or a parse error in its text (then that, with the text rule). No error flag where the format has
 *    one: ok, "no-error-flag".
 * 5. Formats without an error flag (OpenAI): the text classifier's verdict (see text-verdict.ts), else ok,
 *    "no-error-found".
 */
import { invalid } from "../errors.js";
import { describeValue } from "../numeric.js";
import { TOOL_OUTCOMES, type ToolOutcome } from "../roc/penalties.js";
import type { CallEvent, ResultEvent } from "./conversation.js";
import type { ClassifyToolCall, MessageToolCall, MessageToolResult } from "./options.js";
import type { PairedCall } from "./pairing.js";
import { type TextRule, textVerdict } from "./text-verdict.js";
import type { ToolSpec } from "./tools.js";

/**
 * The rule that gave a call its outcome, in the order they apply: "arguments-not-json", "invalid-call",
 * "unknown-tool", "schema" (what the model sent); "classify" (yours); "no-result"; "invalid-params",
 * "request-timeout", "jsonrpc-error", "cancelled", "execution-denied", "error-flag", "no-error-flag" (the format's
 * verdict); "sandbox-verdict", "invalid-params-text", "timeout-text", "traceback", "error-line", "no-error-found"
 * (the text classifier).
 */
export type ClassificationRule =
  | "arguments-not-json"
  | "invalid-call"
  | "unknown-tool"
  | "schema"
  | "classify"
  | "no-result"
  | "invalid-params"
  | "request-timeout"
  | "jsonrpc-error"
  | "cancelled"
  | "execution-denied"
  | "error-flag"
  | "no-error-flag"
  | "no-error-found"
  | TextRule;

/** A call's outcome (undefined: an unanswered call left out), the rule that gave it, and what the rule found. */
export interface Classification {
  readonly outcome: ToolOutcome | undefined;
  readonly rule: ClassificationRule;
  readonly detail: string | undefined;
}

export interface ClassifyContext {
  readonly tools: ReadonlyMap<string, ToolSpec> | undefined;
  readonly classify: ClassifyToolCall | undefined;
  readonly unanswered: ToolOutcome | "omit";
}

const OUTCOMES: ReadonlySet<unknown> = /* @__PURE__ */ new Set(TOOL_OUTCOMES);

export function classifyCall({ call, result }: PairedCall, context: ClassifyContext): Classification {
  const parsed = parseArguments(call);
  const callCheck = checkCall(call, parsed, context.tools);
  if (callCheck !== undefined) return callCheck;
  if (context.classify !== undefined) {
    const outcome = context.classify(result === undefined ? undefined : resultView(result), callView(call, parsed));
    if (outcome !== undefined) {
      if (!OUTCOMES.has(outcome)) {
        throw invalid(
          "options.classify",
          `returned ${describeValue(outcome)} for the call at ${call.path}; expected one of ` +
            `${TOOL_OUTCOMES.join(", ")}, or undefined`,
        );
      }
      return { outcome, rule: "classify", detail: undefined };
    }
  }
  if (result === undefined) {
    const outcome = context.unanswered === "omit" ? undefined : context.unanswered;
    return { outcome, rule: "no-result", detail: undefined };
  }
  return formatVerdict(result);
}

type Parsed = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: string };

function parseArguments(call: CallEvent): Parsed {
  const args = call.arguments;
  if (args.kind === "value") return { ok: true, value: args.value };
  if (args.kind === "free-text") return { ok: true, value: args.text };
  try {
    return { ok: true, value: JSON.parse(args.text) };
  } catch (error) {
    return { ok: false, error: (error as Error).message };
  }
}

function checkCall(
  call: CallEvent,
  parsed: Parsed,
  tools: ReadonlyMap<string, ToolSpec> | undefined,
): Classification | undefined {
  if (!parsed.ok) return { outcome: "parse_error", rule: "arguments-not-json", detail: parsed.error };
  if (call.invalid) return { outcome: "parse_error", rule: "invalid-call", detail: undefined };
  if (tools === undefined) return undefined;
  const tool = tools.get(call.name);
  if (tool === undefined) {
    return { outcome: "parse_error", rule: "unknown-tool", detail: `no tool named ${JSON.stringify(call.name)}` };
  }
  // Free text (an OpenAI custom tool's input) has a grammar, not a JSON schema.
  const issue = call.arguments.kind === "free-text" ? undefined : tool.check?.(parsed.value);
  return issue === undefined ? undefined : { outcome: "parse_error", rule: "schema", detail: issue };
}

function formatVerdict(result: ResultEvent): Classification {
  const signal = result.signal;
  switch (signal.kind) {
    case "jsonrpc-error":
      if (signal.code === -32602) return verdict("parse_error", "invalid-params");
      if (signal.code === -32001) return verdict("timeout", "request-timeout");
      return verdict("execution_error", "jsonrpc-error");
    case "cancelled":
      return verdict("timeout", "cancelled");
    case "denied":
      return verdict("execution_error", "execution-denied");
    case "flag": {
      if (!signal.error) return verdict("ok", "no-error-flag");
      const text = textVerdict(result.text);
      return text !== undefined && (text.outcome === "timeout" || text.outcome === "parse_error")
        ? verdict(text.outcome, text.rule)
        : verdict("execution_error", "error-flag");
    }
    case "text": {
      const text = textVerdict(result.text);
      return text === undefined ? verdict("ok", "no-error-found") : verdict(text.outcome, text.rule);
    }
  }
}

function verdict(outcome: ToolOutcome, rule: ClassificationRule): Classification {
  return { outcome, rule, detail: undefined };
}

function callView(call: CallEvent, parsed: Parsed): MessageToolCall {
  const args = parsed.ok ? parsed.value : call.arguments.kind === "value" ? call.arguments.value : call.arguments.text;
  return { name: call.name, id: call.id, arguments: args, index: call.index, path: call.path };
}

function resultView(result: ResultEvent): MessageToolResult {
  const signal = result.signal;
  const isError =
    signal.kind === "flag"
      ? signal.error
      : signal.kind === "jsonrpc-error" || signal.kind === "denied"
        ? true
        : undefined;
  return { text: result.text, isError, raw: result.raw, index: result.index, path: result.path };
}
