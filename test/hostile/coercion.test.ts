/**
 * Classes 3 and 4 of the bad-input contract: nothing is coerced into a number (null, "", true, "-3", [] in the flat
 * { data, shape } form are refused as the nested form refuses them, at [row][column]), and inputs that contradict
 * each other are refused: a normaliser that cannot be the whole batch's, negative importance weights, estimator and
 * objective outputs that are not one finite number each.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantages,
  aggregate,
  batchNormalizer,
  broadcastToTokens,
  policyLoss,
  policyObjectiveNames,
  registerAdvantageEstimator,
  registerPolicyObjective,
  tokenLogProbs,
  tokenLogProbsBackward,
} from "../../src/index.js";
import { attempt, expectRefusedAt, hostile } from "./shared.js";

const NOT_NUMBERS = [null, "", true, false, "-3", "1", [], {}, undefined, 1n] as const;
const notNumber = fc.constantFrom(...NOT_NUMBERS);

/** A 2×3 matrix, flat and nested, with `bad` at [row][col]. */
function withBadEntry(bad: unknown, row: number, col: number) {
  const nested: unknown[][] = [
    [-1, -2, -3],
    [-1.5, -2.5, -0.5],
  ];
  nested[row]![col] = bad;
  return { nested, flat: { data: nested.flat(), shape: [2, 3] as const } };
}

/** Every matrix argument of the library, as a call with that argument replaced. */
const MATRIX_ARGUMENTS: readonly [string, string, (matrix: unknown) => unknown][] = [
  ["policyLoss logp", "inputs.logp", (m) => policyLoss({ logp: m as never, advantages: [1, 1] })],
  [
    "policyLoss oldLogp",
    "inputs.oldLogp",
    (m) =>
      policyLoss({
        logp: [
          [-1, -1, -1],
          [-1, -1, -1],
        ],
        oldLogp: m as never,
        advantages: [1, 1],
      }),
  ],
  [
    "policyLoss per-token advantages",
    "inputs.advantages",
    (m) =>
      policyLoss({
        logp: [
          [-1, -1, -1],
          [-1, -1, -1],
        ],
        advantages: m as never,
      }),
  ],
  [
    "policyLoss refLogp",
    "inputs.refLogp",
    (m) =>
      policyLoss(
        {
          logp: [
            [-1, -1, -1],
            [-1, -1, -1],
          ],
          refLogp: m as never,
          advantages: [1, 1],
        },
        { kl: { kind: "k1", coef: 1 } },
      ),
  ],
  [
    "policyLoss entropy",
    "inputs.entropy",
    (m) =>
      policyLoss(
        {
          logp: [
            [-1, -1, -1],
            [-1, -1, -1],
          ],
          entropy: m as never,
          advantages: [1, 1],
        },
        { entropyCoef: 0.1 },
      ),
  ],
  ["aggregate values", "values", (m) => aggregate(m as never)],
  [
    "tokenLogProbs tokens",
    "tokens",
    (m) => tokenLogProbs({ data: new Float64Array(24), shape: [2, 3, 4] }, m as never),
  ],
  [
    "tokenLogProbsBackward gradLogp",
    "options.gradLogp",
    (m) =>
      tokenLogProbsBackward(
        { data: new Float64Array(24), shape: [2, 3, 4] },
        [
          [0, 0, 0],
          [0, 0, 0],
        ],
        { gradLogp: m as never },
      ),
  ],
];

describe("class 3: no coercion — flat and nested matrices refuse what is not a number at [row][column]", () => {
  it.each(MATRIX_ARGUMENTS.map(([label, path, call]) => [label, path, call] as const))("%s", (_label, path, call) => {
    hostile(
      fc.tuple(notNumber, fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 })),
      ([bad, row, col]) => {
        const { nested, flat } = withBadEntry(bad, row, col);
        for (const form of [nested, flat]) {
          expectRefusedAt(
            attempt(() => call(form)),
            `${path}[${row}][${col}]`,
            /expected a number/,
          );
        }
      },
      40,
    );
  });

  it("one-per-rollout arrays (rewards, advantages, broadcast) refuse non-numbers at their index", () => {
    hostile(
      fc.tuple(notNumber, fc.integer({ min: 0, max: 2 })),
      ([bad, i]) => {
        const values: unknown[] = [1, 0, 1];
        values[i] = bad;
        expectRefusedAt(
          attempt(() => advantages(values as never, ["g", "g", "g"])),
          `rewards[${i}]`,
        );
        expectRefusedAt(
          attempt(() => policyLoss({ logp: [[-1], [-1], [-1]], advantages: values as never })),
          // An array in place of a number makes the list read as per-token rows: refused at a row instead.
          /^inputs\.advantages\[\d\]$/,
        );
        expectRefusedAt(
          attempt(() => broadcastToTokens(values as never, [[1], [1], [1]])),
          `advantages[${i}]`,
        );
      },
      40,
    );
  });

  it("a flat logits array refuses non-numbers", () => {
    const data: unknown[] = [0.1, 0.2, null, 0.4];
    expectRefusedAt(
      attempt(() => tokenLogProbs({ data: data as never, shape: [1, 1, 4] }, [[0]])),
      "logits.data[2]",
    );
  });
});

describe("class 4: inputs that contradict each other", () => {
  const inputs = { logp: [[-1, -2, -1, -3]], advantages: [1], mask: [[1, 1, 1, 1]] };

  it("a normaliser with fewer tokens, sequences or rows than the call itself is refused, and fractional counts", () => {
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { normalizer: { tokens: 0 } })),
      "options.normalizer.tokens",
      /4 valid tokens/,
    );
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { normalizer: { tokens: 1 } })),
      "options.normalizer.tokens",
    );
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { normalizer: { tokens: 4.5 } })),
      "options.normalizer.tokens",
    );
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { aggregation: "seq-mean-token-mean", normalizer: { sequences: 0 } })),
      "options.normalizer.sequences",
    );
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { aggregation: "grpo", normalizer: { rows: 0 } })),
      "options.normalizer.rows",
    );
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { normalizer: { dpSize: 1.5 } })),
      "options.normalizer.dpSize",
    );
    // The whole batch's own normaliser, and a larger one, are fine.
    expect(policyLoss(inputs, { normalizer: batchNormalizer(inputs.mask) }).loss).toBe(policyLoss(inputs).loss);
    expect(policyLoss(inputs, { normalizer: { tokens: 8 } }).loss).toBeCloseTo(policyLoss(inputs).loss / 2, 15);
  });

  it("negative importance weights are refused (they would flip the gradient); 0 is fine", () => {
    hostile(
      fc.tuple(fc.double({ min: -1e6, max: -Number.MIN_VALUE, noNaN: true }), fc.integer({ min: 0, max: 3 })),
      ([w, t]) => {
        const weights = [1, 1, 1, 1];
        weights[t] = w;
        expectRefusedAt(
          attempt(() => policyLoss({ ...inputs, importanceWeights: [weights] })),
          `inputs.importanceWeights[0][${t}]`,
          /must be ≥ 0/,
        );
      },
      40,
    );
    expect(policyLoss({ ...inputs, importanceWeights: [[0, 0, 0, 0]] }).loss).toBe(0);
  });

  it("a registered estimator that returns the wrong length, NaN or a non-array is named with its group", () => {
    const bad = {
      "hostile-short": (r: Float64Array) => r.subarray(1),
      "hostile-nan": (r: Float64Array) => r.map(() => NaN),
      "hostile-undefined": () => undefined as unknown as Float64Array,
    };
    for (const [name, estimator] of Object.entries(bad)) {
      try {
        registerAdvantageEstimator(name, estimator);
      } catch {
        // registered by an earlier run in this process
      }
      const outcome = attempt(() => advantages([1, 0], ["g", "g"], { estimator: name }));
      expectRefusedAt(outcome, /^(options\.estimator|rewards\[0\])$/, new RegExp(`"${name}"`));
    }
  });

  it("a registered objective that returns NaN is refused at the token, never returned", () => {
    if (!policyObjectiveNames().includes("hostile-nan")) {
      registerPolicyObjective("hostile-nan", () => () => ({
        loss: NaN,
        dLogRatio: 0,
        dLogp: 0,
        clipped: false,
        dualClipped: false,
        lowClipped: false,
        highClipped: false,
      }));
    }
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { objective: "hostile-nan" })),
      "inputs.logp[0][0]",
      /non-finite/,
    );
  });
});
