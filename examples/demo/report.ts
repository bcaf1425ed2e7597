/**
 * From the runs to the figures people read: per-method means and spreads over seeds, the paired comparison seed by
 * seed, the mean curves, and the summary tables printed at the end.
 */
import type { Method, RunResult } from "./rl.js";
import { emptyCounts, meanAndSd, type OutcomeCounts, type PairedComparison, pairedComparison } from "./stats.js";

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
  if (values.length === 0) return { mean: NaN, sd: NaN, min: NaN, max: NaN, perSeed: [] };
  return { ...meanAndSd(values), min: Math.min(...values), max: Math.max(...values), perSeed: [...values] };
}

/** null (no correct rollout made a call) counts as 0 failed calls: there was nothing messy to learn from. */
const orZero = (value: number | null) => value ?? 0;

/** The per-run numbers the summary and the paired comparison are made of. */
const finalAccuracy = (run: RunResult) => run.evals.at(-1)!.stats.accuracy;
const finalToolErrorRatio = (run: RunResult) => orZero(run.evals.at(-1)!.stats.toolErrorRatioCorrect);
const trainedToolErrorRatio = (run: RunResult) => {
  const ratios = run.steps.map((s) => s.trained.toolErrorRatioCorrect).filter((v): v is number => v !== null);
  return ratios.length === 0 ? 0 : ratios.reduce((s, v) => s + v, 0) / ratios.length;
};

function addCounts(into: OutcomeCounts, from: OutcomeCounts): void {
  for (const key of Object.keys(into) as (keyof OutcomeCounts)[]) into[key] += from[key];
}

export function summarize(runs: readonly RunResult[]): Record<Method, MethodSummary> {
  const byMethod = (method: Method): MethodSummary => {
    const mine = runs.filter((r) => r.method === method);
    const first = mine.map((r) => r.evals[0]!.stats);
    const finalCalls = emptyCounts();
    const finalCallsCorrect = emptyCounts();
    for (const run of mine) {
      addCounts(finalCalls, run.evals.at(-1)!.stats.calls);
      addCounts(finalCallsCorrect, run.evals.at(-1)!.stats.callsCorrect);
    }
    return {
      seeds: mine.length,
      accuracy: { start: spread(first.map((s) => s.accuracy)), final: spread(mine.map(finalAccuracy)) },
      toolErrorRatioCorrect: {
        start: spread(first.map((s) => orZero(s.toolErrorRatioCorrect))),
        final: spread(mine.map(finalToolErrorRatio)),
      },
      trainedToolErrorRatioCorrect: spread(mine.map(trainedToolErrorRatio)),
      finalCalls,
      finalCallsCorrect,
      seconds: spread(mine.map((r) => r.seconds)),
    };
  };
  return { grpo: byMethod("grpo"), roc: byMethod("roc") };
}

/** The numbers compared seed by seed, GRPO-RoC − GRPO, in the order the tables print them. */
export const PAIRED_METRICS = {
  accuracy: { label: "held-out accuracy, final", value: finalAccuracy },
  toolErrorRatioCorrect: { label: "tool-error ratio in correct rollouts, final", value: finalToolErrorRatio },
  trainedToolErrorRatioCorrect: {
    label: "… in the correct rollouts trained on*",
    value: trainedToolErrorRatio,
  },
} as const;
export type PairedMetric = keyof typeof PAIRED_METRICS;
const PAIRED_KEYS = Object.keys(PAIRED_METRICS) as PairedMetric[];

/** GRPO-RoC − GRPO on each seed both ran: the same warm start, prompts and evaluation draws, so a fair pair. */
export function compare(runs: readonly RunResult[]): Record<PairedMetric, PairedComparison> {
  const grpo = new Map(runs.filter((r) => r.method === "grpo").map((r) => [r.seed, r]));
  const pairs = runs
    .filter((r) => r.method === "roc" && grpo.has(r.seed))
    .map((roc) => ({ seed: roc.seed, grpo: grpo.get(roc.seed)!, roc }))
    .sort((x, y) => x.seed - y.seed);
  const by = (metric: PairedMetric) =>
    pairedComparison(
      pairs.map((p) => ({
        seed: p.seed,
        a: PAIRED_METRICS[metric].value(p.grpo),
        b: PAIRED_METRICS[metric].value(p.roc),
      })),
    );
  return Object.fromEntries(PAIRED_KEYS.map((m) => [m, by(m)])) as Record<PairedMetric, PairedComparison>;
}

/** "seed 7", "seeds 1–10", "seeds 1–3, 7": which seeds, with runs of consecutive ones as ranges. */
export function describeSeeds(seeds: readonly number[]): string {
  const sorted = [...seeds].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}–${sorted[j]}`);
    i = j + 1;
  }
  return `${sorted.length === 1 ? "seed" : "seeds"} ${parts.join(", ")}`;
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

const signed = (x: number) => (x > 0 ? `+${fixed(x)}` : fixed(x));
// Small p-values keep two significant digits: 0.0020 (10 of 10 seeds) is not 0.002 rounded from anything.
const pValue = (p: number) => (p >= 0.01 ? p.toFixed(3) : p.toPrecision(2));

/** The summary printed on stdout. */
export function formatSummary(
  summary: Record<Method, MethodSummary>,
  paired: Record<PairedMetric, PairedComparison>,
  context: { seeds: readonly number[]; steps: number; evalRollouts: number; seconds: number },
): string {
  const out: string[] = [];
  out.push(
    `GRPO vs GRPO-RoC: ${describeSeeds(context.seeds)} × ${context.steps} RL steps, held-out evaluation of ` +
      `${context.evalRollouts} rollouts; mean ± sd [min–max] over seeds; ` +
      `${(context.seconds / 60).toFixed(1)} min in all`,
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
    "Seed by seed, at the final evaluation (tool-error ratio: in the correct rollouts); both methods had the same",
    "warm start, prompts and evaluation draws on a seed:",
    table(
      [
        "seed",
        "accuracy: GRPO",
        "RoC",
        "RoC − GRPO",
        "tool-error ratio: GRPO",
        "RoC",
        "RoC − GRPO",
        "trained on*: GRPO",
        "RoC",
        "RoC − GRPO",
      ],
      paired.accuracy.perSeed.map((_, i) => [
        String(paired.accuracy.perSeed[i]!.seed),
        ...PAIRED_KEYS.flatMap((m) => {
          const p = paired[m].perSeed[i]!;
          return [fixed(p.a), fixed(p.b), signed(p.difference)];
        }),
      ]),
    ),
    "",
    `Paired over the ${paired.accuracy.perSeed.length} seeds, GRPO-RoC − GRPO: the mean difference with its 95% ` +
      "confidence interval (paired t), the seeds",
    "on which RoC was higher / lower / tied, and the exact two-sided sign test's p over the seeds that differ:",
    table(
      ["RoC − GRPO", "mean [95% CI]", "higher / lower / tied", "sign test p"],
      PAIRED_KEYS.map((m) => {
        const p = paired[m];
        const ci = p.ci95 === null ? "(one seed: no interval)" : `[${signed(p.ci95[0])}, ${signed(p.ci95[1])}]`;
        return [
          PAIRED_METRICS[m].label,
          `${signed(p.mean)} ${ci}`,
          `${p.higher} / ${p.lower} / ${p.ties}`,
          pValue(p.signTestP),
        ];
      }),
    ),
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
