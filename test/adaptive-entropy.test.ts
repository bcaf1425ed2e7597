/**
 * TRL's adaptive entropy coefficient (GRPOConfig use_adaptive_entropy). There are no golden values for it (the
 * golden generator ran TRL with the controller off): the expected values below are derived by hand from TRL v1.9.0's
 * `GRPOTrainer._compute_loss` entropy-bonus block, written as the arithmetic that code does:
 *
 *   apply_coef   = entropy_coef if _last_world_entropy <= entropy_target else 0.0
 *   loss         = loss − apply_coef · entropy_loss
 *   world_entropy = window_stats[0] / window_stats[1].clamp(min=1.0)
 *   entropy_coef = min(entropy_coef + delta, max) if world_entropy <= target else max(entropy_coef − delta, min)
 *
 * plus properties of the controller (fast-check) and the loss with the applied coefficient.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  adaptiveEntropyCoefficient,
  appliedEntropyCoefficient,
  fromTrlConfig,
  grpoRoc,
  policyLoss,
} from "../src/index.js";

describe("appliedEntropyCoefficient: TRL's gate", () => {
  it("TRL's GMPO test: _last_world_entropy 1.0 ≤ entropy_target 2.0 applies entropy_coef 0.25", () => {
    // tests/experimental/test_gmpo_trainer.py test_aux_loss_and_entropy_bonus: loss −1.2 = −1 − 0.25·2 + 0.1·3.
    const coef = appliedEntropyCoefficient({ coef: 0.25, lastEntropy: 1 }, { targetEntropy: 2 });
    expect(coef).toBe(0.25);
    expect(-1 - coef * 2 + 0.1 * 3).toBeCloseTo(-1.2, 15);
  });

  it("at the target the gate is open (≤), above it the bonus is 0", () => {
    expect(appliedEntropyCoefficient({ coef: 0.3, lastEntropy: 0.2 })).toBe(0.3); // default target 0.2
    expect(appliedEntropyCoefficient({ coef: 0.3, lastEntropy: 0.2000001 })).toBe(0);
    expect(appliedEntropyCoefficient({ coef: 0.3, lastEntropy: -1 }, { targetEntropy: -0.5 })).toBe(0.3);
  });
});

describe("adaptiveEntropyCoefficient: TRL's update at the optimizer step", () => {
  it("below the target: one delta up, capped at entropy_coef_max", () => {
    // window: 3 micro-batches of (ΣH·mask, Σmask) = (1.2, 8), (0.9, 6), (0.3, 2) → (2.4, 16); 2.4 / 16 = 0.15 ≤ 0.2
    const step = { coef: 0.01, entropySum: 1.2 + 0.9 + 0.3, tokens: 8 + 6 + 2 };
    expect(adaptiveEntropyCoefficient(step)).toEqual({ coef: 0.01 + 0.005, entropy: (1.2 + 0.9 + 0.3) / 16 });
    expect(adaptiveEntropyCoefficient({ ...step, coef: 0.998 }).coef).toBe(1); // min(0.998 + 0.005, 1.0)
  });

  it("above the target: one delta down, floored at entropy_coef_min", () => {
    const options = { coefMin: 0.002, coefMax: 0.05, delta: 0.004, targetEntropy: 0.5 };
    expect(adaptiveEntropyCoefficient({ coef: 0.03, entropySum: 7, tokens: 10 }, options)).toEqual({
      coef: 0.03 - 0.004, // 0.7 > 0.5
      entropy: 7 / 10,
    });
    expect(adaptiveEntropyCoefficient({ coef: 0.005, entropySum: 7, tokens: 10 }, options).coef).toBe(0.002); // max(0.001, 0.002)
  });

  it("at exactly the target the coefficient rises (TRL's <=)", () => {
    expect(adaptiveEntropyCoefficient({ coef: 0, entropySum: 0.4, tokens: 2 }).coef).toBe(0.005); // 0.2 ≤ 0.2
  });

  it("a window without tokens measures 0 (TRL clamps the count to 1)", () => {
    expect(adaptiveEntropyCoefficient({ coef: 0.1, entropySum: 0, tokens: 0 })).toEqual({
      coef: 0.1 + 0.005,
      entropy: 0 / 1,
    });
    // a fractional count below 1 is clamped as well: 0.3 / max(0.5, 1)
    expect(adaptiveEntropyCoefficient({ coef: 0.1, entropySum: 0.3, tokens: 0.5 }).entropy).toBe(0.3);
  });

  it("only the bound on the side moved toward applies: a coefficient above the max still falls by delta", () => {
    const options = { coefMax: 0.1, targetEntropy: 0.2 };
    expect(adaptiveEntropyCoefficient({ coef: 0.5, entropySum: 9, tokens: 10 }, options).coef).toBe(0.5 - 0.005);
    expect(adaptiveEntropyCoefficient({ coef: 0.5, entropySum: 1, tokens: 10 }, options).coef).toBe(0.1);
  });

  it("five optimizer steps of a run, the gate read from the previous step", () => {
    const options = { coefMin: 0, coefMax: 0.012, delta: 0.005, targetEntropy: 0.3 };
    let state = { coef: 0, lastEntropy: 0.25 }; // the caller's starting state (TRL's __init__ was not read)
    const windows = [
      [2, 10], // 0.2 ≤ 0.3: up
      [2.5, 10], // 0.25: up
      [2, 10], // 0.2: up, capped at 0.012
      [4, 10], // 0.4 > 0.3: down
      [3, 10], // 0.3 ≤ 0.3: up, capped again
    ] as const;
    const trace: number[][] = [];
    for (const [entropySum, tokens] of windows) {
      const applied = appliedEntropyCoefficient(state, options);
      const next = adaptiveEntropyCoefficient({ coef: state.coef, entropySum, tokens }, options);
      trace.push([applied, next.coef, next.entropy]);
      state = { coef: next.coef, lastEntropy: next.entropy };
    }
    const up1 = 0 + 0.005;
    const up2 = up1 + 0.005;
    expect(trace).toEqual([
      [0, up1, 2 / 10], // applied: the starting coef 0 (gate open: 0.25 ≤ 0.3)
      [up1, up2, 2.5 / 10],
      [up2, 0.012, 2 / 10], // min(0.01 + 0.005, 0.012)
      [0.012, 0.012 - 0.005, 4 / 10],
      [0, 0.012, 3 / 10], // gate closed (last entropy 0.4 > 0.3); min(0.007 + 0.005, 0.012)
    ]);
  });
});

describe("properties", () => {
  const finite = fc.double({ min: -1e6, max: 1e6, noNaN: true });
  const nonnegative = fc.double({ min: 0, max: 1e6, noNaN: true });

  it("started inside [coefMin, coefMax], the coefficient stays inside, whatever the entropies", () => {
    fc.assert(
      fc.property(
        fc.tuple(nonnegative, nonnegative),
        nonnegative,
        finite,
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.array(fc.tuple(nonnegative, nonnegative), { maxLength: 30 }),
        ([a, b], delta, targetEntropy, start, windows) => {
          const [coefMin, coefMax] = a <= b ? [a, b] : [b, a];
          const options = { coefMin, coefMax, delta, targetEntropy };
          let coef = coefMin + start * (coefMax - coefMin);
          for (const [entropySum, tokens] of windows) {
            coef = adaptiveEntropyCoefficient({ coef, entropySum, tokens }, options).coef;
            expect(coef).toBeGreaterThanOrEqual(coefMin);
            expect(coef).toBeLessThanOrEqual(coefMax);
          }
        },
      ),
    );
  });

  it("at or below the target the coefficient never falls, above it it never rises (inside the bounds)", () => {
    fc.assert(
      fc.property(nonnegative, nonnegative, nonnegative, nonnegative, finite, (coef, entropySum, tokens, delta, t) => {
        const next = adaptiveEntropyCoefficient(
          { coef, entropySum, tokens },
          { coefMin: 0, coefMax: 1e7, delta, targetEntropy: t },
        );
        if (next.entropy <= t) expect(next.coef).toBeGreaterThanOrEqual(coef);
        else expect(next.coef).toBeLessThanOrEqual(coef);
      }),
    );
  });

  it("the applied coefficient is the coefficient or 0, and 0 exactly when the last entropy is above the target", () => {
    fc.assert(
      fc.property(nonnegative, finite, finite, (coef, lastEntropy, targetEntropy) => {
        const applied = appliedEntropyCoefficient({ coef, lastEntropy }, { targetEntropy });
        expect(applied).toBe(lastEntropy > targetEntropy ? 0 : coef);
      }),
    );
  });
});

describe("the loss with the applied coefficient", () => {
  // dapo: L = Σ(policy)·mask / N − c·ΣH·mask / N, N = Σmask (one process, no accumulation).
  const inputs = {
    logp: [
      [-1, -0.5, -2],
      [-0.3, -1, -4],
    ],
    advantages: [0.5, -1],
    mask: [
      [1, 1, 0],
      [1, 1, 1],
    ],
    entropy: [
      [0.4, 0.1, 9],
      [0.2, 0.3, 0.5],
    ],
  };
  const options = fromTrlConfig({ use_adaptive_entropy: true, entropy_target: 0.3 });

  it("a closed gate leaves the policy term alone; an open one subtracts c·ΣH·mask/N", () => {
    const state = { coef: 0.02, lastEntropy: 0.25 };
    const open = appliedEntropyCoefficient(state, options.adaptiveEntropy);
    const closed = appliedEntropyCoefficient({ ...state, lastEntropy: 0.31 }, options.adaptiveEntropy);
    expect([open, closed]).toEqual([0.02, 0]);
    const lossWith = (entropyCoef: number) => policyLoss(inputs, { ...options.loss, entropyCoef }).loss;
    const entropyTerm = (0.4 + 0.1 + 0.2 + 0.3 + 0.5) / 5;
    expect(lossWith(closed)).toBe(lossWith(0));
    expect(lossWith(open)).toBeCloseTo(lossWith(0) - 0.02 * entropyTerm, 14);
  });

  it("is in the grpoRoc namespace", () => {
    expect(grpoRoc.adaptiveEntropyCoefficient).toBe(adaptiveEntropyCoefficient);
    expect(grpoRoc.appliedEntropyCoefficient).toBe(appliedEntropyCoefficient);
  });
});
