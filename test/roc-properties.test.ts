/**
 * Property tests of Resample-on-Correct (`resampleOnCorrect`) and of the pipeline around it (`rocPipeline`).
 *
 * The expectations are computed here, independently of src/: which groups are dropped, kept whole or resampled
 * (docs/spec.md §3 table), the penalties of every rollout (p_err + p_format from the structured inputs), the class counts
 * and, per mode, which rollouts may be kept. The counts are also checked against the exported `paperCounts` /
 * `referenceCounts`.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import {
  advantages,
  GrpoRocError,
  paperCounts,
  referenceCounts,
  resampleOnCorrect,
  rocPipeline,
  ValidationError,
  type ClassCounts,
  type GroupId,
  type PipelineResult,
  type RocOptionsInput,
  type RocResult,
  type Rollout,
} from "../src/index.js";

// ---------------------------------------------------------------------------------------------------------------
// Arbitraries

const OUTCOMES = ["ok", "parse_error", "execution_error", "timeout"] as const;
type Outcome = (typeof OUTCOMES)[number];
const FAILURES = ["parse_error", "execution_error", "timeout"] as const;
type Failure = (typeof FAILURES)[number];

/** Structured quality inputs: tool calls with outcomes, answers, turns ≥ 1, and sometimes a formatOk flag. */
const qualityArb = fc.record(
  {
    toolCalls: fc.array(
      fc.constantFrom(...OUTCOMES).map((outcome) => ({ outcome })),
      { maxLength: 6 },
    ),
    answers: fc.nat({ max: 4 }),
    turns: fc.integer({ min: 1, max: 6 }),
    formatOk: fc.boolean(),
  },
  { requiredKeys: ["toolCalls", "answers", "turns"] },
);

/**
 * How the rollouts say whether they are right: binary rewards, continuous rewards (positive for correct,
 * ≤ 0 for wrong), only a `correct` flag, or both a continuous reward and a `correct` flag that wins over it.
 */
const REWARD_KINDS = ["binary", "continuous", "correctOnly", "rewardAndCorrect"] as const;
type RewardKind = (typeof REWARD_KINDS)[number];

function labels(kind: RewardKind, positive: boolean, level: number): Pick<Rollout, "reward" | "correct"> {
  switch (kind) {
    case "binary":
      return { reward: positive ? 1 : 0 };
    case "continuous":
      return { reward: positive ? [0.25, 0.5, 1, 1.75][level]! : [0, -0.5, -1, 0][level]! };
    case "correctOnly":
      return { correct: positive };
    case "rewardAndCorrect":
      return { reward: [0, 0.5, 1, 0.5][level]!, correct: positive };
  }
}

interface GroupDraft {
  readonly size: number;
  /** The rollouts of the group in their internal order, without their group id (materialize adds it). */
  readonly members: readonly Omit<Rollout, "groupId">[];
}

/** One group of N ∈ [1, 40] rollouts, with between 0 and N positives at random positions. */
const groupArb = (kind: RewardKind): fc.Arbitrary<GroupDraft> =>
  fc.integer({ min: 1, max: 40 }).chain((size) =>
    fc
      .record({
        positives: fc.integer({ min: 0, max: size }),
        order: fc.array(fc.nat(), { minLength: size, maxLength: size }),
        levels: fc.array(fc.nat({ max: 3 }), { minLength: size, maxLength: size }),
        qualities: fc.array(qualityArb, { minLength: size, maxLength: size }),
      })
      .map(({ positives, order, levels, qualities }) => {
        const rank = sortedPositions(order);
        const isPositive = new Array<boolean>(size).fill(false);
        rank.slice(0, positives).forEach((position) => (isPositive[position] = true));
        const members = qualities.map((quality, j) => ({ ...labels(kind, isPositive[j]!, levels[j]!), ...quality }));
        return { size, members };
      }),
  );

/** Positions 0..n−1 sorted by their keys (ties by position): a random permutation when the keys are random. */
function sortedPositions(keys: readonly number[]): number[] {
  return keys.map((_, i) => i).sort((a, b) => keys[a]! - keys[b]! || a - b);
}

/** Group ids: strings, integers and non-integer numbers, all distinct as groups (0 and −0 are one group). */
const groupIdArb: fc.Arbitrary<GroupId> = fc.oneof(
  fc.string({ maxLength: 4 }),
  fc.integer({ min: -50, max: 50 }),
  fc.double({ min: -10, max: 10, noNaN: true }),
);

interface BatchDraft {
  readonly groups: readonly GroupDraft[];
  readonly ids: readonly GroupId[];
  /** Two interleavings of the groups in the batch (each keeps every group's internal order). */
  readonly schedules: readonly [readonly number[], readonly number[]];
}

/** A schedule is a shuffled list of group labels: the k-th occurrence of label g is member k of group g. */
const scheduleArb = (sizes: readonly number[]): fc.Arbitrary<number[]> => {
  const labels = sizes.flatMap((size, g) => new Array<number>(size).fill(g));
  return fc
    .array(fc.nat(), { minLength: labels.length, maxLength: labels.length })
    .map((keys) => sortedPositions(keys).map((i) => labels[i]!));
};

const batchArb = (maxGroups = 5): fc.Arbitrary<BatchDraft> =>
  fc
    .constantFrom(...REWARD_KINDS)
    .chain((kind) => fc.array(groupArb(kind), { minLength: 1, maxLength: maxGroups }))
    .chain((groups) =>
      fc.record({
        groups: fc.constant(groups),
        ids: fc.uniqueArray(groupIdArb, {
          minLength: groups.length,
          maxLength: groups.length,
          comparator: "SameValueZero",
        }),
        schedules: fc.tuple(scheduleArb(groups.map((g) => g.size)), scheduleArb(groups.map((g) => g.size))),
      }),
    );

/** The batch in one interleaving: the same rollout objects (by identity) whatever the schedule. */
function assemble(draft: BatchDraft, schedule: readonly number[], objects: readonly (readonly Rollout[])[]): Rollout[] {
  const next = draft.groups.map(() => 0);
  return schedule.map((g) => objects[g]![next[g]!++]!);
}

/** Fresh rollout objects carrying their group id. */
function materialize(draft: BatchDraft): Rollout[][] {
  return draft.groups.map((group, g) => group.members.map((member) => ({ ...member, groupId: draft.ids[g]! })));
}

const seedArb = fc.oneof(fc.integer(), fc.string({ maxLength: 8 }));
const undersizedArb = fc.constantFrom(undefined, "keep" as const, "drop" as const);
const penaltyOptionsArb = fc.record(
  {
    penaltyWeights: fc.record({ error: fc.constantFrom(0, 0.5, 1, 2), format: fc.constantFrom(0, 1, 3) }),
    noToolCallPenalty: fc.constantFrom(0, 0.5, 1),
    failureKinds: fc.subarray([...FAILURES]),
    filterEqualRewards: fc.boolean(),
  },
  { requiredKeys: [] },
);

const paperOptionsArb: fc.Arbitrary<RocOptionsInput> = fc
  .record({ G: fc.integer({ min: 1, max: 20 }), seed: seedArb, undersized: undersizedArb, extra: penaltyOptionsArb })
  .map(({ G, seed, undersized, extra }) => ({
    keepPerGroup: G,
    mode: "paper",
    seed,
    ...(undersized ? { undersized } : {}),
    ...extra,
  }));

const referenceOptionsArb: fc.Arbitrary<RocOptionsInput> = fc
  .integer({ min: 1, max: 20 })
  .chain((G) =>
    fc.record({
      G: fc.constant(G),
      minNegatives: fc.integer({ min: 0, max: Math.min(G, 3) }),
      minPositivesShare: fc.nat({ max: 3 }),
      undersized: undersizedArb,
      extra: penaltyOptionsArb,
    }),
  )
  .map(({ G, minNegatives, minPositivesShare, undersized, extra }) => ({
    keepPerGroup: G,
    mode: "reference",
    minNegatives,
    minPositives: Math.min(minPositivesShare, G - minNegatives),
    ...(undersized ? { undersized } : {}),
    ...extra,
  }));

// ---------------------------------------------------------------------------------------------------------------
// The independent model

interface Model {
  readonly mode: "paper" | "reference";
  readonly G: number;
  readonly filterEqualRewards: boolean;
  readonly undersized: "keep" | "drop";
  readonly minNegatives: number;
  readonly minPositives: number;
  readonly weights: { readonly error: number; readonly format: number };
  readonly failureKinds: readonly Failure[];
  readonly noToolCallPenalty: number;
}

function model(options: RocOptionsInput): Model {
  const mode = options.mode ?? "paper";
  return {
    mode,
    G: options.keepPerGroup,
    filterEqualRewards: options.filterEqualRewards ?? true,
    undersized: (options.undersized as "keep" | "drop" | undefined) ?? (mode === "paper" ? "keep" : "drop"),
    minNegatives: options.minNegatives ?? 2,
    minPositives: options.minPositives ?? 2,
    weights: { error: options.penaltyWeights?.error ?? 1, format: options.penaltyWeights?.format ?? 1 },
    failureKinds: options.failureKinds ?? FAILURES,
    noToolCallPenalty: options.noToolCallPenalty ?? 0.5,
  };
}

const rewardOf = (r: Rollout): number => r.reward ?? (r.correct ? 1 : 0);
const isPositive = (r: Rollout): boolean => r.correct ?? rewardOf(r) > 0;

function expectedPenalties(r: Rollout, m: Model): { pErr: number; pFormat: number; pTotal: number } {
  const calls = r.toolCalls!.length;
  const failed = r.toolCalls!.filter((call) =>
    (m.failureKinds as readonly string[]).includes(call.outcome as Outcome),
  ).length;
  const pErr = calls === 0 ? m.noToolCallPenalty : failed / calls;
  const pFormat = r.formatOk === false || r.answers === 0 ? 1 : Math.min(1, (r.answers! - 1) / r.turns!);
  return { pErr, pFormat, pTotal: m.weights.error * pErr + m.weights.format * pFormat };
}

interface GroupInfo {
  readonly id: GroupId;
  readonly members: number[];
}

/** Groups in order of first appearance; a Map compares keys like the spec says (1 and "1" differ, 0 and −0 do not). */
function groupsOf(rollouts: readonly Rollout[]): GroupInfo[] {
  const groups = new Map<GroupId, GroupInfo>();
  rollouts.forEach((rollout, i) => {
    // A Map key −0 is stored as +0, and so the library reports a group given as −0 under the id 0 (noted in the report).
    const id = rollout.groupId === 0 ? 0 : (rollout.groupId as GroupId);
    let group = groups.get(id);
    if (group === undefined) groups.set(id, (group = { id, members: [] }));
    group.members.push(i);
  });
  return [...groups.values()];
}

type Plan =
  | { readonly status: "dropped"; readonly reason: "equal-rewards" | "undersized" }
  | { readonly status: "kept-whole"; readonly reason: "undersized" | "exact-size" }
  | { readonly status: "resampled"; readonly counts: ClassCounts }
  /** Reference mode: the rounded counts do not add up to G (or exceed a class); the released code asserts. */
  | { readonly status: "impossible"; readonly counts: ClassCounts };

/** k_neg = ⌊n_neg·G/N⌋ in exact integer arithmetic. */
function paperCountsByHand(nPos: number, nNeg: number, G: number): ClassCounts {
  const numerator = nNeg * G;
  const negatives = (numerator - (numerator % (nPos + nNeg))) / (nPos + nNeg);
  return { positives: G - negatives, negatives };
}

function planGroup(group: GroupInfo, rollouts: readonly Rollout[], m: Model): Plan {
  const rewards = group.members.map((i) => rewardOf(rollouts[i]!));
  const nPos = group.members.filter((i) => isPositive(rollouts[i]!)).length;
  const nNeg = group.members.length - nPos;
  const N = group.members.length;
  if (m.filterEqualRewards && rewards.every((r) => r === rewards[0]))
    return { status: "dropped", reason: "equal-rewards" };
  if (N < m.G)
    return m.undersized === "keep"
      ? { status: "kept-whole", reason: "undersized" }
      : { status: "dropped", reason: "undersized" };
  if (N === m.G) return { status: "kept-whole", reason: "exact-size" };
  if (m.mode === "paper") {
    const counts = paperCounts({ positives: nPos, negatives: nNeg }, m.G);
    expect(counts).toEqual(paperCountsByHand(nPos, nNeg, m.G));
    return { status: "resampled", counts };
  }
  const counts = referenceCounts({ positives: nPos, negatives: nNeg }, m.G, m);
  const fits =
    counts.positives + counts.negatives === m.G &&
    counts.positives >= 0 &&
    counts.negatives >= 0 &&
    counts.positives <= nPos &&
    counts.negatives <= nNeg;
  return fits ? { status: "resampled", counts } : { status: "impossible", counts };
}

type Attempt<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };
function attempt<T>(run: () => T): Attempt<T> {
  try {
    return { ok: true, value: run() };
  } catch (error) {
    return { ok: false, error };
  }
}

/**
 * Checks one run against the model. Returns the result, or undefined when the model predicts the reference-mode
 * assertion (counts that cannot be met), in which case it checks that a GrpoRocError was thrown.
 */
function checkAgainstModel(
  rollouts: readonly Rollout[],
  options: RocOptionsInput,
  outcome: Attempt<RocResult>,
): RocResult | undefined {
  const m = model(options);
  const groups = groupsOf(rollouts);
  const plans = groups.map((group) => planGroup(group, rollouts, m));
  if (plans.some((plan) => plan.status === "impossible")) {
    expect(outcome.ok).toBe(false);
    const error = (outcome as { error: unknown }).error;
    expect(error).toBeInstanceOf(GrpoRocError);
    expect(error).not.toBeInstanceOf(ValidationError);
    expect((error as Error).message).toMatch(/rStar2-Agent.s counts ask for/);
    return undefined;
  }
  if (!outcome.ok) throw outcome.error;
  const result = outcome.value;
  const n = rollouts.length;
  const positive = rollouts.map(isPositive);

  // Every input index is in exactly one of kept / dropped; both ascending.
  const keptSet = new Set(result.kept);
  const droppedReason = new Map(result.dropped.map((d) => [d.index, d.reason]));
  expect(keptSet.size).toBe(result.kept.length);
  expect(droppedReason.size).toBe(result.dropped.length);
  expect(result.kept.length + result.dropped.length).toBe(n);
  for (let i = 0; i < n; i++)
    expect(keptSet.has(i) !== droppedReason.has(i), `rollout ${i} in exactly one list`).toBe(true);
  for (let k = 1; k < result.kept.length; k++) expect(result.kept[k]!).toBeGreaterThan(result.kept[k - 1]!);
  for (let k = 1; k < result.dropped.length; k++)
    expect(result.dropped[k]!.index).toBeGreaterThan(result.dropped[k - 1]!.index);

  // Penalties of every rollout (all have structured inputs), bit for bit.
  rollouts.forEach((rollout, i) => {
    const expected = expectedPenalties(rollout, m);
    expect(result.penalties.pErr[i]).toBe(expected.pErr);
    expect(result.penalties.pFormat[i]).toBe(expected.pFormat);
    expect(result.penalties.pTotal[i]).toBe(expected.pTotal);
  });
  const pTotal = result.penalties.pTotal;

  // Groups: order of first appearance, status, reason, counts.
  expect(result.groups.map((g) => g.id)).toEqual(groups.map((g) => g.id));
  groups.forEach((group, gi) => {
    const plan = plans[gi]!;
    const report = result.groups[gi]!;
    const members = group.members;
    const pos = members.filter((i) => positive[i]);
    const neg = members.filter((i) => !positive[i]);
    const keptMembers = members.filter((i) => keptSet.has(i));
    const keptPos = keptMembers.filter((i) => positive[i]);
    expect(report.size).toBe(members.length);
    expect(report.infraFailed).toBe(0);
    expect(report.positives).toBe(pos.length);
    expect(report.negatives).toBe(neg.length);
    expect(report.status).toBe(plan.status);
    expect(report.keptPositives).toBe(keptPos.length);
    expect(report.keptNegatives).toBe(keptMembers.length - keptPos.length);
    if (plan.status === "dropped") {
      expect(report.reason).toBe(plan.reason);
      expect(keptMembers).toEqual([]);
      for (const i of members) expect(droppedReason.get(i)).toBe(plan.reason);
    } else if (plan.status === "kept-whole") {
      expect(report.reason).toBe(plan.reason);
      expect(keptMembers).toEqual(members);
    } else if (plan.status === "resampled") {
      expect("reason" in report).toBe(false);
      expect(keptMembers.length).toBe(m.G);
      expect(report.keptPositives).toBe(plan.counts.positives);
      expect(report.keptNegatives).toBe(plan.counts.negatives);
      for (const i of members) if (!keptSet.has(i)) expect(droppedReason.get(i)).toBe("not-selected");
      const keptNeg = keptMembers.filter((i) => !positive[i]);
      if (m.mode === "paper") {
        // p_total = 0 positives are taken first.
        const clean = pos.filter((i) => pTotal[i] === 0);
        if (clean.length <= plan.counts.positives)
          for (const i of clean) expect(keptSet.has(i), `clean positive ${i} kept`).toBe(true);
        else for (const i of keptPos) expect(pTotal[i]).toBe(0);
      } else {
        // The k lowest p_total, ties by position; the first k negatives in input order.
        const lowest = [...pos].sort((a, b) => pTotal[a]! - pTotal[b]! || a - b).slice(0, plan.counts.positives);
        expect(keptPos).toEqual([...lowest].sort((a, b) => a - b));
        expect(keptNeg).toEqual(neg.slice(0, plan.counts.negatives));
      }
    }
  });

  // Metrics, recounted from the groups and the lists.
  const count = (status: string, reason?: string) =>
    result.groups.filter((g) => g.status === status && (reason === undefined || g.reason === reason)).length;
  const reached = result.groups.filter((g) => g.status !== "dropped");
  const { metrics } = result;
  expect(metrics.groups).toEqual({
    in: groups.length,
    resampled: count("resampled"),
    keptWhole: count("kept-whole"),
    droppedInfraFailure: 0,
    droppedEqualRewards: count("dropped", "equal-rewards"),
    droppedUndersized: count("dropped", "undersized"),
  });
  expect(
    metrics.groups.resampled +
      metrics.groups.keptWhole +
      metrics.groups.droppedEqualRewards +
      metrics.groups.droppedUndersized,
  ).toBe(groups.length);
  expect(metrics.rollouts).toEqual({ in: n, kept: result.kept.length, dropped: result.dropped.length, infraFailed: 0 });
  const keptPositives = [...result.kept].filter((i) => positive[i]);
  const notSelectedPositives = result.dropped
    .filter((d) => d.reason === "not-selected" && positive[d.index])
    .map((d) => d.index);
  expect(metrics.positives).toEqual({ seen: reached.reduce((a, g) => a + g.positives, 0), kept: keptPositives.length });
  expect(metrics.negatives).toEqual({
    seen: reached.reduce((a, g) => a + g.negatives, 0),
    kept: result.kept.length - keptPositives.length,
  });
  const summary = (indices: readonly number[]) => {
    const mean = (values: number[]) => (values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length);
    const calls = indices.reduce((a, i) => a + rollouts[i]!.toolCalls!.length, 0);
    const failed = indices.reduce(
      (a, i) =>
        a +
        rollouts[i]!.toolCalls!.filter((c) => (m.failureKinds as readonly string[]).includes(c.outcome as Outcome))
          .length,
      0,
    );
    return {
      count: indices.length,
      meanPErr: mean(indices.map((i) => expectedPenalties(rollouts[i]!, m).pErr)),
      meanPFormat: mean(indices.map((i) => expectedPenalties(rollouts[i]!, m).pFormat)),
      toolErrorRatio: calls === 0 ? null : failed / calls,
    };
  };
  expectSummary(metrics.keptPositives, summary(keptPositives));
  expectSummary(metrics.droppedPositives, summary(notSelectedPositives));
  expectSummary(metrics.allPositives, summary(rollouts.flatMap((_, i) => (positive[i] ? [i] : []))));
  return result;
}

function expectSummary(
  actual: RocResult["metrics"]["keptPositives"],
  expected: { count: number; meanPErr: number | null; meanPFormat: number | null; toolErrorRatio: number | null },
): void {
  expect(actual.count).toBe(expected.count);
  for (const key of ["meanPErr", "meanPFormat", "toolErrorRatio"] as const) {
    if (expected[key] === null) expect(actual[key]).toBeNull();
    else expect(actual[key]).toBeCloseTo(expected[key]!, 12);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Comparing results

/** Deep equality with Object.is on every number (NaN equals NaN, 0 and −0 differ), typed arrays element-wise. */
function expectBitIdentical(a: unknown, b: unknown, path = "result"): void {
  if (typeof a === "number" || typeof b === "number") {
    if (!Object.is(a, b)) expect.fail(`${path}: ${String(a)} is not bit-identical to ${String(b)}`);
    return;
  }
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) {
    expect(Object.getPrototypeOf(a), `${path}: array type`).toBe(Object.getPrototypeOf(b));
    const x = a as unknown as ArrayLike<number>;
    const y = b as unknown as ArrayLike<number>;
    expect(x.length, `${path}.length`).toBe(y.length);
    for (let i = 0; i < x.length; i++) expectBitIdentical(x[i], y[i], `${path}[${i}]`);
    return;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    expect(Array.isArray(a) && Array.isArray(b), `${path}: both arrays`).toBe(true);
    const x = a as unknown[];
    const y = b as unknown[];
    expect(x.length, `${path}.length`).toBe(y.length);
    x.forEach((value, i) => expectBitIdentical(value, y[i], `${path}[${i}]`));
    return;
  }
  if (a !== null && typeof a === "object" && b !== null && typeof b === "object") {
    const keys = Object.keys(a).sort();
    expect(Object.keys(b).sort(), `${path}: keys`).toEqual(keys);
    for (const key of keys)
      expectBitIdentical((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], `${path}.${key}`);
    return;
  }
  expect(Object.is(a, b), `${path}: ${String(a)} vs ${String(b)}`).toBe(true);
}

interface PerRollout {
  readonly kept: boolean;
  readonly reason: string | undefined;
  readonly pErr: number;
  readonly pFormat: number;
  readonly pTotal: number;
  readonly advantage?: number | undefined;
}

/** What happened to each rollout, keyed by `key` (the object itself, or its id). */
function perRollout<K>(
  rollouts: readonly Rollout[],
  result: RocResult,
  key: (r: Rollout) => K,
  pipeline?: PipelineResult,
): Map<K, PerRollout> {
  const reasons = new Map(result.dropped.map((d) => [d.index, d.reason]));
  const advantageOf = new Map<number, number>();
  if (pipeline) pipeline.kept.forEach((index, k) => advantageOf.set(index, pipeline.advantages[k]!));
  const out = new Map<K, PerRollout>();
  rollouts.forEach((rollout, i) => {
    out.set(key(rollout), {
      kept: !reasons.has(i),
      reason: reasons.get(i),
      pErr: result.penalties.pErr[i]!,
      pFormat: result.penalties.pFormat[i]!,
      pTotal: result.penalties.pTotal[i]!,
      ...(pipeline ? { advantage: advantageOf.get(i) } : {}),
    });
  });
  return out;
}

function expectSamePerRollout<K>(a: Map<K, PerRollout>, b: Map<K, PerRollout>): void {
  expect(b.size).toBe(a.size);
  for (const [key, value] of a) {
    expect(b.has(key)).toBe(true);
    expectBitIdentical(value, b.get(key), `rollout ${String(key)}`);
  }
}

/** Group reports compared by id (their order follows first appearance, so it changes with the permutation). */
function expectSameGroups(a: RocResult, b: RocResult): void {
  const byId = (result: RocResult) => new Map(result.groups.map((g) => [g.id, g]));
  const x = byId(a);
  const y = byId(b);
  expect(y.size).toBe(x.size);
  for (const [id, report] of x) expect(y.get(id)).toEqual(report);
}

function expectSameMetricCounts(a: RocResult, b: RocResult): void {
  expect(b.metrics.groups).toEqual(a.metrics.groups);
  expect(b.metrics.rollouts).toEqual(a.metrics.rollouts);
  expect(b.metrics.positives).toEqual(a.metrics.positives);
  expect(b.metrics.negatives).toEqual(a.metrics.negatives);
  for (const which of ["keptPositives", "droppedPositives", "allPositives"] as const)
    expect(b.metrics[which].count).toBe(a.metrics[which].count);
}

/** Counts must match exactly; means may differ in the last bits because they are summed in another order. */
function expectSameMetrics(a: RocResult, b: RocResult): void {
  expectSameMetricCounts(a, b);
  for (const which of ["keptPositives", "droppedPositives", "allPositives"] as const) {
    const { count, meanPErr, meanPFormat, toolErrorRatio } = a.metrics[which];
    expectSummary(b.metrics[which], { count, meanPErr, meanPFormat, toolErrorRatio });
  }
}

function sameOutcomeKind<T, U>(a: Attempt<T>, b: Attempt<U>): boolean {
  expect(b.ok).toBe(a.ok);
  if (!a.ok) {
    expect((b as { error: unknown }).error).toBeInstanceOf(GrpoRocError);
    expect(((b as { error: unknown }).error as Error).message).toBe((a.error as Error).message);
  }
  return a.ok;
}

const modes = [
  ["paper", paperOptionsArb],
  ["reference", referenceOptionsArb],
] as const;

// ---------------------------------------------------------------------------------------------------------------

describe("resampleOnCorrect agrees with an independent model of docs/spec.md §3", () => {
  it.each(modes)("%s mode: statuses, counts, kept/dropped partition, penalties, metrics", (_, optionsArb) => {
    fc.assert(
      fc.property(batchArb(), optionsArb, (draft, options) => {
        const rollouts = assemble(draft, draft.schedules[0], materialize(draft));
        checkAgainstModel(
          rollouts,
          options,
          attempt(() => resampleOnCorrect(rollouts, options)),
        );
      }),
      { numRuns: 150 },
    );
  });

  it("rocPipeline keeps what resampleOnCorrect keeps and computes advantages over the kept rollouts only", () => {
    fc.assert(
      fc.property(batchArb(), fc.oneof(paperOptionsArb, referenceOptionsArb), (draft, options) => {
        const rollouts = assemble(draft, draft.schedules[0], materialize(draft));
        const roc = attempt(() => resampleOnCorrect(rollouts, options));
        const pipeline = attempt(() => rocPipeline(rollouts, { roc: options }));
        if (!sameOutcomeKind(roc, pipeline)) return;
        const { value } = pipeline as { value: PipelineResult };
        expectBitIdentical(value.roc, (roc as { value: RocResult }).value);
        expectBitIdentical(value.kept, value.roc.kept);
        const kept = Array.from(value.kept, (i) => rollouts[i]!);
        expectBitIdentical(
          value.advantages,
          advantages(
            kept.map(rewardOf),
            kept.map((r) => r.groupId as GroupId),
          ),
        );
        // GRPO advantages are centred within each kept group of two or more.
        for (const group of groupsOf(kept)) {
          if (group.members.length < 2) continue;
          const sum = group.members.reduce((a, k) => a + value.advantages[k]!, 0);
          expect(Math.abs(sum)).toBeLessThan(1e-9 * group.members.length);
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe("permutation invariance", () => {
  it.each(modes)(
    "%s mode: interleaving / reordering the groups of the batch (each group's order kept) keeps the same rollouts",
    (_, optionsArb) => {
      fc.assert(
        fc.property(batchArb(), optionsArb, (draft, options) => {
          const objects = materialize(draft);
          const a = assemble(draft, draft.schedules[0], objects);
          const b = assemble(draft, draft.schedules[1], objects);
          const ra = attempt(() => rocPipeline(a, { roc: options }));
          const rb = attempt(() => rocPipeline(b, { roc: options }));
          expect(rb.ok).toBe(ra.ok);
          if (!ra.ok || !rb.ok) {
            // Each order reports the first group that fails in it, so the two may name different groups; each must
            // be the error that group gives on its own.
            const byGroup = new Map<unknown, Rollout[]>();
            for (const rollout of a) byGroup.set(rollout.groupId, [...(byGroup.get(rollout.groupId) ?? []), rollout]);
            const own = [...byGroup.values()].map((group) => attempt(() => rocPipeline(group, { roc: options })));
            const messages = own.flatMap((r) => (r.ok ? [] : [(r.error as Error).message]));
            for (const r of [ra, rb]) {
              expect((r as { error: unknown }).error).toBeInstanceOf(GrpoRocError);
              expect(messages).toContain(((r as { error: unknown }).error as Error).message);
            }
            return;
          }
          const x = (ra as { value: PipelineResult }).value;
          const y = (rb as { value: PipelineResult }).value;
          // Same objects kept (by identity), same reasons, same penalties and the same advantages, bit for bit.
          expectSamePerRollout(
            perRollout(a, x.roc, (r) => r, x),
            perRollout(b, y.roc, (r) => r, y),
          );
          expectSameGroups(x.roc, y.roc);
          expectSameMetrics(x.roc, y.roc);
        }),
        { numRuns: 120 },
      );
    },
  );

  it("paper mode with a unique id on every rollout: ANY permutation of the batch keeps the same ids", () => {
    fc.assert(
      fc.property(
        batchArb(),
        paperOptionsArb,
        fc.boolean(),
        fc.array(fc.nat(), { minLength: 200, maxLength: 200 }),
        (draft, options, numericIds, keys) => {
          let next = 0;
          const objects = materialize(draft).map((members) =>
            members.map((member) => ({ ...member, id: numericIds ? next++ : `rollout-${next++}` })),
          );
          const a = assemble(draft, draft.schedules[0], objects);
          const order = sortedPositions(keys.slice(0, a.length));
          const b = order.map((i) => a[i]!);
          const x = resampleOnCorrect(a, options);
          const y = resampleOnCorrect(b, options);
          const ids = (rollouts: readonly Rollout[], result: RocResult) =>
            new Set(Array.from(result.kept, (i) => rollouts[i]!.id));
          expect(ids(b, y)).toEqual(ids(a, x));
          expectSamePerRollout(
            perRollout(a, x, (r) => r.id),
            perRollout(b, y, (r) => r.id),
          );
          expectSameGroups(x, y);
          expectSameMetrics(x, y);
        },
      ),
      { numRuns: 120 },
    );
  });

  it("reference mode: permuting within a group keeps the multiset of (correct, p_total) of the kept positives", () => {
    // Ties in p_total are broken by position, so the identity of a kept positive can change, but only among ties.
    // Kept negatives are the first k in input order, so which negatives are kept does change; their number does not.
    fc.assert(
      fc.property(
        batchArb(),
        referenceOptionsArb,
        fc.array(fc.nat(), { minLength: 200, maxLength: 200 }),
        (draft, options, keys) => {
          const objects = materialize(draft);
          let offset = 0;
          const shuffled = objects.map((members) => {
            const order = sortedPositions(keys.slice(offset, (offset += members.length)));
            return order.map((i) => members[i]!);
          });
          const a = assemble(draft, draft.schedules[0], objects);
          const b = assemble(draft, draft.schedules[0], shuffled);
          const ra = attempt(() => resampleOnCorrect(a, options));
          const rb = attempt(() => resampleOnCorrect(b, options));
          if (!sameOutcomeKind(ra, rb)) return;
          const x = (ra as { value: RocResult }).value;
          const y = (rb as { value: RocResult }).value;
          expectSameGroups(x, y);
          // Counts only: the means over kept positives can change when tied p_total hide different p_err / p_format.
          expectSameMetricCounts(x, y);
          const keptPairs = (rollouts: readonly Rollout[], result: RocResult, id: GroupId) =>
            Array.from(result.kept)
              .filter((i) => rollouts[i]!.groupId === id)
              .map((i) => ({ correct: isPositive(rollouts[i]!), pTotal: result.penalties.pTotal[i]! }))
              .sort((p, q) => Number(p.correct) - Number(q.correct) || p.pTotal - q.pTotal);
          for (const id of draft.ids) {
            const px = keptPairs(a, x, id);
            const py = keptPairs(b, y, id);
            expect(py.filter((p) => !p.correct).length).toBe(px.filter((p) => !p.correct).length);
            expectBitIdentical(
              py.filter((p) => p.correct),
              px.filter((p) => p.correct),
              `group ${String(id)} kept positives`,
            );
          }
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe("determinism", () => {
  it.each(modes)(
    "%s mode: the same seed and input give bit-identical results, also for a deep copy of the input",
    (_, optionsArb) => {
      fc.assert(
        fc.property(batchArb(), optionsArb, (draft, options) => {
          const rollouts = assemble(draft, draft.schedules[0], materialize(draft));
          const first = attempt(() => rocPipeline(rollouts, { roc: options }));
          const again = attempt(() => rocPipeline(rollouts, { roc: options }));
          const copy = attempt(() => rocPipeline(structuredClone(rollouts), { roc: { ...options } }));
          if (!sameOutcomeKind(first, again) || !sameOutcomeKind(first, copy)) return;
          // kept, advantages, and the whole RoC result: dropped, groups, penalties, metrics.
          expectBitIdentical((again as { value: PipelineResult }).value, (first as { value: PipelineResult }).value);
          expectBitIdentical((copy as { value: PipelineResult }).value, (first as { value: PipelineResult }).value);
        }),
        { numRuns: 100 },
      );
    },
  );

  it("paper mode: different seeds give different selections (over 40 seeds, not all results are equal)", () => {
    fc.assert(
      fc.property(batchArb(3), fc.integer({ min: 1, max: 10 }), (draft, G) => {
        const rollouts = assemble(draft, draft.schedules[0], materialize(draft));
        const m = model({ keepPerGroup: G, seed: 0 });
        // Only batches where some group has a real choice among its negatives: 1 ≤ k_neg < n_neg, so every seed picks
        // one of at least two equally likely subsets, and 40 equal picks have probability ≤ 2^-39.
        fc.pre(
          groupsOf(rollouts).some((group) => {
            const plan = planGroup(group, rollouts, m);
            const nNeg = group.members.filter((i) => !isPositive(rollouts[i]!)).length;
            return plan.status === "resampled" && plan.counts.negatives >= 1 && plan.counts.negatives < nNeg;
          }),
        );
        const kept = new Set<string>();
        for (let s = 0; s < 40; s++)
          kept.add(Array.from(resampleOnCorrect(rollouts, { keepPerGroup: G, seed: `step ${s}` }).kept).join(","));
        expect(kept.size).toBeGreaterThan(1);
      }),
      { numRuns: 60 },
    );
  });

  it("paper mode: a 32 → 16 batch under 100 seeds gives many different selections, reference mode always the same", () => {
    // A fixed input: 9 correct of 32, penalties spread from 0.25 to 2 (structured inputs), so both classes are sampled.
    const outcomes: ("ok" | "execution_error")[][] = [
      ["ok"],
      ["ok", "execution_error"],
      ["execution_error"],
      [],
      ["ok", "ok", "ok", "execution_error"],
    ];
    const rollouts: Rollout[] = Array.from({ length: 32 }, (_, i) => ({
      groupId: "prompt-7",
      reward: [1, 4, 7, 11, 15, 19, 22, 27, 30].includes(i) ? 1 : 0,
      toolCalls: outcomes[i % 5]!.map((outcome) => ({ outcome })),
      answers: 1 + (i % 3),
      turns: 3,
    }));
    expect(rollouts.filter((r) => r.reward === 1).length).toBe(9);
    const paper = new Set<string>();
    const reference = new Set<string>();
    for (let s = 0; s < 100; s++) {
      paper.add(Array.from(resampleOnCorrect(rollouts, { keepPerGroup: 16, seed: s }).kept).join(","));
      reference.add(
        Array.from(resampleOnCorrect(rollouts, { keepPerGroup: 16, mode: "reference", seed: s }).kept).join(","),
      );
    }
    expect(paper.size).toBeGreaterThan(50);
    expect(reference.size).toBe(1);
  });
});
