/**
 * WGSL for the statistics of each position's distribution over the vocabulary: the largest logit and log Σ (whose
 * sum is the logsumexp), the sampled token's log-prob and the entropy, in one pass over the logits with an online
 * (running max, Σe, Σe·d) triple per thread and a merge across the workgroup (ROW_STATISTICS).
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
 * Bits of a position's flag (the statistics' 4th component). The kernels set INVALID (NaN or +Infinity among the
 * logits), EMPTY (every logit is −Infinity) and, in a backward pass over saved statistics, MISMATCH (the saved
 * statistics do not describe the logits: their probabilities do not sum to 1). The host sets RECOMPUTE in
 * statistics it uploads, for a position whose saved logsumexp cannot give the kernel its shift and log Σ exactly.
 */
export const STATISTICS_FLAGS = { invalid: 1, empty: 2, mismatch: 4, recompute: 8 } as const;

/**
 * How far the probabilities of a row may sum from 1 under saved statistics before they are taken for another row's:
 * float32 sums of up to 2^20 terms stay within 1e-5 of the sum; logits that changed are off by much more.
 */
export const MISMATCH_TOLERANCE = 1e-3;

/**
 * One row's statistics over logits z and inverse temperature 1/τ, kept so that (z − max) − log Σ stays exact at any
 * magnitude of the logits: `shift` is the row's largest logit as given (not divided by τ, so that z/τ never
 * overflows), d = (z − shift)/τ ≤ 0, `logSum` = log Σ e^d and `entropy` = logSum − Σ e^d·d / Σ e^d. Then
 * log p = d − logSum, and the logsumexp of z/τ is shift/τ + logSum, which the host forms in float64.
 *
 * Each thread keeps (m, s, w): its largest logit, s = Σ e^d and w = Σ e^d·d relative to m; a larger maximum
 * rescales both (`rescaled`). Terms with e^d = 0 (−Infinity logits, and logits so far below the maximum that
 * their probability underflows) add nothing: their d may be −Infinity, and 0·∞ must not reach a sum.
 */
export const ROW_STATISTICS = `struct RowStatistics {
  shift: f32,
  logSum: f32,
  entropy: f32,
  flag: u32,
}

/** (s, w) relative to a shift, moved to a shift larger by −delta·τ (delta ≤ 0, possibly −Infinity). */
fn rescaled(sw: vec2f, delta: f32) -> vec2f {
  if (delta == 0.0) {
    return sw;
  }
  let r = exp(delta);
  if (sw.x == 0.0 || r == 0.0) {
    return vec2f(0.0);
  }
  return vec2f(sw.x * r, r * (sw.y + delta * sw.x));
}

/**
 * The statistics of the row at \`base\`, by the whole workgroup (call in uniform control flow): valid in invocation
 * 0 only.
 */
fn rowStatistics(base: u32, lid: u32) -> RowStatistics {
  var m = LOWEST;
  var s = 0.0;
  var w = 0.0;
  var bad = 0u;
  for (var k = lid; k < p.stride; k += WORKGROUP) {
    let raw = logits[base + k];
    let bits = bitcast<VU>(raw);
    let negInf = bits == VU(NEG_INF_BITS);
    bad |= select(0u, ${STATISTICS_FLAGS.invalid}u, anyOf(((bits & VU(EXP_BITS)) == VU(EXP_BITS)) & !negInf));
    // Rescale only when the running max grows (a few times per thread), not at every element.
    let blockMax = hmax(raw);
    if (blockMax > m) {
      let sw = rescaled(vec2f(s, w), (m - blockMax) * p.invTemp);
      s = sw.x;
      w = sw.y;
      m = blockMax;
    }
    let d = (raw - VT(m)) * p.invTemp;
    let e = exp(d);
    s += hsum(e);
    w += hsum(select(e * d, VT(0.0), e == VT(0.0)));
  }
  wm[lid] = m;
  ws[lid] = s;
  ww[lid] = w;
  wbad[lid] = bad;
  workgroupBarrier();
  var result = RowStatistics(LOWEST, 0.0, 0.0, 0u);
  if (lid == 0u) {
    var mm = LOWEST;
    var sw = vec2f(0.0);
    var flag = 0u;
    for (var i = 0u; i < WORKGROUP; i++) {
      let mi = wm[i];
      let top = max(mm, mi);
      sw = rescaled(sw, (mm - top) * p.invTemp) + rescaled(vec2f(ws[i], ww[i]), (mi - top) * p.invTemp);
      mm = top;
      flag |= wbad[i];
    }
    if (sw.x == 0.0) {
      flag |= ${STATISTICS_FLAGS.empty}u;
    }
    let logSum = log(sw.x);
    result = RowStatistics(mm, logSum, logSum - sw.y / sw.x, flag);
  }
  return result;
}`;

export const STATISTICS_SHARED = `var<workgroup> wm: array<f32, WORKGROUP>;
var<workgroup> ws: array<f32, WORKGROUP>;
var<workgroup> ww: array<f32, WORKGROUP>;
var<workgroup> wbad: array<u32, WORKGROUP>;`;

export interface ForwardForm extends VectorForm {
  /**
   * Also write `sums[pos]` = (log Σ, the token's logit): what the host needs for the logsumexp and the log-prob in
   * float64, and what a backward pass over these statistics reads for an exact log Σ. Without it (tfjs's kernels),
   * a backward pass recovers log Σ from the log-prob (see backward.wgsl.ts).
   */
  readonly sums?: boolean | undefined;
}

/**
 * Forward: stats[pos] = (shift, log-prob of the token, entropy, flag) for each listed position, of logits / τ (see
 * ROW_STATISTICS); with `sums`, sums[pos] = (log Σ, the token's logit).
 */
export function forwardKernel(form: ForwardForm): string {
  return `${vectorPrelude(form)}
${SPECIAL_VALUES}
const WORKGROUP = ${WORKGROUP}u;
${LOGITS_PARAMS}
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<VT>;
@group(0) @binding(2) var<storage, read> positions: array<u32>;
@group(0) @binding(3) var<storage, read> tokens: array<u32>;
@group(0) @binding(4) var<storage, read_write> stats: array<vec4f>;
${form.sums === true ? "@group(0) @binding(5) var<storage, read_write> sums: array<vec2f>;" : ""}
${STATISTICS_SHARED}
${ROW_STATISTICS}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let e = wid.x + wid.y * p.groupsX;
  if (e >= p.count) {
    return;
  }
  let pos = positions[p.entryStart + e];
  let base = p.shift + (pos - p.rowStart) * p.stride;
  let row = rowStatistics(base, lid);
  if (lid == 0u) {
    let token = tokens[pos];
    let zt = element(logits[base + token / LANES], token % LANES);
    let logp = (zt - row.shift) * p.invTemp - row.logSum;
    stats[pos] = vec4f(row.shift, logp, row.entropy, f32(row.flag));
    ${form.sums === true ? "sums[pos] = vec2f(row.logSum, zt);" : ""}
  }
}
`;
}

/** Binding names of forwardKernel, by binding index. */
export function forwardBindings(form: ForwardForm): readonly string[] {
  return form.sums === true ? [...FORWARD_BINDINGS, "sums"] : FORWARD_BINDINGS;
}

/** Binding names of forwardKernel, by binding index. */
export const FORWARD_BINDINGS = ["params", "logits", "positions", "tokens", "stats"] as const;
