/**
 * The conformance suite: one definition, run on every backend (reference, tfjs@cpu, tfjs@wasm, tfjs@webgpu, webgpu,
 * webgpu@chunked, cuda, cuda@host; one test file each). Every kernel of the Backend interface (policyLoss,
 * tokenLogProbs, tokenLogProbsBackward and the loss from logits, policyLossFromLogits) must
 *
 *   (a) reproduce the golden cases of verl and TRL (test/golden/*.json), through the same case → options mappers
 *       as test/golden-{verl,trl}-loss.test.ts;
 *   (b) agree with the reference backend on random inputs (every objective, ratio level, aggregation, KL kind,
 *       entropy bonus, masks with holes and empty rows, NaN / ±Infinity at masked positions, −Infinity logits,
 *       temperatures, float32 and float64 logits);
 *   (c) have the right gradients: float64 backends against central finite differences; float32 backends against
 *       the float64 reference gradient (itself checked by finite differences on the same inputs), because a
 *       float32 loss cannot be differenced accurately (see tolerances.ts);
 *   (d) be micro-batch invariant: with the whole batch's normaliser, micro-batch losses sum to the batch loss and
 *       the micro-batch gradients are the batch gradient;
 *   (e) reject bad input exactly as the reference does: a ValidationError at the same issue paths;
 *   (f) compute the loss from logits (fused where the backend fuses) as the reference composes it, on random cases
 *       and on the golden cases that start from logits;
 *   (g) run an objective registered at run time, and the shipped ones without native kernels (verl's DPPO, DRO,
 *       GMPO, KL-Cov, Clip-Cov, on random and golden inputs), with the reference's results, from log-probs and logits;
 *   (h) keep the bad-input contract on hostile inputs: generated non-numbers and malformed objects are refused at the
 *       reference's paths; the empty batch is a no-op; vocabularies of 152,064 and 2^20 and logits near the float
 *       range give the reference's log-probs within the dtype's tolerance (relative to their own size), or, on a
 *       float32 backend, a refusal that names float32 or the device limit as the cause.
 *
 * Tolerances: tolerances.ts (the only place they are set).
 */
import { describe, expect, it } from "vitest";
import {
  AGGREGATIONS,
  BUILTIN_OBJECTIVES,
  lossPresets,
  REFERENCE_OBJECTIVES,
  type LogitsPolicyLossResult,
  policyObjectiveNames,
  registerPolicyObjective,
  batchNormalizer,
  ValidationError,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  type TokenLogProbs,
} from "../../src/index.js";
import { referenceBackend, type Backend } from "../../src/backends/index.js";
import { loadGolden, type GoldenCase } from "../helpers/golden.js";
import {
  isSupportedTrlCase,
  trlInputsFor,
  trlLossDefaults,
  trlMappedMetrics,
  trlOptionsFor,
  verlActorStepInputs,
  verlActorStepOptions,
  verlInputsFor,
  verlMetricFor,
  verlOptionsFor,
  verlReferenceOptionsFor,
  verl2TermCase,
  type TrlHyper,
  type VerlActorHyper,
  type VerlHyper,
  type VerlActorStepOutputs,
} from "../helpers/golden-loss.js";
import { matrix, selected } from "../helpers/matrices.js";
import {
  drawLossCase,
  inputsOf,
  randomLogProbCase,
  randomLossCase,
  type LogProbCase,
  type LossCase,
  type Objective,
  type FromLogitsCase,
  normal,
  rngFor,
  randomFromLogitsCase,
  REFERENCE_OBJECTIVE_OPTIONS,
  verl2TermCases,
} from "./cases.js";
import { inCi, type Target } from "./targets.js";
import {
  expectClose,
  FINITE_DIFFERENCES,
  GOLDEN_OVERRIDES,
  gradScale,
  klScale,
  logitGradScale,
  logProbScale,
  lossScale,
  metricScale,
  tolerance,
  type Tolerance,
} from "./tolerances.js";
import { rejection } from "../helpers/errors.js";

const reference = referenceBackend;

export function defineConformanceSuite(target: Target): void {
  describe(`${target.name}: availability`, () => {
    // With CI set, an unavailable backend is a failure, not a skip: CI must exercise every backend.
    it.skipIf(!inCi)(`${target.name} is available (required when CI is set)`, () => {
      expect(target.available, `${target.name} is not available: ${target.reason}`).toBe(true);
    });
  });

  const title = target.available ? `${target.name} (${target.reason})` : `${target.name} — skipped: ${target.reason}`;
  describe.skipIf(!target.available)(title, () => {
    goldenCases(target);
    randomCases(target);
    gradients(target);
    microBatches(target);
    badInput(target);
    fromLogits(target);
    registeredObjective(target);
    referenceObjectives(target);
    hostileInputs(target);
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing a backend's results with expected (golden or reference) results

type Flat = { data: ArrayLike<number>; shape: readonly [number, number] };
const flat = (x: ArrayLike<number>, shape: readonly [number, number]): Flat => ({ data: x, shape });
const abs = (x: ArrayLike<number>) => Float64Array.from(x, Math.abs);

/** Every field of a policyLoss result against the reference backend's, on the same inputs. */
function expectSameLoss(
  t: Target,
  actual: PolicyLossResult,
  expected: PolicyLossResult,
  inputs: PolicyLossInputs,
  options: PolicyLossOptionsInput,
  label = "",
): void {
  const d = t.dtype;
  expect(actual.shape).toEqual(expected.shape);
  expectClose(actual.loss, expected.loss, tolerance(d, "value", lossScale(expected, inputs, options)), `${label}loss`);
  expectClose(actual.grad, expected.grad, tolerance(d, "grad", gradScale(expected, inputs, options)), `${label}grad`);
  expectClose(
    actual.perTokenLoss,
    expected.perTokenLoss,
    tolerance(d, "value", abs(expected.perTokenLoss)),
    `${label}perTokenLoss`,
  );
  expect(actual.gradEntropy === undefined, `${label}gradEntropy present`).toBe(expected.gradEntropy === undefined);
  if (expected.gradEntropy !== undefined) {
    expectClose(
      actual.gradEntropy!,
      expected.gradEntropy,
      tolerance(d, "grad", abs(expected.gradEntropy)),
      `${label}gradEntropy`,
    );
  }
  expect(actual.perTokenKl === undefined, `${label}perTokenKl present`).toBe(expected.perTokenKl === undefined);
  if (expected.perTokenKl !== undefined) {
    expectClose(
      actual.perTokenKl!,
      expected.perTokenKl,
      tolerance(d, "value", klScale(expected, inputs, options)),
      `${label}perTokenKl`,
    );
  }
  for (const [name, value] of Object.entries(expected.metrics) as [
    keyof PolicyLossResult["metrics"],
    number | undefined,
  ][]) {
    const ours = actual.metrics[name];
    expect(ours === undefined, `${label}metrics.${name} present`).toBe(value === undefined);
    if (value !== undefined)
      expectClose(
        ours!,
        value,
        tolerance(d, "value", metricScale(name, expected, inputs, options)),
        `${label}metrics.${name}`,
      );
  }
}

function expectSameLogProbs(t: Target, actual: TokenLogProbs, expected: TokenLogProbs, label = ""): void {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.temperature).toBe(expected.temperature);
  expectClose(actual.logp, expected.logp, tolerance(t.dtype, "value", logProbScale(expected.logp)), `${label}logp`);
  expectClose(
    actual.logSumExp,
    expected.logSumExp,
    tolerance(t.dtype, "value", logProbScale(expected.logSumExp)),
    `${label}logSumExp`,
  );
  expect(actual.entropy === undefined, `${label}entropy present`).toBe(expected.entropy === undefined);
  if (expected.entropy !== undefined) {
    expectClose(
      actual.entropy!,
      expected.entropy,
      tolerance(t.dtype, "value", logProbScale(expected.entropy)),
      `${label}entropy`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (a) golden cases

function goldenCases(t: Target): void {
  const b = t.backend;
  const d = t.dtype;
  const verl = loadGolden("verl_policy_loss.json");
  const trl = loadGolden("trl_policy_loss.json");

  describe("(a) golden: verl policy losses", () => {
    const cases = verl.cases.filter((c) => c.function in verlOptionsFor);
    it("has the cases", () => expect(cases.length).toBeGreaterThanOrEqual(46));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c) => {
      const inputs = verlInputsFor(c);
      const options = verlOptionsFor[c.function]!(c.hyperparameters as VerlHyper);
      const [result, ref] = await Promise.all([b.policyLoss(inputs, options), reference.policyLoss(inputs, options)]);
      const mask = (c.inputs as { response_mask: number[][] }).response_mask;
      const out = c.outputs as {
        pg_loss: number;
        grad_log_prob: number[][];
        per_token_loss: number[][];
        metrics: Record<string, number>;
      };
      expectClose(
        result.loss,
        out.pg_loss,
        tolerance(d, "value", lossScale(ref, inputs, options), c.tolerance),
        "pg_loss",
      );
      expectClose(
        result.grad,
        out.grad_log_prob.flat(),
        tolerance(d, "grad", gradScale(ref, inputs, options), c.tolerance),
        "grad_log_prob",
      );
      expectClose(
        selected(result.perTokenLoss, mask),
        selected(out.per_token_loss.flat(), mask),
        tolerance(d, "value", selected(abs(ref.perTokenLoss), mask), c.tolerance),
        "per_token_loss",
      );
      for (const [name, value] of Object.entries(out.metrics)) {
        expect(verlMetricFor[name], `metric ${name} is mapped`).toBeDefined();
        const scale = metricScale(name === "actor/ppo_kl" ? "approxKl" : name, ref, inputs, options);
        expectClose(verlMetricFor[name]!(result), value, tolerance(d, "value", scale, c.tolerance), name);
      }
    });
  });

  describe("(a) golden: verl actor step from logits (log-probs, entropy bonus, KL loss, gradient into the logits)", () => {
    const cases = verl.cases.filter((c) => c.id.startsWith("verl.pl.actor_step."));
    it("has the cases", () => expect(cases.length).toBe(5));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c) => {
      const inputs = c.inputs as Record<string, number[][]> & { logits: number[][][] };
      const h = c.hyperparameters as VerlActorHyper;
      const labels = matrix(inputs.labels!);
      const mask = inputs.response_mask!;
      const options = verlActorStepOptions(h);
      const forward = await b.tokenLogProbs(inputs.logits, labels, { entropy: true });
      const refForward = await reference.tokenLogProbs(inputs.logits, labels, { entropy: true });
      const result = await b.policyLoss(verlActorStepInputs(c, forward), options);
      const refInputs = verlActorStepInputs(c, refForward);
      const ref = await reference.policyLoss(refInputs, options);
      const gradLogits = await b.tokenLogProbsBackward(inputs.logits, labels, {
        gradLogp: flat(result.grad, result.shape),
        gradEntropy: flat(result.gradEntropy!, result.shape),
        saved: forward,
      });
      const out = c.outputs as unknown as VerlActorStepOutputs;
      expectClose(forward.logp, out.log_prob.flat(), tolerance(d, "value", logProbScale(refForward.logp)), "log_prob");
      expectClose(
        forward.entropy!,
        out.entropy.flat(),
        tolerance(d, "value", logProbScale(refForward.entropy!)),
        "entropy",
      );
      const kl = klScale(ref, refInputs, options);
      expectClose(
        selected(result.perTokenKl!, mask),
        selected(out.kld.flat(), mask),
        tolerance(d, "value", selected(kl, mask)),
        "kld",
      );
      expectClose(
        result.loss,
        out.policy_loss,
        tolerance(d, "value", lossScale(ref, refInputs, options)),
        "policy_loss",
      );
      expectClose(
        result.grad,
        out.grad_log_prob.flat(),
        tolerance(d, "grad", gradScale(ref, refInputs, options)),
        "grad_log_prob",
      );
      const refLogits = inputs.logits.flat(2);
      const scale = logitGradScale(
        refLogits,
        inputs.logits[0]![0]!.length,
        out.grad_logits.flat(2),
        refForward,
        ref.grad,
        ref.gradEntropy,
        1,
      );
      expectClose(gradLogits.data, out.grad_logits.flat(2), tolerance(d, "grad", scale), "grad_logits");
      for (const [name, value] of Object.entries(out.pg_metrics)) {
        const scale = metricScale(name === "actor/ppo_kl" ? "approxKl" : name, ref, refInputs, options);
        expectClose(verlMetricFor[name]!(result), value, tolerance(d, "value", scale), name);
      }
    });
  });

  describe("(a) golden: TRL GRPOTrainer._compute_loss", () => {
    const cases = trl.cases.filter((c) => c.function === "GRPOTrainer._compute_loss" && isSupportedTrlCase(c));
    it("has the cases", () => expect(cases.length).toBeGreaterThanOrEqual(55));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c) => {
      const h = c.hyperparameters as unknown as TrlHyper;
      const numItems = (c.inputs as { num_items_in_batch?: number }).num_items_in_batch;
      const inputs = trlInputsFor(c);
      const options = trlOptionsFor(h, numItems);
      const [result, ref] = await Promise.all([b.policyLoss(inputs, options), reference.policyLoss(inputs, options)]);
      const out = c.outputs as {
        loss: number;
        grad_per_token_logps: number[][];
        per_token_loss: number[][];
        metrics: Record<string, number>;
      };
      expectClose(result.loss, out.loss, tolerance(d, "value", lossScale(ref, inputs, options), c.tolerance), "loss");
      expectClose(
        result.grad,
        out.grad_per_token_logps.flat(),
        tolerance(d, "grad", gradScale(ref, inputs, options), c.tolerance),
        "grad_per_token_logps",
      );
      if (h.importance_sampling_level === "token") {
        // TRL's per_token_loss includes β·KL.
        const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
        const withKl = (r: PolicyLossResult) =>
          r.perTokenLoss.map((v, i) => v + (r.perTokenKl === undefined ? 0 : h.beta * r.perTokenKl[i]!));
        const kl = klScale(ref, inputs, options);
        const scale = ref.perTokenLoss.map((v, i) => Math.abs(v) + h.beta * kl[i]!);
        expectClose(
          selected(withKl(result), mask),
          selected(out.per_token_loss.flat(), mask),
          tolerance(d, "value", selected(scale, mask), c.tolerance),
          "per_token_loss",
        );
      }
      compareTrlMetrics(t, result, out.metrics, h, metricScale("kl", ref, inputs, options));
    });
  });

  describe("(a) golden: TRL end to end from logits (temperature, entropy, β = 0.04, entropy bonus)", () => {
    const cases = trl.cases.filter((c) => c.id.startsWith("trl.pl.from_logits."));
    it("has the cases", () => expect(cases.length).toBe(4));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c) => {
      const h = c.hyperparameters as unknown as TrlHyper;
      const { logits, labels } = c.inputs as { logits: number[][][]; labels: number[][] };
      const tokens = matrix(labels);
      const temperature = h.temperature!;
      const options = trlOptionsFor(h, undefined);
      const forward = await b.tokenLogProbs(logits, tokens, { temperature, entropy: true });
      const refForward = await reference.tokenLogProbs(logits, tokens, { temperature, entropy: true });
      const result = await b.policyLoss(trlInputsFor(c, forward.logp, forward.entropy), options);
      const refInputs = trlInputsFor(c, refForward.logp, refForward.entropy);
      const ref = await reference.policyLoss(refInputs, options);
      const grad = await b.tokenLogProbsBackward(logits, tokens, {
        temperature,
        gradLogp: flat(result.grad, result.shape),
        gradEntropy: flat(result.gradEntropy!, result.shape),
        saved: forward,
      });
      const out = c.outputs as {
        per_token_logps: number[][];
        entropies: number[][];
        loss: number;
        grad_logits: number[][][];
        metrics: Record<string, number>;
      };
      expectClose(
        forward.logp,
        out.per_token_logps.flat(),
        tolerance(d, "value", logProbScale(refForward.logp)),
        "per_token_logps",
      );
      expectClose(
        forward.entropy!,
        out.entropies.flat(),
        tolerance(d, "value", logProbScale(refForward.entropy!)),
        "entropies",
      );
      expectClose(result.loss, out.loss, tolerance(d, "value", lossScale(ref, refInputs, options)), "loss");
      const scale = logitGradScale(
        logits.flat(2),
        logits[0]![0]!.length,
        out.grad_logits.flat(2),
        refForward,
        ref.grad,
        ref.gradEntropy,
        temperature,
      );
      expectClose(grad.data, out.grad_logits.flat(2), tolerance(d, "grad", scale), "grad_logits");
      compareTrlMetrics(t, result, out.metrics, h, metricScale("kl", ref, refInputs, options));
    });
  });

  describe("(a) golden: TRL per-token k3 KL without clamps (trl_kl.json)", () => {
    const cases = loadGolden("trl_kl.json").cases;
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c: GoldenCase) => {
      const h = { ...trlLossDefaults, ...(c.hyperparameters as unknown as TrlHyper) };
      const inputs = trlInputsFor(c);
      const options = trlOptionsFor(h, undefined);
      const [result, ref] = await Promise.all([b.policyLoss(inputs, options), reference.policyLoss(inputs, options)]);
      const out = c.outputs as {
        per_token_kl: number[][];
        loss: number;
        grad_per_token_logps: number[][];
        metric_kl: number;
      };
      const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
      const kl = klScale(ref, inputs, options);
      expectClose(
        selected(result.perTokenKl!, mask),
        selected(out.per_token_kl.flat(), mask),
        tolerance(d, "value", selected(kl, mask)),
        "per_token_kl",
      );
      expectClose(result.loss, out.loss, tolerance(d, "value", lossScale(ref, inputs, options)), "loss");
      const override = h.use_bias_correction_kl ? GOLDEN_OVERRIDES.trlBiasCorrectedKlGradient : undefined;
      expectClose(
        result.grad,
        out.grad_per_token_logps.flat(),
        tolerance(d, "grad", gradScale(ref, inputs, options), override),
        "grad_per_token_logps",
      );
      expectClose(
        result.metrics.kl!,
        out.metric_kl,
        tolerance(d, "value", metricScale("kl", ref, inputs, options)),
        "metric kl",
      );
    });
  });

  describe("(a) golden: verl 1dda039 agg_loss (token-sum) and kl_penalty + kinds (verl2_policy_loss.json)", () => {
    const cases = loadGolden("verl2_policy_loss.json").cases.filter(
      (c) => (c.function === "agg_loss" || c.function === "kl_penalty") && !c.edge_case && !("error" in c.outputs),
    );
    it("has the cases", () => expect(cases.length).toBeGreaterThanOrEqual(4));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c: GoldenCase) => {
      const { inputs, options, loss, grad } = verl2TermCase(c);
      const [result, ref] = await Promise.all([b.policyLoss(inputs, options), reference.policyLoss(inputs, options)]);
      expectClose(result.loss, loss, tolerance(d, "value", lossScale(ref, inputs, options)), "loss");
      expectClose(result.grad, grad, tolerance(d, "grad", gradScale(ref, inputs, options)), "grad");
    });
  });
}

function compareTrlMetrics(
  t: Target,
  result: PolicyLossResult,
  metrics: Record<string, number>,
  h: TrlHyper,
  klScale: number,
): void {
  const mapped = trlMappedMetrics(result, h);
  for (const [name, value] of Object.entries(metrics)) {
    const ours = mapped[name];
    if (ours === undefined) continue;
    const override: Tolerance | undefined = ours.float32 ? GOLDEN_OVERRIDES.trlFloat32Metrics : undefined;
    expectClose(
      ours.value,
      value,
      tolerance(t.dtype, "value", name === "kl" ? klScale : 1, override),
      `metric ${name}`,
    );
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (b) random cases against the reference backend

function randomCases(t: Target): void {
  const b = t.backend;
  describe("(b) random policy losses against the reference backend", () => {
    const cases = Array.from({ length: t.budget.randomLosses }, (_, k) => randomLossCase(k));
    it.each(cases.map((c, k) => [k, c.title, c] as const))("#%i %s", async (_k, _title, c: LossCase) => {
      const [actual, expected] = await Promise.all([
        b.policyLoss(c.inputs, c.options),
        reference.policyLoss(c.inputs, c.options),
      ]);
      expectSameLoss(t, actual, expected, c.inputs, c.options);
    });
  });

  describe("(b) verl 1dda039 terms against the reference backend: KL + kinds, token-sum, seq-mean-token-sum-norm", () => {
    it.each(verl2TermCases().map((c, k) => [k, c.title, c] as const))("#%i %s", async (_k, _title, c: LossCase) => {
      const [actual, expected] = await Promise.all([
        b.policyLoss(c.inputs, c.options),
        reference.policyLoss(c.inputs, c.options),
      ]);
      expectSameLoss(t, actual, expected, c.inputs, c.options);
    });
  });

  describe("(b) random token log-probs and their backward pass against the reference backend", () => {
    const cases = Array.from({ length: t.budget.randomLogProbs }, (_, k) => randomLogProbCase(k));
    it.each(cases.map((c, k) => [k, c.title, c] as const))("#%i %s", async (_k, _title, c: LogProbCase) => {
      const options = { temperature: c.temperature, entropy: c.entropy, ...(c.mask ? { mask: c.mask } : {}) };
      const [actual, expected] = await Promise.all([
        b.tokenLogProbs(c.logits, c.tokens, options),
        reference.tokenLogProbs(c.logits, c.tokens, options),
      ]);
      expectSameLogProbs(t, actual, expected);
      const backward = { ...options, gradLogp: c.gradLogp, ...(c.gradEntropy ? { gradEntropy: c.gradEntropy } : {}) };
      const [grad, refGrad] = await Promise.all([
        b.tokenLogProbsBackward(c.logits, c.tokens, backward),
        reference.tokenLogProbsBackward(c.logits, c.tokens, backward),
      ]);
      expect(grad.shape).toEqual(refGrad.shape);
      // Float32 logits give a Float32Array gradient, float64 logits a Float64Array (the reference's contract).
      expect(grad.data.constructor).toBe(refGrad.data.constructor);
      const scale = logitGradScale(
        c.logits.data,
        c.logits.shape[2],
        refGrad.data,
        expected,
        c.gradLogp.data,
        c.gradEntropy?.data,
        c.temperature,
      );
      expectClose(grad.data, refGrad.data, tolerance(t.dtype, "grad", scale), "∂L/∂logits");
    });
  });

  const live = t.liveObjects;
  if (live !== undefined) {
    it("(b) frees every tensor it allocates, also when it rejects its input", async () => {
      const c = randomLossCase(1);
      const l = randomLogProbCase(1);
      await b.policyLoss(c.inputs, c.options);
      const before = live();
      await b.policyLoss(c.inputs, c.options);
      const mask = l.mask ? { mask: l.mask } : {};
      await b.tokenLogProbs(l.logits, l.tokens, { entropy: true, ...mask });
      await b.tokenLogProbsBackward(l.logits, l.tokens, { gradLogp: l.gradLogp, ...mask });
      await expect(b.policyLoss(c.inputs, { ...c.options, objective: "nope" })).rejects.toThrow();
      expect(live()).toBe(before);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------------
// (c) gradients

/** Central difference of f along coordinate i, dividing by the step actually taken. */
async function centralDifference(f: (x: Float64Array) => Promise<number>, x: Float64Array, i: number): Promise<number> {
  const plus = x.slice();
  const minus = x.slice();
  plus[i] = x[i]! + FINITE_DIFFERENCES.step;
  minus[i] = x[i]! - FINITE_DIFFERENCES.step;
  return ((await f(plus)) - (await f(minus))) / (plus[i]! - minus[i]!);
}

const FD_TOLERANCE: Tolerance = { rtol: FINITE_DIFFERENCES.rtol, atol: FINITE_DIFFERENCES.atol };

const GRADIENT_SHAPES: {
  objective: Objective;
  ratioLevel: "token" | "sequence" | "sequence-token";
  aggregation: (typeof AGGREGATIONS)[number];
  kl: { kind: "k1" | "abs" | "k2" | "k3"; clamp: boolean; importanceCorrected: boolean } | null;
  entropyCoef: number;
}[] = [
  {
    objective: "clip",
    ratioLevel: "token",
    aggregation: "token-mean",
    kl: { kind: "k3", clamp: true, importanceCorrected: false },
    entropyCoef: 0.01,
  },
  {
    objective: "clip",
    ratioLevel: "sequence",
    aggregation: "grpo",
    kl: { kind: "k3", clamp: false, importanceCorrected: true },
    entropyCoef: 0,
  },
  {
    objective: "cispo",
    ratioLevel: "token",
    aggregation: "dapo",
    kl: { kind: "k2", clamp: false, importanceCorrected: false },
    entropyCoef: 0.3,
  },
  {
    objective: "sapo",
    ratioLevel: "token",
    aggregation: "seq-mean-token-mean",
    kl: { kind: "abs", clamp: false, importanceCorrected: true },
    entropyCoef: 0.01,
  },
  {
    objective: "reinforce",
    ratioLevel: "token",
    aggregation: "dr_grpo",
    kl: { kind: "k1", clamp: false, importanceCorrected: false },
    entropyCoef: 0,
  },
  { objective: "clip", ratioLevel: "token", aggregation: "seq-mean-token-sum", kl: null, entropyCoef: 0 },
  {
    objective: "clip",
    ratioLevel: "sequence",
    aggregation: "bnpo",
    kl: { kind: "k1", clamp: false, importanceCorrected: false },
    entropyCoef: 0.01,
  },
  {
    objective: "sapo",
    ratioLevel: "token",
    aggregation: "seq-mean-token-sum-norm",
    kl: { kind: "k3", clamp: true, importanceCorrected: true },
    entropyCoef: 0,
  },
  { objective: "cispo", ratioLevel: "token", aggregation: "grpo", kl: null, entropyCoef: 0.01 },
  {
    objective: "reinforce",
    ratioLevel: "token",
    aggregation: "token-mean",
    kl: { kind: "k2", clamp: false, importanceCorrected: true },
    entropyCoef: 0.3,
  },
];

function gradients(t: Target): void {
  const b = t.backend;
  const float64 = t.dtype === "float64";
  const against = float64
    ? "central finite differences"
    : "the float64 reference gradient (finite-difference-checked on the same inputs)";

  describe(`(c) ∂loss/∂logp and ∂loss/∂entropy against ${against}`, () => {
    const shapes = GRADIENT_SHAPES.slice(0, t.budget.gradientChecks);
    it.each(
      shapes.map(
        (s, k) =>
          [
            k,
            `${s.objective}, ${s.ratioLevel}, ${s.aggregation}, KL ${s.kl?.kind ?? "none"}${s.kl?.importanceCorrected ? "·ρ" : ""}`,
            s,
          ] as const,
      ),
    )("#%i %s", async (k, _title, s) => {
      // Finite differences need row-constant advantages at sequence level and an explicit oldLogp.
      const c = drawLossCase(
        `gradient-${k}`,
        { ...s, rowConstant: s.ratioLevel !== "token", onPolicy: false },
        { B: 3, T: 4 },
      );
      const batch = c.batch;
      const clean = inputsOf(batch);
      const [result, ref] = await Promise.all([b.policyLoss(clean, c.options), reference.policyLoss(clean, c.options)]);
      // The finite difference is always of the float64 reference loss.
      const lossAt = async (logp: Float64Array, i: number) => {
        const old = batch.oldLogp!.slice();
        // CISPO's ratio weight is a stop-gradient: its derivative moves oldLogp with logp.
        if (s.objective === "cispo") old[i] = batch.oldLogp![i]! + (logp[i]! - batch.logp[i]!);
        return (await reference.policyLoss(inputsOf(batch, { logp, oldLogp: old }), c.options)).loss;
      };
      const entropyLossAt = async (entropy: Float64Array) =>
        (await reference.policyLoss(inputsOf(batch, { entropy }), c.options)).loss;
      const fd = new Float64Array(batch.logp.length);
      const fdEntropy = new Float64Array(batch.logp.length);
      for (let i = 0; i < fd.length; i++) {
        if (batch.mask[i] === 0) continue;
        fd[i] = await centralDifference((x) => lossAt(x, i), batch.logp, i);
        fdEntropy[i] = await centralDifference(entropyLossAt, batch.entropy, i);
      }
      expectClose(ref.grad, fd, FD_TOLERANCE, "reference ∂loss/∂logp vs finite differences");
      if (float64) {
        expectClose(result.grad, fd, FD_TOLERANCE, "∂loss/∂logp vs finite differences");
      } else {
        expectClose(
          result.grad,
          ref.grad,
          tolerance(t.dtype, "grad", gradScale(ref, clean, c.options)),
          "∂loss/∂logp vs the reference",
        );
      }
      if (s.entropyCoef > 0) {
        expectClose(ref.gradEntropy!, fdEntropy, FD_TOLERANCE, "reference ∂loss/∂entropy vs finite differences");
        expectClose(
          result.gradEntropy!,
          float64 ? fdEntropy : ref.gradEntropy!,
          float64 ? FD_TOLERANCE : tolerance(t.dtype, "grad", abs(ref.gradEntropy!)),
          "∂loss/∂entropy",
        );
      }
      // Masked positions get exactly 0.
      for (let i = 0; i < fd.length; i++)
        if (batch.mask[i] === 0) expect(result.grad[i], `grad[${i}] at a masked position`).toBe(0);
    });
  });

  describe(`(c) ∂L/∂logits of tokenLogProbsBackward against ${against}`, () => {
    const cases = Array.from({ length: Math.max(2, Math.ceil(t.budget.gradientChecks / 2)) }, (_, k) => k);
    it.each(cases)("#%i: L = Σ g·logp + Σ h·entropy", async (k) => {
      const c = randomLogProbCase(100 + k);
      // Small and float64, with no −Infinity logits: every logit is differenced.
      const [B, T] = [2, 3];
      const V = 6;
      const logits = Float64Array.from({ length: B * T * V }, (_, i) => Math.sin(1.7 * i + k) * 3);
      const shape: [number, number, number] = [B, T, V];
      const tokens = {
        data: Float64Array.from({ length: B * T }, (_, i) => (i * 5 + k) % V),
        shape: [B, T] as [number, number],
      };
      const mask = {
        data: Float64Array.from({ length: B * T }, (_, i) => (i === 4 ? 0 : 1)),
        shape: [B, T] as [number, number],
      };
      const g =
        c.gradLogp.data.length >= B * T
          ? c.gradLogp.data.slice(0, B * T)
          : Float64Array.from({ length: B * T }, (_, i) => Math.cos(i));
      const h = Float64Array.from({ length: B * T }, (_, i) => 0.3 * Math.sin(2 * i + k));
      const temperature = [1, 0.7][k % 2]!;
      const options = {
        temperature,
        mask,
        gradLogp: { data: g, shape: tokens.shape },
        gradEntropy: { data: h, shape: tokens.shape },
      };
      const L = async (x: Float64Array) => {
        const r = await reference.tokenLogProbs({ data: x, shape }, tokens, { temperature, mask, entropy: true });
        let sum = 0;
        for (let i = 0; i < B * T; i++) if (mask.data[i] === 1) sum += g[i]! * r.logp[i]! + h[i]! * r.entropy![i]!;
        return sum;
      };
      const fd = new Float64Array(logits.length);
      for (let j = 0; j < logits.length; j++) fd[j] = await centralDifference(L, logits, j);
      const [grad, refGrad] = await Promise.all([
        b.tokenLogProbsBackward({ data: logits, shape }, tokens, options),
        reference.tokenLogProbsBackward({ data: logits, shape }, tokens, options),
      ]);
      expectClose(refGrad.data, fd, FD_TOLERANCE, "reference ∂L/∂logits vs finite differences");
      if (float64) {
        expectClose(grad.data, fd, FD_TOLERANCE, "∂L/∂logits vs finite differences");
      } else {
        const forward = await reference.tokenLogProbs({ data: logits, shape }, tokens, {
          temperature,
          mask,
          entropy: true,
        });
        const scale = logitGradScale(logits, V, refGrad.data, forward, g, h, temperature);
        expectClose(grad.data, refGrad.data, tolerance(t.dtype, "grad", scale), "∂L/∂logits vs the reference");
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (d) micro-batch invariance

function microBatches(t: Target): void {
  const b = t.backend;
  // Interleaved so that a small budget still covers token- and sequence-level ratios and varied aggregations.
  const configs = Array.from({ length: 2 * AGGREGATIONS.length }, (_, k) => {
    const ratioLevel: "token" | "sequence" = (k + Math.floor(k / AGGREGATIONS.length)) % 2 === 0 ? "token" : "sequence";
    return [AGGREGATIONS[k % AGGREGATIONS.length]!, ratioLevel] as const;
  }).slice(0, t.budget.microBatchConfigs);

  describe("(d) micro-batch invariance with the whole batch's normaliser", () => {
    it.each(configs.map(([a, r], k) => [k, a, r] as const))(
      "#%i %s, %s-level ratio: Σ micro-batch losses = batch loss; gradients reassemble",
      async (k, aggregation, ratioLevel) => {
        const objective: Objective =
          ratioLevel === "sequence" ? "clip" : BUILTIN_OBJECTIVES[k % BUILTIN_OBJECTIVES.length]!;
        const c = drawLossCase(
          `micro-${k}`,
          {
            objective,
            ratioLevel,
            aggregation,
            entropyCoef: 0.01,
            kl: { kind: "k3", clamp: true, importanceCorrected: k % 3 === 0 },
          },
          { B: 5, T: 4 },
        );
        const batch = c.batch;
        const T = batch.T;
        const whole = await b.policyLoss(c.inputs, c.options);
        const ref = await reference.policyLoss(c.inputs, c.options);
        expectSameLoss(t, whole, ref, c.inputs, c.options, "whole batch vs reference: ");

        const normalizer = batchNormalizer({ data: batch.mask, shape: [batch.B, T] });
        // A normaliser the case sets itself (dpSize, accumulation steps, length) is kept.
        const options = { ...c.options, normalizer: { ...normalizer, ...(c.options.normalizer ?? {}) } };
        const wholeNormalized = await b.policyLoss(c.inputs, options);
        // Rows 0, 3 | 1, 4 | 2: three micro-batches, one a single row.
        const parts = [[0, 3], [1, 4], [2]];
        let loss = 0;
        const grad = new Float64Array(batch.B * T);
        const gradEntropy = new Float64Array(batch.B * T);
        const perTokenLoss = new Float64Array(batch.B * T);
        for (const rows of parts) {
          const pick = (x: Float64Array, perRow = false) =>
            Float64Array.from(rows.flatMap((r) => Array.from(perRow ? [x[r]!] : x.subarray(r * T, (r + 1) * T))));
          const sub = {
            B: rows.length,
            T,
            logp: pick(batch.logp),
            oldLogp: batch.oldLogp === undefined ? undefined : pick(batch.oldLogp),
            mask: pick(batch.mask),
            advantages: pick(batch.advantages, !batch.perTokenAdvantages),
            perTokenAdvantages: batch.perTokenAdvantages,
            refLogp: pick(batch.refLogp),
            importanceWeights: batch.importanceWeights === undefined ? undefined : pick(batch.importanceWeights),
            entropy: pick(batch.entropy),
          };
          const r = await b.policyLoss(inputsOf(sub), options);
          loss += r.loss;
          rows.forEach((row, j) => {
            grad.set(r.grad.subarray(j * T, (j + 1) * T), row * T);
            perTokenLoss.set(r.perTokenLoss.subarray(j * T, (j + 1) * T), row * T);
            if (r.gradEntropy) gradEntropy.set(r.gradEntropy.subarray(j * T, (j + 1) * T), row * T);
          });
        }
        const refNormalized = await reference.policyLoss(c.inputs, options);
        const d = t.dtype;
        expectClose(
          wholeNormalized.loss,
          ref.loss,
          tolerance(d, "value", lossScale(ref, c.inputs, c.options)),
          "the whole batch's own normaliser changes nothing",
        );
        expectClose(
          loss,
          wholeNormalized.loss,
          tolerance(d, "value", lossScale(refNormalized, c.inputs, options)),
          "Σ micro-batch losses",
        );
        expectClose(
          grad,
          wholeNormalized.grad,
          tolerance(d, "grad", gradScale(refNormalized, c.inputs, options)),
          "reassembled grad",
        );
        expectClose(
          perTokenLoss,
          wholeNormalized.perTokenLoss,
          tolerance(d, "value", abs(refNormalized.perTokenLoss)),
          "reassembled perTokenLoss",
        );
        expectClose(
          gradEntropy,
          wholeNormalized.gradEntropy!,
          tolerance(d, "grad", abs(refNormalized.gradEntropy!)),
          "reassembled gradEntropy",
        );
      },
    );
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (e) bad input

/** A valid 2×3 batch with every optional input (as test/loss-bad-input.test.ts). */
const base = () => ({
  logp: [
    [-1, -0.5, -2],
    [-0.3, -1.2, -0.8],
  ],
  oldLogp: [
    [-1.1, -0.4, -2.1],
    [-0.3, -1, -0.9],
  ],
  advantages: [1, -0.5],
  mask: [
    [1, 1, 0],
    [1, 1, 1],
  ],
  refLogp: [
    [-1.2, -0.6, -1.9],
    [-0.4, -1.1, -0.7],
  ],
  importanceWeights: [
    [1, 0.9, 1.1],
    [1.2, 0.8, 1],
  ],
  entropy: [
    [1.5, 0.7, 2],
    [0.2, 1.1, 0.9],
  ],
});
const everything: PolicyLossOptionsInput = {
  kl: { kind: "k3", coef: 0.1 },
  entropyCoef: 0.01,
  dualClip: 3,
  logRatioClamp: [-20, 20],
};
const with_ = (field: keyof ReturnType<typeof base>, b: number, t: number, value: number) => {
  const x = base();
  (x[field] as number[][])[b]![t] = value;
  return x;
};
const logits = [
  [
    [0, 1, 2],
    [1, 1, 1],
  ],
  [
    [2, 0, 1],
    [0, 0, 5],
  ],
];
const tokens = [
  [0, 1],
  [2, 2],
];
const ones = [
  [1, 1],
  [1, 1],
];

/** Each: a title, the call (on any backend), and the issue path the reference reports. */
export const BAD_INPUTS: readonly (readonly [string, (b: Backend) => Promise<unknown>, string])[] = [
  [
    "policyLoss: oldLogp of another shape",
    (b) => b.policyLoss({ ...base(), oldLogp: [[-1, -1, -1]] }, everything),
    "inputs.oldLogp",
  ],
  ["policyLoss: mask entry 0.5", (b) => b.policyLoss(with_("mask", 1, 2, 0.5)), "inputs.mask[1][2]"],
  ["policyLoss: B − 1 advantages", (b) => b.policyLoss({ ...base(), advantages: [1] }), "inputs.advantages"],
  [
    "policyLoss: ragged refLogp",
    (b) =>
      b.policyLoss(
        {
          ...base(),
          refLogp: [
            [-1, -1, -1],
            [-1, -1],
          ],
        },
        everything,
      ),
    "inputs.refLogp[1]",
  ],
  [
    "policyLoss: NaN refLogp where the mask is 1",
    (b) => b.policyLoss(with_("refLogp", 1, 2, NaN), everything),
    "inputs.refLogp[1][2]",
  ],
  [
    "policyLoss: Infinity importance weight where the mask is 1",
    (b) => b.policyLoss(with_("importanceWeights", 0, 1, Infinity), everything),
    "inputs.importanceWeights[0][1]",
  ],
  [
    "policyLoss: NaN logp where the mask is 1",
    (b) => b.policyLoss(with_("logp", 1, 2, NaN), everything),
    "inputs.logp[1][2]",
  ],
  [
    "policyLoss: −Infinity oldLogp where the mask is 1",
    (b) => b.policyLoss(with_("oldLogp", 0, 0, -Infinity), everything),
    "inputs.oldLogp[0][0]",
  ],
  [
    "policyLoss: NaN advantage of a non-empty row",
    (b) => b.policyLoss({ ...base(), advantages: [NaN, 1] }),
    "inputs.advantages[0]",
  ],
  [
    "policyLoss: kl without refLogp",
    (b) => b.policyLoss({ ...base(), refLogp: undefined as never }, { kl: { kind: "k1", coef: 0.1 } }),
    "inputs.refLogp",
  ],
  [
    "policyLoss: entropyCoef without entropy",
    (b) => b.policyLoss({ ...base(), entropy: undefined as never }, { entropyCoef: 0.01 }),
    "inputs.entropy",
  ],
  ["policyLoss: unknown objective", (b) => b.policyLoss(base(), { objective: "ppo2" }), "options.objective"],
  [
    "policyLoss: sequence-level ratio with cispo",
    (b) => b.policyLoss(base(), { objective: "cispo", ratioLevel: "sequence" }),
    "options.ratioLevel",
  ],
  ["policyLoss: clipLow > 1", (b) => b.policyLoss(base(), { clipLow: 1.5 }), "options.clipLow"],
  [
    "policyLoss: unknown aggregation",
    (b) => b.policyLoss(base(), { aggregation: "mean" as never }),
    "options.aggregation",
  ],
  [
    "policyLoss: negative normaliser",
    (b) => b.policyLoss(base(), { normalizer: { tokens: -1 } }),
    "options.normalizer.tokens",
  ],
  [
    "tokenLogProbs: token id out of range",
    (b) =>
      b.tokenLogProbs(logits, [
        [0, 1],
        [3, 2],
      ]),
    "tokens[1][0]",
  ],
  ["tokenLogProbs: tokens of another shape", (b) => b.tokenLogProbs(logits, [[0, 1]]), "tokens"],
  [
    "tokenLogProbs: mask of another shape",
    (b) =>
      b.tokenLogProbs(logits, tokens, {
        mask: [
          [1, 1, 1],
          [1, 1, 1],
        ],
      }),
    "options.mask",
  ],
  [
    "tokenLogProbs: logits data of the wrong length",
    (b) => b.tokenLogProbs({ data: new Float64Array(5), shape: [1, 2, 3] }, [[0, 0]]),
    "logits.data",
  ],
  [
    "tokenLogProbs: every logit −Infinity at a position",
    (b) =>
      b.tokenLogProbs(
        [
          [
            [0, 1],
            [2, 3],
          ],
          [
            [1, 1],
            [-Infinity, -Infinity],
          ],
        ],
        [
          [0, 0],
          [0, 1],
        ],
      ),
    "logits[1][1]",
  ],
  [
    "tokenLogProbs: NaN logit",
    (b) => b.tokenLogProbs({ data: Float64Array.from([0, 1, 2, NaN, 1, 1]), shape: [1, 2, 3] }, [[0, 1]]),
    "logits[0][1]",
  ],
  ["tokenLogProbs: temperature 0", (b) => b.tokenLogProbs(logits, tokens, { temperature: 0 }), "options.temperature"],
  ["tokenLogProbs: temperature −1", (b) => b.tokenLogProbs(logits, tokens, { temperature: -1 }), "options.temperature"],
  [
    "tokenLogProbsBackward: gradLogp of another shape",
    (b) => b.tokenLogProbsBackward(logits, tokens, { gradLogp: [[1, 1]] }),
    "options.gradLogp",
  ],
  [
    "tokenLogProbsBackward: token id out of range",
    (b) =>
      b.tokenLogProbsBackward(
        logits,
        [
          [0, 1],
          [2, -1],
        ],
        { gradLogp: ones },
      ),
    "tokens[1][1]",
  ],
  [
    "tokenLogProbsBackward: NaN gradLogp where the mask is 1",
    (b) =>
      b.tokenLogProbsBackward(logits, tokens, {
        gradLogp: [
          [1, NaN],
          [1, 1],
        ],
      }),
    "options.gradLogp[0][1]",
  ],
  [
    "tokenLogProbsBackward: every logit −Infinity at a position",
    (b) =>
      b.tokenLogProbsBackward(
        [
          [
            [0, 1],
            [2, 3],
          ],
          [
            [1, 1],
            [-Infinity, -Infinity],
          ],
        ],
        [
          [0, 0],
          [0, 1],
        ],
        { gradLogp: ones },
      ),
    "logits[1][1]",
  ],
  [
    "tokenLogProbsBackward: temperature 0",
    (b) => b.tokenLogProbsBackward(logits, tokens, { gradLogp: ones, temperature: 0 }),
    "options.temperature",
  ],
  [
    "tokenLogProbsBackward: `saved` from another shape",
    async (b) =>
      b.tokenLogProbsBackward(logits, tokens, {
        gradLogp: ones,
        saved: await reference.tokenLogProbs(
          [
            [
              [0, 1, 2],
              [1, 1, 1],
            ],
          ],
          [[0, 1]],
        ),
      }),
    "options.saved",
  ],
];

function badInput(t: Target): void {
  const b = t.backend;
  describe("(e) bad input: a ValidationError at the reference backend's issue paths", () => {
    for (const [title, run, path] of BAD_INPUTS) {
      it(`${title} → ${path}`, async () => {
        const expected = await rejection(() => run(reference));
        expect(expected, "the reference backend rejects it").toBeInstanceOf(ValidationError);
        expect((expected as ValidationError).issues.map((i) => i.path)).toContain(path);
        const actual = await rejection(() => run(b));
        expect(actual, `${t.name} rejects it`).toBeInstanceOf(ValidationError);
        expect((actual as ValidationError).issues.map((i) => i.path)).toEqual(
          (expected as ValidationError).issues.map((i) => i.path),
        );
      });
    }

    it("NaN / ±Infinity at masked positions are never read: the same result as zeros there", async () => {
      const c = drawLossCase(
        "masked-garbage",
        { objective: "clip", ratioLevel: "token", aggregation: "token-mean", entropyCoef: 0.01 },
        { B: 4, T: 5 },
      );
      const dirty = inputsOf(c.batch, {}, true);
      const clean = inputsOf(c.batch);
      const [a, e] = await Promise.all([b.policyLoss(dirty, c.options), reference.policyLoss(clean, c.options)]);
      expectSameLoss(t, a, e, clean, c.options);
    });

    it("a mask that selects nothing: loss 0, gradients 0, every metric 0 (as the reference)", async () => {
      const x = {
        ...base(),
        mask: [
          [0, 0, 0],
          [0, 0, 0],
        ],
      };
      const [a, e] = await Promise.all([b.policyLoss(x, everything), reference.policyLoss(x, everything)]);
      expect(a.loss).toBe(0);
      expect(Array.from(a.grad)).toEqual(Array.from(e.grad));
      for (const [name, value] of Object.entries(e.metrics))
        expect(a.metrics[name as keyof typeof a.metrics], `metrics.${name}`).toBe(value);
    });

    const maskedLogits = () => {
      const data = Float64Array.from(logits.flat(2));
      data[3 * 2 + 1] = NaN; // position [1][0], masked
      return {
        x: { data, shape: [2, 2, 3] as [number, number, number] },
        mask: [
          [1, 1],
          [0, 1],
        ],
        padded: [
          [0, 1],
          [-1, 2],
        ],
      };
    };

    it("tokenLogProbs: masked positions' token ids and logits are not read (padding −1, NaN logits there)", async () => {
      const { x, mask, padded } = maskedLogits();
      const options = { mask, entropy: true };
      const [a, e] = await Promise.all([
        b.tokenLogProbs(x, padded, options),
        reference.tokenLogProbs(x, padded, options),
      ]);
      expectSameLogProbs(t, a, e);
    });

    it("tokenLogProbsBackward: masked positions' logits are not read (NaN logits there)", async () => {
      const { x, mask, padded } = maskedLogits();
      const gradOptions = { mask, gradLogp: ones };
      const [ga, ge] = await Promise.all([
        b.tokenLogProbsBackward(x, padded, gradOptions),
        reference.tokenLogProbsBackward(x, padded, gradOptions),
      ]);
      expect(Array.from(ga.data.subarray(6, 9))).toEqual([0, 0, 0]);
      expectClose(ga.data, ge.data, tolerance(t.dtype, "grad", 1), "∂L/∂logits");
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (f) the loss from logits

/** Every output of policyLossFromLogits against the reference's, at the tolerances of the backend's dtype. */
async function expectSameFromLogits(
  t: Target,
  actual: LogitsPolicyLossResult,
  expected: LogitsPolicyLossResult,
  c: FromLogitsCase,
): Promise<void> {
  const { logits: _logits, tokens, ...rest } = c.inputs;
  const { temperature = 1, ...lossOptions } = c.options;
  const shape = expected.shape;
  const lossInputs = {
    ...rest,
    logp: flat(expected.logp, shape),
    entropy: expected.entropy === undefined ? undefined : flat(expected.entropy, shape),
  };
  expectSameLoss(t, actual, expected, lossInputs, lossOptions, "from logits: ");
  const forward = await reference.tokenLogProbs(c.logProbs.logits, tokens, {
    temperature,
    mask: rest.mask,
    entropy: true,
  });
  expectClose(actual.logp, expected.logp, tolerance(t.dtype, "value", logProbScale(expected.logp)), "logp");
  expect(actual.entropy === undefined, "entropy present").toBe(expected.entropy === undefined);
  if (expected.entropy !== undefined) {
    const scale = logProbScale(expected.entropy);
    expectClose(actual.entropy!, expected.entropy, tolerance(t.dtype, "value", scale), "entropy");
  }
  expect(actual.gradLogits.shape).toEqual(expected.gradLogits.shape);
  expect(actual.gradLogits.data.constructor).toBe(expected.gradLogits.data.constructor);
  const [, , vocab] = c.logProbs.logits.shape;
  const data = c.logProbs.logits.data;
  const scale = logitGradScale(
    data,
    vocab,
    expected.gradLogits.data,
    forward,
    expected.grad,
    expected.gradEntropy,
    temperature,
  );
  expectClose(actual.gradLogits.data, expected.gradLogits.data, tolerance(t.dtype, "grad", scale), "∂loss/∂logits");
}

function fromLogits(t: Target): void {
  const b = t.backend;
  describe("(f) the loss from logits (policyLossFromLogits) against the reference backend", () => {
    const cases = Array.from({ length: t.budget.randomFromLogits }, (_, k) => randomFromLogitsCase(k));
    it.each(cases.map((c, k) => [k, c.title, c] as const))("#%i %s", async (_k, _title, c: FromLogitsCase) => {
      const [actual, expected] = await Promise.all([
        b.policyLossFromLogits(c.inputs, c.options),
        reference.policyLossFromLogits(c.inputs, c.options),
      ]);
      await expectSameFromLogits(t, actual, expected, c);
    });
  });

  describe("(f) golden through policyLossFromLogits: TRL end to end from logits", () => {
    const cases = loadGolden("trl_policy_loss.json").cases.filter((c) => c.id.startsWith("trl.pl.from_logits."));
    it("has the cases", () => expect(cases.length).toBe(4));
    it.each(cases.map((c) => [c.id, c] as const))("%s", async (_id, c) => {
      const h = c.hyperparameters as unknown as TrlHyper;
      const { logits, labels } = c.inputs as { logits: number[][][]; labels: number[][] };
      const { logp: _logp, entropy: _entropy, ...lossInputs } = trlInputsFor(c, new Float64Array(labels.flat().length));
      const options = { ...trlOptionsFor(h, undefined), temperature: h.temperature! };
      const result = await b.policyLossFromLogits({ ...lossInputs, logits, tokens: matrix(labels) }, options);
      const out = c.outputs as { per_token_logps: number[][]; loss: number; grad_logits: number[][][] };
      const refForward = await reference.tokenLogProbs(logits, matrix(labels), {
        temperature: h.temperature!,
        entropy: true,
      });
      const ref = await reference.policyLoss(
        trlInputsFor(c, refForward.logp, refForward.entropy),
        trlOptionsFor(h, undefined),
      );
      const refInputs = trlInputsFor(c, refForward.logp, refForward.entropy);
      const logpScale = logProbScale(refForward.logp);
      // The mask's 0 positions are never read here (logp 0); the peer computed them anyway.
      const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
      expectClose(
        selected(result.logp, mask),
        selected(out.per_token_logps.flat(), mask),
        tolerance(t.dtype, "value", selected(logpScale, mask)),
        "per_token_logps",
      );
      const lossTolerance = tolerance(t.dtype, "value", lossScale(ref, refInputs, trlOptionsFor(h, undefined)));
      expectClose(result.loss, out.loss, lossTolerance, "loss");
      const grad = out.grad_logits.flat(2);
      const vocab = logits[0]![0]!.length;
      const scale = logitGradScale(logits.flat(2), vocab, grad, refForward, ref.grad, ref.gradEntropy, h.temperature!);
      expectClose(result.gradLogits.data, grad, tolerance(t.dtype, "grad", scale), "grad_logits");
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (g) an objective registered at run time

const REGISTERED_OBJECTIVE = "conformance-registered";

/** A smooth objective of the test's own with a gradient through the ratio and one through logp itself. */
function registerTestObjective(): void {
  if (policyObjectiveNames().includes(REGISTERED_OBJECTIVE)) return;
  registerPolicyObjective(REGISTERED_OBJECTIVE, () => ({ advantage: a, ratio, logp }) => ({
    loss: -0.5 * a * ratio - 0.25 * a * logp,
    dLogRatio: -0.5 * a * ratio,
    dLogp: -0.25 * a,
    clipped: ratio > 1.2,
    dualClipped: false,
    lowClipped: ratio < 0.8 && a < 0,
    highClipped: ratio > 1.2 && a > 0,
  }));
}

function registeredObjective(t: Target): void {
  const b = t.backend;
  describe("(g) an objective registered at run time gives the reference's results", () => {
    registerTestObjective();
    it.each(AGGREGATIONS.slice(0, 4).map((aggregation, k) => [k, aggregation] as const))(
      "policyLoss #%i, %s",
      async (k, aggregation) => {
        const c = drawLossCase(`registered-${k}`, { objective: "clip", ratioLevel: "token", aggregation });
        const options = { ...c.options, objective: REGISTERED_OBJECTIVE };
        const [actual, expected] = await Promise.all([
          b.policyLoss(c.inputs, options),
          reference.policyLoss(c.inputs, options),
        ]);
        expectSameLoss(t, actual, expected, c.inputs, options);
      },
    );
    it.each([0, 1, 2, 3].map((k) => [k] as const))("policyLossFromLogits #%i", async (k) => {
      const base = randomFromLogitsCase(k);
      const c = { ...base, options: { ...base.options, objective: REGISTERED_OBJECTIVE } };
      const [actual, expected] = await Promise.all([
        b.policyLossFromLogits(c.inputs, c.options),
        reference.policyLossFromLogits(c.inputs, c.options),
      ]);
      await expectSameFromLogits(t, actual, expected, c);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (g) the shipped objectives without native kernels (verl's DPPO, DRO, GMPO, KL-Cov, Clip-Cov; TRL's LUSPO, VESPO)

/** TRL's vLLM ratio, [B, T] or [B, 1], as [B, T] importance weights (a row's ratio on each of its tokens). */
function trlRatioWeights(ratio: number[][], c: GoldenCase): { data: Float64Array; shape: [number, number] } {
  const mask = (c.inputs as { completion_mask: number[][] }).completion_mask;
  const [rows, cols] = [mask.length, mask[0]!.length];
  const data = Float64Array.from({ length: rows * cols }, (_, k) => {
    const row = ratio[Math.floor(k / cols)]!;
    return row.length === 1 ? row[0]! : row[k % cols]!;
  });
  return { data, shape: [rows, cols] };
}

function referenceObjectives(t: Target): void {
  const b = t.backend;
  describe("(g) shipped objectives without native kernels run through the reference with its results", () => {
    const golden = [...loadGolden("verl2_policy_loss.json").cases, ...loadGolden("verl_policy_loss.json").cases].filter(
      (c) => c.function in verlReferenceOptionsFor && !("error" in c.outputs),
    );
    it("has the golden cases", () => expect(golden.length).toBe(22));
    it.each(golden.map((c) => [c.id, c] as const))("golden inputs: %s", async (_id, c) => {
      const inputs = verlInputsFor(c);
      const options = verlReferenceOptionsFor[c.function]!(c.hyperparameters as VerlHyper);
      const [actual, expected] = await Promise.all([
        b.policyLoss(inputs, options),
        reference.policyLoss(inputs, options),
      ]);
      expectSameLoss(t, actual, expected, inputs, options);
    });
    // trl_policy_loss.json's luspo and vespo cases run in (a); these add TRL's vLLM ratio (in φ for vespo).
    const trlGolden = loadGolden("trl2_is_correction.json").cases.filter(
      (c) =>
        c.function === "GRPOTrainer._compute_loss" &&
        ["luspo", "vespo"].includes(c.hyperparameters.loss_type as string),
    );
    it("has TRL's luspo and vespo golden cases with the vLLM ratio", () => expect(trlGolden.length).toBe(2));
    it.each(trlGolden.map((c) => [c.id, c] as const))("golden inputs: %s", async (_id, c) => {
      const h = c.hyperparameters as unknown as TrlHyper;
      const i = c.inputs as { importance_sampling_ratio?: number[][]; num_items_in_batch?: number };
      // The vLLM ratio is an input (vllmImportanceSampling's); with vespo it enters φ.
      const correction = i.importance_sampling_ratio !== undefined;
      const translated = trlOptionsFor({ ...h, use_vllm: false } as TrlHyper, i.num_items_in_batch);
      const options =
        correction && h.loss_type === "vespo"
          ? { ...translated, vespo: { ...translated.vespo, importanceWeights: "phi" as const } }
          : translated;
      const inputs = {
        ...trlInputsFor(c),
        ...(correction ? { importanceWeights: trlRatioWeights(i.importance_sampling_ratio!, c) } : {}),
      };
      const [actual, expected] = await Promise.all([
        b.policyLoss(inputs, options),
        reference.policyLoss(inputs, options),
      ]);
      expectSameLoss(t, actual, expected, inputs, options);
    });
    it.each(REFERENCE_OBJECTIVES.flatMap((name, k) => [0, 1].map((j) => [name, 2 * k + j] as const)))(
      "%s: policyLoss, random case #%i",
      async (name, k) => {
        const aggregation = AGGREGATIONS[k % AGGREGATIONS.length]!;
        // LUSPO's sequence ratio takes one importance weight per row (TRL's sequence-level ratio).
        const c = drawLossCase(`reference-objective-${k}`, {
          objective: "clip",
          ratioLevel: "token",
          aggregation,
          rowConstant: name === "luspo",
        });
        const options = { ...c.options, ...REFERENCE_OBJECTIVE_OPTIONS[name] };
        const [actual, expected] = await Promise.all([
          b.policyLoss(c.inputs, options),
          reference.policyLoss(c.inputs, options),
        ]);
        expectSameLoss(t, actual, expected, c.inputs, options);
      },
    );
    it.each(REFERENCE_OBJECTIVES.map((name, k) => [name, k] as const))("%s: policyLossFromLogits", async (name, k) => {
      const base = randomFromLogitsCase(k);
      const c = {
        ...base,
        options: { ...base.options, ratioLevel: "token" as const, ...REFERENCE_OBJECTIVE_OPTIONS[name] },
      };
      const [actual, expected] = await Promise.all([
        b.policyLossFromLogits(c.inputs, c.options),
        reference.policyLossFromLogits(c.inputs, c.options),
      ]);
      await expectSameFromLogits(t, actual, expected, c);
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// (h) hostile inputs

/** A value that is not a number, in place of one entry of a flat matrix. */
const NOT_NUMBERS: readonly unknown[] = [null, "", true, "-3", [], {}, undefined];

/** What a call on a float32 backend may do instead of computing: refuse, naming float32 or a device limit. */
const FLOAT32_OR_DEVICE_LIMIT = /float32|binding|maxBufferSize|buffer/;

/** logits [1, 2, V] ~ N(0, 3), with a few −Infinity and a few large entries, float32. */
function wideLogits(vocab: number, seed: number): { data: Float32Array; shape: [number, number, number] } {
  const random = rngFor(`grpo-roc conformance wide-${vocab}-${seed}`);
  const data = new Float32Array(2 * vocab).map(() => 3 * normal(random));
  for (let k = 0; k < 20; k++) data[Math.floor(random() * data.length)] = -Infinity;
  data[1] = 40;
  data[vocab + 2] = 35;
  return { data, shape: [1, 2, vocab] };
}

function hostileInputs(t: Target): void {
  const b = t.backend;
  describe("(h) hostile inputs: the bad-input contract on this backend", () => {
    it.each(NOT_NUMBERS.map((bad, k) => [k, String(JSON.stringify(bad)), bad] as const))(
      "#%i %s in a flat logp, oldLogp, mask or tokens: refused at the reference's path",
      async (k, _shown, bad) => {
        const entry = (values: number[], at: number) => values.map((v, i) => (i === at ? bad : v)) as never;
        const calls: ((kernels: Backend) => Promise<unknown>)[] = [
          (kernels) =>
            kernels.policyLoss({ logp: { data: entry([-1, -2, -3, -1], k % 4), shape: [2, 2] }, advantages: [1, -1] }),
          (kernels) =>
            kernels.policyLoss({
              logp: [
                [-1, -2],
                [-3, -1],
              ],
              mask: { data: entry([1, 1, 0, 1], (k + 1) % 4), shape: [2, 2] },
              advantages: [1, -1],
            }),
          (kernels) =>
            kernels.tokenLogProbs(
              { data: new Float32Array(8), shape: [1, 2, 4] },
              { data: entry([0, 1], k % 2), shape: [1, 2] },
            ),
          (kernels) =>
            kernels.policyLossFromLogits({
              logits: { data: new Float32Array(8), shape: [1, 2, 4] },
              tokens: [[0, 1]],
              oldLogp: { data: entry([-1, -1], k % 2), shape: [1, 2] },
              advantages: [1],
            }),
        ];
        for (const call of calls) {
          const expected = await rejection(() => call(reference));
          expect(expected).toBeInstanceOf(ValidationError);
          const actual = await rejection(() => call(b));
          expect(actual, `${t.name} refuses it`).toBeInstanceOf(ValidationError);
          expect((actual as ValidationError).issues.map((i) => i.path)).toEqual(
            (expected as ValidationError).issues.map((i) => i.path),
          );
        }
      },
    );

    it("an unknown key in options or inputs: refused at its path with the key meant", async () => {
      const calls: [(kernels: Backend) => Promise<unknown>, string][] = [
        [
          (kernels) => kernels.policyLoss({ logp: [[-1]], advantages: [1] }, { clipHihg: 0.3 } as never),
          "options.clipHihg",
        ],
        [(kernels) => kernels.policyLoss({ logp: [[-1]], olLogp: [[-1]], advantages: [1] } as never), "inputs.olLogp"],
        [
          (kernels) =>
            kernels.tokenLogProbs({ data: new Float32Array(4), shape: [1, 1, 4] }, [[0]], { temprature: 2 } as never),
          "options.temprature",
        ],
        [
          (kernels) =>
            kernels.policyLossFromLogits(
              { logits: { data: new Float32Array(4), shape: [1, 1, 4] }, tokens: [[0]], advantages: [1] },
              {
                temprature: 2,
              } as never,
            ),
          "options.temprature",
        ],
      ];
      for (const [call, path] of calls) {
        const actual = await rejection(() => call(b));
        expect(actual, path).toBeInstanceOf(ValidationError);
        expect((actual as ValidationError).issues.map((i) => i.path)).toContain(path);
        expect((actual as Error).message).toMatch(/did you mean/);
      }
    });

    it("the empty batch (RoC kept nothing): every kernel is a no-op with loss 0 and every metric 0", async () => {
      const normalizer = batchNormalizer([]);
      const empty = { logp: [], advantages: [], mask: [] };
      const loss = await b.policyLoss(empty, { ...everything, entropyCoef: 0, kl: null, normalizer });
      expect(loss.loss).toBe(0);
      expect(loss.grad.length).toBe(0);
      for (const [name, value] of Object.entries(loss.metrics))
        expect(value === 0 || value === undefined, name).toBe(true);
      const logits = { data: new Float32Array(0), shape: [0, 3, 16] as [number, number, number] };
      const tokens = { data: [], shape: [0, 3] as [number, number] };
      expect((await b.tokenLogProbs(logits, tokens, { entropy: true })).logp.length).toBe(0);
      expect((await b.tokenLogProbsBackward(logits, tokens, { gradLogp: tokens })).data.length).toBe(0);
      const fromLogits = await b.policyLossFromLogits({ logits, tokens, advantages: [] }, { normalizer });
      expect(fromLogits.loss).toBe(0);
      expect(fromLogits.gradLogits.data.length).toBe(0);
    });

    it.each([152_064, 2 ** 20])(
      "V = %i: log-probs, entropy and their gradient as the reference's, or a refusal naming the device limit",
      async (vocab) => {
        const logits = wideLogits(vocab, 1);
        const tokens = [[3, 1]];
        const options = { entropy: true, temperature: 0.9 };
        const expected = await reference.tokenLogProbs(logits, tokens, options);
        const forward = await rejectionOr(() => b.tokenLogProbs(logits, tokens, options));
        if (forward instanceof Error) {
          expect(forward.message).toMatch(FLOAT32_OR_DEVICE_LIMIT);
          return;
        }
        expectSameLogProbs(t, forward as TokenLogProbs, expected, `V = ${vocab}: `);
        const backward = { temperature: 0.9, gradLogp: [[1, -0.5]], gradEntropy: [[0.2, 0.1]] };
        const [grad, refGrad] = await Promise.all([
          b.tokenLogProbsBackward(logits, tokens, backward),
          reference.tokenLogProbsBackward(logits, tokens, backward),
        ]);
        const scale = logitGradScale(logits.data, vocab, refGrad.data, expected, [1, -0.5], [0.2, 0.1], 0.9);
        expectClose(grad.data, refGrad.data, tolerance(t.dtype, "grad", scale), `V = ${vocab}: ∂L/∂logits`);
      },
    );

    it.each([
      ["[3e38, 3e38]", [3e38, 3e38], 1],
      ["[3.4e38 ×4]", [3.4e38, 3.4e38, 3.4e38, 3.4e38], 1],
      ["[1e30, −1e30, 0, 1e30] at τ = 0.5", [1e30, -1e30, 0, 1e30], 0.5],
      ["[−3e38, 2e38, 1, 3e38] at τ = 2", [-3e38, 2e38, 1, 3e38], 2],
    ] as const)(
      "logits %s: the reference's log-probs, entropy and gradient (or a refusal naming float32)",
      async (_title, values, temperature) => {
        const vocab = values.length;
        const logits = { data: Float32Array.from(values), shape: [1, 1, vocab] as [number, number, number] };
        const tokens = [[vocab - 1]];
        const expected = await reference.tokenLogProbs(logits, tokens, { entropy: true, temperature });
        const actual = await rejectionOr(() => b.tokenLogProbs(logits, tokens, { entropy: true, temperature }));
        if (actual instanceof Error) {
          expect(actual.message).toMatch(/float32/);
          return;
        }
        expectSameLogProbs(t, actual as TokenLogProbs, expected);
        const backward = { temperature, gradLogp: [[1]], gradEntropy: [[0.5]] };
        const [grad, refGrad] = await Promise.all([
          b.tokenLogProbsBackward(logits, tokens, backward),
          reference.tokenLogProbsBackward(logits, tokens, backward),
        ]);
        expectAllFinite(grad.data);
        expectClose(grad.data, refGrad.data, tolerance(t.dtype, "grad", 1), "∂L/∂logits");
      },
    );

    it("a zero advantage contributes exactly 0 where the ratio overflows; a nonzero one is the reference's value or a refusal", async () => {
      const inputs = {
        logp: [[100, -1, 710]],
        oldLogp: [[0, -1, 0]],
        advantages: { data: [0, 1, 0], shape: [1, 3] as [number, number] },
      };
      const options = { ...lossPresets.paper };
      const [actual, expected] = await Promise.all([
        b.policyLoss(inputs, options),
        reference.policyLoss(inputs, options),
      ]);
      expect(actual.perTokenLoss[0] === 0, "perTokenLoss[0] is ±0").toBe(true);
      expect(actual.perTokenLoss[2] === 0, "perTokenLoss[2] is ±0").toBe(true);
      expectAllFinite({ loss: actual.loss, grad: actual.grad });
      expectClose(actual.loss, expected.loss, tolerance(t.dtype, "value", 1), "loss");
      const overflowing = { ...inputs, advantages: [1] };
      const refused = await rejection(() =>
        b.policyLoss({ ...overflowing, logp: [[100, -1, -1]] }, { ...options, clipHigh: 1e6 }),
      );
      const referenceResult = await rejectionOr(() =>
        reference.policyLoss({ ...overflowing, logp: [[100, -1, -1]] }, { ...options, clipHigh: 1e6 }),
      );
      if (refused !== undefined) {
        expect(refused).toBeInstanceOf(ValidationError);
        expect((refused as Error).message).toMatch(/float32|logRatioClamp/);
      } else {
        expect(referenceResult).not.toBeInstanceOf(Error);
      }
    });
  });
}

/** The call's result, or the error it threw. */
async function rejectionOr<T>(run: () => Promise<T>): Promise<T | Error> {
  try {
    return await run();
  } catch (error) {
    return error as Error;
  }
}

function expectAllFinite(value: unknown): void {
  const values =
    typeof value === "number"
      ? [value]
      : ArrayBuffer.isView(value)
        ? Array.from(value as unknown as ArrayLike<number>)
        : Object.values(value as object).flatMap((v) =>
            typeof v === "number" ? [v] : Array.from(v as ArrayLike<number>),
          );
  expect(values.every(Number.isFinite), "every value finite").toBe(true);
}
