/**
 * The command line checks each line with passesRolloutSchemaQuickly before rolloutSchema, and skips zod when it says
 * true: so it must say true only for what rolloutSchema accepts. Held here against the schema on rollouts built from
 * each field's likely and unlikely values (JSON values, the ids the command line reads as bigints), and on the common
 * shapes it must accept, or the quick path would never be taken.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { passesRolloutSchemaQuickly, ROLLOUT_FIELDS, rolloutSchema } from "../src/roc/schema.js";

const OUTCOMES = ["ok", "parse_error", "execution_error", "timeout", "infra_error"] as const;

/** Values of every JSON type and the edge cases of each rule (negative, fractional, unsafe, empty). */
const anyValue = fc.oneof(
  fc.constantFrom(0, -0, 1, 2, -1, 0.5, 2 ** 53, 1e300, "", "x", "ok", true, false, null, 10n, [], {}),
  fc.double(),
  fc.integer({ min: -3, max: 5 }),
  fc.string({ maxLength: 3 }),
  fc
    .array(fc.constantFrom<unknown>(...OUTCOMES, "bad", null, 1), { maxLength: 3 })
    .map((outcomes) => outcomes.map((outcome) => (typeof outcome === "string" ? { outcome } : outcome))),
);

/** The shapes a trainer writes: structured inputs, a transcript, or neither. */
const commonRollout = fc.record(
  {
    id: fc.oneof(fc.integer(), fc.string(), fc.bigInt()),
    groupId: fc.oneof(fc.integer(), fc.string(), fc.double({ min: -1e6, max: 1e6, noNaN: true })),
    reward: fc.double({ noNaN: true, noDefaultInfinity: true }),
    correct: fc.boolean(),
    infraFailed: fc.boolean(),
  },
  { requiredKeys: ["groupId", "reward"] },
);
const structured = fc.record(
  {
    toolCalls: fc.array(
      fc.constantFrom(...OUTCOMES).map((outcome) => ({ outcome })),
      { maxLength: 5 },
    ),
    answers: fc.nat({ max: 3 }),
    turns: fc.integer({ min: 1, max: 9 }),
    formatOk: fc.boolean(),
  },
  { requiredKeys: ["toolCalls", "answers", "turns"] },
);

/** Any subset of the rollout fields, each with any value, and sometimes a key of the caller's own or a misspelt one. */
const looseRollout = fc
  .record(Object.fromEntries(ROLLOUT_FIELDS.map((field) => [field, anyValue])), { requiredKeys: [] })
  .chain((rollout) =>
    fc
      .constantFrom(undefined, "prompt", "tool_calls", "__proto__")
      // Spread into a plain object, as JSON.parse makes them (fast-check's records have no prototype).
      .map((extra) => (extra === undefined ? { ...rollout } : { ...JSON.parse(`{"${extra}":1}`), ...rollout })),
  );

/** A valid rollout of a common shape. */
const validRollout = fc
  .tuple(commonRollout, fc.option(structured, { nil: undefined }), fc.boolean())
  .map(([base, quality, text]) =>
    quality !== undefined ? { ...base, ...quality } : text ? { ...base, transcript: "t" } : { ...base },
  );

/** A valid rollout with one to three fields changed to any value or removed: near the rules' edges. */
const mutatedRollout = fc
  .tuple(
    validRollout,
    fc.array(fc.tuple(fc.constantFrom(...ROLLOUT_FIELDS), fc.option(anyValue)), { minLength: 1, maxLength: 3 }),
  )
  .map(([rollout, changes]) => {
    const changed: Record<string, unknown> = { ...rollout };
    for (const [field, value] of changes) {
      if (value === null) delete changed[field];
      else changed[field] = value;
    }
    return changed;
  });

describe("passesRolloutSchemaQuickly", () => {
  it("says true only for what rolloutSchema accepts", () => {
    fc.assert(
      fc.property(fc.oneof(looseRollout, mutatedRollout), (rollout) => {
        if (passesRolloutSchemaQuickly(rollout)) expect(rolloutSchema.safeParse(rollout).success).toBe(true);
      }),
      { numRuns: 20_000 },
    );
  });

  it("says true for the common shapes, so that the command line skips zod for them", () => {
    fc.assert(
      fc.property(validRollout, (rollout) => {
        expect(rolloutSchema.safeParse(rollout).success).toBe(true);
        expect(passesRolloutSchemaQuickly(rollout)).toBe(true);
      }),
      { numRuns: 2_000 },
    );
  });

  it("says false for what is not a plain object", () => {
    for (const value of [null, [], "x", 1, Object.create(null), new (class Rollout {})()]) {
      expect(passesRolloutSchemaQuickly(value)).toBe(false);
    }
  });
});
