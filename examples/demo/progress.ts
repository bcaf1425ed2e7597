/**
 * A progress bar on stderr (stdout stays for the summary table). On a terminal it redraws one line in place; when
 * stderr is a file or a pipe (CI, a test) it writes a plain line at each new phase and every 10%, never "\r".
 */
export interface ProgressOptions {
  readonly stream?: NodeJS.WriteStream;
  /** Overrides the stream's isTTY (for tests). */
  readonly tty?: boolean;
}

const formatTime = (seconds: number) => {
  const s = Math.max(0, Math.round(seconds));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
};

export class Progress {
  private readonly stream: NodeJS.WriteStream;
  private readonly tty: boolean;
  private readonly started = performance.now();
  private done = 0;
  private label = "";
  private lastDraw = 0;
  private lastDecile = -1;

  /** `total`: the run's work in arbitrary units (the caller weighs each piece by its expected time). */
  constructor(
    private total: number,
    options: ProgressOptions = {},
  ) {
    this.stream = options.stream ?? process.stderr;
    this.tty = options.tty ?? this.stream.isTTY === true;
  }

  /** A new phase: shown at once, on its own line when not on a terminal. */
  phase(label: string): void {
    this.label = label;
    if (this.tty) this.draw(true);
    else this.stream.write(`[${formatTime(this.elapsed())}] ${label}\n`);
  }

  /** Less work than planned (e.g. a cached warm start). */
  skip(units: number): void {
    this.total = Math.max(this.done, this.total - units);
  }

  advance(units: number, label?: string): void {
    this.done = Math.min(this.total, this.done + units);
    if (label !== undefined) this.label = label;
    if (this.tty) {
      this.draw(false);
      return;
    }
    const decile = Math.floor((10 * this.done) / this.total);
    if (decile > this.lastDecile) {
      this.lastDecile = decile;
      this.stream.write(
        `[${formatTime(this.elapsed())}] ${Math.round((100 * this.done) / this.total)}% ${this.label}${this.eta()}\n`,
      );
    }
  }

  /** Ends the bar's line (the summary follows on stdout). */
  finish(message: string): void {
    if (this.tty) this.stream.write(`\r\x1b[2K${message}\n`);
    else this.stream.write(`[${formatTime(this.elapsed())}] ${message}\n`);
  }

  private elapsed(): number {
    return (performance.now() - this.started) / 1000;
  }

  private eta(): string {
    // The first few percent include start-up and give a wild estimate.
    if (this.done < 0.03 * this.total || this.done >= this.total) return "";
    return ` · ETA ${formatTime((this.elapsed() * (this.total - this.done)) / this.done)}`;
  }

  private draw(force: boolean): void {
    const now = performance.now();
    if (!force && now - this.lastDraw < 100) return;
    this.lastDraw = now;
    const width = 28;
    const fraction = this.total === 0 ? 1 : this.done / this.total;
    const filled = Math.round(fraction * width);
    const bar = "█".repeat(filled) + "░".repeat(width - filled);
    const columns = this.stream.columns ?? 100;
    const line = `${bar} ${String(Math.round(fraction * 100)).padStart(3)}% ${formatTime(this.elapsed())}${this.eta()} · ${this.label}`;
    this.stream.write(`\r\x1b[2K${line.slice(0, columns - 1)}`);
  }
}
