/**
 * Answers and answer format, read from the assistant's text over every turn, the whole response as a transcript
 * holds it: p_format counts extra answers given anywhere in the response (docs/spec.md §3).
 */
import { invalid } from "../errors.js";
import { describeValue } from "../numeric.js";
import { readAnswerTags } from "../roc/transcript.js";

/** How many answers a response gave, and whether their markup is well formed. */
export interface AnswerCount {
  /** Answers given, an integer ≥ 0. */
  readonly answers: number;
  /** false when the answer markup is malformed, which makes p_format 1. */
  readonly formatOk: boolean;
}

/** Your own answer counter: given each assistant turn's text, in order (the final answer is usually in the last). */
export type AnswerExtractor = (assistantTurns: readonly string[]) => AnswerCount;

/** The built-in answer counters (see MessagesOptions.answer). */
export const ANSWER_MARKUPS = ["tags", "boxed"] as const;
/** "tags": `<answer>…</answer>`, as the paper and transcripts; "boxed": `\boxed{…}`. */
export type AnswerMarkup = (typeof ANSWER_MARKUPS)[number];

export function countAnswers(turns: readonly string[], answer: AnswerMarkup | AnswerExtractor): AnswerCount {
  if (typeof answer === "function") return checkedCount(answer(turns));
  const text = turns.join("\n");
  if (answer === "boxed") return countBoxed(text);
  const { answers, tagsBalanced } = readAnswerTags(text);
  return { answers, formatOk: tagsBalanced };
}

/**
 * `\boxed{…}` answers, braces nested inside counted: each `\boxed{` whose braces close is an answer, and one whose
 * braces never close makes the format malformed.
 */
function countBoxed(text: string): AnswerCount {
  const open = "\\boxed{";
  let answers = 0;
  let at = text.indexOf(open);
  while (at >= 0) {
    let depth = 1;
    let k = at + open.length;
    for (; k < text.length && depth > 0; k++) {
      if (text[k] === "{") depth++;
      else if (text[k] === "}") depth--;
    }
    if (depth > 0) return { answers, formatOk: false };
    answers++;
    // A \boxed{} inside another is part of that answer, not one more.
    at = text.indexOf(open, k);
  }
  return { answers, formatOk: true };
}

function checkedCount(count: unknown): AnswerCount {
  const path = "options.answer";
  if (typeof count !== "object" || count === null) {
    throw invalid(path, `the answer extractor returned ${describeValue(count)}; expected { answers, formatOk }`);
  }
  const { answers, formatOk } = count as Record<string, unknown>;
  if (typeof answers !== "number" || !Number.isInteger(answers) || answers < 0) {
    throw invalid(path, `the answer extractor returned answers ${describeValue(answers)}; expected an integer ≥ 0`);
  }
  if (typeof formatOk !== "boolean") {
    throw invalid(path, `the answer extractor returned formatOk ${describeValue(formatOk)}; expected a boolean`);
  }
  return { answers, formatOk };
}
