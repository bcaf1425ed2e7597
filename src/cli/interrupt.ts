/**
 * Clean-ups that must run when the process is interrupted: they are synchronous, because a signal can arrive while
 * the main loop is blocked waiting for input and would never reach an `await` that checks a flag.
 */
const cleanups = new Set<() => void>();
let installed = false;

/** Registers `cleanup` to run on SIGINT, SIGTERM or SIGHUP; returns a function that unregisters it. */
export function onInterrupt(cleanup: () => void): () => void {
  cleanups.add(cleanup);
  return () => cleanups.delete(cleanup);
}

const EXIT_CODE: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };

export function installInterruptHandlers(): void {
  if (installed) return;
  installed = true;
  for (const signal of Object.keys(EXIT_CODE) as NodeJS.Signals[]) {
    process.on(signal, () => {
      for (const cleanup of cleanups) {
        try {
          cleanup();
        } catch {
          // Keep going: the other clean-ups (temporary files) still matter.
        }
      }
      process.exit(EXIT_CODE[signal]);
    });
  }
}
