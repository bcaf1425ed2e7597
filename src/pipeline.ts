import * as z from "zod/mini";
import { pure } from "./pure.js";
import { advantages, type AdvantageOptionsInput } from "./advantages/index.js";
import { parseOrThrow } from "./errors.js";
import { resampleOnCorrect, type RocResult } from "./roc/resample.js";
import { rewardOf, type RocOptionsInput, type Rollout } from "./roc/schema.js";

/** rocPipeline's options: one object for each of its two steps. */
export interface PipelineOptions {
  /** Resample-on-Correct's options: keepPerGroup (G), and a seed in paper mode; see `rocPresets`. */
  readonly roc: RocOptionsInput;
  /** The advantages' options over the kept rollouts; default verl's GRPO (see `advantagePresets`). */
  readonly advantages?: AdvantageOptionsInput | undefined;
}

/** What to train on: the kept rollouts with their advantages, and RoC's report. */
export interface PipelineResult {
  /** Indices into the input of the rollouts to train on, ascending. */
  readonly kept: Int32Array;
  /** advantages[k] belongs to rollout kept[k]. */
  readonly advantages: Float64Array;
  /** RoC's full result: what was dropped and why, per-group reports, penalties and metrics to log. */
  readonly roc: RocResult;
}

/** Each part is validated where it is used; here only that both parts are where they belong. */
const pipelineOptionsSchema = /* @__PURE__ */ pure(() =>
  z.strictObject({ roc: z.looseObject({}), advantages: z.optional(z.looseObject({})) }),
);

/**
 * One training step's selection: RoC first, then advantages over the kept rollouts only (docs/spec.md §1). Rollouts
 * the infrastructure failed are not kept (`roc.infraFailures: "drop"`, the default), so they are in no group's
 * statistics: each group's advantages are those it would have without them.
 *
 * @throws ValidationError naming the rollout and field (`rollouts[3].toolCalls`) or the option at fault.
 */
export function rocPipeline(rollouts: readonly Rollout[], options: PipelineOptions): PipelineResult {
  parseOrThrow(pipelineOptionsSchema, options, "options");
  const roc = resampleOnCorrect(rollouts, options.roc);
  return { kept: roc.kept, advantages: keptAdvantages(rollouts, roc, options.advantages), roc };
}

/**
 * The advantages of the rollouts RoC kept, computed over those only: rocPipeline's second step. Internal, not
 * exported from the package: the command line runs RoC on rollouts it has already checked (resampleValidated).
 */
export function keptAdvantages(
  rollouts: readonly Rollout[],
  roc: RocResult,
  options: AdvantageOptionsInput | undefined,
): Float64Array {
  const keptRollouts = Array.from(roc.kept, (i) => rollouts[i]!);
  return advantages(
    keptRollouts.map(rewardOf),
    keptRollouts.map((r) => r.groupId),
    options,
  );
}
