/** Redrawn at most this often: a redraw per line would cost more than the work on a fast input. */
const INTERVAL_MS = 100;
const BAR = 24;
/**
 * Unasked for, the bar appears only once a run has lasted this long: a short run prints its summary and nothing else.
 */
export const AUTO_DELAY_MS = 1000;

export type ProgressMode = "off" | "auto" | "forced";

/**
 * When the bar is drawn: never under --quiet; always under --progress; otherwise only on a terminal (stderr), and
 * not when the records themselves go to that terminal (stdout), where the bar would be cut into their lines.
 */
export function progressMode(settings: {
  quiet: boolean;
  forced: boolean;
  stderrIsTTY: boolean;
  recordsToTerminal: boolean;
}): ProgressMode {
  if (settings.quiet) return "off";
  if (settings.forced) return "forced";
  return settings.stderrIsTTY && !settings.recordsToTerminal ? "auto" : "off";
}

export interface ProgressOptions {
  readonly mode: ProgressMode;
  readonly label: string;
  /** Input size in bytes; undefined (stdin) shows a line count instead of a bar. */
  readonly total: number | undefined;
  readonly stream?: Pick<NodeJS.WriteStream, "write"> | undefined;
  /** Milliseconds; performance.now by default. */
  readonly now?: (() => number) | undefined;
}

/**
 * A one-line progress bar on stderr, by bytes read against the input's size, or by lines when the size is unknown.
 * In "auto" mode it waits AUTO_DELAY_MS before its first draw, so only a long file gets one.
 */
export class Progress {
  private bytes = 0;
  private lines = 0;
  private lastDraw = -Infinity;
  private drawn = false;
  private everDrawn = false;
  private readonly stream: Pick<NodeJS.WriteStream, "write">;
  private readonly now: () => number;
  private readonly showFrom: number;

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.now = options.now ?? (() => performance.now());
    this.showFrom = options.mode === "auto" ? this.now() + AUTO_DELAY_MS : -Infinity;
  }

  addBytes(bytes: number): void {
    this.bytes += bytes;
    this.maybeDraw();
  }

  addLine(): void {
    this.lines++;
  }

  private maybeDraw(): void {
    if (this.options.mode === "off") return;
    const now = this.now();
    if (now < this.showFrom || now - this.lastDraw < INTERVAL_MS) return;
    this.lastDraw = now;
    this.draw();
  }

  private draw(): void {
    const { label, total } = this.options;
    let text: string;
    if (total !== undefined && total > 0) {
      const fraction = Math.min(1, this.bytes / total);
      const filled = Math.round(fraction * BAR);
      const bar = "#".repeat(filled) + "-".repeat(BAR - filled);
      text =
        `${label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}%  ` +
        `${megabytes(this.bytes)}/${megabytes(total)} MB  ${this.lines.toLocaleString("en-US")} lines`;
    } else {
      text = `${label}  ${this.lines.toLocaleString("en-US")} lines  ${megabytes(this.bytes)} MB`;
    }
    // \r and erase-to-end-of-line: the bar rewrites itself in place.
    this.stream.write(`\r${text}\x1b[K`);
    this.drawn = true;
    this.everDrawn = true;
  }

  /** Erases the bar so the summary (or an error) starts on a clean line. */
  clear(): void {
    if (this.drawn) this.stream.write("\r\x1b[K");
    this.drawn = false;
  }

  /**
   * Draws the final state and keeps it on screen, so even a short input shows its 100% under --progress; a run too
   * short for the bar to have appeared in "auto" mode leaves no trace.
   */
  finish(): void {
    if (this.options.mode === "off" || (this.options.mode === "auto" && !this.everDrawn)) return;
    this.draw();
    this.stream.write("\n");
    this.drawn = false;
  }
}

function megabytes(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}
