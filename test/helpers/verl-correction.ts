/**
 * verl's rollout_correction config (threshold strings and all) as grpo-roc's correction options, for the golden
 * tests: "2.0" or 2.0 → { upper: 2 }; "0.5_5.0" → IcePop { lower: 0.5, upper: 5 }; rollout_rs "a,b" with one
 * threshold per option or one for all.
 */
import type {
  RolloutCorrectionOptionsInput,
  RolloutRejectionCriterionInput,
  RolloutWeightsOptionsInput,
} from "../../src/index.js";

export interface VerlRolloutCorrectionConfig {
  rollout_is: "token" | "sequence" | null;
  rollout_is_threshold: string | number | null;
  rollout_is_batch_normalize: boolean;
  rollout_rs?: string | null;
  rollout_rs_threshold?: string | number | null;
  loss_type?: "ppo_clip" | "reinforce";
}

export function verlWeights(
  level: "token" | "sequence",
  threshold: string | number,
  batchNormalize: boolean,
): RolloutWeightsOptionsInput {
  const spec = String(threshold).trim();
  if (spec.includes("_")) {
    const [lower, upper] = spec.split("_", 2).map(Number) as [number, number];
    return { level, lower, upper, batchNormalize };
  }
  return { level, upper: Number(spec), batchNormalize };
}

export function verlRejection(options: string, threshold: string | number): RolloutRejectionCriterionInput[] {
  const names = [
    ...new Set(
      options
        .split(",")
        .map((o) => o.trim())
        .filter((o) => o.length > 0),
    ),
  ];
  let specs = String(threshold)
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (specs.length === 1) specs = names.map(() => specs[0]!);
  return names.map((statistic, k) => {
    const spec = specs[k]!;
    if (spec.includes("_")) {
      const [lower, upper] = spec.split("_", 2).map(Number) as [number, number];
      return { statistic, lower, upper } as RolloutRejectionCriterionInput;
    }
    return { statistic, upper: Number(spec) } as RolloutRejectionCriterionInput;
  });
}

export function verlCorrectionOptions(config: VerlRolloutCorrectionConfig): RolloutCorrectionOptionsInput {
  return {
    weights:
      config.rollout_is !== null && config.rollout_is_threshold !== null
        ? verlWeights(config.rollout_is, config.rollout_is_threshold, config.rollout_is_batch_normalize)
        : null,
    rejection:
      config.rollout_rs !== null && config.rollout_rs !== undefined
        ? verlRejection(config.rollout_rs, config.rollout_rs_threshold!)
        : [],
    lossType: config.loss_type ?? "ppo_clip",
  };
}
