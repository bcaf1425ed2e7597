/**
 * The structured rollouts of the benchmarks (`npm run bench`, `npm run bench:serve`): a training step of the paper's
 * size, generated from a seeded random source, so that every run measures the same work.
 */
import type { Rollout, ToolOutcome } from "../src/index.js";

/** The paper's step: 512 prompts, 32 rollouts each, 16 kept. */
export const STRUCTURED = { groups: 512, perGroup: 32, keep: 16 } as const;

/** A seeded source of uniform numbers in [0, 1) (seedrandom's alea). */
export type Rng = () => number;

/** A uniform integer in [low, high]. */
export function intBetween(rng: Rng, low: number, high: number): number {
  return low + Math.floor(rng() * (high - low + 1));
}

/** A uniform choice among `items`. */
export function pick<T>(rng: Rng, items: readonly T[]): T {
  return items[Math.floor(rng() * items.length)]!;
}

/** A choice among `table`'s values with probability ∝ their weights. */
export function weighted<T>(rng: Rng, table: readonly (readonly [T, number])[]): T {
  let u = rng() * table.reduce((sum, [, weight]) => sum + weight, 0);
  for (const [value, weight] of table) {
    u -= weight;
    if (u < 0) return value;
  }
  return table[table.length - 1]![0];
}

/** Roughly the mix a sandbox returns early in training: mostly clean runs, a fair share of each failure. */
export const OUTCOME_WEIGHTS: readonly (readonly [ToolOutcome, number])[] = [
  ["ok", 0.7],
  ["execution_error", 0.15],
  ["parse_error", 0.08],
  ["timeout", 0.07],
];

/** Answers given per rollout: mostly one, some none or several (p_format). */
export const ANSWER_COUNT_WEIGHTS: readonly (readonly [number, number])[] = [
  [0, 0.1],
  [1, 0.7],
  [2, 0.12],
  [3, 0.08],
];

/** STRUCTURED.groups groups of STRUCTURED.perGroup rollouts, group after group. */
export function structuredRollouts(rng: Rng): Rollout[] {
  const rollouts: Rollout[] = [];
  for (let g = 0; g < STRUCTURED.groups; g++) {
    // A spread of easy and hard prompts; a few groups come out all-correct or all-wrong and are dropped.
    const successRate = rng();
    for (let j = 0; j < STRUCTURED.perGroup; j++) {
      const turns = intBetween(rng, 1, 10);
      rollouts.push({
        groupId: `prompt-${g}`,
        reward: rng() < successRate ? 1 : 0,
        toolCalls: Array.from({ length: intBetween(rng, 0, turns - 1) }, () => ({
          outcome: weighted(rng, OUTCOME_WEIGHTS),
        })),
        answers: weighted(rng, ANSWER_COUNT_WEIGHTS),
        turns,
      });
    }
  }
  return rollouts;
}
