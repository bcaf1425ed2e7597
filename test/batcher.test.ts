/**
 * createRocBatcher: worked examples, then properties against a model of the batching written here (which group goes
 * to which batch, which are dropped and why, the counts and the refill estimate). What RoC and the advantages make
 * of each group is taken from rocPipeline, which roc-properties.test.ts tests on its own: the batcher must give, per
 * group, exactly what rocPipeline gives with the seed `${seed}\u0000${arrival}`.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantagePresets,
  advantages,
  createRocBatcher,
  type GroupId,
  type RocBatch,
  type RocBatcher,
  type RocBatcherOptions,
  rocPipeline,
  rocPresets,
  type Rollout,
} from "../src/index.js";
import { HOSTILE_SEED } from "./hostile/shared.js";

/** Seeded as the hostile suite is (GRPO_ROC_HOSTILE_SEED replays a failure); fast-check prints the seed on failure. */
const property = <T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void | Promise<void>, numRuns = 150) =>
  fc.assert(
    fc.asyncProperty(arbitrary, async (value) => predicate(value)),
    { seed: HOSTILE_SEED, numRuns },
  );

/** A group of one prompt: one rollout per reward, each with one clean tool call and one answer, ids 0, 1, … */
function group(groupId: GroupId, rewards: readonly number[], fields: Partial<Rollout> = {}): Rollout[] {
  return rewards.map((reward, id) => ({
    groupId,
    id,
    reward,
    toolCalls: [{ outcome: "ok" }],
    answers: 1,
    turns: 1,
    ...fields,
  }));
}

const paper = (keepPerGroup: number, seed: string | number = 7) => ({ ...rocPresets.paper, keepPerGroup, seed });

/** A batch with its floats as bytes, so that toEqual compares them bit for bit. */
function bitwise(batch: RocBatch) {
  const bytes = (values: Float64Array) =>
    Buffer.from(values.buffer, values.byteOffset, values.byteLength).toString("hex");
  return {
    ...batch,
    advantages: bytes(batch.advantages),
    groups: batch.groups.map((g) => ({ ...g, kept: Array.from(g.kept), advantages: bytes(g.advantages) })),
  };
}

async function collect(generator: AsyncGenerator<RocBatch, void, undefined>): Promise<RocBatch[]> {
  const batches: RocBatch[] = [];
  for await (const batch of generator) batches.push(batch);
  return batches;
}

/** Pushes each group, then flushes: every batch the batcher gives. */
function pushAll(batcher: RocBatcher, groups: readonly (readonly Rollout[])[]): RocBatch[] {
  const batches: RocBatch[] = [];
  for (const g of groups) {
    const batch = batcher.push(g);
    if (batch !== undefined) batches.push(batch);
  }
  return [...batches, batcher.flush()];
}

describe("createRocBatcher: worked examples", () => {
  it("two informative groups make a batch; the all-correct group between them is dropped with its reason", () => {
    const batcher = createRocBatcher({ groupsPerBatch: 2, roc: paper(2) });
    expect(batcher.status.promptsToRequest).toBe(4); // nothing seen: the prior, 0.5, asks for twice the need
    expect(batcher.push(group("q1", [1, 0, 0, 1]))).toBeUndefined();
    expect(batcher.push(group("q2", [1, 1, 1, 1]))).toBeUndefined();
    expect(batcher.status).toMatchObject({ groupsPushed: 2, pendingGroups: 1, groupsSeen: 2, promptsToRequest: 2 });
    const batch = batcher.push(group("q3", [0, 0, 1, 0]))!;
    expect(batch.index).toBe(0);
    expect(batch.partial).toBe(false);
    expect(batch.groups.map((g) => [g.id, g.arrival, g.offset])).toEqual([
      ["q1", 0, 0],
      ["q3", 2, 2],
    ]);
    expect(batch.dropped).toEqual([
      { arrival: 1, id: "q2", reason: "equal-rewards", report: expect.objectContaining({ status: "dropped" }) },
    ]);
    // One correct and one wrong kept per group: verl's GRPO gives ±(0.5 / (std + 1e-6)), std = √0.5.
    const a = 0.5 / (Math.SQRT1_2 + 1e-6);
    for (const g of batch.groups) {
      const rewards = batch.rollouts.slice(g.offset, g.offset + g.kept.length).map((r) => r.reward);
      expect(rewards.sort()).toEqual([0, 1]);
      expect(Array.from(g.advantages)).toEqual(
        batch.rollouts.slice(g.offset, g.offset + g.kept.length).map((r) => (r.reward === 1 ? a : -a)),
      );
    }
    expect(batch.stats).toEqual({
      groupsSeen: 3,
      informativeGroups: 2,
      informativeFraction: 2 / 3,
      runningInformativeFraction: (2 + 0.5) / (3 + 1), // the prior weighs as one group
      promptsToRequest: 4, // ⌈2 / 0.625⌉
    });
    const last = batcher.flush();
    expect(last).toMatchObject({ index: 1, partial: true, groups: [], rollouts: [], dropped: [] });
    expect(batcher.status.closed).toBe(true);
  });

  it('each group is rocPipeline\'s with the seed seed + "\\u0000" + arrival; one prompt twice draws afresh', () => {
    const rollouts = group("q", [1, 1, 1, 0, 0, 0, 1, 0]);
    const batcher = createRocBatcher({ groupsPerBatch: 1, roc: paper(4, "step-3") });
    const selections = new Set<string>();
    for (let arrival = 0; arrival < 12; arrival++) {
      const batch = batcher.push(rollouts)!;
      const expected = rocPipeline(rollouts, { roc: paper(4, `step-3\u0000${arrival}`) });
      expect(Array.from(batch.groups[0]!.kept)).toEqual(Array.from(expected.kept));
      expect(Array.from(batch.advantages)).toEqual(Array.from(expected.advantages));
      selections.add(Array.from(expected.kept).join(","));
    }
    expect(selections.size).toBeGreaterThan(1);
  });

  it("a group whose kept advantages are all 0 is dropped: 32 → 16 with one wrong rollout keeps 16 correct", () => {
    const batcher = createRocBatcher({ groupsPerBatch: 1, roc: paper(16), lastBatch: "drop" });
    expect(batcher.push(group("q", [...Array(31).fill(1), 0]))).toBeUndefined();
    // Without the equal-reward filter, an all-equal group reaches RoC, is kept whole, and carries no signal either.
    const unfiltered = createRocBatcher({ groupsPerBatch: 1, roc: { ...paper(2), filterEqualRewards: false } });
    expect(unfiltered.push(group("q", [1, 1]))).toBeUndefined();
    expect(batcher.flush().dropped.map((d) => [d.reason, d.report.status, d.report.keptPositives])).toEqual([
      ["zero-advantages", "resampled", 16],
    ]);
    expect(unfiltered.flush().dropped.map((d) => [d.reason, d.report.status])).toEqual([
      ["zero-advantages", "kept-whole"],
    ]);
  });

  it("infrastructure failures: a group of nothing else is dropped as infra-failure; else they are left out", () => {
    const batcher = createRocBatcher({ groupsPerBatch: 1, roc: paper(2) });
    expect(batcher.push(group("down", [0, 0], { infraFailed: true }))).toBeUndefined();
    const mixed = [...group("q", [1, 0]), { ...group("q", [0])[0]!, id: 2, infraFailed: true }];
    const batch = batcher.push(mixed)!;
    expect(batch.dropped.map((d) => [d.id, d.reason])).toEqual([["down", "infra-failure"]]);
    expect(Array.from(batch.groups[0]!.kept)).toEqual([0, 1]);
    expect(batch.groups[0]!.roc.dropped).toEqual([{ index: 2, reason: "infra-failure" }]);
  });

  it('surplus: a round beyond a full batch carries the rest into the next batch, or drops them ("drop", DAPO)', () => {
    const round = ["a", "b", "c", "d", "e"].map((id) => group(id, [1, 0]));
    const carry = createRocBatcher({ groupsPerBatch: 2, roc: paper(2) });
    const carried = carry.pushRound(round);
    expect(carried.map((b) => b.groups.map((g) => g.id))).toEqual([
      ["a", "b"],
      ["c", "d"],
    ]);
    expect(carry.status).toMatchObject({ pendingGroups: 1, groupsSeen: 1 });
    // One group pending: the estimate asks for the one still needed.
    expect(carry.status.promptsToRequest).toBe(Math.ceil(1 / ((5 + 0.5) / (5 + 1))));

    const drop = createRocBatcher({ groupsPerBatch: 2, roc: paper(2), surplus: "drop" });
    const [only, ...none] = drop.pushRound(round);
    expect(none).toEqual([]);
    expect(only!.groups.map((g) => g.id)).toEqual(["a", "b"]);
    expect(drop.status).toMatchObject({ pendingGroups: 0, groupsSeen: 3 });
    const next = drop.pushRound([group("f", [0, 1]), group("g", [1, 0])])[0]!;
    expect(next.groups.map((g) => g.id)).toEqual(["f", "g"]);
    expect(next.dropped.map((d) => [d.id, d.reason])).toEqual([
      ["c", "surplus"],
      ["d", "surplus"],
      ["e", "surplus"],
    ]);
    // Surplus groups were informative: the fraction counts them.
    expect(next.stats).toMatchObject({ groupsSeen: 5, informativeGroups: 5, informativeFraction: 1 });
  });

  it('flush: the last groups in a batch flagged partial ("emit"), or dropped as partial-batch ("drop")', () => {
    const groups = [group("a", [1, 0]), group("b", [1, 1]), group("c", [0, 1])];
    const emit = createRocBatcher({ groupsPerBatch: 3, roc: paper(2) });
    for (const g of groups) emit.push(g);
    const last = emit.flush();
    expect(last.partial).toBe(true);
    expect(last.groups.map((g) => g.id)).toEqual(["a", "c"]);
    expect(last.rollouts.length).toBe(4);
    expect(last.dropped.map((d) => d.reason)).toEqual(["equal-rewards"]);

    const drop = createRocBatcher({ groupsPerBatch: 3, roc: paper(2), lastBatch: "drop" });
    for (const g of groups) drop.push(g);
    const dropped = drop.flush();
    expect(dropped.groups).toEqual([]);
    expect(dropped.advantages.length).toBe(0);
    // In arrival order, the partial batch's groups among the others.
    expect(dropped.dropped.map((d) => [d.id, d.reason])).toEqual([
      ["a", "partial-batch"],
      ["b", "equal-rewards"],
      ["c", "partial-batch"],
    ]);
  });

  it("trlBatch: the std is the emitted batch's, over its kept rewards; per-group presets give per-group values", () => {
    const groups = [group("a", [1, 0]), group("b", [3, 0, 0, 0]), group("c", [0.5, 0])];
    const batched = pushAll(
      createRocBatcher({ groupsPerBatch: 3, roc: paper(4), advantages: advantagePresets.trlBatch }),
      groups,
    );
    const batch = batched[0]!;
    const rewards = batch.rollouts.map((r) => r.reward!);
    const arrivals = batch.groups.flatMap((g) => Array.from(g.kept, () => g.arrival));
    expect(Array.from(batch.advantages)).toEqual(Array.from(advantages(rewards, arrivals, advantagePresets.trlBatch)));
    // Not what each group's own std would give.
    const perGroup = groups.map((g) =>
      Array.from(rocPipeline(g, { roc: paper(4), advantages: advantagePresets.trl }).advantages),
    );
    expect(Array.from(batch.advantages)).not.toEqual(perGroup.flat());
    const trl = pushAll(
      createRocBatcher({ groupsPerBatch: 3, roc: paper(4), advantages: advantagePresets.trl }),
      groups,
    );
    expect(Array.from(trl[0]!.advantages)).toEqual(
      groups.flatMap((g, k) =>
        Array.from(rocPipeline(g, { roc: paper(4, `7\u0000${k}`), advantages: advantagePresets.trl }).advantages),
      ),
    );
  });

  it("the estimate: ⌈needed / fraction⌉ over a window of batches, rounded once; the floor at 0 informative", () => {
    const estimate = { priorWeight: 0, window: 1 };
    const batcher = createRocBatcher({ groupsPerBatch: 11, roc: paper(2), estimate });
    const flat = group("flat", [1, 1]);
    const informative = Array.from({ length: 11 }, (_, k) => group(k, [1, 0]));
    const [batch] = batcher.pushRound([flat, flat, flat, flat, ...informative]);
    // 11 informative of 15: 15 prompts for 11 groups, not 16 (11 / (11 / 15) rounds to 15.000000000000002).
    expect(batch!.stats).toMatchObject({ groupsSeen: 15, informativeGroups: 11, promptsToRequest: 15 });
    expect(batcher.status.runningInformativeFraction).toBe(11 / 15); // window 1: the batch just emitted
    batcher.pushRound([flat, flat]);
    // …and the groups of the batch being filled.
    expect(batcher.status).toMatchObject({ runningInformativeFraction: 11 / 17, promptsToRequest: 17 });

    // Nothing informative yet and no prior: below minFraction 0.05, so ⌈11 / 0.05⌉.
    const flatOnly = createRocBatcher({ groupsPerBatch: 11, roc: paper(2), estimate });
    flatOnly.pushRound([flat, flat]);
    expect(flatOnly.status).toMatchObject({ runningInformativeFraction: 0, promptsToRequest: 220 });

    const fresh = createRocBatcher({ groupsPerBatch: 64, roc: paper(2), estimate: { prior: 0.25 } });
    expect(fresh.status.promptsToRequest).toBe(256);
  });

  it("batches(): an async source gives push's batches, the last one partial; a sync iterable too", async () => {
    const groups = ["a", "b", "c", "d", "e"].map((id, k) => group(id, k % 2 === 0 ? [1, 0, 0, 1] : [1, 1]));
    const options: RocBatcherOptions = { groupsPerBatch: 2, roc: paper(2) };
    async function* arriving() {
      for (const g of groups) {
        await new Promise((resolve) => setTimeout(resolve, 1));
        yield g;
      }
    }
    const streamed = await collect(createRocBatcher(options).batches(arriving()));
    const pushed = pushAll(createRocBatcher(options), groups);
    expect(streamed.map(bitwise)).toEqual(pushed.map(bitwise));
    expect(streamed.map((b) => [b.groups.length, b.partial])).toEqual([
      [2, false],
      [1, true],
    ]);
    const fromArray = await collect(createRocBatcher(options).batches(groups));
    expect(fromArray.map(bitwise)).toEqual(pushed.map(bitwise));
  });

  it("a refused round changes nothing: the batcher goes on as if it had never been pushed", () => {
    const good = [group("a", [1, 0]), group("b", [0, 1])];
    const bad = [group("c", [1, 0]), group("d", [1, 0]), [{ groupId: "e", reward: Number.NaN }]] as Rollout[][];
    const refused = createRocBatcher({ groupsPerBatch: 2, roc: paper(2) });
    expect(() => refused.pushRound(bad)).toThrow(/groups\[2\]\[0\]\.reward/);
    expect(refused.status).toMatchObject({ groupsPushed: 0, batchesEmitted: 0, pendingGroups: 0, groupsSeen: 0 });
    const untouched = createRocBatcher({ groupsPerBatch: 2, roc: paper(2) });
    expect(pushAll(refused, good).map(bitwise)).toEqual(pushAll(untouched, good).map(bitwise));
  });
});

// ---------------------------------------------------------------------------------------------------------------
// Properties

const OUTCOMES = ["ok", "parse_error", "execution_error", "timeout"] as const;

const rolloutArb = fc.record({
  reward: fc.constantFrom(0, 1, 1, 0.5, -1),
  outcomes: fc.array(fc.constantFrom(...OUTCOMES), { maxLength: 3 }),
  answers: fc.nat({ max: 2 }),
  turns: fc.integer({ min: 1, max: 3 }),
  infraFailed: fc.constantFrom(false, false, false, false, false, false, false, true),
});

/** One group: a prompt (prompts repeat, as across epochs), 1–6 rollouts with quality inputs, ids or none. */
const groupArb = fc
  .record({
    prompt: fc.constantFrom<GroupId>("p0", "p1", "p2", 3, 4n),
    withIds: fc.boolean(),
    rollouts: fc.array(rolloutArb, { minLength: 1, maxLength: 6 }),
  })
  .map(({ prompt, withIds, rollouts }) =>
    rollouts.map(
      (r, i): Rollout => ({
        groupId: prompt,
        ...(withIds ? { id: i } : {}),
        reward: r.reward,
        toolCalls: r.outcomes.map((outcome) => ({ outcome })),
        answers: r.answers,
        turns: r.turns,
        ...(r.infraFailed ? { infraFailed: true } : {}),
      }),
    ),
  );

const PRESETS = ["verl", "trl", "trlBatch", "verlRloo", "verlNoStd"] as const;

const optionsArb = fc
  .record({
    groupsPerBatch: fc.integer({ min: 1, max: 4 }),
    keepPerGroup: fc.integer({ min: 1, max: 4 }),
    seed: fc.oneof(fc.integer(), fc.string({ maxLength: 6 })),
    reference: fc.boolean(),
    filterEqualRewards: fc.boolean(),
    preset: fc.constantFrom(...PRESETS),
    surplus: fc.constantFrom("carry" as const, "drop" as const),
    lastBatch: fc.constantFrom("emit" as const, "drop" as const),
    window: fc.integer({ min: 1, max: 4 }),
    prior: fc.constantFrom(0, 0.3, 0.5, 1),
    priorWeight: fc.constantFrom(0, 1, 2.5),
  })
  .map(
    (o): RocBatcherOptions => ({
      groupsPerBatch: o.groupsPerBatch,
      // Reference mode with an even G: Python's rounding can ask for G + 1 rollouts with an odd one (an error).
      roc: o.reference
        ? {
            ...rocPresets.reference,
            keepPerGroup: 2 * Math.ceil(o.keepPerGroup / 2),
            minNegatives: 1,
            minPositives: 1,
            filterEqualRewards: o.filterEqualRewards,
          }
        : { ...rocPresets.paper, keepPerGroup: o.keepPerGroup, seed: o.seed, filterEqualRewards: o.filterEqualRewards },
      advantages: advantagePresets[o.preset],
      surplus: o.surplus,
      lastBatch: o.lastBatch,
      estimate: { window: o.window, prior: o.prior, priorWeight: o.priorWeight },
    }),
  );

/** Groups arriving in rounds (the groups of one request for prompts). */
const roundsArb = fc.array(fc.array(groupArb, { maxLength: 6 }), { maxLength: 6 });

/** What rocPipeline makes of group `arrival` with the batcher's seed for it, and why it would be dropped. */
function oracle(rollouts: readonly Rollout[], arrival: number, options: RocBatcherOptions) {
  const seed = options.roc.seed === undefined ? {} : { seed: `${options.roc.seed}\u0000${arrival}` };
  const result = rocPipeline(rollouts, {
    roc: { ...options.roc, ...seed },
    advantages: { ...options.advantages, stdScope: "group" },
  });
  const report = result.roc.groups[0]!;
  const reason =
    report.status === "dropped"
      ? report.reason
      : result.advantages.every((a) => a === 0)
        ? "zero-advantages"
        : undefined;
  return { ...result, reason };
}

interface ModelBatch {
  groups: number[];
  dropped: [number, string][];
  seen: number;
  informative: number;
  partial: boolean;
}

/** The batching, written plainly: arrivals in order, a batch when full, the surplus of a round under "drop". */
function model(reasons: readonly (string | undefined)[][], options: RocBatcherOptions): ModelBatch[] {
  const batches: ModelBatch[] = [];
  let current: ModelBatch = { groups: [], dropped: [], seen: 0, informative: 0, partial: false };
  let arrival = 0;
  for (const round of reasons) {
    let filledThisRound = false;
    for (const reason of round) {
      current.seen++;
      if (reason === undefined) current.informative++;
      if (reason !== undefined) current.dropped.push([arrival, reason]);
      else if (filledThisRound && options.surplus === "drop") current.dropped.push([arrival, "surplus"]);
      else current.groups.push(arrival);
      if (current.groups.length === options.groupsPerBatch) {
        batches.push(current);
        current = { groups: [], dropped: [], seen: 0, informative: 0, partial: false };
        filledThisRound = true;
      }
      arrival++;
    }
  }
  if (options.lastBatch === "drop") {
    current.dropped.push(...current.groups.map((k): [number, string] => [k, "partial-batch"]));
    current.dropped.sort((a, b) => a[0] - b[0]);
    current.groups = [];
  }
  batches.push({ ...current, partial: true });
  return batches;
}

/** The estimate from the counts: ⌈needed / f⌉ within rounding, f over the window, floored at minFraction. */
function expectEstimate(
  promptsToRequest: number,
  needed: number,
  window: readonly ModelBatch[],
  options: RocBatcherOptions,
) {
  const { prior = 0.5, priorWeight = 1, minFraction = 0.05 } = options.estimate ?? {};
  const seen = window.reduce((s, b) => s + b.seen, 0);
  const informative = window.reduce((s, b) => s + b.informative, 0);
  const fraction = seen + priorWeight === 0 ? prior : (informative + prior * priorWeight) / (seen + priorWeight);
  const exact = needed / Math.max(fraction, minFraction);
  expect(promptsToRequest).toBeGreaterThanOrEqual(exact - 1e-9);
  expect(promptsToRequest).toBeLessThan(exact + 1 + 1e-9);
  expect(Number.isInteger(promptsToRequest)).toBe(true);
}

describe("createRocBatcher: properties", () => {
  it("no group lost or used twice; every batch but the last full; groups, drops, counts as modelled", async () => {
    const reasonsSeen = new Set<string>();
    await property(fc.record({ options: optionsArb, rounds: roundsArb }), ({ options, rounds }) => {
      const batcher = createRocBatcher(options);
      const batches: RocBatch[] = [];
      let arrival = 0;
      const outcomes = rounds.map((round) => round.map((g) => oracle(g, arrival++, options)));
      for (const round of rounds) {
        batches.push(...batcher.pushRound(round));
        // Memory: never a full batch's worth waiting, and dropped groups are kept as records, not rollouts.
        expect(batcher.status.pendingGroups).toBeLessThan(options.groupsPerBatch);
      }
      batches.push(batcher.flush());

      const expected = model(
        outcomes.map((round) => round.map((o) => o.reason)),
        options,
      );
      expect(batches.length).toBe(expected.length);
      const placed: number[] = [];
      batches.forEach((batch, b) => {
        const want = expected[b]!;
        expect(batch.index).toBe(b);
        expect(batch.partial).toBe(want.partial);
        if (!batch.partial) expect(batch.groups.length).toBe(options.groupsPerBatch);
        expect(batch.groups.map((g) => g.arrival)).toEqual(want.groups);
        expect(batch.dropped.map((d) => [d.arrival, d.reason])).toEqual(want.dropped);
        for (const d of batch.dropped) expect(Object.keys(d).sort()).toEqual(["arrival", "id", "reason", "report"]);
        expect(batch.stats.groupsSeen).toBe(want.seen);
        expect(batch.stats.informativeGroups).toBe(want.informative);
        expect(batch.stats.informativeFraction).toBe(want.seen === 0 ? null : want.informative / want.seen);
        const window = expected.slice(Math.max(0, b + 1 - (options.estimate?.window ?? 4)), b + 1);
        expectEstimate(batch.stats.promptsToRequest, options.groupsPerBatch, window, options);
        placed.push(...batch.groups.map((g) => g.arrival), ...batch.dropped.map((d) => d.arrival));
        for (const d of batch.dropped) reasonsSeen.add(d.reason);
        if (!batch.partial) reasonsSeen.add("full batch");
      });
      expect(placed.sort((x, y) => x - y)).toEqual(Array.from({ length: arrival }, (_, k) => k));
    });
    // The generated cases reach every way a group can go.
    expect([...reasonsSeen].sort()).toEqual(
      [
        "equal-rewards",
        "full batch",
        "infra-failure",
        "partial-batch",
        "surplus",
        "undersized",
        "zero-advantages",
      ].sort(),
    );
  });

  it("each group is rocPipeline's; the batch's advantages are advantages() over it by arrival", () =>
    property(fc.record({ options: optionsArb, rounds: roundsArb }), ({ options, rounds }) => {
      const groups = rounds.flat();
      const batches = pushAll(createRocBatcher({ ...options, lastBatch: "emit" }), groups);
      const batchScope = options.advantages?.stdScope === "batch";
      for (const batch of batches) {
        let offset = 0;
        for (const g of batch.groups) {
          const expected = oracle(groups[g.arrival]!, g.arrival, options);
          expect(expected.reason).toBeUndefined();
          expect(g.offset).toBe(offset);
          expect(Array.from(g.kept)).toEqual(Array.from(expected.kept));
          expect(g.roc).toEqual(expected.roc);
          expect(batch.rollouts.slice(offset, offset + g.kept.length)).toEqual(
            Array.from(g.kept, (i) => groups[g.arrival]![i]),
          );
          // With the group's own std, bit for bit; the std of the batch changes the scale only.
          if (!batchScope) expect(Array.from(g.advantages)).toEqual(Array.from(expected.advantages));
          else expect(Array.from(g.advantages, Math.sign)).toEqual(Array.from(expected.advantages, Math.sign));
          offset += g.kept.length;
        }
        const arrivals = batch.groups.flatMap((g) => Array.from(g.kept, () => g.arrival));
        const overBatch = advantages(
          batch.rollouts.map((r) => r.reward!),
          arrivals,
          options.advantages,
        );
        expect(bitwise(batch).advantages).toBe(bitwise({ ...batch, advantages: overBatch }).advantages);
      }
    }));

  it("same seed, same batches (bit for bit, from a deep copy too); push, pushRound (carry), batches() agree", () =>
    property(fc.record({ options: optionsArb, rounds: roundsArb }), async ({ options, rounds }) => {
      const groups = rounds.flat();
      const byPush = pushAll(createRocBatcher(options), groups).map(bitwise);
      expect(pushAll(createRocBatcher(options), structuredClone(groups)).map(bitwise)).toEqual(byPush);
      const streamed = await collect(createRocBatcher(options).batches(groups));
      expect(streamed.map(bitwise)).toEqual(byPush);
      if (options.surplus === "carry") {
        const batcher = createRocBatcher(options);
        const byRound = [...rounds.flatMap((round) => batcher.pushRound(round)), batcher.flush()];
        expect(byRound.map(bitwise)).toEqual(byPush);
      }
    }));
});
