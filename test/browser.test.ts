/**
 * The browser example (examples/browser/) in headless Chromium: the page computes the policy loss of a fixed batch
 * with the WebGPU backend, or without WebGPU with the wasm backend, and with the reference backend; here its
 * float32 results are checked against the reference computed in Node on the same batch, at the float32 tolerances
 * of the conformance suite (test/conformance/tolerances.ts). Without --enable-unsafe-webgpu the page must say why
 * it has no WebGPU and run the wasm backend instead, cross-origin isolated (the server's COOP and COEP headers).
 *
 * Chromium missing: skipped with the reason, except with CI set, where it fails. How WebGPU runs headless on a
 * machine without a GPU: test/helpers/browser.ts.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exampleBatch, T, V } from "../examples/browser/batch.js";
import { buildExample, serveExample } from "../examples/browser/serve.js";
import {
  lossPresets,
  policyLoss,
  policyLossFromLogits,
  tokenLogProbs,
  type PolicyLossInputs,
  type PolicyLossResult,
} from "../src/index.js";
import { chromiumFound, chromiumPath, inCi, launchChromium, WEBGPU_FLAGS } from "./helpers/browser.js";
import {
  expectClose,
  gradScale,
  logitGradScale,
  logProbScale,
  lossScale,
  metricScale,
  tolerance,
  TOLERANCES,
} from "./conformance/tolerances.js";

/** A loss result as it crosses from the page: typed arrays as plain arrays. */
interface PageLoss {
  loss: number;
  grad: number[];
  perTokenLoss: number[];
  metrics: Record<string, number | undefined>;
  logp?: number[];
  gradLogits?: number[];
}

interface PageOutcome {
  backend: "webgpu" | "wasm" | "reference";
  ok: boolean;
  webgpu: boolean;
  reason: string;
  wasm?: { available: boolean; reason: string } | undefined;
  crossOriginIsolated: boolean;
  adapter?: { vendor: string; architecture: string; description: string; isFallbackAdapter: boolean } | undefined;
  error?: string | undefined;
  status: string;
  table: string;
  reference?: PageLoss | undefined;
  referencePolicyLoss?: PageLoss | undefined;
  webgpuLogits?: PageLoss | undefined;
  webgpuPolicyLoss?: PageLoss | undefined;
  wasmLogits?: PageLoss | undefined;
  wasmPolicyLoss?: PageLoss | undefined;
}

/** Loads the page, waits for window.__grpoRoc and reads it. */
async function outcomeOf(browser: Browser, url: string): Promise<PageOutcome & { pageErrors: string[] }> {
  const page: Page = await browser.newPage();
  const pageErrors: string[] = [];
  page.on("pageerror", (error) => pageErrors.push(String(error)));
  page.on("console", (message) => {
    if (message.type() === "error") pageErrors.push(message.text());
  });
  try {
    await page.goto(url);
    await page
      .waitForFunction(() => (globalThis as { __grpoRoc?: { done?: boolean } }).__grpoRoc?.done === true, undefined, {
        timeout: 60_000,
      })
      .catch(async (error: unknown) => {
        const status = await page
          .locator("#status")
          .textContent()
          .catch(() => null);
        throw new Error(
          `the page gave no outcome (status: ${JSON.stringify(status)}; page errors: ${JSON.stringify(pageErrors)}): ${String(error)}`,
        );
      });
    const outcome = await page.evaluate(() => {
      type Result = {
        loss: number;
        grad: ArrayLike<number>;
        perTokenLoss: ArrayLike<number>;
        metrics: Record<string, number | undefined>;
        logp?: ArrayLike<number>;
        gradLogits?: { data: ArrayLike<number> };
      };
      const o = (
        globalThis as unknown as {
          __grpoRoc: Record<string, unknown> & { results: Record<string, Result | undefined> };
        }
      ).__grpoRoc;
      const plain = (r: Result | undefined) =>
        r && {
          loss: r.loss,
          grad: Array.from(r.grad),
          perTokenLoss: Array.from(r.perTokenLoss),
          metrics: r.metrics,
          ...(r.logp ? { logp: Array.from(r.logp) } : {}),
          ...(r.gradLogits ? { gradLogits: Array.from(r.gradLogits.data) } : {}),
        };
      // In the page; this file is type-checked without the DOM library.
      const { document } = globalThis as unknown as {
        document: { querySelector(selector: string): { textContent: string | null } | null };
      };
      const text = (selector: string) => document.querySelector(selector)?.textContent ?? "";
      return {
        backend: o.backend as PageOutcome["backend"],
        ok: o.ok as boolean,
        webgpu: o.webgpu as boolean,
        reason: o.reason as string,
        wasm: o.wasm as PageOutcome["wasm"],
        crossOriginIsolated: o.crossOriginIsolated as boolean,
        adapter: o.adapter as PageOutcome["adapter"],
        error: o.error as string | undefined,
        status: text("#status"),
        table: text("#results"),
        reference: plain(o.results.reference),
        referencePolicyLoss: plain(o.results.referencePolicyLoss),
        webgpuLogits: plain(o.results.webgpu),
        webgpuPolicyLoss: plain(o.results.webgpuPolicyLoss),
        wasmLogits: plain(o.results.wasm),
        wasmPolicyLoss: plain(o.results.wasmPolicyLoss),
      };
    });
    return { ...outcome, pageErrors };
  } finally {
    await page.close();
  }
}

// The same batch and options as the page, and the reference results in Node.
const options = lossPresets.paper;
const batch = exampleBatch();
const { logits, tokens, ...rest } = batch;
const reference = policyLossFromLogits(batch, options);
const lossInputs: PolicyLossInputs = { ...rest, logp: { data: reference.logp, shape: [batch.advantages.length, T] } };
const referencePolicyLoss = policyLoss(lossInputs, options);
const forward = tokenLogProbs(logits, tokens, { mask: batch.mask });

/** Every field the page shows against the Node reference at float32 tolerances, as the conformance suite compares. */
function expectFloat32Loss(actual: PageLoss, expected: PolicyLossResult, label: string): void {
  expectClose(
    actual.loss,
    expected.loss,
    tolerance("float32", "value", lossScale(expected, lossInputs, options)),
    `${label} loss`,
  );
  expectClose(
    actual.grad,
    expected.grad,
    tolerance("float32", "grad", gradScale(expected, lossInputs, options)),
    `${label} ∂loss/∂logp`,
  );
  expectClose(
    actual.perTokenLoss,
    expected.perTokenLoss,
    tolerance("float32", "value", Float64Array.from(expected.perTokenLoss, Math.abs)),
    `${label} perTokenLoss`,
  );
  for (const [name, value] of Object.entries(expected.metrics)) {
    if (value === undefined) continue;
    expectClose(
      actual.metrics[name]!,
      value,
      tolerance("float32", "value", metricScale(name, expected, lossInputs, options)),
      `${label} metrics.${name}`,
    );
  }
}

/** policyLossFromLogits from the page against the Node reference: expectFloat32Loss, the log-probs, ∂loss/∂logits. */
function expectFloat32LogitsLoss(actual: PageLoss): void {
  expectFloat32Loss(actual, reference, "policyLossFromLogits");
  expectClose(actual.logp!, reference.logp, tolerance("float32", "value", logProbScale(forward.logp)), "logp");
  const scale = logitGradScale(logits.data, V, reference.gradLogits.data, forward, reference.grad, undefined, 1);
  expectClose(actual.gradLogits!, reference.gradLogits.data, tolerance("float32", "grad", scale), "∂loss/∂logits");
}

describe("browser example: availability", () => {
  it.skipIf(!inCi)("Chromium is installed (required when CI is set)", () => {
    expect(chromiumFound, `${chromiumPath} not found: apt-get install chromium (or set CHROMIUM_PATH)`).toBe(true);
  });
});

const title = chromiumFound
  ? `browser example in headless Chromium (${chromiumPath})`
  : `browser example — skipped: ${chromiumPath} not found (apt-get install chromium, or set CHROMIUM_PATH)`;
describe.skipIf(!chromiumFound)(title, () => {
  let server: Awaited<ReturnType<typeof serveExample>> | undefined;
  let withWebGpu: PageOutcome & { pageErrors: string[] };
  let withoutWebGpu: PageOutcome & { pageErrors: string[] };
  let notIsolated: PageOutcome & { pageErrors: string[] };

  const outdir = mkdtempSync(join(tmpdir(), "grpo-roc-browser-example-"));

  beforeAll(async () => {
    await buildExample(outdir);
    server = await serveExample(0, outdir);
    const visit = async (flags: readonly string[], url = server!.url) => {
      const browser = await launchChromium(flags);
      try {
        return await outcomeOf(browser, url);
      } finally {
        await browser.close();
      }
    };
    withWebGpu = await visit(WEBGPU_FLAGS);
    withoutWebGpu = await visit([]);
    const plain = await serveExample(0, outdir, { isolated: false });
    try {
      notIsolated = await visit([], plain.url);
    } finally {
      await plain.close();
    }
  }, 180_000);

  afterAll(async () => {
    await server?.close();
    rmSync(outdir, { recursive: true, force: true });
  });

  it("the page loads without errors, cross-origin isolated, and computes the reference loss exactly as Node does", () => {
    for (const outcome of [withWebGpu, withoutWebGpu]) {
      expect(outcome.pageErrors).toEqual([]);
      // The server's COOP and COEP headers: what shared memory, and so the wasm backend's threads, need.
      expect(outcome.crossOriginIsolated).toBe(true);
      const r = outcome.reference!;
      // The same float64 code on the same engine's arithmetic: equal to the last bits.
      expectClose(r.loss, reference.loss, TOLERANCES.float64.value, "page reference loss");
      expectClose(r.gradLogits!, reference.gradLogits.data, TOLERANCES.float64.grad, "page reference ∂loss/∂logits");
      expect(outcome.table).toContain(reference.loss.toPrecision(8));
    }
  });

  it(`--enable-unsafe-webgpu gives a WebGPU adapter (required when CI is set)`, (context) => {
    if (!withWebGpu.webgpu && !inCi) context.skip(`no WebGPU in this Chromium: ${withWebGpu.reason}`);
    expect(withWebGpu.webgpu, withWebGpu.reason).toBe(true);
    expect(withWebGpu.error, withWebGpu.error).toBeUndefined();
    // On a machine without a GPU, Chromium's fallback adapter: SwiftShader.
    expect(withWebGpu.adapter).toBeDefined();
  });

  it("policyLossFromLogits on WebGPU agrees with the reference: loss, ∂loss/∂logp, log-probs, ∂loss/∂logits, metrics", (context) => {
    if (!withWebGpu.webgpu) context.skip(`no WebGPU: ${withWebGpu.reason}`);
    expect(withWebGpu.backend).toBe("webgpu");
    expectFloat32LogitsLoss(withWebGpu.webgpuLogits!);
    expect(withWebGpu.ok, withWebGpu.status).toBe(true);
    expect(withWebGpu.status).toMatch(/^WebGPU agrees with the reference/);
  });

  it("policyLoss on WebGPU agrees with the reference: loss, ∂loss/∂logp, metrics", (context) => {
    if (!withWebGpu.webgpu) context.skip(`no WebGPU: ${withWebGpu.reason}`);
    expectFloat32Loss(withWebGpu.webgpuPolicyLoss!, referencePolicyLoss, "policyLoss");
  });

  it("without --enable-unsafe-webgpu the page says why there is no WebGPU and runs the wasm backend instead", () => {
    expect(withoutWebGpu.webgpu).toBe(false);
    expect(withoutWebGpu.reason).toMatch(/requestAdapter\(\) gave null|navigator\.gpu is missing/);
    expect(withoutWebGpu.webgpuLogits).toBeUndefined();
    expect(withoutWebGpu.wasm?.available, withoutWebGpu.wasm?.reason).toBe(true);
    expect(withoutWebGpu.backend).toBe("wasm");
    // Cross-origin isolated, the page may share memory with Web Workers: a thread per core (one on a 1-core machine).
    expect(withoutWebGpu.wasm!.reason).toMatch(
      /\d+ threads \(the cores available\)|one thread \(one core is available\)/,
    );
    expect(withoutWebGpu.error, withoutWebGpu.error).toBeUndefined();
    expect(withoutWebGpu.ok, withoutWebGpu.status).toBe(true);
    expect(withoutWebGpu.status).toBe(
      `No WebGPU: ${withoutWebGpu.reason}. WebAssembly backend: ${withoutWebGpu.wasm!.reason}. It agrees with the reference.`,
    );
  });

  it("a page served without COOP and COEP has no shared memory: the wasm backend runs on one thread, and agrees", () => {
    expect(notIsolated.pageErrors).toEqual([]);
    expect(notIsolated.crossOriginIsolated).toBe(false);
    expect(notIsolated.backend).toBe("wasm");
    expect(notIsolated.wasm!.reason).toMatch(/one thread \(shared WebAssembly memory is not allowed here/);
    expect(notIsolated.error, notIsolated.error).toBeUndefined();
    expect(notIsolated.ok, notIsolated.status).toBe(true);
    expectFloat32LogitsLoss(notIsolated.wasmLogits!);
  });

  it("policyLossFromLogits on the wasm backend agrees with the reference: loss, ∂loss/∂logp, log-probs, ∂loss/∂logits, metrics", () => {
    expectFloat32LogitsLoss(withoutWebGpu.wasmLogits!);
  });

  it("policyLoss on the wasm backend agrees with the reference: loss, ∂loss/∂logp, metrics", () => {
    expectFloat32Loss(withoutWebGpu.wasmPolicyLoss!, referencePolicyLoss, "policyLoss");
  });
});
