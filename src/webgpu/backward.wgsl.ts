/**
 * WGSL for the gradient into the logits, written once per listed position:
 *
 *   ∂L/∂z_v = (g·(onehot_v − p_v) − h·p_v·(z_v − lse + H)) / τ,   p_v = exp(z_v/τ − lse)
 *
 * with g = ∂L/∂logp and h = ∂L/∂entropy of the position, read from `upstream[pos]` (.x and .w: the layout the
 * loss kernel writes its gradients in, so that the fused step passes them on without a copy). The statistics (lse, H)
 * come from the forward pass (`stats`, one read of the logits here) or, without them, from a first loop over the row in
 * the same workgroup (its 128 KB of a 32K vocabulary is still in the core's cache for the second). Positions not listed
 * are not written: the host zeroes them (a fresh buffer, or a cleared one).
 */
import {
  FORWARD_BINDINGS,
  LOGITS_PARAMS,
  SPECIAL_VALUES,
  STATISTICS_LOOP,
  STATISTICS_SHARED,
  vectorPrelude,
  WORKGROUP,
  type VectorForm,
} from "./logprobs.wgsl.js";

export interface BackwardForm extends VectorForm {
  /** Compute lse and H here (and write them, with the flags, to `stats`) instead of reading them. */
  readonly withStatistics: boolean;
  /** An entropy term (h ≠ 0 somewhere); without one the kernel skips its arithmetic. */
  readonly withEntropy: boolean;
}

export function backwardKernel(form: BackwardForm): string {
  const statistics = form.withStatistics
    ? `${STATISTICS_LOOP}
  if (lid == 0u) {
    stats[pos] = vec4f(lse, 0.0, entropy, f32(flag));
    sharedLse = lse;
    sharedEntropy = entropy;
  }
  let lseAll = workgroupUniformLoad(&sharedLse);
  let entropyAll = workgroupUniformLoad(&sharedEntropy);`
    : `  let saved = stats[pos];
  let lseAll = saved.x;
  let entropyAll = saved.z;`;
  return `${vectorPrelude(form)}
${SPECIAL_VALUES}
const WORKGROUP = ${WORKGROUP}u;
${LOGITS_PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<VT>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, ${form.withStatistics ? "read_write" : "read"}> stats: array<vec4f>;
@group(0) @binding(5) var<storage, read> upstream: array<vec4f>;
@group(0) @binding(6) var<storage, read_write> out: array<VT>;
${
  form.withStatistics
    ? `${STATISTICS_SHARED}
var<workgroup> sharedLse: f32;
var<workgroup> sharedEntropy: f32;`
    : ""
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = wid.x + wid.y * p.groupsX;
  if (e >= p.count) {
    return;
  }
  let pos = positions[p.entryStart + e];
  let base = p.shift + (pos - p.rowStart) * p.stride;
  let outBase = p.outShift + (pos - p.rowStart) * p.stride;
${statistics}
  let token = VU(tokens[pos]);
  let gradients = upstream[pos];
  let g = gradients.x * p.invTemp;
  ${form.withEntropy ? "let h = gradients.w * p.invTemp;" : ""}
  for (var k = lid; k < p.stride; k += WORKGROUP) {
    let raw = logits[base + k];
    let negInf = bitcast<VU>(raw) == VU(NEG_INF_BITS);
    let centred = raw * p.invTemp - VT(lseAll);
    // −Infinity logits have p = 0 exactly, and no entropy term (it would be 0·∞).
    let prob = select(exp(centred), VT(0.0), negInf);
    var grad = -g * prob;
    ${form.withEntropy ? "grad -= h * prob * select(centred + VT(entropyAll), VT(0.0), negInf);" : ""}
    grad += select(VT(0.0), VT(g), VU(k * LANES) + laneIds() == token);
    out[outBase + k] = grad;
  }
}
`;
}

export const BACKWARD_BINDINGS = [...FORWARD_BINDINGS, "upstream", "out"] as const;
