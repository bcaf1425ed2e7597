/**
 * The bad-input contract for createRocBatcher: strict options (class 1), no coercion of what is pushed (class 3),
 * groups that contradict themselves or the batcher's state (class 4), the empty cases (class 6) and ids (class 8).
 * Every case ends in a GrpoRocError that names the field, index and rule, or in a documented behaviour; a refused
 * call leaves the batcher as it was.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  createRocBatcher,
  GrpoRocError,
  type RocBatch,
  type RocBatcher,
  type RocBatcherOptions,
  rocPresets,
  type Rollout,
  ValidationError,
} from "../../src/index.js";
import { attempt, attemptAsync, expectRefusedAt, hostile, misspellings, returned } from "./shared.js";

const roc = { ...rocPresets.paper, keepPerGroup: 2, seed: 7 };
const valid = { groupsPerBatch: 2, roc };

function group(groupId: unknown, rewards: readonly number[]): Rollout[] {
  return rewards.map((reward, id) => ({ groupId, id, reward, toolCalls: [], answers: 1, turns: 1 }) as Rollout);
}

const informative = (id: string) => group(id, [1, 0]);

/** A batcher's batches as plain data, floats as bytes, for comparing two runs. */
function plain(batches: readonly RocBatch[]) {
  const bytes = (a: Float64Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString("hex");
  return batches.map((b) => ({
    ...b,
    advantages: bytes(b.advantages),
    groups: b.groups.map((g) => ({ ...g, kept: Array.from(g.kept), advantages: bytes(g.advantages) })),
  }));
}

describe("class 1: the batcher's options are strict", () => {
  const OBJECTS: readonly {
    label: string;
    path: string;
    value: Record<string, unknown>;
    wrap: (o: object) => object;
  }[] = [
    {
      label: "options",
      path: "options",
      value: { groupsPerBatch: 2, roc, advantages: {}, surplus: "carry", lastBatch: "emit", estimate: {} },
      wrap: (o) => o,
    },
    {
      label: "options.estimate",
      path: "options.estimate",
      value: { prior: 0.5, priorWeight: 1, window: 4, minFraction: 0.05 },
      wrap: (estimate) => ({ ...valid, estimate }),
    },
    {
      label: "options.roc",
      path: "options.roc",
      value: { ...roc, undersized: "keep", noToolCallPenalty: 0.5 },
      wrap: (o) => ({ ...valid, roc: o }),
    },
    {
      label: "options.advantages",
      path: "options.advantages",
      value: { estimator: "grpo", scaleByStd: true, stdScope: "group", epsilon: 1e-6 },
      wrap: (advantages) => ({ ...valid, advantages }),
    },
  ];

  it.each(OBJECTS.map((o) => [o.label, o] as const))("%s: the valid object is accepted", (_label, o) => {
    returned(attempt(() => createRocBatcher(o.wrap({ ...o.value }) as RocBatcherOptions)));
  });

  it.each(OBJECTS.map((o) => [o.label, o] as const))("%s: every misspelling of every key is refused", (_label, o) => {
    for (const key of Object.keys(o.value)) {
      for (const typo of misspellings(key).filter((k) => !(k in o.value))) {
        const { [key]: original, ...rest } = o.value;
        const error = expectRefusedAt(
          attempt(() => createRocBatcher(o.wrap({ ...rest, [typo]: original }) as RocBatcherOptions)),
          `${o.path}.${typo}`,
          /unknown key/,
        );
        expect(error).toBeInstanceOf(GrpoRocError);
      }
    }
  });

  it("values out of range, of the wrong type, or missing: refused at their path when the batcher is made", () => {
    const cases: [Record<string, unknown>, string, RegExp?][] = [
      [{ roc }, "options.groupsPerBatch"],
      [{ ...valid, groupsPerBatch: 0 }, "options.groupsPerBatch", />=1/],
      [{ ...valid, groupsPerBatch: 1.5 }, "options.groupsPerBatch", /int/],
      [{ ...valid, groupsPerBatch: Number.NaN }, "options.groupsPerBatch"],
      [{ ...valid, groupsPerBatch: Number.POSITIVE_INFINITY }, "options.groupsPerBatch"],
      [{ ...valid, groupsPerBatch: "2" }, "options.groupsPerBatch"],
      [{ ...valid, groupsPerBatch: 2 ** 60 }, "options.groupsPerBatch"],
      [{ groupsPerBatch: 2 }, "options.roc"],
      [{ ...valid, roc: { keepPerGroup: 2 } }, "options.roc.seed", /pass a seed/],
      [{ ...valid, roc: { ...roc, keepPerGroup: 0 } }, "options.roc.keepPerGroup"],
      [{ ...valid, advantages: { estimator: "grp0" } }, "options.advantages.estimator", /unknown estimator "grp0"/],
      [{ ...valid, advantages: { epsilon: -1 } }, "options.advantages.epsilon"],
      [{ ...valid, surplus: "keep" }, "options.surplus"],
      [{ ...valid, surplus: true }, "options.surplus"],
      [{ ...valid, lastBatch: "partial" }, "options.lastBatch"],
      [{ ...valid, estimate: { prior: 1.5 } }, "options.estimate.prior"],
      [{ ...valid, estimate: { prior: -0.1 } }, "options.estimate.prior"],
      [{ ...valid, estimate: { prior: Number.NaN } }, "options.estimate.prior"],
      [{ ...valid, estimate: { priorWeight: -1 } }, "options.estimate.priorWeight"],
      [{ ...valid, estimate: { priorWeight: Number.POSITIVE_INFINITY } }, "options.estimate.priorWeight"],
      [{ ...valid, estimate: { window: 0 } }, "options.estimate.window"],
      [{ ...valid, estimate: { window: 2.5 } }, "options.estimate.window"],
      [{ ...valid, estimate: { minFraction: 0 } }, "options.estimate.minFraction", />0/],
      [{ ...valid, estimate: { minFraction: 1.01 } }, "options.estimate.minFraction"],
      [{ ...valid, estimate: null }, "options.estimate"],
    ];
    for (const [options, path, message] of cases) {
      expectRefusedAt(
        attempt(() => createRocBatcher(options as never)),
        path,
        message,
      );
    }
    for (const options of [null, undefined, 5, "options", [], () => valid]) {
      expectRefusedAt(
        attempt(() => createRocBatcher(options as never)),
        "options",
        /expected object/,
      );
    }
  });

  it("generated: one or two fields of a valid object replaced; working, or refused at options.<field>", () => {
    const value = fc.oneof(
      fc.constantFrom(0, 1, 2, -1, 0.5, Number.NaN, 2 ** 53, "carry", "drop", "emit", null, {}, [], { prior: 0.2 }),
      fc.anything(),
    );
    const fields = ["groupsPerBatch", "roc", "advantages", "surplus", "lastBatch", "estimate"] as const;
    const replaced = fc.dictionary(fc.constantFrom(...fields), value, { minKeys: 1, maxKeys: 2 });
    hostile(replaced, (changes) => {
      const outcome = attempt(() => createRocBatcher({ ...valid, ...changes } as never));
      if (outcome.ok) {
        outcome.value.push(informative("a"));
        expect(outcome.value.status.groupsPushed).toBe(1);
        return;
      }
      expect(outcome.error).toBeInstanceOf(ValidationError);
      for (const issue of (outcome.error as ValidationError).issues) {
        expect(Object.keys(changes).some((key) => issue.path.startsWith(`options.${key}`))).toBe(true);
      }
    });
  });
});

describe("class 3: what is pushed is never coerced", () => {
  it("push: anything but an array of rollouts is refused at rollouts, naming what it received", () => {
    const batcher = createRocBatcher(valid);
    for (const [value, received] of [
      [null, "null"],
      [undefined, "undefined"],
      ["abc", "string"],
      [5, "5"],
      [{ length: 1, 0: informative("a")[0] }, "object"],
      [new Float64Array(2), "object"],
    ] as const) {
      expectRefusedAt(
        attempt(() => batcher.push(value as never)),
        "rollouts",
        new RegExp(`received ${received}`),
      );
    }
    expectRefusedAt(
      attempt(() => batcher.push([null, 1] as never)),
      "rollouts[0]",
    );
    expectRefusedAt(
      attempt(() => batcher.push([{ groupId: "a", reward: "1" }] as never)),
      "rollouts[0].reward",
    );
    expectRefusedAt(
      attempt(() => batcher.push([{ groupId: "a", reward: 1, tool_calls: [] }] as never)),
      "rollouts[0].tool_calls",
      /did you mean "toolCalls"/,
    );
    expect(batcher.status.groupsPushed).toBe(0);
  });

  it("pushRound: anything but an array of groups is refused at groups, a bad group at groups[g]", () => {
    const batcher = createRocBatcher(valid);
    for (const value of [null, "ab", 3, { 0: [] }]) {
      expectRefusedAt(
        attempt(() => batcher.pushRound(value as never)),
        "groups",
        /expected an array of groups/,
      );
    }
    expectRefusedAt(
      attempt(() => batcher.pushRound([informative("a"), 5] as never)),
      "groups[1]",
      /received 5/,
    );
    expectRefusedAt(
      attempt(() => batcher.pushRound([informative("a"), [{ groupId: "b", reward: Number.NaN }]] as never)),
      "groups[1][0].reward",
    );
    expect(batcher.status.groupsPushed).toBe(0);
  });

  it("batches: a source not iterable (or a string) is refused at once; a bad group ends the stream", async () => {
    const batcher = createRocBatcher(valid);
    for (const value of [null, 5, "groups", { next: () => ({ done: true }) }]) {
      expectRefusedAt(
        attempt(() => batcher.batches(value as never)),
        "source",
        /iterable/,
      );
    }
    const outcome = await attemptAsync(async () => {
      for await (const _ of batcher.batches([informative("a"), 7] as never));
    });
    expectRefusedAt(outcome, "rollouts", /received 7/);
    // The group before the bad one was taken; the batcher is still open, without the bad one.
    expect(batcher.status).toMatchObject({ closed: false, groupsPushed: 1, pendingGroups: 1 });
  });

  it("generated malformed groups are refused and change nothing: the batches of the valid ones alone", () => {
    const bad = fc.oneof(
      fc.anything().filter((v) => !Array.isArray(v)),
      fc.constant([]),
      fc.array(fc.anything(), { minLength: 1, maxLength: 3 }),
      fc.constant([{ groupId: "x", reward: Number.POSITIVE_INFINITY }]),
      fc.constant([{ groupId: "x", correct: "yes" }]),
    );
    const arrivals = fc.array(fc.oneof(fc.constant(undefined), bad), { minLength: 1, maxLength: 12 });
    hostile(arrivals, (values) => {
      const noisy = createRocBatcher(valid);
      const clean = createRocBatcher(valid);
      const fromNoisy: RocBatch[] = [];
      const fromClean: RocBatch[] = [];
      let comparable = true;
      values.forEach((value, k) => {
        const good = group(`p${k}`, k % 3 === 0 ? [1, 1] : [1, 0]);
        if (value !== undefined) {
          const outcome = attempt(() => noisy.push(value as never));
          // fc.anything() can build a valid group: it is then pushed like any other, and the runs differ.
          if (outcome.ok) comparable = false;
          else {
            expect(outcome.error, String(outcome.error)).toBeInstanceOf(ValidationError);
            expect((outcome.error as ValidationError).issues[0]!.path).toMatch(/^rollouts/);
          }
          return;
        }
        const batch = returned(attempt(() => noisy.push(good)));
        if (batch !== undefined) fromNoisy.push(batch);
        const cleanBatch = clean.push(good);
        if (cleanBatch !== undefined) fromClean.push(cleanBatch);
      });
      if (comparable) expect(plain([...fromNoisy, noisy.flush()])).toEqual(plain([...fromClean, clean.flush()]));
    });
  });
});

describe("class 4: groups that contradict themselves, or the batcher's state", () => {
  it("rollouts of different groups in one push are refused at the first that differs; 1 and 1n are one group", () => {
    const batcher = createRocBatcher(valid);
    const mixed = [...informative("a"), ...informative("b")];
    expectRefusedAt(
      attempt(() => batcher.push(mixed)),
      "rollouts[2].groupId",
      /is "b" but rollouts\[0\]\.groupId is "a"/,
    );
    expectRefusedAt(
      attempt(() => batcher.push([...group(1, [1]), ...group("1", [0])])),
      "rollouts[1].groupId",
    );
    expectRefusedAt(
      attempt(() => batcher.pushRound([informative("a"), [...group(2, [1]), ...group(3, [0])]])),
      "groups[1][1].groupId",
    );
    const one = [
      { ...group(5, [1])[0]!, id: 0 },
      { ...group(5n, [0])[0]!, id: 1 },
    ];
    expect(returned(attempt(() => batcher.push(one)))).toBeUndefined();
    expect(batcher.status.pendingGroups).toBe(1);
  });

  it("generated: a rollout of another group anywhere in a push is refused at its index", () => {
    const arbitrary = fc.record({
      size: fc.integer({ min: 2, max: 8 }),
      at: fc.nat(),
      other: fc.constantFrom("b", 7, 7n),
    });
    hostile(arbitrary, ({ size, at, other }) => {
      const position = 1 + (at % (size - 1));
      const rollouts = group(
        "a",
        Array.from({ length: size }, (_, i) => i % 2),
      );
      rollouts[position] = { ...rollouts[position]!, groupId: other as never };
      const batcher = createRocBatcher(valid);
      expectRefusedAt(
        attempt(() => batcher.push(rollouts)),
        `rollouts[${position}].groupId`,
        /one group at a time/,
      );
      expect(batcher.status.groupsPushed).toBe(0);
    });
  });

  it("RoC's refusals come with the batcher's names: a duplicate id, undersized: error, a penalty", () => {
    const duplicate = group("a", [1, 0, 1]).map((r, i) => ({ ...r, id: i === 2 ? 0 : i }));
    expectRefusedAt(
      attempt(() => createRocBatcher(valid).push(duplicate)),
      "rollouts[2].id",
      /duplicate id 0/,
    );
    const strict = createRocBatcher({ ...valid, roc: { ...roc, keepPerGroup: 4, undersized: "error" } });
    expectRefusedAt(
      attempt(() => strict.pushRound([group("a", [1, 0, 1])])),
      "groups[0][0].groupId",
      /fewer than/,
    );
    const penalised = createRocBatcher({ ...valid, roc: { ...roc, penalty: () => -1 } });
    expectRefusedAt(
      attempt(() => penalised.pushRound([group("a", [1, 0, 1])])),
      /^options\.roc\.penalty\(groups\[0\]\[\d\]\)$/,
      /finite number ≥ 0/,
    );
  });

  it('stdScope "batch", epsilon 0, equal singletons: refused at the batch\'s rollout, nothing changed', () => {
    const batcher = createRocBatcher({
      groupsPerBatch: 2,
      roc: { ...roc, keepPerGroup: 1 },
      advantages: { ...advantagePresets.trlBatch, epsilon: 0, singleton: "raw" },
    });
    expect(batcher.push(group("a", [1, 0]))).toBeUndefined();
    expectRefusedAt(
      attempt(() => batcher.push(group("b", [1, 0]))),
      /^batches\[0\]\.rollouts\[\d\]\.reward$/,
    );
    expect(batcher.status).toMatchObject({ groupsPushed: 1, pendingGroups: 1, batchesEmitted: 0 });
  });

  it("once flushed (or its source ended), every call is refused (GrpoRocError); status answers", async () => {
    const flushed = createRocBatcher(valid);
    flushed.flush();
    const streamed = createRocBatcher(valid);
    for await (const _ of streamed.batches([informative("a")]));
    for (const batcher of [flushed, streamed]) {
      const calls: (() => unknown)[] = [
        () => batcher.push(informative("b")),
        () => batcher.pushRound([informative("b")]),
        () => batcher.batches([]),
        () => batcher.flush(),
      ];
      for (const call of calls) {
        const outcome = attempt(call);
        expect(outcome.ok).toBe(false);
        expect(outcome.ok ? undefined : outcome.error).toBeInstanceOf(GrpoRocError);
        expect(String(outcome.ok ? "" : outcome.error)).toMatch(/closed: flush\(\)/);
      }
      expect(batcher.status.closed).toBe(true);
    }
  });
});

describe("class 6: the empty cases are defined", () => {
  it("an empty group is refused; an empty round, a flush with nothing pushed, an empty source are no-ops", async () => {
    const batcher: RocBatcher = createRocBatcher(valid);
    expectRefusedAt(
      attempt(() => batcher.push([])),
      "rollouts",
      /is empty/,
    );
    expectRefusedAt(
      attempt(() => batcher.pushRound([informative("a"), []])),
      "groups[1]",
      /is empty/,
    );
    expect(returned(attempt(() => batcher.pushRound([])))).toEqual([]);
    const last = returned(attempt(() => batcher.flush()));
    expect(last).toMatchObject({ index: 0, partial: true, groups: [], rollouts: [], dropped: [] });
    expect(last.stats).toMatchObject({ groupsSeen: 0, informativeGroups: 0, informativeFraction: null });
    const empty = returned(
      await attemptAsync(async () => {
        const batches: RocBatch[] = [];
        for await (const batch of createRocBatcher(valid).batches([])) batches.push(batch);
        return batches;
      }),
    );
    expect(empty.map((b) => [b.partial, b.groups.length])).toEqual([[true, 0]]);
  });

  it("a batcher that only ever sees uninformative groups never emits; flush reports every one of them", () => {
    const batcher = createRocBatcher({ ...valid, estimate: { priorWeight: 0 } });
    for (let k = 0; k < 50; k++) expect(returned(attempt(() => batcher.push(group(k, [1, 1]))))).toBeUndefined();
    // Fraction 0, floored at minFraction 0.05: 2 groups needed, 40 prompts.
    expect(batcher.status).toMatchObject({ groupsSeen: 50, runningInformativeFraction: 0, promptsToRequest: 40 });
    const last = batcher.flush();
    expect(last.dropped.length).toBe(50);
    expect(new Set(last.dropped.map((d) => d.reason))).toEqual(new Set(["equal-rewards"]));
  });
});

describe("class 8: identity", () => {
  it("an integer group id beyond 2^53 − 1 is refused; as a bigint it is kept exactly in the batch", () => {
    const batcher = createRocBatcher({ ...valid, groupsPerBatch: 1 });
    expectRefusedAt(
      attempt(() => batcher.push(group(2 ** 53 + 2, [1, 0]))),
      "rollouts[0].groupId",
      /bigint/,
    );
    const batch = returned(attempt(() => batcher.push(group(18446744073709551615n, [1, 0]))))!;
    expect(batch.groups[0]!.id).toBe(18446744073709551615n);
  });

  it("two pushes of one prompt are two groups, told apart by arrival, in one batch", () => {
    const batcher = createRocBatcher(valid);
    batcher.push(informative("same"));
    const batch = returned(attempt(() => batcher.push(informative("same"))))!;
    expect(batch.groups.map((g) => [g.id, g.arrival])).toEqual([
      ["same", 0],
      ["same", 1],
    ]);
    expect(batch.advantages.length).toBe(4);
  });
});
