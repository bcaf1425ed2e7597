import { invalid } from "../errors.js";
import { describeValue } from "../numeric.js";
import { emptyOutcomeCounts, type Quality, type ToolOutcome } from "./penalties.js";

/**
 * "reference": rStar2-Agent's released heuristics, bit for bit: a tool response is a failure when its text contains
 * "error" (any case), and the first assistant turn, whose header belongs to the prompt, is not counted.
 * "strict": reads the sandbox's verdict (success, failure with a reason, undecodable call), so timeouts and parse
 * failures count and a successful run that prints "error" does not; every assistant turn is counted.
 */
export const TRANSCRIPT_DIALECTS = ["strict", "reference"] as const;
/**
 * How a transcript is read. "strict" reads the sandbox's own verdict, so timeouts and parse failures count and a
 * successful run that prints "error" does not. "reference" is rStar2-Agent's released heuristic: a response that
 * mentions "error" failed, and the first assistant turn is not counted.
 */
export type TranscriptDialect = (typeof TRANSCRIPT_DIALECTS)[number];

/** A transcript's quality counts, and what could not be read as the dialect expects. */
export interface ParsedTranscript extends Quality {
  /** Strict dialect: tool responses in no known shape, classified by the word "error" instead. */
  readonly unrecognizedResponses: number;
  /** Tool calls left without a response (a transcript cut at the length limit). */
  readonly unansweredCalls: number;
}

const TOOL_CALL = ["<tool_call>", "</tool_call>"] as const;
const TOOL_RESPONSE = ["<tool_response>", "</tool_response>"] as const;
const ANSWER = ["<answer>", "</answer>"] as const;
const ASSISTANT_TURN = ["<|im_start|>assistant", "<|im_end|>"] as const;

/**
 * Reads tool outcomes, answers and turns from a Hermes / rStar2-Agent style response transcript (`<tool_call>`,
 * `<tool_response>`, `<answer>`, `<|im_start|>assistant` tags), the counts RoC scores a `transcript` rollout by.
 * It never counts an "infra_error": none of rStar2-Agent's sandbox verdicts (success, failure with a reason, an
 * undecodable call, an execution error) names an infrastructure failure, so mark such a rollout `infraFailed: true`.
 *
 * @throws ValidationError when `text` is not a string or `dialect` is not a TranscriptDialect.
 */
export function parseTranscript(text: string, dialect: TranscriptDialect = "strict"): ParsedTranscript {
  if (typeof text !== "string") throw invalid("text", `expected a transcript string, received ${describeValue(text)}`);
  if (!(TRANSCRIPT_DIALECTS as readonly unknown[]).includes(dialect)) {
    throw invalid("dialect", `expected one of ${TRANSCRIPT_DIALECTS.join(", ")}, received ${describeValue(dialect)}`);
  }
  return readTranscript(text, dialect);
}

/** parseTranscript() without its checks, for inputs already validated. */
export function readTranscript(text: string, dialect: TranscriptDialect): ParsedTranscript {
  const toolOutcomes = emptyOutcomeCounts();
  let unrecognizedResponses = 0;
  let responses = 0;
  forEachBlock(text, TOOL_RESPONSE, (start, end) => {
    responses++;
    const body = text.slice(start, end);
    let outcome = dialect === "strict" ? sandboxVerdict(body) : undefined;
    if (outcome === undefined) {
      if (dialect === "strict") unrecognizedResponses++;
      outcome = mentionsError(body) ? "execution_error" : "ok";
    }
    toolOutcomes[outcome]++;
  });
  const calls = countBlocks(text, TOOL_CALL);

  const { answers, tagsBalanced } = readAnswerTags(text);
  let turns: number;
  let formatOk: boolean;
  if (dialect === "reference") {
    turns = countBlocks(text, ASSISTANT_TURN);
    formatOk = tagsBalanced && turns > 0;
  } else {
    // The response opens inside the first assistant turn unless it carries that turn's header itself.
    turns = countOccurrences(text, ASSISTANT_TURN[0]) + (text.startsWith(ASSISTANT_TURN[0]) ? 0 : 1);
    formatOk = tagsBalanced;
  }
  return {
    toolOutcomes,
    answers,
    turns,
    formatOk,
    unrecognizedResponses,
    unansweredCalls: Math.max(0, calls - responses),
  };
}

/**
 * Answers are closed `<answer>…</answer>` blocks; the tags are balanced when every opening and every closing tag
 * belongs to one (docs/spec.md §3). qualityFromMessages counts a conversation's answers the same way.
 */
export function readAnswerTags(text: string): { answers: number; tagsBalanced: boolean } {
  const answers = countBlocks(text, ANSWER);
  const tagsBalanced = countOccurrences(text, ANSWER[0]) === answers && countOccurrences(text, ANSWER[1]) === answers;
  return { answers, tagsBalanced };
}

/** The rStar2-Agent sandbox's own wording for each outcome; undefined when the text is in none of them. */
export function sandboxVerdict(body: string): ToolOutcome | undefined {
  const text = body.trimStart();
  if (text.startsWith("Tool call success")) return "ok";
  if (text.startsWith("Tool call failure")) return /^reason:[^\n]*timeout/im.test(text) ? "timeout" : "execution_error";
  if (text.startsWith("Failed to decode tool call") || text.startsWith("Error when executing tool"))
    return "parse_error";
  return undefined;
}

function mentionsError(body: string): boolean {
  return body.toLowerCase().includes("error");
}

/** Calls `visit` with the content span of each non-overlapping open…close block, like the regex `open.*?close`. */
function forEachBlock(
  text: string,
  [open, close]: readonly [string, string],
  visit: (start: number, end: number) => void,
): void {
  let from = 0;
  for (;;) {
    const start = text.indexOf(open, from);
    if (start < 0) return;
    const end = text.indexOf(close, start + open.length);
    if (end < 0) return;
    visit(start + open.length, end);
    from = end + close.length;
  }
}

function countBlocks(text: string, tags: readonly [string, string]): number {
  let count = 0;
  forEachBlock(text, tags, () => count++);
  return count;
}

function countOccurrences(text: string, needle: string): number {
  let count = 0;
  for (let at = text.indexOf(needle); at >= 0; at = text.indexOf(needle, at + needle.length)) count++;
  return count;
}
