/**
 * verl's rollout correction (verl2_rollout_correction.json, verl 1dda039 rollout_corr_helper.py) and its bypass mode
 * (verl2_policy_loss.json, compute_policy_loss_bypass_mode): weights, rejection masks, the decoupled pipeline with
 * every preset the file holds, the off-policy metrics, and the bypass loss built on policyLoss.
 */
import { describe, expect, it } from "vitest";
import {
  bypassModePolicyLoss,
  fromVerlConfig,
  type RolloutCorrectionOptionsInput,
  rolloutCorrection,
  rolloutCorrectionMetrics,
  rolloutCorrectionPresets,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  ValidationError,
  type VerlConfig,
} from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type GoldenCase, type Tolerance } from "./helpers/golden.js";
import { verlMetricFor } from "./helpers/golden-loss.js";
import { matrix } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };
const file = loadGolden("verl2_rollout_correction.json");
const byFunction = (name: string) => file.cases.filter((c) => c.function === name);

/** Every metric of the peer, by name, at the case's tolerance (float32 ones are reproduced with Math.fround). */
function expectMetrics(actual: Record<string, number>, expected: Record<string, number>, tol: Tolerance): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [name, value] of Object.entries(expected)) expectAllClose([actual[name]!], [value], tol, name);
}

/** A RolloutCorrectionConfig (verl's threshold strings and all) as fromVerlConfig translates it. */
type VerlRolloutCorrectionConfig = NonNullable<NonNullable<VerlConfig["algorithm"]>["rollout_correction"]>;
function correctionOf(rc: VerlRolloutCorrectionConfig): RolloutCorrectionOptionsInput {
  return fromVerlConfig({ algorithm: { adv_estimator: "grpo", rollout_correction: rc } }).rolloutCorrection!;
}

const outputs = (c: GoldenCase) => c.outputs as Record<string, unknown> & { metrics: Record<string, number> };
const inputsOf = (c: GoldenCase) => c.inputs as Record<string, number[][]>;

describe("compute_rollout_correction_weights: TIS, IcePop, sequence level, batch normalisation", () => {
  const cases = byFunction("compute_rollout_correction_weights");
  it("has the cases", () => expect(cases.length).toBe(6));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const options = correctionOf(c.hyperparameters as VerlRolloutCorrectionConfig).weights!;
    const inputs = { logRatio: matrix(inputsOf(c).log_ratio!), mask: matrix(inputsOf(c).response_mask!) };
    const out = outputs(c);
    if (out.error !== undefined) {
      expect(c.edge_case).toBe(true);
      expect(() => rolloutImportanceWeights(inputs, options)).toThrow(ValidationError);
      return;
    }
    const result = rolloutImportanceWeights(inputs, options);
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(result.weights.data, (out.rollout_is_weights as number[][]).flat(), tol, "rollout_is_weights");
    expectMetrics(result.metrics, out.metrics, tol);
  });
});

describe("compute_rollout_rejection_mask: every statistic, chained criteria, the k1 bounds on 1/r", () => {
  const cases = byFunction("compute_rollout_rejection_mask");
  it("has the cases", () => expect(cases.length).toBe(11));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    // rollout_rs and rollout_rs_threshold alone: no importance weights.
    const config = { rollout_is: null, ...c.hyperparameters } as VerlRolloutCorrectionConfig;
    const inputs = { logRatio: matrix(inputsOf(c).log_ratio!), mask: matrix(inputsOf(c).response_mask!) };
    const out = outputs(c);
    if (out.error !== undefined) {
      // verl raises ValueError: a "lower_upper" threshold for k2, and seq_max_k1 (which does not exist); the
      // translation refuses both at the config key.
      expect(() => correctionOf(config)).toThrow(ValidationError);
      expect(() => correctionOf(config)).toThrow(/config\.algorithm\.rollout_correction\.rollout_rs/);
      return;
    }
    const result = rolloutRejectionMask(inputs, correctionOf(config).rejection!);
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(result.mask.data, (out.modified_response_mask as number[][]).flat(), tol, "modified_response_mask");
    expectMetrics(result.metrics, out.metrics, tol);
  });
});

/** The preset each pipeline case names, as a grpo-roc preset. */
const presetOf: Record<string, keyof typeof rolloutCorrectionPresets> = {
  decoupled_token_is: "decoupledTokenIs",
  decoupled_seq_is: "decoupledSeqIs",
  decoupled_token_icepop: "decoupledTokenIcepop",
  decoupled_seq_is_rs: "decoupledSeqIsRs",
  decoupled_geo_rs: "decoupledGeoRs",
  decoupled_geo_rs_seq_tis: "decoupledGeoRsSeqTis",
  decoupled_geo_rs_token_tis: "decoupledGeoRsTokenTis",
  decoupled_k3_rs: "decoupledK3Rs",
  decoupled_k3_rs_seq_tis: "decoupledK3RsSeqTis",
  decoupled_k3_rs_token_tis: "decoupledK3RsTokenTis",
  disabled: "disabled",
  bypass_ppo_clip: "bypassPpoClip",
  bypass_ppo_clip_geo_rs: "bypassPpoClipGeoRs",
  bypass_ppo_clip_k3_rs: "bypassPpoClipK3Rs",
  bypass_pg_is: "bypassPgIs",
  bypass_pg_token_icepop: "bypassPgTokenIcepop",
  bypass_pg_geo_rs: "bypassPgGeoRs",
  bypass_pg_geo_rs_seq_tis: "bypassPgGeoRsSeqTis",
  bypass_pg_geo_rs_token_tis: "bypassPgGeoRsTokenTis",
};

describe("compute_rollout_correction_and_add_to_batch: decoupled mode with verl's presets", () => {
  const cases = byFunction("compute_rollout_correction_and_add_to_batch");
  it("has the cases", () => expect(cases.length).toBe(6));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as { preset: string; rollout_correction: VerlRolloutCorrectionConfig };
    // The named preset is the peer's config: check that the grpo-roc preset of that name says the same.
    const preset = rolloutCorrectionPresets[presetOf[h.preset]!];
    expect(preset).toEqual(correctionOf(h.rollout_correction));
    const i = inputsOf(c);
    const result = rolloutCorrection(
      { oldLogp: matrix(i.old_log_probs!), rolloutLogp: matrix(i.rollout_log_probs!), mask: matrix(i.response_mask!) },
      preset,
    );
    const out = outputs(c);
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose(result.mask.data, (out.response_mask as number[][]).flat(), tol, "response_mask");
    if (out.rollout_is_weights === null) expect(result.importanceWeights).toBeUndefined();
    else expectAllClose(result.importanceWeights!.data, (out.rollout_is_weights as number[][]).flat(), tol, "weights");
    expectMetrics(result.metrics, out.metrics, tol);
  });
});

describe("compute_rollout_corr_metrics_from_logprobs", () => {
  const cases = byFunction("compute_rollout_corr_metrics_from_logprobs");
  it("has the cases", () => expect(cases.length).toBe(4));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const i = inputsOf(c);
    const metrics = rolloutCorrectionMetrics({
      logp: matrix(i.log_prob!),
      rolloutLogp: matrix(i.rollout_log_prob!),
      mask: matrix(i.response_mask!),
    });
    expectMetrics(metrics, outputs(c).metrics, c.tolerance ?? FLOAT64_TOLERANCE);
  });
});

describe("compute_policy_loss_bypass_mode (verl2_policy_loss.json): bypass presets through policyLoss", () => {
  const cases = loadGolden("verl2_policy_loss.json").cases.filter(
    (c) => c.function === "compute_policy_loss_bypass_mode",
  );
  it("has the cases", () => expect(cases.length).toBe(6));

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const h = c.hyperparameters as Record<string, unknown> & { policy_loss: Record<string, unknown> };
    const set = (c as GoldenCase & { hyperparameters_set: { preset: string } }).hyperparameters_set;
    // The case's ActorConfig (loss_mode bypass_mode) → bypassModePolicyLoss's options, correction and loss.
    const actor = { ...h, policy_loss: { ...h.policy_loss, loss_mode: "bypass_mode" } };
    const translation = fromVerlConfig({ actor: actor as NonNullable<VerlConfig["actor"]> });
    const bypass = translation.bypassMode!;
    const correction = bypass.correction!;
    const named = presetOf[set.preset];
    if (named !== undefined) expect(rolloutCorrectionPresets[named]).toEqual(correction);
    const i = inputsOf(c);
    const { policyLoss: result, correction: applied } = bypassModePolicyLoss(
      {
        logp: matrix(i.log_prob!),
        rolloutLogp: matrix(i.old_log_prob!),
        advantages: matrix(i.advantages!),
        mask: matrix(i.response_mask!),
      },
      bypass,
    );
    const out = c.outputs as {
      pg_loss: number;
      grad_log_prob: number[][];
      metrics: Record<string, number>;
      intermediates: { computed_is_weights?: number[][] | null; effective_mask: number[][] };
    };
    const tol = c.tolerance ?? FLOAT64_TOLERANCE;
    expectAllClose([result.loss], [out.pg_loss], tol, "pg_loss");
    expectAllClose(result.grad, out.grad_log_prob.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad_log_prob");
    expectAllClose(applied.mask.data, out.intermediates.effective_mask.flat(), tol, "effective_mask");
    if (out.intermediates.computed_is_weights != null) {
      expectAllClose(applied.importanceWeights!.data, out.intermediates.computed_is_weights.flat(), tol, "weights");
    }
    for (const [name, value] of Object.entries(out.metrics)) {
      const actual = name.startsWith("rollout_corr/") ? applied.metrics[name] : verlMetricFor[name]?.(result);
      expect(actual, `metric ${name}`).toBeDefined();
      expectAllClose([actual!], [value], tol, name);
    }
    const lossMetricNames = Object.keys(out.metrics).filter((n) => n.startsWith("rollout_corr/"));
    expect(Object.keys(applied.metrics).sort()).toEqual(lossMetricNames.sort());
  });
});
