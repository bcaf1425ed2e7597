/**
 * The bad-input contract for TRL's objectives without native kernels ("luspo", "vespo"), their options and their
 * translation from a GRPOConfig. Class 1: options.vespo is strict (type, range, the objective it belongs to, misspelt
 * keys), and the log-ratio clamp TRL does not have is refused; class 2: extreme but finite inputs give a finite result
 * or a ValidationError naming the row or position (LUSPO's overflowing sequence ratio, VESPO's overflowing φ, which
 * TRL would silently make 0), never NaN; LUSPO's per-token weights are refused, not averaged.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { fromTrlConfig, lossPresets, type PolicyLossOptionsInput, policyLoss } from "../../src/index.js";
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
const vespo = lossPresets.trlVespo;
const luspo = lossPresets.trlLuspo;
const withVespo = (fields: Record<string, unknown>): PolicyLossOptionsInput =>
  ({ ...vespo, vespo: { ...vespo.vespo, ...fields } }) as PolicyLossOptionsInput;

describe("class 1: options.vespo is strict", () => {
  it.each(["clip", "luspo", "dro"])("is refused with objective %s, which does not read it", (objective) => {
    const base = objective === "luspo" ? luspo : objective === "dro" ? { ...lossPresets.verlDro, droBeta: 0.1 } : {};
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { ...base, objective, vespo: vespo.vespo })),
      "options.vespo",
      /read only by the "vespo" objective/,
    );
  });

  it.each(["kPositive", "kNegative"] as const)(
    "%s: NaN, ±Infinity, strings, booleans, arrays and objects are refused at its path",
    (key) => {
      for (const bad of [NaN, Infinity, -Infinity, "2", true, [], {}, null]) {
        expectRefusedAt(
          attempt(() => policyLoss(inputs, withVespo({ [key]: bad }))),
          `options.vespo.${key}`,
        );
      }
    },
  );

  it.each(["lambdaPositive", "lambdaNegative"] as const)(
    "%s: generated values ≤ 0 and non-numbers are refused at its path",
    (key) => {
      hostile(
        fc.oneof(fc.double({ max: 0, noNaN: true }), fc.constantFrom(NaN, Infinity, "3", null, [])),
        (bad) => {
          expectRefusedAt(
            attempt(() => policyLoss(inputs, withVespo({ [key]: bad }))),
            `options.vespo.${key}`,
          );
        },
        50,
      );
    },
  );

  it('importanceWeights takes only "loss" or "phi"', () => {
    for (const bad of ["Phi", "multiply", "", 1, true, null]) {
      expectRefusedAt(
        attempt(() => policyLoss(inputs, withVespo({ importanceWeights: bad }))),
        "options.vespo.importanceWeights",
      );
    }
  });

  it.each(["kPositive", "lambdaNegative", "importanceWeights"])(
    "a misspelt %s is refused with the closest key, never a default used in its place",
    (key) => {
      for (const wrong of misspellings(key).slice(0, 6)) {
        const error = expectRefusedAt(
          attempt(() => policyLoss(inputs, { ...vespo, vespo: { [wrong]: 1 } } as PolicyLossOptionsInput)),
          `options.vespo.${wrong}`,
        );
        expect(error.message).toMatch(/did you mean/);
      }
    },
  );

  it.each([
    ["luspo", luspo],
    ["vespo", vespo],
  ] as const)(
    "%s computes its own log-ratios as TRL does: a log-ratio clamp is refused, never ignored",
    (_name, preset) => {
      expectRefusedAt(
        attempt(() => policyLoss(inputs, { ...preset, logRatioClamp: [-20, 20] })),
        "options.logRatioClamp",
        /own log-ratios/,
      );
    },
  );

  it("luspo reads δ (TRL's clip branch): a δ ≤ 1 is refused as for clip", () => {
    expectRefusedAt(
      attempt(() => policyLoss(inputs, { ...luspo, delta: 1 })),
      "options.delta",
    );
  });
});

describe("class 2: extreme finite inputs give finite results or a refusal naming the row", () => {
  const { logRatio, logp, advantage } = extremeLossTerms;
  const vespoParameters = fc.record({
    kPositive: fc.double({ min: -50, max: 50, noNaN: true }),
    lambdaPositive: fc.double({ min: 1e-4, max: 50, noNaN: true }),
    kNegative: fc.double({ min: -50, max: 50, noNaN: true }),
    lambdaNegative: fc.double({ min: 1e-4, max: 50, noNaN: true }),
    importanceWeights: fc.constantFrom("loss" as const, "phi" as const),
  });

  it.each(["luspo", "vespo"] as const)("%s", (name) => {
    hostile(
      fc.record({
        logp: fc.array(logp, { minLength: 4, maxLength: 4 }),
        logRatio: fc.array(logRatio, { minLength: 4, maxLength: 4 }),
        advantages: fc.array(advantage, { minLength: 2, maxLength: 2 }),
        rowWeights: fc.option(fc.array(fc.double({ min: 0, max: 1e6, noNaN: true }), { minLength: 2, maxLength: 2 })),
        parameters: vespoParameters,
      }),
      (r) => {
        const weights = r.rowWeights === null ? null : [0, 1, 2, 3].map((i) => r.rowWeights![Math.floor(i / 2)]!);
        const options = name === "luspo" ? luspo : { ...vespo, vespo: r.parameters };
        expectFiniteLossOrRefusedAtLogp(r, weights, options);
      },
      150,
    );
  });

  it("luspo: a row whose sequence ratio overflows float64 is refused at the row (TRL gives NaN or ±∞)", () => {
    expectRefusedAt(
      attempt(() => policyLoss({ logp: [[-1, -1]], oldLogp: [[-801, -801]], advantages: [1] }, luspo)),
      "inputs.logp[0]",
      /sequence ratio .* overflows/,
    );
  });

  it("luspo: per-token importance weights are refused at the first that differs from its row's", () => {
    const outcome = attempt(() =>
      policyLoss(
        {
          logp: [
            [-1, -2, -3],
            [-1, -1, -1],
          ],
          advantages: [1, -1],
          mask: [
            [1, 1, 0],
            [1, 1, 1],
          ],
          importanceWeights: [
            [0.5, 0.5, 9],
            [1, 1, 2],
          ],
        },
        luspo,
      ),
    );
    // The masked 9 is never read: row 1's third weight is the first that differs.
    expectRefusedAt(outcome, "inputs.importanceWeights[1][2]", /one weight per row/);
  });

  it("vespo: a φ that overflows float64 is refused at the row (TRL's nan_to_num would make it 0)", () => {
    const outcome = attempt(() =>
      policyLoss({ logp: [[-1, -1]], oldLogp: [[19, 19]], advantages: [1] }, withVespo({ kPositive: -100 })),
    );
    expectRefusedAt(outcome, "inputs.logp[0]", /φ .* nan_to_num/);
  });

  it('vespo "phi": a zero weight (TRL\'s *_mask rejection) adds log 1e-8 and drives φ to about 0, finitely', () => {
    const result = returned(
      attempt(() =>
        policyLoss(
          { logp: [[-1, -1]], advantages: [1], importanceWeights: [[0, 1]] },
          withVespo({ importanceWeights: "phi" }),
        ),
      ),
    );
    // log w = log 1e-8: φ = exp(3 + 2·log 1e-8 − 3·1e-8) = e³·1e-16.
    expect(result.metrics.phiMean).toBeCloseTo(Math.exp(3 + 2 * Math.log(1e-8) - 3e-8), 30);
    expectAllFinite({ loss: result.loss, grad: result.grad });
  });

  it("vespo and luspo never read masked positions: NaN and ±Infinity there change nothing", () => {
    for (const options of [luspo, vespo]) {
      const clean = policyLoss({ ...inputs, mask: [[1, 0, 1]] }, options);
      const dirty = policyLoss(
        { ...inputs, logp: [[-1, NaN, -0.5]], oldLogp: [[-1.1, Infinity, -0.4]], mask: [[1, 0, 1]] },
        options,
      );
      expect(dirty.loss).toBe(clean.loss);
      expect([...dirty.grad]).toEqual([...clean.grad]);
    }
  });
});

describe("fromTrlConfig: luspo and vespo refuse what TRL computes over padding, and never guess", () => {
  it("vespo's parameters must be finite numbers, at their TRL names", () => {
    for (const key of ["vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg"]) {
      for (const bad of [NaN, Infinity, "2", null]) {
        expectRefusedAt(
          attempt(() => fromTrlConfig({ loss_type: "vespo", [key]: bad } as never)),
          `config.${key}`,
        );
      }
    }
  });

  it("vespo: a λ ≤ 1e-4 is clamped to float32 1e-4, as TRL's get_gamma_weights does", () => {
    const { loss } = fromTrlConfig({ loss_type: "vespo", vespo_lambda_neg: -2 });
    expect(loss.vespo).toMatchObject({ lambdaNegative: Math.fround(1e-4) });
  });

  it("luspo: token-level ratios, β·KL and the entropy mask are refused (TRL's mean then counts padding)", () => {
    expectRefusedAt(
      attempt(() => fromTrlConfig({ loss_type: "luspo" })),
      "config.importance_sampling_level",
      /padding/,
    );
    expectRefusedAt(
      attempt(() =>
        fromTrlConfig({
          loss_type: "luspo",
          importance_sampling_level: "sequence",
          beta: 0.1,
          use_bias_correction_kl: true,
        }),
      ),
      "config.beta",
      /padding/,
    );
    expectRefusedAt(
      attempt(() =>
        fromTrlConfig({ loss_type: "luspo", importance_sampling_level: "sequence", top_entropy_quantile: 0.5 }),
      ),
      "config.top_entropy_quantile",
    );
  });

  it("vespo with a sequence-level vLLM mode, or a clip range that excludes 1, is refused", () => {
    expectRefusedAt(
      attempt(() =>
        fromTrlConfig({ loss_type: "vespo", use_vllm: true, vllm_importance_sampling_mode: "sequence_mask" }),
      ),
      "config.vllm_importance_sampling_mode",
    );
    expectRefusedAt(
      attempt(() =>
        fromTrlConfig({
          loss_type: "vespo",
          use_vllm: true,
          vllm_importance_sampling_mode: "token_truncate",
          vllm_importance_sampling_clip_min: 1.5,
          vllm_importance_sampling_clip_max: 3,
        }),
      ),
      // The mode's own translation comes first while grpo-roc does not translate vLLM's modes yet.
      /^config\.vllm_importance_sampling_(mode|clip_min)$/,
    );
  });
});
