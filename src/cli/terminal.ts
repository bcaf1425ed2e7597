/**
 * Messages on stderr quote what the input holds (a line that is not JSON, a group id, a file name). Bytes that a
 * terminal would act on are written as escapes instead: the C0 and C1 controls and DEL (ESC starts sequences that
 * recolour, move the cursor or retitle the window), the bidirectional overrides that reorder what is shown, and
 * lone surrogates, which cannot be encoded at all.
 */
const UNSAFE = new RegExp(
  [
    "[\\u0000-\\u001f\\u007f-\\u009f]", // C0 controls, DEL, C1 controls
    "[\\u202a-\\u202e\\u2066-\\u2069]", // bidirectional embeddings, overrides and isolates
    "[\\ud800-\\udbff](?![\\udc00-\\udfff])", // a high surrogate alone
    "(?<![\\ud800-\\udbff])[\\udc00-\\udfff]", // a low surrogate alone
  ].join("|"),
  "g",
);

/** `text` with every unsafe character written as \xNN or \uNNNN; one line stays one line. */
export function escapeForTerminal(text: string): string {
  return text.replace(UNSAFE, (character) => {
    const code = character.charCodeAt(0);
    return code <= 0xff ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
  });
}

function hex(code: number, digits: number): string {
  return code.toString(16).padStart(digits, "0");
}

/** Writes `message` to stderr, each of its lines prefixed (`grpo-roc resample: …`) and escaped. */
export function writeMessage(prefix: string, message: string): void {
  const lines = message.split("\n").map((line) => `${prefix}: ${escapeForTerminal(line)}`);
  process.stderr.write(`${lines.join("\n")}\n`);
}
