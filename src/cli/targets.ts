import { fstatSync, readlinkSync, realpathSync, type Stats, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { UsageError } from "./args.js";
import { FileError, fileError } from "./exit.js";

/**
 * Where output goes, resolved before anything is opened or read:
 * - stdout (no -o, or `-o -`);
 * - a regular file: a temporary file is written beside its real path (through symbolic links) and renamed onto it;
 * - a new file: likewise, in the real folder its path (or a dangling link) leads to;
 * - anything else (a named pipe, a device, a socket, or a link to one): written directly, never renamed over, so a
 *   FIFO or /dev/null stays what it is.
 */
export interface Target {
  /** The flag and path as given, for messages: `-o out.jsonl`. */
  readonly label: string;
  readonly kind: "stdout" | "regular" | "new" | "special";
  /** regular and new: the real path the temporary file is renamed onto; special: the path to open. */
  readonly path: string;
  /** The existing file (regular, special; stdout when it is a regular file): how two names of one file are told. */
  readonly stats: Stats | undefined;
}

export function resolveTarget(flag: string, path: string | undefined): Target {
  if (path === undefined || path === "-") return { label: "stdout", kind: "stdout", path: "-", stats: fdFile(1) };
  const label = `${flag} ${path}`;
  let stats: Stats;
  try {
    stats = statSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "ENOENT") throw fileError(`cannot write ${path}`, error);
    if (path.endsWith("/")) throw new FileError(`cannot write ${path}: no such folder`, "ENOENT");
    return { label, kind: "new", path: newFilePath(path), stats: undefined };
  }
  if (stats.isDirectory()) throw new FileError(`cannot write ${path}: it is a directory`, "EISDIR");
  if (!stats.isFile()) return { label, kind: "special", path, stats };
  return { label, kind: "regular", path: realpathSync(path), stats };
}

/** The stats of file descriptor `fd` when it is a regular file (`< rollouts.jsonl`, `> out.jsonl`). */
export function fdFile(fd: number): Stats | undefined {
  try {
    const stats = fstatSync(fd);
    return stats.isFile() ? stats : undefined;
  } catch {
    return undefined;
  }
}

const MAX_LINK_HOPS = 40;

/** Where a file that does not exist yet will be created: through dangling symbolic links, in the real folder. */
function newFilePath(path: string): string {
  let current = resolve(path);
  for (let hop = 0; hop < MAX_LINK_HOPS; hop++) {
    let link: string;
    try {
      link = readlinkSync(current);
    } catch {
      break; // Not a link: the name itself is to be created.
    }
    current = resolve(dirname(current), link);
  }
  const folder = dirname(current);
  try {
    return join(realpathSync(folder), basename(current));
  } catch (error) {
    throw fileError(`cannot write ${path}: folder ${folder}`, error);
  }
}

/** A name in the same-file check: the input, -o, --summary. */
export interface Named {
  readonly label: string;
  readonly role: "input" | "output" | "summary";
  readonly stats: Stats | undefined;
  /** For a file yet to be created: where it will be. */
  readonly newPath?: string | undefined;
}

/**
 * Any two of the input, the records and the summary that are one file (by device and inode: through `..`, symbolic
 * and hard links; or, not yet existing, by their real path) are a usage error, found before anything is read:
 * the records would replace the summary or the input being read. Character devices are exempt: /dev/null or a
 * terminal can take both.
 */
export function checkDistinct(names: readonly Named[]): void {
  for (let a = 0; a < names.length; a++) {
    for (let b = a + 1; b < names.length; b++) {
      const [first, second] = [names[a]!, names[b]!];
      if (!sameFile(first, second)) continue;
      const harm =
        first.role === "input"
          ? `writing the ${second.role} would replace the input it is read from`
          : "the summary would replace the records";
      throw new UsageError(`${first.label} and ${second.label} are one file: ${harm}; give each its own file`);
    }
  }
}

function sameFile(a: Named, b: Named): boolean {
  if (a.stats !== undefined && b.stats !== undefined) {
    return a.stats.dev === b.stats.dev && a.stats.ino === b.stats.ino && !a.stats.isCharacterDevice();
  }
  return a.newPath !== undefined && a.newPath === b.newPath;
}

export function targetName(target: Target, role: "output" | "summary"): Named {
  return { label: target.label, role, stats: target.stats, newPath: target.kind === "new" ? target.path : undefined };
}
