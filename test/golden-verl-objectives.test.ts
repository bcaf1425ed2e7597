/**
 * verl's objectives without native kernels (src/loss/verl-objectives.ts) against the golden files: DPPO-TV,
 * DPPO-KL and DRO (verl2_policy_loss.json, verl 1dda039), GMPO, KL-Cov and Clip-Cov (verl_policy_loss.json, verl
 * b178a3c). Every case's options are fromVerlConfig's for its ActorConfig at its file's commit (token-sum and
 * 1dda039's seq-mean-token-sum-norm included). Values at 1e-12, gradients at 1e-10, verl's float32 clip fractions
 * through Math.fround.
 */
import { describe, expect, it } from "vitest";
import { policyLoss, ValidationError } from "../src/index.js";
import { expectAllClose, FLOAT64_TOLERANCE, loadGolden, type GoldenCase, type Tolerance } from "./helpers/golden.js";
import { verlInputsFor, verlMetricOf, verlReferenceOptionsFor, type VerlHyper } from "./helpers/golden-loss.js";
import { selected } from "./helpers/matrices.js";

const GRADIENT_TOLERANCE: Tolerance = { rtol: 1e-10, atol: 1e-12 };

interface LossOutputs {
  pg_loss: number;
  grad_log_prob: number[][];
  per_token_loss: number[][] | number[];
  metrics: Record<string, number>;
  error?: string;
}

/** One golden case through policyLoss, every output compared. */
function expectCase(c: GoldenCase): void {
  const h = c.hyperparameters as VerlHyper;
  const mask = (c.inputs as { response_mask: number[][] }).response_mask;
  const result = policyLoss(verlInputsFor(c), verlReferenceOptionsFor[c.function]!(h));
  const out = c.outputs as unknown as LossOutputs;
  const tolerance = c.tolerance ?? FLOAT64_TOLERANCE;
  expectAllClose([result.loss], [out.pg_loss], tolerance, "pg_loss");
  expectAllClose(result.grad, out.grad_log_prob.flat(), c.tolerance ?? GRADIENT_TOLERANCE, "grad_log_prob");
  if (Array.isArray(out.per_token_loss[0])) {
    expectAllClose(
      selected(result.perTokenLoss, mask),
      selected((out.per_token_loss as number[][]).flat(), mask),
      tolerance,
      "per_token_loss",
    );
  } else {
    // GMPO's per_token_loss is one loss per row [B]: each valid token of the row carries it.
    const T = mask[0]!.length;
    const rows = mask.flatMap((row, b) => (row.includes(1) ? [b] : []));
    expectAllClose(
      rows.map((b) => result.perTokenLoss[b * T + mask[b]!.indexOf(1)]!),
      rows.map((b) => (out.per_token_loss as number[])[b]!),
      tolerance,
      "per_token_loss",
    );
  }
  for (const [name, value] of Object.entries(out.metrics)) {
    const metric = verlMetricOf(c.function, name);
    expect(metric, `metric ${name} is mapped`).toBeDefined();
    expectAllClose([metric!(result)], [value], tolerance, name);
  }
}

const verl2 = loadGolden("verl2_policy_loss.json");
const verl1 = loadGolden("verl_policy_loss.json");

describe.each([
  ["DPPO-TV (verl 1dda039 compute_policy_loss_dppo_tv)", verl2, "compute_policy_loss_dppo_tv", 5],
  ["DPPO-KL (verl 1dda039 compute_policy_loss_dppo_kl)", verl2, "compute_policy_loss_dppo_kl", 4],
  ["DRO (verl 1dda039 compute_policy_loss_dro)", verl2, "compute_policy_loss_dro", 5],
  ["GMPO (verl b178a3c compute_policy_loss_geo_mean)", verl1, "compute_policy_loss_geo_mean", 4],
  ["KL-Cov (verl b178a3c compute_policy_loss_kl_cov)", verl1, "compute_policy_loss_kl_cov", 2],
  ["Clip-Cov (verl b178a3c compute_policy_loss_clip_cov)", verl1, "compute_policy_loss_clip_cov", 2],
] as const)("%s", (_title, file, fn, count) => {
  const cases = file.cases.filter((c) => c.function === fn && !("error" in c.outputs));
  it("has the cases", () => expect(cases.length).toBe(count));
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => expectCase(c));
});

describe("DRO without a positive β: verl raises, fromVerlConfig refuses at policy_loss.dro_beta", () => {
  const cases = verl2.cases.filter((c) => c.function === "compute_policy_loss_dro" && "error" in c.outputs);
  it("has the cases", () => expect(cases.length).toBe(2));
  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    expect((c.outputs as { error: string }).error).toMatch(/dro_beta must be a positive value/);
    const translate = () => verlReferenceOptionsFor[c.function]!(c.hyperparameters as VerlHyper);
    expect(translate).toThrow(ValidationError);
    expect(translate).toThrow(/config\.actor\.policy_loss\.dro_beta/);
  });
});
