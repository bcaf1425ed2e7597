/**
 * Random inputs for the conformance suite, from a seeded generator: case k is the same on every backend and
 * every run. Policy-loss cases keep every log-ratio and KL argument KINK_MARGIN away from the loss's kinks.
 */
import seedrandom from "seedrandom";
import {
  AGGREGATIONS,
  type Aggregation,
  BUILTIN_OBJECTIVES,
  type BuiltinObjective,
  KL_KINDS,
  type KlKind,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  lossPresets,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type ReferenceObjective,
  tokenLogProbs,
} from "../../src/index.js";
import { KINK_MARGIN } from "./tolerances.js";
import { klKinks, nearAny, ratioKinks } from "../helpers/kinks.js";

export type Rng = () => number;
export const rngFor = (seed: string): Rng => seedrandom(seed);
const uniform = (rng: Rng, lo: number, hi: number) => lo + (hi - lo) * rng();
const integer = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng() * (hi - lo + 1));
const pick = <T>(rng: Rng, values: readonly T[]): T => values[Math.floor(rng() * values.length)]!;
/** Standard normal (Box–Muller). */
export const normal = (rng: Rng) => Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());

/**
 * The options each shipped objective without native kernels needs on top of a drawn case's (which keeps its clip
 * bounds, clamp, KL, entropy and aggregation): values that make the truncation, the penalty and the choice bind.
 */
export const REFERENCE_OBJECTIVE_OPTIONS: Record<ReferenceObjective, PolicyLossOptionsInput> = {
  "dppo-tv": { objective: "dppo-tv", ratioCap: 1.5, dualClip: null, delta: null },
  "dppo-kl": { objective: "dppo-kl", ratioCap: 1.5, dualClip: null, delta: null },
  dro: { objective: "dro", droBeta: 0.3, dualClip: null, delta: null },
  gmpo: { objective: "gmpo", dualClip: null, delta: null },
  "kl-cov": { objective: "kl-cov", klCov: { ratio: 0.3, coef: 0.2 }, dualClip: null, delta: null },
  "clip-cov": {
    objective: "clip-cov",
    clipCov: { ratio: 0.5, lowerBound: -0.5, upperBound: 2, seed: 1 },
    dualClip: null,
    delta: null,
  },
  // TRL's objectives compute their own log-ratios (no clamp); LUSPO reads δ (TRL's grpo branch), VESPO k and λ.
  luspo: { objective: "luspo", clipLow: 0.1, clipHigh: 0.15, dualClip: null, delta: 1.3, logRatioClamp: null },
  vespo: {
    objective: "vespo",
    vespo: { kPositive: 1.5, lambdaPositive: 2, kNegative: 2.5, lambdaNegative: 1.5, importanceWeights: "phi" },
    dualClip: null,
    delta: null,
    logRatioClamp: null,
  },
};

export type Objective = BuiltinObjective;
export const OBJECTIVES: readonly Objective[] = BUILTIN_OBJECTIVES;

/** A policy-loss batch as flat float64 arrays, [B, T] row-major. */
export interface LossBatch {
  readonly B: number;
  readonly T: number;
  readonly logp: Float64Array;
  /** Undefined: on-policy (oldLogp omitted). */
  readonly oldLogp: Float64Array | undefined;
  readonly mask: Float64Array;
  /** [B], or [B·T] when perTokenAdvantages. */
  readonly advantages: Float64Array;
  readonly perTokenAdvantages: boolean;
  readonly refLogp: Float64Array;
  readonly importanceWeights: Float64Array | undefined;
  readonly entropy: Float64Array;
}

export interface LossCase {
  readonly title: string;
  readonly batch: LossBatch;
  readonly inputs: PolicyLossInputs;
  readonly options: PolicyLossOptionsInput;
}

export interface LossShape {
  readonly objective: Objective;
  readonly ratioLevel: "token" | "sequence" | "sequence-token";
  readonly aggregation: Aggregation;
  /** null: no KL; undefined: drawn at random. */
  readonly kl?: { kind: KlKind; clamp: boolean; importanceCorrected: boolean } | null;
  readonly entropyCoef?: number;
  /** Row-constant advantages and importance weights (finite differences at sequence level need them). */
  readonly rowConstant?: boolean;
  readonly onPolicy?: boolean;
}

export function drawBatch(
  rng: Rng,
  shape: { B?: number; T?: number; rowConstant: boolean; onPolicy?: boolean },
): LossBatch {
  const B = shape.B ?? integer(rng, 1, 5);
  const T = shape.T ?? integer(rng, 1, 7);
  const n = B * T;
  const logp = Float64Array.from({ length: n }, () => uniform(rng, -6, -0.01));
  const onPolicy = shape.onPolicy ?? rng() < 0.15;
  const oldLogp = onPolicy ? undefined : logp.map((v) => v - uniform(rng, -1.5, 1.5));
  const mask = Float64Array.from({ length: n }, () => (rng() < 0.8 ? 1 : 0));
  // Some row always has a token; sometimes one row is empty.
  mask[integer(rng, 0, B - 1) * T + integer(rng, 0, T - 1)] = 1;
  if (B > 1 && rng() < 0.3) {
    const empty = integer(rng, 0, B - 1);
    if (mask.some((m, i) => m === 1 && Math.floor(i / T) !== empty)) mask.fill(0, empty * T, (empty + 1) * T);
  }
  const perTokenAdvantages = !shape.rowConstant && rng() < 0.5;
  const rowAdvantages = Float64Array.from({ length: B }, () => uniform(rng, -2, 2));
  const advantages = perTokenAdvantages ? Float64Array.from({ length: n }, () => uniform(rng, -2, 2)) : rowAdvantages;
  const importance =
    rng() < 0.4 ? Float64Array.from({ length: shape.rowConstant ? B : n }, () => uniform(rng, 0.2, 2)) : undefined;
  const importanceWeights =
    importance === undefined
      ? undefined
      : shape.rowConstant
        ? Float64Array.from({ length: n }, (_, i) => importance[Math.floor(i / T)]!)
        : importance;
  const refLogp = logp.map((v) => v + uniform(rng, -2.5, 2.5));
  const entropy = Float64Array.from({ length: n }, () => uniform(rng, 0, 3));
  return { B, T, logp, oldLogp, mask, advantages, perTokenAdvantages, refLogp, importanceWeights, entropy };
}

/** The batch as PolicyLossInputs; `dirtyMasked` puts NaN / ±Infinity where the mask is 0 (never read). */
export function inputsOf(
  batch: LossBatch,
  overrides: { logp?: Float64Array; oldLogp?: Float64Array; entropy?: Float64Array } = {},
  dirtyMasked = false,
): PolicyLossInputs {
  const shape: [number, number] = [batch.B, batch.T];
  const dirty = (values: Float64Array) => {
    if (!dirtyMasked) return values;
    const out = values.slice();
    for (let i = 0; i < out.length; i++) if (batch.mask[i] === 0) out[i] = [NaN, Infinity, -Infinity][i % 3]!;
    return out;
  };
  const m = (values: Float64Array) => ({ data: dirty(values), shape });
  const oldLogp = overrides.oldLogp ?? batch.oldLogp;
  return {
    logp: m(overrides.logp ?? batch.logp),
    ...(oldLogp !== undefined ? { oldLogp: m(oldLogp) } : {}),
    mask: { data: batch.mask, shape },
    advantages: batch.perTokenAdvantages ? m(batch.advantages) : batch.advantages,
    refLogp: m(batch.refLogp),
    ...(batch.importanceWeights !== undefined ? { importanceWeights: m(batch.importanceWeights) } : {}),
    entropy: m(overrides.entropy ?? batch.entropy),
  };
}

function drawOptions(rng: Rng, s: LossShape): PolicyLossOptionsInput {
  const kl =
    s.kl === undefined
      ? rng() < 0.6
        ? {
            kind: pick(rng, KL_KINDS),
            coef: uniform(rng, 0.01, 0.5),
            clamp: rng() < 0.5,
            importanceCorrected: rng() < 0.3,
          }
        : null
      : s.kl === null
        ? null
        : { ...s.kl, coef: uniform(rng, 0.01, 0.5) };
  return {
    objective: s.objective,
    ratioLevel: s.ratioLevel,
    aggregation: s.aggregation,
    clipLow: uniform(rng, 0.05, 0.4),
    clipHigh: uniform(rng, 0.05, 0.4),
    dualClip: rng() < 0.5 ? uniform(rng, 1.5, 3) : null,
    delta: rng() < 0.3 ? uniform(rng, 1.3, 3) : null,
    logRatioClamp: rng() < 0.4 ? [uniform(rng, -1.4, -0.3), uniform(rng, 0.3, 1.4)] : null,
    kl,
    entropyCoef: s.entropyCoef ?? pick(rng, [0, 0, 0.01, 0.3]),
    entropyAggregation: pick(rng, AGGREGATIONS),
    sapoTemperature: { positive: uniform(rng, 0.5, 2), negative: uniform(rng, 0.5, 2) },
    ...(rng() < 0.3
      ? {
          normalizer: {
            dpSize: pick(rng, [1, 2]),
            gradientAccumulationSteps: pick(rng, [1, 3]),
            length: pick(rng, [8, 16]),
          },
        }
      : {}),
  };
}

/**
 * dpSize 2 without the batch's counts is an error from verl 1dda039 on (its ValueError), so a case drawn with it
 * follows verl b178a3c (local counts × dpSize) when its length is 8, and otherwise gives the counts of two ranks
 * like this one: twice its tokens, and twice its rows as 1dda039's global_batch_size (empty rows included). No
 * random number is drawn, so the other cases stay as they were.
 */
function withVerlCounts(options: PolicyLossOptionsInput, batch: LossBatch): PolicyLossOptionsInput {
  const normalizer = options.normalizer;
  if (normalizer?.dpSize === undefined || normalizer.dpSize === 1) return options;
  if (normalizer.length === 8) return { ...options, normalizer: { ...normalizer, verlVersion: "b178a3c" } };
  const tokens = batch.mask.reduce((sum, m) => sum + m, 0);
  return {
    ...options,
    normalizer: { ...normalizer, tokens: normalizer.dpSize * tokens, sequences: normalizer.dpSize * batch.B },
  };
}

/** Random case k: objectives, ratio levels and aggregations cycle with k, the rest is drawn. */
export function randomLossCase(k: number): LossCase {
  const objective = OBJECTIVES[k % OBJECTIVES.length]!;
  const ratioLevel =
    objective === "clip"
      ? (["token", "sequence", "sequence-token"] as const)[Math.floor(k / OBJECTIVES.length) % 3]!
      : "token";
  const aggregation = AGGREGATIONS[(k * 3) % AGGREGATIONS.length]!;
  return drawLossCase(`loss-${k}`, { objective, ratioLevel, aggregation });
}

/**
 * verl 1dda039's terms, each on every backend: the straight-through KL kinds (with and without verl's clamps and
 * TRL's importance correction), token-sum, and seq-mean-token-sum-norm at both verl versions.
 */
export function verl2TermCases(): LossCase[] {
  const plusKinds = KL_KINDS.filter((kind) => kind.endsWith("+"));
  const kl = plusKinds.flatMap((kind, k) =>
    [true, false].map((clamp) =>
      drawLossCase(`verl2-${kind}-${clamp}`, {
        objective: OBJECTIVES[k % OBJECTIVES.length]!,
        ratioLevel: "token",
        aggregation: pick(rngFor(`verl2 ${kind}`), ["token-mean", "token-sum", "seq-mean-token-sum-norm"] as const),
        kl: { kind, clamp, importanceCorrected: !clamp && kind !== "k2+" },
      }),
    ),
  );
  const aggregations = (["token-sum", "seq-mean-token-sum-norm"] as const).flatMap((aggregation) =>
    (["1dda039", "b178a3c"] as const)
      .filter((version) => aggregation !== "token-sum" || version === "1dda039")
      .flatMap((verlVersion) =>
        (["token", "sequence"] as const).map((ratioLevel) => {
          const c = drawLossCase(`verl2-${aggregation}-${verlVersion}-${ratioLevel}`, {
            objective: "clip",
            ratioLevel,
            aggregation,
          });
          const options = { ...c.options, normalizer: { ...c.options.normalizer, verlVersion } };
          return { ...c, title: `${c.title}, verl ${verlVersion}`, options };
        }),
      ),
  );
  return [...kl, ...aggregations];
}

export function drawLossCase(seed: string, shape: LossShape, size: { B?: number; T?: number } = {}): LossCase {
  const rng = rngFor(`grpo-roc conformance ${seed}`);
  for (let attempt = 0; attempt < 1000; attempt++) {
    const batch = drawBatch(rng, {
      ...size,
      rowConstant: shape.rowConstant ?? false,
      ...(shape.onPolicy !== undefined ? { onPolicy: shape.onPolicy } : {}),
    });
    const options = withVerlCounts(drawOptions(rng, shape), batch);
    if (!awayFromKinks(batch, options)) continue;
    const kl = options.kl ? `, KL ${options.kl.kind}${options.kl.importanceCorrected ? "·ρ" : ""}` : "";
    const title = `${shape.objective}, ${shape.ratioLevel} ratio, ${shape.aggregation}${kl}${options.entropyCoef ? ", entropy bonus" : ""}, [${batch.B}, ${batch.T}]`;
    return { title, batch, inputs: inputsOf(batch, {}, attempt % 2 === 1), options };
  }
  throw new Error(`no kink-free case for ${seed}`);
}

// ---------------------------------------------------------------------------------------------------------------
// Kinks (as in test/loss-gradients.test.ts)

function objectiveLogRatios(batch: LossBatch, sequenceLevel: boolean): number[] {
  const out: number[] = [];
  for (let b = 0; b < batch.B; b++) {
    const row: number[] = [];
    for (let t = 0; t < batch.T; t++) {
      const i = b * batch.T + t;
      if (batch.mask[i] === 1) row.push(batch.oldLogp === undefined ? 0 : batch.logp[i]! - batch.oldLogp[i]!);
    }
    if (sequenceLevel && row.length > 0) {
      const mean = row.reduce((s, v) => s + v, 0) / row.length;
      out.push(...row.map(() => mean), ...row);
    } else out.push(...row);
  }
  return out;
}

export function awayFromKinks(batch: LossBatch, o: PolicyLossOptionsInput): boolean {
  if (nearAny(objectiveLogRatios(batch, (o.ratioLevel ?? "token") !== "token"), ratioKinks(o), KINK_MARGIN))
    return false;
  if (o.kl != null) {
    const xs: number[] = [];
    for (let i = 0; i < batch.mask.length; i++) if (batch.mask[i] === 1) xs.push(batch.refLogp[i]! - batch.logp[i]!);
    if (nearAny(xs, klKinks(String(o.kl.kind), o.kl.clamp ?? true), KINK_MARGIN)) return false;
  }
  return true;
}

// ---------------------------------------------------------------------------------------------------------------
// Token log-probs

export interface LogProbCase {
  readonly title: string;
  readonly logits: { data: Float32Array | Float64Array; shape: [number, number, number] };
  readonly tokens: { data: Float64Array; shape: [number, number] };
  readonly mask: { data: Float64Array; shape: [number, number] } | undefined;
  readonly temperature: number;
  readonly entropy: boolean;
  readonly gradLogp: { data: Float64Array; shape: [number, number] };
  readonly gradEntropy: { data: Float64Array; shape: [number, number] } | undefined;
}

export function randomLogProbCase(k: number): LogProbCase {
  const rng = rngFor(`grpo-roc conformance logprobs-${k}`);
  const B = integer(rng, 1, 3);
  const T = integer(rng, 1, 6);
  const V = [5, 33, 257, 1000][k % 4]!;
  const n = B * T;
  const sigma = pick(rng, [1, 4]);
  const float32 = k % 2 === 0;
  const data = (float32 ? new Float32Array(n * V) : new Float64Array(n * V)).map(() => sigma * normal(rng));
  // A masked vocabulary at some positions: −Infinity logits (never all of them).
  const withMaskedVocabulary = rng() < 0.5;
  if (withMaskedVocabulary) for (let i = 0; i < n * V; i++) if (i % V !== 0 && rng() < 0.2) data[i] = -Infinity;
  const tokens = Float64Array.from({ length: n }, () => integer(rng, 0, V - 1));
  const masked = rng() < 0.5;
  const mask = masked ? Float64Array.from({ length: n }, (_, i) => (i === 0 || rng() < 0.75 ? 1 : 0)) : undefined;
  // Padding tokens at masked positions may be anything: they are never read.
  if (mask !== undefined) for (let i = 0; i < n; i++) if (mask[i] === 0) tokens[i] = -1;
  const temperature = pick(rng, [1, 0.7, 1.5]);
  const entropy = rng() < 0.6;
  const shape: [number, number] = [B, T];
  return {
    title: `[${B}, ${T}, ${V}] ${float32 ? "float32" : "float64"} logits, σ ${sigma}${withMaskedVocabulary ? ", −Infinity logits" : ""}${masked ? ", masked positions" : ""}, τ ${temperature}${entropy ? ", entropy" : ""}`,
    logits: { data, shape: [B, T, V] },
    tokens: { data: tokens, shape },
    mask: mask === undefined ? undefined : { data: mask, shape },
    temperature,
    entropy,
    gradLogp: { data: Float64Array.from({ length: n }, () => uniform(rng, -1, 1)), shape },
    gradEntropy: entropy ? { data: Float64Array.from({ length: n }, () => uniform(rng, -0.5, 0.5)), shape } : undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The loss from logits

export interface FromLogitsCase {
  readonly title: string;
  readonly inputs: LogitsPolicyLossInputs;
  readonly options: LogitsPolicyLossOptions;
  readonly logProbs: LogProbCase;
}

/**
 * Case k of policyLossFromLogits: the logits, tokens, mask and temperature of randomLogProbCase(k) (sampled tokens
 * with finite logits, so every selected log-prob is finite), old log-probs at log-ratios KINK_MARGIN from every kink,
 * a built-in objective and an option set per k.
 */
export function randomFromLogitsCase(k: number): FromLogitsCase {
  const logProbs = randomLogProbCase(k);
  const rng = rngFor(`grpo-roc conformance from-logits-${k}`);
  const [B, T, V] = logProbs.logits.shape;
  const tokens = logProbs.tokens.data.slice();
  for (let i = 0; i < B * T; i++) {
    if (tokens[i] !== -1 && logProbs.logits.data[i * V + tokens[i]!] === -Infinity) tokens[i] = 0;
  }
  const shape: [number, number] = [B, T];
  const mask = logProbs.mask;
  const forward = tokenLogProbs(logProbs.logits, { data: tokens, shape }, { temperature: logProbs.temperature, mask });
  const objective = BUILTIN_OBJECTIVES[k % BUILTIN_OBJECTIVES.length]!;
  const options: LogitsPolicyLossOptions = {
    ...pick(rng, [lossPresets.paper, lossPresets.reference, lossPresets.verl, lossPresets.trl]),
    objective,
    temperature: logProbs.temperature,
    entropyCoef: logProbs.entropy ? 0.01 : 0,
    kl: rng() < 0.4 ? { kind: pick(rng, KL_KINDS), coef: 0.05, clamp: true } : null,
  };
  const kinks = ratioKinks(options);
  const logRatios = [-0.6, -0.15, -0.05, 0.03, 0.12, 0.4, 0.9];
  const oldLogp = forward.logp.map((logp) => {
    let logRatio = pick(rng, logRatios) + uniform(rng, -0.01, 0.01);
    while (nearAny([logRatio], kinks, 1e-3)) logRatio += 0.01;
    return logp - logRatio;
  });
  const refLogp = forward.logp.map((logp) => logp + uniform(rng, 0.05, 1.5) * (rng() < 0.5 ? -1 : 1));
  const advantages = Float64Array.from({ length: B }, () => pick(rng, [-1, -0.5, 0.5, 1]));
  const title = `${logProbs.title}, ${objective}${options.kl ? `, KL ${options.kl.kind}` : ""}`;
  return {
    title,
    inputs: {
      logits: logProbs.logits,
      tokens: { data: tokens, shape },
      oldLogp: { data: oldLogp, shape },
      advantages,
      mask,
      refLogp: { data: refLogp, shape },
    },
    options,
    logProbs,
  };
}
