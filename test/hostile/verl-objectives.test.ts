/**
 * The bad-input contract for the objectives without native kernels (verl's "dppo-tv", "dppo-kl", "dro", "gmpo",
 * "kl-cov", "clip-cov"; TRL's "luspo", "vespo", whose own options are in test/hostile/trl-objectives.test.ts) and
 * their options (ratioCap, droBeta, klCov, clipCov). Class 1: every option is strict (type, range, objective it
 * belongs to, misspelt keys); class 2: extreme but finite inputs give a finite result or a
 * ValidationError naming the position; class 8: empty and fully masked batches give loss 0 and every metric finite.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { lossPresets, type PolicyLossOptionsInput, policyLoss, REFERENCE_OBJECTIVES } from "../../src/index.js";
import {
  attempt,
  expectAllFinite,
  expectFiniteLossOrRefusedAtLogp,
  expectRefusedAt,
  extremeLossTerms,
  hostile,
  misspellings,
  returned,
} from "./shared.js";

const inputs = { logp: [[-1, -2, -0.5]], oldLogp: [[-1.1, -2, -0.4]], advantages: [1], mask: [[1, 1, 1]] };

/** Each objective's preset, completed where verl has no default (DRO's β). */
const PRESETS: Record<(typeof REFERENCE_OBJECTIVES)[number], PolicyLossOptionsInput> = {
  "dppo-tv": lossPresets.verlDppoTv,
  "dppo-kl": lossPresets.verlDppoKl,
  dro: { ...lossPresets.verlDro, droBeta: 0.1 },
  gmpo: lossPresets.verlGmpo,
  "kl-cov": lossPresets.verlKlCov,
  "clip-cov": lossPresets.verlClipCov,
  luspo: lossPresets.trlLuspo,
  vespo: lossPresets.trlVespo,
};

/** Values that are not a valid number for any of these options. */
const NOT_A_NUMBER: readonly unknown[] = [NaN, Infinity, -Infinity, "0.1", true, [], {}, -1];

describe("class 1: the objectives' options are strict", () => {
  it.each([
    ["ratioCap", "clip", 3],
    ["ratioCap", "dro", 3],
    ["droBeta", "dppo-tv", 0.1],
    ["klCov", "clip-cov", { ratio: 0.1 }],
    ["clipCov", "kl-cov", { ratio: 0.1 }],
    ["clipCov", "clip", {}],
  ] as const)("%s is refused with objective %s, which does not read it", (field, objective, value) => {
    const base = { ...PRESETS[objective as keyof typeof PRESETS], objective };
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { ...base, [field]: value })),
      `options.${field}`,
      /read only by/,
    );
  });

  it.each([
    ["droBeta", "dro"],
    ["klCov", "kl-cov"],
    ["clipCov", "clip-cov"],
  ] as const)("%s is required by %s (verl has no usable default)", (field, objective) => {
    const options = { ...PRESETS[objective], [field]: null };
    expectRefusedAt(
      attempt(() => policyLoss(inputs, options)),
      `options.${field}`,
      /needs it/,
    );
  });

  it.each(REFERENCE_OBJECTIVES)(
    "%s has no dual clip (and no δ but luspo's): both are refused, never ignored",
    (name) => {
      const dualClip = attempt(() => policyLoss(inputs, { ...PRESETS[name], dualClip: 3 }));
      expectRefusedAt(dualClip, "options.dualClip", name.startsWith("dppo") ? /ratioCap/ : /no dual clip/);
      const delta = attempt(() => policyLoss(inputs, { ...PRESETS[name], delta: 2 }));
      // LUSPO shares TRL's clip branch, δ included.
      if (name === "luspo") returned(delta);
      else expectRefusedAt(delta, "options.delta");
    },
  );

  it("lossPresets.verlDro alone is refused at options.droBeta: verl's dro_beta is None and raises", () => {
    expectRefusedAt(
      attempt(() => policyLoss(inputs, lossPresets.verlDro)),
      "options.droBeta",
    );
  });

  it.each([
    ["ratioCap", "dppo-tv"],
    ["droBeta", "dro"],
  ] as const)(
    "%s: NaN, ±Infinity, strings, booleans, arrays, objects and values ≤ 0 are refused",
    (field, objective) => {
      for (const bad of [...NOT_A_NUMBER, 0]) {
        expectRefusedAt(
          attempt(() => policyLoss(inputs, { ...PRESETS[objective], [field]: bad })),
          `options.${field}`,
        );
      }
    },
  );

  it.each([
    ["klCov", "ratio", "kl-cov"],
    ["klCov", "coef", "kl-cov"],
    ["clipCov", "ratio", "clip-cov"],
    ["clipCov", "lowerBound", "clip-cov"],
    ["clipCov", "upperBound", "clip-cov"],
    ["clipCov", "seed", "clip-cov"],
  ] as const)("%s.%s: generated bad values are refused at their path", (field, key, objective) => {
    const preset = PRESETS[objective] as Record<string, Record<string, unknown>>;
    const badValues = fc.oneof(
      fc.constantFrom(...NOT_A_NUMBER.filter((v) => (key === "ratio" || key === "coef" ? true : v !== -1))),
      key === "ratio"
        ? fc.oneof(fc.double({ min: 1.0000001, max: 1e6, noNaN: true }), fc.double({ max: 0, noNaN: true }))
        : key === "seed"
          ? fc.double({ min: -1e6, max: 1e6, noNaN: true }).filter((x) => !Number.isInteger(x))
          : fc.constant(NaN),
    );
    hostile(
      badValues,
      (bad) => {
        const options = { ...PRESETS[objective], [field]: { ...preset[field], [key]: bad } };
        expectRefusedAt(
          attempt(() => policyLoss(inputs, options)),
          new RegExp(`^options\\.${field}`),
        );
      },
      50,
    );
  });

  it("clipCov: lowerBound must be below upperBound", () => {
    const options = { ...lossPresets.verlClipCov, clipCov: { ratio: 1, lowerBound: 2, upperBound: 2 } };
    expectRefusedAt(
      attempt(() => policyLoss(inputs, options)),
      "options.clipCov.upperBound",
      /below upperBound/,
    );
  });

  it.each([
    ["klCov", "kl-cov", "ratio"],
    ["klCov", "kl-cov", "coef"],
    ["clipCov", "clip-cov", "lowerBound"],
    ["clipCov", "clip-cov", "seed"],
  ] as const)("%s: a misspelt key is refused, never a default used in its place", (field, objective, key) => {
    for (const wrong of misspellings(key).slice(0, 6)) {
      const options = { ...PRESETS[objective], [field]: { [wrong]: 0.5 } };
      expectRefusedAt(
        attempt(() => policyLoss(inputs, options)),
        new RegExp(`^options\\.${field}`),
      );
    }
  });
});

/** LUSPO takes one importance weight per row (TRL's sequence ratio): a drawn [2, 2] is made constant along rows. */
const weightsFor = (name: string, weights: number[] | null) =>
  weights === null || name !== "luspo" ? weights : [weights[0]!, weights[0]!, weights[2]!, weights[2]!];

describe("class 2: extreme finite inputs give finite results or a refusal at the position", () => {
  const { logRatio, logp, advantage } = extremeLossTerms;

  it.each(REFERENCE_OBJECTIVES)("%s", (name) => {
    hostile(
      fc.record({
        logp: fc.array(logp, { minLength: 4, maxLength: 4 }),
        logRatio: fc.array(logRatio, { minLength: 4, maxLength: 4 }),
        advantages: fc.array(advantage, { minLength: 2, maxLength: 2 }),
        weights: fc.option(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 4, maxLength: 4 })),
      }),
      (r) => expectFiniteLossOrRefusedAtLogp(r, weightsFor(name, r.weights), PRESETS[name]),
      150,
    );
  });

  it("dppo-kl: a log-prob above 0 (π > 1) makes verl's binary KL NaN: refused at the token, never decided on", () => {
    const outcome = attempt(() =>
      policyLoss({ logp: [[-1, 0.5]], oldLogp: [[-1, -0.2]], advantages: [1] }, lossPresets.verlDppoKl),
    );
    expectRefusedAt(outcome, "inputs.logp[0][1]", /non-finite policy term/);
  });

  it("kl-cov, clip-cov, gmpo: a non-finite log-prob at a valid position is refused before the batch step", () => {
    for (const name of ["kl-cov", "clip-cov", "gmpo"] as const) {
      const outcome = attempt(() =>
        policyLoss({ logp: [[-1, NaN]], oldLogp: [[-1, -1]], advantages: [1] }, PRESETS[name]),
      );
      expectRefusedAt(outcome, "inputs.logp[0][1]", /is NaN/);
    }
  });
});

describe("class 8: empty batches and fully masked ones", () => {
  it.each(REFERENCE_OBJECTIVES)("%s: loss 0, gradients 0, every metric finite", (name) => {
    const empty = returned(
      attempt(() => policyLoss({ logp: { data: [], shape: [0, 0] }, advantages: [] }, PRESETS[name])),
    );
    expect(empty.loss).toBe(0);
    const masked = returned(
      attempt(() => policyLoss({ ...inputs, logp: [[-1, NaN, 3]], mask: [[0, 0, 0]] }, PRESETS[name])),
    );
    expect(masked.loss).toBe(0);
    expect([...masked.grad].every((g) => g === 0)).toBe(true);
    expectAllFinite({ ...masked.metrics });
  });
});
