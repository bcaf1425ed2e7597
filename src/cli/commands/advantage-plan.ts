import type { AdvantageOptions } from "../../advantages/index.js";
import { moments } from "../../stats.js";
import { needsBatchStd } from "../options.js";

/**
 * How advantages are computed group by group as the input streams. Everything but GRPO over the batch std is local
 * to a group, and the library computes it as it would over the whole input. For the batch std, the library is asked
 * for r − centre (no std) per group, and that is divided by (batch std + ε) here: the very operations the library
 * performs, in the same order, so the values are identical to the last bit (the CLI tests check it).
 */
export class AdvantagePlan {
  readonly library: AdvantageOptions;
  readonly needsBatch: boolean;
  private scale: number | undefined;

  constructor(readonly options: AdvantageOptions) {
    this.needsBatch = needsBatchStd(options);
    this.library = this.needsBatch ? { ...options, scaleByStd: false, stdScope: "group" } : options;
  }

  /** The rewards that enter the batch std, in input order (for the pipeline: the kept rollouts only). */
  setBatchRewards(rewards: Float64Array): void {
    // As the library: the std of a one-rollout batch is 0.
    const std = rewards.length > 1 ? moments(rewards, this.options).std : 0;
    this.scale = std + this.options.epsilon;
  }

  /** The library's per-group result turned into the final advantages. */
  finish(values: Float64Array): Float64Array {
    if (!this.needsBatch) return values;
    if (this.scale === undefined) throw new Error("batch std requested before the first pass");
    const scale = this.scale;
    return values.map((value) => value / scale);
  }
}
