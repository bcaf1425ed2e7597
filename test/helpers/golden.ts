import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { expect } from "vitest";

/** Golden files are copies of ../shared/golden (see test/golden/README.md); tests never read ../shared. */
export function loadGolden<T = GoldenFile>(name: string): T {
  const path = fileURLToPath(new URL(`../golden/${name}`, import.meta.url));
  return JSON.parse(readFileSync(path, "utf8"), (_key, value) => decodeNonFinite(value)) as T;
}

export interface GoldenCase {
  id: string;
  function: string;
  scenario: string;
  inputs: Record<string, unknown>;
  hyperparameters: Record<string, unknown>;
  outputs: Record<string, unknown>;
  tolerance?: Tolerance;
  edge_case?: boolean;
}

export interface GoldenFile {
  cases: GoldenCase[];
}

export interface Tolerance {
  rtol: number;
  atol: number;
}

/**
 * Float64 values from the peers, compared where the library reproduces the peers' float32 scalars: the golden
 * README's suggested 1e-12 holds everywhere then. A case's own `tolerance` field, when present, overrides it.
 */
export const FLOAT64_TOLERANCE: Tolerance = { rtol: 1e-12, atol: 1e-12 };

function decodeNonFinite(value: unknown): unknown {
  if (value === "NaN") return NaN;
  if (value === "Infinity") return Infinity;
  if (value === "-Infinity") return -Infinity;
  return value;
}

/** |actual − expected| ≤ atol + rtol·|expected| elementwise; NaN matches NaN; -0 equals 0. */
export function expectAllClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: Tolerance,
  label: string,
): void {
  expect(actual.length, `${label}: length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (Number.isNaN(e) || Number.isNaN(a)) {
      expect(Number.isNaN(a), `${label}[${i}]: expected ${e}, got ${a}`).toBe(Number.isNaN(e));
      continue;
    }
    if (!Number.isFinite(e)) {
      expect(a, `${label}[${i}]`).toBe(e);
      continue;
    }
    const ok = Math.abs(a - e) <= tol.atol + tol.rtol * Math.abs(e);
    expect(ok, `${label}[${i}]: expected ${e}, got ${a} (|diff| ${Math.abs(a - e)})`).toBe(true);
  }
}

export function flatten(rows: readonly (readonly number[])[]): number[] {
  return rows.flat();
}
