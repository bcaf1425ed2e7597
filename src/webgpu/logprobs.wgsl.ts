/**
 * WGSL for the statistics of each position's distribution over the vocabulary: logsumexp, the sampled token's
 * log-prob and the entropy, in one pass over the logits with an online (running max, Σe, Σe·z) triple per thread
 * and a merge across the workgroup.
 *
 * Layout, shared with backward.wgsl.ts: the logits of a dispatch are one binding of rows, `stride` vectors apart,
 * after `shift` vectors; `positions[entryStart + e]` is the position (row of the whole [B·T, V] batch) that
 * workgroup e handles, and `pos − rowStart` its row in the binding. Only the positions listed are read: masked
 * positions (and, backward, those with nothing flowing back) cost nothing, and whatever they hold is never read.
 * Per-position data (tokens, statistics, upstream gradients) is indexed by position.
 *
 * A "vector" is a vec4f when the row length allows aligned vec4 loads, else an f32. On lavapipe (Mesa's CPU
 * Vulkan driver) every storage-buffer load whose address differs between invocations becomes a loop over the
 * SIMD lanes with a bounds check per lane, whatever its width: four logits per load cost about as much as one,
 * so the vec4 form is ~2× faster there (and no slower on a GPU).
 */

/** Threads per workgroup: one workgroup per position; each thread strides the vocabulary. */
export const WORKGROUP = 64;

export interface VectorForm {
  /** 4: vec4f loads (rows padded to a multiple of 4 with −Infinity, which contribute nothing); 1: f32. */
  readonly lanes: 1 | 4;
}

/** Type aliases and helpers that let one kernel text serve both vector forms. */
export function vectorPrelude({ lanes }: VectorForm): string {
  return lanes === 4
    ? `alias VT = vec4f;
alias VU = vec4u;
const LANES = 4u;
fn hmax(v: VT) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: VT) -> f32 { return (v.x + v.y) + (v.z + v.w); }
fn anyOf(b: vec4<bool>) -> bool { return any(b); }
fn laneIds() -> VU { return vec4u(0u, 1u, 2u, 3u); }
fn element(v: VT, i: u32) -> f32 { return v[i]; }`
    : `alias VT = f32;
alias VU = u32;
const LANES = 1u;
fn hmax(v: VT) -> f32 { return v; }
fn hsum(v: VT) -> f32 { return v; }
fn anyOf(b: bool) -> bool { return b; }
fn laneIds() -> VU { return 0u; }
fn element(v: VT, i: u32) -> f32 { return v; }`;
}

/**
 * The uniform block of one dispatch over logits. `count` positions from `positions[entryStart]` on; the grid is
 * 2-D (`groupsX` × ⌈count / groupsX⌉) to stay under maxComputeWorkgroupsPerDimension.
 */
export const LOGITS_PARAMS = `struct Params {
  count: u32,
  entryStart: u32,
  rowStart: u32,
  stride: u32,
  shift: u32,
  outShift: u32,
  groupsX: u32,
  invTemp: f32,
}`;

/** Words of LOGITS_PARAMS, in order (all 32-bit). */
export const LOGITS_PARAM_WORDS = 8;

/**
 * Finite-or-not tests on bit patterns: a compiler may assume floats are finite and fold `x != x`; integer
 * compares it must keep. −Infinity is an allowed logit (a masked vocabulary entry: probability 0); NaN and
 * +Infinity make the position's statistics invalid, which the host reports as the reference does.
 */
export const SPECIAL_VALUES = `const EXP_BITS = 0x7f800000u;
const NEG_INF_BITS = 0xff800000u;
const LOWEST = -3.4028234663852886e38;`;

/**
 * The streaming loop and the workgroup merge, as a function body fragment: leaves the position's logsumexp in
 * `lse`, Σp·z-based entropy in `entropy`, and flags in `flag` (1: NaN or +Infinity among the logits, 2: every logit
 * is −Infinity) — valid in invocation 0 (`lid == 0u`) only.
 */
export const STATISTICS_LOOP = `  var m = LOWEST;
  var s = 0.0;
  var w = 0.0;
  var bad = 0u;
  for (var k = lid; k < p.stride; k += WORKGROUP) {
    let raw = logits[base + k];
    let bits = bitcast<VU>(raw);
    let negInf = bits == VU(NEG_INF_BITS);
    bad |= select(0u, 1u, anyOf(((bits & VU(EXP_BITS)) == VU(EXP_BITS)) & !negInf));
    let z = raw * p.invTemp;
    // Rescale only when the running max grows (a few times per thread), not at every element.
    let blockMax = hmax(z);
    if (blockMax > m) {
      let r = exp(m - blockMax);
      s *= r;
      w *= r;
      m = blockMax;
    }
    let e = select(exp(z - VT(m)), VT(0.0), negInf);
    s += hsum(e);
    w += hsum(e * select(z, VT(0.0), negInf));
  }
  wm[lid] = m;
  ws[lid] = s;
  ww[lid] = w;
  wbad[lid] = bad;
  workgroupBarrier();
  var lse = 0.0;
  var entropy = 0.0;
  var flag = 0u;
  if (lid == 0u) {
    var mm = LOWEST;
    var ss = 0.0;
    var sw = 0.0;
    for (var i = 0u; i < WORKGROUP; i++) {
      let mi = wm[i];
      let top = max(mm, mi);
      let a = exp(mm - top);
      let b = exp(mi - top);
      ss = ss * a + ws[i] * b;
      sw = sw * a + ww[i] * b;
      mm = top;
      flag |= wbad[i];
    }
    if (ss == 0.0) {
      flag |= 2u;
    }
    lse = mm + log(ss);
    entropy = lse - sw / ss;
  }`;

export const STATISTICS_SHARED = `var<workgroup> wm: array<f32, WORKGROUP>;
var<workgroup> ws: array<f32, WORKGROUP>;
var<workgroup> ww: array<f32, WORKGROUP>;
var<workgroup> wbad: array<u32, WORKGROUP>;`;

/**
 * Forward: stats[pos] = (logsumexp, log-prob of the token, entropy, flag) for each listed position, all of
 * logits / τ.
 */
export function forwardKernel(form: VectorForm): string {
  return `${vectorPrelude(form)}
${SPECIAL_VALUES}
const WORKGROUP = ${WORKGROUP}u;
${LOGITS_PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<VT>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec4f>;
${STATISTICS_SHARED}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = wid.x + wid.y * p.groupsX;
  if (e >= p.count) {
    return;
  }
  let pos = positions[p.entryStart + e];
  let base = p.shift + (pos - p.rowStart) * p.stride;
${STATISTICS_LOOP}
  if (lid == 0u) {
    let token = tokens[pos];
    let zt = element(logits[base + token / LANES], token % LANES) * p.invTemp;
    stats[pos] = vec4f(lse, zt - lse, entropy, f32(flag));
  }
}
`;
}

/** Binding names of forwardKernel, by binding index. */
export const FORWARD_BINDINGS = ["params", "logits", "positions", "tokens", "stats"] as const;
