import type { ResolvedBatcherOptions } from "./options.js";

/** Groups seen, and how many of them were informative. */
export interface GroupCounts {
  /** Groups pushed. */
  readonly seen: number;
  /** Those with at least one kept rollout of non-zero advantage (surplus ones included: they were informative). */
  readonly informative: number;
}

/**
 * The counts behind the refill estimate: those of the batch being filled, and of the last `window` batches emitted.
 * Immutable: a call that is refused puts the batcher's window back as it was.
 */
export interface FractionWindow {
  /** The batch being filled. */
  readonly current: GroupCounts;
  /** The batches emitted most recently, oldest first, at most `window` of them. */
  readonly recent: readonly GroupCounts[];
}

export const EMPTY_WINDOW: FractionWindow = { current: { seen: 0, informative: 0 }, recent: [] };

/** The window after one more group. */
export function countGroup(window: FractionWindow, informative: boolean): FractionWindow {
  const { seen, informative: count } = window.current;
  return { ...window, current: { seen: seen + 1, informative: count + (informative ? 1 : 0) } };
}

/** The window once the batch being filled is emitted: its counts join the recent ones, and a new batch begins. */
export function closeBatch(window: FractionWindow, options: ResolvedBatcherOptions): FractionWindow {
  const emitted = [...window.recent, window.current];
  return {
    current: EMPTY_WINDOW.current,
    recent: emitted.slice(Math.max(0, emitted.length - options.estimate.window)),
  };
}

/**
 * The running informative fraction: (informative + prior·priorWeight) / (seen + priorWeight) over the window, the
 * prior alone before any group (with priorWeight 0).
 */
export function runningFraction(window: FractionWindow, options: ResolvedBatcherOptions): number {
  const { numerator, denominator } = fractionTerms(window, options);
  return denominator === 0 ? options.estimate.prior : numerator / denominator;
}

/**
 * Prompts to request so that `needed` more informative groups arrive, on average: ⌈needed / f⌉ with f the running
 * fraction, or `minFraction` where f is lower. Computed as needed·denominator / numerator, rounded once, so that 11
 * informative groups of 15 ask for 15 prompts for 11 groups, not 16 (11 / (11/15) rounds to 15.000000000000002).
 */
export function promptsToRequest(needed: number, window: FractionWindow, options: ResolvedBatcherOptions): number {
  const fraction = runningFraction(window, options);
  if (fraction < options.estimate.minFraction) return Math.ceil(needed / options.estimate.minFraction);
  const { numerator, denominator } = fractionTerms(window, options);
  return denominator === 0 ? Math.ceil(needed / fraction) : Math.ceil((needed * denominator) / numerator);
}

function fractionTerms(window: FractionWindow, options: ResolvedBatcherOptions) {
  let seen = window.current.seen;
  let informative = window.current.informative;
  for (const counts of window.recent) {
    seen += counts.seen;
    informative += counts.informative;
  }
  const { prior, priorWeight } = options.estimate;
  return { numerator: informative + prior * priorWeight, denominator: seen + priorWeight };
}
