/**
 * The `cuda` backend: grpo-roc's kernels in a native addon (native/src), typed arrays in and out. Inputs are
 * validated exactly as the reference backend validates them, with its validators, before anything reaches the
 * device; the device's own findings (a row of logits that holds NaN, a non-finite log-ratio) come back as the
 * reference's errors at the same paths. CUDA failures reject with a CudaDeviceError carrying the CUDA error's name
 * and string; nothing returns zeros for work that did not run.
 */
import type { Backend, BackendInfo, Kernels } from "../backends/types.js";
import { referenceBackend } from "../backends/reference.js";
import { GrpoRocError, invalid } from "../errors.js";
import {
  composedPolicyLossFromLogits,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
} from "../logits-loss.js";
import {
  badLogits,
  isBfloat16Logits,
  readBackwardInputsOf,
  savedSkipped,
  readBfloat16Logits,
  readForwardOptions,
  readLogits,
  readTokens,
  type Logits,
  type LogitsInput,
} from "../logprobs/token-logprobs.js";
import {
  policyObjectiveNames,
  readInputs,
  requireFiniteLogps,
  resolvePolicyLossOptions,
  type Inputs,
} from "../loss/policy-loss.js";
import { rowWeights } from "../loss/aggregation.js";
import type { PolicyLossOptions } from "../loss/options.js";
import type { PolicyLossResult } from "../loss/index.js";
import { deviceDescription, deviceReason, loadAddon, type CudaAddon } from "./addon.js";
import { assembleLoss, lossConfig, type LossOutputs } from "./loss.js";

export interface CudaBackendOptions {
  /**
   * "device" (default): the GPU. "host": the same kernels' code on the CPU, each block's threads emulated one by
   * one in the GPU's order; slow, for checking a build (and the package's tests) on machines without a GPU.
   */
  readonly exec?: "device" | "host" | undefined;
  /** Bytes of logits (plus their gradient) one chunk holds on the device; default min(1 GiB, free memory / 4). */
  readonly chunkBytes?: number | undefined;
  /** The registry name; default "cuda" ("cuda@host" for exec "host"). */
  readonly name?: string | undefined;
  /** The addon file; default $GRPO_ROC_CUDA_ADDON, else native/build/Release/grpo_roc_cuda.node in the package. */
  readonly addonPath?: string | undefined;
}

/** The backend cannot run here; `reason` is what probe() says. */
export class CudaUnavailableError extends GrpoRocError {
  override name = "CudaUnavailableError";
  constructor(
    readonly backend: string,
    readonly reason: string,
  ) {
    super(`the ${backend} backend is not available: ${reason}`);
  }
}

/** A CUDA runtime error from the device (out of memory, a launch failure…), with the runtime's own words. */
export class CudaDeviceError extends GrpoRocError {
  override name = "CudaDeviceError";
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
  }
}

const BUILTIN_OBJECTIVES = new Set(["clip", "cispo", "sapo", "reinforce"]);

type DeviceLogits = {
  /** Float32Array (float32 or float64 input, rounded), or Uint16Array of bfloat16 bits. */
  readonly data: Float32Array | Uint16Array;
  readonly source: "float64" | "float32" | "bfloat16";
  readonly l: Logits;
};

/** The logits as the device reads them; float64 (and nested arrays) are rounded to float32. */
function readDeviceLogits(input: LogitsInput): DeviceLogits {
  if (isBfloat16Logits(input)) {
    const l = readBfloat16Logits(input);
    return { data: l.bfloat16, source: "bfloat16", l };
  }
  const l = readLogits(input);
  if (l.data instanceof Float32Array) return { data: l.data, source: "float32", l };
  return { data: Float32Array.from(l.data), source: "float64", l };
}

/** The gradient buffer the addon writes (float32; bfloat16 logits: widened from the device's bfloat16). */
function gradBuffer(d: DeviceLogits): Float32Array {
  return new Float32Array(d.l.rows * d.l.cols * d.l.vocab);
}

/** The logits' own precision for the caller: float64 logits get a Float64Array back. */
function gradResult(d: DeviceLogits, grad: Float32Array): Float32Array | Float64Array {
  return d.source === "float64" ? Float64Array.from(grad) : grad;
}

function positions(d: DeviceLogits) {
  return d.l.rows * d.l.cols;
}

/** Token ids as int32, 0 where the position is skipped (its id may be anything there, e.g. −1 padding). */
function tokenIds(ids: ArrayLike<number>, active: Uint8Array): Int32Array {
  const out = new Int32Array(active.length);
  for (let i = 0; i < out.length; i++) out[i] = active[i] === 1 ? ids[i]! : 0;
  return out;
}

function activeFrom(mask: ArrayLike<number> | undefined, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = mask === undefined || mask[i] === 1 ? 1 : 0;
  return out;
}

/** A copy as float64 with 0 where the mask skips (values there are never read and may be NaN). */
function selectedCopy(values: ArrayLike<number> | undefined, mask: ArrayLike<number>): Float64Array | undefined {
  if (values === undefined) return undefined;
  const out = new Float64Array(values.length);
  for (let i = 0; i < out.length; i++) out[i] = mask[i] === 1 ? values[i]! : 0;
  return out;
}

function firstBadRow(lse: Float64Array, active: Uint8Array, cols: number): void {
  for (let i = 0; i < lse.length; i++)
    if (active[i] === 1 && !Number.isFinite(lse[i])) throw badLogits(i, cols, lse[i]!);
}

/** The addon's arguments for the loss over [B, T]: validated inputs as float64, masked values zeroed. */
function lossArguments(t: Inputs, o: PolicyLossOptions, oldLogpGiven: boolean) {
  const [rows, cols] = t.shape;
  const mask = Uint8Array.from(t.mask);
  const weights = rowWeights(t.rowTokens, cols, o.aggregation, o.normalizer);
  const entropyWeights =
    o.entropyCoef > 0 ? rowWeights(t.rowTokens, cols, o.entropyAggregation ?? o.aggregation, o.normalizer) : undefined;
  const advantages = t.perTokenAdvantages
    ? selectedCopy(t.advantages, mask)!
    : Float64Array.from({ length: rows }, (_, b) => (t.rowTokens[b]! > 0 ? t.advantages[b]! : 0));
  return {
    weights,
    entropyWeights,
    args: {
      ...lossConfig(o),
      rows,
      cols,
      mask,
      rowTokens: t.rowTokens,
      rowWeights: weights,
      entropyWeights,
      oldLogp: oldLogpGiven ? selectedCopy(t.oldLogp, mask) : undefined,
      advantages,
      perTokenAdvantages: t.perTokenAdvantages,
      refLogp: selectedCopy(t.refLogp, mask),
      importanceWeights: selectedCopy(t.importanceWeights, mask),
    },
  };
}

function lossOutputs(n: number, o: PolicyLossOptions): LossOutputs {
  return {
    loss: new Float64Array(n),
    grad: new Float64Array(n),
    kl: o.kl !== null ? new Float64Array(n) : undefined,
    gradEntropy: o.entropyCoef > 0 ? new Float64Array(n) : undefined,
    ratio: new Float64Array(n),
    approx: new Float64Array(n),
    flags: new Uint8Array(n),
  };
}

const outputArgs = (out: LossOutputs) => ({
  outLoss: out.loss,
  outGrad: out.grad,
  outKl: out.kl,
  outGradEntropy: out.gradEntropy,
  outRatio: out.ratio,
  outApprox: out.approx,
  outFlags: out.flags,
});

/** A cuda backend (see CudaBackendOptions); `cudaBackend` is the default one, on the GPU. */
export function createCudaBackend(options: CudaBackendOptions = {}): Backend {
  const exec = options.exec ?? "device";
  const name = options.name ?? (exec === "host" ? "cuda@host" : "cuda");
  const common = { exec, ...(options.chunkBytes !== undefined ? { chunkBytes: options.chunkBytes } : {}) };
  let info: BackendInfo | undefined;
  let addon: CudaAddon | undefined;

  const probe = async (): Promise<BackendInfo> => {
    if (info !== undefined) return info;
    const state = loadAddon(options.addonPath);
    const unavailable = (reason: string): BackendInfo => ({
      name,
      available: false,
      reason,
      dtypes: [],
      maxBindingBytes: 0,
    });
    if (!state.loaded) {
      info = unavailable(state.reason);
      return info;
    }
    const build = state.addon.buildInfo();
    if (exec === "host") {
      addon = state.addon;
      info = {
        name,
        available: true,
        reason: `the CUDA kernels' code on the CPU, one emulated thread at a time (no GPU; addon ${state.path}, built for ${build.architectures})`,
        dtypes: ["float32", "bfloat16"],
        maxBindingBytes: Infinity,
      };
      return info;
    }
    const p = state.addon.probe();
    if (!p.ok) {
      info = unavailable(deviceReason(p, build.architectures));
      return info;
    }
    addon = state.addon;
    info = {
      name,
      available: true,
      reason: `CUDA on ${deviceDescription(p)}: float32 and bfloat16 logits, float32 accumulation`,
      dtypes: ["float32", "bfloat16"],
      maxBindingBytes: p.totalMemory,
    };
    return info;
  };

  const ready = async (): Promise<CudaAddon> => {
    const i = await probe();
    if (!i.available || addon === undefined) throw new CudaUnavailableError(name, i.reason);
    return addon;
  };

  /** An addon call, its rejection as a CudaDeviceError (argument errors are bugs here, and say so). */
  const call = async <T>(run: () => Promise<T>): Promise<T> => {
    try {
      return await run();
    } catch (error) {
      const e = error as Error & { code?: string };
      throw new CudaDeviceError(`${name}: ${e.message}`, e.code);
    }
  };

  const kernels: Kernels = {
    async policyLoss(inputs, optionsInput = {}) {
      const o = resolvePolicyLossOptions(optionsInput);
      if (!BUILTIN_OBJECTIVES.has(o.objective)) {
        if (!policyObjectiveNames().includes(o.objective)) {
          throw invalid(
            "options.objective",
            `unknown objective "${o.objective}"; registered: ${policyObjectiveNames().join(", ")}`,
          );
        }
        // An objective registered in JavaScript has no device kernel: the [B, T] loss runs on the CPU.
        return referenceBackend.policyLoss(inputs, optionsInput);
      }
      const t = readInputs(inputs, o);
      requireFiniteLogps(t);
      const a = await ready();
      const n = t.shape[0] * t.shape[1];
      const { weights, entropyWeights, args } = lossArguments(t, o, inputs.oldLogp !== undefined);
      const out = lossOutputs(n, o);
      await call(() =>
        a.policyLoss({
          ...common,
          ...args,
          logp: selectedCopy(t.logp, t.mask),
          entropy: selectedCopy(t.entropy, t.mask),
          ...outputArgs(out),
        }),
      );
      return assembleLoss(t, o, weights, entropyWeights, out);
    },

    async tokenLogProbs(logitsInput, tokensInput, forwardOptions = {}) {
      const { temperature, entropy: withEntropy } = readForwardOptions(forwardOptions);
      const d = readDeviceLogits(logitsInput);
      const { ids, mask } = readTokens(tokensInput, forwardOptions.mask, d.l);
      const a = await ready();
      const n = positions(d);
      const active = activeFrom(mask, n);
      const logp = new Float64Array(n);
      const logSumExp = new Float64Array(n);
      const entropy = new Float64Array(n);
      await call(() =>
        a.forward({
          ...common,
          logits: d.data,
          positions: n,
          vocab: d.l.vocab,
          tokens: tokenIds(ids, active),
          active,
          invTemperature: 1 / temperature,
          outLogp: logp,
          outLse: logSumExp,
          outEntropy: entropy,
        }),
      );
      firstBadRow(logSumExp, active, d.l.cols);
      return {
        logp,
        entropy: withEntropy ? entropy : undefined,
        logSumExp,
        temperature,
        shape: [d.l.rows, d.l.cols] as const,
      };
    },

    async tokenLogProbsBackward(logitsInput, tokensInput, backwardOptions) {
      const { temperature } = readForwardOptions(backwardOptions);
      const d = readDeviceLogits(logitsInput);
      const { ids, mask, gradLogp, gradEntropy, saved } = readBackwardInputsOf(
        d.l,
        temperature,
        tokensInput,
        backwardOptions,
      );
      const a = await ready();
      const n = positions(d);
      // As in the reference, a position is not read when the mask skips it or nothing flows back into it.
      const active = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        const selected = mask === undefined || mask[i] === 1;
        active[i] = selected && (gradLogp[i] !== 0 || (gradEntropy !== undefined && gradEntropy[i] !== 0)) ? 1 : 0;
      }
      if (saved !== undefined) {
        for (let i = 0; i < n; i++) {
          if (active[i] === 1 && Number.isNaN(saved.logSumExp[i])) {
            throw savedSkipped(i, d.l.cols);
          }
        }
      }
      const grad = gradBuffer(d);
      const logSumExp = new Float64Array(n);
      await call(() =>
        a.backward({
          ...common,
          logits: d.data,
          positions: n,
          vocab: d.l.vocab,
          tokens: tokenIds(ids, active),
          active,
          invTemperature: 1 / temperature,
          gradLogp: selectedCopy(gradLogp, active),
          gradEntropy: selectedCopy(gradEntropy, active),
          savedLse: saved !== undefined ? selectedCopy(saved.logSumExp, active) : undefined,
          savedEntropy: saved !== undefined ? selectedCopy(saved.entropy ?? new Float64Array(n), active) : undefined,
          outLse: saved === undefined ? logSumExp : undefined,
          grad,
        }),
      );
      if (saved === undefined) firstBadRow(logSumExp, active, d.l.cols);
      return { data: gradResult(d, grad), shape: [d.l.rows, d.l.cols, d.l.vocab] as const };
    },

    async policyLossFromLogits(
      inputs: LogitsPolicyLossInputs,
      optionsInput: LogitsPolicyLossOptions = {},
    ): Promise<LogitsPolicyLossResult> {
      const { logits, tokens, ...rest } = inputs;
      const { temperature: temperatureOption, ...lossOptions } = optionsInput;
      // The reference's order: the loss options, the forward pass's options, logits, tokens and mask, then the loss inputs.
      const o = resolvePolicyLossOptions(lossOptions);
      const withEntropy = o.entropyCoef > 0;
      const { temperature } = readForwardOptions({
        ...(temperatureOption !== undefined ? { temperature: temperatureOption } : {}),
        entropy: withEntropy,
      });
      const d = readDeviceLogits(logits);
      const { ids } = readTokens(tokens, rest.mask, d.l);
      if (!BUILTIN_OBJECTIVES.has(o.objective)) {
        if (!policyObjectiveNames().includes(o.objective)) {
          throw invalid(
            "options.objective",
            `unknown objective "${o.objective}"; registered: ${policyObjectiveNames().join(", ")}`,
          );
        }
        return composedPolicyLossFromLogits(kernels, inputs, optionsInput);
      }
      const n = positions(d);
      const shape = [d.l.rows, d.l.cols] as const;
      // The loss inputs are checked before the device runs, with placeholders for what pass 1 computes.
      const placeholder = { data: new Float64Array(n), shape };
      const t = readInputs({ ...rest, logp: placeholder, ...(withEntropy ? { entropy: placeholder } : {}) }, o);
      const a = await ready();
      const { weights, entropyWeights, args } = lossArguments(t, o, rest.oldLogp !== undefined);
      const out = lossOutputs(n, o);
      const logp = new Float64Array(n);
      const logSumExp = new Float64Array(n);
      const entropy = new Float64Array(n);
      const grad = gradBuffer(d);
      const result = await call(() =>
        a.fused({
          ...common,
          ...args,
          logits: d.data,
          positions: n,
          vocab: d.l.vocab,
          tokens: tokenIds(ids, args.mask),
          invTemperature: 1 / temperature,
          outLogp: logp,
          outLse: logSumExp,
          outEntropy: entropy,
          ...outputArgs(out),
          grad,
        }),
      );
      if (result.stop === 1) throw badLogits(result.position, d.l.cols, logSumExp[result.position]!);
      const computed: Inputs = { ...t, logp, ...(withEntropy ? { entropy } : {}) };
      if (result.stop === 2) {
        requireFiniteLogps(computed);
        throw new GrpoRocError(`${name}: a non-finite log-ratio at position ${result.position}`);
      }
      const loss: PolicyLossResult = assembleLoss(computed, o, weights, entropyWeights, out);
      return {
        ...loss,
        logp,
        entropy: withEntropy ? entropy : undefined,
        gradLogits: { data: gradResult(d, grad), shape: [d.l.rows, d.l.cols, d.l.vocab] },
      };
    },
  };

  return { name, probe, ...kernels };
}

/** The cuda backend on the GPU: `registerBackend(cudaBackend)`; its probe() says why when it cannot run. */
export const cudaBackend: Backend = createCudaBackend();
