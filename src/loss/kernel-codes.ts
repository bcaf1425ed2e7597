/**
 * The numbers the device kernels read for a ratio level and a KL kind, in one place for both of them: the CUDA
 * kernels' LossConfig (native/src/grpo_math.h, `RatioLevel` and `KlKind`) and the WGSL's uniform block
 * (src/webgpu/loss.wgsl.ts). Each table `satisfies Record<…>`, so a new option is a compile error here until it has a
 * code. Objectives have theirs in src/loss/objectives.ts (OBJECTIVE_CODE).
 */
import type { KlKind, PolicyLossOptions } from "./options.js";

export const RATIO_LEVEL_CODE = { token: 0, sequence: 1, "sequence-token": 2 } as const satisfies Record<
  PolicyLossOptions["ratioLevel"],
  number
>;

/** A "+" kind (straight-through, verl 1dda039) is its base kind's code + KL_STRAIGHT_THROUGH. */
export const KL_STRAIGHT_THROUGH = 4;

export const KL_KIND_CODE = {
  k1: 0,
  abs: 1,
  k2: 2,
  k3: 3,
  "k1+": KL_STRAIGHT_THROUGH,
  "abs+": KL_STRAIGHT_THROUGH + 1,
  "k2+": KL_STRAIGHT_THROUGH + 2,
  "k3+": KL_STRAIGHT_THROUGH + 3,
} as const satisfies Record<KlKind, number>;
