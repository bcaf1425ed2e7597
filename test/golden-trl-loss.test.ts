import { describe, expect, it } from "vitest";
import {
  lossPresets,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type GoldenCase, type Tolerance } from "./helpers/golden.js";
import { matrix, selected } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };
/** TRL computes its clip metrics in float32: the golden README's tolerance for float32 effects. */
const FLOAT32_TOLERANCE: Tolerance = { rtol: 1e-6, atol: 1e-7 };

interface TrlHyper {
  loss_type: "grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo" | "sapo";
  epsilon: number;
  epsilon_high: number;
  beta: number;
  importance_sampling_level: "token" | "sequence";
  max_completion_length: number;
  delta: number | null;
  use_bias_correction_kl: boolean;
  entropy_coef: number;
  current_gradient_accumulation_steps: number;
  sapo_temperature_pos: number;
  sapo_temperature_neg: number;
  top_entropy_quantile: number;
  off_policy_mask_threshold: number | null;
  temperature?: number;
}

/** TRL's GRPOConfig as grpo-roc options (`numItems` is num_items_in_batch when the case passes one). */
function optionsFor(h: TrlHyper, numItems: number | undefined): PolicyLossOptionsInput {
  const tokenCount = h.loss_type === "dapo" || h.loss_type === "cispo";
  const objective =
    h.loss_type === "cispo"
      ? // TRL's CISPO caps the ratio at epsilon_high itself, with no lower bound.
        { objective: "cispo", clipLow: 1, clipHigh: h.epsilon_high - 1 }
      : h.loss_type === "sapo"
        ? // TRL builds its per-token temperatures as a float32 tensor: 1.05 is 1.0499999523 there.
          { objective: "sapo", sapoTemperature: { positive: Math.fround(h.sapo_temperature_pos), negative: Math.fround(h.sapo_temperature_neg) } }
        : { objective: "clip", clipLow: h.epsilon, clipHigh: h.epsilon_high, delta: h.delta };
  return {
    ...lossPresets.trl,
    ...objective,
    ratioLevel: h.importance_sampling_level,
    aggregation: h.loss_type === "dapo" || h.loss_type === "cispo" ? "dapo" : h.loss_type === "sapo" ? "grpo" : h.loss_type,
    entropyAggregation: tokenCount ? "dapo" : "bnpo",
    normalizer: {
      ...(numItems !== undefined ? { tokens: numItems } : {}),
      length: h.max_completion_length,
      gradientAccumulationSteps: h.current_gradient_accumulation_steps,
    },
    kl: h.beta > 0 ? { kind: "k3", coef: h.beta, clamp: false, importanceCorrected: h.use_bias_correction_kl } : null,
    entropyCoef: h.entropy_coef,
  };
}

function inputsFor(c: GoldenCase, logp?: Float64Array, entropy?: Float64Array): PolicyLossInputs {
  const i = c.inputs as Record<string, number[][] | number[]>;
  const mask = i.completion_mask as number[][];
  const shape: [number, number] = [mask.length, mask[0]!.length];
  const advantages = i.advantages!;
  return {
    logp: logp !== undefined ? { data: logp, shape } : matrix(i.per_token_logps as number[][]),
    ...(i.old_per_token_logps ? { oldLogp: matrix(i.old_per_token_logps as number[][]) } : {}),
    ...(i.ref_per_token_logps ? { refLogp: matrix(i.ref_per_token_logps as number[][]) } : {}),
    advantages: Array.isArray(advantages[0]) ? matrix(advantages as number[][]) : (advantages as number[]),
    mask: matrix(mask),
    ...(entropy !== undefined ? { entropy: { data: entropy, shape } } : i.entropies ? { entropy: matrix(i.entropies as number[][]) } : {}),
  };
}

/** TRL metric → grpo-roc metric. low_min / high_max (per-row extremes) have no counterpart and are not compared. */
function compareMetrics(result: PolicyLossResult, metrics: Record<string, number>, h: TrlHyper): void {
  const tokenLevel = h.importance_sampling_level === "token";
  const m = result.metrics;
  const mapped: Record<string, [number, Tolerance] | undefined> = {
    kl: m.kl === undefined ? undefined : [m.kl, FLOAT64_TOLERANCE],
    entropy: [m.entropy ?? 0, FLOAT64_TOLERANCE],
    // Sequence level, TRL averages its clip flags over rows rather than tokens.
    ...(tokenLevel && h.loss_type !== "cispo" && h.loss_type !== "sapo"
      ? {
          "clip_ratio/low_mean": [m.clipFractionLow, FLOAT32_TOLERANCE],
          "clip_ratio/high_mean": [m.clipFractionHigh, FLOAT32_TOLERANCE],
          "clip_ratio/region_mean": [m.clipFractionLow + m.clipFractionHigh, FLOAT32_TOLERANCE],
        }
      : {}),
    // TRL counts ρ > cap with A > 0.
    ...(h.loss_type === "cispo" ? { cispo_clip_ratio: [m.clipFractionHigh, FLOAT32_TOLERANCE] } : {}),
  } as Record<string, [number, Tolerance] | undefined>;
  for (const [name, value] of Object.entries(metrics)) {
    const ours = mapped[name];
    if (ours !== undefined) expectAllClose([ours[0]], [value], ours[1], `metric ${name}`);
  }
}

const supported = (c: GoldenCase) => {
  const h = c.hyperparameters as unknown as TrlHyper;
  return ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo"].includes(h.loss_type) && h.top_entropy_quantile === 1 && h.off_policy_mask_threshold === null;
};
const file = loadGolden("trl_policy_loss.json");

describe("TRL GRPOTrainer._compute_loss (trl_policy_loss.json)", () => {
  const cases = file.cases.filter((c) => c.function === "GRPOTrainer._compute_loss" && supported(c));
  it("covers grpo, bnpo, dr_grpo, dapo (token and sequence level, delta, beta, bias-corrected KL, num_items, grad accumulation, on-policy), cispo, sapo, entropy bonus", () => {
    expect(cases.length).toBeGreaterThanOrEqual(55);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    const numItems = (c.inputs as { num_items_in_batch?: number }).num_items_in_batch;
    const inputs = inputsFor(c);
    const result = policyLoss(inputs, optionsFor(h, numItems));
    const out = c.outputs as { loss: number; grad_per_token_logps: number[][]; per_token_loss: number[][]; metrics: Record<string, number> };
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.loss], tolerance, "loss");
    expectAllClose(result.grad, out.grad_per_token_logps.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad_per_token_logps");
    if (h.importance_sampling_level === "token") {
      // TRL's per_token_loss includes β·KL.
      const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
      const ours = result.perTokenLoss.map((v, i) => v + (result.perTokenKl === undefined ? 0 : h.beta * result.perTokenKl[i]!));
      expectAllClose(selected(ours, mask), selected(out.per_token_loss.flat(), mask), tolerance, "per_token_loss");
    }
    compareMetrics(result, out.metrics, h);
  });
});

describe("TRL end to end from logits: selective_log_softmax, entropy, loss with β = 0.04 and an entropy bonus", () => {
  const cases = file.cases.filter((c) => c.id.startsWith("trl.pl.from_logits."));
  it("has the cases", () => expect(cases.length).toBe(4));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    const { logits, labels } = c.inputs as { logits: number[][][]; labels: number[][] };
    const forward = tokenLogProbs(logits, matrix(labels), { temperature: h.temperature!, entropy: true });
    const result = policyLoss(inputsFor(c, forward.logp, forward.entropy), optionsFor(h, undefined));
    const grad = tokenLogProbsBackward(logits, matrix(labels), {
      temperature: h.temperature!,
      gradLogp: { data: result.grad, shape: result.shape },
      gradEntropy: { data: result.gradEntropy!, shape: result.shape },
      saved: forward,
    });
    const out = c.outputs as { per_token_logps: number[][]; entropies: number[][]; loss: number; grad_logits: number[][][]; metrics: Record<string, number> };
    expectAllClose(forward.logp, out.per_token_logps.flat(), FLOAT64_TOLERANCE, "per_token_logps");
    expectAllClose(forward.entropy!, out.entropies.flat(), FLOAT64_TOLERANCE, "entropies");
    expectAllClose([result.loss], [out.loss], FLOAT64_TOLERANCE, "loss");
    expectAllClose(grad.data, out.grad_logits.flat(2), GRADIENT_TOLERANCE, "grad_logits");
    compareMetrics(result, out.metrics, h);
  });
});

describe("TRL per-token k3 KL without clamps (trl_kl.json)", () => {
  const cases = loadGolden("trl_kl.json").cases;
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    const result = policyLoss(inputsFor(c), { ...optionsFor({ ...lossDefaults, ...h }, undefined) });
    const out = c.outputs as { per_token_kl: number[][]; loss: number; grad_per_token_logps: number[][]; metric_kl: number };
    const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
    expectAllClose(selected(result.perTokenKl!, mask), selected(out.per_token_kl.flat(), mask), FLOAT64_TOLERANCE, "per_token_kl");
    expectAllClose([result.loss], [out.loss], FLOAT64_TOLERANCE, "loss");
    // With use_bias_correction_kl at ref − logp = 25, ∂(k3·ρ)/∂logp is the difference of two terms of size
    // w·β·ρ·e^25 ≈ 1e8, which float64 resolves to about 1e-8 in autograd and here alike: compare at that scale.
    const gradientTolerance = h.use_bias_correction_kl ? { rtol: 1e-10, atol: 1e-7 } : GRADIENT_TOLERANCE;
    expectAllClose(result.grad, out.grad_per_token_logps.flat(), gradientTolerance, "grad_per_token_logps");
    expectAllClose([result.metrics.kl!], [out.metric_kl], FLOAT64_TOLERANCE, "metric kl");
  });
});

/** trl_kl.json lists only the hyperparameters it sets; the rest are GRPOConfig's defaults. */
const lossDefaults: TrlHyper = {
  loss_type: "grpo",
  epsilon: 0.2,
  epsilon_high: 0.2,
  beta: 0,
  importance_sampling_level: "token",
  max_completion_length: 256,
  delta: null,
  use_bias_correction_kl: false,
  entropy_coef: 0,
  current_gradient_accumulation_steps: 1,
  sapo_temperature_pos: 1,
  sapo_temperature_neg: 1.05,
  top_entropy_quantile: 1,
  off_policy_mask_threshold: null,
};
