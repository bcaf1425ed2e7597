/**
 * The hostile suite's common parts. Every property runs from one seed (GRPO_ROC_HOSTILE_SEED, default below), so a
 * failure is replayed by setting it; fast-check prints the seed and the shrunk counterexample's path on failure.
 */
import fc from "fast-check";
import { afterAll, expect } from "vitest";
import { GrpoRocError, type PolicyLossOptionsInput, policyLoss, ValidationError } from "../../src/index.js";

export const HOSTILE_SEED = Number(process.env.GRPO_ROC_HOSTILE_SEED ?? 20261207);

/** Runs a property with the suite's seed; `runs` cases. */
export function hostile<T>(arbitrary: fc.Arbitrary<T>, predicate: (value: T) => void, runs = 200): void {
  fc.assert(fc.property(arbitrary, predicate), { seed: HOSTILE_SEED, numRuns: runs });
}

/** What a call did: returned, or threw. */
export type Outcome<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: unknown };

/**
 * Every attempted call is counted under the class its test's describe names ("class 2: …"): how many cases the
 * suite tried, how many were refused and how many returned (a finite result checked against an oracle, or a
 * documented behaviour). Each file prints its table when it ends; the README's counts come from these tables.
 */
const tally = new Map<string, { cases: number; refused: number; returned: number }>();

function classOfCurrentTest(): string {
  const name = expect.getState().currentTestName ?? "";
  return /class \d+/.exec(name)?.[0] ?? "other";
}

afterAll(() => {
  if (tally.size === 0) return;
  const rows = [...tally].sort(([a], [b]) => a.localeCompare(b));
  const lines = rows.map(([name, t]) => `  ${name}: ${t.cases} cases, ${t.refused} refused, ${t.returned} returned`);
  console.log(`hostile cases (seed ${HOSTILE_SEED}):\n${lines.join("\n")}`);
});

function countsOfCurrentTest() {
  const counts = tally.get(classOfCurrentTest()) ?? { cases: 0, refused: 0, returned: 0 };
  tally.set(classOfCurrentTest(), counts);
  counts.cases++;
  return counts;
}

export function attempt<T>(run: () => T): Outcome<T> {
  const counts = countsOfCurrentTest();
  try {
    const value = run();
    counts.returned++;
    return { ok: true, value };
  } catch (error) {
    counts.refused++;
    return { ok: false, error };
  }
}

export async function attemptAsync<T>(run: () => Promise<T>): Promise<Outcome<T>> {
  const counts = countsOfCurrentTest();
  try {
    const value = await run();
    counts.returned++;
    return { ok: true, value };
  } catch (error) {
    counts.refused++;
    return { ok: false, error };
  }
}

/** The value a call returned; its error, rethrown, when it was refused. */
export function returned<T>(outcome: Outcome<T>): T {
  if (!outcome.ok) throw outcome.error;
  return outcome.value;
}

/** The call was refused with a ValidationError (a GrpoRocError) that has an issue at `path`. */
export function expectRefusedAt(outcome: Outcome<unknown>, path: string | RegExp, message?: RegExp): ValidationError {
  if (outcome.ok) return expect.fail(`expected a ValidationError at ${String(path)}, but the call returned`);
  expect(outcome.error).toBeInstanceOf(ValidationError);
  expect(outcome.error).toBeInstanceOf(GrpoRocError);
  const error = outcome.error as ValidationError;
  const paths = error.issues.map((issue) => issue.path);
  if (typeof path === "string") expect(paths, error.message).toContain(path);
  else
    expect(
      paths.some((p) => path.test(p)),
      error.message,
    ).toBe(true);
  if (message !== undefined) expect(error.message).toMatch(message);
  return error;
}

/** Every number reachable in `value` (arrays, typed arrays, plain objects) is finite. */
export function expectAllFinite(value: unknown, label = "result"): void {
  if (typeof value === "number") {
    expect(Number.isFinite(value), `${label} is ${value}`).toBe(true);
    return;
  }
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    const values = value as unknown as ArrayLike<number>;
    for (let i = 0; i < values.length; i++) {
      if (!Number.isFinite(values[i])) expect.fail(`${label}[${i}] is ${values[i]}`);
    }
    return;
  }
  if (Array.isArray(value)) {
    value.forEach((item, i) => expectAllFinite(item, `${label}[${i}]`));
    return;
  }
  if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) expectAllFinite(item, `${label}.${key}`);
  }
}

/** A misspelling of `key`: two letters swapped, one dropped, one doubled, or snake_case. */
export function misspellings(key: string): string[] {
  const out = new Set<string>();
  for (let i = 0; i + 1 < key.length; i++) out.add(key.slice(0, i) + key[i + 1] + key[i] + key.slice(i + 2));
  for (let i = 0; i < key.length; i++) out.add(key.slice(0, i) + key.slice(i + 1));
  for (let i = 0; i < key.length; i++) out.add(key.slice(0, i + 1) + key[i] + key.slice(i + 1));
  out.add(key.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`));
  out.delete(key);
  return [...out].filter((k) => k.length > 0);
}

/** Every misspelling of every option key is refused at the misspelt key, as an unknown key. */
export function expectMisspelledOptionsRefused(
  options: Record<string, unknown>,
  call: (options: Record<string, unknown>) => unknown,
): void {
  const known = Object.keys(options);
  for (const key of known) {
    for (const typo of misspellings(key).filter((k) => !known.includes(k))) {
      const { [key]: value, ...rest } = options;
      const error = expectRefusedAt(
        attempt(() => call({ ...rest, [typo]: value })),
        `options.${typo}`,
      );
      expect(error.issues.find((i) => i.path === `options.${typo}`)!.message).toMatch(/^unknown key/);
    }
  }
}

/** An option set to one of its bad values (`badValues[key]`, fast-check draws the pair) is refused at the option. */
export function expectBadOptionValuesRefused(
  options: Record<string, unknown>,
  badValues: Record<string, readonly unknown[]>,
  call: (options: Record<string, unknown>) => unknown,
  runs = 60,
): void {
  hostile(
    fc
      .constantFrom(...Object.keys(options))
      .chain((key) => fc.tuple(fc.constant(key), fc.constantFrom(...badValues[key]!))),
    ([key, bad]) => {
      expectRefusedAt(
        attempt(() => call({ ...options, [key]: bad })),
        `options.${key}`,
      );
    },
    runs,
  );
}

/** Extreme finite policy-loss terms: log-ratios around exp's overflow (709.78) and underflow (−745), π near 0 and 1. */
export const extremeLossTerms = {
  logRatio: fc.oneof(
    fc.double({ min: -5, max: 5, noNaN: true }),
    fc.double({ min: -1000, max: 1000, noNaN: true }),
    fc.constantFrom(709, 710, -745, 800),
  ),
  logp: fc.oneof(fc.double({ min: -50, max: 0, noNaN: true }), fc.constantFrom(0, -1e-12, -700, -1000)),
  advantage: fc.oneof(fc.constant(0), fc.double({ min: -3, max: 3, noNaN: true })),
};

/**
 * policyLoss on a [2, 2] batch (oldLogp = logp − logRatio, the importance weights if any) gives finite numbers, or is
 * refused at a log-prob: at the token, or at the row for an objective whose term belongs to a row (LUSPO's sequence
 * ratio, VESPO's φ). A metric of the ratio itself may be +Infinity (documented, as for the built-in objectives).
 */
export function expectFiniteLossOrRefusedAtLogp(
  terms: { readonly logp: number[]; readonly logRatio: number[]; readonly advantages: number[] },
  importanceWeights: number[] | null,
  options: PolicyLossOptionsInput,
): void {
  const shape: [number, number] = [2, 2];
  const oldLogp = terms.logp.map((v, i) => v - terms.logRatio[i]!);
  const outcome = attempt(() =>
    policyLoss(
      {
        logp: { data: terms.logp, shape },
        oldLogp: { data: oldLogp, shape },
        advantages: terms.advantages,
        ...(importanceWeights !== null ? { importanceWeights: { data: importanceWeights, shape } } : {}),
      },
      options,
    ),
  );
  if (outcome.ok) {
    const { ratioMean: _mean, ratioMax: _max, ...metrics } = outcome.value.metrics;
    const { loss, grad, perTokenLoss } = outcome.value;
    expectAllFinite({ loss, grad, perTokenLoss, metrics });
  } else expectRefusedAt(outcome, /^inputs\.(logp|oldLogp)\[\d\](\[\d\])?$/);
}
