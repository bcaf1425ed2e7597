import * as z from "zod/mini";
import { pure } from "../pure.js";
import { TOOL_OUTCOMES, type ToolOutcome } from "../roc/penalties.js";
import { ANSWER_MARKUPS, type AnswerExtractor } from "./answers.js";

/**
 * The conversation records qualityFromMessages reads: "openai-chat" (Chat Completions messages), "openai-responses"
 * (Responses API items), "anthropic" (Messages API messages), "mcp" (an MCP client's JSON-RPC log), "ai-sdk"
 * (Vercel AI SDK 5 model messages or step results).
 */
export const MESSAGE_FORMATS = ["openai-chat", "openai-responses", "anthropic", "mcp", "ai-sdk"] as const;
/** A conversation record's format (see MESSAGE_FORMATS). */
export type MessageFormat = (typeof MESSAGE_FORMATS)[number];

/** A call as your `classify` sees it. */
export interface MessageToolCall {
  /** The tool's name. */
  readonly name: string;
  /** The call's id (a JSON-RPC request id in an MCP log: a string or a number). */
  readonly id: string | number;
  /**
   * The arguments: parsed where the format records a JSON string (OpenAI), the text itself where that text is not
   * JSON or the tool takes free text, else as recorded.
   */
  readonly arguments: unknown;
  /** The 0-based index of the message (item, step, log entry) that holds the call. */
  readonly index: number;
  /** Where the call is: `messages[1].tool_calls[0]`. */
  readonly path: string;
}

/** A result as your `classify` sees it. */
export interface MessageToolResult {
  /** The result's text: its text parts, one a line; JSON for a value; a JSON-RPC error's message. */
  readonly text: string;
  /**
   * The format's own verdict: true for `is_error` / `isError`, an AI SDK `error-*` output or `tool-error` part, a
   * JSON-RPC error or an AI SDK denial; false where the format has the flag and it is not set; undefined where the
   * format has none (OpenAI) and for an MCP cancellation.
   */
  readonly isError: boolean | undefined;
  /** The result as recorded: the tool message, the block, the part, the JSON-RPC response or notification. */
  readonly raw: unknown;
  /** The 0-based index of the message that holds the result. */
  readonly index: number;
  /** Where the result is: `messages[2]`, `messages[2].content[0]`. */
  readonly path: string;
}

/**
 * Your classifier, consulted for every call after the checks of the call itself (arguments, tool name, schema) and
 * before the format's verdict and the text classifier. `result` is undefined for a call the record leaves unanswered.
 * Return an outcome ("infra_error" where your sandbox's own failure shows), or undefined to leave the call to the
 * default rules.
 */
export type ClassifyToolCall = (
  result: MessageToolResult | undefined,
  call: MessageToolCall,
) => ToolOutcome | undefined;

/**
 * A tool definition, in its provider's shape or the neutral one: `{ name, parameters? }` (neutral; OpenAI Responses
 * function tools), `{ type: "function", function: { name, parameters? } }` (OpenAI Chat Completions),
 * `{ type: "custom", custom: { name } }` or `{ type: "custom", name }` (OpenAI custom tools), `{ name, input_schema }`
 * (Anthropic), `{ name, inputSchema }` (MCP). The schema is JSON Schema (see qualityFromMessages for the keywords
 * checked). For the AI SDK, whose tools hold zod schemas, give `{ name, parameters: z.toJSONSchema(schema) }`.
 */
export type ToolDefinition = object;

const isFunction = (value: unknown) => typeof value === "function";

/** messagesOptionsSchema's fields: a const of its own, so that the published types keep each field's comment. */
const messagesOptionsShape = /* @__PURE__ */ pure(() => ({
  /** The record's format; default: told by its shape (an error when the record mixes formats). */
  format: z.optional(z.enum(MESSAGE_FORMATS)),
  /**
   * The tools the rollout could call. Given, a call to a tool not listed, or whose arguments its parameter schema
   * refuses, is a parse error.
   */
  tools: z.optional(
    z.custom<readonly ToolDefinition[]>(Array.isArray, { error: "expected an array of tool definitions" }),
  ),
  /** Your classifier of each call (see ClassifyToolCall); it may return "infra_error", the default rules never do. */
  classify: z.optional(z.custom<ClassifyToolCall>(isFunction, { error: "expected a function" })),
  /**
   * How answers are counted over the assistant's text: "tags" (default) `<answer>…</answer>` as the paper;
   * "boxed" `\boxed{…}`; or your own AnswerExtractor.
   */
  answer: z._default(
    z.union([
      z.enum(ANSWER_MARKUPS),
      z.custom<AnswerExtractor>(isFunction, { error: `expected "tags", "boxed" or a function` }),
    ]),
    "tags",
  ),
  /**
   * The outcome of a call the record leaves unanswered (cut at the length limit, or never run): default
   * "execution_error"; "omit" leaves it out of `toolCalls` (as a transcript's unanswered calls are).
   */
  unanswered: z._default(z.enum([...TOOL_OUTCOMES, "omit"] as const), "execution_error"),
}));

/** Checks and fills in the options of qualityFromMessages (MessagesOptions). Unknown keys are errors. */
export const messagesOptionsSchema: z.ZodMiniObject<typeof messagesOptionsShape, z.core.$strict> =
  /* @__PURE__ */ z.strictObject(messagesOptionsShape);

/** The options of qualityFromMessages and inspectMessages, every field optional. */
export type MessagesOptions = z.input<typeof messagesOptionsSchema>;
/** The options with their defaults filled in. */
export type ResolvedMessagesOptions = z.output<typeof messagesOptionsSchema>;
