import {
  accessSync,
  constants,
  createReadStream,
  createWriteStream,
  rmSync,
  type Stats,
  statSync,
  mkdtempSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { UsageError } from "./args.js";
import { fileError, FileError } from "./exit.js";
import { onInterrupt } from "./interrupt.js";
import { fdFile } from "./targets.js";

export interface InputSource {
  /** For messages: the path, or "stdin". */
  readonly label: string;
  /** Bytes, when known up front (a file, or stdin redirected from one); the progress bar then shows a fraction. */
  readonly size: number | undefined;
  /** A file can be opened again for a second pass; stdin cannot. */
  readonly rereadable: boolean;
  /** The file read, when it has a name or is a regular file: for the same-file check against the outputs. */
  readonly stats: Stats | undefined;
  open(): Readable;
  dispose(): void;
}

const CHUNK = 64 * 1024;

/** `path` undefined means no FILE was given: stdin, unless it is a terminal (nobody would be typing rollouts). */
export function openInput(path: string | undefined): InputSource {
  if (path === undefined || path === "-") return openStdin(path);
  let stats: Stats;
  try {
    stats = statSync(path);
    if (stats.isDirectory()) throw new FileError(`cannot read ${path}: it is a directory`, "EISDIR");
    accessSync(path, constants.R_OK);
  } catch (error) {
    throw fileError(`cannot read ${path}`, error);
  }
  // Only a regular file can be read twice: a named pipe (`<(zcat rollouts.gz)`, /dev/stdin) is read once, like stdin,
  // and spooled when a second pass is needed; opened again it would give nothing.
  if (!stats.isFile()) {
    const open = () => createReadStream(path, { highWaterMark: CHUNK });
    return { label: path, size: undefined, rereadable: false, stats, open, dispose: () => {} };
  }
  return fileSource(path, stats, () => {});
}

function openStdin(path: "-" | undefined): InputSource {
  if (path === undefined && process.stdin.isTTY)
    throw new UsageError("no input: give a FILE, or pipe JSON Lines into stdin (- reads a terminal)");
  const stats = fdFile(0);
  return {
    label: "stdin",
    size: stats?.size,
    rereadable: false,
    stats,
    open: () => process.stdin,
    dispose: () => {},
  };
}

function fileSource(path: string, stats: Stats, dispose: () => void): InputSource {
  const open = () => createReadStream(path, { highWaterMark: CHUNK });
  return { label: path, size: stats.size, rereadable: true, stats, open, dispose };
}

/**
 * Copies stdin (or a named pipe) to a private temporary file so that it can be read twice (the batch std needs a first
 * pass); memory stays bounded, the disk holds one copy of the input, and the copy is removed at the end or on an
 * interrupt.
 */
export async function spool(source: InputSource): Promise<InputSource> {
  if (source.rereadable) return source;
  let dir: string;
  try {
    // Synchronous, so that no signal handler can run between creating the folder and registering its removal.
    dir = mkdtempSync(join(tmpdir(), "grpo-roc-"));
  } catch (error) {
    throw fileError(`cannot copy ${source.label} to a temporary folder in ${tmpdir()} (to read it twice)`, error);
  }
  const remove = () => rmSync(dir, { recursive: true, force: true });
  const forget = onInterrupt(remove);
  const path = join(dir, "stdin.jsonl");
  try {
    await pipeline(source.open(), createWriteStream(path));
  } catch (error) {
    forget();
    remove();
    throw fileError(`cannot copy ${source.label} to ${path} (to read it twice)`, error);
  }
  const copy = fileSource(path, statSync(path), () => {
    forget();
    remove();
  });
  // Messages name the input as given, not the copy; the same-file check saw the original.
  return { ...copy, label: source.label, stats: source.stats };
}
