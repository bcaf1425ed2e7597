/**
 * RL from the warm start, with plain GRPO or GRPO-RoC, through the library's own pipeline. One step, for P prompts:
 *
 *   sample   GRPO: G rollouts per prompt. RoC: 2G (twice the sampling, as in the paper's 32 → 16).
 *   select   rocPipeline(…, keepPerGroup: G): groups whose rewards are all equal are dropped in both methods (no
 *            signal); a GRPO group of exactly G is kept whole, so GRPO goes through the same code with no selection;
 *            a RoC group of 2G is cut to G: negatives uniformly, positives preferring low p_err + p_format, scored
 *            from the structured tool calls (every failure kind counts). Advantages come after, over the kept G.
 *   update   packTrainBatch + trainStep with lossPresets.paper (clip 0.2 / 0.28, token-mean, no KL), `epochs`
 *            optimizer steps on the batch (the second sees ratios ≠ 1, so clipping can fire).
 *
 * Both methods therefore see the same prompts, train on at most G rollouts per prompt, and make the same number of
 * updates; the only difference is which correct rollouts they learn from.
 */
import * as tf from "@tensorflow/tfjs";
import { advantagePresets, lossPresets, rocPipeline, rocPresets, type Rollout } from "grpo-roc";
import { packTrainBatch, trainStep } from "grpo-roc/tfjs";
import type { Policy } from "./policy.js";
import { rng } from "./rng.js";
import { sampleEpisodes, type Episode } from "./rollout.js";
import { rolloutStats, type RolloutStats } from "./stats.js";
import { trainingTask, type Task } from "./tasks.js";
import { VOCAB_SIZE } from "./tokens.js";

export type Method = "grpo" | "roc";

export interface RlConfig {
  readonly steps: number;
  /** Prompts per step. */
  readonly prompts: number;
  /** G: rollouts trained on per prompt. RoC samples 2G. */
  readonly groupSize: number;
  readonly learningRate: number;
  readonly epochs: number;
  readonly maxGradNorm: number;
  /** Held-out evaluation at step 0, every `evalEvery` steps and at the end: `evalSamples` rollouts of each task. */
  readonly evalEvery: number;
  readonly evalSamples: number;
}

export interface StepRecord {
  readonly step: number;
  /** Every rollout sampled this step (G or 2G per prompt): the policy's own behaviour on training prompts. */
  readonly sampled: RolloutStats;
  /** The rollouts kept for the update: what the policy learns from. */
  readonly trained: RolloutStats;
  /** rocPipeline's report (GRPO: groups of exactly G, kept whole unless their rewards are all equal). */
  readonly roc: {
    readonly groupsIn: number;
    readonly groupsDroppedEqualRewards: number;
    readonly positivesSeen: number;
    readonly positivesKept: number;
    readonly negativesSeen: number;
    readonly negativesKept: number;
    readonly keptPositivesToolErrorRatio: number | null;
    readonly droppedPositivesToolErrorRatio: number | null;
  };
  /** Means over this step's updates; null when no group carried signal and nothing was trained. */
  readonly update: {
    readonly loss: number;
    readonly clipFraction: number;
    readonly approxKl: number;
    readonly gradNorm: number;
  } | null;
}

export interface EvalRecord {
  readonly step: number;
  readonly stats: RolloutStats;
}

export interface RunResult {
  readonly method: Method;
  readonly seed: number;
  readonly steps: StepRecord[];
  readonly evals: EvalRecord[];
  readonly seconds: number;
}

/** Held-out accuracy and tool use, at temperature 1. */
export function evaluate(policy: Policy, tasks: readonly Task[], samples: number, seed: number): RolloutStats {
  // The same draws at every evaluation, for both methods: differences come from the policy, not the dice.
  const random = rng(`eval/${seed}`);
  const repeated = tasks.flatMap((t) => Array.from({ length: samples }, () => t));
  return rolloutStats(sampleEpisodes(policy, repeated, random));
}

/** A rollout as RoC reads it: structured tool calls (with their outcomes), answers, turns and format. */
export function toRocRollout(episode: Episode, groupId: number, id: number): Rollout {
  return {
    id,
    groupId,
    reward: episode.reward,
    toolCalls: episode.toolCalls.map((c) => ({ outcome: c.outcome })),
    answers: episode.answers,
    turns: episode.turns,
    formatOk: episode.formatOk,
  };
}

export async function reinforce(
  policy: Policy,
  method: Method,
  seed: number,
  config: RlConfig,
  evalTasks: readonly Task[],
  onStep?: (record: StepRecord, evaluation: EvalRecord | undefined) => void,
): Promise<RunResult> {
  const started = performance.now();
  const optimizer = tf.train.adam(config.learningRate);
  const G = config.groupSize;
  const perPrompt = method === "roc" ? 2 * G : G;
  const steps: StepRecord[] = [];
  const evals: EvalRecord[] = [{ step: 0, stats: evaluate(policy, evalTasks, config.evalSamples, seed) }];
  try {
    for (let step = 1; step <= config.steps; step++) {
      // The same prompts for both methods at a given seed and step.
      const promptRandom = rng(`${seed}/prompts/${step}`);
      const prompts = Array.from({ length: config.prompts }, () => trainingTask(promptRandom));
      const tasks = prompts.flatMap((t) => Array.from({ length: perPrompt }, () => t));
      const episodes = sampleEpisodes(policy, tasks, rng(`${seed}/${method}/sample/${step}`));
      const rollouts = episodes.map((e, i) => toRocRollout(e, Math.floor(i / perPrompt), i % perPrompt));

      const selection = rocPipeline(rollouts, {
        roc: { ...rocPresets.paper, keepPerGroup: G, seed: `${seed}/${step}` },
        advantages: advantagePresets.verl,
      });
      const kept = Array.from(selection.kept, (i) => episodes[i]!);
      const m = selection.roc.metrics;

      let update: StepRecord["update"] = null;
      if (kept.length > 0) {
        const batch = packTrainBatch(
          kept.map((e) => ({ tokens: e.tokens, mask: e.mask, oldLogp: e.logp })),
          selection.advantages,
        );
        const sum = { loss: 0, clipFraction: 0, approxKl: 0, gradNorm: 0 };
        for (let epoch = 0; epoch < config.epochs; epoch++) {
          const result = await trainStep({
            model: policy.model,
            batch,
            optimizer,
            loss: lossPresets.paper,
            variables: policy.variables,
            maxGradNorm: config.maxGradNorm,
            vocabSize: VOCAB_SIZE,
          });
          sum.loss += result.loss / config.epochs;
          sum.clipFraction += result.metrics.clipFraction / config.epochs;
          sum.approxKl += result.metrics.approxKl / config.epochs;
          sum.gradNorm += result.gradNorm / config.epochs;
        }
        update = sum;
      }
      const record: StepRecord = {
        step,
        sampled: rolloutStats(episodes),
        trained: rolloutStats(kept),
        roc: {
          groupsIn: m.groups.in,
          groupsDroppedEqualRewards: m.groups.droppedEqualRewards,
          positivesSeen: m.positives.seen,
          positivesKept: m.positives.kept,
          negativesSeen: m.negatives.seen,
          negativesKept: m.negatives.kept,
          keptPositivesToolErrorRatio: m.keptPositives.toolErrorRatio,
          droppedPositivesToolErrorRatio: m.droppedPositives.toolErrorRatio,
        },
        update,
      };
      steps.push(record);
      let evaluation: EvalRecord | undefined;
      if (step % config.evalEvery === 0 || step === config.steps) {
        evaluation = { step, stats: evaluate(policy, evalTasks, config.evalSamples, seed) };
        evals.push(evaluation);
      }
      onStep?.(record, evaluation);
    }
  } finally {
    optimizer.dispose();
  }
  return { method, seed, steps, evals, seconds: (performance.now() - started) / 1000 };
}
