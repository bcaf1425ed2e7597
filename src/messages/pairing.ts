/**
 * Pairs each result with the call it answers, by id. Every format writes the call before its result, gives each call
 * an id of its own and answers a call once, so a record that does otherwise is malformed and refused, naming both
 * places: a result pinned to the wrong call would classify the wrong call.
 */
import { invalid } from "../errors.js";
import type { CallEvent, CallId, ResultEvent } from "./conversation.js";

/** A call, and its result if the record has one. */
export interface PairedCall {
  readonly call: CallEvent;
  readonly result: ResultEvent | undefined;
}

export function pairCalls(events: readonly (CallEvent | ResultEvent)[]): PairedCall[] {
  const pairs: { call: CallEvent; result: ResultEvent | undefined }[] = [];
  const byId = new Map<string, (typeof pairs)[number]>();
  for (const event of events) {
    const key = idKey(event.id);
    const pair = byId.get(key);
    if (event.kind === "call") {
      if (pair !== undefined) {
        throw invalid(event.idPath, `${describeId(event.id)} is already the id of the call at ${pair.call.path}`);
      }
      const added = { call: event, result: undefined };
      pairs.push(added);
      byId.set(key, added);
    } else if (pair === undefined) {
      throw invalid(event.idPath, `no earlier tool call has the id ${describeId(event.id)}`);
    } else if (pair.result !== undefined) {
      throw invalid(event.idPath, `the call at ${pair.call.path} already has its result, at ${pair.result.path}`);
    } else {
      pair.result = event;
    }
  }
  return pairs;
}

/** A map key for an id: JSON-RPC's id 1 and "1" are two ids. */
export function idKey(id: CallId): string {
  return typeof id === "string" ? `s${id}` : `n${id}`;
}

function describeId(id: CallId): string {
  return typeof id === "string" ? JSON.stringify(id) : String(id);
}
