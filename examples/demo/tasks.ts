/**
 * The tasks: products of two 2-digit numbers, "Q 4 7 * 2 3 =" → 1081. A model this small cannot multiply in its
 * head (8,100 pairs, 3–4 digit answers): a right answer comes from reading the tool's output.
 *
 * 810 pairs (10%) are held out: training draws from the other 7,290, the evaluation set from these.
 */
import { digits, T } from "./tokens.js";
import { rng, type Rng } from "./rng.js";

export interface Task {
  readonly a: number;
  readonly b: number;
  readonly answer: number;
  /** "Q a a * b b =": 7 tokens. */
  readonly prompt: readonly number[];
}

export const PROMPT_LENGTH = 7;

export function task(a: number, b: number): Task {
  return { a, b, answer: a * b, prompt: [T.Q, ...digits(a), T.MUL, ...digits(b), T.EQ] };
}

/**
 * The split: all 8,100 pairs in one fixed shuffled order (the same for every seed), the first 10% held out. A
 * random split, not a rule on the digits: training must see every digit in every position, or the evaluation
 * measures something it never learned to copy.
 */
const HELD_OUT = 810;
const split: { readonly heldOut: readonly Task[]; readonly training: readonly Task[] } = (() => {
  const pairs: Task[] = [];
  for (let a = 10; a < 100; a++) for (let b = 10; b < 100; b++) pairs.push(task(a, b));
  const random = rng("split");
  for (let i = pairs.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [pairs[i], pairs[j]] = [pairs[j]!, pairs[i]!];
  }
  return { heldOut: pairs.slice(0, HELD_OUT), training: pairs.slice(HELD_OUT) };
})();

/** A training task, uniformly among the pairs that are not held out. */
export function trainingTask(random: Rng): Task {
  return split.training[random.int(split.training.length)]!;
}

/** The first `count` held-out pairs (the same for every seed and method). */
export function evaluationTasks(count: number): Task[] {
  return split.heldOut.slice(0, count);
}
