/**
 * Vercel AI SDK 5, in either of its two records (ai-sdk.dev/docs/foundations/prompts, …/reference/ai-sdk-core/
 * generate-text; vercel/ai packages/provider-utils/src/types/content-part.ts and packages/ai/src/generate-text/
 * content-part.ts, tool-call.ts):
 *
 * - Model messages (`response.messages`, or the messages you keep): assistant content parts
 *   `{ type: "tool-call", toolCallId, toolName, input }`, and tool messages whose `tool-result` parts
 *   `{ toolCallId, toolName, output }` carry `output.type` "text", "json", "error-text", "error-json", "content" or
 *   (AI SDK 6) "execution-denied". The `error-*` types are the format's error flag. Each assistant message is a turn.
 * - Step results (`result.steps`): each step's `content` holds `tool-call` parts (`invalid: true` for a call the SDK
 *   could not parse or whose tool does not exist), `tool-result` parts with the tool's raw `output` (`preliminary:
 *   true` for a streamed partial result, which the final one follows), and `tool-error` parts `{ error }` for a call
 *   that threw. Each step is a turn.
 *
 * Parts that carry no call and no text (reasoning, files, sources, approval requests) are not read.
 */
import { invalid } from "../errors.js";
import type { CallEvent, Conversation, ResultEvent, ResultSignal } from "./conversation.js";
import {
  arrayAt,
  type Fields,
  objectAt,
  oneOfAt,
  optionalBooleanAt,
  partTypeAt,
  refuseRespelledKeys,
  stringAt,
  textOf,
} from "./records.js";

const ROLES = ["system", "user", "assistant", "tool"] as const;
const PART_TYPES = ["text", "tool-call", "tool-result", "tool-error"];
const OUTPUT_TYPES = ["text", "json", "error-text", "error-json", "content", "execution-denied"] as const;

export function readAiSdk(records: readonly unknown[]): Conversation {
  const events: (CallEvent | ResultEvent)[] = [];
  const turns: string[] = [];
  const steps = records.length > 0 && isStep(records[0]);
  records.forEach((value, index) => {
    const path = `messages[${index}]`;
    const record = objectAt(value, path);
    if (isStep(record) !== steps) {
      const [is, list] = steps ? ["a model message", "step results"] : ["a step result", "model messages"];
      throw invalid(path, `${is} in a list of ${list} (messages[0]): give one kind`);
    }
    if (steps) {
      turns.push(readParts(record.content, index, `${path}.content`, "step", events));
      return;
    }
    refuseRespelledKeys(record, ["role", "content"], path);
    const role = oneOfAt(record.role, ROLES, `${path}.role`);
    if (role === "assistant" || role === "tool") {
      const text = readParts(record.content, index, `${path}.content`, role, events);
      if (role === "assistant") turns.push(text);
    }
  });
  return { events, turns };
}

/** A step result has content and no role; a model message has a role. */
function isStep(record: unknown): boolean {
  return typeof record === "object" && record !== null && !("role" in record) && "content" in record;
}

/** Reads the calls and results among `content`'s parts; returns the text of its text parts, one a line. */
function readParts(
  content: unknown,
  index: number,
  path: string,
  holder: "assistant" | "tool" | "step",
  events: (CallEvent | ResultEvent)[],
): string {
  if (typeof content === "string" && holder === "assistant") return content;
  const texts: string[] = [];
  const expected = `${holder === "assistant" ? "a string or " : ""}an array of parts`;
  arrayAt(content, path, expected).forEach((value, k) => {
    const partPath = `${path}[${k}]`;
    const part = objectAt(value, partPath);
    const type = partTypeAt(part, PART_TYPES, partPath);
    if (type === "text" && holder !== "tool") texts.push(stringAt(part.text, `${partPath}.text`));
    else if (type === "tool-call" && holder !== "tool") events.push(toolCall(part, index, partPath));
    else if (type === "tool-result" && !(holder === "step" && part.preliminary === true)) {
      events.push(toolResult(part, index, partPath, holder === "step"));
    } else if (type === "tool-error" && holder === "step") events.push(toolError(part, index, partPath));
  });
  return texts.join("\n");
}

function toolCall(part: Fields, index: number, path: string): CallEvent {
  refuseRespelledKeys(part, ["type", "toolCallId", "toolName", "input", "invalid"], path);
  return {
    kind: "call",
    id: stringAt(part.toolCallId, `${path}.toolCallId`),
    idPath: `${path}.toolCallId`,
    name: stringAt(part.toolName, `${path}.toolName`),
    index,
    path,
    arguments: { kind: "value", value: part.input },
    invalid: optionalBooleanAt(part.invalid, `${path}.invalid`) ?? false,
  };
}

/** A step's result carries the tool's raw output; a model message's carries a typed `output`. */
function toolResult(part: Fields, index: number, path: string, raw: boolean): ResultEvent {
  refuseRespelledKeys(part, ["type", "toolCallId", "toolName", "output"], path);
  const { text, signal } = raw ? { text: textOf(part.output), signal: noError } : typedOutput(part.output, path);
  return { ...resultOf(part, index, path), text, signal };
}

function toolError(part: Fields, index: number, path: string): ResultEvent {
  refuseRespelledKeys(part, ["type", "toolCallId", "toolName", "error"], path);
  return { ...resultOf(part, index, path), text: textOf(part.error), signal: { kind: "flag", error: true } };
}

function resultOf(part: Fields, index: number, path: string) {
  const id = stringAt(part.toolCallId, `${path}.toolCallId`);
  return { kind: "result", id, idPath: `${path}.toolCallId`, index, path, raw: part } as const;
}

const noError: ResultSignal = { kind: "flag", error: false };

function typedOutput(value: unknown, path: string): { text: string; signal: ResultSignal } {
  const output = objectAt(value, `${path}.output`);
  refuseRespelledKeys(output, ["type", "value", "reason"], `${path}.output`);
  const type = oneOfAt(output.type, OUTPUT_TYPES, `${path}.output.type`);
  switch (type) {
    case "text":
    case "error-text":
      return {
        text: stringAt(output.value, `${path}.output.value`),
        signal: { kind: "flag", error: type === "error-text" },
      };
    case "json":
    case "error-json":
      return { text: textOf(output.value), signal: { kind: "flag", error: type === "error-json" } };
    case "content":
      return { text: contentText(output.value, `${path}.output.value`), signal: noError };
    case "execution-denied":
      return {
        text: output.reason === undefined ? "" : stringAt(output.reason, `${path}.output.reason`),
        signal: { kind: "denied" },
      };
  }
}

/** A `content` output's text: its text parts, one a line (media and files carry none). */
function contentText(value: unknown, path: string): string {
  const texts: string[] = [];
  arrayAt(value, path, "an array of parts").forEach((item, k) => {
    const part = objectAt(item, `${path}[${k}]`);
    if (partTypeAt(part, ["text"], `${path}[${k}]`) === "text") texts.push(stringAt(part.text, `${path}[${k}].text`));
  });
  return texts.join("\n");
}
