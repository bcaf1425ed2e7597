/**
 * The bad-input contract for the training/inference correction functions (src/correction/): strict options and
 * inputs with the closest key suggested, non-finite values refused at their [row][column] where the mask selects
 * and never read where it does not, overflow refused instead of returned as Infinity, shapes and empty masks.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  bypassModePolicyLoss,
  entropyMask,
  multiplyWeights,
  offPolicyMask,
  rolloutCorrection,
  rolloutCorrectionMetrics,
  rolloutCorrectionPresets,
  rolloutImportanceWeights,
  rolloutRejectionMask,
  vllmImportanceSampling,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, misspellings, returned } from "./shared.js";

const two = { oldLogp: [[-1, -2, -3]], rolloutLogp: [[-1.1, -2, -2.9]], mask: [[1, 1, 0]] };
const vllm = { oldLogp: [[-1, -2, -3]], samplingLogp: [[-1.1, -2, -2.9]], mask: [[1, 1, 0]] };

/** Every call of the module with a strict object: its label, path and how it is called with a replacement. */
const STRICT: readonly {
  label: string;
  path: string;
  value: Record<string, unknown>;
  call: (object: Record<string, unknown>) => unknown;
}[] = [
  {
    label: "rolloutCorrection options",
    path: "options",
    value: { weights: null, rejection: [], lossType: "ppo_clip" },
    call: (o) => rolloutCorrection(two, o),
  },
  {
    label: "rollout weights options",
    path: "options",
    value: { level: "token", upper: 2, batchNormalize: false },
    call: (o) => rolloutImportanceWeights({ logRatio: [[0.1]] }, o as never),
  },
  {
    label: "rejection criterion",
    path: "criteria[0]",
    value: { statistic: "token_k2", upper: 1 },
    call: (o) => rolloutRejectionMask({ logRatio: [[0.1]] }, [o as never]),
  },
  {
    label: "vLLM IS options",
    path: "options",
    value: { mode: "token_truncate", clipMin: null, clipMax: 3 },
    call: (o) => vllmImportanceSampling(vllm, o),
  },
  {
    label: "entropy mask options",
    path: "options",
    value: { quantile: 0.5 },
    call: (o) => entropyMask({ entropy: [[1, 2]] }, o as never),
  },
  {
    label: "off-policy mask options",
    path: "options",
    value: { threshold: 0.5 },
    call: (o) => offPolicyMask({ logp: [[-1]], advantages: [1] }, o as never),
  },
  {
    label: "bypassModePolicyLoss options",
    path: "options",
    value: { correction: rolloutCorrectionPresets.bypassPgIs, loss: { aggregation: "token-mean" } },
    call: (o) => bypassModePolicyLoss({ logp: [[-1, -2]], rolloutLogp: [[-1.1, -2]], advantages: [1] }, o),
  },
  {
    label: "bypassModePolicyLoss inputs",
    path: "inputs",
    value: { logp: [[-1, -2]], rolloutLogp: [[-1.1, -2]], mask: [[1, 1]] },
    call: (o) => bypassModePolicyLoss({ ...o, advantages: [1] } as never),
  },
  {
    label: "rolloutCorrection inputs",
    path: "inputs",
    value: { ...two },
    call: (o) => rolloutCorrection(o as never),
  },
  {
    label: "vllmImportanceSampling inputs",
    path: "inputs",
    value: { ...vllm },
    call: (o) => vllmImportanceSampling(o as never),
  },
];

describe("class 1: strict options and inputs, the closest key suggested", () => {
  it.each(STRICT.map((s) => [s.label, s] as const))("%s: every misspelt key is refused at its path", (_label, s) => {
    expect(attempt(() => s.call(s.value)).ok).toBe(true);
    for (const key of Object.keys(s.value)) {
      for (const wrong of misspellings(key)) {
        if (wrong in s.value) continue;
        const { [key]: kept, ...rest } = s.value;
        const outcome = attempt(() => s.call({ ...rest, [wrong]: kept }));
        expectRefusedAt(outcome, `${s.path}.${wrong}`);
      }
    }
  });

  it("verl's option rules: k2/k3 take no lower bound, seq_max_k1 does not exist, a statistic once, IcePop lower ≤ upper", () => {
    expectRefusedAt(
      attempt(() => rolloutRejectionMask({ logRatio: [[0]] }, [{ statistic: "token_k2", lower: 0.5, upper: 2 }])),
      "criteria[0].lower",
      /single upper bound/,
    );
    expectRefusedAt(
      attempt(() => rolloutRejectionMask({ logRatio: [[0]] }, [{ statistic: "seq_max_k1" as never, upper: 2 }])),
      "criteria[0].statistic",
    );
    expectRefusedAt(
      attempt(() =>
        rolloutRejectionMask({ logRatio: [[0]] }, [
          { statistic: "token_k3", upper: 2 },
          { statistic: "token_k3", upper: 1 },
        ]),
      ),
      "criteria[1].statistic",
      /listed twice/,
    );
    expectRefusedAt(
      attempt(() => rolloutImportanceWeights({ logRatio: [[0]] }, { level: "token", lower: 3, upper: 2 })),
      "options.lower",
    );
    for (const bad of [0, -1, Number.NaN, Infinity]) {
      expectRefusedAt(
        attempt(() => rolloutImportanceWeights({ logRatio: [[0]] }, { level: "token", upper: bad })),
        "options.upper",
      );
    }
    expectRefusedAt(
      attempt(() => bypassModePolicyLoss({ ...two, logp: two.oldLogp, advantages: [1] } as never, {})),
      "inputs.oldLogp",
    );
    expectRefusedAt(
      attempt(() =>
        bypassModePolicyLoss(
          { logp: two.oldLogp, rolloutLogp: two.rolloutLogp, advantages: [1] },
          { loss: { objective: "cispo" } },
        ),
      ),
      "options.loss.objective",
    );
    // reinforce takes no clamp: a caller's logRatioClamp was silently replaced by null.
    expectRefusedAt(
      attempt(() =>
        bypassModePolicyLoss(
          { logp: two.oldLogp, rolloutLogp: two.rolloutLogp, advantages: [1] },
          { correction: { lossType: "reinforce" }, loss: { logRatioClamp: [-3, 3] } },
        ),
      ),
      "options.loss.logRatioClamp",
    );
    const bypassInputs = { logp: two.oldLogp, rolloutLogp: two.rolloutLogp, advantages: [1] };
    expectRefusedAt(
      attempt(() => bypassModePolicyLoss(bypassInputs, { loss: { clipHihg: 0.3 } as never })),
      "options.loss.clipHihg",
      /clipHigh/,
    );
    expectRefusedAt(
      attempt(() => bypassModePolicyLoss(bypassInputs, { loss: "verl" as never })),
      "options.loss",
    );
  });

  it("TRL's GRPOConfig rules: clipMin < clipMax, *_truncate needs a bound, quantile in (0, 1]", () => {
    expectRefusedAt(
      attempt(() => vllmImportanceSampling(vllm, { clipMin: 3, clipMax: 2 })),
      "options.clipMin",
    );
    expectRefusedAt(
      attempt(() => vllmImportanceSampling(vllm, { mode: "sequence_truncate", clipMin: null, clipMax: null })),
      "options.clipMax",
    );
    expectRefusedAt(
      attempt(() => vllmImportanceSampling(vllm, { mode: "token" as never })),
      "options.mode",
    );
    for (const quantile of [0, -0.1, 1.5, Number.NaN]) {
      expectRefusedAt(
        attempt(() => entropyMask({ entropy: [[1]] }, { quantile })),
        "options.quantile",
      );
    }
  });
});

describe("class 2: non-finite values refused where the mask selects, never read where it does not", () => {
  const bad = fc.constantFrom(Number.NaN, Infinity, -Infinity);
  it("rolloutCorrection, rolloutCorrectionMetrics, vllmImportanceSampling: the path names field, row and column", () => {
    hostile(fc.tuple(bad, fc.nat(2), fc.boolean()), ([value, col, inRollout]) => {
      const oldLogp = [[-1, -2, -3]];
      const rolloutLogp = [[-1.1, -2, -2.9]];
      (inRollout ? rolloutLogp : oldLogp)[0]![col] = value;
      const mask = [[1, 1, 0]];
      const field = inRollout ? "rolloutLogp" : "oldLogp";
      const call = () =>
        rolloutCorrection({ oldLogp, rolloutLogp, mask }, rolloutCorrectionPresets.decoupledGeoRsTokenTis);
      const outcome = attempt(call);
      if (col === 2) {
        // Masked: never read, the result is finite.
        expectAllFinite(returned(outcome));
        return;
      }
      expectRefusedAt(outcome, `inputs.${field}[0][${col}]`, /at a position the mask selects/);
      const trl = attempt(() =>
        vllmImportanceSampling({ oldLogp, samplingLogp: rolloutLogp, mask }, { mode: "token_mask" }),
      );
      expectRefusedAt(trl, `inputs.${inRollout ? "samplingLogp" : "oldLogp"}[0][${col}]`);
      const metrics = attempt(() => rolloutCorrectionMetrics({ logp: oldLogp, rolloutLogp, mask }));
      expectRefusedAt(metrics, `inputs.${inRollout ? "rolloutLogp" : "logp"}[0][${col}]`);
    });
  });

  it("entropyMask and offPolicyMask", () => {
    expectRefusedAt(
      attempt(() => entropyMask({ entropy: [[1, Number.NaN]] }, { quantile: 0.5 })),
      "inputs.entropy[0][1]",
    );
    expectAllFinite(
      returned(attempt(() => entropyMask({ entropy: [[1, Number.NaN]], mask: [[1, 0]] }, { quantile: 0.5 })))
        .importanceWeights,
    );
    expectRefusedAt(
      attempt(() => offPolicyMask({ logp: [[-1]], advantages: [Number.NaN] }, { threshold: 0.1 })),
      "inputs.advantages[0]",
    );
    expectRefusedAt(
      attempt(() => offPolicyMask({ logp: [[-1, Infinity]], advantages: [1] }, { threshold: 0.1 })),
      "inputs.logp[0][1]",
    );
    expectRefusedAt(
      attempt(() => multiplyWeights([[1, -1]])),
      "weights[0][0][1]",
    );
    expectRefusedAt(
      attempt(() => multiplyWeights([[1, 1]], [[1, Number.NaN]])),
      "weights[1][0][1]",
    );
    // Finite weights whose product overflows float64: refused at the factor that overflows, never Infinity.
    expectRefusedAt(
      attempt(() => multiplyWeights([[1, 1e200]], [[1, 1e200]])),
      "weights[1][0][1]",
    );
    expectRefusedAt(
      attempt(() => multiplyWeights([[1e200]], [[1e100]], [[1e10]])),
      "weights[2][0][0]",
    );
    expect(Array.from(multiplyWeights([[1e200]], [[1e100]], [[1e-10]]).data)).toEqual([1e200 * 1e100 * 1e-10]);
  });
});

describe("class 3: overflow is clamped as the peer clamps, or refused, never returned as Infinity", () => {
  it("verl's weights and rejection clamp the log-ratio to ±20: any finite log-ratio gives finite weights and metrics", () => {
    hostile(
      fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 2, maxLength: 8 }),
      (row) => {
        for (const level of ["token", "sequence"] as const) {
          const outcome = attempt(() => rolloutImportanceWeights({ logRatio: [row, row] }, { level }));
          // verl's sequence-level rollout_is_min is exp(min row sum), unclamped: refused when that overflows.
          const rowSum = row.reduce((a, b) => a + b, 0);
          if (level === "sequence" && Math.exp(rowSum) === Infinity) {
            expectRefusedAt(outcome, 'metrics["rollout_is_min"]', /overflows/);
          } else {
            expectAllFinite(returned(outcome));
          }
        }
        const rejection = attempt(() =>
          rolloutRejectionMask({ logRatio: [row] }, [
            { statistic: "token_k1", upper: 2 },
            { statistic: "seq_sum_k3", upper: 1 },
            { statistic: "seq_max_k2", upper: 1 },
          ]),
        );
        expectAllFinite(returned(rejection));
      },
      100,
    );
  });

  it("verl's unclamped k3_kl overflowing is refused, naming the metric", () => {
    const outcome = attempt(() => rolloutCorrectionMetrics({ logp: [[0, 800]], rolloutLogp: [[0, 0]] }));
    expectRefusedAt(outcome, 'metrics["k3_kl"]', /overflows/);
  });

  it("TRL's unclamped ratio: bounded by clipMax, refused without it", () => {
    const huge = { oldLogp: [[800, 0]], samplingLogp: [[0, 0]] };
    expect(Array.from(vllmImportanceSampling(huge, { mode: "token_truncate", clipMax: 3 }).ratio)).toEqual([3, 1]);
    expect(Array.from(vllmImportanceSampling(huge, { mode: "token_mask", clipMax: 3 }).ratio)).toEqual([0, 1]);
    for (const mode of ["token_mask", "sequence_mask", "token_truncate"] as const) {
      expectRefusedAt(
        attempt(() => vllmImportanceSampling(huge, { mode, clipMin: 0.5, clipMax: null })),
        mode.startsWith("sequence") ? "inputs.oldLogp[0]" : "inputs.oldLogp[0][0]",
        /overflows float64/,
      );
    }
  });
});

describe("class 4: shapes, and masks without a valid token", () => {
  it("shapes must agree", () => {
    expectRefusedAt(
      attempt(() => rolloutCorrection({ ...two, rolloutLogp: [[1, 2]] })),
      "inputs.rolloutLogp",
    );
    expectRefusedAt(
      attempt(() => vllmImportanceSampling({ ...vllm, toolMask: [[1]] })),
      "inputs.toolMask",
    );
    expectRefusedAt(
      attempt(() => vllmImportanceSampling({ ...vllm, toolMask: [[1, 0.5, 1]] })),
      "inputs.toolMask[0][1]",
    );
    expectRefusedAt(
      attempt(() => offPolicyMask({ logp: [[-1]], advantages: [1, 2] }, { threshold: 0 })),
      "inputs.advantages",
    );
    expectRefusedAt(
      attempt(() => rolloutCorrection({ ...two, mask: [[1, 2, 0]] })),
      "inputs.mask[0][1]",
    );
  });

  it("verl raises ValueError without a valid token: refused at inputs.mask", () => {
    const empty = { ...two, mask: [[0, 0, 0]] };
    expectRefusedAt(
      attempt(() => rolloutCorrection(empty)),
      "inputs.mask",
      /no token/,
    );
    expectRefusedAt(
      attempt(() => rolloutImportanceWeights({ logRatio: [[1]], mask: [[0]] }, { level: "token" })),
      "inputs.mask",
    );
    expectRefusedAt(
      attempt(() => rolloutRejectionMask({ logRatio: [[1]], mask: [[0]] }, [{ statistic: "token_k3", upper: 1 }])),
      "inputs.mask",
    );
    expectRefusedAt(
      attempt(() => rolloutCorrectionMetrics({ logp: [[1]], rolloutLogp: [[1]], mask: [[0]] })),
      "inputs.mask",
    );
  });

  it("TRL's functions accept an empty mask as TRL does: ratio 1, metrics 0, nothing kept by the entropy mask", () => {
    const result = vllmImportanceSampling({ ...vllm, mask: [[0, 0, 0]] }, { mode: "token_truncate", clipMax: 3 });
    expect(Array.from(result.ratio)).toEqual([1, 1, 1]);
    expect(Object.values(result.metrics)).toEqual([0, 0, 0, 0, 0]);
    const entropy = entropyMask({ entropy: [[1, 2]], mask: [[0, 0]] }, { quantile: 0.5 });
    expect(Array.from(entropy.importanceWeights.data)).toEqual([0, 0]);
    expect(entropy.threshold).toBeNaN();
  });
});
