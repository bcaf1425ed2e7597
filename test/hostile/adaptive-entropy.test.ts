/**
 * The bad-input contract for TRL's adaptive entropy controller (appliedEntropyCoefficient, adaptiveEntropyCoefficient)
 * and its translation from a GRPOConfig: strict options, state and step with the closest key suggested (class 1),
 * finite inputs at the edges of float64 (class 2), no coercion and no non-finite value (class 3), options that
 * contradict each other (class 4). Every refusal is a ValidationError naming the field and the rule; every result is
 * finite and inside the bounds it was given.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { adaptiveEntropyCoefficient, appliedEntropyCoefficient, fromTrlConfig } from "../../src/index.js";
import { attempt, expectAllFinite, expectRefusedAt, hostile, misspellings, returned } from "./shared.js";

const OPTIONS = { coefMin: 0.001, coefMax: 0.1, delta: 0.005, targetEntropy: 0.3 };
const STATE = { coef: 0.01, lastEntropy: 0.25 };
const STEP = { coef: 0.01, entropySum: 12.5, tokens: 40 };

const applied = (state: unknown, options?: unknown) => appliedEntropyCoefficient(state as never, options as never);
const update = (step: unknown, options?: unknown) => adaptiveEntropyCoefficient(step as never, options as never);

const CALLS = [
  { name: "appliedEntropyCoefficient", root: "state", valid: STATE, call: (a: unknown, o: unknown) => applied(a, o) },
  { name: "adaptiveEntropyCoefficient", root: "step", valid: STEP, call: (a: unknown, o: unknown) => update(a, o) },
] as const;

const BAD_OPTION_VALUES: Record<string, readonly unknown[]> = {
  coefMin: [-1e-9, NaN, Infinity, "0", null, true, 1n, [0]],
  coefMax: [-0.5, NaN, Infinity, -Infinity, "1", null, false],
  delta: [-0.005, NaN, Infinity, "0.005", null, {}],
  targetEntropy: [NaN, Infinity, -Infinity, "0.2", null, [0.2]],
};
const BAD_INPUT_VALUES: Record<string, readonly unknown[]> = {
  coef: [-1e-12, NaN, Infinity, "0.01", null, undefined, true],
  lastEntropy: [NaN, Infinity, -Infinity, "0.2", null, undefined],
  entropySum: [-1, NaN, Infinity, "3", null, undefined, [1]],
  tokens: [-1, NaN, Infinity, "4", null, undefined, 4n],
};

describe("class 1: strict options, state and step, the closest key suggested", () => {
  it.each(CALLS.map((c) => [c.name, c] as const))("%s: the valid call is accepted, every value finite", (_n, c) => {
    expectAllFinite(returned(attempt(() => c.call(c.valid, OPTIONS))));
  });

  it.each(CALLS.map((c) => [c.name, c] as const))("%s: every misspelt option key is refused at that key", (_n, c) => {
    const known = Object.keys(OPTIONS);
    for (const key of known) {
      for (const typo of misspellings(key).filter((k) => !known.includes(k))) {
        const { [key as keyof typeof OPTIONS]: value, ...rest } = OPTIONS;
        const error = expectRefusedAt(
          attempt(() => c.call(c.valid, { ...rest, [typo]: value })),
          `options.${typo}`,
        );
        expect(error.issues.find((i) => i.path === `options.${typo}`)!.message).toMatch(/^unknown key/);
      }
    }
  });

  it.each(CALLS.map((c) => [c.name, c] as const))("%s: every misspelt input key is refused at that key", (_n, c) => {
    const known = Object.keys(c.valid);
    for (const key of known) {
      for (const typo of misspellings(key).filter((k) => !known.includes(k))) {
        const { [key]: value, ...rest } = c.valid as Record<string, unknown>;
        expectRefusedAt(
          attempt(() => c.call({ ...rest, [typo]: value }, OPTIONS)),
          new RegExp(`^${c.root}\\.(${typo}|${key})$`),
        );
      }
    }
  });

  it("TRL's snake_case names are refused with the option they mean", () => {
    const cases: [() => unknown, string, string][] = [
      [() => update(STEP, { target_entropy: 0.2 }), "options.target_entropy", "targetEntropy"],
      [() => applied(STATE, { coef_min: 0 }), "options.coef_min", "coefMin"],
      [() => update(STEP, { coef_max: 1 }), "options.coef_max", "coefMax"],
      [() => applied({ ...STATE, last_entropy: 0.1 }), "state.last_entropy", "lastEntropy"],
      [() => update({ ...STEP, entropy_sum: 1 }), "step.entropy_sum", "entropySum"],
    ];
    for (const [call, path, meant] of cases)
      expectRefusedAt(attempt(call), path, new RegExp(`did you mean "${meant}"`));
  });

  it("the translation's unknown GRPOConfig keys name the closest one", () => {
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: true, entropy_coef_detla: 0.01 } as never)),
      "config.entropy_coef_detla",
      /did you mean "entropy_coef_delta"/,
    );
  });
});

describe("class 2: finite inputs at the edges of float64", () => {
  it("any finite state and options: the applied coefficient is the coefficient or 0", () => {
    hostile(
      fc.record({
        coef: fc.double({ min: 0, max: 1e308, noNaN: true }),
        lastEntropy: fc.double({ noNaN: true, noDefaultInfinity: true }),
        targetEntropy: fc.double({ noNaN: true, noDefaultInfinity: true }),
      }),
      ({ coef, lastEntropy, targetEntropy }) => {
        const a = returned(attempt(() => applied({ coef, lastEntropy }, { targetEntropy })));
        expect(a).toBe(lastEntropy <= targetEntropy ? coef : 0);
      },
    );
  });

  it("any finite step: the next coefficient is finite and moves by at most delta toward its bound", () => {
    hostile(
      fc.record({
        coef: fc.double({ min: 0, max: 1e308, noNaN: true }),
        entropySum: fc.double({ min: 0, max: 1e308, noNaN: true }),
        tokens: fc.double({ min: 0, max: 1e308, noNaN: true }),
        bounds: fc.tuple(
          fc.double({ min: 0, max: 1e300, noNaN: true }),
          fc.double({ min: 0, max: 1e300, noNaN: true }),
        ),
        delta: fc.double({ min: 0, max: 1e300, noNaN: true }),
        targetEntropy: fc.double({ noNaN: true, noDefaultInfinity: true }),
      }),
      ({ coef, entropySum, tokens, bounds, delta, targetEntropy }) => {
        const [coefMin, coefMax] = bounds[0] <= bounds[1] ? bounds : [bounds[1], bounds[0]];
        const next = returned(
          attempt(() => update({ coef, entropySum, tokens }, { coefMin, coefMax, delta, targetEntropy })),
        );
        expectAllFinite(next);
        expect(next.entropy).toBe(entropySum / Math.max(tokens, 1));
        if (next.entropy <= targetEntropy) expect(next.coef).toBe(Math.min(coef + delta, coefMax));
        else expect(next.coef).toBe(Math.max(coef - delta, coefMin));
        expect(next.coef).toBeGreaterThanOrEqual(0);
      },
    );
  });
});

describe("class 3: no coercion, no non-finite value", () => {
  it.each(CALLS.map((c) => [c.name, c] as const))("%s: bad option values are refused at the option", (_n, c) => {
    for (const [key, values] of Object.entries(BAD_OPTION_VALUES)) {
      for (const bad of values)
        expectRefusedAt(
          attempt(() => c.call(c.valid, { ...OPTIONS, [key]: bad })),
          `options.${key}`,
        );
    }
  });

  it.each(CALLS.map((c) => [c.name, c] as const))("%s: bad input values are refused at the field", (_n, c) => {
    for (const key of Object.keys(c.valid)) {
      for (const bad of BAD_INPUT_VALUES[key]!) {
        expectRefusedAt(
          attempt(() => c.call({ ...c.valid, [key]: bad }, OPTIONS)),
          `${c.root}.${key}`,
        );
      }
    }
  });

  it.each([null, undefined, 3, "state", [STATE]])("a state or step of %j is refused", (bad) => {
    expectRefusedAt(
      attempt(() => applied(bad)),
      /^state/,
    );
    expectRefusedAt(
      attempt(() => update(bad)),
      /^step/,
    );
  });

  it("GRPOConfig's adaptive keys refuse non-finite and mistyped values at the key", () => {
    for (const key of ["entropy_coef_min", "entropy_coef_max", "entropy_coef_delta", "entropy_target"]) {
      for (const bad of [NaN, Infinity, "0.1", null]) {
        expectRefusedAt(
          attempt(() => fromTrlConfig({ use_adaptive_entropy: true, [key]: bad } as never)),
          `config.${key}`,
        );
      }
    }
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: "true" } as never)),
      "config.use_adaptive_entropy",
    );
  });
});

describe("class 4: options that contradict each other", () => {
  it("coefMin above coefMax is refused at coefMax, by both functions and by the translation", () => {
    const options = { ...OPTIONS, coefMin: 0.5, coefMax: 0.1 };
    expectRefusedAt(
      attempt(() => applied(STATE, options)),
      "options.coefMax",
      /below coefMin 0.5/,
    );
    expectRefusedAt(
      attempt(() => update(STEP, options)),
      "options.coefMax",
      /below coefMin 0.5/,
    );
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: true, entropy_coef_min: 0.5, entropy_coef_max: 0.1 })),
      "config.entropy_coef_max",
    );
  });

  it("negative bounds or step in a GRPOConfig are refused at the TRL key that gave them", () => {
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: true, entropy_coef_min: -0.1 })),
      "config.entropy_coef_min",
    );
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: true, entropy_coef_delta: -0.005 })),
      "config.entropy_coef_delta",
    );
  });

  it("use_adaptive_entropy with top_entropy_quantile < 1 is refused (TRL's bonus and window over the kept tokens)", () => {
    expectRefusedAt(
      attempt(() => fromTrlConfig({ use_adaptive_entropy: true, top_entropy_quantile: 0.2 })),
      "config.use_adaptive_entropy",
      /not supported by grpo-roc yet/,
    );
  });
});
