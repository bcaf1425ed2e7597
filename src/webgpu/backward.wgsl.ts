/**
 * WGSL for the gradient into the logits, written once per listed position:
 *
 *   ∂L/∂z_v = (g·(onehot_v − p_v) − h·p_v·(log p_v + H)) / τ,   log p_v = (z_v − shift)/τ − log Σ
 *
 * with g = ∂L/∂logp and h = ∂L/∂entropy of the position, read from `upstream[pos]` (.x and .w: the layout the
 * loss kernel writes its gradients in, so that the fused step passes them on without a copy). The statistics (shift,
 * log Σ, H: see ROW_STATISTICS) come from the forward pass (`stats`, one read of the logits here) or, without them,
 * from a first loop over the row in the same workgroup (its 128 KB of a 32K vocabulary is still in the core's cache
 * for the second). Positions not listed are not written: the host zeroes them (a fresh buffer, or a cleared one).
 *
 * Saved statistics are trusted to describe these logits (the caller's precondition), but not blindly: the pass
 * still flags NaN or +Infinity among the logits (INVALID), a row of −Infinity only (EMPTY), and probabilities that
 * do not sum to 1 under the saved statistics (MISMATCH: the logits changed since), in `stats[pos].w`, with the sum
 * in `stats[pos].y`; the host throws for them. Where the saved statistics cannot give log Σ exactly (RECOMPUTE, set
 * by the host, or a recovered log Σ: see below), the row's statistics are recomputed here first.
 */
import {
  FORWARD_BINDINGS,
  LOGITS_PARAMS,
  MISMATCH_TOLERANCE,
  ROW_STATISTICS,
  SPECIAL_VALUES,
  STATISTICS_FLAGS,
  STATISTICS_SHARED,
  vectorPrelude,
  WORKGROUP,
  type VectorForm,
} from "./logprobs.wgsl.js";

export interface BackwardForm extends VectorForm {
  /** Compute the statistics here (and write them, with the flags, to `stats`) instead of reading them. */
  readonly withStatistics: boolean;
  /** An entropy term (h ≠ 0 somewhere); without one the kernel skips its arithmetic. */
  readonly withEntropy: boolean;
  /**
   * Saved statistics come with `sums[pos]` = (log Σ, ·): the webgpu backend's forward pass, or statistics the host
   * built from a TokenLogProbs. Without (tfjs's kernels, whose statistics are one [B·T, 4] tensor), log Σ is
   * recovered from the saved log-prob as (z_token − shift)/τ − logp: exact to half an ulp of logp, under 1e-6 while
   * |logp| < 32; beyond that (a token of probability below e^−32), the row's statistics are recomputed.
   */
  readonly savedSums?: boolean | undefined;
}

/** |logp| below which log Σ recovered from the log-prob is exact to 1e-6 (half an ulp of 32 is 1.9e-6 / 2). */
const RECOVERY_LIMIT = 32;

/** A bit of the saved pass's per-invocation findings beside INVALID: some logit is not −Infinity. */
const SEEN_BIT = 16;

export function backwardKernel(form: BackwardForm): string {
  const saved = !form.withStatistics;
  const sums = saved && form.savedSums === true;
  const statistics = form.withStatistics
    ? `  let computed = rowStatistics(base, lid);
  if (lid == 0u) {
    stats[pos] = vec4f(computed.shift, 0.0, computed.entropy, f32(computed.flag));
    sharedRow = vec4f(computed.shift, computed.logSum, computed.entropy, 0.0);
  }`
    : `  if (lid == 0u) {
    let saved = stats[pos];
${
  sums
    ? "    let logSum = sums[pos].x;\n    let recover = false;"
    : `    let zt = element(logits[base + token / LANES], token % LANES);
    let logSum = (zt - saved.x) * p.invTemp - saved.y;
    let recover = !(abs(saved.y) < ${RECOVERY_LIMIT}.0);`
}
    sharedRow = vec4f(saved.x, logSum, saved.z, 0.0);
    sharedRecompute = select(0u, 1u, recover || (u32(saved.w) & ${STATISTICS_FLAGS.recompute}u) != 0u);
  }
  if (workgroupUniformLoad(&sharedRecompute) != 0u) {
    let computed = rowStatistics(base, lid);
    if (lid == 0u) {
      sharedRow = vec4f(computed.shift, computed.logSum, computed.entropy, f32(computed.flag));
    }
  }`;
  // The saved pass's checks: what the gradient loop saw, reduced over the workgroup and flagged for the host.
  const check = saved
    ? `  ws[lid] = probabilitySum;
  wbad[lid] = bad;
  workgroupBarrier();
  if (lid == 0u) {
    var total = 0.0;
    var bits = 0u;
    for (var i = 0u; i < WORKGROUP; i++) {
      total += ws[i];
      bits |= wbad[i];
    }
    var flag = u32(row.w) | (bits & ${STATISTICS_FLAGS.invalid}u);
    if ((bits & ${SEEN_BIT}u) == 0u) {
      flag |= ${STATISTICS_FLAGS.empty}u;
    }
    if (flag == 0u && !(abs(total - 1.0) <= ${MISMATCH_TOLERANCE})) {
      flag |= ${STATISTICS_FLAGS.mismatch}u;
    }
    if (flag != 0u) {
      let before = stats[pos];
      stats[pos] = vec4f(before.x, total, before.z, f32(u32(before.w) | flag));
    }
  }`
    : "";
  return `${vectorPrelude(form)}
${SPECIAL_VALUES}
const WORKGROUP = ${WORKGROUP}u;
${LOGITS_PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<VT>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec4f>;
@group(0) @binding(5) var<storage, read> upstream: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> out: array<VT>;
${sums ? "@group(0) @binding(7) var<storage, read> sums: array<vec2f>;" : ""}
${STATISTICS_SHARED}
${ROW_STATISTICS}
var<workgroup> sharedRow: vec4f;
var<workgroup> sharedRecompute: u32;

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = wid.x + wid.y * p.groupsX;
  if (e >= p.count) {
    return;
  }
  let pos = positions[p.entryStart + e];
  let base = p.shift + (pos - p.rowStart) * p.stride;
  let outBase = p.outShift + (pos - p.rowStart) * p.stride;
  let token = tokens[pos];
${statistics}
  // (shift, log Σ, H, flags found recomputing them)
  let row = workgroupUniformLoad(&sharedRow);
  let gradients = upstream[pos];
  let g = gradients.x * p.invTemp;
  ${form.withEntropy ? "let h = gradients.w * p.invTemp;" : ""}
  ${saved ? "var probabilitySum = 0.0;\n  var bad = 0u;" : ""}
  for (var k = lid; k < p.stride; k += WORKGROUP) {
    let raw = logits[base + k];
    ${
      saved
        ? `let bits = bitcast<VU>(raw);
    let negInf = bits == VU(NEG_INF_BITS);
    bad |= select(0u, ${STATISTICS_FLAGS.invalid}u, anyOf(((bits & VU(EXP_BITS)) == VU(EXP_BITS)) & !negInf));
    bad |= select(0u, ${SEEN_BIT}u, anyOf(!negInf));`
        : ""
    }
    let logProb = (raw - VT(row.x)) * p.invTemp - VT(row.y);
    let prob = exp(logProb);
    ${saved ? "probabilitySum += hsum(prob);" : ""}
    var grad = -g * prob;
    // p = 0 (−Infinity logits, and those whose probability underflows) has no entropy term: it would be 0·∞.
    ${form.withEntropy ? "grad -= h * select(prob * (logProb + VT(row.z)), VT(0.0), prob == VT(0.0));" : ""}
    grad += select(VT(0.0), VT(g), VU(k * LANES) + laneIds() == VU(token));
    out[outBase + k] = grad;
  }
${check}
}
`;
}

/** Binding names of backwardKernel, by binding index. */
export function backwardBindings(form: Pick<BackwardForm, "withStatistics" | "savedSums">): readonly string[] {
  const names = [...FORWARD_BINDINGS, "upstream", "out"];
  return !form.withStatistics && form.savedSums === true ? [...names, "sums"] : names;
}

export const BACKWARD_BINDINGS = [...FORWARD_BINDINGS, "upstream", "out"] as const;
