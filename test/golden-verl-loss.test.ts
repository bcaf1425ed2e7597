import { describe, expect, it } from "vitest";
import {
  lossPresets,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type GoldenCase, type Tolerance } from "./helpers/golden.js";
import { matrix, selected } from "./helpers/matrices.js";

/** Gradients come from autograd in float64: the golden README's suggested tolerance for them. */
const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };
/** verl reports clip fractions in float32 (count/n computed in float32): compared after Math.fround. */
const float32 = (x: number) => Math.fround(x);

type Hyper = Record<string, unknown> & { loss_agg_mode: PolicyLossOptionsInput["aggregation"] };

/** verl's loss modes as grpo-roc options. */
const optionsFor: Record<string, (h: Hyper) => PolicyLossOptionsInput> = {
  compute_policy_loss_vanilla: (h) => ({
    ...lossPresets.verl,
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
    dualClip: h.clip_ratio_c as number,
    aggregation: h.loss_agg_mode,
  }),
  // verl's GSPO ignores loss_agg_mode: always seq-mean-token-mean.
  compute_policy_loss_gspo: (h) => ({ ...lossPresets.verlGspo, clipLow: h.clip_ratio_low as number, clipHigh: h.clip_ratio_high as number }),
  compute_policy_loss_sapo: (h) => ({
    objective: "sapo",
    logRatioClamp: [-20, 20],
    aggregation: "seq-mean-token-mean",
    sapoTemperature: { positive: h.tau_pos as number, negative: h.tau_neg as number },
  }),
  compute_policy_loss_cispo: (h) => ({
    objective: "cispo",
    clipLow: h.clip_ratio_low as number,
    clipHigh: h.clip_ratio_high as number,
    logRatioClamp: [-20, 20],
    aggregation: h.loss_agg_mode,
  }),
  compute_policy_loss_gpg: (h) => ({ objective: "reinforce", aggregation: h.loss_agg_mode }),
  compute_policy_loss_reinforce: (h) => ({ objective: "reinforce", aggregation: h.loss_agg_mode }),
};

/** verl metric name → the grpo-roc metric it is, and how verl rounds it. */
const metricFor: Record<string, (r: PolicyLossResult) => number> = {
  "actor/pg_clipfrac": (r) => float32(r.metrics.clipFraction),
  "actor/pg_clipfrac_lower": (r) => float32(r.metrics.dualClipFraction),
  "actor/ppo_kl": (r) => r.metrics.approxKl,
};

const file = loadGolden("verl_policy_loss.json");

describe("verl policy losses (verl_policy_loss.json)", () => {
  const cases = file.cases.filter((c) => c.function in optionsFor);
  it("covers vanilla (clip, clip-higher, dual clip c = 3 and 10, all aggregations), GSPO, SAPO, CISPO, GPG, REINFORCE", () => {
    expect(cases.length).toBeGreaterThanOrEqual(46);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as Record<string, number[][]>;
    const mask = inputs.response_mask!;
    const result = policyLoss(
      {
        logp: matrix(inputs.log_prob!),
        oldLogp: matrix(inputs.old_log_prob!),
        advantages: matrix(inputs.advantages!),
        mask: matrix(mask),
        ...(inputs.rollout_is_weights ? { importanceWeights: matrix(inputs.rollout_is_weights) } : {}),
      },
      optionsFor[c.function]!(c.hyperparameters as Hyper),
    );
    const out = c.outputs as { pg_loss: number; grad_log_prob: number[][]; per_token_loss: number[][]; metrics: Record<string, number> };
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.pg_loss], tolerance, "pg_loss");
    expectAllClose(result.grad, out.grad_log_prob.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad_log_prob");
    expectAllClose(selected(result.perTokenLoss, mask), selected(out.per_token_loss.flat(), mask), tolerance, "per_token_loss");
    for (const [name, value] of Object.entries(out.metrics)) {
      expect(metricFor[name], `metric ${name} is mapped`).toBeDefined();
      expectAllClose([metricFor[name]!(result)], [value], tolerance, name);
    }
  });
});

describe("verl actor step from logits: log-probs, entropy bonus, KL loss, gradient into the logits", () => {
  const cases = file.cases.filter((c: GoldenCase) => c.id.startsWith("verl.pl.actor_step."));
  it("has the cases", () => expect(cases.length).toBe(5));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as Record<string, number[][]> & { logits: number[][][] };
    const h = c.hyperparameters as Hyper & { kl_loss_type: "k1"; kl_loss_coef: number; entropy_coeff: number };
    const mask = inputs.response_mask!;
    const forward = tokenLogProbs(inputs.logits, matrix(inputs.labels!), { entropy: true });
    const result = policyLoss(
      {
        logp: { data: forward.logp, shape: forward.shape },
        oldLogp: matrix(inputs.old_log_prob!),
        advantages: matrix(inputs.advantages!),
        mask: matrix(mask),
        refLogp: matrix(inputs.ref_log_prob!),
        entropy: { data: forward.entropy!, shape: forward.shape },
      },
      {
        ...lossPresets.verl,
        clipLow: h.clip_ratio_low as number,
        clipHigh: h.clip_ratio_high as number,
        dualClip: h.clip_ratio_c as number,
        aggregation: h.loss_agg_mode,
        kl: { kind: h.kl_loss_type, coef: h.kl_loss_coef, clamp: true },
        entropyCoef: h.entropy_coeff,
      },
    );
    const gradLogits = tokenLogProbsBackward(inputs.logits, matrix(inputs.labels!), {
      gradLogp: { data: result.grad, shape: result.shape },
      gradEntropy: { data: result.gradEntropy!, shape: result.shape },
      saved: forward,
    });
    const out = c.outputs as {
      log_prob: number[][];
      entropy: number[][];
      kld: number[][];
      policy_loss: number;
      grad_log_prob: number[][];
      grad_logits: number[][][];
      pg_metrics: Record<string, number>;
    };
    expectAllClose(forward.logp, out.log_prob.flat(), FLOAT64_TOLERANCE, "log_prob");
    expectAllClose(forward.entropy!, out.entropy.flat(), FLOAT64_TOLERANCE, "entropy");
    expectAllClose(selected(result.perTokenKl!, mask), selected(out.kld.flat(), mask), FLOAT64_TOLERANCE, "kld");
    expectAllClose([result.loss], [out.policy_loss], FLOAT64_TOLERANCE, "policy_loss");
    expectAllClose(result.grad, out.grad_log_prob.flat(), GRADIENT_TOLERANCE, "grad_log_prob");
    expectAllClose(gradLogits.data, out.grad_logits.flat(2), GRADIENT_TOLERANCE, "grad_logits");
    for (const [name, value] of Object.entries(out.pg_metrics)) expectAllClose([metricFor[name]!(result)], [value], FLOAT64_TOLERANCE, name);
  });
});
