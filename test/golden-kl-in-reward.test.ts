/**
 * verl's KL penalty in the rewards against the golden file: the 5 `ray_trainer.apply_kl_penalty` cases of
 * verl_kl.json (b178a3c; kinds kl, abs, mse, low_var_kl; β 0.001 and 0.1; a full row, a partly masked row, an empty
 * row, finite garbage at mask 0) at 1e-12, their options translated from the AlgoConfig a verl user writes
 * (`use_kl_in_reward`, `kl_penalty`, `kl_ctrl.kl_coef`) by fromVerlConfig: token_level_rewards at every position (verl
 * copies the score at mask 0), kld·mask and current_kl. Then the KL controllers and compute_rewards against verl's formulas written out, and the
 * properties: β = 0 gives the scores, masked positions are never read, a row permutation permutes the rows.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  adaptiveKlCoefficient,
  fixedKlCoefficient,
  fromVerlConfig,
  KL_KINDS,
  klPenaltyRewards,
  klRatioRewards,
} from "../src/index.js";
import { expectAllClose, flatten, FLOAT64_TOLERANCE, loadGolden } from "./helpers/golden.js";

type Matrix = number[][];

const cases = loadGolden("verl_kl.json").cases.filter((c) => c.function === "ray_trainer.apply_kl_penalty");

/**
 * A case's options as fromVerlConfig translates them from verl's AlgoConfig at the golden commit: the case's β is
 * `kl_ctrl.value`, which is `kl_ctrl.kl_coef` at the first step (apply_kl_penalty's β before any update).
 */
function klOptionsOf(hyperparameters: Record<string, unknown>) {
  const translation = fromVerlConfig(
    {
      algorithm: {
        adv_estimator: "grpo",
        use_kl_in_reward: true,
        kl_penalty: hyperparameters.kl_penalty as string,
        kl_ctrl: { type: "fixed", kl_coef: hyperparameters.beta as number },
      },
    },
    { verlVersion: "b178a3c" },
  );
  expect(translation.klInReward!.controller).toEqual({ type: "fixed" });
  return translation.klInReward!.options;
}

describe("verl b178a3c apply_kl_penalty (verl_kl.json)", () => {
  it("holds the 5 cases, and no compute_rewards case", () => {
    expect(cases.map((c) => c.id)).toEqual([
      "verl.kl.apply_kl_penalty.kl.beta0.001",
      "verl.kl.apply_kl_penalty.kl.beta0.1",
      "verl.kl.apply_kl_penalty.abs.beta0.1",
      "verl.kl.apply_kl_penalty.mse.beta0.001",
      "verl.kl.apply_kl_penalty.low_var_kl.beta0.1",
    ]);
    expect(loadGolden("verl_kl.json").cases.filter((c) => /compute_rewards/.test(c.function))).toEqual([]);
  });

  it.each(cases.map((c) => [c.id, c] as const))("%s", (_id, c) => {
    const result = klPenaltyRewards(
      {
        tokenScores: c.inputs.token_level_scores as Matrix,
        oldLogp: c.inputs.old_log_probs as Matrix,
        refLogp: c.inputs.ref_log_prob as Matrix,
        mask: c.inputs.response_mask as Matrix,
      },
      klOptionsOf(c.hyperparameters),
    );
    const rows = (c.inputs.response_mask as Matrix).length;
    const cols = (c.inputs.response_mask as Matrix)[0]!.length;
    expect(result.tokenRewards.shape).toEqual([rows, cols]);
    // Every position: at mask 0 both are the score (verl's scores − β·0) and 0 (verl's kld·0, ±0).
    expectAllClose(
      result.tokenRewards.data,
      flatten(c.outputs.token_level_rewards as Matrix),
      FLOAT64_TOLERANCE,
      `${c.id} token_level_rewards`,
    );
    expectAllClose(result.kl.data, flatten(c.outputs.kld_masked as Matrix), FLOAT64_TOLERANCE, `${c.id} kld`);
    expectAllClose([result.currentKl], [c.outputs.current_kl as number], FLOAT64_TOLERANCE, `${c.id} current_kl`);
    expect(result.metrics).toEqual({
      "actor/reward_kl_penalty": result.currentKl,
      "actor/reward_kl_penalty_coeff": c.hyperparameters.beta,
    });
  });

  it("takes verl's defaults: kind kl, β = 0.001 (algorithm.kl_penalty, kl_ctrl.kl_coef)", () => {
    const c = cases[0]!;
    const inputs = {
      tokenScores: c.inputs.token_level_scores as Matrix,
      oldLogp: c.inputs.old_log_probs as Matrix,
      refLogp: c.inputs.ref_log_prob as Matrix,
      mask: c.inputs.response_mask as Matrix,
    };
    expect(klPenaltyRewards(inputs)).toEqual(klPenaltyRewards(inputs, { kind: "kl", beta: 0.001 }));
    // AlgoConfig's defaults translate to the same options (kl_penalty "kl", KLControlConfig.kl_coef 0.001).
    const defaults = fromVerlConfig({ algorithm: { use_kl_in_reward: true } }).klInReward!;
    expect(klPenaltyRewards(inputs, defaults.options)).toEqual(klPenaltyRewards(inputs));
  });
});

describe("verl's KL controllers (core_algos.py FixedKLController, AdaptiveKLController)", () => {
  /** verl's update, written out as Python evaluates it. */
  const verlAdaptive = (value: number, current: number, target: number, nSteps: number, horizon: number) => {
    const error = Math.min(Math.max(current / target - 1, -0.2), 0.2);
    return value * (1 + (error * nSteps) / horizon);
  };

  it("adaptive: clips the proportional error to ±0.2 and scales by nSteps / horizon", () => {
    expect(adaptiveKlCoefficient({ klCoef: 0.001, currentKl: 0.2, nSteps: 1000 })).toBe(0.001 * (1 + 0.02));
    expect(adaptiveKlCoefficient({ klCoef: 0.001, currentKl: 0.11, nSteps: 1000 })).toBe(
      verlAdaptive(0.001, 0.11, 0.1, 1000, 10000),
    );
    expect(adaptiveKlCoefficient({ klCoef: 0.05, currentKl: -3, nSteps: 256 }, { targetKl: 6, horizon: 500 })).toBe(
      verlAdaptive(0.05, -3, 6, 256, 500),
    );
    // A KL on target keeps β; no samples keep β.
    expect(adaptiveKlCoefficient({ klCoef: 0.3, currentKl: 0.1, nSteps: 64 })).toBe(0.3);
    expect(adaptiveKlCoefficient({ klCoef: 0.3, currentKl: 5, nSteps: 0 })).toBe(0.3);
  });

  it("adaptive: equals verl's formula bit for bit over random steps", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.constant(0), fc.double({ min: 1e-12, max: 10, noNaN: true })),
        fc.double({ min: -50, max: 50, noNaN: true }),
        fc.double({ min: 1e-6, max: 10, noNaN: true }),
        fc.integer({ min: 0, max: 4096 }),
        fc.integer({ min: 4096, max: 100000 }),
        (value, current, target, nSteps, horizon) => {
          const next = adaptiveKlCoefficient(
            { klCoef: value, currentKl: current, nSteps },
            { targetKl: target, horizon },
          );
          expect(next).toBe(verlAdaptive(value, current, target, nSteps, horizon));
          // |β_next − β| ≤ 0.2·β·nSteps/horizon, up to the rounding of the product.
          expect(Math.abs(next - value)).toBeLessThanOrEqual(
            (0.2 * value * nSteps) / horizon + 4 * Number.EPSILON * value,
          );
        },
      ),
      { seed: 16, numRuns: 300 },
    );
  });

  it("fixed: β never changes", () => {
    expect(fixedKlCoefficient({ klCoef: 0.001, currentKl: 123, nSteps: 8 })).toBe(0.001);
  });

  it("a KL-in-reward step followed by the adaptive update, as verl's apply_kl_penalty runs them", () => {
    const c = cases[1]!;
    const mask = c.inputs.response_mask as Matrix;
    const step = klPenaltyRewards(
      {
        tokenScores: c.inputs.token_level_scores as Matrix,
        oldLogp: c.inputs.old_log_probs as Matrix,
        refLogp: c.inputs.ref_log_prob as Matrix,
        mask,
      },
      { kind: "kl", beta: 0.1 },
    );
    const next = adaptiveKlCoefficient({ klCoef: 0.1, currentKl: step.currentKl, nSteps: mask.length });
    // current_kl 0.643 is over 6× the 0.1 target: the error clips to 0.2, β · (1 + 0.2·4/10000).
    expect(next).toBe(0.1 * (1 + (0.2 * 4) / 10000));
  });
});

describe("verl compute_rewards (core_algos.py L1009)", () => {
  it("is scores − (old − ref)·kl_ratio at every position, unmasked and unclamped", () => {
    const tokenScores = [
      [0, 1, 0.5],
      [2, -1, 0],
    ];
    const oldLogp = [
      [-1, -2, -40],
      [-0.1, -3, -7],
    ];
    const refLogp = [
      [-1.5, -2, -3],
      [-0.2, -0.5, -9],
    ];
    const out = klRatioRewards({ tokenScores, oldLogp, refLogp }, { klRatio: 0.05 });
    expect(out.shape).toEqual([2, 3]);
    const expected = tokenScores.flatMap((row, b) => row.map((s, t) => s - (oldLogp[b]![t]! - refLogp[b]![t]!) * 0.05));
    expect(Array.from(out.data)).toEqual(expected);
  });
});

describe("properties", () => {
  const B = 4;
  const T = 5;
  const grid = (arbitrary: fc.Arbitrary<number>) =>
    fc.array(fc.array(arbitrary, { minLength: T, maxLength: T }), { minLength: B, maxLength: B });
  const batch = fc.record({
    tokenScores: grid(fc.double({ min: -5, max: 5, noNaN: true })),
    oldLogp: grid(fc.double({ min: -30, max: 0, noNaN: true })),
    refLogp: grid(fc.double({ min: -30, max: 0, noNaN: true })),
    mask: grid(fc.constantFrom(0, 1)),
  });
  const kinds = fc.constantFrom(...KL_KINDS, "kl", "mse", "low_var_kl", "low_var_kl+");

  it("β = 0 gives back the scores, at every position", () => {
    fc.assert(
      fc.property(batch, kinds, (inputs, kind) => {
        const result = klPenaltyRewards(inputs, { kind, beta: 0 });
        expect(Array.from(result.tokenRewards.data)).toEqual(flatten(inputs.tokenScores));
        expect(result.metrics["actor/reward_kl_penalty_coeff"]).toBe(0);
      }),
      { seed: 16, numRuns: 150 },
    );
  });

  it("never reads a log-prob at mask 0: NaN and ±Infinity there change nothing", () => {
    const garbage = fc.constantFrom(NaN, Infinity, -Infinity, 1e308, -1e308);
    fc.assert(
      fc.property(batch, kinds, fc.double({ min: 0, max: 2, noNaN: true }), garbage, (inputs, kind, beta, bad) => {
        const poisoned = (m: Matrix) => m.map((row, b) => row.map((v, t) => (inputs.mask[b]![t] === 1 ? v : bad)));
        const clean = klPenaltyRewards(inputs, { kind, beta });
        const dirty = klPenaltyRewards(
          { ...inputs, oldLogp: poisoned(inputs.oldLogp), refLogp: poisoned(inputs.refLogp) },
          { kind, beta },
        );
        expect(dirty).toEqual(clean);
      }),
      { seed: 16, numRuns: 150 },
    );
  });

  it("a row permutation permutes tokenRewards and kl, and leaves currentKl within rounding", () => {
    fc.assert(
      fc.property(
        batch,
        kinds,
        fc.double({ min: 0, max: 2, noNaN: true }),
        fc.shuffledSubarray([0, 1, 2, 3], { minLength: B, maxLength: B }),
        (inputs, kind, beta, order) => {
          const permute = (m: Matrix) => order.map((b) => m[b]!);
          const base = klPenaltyRewards(inputs, { kind, beta });
          const permuted = klPenaltyRewards(
            {
              tokenScores: permute(inputs.tokenScores),
              oldLogp: permute(inputs.oldLogp),
              refLogp: permute(inputs.refLogp),
              mask: permute(inputs.mask),
            },
            { kind, beta },
          );
          const rowsOf = (data: Float64Array) =>
            Array.from({ length: B }, (_, b) => Array.from(data.slice(b * T, b * T + T)));
          expect(rowsOf(permuted.tokenRewards.data)).toEqual(permute(rowsOf(base.tokenRewards.data)));
          expect(rowsOf(permuted.kl.data)).toEqual(permute(rowsOf(base.kl.data)));
          expectAllClose([permuted.currentKl], [base.currentKl], FLOAT64_TOLERANCE, "currentKl");
        },
      ),
      { seed: 16, numRuns: 150 },
    );
  });

  it("currentKl is the mean of the rows' masked means, an empty row counting 0", () => {
    fc.assert(
      fc.property(batch, kinds, (inputs, kind) => {
        const result = klPenaltyRewards(inputs, { kind, beta: 0.1 });
        let total = 0;
        for (let b = 0; b < B; b++) {
          const row = Array.from(result.kl.data.slice(b * T, b * T + T));
          const count = inputs.mask[b]!.reduce((s, m) => s + m, 0);
          total += count === 0 ? 0 : row.reduce((s, v) => s + v, 0) / count;
        }
        expectAllClose([result.currentKl], [total / B], FLOAT64_TOLERANCE, "currentKl");
        for (let i = 0; i < B * T; i++) {
          if (flatten(inputs.mask)[i] === 0) expect(result.kl.data[i]).toBe(0);
        }
      }),
      { seed: 16, numRuns: 150 },
    );
  });
});
