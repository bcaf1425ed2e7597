/**
 * `npm run demo`: a small agentic RL run in TensorFlow.js on the cpu backend. A tiny autoregressive policy answers
 * "Q a a * b b =" by calling a stack-language tool (tool.ts), reading its output and answering; the reward is only
 * whether the answer is right. From one shared warm start it trains with plain GRPO (G rollouts a prompt) and with
 * GRPO-RoC (2G sampled, G kept) at the same seed and number of updates, over several seeds, and reports the paper's
 * figure in miniature: held-out accuracy, and the tool-error ratio inside correct rollouts, over RL steps.
 *
 * Output: a progress bar on stderr, summary tables on stdout (per method, per seed, and the paired comparison), and
 * in --out (default out/demo; out/demo-quick with --quick) metrics.json (every step of every run), figure.svg and
 * figure.png. `npm run demo -- --help` lists the flags.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { figureSvg, svgToPng } from "./chart.js";
import { parseConfig, USAGE, UsageError, type DemoConfig } from "./config.js";
import { Progress } from "./progress.js";
import { compare, curves, describeSeeds, formatSummary, METHOD_LABEL, METHODS, summarize } from "./report.js";
import { reinforce, type RunResult } from "./rl.js";
import { evaluationTasks } from "./tasks.js";
import { warmStart } from "./warmstart.js";

/** Bumped when metrics.json changes shape. */
export const METRICS_SCHEMA = "grpo-roc-demo/2";

// Progress units, roughly proportional to time: an RL step samples, updates twice and now and then evaluates.
const WARM_START_UNIT = 1;
const RL_STEP_UNIT = 1.6;

async function run(config: DemoConfig): Promise<void> {
  const started = performance.now();
  // PROD silences tfjs's "install tfjs-node" banner (it cannot install on most machines without downloads).
  tf.env().set("PROD", true);
  await tf.setBackend("cpu");
  await tf.ready();
  mkdirSync(config.out, { recursive: true });

  const runsTotal = config.seeds.length * METHODS.length;
  const progress = new Progress(config.warmStart.steps * WARM_START_UNIT + runsTotal * config.rl.steps * RL_STEP_UNIT);

  progress.phase(
    `warm start: ${config.warmStart.steps} supervised steps on the messy teacher's demonstrations, unless cached`,
  );
  const cachePath = join(config.out, `warm-start-${config.warmStart.steps}x${config.warmStart.batch}.json`);
  const warm = await warmStart(config.warmStart, { path: cachePath, reuse: !config.fresh }, (step, loss) =>
    progress.advance(WARM_START_UNIT, `warm start ${step}/${config.warmStart.steps}, loss ${loss.toFixed(3)}`),
  );
  if (warm.cacheProblem !== undefined)
    progress.phase(`retrained the warm start: the cached one was ${warm.cacheProblem}`);
  if (warm.cached) {
    progress.skip(config.warmStart.steps * WARM_START_UNIT);
    progress.phase(`warm start loaded from ${cachePath} (loss ${warm.loss.toFixed(3)}; --fresh retrains it)`);
  }

  const evalTasks = evaluationTasks(config.evalTasks);
  const runs: RunResult[] = [];
  for (const seed of config.seeds) {
    for (const method of METHODS) {
      const label = `${METHOD_LABEL[method]} seed ${seed} (${runs.length + 1}/${runsTotal})`;
      progress.phase(label);
      const policy = warm.policy.clone();
      try {
        runs.push(
          await reinforce(policy, method, seed, config.rl, evalTasks, (record, evaluation) => {
            const acc = evaluation === undefined ? "" : `, held-out accuracy ${evaluation.stats.accuracy.toFixed(2)}`;
            progress.advance(RL_STEP_UNIT, `${label} step ${record.step}/${config.rl.steps}${acc}`);
          }),
        );
      } finally {
        policy.dispose();
      }
    }
  }
  warm.policy.dispose();
  const seconds = (performance.now() - started) / 1000;
  progress.finish(`done in ${(seconds / 60).toFixed(1)} min`);

  const summary = summarize(runs);
  const paired = compare(runs);
  const metrics = {
    schema: METRICS_SCHEMA,
    createdAt: new Date().toISOString(),
    backend: tf.getBackend(),
    seconds,
    config: {
      seeds: config.seeds,
      warmStart: config.warmStart,
      rl: config.rl,
      evalTasks: config.evalTasks,
      methods: {
        grpo: `G = ${config.rl.groupSize} rollouts per prompt`,
        roc: `2G = ${2 * config.rl.groupSize} sampled, G kept by rocPipeline (paper mode)`,
      },
    },
    warmStart: { loss: warm.loss, seconds: warm.seconds, cached: warm.cached },
    summary,
    // a: GRPO, b: GRPO-RoC; each difference is b − a on one seed.
    paired: { a: "grpo", b: "roc", ...paired },
    curves: curves(runs),
    runs,
  };
  const svg = figureSvg(
    metrics.curves,
    `GRPO vs GRPO-RoC on a toy tool-use task, ${describeSeeds(config.seeds)} (tfjs cpu)`,
  );
  writeFileSync(join(config.out, "metrics.json"), `${JSON.stringify(metrics, null, 1)}\n`);
  writeFileSync(join(config.out, "figure.svg"), svg);
  writeFileSync(join(config.out, "figure.png"), svgToPng(svg));

  process.stdout.write(
    `${formatSummary(summary, paired, {
      seeds: config.seeds,
      steps: config.rl.steps,
      evalRollouts: config.evalTasks * config.rl.evalSamples,
      seconds,
    })}\n\nWrote ${join(config.out, "metrics.json")}, figure.svg and figure.png.\n`,
  );
}

try {
  const config = parseConfig(process.argv.slice(2));
  if (config === null) process.stdout.write(USAGE);
  else await run(config);
} catch (error) {
  if (error instanceof UsageError) {
    process.stderr.write(`${error.message}\n\n${USAGE}`);
    process.exitCode = 2;
  } else {
    throw error;
  }
}
