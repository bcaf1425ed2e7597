/**
 * A record's format, told by fields only one format writes: `jsonrpc` (MCP); `tool_calls` or `tool_call_id`
 * (OpenAI Chat Completions); an item `type` other than "message" (OpenAI Responses); a record with `content` and no
 * `role` (an AI SDK step result); a content part only one format has (`tool_use`, `tool_result`, `thinking`: Anthropic;
 * `tool-call`, `tool-result`, `tool-error`, `reasoning`: the AI SDK; `output_text`, `input_text`: Responses;
 * `image_url`, `input_audio`: Chat Completions). Two formats in one record are an error naming both places. A record
 * with no such field at all (plain text messages, which every chat format writes alike) is read as OpenAI Chat
 * Completions.
 */
import { invalid } from "../errors.js";
import type { MessageFormat } from "./options.js";

interface Marker {
  readonly format: MessageFormat;
  /** The field that tells: `messages[3].tool_calls`. */
  readonly path: string;
}

const FORMAT_NAMES: Record<MessageFormat, string> = {
  "openai-chat": "OpenAI Chat Completions",
  "openai-responses": "OpenAI Responses API",
  anthropic: "Anthropic Messages",
  mcp: "MCP (JSON-RPC)",
  "ai-sdk": "Vercel AI SDK",
};

const PART_FORMATS: Readonly<Record<string, MessageFormat>> = {
  tool_use: "anthropic",
  tool_result: "anthropic",
  thinking: "anthropic",
  redacted_thinking: "anthropic",
  server_tool_use: "anthropic",
  "tool-call": "ai-sdk",
  "tool-result": "ai-sdk",
  "tool-error": "ai-sdk",
  reasoning: "ai-sdk",
  output_text: "openai-responses",
  input_text: "openai-responses",
  image_url: "openai-chat",
  input_audio: "openai-chat",
};

/** The record's format, and whether a field told it (false: no field did, and it is read as OpenAI Chat). */
export function detectFormat(messages: readonly unknown[]): { format: MessageFormat; told: boolean } {
  let first: Marker | undefined;
  messages.forEach((message, index) => {
    const marker = markerOf(message, `messages[${index}]`);
    if (marker === undefined) return;
    if (first === undefined) first = marker;
    else if (marker.format !== first.format) {
      throw invalid(
        marker.path,
        `written as ${FORMAT_NAMES[marker.format]}, but ${first.path} is ${FORMAT_NAMES[first.format]}: ` +
          "a record is in one format",
      );
    }
  });
  return first === undefined ? { format: "openai-chat", told: false } : { format: first.format, told: true };
}

function markerOf(message: unknown, path: string): Marker | undefined {
  if (typeof message !== "object" || message === null || Array.isArray(message)) return undefined;
  const record = message as Readonly<Record<string, unknown>>;
  if (record.jsonrpc !== undefined) return { format: "mcp", path: `${path}.jsonrpc` };
  for (const key of ["tool_calls", "tool_call_id"]) {
    if (record[key] !== undefined && record[key] !== null) return { format: "openai-chat", path: `${path}.${key}` };
  }
  if (typeof record.type === "string" && record.type !== "message") {
    return { format: "openai-responses", path: `${path}.type` };
  }
  if (record.role === undefined && record.type === undefined && Array.isArray(record.content)) {
    return { format: "ai-sdk", path: `${path}.content` };
  }
  if (!Array.isArray(record.content)) return undefined;
  for (const [k, part] of record.content.entries()) {
    const type = typeof part === "object" && part !== null ? (part as { type?: unknown }).type : undefined;
    const format = typeof type === "string" && Object.hasOwn(PART_FORMATS, type) ? PART_FORMATS[type] : undefined;
    if (format !== undefined) return { format, path: `${path}.content[${k}].type` };
  }
  return undefined;
}
