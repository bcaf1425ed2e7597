/**
 * policyLossFromLogits on the device in one submission: statistics pass over the logits → loss kernel over
 * [B, T] (reading the statistics where the first pass left them) → gradient pass over the logits (reading the
 * loss kernel's ∂loss/∂logp and ∂loss/∂entropy where it left them). No CPU round trip between the passes; the
 * logits are read twice and their gradient written once.
 *
 * The CPU validates everything it can before (options, shapes, token ids, the loss inputs, what float32 cannot
 * hold) and the rest after (logits that are NaN or +Infinity or only −Infinity, a sampled token whose log-prob is
 * −Infinity, loss terms that overflow float32), throwing what the reference would throw (at the logits, where the
 * reference's composition names a log-prob the caller never passed): when any check before would fail, or the
 * objective is not one the WGSL kernel implements, the call runs as the reference composes it (forward, loss,
 * backward, each on this backend, policy loss on the CPU for an objective of your own), which reproduces the
 * reference's order of errors exactly.
 */
import {
  isBuiltinObjective,
  type Logits,
  type LogitsPolicyLossInputs,
  type LogitsPolicyLossOptions,
  type LogitsPolicyLossResult,
  type LossInputs,
  type PolicyLossOptions,
  readForwardOptions,
  readLossInputs,
  readTokens,
  requireFiniteLogps,
  resolvePolicyLossOptions,
  splitLogitsInputs,
} from "../backends/contract.js";
import type { Batch } from "./context.js";
import {
  lossGradientOverflow,
  requireFloat32Logits,
  requireFloat32Temperature,
  sampledTokenError,
} from "../backends/contract.js";
import { BufferUsage } from "./gpu.js";
import type { DeviceLogits } from "./logits.js";
import {
  clearUnlistedRows,
  deviceSource,
  encodeBackward,
  encodeForward,
  hostSource,
  listPositions,
  readStatistics,
  requireValidStatistics,
  type Statistics,
  tokenIds,
  toTokenLogProbs,
  type GradientTarget,
  type LogitsSource,
} from "./logprobs.js";
import { encodeLoss, lossResult, packLoss } from "./loss.js";
import { requireFiniteLoss, requireFloat32LossInputs, requireFloat32Options } from "../backends/contract.js";

export interface FusedPlan {
  readonly options: PolicyLossOptions;
  readonly temperature: number;
  readonly logits: Logits;
  readonly ids: ArrayLike<number>;
  readonly positions: Uint32Array;
  readonly lossInputs: LossInputs;
  readonly withEntropy: boolean;
  readonly hasOldLogp: boolean;
}

/**
 * Everything the fused call checks before touching the device, or undefined when a check fails (or the objective
 * is not on the device): the caller then runs the composed path, which throws what the reference throws (and,
 * where float32 cannot hold an input, what this backend's kernels throw).
 * `readShape` reads the shape of `inputs.logits`: typed arrays (`readLogits`) or device logits (`readDeviceLogits`).
 */
export function planFused<L>(
  inputs: LogitsPolicyLossInputs<L>,
  options: LogitsPolicyLossOptions,
  readShape: (logits: L) => Logits,
): FusedPlan | undefined {
  try {
    const { temperature: temperatureOption, ...lossOptions } = options;
    const o = resolvePolicyLossOptions(lossOptions);
    const withEntropy = o.entropyCoef > 0;
    const { temperature } = readForwardOptions({ temperature: temperatureOption, entropy: withEntropy });
    const { logits, tokens, rest } = splitLogitsInputs(inputs);
    const l = readShape(logits);
    const { ids, mask } = readTokens(tokens, rest.mask, l);
    if (!isBuiltinObjective(o.objective)) return undefined;
    requireFloat32Temperature(temperature);
    requireFloat32Logits(l, (i) => mask === undefined || mask[i] === 1);
    const count = l.rows * l.cols;
    const shape: [number, number] = [l.rows, l.cols];
    // Placeholders where the device will put log-probs and entropy: readLossInputs checks the rest.
    const placeholder = { data: new Float64Array(count), shape };
    const t = readLossInputs({ ...rest, logp: placeholder, entropy: withEntropy ? placeholder : undefined }, o);
    // The old log-probs' own finiteness, as the reference's loop would find it (logp is finite there: see below).
    requireFiniteLogps(t);
    const hasOldLogp = rest.oldLogp !== undefined;
    requireFloat32Options(o);
    requireFloat32LossInputs(t, o, { fromStatistics: true, hasOldLogp });
    const positions = listPositions(count, (i) => mask === undefined || mask[i] === 1);
    return { options: o, temperature, logits: l, ids, positions, lossInputs: t, withEntropy, hasOldLogp };
  } catch {
    return undefined;
  }
}

/**
 * Runs a plan: `logits` are the caller's typed arrays (uploaded once, kept for both passes) or device logits. The
 * result is complete when this resolves: the statistics and the loss are read back, and a gradient left on the
 * device is waited for.
 */
export async function runFused(
  batch: Batch,
  plan: FusedPlan,
  source: { readonly host: Logits } | { readonly device: DeviceLogits },
  target: GradientTarget,
): Promise<Omit<LogitsPolicyLossResult, "gradLogits">> {
  const { logits, options, lossInputs, positions } = plan;
  const count = logits.rows * logits.cols;
  const logitsSource: LogitsSource =
    "host" in source ? hostSource(batch, source.host, positions, true) : deviceSource(batch, source.device, positions);
  const packed = packLoss(lossInputs, options, { fromStatistics: true, hasOldLogp: plan.hasOldLogp });
  let statistics: Statistics = { stats: new Float32Array(count * 4), sums: new Float32Array(count * 2) };
  const tokenOut = new Float32Array(count * 4);
  const partials = new Float32Array(logits.rows * 12);
  clearUnlistedRows(batch, target, positions, count, logits.vocab * 4);
  if (positions.length > 0) {
    const usage = BufferUsage.STORAGE | BufferUsage.COPY_SRC;
    const buffers = {
      tokens: batch.upload(tokenIds(plan.ids, positions, count)),
      positions: batch.upload(positions),
      stats: batch.buffer(count * 16, usage),
      sums: batch.buffer(count * 8, usage),
    };
    const inverseTemperature = 1 / plan.temperature;
    await encodeForward(batch, logitsSource, buffers, inverseTemperature);
    const loss = await encodeLoss(batch, options, packed, buffers.stats);
    const reads: Promise<unknown>[] = [
      readStatistics(batch, buffers, positions, count).then((values) => (statistics = values)),
      batch.read(loss.tokenOut, 0, count * 16, (bytes) => tokenOut.set(new Float32Array(bytes, 0, count * 4))),
      batch.read(loss.partials, 0, logits.rows * 48, (bytes) =>
        partials.set(new Float32Array(bytes, 0, logits.rows * 12)),
      ),
    ];
    reads.push(
      encodeBackward(
        batch,
        logitsSource,
        { ...buffers, upstream: loss.tokenOut },
        { inverseTemperature, withStatistics: false, withEntropy: plan.withEntropy, savedSums: true },
        target,
      ),
    );
    await Promise.all(reads);
  }
  // The statistics were read before the gradient pass ran: a gradient left on the device is waited for.
  if (target.kind === "device") await batch.complete();
  else await batch.check();
  requireValidStatistics(statistics.stats, positions, logits.cols);
  const forward = toTokenLogProbs(
    statistics,
    positions,
    [logits.rows, logits.cols],
    plan.temperature,
    plan.withEntropy,
  );
  requireFiniteTokenLogps(plan, statistics, forward.logp);
  const result = lossResult(options, packed, tokenOut, partials);
  requireFiniteLoss(result, lossInputs, forward.logp, "logits");
  for (const i of positions) {
    const overflow = lossGradientOverflow(i, logits, tokenOut[4 * i]!, tokenOut[4 * i + 3]!, plan.temperature);
    if (overflow !== undefined) throw overflow;
  }
  return { ...result, logp: forward.logp, entropy: forward.entropy };
}

/**
 * The loss kernel read each selected position's log-prob in float32: where that is −Infinity, the sampled token's
 * logit is −Infinity (what the reference's composition reports at inputs.logp, a field the caller never passed), or
 * its log-prob is finite but beyond float32. Either is an error at the logits' position.
 */
function requireFiniteTokenLogps(plan: FusedPlan, { stats, sums }: Statistics, logp: Float64Array): void {
  for (const i of plan.positions) {
    if (Number.isFinite(stats[4 * i + 1])) continue;
    const tokenLogit = sums![2 * i + 1]!;
    const finiteLogp = tokenLogit === -Infinity ? undefined : logp[i]!;
    throw sampledTokenError(i, plan.logits.cols, plan.ids[i]!, tokenLogit, finiteLogp);
  }
}
