import { describe, expect, it } from "vitest";
import { policyLoss, tokenLogProbs, tokenLogProbsBackward } from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type GoldenCase, type Tolerance } from "./helpers/golden.js";
import {
  verlActorStepInputs,
  verlActorStepOptions,
  verlInputsFor,
  verlMetricFor as metricFor,
  verlOptionsFor as optionsFor,
  type VerlActorHyper,
  type VerlActorStepOutputs,
  type VerlHyper as Hyper,
} from "./helpers/golden-loss.js";
import { matrix, selected } from "./helpers/matrices.js";

/** Gradients come from autograd in float64: the golden README's suggested tolerance for them. */
const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };

const file = loadGolden("verl_policy_loss.json");

describe("verl policy losses (verl_policy_loss.json)", () => {
  const cases = file.cases.filter((c) => c.function in optionsFor);
  it("covers vanilla (clip, clip-higher, dual clip c = 3 and 10, all aggregations), GSPO, SAPO, CISPO, GPG, REINFORCE", () => {
    expect(cases.length).toBeGreaterThanOrEqual(46);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const inputs = c.inputs as Record<string, number[][]>;
    const mask = inputs.response_mask!;
    const result = policyLoss(verlInputsFor(c), optionsFor[c.function]!(c.hyperparameters as Hyper));
    const out = c.outputs as {
      pg_loss: number;
      grad_log_prob: number[][];
      per_token_loss: number[][];
      metrics: Record<string, number>;
    };
    const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.pg_loss], tolerance, "pg_loss");
    expectAllClose(result.grad, out.grad_log_prob.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad_log_prob");
    expectAllClose(
      selected(result.perTokenLoss, mask),
      selected(out.per_token_loss.flat(), mask),
      tolerance,
      "per_token_loss",
    );
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
    const h = c.hyperparameters as VerlActorHyper;
    const mask = inputs.response_mask!;
    const forward = tokenLogProbs(inputs.logits, matrix(inputs.labels!), { entropy: true });
    const result = policyLoss(verlActorStepInputs(c, forward), verlActorStepOptions(h));
    const gradLogits = tokenLogProbsBackward(inputs.logits, matrix(inputs.labels!), {
      gradLogp: { data: result.grad, shape: result.shape },
      gradEntropy: { data: result.gradEntropy!, shape: result.shape },
      saved: forward,
    });
    const out = c.outputs as unknown as VerlActorStepOutputs;
    expectAllClose(forward.logp, out.log_prob.flat(), FLOAT64_TOLERANCE, "log_prob");
    expectAllClose(forward.entropy!, out.entropy.flat(), FLOAT64_TOLERANCE, "entropy");
    expectAllClose(selected(result.perTokenKl!, mask), selected(out.kld.flat(), mask), FLOAT64_TOLERANCE, "kld");
    expectAllClose([result.loss], [out.policy_loss], FLOAT64_TOLERANCE, "policy_loss");
    expectAllClose(result.grad, out.grad_log_prob.flat(), GRADIENT_TOLERANCE, "grad_log_prob");
    expectAllClose(gradLogits.data, out.grad_logits.flat(2), GRADIENT_TOLERANCE, "grad_logits");
    for (const [name, value] of Object.entries(out.pg_metrics))
      expectAllClose([metricFor[name]!(result)], [value], FLOAT64_TOLERANCE, name);
  });
});
