/**
 * Class 1 of the bad-input contract: every options (and inputs) object is strict. A misspelt key is an error at
 * that key's path that suggests the key meant, never a default silently used in its place; a list that repeats an
 * entry is an error.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  advantages,
  aggregate,
  lossPresets,
  penalties,
  policyLoss,
  policyLossFromLogits,
  resampleOnCorrect,
  rocPipeline,
  rocPresets,
  rolloutSchema,
  TOOL_OUTCOMES,
  tokenEntropy,
  tokenEntropyBackward,
  tokenLogProbs,
  toolCallSchema,
  tokenLogProbsBackward,
} from "../../src/index.js";
import { attempt, expectRefusedAt, hostile, misspellings } from "./shared.js";

const rollouts = [1, 0, 1, 0].map((reward, i) => ({
  groupId: "q",
  reward,
  toolCalls: [],
  answers: 1,
  turns: 1,
  id: i,
}));
const lossInputs = { logp: [[-1, -2]], oldLogp: [[-1.1, -2]], advantages: [1], mask: [[1, 1]] };
const logits = { data: new Float64Array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), shape: [1, 2, 3] as const };
const tokens = [[0, 2]];
const quality = {
  toolOutcomes: { ok: 1, parse_error: 0, execution_error: 1, timeout: 0, infra_error: 0 },
  answers: 1,
  turns: 2,
  formatOk: true,
};
const penaltyOptions = { failureKinds: ["timeout"], penaltyWeights: { error: 1, format: 1 }, noToolCallPenalty: 0.5 };

/** An object whose keys are all misspelt in turn: where it goes, its path, and how the call is made with it. */
interface StrictObject {
  readonly label: string;
  readonly path: string;
  readonly value: Record<string, unknown>;
  readonly call: (object: Record<string, unknown>) => unknown;
}

const OBJECTS: readonly StrictObject[] = [
  {
    label: "advantages options",
    path: "options",
    value: {
      estimator: "grpo",
      scaleByStd: true,
      stdScope: "group",
      epsilon: 1e-6,
      unbiasedStd: true,
      singleton: "raw",
    },
    call: (options) => advantages([1, 0], ["a", "a"], options),
  },
  {
    label: "resampleOnCorrect options",
    path: "options",
    value: {
      ...rocPresets.reference,
      keepPerGroup: 2,
      seed: 1,
      undersized: "drop",
      minNegatives: 1,
      minPositives: 1,
      noToolCallPenalty: 0.5,
    },
    call: (options) => resampleOnCorrect(rollouts, options as never),
  },
  {
    label: "resampleOnCorrect options.penaltyWeights",
    path: "options.penaltyWeights",
    value: { error: 1, format: 1 },
    call: (penaltyWeights) => resampleOnCorrect(rollouts, { keepPerGroup: 2, seed: 1, penaltyWeights } as never),
  },
  {
    label: "rocPipeline options",
    path: "options",
    value: { roc: { keepPerGroup: 2, seed: 1 }, advantages: { epsilon: 1e-6 } },
    call: (options) => rocPipeline(rollouts, options as never),
  },
  {
    label: "policyLoss options",
    path: "options",
    value: { ...lossPresets.reference, entropyCoef: 0, sapoTemperature: { positive: 1, negative: 1.05 } },
    call: (options) => policyLoss(lossInputs, options),
  },
  {
    label: "policyLoss options.normalizer",
    path: "options.normalizer",
    value: {
      tokens: 2,
      sequences: 1,
      rows: 1,
      length: 2,
      dpSize: 1,
      gradientAccumulationSteps: 1,
      verlVersion: "1dda039",
    },
    call: (normalizer) => policyLoss(lossInputs, { normalizer }),
  },
  {
    label: "policyLoss options.kl",
    path: "options.kl",
    value: { kind: "k3", coef: 0.1, clamp: true, importanceCorrected: false },
    call: (kl) => policyLoss({ ...lossInputs, refLogp: [[-1, -2]] }, { kl: kl as never }),
  },
  {
    label: "policyLoss options.sapoTemperature",
    path: "options.sapoTemperature",
    value: { positive: 1, negative: 1.05 },
    call: (sapoTemperature) => policyLoss(lossInputs, { objective: "sapo", sapoTemperature: sapoTemperature as never }),
  },
  {
    label: "policyLoss inputs",
    path: "inputs",
    value: { ...lossInputs, refLogp: [[-1, -2]], importanceWeights: [[1, 1]], entropy: [[1, 1]] },
    call: (inputs) => policyLoss(inputs as never),
  },
  {
    label: "policyLoss into",
    path: "into",
    value: { grad: new Float64Array(2), perTokenLoss: new Float64Array(2) },
    call: (into) => policyLoss(lossInputs, {}, into as never),
  },
  {
    label: "aggregate options",
    path: "options",
    value: { mask: [[1, 1]], aggregation: "token-mean", normalizer: { tokens: 2 } },
    call: (options) => aggregate([[1, 2]], options as never),
  },
  {
    label: "tokenLogProbs options",
    path: "options",
    value: { temperature: 1, entropy: true, mask: [[1, 1]] },
    call: (options) => tokenLogProbs(logits, tokens, options),
  },
  {
    label: "tokenLogProbsBackward options",
    path: "options",
    value: { temperature: 1, mask: [[1, 1]], gradLogp: [[1, 1]], gradEntropy: [[0, 0]] },
    call: (options) => tokenLogProbsBackward(logits, tokens, options as never),
  },
  {
    label: "tokenEntropy options",
    path: "options",
    value: { temperature: 1, mask: [[1, 1]] },
    call: (options) => tokenEntropy(logits, options),
  },
  {
    label: "tokenEntropyBackward options",
    path: "options",
    value: { temperature: 1, mask: [[1, 1]], gradEntropy: [[1, 1]] },
    call: (options) => tokenEntropyBackward(logits, options as never),
  },
  {
    label: "policyLossFromLogits inputs",
    path: "inputs",
    value: { logits, tokens, oldLogp: [[-1, -1]], advantages: [1], mask: [[1, 1]] },
    call: (inputs) => policyLossFromLogits(inputs as never),
  },
  {
    label: "policyLossFromLogits options",
    path: "options",
    value: { ...lossPresets.paper, temperature: 0.7 },
    call: (options) => policyLossFromLogits({ logits, tokens, advantages: [1] }, options),
  },
  {
    label: "penalties options",
    path: "options",
    value: penaltyOptions,
    call: (options) => penalties(quality, options as never),
  },
  {
    label: "a flat matrix",
    path: "inputs.logp",
    value: { data: [-1, -2], shape: [1, 2] },
    call: (logp) => policyLoss({ logp: logp as never, advantages: [1] }),
  },
  {
    label: "flat logits",
    path: "logits",
    value: { data: new Float64Array(6), shape: [1, 2, 3] },
    call: (flat) => tokenLogProbs(flat as never, tokens),
  },
];

describe("class 1: strict objects — a misspelt key is an error that names it and suggests the key meant", () => {
  it.each(OBJECTS.map((o) => [o.label, o] as const))("%s: the valid object is accepted", (_label, o) => {
    const outcome = attempt(() => o.call({ ...o.value }));
    if (!outcome.ok) throw outcome.error;
  });

  it.each(OBJECTS.map((o) => [o.label, o] as const))("%s: every misspelling of every key", (_label, o) => {
    const known = Object.keys(o.value);
    let tried = 0;
    for (const key of known) {
      for (const typo of misspellings(key).filter((k) => !known.includes(k))) {
        const { [key]: original, ...rest } = o.value;
        const error = expectRefusedAt(
          attempt(() => o.call({ ...rest, [typo]: original })),
          `${o.path}.${typo}`,
        );
        const issue = error.issues.find((i) => i.path === `${o.path}.${typo}`)!;
        expect(issue.message).toMatch(/^unknown key/);
        // Two neighbours swapped, or snake_case for camelCase: one edit away, the suggestion is the key itself.
        const swapped = typo.length === key.length && [...typo].sort().join("") === [...key].sort().join("");
        const snake = typo === key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
        if (swapped || snake) expect(issue.message).toBe(`unknown key; did you mean "${key}"?`);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(known.length);
  });

  it.each(OBJECTS.map((o) => [o.label, o] as const))(
    "%s: a key unlike any known one lists the known keys",
    (_label, o) => {
      const error = expectRefusedAt(
        attempt(() => o.call({ ...o.value, zzzzzzzz: 1 })),
        `${o.path}.zzzzzzzz`,
      );
      expect(error.message).toContain("known keys: ");
    },
  );
});

describe("class 1: lists", () => {
  it("failureKinds that repeat a kind are an error, in RoC and in penalties", () => {
    const twice = ["timeout", "timeout"];
    expectRefusedAt(
      attempt(() => resampleOnCorrect(rollouts, { keepPerGroup: 2, seed: 1, failureKinds: twice as never })),
      "options.failureKinds",
      /lists a failure kind twice/,
    );
    expectRefusedAt(
      attempt(() => penalties(quality, { ...penaltyOptions, failureKinds: twice } as never)),
      "options.failureKinds",
    );
  });

  it("a rollout field spelt the Python way is reported with the field meant", () => {
    const snake = [{ groupId: "q", reward: 1, tool_calls: [], answers: 1, turns: 1 }];
    expectRefusedAt(
      attempt(() => resampleOnCorrect(snake as never, { keepPerGroup: 1, seed: 1 })),
      "rollouts[0].tool_calls",
      /did you mean "toolCalls"/,
    );
  });

  it("fields of the caller's own on a rollout are left alone", () => {
    const extra = rollouts.map((r) => ({ ...r, prompt: "2 + 2", sandboxLog: [] }));
    expect(resampleOnCorrect(extra, { keepPerGroup: 2, seed: 1 }).kept.length).toBe(2);
  });
});

describe("class 1: tool calls", () => {
  // Rollouts check valid tool calls in place rather than through toolCallSchema (for speed); this holds the two to
  // one verdict: the same calls refused, at the same paths, with the same messages.
  const call = fc.oneof(
    fc.record({ outcome: fc.constantFrom(...TOOL_OUTCOMES) }),
    fc.record({ outcome: fc.constantFrom(...TOOL_OUTCOMES), stdout: fc.string() }),
    fc.record({ outcome: fc.anything() }, { requiredKeys: [] }),
    fc.constantFrom("ok", null, undefined, 0, [], [{ outcome: "ok" }]),
    fc.anything(),
  );
  it("a rollout's toolCalls are refused exactly where toolCallSchema refuses them", () => {
    const issuesOf = (result: z.ZodSafeParseResult<unknown>) =>
      (result.error?.issues ?? []).map(({ path, message }) => `${path.join(".")}: ${message}`);
    hostile(fc.array(call, { maxLength: 6 }), (toolCalls) => {
      const rollout = { groupId: "q", reward: 1, toolCalls, answers: 1, turns: 1 };
      const outcome = attempt(() => rolloutSchema.parse(rollout));
      const expected = issuesOf(z.array(toolCallSchema).safeParse(toolCalls)).map((issue) => `toolCalls.${issue}`);
      expect(outcome.ok ? [] : issuesOf({ success: false, error: outcome.error as z.ZodError })).toEqual(expected);
    });
  });
});
