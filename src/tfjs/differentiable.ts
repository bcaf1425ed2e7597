import * as tf from "@tensorflow/tfjs";
import * as z from "zod/mini";
import {
  lossMetrics,
  type MetricSums,
  type PolicyLossMetrics,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  parseOrThrow,
} from "../backends/contract.js";
import {
  computePolicyLossTensors,
  type PolicyLossTensorResult,
  type PolicyLossTensors,
  validatePolicyLossTensors,
} from "./loss.js";

/** The metric sums of one policy-loss pass, as scalars on the device (see PolicyLossTensorResult.counts). */
export type PolicyLossCounts = PolicyLossTensorResult["counts"];

/** Callbacks of policyLossTf, to get at what a scalar loss cannot carry. */
export interface PolicyLossTfHooks {
  /**
   * Receives the metric sums of the forward pass. They are `tf.keep`-ed, so they outlive the tidy scopes of
   * tf.variableGrads / optimizer.minimize: the receiver owns them and must dispose them, e.g. with
   * `readPolicyLossMetrics`, which reads and disposes them.
   */
  readonly onCounts?: ((counts: PolicyLossCounts) => void) | undefined;
}

/**
 * The policy loss as a differentiable tfjs op: the scalar loss of `policyLossTensors`, whose gradient with respect
 * to `logp` (and `entropy`, when given) is the analytic one, dy·grad (and dy·gradEntropy), not tfjs autodiff through
 * the clip branches. Every other input (oldLogp, advantages, mask, refLogp, importanceWeights) is a constant:
 * no gradient flows into it, even when it was computed from variables.
 *
 * Use it inside tf.variableGrads, tf.grad or optimizer.minimize, after `tokenLogProbsTf`:
 *
 * ```ts
 * const loss = optimizer.minimize(() => {
 *   const [logp, entropy] = tf.unstack(tokenLogProbsTf(model(ids), targets, { entropy: true }));
 *   return policyLossTf({ logp, entropy, oldLogp, advantages, mask }, lossPresets.paper);
 * }, true);
 * ```
 *
 * The forward pass and the gradient are computed together (the gradient is a few elementwise ops more); both are
 * freed with the tape. Called outside a gradient scope it returns the loss and keeps nothing.
 *
 * Validated as policyLossTensors validates (the typed-array kernels' paths and rules; `hooks` is strict too), before
 * anything is recorded on a tape: values the device holds only are checked at the next read of any tensor. An
 * empty batch (B·T = 0) gives loss 0 and zero gradients.
 */
export function policyLossTf(
  inputs: PolicyLossTensors,
  options: PolicyLossOptionsInput = {},
  hooks: PolicyLossTfHooks = {},
): tf.Scalar {
  parseOrThrow(hooksSchema, hooks, "hooks");
  return policyLossOp(inputs, validatePolicyLossTensors(inputs, options), hooks);
}

const hooksSchema = z.strictObject({
  onCounts: z.optional(
    z.custom<PolicyLossTfHooks["onCounts"]>((value) => typeof value === "function", { message: "expected a function" }),
  ),
});

/** policyLossTf on inputs and options already validated (trainStep validates its batch on the host). */
export function policyLossOp(
  inputs: PolicyLossTensors,
  resolved: PolicyLossOptions,
  hooks: PolicyLossTfHooks,
): tf.Scalar {
  const withEntropy = inputs.entropy !== undefined;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args[args.length - 1] as tf.GradSaveFunc;
    const logp = args[0] as tf.Tensor2D;
    const entropy = withEntropy ? (args[1] as tf.Tensor2D) : undefined;
    const result = computePolicyLossTensors({ ...inputs, logp, entropy }, resolved);
    // The gradient is part of the forward result: save it (tfjs keeps a clone until the backward pass is done).
    save(result.gradEntropy === undefined ? [result.grad] : [result.grad, result.gradEntropy]);
    if (hooks.onCounts !== undefined) hooks.onCounts(keepCounts(result.counts));
    return {
      value: result.loss,
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const gradLogp = tf.mul(dy, saved[0]!);
        if (entropy === undefined) return [gradLogp];
        // No entropy bonus: the entropy only fed the metric, its gradient is 0.
        const gradEntropy = saved[1] === undefined ? tf.zerosLike(entropy) : tf.mul(dy, saved[1]);
        return [gradLogp, gradEntropy];
      },
    };
  });
  return (withEntropy ? op(inputs.logp, inputs.entropy!) : op(inputs.logp)) as tf.Scalar;
}

function keepCounts(counts: PolicyLossCounts): PolicyLossCounts {
  for (const value of Object.values(counts)) if (value !== undefined) tf.keep(value);
  return counts;
}

/** The names of PolicyLossCounts, in the order readPolicyLossMetrics reads them. */
const COUNT_NAMES = [
  "tokens",
  "sequences",
  "clipped",
  "low",
  "high",
  "dual",
  "approxKl",
  "ratioMin",
  "ratioSum",
  "ratioMax",
  "klSum",
  "entropySum",
  "absLogRatioSum",
  "phiMean",
] as const;

/**
 * The reference backend's PolicyLossMetrics from the metric sums of a tfjs pass: one read from the device for all
 * of them. Disposes `counts`, and also the `extra` scalars, whose values come back in `extra` order.
 */
export async function readPolicyLossMetrics(
  counts: PolicyLossCounts,
  extra: readonly tf.Scalar[] = [],
): Promise<{ metrics: PolicyLossMetrics; extra: number[] }> {
  const present = COUNT_NAMES.filter((name) => counts[name] !== undefined);
  const scalars = [...present.map((name) => counts[name]!), ...extra];
  try {
    const values = scalars.length === 0 ? new Float32Array(0) : await readScalars(scalars);
    const get = (name: (typeof COUNT_NAMES)[number]) => {
      const index = present.indexOf(name);
      return index < 0 ? 0 : values[index]!;
    };
    const sums = Object.fromEntries(COUNT_NAMES.map((name) => [name, get(name)])) as unknown as MetricSums;
    const tokens = get("tokens");
    const meanAbsLogRatio =
      counts.absLogRatioSum === undefined ? undefined : tokens === 0 ? 0 : get("absLogRatioSum") / tokens;
    const phiMean = counts.phiMean === undefined ? undefined : get("phiMean");
    const metrics = lossMetrics(
      sums,
      counts.klSum !== undefined,
      counts.entropySum !== undefined,
      meanAbsLogRatio,
      phiMean,
    );
    return { metrics, extra: Array.from(values.subarray(present.length)) };
  } finally {
    tf.dispose(scalars);
  }
}

async function readScalars(scalars: readonly tf.Scalar[]): Promise<Float32Array> {
  const stacked = tf.tidy(() => tf.stack(scalars.map((s) => tf.cast(tf.reshape(s, []), "float32"))));
  try {
    return (await stacked.data()) as Float32Array;
  } finally {
    stacked.dispose();
  }
}
