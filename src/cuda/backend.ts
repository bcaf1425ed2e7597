/**
 * The `cuda` backend: grpo-roc's kernels in a native addon (native/src), typed arrays in and out. Inputs are
 * validated exactly as the reference backend validates them, with the contract's validators, before anything
 * reaches the device; the device's own findings (a row of logits that holds NaN, a non-finite log-ratio) come back
 * as the reference's errors at the same paths. The logits' kernels compute in float32 (the loss in float64): inputs
 * they read are also refused where float32 cannot hold them, in the webgpu backend's words (../webgpu/float32.ts),
 * and a sampled token of logit −Infinity is named at the logits in the loss from logits. A backward pass over
 * `saved` statistics trusts them to be the forward pass's over these logits, and still checks what it reads (NaN,
 * +Infinity, −Infinity only, probabilities that do not sum to 1). CUDA failures reject with a CudaDeviceError
 * carrying the CUDA error's name and string; nothing returns zeros for work that did not run.
 */
import {
  type Backend,
  type BackendInfo,
  type BackwardInputs,
  badLogits,
  GrpoRocError,
  invalid,
  isBfloat16Logits,
  type LogitsGradient,
  type LogitsInput,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  type LossInputs,
  type Logits,
  type MatrixInput,
  type PolicyLossInputs,
  type PolicyLossOptions,
  type PolicyLossOptionsInput,
  type PolicyLossResult,
  readBackwardInputsOf,
  readBackwardOptions,
  readBfloat16Logits,
  readForwardOptions,
  readLogits,
  readPolicyLossCall,
  readLossInputs,
  referencePolicyLoss,
  readTokens,
  requireFiniteLogps,
  resolvePolicyLossOptions,
  splitLogitsInputs,
  splitLogitsOptions,
  rowWeights,
  type TokenLogProbs,
  type TokenLogProbsBackwardOptions,
  type TokenLogProbsOptions,
  withRegisteredObjectives,
} from "../backends/contract.js";
import {
  lossGradientOverflow,
  requireFloat32Logits,
  requireFloat32Temperature,
  requireFloat32Upstream,
  sampledTokenError,
  savedIsExact,
  savedMismatch,
} from "../backends/contract.js";
import { type CudaAddon, deviceDescription, deviceReason, loadAddon } from "./addon.js";
import { assembleLoss, type LossOutputs, lossConfig } from "./loss.js";

/** createCudaBackend's options: where the kernels run, the chunk size, the registry name and the addon file. */
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
  /**
   * The addon file; default $GRPO_ROC_CUDA_ADDON, else a rebuild (`npx grpo-roc build-cuda`) in the package's
   * native/build/Release, else the prebuilt the package ships for this platform (prebuilds/linux-x64).
   */
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

/** The loaded addon and how its kernels are launched: what every kernel needs once its inputs are valid. */
interface CudaRuntime {
  readonly name: string;
  readonly addon: CudaAddon;
  /** Passed to every addon call: where the kernels run, and the chunk size when one was chosen. */
  readonly launch: { readonly exec: "device" | "host"; readonly chunkBytes?: number };
}

/** Resolves to the runtime, or rejects with CudaUnavailableError; called after the inputs are validated. */
type RuntimeSource = () => Promise<CudaRuntime>;

/** A cuda backend (see CudaBackendOptions); `cudaBackend` is the default one, on the GPU. */
export function createCudaBackend(options: CudaBackendOptions = {}): Backend {
  const exec = options.exec ?? "device";
  const name = options.name ?? (exec === "host" ? "cuda@host" : "cuda");
  const launch = options.chunkBytes === undefined ? { exec } : { exec, chunkBytes: options.chunkBytes };
  let probed: { readonly info: BackendInfo; readonly runtime: CudaRuntime | undefined } | undefined;
  const probe = async () => {
    probed ??= probeCuda(name, exec, options.addonPath, launch);
    return probed.info;
  };
  const runtime: RuntimeSource = async () => {
    const info = await probe();
    if (probed?.runtime === undefined) throw new CudaUnavailableError(name, info.reason);
    return probed.runtime;
  };
  const kernels = withRegisteredObjectives({
    policyLoss: (inputs: PolicyLossInputs, lossOptions?: PolicyLossOptionsInput) =>
      cudaPolicyLoss(runtime, inputs, lossOptions),
    tokenLogProbs: (logits: LogitsInput, tokens: MatrixInput, forwardOptions?: TokenLogProbsOptions) =>
      cudaTokenLogProbs(runtime, logits, tokens, forwardOptions),
    tokenLogProbsBackward: (logits: LogitsInput, tokens: MatrixInput, backwardOptions: TokenLogProbsBackwardOptions) =>
      cudaTokenLogProbsBackward(runtime, logits, tokens, backwardOptions),
    policyLossFromLogits: (inputs: LogitsPolicyLossInputs, lossOptions?: LogitsPolicyLossOptions) =>
      cudaPolicyLossFromLogits(runtime, inputs, lossOptions),
  });
  return { name, probe, ...kernels };
}

/** The cuda backend on the GPU: `registerBackend(cudaBackend)`; its probe() says why when it cannot run. */
export const cudaBackend: Backend = createCudaBackend();

/** Loads the addon and asks it for a device (the host executor needs none). */
function probeCuda(
  name: string,
  exec: "device" | "host",
  addonPath: string | undefined,
  launch: CudaRuntime["launch"],
): { info: BackendInfo; runtime: CudaRuntime | undefined } {
  const state = loadAddon(addonPath);
  const unavailable = (reason: string) => ({
    info: { name, available: false, reason, dtypes: [], maxBindingBytes: 0 },
    runtime: undefined,
  });
  if (!state.loaded) return unavailable(state.reason);
  const runtime = { name, addon: state.addon, launch };
  const build = state.addon.buildInfo();
  if (exec === "host") {
    const reason =
      `the CUDA kernels' code on the CPU, one emulated thread at a time (no GPU; addon ${state.path}, ` +
      `built for ${build.architectures})`;
    return {
      info: { name, available: true, reason, dtypes: ["float32", "bfloat16"], maxBindingBytes: Infinity },
      runtime,
    };
  }
  const device = state.addon.probe();
  if (!device.ok) return unavailable(deviceReason(device, build.architectures));
  const reason = `CUDA on ${deviceDescription(device)}: float32 and bfloat16 logits, float32 accumulation`;
  return {
    info: { name, available: true, reason, dtypes: ["float32", "bfloat16"], maxBindingBytes: device.totalMemory },
    runtime,
  };
}

/** An addon call; its rejection becomes a CudaDeviceError (argument errors would be bugs here, and say so). */
async function callAddon<T>(runtime: CudaRuntime, run: (addon: CudaAddon) => Promise<T>): Promise<T> {
  try {
    return await run(runtime.addon);
  } catch (error) {
    const cause = error as Error & { code?: string };
    throw new CudaDeviceError(`${runtime.name}: ${cause.message}`, cause.code);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The kernels

async function cudaPolicyLoss(
  runtime: RuntimeSource,
  inputs: PolicyLossInputs,
  optionsInput: PolicyLossOptionsInput = {},
): Promise<PolicyLossResult> {
  const { options: o, inputs: t } = readPolicyLossCall(inputs, optionsInput);
  const cuda = await runtime();
  const loss = lossArguments(t, o, inputs.oldLogp !== undefined);
  const out = lossOutputs(t.shape[0] * t.shape[1], o);
  await callAddon(cuda, (addon) =>
    addon.policyLoss({
      ...cuda.launch,
      ...loss.args,
      logp: selectedCopy(t.logp, t.mask),
      entropy: selectedCopy(t.entropy, t.mask),
      ...outputArgs(out),
    }),
  );
  requireFiniteLossTerms(t, out, () => referencePolicyLoss(inputs, optionsInput));
  return assembleLoss(t, o, loss.weights, loss.entropyWeights, out);
}

/**
 * The reference's error for log-probs this pass computed from the logits, named at the logits (the caller's input)
 * rather than at inputs.logp, which the caller never passed.
 */
function atTheLogits(run: () => unknown): unknown {
  try {
    return run();
  } catch (error) {
    // A ValidationError (the contract exports `invalid`, not the class): its first issue.
    const issues =
      error instanceof GrpoRocError ? (error as { issues?: { path: string; message: string }[] }).issues : [];
    const issue = issues?.[0];
    const at = issue === undefined ? null : /^inputs\.logp(\[\d+\]\[\d+\])$/.exec(issue.path);
    if (issue === undefined || at === null) throw error;
    throw invalid(`logits${at[1]}`, `${issue.message} (the log-prob this call computed from the logits)`);
  }
}

/**
 * The kernels leave a policy or KL term that overflows float64 non-finite where the reference throws (a zero
 * advantage or weight contributes 0 on both): for the first such token, the reference on the same inputs throws its
 * own error, at its path. A term the reference finds finite would be a bug here, and says so.
 */
function requireFiniteLossTerms(t: LossInputs, out: LossOutputs, reference: () => unknown): void {
  for (let i = 0; i < t.mask.length; i++) {
    if (t.mask[i] !== 1) continue;
    const terms = out.loss[i]! + out.grad[i]! + (out.kl?.[i] ?? 0) + (out.gradEntropy?.[i] ?? 0);
    if (Number.isFinite(terms)) continue;
    reference();
    throw new GrpoRocError(
      `internal error: the cuda loss's terms at position ${i} are not finite, the reference's are`,
    );
  }
}

async function cudaTokenLogProbs(
  runtime: RuntimeSource,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsOptions = {},
): Promise<TokenLogProbs> {
  const { temperature, entropy: withEntropy } = readForwardOptions(options);
  const logits = readAddonLogits(logitsInput);
  const { ids, mask } = readTokens(tokensInput, options.mask, logits.l);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(logits.l, (i) => mask === undefined || mask[i] === 1);
  const cuda = await runtime();
  const n = positionsOf(logits);
  const active = selectedPositions(mask, n);
  const logp = new Float64Array(n);
  const logSumExp = new Float64Array(n);
  const entropy = new Float64Array(n);
  await callAddon(cuda, (addon) =>
    addon.forward({
      ...cuda.launch,
      logits: logits.data,
      positions: n,
      vocab: logits.l.vocab,
      tokens: tokenIds(ids, active),
      active,
      invTemperature: 1 / temperature,
      outLogp: logp,
      outLse: logSumExp,
      outEntropy: entropy,
    }),
  );
  requireFiniteStatistics(logSumExp, active, logits.l.cols);
  const shape = [logits.l.rows, logits.l.cols] as const;
  return { logp, entropy: withEntropy ? entropy : undefined, logSumExp, temperature, shape };
}

async function cudaTokenLogProbsBackward(
  runtime: RuntimeSource,
  logitsInput: LogitsInput,
  tokensInput: MatrixInput,
  options: TokenLogProbsBackwardOptions,
): Promise<LogitsGradient> {
  const { temperature } = readBackwardOptions(options);
  const logits = readAddonLogits(logitsInput);
  const backward: BackwardInputs = readBackwardInputsOf(logits.l, temperature, tokensInput, options);
  const { reads, gradLogp, gradEntropy } = backward;
  requireFloat32Temperature(temperature);
  requireFloat32Logits(logits.l, (i) => reads[i] === 1);
  requireFloat32Upstream(gradLogp, gradEntropy, reads, temperature, logits.l);
  // Saved statistics that the float32 kernels cannot use exactly (huge logits) are recomputed, for every row.
  const saved = backward.saved !== undefined && savedIsExact(backward.saved, reads) ? backward.saved : undefined;
  const cuda = await runtime();
  const n = positionsOf(logits);
  const grad = new Float32Array(n * logits.l.vocab);
  const logSumExp = new Float64Array(n);
  const checks = new Uint8Array(n);
  const checkSums = new Float64Array(n);
  await callAddon(cuda, (addon) =>
    addon.backward({
      ...cuda.launch,
      logits: logits.data,
      positions: n,
      vocab: logits.l.vocab,
      tokens: tokenIds(backward.ids, reads),
      active: reads,
      invTemperature: 1 / temperature,
      gradLogp: selectedCopy(gradLogp, reads),
      gradEntropy: selectedCopy(gradEntropy, reads),
      savedLse: saved === undefined ? undefined : selectedCopy(saved.logSumExp, reads),
      savedEntropy: saved === undefined ? undefined : selectedCopy(saved.entropy ?? new Float64Array(n), reads),
      outLse: saved === undefined ? logSumExp : undefined,
      outChecks: checks,
      outCheckSums: checkSums,
      grad,
    }),
  );
  if (saved === undefined) requireFiniteStatistics(logSumExp, reads, logits.l.cols);
  requireRowChecks(checks, checkSums, logits.l.cols);
  return { data: gradientInLogitsPrecision(logits, grad), shape: [logits.l.rows, logits.l.cols, logits.l.vocab] };
}

/**
 * The gradient pass's own checks of the rows it read (native/src/grpo_math.h, check_flags): NaN or +Infinity, only
 * −Infinity (the reference's errors), or saved statistics that do not describe the logits.
 */
function requireRowChecks(checks: Uint8Array, sums: Float64Array, cols: number): void {
  for (let i = 0; i < checks.length; i++) {
    const flag = checks[i]!;
    if (flag === 0) continue;
    if ((flag & 1) !== 0) throw badLogits(i, cols, NaN);
    if ((flag & 2) !== 0) throw badLogits(i, cols, -Infinity);
    throw savedMismatch(i, cols, sums[i]!);
  }
}

/**
 * The fused pass: statistics, loss and gradient in one addon call. Checks run in the reference's order (the loss
 * options, the forward pass's options, logits, tokens and mask, then the loss inputs, with placeholders for the
 * log-probs the device computes); what only the device can find comes back as the reference's errors.
 */
async function cudaPolicyLossFromLogits(
  runtime: RuntimeSource,
  inputs: LogitsPolicyLossInputs,
  optionsInput: LogitsPolicyLossOptions = {},
): Promise<LogitsPolicyLossResult> {
  const { logits: logitsInput, tokens, rest } = splitLogitsInputs(inputs);
  const { temperature: temperatureOption, lossOptions } = splitLogitsOptions(optionsInput);
  const o = resolvePolicyLossOptions(lossOptions);
  const withEntropy = o.entropyCoef > 0;
  const { temperature } = readForwardOptions({ temperature: temperatureOption, entropy: withEntropy });
  const logits = readAddonLogits(logitsInput);
  const { ids, mask } = readTokens(tokens, rest.mask, logits.l);
  requireFloat32Temperature(temperature);
  requireFloat32Logits(logits.l, (i) => mask === undefined || mask[i] === 1);
  const n = positionsOf(logits);
  const placeholder = { data: new Float64Array(n), shape: [logits.l.rows, logits.l.cols] as const };
  const t = readLossInputs({ ...rest, logp: placeholder, entropy: withEntropy ? placeholder : undefined }, o);
  const cuda = await runtime();
  const loss = lossArguments(t, o, rest.oldLogp !== undefined);
  const out = lossOutputs(n, o);
  const logp = new Float64Array(n);
  const logSumExp = new Float64Array(n);
  const entropy = new Float64Array(n);
  const grad = new Float32Array(n * logits.l.vocab);
  const fused = await callAddon(cuda, (addon) =>
    addon.fused({
      ...cuda.launch,
      ...loss.args,
      logits: logits.data,
      positions: n,
      vocab: logits.l.vocab,
      tokens: tokenIds(ids, loss.args.mask),
      invTemperature: 1 / temperature,
      outLogp: logp,
      outLse: logSumExp,
      outEntropy: entropy,
      ...outputArgs(out),
      grad,
    }),
  );
  const computed: LossInputs = { ...t, logp, entropy: withEntropy ? entropy : undefined };
  if (fused.stop === FUSED_STOP.badLogits) throw badLogits(fused.position, logits.l.cols, logSumExp[fused.position]!);
  if (fused.stop === FUSED_STOP.nonFiniteLogRatio) {
    // logp is −Infinity only where the sampled token's logit is (the statistics are float64 there): name the logits.
    const i = fused.position;
    if (!Number.isFinite(logp[i])) throw sampledTokenError(i, logits.l.cols, ids[i]!, -Infinity);
    requireFiniteLogps(computed);
    throw new GrpoRocError(`${cuda.name}: a non-finite log-ratio at position ${fused.position}`);
  }
  requireFiniteLossTerms(t, out, () =>
    atTheLogits(() =>
      referencePolicyLoss(
        {
          ...rest,
          logp: { data: logp, shape: placeholder.shape },
          entropy: withEntropy ? { data: entropy, shape: placeholder.shape } : undefined,
        },
        lossOptions,
      ),
    ),
  );
  if (fused.stop === FUSED_STOP.gradientOverflow) {
    const i = fused.position;
    const h = out.gradEntropy?.[i] ?? 0;
    throw lossGradientOverflow(i, logits.l, out.grad[i]!, h, temperature) ?? new GrpoRocError("internal error");
  }
  return {
    ...assembleLoss(computed, o, loss.weights, loss.entropyWeights, out),
    logp,
    entropy: withEntropy ? entropy : undefined,
    gradLogits: {
      data: gradientInLogitsPrecision(logits, grad),
      shape: [logits.l.rows, logits.l.cols, logits.l.vocab],
    },
  };
}

/** Why the fused kernel stopped early (native/src/engine.h, enum class Stop). */
const FUSED_STOP = { badLogits: 1, nonFiniteLogRatio: 2, gradientOverflow: 3 } as const;

// ---------------------------------------------------------------------------------------------------------------
// Arguments and results of the addon's calls

/** Logits as the addon reads them, beside the shape the validators read. */
interface AddonLogits {
  /** Float32Array (float32 or float64 input, rounded), or Uint16Array of bfloat16 bits. */
  readonly data: Float32Array | Uint16Array;
  readonly source: "float64" | "float32" | "bfloat16";
  readonly l: Logits;
}

/** The logits as the device reads them; float64 (and nested arrays) are rounded to float32. */
function readAddonLogits(input: LogitsInput): AddonLogits {
  if (isBfloat16Logits(input)) {
    const l = readBfloat16Logits(input);
    return { data: l.bfloat16, source: "bfloat16", l };
  }
  const l = readLogits(input);
  if (l.data instanceof Float32Array) return { data: l.data, source: "float32", l };
  return { data: Float32Array.from(l.data), source: "float64", l };
}

/** The logits' own precision for the caller: float64 logits get a Float64Array back (the addon writes float32). */
function gradientInLogitsPrecision(logits: AddonLogits, grad: Float32Array): Float32Array | Float64Array {
  return logits.source === "float64" ? Float64Array.from(grad) : grad;
}

function positionsOf(logits: AddonLogits): number {
  return logits.l.rows * logits.l.cols;
}

/** Token ids as int32, 0 where the position is skipped (its id may be anything there, e.g. −1 padding). */
function tokenIds(ids: ArrayLike<number>, active: ArrayLike<number>): Int32Array {
  const out = new Int32Array(active.length);
  for (let i = 0; i < out.length; i++) out[i] = active[i] === 1 ? ids[i]! : 0;
  return out;
}

function selectedPositions(mask: ArrayLike<number> | undefined, n: number): Uint8Array {
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

/** The reference's error for the first read position whose logsumexp is not finite. */
function requireFiniteStatistics(logSumExp: Float64Array, active: ArrayLike<number>, cols: number): void {
  for (let i = 0; i < logSumExp.length; i++) {
    if (active[i] === 1 && !Number.isFinite(logSumExp[i])) throw badLogits(i, cols, logSumExp[i]!);
  }
}

/** The addon's arguments for the loss over [B, T]: validated inputs as float64, masked values zeroed. */
function lossArguments(t: LossInputs, o: PolicyLossOptions, oldLogpGiven: boolean) {
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

function outputArgs(out: LossOutputs) {
  return {
    outLoss: out.loss,
    outGrad: out.grad,
    outKl: out.kl,
    outGradEntropy: out.gradEntropy,
    outRatio: out.ratio,
    outApprox: out.approx,
    outFlags: out.flags,
  };
}
