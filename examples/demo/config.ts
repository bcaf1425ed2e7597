/**
 * The demo's settings and its command line. The defaults (10 seeds) take about 6 minutes on 2 busy CPU cores,
 * plus about a minute for the warm start the first time; --quick is a smoke run of about 20 s, written to its own
 * folder so it never replaces the full run's output.
 */
import { parseArgs } from "node:util";
import type { RlConfig } from "./rl.js";
import type { WarmStartConfig } from "./warmstart.js";

export interface DemoConfig {
  readonly seeds: readonly number[];
  readonly warmStart: WarmStartConfig;
  readonly rl: RlConfig;
  /** Held-out tasks per evaluation (each sampled rl.evalSamples times). */
  readonly evalTasks: number;
  readonly out: string;
  /** Retrain the warm start even when a cached one matches. */
  readonly fresh: boolean;
  readonly quick: boolean;
}

const range = (first: number, last: number) => Array.from({ length: last - first + 1 }, (_, i) => first + i);

const DEFAULTS = {
  // 10 seeds: enough for a paired comparison to say something (a sign test can reach p = 0.002).
  seeds: range(1, 10),
  out: "out/demo",
  warmStart: { steps: 120, batch: 32, learningRate: 1e-2 },
  // lr 5e-4: at 1e-3 both methods clean up their tool use within ~20 steps and the curves meet early.
  rl: {
    steps: 40,
    prompts: 8,
    groupSize: 4,
    learningRate: 5e-4,
    epochs: 2,
    maxGradNorm: 1,
    evalEvery: 4,
    evalSamples: 4,
  },
  // 128 tasks × 4 samples: a held-out accuracy to about ±0.015 (one sd), the same draws at every evaluation.
  evalTasks: 128,
} as const;

const QUICK = {
  seeds: [1],
  out: "out/demo-quick",
  warmStart: { steps: 40, batch: 32, learningRate: 1e-2 },
  rl: { ...DEFAULTS.rl, steps: 4, evalEvery: 2, evalSamples: 2 },
  evalTasks: 16,
} as const;

export const USAGE = `npm run demo -- [options]

  A small agentic RL run in TensorFlow.js (cpu backend): a tiny policy answers 2-digit products by calling a
  stack-language tool, trained with plain GRPO and with GRPO-RoC from the same warm start, over several seeds.

  --seeds LIST      which seeds (default ${DEFAULTS.seeds[0]}-${DEFAULTS.seeds.at(-1)}), each run with both methods:
                      7          one seed
                      1-10       a range, both ends included
                      3,5,9      a list; lists and ranges mix (1-5,101)
  --steps N         RL steps per run (default ${DEFAULTS.rl.steps})
  --eval-every N    evaluate every N steps (default ${DEFAULTS.rl.evalEvery})
  --out DIR         output folder (default ${DEFAULTS.out}; with --quick ${QUICK.out}): metrics.json, figure.svg,
                    figure.png, the cached warm start
  --fresh           retrain the warm start even if a cached one matches
  --quick           a smoke run (<1 min): seed ${QUICK.seeds.join(",")}, ${QUICK.rl.steps} steps, a short warm start
  --help            this text
`;

export class UsageError extends Error {}

// A run of one seed takes about half a minute: more than this is a typo, not a plan (and would fill memory).
const MAX_SEEDS = 1000;

/** Digits only: Number() would also take "1e3", "0x10", " 4" and "", none of which anyone means as a count. */
function positiveInt(name: string, text: string): number {
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < 1)
    throw new UsageError(`--${name} must be a positive integer, received "${text}"`);
  return value;
}

/** "7", "1-10", "3,5,9", "1-5,101": the seeds, ascending, each once. */
export function parseSeeds(text: string): number[] {
  const seeds: number[] = [];
  for (const part of text.split(",")) {
    const match = /^\s*(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (match === null)
      throw new UsageError(
        `--seeds takes a seed (7), a range (1-10) or a comma-separated list of them (1-5,101), received "${text}"`,
      );
    const first = positiveInt("seeds", match[1]!);
    const last = match[2] === undefined ? first : positiveInt("seeds", match[2]);
    if (last < first) throw new UsageError(`--seeds: the range "${part.trim()}" runs backwards, in "${text}"`);
    if (seeds.length + last - first + 1 > MAX_SEEDS)
      throw new UsageError(`--seeds: at most ${MAX_SEEDS} seeds (each takes about half a minute), received "${text}"`);
    seeds.push(...range(first, last));
  }
  seeds.sort((a, b) => a - b);
  const twice = seeds.find((seed, i) => seeds[i + 1] === seed);
  if (twice !== undefined) throw new UsageError(`--seeds names seed ${twice} twice: "${text}"`);
  return seeds;
}

function parseFlags(argv: readonly string[]) {
  try {
    return parseArgs({
      args: [...argv],
      options: {
        seeds: { type: "string" },
        steps: { type: "string" },
        "eval-every": { type: "string" },
        out: { type: "string" },
        fresh: { type: "boolean", default: false },
        quick: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

/** Parses argv (without node and the script); throws UsageError on a bad flag. Returns null for --help. */
export function parseConfig(argv: readonly string[]): DemoConfig | null {
  const values = parseFlags(argv);
  if (values.help) return null;
  const base = values.quick ? QUICK : DEFAULTS;
  const seeds = values.seeds === undefined ? [...base.seeds] : parseSeeds(values.seeds);
  const steps = values.steps === undefined ? base.rl.steps : positiveInt("steps", values.steps);
  const evalEvery =
    values["eval-every"] === undefined ? base.rl.evalEvery : positiveInt("eval-every", values["eval-every"]);
  return {
    seeds,
    warmStart: base.warmStart,
    rl: { ...base.rl, steps, evalEvery },
    evalTasks: base.evalTasks,
    out: values.out ?? base.out,
    fresh: values.fresh,
    quick: values.quick,
  };
}
