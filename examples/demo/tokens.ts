/**
 * The demo's tokenizer: 30 tokens, one per symbol. A rollout reads, for example,
 *
 *   Q 4 7 * 2 3 =  CALL 4 7 _ 2 3 * END  OUT 1 0 8 1 /OUT  ANS 1 0 8 1 EOS
 *   └─ prompt ──┘  └─ policy: a call ┘  └─ tool output ─┘  └─ policy ──┘
 *
 * The policy writes the call and the answer; the tool output is pasted in by the environment (and masked out of the
 * loss). Inside a call the tool language's tokens are digits, `_` (ends a number), + - * /, `d` (dup), `s` (swap)
 * and `t` (times: repeated addition, one step per addition, so a big count times out).
 */
export const TOKENS = [
  "PAD", // 0: padding, and "nothing here" in the policy's input slots
  "Q", // 1: starts the prompt
  "=", // 2: ends the prompt
  "0",
  "1",
  "2",
  "3",
  "4",
  "5",
  "6",
  "7",
  "8",
  "9", // 3..12
  "+",
  "-",
  "*",
  "/", // 13..16
  "_", // 17: number separator in the tool language
  "d",
  "s",
  "t", // 18..20: dup, swap, times
  "CALL",
  "END", // 21, 22: a tool call, written by the policy
  "OUT",
  "/OUT", // 23, 24: the tool's reply, written by the environment
  "E_PARSE",
  "E_EXEC",
  "E_TIME", // 25..27: the reply of a failed call
  "ANS",
  "EOS", // 28, 29: the answer, and the end of the rollout
] as const;

export type TokenName = (typeof TOKENS)[number];
export const VOCAB_SIZE = TOKENS.length;

const ids = new Map<string, number>(TOKENS.map((name, id) => [name, id]));

/** The id of a token name; throws on an unknown name (a bug in the demo, never a model output). */
export function id(name: TokenName | string): number {
  const found = ids.get(name);
  if (found === undefined) throw new Error(`unknown token "${name}"`);
  return found;
}

export const T = {
  PAD: id("PAD"),
  Q: id("Q"),
  EQ: id("="),
  MUL: id("*"),
  SEP: id("_"),
  TIMES: id("t"),
  CALL: id("CALL"),
  END: id("END"),
  OUT: id("OUT"),
  END_OUT: id("/OUT"),
  E_PARSE: id("E_PARSE"),
  E_EXEC: id("E_EXEC"),
  E_TIME: id("E_TIME"),
  ANS: id("ANS"),
  EOS: id("EOS"),
} as const;

export const DIGIT0 = id("0");

export function isDigit(token: number): boolean {
  return token >= DIGIT0 && token < DIGIT0 + 10;
}

/** Token ids of a space-separated string: `encode("Q 4 7 * 2 3 =")`. */
export function encode(text: string): number[] {
  return text.trim() === "" ? [] : text.trim().split(/\s+/).map(id);
}

export function decode(tokens: ArrayLike<number>): string {
  return Array.from(tokens, (t) => TOKENS[t] ?? `?${t}`).join(" ");
}

/** The digit tokens of a non-negative integer: 1081 → [1, 0, 8, 1] as ids. */
export function digits(value: number): number[] {
  return String(value)
    .split("")
    .map((c) => (c === "-" ? id("-") : DIGIT0 + Number(c)));
}
