/**
 * The warm start (rStar2-Agent's "non-reasoning cold start" in miniature): supervised next-token training on the
 * messy teacher's demonstrations, so the policy starts RL using the tool often, and often badly. RL needs it: from
 * random weights no rollout is ever correct, every group's rewards are equal, and nothing is trained.
 *
 * One warm start is shared by every seed and both methods, and cached on disk: later runs skip it.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import * as tf from "@tensorflow/tfjs";
import { packTrainBatch, tokenLogProbsTf } from "grpo-roc/tfjs";
import { demonstrate } from "./demos.js";
import { Policy, SLOTS } from "./policy.js";
import { rng } from "./rng.js";
import { trainingTask } from "./tasks.js";

export interface WarmStartConfig {
  readonly steps: number;
  /** Demonstrations per step. */
  readonly batch: number;
  /** Adam's learning rate. */
  readonly learningRate: number;
}

/** Bump when the policy's inputs or the teacher change: a cached warm start from another version is not reused. */
const CACHE_VERSION = 1;

interface CacheFile {
  readonly key: string;
  readonly loss: number;
  readonly seconds: number;
  readonly weights: readonly { readonly shape: number[]; readonly base64: string }[];
}

export interface WarmStartResult {
  readonly policy: Policy;
  readonly loss: number;
  /** Seconds the training took (when it ran; the cached run's time when loaded). */
  readonly seconds: number;
  readonly cached: boolean;
  /** Why a cache file that was there was not used. */
  readonly cacheProblem?: string;
}

const cacheKey = (config: WarmStartConfig) => JSON.stringify({ version: CACHE_VERSION, slots: SLOTS, ...config });

/**
 * Trains the warm start and saves it to `cachePath`, or loads it from there when that file was made with the same
 * configuration and `reuse` is not false.
 */
export async function warmStart(
  config: WarmStartConfig,
  cache: { readonly path?: string; readonly reuse?: boolean } = {},
  onStep?: (step: number, loss: number) => void,
): Promise<WarmStartResult> {
  const key = cacheKey(config);
  const cachePath = cache.path;
  let cacheProblem: string | undefined;
  if (cachePath !== undefined && cache.reuse !== false && existsSync(cachePath)) {
    try {
      const file = JSON.parse(readFileSync(cachePath, "utf8")) as CacheFile;
      if (file.key === key) {
        const policy = Policy.load(file.weights.map((w) => ({ shape: w.shape, values: decode(w.base64) })));
        return { policy, loss: file.loss, seconds: file.seconds, cached: true };
      }
      cacheProblem = "made with other settings";
    } catch (error) {
      // An unreadable cache is rebuilt, and the caller says why.
      cacheProblem = `unreadable (${(error as Error).message})`;
    }
  }
  const started = performance.now();
  const policy = Policy.init(rng("init"));
  const loss = await train(policy, config, onStep);
  const seconds = (performance.now() - started) / 1000;
  if (cachePath !== undefined) {
    const weights = (await policy.save()).map((w) => ({ shape: w.shape, base64: encode(w.values) }));
    mkdirSync(dirname(cachePath), { recursive: true });
    writeFileSync(cachePath, JSON.stringify({ key, loss, seconds, weights } satisfies CacheFile));
  }
  return { policy, loss, seconds, cached: false, ...(cacheProblem === undefined ? {} : { cacheProblem }) };
}

const encode = (values: Float32Array) =>
  Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("base64");

/** Copied into a fresh buffer: a small Buffer is a view into a shared pool, at an offset Float32Array may not take. */
const decode = (base64: string) => new Float32Array(new Uint8Array(Buffer.from(base64, "base64")).buffer);

/** Cross-entropy on the tokens the teacher wrote (prompt and tool replies have mask 0). Returns the last loss. */
async function train(
  policy: Policy,
  config: WarmStartConfig,
  onStep?: (step: number, loss: number) => void,
): Promise<number> {
  const random = rng("warm-start");
  const optimizer = tf.train.adam(config.learningRate);
  let last = NaN;
  try {
    for (let step = 0; step < config.steps; step++) {
      const episodes = Array.from({ length: config.batch }, () => demonstrate(trainingTask(random), random));
      // packTrainBatch pads and checks the rollouts; the advantages are unused here.
      const batch = packTrainBatch(
        episodes.map((e) => ({ tokens: e.tokens, mask: e.mask })),
        new Float64Array(episodes.length),
      );
      const [rows, length] = batch.shape;
      // Position t predicts token t + 1: shift the targets and the mask left by one.
      const targets = new Int32Array(rows * length);
      const mask = new Float32Array(rows * length);
      for (let r = 0; r < rows; r++) {
        for (let t = 0; t + 1 < length; t++) {
          targets[r * length + t] = batch.tokens[r * length + t + 1]!;
          mask[r * length + t] = batch.mask[r * length + t + 1]!;
        }
      }
      const count = mask.reduce((s, m) => s + m, 0);
      const ids = tf.tensor2d(batch.tokens as Int32Array, [rows, length], "int32");
      const targetTensor = tf.tensor2d(targets, [rows, length], "int32");
      const maskTensor = tf.tensor2d(mask, [rows, length]);
      const loss = optimizer.minimize(
        () =>
          tf.neg(
            tf.div(tf.sum(tf.mul(tokenLogProbsTf(policy.model(ids), targetTensor), maskTensor)), count),
          ) as tf.Scalar,
        true,
        policy.variables,
      )!;
      last = (await loss.data())[0]!;
      tf.dispose([loss, ids, targetTensor, maskTensor]);
      onStep?.(step + 1, last);
    }
  } finally {
    optimizer.dispose();
  }
  return last;
}
