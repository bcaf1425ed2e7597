/**
 * From the runs to the figures people read: per-method means and spreads over seeds, the mean curves, and the
 * summary table printed at the end.
 */
import type { Method, RunResult } from "./rl.js";
import { emptyCounts, type OutcomeCounts } from "./stats.js";

export const METHODS: readonly Method[] = ["grpo", "roc"];
export const METHOD_LABEL: Record<Method, string> = { grpo: "GRPO", roc: "GRPO-RoC" };

/** A value over seeds. */
export interface Spread {
  readonly mean: number;
  /** Sample standard deviation over seeds (0 with one seed). */
  readonly sd: number;
  readonly min: number;
  readonly max: number;
  readonly perSeed: readonly number[];
}

export interface MethodSummary {
  readonly seeds: number;
  /** Held-out accuracy at step 0 (the warm start) and at the last step. */
  readonly accuracy: { readonly start: Spread; readonly final: Spread };
  /** Held-out tool-error ratio inside correct rollouts, at step 0 and at the last step. */
  readonly toolErrorRatioCorrect: { readonly start: Spread; readonly final: Spread };
  /** The same ratio in the correct rollouts each update trained on, averaged over the steps: what RoC changes. */
  readonly trainedToolErrorRatioCorrect: Spread;
  /** Tool calls at the final evaluation by outcome, summed over seeds: of every rollout, and of the correct ones. */
  readonly finalCalls: OutcomeCounts;
  readonly finalCallsCorrect: OutcomeCounts;
  readonly seconds: Spread;
}

export function spread(values: readonly number[]): Spread {
  const n = values.length;
  if (n === 0) return { mean: NaN, sd: NaN, min: NaN, max: NaN, perSeed: [] };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  return { mean, sd, min: Math.min(...values), max: Math.max(...values), perSeed: [...values] };
}

/** null (no correct rollout made a call) counts as 0 failed calls: there was nothing messy to learn from. */
const orZero = (value: number | null) => value ?? 0;

function addCounts(into: OutcomeCounts, from: OutcomeCounts): void {
  for (const key of Object.keys(into) as (keyof OutcomeCounts)[]) into[key] += from[key];
}

export function summarize(runs: readonly RunResult[]): Record<Method, MethodSummary> {
  const byMethod = (method: Method): MethodSummary => {
    const mine = runs.filter((r) => r.method === method);
    const first = mine.map((r) => r.evals[0]!.stats);
    const last = mine.map((r) => r.evals.at(-1)!.stats);
    const finalCalls = emptyCounts();
    const finalCallsCorrect = emptyCounts();
    for (const stats of last) {
      addCounts(finalCalls, stats.calls);
      addCounts(finalCallsCorrect, stats.callsCorrect);
    }
    const trained = mine.map((r) => {
      const ratios = r.steps.map((s) => s.trained.toolErrorRatioCorrect).filter((v): v is number => v !== null);
      return ratios.length === 0 ? 0 : ratios.reduce((s, v) => s + v, 0) / ratios.length;
    });
    return {
      seeds: mine.length,
      accuracy: { start: spread(first.map((s) => s.accuracy)), final: spread(last.map((s) => s.accuracy)) },
      toolErrorRatioCorrect: {
        start: spread(first.map((s) => orZero(s.toolErrorRatioCorrect))),
        final: spread(last.map((s) => orZero(s.toolErrorRatioCorrect))),
      },
      trainedToolErrorRatioCorrect: spread(trained),
      finalCalls,
      finalCallsCorrect,
      seconds: spread(mine.map((r) => r.seconds)),
    };
  };
  return { grpo: byMethod("grpo"), roc: byMethod("roc") };
}

/** One point of a curve: a method's metric at an evaluation step, for one seed or the mean over seeds. */
export interface CurvePoint {
  readonly method: Method;
  readonly seed: number | "mean";
  readonly step: number;
  readonly accuracy: number;
  readonly toolErrorRatioCorrect: number | null;
}

export function curves(runs: readonly RunResult[]): CurvePoint[] {
  const points: CurvePoint[] = runs.flatMap((r) =>
    r.evals.map((e) => ({
      method: r.method,
      seed: r.seed,
      step: e.step,
      accuracy: e.stats.accuracy,
      toolErrorRatioCorrect: e.stats.toolErrorRatioCorrect,
    })),
  );
  const means: CurvePoint[] = [];
  for (const method of METHODS) {
    const steps = [...new Set(points.filter((p) => p.method === method).map((p) => p.step))].sort((a, b) => a - b);
    for (const step of steps) {
      const at = points.filter((p) => p.method === method && p.step === step);
      const ratios = at.map((p) => p.toolErrorRatioCorrect).filter((v): v is number => v !== null);
      means.push({
        method,
        seed: "mean",
        step,
        accuracy: spread(at.map((p) => p.accuracy)).mean,
        toolErrorRatioCorrect: ratios.length === 0 ? null : spread(ratios).mean,
      });
    }
  }
  return [...points, ...means];
}

const fixed = (x: number) => (Number.isFinite(x) ? x.toFixed(3) : "  -  ");
const withSpread = (s: Spread) =>
  s.perSeed.length < 2 ? fixed(s.mean) : `${fixed(s.mean)} ± ${fixed(s.sd)} [${fixed(s.min)}–${fixed(s.max)}]`;

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((r) => r[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("   ");
  return [line(header), widths.map((w) => "─".repeat(w)).join("   "), ...rows.map(line)].join("\n");
}

/** The summary printed on stdout. */
export function formatSummary(
  summary: Record<Method, MethodSummary>,
  context: { seeds: number; steps: number; evalRollouts: number; seconds: number },
): string {
  const out: string[] = [];
  out.push(
    `GRPO vs GRPO-RoC: ${context.seeds} seed${context.seeds === 1 ? "" : "s"} × ${context.steps} RL steps, held-out evaluation of ${context.evalRollouts} rollouts; ` +
      `mean ± sd [min–max] over seeds; ${(context.seconds / 60).toFixed(1)} min in all`,
    "",
  );
  const arrow = (start: Spread, final: Spread) => `${fixed(start.mean)} → ${withSpread(final)}`;
  out.push(
    table(
      [
        "method",
        "held-out accuracy: step 0 → final",
        "tool-error ratio in correct rollouts: step 0 → final",
        "… in the correct rollouts trained on*",
      ],
      METHODS.map((m) => {
        const s = summary[m];
        return [
          METHOD_LABEL[m],
          arrow(s.accuracy.start, s.accuracy.final),
          arrow(s.toolErrorRatioCorrect.start, s.toolErrorRatioCorrect.final),
          withSpread(s.trainedToolErrorRatioCorrect),
        ];
      }),
    ),
    "* failed / all tool calls in the correct rollouts each update learned from, mean over steps (RoC's lever)",
    "",
    "Tool calls at the final evaluation, by outcome (all seeds):",
    table(
      ["method", "rollouts", "ok", "parse_error", "execution_error", "timeout"],
      METHODS.flatMap((m) => {
        const s = summary[m];
        const row = (label: string, c: OutcomeCounts) => [
          METHOD_LABEL[m],
          label,
          String(c.ok),
          String(c.parse_error),
          String(c.execution_error),
          String(c.timeout),
        ];
        return [row("all", s.finalCalls), row("correct", s.finalCallsCorrect)];
      }),
    ),
  );
  return out.join("\n");
}
