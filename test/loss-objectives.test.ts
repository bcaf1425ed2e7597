/**
 * The objective registry (one registered function adds a loss variant) and the inlined e^x of the hot loops.
 */
import { describe, expect, it } from "vitest";
import { policyLoss, policyObjectiveNames, registerPolicyObjective, type PolicyObjective } from "../src/index.js";
import { exp } from "../src/numeric.js";

describe("registerPolicyObjective", () => {
  // The unclipped importance-sampled objective, −A·ρ, with the gradient through the ratio.
  const unclipped: PolicyObjective =
    () =>
    ({ advantage, ratio }) => ({
      loss: -advantage * ratio,
      dLogRatio: -advantage * ratio,
      dLogp: 0,
      clipped: false,
      dualClipped: false,
      lowClipped: false,
      highClipped: false,
    });
  registerPolicyObjective("test-unclipped", unclipped);

  it("is listed, and selecting it gives its loss and gradient through the driver (token-mean, mask, clamp)", () => {
    expect(policyObjectiveNames()).toContain("test-unclipped");
    const logp = [-1, -0.5, -2, -0.3];
    const oldLogp = [-1.2, -0.4, -2, 25];
    const mask = [1, 1, 0, 1];
    const advantages = [1, -2];
    const r = policyLoss(
      {
        logp: { data: logp, shape: [2, 2] },
        oldLogp: { data: oldLogp, shape: [2, 2] },
        mask: { data: mask, shape: [2, 2] },
        advantages,
      },
      { objective: "test-unclipped", logRatioClamp: [-20, 20] },
    );
    // Token 3's log-ratio (−25.3) is clamped: its ratio is e^−20 and its gradient 0.
    const ratios = [Math.exp(0.2), Math.exp(-0.1), 0, Math.exp(-20)];
    const a = [1, 1, -2, -2];
    const expectedLoss = -(a[0]! * ratios[0]! + a[1]! * ratios[1]! + a[3]! * ratios[3]!) / 3;
    expect(r.loss).toBeCloseTo(expectedLoss, 14);
    const expectedGrad = [-(a[0]! * ratios[0]!) / 3, -(a[1]! * ratios[1]!) / 3, 0, 0];
    expectedGrad.forEach((g, i) => expect(r.grad[i]).toBeCloseTo(g, 15));
    expect(r.metrics.clipFraction).toBe(0);
  });

  it("refuses a name that is taken", () => {
    expect(() => registerPolicyObjective("clip", unclipped)).toThrow(/already registered/);
    expect(() => registerPolicyObjective("test-unclipped", unclipped)).toThrow(/already registered/);
  });
});

describe("exp (the hot loops' inlined e^x)", () => {
  const ulpOf = (value: number) => {
    const bits = new BigInt64Array(new Float64Array([value]).buffer);
    bits[0]! += 1n;
    return new Float64Array(bits.buffer)[0]! - value;
  };

  it("is within 2 ulp of Math.exp on a grid over [−708, 708] and on small arguments", () => {
    let worst = 0;
    const check = (x: number) => {
      const expected = Math.exp(x);
      worst = Math.max(worst, Math.abs(exp(x) - expected) / ulpOf(expected));
    };
    for (let i = -70_800; i <= 70_800; i++) check(i / 100 + 0.00317);
    for (let i = -10_000; i <= 10_000; i++) check(i * 1e-7);
    expect(worst).toBeLessThanOrEqual(2);
  });

  it("is exact at 0 and defers to Math.exp outside [−708, 708], for NaN and for ±Infinity", () => {
    expect(exp(0)).toBe(1);
    expect(exp(-0)).toBe(1);
    for (const x of [709, 709.78, 710, -709, -745, -746, Infinity, -Infinity, NaN])
      expect(Object.is(exp(x), Math.exp(x)), String(x)).toBe(true);
  });
});
