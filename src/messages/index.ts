/**
 * RoC's quality inputs read from a conversation record as an agent framework keeps it: each tool call's outcome, the
 * answers, the assistant turns and the answer format, for OpenAI Chat Completions messages, OpenAI Responses API
 * items, Anthropic Messages, an MCP client's JSON-RPC log, and Vercel AI SDK 5 model messages or step results.
 */
import { invalid, parseOrThrow, ValidationError } from "../errors.js";
import { describeValue } from "../numeric.js";
import type { ToolOutcome } from "../roc/penalties.js";
import type { ToolCall } from "../roc/schema.js";
import { readAiSdk } from "./ai-sdk.js";
import { readAnthropic } from "./anthropic.js";
import { type ClassificationRule, classifyCall } from "./classify.js";
import type { Conversation } from "./conversation.js";
import { countAnswers } from "./answers.js";
import { detectFormat } from "./detect.js";
import { readMcp } from "./mcp.js";
import { readOpenAiChat } from "./openai-chat.js";
import { readOpenAiResponses } from "./openai-responses.js";
import { type MessageFormat, type MessagesOptions, messagesOptionsSchema } from "./options.js";
import { pairCalls } from "./pairing.js";
import { readToolDefinitions } from "./tools.js";

/**
 * The quality RoC reads, ready to spread into a Rollout: `{ groupId, reward, ...qualityFromMessages(messages) }`.
 * An MCP log holds tool calls only: there `answers`, `turns` and `formatOk` are undefined, and RoC refuses the rollout
 * until you give the answers and turns from the conversation your agent keeps beside the log.
 */
export interface MessagesQuality {
  /** Every tool call, in record order, with its outcome (an unanswered call is left out under `unanswered: "omit"`). */
  readonly toolCalls: readonly ToolCall[];
  /** Answers in the assistant's text over every turn (`options.answer`); undefined for an MCP log. */
  readonly answers: number | undefined;
  /** Assistant turns: assistant messages, Responses API model responses, AI SDK steps; undefined for an MCP log. */
  readonly turns: number | undefined;
  /** false when the answer markup is malformed (unbalanced `<answer>` tags, an unclosed `\boxed{`). */
  readonly formatOk: boolean | undefined;
}

/** One tool call as read and classified: what to look at when an outcome surprises you. */
export interface ToolCallDetail {
  /** The tool's name. */
  readonly name: string;
  /** The call's id. */
  readonly id: string | number;
  /** How the call ended; undefined for an unanswered call left out (`unanswered: "omit"`). */
  readonly outcome: ToolOutcome | undefined;
  /** The rule that gave the outcome (see ClassificationRule). */
  readonly rule: ClassificationRule;
  /** What the rule found, where it says more than its name: the JSON error, the schema's issue, the unknown name. */
  readonly detail: string | undefined;
  /** The 0-based index of the message (item, step, log entry) that holds the call. */
  readonly callIndex: number;
  /** Where the call is: `messages[1].tool_calls[0]`. */
  readonly callPath: string;
  /** The index of the message that holds its result; undefined when the record has none. */
  readonly resultIndex: number | undefined;
  /** Where its result is; undefined when the record has none. */
  readonly resultPath: string | undefined;
}

/** The quality, with the format it was read as and every call's detail. */
export interface MessagesReport {
  /** The format the record was read as: `options.format`, or the one its fields tell. */
  readonly format: MessageFormat;
  /** The quality RoC reads (qualityFromMessages returns this). */
  readonly quality: MessagesQuality;
  /** Every tool call in record order, unanswered ones left out of `quality.toolCalls` included. */
  readonly calls: readonly ToolCallDetail[];
}

const READERS: Record<MessageFormat, (messages: readonly unknown[]) => Conversation> = {
  "openai-chat": readOpenAiChat,
  "openai-responses": readOpenAiResponses,
  anthropic: readAnthropic,
  mcp: readMcp,
  "ai-sdk": readAiSdk,
};

/**
 * RoC's quality inputs from one rollout's conversation: `{ toolCalls: [{ outcome }], answers, turns, formatOk }`.
 * The format is `options.format` or told by the record's fields; each call is classified by the rules of
 * ClassificationRule, answers are counted over the assistant's text, and turns are assistant turns. See
 * inspectMessages for the same reading with every call's detail.
 *
 * @example qualityFromMessages([
 *   { role: "user", content: "2 + 2?" },
 *   { role: "assistant", content: null,
 *     tool_calls: [{ id: "c1", type: "function", function: { name: "python", arguments: '{"code":"2+2"}' } }] },
 *   { role: "tool", tool_call_id: "c1", content: "4" },
 *   { role: "assistant", content: "<answer>4</answer>" },
 * ]) // => { toolCalls: [{ outcome: "ok" }], answers: 1, turns: 2, formatOk: true }
 * @throws ValidationError naming the message's index and field for a malformed record, one that mixes formats, or
 *   bad options.
 */
export function qualityFromMessages(messages: readonly unknown[], options: MessagesOptions = {}): MessagesQuality {
  return inspectMessages(messages, options).quality;
}

/**
 * qualityFromMessages, with the format read and each call's name, id, outcome, the rule that gave it, and where the
 * call and its result are in the record.
 *
 * @throws ValidationError as qualityFromMessages.
 */
export function inspectMessages(messages: readonly unknown[], options: MessagesOptions = {}): MessagesReport {
  const resolved = parseOrThrow(messagesOptionsSchema, options, "options");
  if (!Array.isArray(messages)) {
    throw invalid("messages", `expected an array of messages, received ${describeValue(messages)}`);
  }
  const tools = resolved.tools === undefined ? undefined : readToolDefinitions(resolved.tools, "options.tools");
  // Dense: a hole in a sparse array is read as undefined, and refused as a message, not passed over.
  const records = Array.from(messages);
  const detected = resolved.format === undefined ? detectFormat(records) : { format: resolved.format, told: true };
  const conversation = readAs(detected.format, records, detected.told);
  const context = { tools, classify: resolved.classify, unanswered: resolved.unanswered };
  const calls = pairCalls(conversation.events).map((pair): ToolCallDetail => {
    const { outcome, rule, detail } = classifyCall(pair, context);
    const { call, result } = pair;
    return {
      name: call.name,
      id: call.id,
      outcome,
      rule,
      detail,
      callIndex: call.index,
      callPath: call.path,
      resultIndex: result?.index,
      resultPath: result?.path,
    };
  });
  const toolCalls = calls.flatMap(({ outcome }) => (outcome === undefined ? [] : [{ outcome }]));
  const turns = conversation.turns;
  if (turns === undefined) {
    return {
      format: detected.format,
      quality: { toolCalls, answers: undefined, turns: undefined, formatOk: undefined },
      calls,
    };
  }
  const { answers, formatOk } = countAnswers(turns, resolved.answer);
  return { format: detected.format, quality: { toolCalls, answers, turns: turns.length, formatOk }, calls };
}

/** Reads the record; where no field told its format, an error says it was read as the default one. */
function readAs(format: MessageFormat, messages: readonly unknown[], told: boolean): Conversation {
  try {
    return READERS[format](messages);
  } catch (error) {
    if (told || !(error instanceof ValidationError)) throw error;
    const note = " (no field of the record tells its format, so it was read as openai-chat: pass options.format)";
    throw new ValidationError(error.issues.map((issue) => ({ path: issue.path, message: issue.message + note })));
  }
}

export { ANSWER_MARKUPS } from "./answers.js";
export type { AnswerCount, AnswerExtractor, AnswerMarkup } from "./answers.js";
export type { ClassificationRule } from "./classify.js";
export { MESSAGE_FORMATS, messagesOptionsSchema } from "./options.js";
export type {
  ClassifyToolCall,
  MessageFormat,
  MessagesOptions,
  MessageToolCall,
  MessageToolResult,
  ToolDefinition,
} from "./options.js";
