import { randomBytes } from "node:crypto";
import {
  accessSync,
  closeSync,
  constants,
  copyFileSync,
  createWriteStream,
  fchmodSync,
  fsyncSync,
  linkSync,
  open,
  openSync,
  renameSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { FileError, fileError, systemMessage } from "./exit.js";
import { onInterrupt } from "./interrupt.js";
import type { Target } from "./targets.js";

/**
 * Where JSON Lines (or the summary) go. Writes are buffered; `write` resolves once the stream can take more
 * (back-pressure). Nothing is put in place until `commitAll`, and `abort` leaves the destination as it was.
 */
export interface Sink {
  write(line: string): Promise<void> | undefined;
  /** Everything written is with the operating system; a file's temporary copy is complete and durable. */
  finish(): Promise<void>;
  /**
   * Puts a finished file in place, synchronously, so that no signal handler runs in between; with `keepBackup`, the
   * file it replaces is kept aside so that `undo` can bring it back.
   */
  install(keepBackup: boolean): Installed;
  /** Leaves the destination as it was (removes the temporary file). Safe to call more than once. */
  abort(): void;
}

export interface Installed {
  /** Puts the replaced file back (or removes a file that did not exist before). */
  undo(): void;
  /** Drops the backup: the commit stands. */
  settle(): void;
}

const NOTHING_TO_UNDO: Installed = { undo: () => {}, settle: () => {} };
const FLUSH_AT = 64 * 1024;

class BufferedSink {
  private pending: string[] = [];
  private pendingLength = 0;
  private failure: Error | undefined;

  constructor(
    protected readonly stream: Writable,
    /** For messages: "stdout", or the path. */
    protected readonly name: string,
  ) {
    stream.on("error", (error) => {
      this.failure ??= error;
    });
  }

  write(line: string): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.writeError(this.failure);
    this.pending.push(line, "\n");
    this.pendingLength += line.length + 1;
    return this.pendingLength >= FLUSH_AT ? this.flush() : undefined;
  }

  protected async flush(): Promise<void> {
    if (this.pendingLength === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    this.pendingLength = 0;
    if (!this.stream.write(text)) await this.drained();
    if (this.failure !== undefined) throw this.writeError(this.failure);
  }

  /** Resolves when everything written so far has been handed to the operating system. */
  protected async settled(): Promise<void> {
    await this.flush();
    await new Promise<void>((resolve, reject) =>
      this.stream.write("", (error) => (error ? reject(this.writeError(error)) : resolve())),
    );
  }

  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.stream.off("drain", done);
        this.stream.off("error", done);
        this.stream.off("close", done);
        resolve();
      };
      this.stream.on("drain", done);
      this.stream.on("error", done);
      this.stream.on("close", done);
    });
  }

  protected writeError(error: unknown): FileError {
    return fileError(`cannot write ${this.name}`, error);
  }
}

/** stdout: written as the run goes; what a reader has read cannot be taken back, and the exit code tells. */
class StdoutSink extends BufferedSink implements Sink {
  constructor() {
    super(process.stdout, "stdout");
  }

  async finish(): Promise<void> {
    await this.settled();
  }

  install(): Installed {
    return NOTHING_TO_UNDO;
  }

  abort(): void {}
}

/** A named pipe, a device or a socket: written directly, like stdout; renaming a file over it would replace it. */
class DirectSink extends BufferedSink implements Sink {
  static async open(target: Target): Promise<DirectSink> {
    // Asynchronous: opening a FIFO waits for its reader, and the process must stay interruptible meanwhile. No
    // O_CREAT: should the node vanish, this fails rather than create a regular file in its place.
    const fd = await new Promise<number>((resolve, reject) =>
      open(target.path, constants.O_WRONLY, (error, fd) =>
        error ? reject(fileError(`cannot write ${target.path}`, error)) : resolve(fd),
      ),
    );
    return new DirectSink(target.path, fd);
  }

  private constructor(path: string, fd: number) {
    super(createWriteStream("", { fd, autoClose: true }), path);
  }

  async finish(): Promise<void> {
    await this.settled();
    await new Promise<void>((resolve) => this.stream.end(resolve));
  }

  install(): Installed {
    return NOTHING_TO_UNDO;
  }

  abort(): void {
    this.stream.destroy();
  }
}

/**
 * A regular file (or one to create): the output goes to a temporary file in the destination's own folder (so the
 * final rename stays on one file system and is atomic); readers of the destination see its old content or the
 * complete new one, never a part.
 */
class AtomicFileSink extends BufferedSink implements Sink {
  private state: "writing" | "finished" | "installed" | "aborted" = "writing";
  private readonly forget: () => void;

  static create(target: Target): AtomicFileSink {
    const destination = target.path;
    const folder = dirname(destination);
    if (target.kind === "regular") {
      try {
        // A rename would replace a write-protected file; the user protected it, so it is refused like `>` would.
        accessSync(destination, constants.W_OK);
      } catch (error) {
        throw fileError(`cannot write ${target.label}`, error);
      }
    }
    const temporary = join(folder, `.${basename(destination)}.grpo-roc-${process.pid}-${nonce()}.tmp`);
    let fd: number;
    try {
      fd = openSync(temporary, "wx");
      if (target.stats !== undefined) fchmodSync(fd, target.stats.mode & 0o7777);
    } catch (error) {
      throw new FileError(
        `cannot write ${target.label}: cannot create a file in its folder ${folder} (the output is written there ` +
          `first, then renamed into place): ${systemMessage(error)}`,
        (error as NodeJS.ErrnoException).code,
      );
    }
    return new AtomicFileSink(destination, temporary, fd);
  }

  private constructor(
    private readonly destination: string,
    private readonly temporary: string,
    private readonly fd: number,
  ) {
    super(createWriteStream("", { fd, autoClose: false }), destination);
    this.forget = onInterrupt(() => this.abort());
  }

  async finish(): Promise<void> {
    await this.settled();
    await new Promise<void>((resolve) => this.stream.end(resolve));
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
    } catch (error) {
      throw this.writeError(error);
    }
    this.state = "finished";
  }

  install(keepBackup: boolean): Installed {
    const backup = keepBackup ? this.backUp() : undefined;
    try {
      renameSync(this.temporary, this.destination);
    } catch (error) {
      if (backup !== undefined) removeQuietly(backup);
      throw this.writeError(error);
    }
    this.state = "installed";
    this.forget();
    return {
      undo: () => {
        if (backup === undefined) unlinkSync(this.destination);
        else renameSync(backup, this.destination);
      },
      settle: () => {
        if (backup !== undefined) removeQuietly(backup);
      },
    };
  }

  /** A second name (a hard link, else a copy) for the file about to be replaced; undefined when there is none. */
  private backUp(): string | undefined {
    const backup = join(dirname(this.destination), `.${basename(this.destination)}.grpo-roc-${nonce()}.old.tmp`);
    try {
      linkSync(this.destination, backup);
      return backup;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    }
    try {
      // A file system without hard links.
      copyFileSync(this.destination, backup, constants.COPYFILE_EXCL);
      return backup;
    } catch (error) {
      throw fileError(`cannot keep a copy of ${this.destination} to restore should a later file fail`, error);
    }
  }

  abort(): void {
    if (this.state === "installed" || this.state === "aborted") return;
    const open = this.state === "writing";
    this.state = "aborted";
    this.forget();
    this.stream.destroy();
    if (open) {
      try {
        closeSync(this.fd);
      } catch {
        // Already closed.
      }
    }
    removeQuietly(this.temporary);
  }
}

function nonce(): string {
  return randomBytes(4).toString("hex");
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone.
  }
}

export async function openSink(target: Target): Promise<Sink> {
  if (target.kind === "stdout") return new StdoutSink();
  if (target.kind === "special") return DirectSink.open(target);
  return AtomicFileSink.create(target);
}

/**
 * Puts every sink's output in place, or none: each file is first written and made durable beside its destination;
 * then the renames run, synchronously, and should one fail, the ones before it are undone from their backups. (A
 * crash between two renames, which no handler sees, can still leave the first in place.) Output already streamed to
 * stdout, a pipe or a device cannot be taken back.
 */
export async function commitAll(sinks: readonly Sink[]): Promise<void> {
  for (const sink of sinks) await sink.finish();
  const installed: Installed[] = [];
  try {
    // Every file but the last keeps a backup: a later rename may fail, and then it is put back.
    for (const [k, sink] of sinks.entries()) installed.push(sink.install(k < sinks.length - 1));
  } catch (error) {
    throw undoAll(installed, error);
  }
  for (const done of installed) done.settle();
}

/** Undoes installed renames, newest first; the error to report, which says when a file could not be restored. */
function undoAll(installed: readonly Installed[], cause: unknown): unknown {
  const failures: string[] = [];
  for (const done of [...installed].reverse()) {
    try {
      done.undo();
    } catch (error) {
      failures.push(systemMessage(error));
    }
  }
  if (failures.length === 0) return cause;
  return new FileError(
    `${(cause as Error).message}; and the file replaced before it could not be restored (${failures.join("; ")}): ` +
      "its old content is in the .old.tmp file beside it",
  );
}
