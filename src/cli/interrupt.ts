import { CLEAN_EXIT_SIGNALS, type CleanExitSignal, signalExitCode } from "./exit.js";

/**
 * Clean-ups that must run when the process is interrupted: they are synchronous, because a signal can arrive while
 * the main loop is blocked waiting for input and would never reach an `await` that checks a flag. They also run when
 * the process exits any other way with them still registered (an internal error), so that no temporary file
 * outlives the process that made it.
 */
const cleanups = new Set<() => void>();
let installed = false;

/** Registers `cleanup` for a signal of CLEAN_EXIT_SIGNALS or an early exit; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

function runCleanups(): void {
  for (const cleanup of [...cleanups]) {
    cleanups.delete(cleanup);
    try {
      cleanup();
    } catch {
      // Keep going: the other clean-ups (temporary files) still matter.
    }
  }
}

/** On each signal of CLEAN_EXIT_SIGNALS: the clean-ups, then exit 128 + its number (SIGINT 130, SIGTERM 143). */
export function installInterruptHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of CLEAN_EXIT_SIGNALS) process.on(signal, () => exitAfterSignal(signal));
  process.on("exit", runCleanups);
}

function exitAfterSignal(signal: CleanExitSignal): void {
  runCleanups();
  process.exit(signalExitCode(signal));
}
