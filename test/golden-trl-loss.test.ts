import { describe, expect, it } from "vitest";
import {
  fromTrlConfig,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  type PolicyLossResult,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type Tolerance } from "./helpers/golden.js";
import {
  isSupportedTrlCase as supported,
  trlConfigOf,
  trlInputsFor as inputsFor,
  trlLossDefaults as lossDefaults,
  trlMappedMetrics,
  trlOptionsFor as optionsFor,
  type TrlHyper,
} from "./helpers/golden-loss.js";
import { matrix, selected } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };
/** TRL computes its clip metrics in float32: the golden README's tolerance for float32 effects. */
const FLOAT32_TOLERANCE: Tolerance = { rtol: 1e-6, atol: 1e-7 };

/** TRL metric → grpo-roc metric. low_min / high_max (per-row extremes) have no counterpart and are not compared. */
function compareMetrics(result: PolicyLossResult, metrics: Record<string, number>, h: TrlHyper): void {
  const mapped = trlMappedMetrics(result, h);
  for (const [name, value] of Object.entries(metrics)) {
    const ours = mapped[name];
    if (ours !== undefined)
      expectAllClose([ours.value], [value], ours.float32 ? FLOAT32_TOLERANCE : FLOAT64_TOLERANCE, `metric ${name}`);
  }
}

const file = loadGolden("trl_policy_loss.json");

describe("TRL GRPOTrainer._compute_loss (trl_policy_loss.json)", () => {
  const cases = file.cases.filter((c) => c.function === "GRPOTrainer._compute_loss" && supported(c));
  it("covers grpo, bnpo, dr_grpo, dapo (token and sequence level, delta, beta, bias-corrected KL, num_items, grad accumulation, on-policy), cispo, sapo, luspo, vespo, entropy bonus", () => {
    expect(cases.length).toBeGreaterThanOrEqual(59);
    for (const lossType of ["luspo", "vespo"]) {
      expect(cases.filter((c) => c.hyperparameters.loss_type === lossType).length, lossType).toBe(2);
    }
  });

  it("the other cases are the token masks' (golden-trl-correction), which fromTrlConfig translates too", () => {
    const others = file.cases.filter((c) => c.function === "GRPOTrainer._compute_loss" && !supported(c));
    expect(others.length).toBeGreaterThan(0);
    for (const c of others) {
      const t = fromTrlConfig(trlConfigOf(c.hyperparameters));
      expect(t.entropyMask !== undefined || t.offPolicyMask !== undefined, c.id).toBe(true);
    }
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    const numItems = (c.inputs as { num_items_in_batch?: number }).num_items_in_batch;
    const inputs = inputsFor(c);
    const result = policyLoss(inputs, optionsFor(h, numItems));
    const out = c.outputs as {
      loss: number;
      grad_per_token_logps: number[][];
      per_token_loss: number[][];
      metrics: Record<string, number>;
    };
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.loss], tolerance, "loss");
    expectAllClose(
      result.grad,
      out.grad_per_token_logps.flat(),
      c.tolerance ?? GRADIENT_TOLERANCE,
      "grad_per_token_logps",
    );
    if (h.importance_sampling_level === "token") {
      // TRL's per_token_loss includes β·KL.
      const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
      const ours = result.perTokenLoss.map(
        (v, i) => v + (result.perTokenKl === undefined ? 0 : h.beta * result.perTokenKl[i]!),
      );
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
    // GRPOConfig.temperature divides the logits (TRL's `logits / temperature`): the translation returns it.
    const { temperature } = fromTrlConfig(trlConfigOf(c.hyperparameters));
    expect(temperature).toBe(h.temperature);
    const forward = tokenLogProbs(logits, matrix(labels), { temperature, entropy: true });
    const result = policyLoss(inputsFor(c, forward.logp, forward.entropy), optionsFor(h, undefined));
    const grad = tokenLogProbsBackward(logits, matrix(labels), {
      temperature,
      gradLogp: { data: result.grad, shape: result.shape },
      gradEntropy: { data: result.gradEntropy!, shape: result.shape },
      saved: forward,
    });
    const out = c.outputs as {
      per_token_logps: number[][];
      entropies: number[][];
      loss: number;
      grad_logits: number[][][];
      metrics: Record<string, number>;
    };
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
    const out = c.outputs as {
      per_token_kl: number[][];
      loss: number;
      grad_per_token_logps: number[][];
      metric_kl: number;
    };
    const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
    expectAllClose(
      selected(result.perTokenKl!, mask),
      selected(out.per_token_kl.flat(), mask),
      FLOAT64_TOLERANCE,
      "per_token_kl",
    );
    expectAllClose([result.loss], [out.loss], FLOAT64_TOLERANCE, "loss");
    // With use_bias_correction_kl at ref − logp = 25, ∂(k3·ρ)/∂logp is the difference of two terms of size
    // w·β·ρ·e^25 ≈ 1e8, which float64 resolves to about 1e-8 in autograd and here alike: compare at that scale.
    const gradientTolerance = h.use_bias_correction_kl ? { rtol: 1e-10, atol: 1e-7 } : GRADIENT_TOLERANCE;
    expectAllClose(result.grad, out.grad_per_token_logps.flat(), gradientTolerance, "grad_per_token_logps");
    expectAllClose([result.metrics.kl!], [out.metric_kl], FLOAT64_TOLERANCE, "metric kl");
  });
});
