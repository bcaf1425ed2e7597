/**
 * Bad input to policyLoss, tokenLogProbs and tokenLogProbsBackward: each case either throws a ValidationError
 * (a GrpoRocError) whose issue path, and message, name the field and the index, or follows the documented
 * behaviour (docs/api.md: masked positions are never read; an empty mask gives loss 0 and a zero gradient).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  lossPresets,
  policyLoss,
  tokenLogProbs,
  tokenLogProbsBackward,
  ValidationError,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
} from "../src/index.js";
import { expectValidationError } from "./helpers/errors.js";

/** A valid 2×3 batch with every optional input. */
type Fields = "logp" | "oldLogp" | "mask" | "refLogp" | "importanceWeights" | "entropy";
const base = (): Record<Fields, number[][]> & { advantages: number[] } => ({
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

/** Options that read every input. */
const everything: PolicyLossOptionsInput = {
  kl: { kind: "k3", coef: 0.1 },
  entropyCoef: 0.01,
  dualClip: 3,
  logRatioClamp: [-20, 20],
};

const MATRIX_FIELDS = ["logp", "oldLogp", "mask", "refLogp", "importanceWeights", "entropy"] as const;
const VALUE_FIELDS = ["logp", "oldLogp", "refLogp", "importanceWeights", "entropy"] as const;

function expectSameResult(actual: PolicyLossResult, expected: PolicyLossResult): void {
  expect(actual.loss).toBe(expected.loss);
  expect(Array.from(actual.grad)).toEqual(Array.from(expected.grad));
  expect(Array.from(actual.perTokenLoss)).toEqual(Array.from(expected.perTokenLoss));
  expect(Array.from(actual.gradEntropy ?? [])).toEqual(Array.from(expected.gradEntropy ?? []));
  expect(Array.from(actual.perTokenKl ?? [])).toEqual(Array.from(expected.perTokenKl ?? []));
  expect(actual.metrics).toEqual(expected.metrics);
}

describe("policyLoss: shapes", () => {
  it.each(MATRIX_FIELDS.filter((f) => f !== "logp"))(
    "%s with a different shape from logp is rejected at inputs.%s",
    (field) => {
      const wide = { ...base(), [field]: base()[field].map((row) => [...row, 0]) };
      expectValidationError(
        () => policyLoss(wide, everything),
        `inputs.${field}`,
        /shape \[2, 4\] but logp has \[2, 3\]/,
      );
      const short = { ...base(), [field]: base()[field].slice(0, 1) };
      expectValidationError(() => policyLoss(short, everything), `inputs.${field}`, /shape \[1, 3\]/);
    },
  );

  it("flat inputs: a shape that disagrees with logp, or data that disagrees with its own shape", () => {
    const b = base();
    const flatOld = { data: Float64Array.from(b.oldLogp.flat()), shape: [3, 2] as [number, number] };
    expectValidationError(() => policyLoss({ ...b, oldLogp: flatOld }), "inputs.oldLogp", /shape \[3, 2\]/);
    expectValidationError(
      () => policyLoss({ ...b, logp: { data: new Float64Array(5), shape: [2, 3] } }),
      "inputs.logp.data",
      /5 entries/,
    );
  });

  it("a ragged row is rejected at inputs.<field>[row]", () => {
    const b = base();
    expectValidationError(
      () => policyLoss({ ...b, refLogp: [b.refLogp[0]!, [-1, -1]] }, everything),
      "inputs.refLogp[1]",
      /ragged/,
    );
    expectValidationError(() => policyLoss({ ...b, logp: [b.logp[0]!, [-1, -1, -1, -1]] }), "inputs.logp[1]", /ragged/);
  });

  it("per-rollout advantages: one per row, not B·T, not B − 1", () => {
    expectValidationError(() => policyLoss({ ...base(), advantages: [1] }), "inputs.advantages", /1 entries.*2 rows/);
    expectValidationError(() => policyLoss({ ...base(), advantages: [1, 2, 3] }), "inputs.advantages", /3 entries/);
    expectValidationError(
      () => policyLoss({ ...base(), advantages: new Float64Array(6) }),
      "inputs.advantages",
      /6 entries/,
    );
  });

  it("per-token advantages must have logp's shape", () => {
    expectValidationError(
      () => policyLoss({ ...base(), advantages: [[1, 2, 3]] }),
      "inputs.advantages",
      /shape \[1, 3\]/,
    );
    expectValidationError(
      () => policyLoss({ ...base(), advantages: { data: new Float64Array(4), shape: [2, 2] } }),
      "inputs.advantages",
      /shape \[2, 2\]/,
    );
  });

  it("a mask entry other than 0/1 is rejected at inputs.mask[b][t]", () => {
    const b = base();
    b.mask[1]![2] = 0.5;
    expectValidationError(() => policyLoss(b), "inputs.mask[1][2]", /0 or 1/);
    b.mask[1]![2] = NaN;
    expectValidationError(() => policyLoss(b), "inputs.mask[1][2]");
  });
});

describe("policyLoss: non-finite values", () => {
  it.each(VALUE_FIELDS)("NaN / ±Infinity in %s where the mask is 1 is rejected at inputs.%s[b][t]", (field) => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const b = base();
      b[field]![1]![2] = bad;
      expectValidationError(() => policyLoss(b, everything), `inputs.${field}[1][2]`, new RegExp(String(bad)));
      // Also as flat typed data with a shape.
      const flat = { ...b, [field]: { data: Float64Array.from(b[field]!.flat()), shape: [2, 3] as [number, number] } };
      expectValidationError(() => policyLoss(flat, everything), `inputs.${field}[1][2]`);
    }
  });

  it("…also when the non-finite value is at the last selected position of the first row, and on-policy", () => {
    const b = base();
    b.logp[0]![1] = Infinity;
    const { oldLogp: _omitted, ...onPolicy } = b;
    expectValidationError(() => policyLoss(onPolicy), "inputs.logp[0][1]");
    expectValidationError(
      () => policyLoss({ ...onPolicy, logp: { data: Float32Array.from(b.logp.flat()), shape: [2, 3] } }),
      "inputs.logp[0][1]",
    );
  });

  it("sequence level: a NaN logp in a row is rejected at its position, not turned into a NaN ratio", () => {
    const b = base();
    b.logp[1]![1] = NaN;
    expectValidationError(() => policyLoss(b, { ratioLevel: "sequence" }), "inputs.logp[1][1]");
  });

  it("per-token advantages: NaN / Infinity at a selected position is rejected at inputs.advantages[b][t]", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      const b = base();
      const advantages = [
        [1, 1, 1],
        [-0.5, bad, -0.5],
      ];
      expectValidationError(() => policyLoss({ ...b, advantages }), "inputs.advantages[1][1]");
    }
  });

  it("per-rollout advantages: NaN / Infinity of a row with valid tokens is rejected at inputs.advantages[b]", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      expectValidationError(() => policyLoss({ ...base(), advantages: [1, bad] }), "inputs.advantages[1]", /finite/);
    }
  });

  it("a non-number entry is rejected at its position", () => {
    const b = base() as unknown as { logp: unknown[][] };
    b.logp[1]![0] = "0.5";
    expectValidationError(() => policyLoss(b as unknown as PolicyLossInputs), "inputs.logp[1][0]", /expected a number/);
    b.logp[1]![0] = null;
    expectValidationError(() => policyLoss(b as unknown as PolicyLossInputs), "inputs.logp[1][0]", /null/);
  });

  it("NaN / ±Infinity where the mask is 0 never leaks: same loss, grads, per-token values and metrics as zeros there", () => {
    fc.assert(
      fc.property(
        fc.constantFrom(NaN, Infinity, -Infinity),
        fc.subarray([...VALUE_FIELDS, "advantages" as const], { minLength: 1 }),
        fc.constantFrom<PolicyLossOptionsInput>(
          everything,
          { ...everything, ratioLevel: "sequence" },
          { ...everything, kl: { kind: "k3", coef: 0.1, importanceCorrected: true }, ratioLevel: "sequence" },
          { ...everything, objective: "cispo" },
          { ...everything, objective: "sapo", aggregation: "grpo" },
          { ...everything, objective: "reinforce", aggregation: "seq-mean-token-mean" },
        ),
        fc.boolean(),
        (bad, fields, options, emptyRow) => {
          const clean = base();
          const perToken = {
            ...clean,
            advantages: [
              [1, 1, 1],
              [-0.5, 0.25, -0.5],
            ],
          };
          if (emptyRow) perToken.mask[0] = [0, 0, 0];
          const dirty = structuredClone(perToken);
          const zeros = structuredClone(perToken);
          for (const field of fields) {
            for (let b = 0; b < 2; b++)
              for (let t = 0; t < 3; t++)
                if (perToken.mask[b]![t] === 0) {
                  dirty[field]![b]![t] = bad;
                  zeros[field]![b]![t] = 0;
                }
          }
          expectSameResult(policyLoss(dirty, options), policyLoss(zeros, options));
          // Per-rollout advantages: a non-finite advantage of an empty row is never read either.
          if (emptyRow) {
            const rowDirty = { ...dirty, advantages: [bad, -0.5] };
            const rowZero = { ...zeros, advantages: [0, -0.5] };
            expectSameResult(policyLoss(rowDirty, options), policyLoss(rowZero, options));
          }
        },
      ),
      { numRuns: 60 },
    );
  });
});

describe("policyLoss: the ratio metrics may be +Infinity (README's one documented exception)", () => {
  it("an overflowing ratio under a loss that stays finite: ratioMean/ratioMax +Infinity, everything else finite", () => {
    const inputs = { logp: [[-0.01, -2]], oldLogp: [[-900, -2]], advantages: [1] };
    for (const options of [
      { ...lossPresets.verlDro, droBeta: 0.3 },
      lossPresets.verlGmpo,
      lossPresets.verlClipCov,
      lossPresets.trlLuspo,
      lossPresets.trlVespo,
      lossPresets.paper,
      lossPresets.trl,
    ]) {
      const result = policyLoss(inputs, options);
      expect(Number.isFinite(result.loss)).toBe(true);
      expect(Array.from(result.grad).every(Number.isFinite)).toBe(true);
      expect(Array.from(result.perTokenLoss).every(Number.isFinite)).toBe(true);
      expect(result.metrics.ratioMean).toBe(Infinity);
      expect(result.metrics.ratioMax).toBe(Infinity);
      for (const [name, value] of Object.entries(result.metrics)) {
        if (name !== "ratioMean" && name !== "ratioMax" && typeof value === "number") {
          expect(Number.isFinite(value), name).toBe(true);
        }
      }
    }
    const clamped = policyLoss(inputs, { ...lossPresets.paper, logRatioClamp: [-20, 20] });
    expect(clamped.metrics.ratioMax).toBe(Math.exp(20));
  });
});

describe("policyLoss: a mask that selects nothing (documented: loss 0, gradient 0, every metric 0)", () => {
  it.each([
    "token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-mean",
    "seq-mean-token-sum-norm",
    "grpo",
    "bnpo",
    "dr_grpo",
    "dapo",
  ] as const)("%s: loss 0, grad / gradEntropy / perTokenLoss all 0, metrics.tokens 0, no NaN", (aggregation) => {
    const b = {
      ...base(),
      mask: [
        [0, 0, 0],
        [0, 0, 0],
      ],
    };
    for (const ratioLevel of ["token", "sequence"] as const) {
      const r = policyLoss(b, { ...everything, aggregation, ratioLevel });
      expect(r.loss).toBe(0);
      expect(Array.from(r.grad)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Array.from(r.gradEntropy!)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(Array.from(r.perTokenLoss)).toEqual([0, 0, 0, 0, 0, 0]);
      expect(r.metrics.tokens).toBe(0);
      expect(r.metrics.sequences).toBe(0);
      // meanAbsLogRatio is reported by kl-cov alone (undefined here).
      for (const [name, value] of Object.entries(r.metrics))
        if (value !== undefined) expect(value, `metrics.${name}`).toBe(0);
    }
  });

  it("an empty batch (B = 0) gives loss 0", () => {
    const r = policyLoss({ logp: [], advantages: [] });
    expect(r.loss).toBe(0);
    expect(r.grad).toHaveLength(0);
    expect(r.shape).toEqual([0, 0]);
  });
});

describe("policyLoss: options and the inputs they need", () => {
  it("kl without refLogp is rejected at inputs.refLogp", () => {
    const { refLogp: _omitted, ...b } = base();
    expectValidationError(() => policyLoss(b, { kl: { kind: "k1", coef: 0.1 } }), "inputs.refLogp", /options\.kl/);
    // coef 0 still asks for it: the KL is computed and reported as a metric.
    expectValidationError(() => policyLoss(b, { kl: { kind: "low_var_kl", coef: 0 } }), "inputs.refLogp");
    expect(() => policyLoss(b, { kl: null })).not.toThrow();
  });

  it("entropyCoef > 0 without entropy is rejected at inputs.entropy; entropyCoef 0 does not need it", () => {
    const { entropy: _omitted, ...b } = base();
    expectValidationError(() => policyLoss(b, { entropyCoef: 0.001 }), "inputs.entropy", /entropyCoef/);
    expect(() => policyLoss(b, { entropyCoef: 0 })).not.toThrow();
  });

  it("an unknown objective is rejected at options.objective, listing the registered ones", () => {
    expectValidationError(
      () => policyLoss(base(), { objective: "ppo2" }),
      "options.objective",
      /unknown objective "ppo2".*clip.*cispo.*sapo.*reinforce/,
    );
  });

  it.each(["cispo", "sapo", "reinforce"])(
    "sequence-level ratio with %s is rejected at options.ratioLevel",
    (objective) => {
      expectValidationError(
        () => policyLoss(base(), { objective, ratioLevel: "sequence" }),
        "options.ratioLevel",
        new RegExp(`"clip".*"${objective}"`),
      );
    },
  );

  it("clipLow > 1 is rejected at options.clipLow (1 is allowed: no lower bound)", () => {
    expectValidationError(() => policyLoss(base(), { clipLow: 1.01 }), "options.clipLow", /at most 1/);
    expect(() => policyLoss(base(), { clipLow: 1 })).not.toThrow();
    expectValidationError(() => policyLoss(base(), { clipLow: -0.1 }), "options.clipLow");
    expectValidationError(() => policyLoss(base(), { clipHigh: -0.1 }), "options.clipHigh");
  });

  it("clipLow > 1 is refused only where 1 − clipLow is a ratio: DPPO (π − π_old, binary KL) and GMPO (log-ratio) take it", () => {
    const b = { logp: [[-1, -2]], oldLogp: [[-1.1, -1.9]], advantages: [1] };
    for (const options of [lossPresets.verlDppoTv, lossPresets.verlDppoKl, lossPresets.verlGmpo]) {
      expect(Number.isFinite(policyLoss(b, { ...options, clipLow: 1.5 }).loss)).toBe(true);
    }
    for (const options of [lossPresets.paper, lossPresets.verlClipCov, lossPresets.trlLuspo, { objective: "cispo" }]) {
      expectValidationError(() => policyLoss(b, { ...options, clipLow: 1.5 }), "options.clipLow", /at most 1/);
    }
  });

  it("dualClip ≤ 1 is rejected at options.dualClip", () => {
    for (const dualClip of [1, 0.5, 0, -3])
      expectValidationError(() => policyLoss(base(), { dualClip }), "options.dualClip");
    expect(() => policyLoss(base(), { dualClip: 1.0001 })).not.toThrow();
  });

  it("delta ≤ 1, an inverted or NaN log-ratio clamp, an unknown aggregation or KL kind are rejected at their paths", () => {
    expectValidationError(() => policyLoss(base(), { delta: 1 }), "options.delta");
    expectValidationError(() => policyLoss(base(), { logRatioClamp: [1, -1] }), "options.logRatioClamp", /low < high/);
    expectValidationError(() => policyLoss(base(), { logRatioClamp: [NaN, 1] }), "options.logRatioClamp[0]");
    expectValidationError(() => policyLoss(base(), { aggregation: "mean" as never }), "options.aggregation");
    expectValidationError(() => policyLoss(base(), { kl: { kind: "k4" as never, coef: 1 } }), "options.kl.kind");
    expectValidationError(() => policyLoss(base(), { kl: { kind: "k1", coef: -1 } }), "options.kl.coef");
    expectValidationError(() => policyLoss(base(), { normalizer: { tokens: -1 } }), "options.normalizer.tokens");
    expectValidationError(() => policyLoss(base(), { normalizer: { length: 0 } }), "options.normalizer.length");
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Token log-probs

describe("tokenLogProbs: logits", () => {
  it("−Infinity logits work: finite logp for tokens with finite logits, equal to the log-softmax over the finite ones", () => {
    const logits = [
      [
        [1, -Infinity, 2, -Infinity],
        [-Infinity, 0.5, -Infinity, -Infinity],
      ],
    ];
    const r = tokenLogProbs(logits, [[2, 1]], { entropy: true });
    const lse = Math.log(Math.exp(1) + Math.exp(2));
    expect(r.logp[0]).toBeCloseTo(2 - lse, 14);
    // A single finite logit: probability 1, entropy 0.
    expect(r.logp[1]).toBe(0);
    expect(r.entropy![1]).toBe(0);
    expect(Number.isFinite(r.entropy![0])).toBe(true);
    // The sampled token itself at −Infinity: logp is −Infinity (not NaN, not an error).
    expect(tokenLogProbs(logits, [[1, 1]]).logp[0]).toBe(-Infinity);
  });

  it("a position whose logits are all −Infinity is rejected at logits[b][t] (unless masked)", () => {
    const logits = [
      [
        [0, 1],
        [2, 3],
      ],
      [
        [1, 1],
        [-Infinity, -Infinity],
      ],
    ];
    expectValidationError(
      () =>
        tokenLogProbs(logits, [
          [0, 0],
          [0, 1],
        ]),
      "logits[1][1]",
      /−Infinity/,
    );
    const flat = { data: Float32Array.from(logits.flat(2)), shape: [2, 2, 2] as [number, number, number] };
    expectValidationError(
      () =>
        tokenLogProbs(flat, [
          [0, 0],
          [0, 1],
        ]),
      "logits[1][1]",
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(
          logits,
          [
            [0, 0],
            [0, 1],
          ],
          {
            gradLogp: [
              [0, 0],
              [0, 1],
            ],
          },
        ),
      "logits[1][1]",
    );
    const masked = tokenLogProbs(
      logits,
      [
        [0, 0],
        [0, 1],
      ],
      {
        mask: [
          [1, 1],
          [1, 0],
        ],
      },
    );
    expect(masked.logp[3]).toBe(0);
  });

  it("NaN or +Infinity anywhere in a selected position's logits is rejected at logits[b][t]", () => {
    for (const bad of [NaN, Infinity]) {
      for (const v of [0, 2, 4100]) {
        // Also past the first 4096-entry chunk.
        const V = 4200;
        const data = new Float64Array(2 * V).map((_, k) => (k % 7) - 3);
        data[V + v] = bad;
        expectValidationError(
          () => tokenLogProbs({ data, shape: [1, 2, V] }, [[0, 1]]),
          "logits[0][1]",
          /NaN or \+Infinity/,
        );
        expectValidationError(
          () => tokenLogProbs({ data, shape: [1, 2, V] }, [[0, 1]], { entropy: true }),
          "logits[0][1]",
        );
        // Masked: not read.
        expect(() => tokenLogProbs({ data, shape: [1, 2, V] }, [[0, 1]], { mask: [[1, 0]] })).not.toThrow();
      }
    }
  });

  it("a logits shape that disagrees with its data, or nested logits of uneven sizes, are rejected", () => {
    expectValidationError(
      () => tokenLogProbs({ data: new Float64Array(5), shape: [1, 2, 3] }, [[0, 0]]),
      "logits.data",
      /5 entries/,
    );
    expectValidationError(() => tokenLogProbs([[[0, 1], [0]]], [[0, 0]]), "logits[0][1]", /expected 2 logits/);
    expectValidationError(
      () =>
        tokenLogProbs(
          [
            [[0, 1]],
            [
              [0, 1],
              [0, 1],
            ],
          ],
          [[0], [0]],
        ),
      "logits[1]",
      /1 positions/,
    );
    expectValidationError(() => tokenLogProbs([[[0, "x" as unknown as number]]], [[0]]), "logits[0][0][1]");
  });

  it("temperature must be positive", () => {
    expectValidationError(() => tokenLogProbs([[[0, 1]]], [[0]], { temperature: 0 }), "options.temperature");
    expectValidationError(() => tokenLogProbs([[[0, 1]]], [[0]], { temperature: -1 }), "options.temperature");
  });
});

describe("tokenLogProbs: tokens", () => {
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
  it.each([3, -1, 1.5, NaN, Infinity])("token id %s is rejected at tokens[b][t]", (id) => {
    expectValidationError(
      () =>
        tokenLogProbs(logits, [
          [0, 1],
          [id, 2],
        ]),
      "tokens[1][0]",
      /not an integer in \[0, 3\)/,
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(
          logits,
          [
            [0, 1],
            [2, id],
          ],
          {
            gradLogp: [
              [1, 1],
              [1, 1],
            ],
          },
        ),
      "tokens[1][1]",
    );
  });

  it("masked positions' tokens are not checked when a mask is given (logp 0, gradient 0 there)", () => {
    const mask = [
      [1, 1],
      [0, 1],
    ];
    const r = tokenLogProbs(
      logits,
      [
        [0, 1],
        [99, 2],
      ],
      { mask },
    );
    expect(r.logp[2]).toBe(0);
    expect(Number.isFinite(r.logp[3])).toBe(true);
    const g = tokenLogProbsBackward(
      logits,
      [
        [0, 1],
        [-7, 2],
      ],
      {
        mask,
        gradLogp: [
          [1, 1],
          [1, 1],
        ],
      },
    );
    expect(Array.from(g.data.subarray(6, 9))).toEqual([0, 0, 0]);
  });

  it("tokens of the wrong shape are rejected at tokens; a mask of the wrong shape at options.mask", () => {
    expectValidationError(() => tokenLogProbs(logits, [[0, 1]]), "tokens", /shape \[1, 2\]/);
    expectValidationError(
      () =>
        tokenLogProbs(
          logits,
          [
            [0, 1],
            [0, 1],
          ],
          {
            mask: [
              [1, 1, 1],
              [1, 1, 1],
            ],
          },
        ),
      "options.mask",
      /shape \[2, 3\]/,
    );
    expectValidationError(
      () =>
        tokenLogProbs(
          logits,
          [
            [0, 1],
            [0, 1],
          ],
          {
            mask: [
              [1, 1],
              [1, 2],
            ],
          },
        ),
      "options.mask[1][1]",
      /0 or 1/,
    );
  });
});

describe("tokenLogProbsBackward: gradients and saved forward results", () => {
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

  it("gradLogp or gradEntropy of a different shape is rejected at options.gradLogp / options.gradEntropy", () => {
    expectValidationError(
      () => tokenLogProbsBackward(logits, tokens, { gradLogp: [[1, 1]] }),
      "options.gradLogp",
      /shape \[1, 2\] but logits are \[2, 2, 3\]/,
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 1, 1],
            [1, 1, 1],
          ],
        }),
      "options.gradLogp",
      /shape \[2, 3\]/,
    );
    expectValidationError(
      () => tokenLogProbsBackward(logits, tokens, { gradLogp: { data: new Float64Array(4), shape: [4, 1] } }),
      "options.gradLogp",
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 1],
            [1, 1],
          ],
          gradEntropy: [[1], [1]],
        }),
      "options.gradEntropy",
    );
  });

  it("a non-finite gradLogp / gradEntropy at a selected position is rejected at its index", () => {
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, NaN],
            [1, 1],
          ],
        }),
      "options.gradLogp[0][1]",
      /finite/,
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 0],
            [1, 1],
          ],
          gradEntropy: [
            [0, Infinity],
            [0, 0],
          ],
        }),
      "options.gradEntropy[0][1]",
    );
    // Masked: not read.
    expect(() =>
      tokenLogProbsBackward(logits, tokens, {
        gradLogp: [
          [1, NaN],
          [1, 1],
        ],
        mask: [
          [1, 0],
          [1, 1],
        ],
      }),
    ).not.toThrow();
  });

  it("`saved` from a different shape is rejected at options.saved", () => {
    const other = tokenLogProbs(
      [
        [
          [0, 1, 2],
          [1, 1, 1],
        ],
      ],
      [[0, 1]],
    );
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 1],
            [1, 1],
          ],
          saved: other,
        }),
      "options.saved",
      /\[1, 2\]/,
    );
    const transposed = tokenLogProbs([[[0, 1, 2]], [[1, 1, 1]], [[2, 0, 1]], [[0, 0, 5]]], [[0], [1], [2], [2]]);
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 1],
            [1, 1],
          ],
          saved: transposed,
        }),
      "options.saved",
    );
  });

  it("`saved` without entropy while gradEntropy is given is rejected at options.saved", () => {
    const saved = tokenLogProbs(logits, tokens);
    expectValidationError(
      () =>
        tokenLogProbsBackward(logits, tokens, {
          gradLogp: [
            [1, 1],
            [1, 1],
          ],
          gradEntropy: [
            [1, 1],
            [1, 1],
          ],
          saved,
        }),
      "options.saved",
      /entropy/,
    );
  });

  // Regression: `saved` from a masked forward once held logSumExp = 0 at skipped positions and gave [−e, −e³, −e]
  // for logits [1, 3, 1]; a forward at another temperature was reused silently. Either is now rejected.
  it.each([
    ["a forward with mask [[1, 0]], a backward with no mask", { mask: [[1, 0]] }, {}],
    ["a forward at temperature 2, a backward at temperature 1", { temperature: 2 }, {}],
  ] as const)(
    "`saved` from %s: rejected at options.saved, or the same gradient as without it",
    (_name, forwardOptions, backwardOptions) => {
      const logits2 = [
        [
          [0, 1, 2],
          [1, 3, 1],
        ],
      ];
      const tokens2 = [[0, 1]];
      const saved = tokenLogProbs(logits2, tokens2, forwardOptions);
      const withoutSaved = tokenLogProbsBackward(logits2, tokens2, { ...backwardOptions, gradLogp: [[1, 1]] });
      let withSaved: { data: Float32Array | Float64Array } | undefined;
      try {
        withSaved = tokenLogProbsBackward(logits2, tokens2, { ...backwardOptions, gradLogp: [[1, 1]], saved });
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        expect((error as ValidationError).issues[0]!.path).toBe("options.saved");
        return;
      }
      for (let k = 0; k < 6; k++) expect(withSaved.data[k]).toBeCloseTo(withoutSaved.data[k]!, 12);
    },
  );
});

describe("nested logits that are not [B][T][V] arrays", () => {
  // Regression: the message once said "logits[0]: expected undefined positions".
  it("a row that is a number is rejected at logits[0] with a message that does not say 'undefined'", () => {
    const error = expectValidationError(() => tokenLogProbs([5] as never, [[0]]), "logits[0]");
    expect(error.message).not.toMatch(/undefined/);
  });
});

describe("policyLoss: caller-owned output buffers (into)", () => {
  const size = 6;
  it.each([
    ["a plain array", { grad: new Array(size).fill(0) }, "into.grad", "Float64Array"],
    ["a Float32Array", { perTokenLoss: new Float32Array(size) }, "into.perTokenLoss", "Float64Array"],
    ["the wrong length", { grad: new Float64Array(size - 1) }, "into.grad", "needs 6"],
    [
      "one buffer for two outputs",
      (() => {
        const b = new Float64Array(size);
        return { grad: b, perTokenLoss: b };
      })(),
      "into.perTokenLoss",
      "into.grad",
    ],
    [
      "overlapping views of one buffer",
      (() => {
        const b = new Float64Array(2 * size - 1);
        return { grad: b.subarray(0, size), perTokenLoss: b.subarray(size - 1) };
      })(),
      "into.perTokenLoss",
      "into.grad",
    ],
  ])("%s is rejected at its field", (_label, into, path, says) => {
    expectValidationError(() => policyLoss(base(), {}, into as never), path, new RegExp(says));
  });

  it("a buffer that shares memory with an input is rejected, naming the input (the loss reads inputs as it writes)", () => {
    const logp = Float64Array.from(base().logp.flat());
    expectValidationError(
      () => policyLoss({ ...base(), logp: { data: logp, shape: [2, 3] } }, {}, { grad: logp }),
      "into.grad",
      /inputs\.logp/,
    );
  });

  it("a buffer for an output the options do not produce is left alone, and the result has no such output", () => {
    const perTokenKl = new Float64Array(size).fill(7);
    const result = policyLoss(base(), {}, { perTokenKl });
    expect(result.perTokenKl).toBeUndefined();
    expect(Array.from(perTokenKl)).toEqual(new Array(size).fill(7));
  });
});
