/**
 * TRL's LUSPO and VESPO (src/loss/trl-objectives.ts): their translation from a GRPOConfig, the presets, and the
 * identities that tie them to objectives checked elsewhere. Golden values: test/golden-trl-loss.test.ts and
 * test/golden-trl-correction.test.ts; gradients against finite differences and the order and micro-batch
 * properties: test/loss-verl-objectives.test.ts, which runs every shipped objective.
 */
import fc from "fast-check";
import seedrandom from "seedrandom";
import { describe, expect, it } from "vitest";
import { fromTrlConfig, lossPresets, type PolicyLossInputs, policyLoss } from "../src/index.js";

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 + 1e-10 * Math.abs(b);

describe("fromTrlConfig: luspo and vespo", () => {
  it("luspo → the luspo objective (TRL's ε, ε_high, δ) under the grpo aggregation, entropy by bnpo", () => {
    const { loss } = fromTrlConfig({
      loss_type: "luspo",
      importance_sampling_level: "sequence",
      epsilon: 0.0003,
      epsilon_high: 0.0004,
      delta: 1.5,
      gradient_accumulation_steps: 4,
    });
    expect(loss).toMatchObject({
      objective: "luspo",
      ratioLevel: "token",
      clipLow: 0.0003,
      clipHigh: 0.0004,
      delta: 1.5,
      dualClip: null,
      logRatioClamp: null,
      aggregation: "grpo",
      entropyAggregation: "bnpo",
      normalizer: { gradientAccumulationSteps: 4 },
    });
  });

  it("vespo → the vespo objective with k and λ in float32 (torch.where of Python floats), dapo aggregation", () => {
    const { loss } = fromTrlConfig({
      loss_type: "vespo",
      vespo_k_pos: 2.1,
      vespo_lambda_pos: 3.3,
      vespo_k_neg: 3,
      vespo_lambda_neg: 2,
    });
    expect(loss).toMatchObject({
      objective: "vespo",
      aggregation: "dapo",
      entropyAggregation: "dapo",
      vespo: {
        kPositive: Math.fround(2.1),
        lambdaPositive: Math.fround(3.3),
        kNegative: 3,
        lambdaNegative: 2,
        importanceWeights: "loss",
      },
    });
  });

  it("the presets are GRPOConfig's defaults for each loss type", () => {
    const luspo = fromTrlConfig({ loss_type: "luspo", importance_sampling_level: "sequence" }).loss;
    const vespo = fromTrlConfig({ loss_type: "vespo" }).loss;
    for (const [preset, translated] of [
      [lossPresets.trlLuspo, luspo],
      [lossPresets.trlVespo, vespo],
    ] as const) {
      for (const [key, value] of Object.entries(preset)) {
        expect(translated[key as keyof typeof translated], key).toEqual(value);
      }
    }
  });
});

/** A random batch: B rows of T tokens, every row non-empty unless `empty`, one advantage per row. */
function drawInputs(seed: number, options: { perToken?: boolean; weights?: boolean } = {}): PolicyLossInputs {
  const random = seedrandom(`grpo-roc trl objectives ${seed}`);
  const uniform = (lo: number, hi: number) => lo + (hi - lo) * random();
  const B = 1 + Math.floor(random() * 4);
  const T = 1 + Math.floor(random() * 6);
  const shape: [number, number] = [B, T];
  const logp = Float64Array.from({ length: B * T }, () => uniform(-4, -0.01));
  const oldLogp = logp.map((v) => v - uniform(-0.8, 0.8));
  const mask = Float64Array.from({ length: B * T }, (_, i) => (i % T === 0 || random() < 0.7 ? 1 : 0));
  const advantages = Float64Array.from({ length: options.perToken ? B * T : B }, () => uniform(-2, 2));
  const weights = Float64Array.from({ length: B * T }, () => uniform(0.3, 2));
  return {
    logp: { data: logp, shape },
    oldLogp: { data: oldLogp, shape },
    mask: { data: mask, shape },
    advantages: options.perToken ? { data: advantages, shape } : advantages,
    ...(options.weights ? { importanceWeights: { data: weights, shape } } : {}),
  };
}

describe("VESPO's identities", () => {
  it("on-policy φ = 1 for every row: the loss is REINFORCE's −A·log π under dapo, and phiMean is 1", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.boolean(), (seed, perToken) => {
        const { oldLogp: _old, ...inputs } = drawInputs(seed, { perToken });
        const vespo = policyLoss(inputs, lossPresets.trlVespo);
        const reinforce = policyLoss(inputs, { objective: "reinforce", aggregation: "dapo" });
        expect(close(vespo.loss, reinforce.loss)).toBe(true);
        vespo.grad.forEach((g, i) => expect(close(g, reinforce.grad[i]!)).toBe(true));
        expect(vespo.metrics.phiMean).toBe(1);
      }),
      { numRuns: 40 },
    );
  });

  it('"phi": weights w enter log w as a shift of the old log-probs by −log w would (clamps not binding)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), (seed) => {
        const inputs = drawInputs(seed, { weights: true });
        const weights = (inputs.importanceWeights as unknown as { data: Float64Array }).data;
        const old = inputs.oldLogp as unknown as { data: Float64Array; shape: [number, number] };
        const shifted = { data: old.data.map((v, i) => v - Math.log(weights[i]!)), shape: old.shape };
        const phi = {
          ...lossPresets.trlVespo,
          vespo: { ...lossPresets.trlVespo.vespo, importanceWeights: "phi" as const },
        };
        const withWeights = policyLoss(inputs, phi);
        const { importanceWeights: _w, ...rest } = inputs;
        const withShift = policyLoss({ ...rest, oldLogp: shifted }, lossPresets.trlVespo);
        expect(close(withWeights.loss, withShift.loss), `${withWeights.loss} vs ${withShift.loss}`).toBe(true);
        withWeights.grad.forEach((g, i) => expect(close(g, withShift.grad[i]!)).toBe(true));
      }),
      { numRuns: 40 },
    );
  });

  it('"loss": the weights multiply the loss and its gradient, token by token', () => {
    const inputs = drawInputs(7, { weights: true });
    const { importanceWeights: _w, ...rest } = inputs;
    const weights = (inputs.importanceWeights as unknown as { data: Float64Array }).data;
    const weighted = policyLoss(inputs, lossPresets.trlVespo);
    const plain = policyLoss(rest, lossPresets.trlVespo);
    plain.grad.forEach((g, i) => expect(close(weighted.grad[i]!, g * weights[i]!)).toBe(true));
  });
});

describe("LUSPO's identities", () => {
  it("with one advantage per row and no empty row, it is GSPO's clipped sequence ratio summed over the row", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000 }), fc.boolean(), (seed, withDelta) => {
        const inputs = drawInputs(seed);
        const bounds = { clipLow: 0.1, clipHigh: 0.15, delta: withDelta ? 1.3 : null };
        const luspo = policyLoss(inputs, { ...lossPresets.trlLuspo, ...bounds });
        // seq-mean-token-sum divides Σ_t by the non-empty rows: all of them here, as TRL's mean over B.
        const gspo = policyLoss(inputs, {
          ...lossPresets.trl,
          ...bounds,
          ratioLevel: "sequence",
          aggregation: "seq-mean-token-sum",
        });
        expect(close(luspo.loss, gspo.loss), `${luspo.loss} vs ${gspo.loss}`).toBe(true);
        luspo.grad.forEach((g, i) => expect(close(g, gspo.grad[i]!)).toBe(true));
      }),
      { numRuns: 60 },
    );
  });

  it("an empty row counts in TRL's mean over B: the loss is B_nonempty/B of GSPO's seq-mean-token-sum", () => {
    const inputs: PolicyLossInputs = {
      logp: [
        [-1, -2],
        [-1, -1],
        [-3, -1],
      ],
      oldLogp: [
        [-1.2, -1.9],
        [-1, -1],
        [-2.5, -1.1],
      ],
      advantages: [1, 0.5, -1],
      mask: [
        [1, 1],
        [0, 0],
        [1, 0],
      ],
    };
    const luspo = policyLoss(inputs, lossPresets.trlLuspo);
    const gspo = policyLoss(inputs, { ...lossPresets.trl, ratioLevel: "sequence", aggregation: "seq-mean-token-sum" });
    expect(luspo.loss).toBeCloseTo((gspo.loss * 2) / 3, 14);
  });

  it("gradient accumulation divides the loss, as TRL's luspo divides by gas", () => {
    const inputs = drawInputs(3);
    const one = policyLoss(inputs, lossPresets.trlLuspo);
    const four = policyLoss(inputs, { ...lossPresets.trlLuspo, normalizer: { gradientAccumulationSteps: 4 } });
    expect(four.loss).toBeCloseTo(one.loss / 4, 14);
  });
});
