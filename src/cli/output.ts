import { randomBytes } from "node:crypto";
import {
  closeSync,
  createWriteStream,
  fchmodSync,
  fsyncSync,
  openSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Writable } from "node:stream";
import { UsageError } from "./args.js";
import { systemMessage } from "./input.js";
import { onInterrupt } from "./interrupt.js";

/** A failure to write the output (disk full, a closed pipe): exit code 3. */
export class OutputError extends Error {
  override name = "OutputError";
}

/** Where the JSON Lines go. Writes are buffered; `write` resolves once the stream can take more (back-pressure). */
export interface Sink {
  write(line: string): Promise<void> | undefined;
  /** Flushes, and for a file makes it durable and renames it into place. */
  commit(): Promise<void>;
  /** Leaves the destination as it was (removes the temporary file). Safe to call more than once. */
  abort(): void;
}

const FLUSH_AT = 64 * 1024;

class BufferedSink {
  private pending: string[] = [];
  private pendingLength = 0;
  private failure: Error | undefined;

  constructor(protected readonly stream: Writable) {
    stream.on("error", (error) => {
      this.failure ??= error;
    });
  }

  write(line: string): Promise<void> | undefined {
    if (this.failure !== undefined) throw this.asOutputError(this.failure);
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
    if (this.failure !== undefined) throw this.asOutputError(this.failure);
  }

  /** Resolves when everything written so far has been handed to the operating system. */
  protected async settled(): Promise<void> {
    await this.flush();
    await new Promise<void>((resolve, reject) =>
      this.stream.write("", (error) => (error ? reject(this.asOutputError(error)) : resolve())),
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

  protected asOutputError(error: Error): OutputError {
    return error instanceof OutputError ? error : new OutputError(`cannot write the output: ${error.message}`);
  }
}

class StdoutSink extends BufferedSink implements Sink {
  constructor() {
    super(process.stdout);
  }

  async commit(): Promise<void> {
    await this.settled();
  }

  abort(): void {}
}

/**
 * The output goes to a temporary file in the destination's own folder (so the final rename stays on one file system
 * and is atomic); readers of the destination see its old content or the complete new one, never a part.
 */
class AtomicFileSink extends BufferedSink implements Sink {
  private done = false;
  private readonly forget: () => void;

  constructor(
    private readonly destination: string,
    private readonly temporary: string,
    private readonly fd: number,
  ) {
    super(createWriteStream("", { fd, autoClose: false }));
    this.forget = onInterrupt(() => this.abort());
  }

  async commit(): Promise<void> {
    await this.settled();
    await new Promise<void>((resolve) => this.stream.end(resolve));
    try {
      fsyncSync(this.fd);
      closeSync(this.fd);
      renameSync(this.temporary, this.destination);
    } catch (error) {
      this.abort();
      throw this.asOutputError(error as Error);
    }
    this.done = true;
    this.forget();
  }

  abort(): void {
    if (this.done) return;
    this.done = true;
    this.forget();
    this.stream.destroy();
    try {
      closeSync(this.fd);
    } catch {
      // Already closed by a failed commit.
    }
    try {
      unlinkSync(this.temporary);
    } catch {
      // Already gone.
    }
  }
}

export function openSink(path: string | undefined): Sink {
  if (path === undefined || path === "-") return new StdoutSink();
  return openAtomicFile(path);
}

export function openAtomicFile(path: string): Sink {
  let destination = path;
  let mode: number | undefined;
  try {
    // Through a symlink, replace the file it points to, not the link.
    destination = realpathSync(path);
    const stat = statSync(destination);
    if (stat.isDirectory()) throw new UsageError(`${path} is a directory`);
    mode = stat.mode & 0o7777;
  } catch (error) {
    if (error instanceof UsageError) throw error;
    // No such file yet: it is created with the default mode.
  }
  const temporary = join(
    dirname(destination),
    `.${basename(destination)}.grpo-roc-${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
  );
  let fd: number;
  try {
    fd = openSync(temporary, "wx");
    if (mode !== undefined) fchmodSync(fd, mode);
  } catch (error) {
    throw new UsageError(`cannot write ${path}: ${systemMessage(error)}`);
  }
  return new AtomicFileSink(destination, temporary, fd);
}
