/**
 * The wasm backend's kernel itself (native/wasm/logprobs.c, src/wasm/kernel.ts):
 *
 * - the committed builds are what scripts/build-wasm.sh makes from the source: the same bytes on a rebuild (needs
 *   Debian's clang-14 and wasm-ld-14, `scripts/install-test-deps.sh`; skipped with the reason otherwise, required
 *   with CI set), and the base64 the package loads decodes to the committed files;
 * - its exponential (exp4, four lanes) against Math.exp over the float32 range: within 1 ulp of the exact value
 *   where e^x is a normal float32, within 1 unit of the smallest subnormal (2^-149) below, 0 under e^-103.98,
 *   +Infinity above 88.72, NaN for NaN;
 * - an engine without 128-bit SIMD makes the backend unavailable, saying so.
 */
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { createWasmBackend } from "../src/wasm/index.js";
import { moduleBytes, unsupportedReason, WasmKernel } from "../src/wasm/kernel.js";

const repository = path.resolve(import.meta.dirname, "..");
const inCi = (() => {
  const ci = process.env.CI;
  return ci !== undefined && ci !== "" && ci !== "0" && ci.toLowerCase() !== "false";
})();
const toolchain = spawnSync("bash", ["-c", "command -v clang-14 && command -v wasm-ld-14"]).status === 0;

describe("the committed kernel is its source's build", () => {
  it("the base64 the package loads is the committed .wasm files, byte for byte", () => {
    for (const [build, file] of [
      ["shared", "logprobs-shared.wasm"],
      ["single", "logprobs.wasm"],
    ] as const) {
      const committed = readFileSync(path.join(repository, "native/wasm", file));
      expect(Buffer.from(moduleBytes(build)).equals(committed), file).toBe(true);
    }
  });

  it.skipIf(!inCi)("CI: clang-14 and wasm-ld-14 are installed (scripts/install-test-deps.sh)", () => {
    expect(toolchain).toBe(true);
  });

  it.skipIf(!toolchain)(
    `a rebuild from native/wasm/logprobs.c gives the same bytes${
      toolchain ? "" : " — skipped: clang-14 or wasm-ld-14 is not installed (scripts/install-test-deps.sh)"
    }`,
    () => {
      const run = spawnSync("bash", [path.join(repository, "scripts/build-wasm.sh"), "--check"], { encoding: "utf8" });
      expect(run.stderr).toBe("");
      expect(run.status).toBe(0);
    },
    60_000,
  );
});

describe("the kernel's exponential against Math.exp", () => {
  const kernel = WasmKernel.create();
  const SMALLEST_SUBNORMAL = 2 ** -149;
  const SMALLEST_NORMAL = 2 ** -126;

  function expOf(xs: Float32Array): Float32Array {
    const [input, output] = kernel.reserve([xs.length * 4, xs.length * 4]) as [number, number];
    kernel.f32(input, xs.length).set(xs);
    kernel.exports.exp_f32(input, output, xs.length);
    return kernel.f32(output, xs.length).slice();
  }

  /** The error in units of the last place of the exact value (float32's ulp at e^x), or of 2^-149 below normals. */
  function error(x: number, y: number): number {
    const exact = Math.exp(x);
    const ulp = exact < SMALLEST_NORMAL ? SMALLEST_SUBNORMAL : 2 ** (Math.floor(Math.log2(exact)) - 23);
    return Math.abs(y - exact) / ulp;
  }

  it("float32 values over [−103.97, 88.72], every 2^-13 and 2^20 at random: within 1 ulp (of 2^-149 below the normals)", () => {
    const xs: number[] = [];
    for (let x = -103.97; x <= 88.72; x += 2 ** -13) xs.push(x);
    let seed = 17;
    for (let k = 0; k < 2 ** 20; k++) {
      seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
      xs.push(-103.97 + (192.69 * seed) / 2 ** 32);
    }
    const input = Float32Array.from(xs);
    const output = expOf(input);
    let worst = 0;
    let worstAt = 0;
    for (let k = 0; k < input.length; k++) {
      const e = error(input[k]!, output[k]!);
      if (e > worst) [worst, worstAt] = [e, input[k]!];
    }
    expect(
      worst,
      `worst at x = ${worstAt}: e^x = ${Math.exp(worstAt)}, kernel ${expOf(Float32Array.of(worstAt))[0]}`,
    ).toBeLessThanOrEqual(1);
  });

  it("the ends of the range and the special values", () => {
    const cases: [number, number][] = [
      [0, 1],
      [-0, 1],
      [Number.NEGATIVE_INFINITY, 0],
      [Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY],
      [-104, 0],
      [-1e30, 0],
      [-3.4e38, 0],
      [89, Number.POSITIVE_INFINITY],
      [3.4e38, Number.POSITIVE_INFINITY],
    ];
    const output = expOf(Float32Array.from(cases.map(([x]) => x)));
    cases.forEach(([x, expected], k) => expect(output[k], `e^${x}`).toBe(expected));
    expect(expOf(Float32Array.of(Number.NaN))[0]).toBeNaN();
    // The largest float32 below the overflow threshold is finite; the first subnormal results keep their digits.
    const [top, low] = expOf(Float32Array.of(88.72283, -100));
    expect(Number.isFinite(top!)).toBe(true);
    expect(error(Math.fround(-100), low!)).toBeLessThanOrEqual(1);
  });

  it("tails of 1 to 3 entries (the scalar path) give what the vector path gives", () => {
    const input = Float32Array.from({ length: 11 }, (_, k) => -k * 1.37);
    const whole = expOf(input);
    for (let k = 0; k < input.length; k++) expect(expOf(input.slice(k, k + 1))[0]).toBe(whole[k]);
  });

  describe("the statistics' exponential, for x ≤ 0 (exp_nonpositive_f32)", () => {
    function nonpositiveExpOf(xs: Float32Array): Float32Array {
      const [input, output] = kernel.reserve([xs.length * 4, xs.length * 4]) as [number, number];
      kernel.f32(input, xs.length).set(xs);
      kernel.exports.exp_nonpositive_f32(input, output, xs.length);
      return kernel.f32(output, xs.length).slice();
    }

    it("float32 values over [−87.33, 0], every 2^-14 and 2^20 at random: within 1 ulp", () => {
      const xs: number[] = [];
      for (let x = -87.33; x <= 0; x += 2 ** -14) xs.push(x);
      let seed = 29;
      for (let k = 0; k < 2 ** 20; k++) {
        seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
        xs.push((-87.33 * seed) / 2 ** 32);
      }
      const input = Float32Array.from(xs).filter((x) => x >= Math.fround(-87.33));
      const output = nonpositiveExpOf(input);
      let worst = 0;
      for (let k = 0; k < input.length; k++) worst = Math.max(worst, error(input[k]!, output[k]!));
      expect(worst).toBeLessThanOrEqual(1);
    });

    it("0 below −87.33 (where e^x is subnormal), at −Infinity and for NaN (rows holding NaN never get here); 1 at 0; within 1 ulp up to 88.37 and +Infinity above; the tail as the vector path", () => {
      const input = Float32Array.of(-87.34, -100, -1e30, Number.NEGATIVE_INFINITY, 0, -0);
      expect([...nonpositiveExpOf(input)]).toEqual([0, 0, 0, 0, 1, 1]);
      // Above 0 (a log-prob under saved statistics that are not its row's): e^x up to 88.37, +Infinity beyond.
      const above = Float32Array.from({ length: 4096 }, (_, k) => (88.37 * k) / 4095);
      const values = nonpositiveExpOf(above);
      for (let k = 0; k < above.length; k++)
        expect(error(above[k]!, values[k]!), `e^${above[k]}`).toBeLessThanOrEqual(1);
      const beyond = Float32Array.of(88.38, 88.72, 89, 100, 1e5, 1e10, 3e38, Number.POSITIVE_INFINITY);
      expect([...nonpositiveExpOf(beyond)]).toEqual(Array(beyond.length).fill(Number.POSITIVE_INFINITY));
      expect(nonpositiveExpOf(Float32Array.of(Number.NaN))[0]).toBe(0);
      const ramp = Float32Array.from({ length: 11 }, (_, k) => -k * 7.9);
      const whole = nonpositiveExpOf(ramp);
      for (let k = 0; k < ramp.length; k++) expect(nonpositiveExpOf(ramp.slice(k, k + 1))[0]).toBe(whole[k]);
    });
  });
});

describe("where WebAssembly SIMD is missing", () => {
  it("the probe says the engine lacks 128-bit SIMD and the backend is unavailable", async () => {
    // The package compiles without the DOM library, whose types declare WebAssembly: reach it untyped.
    const api = (globalThis as unknown as { WebAssembly: { validate: (bytes: Uint8Array) => boolean } }).WebAssembly;
    const validate = api.validate;
    api.validate = () => false;
    try {
      expect(unsupportedReason()).toMatch(/lacks 128-bit SIMD/);
      const info = await createWasmBackend({ name: "wasm-without-simd" }).probe();
      expect(info.available).toBe(false);
      expect(info.reason).toMatch(/lacks 128-bit SIMD/);
      // A backend probed here (after the stub) refuses its kernels with the probe's reason.
      const fresh = createWasmBackend({ name: "fresh" });
      const refused = await fresh.tokenLogProbs([[[0, 1]]], [[0]]).catch((e: unknown) => e);
      expect(refused).toBeInstanceOf(Error);
      expect((refused as Error).message).toMatch(/not available: .*lacks 128-bit SIMD/);
    } finally {
      api.validate = validate;
    }
  });
});
