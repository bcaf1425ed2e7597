/**
 * Properties of the training/inference corrections (src/correction/), and hand-computed cases of TRL's token masks
 * (no golden values exist beyond trl_policy_loss.json's six cases): bounds of the weights, masks that only remove
 * tokens, row-permutation equivariance, sequence weights constant within a row, verl's k1 bounds on 1/r, TRL's
 * denominators left unchanged, and the doc comments' examples.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bypassModePolicyLoss,
  entropyMask,
  lossPresets,
  multiplyWeights,
  offPolicyMask,
  policyLoss,
  rolloutCorrection,
  rolloutCorrectionPresets,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  tokenEntropy,
  vllmImportanceSampling,
} from "../src/index.js";

const SEED = 20261207;
const check = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void, numRuns = 150) =>
  fc.assert(fc.property(arbitrary, predicate), { seed: SEED, numRuns });

/** A [B, T] batch: two log-prob matrices and a mask with at least one valid token. */
const batch = fc
  .record({ rows: fc.integer({ min: 1, max: 5 }), cols: fc.integer({ min: 1, max: 6 }) })
  .chain(({ rows, cols }) =>
    fc.record({
      rows: fc.constant(rows),
      cols: fc.constant(cols),
      a: fc.array(fc.double({ min: -4, max: 0, noNaN: true }), { minLength: rows * cols, maxLength: rows * cols }),
      b: fc.array(fc.double({ min: -4, max: 0, noNaN: true }), { minLength: rows * cols, maxLength: rows * cols }),
      mask: fc
        .array(fc.constantFrom(0, 1), { minLength: rows * cols, maxLength: rows * cols })
        .map((m) => (m.includes(1) ? m : [1, ...m.slice(1)])),
      advantages: fc.array(fc.double({ min: -2, max: 2, noNaN: true }), { minLength: rows, maxLength: rows }),
      permutation: fc.shuffledSubarray([...Array(rows).keys()], { minLength: rows, maxLength: rows }),
    }),
  );
type Batch = typeof batch extends fc.Arbitrary<infer T> ? T : never;

const shapeOf = (x: Batch) => [x.rows, x.cols] as [number, number];
const m = (data: readonly number[], x: Batch) => ({ data: Float64Array.from(data), shape: shapeOf(x) });
const logRatioOf = (x: Batch) =>
  m(
    x.a.map((v, i) => v - x.b[i]!),
    x,
  );
const permuteRows = (data: ArrayLike<number>, x: Batch) =>
  x.permutation.flatMap((r) => Array.from(data).slice(r * x.cols, (r + 1) * x.cols));
const close = (a: number, b: number) => Math.abs(a - b) <= 1e-12 + 1e-10 * Math.abs(b);

describe("verl's importance weights", () => {
  it("TIS: 0 ≤ w ≤ upper where the mask selects, 0 where it does not; sequence weights constant within a row", () => {
    check(
      fc.tuple(batch, fc.constantFrom("token", "sequence" as const), fc.double({ min: 0.5, max: 5, noNaN: true })),
      ([x, level, upper]) => {
        const { weights } = rolloutImportanceWeights({ logRatio: logRatioOf(x), mask: m(x.mask, x) }, { level, upper });
        weights.data.forEach((w, i) => {
          if (x.mask[i] === 0) expect(w).toBe(0);
          else expect(w >= 0 && w <= upper).toBe(true);
        });
        if (level === "sequence") {
          for (let r = 0; r < x.rows; r++) {
            const row = [...weights.data.slice(r * x.cols, (r + 1) * x.cols)].filter(
              (_, c) => x.mask[r * x.cols + c] === 1,
            );
            expect(new Set(row).size).toBeLessThanOrEqual(1);
          }
        }
      },
    );
  });

  it("IcePop: each weight is 0 or within [lower, upper]; batch normalisation gives token-mean 1", () => {
    check(batch, (x) => {
      const inputs = { logRatio: logRatioOf(x), mask: m(x.mask, x) };
      const { weights } = rolloutImportanceWeights(inputs, { level: "token", lower: 0.5, upper: 2 });
      for (const w of weights.data) expect(w === 0 || (w >= 0.5 && w <= 2)).toBe(true);
      const normalized = rolloutImportanceWeights(inputs, { level: "token", batchNormalize: true }).weights.data;
      const valid = [...normalized].filter((_, i) => x.mask[i] === 1);
      expect(close(valid.reduce((s, w) => s + w, 0) / valid.length, 1)).toBe(true);
    });
  });

  it("row permutation: the weights permute with the rows, the metrics stay", () => {
    check(batch, (x) => {
      const options = { level: "sequence" as const, upper: 1.5 };
      const before = rolloutImportanceWeights({ logRatio: logRatioOf(x), mask: m(x.mask, x) }, options);
      const after = rolloutImportanceWeights(
        { logRatio: m(permuteRows(logRatioOf(x).data, x), x), mask: m(permuteRows(x.mask, x), x) },
        options,
      );
      expect(Array.from(after.weights.data)).toEqual(permuteRows(before.weights.data, x));
      for (const [name, value] of Object.entries(before.metrics)) {
        // The std is verl's sqrt(max(E[w²] − E[w]², 0)): near 0 it cancels, and the summation order shows at 1e-8.
        const actual = after.metrics[name]!;
        const near = name.endsWith("_std") ? Math.abs(actual - value) <= 1e-7 : close(actual, value);
        expect(near, name).toBe(true);
      }
    });
  });
});

describe("verl's rejection", () => {
  const criteria = fc.constantFrom(
    [{ statistic: "token_k1", upper: 1.5 }] as const,
    [{ statistic: "seq_mean_k3", upper: 0.3 }] as const,
    [
      { statistic: "seq_max_k2", upper: 1 },
      { statistic: "token_k3", upper: 0.5 },
    ] as const,
    [{ statistic: "seq_sum_k1", lower: 0.5, upper: 2 }] as const,
  );
  it("only removes tokens; sequence criteria remove whole rows; rows permute", () => {
    check(fc.tuple(batch, criteria), ([x, list]) => {
      const { mask } = rolloutRejectionMask({ logRatio: logRatioOf(x), mask: m(x.mask, x) }, list);
      mask.data.forEach((v, i) => expect(v <= x.mask[i]!).toBe(true));
      if (list.every((c) => c.statistic.startsWith("seq_"))) {
        for (let r = 0; r < x.rows; r++) {
          const kept = [...mask.data.slice(r * x.cols, (r + 1) * x.cols)].filter(
            (_, c) => x.mask[r * x.cols + c] === 1,
          );
          expect(new Set(kept).size).toBeLessThanOrEqual(1);
        }
      }
      const permuted = rolloutRejectionMask(
        { logRatio: m(permuteRows(logRatioOf(x).data, x), x), mask: m(permuteRows(x.mask, x), x) },
        list,
      );
      expect(Array.from(permuted.mask.data)).toEqual(permuteRows(mask.data, x));
    });
  });

  it("verl's surprise, reproduced: k1 bounds 1/r, so { lower: 0.5, upper: 5 } keeps 0.2 ≤ r ≤ 2", () => {
    const ratios = [0.1, 0.19, 0.21, 0.4, 0.6, 1, 1.9, 2.1, 4, 6];
    const { mask } = rolloutRejectionMask({ logRatio: [ratios.map(Math.log)] }, [
      { statistic: "token_k1", lower: 0.5, upper: 5 },
    ]);
    expect(Array.from(mask.data)).toEqual(ratios.map((r) => (r >= 0.2 && r <= 2 ? 1 : 0)));
  });
});

describe("rolloutCorrection and bypass mode feed policyLoss", () => {
  it("bypass ppo_clip without correction is policyLoss with oldLogp = rolloutLogp and verl's options", () => {
    check(batch, (x) => {
      const inputs = { logp: m(x.a, x), rolloutLogp: m(x.b, x), advantages: x.advantages, mask: m(x.mask, x) };
      const bypass = bypassModePolicyLoss(inputs, { correction: rolloutCorrectionPresets.bypassPpoClip });
      const direct = policyLoss(
        { logp: inputs.logp, oldLogp: inputs.rolloutLogp, advantages: x.advantages, mask: inputs.mask },
        lossPresets.verl,
      );
      expect(bypass.policyLoss.loss).toBe(direct.loss);
      expect(Array.from(bypass.policyLoss.grad)).toEqual(Array.from(direct.grad));
    });
  });

  it("decoupled: weights and mask are what the two steps give on their own", () => {
    check(batch, (x) => {
      const result = rolloutCorrection(
        { oldLogp: m(x.a, x), rolloutLogp: m(x.b, x), mask: m(x.mask, x) },
        rolloutCorrectionPresets.decoupledGeoRsTokenTis,
      );
      const inputs = { logRatio: logRatioOf(x), mask: m(x.mask, x) };
      expect(Array.from(result.importanceWeights!.data)).toEqual(
        Array.from(rolloutImportanceWeights(inputs, { level: "token" }).weights.data),
      );
      expect(Array.from(result.mask.data)).toEqual(
        Array.from(rolloutRejectionMask(inputs, rolloutCorrectionPresets.decoupledGeoRs.rejection).mask.data),
      );
    });
  });
});

describe("TRL's vLLM importance sampling", () => {
  const modes = fc.constantFrom("token_truncate", "token_mask", "sequence_truncate", "sequence_mask" as const);
  it("truncate: ρ ∈ [clipMin, clipMax]; mask: ρ = 0 or within; sequence ρ = exp(Σ diff), the product of the token ratios", () => {
    check(fc.tuple(batch, modes), ([x, mode]) => {
      const inputs = { oldLogp: m(x.a, x), samplingLogp: m(x.b, x), mask: m(x.mask, x) };
      const result = vllmImportanceSampling(inputs, { mode, clipMin: 0.5, clipMax: 2 });
      for (const r of result.ratio) {
        if (mode.endsWith("truncate")) expect(r >= 0.5 && r <= 2).toBe(true);
        else expect(r === 0 || (r >= 0.5 && r <= 2)).toBe(true);
      }
      const open = vllmImportanceSampling(inputs, {
        mode: mode.startsWith("token") ? "token_mask" : "sequence_mask",
        clipMin: null,
        clipMax: null,
      });
      for (let r = 0; r < x.rows; r++) {
        let sum = 0;
        for (let c = 0; c < x.cols; c++) {
          const i = r * x.cols + c;
          const diff = x.mask[i] === 1 ? x.a[i]! - x.b[i]! : 0;
          sum += diff;
          if (mode.startsWith("token")) expect(open.ratio[i]).toBe(Math.exp(diff));
        }
        if (mode.startsWith("sequence")) expect(open.ratio[r]).toBe(Math.exp(sum));
      }
    });
  });

  it("TRL's *_mask modes leave the denominators unchanged: dapo loss = Σ ρ·ℓ / (all valid tokens)", () => {
    check(batch, (x) => {
      const ratio = vllmImportanceSampling(
        { oldLogp: m(x.a, x), samplingLogp: m(x.b, x), mask: m(x.mask, x) },
        { mode: "token_mask", clipMin: 0.8, clipMax: 1.25 },
      );
      const inputs = { logp: m(x.a, x), oldLogp: m(x.b, x), advantages: x.advantages, mask: m(x.mask, x) };
      const plain = policyLoss(inputs, lossPresets.trl);
      const weighted = policyLoss({ ...inputs, importanceWeights: ratio.importanceWeights }, lossPresets.trl);
      const tokens = x.mask.reduce((s, v) => s + v, 0);
      let expected = 0;
      plain.perTokenLoss.forEach((l, i) => {
        if (x.mask[i] === 1) expected += (l * ratio.importanceWeights.data[i]!) / tokens;
      });
      expect(close(weighted.loss, expected)).toBe(true);
    });
  });
});

describe("TRL's token masks (no golden values beyond trl_policy_loss.json: properties and hand-computed cases)", () => {
  it("entropy mask (float32 entropies, as a model gives them): only removes tokens, keeps the highest, q = 1 keeps all", () => {
    check(fc.tuple(batch, fc.double({ min: 0.05, max: 1, noNaN: true })), ([x, quantile]) => {
      const entropy = m(
        x.a.map((v) => Math.fround(-v)),
        x,
      );
      const kept = entropyMask({ entropy, mask: m(x.mask, x) }, { quantile }).importanceWeights.data;
      const keptValues: number[] = [];
      const dropped: number[] = [];
      kept.forEach((k, i) => {
        expect(k <= x.mask[i]!).toBe(true);
        if (x.mask[i] === 1) (k === 1 ? keptValues : dropped).push(entropy.data[i]!);
      });
      expect(keptValues.length).toBeGreaterThan(0);
      if (dropped.length > 0) expect(Math.min(...keptValues)).toBeGreaterThanOrEqual(Math.max(...dropped));
      const all = entropyMask({ entropy, mask: m(x.mask, x) }, { quantile: 1 }).importanceWeights.data;
      expect(Array.from(all)).toEqual(x.mask);
    });
  });

  it("entropy mask, by hand: threshold = torch.quantile(float32 entropies, 1 − q), ties kept", () => {
    // 5 valid entropies sorted [0.1, 0.2, 0.4, 0.8, 1.6]; q = 0.4 → 0.6-quantile: rank 2.4 → 0.4 + 0.4·(0.8 − 0.4) = 0.56.
    const result = entropyMask(
      {
        entropy: [
          [0.4, 1.6, 0.1],
          [0.8, 0.2, 9],
        ],
        mask: [
          [1, 1, 1],
          [1, 1, 0],
        ],
      },
      { quantile: 0.4 },
    );
    expect(Math.abs(result.threshold - 0.56)).toBeLessThan(1e-6);
    expect(Math.fround(result.threshold)).toBe(result.threshold);
    expect(Array.from(result.importanceWeights.data)).toEqual([0, 1, 0, 1, 0, 0]);
    // A threshold equal to an entropy keeps it: q = 0.5 of [1, 2, 3] is 2 exactly.
    expect(Array.from(entropyMask({ entropy: [[3, 1, 2]] }, { quantile: 0.5 }).importanceWeights.data)).toEqual([
      1, 0, 1,
    ]);
  });

  it("TRL's surprise, reproduced: with float64 entropies the float32 threshold can exceed them all, and nothing is kept", () => {
    // fround(0.1) = 0.10000000149011612 > 0.1: q = 1 (threshold = the minimum) drops the token it should keep.
    const result = entropyMask({ entropy: [[0.1, 0.1]] }, { quantile: 1 });
    expect(result.threshold).toBe(Math.fround(0.1));
    expect(Array.from(result.importanceWeights.data)).toEqual([0, 0]);
  });

  it("entropy mask: float64 entropies rounded with Math.fround (a model's float32) keep ties and keep all at q = 1", () => {
    const h = tokenEntropy([
      [
        [0, 1, 2],
        [0, 0.3, -1],
        [1, 1, 0.2],
        [0.1, 0.2, 3],
      ],
    ]);
    const entropy = { data: h.entropy, shape: h.shape };
    // As given (float64), TRL's float64 comparison drops the token whose float32 value is the threshold.
    expect(Array.from(entropyMask({ entropy }, { quantile: 1 }).importanceWeights.data)).toEqual([1, 1, 1, 0]);
    const float32 = { data: Float32Array.from(h.entropy), shape: h.shape };
    expect(Array.from(entropyMask({ entropy: float32 }, { quantile: 1 }).importanceWeights.data)).toEqual([1, 1, 1, 1]);
    expect(
      Array.from(
        entropyMask({ entropy: [[0.1, 0.1, 0.1].map(Math.fround)] }, { quantile: 0.5 }).importanceWeights.data,
      ),
    ).toEqual([1, 1, 1]);
  });

  it("off-policy mask: rows with A ≥ 0 or mean(old − logp) ≤ δ are kept; by hand", () => {
    check(fc.tuple(batch, fc.double({ min: -1, max: 1, noNaN: true })), ([x, threshold]) => {
      const result = offPolicyMask(
        { logp: m(x.a, x), oldLogp: m(x.b, x), advantages: x.advantages, mask: m(x.mask, x) },
        { threshold },
      );
      for (let r = 0; r < x.rows; r++) {
        const keep = x.advantages[r]! >= 0 || result.sequenceKl[r]! <= threshold ? 1 : 0;
        for (let c = 0; c < x.cols; c++) expect(result.importanceWeights.data[r * x.cols + c]).toBe(keep);
      }
    });
    // Row 0: A < 0, kl = ((−1 − −2) + (−1 − −1.5))/2 = 0.75 > 0.5 → dropped. Row 1: A < 0, kl = 0.25 → kept.
    // Row 2: A = 0 → kept whatever its kl. Row 3: empty, kl = 0 ≤ 0.5 → kept.
    const result = offPolicyMask(
      {
        logp: [
          [-2, -1.5],
          [-1.25, -9],
          [-5, -5],
          [0, 0],
        ],
        oldLogp: [
          [-1, -1],
          [-1, 0],
          [-1, -1],
          [0, 0],
        ],
        advantages: [-1, -0.5, 0, -3],
        mask: [
          [1, 1],
          [1, 0],
          [1, 1],
          [0, 0],
        ],
      },
      { threshold: 0.5 },
    );
    expect(Array.from(result.sequenceKl)).toEqual([0.75, 0.25, 4, 0]);
    expect(Array.from(result.importanceWeights.data)).toEqual([0, 0, 1, 1, 1, 1, 1, 1]);
    // On-policy (no oldLogp): every kl is 0, every row kept.
    expect(
      Array.from(offPolicyMask({ logp: [[-1]], advantages: [-1] }, { threshold: 0 }).importanceWeights.data),
    ).toEqual([1]);
  });
});

describe("the doc comments' examples", () => {
  it("hold", () => {
    expect(
      Array.from(rolloutImportanceWeights({ logRatio: [[Math.log(3), 0]] }, { level: "token" }).weights.data),
    ).toEqual([2, 1]);
    expect(
      Array.from(rolloutRejectionMask({ logRatio: [[0, 3]] }, [{ statistic: "token_k3", upper: 0.1 }]).mask.data),
    ).toEqual([1, 0]);
    expect(
      Array.from(
        vllmImportanceSampling(
          { oldLogp: [[0, Math.log(4)]], samplingLogp: [[0, 0]] },
          { mode: "token_truncate", clipMax: 3 },
        ).ratio,
      ),
    ).toEqual([1, 3]);
    expect(
      Array.from(entropyMask({ entropy: [[0.1, 0.9, 0.5, 0.3]] }, { quantile: 0.5 }).importanceWeights.data),
    ).toEqual([0, 1, 1, 0]);
    expect(
      Array.from(
        offPolicyMask({ logp: [[-2], [-2]], oldLogp: [[-1], [-1]], advantages: [1, -1] }, { threshold: 0.5 })
          .importanceWeights.data,
      ),
    ).toEqual([1, 0]);
    expect(Array.from(multiplyWeights([[1, 0.5]], [[2, 2]]).data)).toEqual([2, 1]);
  });
});

describe("the README section's example (/tmp/issue16/correction.md)", () => {
  it("runs and gives the values it shows", () => {
    const mask = [
      [1, 1, 1],
      [1, 1, 0],
    ];
    const rolloutLogp = [
      [-1.2, -0.7, -2.0],
      [-0.3, -1.1, 0],
    ];
    const oldLogp = [
      [-1.19, -0.71, -2.0],
      [-0.3, -1.6, 0],
    ];
    const logp = [
      [-1.1, -0.7, -1.9],
      [-0.2, -1.5, 0],
    ];
    const advantages = [1, -1];
    const correction = rolloutCorrection(
      { oldLogp, rolloutLogp, mask },
      rolloutCorrectionPresets.decoupledK3RsTokenTis,
    );
    expect(Array.from(correction.mask.data)).toEqual([1, 1, 1, 0, 0, 0]);
    expect(correction.metrics["rollout_corr/rollout_rs_masked_fraction"]).toBe(0.4);
    const verl = policyLoss(
      { logp, oldLogp, advantages, mask: correction.mask, importanceWeights: correction.importanceWeights },
      lossPresets.verl,
    );
    expect(verl.loss).toBeCloseTo(-1.0701139, 6);
    const ratio = vllmImportanceSampling(
      { oldLogp, samplingLogp: rolloutLogp, mask },
      { mode: "token_truncate", clipMax: 3 },
    );
    const trl = policyLoss(
      { logp, oldLogp, advantages, mask, importanceWeights: ratio.importanceWeights },
      lossPresets.trl,
    );
    expect(trl.loss).toBeCloseTo(-0.2869702, 6);
  });
});
