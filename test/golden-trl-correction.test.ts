/**
 * TRL's vLLM importance-sampling correction (trl2_is_correction.json: the ratio block and `_compute_loss` consuming
 * it) and TRL's token masks (trl_policy_loss.json: `get_high_entropy_mask` and `get_off_policy_mask`), each fed
 * to policyLoss as `importanceWeights` over the unchanged completion mask, as TRL multiplies them in. Every option
 * comes from fromTrlConfig of the case's GRPOConfig fields (`importanceSampling`, `entropyMask`, `offPolicyMask`).
 */
import { describe, expect, it } from "vitest";
import {
  entropyMask,
  fromTrlConfig,
  multiplyWeights,
  offPolicyMask,
  policyLoss,
  type PolicyLossResult,
  vllmImportanceSampling,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, type GoldenCase, loadGolden, type Tolerance } from "./helpers/golden.js";
import { trlConfigOf, type TrlHyper, trlInputsFor, trlMappedMetrics, trlOptionsFor } from "./helpers/golden-loss.js";
import { matrix, selected } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };
const FLOAT32_TOLERANCE: Tolerance = { rtol: 1e-6, atol: 1e-7 };

/** The case's GRPOConfig fields through fromTrlConfig. */
function translationOf(c: GoldenCase) {
  return fromTrlConfig(trlConfigOf(c.hyperparameters) as Parameters<typeof fromTrlConfig>[0]);
}

function ratioOf(c: GoldenCase) {
  const i = c.inputs as Record<string, number[][]>;
  return vllmImportanceSampling(
    {
      oldLogp: matrix(i.old_per_token_logps!),
      samplingLogp: matrix(i.sampling_per_token_logps!),
      mask: matrix(i.completion_mask!),
      ...(i.tool_mask ? { toolMask: matrix(i.tool_mask) } : {}),
    },
    translationOf(c).importanceSampling!,
  );
}

function compareLossMetrics(result: PolicyLossResult, metrics: Record<string, number>, h: TrlHyper): void {
  const mapped = trlMappedMetrics(result, h);
  for (const [name, value] of Object.entries(metrics)) {
    const ours = mapped[name];
    if (ours !== undefined)
      expectAllClose([ours.value], [value], ours.float32 ? FLOAT32_TOLERANCE : FLOAT64_TOLERANCE, `metric ${name}`);
  }
}

const file = loadGolden("trl2_is_correction.json");

describe("TRL vLLM importance-sampling ratio, all four modes, and its sampling/* metrics", () => {
  const cases = file.cases.filter((c) => c.function.endsWith("[vllm_importance_sampling]"));
  it("has the cases", () => expect(cases.length).toBe(8));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const result = ratioOf(c);
    const out = c.outputs as {
      importance_sampling_ratio: number[][];
      invalid_mis_mask?: boolean[][];
      metrics: Record<string, number>;
    };
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(result.ratio, out.importance_sampling_ratio.flat(), tol, "importance_sampling_ratio");
    if (out.invalid_mis_mask !== undefined) {
      expect(Array.from(result.rejected!)).toEqual(out.invalid_mis_mask.flat().map(Number));
    } else {
      expect(result.rejected).toBeUndefined();
    }
    expect(Object.keys(result.metrics).sort()).toEqual(Object.keys(out.metrics).sort());
    for (const [name, value] of Object.entries(out.metrics))
      expectAllClose([result.metrics[name]!], [value], tol, name);
  });
});

describe("TRL _compute_loss with the vLLM ratio: per_token_loss · ρ before + β·KL, denominators unchanged", () => {
  const cases = file.cases.filter((c) => c.function === "GRPOTrainer._compute_loss");
  const supported = (c: GoldenCase) =>
    ["grpo", "cispo", "sapo", "dapo", "bnpo", "dr_grpo", "luspo", "vespo"].includes(
      c.hyperparameters.loss_type as string,
    );
  it("has the cases (grpo + β, cispo, sapo, vespo with ρ inside φ, luspo at sequence level)", () => {
    expect(cases.length).toBe(5);
    expect(cases.filter(supported).length).toBe(5);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const raw = c.hyperparameters as unknown as TrlHyper & { epsilon_high: number | null };
    const inputs = c.inputs as Record<string, number[][]> & { num_items_in_batch: number };
    const ratio = ratioOf(c);
    // The case's ratio input is the ratio block's output for the same hyperparameters.
    expectAllClose(
      ratio.ratio,
      inputs.importance_sampling_ratio!.flat(),
      FLOAT64_TOLERANCE,
      "importance_sampling_ratio",
    );
    if (!supported(c)) return;
    const h: TrlHyper = { ...raw, epsilon_high: raw.epsilon_high ?? raw.epsilon };
    const options = trlOptionsFor(h, inputs.num_items_in_batch);
    // vespo: TRL's ratio enters φ, and the translation says so.
    if (h.loss_type === "vespo") expect(options.vespo).toMatchObject({ importanceWeights: "phi" });
    const result = policyLoss({ ...trlInputsFor(c), importanceWeights: ratio.importanceWeights }, options);
    const out = c.outputs as {
      loss: number;
      grad_per_token_logps: number[][];
      per_token_loss: number[][];
      metrics: Record<string, number>;
    };
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.loss], tol, "loss");
    expectAllClose(result.grad, out.grad_per_token_logps.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad");
    const mask = inputs.completion_mask!;
    const ours = result.perTokenLoss.map(
      (v, i) => v + (result.perTokenKl === undefined ? 0 : h.beta * result.perTokenKl[i]!),
    );
    // At sequence level TRL's per_token_loss is [B, 1] (luspo's: before its row-length factor L_b).
    if (h.importance_sampling_level === "token")
      expectAllClose(selected(ours, mask), selected(out.per_token_loss.flat(), mask), tol, "per_token_loss");
    compareLossMetrics(result, out.metrics, h);
  });
});

describe("TRL token masks (trl_policy_loss.json): top-entropy quantile and off-policy sequence mask", () => {
  const cases = loadGolden("trl_policy_loss.json").cases.filter((c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    return h.top_entropy_quantile !== 1 || h.off_policy_mask_threshold !== null;
  });
  it("has the cases", () => expect(cases.length).toBe(6));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as unknown as TrlHyper;
    const inputs = c.inputs as Record<string, number[][]> & { advantages: number[] | number[][] };
    const out = c.outputs as {
      loss: number;
      grad_per_token_logps: number[][];
      per_token_loss: number[][];
      metrics: Record<string, number>;
      entropy_mask?: boolean[][];
      off_policy_mask?: number[][];
    };
    const mask = matrix(inputs.completion_mask!);
    const translation = fromTrlConfig(trlConfigOf(c.hyperparameters));
    expect(translation.entropyMask !== undefined).toBe(h.top_entropy_quantile !== 1);
    expect(translation.offPolicyMask !== undefined).toBe(h.off_policy_mask_threshold !== null);
    const weights = [];
    if (translation.entropyMask !== undefined) {
      const entropy = entropyMask({ entropy: matrix(inputs.entropies!), mask }, translation.entropyMask);
      expect(Array.from(entropy.importanceWeights.data)).toEqual(out.entropy_mask!.flat().map(Number));
      weights.push(entropy.importanceWeights);
    }
    if (translation.offPolicyMask !== undefined) {
      const advantages = Array.isArray(inputs.advantages[0])
        ? matrix(inputs.advantages as number[][])
        : (inputs.advantages as number[]);
      const offPolicy = offPolicyMask(
        { logp: matrix(inputs.per_token_logps!), oldLogp: matrix(inputs.old_per_token_logps!), advantages, mask },
        translation.offPolicyMask,
      );
      const rows = out.off_policy_mask!.map((row) => row[0]!);
      const cols = inputs.completion_mask![0]!.length;
      expect(Array.from(offPolicy.importanceWeights.data)).toEqual(rows.flatMap((r) => Array(cols).fill(r)));
      weights.push(offPolicy.importanceWeights);
    }
    const numItems = (c.inputs as { num_items_in_batch?: number }).num_items_in_batch;
    const result = policyLoss(
      { ...trlInputsFor(c), importanceWeights: multiplyWeights(...weights) },
      trlOptionsFor(h, numItems),
    );
    expectAllClose([result.loss], [out.loss], FLOAT64_TOLERANCE, "loss");
    expectAllClose(result.grad, out.grad_per_token_logps.flat(), GRADIENT_TOLERANCE, "grad");
    const m = inputs.completion_mask!;
    expectAllClose(
      selected(result.perTokenLoss, m),
      selected(out.per_token_loss.flat(), m),
      FLOAT64_TOLERANCE,
      "per_token_loss",
    );
    compareLossMetrics(result, out.metrics, h);
  });
});
