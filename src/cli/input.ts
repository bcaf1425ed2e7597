import { createReadStream, createWriteStream, fstatSync, rmSync, statSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StringDecoder } from "node:string_decoder";
import { UsageError } from "./args.js";
import { onInterrupt } from "./interrupt.js";

export interface InputSource {
  /** For messages: the path, or "stdin". */
  readonly label: string;
  /** Bytes, when known up front (a file, or stdin redirected from one); the progress bar then shows a fraction. */
  readonly size: number | undefined;
  /** A file can be opened again for a second pass; stdin cannot. */
  readonly rereadable: boolean;
  open(): Readable;
  dispose(): void;
}

const CHUNK = 64 * 1024;

/** `path` undefined means no FILE was given: stdin, unless it is a terminal (nobody would be typing rollouts). */
export function openInput(path: string | undefined): InputSource {
  if (path === undefined || path === "-") {
    if (path === undefined && process.stdin.isTTY)
      throw new UsageError("no input: give a FILE, or pipe JSON Lines into stdin (- reads a terminal)");
    let size: number | undefined;
    try {
      const stat = fstatSync(0);
      if (stat.isFile()) size = stat.size;
    } catch {
      // stdin closed: reading it gives no lines.
    }
    return { label: "stdin", size, rereadable: false, open: () => process.stdin, dispose: () => {} };
  }
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${systemMessage(error)}`);
  }
  if (stat.isDirectory()) throw new UsageError(`${path} is a directory, not a JSON Lines file`);
  // Only a regular file can be read twice: a named pipe (`<(zcat rollouts.gz)`, /dev/stdin) is read once, like stdin,
  // and spooled when a second pass is needed; opened again it would give nothing.
  if (!stat.isFile())
    return {
      label: path,
      size: undefined,
      rereadable: false,
      open: () => createReadStream(path, { highWaterMark: CHUNK }),
      dispose: () => {},
    };
  return fileSource(path, stat.size, () => {});
}

function fileSource(path: string, size: number, dispose: () => void): InputSource {
  return { label: path, size, rereadable: true, open: () => createReadStream(path, { highWaterMark: CHUNK }), dispose };
}

/**
 * Copies stdin (or a named pipe) to a private temporary file so that it can be read twice (the batch std needs a first
 * pass); memory stays bounded, the disk holds one copy of the input, and the copy is removed at the end or on an
 * interrupt.
 */
export async function spool(source: InputSource): Promise<InputSource> {
  if (source.rereadable) return source;
  const dir = await mkdtemp(join(tmpdir(), "grpo-roc-"));
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onInterrupt(remove);
  const path = join(dir, "stdin.jsonl");
  try {
    await pipeline(source.open(), createWriteStream(path));
  } catch (error) {
    forget();
    remove();
    throw error;
  }
  return fileSource(path, statSync(path).size, () => {
    forget();
    remove();
  });
}

/**
 * Yields the lines of `stream` (without "\n" or a trailing "\r"; a leading BOM is dropped), pulling one chunk at a
 * time so that a slow consumer holds the reader back. A line longer than a chunk is assembled from pieces, so even
 * a huge line costs linear time.
 */
export async function* readLines(stream: Readable, onBytes: (bytes: number) => void): AsyncGenerator<string> {
  const decoder = new StringDecoder("utf8");
  let pieces: string[] = [];
  let atStart = true;
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const buffer = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    onBytes(buffer.length);
    let text = decoder.write(buffer);
    if (atStart && text.length > 0) {
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      atStart = false;
    }
    let start = 0;
    for (let newline = text.indexOf("\n"); newline >= 0; newline = text.indexOf("\n", start)) {
      pieces.push(text.slice(start, newline));
      yield withoutCarriageReturn(pieces.length === 1 ? pieces[0]! : pieces.join(""));
      pieces = [];
      start = newline + 1;
    }
    if (start < text.length) pieces.push(text.slice(start));
  }
  const rest = decoder.end();
  if (rest !== "") pieces.push(rest);
  if (pieces.length > 0) yield withoutCarriageReturn(pieces.join(""));
}

function withoutCarriageReturn(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/** "ENOENT: no such file or directory, stat 'x'" → "no such file or directory (ENOENT)". */
export function systemMessage(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  if (code === undefined) return message;
  const text = message.replace(new RegExp(`^${code}: `), "").replace(/, \w+ '.*'$/s, "");
  return `${text} (${code})`;
}
