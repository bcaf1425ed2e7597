/**
 * Class 2 of the bad-input contract: finite inputs that used to overflow. Each property generates extreme but finite
 * inputs and checks the contract against an oracle written here: a finite result equal to the float64 oracle, or a
 * ValidationError naming the position and the fix. A zero advantage or weight contributes exactly 0.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  gdpoAdvantages,
  lossPresets,
  multiRewardAdvantages,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, returned } from "./shared.js";

/** A log-ratio from ordinary to far beyond what exp can hold (709.78). */
const logRatio = fc.oneof(
  fc.double({ min: -5, max: 5, noNaN: true }),
  fc.double({ min: -1000, max: 1000, noNaN: true }),
  fc.constantFrom(709, 710, 750, -710, -745, -800),
);
const advantage = fc.oneof(
  fc.constant(0),
  fc.constantFrom(-1, 1, -2.5, 0.5),
  fc.double({ min: -3, max: 3, noNaN: true }),
);

/** The clip objective's loss for one token in float64, or "overflow" where the ratio is beyond float64. */
function clipOracle(lr: number, a: number, clipLow: number, clipHigh: number): number | "overflow" {
  if (a === 0) return 0;
  const ratio = Math.exp(lr);
  if (ratio === Infinity) return a > 0 ? -a * (1 + clipHigh) : "overflow";
  const clipped = Math.min(Math.max(ratio, 1 - clipLow), 1 + clipHigh);
  const loss = Math.max(-a * ratio, -a * clipped);
  // The unclipped branch's slope −A·ρ enters the gradient too.
  return Number.isFinite(loss) && Number.isFinite(a * ratio) ? loss : "overflow";
}

describe("class 2: the policy loss on log-ratios up to ±1000 without a clamp", () => {
  it("paper preset (no clamp, no dual clip): the float64 oracle, exactly 0 for A = 0, or an error naming the token and logRatioClamp", () => {
    hostile(fc.array(fc.tuple(logRatio, advantage), { minLength: 1, maxLength: 6 }), (tokens) => {
      const logp = tokens.map(([lr]) => lr - 3);
      const inputs = {
        logp: { data: logp, shape: [tokens.length, 1] as const },
        oldLogp: { data: tokens.map(() => -3), shape: [tokens.length, 1] as const },
        advantages: tokens.map(([, a]) => a),
      };
      const options = { ...lossPresets.paper, aggregation: "seq-mean-token-sum" as const };
      const oracle = tokens.map(([, a], b) => clipOracle(logp[b]! + 3, a, 0.2, 0.28));
      const outcome = attempt(() => policyLoss(inputs, options));
      const firstOverflow = oracle.indexOf("overflow");
      if (firstOverflow >= 0) {
        expectRefusedAt(outcome, `inputs.logp[${firstOverflow}][0]`, /logRatioClamp/);
        return;
      }
      if (!outcome.ok) throw outcome.error;
      const result = outcome.value;
      expectAllFinite({ loss: result.loss, grad: result.grad, perTokenLoss: result.perTokenLoss });
      oracle.forEach((value, b) => {
        expect(result.perTokenLoss[b]).toBeCloseTo(value as number, 10);
        if (tokens[b]![1] === 0)
          expect(Object.is(result.perTokenLoss[b], 0) || result.perTokenLoss[b] === 0).toBe(true);
      });
    });
  });

  it("sapo, cispo and reinforce never turn an overflowed ratio into NaN (the gate saturates, the others ignore ρ's size)", () => {
    hostile(fc.tuple(logRatio, advantage, fc.constantFrom("sapo", "cispo", "reinforce")), ([lr, a, objective]) => {
      const outcome = attempt(() =>
        policyLoss({ logp: [[lr - 2]], oldLogp: [[-2]], advantages: [a] }, { ...lossPresets.trl, objective }),
      );
      if (!outcome.ok) {
        // CISPO weighs −A·logp by the clipped ratio; only an objective whose value truly overflows may refuse.
        expectRefusedAt(outcome, "inputs.logp[0][0]");
        return;
      }
      expectAllFinite({ loss: outcome.value.loss, grad: outcome.value.grad });
    });
  });

  it("the reference preset's clamp keeps every log-ratio finite: never an error, always finite", () => {
    hostile(fc.array(fc.tuple(logRatio, advantage), { minLength: 1, maxLength: 6 }), (tokens) => {
      const result = returned(
        attempt(() =>
          policyLoss(
            { logp: [tokens.map(([lr]) => lr - 1)], oldLogp: [tokens.map(() => -1)], advantages: [1] },
            lossPresets.reference,
          ),
        ),
      );
      expectAllFinite({ loss: result.loss, grad: result.grad, perTokenLoss: result.perTokenLoss });
    });
  });

  it("a zero importance weight contributes exactly 0 even where the ratio overflows", () => {
    const result = policyLoss(
      { logp: [[710, 0]], oldLogp: [[0, 0]], advantages: [-1], importanceWeights: [[0, 1]] },
      lossPresets.paper,
    );
    expect(result.perTokenLoss[0]).toBe(0);
    expect(result.grad[0]).toBe(0);
    expect(result.metrics.ratioMax).toBe(Infinity); // a metric of the ratio itself may be +Infinity: documented
  });
});

describe("class 2: the KL terms", () => {
  const difference = fc.oneof(
    fc.double({ min: -50, max: 50, noNaN: true }),
    fc.double({ min: -2000, max: 2000, noNaN: true }),
  );

  it("unclamped k2/k3: finite, or an error naming the token and (for k3) the clamp", () => {
    hostile(fc.tuple(difference, fc.constantFrom("k2", "k3"), fc.boolean()), ([d, kind, clamp]) => {
      const outcome = attempt(() =>
        policyLoss(
          { logp: [[-1]], refLogp: [[-1 - d]], advantages: [1] },
          { ...lossPresets.trl, kl: { kind, coef: 0.1, clamp } },
        ),
      );
      if (!outcome.ok) {
        expectRefusedAt(outcome, "inputs.refLogp[0][0]", /overflows float64/);
        expect(kind === "k3" ? !clamp && -d > 709 : Math.abs(d) > 1e150).toBe(true);
        return;
      }
      expectAllFinite({ loss: outcome.value.loss, grad: outcome.value.grad });
    });
  });

  it("importance-corrected k3 with a vanishing ratio is the finite product e^(x + log ρ) − (x + 1)ρ", () => {
    const result = policyLoss(
      { logp: [[-800]], oldLogp: [[0]], refLogp: [[0]], advantages: [0] },
      { ...lossPresets.trl, kl: { kind: "k3", coef: 1, clamp: false, importanceCorrected: true } },
    );
    // x = 800, ρ = e^−800: e^(x + log ρ) = e^0 = 1, (x + 1)ρ = 801·e^−800 ≈ 0.
    expect(result.perTokenKl![0]).toBeCloseTo(1, 12);
    expectAllFinite({ loss: result.loss, grad: result.grad });
  });
});

describe("class 2: advantages", () => {
  const reward = fc.oneof(
    fc.double({ min: -10, max: 10, noNaN: true }),
    fc.double({ min: -1e300, max: 1e300, noNaN: true }),
    fc.constantFrom(0.1, 1e200, -1e200, 1e-200, 0),
  );

  it("finite rewards up to ±1e300 give finite advantages; an all-equal group exactly 0; epsilon 0 allowed", () => {
    const presets = ["verl", "trl", "verlRloo", "trlBatch"] as const;
    hostile(
      fc.tuple(fc.array(reward, { minLength: 2, maxLength: 8 }), fc.constantFrom(...presets), fc.constantFrom(1e-6, 0)),
      ([rewards, preset, epsilon]) => {
        const ids = rewards.map(() => "g");
        const result = returned(attempt(() => advantages(rewards, ids, { ...advantagePresets[preset], epsilon })));
        expectAllFinite(result);
        if (rewards.every((r) => r === rewards[0])) expect(Array.from(result)).toEqual(rewards.map(() => 0));
        // Order is kept: a larger reward never gets a smaller advantage within a group.
        for (let i = 0; i < rewards.length; i++) {
          for (let j = 0; j < rewards.length; j++) {
            if (rewards[i]! > rewards[j]!) expect(result[i]!).toBeGreaterThanOrEqual(result[j]!);
          }
        }
      },
    );
  });

  it("[1e200, 0] is ±1/√2 (ε is negligible next to its std), as [1, 0] is with ε = 0; [0.1, 0.1, 0.1] is exactly 0", () => {
    const big = advantages([1e200, 0], ["g", "g"]);
    expect(Array.from(big)).toEqual(Array.from(advantages([1, 0], ["g", "g"], { epsilon: 0 })));
    expect(big[0]).toBeCloseTo(Math.SQRT1_2, 15);
    expect(Array.from(advantages([0.1, 0.1, 0.1], [1, 1, 1]))).toEqual([0, 0, 0]);
    expect(Array.from(advantages([0.1, 0.1, 0.1], [1, 1, 1], { epsilon: 0 }))).toEqual([0, 0, 0]);
  });

  it("a group std beyond float64 (|r| ≳ 1.3e308) still gives ±1/√2, not a silent 0 (GRPO, GDPO, normalize_then_sum)", () => {
    const half = (values: ArrayLike<number>, digits = 6) => {
      expect(values[0]).toBeCloseTo(Math.SQRT1_2, digits);
      expect(values[1]).toBeCloseTo(-Math.SQRT1_2, digits);
    };
    half(advantages([1.3e308, -1.3e308], ["a", "a"], advantagePresets.trl));
    half(advantages([1.7e308, -1.7e308], ["a", "a"], advantagePresets.verl));
    half(gdpoAdvantages([[1.7e308], [-1.7e308]], ["a", "a"], [[1], [1]]).data);
    half(multiRewardAdvantages([[1.7e308], [-1.7e308]], ["a", "a"], { aggregation: "normalize_then_sum" }), 3);
    expect(advantages([1.7e308, -1.7e308, 0], ["a", "a", "a"], advantagePresets.verlPassK)[0]).toBeCloseTo(1, 6);
    // A batch std beyond float64 cannot be used: refused, naming a reward.
    expectRefusedAt(
      attempt(() => advantages([1.3e308, -1.3e308], ["a", "b"], advantagePresets.trlBatch)),
      /^rewards\[\d\]$/,
      /batch std/,
    );
  });

  it("rewards whose differences overflow float64 are an error naming the reward, not ±Infinity", () => {
    expectRefusedAt(
      attempt(() => advantages([1.7e308, -1.7e308], ["g", "g"], advantagePresets.verlRloo)),
      /^rewards\[\d\]$/,
      /cannot be centred/,
    );
  });
});

describe("class 2: token log-probs near the float range", () => {
  it("shifting every logit of a position by a constant changes nothing (up to 1e-12)", () => {
    hostile(
      fc.tuple(
        fc.array(fc.double({ min: -20, max: 20, noNaN: true }), { minLength: 2, maxLength: 12 }),
        fc.constantFrom(0, 1e10, -1e10, 1e300, -1e300, 3e38),
        fc.constantFrom(0.5, 1, 2),
      ),
      ([base, shift, temperature]) => {
        const vocab = base.length;
        const at = (values: number[]) => ({ data: Float64Array.from(values), shape: [1, 1, vocab] as const });
        const reference = tokenLogProbs(at(base), [[vocab - 1]], { temperature, entropy: true });
        const outcome = attempt(() =>
          tokenLogProbs(at(base.map((z) => z + shift)), [[vocab - 1]], { temperature, entropy: true }),
        );
        if (!outcome.ok) {
          // The largest logit divided by τ = 0.5 beyond float64: refused, naming the position.
          expectRefusedAt(outcome, "logits[0][0]", /overflows float64/);
          return;
        }
        // Adding `shift` rounds each logit (to 2^-52·|shift|): compare relative to what the inputs keep.
        const kept = Math.max(1, Math.abs(shift) * 2 ** -52) / temperature;
        expect(Math.abs(outcome.value.logp[0]! - reference.logp[0]!)).toBeLessThanOrEqual(1e-12 + 4 * kept * vocab);
        expect(Math.abs(outcome.value.entropy![0]! - reference.entropy![0]!)).toBeLessThanOrEqual(
          1e-12 + 4 * kept * vocab,
        );
      },
    );
  });

  it("[3e38, 3e38] in float32: logp −log 2, entropy log 2, gradient [0.5, −0.5], with or without saved statistics", () => {
    const logits = { data: new Float32Array([3e38, 3e38]), shape: [1, 1, 2] as const };
    const forward = tokenLogProbs(logits, [[0]], { entropy: true });
    expect(forward.logp[0]).toBeCloseTo(-Math.LN2, 14);
    expect(forward.entropy![0]).toBeCloseTo(Math.LN2, 14);
    for (const saved of [forward, undefined]) {
      const grad = tokenLogProbsBackward(logits, [[0]], { gradLogp: [[1]], saved });
      expect(Array.from(grad.data)).toEqual([0.5, -0.5]);
    }
  });

  it("[±1e308] mixes: entropy log 3 over the three largest; a sampled token so far below that its log-prob overflows is an error", () => {
    const logits = { data: new Float64Array([1e308, -1e308, 1e308, 1e308]), shape: [1, 1, 4] as const };
    expect(tokenLogProbs(logits, [[0]], { entropy: true }).entropy![0]).toBeCloseTo(Math.log(3), 14);
    expectRefusedAt(
      attempt(() => tokenLogProbs(logits, [[1]])),
      "logits[0][0]",
      /overflows float64/,
    );
  });
});
