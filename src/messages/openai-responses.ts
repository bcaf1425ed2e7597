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

const ITEM_TYPES = ["message", "function_call", "custom_tool_call", "function_call_output", "custom_tool_call_output"];
const ROLES = ["user", "assistant", "system", "developer"] as const;
const ASSISTANT_PARTS = ["output_text", "input_text", "refusal"];
const OUTPUT_PARTS = ["input_text", "input_image", "input_file"];

export function readOpenAiResponses(items: readonly unknown[]): Conversation {
  const events: (CallEvent | ResultEvent)[] = [];
  const turns: string[][] = [];
  let inTurn = false;
  items.forEach((value, index) => {
    const path = `messages[${index}]`;
    const item = objectAt(value, path);
    const type = itemType(item, path);
    const text = type === "message" ? messageText(item, path) : undefined;
    const fromModel = text !== undefined || isModelItem(type);
    if (!fromModel) {
      inTurn = false;
      if (type === "function_call_output" || type === "custom_tool_call_output") {
        events.push(callOutput(item, index, path));
      }
      return;
    }
    if (!inTurn) turns.push([]);
    inTurn = true;
    if (text !== undefined) turns[turns.length - 1]!.push(text);
    if (type === "function_call" || type === "custom_tool_call") events.push(call(item, type, index, path));
  });
  return { events, turns: turns.map((texts) => texts.join("\n")) };
}

/** An item's type: `type`, or "message" for a `{ role, content }` message written without one. */
function itemType(item: Fields, path: string): string {
  if (item.type === undefined && item.role !== undefined) return "message";
  const type = stringAt(item.type, `${path}.type`);
  refuseRespelledType(type, ITEM_TYPES, `${path}.type`);
  return type;
}

/** The model's own items: its calls of every kind (`*_call`), its reasoning, and its requests for approval. */
function isModelItem(type: string): boolean {
  return type.endsWith("_call") || type === "reasoning" || type === "mcp_approval_request";
}

/** An assistant message's text, or undefined for another role's message (which is input, not the model's). */
function messageText(item: Fields, path: string): string | undefined {
  refuseRespelledKeys(item, ["type", "role", "content"], path);
  const role = oneOfAt(item.role, ROLES, `${path}.role`);
  if (role !== "assistant") return undefined;
  const content = item.content;
  if (typeof content === "string") return content;
  const texts: string[] = [];
  arrayAt(content, `${path}.content`, "a string or an array of content parts").forEach((value, k) => {
    const partPath = `${path}.content[${k}]`;
    const part = objectAt(value, partPath);
    const type = oneOfAt(partTypeAt(part, ASSISTANT_PARTS, partPath), ASSISTANT_PARTS, `${partPath}.type`);
    if (type !== "refusal") texts.push(stringAt(part.text, `${partPath}.text`));
  });
  return texts.join("\n");
}

function call(item: Fields, type: "function_call" | "custom_tool_call", index: number, path: string): CallEvent {
  const input = type === "function_call" ? "arguments" : "input";
  refuseRespelledKeys(item, ["type", "call_id", "name", input], path);
  const id = stringAt(item.call_id, `${path}.call_id`);
  const name = stringAt(item.name, `${path}.name`);
  const text = stringAt(item[input], `${path}.${input}`);
  return {
    kind: "call",
    id,
    idPath: `${path}.call_id`,
    name,
    index,
    path,
    arguments: type === "function_call" ? { kind: "json-text", text } : { kind: "free-text", text },
    invalid: false,
  };
}

function callOutput(item: Fields, index: number, path: string): ResultEvent {
  refuseRespelledKeys(item, ["type", "call_id", "output"], path);
  const id = stringAt(item.call_id, `${path}.call_id`);
  return {
    kind: "result",
    id,
    idPath: `${path}.call_id`,
    index,
    path,
    text: outputText(item.output, `${path}.output`),
    raw: item,
    signal: { kind: "text" },
  };
}

/** A call output's text: a string, or the text of its `input_text` parts one a line (images and files have none). */
function outputText(output: unknown, path: string): string {
  if (typeof output === "string") return output;
  const texts: string[] = [];
  arrayAt(output, path, "a string or an array of output parts").forEach((value, k) => {
    const partPath = `${path}[${k}]`;
    const part = objectAt(value, partPath);
    const type = oneOfAt(partTypeAt(part, OUTPUT_PARTS, partPath), OUTPUT_PARTS, `${partPath}.type`);
    if (type === "input_text") texts.push(stringAt(part.text, `${partPath}.text`));
  });
  return texts.join("\n");
}
