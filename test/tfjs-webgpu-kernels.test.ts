/**
 * grpo-roc's WGSL kernels serving TensorFlow.js: with tfjs's `webgpu` backend active (Dawn through the `webgpu`
 * package; lavapipe, a CPU Vulkan driver, on the CI machines), tokenLogProbsTf and trainStep run the kernels of
 * src/webgpu on tfjs's own GPUDevice, binding the logits tensor's GPUBuffer in place and writing the gradient into
 * a tensor whose buffer tfjs owns (src/tfjs/wgsl.ts).
 *
 * - The WGSL path gives the tfjs-ops path's and the reference backend's logp, entropy, loss and ∂loss/∂logits, at
 *   the conformance suite's float32 tolerances (test/conformance/tolerances.ts): directly, through
 *   tf.variableGrads on a tiny model, and through trainStep.
 * - It reads nothing back: the bind groups it creates hold the logits tensor's own buffer (and write the gradient
 *   tensor's own buffer), and no read of the logits (tensor.data/dataSync, backend.read, getBufferData) happens.
 * - No tensors or buffers leak (tf.memory(), tfjs's BufferManager, grpo-roc's pool on the device).
 * - Bad input and device errors throw (ValidationError, WebGpuDeviceError), never zeros.
 *
 * Skipped, with the reason, where WebGPU is unavailable; with CI set it must be available.
 */
import * as tf from "@tensorflow/tfjs";
import { afterAll, describe, expect, it } from "vitest";
import { rng } from "./helpers/rng.js";
import { referenceBackend } from "../src/backends/index.js";
import {
  GrpoRocError,
  lossPresets,
  ValidationError,
  type PolicyLossInputs,
  type PolicyLossOptionsInput,
} from "../src/index.js";
import {
  assertNoDeviceErrors,
  KERNELS_ENV,
  policyLossTf,
  releaseWebGpu,
  tfjsKernelPath,
  tokenLogProbsTf,
  trainStep,
  useTfjsBackend,
  wgslBufferStats,
  WebGpuDeviceError,
  type TfjsKernels,
  type TrainBatch,
} from "../src/tfjs/index.js";
import { WebGpuDeviceError as WebGpuBackendDeviceError } from "../src/webgpu/index.js";
import { dawnHolders } from "../src/webgpu/node.js";
import { inCi } from "./conformance/targets.js";
import {
  expectClose,
  infinityNorm,
  logitGradScale,
  logProbScale,
  lossScale,
  tolerance,
} from "./conformance/tolerances.js";

const status = await useTfjsBackend("webgpu");
const available = status.available;

afterAll(() => releaseWebGpu());

// ── helpers ──────────────────────────────────────────────────────────────────────────────────────────────────

interface GpuBufferLike {
  readonly size: number;
  readonly usage: number;
  destroy(): void;
}

interface BindGroupEntry {
  readonly binding: number;
  readonly resource: { readonly buffer?: GpuBufferLike; readonly offset?: number; readonly size?: number };
}

/** The parts of tfjs-backend-webgpu's backend the tests look into. */
interface Internals {
  device: {
    createBindGroup(descriptor: { entries: BindGroupEntry[] }): unknown;
    createBuffer(descriptor: { size: number; usage: number }): GpuBufferLike;
    queue: { writeBuffer(buffer: GpuBufferLike, offset: number, data: ArrayBufferView): void };
    destroy(): void;
  };
  tensorMap: { get(dataId: object): { resource?: unknown; values?: unknown } | undefined };
  bufferManager: { getNumUsedBuffers(): number; numBytesUsed: number };
  uploadToGPU(dataId: object): void;
  read(dataId: object): Promise<unknown>;
  readSync(dataId: object): unknown;
  getBufferData(buffer: GpuBufferLike): Promise<ArrayBuffer>;
}

const internals = () => tf.backend() as unknown as Internals;
const bufferOf = (t: tf.Tensor) => internals().tensorMap.get(t.dataId)?.resource as GpuBufferLike | undefined;
const UNIFORM = 0x40;
const STORAGE = 0x80;
const COPY_SRC = 0x4;
const COPY_DST = 0x8;

/**
 * Records the bind groups created on tfjs's device and every read from it while `f` runs. grpo-roc's bind groups
 * are those whose binding 0 is a uniform block (tfjs binds its output there, its uniforms last).
 */
async function watched<T>(
  f: () => Promise<T> | T,
): Promise<{ result: T; ours: BindGroupEntry[][]; reads: GpuBufferLike[]; readIds: object[] }> {
  const backend = internals();
  const device = backend.device;
  const ours: BindGroupEntry[][] = [];
  const reads: GpuBufferLike[] = [];
  const readIds: object[] = [];
  const createBindGroup = device.createBindGroup;
  const { read, readSync, getBufferData } = backend;
  device.createBindGroup = function (descriptor) {
    const first = descriptor.entries.find((e) => e.binding === 0)?.resource.buffer;
    if (first !== undefined && (first.usage & UNIFORM) !== 0) ours.push(descriptor.entries);
    return createBindGroup.call(this, descriptor);
  };
  backend.getBufferData = function (buffer) {
    reads.push(buffer);
    return getBufferData.call(this, buffer);
  };
  backend.read = function (dataId) {
    readIds.push(dataId);
    return read.call(this, dataId);
  };
  backend.readSync = function (dataId) {
    readIds.push(dataId);
    return readSync.call(this, dataId);
  };
  try {
    return { result: await f(), ours, reads, readIds };
  } finally {
    device.createBindGroup = createBindGroup;
    backend.getBufferData = getBufferData;
    backend.read = read;
    backend.readSync = readSync;
  }
}

/** Makes every way of reading `t` back to the CPU throw. */
function forbidReads(t: tf.Tensor): void {
  for (const method of ["data", "dataSync", "array", "arraySync", "buffer", "bufferSync", "dataToGPU"] as const) {
    (t as unknown as Record<string, unknown>)[method] = () => {
      throw new Error(`tensor.${method}() was called on a tensor that must stay on the device`);
    };
  }
}

interface LogitsCase {
  readonly B: number;
  readonly T: number;
  readonly V: number;
  readonly temperature: number;
  readonly logits: Float32Array;
  readonly tokens: Int32Array;
  /** [2, B, T]: ∂L/∂logp, then ∂L/∂entropy. */
  readonly upstream: Float32Array;
}

/** Logits with a spread of scales and some −Infinity entries (never at the token), tokens, upstream gradients. */
function logitsCase(B: number, T: number, V: number, temperature: number, seed: number): LogitsCase {
  const r = rng(seed);
  const n = B * T;
  const tokens = Int32Array.from({ length: n }, () => r.int(V));
  const logits = Float32Array.from({ length: n * V }, (_, i) => (1 + (2 * Math.floor(i / V)) / n) * 2 * r.normal());
  for (let i = 0; i < n; i++) {
    if (i % 3 !== 0) continue;
    const v = (tokens[i]! + 1 + r.int(V - 1)) % V;
    logits[i * V + v] = -Infinity;
  }
  const upstream = Float32Array.from({ length: 2 * n }, (_, i) => (i < n ? 1 + r.normal() : 0.3 * r.normal()));
  return { B, T, V, temperature, logits, tokens, upstream };
}

async function referenceOf(c: LogitsCase) {
  const n = c.B * c.T;
  const logits = { data: c.logits, shape: [c.B, c.T, c.V] as [number, number, number] };
  const tokens = { data: c.tokens, shape: [c.B, c.T] as [number, number] };
  const forward = await referenceBackend.tokenLogProbs(logits, tokens, { entropy: true, temperature: c.temperature });
  const gradLogp = c.upstream.subarray(0, n);
  const gradEntropy = c.upstream.subarray(n);
  const backward = await referenceBackend.tokenLogProbsBackward(logits, tokens, {
    gradLogp: { data: gradLogp, shape: [c.B, c.T] },
    gradEntropy: { data: gradEntropy, shape: [c.B, c.T] },
    temperature: c.temperature,
  });
  return {
    forward,
    grad: backward.data,
    gradScale: logitGradScale(c.logits, c.V, backward.data, forward, gradLogp, gradEntropy, c.temperature),
  };
}

/** logp and entropy ([2, B, T]) and ∂(Σ upstream · out)/∂logits through tokenLogProbsTf with `kernels`. */
async function throughTf(c: LogitsCase, kernels: TfjsKernels, logits: tf.Tensor3D, tokens: tf.Tensor2D) {
  const upstream = tf.tensor3d(c.upstream, [2, c.B, c.T]);
  try {
    const out = tokenLogProbsTf(logits, tokens, { entropy: true, temperature: c.temperature, kernels });
    const grad = tf.grad((x: tf.Tensor) =>
      tf.sum(
        tf.mul(
          tokenLogProbsTf(x as tf.Tensor3D, tokens, { entropy: true, temperature: c.temperature, kernels }),
          upstream,
        ),
      ),
    )(logits);
    try {
      const values = (await out.data()) as Float32Array;
      return {
        logp: values.subarray(0, c.B * c.T),
        entropy: values.subarray(c.B * c.T),
        grad: (await grad.data()) as Float32Array,
        gradTensor: grad,
      };
    } finally {
      out.dispose();
    }
  } finally {
    upstream.dispose();
  }
}

interface TinyModel {
  readonly vocab: number;
  readonly variables: tf.Variable[];
  readonly model: (ids: tf.Tensor2D) => tf.Tensor3D;
  dispose(): void;
}

/** Embedding [V, D] → dense D×V + bias: logits [B, L, V]. */
function tinyModel(vocab: number, dim: number, seed: number): TinyModel {
  const E = tf.variable(tf.randomNormal([vocab, dim], 0, 1, "float32", seed));
  const W = tf.variable(tf.randomNormal([dim, vocab], 0, 0.7, "float32", seed + 1));
  const bias = tf.variable(tf.randomNormal([vocab], 0, 0.3, "float32", seed + 2));
  return {
    vocab,
    variables: [E, W, bias],
    model: (ids) =>
      tf.tidy(() => {
        const [rows, cols] = ids.shape;
        const hidden = tf.reshape(tf.gather(E, ids), [rows * cols, dim]) as tf.Tensor2D;
        return tf.reshape(tf.add(tf.matMul(hidden, W), bias), [rows, cols, vocab]) as tf.Tensor3D;
      }),
    dispose: () => tf.dispose([E, W, bias]),
  };
}

/** B rollouts of length L: 2 prompt tokens, then response tokens, right padding; old log-probs near 0-ish values. */
function toyBatch(V: number, seed: number, B = 3, L = 8): TrainBatch {
  const r = rng(seed);
  const tokens = new Int32Array(B * L);
  const mask = new Uint8Array(B * L);
  const oldLogp = new Float64Array(B * L);
  for (let b = 0; b < B; b++) {
    const length = L - b;
    for (let t = 0; t < L; t++) {
      const i = b * L + t;
      tokens[i] = t < length ? r.int(V) : 0;
      mask[i] = t >= 2 && t < length ? 1 : 0;
      oldLogp[i] = -Math.log(V) + 0.5 * r.normal();
    }
  }
  return {
    shape: [B, L],
    tokens,
    mask,
    oldLogp,
    advantages: Float64Array.from({ length: B }, (_, b) => (b % 2 === 0 ? 1 : -0.5)),
  };
}

// ── tests ────────────────────────────────────────────────────────────────────────────────────────────────────

describe("tfjs@webgpu + grpo-roc's WGSL kernels: availability", () => {
  it.skipIf(!inCi)("tfjs's webgpu backend is available (required when CI is set)", () => {
    expect(available, `tfjs webgpu is not available: ${status.reason}`).toBe(true);
  });
});

const title = available
  ? `tfjs@webgpu + grpo-roc's WGSL kernels (${status.reason})`
  : `tfjs@webgpu + grpo-roc's WGSL kernels — skipped: ${status.reason}`;
describe.skipIf(!available)(title, () => {
  it("one dawn.node root and one WebGpuDeviceError class for grpo-roc/tfjs and grpo-roc/webgpu", async () => {
    expect(dawnHolders()).toContain("grpo-roc/tfjs");
    // The same class from both entry points (in the built package too: see package.test.ts).
    expect(WebGpuDeviceError).toBe(WebGpuBackendDeviceError);
    expect(new GrpoRocError("x")).not.toBeInstanceOf(WebGpuDeviceError);
    expect(new WebGpuDeviceError(["x"])).toBeInstanceOf(GrpoRocError);
  });

  it("picks the WGSL kernels on webgpu by itself; `kernels` or $GRPO_ROC_TFJS_KERNELS force either; cpu runs tfjs ops", async () => {
    expect(tfjsKernelPath()).toBe("wgsl");
    expect(tfjsKernelPath("tfjs")).toBe("tfjs");
    expect(tfjsKernelPath("wgsl")).toBe("wgsl");
    const previous = process.env[KERNELS_ENV];
    try {
      process.env[KERNELS_ENV] = "tfjs";
      expect(tfjsKernelPath()).toBe("tfjs");
      expect(tfjsKernelPath("auto")).toBe("wgsl");
      process.env[KERNELS_ENV] = "cuda";
      expect(() => tfjsKernelPath()).toThrow(ValidationError);
    } finally {
      if (previous === undefined) delete process.env[KERNELS_ENV];
      else process.env[KERNELS_ENV] = previous;
    }
    expect(() => tfjsKernelPath("gpu" as TfjsKernels)).toThrow(ValidationError);
    await tf.setBackend("cpu");
    try {
      expect(tfjsKernelPath()).toBe("tfjs");
      expect(() => tfjsKernelPath("wgsl")).toThrow(GrpoRocError);
      expect(() => tfjsKernelPath("wgsl")).toThrow(/active tfjs backend is "cpu"/);
    } finally {
      await tf.setBackend("webgpu");
    }
  });

  const cases = [
    { name: "V = 37 (scalar loads), τ = 1", B: 3, T: 5, V: 37, temperature: 1, seed: 1 },
    { name: "V = 64 (vec4 loads), τ = 0.7", B: 2, T: 6, V: 64, temperature: 0.7, seed: 2 },
  ];
  for (const spec of cases) {
    it(`logp, entropy and ∂/∂logits = the tfjs-ops path's = the reference's, binding the logits' own buffer (${spec.name})`, async () => {
      const c = logitsCase(spec.B, spec.T, spec.V, spec.temperature, spec.seed);
      const ref = await referenceOf(c);
      const logits = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
      const tokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
      try {
        const tfjsOps = await throughTf(c, "tfjs", logits, tokens);
        tfjsOps.gradTensor.dispose();
        // On the device now (the tfjs ops uploaded them); from here on nothing may read them back.
        const logitsBuffer = bufferOf(logits)!;
        expect(logitsBuffer).toBeDefined();
        forbidReads(logits);
        const {
          result: wgsl,
          ours,
          reads,
          readIds,
        } = await watched(async () => {
          const out = tokenLogProbsTf(logits, tokens, { entropy: true, temperature: c.temperature });
          const upstream = tf.tensor3d(c.upstream, [2, c.B, c.T]);
          const grad = tf.grad((x: tf.Tensor) =>
            tf.sum(
              tf.mul(
                tokenLogProbsTf(x as tf.Tensor3D, tokens, { entropy: true, temperature: c.temperature }),
                upstream,
              ),
            ),
          )(logits);
          upstream.dispose();
          const gradBuffer = bufferOf(grad);
          const values = (await out.data()) as Float32Array;
          out.dispose();
          const gradValues = (await grad.data()) as Float32Array;
          grad.dispose();
          return {
            logp: values.subarray(0, c.B * c.T),
            entropy: values.subarray(c.B * c.T),
            grad: gradValues,
            gradBuffer,
          };
        });

        // Bound in place: grpo-roc's forward (twice: alone and under tf.grad) and backward bind groups hold the
        // logits tensor's own GPUBuffer at binding 1, whole; the backward writes the gradient tensor's own buffer.
        expect(ours.length).toBe(3);
        for (const entries of ours) {
          const logitsEntry = entries.find((e) => e.binding === 1)!.resource;
          expect(logitsEntry.buffer).toBe(logitsBuffer);
          expect(logitsEntry.offset).toBe(0);
          expect(logitsEntry.size).toBe(c.B * c.T * c.V * 4);
        }
        const backward = ours.find((entries) => entries.length === 7)!;
        expect(backward, "a backward bind group (7 bindings)").toBeDefined();
        expect(backward.find((e) => e.binding === 6)!.resource.buffer).toBe(wgsl.gradBuffer);
        // Nothing of the logits was read back: only the two outputs were (their own buffers).
        expect(readIds).not.toContain(logits.dataId);
        expect(reads).not.toContain(logitsBuffer);
        expect(reads.every((b) => b.size <= c.B * c.T * c.V * 4)).toBe(true);
        await assertNoDeviceErrors();

        const n = c.B * c.T;
        const logpTol = tolerance("float32", "value", logProbScale(ref.forward.logp));
        const entropyTol = tolerance("float32", "value", logProbScale(ref.forward.entropy!));
        expect(wgsl.logp.length).toBe(n);
        expectClose(wgsl.logp, ref.forward.logp, logpTol, "logp (wgsl vs reference)");
        expectClose(wgsl.entropy, ref.forward.entropy!, entropyTol, "entropy (wgsl vs reference)");
        expectClose(wgsl.logp, tfjsOps.logp, logpTol, "logp (wgsl vs tfjs ops)");
        expectClose(wgsl.entropy, tfjsOps.entropy, entropyTol, "entropy (wgsl vs tfjs ops)");
        const gradTol = tolerance("float32", "grad", ref.gradScale);
        expect(infinityNorm(ref.grad)).toBeGreaterThan(0.1);
        expectClose(wgsl.grad, ref.grad, gradTol, "∂/∂logits (wgsl vs reference)");
        expectClose(wgsl.grad, tfjsOps.grad, gradTol, "∂/∂logits (wgsl vs tfjs ops)");
        expectClose(tfjsOps.grad, ref.grad, gradTol, "∂/∂logits (tfjs ops vs reference)");
      } finally {
        tf.dispose([logits, tokens]);
      }
    });
  }

  it('forced to tfjs ops (kernels: "tfjs" or the environment variable), no WGSL kernel runs', async () => {
    const c = logitsCase(2, 3, 16, 1, 5);
    const logits = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
    const tokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
    const previous = process.env[KERNELS_ENV];
    try {
      const byOption = await watched(async () => {
        const out = tokenLogProbsTf(logits, tokens, { kernels: "tfjs" });
        await out.data();
        out.dispose();
      });
      expect(byOption.ours).toHaveLength(0);
      process.env[KERNELS_ENV] = "tfjs";
      const byEnv = await watched(async () => {
        const out = tokenLogProbsTf(logits, tokens);
        await out.data();
        out.dispose();
      });
      expect(byEnv.ours).toHaveLength(0);
    } finally {
      if (previous === undefined) delete process.env[KERNELS_ENV];
      else process.env[KERNELS_ENV] = previous;
      tf.dispose([logits, tokens]);
    }
  });

  it("policy loss from logits, through tf.valueAndGrad and tf.variableGrads on a tiny model: = the tfjs-ops path and the reference", async () => {
    const [B, T, V, D] = [3, 6, 48, 8];
    const tiny = tinyModel(V, D, 17);
    const r = rng(23);
    const ids = tf.tensor2d(
      Int32Array.from({ length: B * T }, () => r.int(V)),
      [B, T],
      "int32",
    );
    const targetsData = Int32Array.from({ length: B * T }, () => r.int(V));
    const targets = tf.tensor2d(targetsData, [B, T], "int32");
    const maskData = Float64Array.from({ length: B * T }, (_, i) => (i % T < 1 || i === T + 3 ? 0 : 1));
    const shape = [B, T] as const;
    const oldLogpData = Float32Array.from({ length: B * T }, () => -Math.log(V) + 0.4 * r.normal());
    const refLogpData = Float32Array.from({ length: B * T }, () => -Math.log(V) + 0.4 * r.normal());
    const advantagesData = Float32Array.from([1.1, -0.6, 0.3]);
    const options: PolicyLossOptionsInput = {
      ...lossPresets.reference,
      kl: { kind: "k3", coef: 0.05 },
      entropyCoef: 0.01,
    };
    const temperature = 0.9;
    const constants = {
      oldLogp: tf.tensor2d(oldLogpData, [B, T]),
      refLogp: tf.tensor2d(refLogpData, [B, T]),
      advantages: tf.tensor1d(advantagesData),
      mask: tf.tensor2d(Float32Array.from(maskData), [B, T]),
    };
    const lossOf = (logits: tf.Tensor3D, kernels: TfjsKernels) => {
      const [logp, entropy] = tf.unstack(tokenLogProbsTf(logits, targets, { entropy: true, temperature, kernels })) as [
        tf.Tensor2D,
        tf.Tensor2D,
      ];
      return policyLossTf({ ...constants, logp, entropy }, options);
    };
    const logits = tiny.model(ids);
    try {
      const logitsData = (await logits.data()) as Float32Array;
      // The reference: forward, policy loss, backward, in float64 on the same float32 logits.
      const logitsInput = { data: logitsData, shape: [B, T, V] as [number, number, number] };
      const refForward = await referenceBackend.tokenLogProbs(
        logitsInput,
        { data: targetsData, shape },
        { entropy: true, temperature },
      );
      const inputs: PolicyLossInputs = {
        logp: { data: refForward.logp, shape },
        entropy: { data: refForward.entropy!, shape },
        oldLogp: { data: oldLogpData, shape },
        refLogp: { data: refLogpData, shape },
        advantages: advantagesData,
        mask: { data: maskData, shape },
      };
      const refLoss = await referenceBackend.policyLoss(inputs, options);
      const refGrad = await referenceBackend.tokenLogProbsBackward(
        logitsInput,
        { data: targetsData, shape },
        {
          gradLogp: { data: refLoss.grad, shape },
          gradEntropy: { data: refLoss.gradEntropy!, shape },
          temperature,
        },
      );
      const before = tf.memory().numTensors;
      const results: Record<TfjsKernels, { loss: number; grad: Float32Array }> = {} as never;
      for (const kernels of ["wgsl", "tfjs"] as const) {
        const { value, grad } = tf.valueAndGrad((x: tf.Tensor) => lossOf(x as tf.Tensor3D, kernels))(logits);
        results[kernels] = { loss: (await value.data())[0]!, grad: (await grad.data()) as Float32Array };
        tf.dispose([value, grad]);
      }
      expect(tf.memory().numTensors).toBe(before);
      const lossTol = tolerance("float32", "value", lossScale(refLoss, inputs, options));
      expectClose(results.wgsl.loss, refLoss.loss, lossTol, "loss (wgsl vs reference)");
      expectClose(results.wgsl.loss, results.tfjs.loss, lossTol, "loss (wgsl vs tfjs ops)");
      const gradTol = tolerance(
        "float32",
        "grad",
        logitGradScale(logitsData, V, refGrad.data, refForward, refLoss.grad, refLoss.gradEntropy, temperature),
      );
      expectClose(results.wgsl.grad, refGrad.data, gradTol, "∂loss/∂logits (wgsl vs reference)");
      expectClose(results.wgsl.grad, results.tfjs.grad, gradTol, "∂loss/∂logits (wgsl vs tfjs ops)");

      // Into the model's variables: the same gradients by either path (to float32 rounding of their sums).
      const grads: Record<TfjsKernels, tf.NamedTensorMap> = {} as never;
      const values: Record<TfjsKernels, number> = {} as never;
      for (const kernels of ["wgsl", "tfjs"] as const) {
        const { value, grads: g } = tf.variableGrads(() => lossOf(tiny.model(ids), kernels), tiny.variables);
        values[kernels] = (await value.data())[0]!;
        value.dispose();
        grads[kernels] = g;
      }
      expectClose(values.wgsl, values.tfjs, lossTol, "loss through the model");
      for (const variable of tiny.variables) {
        const expected = (await grads.tfjs[variable.name]!.data()) as Float32Array;
        expect(infinityNorm(expected)).toBeGreaterThan(0);
        expectClose(
          await grads.wgsl[variable.name]!.data(),
          expected,
          tolerance("float32", "grad", infinityNorm(expected)),
          `∂loss/∂${variable.name}`,
        );
      }
      tf.dispose([...Object.values(grads.wgsl), ...Object.values(grads.tfjs)]);
      expect(tf.memory().numTensors).toBe(before);
      await assertNoDeviceErrors();
    } finally {
      tf.dispose([logits, ids, targets, ...Object.values(constants)]);
      tiny.dispose();
    }
  });

  it("trainStep: the WGSL path's loss, metrics, gradient norm and update = the tfjs-ops path's, and the loss = the reference's; only scalars are read back", async () => {
    const V = 48;
    const batch = toyBatch(V, 5);
    const [B, L] = batch.shape;
    const loss: PolicyLossOptionsInput = { ...lossPresets.paper, entropyCoef: 0.01 };
    const results = [];
    for (const kernels of ["wgsl", "tfjs"] as const) {
      const tiny = tinyModel(V, 8, 41);
      const optimizer = tf.train.sgd(0.5);
      try {
        const { result, ours, reads } = await watched(() =>
          trainStep({ model: tiny.model, batch, optimizer, loss, temperature: 0.8, kernels }),
        );
        // The WGSL kernels ran on the model's logits in place ([B, L, V] bound whole), or not at all.
        const logitsBytes = B * L * V * 4;
        if (kernels === "wgsl")
          expect(ours.some((entries) => entries.find((e) => e.binding === 1)?.resource.size === logitsBytes)).toBe(
            true,
          );
        else expect(ours).toHaveLength(0);
        // Read back: the metrics and the loss, stacked in one small tensor; never the logits or their gradient.
        expect(reads.length).toBeGreaterThan(0);
        expect(reads.every((b) => b.size < 1024)).toBe(true);
        const weights = await Promise.all(tiny.variables.map((v) => v.data()));
        results.push({ kernels, result, weights: weights as Float32Array[] });
      } finally {
        optimizer.dispose();
        tiny.dispose();
      }
    }
    const [wgsl, tfjsOps] = results as [(typeof results)[number], (typeof results)[number]];

    // The reference loss on the same model's token-aligned log-probs (logits[b, t − 1] predict token t).
    const tiny = tinyModel(V, 8, 41);
    const logitsData = (await tf
      .tidy(() => tiny.model(tf.tensor2d(Int32Array.from(batch.tokens), [B, L], "int32")))
      .data()) as Float32Array;
    tiny.dispose();
    const logp = new Float64Array(B * L);
    const entropy = new Float64Array(B * L);
    for (let i = 0; i < B * L; i++) {
      if (batch.mask[i] !== 1) continue;
      const row = logitsData.subarray((i - 1) * V, i * V);
      const lp = await referenceBackend.tokenLogProbs({ data: row, shape: [1, 1, V] }, [[batch.tokens[i]!]], {
        temperature: 0.8,
        entropy: true,
      });
      logp[i] = lp.logp[0]!;
      entropy[i] = lp.entropy![0]!;
    }
    const shape = batch.shape;
    const inputs: PolicyLossInputs = {
      logp: { data: logp, shape },
      entropy: { data: entropy, shape },
      oldLogp: { data: batch.oldLogp!, shape },
      advantages: batch.advantages,
      mask: { data: batch.mask, shape },
    };
    const options = { ...loss, normalizer: { length: L - 1 } };
    const ref = await referenceBackend.policyLoss(inputs, options);
    const lossTol = tolerance("float32", "value", lossScale(ref, inputs, options));
    expectClose(wgsl.result.loss, ref.loss, lossTol, "trainStep loss (wgsl vs reference)");
    expectClose(wgsl.result.loss, tfjsOps.result.loss, lossTol, "trainStep loss (wgsl vs tfjs ops)");
    expect(wgsl.result.applied).toBe(true);
    expect(wgsl.result.metrics.tokens).toBe(ref.metrics.tokens);
    expectClose(
      wgsl.result.metrics.entropy!,
      ref.metrics.entropy!,
      tolerance("float32", "value", 1 + Math.log(V)),
      "entropy metric",
    );
    expectClose(
      wgsl.result.metrics.ratioMean,
      tfjsOps.result.metrics.ratioMean,
      tolerance("float32", "value", 1),
      "ratioMean",
    );
    expectClose(
      wgsl.result.gradNorm,
      tfjsOps.result.gradNorm,
      tolerance("float32", "grad", tfjsOps.result.gradNorm),
      "gradient norm",
    );
    for (let k = 0; k < wgsl.weights.length; k++) {
      expectClose(
        wgsl.weights[k]!,
        tfjsOps.weights[k]!,
        tolerance("float32", "grad", infinityNorm(tfjsOps.weights[k]!)),
        `variable ${k} after the step`,
      );
    }
  });

  it("leaks nothing: tensors (tf.memory), tfjs's buffers (BufferManager) and grpo-roc's pooled buffers stay level over repeated calls", async () => {
    const c = logitsCase(2, 5, 40, 1, 9);
    const logits = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
    const tokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
    const upstream = tf.tensor3d(c.upstream, [2, c.B, c.T]);
    const once = async () => {
      const out = tokenLogProbsTf(logits, tokens, { entropy: true });
      const { value, grad } = tf.valueAndGrad((x: tf.Tensor) =>
        tf.sum(tf.mul(tokenLogProbsTf(x as tf.Tensor3D, tokens, { entropy: true }), upstream)),
      )(logits);
      await Promise.all([out.data(), value.data(), grad.data()]);
      tf.dispose([out, value, grad]);
    };
    try {
      await once();
      const manager = internals().bufferManager;
      const tensors = tf.memory().numTensors;
      const used = manager.getNumUsedBuffers();
      const ours = wgslBufferStats();
      expect(ours.live).toBeGreaterThan(0);
      for (let k = 0; k < 4; k++) await once();
      expect(tf.memory().numTensors).toBe(tensors);
      expect(manager.getNumUsedBuffers()).toBe(used);
      expect(wgslBufferStats()).toEqual(ours);
      // Every buffer grpo-roc made is back in its pool: none is held by a finished call.
      expect(ours.pooled).toBe(ours.live);
      await assertNoDeviceErrors();
    } finally {
      tf.dispose([logits, tokens, upstream]);
    }
  });

  it("bad input throws a ValidationError before any kernel runs; token ids that live on the device only throw it at the next read, never as numbers", async () => {
    const c = logitsCase(2, 3, 12, 1, 13);
    const logits = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
    const bad = Int32Array.from(c.tokens);
    bad[4] = c.V;
    const badTokens = tf.tensor2d(bad, [c.B, c.T], "int32");
    const wrongShape = tf.tensor2d(c.tokens.subarray(0, 4), [2, 2], "int32");
    const before = tf.memory().numTensors;
    try {
      const { ours } = await watched(() => {
        expect(() => tokenLogProbsTf(logits, badTokens)).toThrow(
          /tokens\[1\]\[1\]: token id 12 is not an integer in \[0, 12\)/,
        );
        expect(() => tokenLogProbsTf(logits, badTokens)).toThrow(ValidationError);
        expect(() => tokenLogProbsTf(logits, wrongShape)).toThrow(ValidationError);
        expect(() => tokenLogProbsTf(logits, badTokens, { kernels: "gpu" as TfjsKernels })).toThrow(ValidationError);
      });
      expect(ours).toHaveLength(0);
      expect(tf.memory().numTensors).toBe(before);

      // Token ids that are on the device only cannot be checked before the op runs: the kernel reads a safe id
      // instead, and the next read (of anything) throws the same ValidationError instead of returning values.
      internals().uploadToGPU(badTokens.dataId);
      expect(internals().tensorMap.get(badTokens.dataId)?.values ?? null).toBeNull();
      const out = tokenLogProbsTf(logits, badTokens, { entropy: true });
      await expect(out.data()).rejects.toThrow(/tokens\[1\]\[1\]: token id 12 is not an integer in \[0, 12\)/);
      // The read that checked them cached the ids on the CPU: forget that copy, to test the backward pass too.
      internals().tensorMap.get(badTokens.dataId)!.values = null;
      const grad = tf.grad((x: tf.Tensor) => tf.sum(tokenLogProbsTf(x as tf.Tensor3D, badTokens)))(logits);
      await expect(grad.data()).rejects.toThrow(ValidationError);
      tf.dispose([out, grad]);
      // Reported once: the next read is clean.
      expect(Array.from(await logits.data()).length).toBe(c.B * c.T * c.V);
      await assertNoDeviceErrors();
    } finally {
      tf.dispose([logits, badTokens, wrongShape]);
    }
  });

  it("a device error in grpo-roc's kernels surfaces as a WebGpuDeviceError at the next read, never as numbers; the device works on", async () => {
    const c = logitsCase(2, 3, 16, 1, 17);
    const device = internals().device;
    // Logits in a buffer of the caller's (tfjs never recycles it), then destroyed under the tensor.
    const buffer = device.createBuffer({ size: c.logits.byteLength, usage: STORAGE | COPY_SRC | COPY_DST });
    device.queue.writeBuffer(buffer, 0, c.logits);
    const logits = tf.tensor({ buffer: buffer as never, zeroCopy: true }, [c.B, c.T, c.V], "float32") as tf.Tensor3D;
    const tokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
    try {
      buffer.destroy();
      const out = tokenLogProbsTf(logits, tokens);
      const error = await out.data().then(
        () => undefined,
        (e: unknown) => e,
      );
      out.dispose();
      expect(error).toBeInstanceOf(WebGpuDeviceError);
      expect((error as WebGpuDeviceError).errors.join("\n")).toMatch(/destroy/i);
      // Reported once: the next read is clean.
      const sum = tf.tidy(() => tf.sum(tf.ones([3])));
      expect(Array.from(await sum.data())).toEqual([3]);
      sum.dispose();
      await assertNoDeviceErrors();
    } finally {
      tf.dispose([logits, tokens]);
    }
  });

  it("a lost device (destroyed under tfjs) throws a WebGpuDeviceError at once; after releaseWebGpu() a new device serves again", async () => {
    const c = logitsCase(2, 3, 16, 1, 19);
    const logits = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
    const tokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
    internals().device.destroy();
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(() => tokenLogProbsTf(logits, tokens)).toThrow(WebGpuDeviceError);
    const error = await tf
      .sum(logits)
      .data()
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(WebGpuDeviceError);
    tf.dispose([logits, tokens]);

    await releaseWebGpu();
    expect(dawnHolders()).not.toContain("grpo-roc/tfjs");
    expect(wgslBufferStats().live).toBe(0);
    const again = await useTfjsBackend("webgpu");
    expect(again.available, again.reason).toBe(true);
    const fresh = tf.tensor3d(c.logits, [c.B, c.T, c.V]);
    const freshTokens = tf.tensor2d(c.tokens, [c.B, c.T], "int32");
    const out = tokenLogProbsTf(fresh, freshTokens, { kernels: "wgsl" });
    const ref = await referenceBackend.tokenLogProbs(
      { data: c.logits, shape: [c.B, c.T, c.V] },
      { data: c.tokens, shape: [c.B, c.T] },
    );
    expectClose(
      await out.data(),
      ref.logp,
      tolerance("float32", "value", logProbScale(ref.logp)),
      "logp on the new device",
    );
    tf.dispose([out, fresh, freshTokens]);
  });
});
