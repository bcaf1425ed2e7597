/**
 * One rollout's conversation as every format reader hands it on: the tool calls and their results in record order,
 * and the assistant turns' text. The pairing, the classification and the answer count read only this.
 */

/** A tool call's id: a string in the chat formats, a string or a number as JSON-RPC allows in an MCP log. */
export type CallId = string | number;

/** What the model sent as a call's arguments, as the format records them. */
export type CallArguments =
  /** A JSON text the model wrote (OpenAI function calls): not valid JSON is a parse error. */
  | { readonly kind: "json-text"; readonly text: string }
  /** A value the format has already parsed (Anthropic `input`, MCP `arguments`, AI SDK `input`). */
  | { readonly kind: "value"; readonly value: unknown }
  /** Free text for a tool that takes free text (OpenAI custom tools): no JSON, no parameter schema. */
  | { readonly kind: "free-text"; readonly text: string };

/** How a format marks a result that went wrong. */
export type ResultSignal =
  /** The format has no error flag (OpenAI Chat Completions, Responses): the text is all there is. */
  | { readonly kind: "text" }
  /** The format's own flag: Anthropic `is_error`, MCP `isError`, AI SDK `error-*` outputs and `tool-error` parts. */
  | { readonly kind: "flag"; readonly error: boolean }
  /** A JSON-RPC error response to an MCP `tools/call` request. */
  | { readonly kind: "jsonrpc-error"; readonly code: number }
  /** An MCP `notifications/cancelled` for the request: the client gave up waiting. */
  | { readonly kind: "cancelled" }
  /** An AI SDK `execution-denied` output: the call was refused before it ran. */
  | { readonly kind: "denied" };

export interface CallEvent {
  readonly kind: "call";
  readonly id: CallId;
  /** Where the id is written, for errors about it (`messages[1].tool_calls[0].id`). */
  readonly idPath: string;
  readonly name: string;
  /** The 0-based index of the message (item, step, log entry) that holds the call. */
  readonly index: number;
  /** Where the call is (`messages[1].tool_calls[0]`). */
  readonly path: string;
  readonly arguments: CallArguments;
  /** The format says the call could not be parsed (AI SDK `invalid: true`). */
  readonly invalid: boolean;
}

export interface ResultEvent {
  readonly kind: "result";
  /** The id of the call it answers. */
  readonly id: CallId;
  readonly idPath: string;
  readonly index: number;
  readonly path: string;
  /** The result's text, for the text classifier and your `classify`. */
  readonly text: string;
  /** The result as recorded: the tool message, the block, the part, the JSON-RPC response or notification. */
  readonly raw: unknown;
  readonly signal: ResultSignal;
}

export interface Conversation {
  /** Calls and results in record order. */
  readonly events: readonly (CallEvent | ResultEvent)[];
  /** Each assistant turn's text, in order; undefined where the record holds no turns (an MCP log). */
  readonly turns: readonly string[] | undefined;
}
