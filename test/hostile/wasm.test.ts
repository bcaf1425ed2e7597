/**
 * The wasm backend's own surface, beyond the conformance suite's kernels: its options (strict, checked at
 * creation), its threads (what probe() says, release(), a Node process that exits without release, calls made
 * without awaiting), and logits in its memory (allocateLogits: the buffer's life, and what is refused).
 */
import { spawnSync } from "node:child_process";
import path from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { GrpoRocError, lossPresets, referenceBackend } from "../../src/index.js";
import { fusedCounts, keptGradient, type Prediction } from "../../src/wasm/fused.js";
import { createWasmBackend, WasmMemoryError } from "../../src/wasm/index.js";
import { moduleBytes } from "../../src/wasm/kernel.js";
import { expectClose, logitGradScale, tolerance } from "../conformance/tolerances.js";
import { hostile } from "./shared.js";

const repository = path.resolve(import.meta.dirname, "../..");

/** Logits drawn from a seed, [B, T, V], and tokens for them. */
function batch(rows: number, cols: number, vocab: number, seed = 1) {
  let state = seed;
  const next = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31;
    return state / 2 ** 31;
  };
  const data = Float32Array.from({ length: rows * cols * vocab }, () => (next() - 0.5) * 8);
  const tokens = { data: Array.from({ length: rows * cols }, (_, i) => (i * 7) % vocab), shape: [rows, cols] as const };
  const gradLogp = {
    data: Array.from({ length: rows * cols }, (_, i) => 0.1 * ((i % 5) - 2)),
    shape: [rows, cols] as const,
  };
  return { logits: { data, shape: [rows, cols, vocab] as [number, number, number] }, tokens, gradLogp };
}

const backends: { release(): Promise<void> }[] = [];
function tracked(options: Parameters<typeof createWasmBackend>[0]) {
  const backend = createWasmBackend(options);
  backends.push(backend);
  return backend;
}
afterAll(async () => {
  for (const backend of backends) await backend.release();
});

describe("class 1: createWasmBackend's options are strict", () => {
  it("a malformed or unknown option is a GrpoRocError naming it; valid ones are taken", () => {
    const option = fc.oneof(
      fc.record({ threads: fc.oneof(fc.integer({ min: -4, max: 0 }), fc.integer({ min: 257, max: 10_000 })) }),
      fc.record({ threads: fc.oneof(fc.double({ noInteger: true }), fc.constant(Number.NaN), fc.string()) }),
      fc.record({ chunkBytes: fc.oneof(fc.double({ max: 0 }), fc.constant(Infinity), fc.constant(Number.NaN)) }),
      fc.record({ name: fc.oneof(fc.constant(""), fc.integer()) }),
      fc.record({ thread: fc.integer({ min: 1, max: 4 }) }),
      fc.record({ chunkbytes: fc.integer({ min: 1 }) }),
    );
    hostile(option, (options) => {
      const [key] = Object.keys(options);
      expect(() => createWasmBackend(options as never)).toThrow(GrpoRocError);
      expect(() => createWasmBackend(options as never)).toThrow(new RegExp(`options\\.${key}`));
    });
    hostile(fc.integer({ min: 1, max: 256 }), (threads) => {
      expect(createWasmBackend({ threads }).name).toBe("wasm");
    });
  });
});

describe("class 2: threads", () => {
  it("probe() says how many threads and why", async () => {
    expect((await tracked({ threads: 3 }).probe()).reason).toMatch(/, 3 threads \(options\.threads\), workers/);
    expect((await tracked({ threads: 1 }).probe()).reason).toMatch(/, one thread \(options\.threads is 1\)/);
    expect((await tracked({}).probe()).reason).toMatch(/, (\d+ threads \(the cores available\)|one thread \(one core)/);
  });

  it("1, 2 and 5 threads give the same bits; release() ends the workers and a later call starts new ones", async () => {
    const { logits, tokens, gradLogp } = batch(3, 7, 1000);
    const results = [];
    for (const threads of [1, 2, 5]) {
      const backend = tracked({ threads });
      const forward = await backend.tokenLogProbs(logits, tokens, { entropy: true });
      const backward = await backend.tokenLogProbsBackward(logits, tokens, { gradLogp, gradEntropy: gradLogp });
      await backend.release();
      const again = await backend.tokenLogProbsBackward(logits, tokens, { gradLogp, gradEntropy: gradLogp });
      expect(again.data).toEqual(backward.data);
      results.push({ forward, backward });
    }
    for (const { forward, backward } of results.slice(1)) {
      expect(forward).toEqual(results[0]!.forward);
      expect(backward.data).toEqual(results[0]!.backward.data);
    }
    const expected = await referenceBackend.tokenLogProbs(logits, tokens, { entropy: true });
    for (let i = 0; i < expected.logp.length; i++)
      expect(results[0]!.forward.logp[i]).toBeCloseTo(expected.logp[i]!, 5);
  });

  it("calls made without awaiting each other run one at a time, each with its own result", async () => {
    const backend = tracked({ threads: 2, chunkBytes: 8192 });
    const cases = [batch(2, 5, 700, 1), batch(1, 9, 333, 2), batch(4, 3, 1000, 3)];
    const calls = cases.flatMap(({ logits, tokens, gradLogp }) => [
      backend.tokenLogProbs(logits, tokens),
      backend.tokenLogProbsBackward(logits, tokens, { gradLogp }),
    ]);
    const settled = await Promise.all(calls);
    for (const [k, { logits, tokens, gradLogp }] of cases.entries()) {
      expect(settled[2 * k]).toEqual(await backend.tokenLogProbs(logits, tokens));
      expect(settled[2 * k + 1]).toEqual(await backend.tokenLogProbsBackward(logits, tokens, { gradLogp }));
    }
  });

  it.each([
    ["without release()", ""],
    ["after release()", "await backend.release();"],
  ])("a Node process that used 2 threads exits on its own %s", (_title, release) => {
    const script = `
      import { createWasmBackend } from "./src/wasm/index.ts";
      const backend = createWasmBackend({ threads: 2 });
      const logits = { data: new Float32Array(4 * 64).fill(0.5), shape: [2, 2, 64] };
      const result = await backend.tokenLogProbs(logits, [[1, 2], [3, 4]]);
      ${release}
      console.log("logp", result.logp[0]);`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repository,
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(run.stderr).toBe("");
    expect(run.status, "the process did not exit by itself within 30 s").toBe(0);
    expect(run.stdout.trim()).toBe(`logp ${-Math.log(64)}`);
  });
});

describe("class 3: logits in the backend's memory (allocateLogits)", () => {
  it("the buffer's logits give the results of the same logits in JavaScript memory; the gradient is written into it", async () => {
    const backend = tracked({ threads: 2 });
    const { logits, tokens, gradLogp } = batch(2, 3, 500);
    const buffer = await backend.allocateLogits([2, 3, 500]);
    expect(buffer.logits.data.every((x) => x === 0)).toBe(true);
    buffer.logits.data.set(logits.data);
    expect(await backend.tokenLogProbs(buffer.logits, tokens)).toEqual(await backend.tokenLogProbs(logits, tokens));
    const gradient = await backend.tokenLogProbsBackward(buffer.logits, tokens, { gradLogp });
    expect(gradient.data).toBe(buffer.gradient);
    expect(gradient.data).toEqual(
      new Float32Array((await backend.tokenLogProbsBackward(logits, tokens, { gradLogp })).data),
    );
    const fromLogits = await backend.policyLossFromLogits({ logits: buffer.logits, tokens, advantages: [1, -1] });
    expect(fromLogits.gradLogits.data).toBe(buffer.gradient);
    buffer.release();
  });

  it("two buffers live side by side; a released one is refused, and its memory reused", async () => {
    const backend = tracked({ threads: 1 });
    const first = await backend.allocateLogits([1, 2, 100]);
    const second = await backend.allocateLogits([1, 2, 100]);
    first.logits.data.fill(1);
    second.logits.data.fill(2);
    expect(first.logits.data.every((x) => x === 1)).toBe(true);
    const kept = first.logits;
    first.release();
    first.release();
    await expect(backend.tokenLogProbs(kept, [[0, 1]])).rejects.toThrow(/logits\.data.*released/);
    expect(() => first.logits.data).toThrow(/released/);
    expect(() => first.gradient).toThrow(/released/);
    const third = await backend.allocateLogits([1, 1, 100]);
    expect(third.logits.data.every((x) => x === 0)).toBe(true);
    expect(second.logits.data.every((x) => x === 2)).toBe(true);
    second.release();
    third.release();
  });

  it("a malformed shape, or one beyond wasm32's 4 GiB, is refused", async () => {
    const backend = tracked({ threads: 1 });
    const shape = fc.oneof(
      fc.tuple(fc.integer({ min: -3, max: -1 }), fc.nat(4), fc.integer({ min: 1, max: 9 })),
      fc.tuple(fc.nat(4), fc.nat(4), fc.constant(0)),
      fc.tuple(fc.double({ noInteger: true, min: 0.1, max: 9 }), fc.nat(4), fc.integer({ min: 1, max: 9 })),
      fc.array(fc.nat(4), { maxLength: 5 }).filter((a) => a.length !== 3),
    );
    await fc.assert(
      fc.asyncProperty(shape, async (dims) => {
        await expect(backend.allocateLogits(dims as never)).rejects.toThrow(/^shape/);
      }),
      { numRuns: 100 },
    );
    await expect(backend.allocateLogits([8, 512, 152_064])).rejects.toThrow(WasmMemoryError);
    await expect(backend.allocateLogits([8, 512, 152_064])).rejects.toThrow(/beyond wasm32's 4 GiB/);
    const small = await backend.allocateLogits([1, 1, 8]);
    expect(small.logits.shape).toEqual([1, 1, 8]);
    small.release();
  });
});

describe("class 4: the kernel can be run by several threads at once", () => {
  it("its code never touches the stack pointer (every thread's instance starts its stack at the same address)", () => {
    for (const build of ["shared", "single"] as const) {
      expect(stackPointerUses(moduleBytes(build)), `${build} build`).toEqual([]);
    }
  });
});

describe("class 5: the loss from logits, fused (the loss gradient predicted in the kernel)", () => {
  const presets = { paper: lossPresets.paper, reference: lossPresets.reference, verl: lossPresets.verl };
  const counted = async <T>(run: () => Promise<T>) => {
    const before = { ...fusedCounts };
    const value = await run();
    return { value, kept: fusedCounts.kept - before.kept, recomputed: fusedCounts.recomputed - before.recomputed };
  };

  it("clip presets, with and without old log-probs, masks, an entropy bonus, temperatures: the gradient is kept, and is the reference's", async () => {
    const backend = tracked({ threads: 2 });
    const arbitrary = fc.record({
      preset: fc.constantFrom(...(Object.keys(presets) as (keyof typeof presets)[])),
      rows: fc.integer({ min: 1, max: 4 }),
      cols: fc.integer({ min: 1, max: 5 }),
      vocab: fc.integer({ min: 1, max: 300 }),
      seed: fc.integer({ min: 1, max: 1e6 }),
      old: fc.boolean(),
      masked: fc.boolean(),
      entropyCoef: fc.constantFrom(0, 0.01),
      temperature: fc.constantFrom(1, 0.7),
    });
    await fc.assert(
      fc.asyncProperty(arbitrary, async (c) => {
        const { logits, tokens } = batch(c.rows, c.cols, c.vocab, c.seed);
        const forward = await referenceBackend.tokenLogProbs(logits, tokens, { temperature: c.temperature });
        const inputs = {
          logits,
          tokens,
          advantages: Array.from({ length: c.rows }, (_, b) => (b % 2 === 0 ? 1 : -0.5)),
          ...(c.old
            ? { oldLogp: { data: forward.logp.map((x, i) => x + 0.4 * Math.sin(i)), shape: forward.shape } }
            : {}),
          ...(c.masked
            ? { mask: { data: forward.logp.map((_, i) => (i % 3 === 2 ? 0 : 1)), shape: forward.shape } }
            : {}),
        };
        const options = { ...presets[c.preset], entropyCoef: c.entropyCoef, temperature: c.temperature };
        const { value, kept, recomputed } = await counted(() => backend.policyLossFromLogits(inputs, options));
        expect([kept, recomputed]).toEqual([1, 0]);
        const expected = await referenceBackend.policyLossFromLogits(inputs, options);
        expectClose(value.loss, expected.loss, tolerance("float32", "value", 1), "loss");
        const statistics = await referenceBackend.tokenLogProbs(logits, tokens, {
          temperature: c.temperature,
          entropy: true,
        });
        const scale = logitGradScale(
          logits.data,
          c.vocab,
          expected.gradLogits.data,
          statistics,
          expected.grad,
          expected.gradEntropy,
          c.temperature,
        );
        expectClose(value.gradLogits.data, expected.gradLogits.data, tolerance("float32", "grad", scale), "∂/∂logits");
      }),
      { numRuns: 60, seed: 20261207 },
    );
  });

  it("a loss gradient the kernel does not predict (a zero advantage where the ratio overflows: the reference's 0, the kernel's NaN): recomputed, the reference's", async () => {
    const backend = tracked({ threads: 2 });
    const { logits, tokens } = batch(2, 3, 50);
    const inputs = {
      logits,
      tokens,
      advantages: [0, 1],
      oldLogp: [
        [-800, -1, -1],
        [-4, -4, -4],
      ],
    };
    const { value, kept, recomputed } = await counted(() => backend.policyLossFromLogits(inputs, lossPresets.paper));
    expect([kept, recomputed]).toEqual([0, 1]);
    const expected = await referenceBackend.policyLossFromLogits(inputs, lossPresets.paper);
    expect(value.loss).toBeCloseTo(expected.loss, 6);
    for (let i = 0; i < expected.gradLogits.data.length; i++)
      expect(value.gradLogits.data[i]).toBeCloseTo(expected.gradLogits.data[i]!, 6);
  });

  it("objectives whose loss gradient is not per position (cispo, a sequence ratio, a KL term): composed, no prediction", async () => {
    const backend = tracked({ threads: 2 });
    const { logits, tokens } = batch(2, 3, 40);
    const inputs = {
      logits,
      tokens,
      advantages: [1, -1],
      refLogp: [
        [-3, -3, -3],
        [-3, -3, -3],
      ],
    };
    for (const options of [
      { ...lossPresets.paper, objective: "cispo" as const },
      lossPresets.verlGspo,
      { ...lossPresets.paper, kl: { kind: "k3" as const, coef: 0.1 } },
    ]) {
      const { value, kept, recomputed } = await counted(() => backend.policyLossFromLogits(inputs, options));
      expect([kept, recomputed]).toEqual([0, 0]);
      expect(value.loss).toBeCloseTo((await referenceBackend.policyLossFromLogits(inputs, options)).loss, 6);
    }
  });

  it("keeps a gradient only when every position's predicted loss gradient is the reference's (2^-30) and its entropy gradient exactly", () => {
    const gradient = { data: new Float32Array(4), shape: [1, 2, 2] as const };
    const prediction = (predicted: number[], gradEntropy: number[]): Prediction => ({
      old: new Float64Array(2),
      onPolicy: true,
      advantage: new Float64Array(2),
      weight: new Float64Array(2),
      gradEntropy: Float32Array.from(gradEntropy),
      params: [],
      outcome: { gradient: () => gradient, predicted: Float64Array.from(predicted) },
    });
    const options = (gradLogp: number[], gradEntropy?: number[]) => ({
      gradLogp: { data: gradLogp, shape: [1, 2] as const },
      ...(gradEntropy === undefined ? {} : { gradEntropy: { data: gradEntropy, shape: [1, 2] as const } }),
    });
    expect(keptGradient(prediction([0.5, -0.25], [0, 0]), options([0.5, -0.25]))).toBe(gradient);
    expect(keptGradient(prediction([0.5, 0], [0, 0]), options([0.5 * (1 + 2 ** -31), 0]))).toBe(gradient);
    expect(keptGradient(prediction([0.5, 0], [0, 0]), options([0.5 * (1 + 2 ** -29), 0]))).toBeUndefined();
    expect(keptGradient(prediction([0, 0], [0, 0]), options([1e-300, 0]))).toBeUndefined();
    expect(keptGradient(prediction([Number.NaN, 0], [0, 0]), options([0, 0]))).toBeUndefined();
    expect(keptGradient(prediction([0, 0], [-0.1, 0]), options([0, 0], [-0.1, 0]))).toBe(gradient);
    expect(keptGradient(prediction([0, 0], [-0.1, 0]), options([0, 0], [-0.1000001, 0]))).toBeUndefined();
    expect(keptGradient(prediction([0, 0], [-0.1, 0]), options([0, 0]))).toBeUndefined();
    const { outcome: _, ...withoutOutcome } = prediction([0, 0], [0, 0]);
    expect(keptGradient(withoutOutcome, options([0, 0]))).toBeUndefined();
  });
});

describe("class 6: calls queued behind others, and saved statistics that are not the logits'", () => {
  it("arrays refilled after a call was made, before it ran: the call uses what it was given", async () => {
    const backend = tracked({ threads: 2 });
    const { logits, gradLogp } = batch(1, 2, 8);
    const given = () => ({ data: Int32Array.from([1, 2]), shape: [1, 2] as const });
    const expected = {
      forward: await backend.tokenLogProbs(logits, given()),
      backward: await backend.tokenLogProbsBackward(logits, given(), { gradLogp }),
    };
    const blocker = backend.tokenLogProbs(batch(4, 64, 2000).logits, batch(4, 64, 2000).tokens);
    const [forwardTokens, backwardTokens] = [given(), given()];
    const upstream = { data: Float64Array.from(gradLogp.data), shape: gradLogp.shape };
    const forward = backend.tokenLogProbs(logits, forwardTokens);
    const backward = backend.tokenLogProbsBackward(logits, backwardTokens, { gradLogp: upstream });
    forwardTokens.data[0] = 1000;
    backwardTokens.data[1] = -1;
    upstream.data.fill(100);
    await blocker;
    expect(await forward).toEqual(expected.forward);
    expect((await backward).data).toEqual(expected.backward.data);
  });

  it("the fused loss on logits in the backend's memory resolves with its own gradient, though a later call wrote over it", async () => {
    for (const threads of [1, 2]) {
      const backend = tracked({ threads });
      const buffer = await backend.allocateLogits([1, 2, 8]);
      const values = [1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1];
      buffer.logits.data.set(values);
      const inputs = { logits: buffer.logits, tokens: [[1, 2]], advantages: [1] };
      const before = { ...fusedCounts };
      const fused = backend.policyLossFromLogits(inputs, lossPresets.paper);
      const later = backend.tokenLogProbsBackward(buffer.logits, [[1, 2]], { gradLogp: [[100, 100]] });
      const result = await fused;
      const resolved = Float32Array.from(result.gradLogits.data);
      expect(fusedCounts.recomputed - before.recomputed).toBe(1);
      const expected = await referenceBackend.policyLossFromLogits(
        { ...inputs, logits: { data: Float32Array.from(values), shape: [1, 2, 8] } },
        lossPresets.paper,
      );
      expectClose(resolved, expected.gradLogits.data, tolerance("float32", "grad", 1), "∂/∂logits");
      await later;
      buffer.release();
    }
  });

  it("fused calls on one buffer, not awaited, and a call between them that fails: the last resolves with its own gradient, and the buffer ends with it", async () => {
    for (const threads of [1, 2]) {
      const backend = tracked({ threads });
      const shape = [2, 3, 37] as [number, number, number];
      const buffer = await backend.allocateLogits(shape);
      const values = Float32Array.from({ length: 2 * 3 * 37 }, (_, i) => Math.sin(i * 1.3) * 4);
      buffer.logits.data.set(values);
      const tokens = [
        [1, 5, 36],
        [0, 20, 3],
      ];
      const other = await backend.tokenLogProbs({ data: values.map((v) => 3 * v), shape }, tokens);
      const calls = [1, 2, 3, 4].map((n) =>
        backend.policyLossFromLogits({ logits: buffer.logits, tokens, advantages: [n, -n] }, lossPresets.paper),
      );
      // Statistics of other logits: refused, after its kernel has written the buffer's gradient.
      const failing = backend.tokenLogProbsBackward(buffer.logits, tokens, { gradLogp: tokens, saved: other });
      const last = backend.policyLossFromLogits(
        { logits: buffer.logits, tokens, advantages: [5, -5] },
        lossPresets.paper,
      );
      await expect(failing).rejects.toThrow(/options\.saved/);
      await Promise.all(calls);
      const resolved = Float32Array.from((await last).gradLogits.data);
      const expected = await referenceBackend.policyLossFromLogits(
        { logits: { data: values, shape }, tokens, advantages: [5, -5] },
        lossPresets.paper,
      );
      expectClose(resolved, expected.gradLogits.data, tolerance("float32", "grad", 1), "the last call's ∂/∂logits");
      expectClose(buffer.gradient, expected.gradLogits.data, tolerance("float32", "grad", 1), "the buffer's");
      buffer.release();
    }
  });

  it("release() while a call is fetching its workers: the call settles, and the next one runs", async () => {
    const backend = tracked({ threads: 2 });
    const { logits, tokens } = batch(1, 8, 64);
    const expected = await backend.tokenLogProbs(logits, tokens);
    const settles = (promise: Promise<unknown>) =>
      Promise.race([
        promise.then(
          () => "settled",
          () => "settled",
        ),
        new Promise((resolve) => setTimeout(() => resolve("still pending after 5 s"), 5000)),
      ]);
    for (let ticks = 0; ticks < 6; ticks++) {
      const call = backend.tokenLogProbs(logits, tokens);
      for (let k = 0; k < ticks; k++) await Promise.resolve();
      const released = backend.release();
      expect(await settles(call), `release after ${ticks} microtasks`).toBe("settled");
      await released;
      expect(await backend.tokenLogProbs(logits, tokens)).toEqual(expected);
    }
  });

  it("release() while a worker is busy, in a Node process with nothing else to do: the next call still completes", () => {
    // The calling thread's half of the backward is masked out (its rows have no gradient), so the worker is the one
    // still running when release() ends it; the queued forward must wait for it to stop, and Node must wait too.
    const script = `
      import { createWasmBackend } from "./src/wasm/index.ts";
      const backend = createWasmBackend({ threads: 2 });
      const [P, V] = [64, 32768];
      const logits = { data: Float32Array.from({ length: P * V }, (_, i) => Math.sin(i * 0.01) * 5), shape: [1, P, V] };
      const tokens = [Array.from({ length: P }, (_, t) => t)];
      const gradLogp = [Array.from({ length: P }, (_, t) => (t < P / 2 ? 0 : 1))];
      const expected = await backend.tokenLogProbs(logits, tokens);
      const busy = backend.tokenLogProbsBackward(logits, tokens, { gradLogp });
      const next = backend.tokenLogProbs(logits, tokens);
      setTimeout(() => void backend.release(), 0);
      await busy.catch(() => undefined);
      const result = await next;
      console.log(result.logp.every((x, i) => x === expected.logp[i]) ? "next: same" : "next: different");`;
    const run = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
      cwd: repository,
      encoding: "utf8",
      timeout: 60_000,
    });
    expect(run.stderr).toBe("");
    expect(run.status, `exit ${run.status}, signal ${run.signal}`).toBe(0);
    expect(run.stdout.trim()).toBe("next: same");
  });

  it("saved statistics under which a logit is far above the logsumexp (logits changed since): refused, however far", async () => {
    for (const threads of [1, 2]) {
      const backend = tracked({ threads });
      const data = Float32Array.from([-20, 0, 0.5, 1, 1.5, 2, 2.5, 3]);
      const logits = { data, shape: [1, 1, 8] as [number, number, number] };
      const saved = await backend.tokenLogProbs(logits, [[1]]);
      for (const changed of [50, 89, 100, 1000, 1e5, 3e38]) {
        data[0] = changed;
        await expect(
          backend.tokenLogProbsBackward(logits, [[1]], { gradLogp: [[1]], saved }),
          `logit ${changed}`,
        ).rejects.toThrow(/options\.saved/);
      }
    }
  });

  it("an objective of the reference's (dppo-tv) names an overflowing loss gradient at the logits, as clip and cispo do", async () => {
    const backend = tracked({ threads: 1 });
    const logits = { data: Float32Array.from([0, 1, 2, 3]), shape: [1, 1, 4] as [number, number, number] };
    for (const objective of ["clip", "cispo", "dppo-tv"] as const) {
      await expect(
        backend.policyLossFromLogits({ logits, tokens: [[1]], advantages: [3e37] }, { objective, temperature: 0.01 }),
        objective,
      ).rejects.toThrow(/^logits\[0\]\[0\]/);
    }
  });
});

/**
 * Offsets of global.get 0 / global.set 0 in a module: 0x23 or 0x24, then the index 0 as LEB128, which wasm-ld pads
 * to five bytes (0x80 0x80 0x80 0x80 0x00) — __stack_pointer, wasm-ld's global 0. The bytes could also occur inside
 * an immediate: a false alarm fails the test, it never hides a use.
 */
function stackPointerUses(bytes: Uint8Array): number[] {
  const uses: number[] = [];
  for (let k = 0; k + 1 < bytes.length; k++) {
    if (bytes[k] !== 0x23 && bytes[k] !== 0x24) continue;
    let j = k + 1;
    while (j < k + 5 && bytes[j] === 0x80) j++;
    if (bytes[j] === 0x00) uses.push(k);
  }
  return uses;
}
