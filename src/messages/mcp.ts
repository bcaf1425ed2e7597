/**
 * A Model Context Protocol client's log (modelcontextprotocol.io/specification/2025-11-25/server/tools and
 * …/basic/utilities/cancellation): one JSON-RPC 2.0 message per entry. MCP has no conversation format of its own, so
 * the record is the client's `tools/call` requests `{ jsonrpc, id, method: "tools/call", params: { name, arguments } }`
 * with what answered each: a response whose `result` is a CallToolResult `{ content, isError }`, a response with a
 * JSON-RPC `error` `{ code, message }`, or a `notifications/cancelled` notification `{ params: { requestId, reason } }`
 * sent when the client stopped waiting. The first of these for a request is its result: the specification tells a
 * client to ignore a response that arrives after its cancellation. Other messages (initialize, tools/list, progress
 * notifications, and the responses to them) are not tool calls and are passed over. A log holds no assistant text,
 * so it has no turns.
 */
import { invalid } from "../errors.js";
import { describeValue } from "../numeric.js";
import type { CallEvent, CallId, Conversation, ResultEvent } from "./conversation.js";
import { idKey } from "./pairing.js";
import {
  arrayAt,
  type Fields,
  objectAt,
  optionalBooleanAt,
  partTypeAt,
  refuseRespelledKeys,
  stringAt,
} from "./records.js";

const ENTRY_FIELDS = ["jsonrpc", "id", "method", "params", "result", "error"];

export function readMcp(entries: readonly unknown[]): Conversation {
  const events: (CallEvent | ResultEvent)[] = [];
  /** tools/call requests still waiting, by id (JSON-RPC's 1 and "1" are two ids). */
  const waiting = new Set<string>();
  entries.forEach((value, index) => {
    const path = `messages[${index}]`;
    if (Array.isArray(value)) {
      throw invalid(path, "a JSON-RPC batch: write each message of the batch as an entry of its own");
    }
    const entry = objectAt(value, path);
    refuseRespelledKeys(entry, ENTRY_FIELDS, path);
    if (entry.jsonrpc !== "2.0") {
      throw invalid(`${path}.jsonrpc`, `expected "2.0", received ${describeValue(entry.jsonrpc)}`);
    }
    if (entry.method !== undefined) {
      const method = stringAt(entry.method, `${path}.method`);
      if (method === "tools/call") {
        if (entry.id === undefined) throw invalid(`${path}.id`, "a tools/call request needs an id to be answered");
        const call = toolsCall(entry, index, path);
        waiting.add(idKey(call.id));
        events.push(call);
      } else if (method === "notifications/cancelled") {
        const params = objectAt(entry.params, `${path}.params`);
        const id = requestId(params.requestId, `${path}.params.requestId`);
        if (waiting.delete(idKey(id))) {
          const idPath = `${path}.params.requestId`;
          events.push({
            kind: "result",
            id,
            idPath,
            index,
            path,
            text: cancelReason(params, path),
            raw: entry,
            signal: { kind: "cancelled" },
          });
        }
      }
      return;
    }
    if (entry.result === undefined && entry.error === undefined) {
      throw invalid(path, "expected a JSON-RPC request or notification (method) or response (result or error)");
    }
    const id = requestId(entry.id, `${path}.id`);
    if (waiting.delete(idKey(id))) events.push(response(entry, id, index, path));
  });
  return { events, turns: undefined };
}

/** A JSON-RPC id: a string or a number (MCP's RequestId). */
function requestId(value: unknown, path: string): CallId {
  if (typeof value === "string" || (typeof value === "number" && Number.isFinite(value))) return value;
  throw invalid(path, `expected a request id (a string or a number), received ${describeValue(value)}`);
}

function toolsCall(entry: Fields, index: number, path: string): CallEvent {
  const params = objectAt(entry.params, `${path}.params`);
  refuseRespelledKeys(params, ["name", "arguments"], `${path}.params`);
  return {
    kind: "call",
    id: requestId(entry.id, `${path}.id`),
    idPath: `${path}.id`,
    name: stringAt(params.name, `${path}.params.name`),
    index,
    path,
    // Arguments are optional in a tools/call request: a tool without parameters is called with none.
    arguments: { kind: "value", value: params.arguments ?? {} },
    invalid: false,
  };
}

function cancelReason(params: Fields, path: string): string {
  return params.reason === undefined ? "" : stringAt(params.reason, `${path}.params.reason`);
}

function response(entry: Fields, id: CallId, index: number, path: string): ResultEvent {
  const common = { kind: "result", id, idPath: `${path}.id`, index, path, raw: entry } as const;
  if (entry.error !== undefined) {
    const error = objectAt(entry.error, `${path}.error`);
    refuseRespelledKeys(error, ["code", "message", "data"], `${path}.error`);
    if (typeof error.code !== "number" || !Number.isInteger(error.code)) {
      throw invalid(`${path}.error.code`, `expected an integer, received ${describeValue(error.code)}`);
    }
    const text = stringAt(error.message, `${path}.error.message`);
    return { ...common, text, signal: { kind: "jsonrpc-error", code: error.code } };
  }
  const result = objectAt(entry.result, `${path}.result`);
  refuseRespelledKeys(result, ["content", "isError", "structuredContent"], `${path}.result`);
  const isError = optionalBooleanAt(result.isError, `${path}.result.isError`) ?? false;
  return {
    ...common,
    // The TypeScript SDK reads an absent content as [] (a result may carry structuredContent alone).
    text: result.content === undefined ? "" : contentText(result.content, `${path}.result.content`),
    signal: { kind: "flag", error: isError },
  };
}

/** A CallToolResult's text: its text content blocks, one a line (images, audio and resources carry none). */
function contentText(content: unknown, path: string): string {
  const texts: string[] = [];
  arrayAt(content, path).forEach((value, k) => {
    const block = objectAt(value, `${path}[${k}]`);
    if (partTypeAt(block, ["text"], `${path}[${k}]`) === "text") {
      texts.push(stringAt(block.text, `${path}[${k}].text`));
    }
  });
  return texts.join("\n");
}
