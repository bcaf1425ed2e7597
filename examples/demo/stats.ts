/**
 * What the demo measures on a set of rollouts, and how two methods are compared over seeds. The paper's curve is
 * `toolErrorRatioCorrect`: failed tool calls / tool calls, counted inside the correct rollouts only (a correct
 * rollout that fumbled the tool on its way). Both methods run on the same seeds, so they are compared seed by seed:
 * a paired t interval for the mean difference and an exact sign test.
 */
import type { ToolOutcome } from "grpo-roc";
import type { Episode } from "./rollout.js";

export type OutcomeCounts = Record<ToolOutcome, number>;

export interface RolloutStats {
  readonly rollouts: number;
  readonly accuracy: number;
  /** Failed calls / calls over the correct rollouts; null when they made no call. */
  readonly toolErrorRatioCorrect: number | null;
  /** The same over every rollout. */
  readonly toolErrorRatioAll: number | null;
  /** Tool calls by outcome: of every rollout, and of the correct ones. */
  readonly calls: OutcomeCounts;
  readonly callsCorrect: OutcomeCounts;
  readonly callsPerRollout: number;
  /** Share of rollouts that answered without any tool call. */
  readonly noToolCall: number;
  /** Share of rollouts with a format issue: no answer, more than one, or not digits. */
  readonly formatIssues: number;
}

// The simulated sandbox never fails as infrastructure: infra_error stays 0, and is out of the totals as in p_err.
export const emptyCounts = (): OutcomeCounts => ({
  ok: 0,
  parse_error: 0,
  execution_error: 0,
  timeout: 0,
  infra_error: 0,
});

const failures = (counts: OutcomeCounts) => counts.parse_error + counts.execution_error + counts.timeout;
const total = (counts: OutcomeCounts) => counts.ok + failures(counts);

export function rolloutStats(episodes: readonly Episode[]): RolloutStats {
  const calls = emptyCounts();
  const callsCorrect = emptyCounts();
  let correct = 0;
  let noTool = 0;
  let formatIssues = 0;
  for (const e of episodes) {
    if (e.toolCalls.length === 0) noTool++;
    if (!e.formatOk) formatIssues++;
    if (e.reward > 0) correct++;
    for (const call of e.toolCalls) {
      calls[call.outcome]++;
      if (e.reward > 0) callsCorrect[call.outcome]++;
    }
  }
  const n = episodes.length;
  const ratio = (counts: OutcomeCounts) => (total(counts) === 0 ? null : failures(counts) / total(counts));
  return {
    rollouts: n,
    accuracy: n === 0 ? 0 : correct / n,
    toolErrorRatioCorrect: ratio(callsCorrect),
    toolErrorRatioAll: ratio(calls),
    calls,
    callsCorrect,
    callsPerRollout: n === 0 ? 0 : total(calls) / n,
    noToolCall: n === 0 ? 0 : noTool / n,
    formatIssues: n === 0 ? 0 : formatIssues / n,
  };
}

/** Mean and sample standard deviation (0 with one value, NaN with none). */
export function meanAndSd(values: readonly number[]): { mean: number; sd: number } {
  const n = values.length;
  if (n === 0) return { mean: NaN, sd: NaN };
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const sd = n < 2 ? 0 : Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1));
  return { mean, sd };
}

/**
 * P(|T| ≤ t) for Student's t with integer `df`, at θ = atan(t / √df): a finite sum, exact (Abramowitz & Stegun
 * 26.7.3–4), so no incomplete beta function is needed.
 */
function tCentralMass(theta: number, df: number): number {
  const c2 = Math.cos(theta) ** 2;
  // 1 + c2·1/2 + c2²·(1·3)/(2·4) + … for even df; 1 + c2·2/3 + c2²·(2·4)/(3·5) + … for odd df.
  let term = 1;
  let sum = df === 1 ? 0 : 1;
  for (let k = df % 2 === 0 ? 1 : 2; k <= df - 3; k += 2) {
    term *= (c2 * k) / (k + 1);
    sum += term;
  }
  return df % 2 === 0 ? Math.sin(theta) * sum : (2 / Math.PI) * (theta + Math.sin(theta) * Math.cos(theta) * sum);
}

/** The two-sided critical value of Student's t: the t with P(|T| ≤ t) = `confidence` (2.262 for df 9 at 0.95). */
export function tCritical(df: number, confidence = 0.95): number {
  if (!Number.isInteger(df) || df < 1) throw new RangeError(`df must be a positive integer, received ${df}`);
  if (!(confidence > 0 && confidence < 1)) throw new RangeError(`confidence must be in (0, 1), received ${confidence}`);
  // The mass rises monotonically in θ over [0, π/2): bisection on a bounded interval, to double precision.
  let lo = 0;
  let hi = Math.PI / 2;
  for (let i = 0; i < 64; i++) {
    const mid = (lo + hi) / 2;
    if (tCentralMass(mid, df) < confidence) lo = mid;
    else hi = mid;
  }
  return Math.sqrt(df) * Math.tan((lo + hi) / 2);
}

/**
 * Exact two-sided sign test: with no difference between the methods, each seed that differs is as likely to favour
 * either, so the count of one sign is Binomial(n, 1/2). Ties are left out, as the test prescribes.
 */
export function signTest(positive: number, negative: number): number {
  const n = positive + negative;
  let term = 0.5 ** n;
  let tail = term;
  for (let i = 0; i < Math.min(positive, negative); i++) {
    term *= (n - i) / (i + 1);
    tail += term;
  }
  return Math.min(1, 2 * tail);
}

export interface Pair {
  readonly seed: number;
  readonly a: number;
  readonly b: number;
}

/** Method B against method A on the same seeds: the per-seed differences B − A and what they show. */
export interface PairedComparison {
  readonly perSeed: readonly (Pair & { readonly difference: number })[];
  /** Mean and sample standard deviation of the differences. */
  readonly mean: number;
  readonly sd: number;
  /** The 95% paired t interval for the mean difference; null with one seed (no spread to measure). */
  readonly ci95: readonly [number, number] | null;
  /** Seeds where B − A is above 0, below 0, and exactly 0. */
  readonly higher: number;
  readonly lower: number;
  readonly ties: number;
  /** The sign test's two-sided p over the seeds that differ. */
  readonly signTestP: number;
}

export function pairedComparison(pairs: readonly Pair[]): PairedComparison {
  const perSeed = pairs.map((p) => ({ ...p, difference: p.b - p.a }));
  const differences = perSeed.map((p) => p.difference);
  const { mean, sd } = meanAndSd(differences);
  const n = differences.length;
  const half = n < 2 ? null : (tCritical(n - 1) * sd) / Math.sqrt(n);
  const higher = differences.filter((d) => d > 0).length;
  const lower = differences.filter((d) => d < 0).length;
  return {
    perSeed,
    mean,
    sd,
    ci95: half === null ? null : [mean - half, mean + half],
    higher,
    lower,
    ties: n - higher - lower,
    signTestP: signTest(higher, lower),
  };
}
