import { constants } from "node:os";

/**
 * The exit codes, one rule each: 1 the input is invalid (a line named by its number); 2 the command line is wrong
 * (an unknown or malformed flag, or flags that contradict each other, such as two targets that are one file);
 * 3 a file cannot be read or written (including a closed output pipe); 128 + n after signal n; 70 a bug.
 */
export const EXIT = { ok: 0, invalidInput: 1, usage: 2, file: 3, internal: 70 } as const;

/** The signals after which grpo-roc removes its temporary files before it exits with 128 + the signal's number. */
export const CLEAN_EXIT_SIGNALS = ["SIGHUP", "SIGINT", "SIGQUIT", "SIGALRM", "SIGTERM"] as const;

export type CleanExitSignal = (typeof CLEAN_EXIT_SIGNALS)[number];

export function signalExitCode(signal: CleanExitSignal): number {
  return 128 + constants.signals[signal];
}

/** A file that cannot be read or written (missing, a directory, no permission, a full disk, a closed pipe): exit 3. */
export class FileError extends Error {
  override name = "FileError";
  /** The system's error code (EACCES, ENOSPC, EPIPE…), when there is one. */
  readonly code: string | undefined;

  constructor(message: string, code?: string) {
    super(message);
    this.code = code;
  }
}

/** "ENOENT: no such file or directory, stat 'x'" → "no such file or directory (ENOENT)". */
export function systemMessage(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException;
  if (code === undefined) return message;
  // The syscall and path go: the message names the file already.
  const text = message.replace(new RegExp(`^${code}: `), "").replace(/, \w+( '.*')?$/s, "");
  return `${text} (${code})`;
}

/** A FileError that says what could not be done (`what`, e.g. "cannot read rollouts.jsonl") and the system's why. */
export function fileError(what: string, error: unknown): FileError {
  if (error instanceof FileError) return error;
  return new FileError(`${what}: ${systemMessage(error)}`, (error as NodeJS.ErrnoException).code);
}

export function isSystemError(error: unknown): error is NodeJS.ErrnoException {
  return (
    error instanceof Error &&
    typeof (error as NodeJS.ErrnoException).code === "string" &&
    typeof (error as NodeJS.ErrnoException).syscall === "string"
  );
}
