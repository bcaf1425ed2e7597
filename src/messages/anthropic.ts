/**
 * Anthropic Messages (platform.claude.com/docs/en/agents-and-tools/tool-use/handle-tool-calls; anthropic-sdk-typescript
 * src/resources/messages/messages.ts): `{ role: "user" | "assistant", content }`, content a string or blocks. An
 * assistant's `tool_use` blocks `{ id, name, input }` are the calls; the next user message answers them with
 * `tool_result` blocks `{ tool_use_id, content, is_error }`, content a string or blocks (text, image, document).
 * `is_error` is the format's error flag. Each assistant message is a turn; its `text` blocks are its text (thinking
 * blocks are not). Server tools (`server_tool_use` and the results Anthropic writes for them) run on Anthropic's side
 * and are not counted as tool calls.
 */
import { invalid } from "../errors.js";
import type { CallEvent, Conversation, ResultEvent } from "./conversation.js";
import {
  arrayAt,
  type Fields,
  objectAt,
  oneOfAt,
  optionalBooleanAt,
  partTypeAt,
  refuseRespelledKeys,
  stringAt,
} from "./records.js";

const ROLES = ["user", "assistant"] as const;
const BLOCK_TYPES = ["text", "tool_use", "tool_result"];

export function readAnthropic(messages: readonly unknown[]): Conversation {
  const events: (CallEvent | ResultEvent)[] = [];
  const turns: string[] = [];
  messages.forEach((value, index) => {
    const path = `messages[${index}]`;
    const message = objectAt(value, path);
    refuseRespelledKeys(message, ["role", "content"], path);
    const role = oneOfAt(message.role, ROLES, `${path}.role`);
    const texts: string[] = [];
    for (const [block, blockPath] of blocks(message.content, `${path}.content`)) {
      const type = partTypeAt(block, BLOCK_TYPES, blockPath);
      if (type === "text") texts.push(stringAt(block.text, `${blockPath}.text`));
      else if (type === "tool_use") events.push(toolUse(block, role, index, blockPath));
      else if (type === "tool_result") events.push(toolResult(block, role, index, blockPath));
    }
    if (role === "assistant") turns.push(texts.join("\n"));
  });
  return { events, turns };
}

/** A message's blocks with their paths; a string content is one text block. */
function blocks(content: unknown, path: string): [Fields, string][] {
  if (typeof content === "string") return [[{ type: "text", text: content }, path]];
  const items = arrayAt(content, path, "a string or an array of content blocks");
  return items.map((block, k) => [objectAt(block, `${path}[${k}]`), `${path}[${k}]`]);
}

function toolUse(block: Fields, role: string, index: number, path: string): CallEvent {
  if (role !== "assistant") throw invalid(`${path}.type`, "a tool_use block belongs in an assistant message");
  refuseRespelledKeys(block, ["type", "id", "name", "input"], path);
  return {
    kind: "call",
    id: stringAt(block.id, `${path}.id`),
    idPath: `${path}.id`,
    name: stringAt(block.name, `${path}.name`),
    index,
    path,
    arguments: { kind: "value", value: block.input },
    invalid: false,
  };
}

function toolResult(block: Fields, role: string, index: number, path: string): ResultEvent {
  if (role !== "user") throw invalid(`${path}.type`, "a tool_result block belongs in a user message");
  refuseRespelledKeys(block, ["type", "tool_use_id", "content", "is_error"], path);
  const isError = optionalBooleanAt(block.is_error, `${path}.is_error`) ?? false;
  return {
    kind: "result",
    id: stringAt(block.tool_use_id, `${path}.tool_use_id`),
    idPath: `${path}.tool_use_id`,
    index,
    path,
    text: resultText(block.content, `${path}.content`),
    raw: block,
    signal: { kind: "flag", error: isError },
  };
}

/** A result's text: absent, a string, or the text of its text blocks one a line. */
function resultText(content: unknown, path: string): string {
  if (content === undefined || content === null) return "";
  const texts: string[] = [];
  for (const [block, blockPath] of blocks(content, path)) {
    if (partTypeAt(block, ["text"], blockPath) === "text") texts.push(stringAt(block.text, `${blockPath}.text`));
  }
  return texts.join("\n");
}
