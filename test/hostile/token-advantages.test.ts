/**
 * The bad-input contract for verl's token-level estimators (reinforcePlusPlusAdvantages, remaxAdvantages,
 * gaeAdvantages, optimalTokenBaselineAdvantages, tirOptimalTokenBaselineAdvantages): strict options and inputs
 * (class 1), finite inputs that overflow float64 (class 2), no coercion and no non-finite value where the mask selects
 * (class 3), inputs that contradict each other (class 4), and the empty batch (class 6). Every refusal is a
 * ValidationError naming the field, the index and the rule; every result is finite.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  gaeAdvantages,
  optimalTokenBaselineAdvantages,
  reinforcePlusPlusAdvantages,
  remaxAdvantages,
  tirOptimalTokenBaselineAdvantages,
} from "../../src/index.js";
import {
  attempt,
  expectAllFinite,
  expectBadOptionValuesRefused,
  expectMisspelledOptionsRefused,
  expectRefusedAt,
  hostile,
  misspellings,
  returned,
} from "./shared.js";

type Inputs = Record<string, unknown>;

/** A 2×3 batch with a gap in row 0 (tool output at column 1) and padding at row 1, column 2. */
const BATCH = {
  tokenRewards: [
    [0.1, -0.2, 1],
    [0.3, 0, -1],
  ],
  mask: [
    [1, 0, 1],
    [1, 1, 0],
  ],
  values: [
    [0.5, 0.2, -0.1],
    [0.3, 0.1, 0],
  ],
  oldLogp: [
    [-1, -0.5, -2],
    [-0.3, -1, 0],
  ],
  sumPiSquared: [
    [0.6, 0.7, 0.4],
    [0.8, 0.5, 0.3],
  ],
  rolloutIsWeights: [
    [1, 0.9, 1.1],
    [1, 1, 1],
  ],
  rewardBaselines: [0.4, -0.2],
  groupIds: ["q", "q"],
};

interface Estimator {
  readonly name: string;
  /** The [B, T] fields it reads (tokenRewards and mask first). */
  readonly matrices: readonly string[];
  /** The one-per-row fields it reads. */
  readonly perRow: readonly string[];
  /** A valid options object with every key. */
  readonly options: Record<string, unknown>;
  /** Whether it whitens over the batch (needs ≥ 2 valid tokens). */
  readonly whitens: boolean;
  readonly call: (inputs: Inputs, options?: unknown) => ReturnType<typeof remaxAdvantages>;
}

const ESTIMATORS: readonly Estimator[] = [
  {
    name: "reinforcePlusPlusAdvantages",
    matrices: ["tokenRewards", "mask"],
    perRow: [],
    options: { gamma: 0.9, verlVersion: "b178a3c" },
    whitens: true,
    call: (inputs, options) => reinforcePlusPlusAdvantages(inputs as never, options as never),
  },
  {
    name: "remaxAdvantages",
    matrices: ["tokenRewards", "mask"],
    perRow: ["rewardBaselines"],
    options: {},
    whitens: false,
    call: (inputs, options) => remaxAdvantages(inputs as never, options as never),
  },
  {
    name: "gaeAdvantages",
    matrices: ["tokenRewards", "mask", "values"],
    perRow: [],
    options: { gamma: 0.99, lambda: 0.95 },
    whitens: true,
    call: (inputs, options) => gaeAdvantages(inputs as never, options as never),
  },
  ...[optimalTokenBaselineAdvantages, tirOptimalTokenBaselineAdvantages].map(
    (estimate): Estimator => ({
      name: estimate.name,
      matrices: ["tokenRewards", "mask", "oldLogp", "sumPiSquared", "rolloutIsWeights"],
      perRow: ["groupIds"],
      options: { handleZeroTail: false, epsilon: 1e-6 },
      whitens: false,
      call: (inputs, options) => estimate(inputs as never, options as never),
    }),
  ),
];

const inputsOf = (e: Estimator, batch: Record<string, unknown> = BATCH): Inputs =>
  Object.fromEntries([...e.matrices, ...e.perRow].map((key) => [key, batch[key]]));

const each = ESTIMATORS.map((e) => [e.name, e] as const);

/** The field and value options may not take: the options each estimator has, with values out of range or type. */
const BAD_OPTION_VALUES: Record<string, readonly unknown[]> = {
  gamma: [-0.1, 1.5, NaN, Infinity, -Infinity, "0.9", null, true, 1n, [0.9]],
  lambda: [-1e-9, 1.0000001, NaN, Infinity, "1", null, false],
  verlVersion: ["main", "b178a3", "1DDA039", "", 1, null],
  handleZeroTail: ["true", 1, 0, null, "false"],
  epsilon: [0, -1e-8, NaN, Infinity, -Infinity, "1e-8", null],
};

describe("class 1: strict options and inputs", () => {
  it.each(each)("%s: the valid call is accepted and every value finite", (_name, e) => {
    const result = returned(attempt(() => e.call(inputsOf(e), e.options)));
    expectAllFinite(result);
    expect(result.advantages.shape).toEqual([2, 3]);
  });

  it.each(each)("%s: every misspelling of every option key is refused at that key", (_name, e) => {
    expectMisspelledOptionsRefused(e.options, (options) => e.call(inputsOf(e), options));
    // An estimator without options (ReMax) takes none: a gamma is refused, never ignored.
    if (Object.keys(e.options).length === 0)
      expectRefusedAt(
        attempt(() => e.call(inputsOf(e), { gamma: 1 })),
        "options.gamma",
      );
  });

  it.each(each)("%s: every misspelling of every input key is refused at that key", (_name, e) => {
    const inputs = inputsOf(e);
    const known = Object.keys(inputs);
    for (const key of known) {
      for (const typo of misspellings(key).filter((k) => !known.includes(k))) {
        const { [key]: value, ...rest } = inputs;
        expectRefusedAt(
          attempt(() => e.call({ ...rest, [typo]: value }, e.options)),
          `inputs.${typo}`,
          /unknown key/,
        );
      }
    }
    expectRefusedAt(
      attempt(() => e.call({ ...inputs, token_level_rewards: inputs.tokenRewards }, e.options)),
      "inputs.token_level_rewards",
    );
  });

  it.each(ESTIMATORS.filter((e) => Object.keys(e.options).length > 0).map((e) => [e.name, e] as const))(
    "%s: option values out of range or of another type are refused at the option",
    (_name, e) => expectBadOptionValuesRefused(e.options, BAD_OPTION_VALUES, (options) => e.call(inputsOf(e), options)),
  );

  it.each(each)("%s: options that are not an object are refused", (_name, e) => {
    for (const bad of [null, [], "gamma", 0.9, true]) {
      expectRefusedAt(
        attempt(() => e.call(inputsOf(e), bad)),
        "options",
      );
    }
  });

  it.each(each)("%s: inputs that are not an object, or miss a required field, are refused", (_name, e) => {
    for (const bad of [null, undefined, [], "x", 3]) {
      expectRefusedAt(
        attempt(() => e.call(bad as never, e.options)),
        "inputs",
      );
    }
    for (const key of [...e.matrices, ...e.perRow].filter((k) => k !== "rolloutIsWeights")) {
      const { [key]: _dropped, ...rest } = inputsOf(e);
      expectRefusedAt(
        attempt(() => e.call(rest, e.options)),
        `inputs.${key}`,
      );
    }
  });
});

describe("class 2: finite inputs near the float64 range", () => {
  const huge = fc.oneof(
    fc.constantFrom(1e308, -1e308, 1.7976931348623157e308, -1.7976931348623157e308, 1e300, 1e200, 1e155),
    fc.double({ min: -1e308, max: 1e308, noNaN: true, noDefaultInfinity: true }),
    fc.double({ min: -3, max: 3, noNaN: true }),
  );
  const matrix = fc.array(fc.array(huge, { minLength: 3, maxLength: 3 }), { minLength: 2, maxLength: 2 });

  it.each(each)("%s: a finite result, or a refusal that names the row and says it overflows", (_name, e) => {
    hostile(
      fc.record({
        tokenRewards: matrix,
        values: matrix,
        rewardBaselines: fc.array(huge, { minLength: 2, maxLength: 2 }),
      }),
      (extreme) => {
        const outcome = attempt(() => e.call(inputsOf(e, { ...BATCH, ...extreme }), e.options));
        if (!outcome.ok) {
          expectRefusedAt(
            outcome,
            /^inputs\.(tokenRewards|values|rewardBaselines|sumPiSquared)\[\d\]$/,
            /overflows float64/,
          );
          return;
        }
        expectAllFinite(outcome.value);
      },
      150,
    );
  });

  it("optimal token baselines: huge log-probs, Σπ² or weights give a finite result or a refusal naming the row", () => {
    const positive = fc.oneof(
      fc.constantFrom(1e308, 1e200, 1e155, 0, 1),
      fc.double({ min: 0, max: 1e308, noNaN: true }),
    );
    const grid = (arbitrary: fc.Arbitrary<number>) =>
      fc.array(fc.array(arbitrary, { minLength: 3, maxLength: 3 }), { minLength: 2, maxLength: 2 });
    hostile(
      fc.record({
        oldLogp: grid(fc.oneof(fc.double({ min: -800, max: 800, noNaN: true }), fc.constantFrom(-1e308, 710, 1e308))),
        sumPiSquared: grid(positive),
        rolloutIsWeights: grid(positive),
        withWeights: fc.boolean(),
      }),
      ({ withWeights, ...extreme }) => {
        for (const e of ESTIMATORS.slice(3)) {
          const inputs = { ...inputsOf(e, { ...BATCH, ...extreme }) };
          if (!withWeights) delete inputs.rolloutIsWeights;
          const outcome = attempt(() => e.call(inputs, e.options));
          if (!outcome.ok) {
            expectRefusedAt(
              outcome,
              /^inputs\.(tokenRewards|sumPiSquared|rolloutIsWeights)\[\d\]$/,
              /overflows float64/,
            );
            continue;
          }
          expectAllFinite(outcome.value);
        }
      },
      150,
    );
  });

  it("two rewards of 1e308 in one row overflow the return: refused at that row", () => {
    const inputs = { tokenRewards: [[1e308, 1e308]], mask: [[1, 1]] };
    expectRefusedAt(
      attempt(() => reinforcePlusPlusAdvantages(inputs)),
      "inputs.tokenRewards[0]",
      /column 0 is Infinity: it overflows float64/,
    );
    expectRefusedAt(
      attempt(() => remaxAdvantages({ ...inputs, rewardBaselines: [0] })),
      "inputs.tokenRewards[0]",
    );
    // Discounted, the same rewards stay below the float64 maximum: 1e308 + 0.5·1e308.
    expect(reinforcePlusPlusAdvantages(inputs, { gamma: 0.5 }).returns.data[0]).toBe(1.5e308);
  });

  it("whitening returns near ±1e308 gives the same advantages as the same returns scaled down (no Infinity, no 0)", () => {
    hostile(
      fc.tuple(
        fc.array(fc.double({ min: -3, max: 3, noNaN: true }), { minLength: 4, maxLength: 4 }),
        fc.constantFrom(300, 600, 900, 1021),
      ),
      ([rewards, exponent]) => {
        fc.pre(Math.max(...rewards) - Math.min(...rewards) > 1e-3);
        const at = (scale: number) =>
          reinforcePlusPlusAdvantages(
            { tokenRewards: [rewards.map((r) => r * scale)], mask: [[1, 1, 1, 1]] },
            { gamma: 0 },
          );
        const large = returned(attempt(() => at(2 ** exponent)));
        const ordinary = at(2 ** 100);
        expectAllFinite(large);
        large.advantages.data.forEach((a, i) => expect(a).toBeCloseTo(ordinary.advantages.data[i]!, 12));
      },
      100,
    );
  });
});

const NOT_NUMBERS = [null, "", true, "-3", [], {}, undefined, 1n] as const;

describe("class 3: no coercion, and nothing non-finite where the mask selects", () => {
  const cases = ESTIMATORS.flatMap((e) => e.matrices.map((field) => [`${e.name} ${field}`, e, field] as const));

  it.each(cases)("%s: a non-number at [row][column] is refused there, nested or flat", (_label, e, field) => {
    hostile(
      fc.tuple(fc.constantFrom(...NOT_NUMBERS), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 })),
      ([bad, row, col]) => {
        const nested = (BATCH as unknown as Record<string, number[][]>)[field]!.map((r) => [...r]) as unknown[][];
        nested[row]![col] = bad;
        for (const form of [nested, { data: nested.flat(), shape: [2, 3] }]) {
          expectRefusedAt(
            attempt(() => e.call({ ...inputsOf(e), [field]: form }, e.options)),
            `inputs.${field}[${row}][${col}]`,
            /expected a number/,
          );
        }
      },
      30,
    );
  });

  it.each(cases.filter(([, , field]) => field !== "mask"))(
    "%s: NaN or ±Infinity is refused where the mask selects and ignored where it does not",
    (_label, e, field) => {
      hostile(
        fc.tuple(
          fc.constantFrom(NaN, Infinity, -Infinity),
          fc.integer({ min: 0, max: 1 }),
          fc.integer({ min: 0, max: 2 }),
        ),
        ([bad, row, col]) => {
          const spoilt = (BATCH as unknown as Record<string, number[][]>)[field]!.map((r) => [...r]);
          spoilt[row]![col] = bad;
          const outcome = attempt(() => e.call({ ...inputsOf(e), [field]: spoilt }, e.options));
          if (BATCH.mask[row]![col] === 1) {
            expectRefusedAt(outcome, `inputs.${field}[${row}][${col}]`, /at a position the mask selects/);
          } else {
            expect(returned(outcome)).toEqual(e.call(inputsOf(e), e.options));
          }
        },
        30,
      );
    },
  );

  it("per-row fields refuse non-numbers and non-ids at their index", () => {
    hostile(
      fc.tuple(fc.constantFrom(...NOT_NUMBERS), fc.integer({ min: 0, max: 1 })),
      ([bad, i]) => {
        const baselines: unknown[] = [...BATCH.rewardBaselines];
        baselines[i] = bad;
        expectRefusedAt(
          attempt(() => remaxAdvantages({ ...inputsOf(ESTIMATORS[1]!), rewardBaselines: baselines } as never)),
          /^inputs\.rewardBaselines(\[\d\])?$/,
        );
        if (typeof bad === "string" || typeof bad === "bigint") return; // strings and bigints are group ids
        const ids: unknown[] = [...BATCH.groupIds];
        ids[i] = bad;
        for (const e of ESTIMATORS.slice(3)) {
          expectRefusedAt(
            attempt(() => e.call({ ...inputsOf(e), groupIds: ids })),
            `inputs.groupIds[${i}]`,
          );
        }
      },
      40,
    );
  });

  it("a non-finite greedy baseline is refused for a row with tokens, ignored for an empty row", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      expectRefusedAt(
        attempt(() => remaxAdvantages({ ...inputsOf(ESTIMATORS[1]!), rewardBaselines: [bad, 0] } as never)),
        "inputs.rewardBaselines[0]",
        /must be finite/,
      );
      const empty = { tokenRewards: [[1], [0]], mask: [[1], [0]], rewardBaselines: [0.5, bad] };
      expect(Array.from(remaxAdvantages(empty).advantages.data)).toEqual([0.5, 0]);
    }
  });

  it("group ids beyond 2^53 or non-finite are refused", () => {
    for (const bad of [2 ** 53 + 2, NaN, Infinity]) {
      expectRefusedAt(
        attempt(() => optimalTokenBaselineAdvantages({ ...inputsOf(ESTIMATORS[3]!), groupIds: ["q", bad] } as never)),
        "inputs.groupIds[1]",
      );
    }
  });
});

describe("class 4: inputs that contradict each other", () => {
  it.each(each)("%s: ragged rows, other shapes and wrong lengths are refused at the field", (_name, e) => {
    for (const field of e.matrices) {
      const ragged = [[1, 0, 1], [1]];
      expectRefusedAt(
        attempt(() => e.call({ ...inputsOf(e), [field]: ragged }, e.options)),
        `inputs.${field}[1]`,
        /ragged/,
      );
      const otherShape = { data: new Float64Array(4).fill(1), shape: [2, 2] };
      expectRefusedAt(
        attempt(() => e.call({ ...inputsOf(e), [field]: otherShape }, e.options)),
        field === "tokenRewards" ? /^inputs\.\w+$/ : `inputs.${field}`,
        /shape/,
      );
      const wrongData = { data: [1, 0, 1], shape: [2, 3] };
      expectRefusedAt(
        attempt(() => e.call({ ...inputsOf(e), [field]: wrongData }, e.options)),
        `inputs.${field}.data`,
      );
    }
    for (const field of e.perRow) {
      expectRefusedAt(
        attempt(() => e.call({ ...inputsOf(e), [field]: field === "groupIds" ? ["q"] : [1, 2, 3] }, e.options)),
        `inputs.${field}`,
        /one per row/,
      );
    }
  });

  it.each(each)("%s: a mask entry other than 0 or 1 is refused at its position", (_name, e) => {
    hostile(
      fc.tuple(
        fc.constantFrom(2, -1, 0.5, NaN, Infinity, 1 + 2 ** -52),
        fc.integer({ min: 0, max: 1 }),
        fc.integer({ min: 0, max: 2 }),
      ),
      ([bad, row, col]) => {
        const mask = BATCH.mask.map((r) => [...r]);
        mask[row]![col] = bad;
        expectRefusedAt(
          attempt(() => e.call({ ...inputsOf(e), mask }, e.options)),
          `inputs.mask[${row}][${col}]`,
          /0 or 1/,
        );
      },
      20,
    );
  });

  it.each(ESTIMATORS.filter((e) => e.whitens).map((e) => [e.name, e] as const))(
    "%s: fewer than 2 valid tokens in the batch cannot be whitened (verl raises too)",
    (_name, e) => {
      for (const mask of [
        [
          [0, 0, 0],
          [0, 0, 0],
        ],
        [
          [0, 0, 1],
          [0, 0, 0],
        ],
      ]) {
        expectRefusedAt(
          attempt(() => e.call({ ...inputsOf(e), mask }, e.options)),
          "inputs.mask",
          /needs at least 2/,
        );
      }
    },
  );

  it("a negative rollout importance weight is refused where the mask selects", () => {
    for (const e of ESTIMATORS.slice(3)) {
      const weights = BATCH.rolloutIsWeights.map((r) => [...r]);
      weights[1]![0] = -0.5;
      expectRefusedAt(
        attempt(() => e.call({ ...inputsOf(e), rolloutIsWeights: weights })),
        "inputs.rolloutIsWeights[1][0]",
        /≥ 0/,
      );
    }
  });
});

describe("class 6: the empty batch", () => {
  const emptyBatches = [
    { rows: 0, cols: 0, batch: { ...BATCH, ...emptyFields(0, 0) } },
    { rows: 2, cols: 0, batch: { ...BATCH, ...emptyFields(2, 0) } },
  ];

  function emptyFields(rows: number, cols: number) {
    const matrix = Array.from({ length: rows }, () => Array.from({ length: cols }, () => 0));
    return {
      tokenRewards: matrix,
      mask: matrix,
      values: matrix,
      oldLogp: matrix,
      sumPiSquared: matrix,
      rolloutIsWeights: matrix,
      rewardBaselines: Array.from({ length: rows }, () => 0),
      groupIds: Array.from({ length: rows }, () => "q"),
    };
  }

  it.each(each)("%s: no rows, or rows of no tokens: empty results, or the whitening refusal", (_name, e) => {
    for (const { rows, cols, batch } of emptyBatches) {
      const outcome = attempt(() => e.call(inputsOf(e, batch), e.options));
      if (e.whitens) {
        expectRefusedAt(outcome, "inputs.mask", /selects 0 tokens/);
        continue;
      }
      const result = returned(outcome);
      expect(result.advantages.shape).toEqual([rows, cols]);
      expect(result.returns.data.length).toBe(0);
    }
  });

  it("fully masked rows get 0 everywhere, and the other rows what they get without them", () => {
    const withEmpty = {
      ...BATCH,
      tokenRewards: [...BATCH.tokenRewards, [5, 5, 5]],
      mask: [...BATCH.mask, [0, 0, 0]],
      values: [...BATCH.values, [1, 1, 1]],
      oldLogp: [...BATCH.oldLogp, [-1, -1, -1]],
      sumPiSquared: [...BATCH.sumPiSquared, [0.5, 0.5, 0.5]],
      rolloutIsWeights: [...BATCH.rolloutIsWeights, [1, 1, 1]],
      rewardBaselines: [...BATCH.rewardBaselines, 9],
      groupIds: [...BATCH.groupIds, "other"],
    };
    for (const e of ESTIMATORS) {
      const result = e.call(inputsOf(e, withEmpty), e.options);
      const alone = e.call(inputsOf(e), e.options);
      expect(Array.from(result.advantages.data.subarray(6))).toEqual([0, 0, 0]);
      expect(Array.from(result.returns.data.subarray(6))).toEqual([0, 0, 0]);
      expect(Array.from(result.advantages.data.subarray(0, 6))).toEqual(Array.from(alone.advantages.data));
    }
  });
});
