/**
 * OpenAI Chat Completions messages (platform.openai.com/docs/api-reference/chat; openai-node
 * src/resources/chat/completions/completions.ts): assistant messages carry `tool_calls`, each
 * `{ id, type: "function", function: { name, arguments } }` with `arguments` a JSON string, or
 * `{ id, type: "custom", custom: { name, input } }` with free-text input; results are `{ role: "tool", tool_call_id,
 * content }` messages whose content is a string or an array of text parts. Each assistant message is a turn.
 */
import { invalid } from "../errors.js";
import type { CallEvent, Conversation, ResultEvent } from "./conversation.js";
import {
  arrayAt,
  type Fields,
  objectAt,
  oneOfAt,
  partTypeAt,
  refuseRespelledKeys,
  refuseRespelledType,
  stringAt,
} from "./records.js";

const ROLES = ["system", "developer", "user", "assistant", "tool"] as const;
const MESSAGE_FIELDS = ["role", "content", "tool_calls", "tool_call_id", "function_call", "refusal", "name"];
const CALL_TYPES = ["function", "custom"] as const;

export function readOpenAiChat(messages: readonly unknown[]): Conversation {
  const events: (CallEvent | ResultEvent)[] = [];
  const turns: string[] = [];
  messages.forEach((value, index) => {
    const path = `messages[${index}]`;
    const message = objectAt(value, path);
    refuseRespelledKeys(message, MESSAGE_FIELDS, path);
    if (message.role === "function" || (message.function_call !== undefined && message.function_call !== null)) {
      const field = message.role === "function" ? `${path}.role` : `${path}.function_call`;
      throw invalid(field, "the deprecated function_call form is not read: record tool calls in tool_calls");
    }
    const role = oneOfAt(message.role, ROLES, `${path}.role`);
    if (role === "assistant") {
      turns.push(assistantText(message.content, `${path}.content`));
      readToolCalls(message, index, path, events);
    } else if (role === "tool") {
      events.push(toolResult(message, index, path));
    }
  });
  return { events, turns };
}

/** The assistant's text: content is null, a string, or text and refusal parts (a refusal is not an answer). */
function assistantText(content: unknown, path: string): string {
  return content === undefined || content === null ? "" : contentText(content, path, ["text", "refusal"]);
}

/** A string, or the text of `text` parts one a line; `allowed` lists the part types the message may hold. */
function contentText(content: unknown, path: string, allowed: readonly string[]): string {
  if (typeof content === "string") return content;
  const texts: string[] = [];
  arrayAt(content, path, "a string or an array of content parts").forEach((value, k) => {
    const partPath = `${path}[${k}]`;
    const part = objectAt(value, partPath);
    const type = oneOfAt(partTypeAt(part, allowed, partPath), allowed, `${partPath}.type`);
    if (type === "text") texts.push(stringAt(part.text, `${partPath}.text`));
  });
  return texts.join("\n");
}

function readToolCalls(message: Fields, index: number, path: string, events: (CallEvent | ResultEvent)[]): void {
  if (message.tool_calls === undefined || message.tool_calls === null) return;
  arrayAt(message.tool_calls, `${path}.tool_calls`).forEach((value, k) => {
    const callPath = `${path}.tool_calls[${k}]`;
    const call = objectAt(value, callPath);
    refuseRespelledKeys(call, ["id", "type", "function", "custom"], callPath);
    const type = stringAt(call.type, `${callPath}.type`);
    refuseRespelledType(type, CALL_TYPES, `${callPath}.type`);
    const id = stringAt(call.id, `${callPath}.id`);
    const common = { kind: "call", id, idPath: `${callPath}.id`, index, path: callPath, invalid: false } as const;
    if (oneOfAt(type, CALL_TYPES, `${callPath}.type`) === "function") {
      const fn = objectAt(call.function, `${callPath}.function`);
      refuseRespelledKeys(fn, ["name", "arguments"], `${callPath}.function`);
      const name = stringAt(fn.name, `${callPath}.function.name`);
      const text = stringAt(fn.arguments, `${callPath}.function.arguments`);
      events.push({ ...common, name, arguments: { kind: "json-text", text } });
    } else {
      const custom = objectAt(call.custom, `${callPath}.custom`);
      refuseRespelledKeys(custom, ["name", "input"], `${callPath}.custom`);
      const name = stringAt(custom.name, `${callPath}.custom.name`);
      const text = stringAt(custom.input, `${callPath}.custom.input`);
      events.push({ ...common, name, arguments: { kind: "free-text", text } });
    }
  });
}

function toolResult(message: Fields, index: number, path: string): ResultEvent {
  const id = stringAt(message.tool_call_id, `${path}.tool_call_id`);
  const text = contentText(message.content, `${path}.content`, ["text"]);
  return {
    kind: "result",
    id,
    idPath: `${path}.tool_call_id`,
    index,
    path,
    text,
    raw: message,
    signal: { kind: "text" },
  };
}
