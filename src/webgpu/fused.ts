/**
 * policyLossFromLogits on the device in one submission: statistics pass over the logits → loss kernel over
 * [B, T] (reading the statistics where the first pass left them) → gradient pass over the logits (reading the
 * loss kernel's ∂loss/∂logp and ∂loss/∂entropy where it left them). No CPU round trip between the passes; the
 * logits are read twice and their gradient written once.
 *
 * The CPU validates everything it can before (options, shapes, token ids, the loss inputs) and the rest after
 * (logits that are NaN or ±Infinity, log-probs that come out −Infinity), throwing what the reference would
 * throw: when any check before would fail, or the objective is not one the WGSL kernel implements, the call runs
 * as the reference composes it (forward, loss, backward, each on this backend, policy loss on the CPU for an
 * objective of your own), which reproduces the reference's order of errors exactly.
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
  requireFiniteStatistics,
  tokenIds,
  type GradientTarget,
  type LogitsSource,
} from "./logprobs.js";
import { encodeLoss, lossResult, packLoss } from "./loss.js";

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
 * is not on the device): the caller then runs the composed path, which throws what the reference throws.
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
    const count = l.rows * l.cols;
    const shape: [number, number] = [l.rows, l.cols];
    // Placeholders where the device will put log-probs and entropy: readLossInputs checks the rest.
    const placeholder = { data: new Float64Array(count), shape };
    const t = readLossInputs({ ...rest, logp: placeholder, entropy: withEntropy ? placeholder : undefined }, o);
    // The old log-probs' own finiteness, as the reference's loop would find it (logp is finite there: see below).
    requireFiniteLogps(t);
    const positions = listPositions(count, (i) => mask === undefined || mask[i] === 1);
    const hasOldLogp = rest.oldLogp !== undefined;
    return { options: o, temperature, logits: l, ids, positions, lossInputs: t, withEntropy, hasOldLogp };
  } catch {
    return undefined;
  }
}

/** Runs a plan: `logits` are the caller's typed arrays (uploaded once, kept for both passes) or device logits. */
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
  let statistics: Float32Array = new Float32Array(count * 4);
  const tokenOut = new Float32Array(count * 4);
  const partials = new Float32Array(logits.rows * 12);
  clearUnlistedRows(batch, target, positions, count, logits.vocab * 4);
  if (positions.length > 0) {
    const stats = batch.buffer(count * 16, BufferUsage.STORAGE | BufferUsage.COPY_SRC);
    const tokens = batch.upload(tokenIds(plan.ids, positions, count));
    const positionsBuffer = batch.upload(positions);
    const inverseTemperature = 1 / plan.temperature;
    await encodeForward(batch, logitsSource, tokens, positionsBuffer, stats, inverseTemperature);
    const loss = await encodeLoss(batch, options, packed, stats);
    const reads: Promise<unknown>[] = [
      readStatistics(batch, stats, positions, count).then((values) => (statistics = values)),
      batch.read(loss.tokenOut, 0, count * 16, (bytes) => tokenOut.set(new Float32Array(bytes, 0, count * 4))),
      batch.read(loss.partials, 0, logits.rows * 48, (bytes) =>
        partials.set(new Float32Array(bytes, 0, logits.rows * 12)),
      ),
    ];
    reads.push(
      encodeBackward(
        batch,
        logitsSource,
        { tokens, positions: positionsBuffer, stats, upstream: loss.tokenOut },
        { inverseTemperature, withStatistics: false, withEntropy: plan.withEntropy },
        target,
      ),
    );
    await Promise.all(reads);
    await batch.check();
  }
  requireFiniteStatistics(statistics, positions, logits.cols);
  const logp = new Float64Array(count);
  const entropy = plan.withEntropy ? new Float64Array(count) : undefined;
  for (const i of positions) {
    logp[i] = statistics[4 * i + 1]!;
    if (entropy !== undefined) entropy[i] = statistics[4 * i + 2]!;
  }
  // A −Infinity logit at the sampled token gives logp = −Infinity, which the reference's loss rejects.
  requireFiniteLogps({ ...lossInputs, logp, oldLogp: plan.hasOldLogp ? lossInputs.oldLogp : logp });
  const result = lossResult(options, packed, tokenOut, partials);
  return { ...result, logp, entropy };
}
