/**
 * Demonstrations for the warm start (rStar2-Agent's SFT before RL, in miniature): a messy teacher that uses the tool
 * the way an untrained model might. It calls the tool in one of four styles,
 *
 *   clean    CALL a a _ b b * END      → ok
 *   infix    CALL a a * b b END        → execution_error (stack underflow at *)
 *   pasted   CALL a a * b b = END      → parse_error (= is not in the language)
 *   loop     CALL a a _ b b t END      → ok when b ≤ 29, else timeout (repeated addition, one step each)
 *
 * retries after a failure (or gives up and guesses), sometimes answers without the tool (a guess), and sometimes
 * miscopies a digit of the tool's output. Every call goes through the real tool, so the demonstrations are
 * consistent with what the environment does.
 */
import { EpisodeBuilder, type Episode } from "./rollout.js";
import type { Rng } from "./rng.js";
import type { Task } from "./tasks.js";
import { DIGIT0, digits, T } from "./tokens.js";

export interface TeacherStyle {
  /** Answer at once, without the tool. */
  readonly guess: number;
  /** Weights of clean / infix / pasted / loop, for the first call and for a retry. */
  readonly firstCall: readonly [number, number, number, number];
  readonly retry: readonly [number, number, number, number];
  /** After a failed call: give up and guess instead of retrying. */
  readonly giveUp: number;
  readonly maxCalls: number;
  /** Change one digit when copying the tool's output into the answer. */
  readonly miscopy: number;
}

export const TEACHER: TeacherStyle = {
  guess: 0.1,
  firstCall: [0.4, 0.2, 0.15, 0.25],
  retry: [0.6, 0.15, 0.1, 0.15],
  giveUp: 0.15,
  maxCalls: 3,
  miscopy: 0.15,
};

const STYLES = ["clean", "infix", "pasted", "loop"] as const;

function program(task: Task, style: (typeof STYLES)[number]): number[] {
  const a = digits(task.a);
  const b = digits(task.b);
  switch (style) {
    case "clean":
      return [...a, T.SEP, ...b, T.MUL];
    case "infix":
      return [...a, T.MUL, ...b];
    case "pasted":
      return [...a, T.MUL, ...b, T.EQ];
    case "loop":
      return [...a, T.SEP, ...b, T.TIMES];
  }
}

function guessDigits(random: Rng): number[] {
  return digits(100 + random.int(9900));
}

/** One demonstration, through the real environment (tool replies pasted in, mask 0). */
export function demonstrate(task: Task, random: Rng, style: TeacherStyle = TEACHER): Episode {
  const episode = new EpisodeBuilder(task);
  const answer = (tokens: number[]) => {
    for (const token of [T.ANS, ...tokens, T.EOS]) episode.write(token);
  };
  if (random.next() < style.guess) {
    answer(guessDigits(random));
    return episode.finish();
  }
  for (let call = 0; call < style.maxCalls; call++) {
    const kind = STYLES[random.weighted(call === 0 ? style.firstCall : style.retry)]!;
    for (const token of [T.CALL, ...program(task, kind), T.END]) episode.write(token);
    const last = episode.toolCalls.at(-1)!;
    if (last.outcome === "ok") {
      const out = digits(Number(last.message));
      if (random.next() < style.miscopy) {
        const at = random.int(out.length);
        out[at] = DIGIT0 + ((out[at]! - DIGIT0 + 1 + random.int(9)) % 10);
      }
      answer(out);
      return episode.finish();
    }
    if (random.next() < style.giveUp) break;
  }
  answer(guessDigits(random));
  return episode.finish();
}
