import { z } from "zod";
import { advantages, type AdvantageOptionsInput } from "./advantages/index.js";
import { parseOrThrow } from "./errors.js";
import { resampleOnCorrect, type RocResult } from "./roc/resample.js";
import { rewardOf, type RocOptionsInput, type Rollout } from "./roc/schema.js";

export interface PipelineOptions {
  readonly roc: RocOptionsInput;
  readonly advantages?: AdvantageOptionsInput | undefined;
}

export interface PipelineResult {
  /** Indices into the input of the rollouts to train on, ascending. */
  readonly kept: Int32Array;
  /** advantages[k] belongs to rollout kept[k]. */
  readonly advantages: Float64Array;
  readonly roc: RocResult;
}

/** Each part is validated where it is used; here only that both parts are where they belong. */
const pipelineOptionsSchema = z.strictObject({ roc: z.looseObject({}), advantages: z.looseObject({}).optional() });

/** One training step's selection: RoC first, then advantages over the kept rollouts only (docs/spec.md §1). */
export function rocPipeline(rollouts: readonly Rollout[], options: PipelineOptions): PipelineResult {
  parseOrThrow(pipelineOptionsSchema, options, "options");
  const roc = resampleOnCorrect(rollouts, options.roc);
  const keptRollouts = Array.from(roc.kept, (i) => rollouts[i]!);
  return {
    kept: roc.kept,
    advantages: advantages(
      keptRollouts.map(rewardOf),
      keptRollouts.map((r) => r.groupId),
      options.advantages,
    ),
    roc,
  };
}
