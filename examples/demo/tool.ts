/**
 * The code tool: a tiny stack language, run by this sandboxed interpreter (no eval, a step limit, bounded numbers).
 *
 *   program  := item+            item := number | op          number := digit{1,4}, ended by `_` or an op
 *   op       := + - * /  (pop b, pop a, push a∘b; / truncates)   d (dup)   s (swap)
 *            |  t        (pop n, pop x, push x + x + … n times: one step per addition)
 *
 * A call ends in one of the spec's outcomes:
 *   ok               exactly one value left on the stack: it is printed
 *   parse_error      a token outside the language (e.g. `=` from pasting the question), a number over 4 digits,
 *                    an empty program, or a call the policy never closed
 *   execution_error  stack underflow (infix order `47 * 23`), division by zero, a negative count for `t`,
 *                    a value outside ±9999, or not exactly one value left at the end
 *   timeout          more than `maxSteps` steps: `47 23 t` takes 26, `47 58 t` would take 61
 */
import { DIGIT0, isDigit, TOKENS, type TokenName } from "./tokens.js";

export type ToolResult =
  | { readonly outcome: "ok"; readonly value: number; readonly steps: number }
  | {
      readonly outcome: "parse_error" | "execution_error" | "timeout";
      readonly message: string;
      readonly steps: number;
    };

export interface ToolOptions {
  /** Instructions plus loop iterations allowed before the call times out. */
  readonly maxSteps?: number;
  /** False when the policy never wrote END: the call cannot be parsed. */
  readonly closed?: boolean;
}

export const DEFAULT_MAX_STEPS = 32;
export const MAX_VALUE = 9999;
const MAX_LITERAL_DIGITS = 4;

type Op = "+" | "-" | "*" | "/" | "d" | "s" | "t";
type Instruction = { readonly push: number } | { readonly op: Op };
const OPS = new Set<string>(["+", "-", "*", "/", "d", "s", "t"]);

class ExecutionError extends Error {}

/** Runs a program given as token ids (the tokens between CALL and END). Never throws. */
export function runTool(program: readonly number[], options: ToolOptions = {}): ToolResult {
  const maxSteps = options.maxSteps ?? DEFAULT_MAX_STEPS;
  if (options.closed === false)
    return { outcome: "parse_error", message: "the call was never closed (no END)", steps: 0 };
  const parsed = parse(program);
  if (typeof parsed === "string") return { outcome: "parse_error", message: parsed, steps: 0 };

  const stack: number[] = [];
  let steps = 0;
  const tick = () => {
    steps++;
    return steps > maxSteps;
  };
  const pop = (): number => {
    const value = stack.pop();
    if (value === undefined) throw new ExecutionError("stack underflow");
    return value;
  };
  const push = (value: number) => {
    if (Math.abs(value) > MAX_VALUE) throw new ExecutionError(`overflow: ${value} is outside ±${MAX_VALUE}`);
    stack.push(value);
  };
  try {
    for (const instruction of parsed) {
      if (tick()) return { outcome: "timeout", message: `more than ${maxSteps} steps`, steps };
      if ("push" in instruction) {
        push(instruction.push);
        continue;
      }
      switch (instruction.op) {
        case "d": {
          const a = pop();
          push(a);
          push(a);
          break;
        }
        case "s": {
          const b = pop();
          const a = pop();
          push(b);
          push(a);
          break;
        }
        case "t": {
          const n = pop();
          const x = pop();
          if (n < 0) throw new ExecutionError("t: negative count");
          let total = 0;
          for (let i = 0; i < n; i++) {
            if (tick()) return { outcome: "timeout", message: `more than ${maxSteps} steps`, steps };
            total += x;
            if (Math.abs(total) > MAX_VALUE) throw new ExecutionError(`overflow: ${total} is outside ±${MAX_VALUE}`);
          }
          push(total);
          break;
        }
        default: {
          const b = pop();
          const a = pop();
          if (instruction.op === "/" && b === 0) throw new ExecutionError("division by zero");
          push(
            instruction.op === "+"
              ? a + b
              : instruction.op === "-"
                ? a - b
                : instruction.op === "*"
                  ? a * b
                  : Math.trunc(a / b),
          );
        }
      }
    }
    if (stack.length !== 1)
      throw new ExecutionError(
        stack.length === 0 ? "no result on the stack" : `${stack.length} values left on the stack`,
      );
    return { outcome: "ok", value: stack[0]!, steps };
  } catch (error) {
    if (error instanceof ExecutionError) return { outcome: "execution_error", message: error.message, steps };
    throw error;
  }
}

/** Instructions, or the parse error's message. */
function parse(program: readonly number[]): Instruction[] | string {
  if (program.length === 0) return "empty program";
  const out: Instruction[] = [];
  let literal = "";
  const flush = (): string | undefined => {
    if (literal === "") return undefined;
    if (literal.length > MAX_LITERAL_DIGITS) return `number ${literal} has more than ${MAX_LITERAL_DIGITS} digits`;
    out.push({ push: Number(literal) });
    literal = "";
    return undefined;
  };
  for (const token of program) {
    if (isDigit(token)) {
      literal += String(token - DIGIT0);
      continue;
    }
    const name = TOKENS[token] as TokenName | undefined;
    const error = flush();
    if (error !== undefined) return error;
    if (name === "_") continue;
    if (name === undefined || !OPS.has(name)) return `unexpected token ${name ?? token}`;
    out.push({ op: name as Op });
  }
  const error = flush();
  if (error !== undefined) return error;
  return out;
}
