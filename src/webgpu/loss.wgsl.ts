/**
 * WGSL for the policy loss over [B, T] (docs/spec.md §4), one workgroup per row, the same per-token math as
 * src/loss/policy-loss.ts and src/loss/objectives.ts in float32.
 *
 * Which objective, ratio level, KL estimator and optional terms apply is read from the uniform block at run
 * time (uniform branches cost next to nothing), so that one compiled pipeline serves every option set: lavapipe
 * takes a noticeable fraction of a second to compile a pipeline, and random option sets would otherwise compile
 * one each. The row weights of the aggregation come from the CPU (`rowWeights`, from the mask alone).
 *
 * Data is packed four to a vector to keep loads and stores few (on lavapipe each costs a loop over the SIMD
 * lanes whatever its width):
 *   rowIn[b]      (advantage of the row, weight w_b, entropy weight, valid tokens of the row)
 *   tokenIn[i]    (logp, oldLogp, mask, advantage of the token)
 *   tokenExtra[i] (refLogp, importance weight, entropy, 0)
 *   tokenOut[i]   (∂loss/∂logp, per-token loss, per-token KL, ∂loss/∂entropy), 0 where the mask is 0
 *   partials[3b…3b+2]  the row's sums: (loss, clipped, low, high), (dual, approxKl, Σratio, ΣKL),
 *                      (Σentropy, ∂loss/∂log ρ_b, min ratio, max ratio); the CPU adds rows up in float64.
 * Fused after the statistics pass (`fromStatistics`), logp and entropy are read from its `stats` instead.
 */

// The uniform block's codes are the contract's, shared with the CUDA kernels.
import {
  BUILTIN_OBJECTIVES,
  type BuiltinObjective,
  KL_KIND_CODE,
  KL_STRAIGHT_THROUGH,
  OBJECTIVE_CODE,
  RATIO_LEVEL_CODE,
} from "../backends/contract.js";

export const LOSS_WORKGROUP = 64;

export const LOSS_FLAGS = {
  oldLogp: 1,
  perTokenAdvantages: 2,
  importanceWeights: 4,
  kl: 8,
  klClamp: 16,
  klImportanceCorrected: 32,
  entropy: 64,
  entropyBonus: 128,
  dualClip: 256,
  delta: 512,
} as const;

/**
 * Each built-in objective's WGSL: the body of its `case` in `objective()`, which fills `o` (an Objective, all 0) from
 * the advantage `a`, the ratio and logp, as src/loss/objectives.ts does in float64. A new built-in objective is a
 * compile error here until its WGSL is written.
 */
const WGSL_OBJECTIVES = {
  clip: `
      let clippedRatio = clamp(ratio, p.low, p.high);
      let capped = has(${LOSS_FLAGS.delta}u) && ratio > p.delta;
      let unclippedRatio = select(ratio, p.delta, capped);
      let unclipped = -a * unclippedRatio;
      let clippedLoss = -a * clippedRatio;
      if (unclipped >= clippedLoss) {
        o.loss = unclipped;
        o.dLogRatio = select(-a * ratio, 0.0, capped);
      } else {
        o.loss = clippedLoss;
        o.dLogRatio = select(0.0, -a * ratio, clippedRatio == ratio);
      }
      o.clipped = select(0.0, 1.0, clippedLoss > unclipped);
      if (has(${LOSS_FLAGS.dualClip}u) && a < 0.0) {
        let bound = -a * p.dualClip;
        if (o.loss > bound) {
          o.loss = bound;
          o.dLogRatio = 0.0;
          o.dual = 1.0;
        }
      }
      o.low = select(0.0, 1.0, unclippedRatio < p.low && a < 0.0);
      o.high = select(0.0, 1.0, unclippedRatio > p.high && a > 0.0);`,
  cispo: `
      let weight = clamp(ratio, p.low, p.high);
      o.loss = -weight * a * logp;
      o.dLogp = -weight * a;
      o.clipped = select(0.0, 1.0, weight != ratio);
      o.low = select(0.0, 1.0, ratio < p.low && a < 0.0);
      o.high = select(0.0, 1.0, ratio > p.high && a > 0.0);`,
  sapo: `
      let tau = select(p.sapoNegative, p.sapoPositive, a > 0.0);
      let sigma = 1.0 / (1.0 + exp(-tau * (ratio - 1.0)));
      o.loss = (-a * sigma * 4.0) / tau;
      // σ(1 − σ)·ρ → 0 as ρ → ∞, but 0·∞ would be NaN where ρ overflowed.
      let oneMinusSigma = 1.0 - sigma;
      o.dLogRatio = select(-a * 4.0 * sigma * oneMinusSigma * ratio, 0.0, oneMinusSigma == 0.0);`,
  reinforce: `
      o.loss = -a * logp;
      o.dLogp = -a;`,
} as const satisfies Record<BuiltinObjective, string>;

function objectiveCases(): string {
  return BUILTIN_OBJECTIVES.map((name) => `    case ${OBJECTIVE_CODE[name]}u: {${WGSL_OBJECTIVES[name]}\n    }`).join(
    "\n",
  );
}

/** u32 words, then f32 words, of LossParams (16 + 12, padded to 32). */
export const LOSS_PARAM_WORDS = 32;

export function lossKernel({ fromStatistics }: { readonly fromStatistics: boolean }): string {
  const logpOf = fromStatistics ? "stats[statIndex(i)].y" : "x.x";
  const entropyOf = fromStatistics ? "stats[statIndex(i)].z" : "extra.z";
  return `const WORKGROUP = ${LOSS_WORKGROUP}u;
const BIG = 3.4028234663852886e38;
struct LossParams {
  rows: u32,
  rowStart: u32,
  cols: u32,
  groupsX: u32,
  tokenShift: u32,
  statShift: u32,
  objective: u32,
  ratioLevel: u32,
  flags: u32,
  klKind: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
  pad3: u32,
  pad4: u32,
  pad5: u32,
  clampLow: f32,
  clampHigh: f32,
  low: f32,
  high: f32,
  delta: f32,
  dualClip: f32,
  klCoef: f32,
  entropyCoef: f32,
  sapoPositive: f32,
  sapoNegative: f32,
  pad6: f32,
  pad7: f32,
  pad8: f32,
  pad9: f32,
  pad10: f32,
  pad11: f32,
}
@group(0) @binding(0) var<uniform> p: LossParams;
@group(0) @binding(1) var<storage, read> rowIn: array<vec4f>;
@group(0) @binding(2) var<storage, read> tokenIn: array<vec4f>;
@group(0) @binding(3) var<storage, read> tokenExtra: array<vec4f>;
@group(0) @binding(4) var<storage, read_write> tokenOut: array<vec4f>;
@group(0) @binding(5) var<storage, read_write> partials: array<vec4f>;
${fromStatistics ? "@group(0) @binding(6) var<storage, read> stats: array<vec4f>;" : ""}

var<workgroup> red: array<vec4f, ${3 * LOSS_WORKGROUP}>;
var<workgroup> rowSum: f32;
var<workgroup> rowGradShared: f32;

fn has(flag: u32) -> bool {
  return (p.flags & flag) != 0u;
}

${fromStatistics ? "fn statIndex(i: u32) -> u32 { return i - p.tokenShift + p.statShift; }" : ""}

struct Objective {
  loss: f32,
  dLogRatio: f32,
  dLogp: f32,
  clipped: f32,
  dual: f32,
  low: f32,
  high: f32,
}

fn objective(a: f32, ratio: f32, logp: f32) -> Objective {
  var o = Objective(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
  switch p.objective {
${objectiveCases()}
    default: {}
  }
  return o;
}

/**
 * The KL estimator of logp − refLogp and its slope in logp (src/loss/kl.ts); a "+" kind keeps its base kind's
 * value and takes the slope logp − refLogp (straight-through, verl 1dda039).
 */
fn kl(logp: f32, refLogp: f32) -> vec2f {
  let base = klBase(p.klKind % ${KL_STRAIGHT_THROUGH}u, logp, refLogp);
  return select(base, vec2f(base.x, logp - refLogp), p.klKind >= ${KL_STRAIGHT_THROUGH}u);
}

/** The base estimators: k1, |k1|, k2 and k3 (with verl's clamps when the flag is set). */
fn klBase(kind: u32, logp: f32, refLogp: f32) -> vec2f {
  let diff = logp - refLogp;
  switch kind {
    case ${KL_KIND_CODE.k1}u: {
      return vec2f(diff, 1.0);
    }
    case ${KL_KIND_CODE.abs}u: {
      return vec2f(abs(diff), sign(diff));
    }
    case ${KL_KIND_CODE.k2}u: {
      return vec2f(0.5 * diff * diff, diff);
    }
    default: {
      let clampOn = has(${LOSS_FLAGS.klClamp}u);
      var x = -diff;
      var xSlope = -1.0;
      if (clampOn && (x < -20.0 || x > 20.0)) {
        x = clamp(x, -20.0, 20.0);
        xSlope = 0.0;
      }
      let ex = exp(x);
      var value = ex - x - 1.0;
      var slope = (ex - 1.0) * xSlope;
      if (clampOn && (value < -10.0 || value > 10.0)) {
        value = clamp(value, -10.0, 10.0);
        slope = 0.0;
      }
      return vec2f(value, slope);
    }
  }
}

/**
 * TRL's importance-corrected KL and its slope, each times the ratio, kept finite where the product is (src/loss/kl.ts,
 * klTimesRatio): k3's e^x·ρ as e^(x + log ρ), and a zero estimate or slope times ρ is 0 whatever ρ.
 */
fn klTimesRatio(logp: f32, refLogp: f32, logRatio: f32, ratio: f32) -> vec2f {
  let k3 = p.klKind == ${KL_KIND_CODE.k3}u || p.klKind == ${KL_KIND_CODE["k3+"]}u;
  if (k3 && !has(${LOSS_FLAGS.klClamp}u)) {
    let x = refLogp - logp;
    let e = exp(x + logRatio);
    // k3+ keeps k3's value and takes the straight-through slope (logp − refLogp)·ρ.
    let diff = logp - refLogp;
    let plusSlope = select(diff * ratio, 0.0, diff == 0.0);
    return vec2f(e - (x + 1.0) * ratio, select(ratio - e, plusSlope, p.klKind == ${KL_KIND_CODE["k3+"]}u));
  }
  let k = kl(logp, refLogp);
  return vec2f(select(k.x * ratio, 0.0, k.x == 0.0), select(k.y * ratio, 0.0, k.y == 0.0));
}

@compute @workgroup_size(WORKGROUP)
fn main(@builtin(workgroup_id) wid: vec3u, @builtin(local_invocation_index) lid: u32) {
  let r = wid.x + wid.y * p.groupsX;
  if (r >= p.rows) {
    return;
  }
  let row = rowIn[p.rowStart + r];
  let count = row.w;
  let w = row.y;
  let first = p.tokenShift + r * p.cols;
  let sequenceLevel = p.ratioLevel != ${RATIO_LEVEL_CODE.token}u;
  // "sequence": the ratio's gradient reaches every token of the row through ρ_b (GSPO, TRL); "sequence-token":
  // each token keeps its own (verl).
  let throughRow = p.ratioLevel == ${RATIO_LEVEL_CODE.sequence}u;
  let hasOld = has(${LOSS_FLAGS.oldLogp}u);
  let hasExtra = has(${LOSS_FLAGS.kl | LOSS_FLAGS.importanceWeights | LOSS_FLAGS.entropy}u);

  var sequenceLogRatio = 0.0;
  if (sequenceLevel) {
    var acc = 0.0;
    for (var t = lid; t < p.cols; t += WORKGROUP) {
      let i = first + t;
      let x = tokenIn[i];
      if (x.z == 1.0) {
        acc += ${logpOf} - select(${logpOf}, x.y, hasOld);
      }
    }
    red[lid] = vec4f(acc, 0.0, 0.0, 0.0);
    workgroupBarrier();
    if (lid == 0u) {
      var total = 0.0;
      for (var k = 0u; k < WORKGROUP; k++) {
        total += red[k].x;
      }
      rowSum = total;
    }
    sequenceLogRatio = workgroupUniformLoad(&rowSum) / max(count, 1.0);
  }

  var s0 = vec4f(0.0);
  var s1 = vec4f(0.0);
  var entropySum = 0.0;
  var rowGrad = 0.0;
  var ratioMin = BIG;
  var ratioMax = -BIG;
  for (var t = lid; t < p.cols; t += WORKGROUP) {
    let i = first + t;
    let x = tokenIn[i];
    if (x.z != 1.0) {
      tokenOut[i] = vec4f(0.0);
      continue;
    }
    let logp = ${logpOf};
    let tokenLogRatio = logp - select(logp, x.y, hasOld);
    let rawLogRatio = select(tokenLogRatio, sequenceLogRatio, sequenceLevel);
    let inside = rawLogRatio >= p.clampLow && rawLogRatio <= p.clampHigh;
    let logRatio = clamp(rawLogRatio, p.clampLow, p.clampHigh);
    let ratio = exp(logRatio);
    let a = select(row.x, x.w, has(${LOSS_FLAGS.perTokenAdvantages}u));
    let o = objective(a, ratio, logp);
    var extra = vec4f(0.0, 1.0, 0.0, 0.0);
    if (hasExtra) {
      extra = tokenExtra[i];
    }
    let importance = select(1.0, extra.y, has(${LOSS_FLAGS.importanceWeights}u));
    // A zero advantage or weight contributes exactly 0, also where the ratio overflowed (0·∞ would be NaN).
    let contributes = a != 0.0 && importance != 0.0;
    let tokenLoss = select(0.0, o.loss * importance, contributes);
    var loss = w * tokenLoss;
    let viaRatio = select(0.0, w * importance * o.dLogRatio, inside && contributes);
    if (throughRow) {
      rowGrad += viaRatio;
    }
    var grad = select(viaRatio, 0.0, throughRow) + select(0.0, w * importance * o.dLogp, contributes);
    var klValue = 0.0;
    if (has(${LOSS_FLAGS.kl}u)) {
      var value = 0.0;
      var slope = 0.0;
      if (has(${LOSS_FLAGS.klImportanceCorrected}u)) {
        // TRL multiplies the KL by the ratio without detaching it: the ratio's own gradient comes along.
        let k = klTimesRatio(logp, extra.x, logRatio, ratio);
        value = k.x;
        slope = k.y;
        if (sequenceLevel) {
          if (inside) {
            rowGrad += w * p.klCoef * value;
          }
        } else if (inside) {
          slope += value;
        }
      } else {
        let k = kl(logp, extra.x);
        value = k.x;
        slope = k.y;
      }
      klValue = value;
      loss += w * p.klCoef * value;
      grad += w * p.klCoef * slope;
      s1.w += value;
    }
    var gradEntropy = 0.0;
    if (has(${LOSS_FLAGS.entropy}u)) {
      let entropy = ${entropyOf};
      if (has(${LOSS_FLAGS.entropyBonus}u)) {
        let bonus = row.z * p.entropyCoef;
        loss -= bonus * entropy;
        gradEntropy = -bonus;
      }
      entropySum += entropy;
    }
    tokenOut[i] = vec4f(grad, tokenLoss, klValue, gradEntropy);
    s0 += vec4f(loss, o.clipped, o.low, o.high);
    s1 += vec4f(o.dual, -select(logRatio, tokenLogRatio, sequenceLevel), ratio, 0.0);
    ratioMin = min(ratioMin, ratio);
    ratioMax = max(ratioMax, ratio);
  }

  red[3u * lid] = s0;
  red[3u * lid + 1u] = s1;
  red[3u * lid + 2u] = vec4f(entropySum, rowGrad, ratioMin, ratioMax);
  workgroupBarrier();
  if (lid == 0u) {
    var t0 = vec4f(0.0);
    var t1 = vec4f(0.0);
    var t2 = vec4f(0.0, 0.0, BIG, -BIG);
    for (var k = 0u; k < WORKGROUP; k++) {
      t0 += red[3u * k];
      t1 += red[3u * k + 1u];
      let c = red[3u * k + 2u];
      t2 = vec4f(t2.x + c.x, t2.y + c.y, min(t2.z, c.z), max(t2.w, c.w));
    }
    let at = 3u * (p.rowStart + r);
    partials[at] = t0;
    partials[at + 1u] = t1;
    partials[at + 2u] = t2;
    rowGradShared = t2.y;
  }
  // ∂loss/∂log ρ_b summed over the row reaches each valid token as 1/count of it (log ρ_b is the row's mean).
  let spread = workgroupUniformLoad(&rowGradShared);
  if (spread != 0.0) {
    for (var t = lid; t < p.cols; t += WORKGROUP) {
      let i = first + t;
      if (tokenIn[i].z == 1.0) {
        tokenOut[i].x += spread / count;
      }
    }
  }
}
`;
}

export function lossBindings({ fromStatistics }: { readonly fromStatistics: boolean }): readonly string[] {
  return ["params", "rowIn", "tokenIn", "tokenExtra", "tokenOut", "partials", ...(fromStatistics ? ["stats"] : [])];
}
