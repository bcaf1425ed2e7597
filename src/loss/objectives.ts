import { GrpoRocError, invalid, requireRegistration } from "../errors.js";
import type {
  ObjectiveBatch,
  PolicyObjective,
  PreparedBatch,
  PreparedObjective,
  TokenKernel,
} from "./objective-types.js";
import { clippedRatioLoss } from "./clip-term.js";
import { type PolicyLossOptions, REFERENCE_OBJECTIVES, type ReferenceObjective } from "./options.js";
import { trlObjectives } from "./trl-objectives.js";
import { verlObjectives } from "./verl-objectives.js";

export { REFERENCE_OBJECTIVES, type ReferenceObjective };

export type {
  ObjectiveBatch,
  PolicyObjective,
  PreparedBatch,
  PreparedObjective,
  TokenKernel,
  TokenLoss,
  TokenTerms,
} from "./objective-types.js";

/**
 * PPO / GRPO / DAPO / GSPO: max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high)), with TRL's δ capping the unclipped ratio
 * and verl's dual clip bounding the loss at −A·c for negative advantages (clippedRatioLoss, shared with LUSPO).
 */
export const clipObjective: PolicyObjective = (options) => {
  const lossAt = clippedRatioLoss(options);
  return ({ advantage, ratio }) => lossAt(ratio, advantage);
};

/** CISPO: −sg(clip(ρ)) · A · log π. The clipped ratio only weighs the REINFORCE gradient. */
export const cispoObjective: PolicyObjective = (options) => {
  const low = 1 - options.clipLow;
  const high = 1 + options.clipHigh;
  return ({ advantage: a, ratio, logp }) => {
    const weight = ratio < low ? low : ratio > high ? high : ratio;
    return {
      loss: -weight * a * logp,
      dLogRatio: 0,
      dLogp: -weight * a,
      clipped: weight !== ratio,
      dualClipped: false,
      lowClipped: ratio < low && a < 0,
      highClipped: ratio > high && a > 0,
    };
  };
};

/** SAPO: a smooth gate instead of a hard clip, −A · σ(τ(ρ − 1)) · 4/τ, τ by the sign of A. */
export const sapoObjective: PolicyObjective = (options) => {
  const { positive, negative } = options.sapoTemperature;
  return ({ advantage: a, ratio }) => {
    const tau = a > 0 ? positive : negative;
    const sigma = 1 / (1 + Math.exp(-tau * (ratio - 1)));
    const loss = (-a * sigma * 4) / tau;
    // σ(1 − σ)·ρ → 0 as ρ → ∞ (1 − σ falls like e^−τρ), but 0·∞ would be NaN where ρ overflowed.
    const oneMinusSigma = 1 - sigma;
    const dLogRatio = oneMinusSigma === 0 ? 0 : -a * 4 * sigma * oneMinusSigma * ratio;
    return { loss, dLogRatio, dLogp: 0, clipped: false, dualClipped: false, lowClipped: false, highClipped: false };
  };
};

/** REINFORCE / GPG: −A · log π, no ratio. */
export const reinforceObjective: PolicyObjective =
  () =>
  ({ advantage: a, logp }) => ({
    loss: -a * logp,
    dLogRatio: 0,
    dLogp: -a,
    clipped: false,
    dualClipped: false,
    lowClipped: false,
    highClipped: false,
  });

/**
 * The objectives every backend implements, by name and by the code its kernels switch on (WGSL, CUDA). Adding one
 * is an entry here, its per-token function in `builtinObjectives`, and its kernel in each backend's table, each of
 * which `satisfies Record<BuiltinObjective, …>`: the compiler then lists the backends that lack it.
 */
export const BUILTIN_OBJECTIVES = ["clip", "cispo", "sapo", "reinforce"] as const;
/** A built-in objective's name: "clip", "cispo", "sapo" or "reinforce". */
export type BuiltinObjective = (typeof BUILTIN_OBJECTIVES)[number];
export const OBJECTIVE_CODE = { clip: 0, cispo: 1, sapo: 2, reinforce: 3 } as const satisfies Record<
  BuiltinObjective,
  number
>;

const builtinObjectives = {
  clip: clipObjective,
  cispo: cispoObjective,
  sapo: sapoObjective,
  reinforce: reinforceObjective,
} as const satisfies Record<BuiltinObjective, PolicyObjective>;

const objectives = new Map<string, PolicyObjective>([
  ...Object.entries(builtinObjectives),
  ...Object.entries({ ...verlObjectives, ...trlObjectives } satisfies Record<ReferenceObjective, PolicyObjective>),
]);

export function isBuiltinObjective(name: string): name is BuiltinObjective {
  return Object.hasOwn(builtinObjectives, name);
}

/**
 * Adds a per-token policy objective, selectable by `options.objective`. It runs on every backend: a backend without
 * a kernel for it computes the [B, T] loss with the reference (`withRegisteredObjectives`).
 */
export function registerPolicyObjective(name: string, objective: PolicyObjective): void {
  requireRegistration(name, objective, "objective");
  if (objectives.has(name)) throw new GrpoRocError(`policy objective "${name}" is already registered`);
  objectives.set(name, objective);
}

/** The names `options.objective` accepts: the built-in ones, then any you registered. */
export function policyObjectiveNames(): string[] {
  return [...objectives.keys()];
}

/**
 * One kernel per objective and option values, built once. V8 inlines the kernel into the hot loop, with its result
 * object kept in registers, only while the loop keeps seeing the same function: a closure built afresh on every
 * call made the loss about twice as slow (and allocate per token). The normaliser is left out of the key: it only
 * sets the aggregation weights, and it changes with every micro-batch.
 */
const kernels = new Map<string, BuiltObjective>();
const KERNEL_CACHE_SIZE = 64;

/** An objective built for one set of options: its kernel, and its batch step if it has one. */
export interface BuiltObjective {
  readonly kernel: TokenKernel;
  readonly prepare: ((batch: ObjectiveBatch) => PreparedBatch) | undefined;
}

export function objectiveKernel(options: PolicyLossOptions): BuiltObjective {
  const { normalizer: _normalizer, ...rest } = options;
  const key = JSON.stringify(rest, (_name, value: unknown) =>
    typeof value === "number" && !Number.isFinite(value) ? String(value) : value,
  );
  let built = kernels.get(key);
  if (built === undefined) {
    requireKnownObjective(options.objective);
    if (kernels.size >= KERNEL_CACHE_SIZE) kernels.clear();
    const made = objectives.get(options.objective)!(options);
    built =
      typeof made === "function" ? { kernel: made, prepare: undefined } : requirePrepared(made, options.objective);
    kernels.set(key, built);
  }
  return built;
}

/** A registered objective's factory must give a kernel, or { prepare, kernel }: anything else is its author's bug. */
function requirePrepared(made: unknown, name: string): BuiltObjective {
  const candidate = made as Partial<PreparedObjective> | null;
  if (
    typeof candidate !== "object" ||
    candidate === null ||
    typeof candidate.kernel !== "function" ||
    typeof candidate.prepare !== "function"
  ) {
    throw new GrpoRocError(
      `policy objective "${name}" gave ${candidate === null ? "null" : typeof candidate}: an objective returns a ` +
        "per-token kernel, or { prepare, kernel }",
    );
  }
  return { kernel: candidate.kernel, prepare: candidate.prepare };
}

/** Throws the reference's error for an objective nobody registered. */
export function requireKnownObjective(name: string): void {
  if (!objectives.has(name)) {
    throw invalid("options.objective", `unknown objective "${name}"; registered: ${policyObjectiveNames().join(", ")}`);
  }
}
