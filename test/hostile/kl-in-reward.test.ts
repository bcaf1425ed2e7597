/**
 * The bad-input contract for verl's KL penalty in the rewards (klPenaltyRewards, klRatioRewards) and its controllers
 * (fixedKlCoefficient, adaptiveKlCoefficient): strict options and inputs with the closest key suggested (class 1),
 * finite inputs that overflow float64 (class 2), no coercion and no non-finite value where it is read (class 3),
 * inputs that contradict each other (class 4), and the empty batch (class 6). Every refusal is a ValidationError
 * naming the field, the index and the rule; every result is finite.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adaptiveKlCoefficient, fixedKlCoefficient, klPenaltyRewards, klRatioRewards } from "../../src/index.js";
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

/** A 2×3 batch: a gap in row 0 (tool output at column 1), padding at row 1, column 2; a score at a masked place. */
const BATCH = {
  tokenScores: [
    [0, 0.5, 1],
    [0, 0, 2],
  ],
  oldLogp: [
    [-1, -0.5, -2],
    [-0.3, -1, -4],
  ],
  refLogp: [
    [-1.2, -9, -1.5],
    [-0.3, -2, -0.1],
  ],
  mask: [
    [1, 0, 1],
    [1, 1, 0],
  ],
};

const FIELDS = ["tokenScores", "oldLogp", "refLogp", "mask"] as const;
const RATIO_FIELDS = ["tokenScores", "oldLogp", "refLogp"] as const;

const OPTIONS = { kind: "low_var_kl", beta: 0.05 };
const STEP = { klCoef: 0.001, currentKl: 0.3, nSteps: 64 };
const ADAPTIVE = { targetKl: 0.1, horizon: 10000 };

const penalty = (inputs: Inputs, options?: unknown) => klPenaltyRewards(inputs as never, options as never);
const ratio = (inputs: Inputs, options?: unknown) => klRatioRewards(inputs as never, options as never);
const ratioInputs = (): Inputs => ({ tokenScores: BATCH.tokenScores, oldLogp: BATCH.oldLogp, refLogp: BATCH.refLogp });

/** Every function with its valid arguments: which argument is the options object, and its keys. */
const CALLS = [
  { name: "klPenaltyRewards", options: OPTIONS, call: (o: unknown) => penalty(BATCH, o) },
  { name: "klRatioRewards", options: { klRatio: 0.1 }, call: (o: unknown) => ratio(ratioInputs(), o) },
  {
    name: "adaptiveKlCoefficient",
    options: ADAPTIVE,
    call: (o: unknown) => adaptiveKlCoefficient(STEP, o as never),
  },
] as const;

const BAD_OPTION_VALUES: Record<string, readonly unknown[]> = {
  kind: ["full", "k4", "K3", "low-var-kl", "", 3, null, true],
  beta: [-1e-9, NaN, Infinity, -Infinity, "0.1", null, true, 1n, [0.1]],
  klRatio: [-0.5, NaN, Infinity, "0.1", null, false],
  targetKl: [0, -0.1, NaN, Infinity, "0.1", null],
  horizon: [0, -1, NaN, Infinity, "10000", null],
};

describe("class 1: strict options and inputs, the closest key suggested", () => {
  it.each(CALLS.map((c) => [c.name, c] as const))("%s: the valid call is accepted, every value finite", (_n, c) => {
    expectAllFinite(returned(attempt(() => c.call(c.options))));
  });

  it.each(CALLS.map((c) => [c.name, c] as const))(
    "%s: every misspelling of every option key is refused at that key, naming the key",
    (_n, c) => expectMisspelledOptionsRefused(c.options as Record<string, unknown>, c.call),
  );

  it("verl's snake_case spellings are refused with the option they mean", () => {
    const cases: [() => unknown, string, string][] = [
      [() => adaptiveKlCoefficient(STEP, { target_kl: 0.1 } as never), "options.target_kl", "targetKl"],
      [() => ratio(ratioInputs(), { kl_ratio: 0.1 }), "options.kl_ratio", "klRatio"],
      [() => adaptiveKlCoefficient({ ...STEP, kl_coef: 0.001 } as never), "step.kl_coef", "klCoef"],
      [() => adaptiveKlCoefficient({ ...STEP, current_kl: 0.3 } as never), "step.current_kl", "currentKl"],
    ];
    for (const [call, path, meant] of cases) {
      expectRefusedAt(attempt(call), path, new RegExp(`did you mean "${meant}"`));
    }
  });

  it.each(CALLS.map((c) => [c.name, c] as const))(
    "%s: option values out of range or of another type are refused at the option",
    (_n, c) => expectBadOptionValuesRefused(c.options as Record<string, unknown>, BAD_OPTION_VALUES, c.call),
  );

  it.each(CALLS.map((c) => [c.name, c] as const))("%s: options that are not an object are refused", (_n, c) => {
    for (const bad of [null, [], "kl", 0.1, true]) {
      expectRefusedAt(
        attempt(() => c.call(bad)),
        "options",
      );
    }
  });

  it("every misspelling of every input key is refused at that key; a missing field at its name", () => {
    for (const [call, fields, inputs] of [
      [(inputs: Inputs) => penalty(inputs, OPTIONS), FIELDS, BATCH as Inputs],
      [(inputs: Inputs) => ratio(inputs, { klRatio: 0.1 }), RATIO_FIELDS, ratioInputs()],
    ] as const) {
      for (const key of fields) {
        for (const typo of misspellings(key).filter((k) => !(fields as readonly string[]).includes(k))) {
          const { [key]: value, ...rest } = inputs;
          expectRefusedAt(
            attempt(() => call({ ...rest, [typo]: value })),
            `inputs.${typo}`,
            /unknown key/,
          );
        }
        const { [key]: _dropped, ...rest } = inputs;
        expectRefusedAt(
          attempt(() => call(rest)),
          `inputs.${key}`,
          /required/,
        );
      }
      for (const bad of [null, undefined, [], "x", 3]) {
        expectRefusedAt(
          attempt(() => call(bad as never)),
          "inputs",
        );
      }
    }
    const error = expectRefusedAt(
      attempt(() => penalty({ ...BATCH, token_level_scores: BATCH.tokenScores })),
      "inputs.token_level_scores",
    );
    // Too far from tokenScores for a suggestion: the message lists the known keys instead.
    expect(error.message).toMatch(/known keys: tokenScores, oldLogp, refLogp, mask/);
  });

  it("the controller's step is strict: unknown keys, negative β, a fractional or negative nSteps, a non-finite KL", () => {
    const steps: [Record<string, unknown>, string][] = [
      [{ ...STEP, n_steps: 64 }, "step.n_steps"],
      [{ ...STEP, klcoef: 1 }, "step.klcoef"],
      [{ ...STEP, klCoef: -0.001 }, "step.klCoef"],
      [{ ...STEP, klCoef: Infinity }, "step.klCoef"],
      [{ ...STEP, nSteps: 2.5 }, "step.nSteps"],
      [{ ...STEP, nSteps: -1 }, "step.nSteps"],
      [{ ...STEP, currentKl: NaN }, "step.currentKl"],
      [{ ...STEP, currentKl: -Infinity }, "step.currentKl"],
      [{ ...STEP, currentKl: "0.3" }, "step.currentKl"],
    ];
    for (const [step, path] of steps) {
      expectRefusedAt(
        attempt(() => adaptiveKlCoefficient(step as never, ADAPTIVE)),
        path,
      );
      expectRefusedAt(
        attempt(() => fixedKlCoefficient(step as never)),
        path,
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
  const kinds = fc.constantFrom("kl", "abs", "mse", "low_var_kl", "k1+", "k2+", "k3+");

  it("klPenaltyRewards: a finite result, or a refusal that names the position or row and says it overflows", () => {
    hostile(
      fc.record({
        tokenScores: matrix,
        oldLogp: matrix,
        refLogp: matrix,
        kind: kinds,
        beta: fc.oneof(fc.constantFrom(0, 1, 1e300), fc.double({ min: 0, max: 10, noNaN: true })),
      }),
      ({ kind, beta, ...extreme }) => {
        const outcome = attempt(() => penalty({ ...BATCH, ...extreme }, { kind, beta }));
        if (!outcome.ok) {
          expectRefusedAt(outcome, /^inputs\.(tokenScores|oldLogp)\[\d\](\[\d\])?$/, /overflows float64|overflows/);
          return;
        }
        expectAllFinite(outcome.value);
      },
      200,
    );
  });

  it("k3 is clamped as verl clamps it: log-probs 1e308 apart give 10 per token, not Infinity", () => {
    const result = penalty(
      { tokenScores: [[0, 0]], oldLogp: [[-1e308, 1e308]], refLogp: [[1e308, -1e308]], mask: [[1, 1]] },
      { kind: "low_var_kl", beta: 1 },
    );
    expect(Array.from(result.kl.data)).toEqual([10, 10]);
    expect(result.currentKl).toBe(10);
  });

  it("k1 of log-probs 1e308 apart overflows: refused at the token", () => {
    expectRefusedAt(
      attempt(() =>
        penalty({ tokenScores: [[0]], oldLogp: [[1e308]], refLogp: [[-1e308]], mask: [[1]] }, { kind: "kl" }),
      ),
      "inputs.oldLogp[0][0]",
      /overflows float64/,
    );
  });

  it("two finite KL estimates whose sum overflows: refused at the row", () => {
    expectRefusedAt(
      attempt(() =>
        penalty(
          { tokenScores: [[0, 0]], oldLogp: [[1e308, 1e308]], refLogp: [[0, 0]], mask: [[1, 1]] },
          { kind: "kl", beta: 0 },
        ),
      ),
      "inputs.oldLogp[0]",
      /overflows/,
    );
  });

  it("klRatioRewards: log-probs 1e308 apart with klRatio 0 (or small) give a finite reward, not 'overflows'", () => {
    const far = { tokenScores: [[1]], oldLogp: [[1e308]], refLogp: [[-1e308]] };
    expect(Array.from(ratio(far, { klRatio: 0 }).data)).toEqual([1]);
    expect(ratio(far, { klRatio: 0.1 }).data[0]! / -2e307).toBeCloseTo(1, 12);
  });

  it("row means whose sum overflows (the batch's currentKl): refused at the row, not returned as ±Infinity", () => {
    expectRefusedAt(
      attempt(() =>
        penalty(
          { tokenScores: [[0], [0]], oldLogp: [[0], [0]], refLogp: [[-1e308], [-1e308]], mask: [[1], [1]] },
          { beta: 0 },
        ),
      ),
      "inputs.oldLogp[1]",
      /overflows/,
    );
  });

  it("klRatioRewards and adaptiveKlCoefficient: an overflow is refused, never returned", () => {
    expectRefusedAt(
      attempt(() => ratio({ tokenScores: [[1e308]], oldLogp: [[1e308]], refLogp: [[-1e308]] }, { klRatio: 1 })),
      "inputs.oldLogp[0][0]",
      /overflows float64/,
    );
    expectRefusedAt(
      attempt(() => adaptiveKlCoefficient({ klCoef: 1.7e308, currentKl: 1, nSteps: 10000 }, ADAPTIVE)),
      "step.klCoef",
      /overflows float64/,
    );
    // A tiny target makes the ratio overflow to Infinity, which clips to +0.2 as numpy's clip does.
    expect(
      adaptiveKlCoefficient({ klCoef: 1, currentKl: 1e308, nSteps: 100 }, { targetKl: 1e-300, horizon: 100 }),
    ).toBe(1.2);
  });

  it("adaptive: a multiplier below 0 (nSteps/horizon > 5, KL far under target) is refused; verl would return β < 0", () => {
    expectRefusedAt(
      attempt(() => adaptiveKlCoefficient({ klCoef: 0.001, currentKl: 0, nSteps: 1024 }, { horizon: 100 })),
      "step.nSteps",
      /negative/,
    );
    // At exactly nSteps/horizon = 5 β reaches 0, which is allowed.
    expect(adaptiveKlCoefficient({ klCoef: 0.001, currentKl: 0, nSteps: 500 }, { horizon: 100 })).toBe(0);
  });
});

const NOT_NUMBERS = [null, "", true, "-3", [], {}, undefined, 1n] as const;

describe("class 3: no coercion, and nothing non-finite where it is read", () => {
  it.each(FIELDS.map((f) => [f] as const))(
    "%s: a non-number at [row][column] is refused there, nested or flat",
    (field) => {
      hostile(
        fc.tuple(fc.constantFrom(...NOT_NUMBERS), fc.integer({ min: 0, max: 1 }), fc.integer({ min: 0, max: 2 })),
        ([bad, row, col]) => {
          const nested = BATCH[field].map((r) => [...r]) as unknown[][];
          nested[row]![col] = bad;
          for (const form of [nested, { data: nested.flat(), shape: [2, 3] }]) {
            expectRefusedAt(
              attempt(() => penalty({ ...BATCH, [field]: form }, OPTIONS)),
              `inputs.${field}[${row}][${col}]`,
              /expected a number/,
            );
          }
        },
        30,
      );
    },
  );

  it.each([["oldLogp"], ["refLogp"]] as const)(
    "%s: NaN or ±Infinity is refused where the mask selects and never read where it does not",
    (field) => {
      hostile(
        fc.tuple(
          fc.constantFrom(NaN, Infinity, -Infinity),
          fc.integer({ min: 0, max: 1 }),
          fc.integer({ min: 0, max: 2 }),
          fc.constantFrom("kl", "abs", "mse", "low_var_kl", "k3+"),
        ),
        ([bad, row, col, kind]) => {
          const spoilt = BATCH[field].map((r) => [...r]);
          spoilt[row]![col] = bad;
          const outcome = attempt(() => penalty({ ...BATCH, [field]: spoilt }, { kind, beta: 0.1 }));
          if (BATCH.mask[row]![col] === 1) {
            expectRefusedAt(outcome, `inputs.${field}[${row}][${col}]`, /at a position the mask selects/);
          } else {
            expect(returned(outcome)).toEqual(penalty(BATCH, { kind, beta: 0.1 }));
          }
        },
        30,
      );
    },
  );

  it("tokenScores: NaN or ±Infinity is refused at every position, saying why at mask 0 (verl copies it through)", () => {
    for (const bad of [NaN, Infinity, -Infinity]) {
      for (let row = 0; row < 2; row++) {
        for (let col = 0; col < 3; col++) {
          const spoilt = BATCH.tokenScores.map((r) => [...r]);
          spoilt[row]![col] = bad;
          expectRefusedAt(
            attempt(() => penalty({ ...BATCH, tokenScores: spoilt }, OPTIONS)),
            `inputs.tokenScores[${row}][${col}]`,
            BATCH.mask[row]![col] === 1 ? /mask selects/ : /mask-0 position; verl copies scores there/,
          );
        }
      }
    }
  });

  it("klRatioRewards has no mask: NaN or ±Infinity is refused at every position of every field", () => {
    for (const field of RATIO_FIELDS) {
      for (const bad of [NaN, Infinity, -Infinity]) {
        const spoilt = BATCH[field].map((r) => [...r]);
        spoilt[1]![2] = bad;
        expectRefusedAt(
          attempt(() => ratio({ ...ratioInputs(), [field]: spoilt }, { klRatio: 0.1 })),
          `inputs.${field}[1][2]`,
        );
      }
    }
  });
});

describe("class 4: inputs that contradict each other", () => {
  it.each(FIELDS.map((f) => [f] as const))("%s: ragged rows, other shapes and wrong lengths are refused", (field) => {
    expectRefusedAt(
      attempt(() => penalty({ ...BATCH, [field]: [[1, 0, 1], [1]] }, OPTIONS)),
      `inputs.${field}[1]`,
      /ragged/,
    );
    expectRefusedAt(
      attempt(() => penalty({ ...BATCH, [field]: { data: new Float64Array(4).fill(1), shape: [2, 2] } }, OPTIONS)),
      field === "tokenScores" ? /^inputs\.\w+$/ : `inputs.${field}`,
      /shape/,
    );
    expectRefusedAt(
      attempt(() => penalty({ ...BATCH, [field]: { data: [1, 0, 1], shape: [2, 3] } }, OPTIONS)),
      `inputs.${field}.data`,
    );
  });

  it("a mask entry other than 0 or 1 is refused at its place", () => {
    for (const bad of [2, 0.5, -1, NaN, Infinity]) {
      const mask = BATCH.mask.map((r) => [...r]);
      mask[1]![1] = bad;
      expectRefusedAt(
        attempt(() => penalty({ ...BATCH, mask }, OPTIONS)),
        "inputs.mask[1][1]",
        /0 or 1/,
      );
    }
  });

  it("klRatioRewards: ragged or mismatched shapes are refused at the field", () => {
    expectRefusedAt(
      attempt(() => ratio({ ...ratioInputs(), refLogp: [[1, 2, 3], [1]] }, { klRatio: 0.1 })),
      "inputs.refLogp[1]",
      /ragged/,
    );
    expectRefusedAt(
      attempt(() => ratio({ ...ratioInputs(), oldLogp: [[1, 2, 3]] }, { klRatio: 0.1 })),
      "inputs.oldLogp",
      /shape/,
    );
  });
});

describe("class 6: the empty batch", () => {
  it("no rows is refused (verl's mean over no rows is NaN); rows with no valid token give currentKl 0", () => {
    expectRefusedAt(
      attempt(() => penalty({ tokenScores: [], oldLogp: [], refLogp: [], mask: [] }, OPTIONS)),
      "inputs.tokenScores",
      /no rows/,
    );
    const noTokens = returned(
      attempt(() =>
        penalty({ tokenScores: [[0, 1]], oldLogp: [[NaN, NaN]], refLogp: [[Infinity, 0]], mask: [[0, 0]] }, OPTIONS),
      ),
    );
    expect(noTokens.currentKl).toBe(0);
    expect(Array.from(noTokens.tokenRewards.data)).toEqual([0, 1]);
    const noColumns = returned(
      attempt(() => penalty({ tokenScores: [[], []], oldLogp: [[], []], refLogp: [[], []], mask: [[], []] }, OPTIONS)),
    );
    expect(noColumns.currentKl).toBe(0);
    expect(noColumns.tokenRewards.shape).toEqual([2, 0]);
    expect(ratio({ tokenScores: [], oldLogp: [], refLogp: [] }, { klRatio: 0.1 }).shape).toEqual([0, 0]);
  });
});
