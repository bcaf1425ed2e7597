/**
 * Rollouts: the policy writes tokens; when it closes a tool call (END) the environment runs the program and pastes
 * the reply (OUT … /OUT) into the sequence. Pasted tokens have mask 0: the policy did not write them, so they get no
 * gradient (spec §1.3). Reward = 1 when the rollout ends (EOS) with exactly the right digits after its last ANS, else
 * 0: only the answer counts, never how the tool was used.
 */
import type { ToolOutcome } from "grpo-roc";
import { PrefixReader, SLOTS, type Policy } from "./policy.js";
import type { Rng } from "./rng.js";
import type { Task } from "./tasks.js";
import { digits, isDigit, T, VOCAB_SIZE } from "./tokens.js";
import { runTool } from "./tool.js";

export const MAX_LENGTH = 64;
/** A call longer than this is closed by the environment, and is a parse error. */
export const MAX_PROGRAM = 10;

export interface ToolCall {
  readonly outcome: ToolOutcome;
  readonly message: string;
}

/** One finished rollout, with what RoC needs (tool calls, answers, turns) and what the trainer needs (tokens, mask, logp). */
export interface Episode {
  readonly task: Task;
  readonly tokens: readonly number[];
  /** 1 for tokens the policy wrote, 0 for the prompt and the tool's replies. */
  readonly mask: readonly number[];
  /** log π_old of each written token at sampling time (0 elsewhere). */
  readonly logp: readonly number[];
  readonly toolCalls: readonly ToolCall[];
  /** ANS tokens written (more than one is a format issue). */
  readonly answers: number;
  /** Assistant turns: one per tool call, plus the final one. */
  readonly turns: number;
  /** Ended with EOS after one well-formed answer (digits only). */
  readonly formatOk: boolean;
  readonly reward: number;
}

/** A rollout in progress: applies the environment's rules to every token written. */
export class EpisodeBuilder {
  readonly reader = new PrefixReader();
  readonly mask: number[] = [];
  readonly logp: number[] = [];
  readonly toolCalls: ToolCall[] = [];
  private callStart = -1;
  private answers = 0;
  private answerStart = -1;
  done = false;
  private ended = false;

  constructor(
    readonly task: Task,
    private readonly maxSteps?: number,
  ) {
    for (const token of task.prompt) this.append(token, 0, 0);
  }

  get tokens(): readonly number[] {
    return this.reader.tokens;
  }

  /** The policy writes `token` (with its sampling log-prob); the environment reacts. */
  write(token: number, logp = 0): void {
    if (this.done) throw new Error("episode already finished");
    this.append(token, 1, logp);
    if (this.callStart >= 0) {
      if (token === T.END) this.runCall(true);
      else if (this.tokens.length - this.callStart > MAX_PROGRAM) this.runCall(false);
    } else if (token === T.CALL) {
      this.callStart = this.tokens.length;
    } else if (token === T.ANS) {
      this.answers++;
      this.answerStart = this.tokens.length;
    } else if (token === T.EOS) {
      this.ended = true;
      this.done = true;
    }
    if (this.tokens.length >= MAX_LENGTH) this.done = true;
  }

  private append(token: number, mask: number, logp: number): void {
    if (this.tokens.length >= MAX_LENGTH) {
      this.done = true;
      return;
    }
    this.reader.push(token);
    this.mask.push(mask);
    this.logp.push(logp);
  }

  private runCall(closed: boolean): void {
    const program = this.tokens.slice(this.callStart, closed ? -1 : undefined);
    this.callStart = -1;
    const result = runTool(program, { closed, ...(this.maxSteps === undefined ? {} : { maxSteps: this.maxSteps }) });
    this.toolCalls.push({
      outcome: result.outcome,
      message: result.outcome === "ok" ? String(result.value) : result.message,
    });
    const reply =
      result.outcome === "ok"
        ? digits(result.value)
        : [result.outcome === "parse_error" ? T.E_PARSE : result.outcome === "execution_error" ? T.E_EXEC : T.E_TIME];
    if (!closed) this.append(T.END, 0, 0);
    for (const token of [T.OUT, ...reply, T.END_OUT]) this.append(token, 0, 0);
  }

  finish(): Episode {
    const answer = this.answerStart >= 0 && this.ended ? this.tokens.slice(this.answerStart, -1) : [];
    const expected = digits(this.task.answer);
    const wellFormed = answer.length > 0 && answer.every(isDigit);
    const correct = this.ended && answer.length === expected.length && answer.every((t, i) => t === expected[i]);
    return {
      task: this.task,
      tokens: [...this.tokens],
      mask: [...this.mask],
      logp: [...this.logp],
      toolCalls: [...this.toolCalls],
      answers: this.answers,
      turns: this.toolCalls.length + 1,
      formatOk: this.ended && this.answers === 1 && wellFormed,
      reward: correct ? 1 : 0,
    };
  }
}

export interface SampleOptions {
  readonly temperature?: number;
  /** The tool's step limit (default: the interpreter's). */
  readonly maxSteps?: number;
}

/**
 * Samples one rollout per task (repeat a task for a group), all rows advancing together: one forward pass of the
 * active rows per token. Token choices come from `random`, so a seed fixes the rollouts.
 */
export function sampleEpisodes(
  policy: Policy,
  tasks: readonly Task[],
  random: Rng,
  options: SampleOptions = {},
): Episode[] {
  const temperature = options.temperature ?? 1;
  const builders = tasks.map((task) => new EpisodeBuilder(task, options.maxSteps));
  const slots = new Int32Array(tasks.length * SLOTS);
  const probs = new Float64Array(VOCAB_SIZE);
  for (;;) {
    const active = builders.filter((b) => !b.done);
    if (active.length === 0) break;
    active.forEach((b, row) => {
      b.reader.write(slots, row * SLOTS);
    });
    const logitsTensor = policy.logitsFromSlots(slots.subarray(0, active.length * SLOTS), active.length);
    const logits = logitsTensor.dataSync();
    logitsTensor.dispose();
    active.forEach((builder, row) => {
      // log-softmax of logits / temperature in float64, then one draw.
      let max = -Infinity;
      for (let v = 0; v < VOCAB_SIZE; v++) max = Math.max(max, logits[row * VOCAB_SIZE + v]! / temperature);
      let total = 0;
      for (let v = 0; v < VOCAB_SIZE; v++)
        total += probs[v] = Math.exp(logits[row * VOCAB_SIZE + v]! / temperature - max);
      let u = random.next() * total;
      let token = VOCAB_SIZE - 1;
      for (let v = 0; v < VOCAB_SIZE; v++) {
        u -= probs[v]!;
        if (u < 0) {
          token = v;
          break;
        }
      }
      builder.write(token, Math.log(probs[token]! / total));
    });
  }
  return builders.map((b) => b.finish());
}
