import { isUtf8 } from "node:buffer";
import type { Readable } from "node:stream";

/** A line as read: its text, or why it has none (too long, not UTF-8); either way it counts as one line. */
export type RawLine = { readonly text: string } | { readonly problem: string };

/** 64 MiB: far beyond any rollout, far below the longest string Node can hold (2^29 − 24 characters). */
export const DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024;
/** The longest string Node can hold: a longer line could not be parsed at all. */
export const MAX_LINE_BYTES_LIMIT = 2 ** 29 - 24;

/** What a line is, in the message of one over the limit: a line of rollouts, or a `serve` request. */
export interface LineKind {
  readonly noun: string;
  /** The flag that sets the limit. */
  readonly flag: string;
}

const ROLLOUT_LINE: LineKind = { noun: "line", flag: "--max-line-bytes" };

const NEWLINE = 0x0a;
const CARRIAGE_RETURN = 0x0d;
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

/**
 * Cuts bytes into lines (without "\n" or a trailing "\r"; a byte-order mark at the very start is dropped). A line is
 * kept whole only up to `maxLineBytes`: past that its bytes are counted, not kept, so a line of any length costs
 * bounded memory. Lines are checked as UTF-8 before they are decoded: a byte that is not UTF-8 is an error, never a
 * silent U+FFFD.
 */
export class LineSplitter {
  private pieces: Buffer[] = [];
  private keptBytes = 0;
  /** Bytes of the current line once it is over the limit (and no longer kept); -1 while it is within it. */
  private overflowBytes = -1;
  private atStart = true;

  constructor(
    private readonly maxLineBytes: number,
    private readonly kind: LineKind = ROLLOUT_LINE,
  ) {}

  /** The lines that `chunk` completes. */
  push(chunk: Buffer): RawLine[] {
    const lines: RawLine[] = [];
    let start = 0;
    for (let newline = chunk.indexOf(NEWLINE); newline >= 0; newline = chunk.indexOf(NEWLINE, start)) {
      this.append(chunk.subarray(start, newline));
      lines.push(this.completeLine());
      start = newline + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
    return lines;
  }

  /** The last line, when the input does not end with "\n". */
  end(): RawLine | undefined {
    if (this.pieces.length === 0 && this.overflowBytes < 0) return undefined;
    return this.completeLine();
  }

  private append(piece: Buffer): void {
    if (piece.length === 0) return;
    if (this.overflowBytes >= 0) {
      this.overflowBytes += piece.length;
    } else if (this.keptBytes + piece.length > this.maxLineBytes) {
      this.overflowBytes = this.keptBytes + piece.length;
      this.pieces = [];
      this.keptBytes = 0;
    } else {
      this.pieces.push(piece);
      this.keptBytes += piece.length;
    }
  }

  private completeLine(): RawLine {
    const overflow = this.overflowBytes;
    let bytes = this.pieces.length === 1 ? this.pieces[0]! : Buffer.concat(this.pieces, this.keptBytes);
    this.pieces = [];
    this.keptBytes = 0;
    this.overflowBytes = -1;
    const first = this.atStart;
    this.atStart = false;
    if (overflow >= 0) {
      const { noun, flag } = this.kind;
      return {
        problem:
          `${overflow} bytes, over the limit of ${this.maxLineBytes} bytes a ${noun} (${flag}); the ${noun} was ` +
          "skipped unparsed, holding no more than the limit in memory",
      };
    }
    if (first && bytes.subarray(0, 3).equals(BOM)) bytes = bytes.subarray(3);
    if (bytes.length > 0 && bytes[bytes.length - 1] === CARRIAGE_RETURN) bytes = bytes.subarray(0, -1);
    if (!isUtf8(bytes)) return { problem: notUtf8(bytes) };
    return { text: bytes.toString("utf8") };
  }
}

/** Yields the lines of `stream`, pulling one chunk at a time so that a slow consumer holds the reader back. */
export async function* readLines(
  stream: Readable,
  maxLineBytes: number,
  onBytes: (bytes: number) => void,
  kind: LineKind = ROLLOUT_LINE,
): AsyncGenerator<RawLine> {
  const splitter = new LineSplitter(maxLineBytes, kind);
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    onBytes(buffer.length);
    yield* splitter.push(buffer);
  }
  const last = splitter.end();
  if (last !== undefined) yield last;
}

function notUtf8(bytes: Buffer): string {
  const at = firstInvalidUtf8(bytes);
  const shown = Array.from(bytes.subarray(at, at + 4), (byte) => `0x${byte.toString(16).padStart(2, "0")}`);
  return (
    `not UTF-8: invalid byte sequence at byte ${at + 1} of the line (${shown.join(" ")}); grpo-roc reads UTF-8 ` +
    "JSON Lines and does not guess"
  );
}

/** The offset of the first byte that does not begin a valid UTF-8 sequence (RFC 3629: no overlongs, no surrogates). */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  let i = 0;
  while (i < bytes.length) {
    const length = sequenceLength(bytes, i);
    if (length === 0) return i;
    i += length;
  }
  return bytes.length;
}

/** The length of the valid UTF-8 sequence at `i`, or 0 when there is none. */
function sequenceLength(bytes: Uint8Array, i: number): number {
  const lead = bytes[i]!;
  if (lead < 0x80) return 1;
  const [length, low, high] = leadRule(lead);
  if (length === 0 || i + length > bytes.length) return 0;
  const second = bytes[i + 1]!;
  if (second < low || second > high) return 0;
  for (let k = 2; k < length; k++) if ((bytes[i + k]! & 0xc0) !== 0x80) return 0;
  return length;
}

/**
 * [length, lowest second byte, highest second byte] of the sequence a lead byte starts; [0, 0, 0] when it starts
 * none. The second byte's range narrows after E0 and F0 (no overlong forms), ED (no surrogates) and F4 (nothing
 * beyond U+10FFFF).
 */
function leadRule(lead: number): readonly [number, number, number] {
  if (lead >= 0xc2 && lead <= 0xdf) return [2, 0x80, 0xbf];
  if (lead === 0xe0) return [3, 0xa0, 0xbf];
  if (lead === 0xed) return [3, 0x80, 0x9f];
  if (lead >= 0xe1 && lead <= 0xef) return [3, 0x80, 0xbf];
  if (lead === 0xf0) return [4, 0x90, 0xbf];
  if (lead >= 0xf1 && lead <= 0xf3) return [4, 0x80, 0xbf];
  if (lead === 0xf4) return [4, 0x80, 0x8f];
  return [0, 0, 0];
}
