/**
 * Class 1 of the bad-input contract for infrastructure failures: the rollout field `infraFailed`, the outcome
 * "infra_error", the option `infraFailures` and `isInfraFailed` refuse every value they do not document, at the
 * field, with a message that names the rule; a spelling of `infraFailed` another way is a typo, never the caller's
 * own field. (The option's misspellings are driven with the other options' in options.test.ts.)
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  isInfraFailed,
  penalties,
  resampleOnCorrect,
  rocPipeline,
  TOOL_FAILURES,
  type Rollout,
} from "../../src/index.js";
import { attempt, expectRefusedAt, hostile, returned } from "./shared.js";

const rollout = (extra: Record<string, unknown>) => ({
  groupId: "q",
  reward: 1,
  toolCalls: [{ outcome: "ok" }],
  answers: 1,
  turns: 1,
  ...extra,
});
const batch = (extra: Record<string, unknown>) => [rollout(extra), rollout({ reward: 0 })] as Rollout[];
const options = { keepPerGroup: 2, seed: 1 };

describe("class 1: the infraFailed field", () => {
  it("anything but a boolean (or leaving it out) is refused at rollouts[i].infraFailed", () => {
    hostile(fc.anything(), (value) => {
      const outcome = attempt(() => resampleOnCorrect(batch({ infraFailed: value }), options));
      if (typeof value === "boolean" || value === undefined) {
        // Failed, the rollout leaves its partner alone in the group: no signal, both dropped.
        expect(returned(outcome).kept.length).toBe(value === true ? 0 : 2);
        return;
      }
      expectRefusedAt(outcome, "rollouts[0].infraFailed", /expected boolean/);
    });
    for (const value of ["yes", "true", 1, 0, null, [true], { value: true }]) {
      expectRefusedAt(
        attempt(() => rocPipeline(batch({ infraFailed: value }), { roc: options })),
        "rollouts[0].infraFailed",
        /expected boolean/,
      );
    }
  });

  it("infra_failed and the other spellings of infraFailed are typos, reported with the field meant", () => {
    for (const key of ["infra_failed", "InfraFailed", "infra-failed", "INFRA_FAILED", "infrafailed"]) {
      expectRefusedAt(
        attempt(() => resampleOnCorrect(batch({ [key]: true }), options)),
        `rollouts[0].${key}`,
        /not a rollout field; did you mean "infraFailed"\?/,
      );
    }
  });

  it("isInfraFailed validates its rollout as RoC does: anything malformed is refused at rollout.<field>", () => {
    hostile(fc.anything(), (value) => {
      const outcome = attempt(() => isInfraFailed(value as never));
      if (outcome.ok) {
        // Only a rollout RoC would accept gets an answer.
        expect(typeof outcome.value).toBe("boolean");
        expect(() => resampleOnCorrect([value as Rollout], { keepPerGroup: 1, seed: 0 })).not.toThrow();
        return;
      }
      expectRefusedAt(outcome, /^rollout(\.|$)/);
    });
    expectRefusedAt(
      attempt(() => isInfraFailed(rollout({ infra_failed: true }) as never)),
      "rollout.infra_failed",
    );
    expectRefusedAt(
      attempt(() => isInfraFailed(rollout({ infraFailed: "yes" }) as never)),
      "rollout.infraFailed",
    );
  });
});

describe("class 1: the infra_error outcome", () => {
  it("other spellings of infra_error are refused with the list of outcomes", () => {
    for (const outcome of [
      "infra-error",
      "INFRA_ERROR",
      "infraError",
      "infra",
      "infrastructure_error",
      "infra_error ",
    ]) {
      expectRefusedAt(
        attempt(() => resampleOnCorrect(batch({ toolCalls: [{ outcome: "ok" }, { outcome }] }), options)),
        "rollouts[0].toolCalls[1].outcome",
        /outcome must be one of ok, parse_error, execution_error, timeout, infra_error/,
      );
    }
  });

  it("infra_error is not a failure kind: failureKinds listing it is refused, in RoC and in penalties", () => {
    for (const failureKinds of [["infra_error"], [...TOOL_FAILURES, "infra_error"]]) {
      expectRefusedAt(
        attempt(() => resampleOnCorrect(batch({}), { ...options, failureKinds } as never)),
        /^options\.failureKinds\[\d\]$/,
      );
      expectRefusedAt(
        attempt(() =>
          penalties(
            {
              toolOutcomes: { ok: 1, parse_error: 0, execution_error: 0, timeout: 0, infra_error: 1 },
              answers: 1,
              turns: 1,
              formatOk: true,
            },
            { failureKinds, penaltyWeights: { error: 1, format: 1 }, noToolCallPenalty: 0.5 } as never,
          ),
        ),
        /^options\.failureKinds\[\d\]$/,
      );
    }
  });

  it("a quality record without its infra_error count, or with a bad one, is refused at that count", () => {
    const toolOutcomes = { ok: 1, parse_error: 0, execution_error: 0, timeout: 0 };
    expectRefusedAt(
      attempt(() => penalties({ toolOutcomes, answers: 1, turns: 1, formatOk: true } as never)),
      "quality.toolOutcomes.infra_error",
    );
    hostile(fc.anything(), (value) => {
      const outcome = attempt(() =>
        penalties({
          toolOutcomes: { ...toolOutcomes, infra_error: value },
          answers: 1,
          turns: 1,
          formatOk: true,
        } as never),
      );
      if (Number.isSafeInteger(value) && (value as number) >= 0) {
        expect(returned(outcome).toolCalls).toBe(1);
        return;
      }
      expectRefusedAt(outcome, "quality.toolOutcomes.infra_error");
    });
  });
});

describe("class 1: the infraFailures option", () => {
  it('anything but "drop" or "keep" (or leaving it out) is refused at options.infraFailures', () => {
    hostile(
      fc.oneof(fc.anything(), fc.constantFrom("drop", "keep", "Drop", "KEEP", "negative", "drop ", "")),
      (value) => {
        const outcome = attempt(() =>
          resampleOnCorrect(batch({ infraFailed: true }), { ...options, infraFailures: value } as never),
        );
        if (value === "drop" || value === "keep" || value === undefined) {
          expect(returned(outcome).kept.length).toBe(value === "keep" ? 2 : 0);
          return;
        }
        expectRefusedAt(outcome, "options.infraFailures");
      },
    );
    expectRefusedAt(
      attempt(() => rocPipeline(batch({}), { roc: { ...options, infraFailures: "negative" } as never })),
      "options.infraFailures", // rocPipeline reports its roc options as resampleOnCorrect does
      /"drop"\|"keep"/,
    );
  });
});
