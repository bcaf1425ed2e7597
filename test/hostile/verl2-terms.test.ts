/**
 * The bad-input contract for verl 1dda039's terms: normalizer.verlVersion and the dp_size rule, the straight-through
 * KL kinds and their aliases, and the entropy-only calls (tokenEntropy, tokenEntropyBackward). Every refusal is a
 * ValidationError at the field, index and rule; every return is finite.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  AGGREGATIONS,
  aggregate,
  KL_KINDS,
  klPenalty,
  policyLoss,
  tokenEntropy,
  tokenEntropyBackward,
} from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, returned } from "./shared.js";

const lossInputs = {
  logp: [[-1, -2]],
  oldLogp: [[-1.1, -2]],
  refLogp: [[-1.5, -0.5]],
  advantages: [1],
  mask: [[1, 1]],
};

describe("class 1: normalizer.verlVersion and the dp_size rule", () => {
  it("a verlVersion that is not a known commit is refused at its path, listing the known ones", () => {
    for (const verlVersion of ["1dda03", "B178A3C", "latest", "", 1, null]) {
      expectRefusedAt(
        attempt(() => policyLoss(lossInputs, { normalizer: { verlVersion: verlVersion as never } })),
        "options.normalizer.verlVersion",
      );
      expectRefusedAt(
        attempt(() => aggregate([[1, 2]], { normalizer: { verlVersion: verlVersion as never } })),
        "options.normalizer.verlVersion",
      );
    }
  });

  it("dpSize > 1 without the batch's count is refused for token-mean and the seq-mean-* modes (verl 1dda039 raises)", () => {
    hostile(fc.tuple(fc.constantFrom(...AGGREGATIONS), fc.integer({ min: 2, max: 64 })), ([aggregation, dpSize]) => {
      const outcome = attempt(() => policyLoss(lossInputs, { aggregation, normalizer: { dpSize } }));
      const needs = aggregation === "token-mean" ? "tokens" : aggregation.startsWith("seq-mean-") ? "sequences" : "";
      if (needs === "") {
        expectAllFinite(returned(outcome));
        return;
      }
      expectRefusedAt(outcome, `options.normalizer.${needs}`, /is required with dpSize \d+/);
      // The entropy bonus's own aggregation is held to the same rule.
      const bonus = attempt(() =>
        policyLoss(
          { ...lossInputs, entropy: [[1, 1]] },
          { aggregation: "dapo", entropyAggregation: aggregation, entropyCoef: 0.1, normalizer: { dpSize } },
        ),
      );
      expectRefusedAt(bonus, `options.normalizer.${needs}`);
      // verl b178a3c scaled the local count instead: documented, and finite.
      expectAllFinite(
        returned(
          attempt(() => policyLoss(lossInputs, { aggregation, normalizer: { dpSize, verlVersion: "b178a3c" } })),
        ),
      );
    });
  });

  it("a global_batch_size below this call's non-empty rows is refused, as any inconsistent count", () => {
    expectRefusedAt(
      attempt(() =>
        policyLoss(
          {
            ...lossInputs,
            logp: [[-1], [-2]],
            oldLogp: [[-1], [-2]],
            refLogp: [[-1], [-1]],
            advantages: [1, 1],
            mask: [[1], [1]],
          },
          { aggregation: "seq-mean-token-sum-norm", normalizer: { sequences: 1 } },
        ),
      ),
      "options.normalizer.sequences",
    );
  });
});

describe("class 1: the straight-through KL kinds", () => {
  it('accepts every kind with "+" and verl\'s "+" aliases, and nothing else ending in "+"', () => {
    for (const kind of [...KL_KINDS, "kl", "mse", "low_var_kl", "kl+", "mse+", "low_var_kl+"]) {
      expectAllFinite(returned(attempt(() => policyLoss(lossInputs, { kl: { kind: kind as never, coef: 0.1 } }))));
    }
    for (const kind of [
      "k4+",
      "k3++",
      "+",
      "low_var+",
      "KL+",
      "toString",
      "__proto__",
      "constructor",
      "hasOwnProperty",
    ]) {
      expectRefusedAt(
        attempt(() => policyLoss(lossInputs, { kl: { kind: kind as never, coef: 0.1 } })),
        "options.kl.kind",
      );
      expectRefusedAt(
        attempt(() => klPenalty(kind as never, true, -1, -2)),
        /^arguments/,
      );
    }
  });

  it("a + kind's value that overflows float64 is refused at refLogp, never returned as Infinity", () => {
    // k2: ½·(2e200)² overflows; unclamped k3: e^x overflows for x = refLogp − logp = 999.
    const overflowing = {
      "k2+": { ...lossInputs, refLogp: [[-1, -2e200]] },
      "k3+": { ...lossInputs, logp: [[-1, -1000]], oldLogp: [[-1, -1000]], refLogp: [[-1, -1]] },
    } as const;
    for (const [kind, inputs] of Object.entries(overflowing)) {
      const outcome = attempt(() =>
        policyLoss(inputs, { kl: { kind: kind as "k2+" | "k3+", coef: 0.1, clamp: false } }),
      );
      expectRefusedAt(outcome, "inputs.refLogp[0][1]", /overflows float64/);
    }
  });

  it("values and slopes are finite for any finite arguments with the clamps on", () => {
    hostile(
      fc.tuple(
        fc.constantFrom(...KL_KINDS.filter((kind) => kind.endsWith("+"))),
        fc.double({ min: -1e6, max: 0, noNaN: true }),
        fc.double({ min: -1e6, max: 0, noNaN: true }),
      ),
      ([kind, logp, refLogp]) => {
        const outcome = attempt(() => klPenalty(kind, true, logp, refLogp));
        if (kind === "k2+" && !Number.isFinite(0.5 * (logp - refLogp) ** 2)) {
          expectRefusedAt(outcome, "arguments", /overflows float64/);
          return;
        }
        const value = returned(outcome);
        expectAllFinite(value);
        expect(value.dLogp).toBe(logp - refLogp);
      },
    );
  });
});

describe("class 1: the entropy-only calls", () => {
  const logits = [
    [
      [0.1, 0.2, 0.3],
      [1, 2, 3],
    ],
  ];

  it("refuses malformed logits, masks and temperatures at their paths", () => {
    expectRefusedAt(
      attempt(() => tokenEntropy([[[0, Number.NaN, 1]]])),
      "logits[0][0]",
      /NaN or \+Infinity/,
    );
    expectRefusedAt(
      attempt(() => tokenEntropy([[[0, Infinity, 1]]])),
      "logits[0][0]",
    );
    expectRefusedAt(
      attempt(() => tokenEntropy([[[-Infinity, -Infinity]]])),
      "logits[0][0]",
      /every logit is −Infinity/,
    );
    expectRefusedAt(
      attempt(() => tokenEntropy([[[0, 1], [2]]] as never)),
      "logits[0][1]",
    );
    expectRefusedAt(
      attempt(() => tokenEntropy({ data: new Float64Array(5), shape: [1, 2, 3] })),
      "logits.data",
    );
    expectRefusedAt(
      attempt(() => tokenEntropy(logits, { mask: [[1, 2]] })),
      /^options\.mask/,
    );
    expectRefusedAt(
      attempt(() => tokenEntropy(logits, { mask: [[1]] })),
      "options.mask",
    );
    for (const temperature of [0, -1, Number.NaN, "1"]) {
      expectRefusedAt(
        attempt(() => tokenEntropy(logits, { temperature: temperature as never })),
        "options.temperature",
      );
    }
    expectRefusedAt(
      attempt(() => tokenEntropy(logits, { entropy: true } as never)),
      "options.entropy",
    );
  });

  it("skips masked positions entirely: NaN logits there are never read", () => {
    const withNaN = [
      [
        [0.1, 0.2, 0.3],
        [Number.NaN, Infinity, 0],
      ],
    ];
    const result = returned(attempt(() => tokenEntropy(withNaN, { mask: [[1, 0]] })));
    expect(result.entropy[1]).toBe(0);
    expect(Number.isNaN(result.logSumExp[1])).toBe(true);
    const grad = returned(
      attempt(() => tokenEntropyBackward(withNaN, { mask: [[1, 0]], gradEntropy: [[1, Number.NaN]] })),
    );
    expectAllFinite(grad.data);
    expect(Array.from(grad.data.slice(3))).toEqual([0, 0, 0]);
  });

  it("refuses a non-finite or misshapen gradEntropy at its index", () => {
    for (const bad of [Number.NaN, Infinity, -Infinity]) {
      expectRefusedAt(
        attempt(() => tokenEntropyBackward(logits, { gradEntropy: [[1, bad]] })),
        "options.gradEntropy[0][1]",
        /must be finite where the mask selects/,
      );
    }
    expectRefusedAt(
      attempt(() => tokenEntropyBackward(logits, { gradEntropy: [[1]] })),
      "options.gradEntropy",
    );
    expectRefusedAt(
      attempt(() => tokenEntropyBackward(logits, {} as never)),
      /^options\.gradEntropy/,
    );
    expectRefusedAt(
      attempt(() => tokenEntropyBackward(logits, { gradEntropy: [[1, 1]], gradLogp: [[0, 0]] } as never)),
      "options.gradLogp",
    );
  });

  it("an empty batch gives empty results", () => {
    const empty = { data: new Float64Array(0), shape: [0, 0, 4] as const };
    expect(tokenEntropy(empty).entropy.length).toBe(0);
    expect(tokenEntropyBackward(empty, { gradEntropy: { data: new Float64Array(0), shape: [0, 0] } }).data.length).toBe(
      0,
    );
  });

  it("is finite for logits anywhere in float32's range, −Infinity entries included, at any temperature", () => {
    const entry = fc.oneof(
      fc.double({ min: -3.4e38, max: 3.4e38, noNaN: true }),
      fc.constant(-Infinity),
      fc.double({ min: -50, max: 50, noNaN: true }),
    );
    hostile(
      fc.tuple(
        fc.array(entry, { minLength: 1, maxLength: 6 }).filter((row) => row.some((v) => v !== -Infinity)),
        fc.double({ min: 0.05, max: 20, noNaN: true }),
        fc.double({ min: -5, max: 5, noNaN: true }),
      ),
      ([row, temperature, h]) => {
        const outcome = attempt(() => tokenEntropy([[row]], { temperature }));
        if (!outcome.ok) {
          // The largest logit divided by a temperature below 1 can be beyond float64.
          expectRefusedAt(outcome, "logits[0][0]", /overflows float64/);
          return;
        }
        expectAllFinite(outcome.value.entropy);
        expect(outcome.value.entropy[0]!).toBeGreaterThanOrEqual(-1e-12);
        expect(outcome.value.entropy[0]!).toBeLessThanOrEqual(Math.log(row.length) + 1e-9);
        expectAllFinite(
          returned(attempt(() => tokenEntropyBackward([[row]], { temperature, gradEntropy: [[h]] }))).data,
        );
      },
    );
  });
});
