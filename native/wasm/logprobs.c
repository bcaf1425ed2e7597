/*
 * grpo-roc's token log-prob kernels for WebAssembly with 128-bit SIMD (the `wasm` backend, src/wasm/). Freestanding:
 * no libc, no allocation, no stack arrays; every pointer is an offset into the one linear memory, laid out by the
 * caller (src/wasm/kernel.ts). Built by scripts/build-wasm.sh.
 *
 * The kernels compute in float32 and sum in float64; the logarithms, the checks and the errors are the caller's
 * (JavaScript, float64), so that what a position's log-prob is made of matches the reference:
 *
 *   forward, per active position (docs/spec.md, tokenLogProbs):
 *     m = max_v z_v                      (exact; NaN if any z_v is, so that a NaN row is reported)
 *     d_v = (z_v − m)·(1/τ)              (float32; shifting before scaling keeps z/τ from overflowing)
 *     s = Σ_v e^d_v,  w = Σ_v e^d_v·d_v  (float64; w only for the entropy, and only where e^d_v > 0)
 *   then the caller forms log Σ = log s, logp = (z_token − m)/τ − log Σ, H = log Σ − w/s.
 *
 *   backward, per read position: with log p_v = (z_v − shift)·(1/τ) − logNorm (float32),
 *     ∂L/∂z_v = (−g·p_v − h·p_v·(log p_v + H))/τ,  plus g/τ at the sampled token,
 *   and the row's max and Σ p_v (float64) for the caller's checks of saved statistics.
 *
 * Sums: each lane adds SUM_BLOCK/4 float32 terms (each ≤ 1 in the forward pass), then the block's lanes are added
 * into float64 accumulators: the float32 part's relative error is ≤ 16·2^-24 ≈ 1e-6 of the block, far inside the
 * float32 tolerance (1e-5), and the float64 part does not grow with the vocabulary (2^20 entries included).
 */
#include <wasm_simd128.h>

typedef unsigned char u8;

#define SUM_BLOCK 64 /* floats per float32 partial sum: 16 vectors of 4 lanes */

/*
 * The reduction and polynomial exp4 and exp4_nonpositive share: for x in their range, e^r (r = x − n·ln 2) and n as
 * an integer in *n_out.
 */
static inline v128_t exp_reduced(v128_t x, v128_t *n_out) {
  const v128_t magic = wasm_f32x4_splat(12582912.0f); /* 1.5·2^23 */
  v128_t shifted = wasm_f32x4_add(wasm_f32x4_mul(x, wasm_f32x4_splat(1.44269504088896341f)), magic);
  v128_t n = wasm_f32x4_sub(shifted, magic);
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, wasm_f32x4_splat(0.693359375f)));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, wasm_f32x4_splat(-2.12194440e-4f)));
  v128_t p = wasm_f32x4_splat(1.9875691500e-4f);
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.3981999507e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(8.3334519073e-3f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(4.1665795894e-2f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(1.6666665459e-1f));
  p = wasm_f32x4_add(wasm_f32x4_mul(p, r), wasm_f32x4_splat(5.0000001201e-1f));
  *n_out = wasm_i32x4_sub(shifted, magic); /* the bit patterns' difference: n as an integer */
  return wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(p, wasm_f32x4_mul(r, r)), r), wasm_f32x4_splat(1.0f));
}

/*
 * e^x for float32 x, four lanes at once, within 1 ulp over the normal results (test/wasm-kernel.test.ts measures it
 * against Math.exp over the float32 range), within one unit of the smallest subnormal (2^-149) below e^-87.3:
 *   x is clamped to [−110, 89], beyond which e^x is 0 or +Infinity in float32 anyway (see the last step);
 *   n = round(x·log2 e), by adding 1.5·2^23: the float32 sum's low mantissa bits are then n (rounded to nearest),
 *   and n's float value is that sum less 1.5·2^23, exactly (cheaper than f32x4.nearest and a saturating conversion);
 *   r = x − n·ln2_hi − n·ln2_lo (Cody–Waite: ln2_hi = 0.693359375 has 9 significant bits, so n·ln2_hi is exact for
 *   |n| ≤ 2^15), |r| ≤ ln2/2 plus an ulp of x·log2 e;
 *   e^r = 1 + r + r²·P(r), P Cephes's degree-5 minimax polynomial for expf;
 *   e^x = e^r·2^n1·2^n2 with n1 = n >> 1 and n2 = n − n1, each within float32's normal exponents for n in
 *   [−159, 129], so that subnormal results are rounded once (by the last product), results below 2^-150 come out 0
 *   and results above the largest float32 +Infinity, both by that product's own rounding: −Infinity gives 0,
 *   +Infinity gives +Infinity, and NaN stays NaN (pmin/pmax keep their first operand when the comparison fails).
 */
static inline v128_t exp4(v128_t x) {
  v128_t clamped = wasm_f32x4_pmin(wasm_f32x4_pmax(x, wasm_f32x4_splat(-110.0f)), wasm_f32x4_splat(89.0f));
  v128_t ni;
  v128_t y = exp_reduced(clamped, &ni);
  v128_t n1 = wasm_i32x4_shr(ni, 1);
  v128_t n2 = wasm_i32x4_sub(ni, n1);
  v128_t bias = wasm_i32x4_splat(127);
  v128_t scale1 = wasm_i32x4_shl(wasm_i32x4_add(n1, bias), 23);
  v128_t scale2 = wasm_i32x4_shl(wasm_i32x4_add(n2, bias), 23);
  return wasm_f32x4_mul(wasm_f32x4_mul(y, scale1), scale2);
}

/*
 * e^x for x ≤ 0 (the statistics' e^d, d = (z − max)/τ, and the gradient's p = e^(log p)), cheaper than exp4: e^x is
 * at least 2^-126 (a normal float32) over [−87.33, 0], so one scaling by 2^n does, and the results below, subnormal
 * in float32, are flushed to 0 (to a sum of terms ≥ e^0 = 1 they add less than 2^-126 each). Within 1 ulp of e^x
 * over [−87.33, 88.37], as exp4, from the same reduction and polynomial; exactly 0 below −87.33, at −Infinity and for
 * NaN (the callers skip rows holding NaN before they get here); +Infinity above 88.37 (where the one scaling would
 * need 2^128), so that a log-prob far above 0, under saved statistics that are not its row's, makes the row's
 * probabilities sum to +Infinity, which the caller refuses.
 */
static inline v128_t exp4_nonpositive(v128_t x) {
  const v128_t lowest = wasm_f32x4_splat(-87.33f);
  v128_t normal = wasm_f32x4_ge(x, lowest);
  /* Above 88.37, n = 128: the scale's exponent field is 255, +Infinity. */
  v128_t clamped = wasm_f32x4_pmin(wasm_f32x4_pmax(x, lowest), wasm_f32x4_splat(88.5f));
  v128_t n;
  v128_t y = exp_reduced(clamped, &n);
  v128_t scale = wasm_i32x4_shl(wasm_i32x4_add(n, wasm_i32x4_splat(127)), 23);
  return wasm_v128_and(wasm_f32x4_mul(y, scale), normal);
}

/* Loads entries [v, v + 4) of a row, the lanes at or beyond `end` set to `fill`. */
static inline v128_t load_tail(const float *row, int v, int end, float fill) {
  float a = v < end ? row[v] : fill;
  float b = v + 1 < end ? row[v + 1] : fill;
  float c = v + 2 < end ? row[v + 2] : fill;
  float d = v + 3 < end ? row[v + 3] : fill;
  return wasm_f32x4_make(a, b, c, d);
}

static inline double lanes_sum_f64(v128_t x) {
  v128_t low = wasm_f64x2_promote_low_f32x4(x);
  v128_t high = wasm_f64x2_promote_low_f32x4(wasm_i32x4_shuffle(x, x, 2, 3, 0, 1));
  v128_t sum = wasm_f64x2_add(low, high);
  return wasm_f64x2_extract_lane(sum, 0) + wasm_f64x2_extract_lane(sum, 1);
}

/*
 * The largest of four lanes, NaN if `nan` (a lane mask of NaN entries seen) has any lane set. f32x4.pmax (a < b ? b :
 * a) is one instruction where f32x4.max, which propagates NaN itself, is several; the NaN mask costs one compare.
 */
static inline float lanes_max(v128_t m, v128_t nan) {
  m = wasm_f32x4_pmax(m, wasm_i32x4_shuffle(m, m, 2, 3, 0, 1));
  m = wasm_f32x4_pmax(m, wasm_i32x4_shuffle(m, m, 1, 0, 3, 2));
  return wasm_v128_any_true(nan) ? __builtin_nanf("") : wasm_f32x4_extract_lane(m, 0);
}

/* The largest entry of a row; NaN if any entry is NaN. */
static float row_max(const float *row, int vocab) {
  v128_t m = wasm_f32x4_splat(-__builtin_inff()), nan = wasm_i32x4_splat(0);
  int v = 0;
  for (; v + 4 <= vocab; v += 4) {
    v128_t z = wasm_v128_load(row + v);
    m = wasm_f32x4_pmax(m, z);
    nan = wasm_v128_or(nan, wasm_f32x4_ne(z, z));
  }
  if (v < vocab) {
    v128_t z = load_tail(row, v, vocab, -__builtin_inff());
    m = wasm_f32x4_pmax(m, z);
    nan = wasm_v128_or(nan, wasm_f32x4_ne(z, z));
  }
  return lanes_max(m, nan);
}

/*
 * s = Σ_v e^d_v and (with_entropy) w = Σ_v e^d_v·d_v over one row, d_v = (z_v − m)/τ, in blocks of SUM_BLOCK (see the
 * top); e^d·d counts only where e^d > 0 (d = −Infinity would give 0·∞). Where `keep` is not NULL, e^d_v is also
 * written to keep[v] (forward_backward's gradient row). Inlined with constant with_entropy and keep, once each way.
 */
/* One vector's e^d into the block's sums (and e^d·d, where e^d > 0); returns e^d. */
static inline v128_t sum_step(v128_t z, v128_t shift, v128_t inv_t, int with_entropy, v128_t *block_sum,
                              v128_t *block_weighted) {
  v128_t d = wasm_f32x4_mul(wasm_f32x4_sub(z, shift), inv_t);
  v128_t e = exp4_nonpositive(d);
  *block_sum = wasm_f32x4_add(*block_sum, e);
  if (with_entropy)
    *block_weighted = wasm_f32x4_add(
        *block_weighted, wasm_v128_and(wasm_f32x4_mul(e, d), wasm_f32x4_gt(e, wasm_f32x4_splat(0.0f))));
  return e;
}

static inline void row_sums(const float *row, int vocab, v128_t shift, v128_t inv_t, int with_entropy, float *keep,
                            double *sum_out, double *weighted_out) {
  double sum = 0, weighted = 0;
  int v = 0;
  while (v < vocab) {
    int end = v + SUM_BLOCK <= vocab ? v + SUM_BLOCK : vocab;
    v128_t block_sum = wasm_f32x4_splat(0.0f), block_weighted = wasm_f32x4_splat(0.0f);
    for (; v + 4 <= end; v += 4) {
      v128_t e = sum_step(wasm_v128_load(row + v), shift, inv_t, with_entropy, &block_sum, &block_weighted);
      if (keep) wasm_v128_store(keep + v, e);
    }
    if (v < end) {
      /* A tail of 1 to 3 entries reads −Infinity beyond the row: e^d = 0 there. */
      v128_t z = load_tail(row, v, end, -__builtin_inff());
      v128_t e = sum_step(z, shift, inv_t, with_entropy, &block_sum, &block_weighted);
      if (keep) { /* lane by lane: a local array would live on the stack, which the threads share */
        keep[v] = wasm_f32x4_extract_lane(e, 0);
        if (v + 1 < end) keep[v + 1] = wasm_f32x4_extract_lane(e, 1);
        if (v + 2 < end) keep[v + 2] = wasm_f32x4_extract_lane(e, 2);
      }
    }
    v = end;
    sum += lanes_sum_f64(block_sum);
    if (with_entropy) weighted += lanes_sum_f64(block_weighted);
  }
  *sum_out = sum;
  *weighted_out = weighted;
}

/*
 * The forward statistics of `positions` rows of `vocab` float32 logits: for each position with active[i] = 1,
 * out_max[i] = m, out_sum[i] = s and (with_entropy) out_weighted[i] = w, as defined at the top. A row whose max is
 * not finite (NaN, +Infinity, or every entry −Infinity) gets its max and s = w = 0: the caller reports it.
 */
__attribute__((export_name("forward_stats"))) void forward_stats(const float *logits, int positions, int vocab,
                                                                  float inverse_temperature, int with_entropy,
                                                                  const u8 *active, float *out_max, double *out_sum,
                                                                  double *out_weighted) {
  const v128_t inv_t = wasm_f32x4_splat(inverse_temperature);
  for (int i = 0; i < positions; i++) {
    if (!active[i]) continue;
    const float *row = logits + (unsigned)i * (unsigned)vocab;
    float m = row_max(row, vocab);
    out_max[i] = m;
    out_sum[i] = 0;
    out_weighted[i] = 0;
    if (!(m - m == 0.0f)) continue; /* m − m is 0 for every finite m, NaN otherwise */
    /* Two copies, with and without the entropy's sum, each inlined with its constant. */
    if (with_entropy)
      row_sums(row, vocab, wasm_f32x4_splat(m), inv_t, 1, 0, &out_sum[i], &out_weighted[i]);
    else
      row_sums(row, vocab, wasm_f32x4_splat(m), inv_t, 0, 0, &out_sum[i], &out_weighted[i]);
  }
}

/*
 * One vector of the gradient: (−g·p − h·p·(log p + H))/τ, the entropy term 0 where p = 0; `with_entropy` is a
 * constant at each call, so the rows without an entropy gradient (h = 0) skip its four operations.
 */
static inline v128_t gradient4(v128_t z, v128_t shift, v128_t inv_t, v128_t log_norm, v128_t g, v128_t h,
                               v128_t entropy, v128_t *p_out, int with_entropy) {
  v128_t log_p = wasm_f32x4_sub(wasm_f32x4_mul(wasm_f32x4_sub(z, shift), inv_t), log_norm);
  v128_t p = exp4_nonpositive(log_p);
  *p_out = p;
  v128_t upstream = wasm_f32x4_mul(g, p);
  if (with_entropy) {
    v128_t entropy_term = wasm_f32x4_mul(wasm_f32x4_mul(h, p), wasm_f32x4_add(log_p, entropy));
    upstream = wasm_f32x4_add(upstream, wasm_v128_and(entropy_term, wasm_f32x4_gt(p, wasm_f32x4_splat(0.0f))));
  }
  return wasm_f32x4_mul(wasm_f32x4_neg(upstream), inv_t);
}

/* One row of the gradient; see backward. Returns Σ p_v and sets *row_max. */
static inline double gradient_row(const float *row, float *out, int vocab, v128_t s, v128_t inv_t, v128_t ln, v128_t g,
                                  v128_t h, v128_t H, int with_entropy, float *row_max) {
  v128_t m = wasm_f32x4_splat(-__builtin_inff()), nan = wasm_i32x4_splat(0);
  double probability_sum = 0;
  int v = 0;
  while (v < vocab) {
    int end = v + SUM_BLOCK <= vocab ? v + SUM_BLOCK : vocab;
    v128_t block = wasm_f32x4_splat(0.0f), p;
    for (; v + 4 <= end; v += 4) {
      v128_t z = wasm_v128_load(row + v);
      m = wasm_f32x4_pmax(m, z);
      nan = wasm_v128_or(nan, wasm_f32x4_ne(z, z));
      wasm_v128_store(out + v, gradient4(z, s, inv_t, ln, g, h, H, &p, with_entropy));
      block = wasm_f32x4_add(block, p);
    }
    for (; v < end; v++) {
      v128_t z = wasm_f32x4_splat(row[v]);
      m = wasm_f32x4_pmax(m, z);
      nan = wasm_v128_or(nan, wasm_f32x4_ne(z, z));
      v128_t one = gradient4(z, s, inv_t, ln, g, h, H, &p, with_entropy);
      out[v] = wasm_f32x4_extract_lane(one, 0);
      block = wasm_f32x4_add(block, wasm_v128_and(p, wasm_i32x4_make(-1, 0, 0, 0)));
    }
    probability_sum += lanes_sum_f64(block);
  }
  *row_max = lanes_max(m, nan);
  return probability_sum;
}

/*
 * The gradient into `positions` rows of logits: for each position with reads[i] = 1, the row of `grad` from
 * shift[i], log_norm[i], grad_logp[i], grad_entropy[i] and entropy[i] (see the top), g/τ added at tokens[i]; every
 * other row is zeroed. Also out_max[i] (the row's max, NaN-propagating) and out_probability_sum[i] = Σ p_v in
 * float64, which the caller checks when the statistics were saved rather than computed. grad may not alias logits.
 */
__attribute__((export_name("backward"))) void backward(const float *logits, float *grad, int positions, int vocab,
                                                        float inverse_temperature, const u8 *reads,
                                                        const float *shift, const float *log_norm,
                                                        const float *grad_logp, const float *grad_entropy,
                                                        const float *entropy, const int *tokens, float *out_max,
                                                        double *out_probability_sum) {
  const v128_t inv_t = wasm_f32x4_splat(inverse_temperature);
  for (int i = 0; i < positions; i++) {
    const float *row = logits + (unsigned)i * (unsigned)vocab;
    float *out = grad + (unsigned)i * (unsigned)vocab;
    if (!reads[i]) {
      __builtin_memset(out, 0, (unsigned long)vocab * sizeof(float));
      continue;
    }
    const v128_t s = wasm_f32x4_splat(shift[i]), ln = wasm_f32x4_splat(log_norm[i]);
    const v128_t g = wasm_f32x4_splat(grad_logp[i]), h = wasm_f32x4_splat(grad_entropy[i]);
    const v128_t H = wasm_f32x4_splat(entropy[i]);
    /* Two copies of the row loop, with and without the entropy term, each inlined with its constant. */
    double probability_sum =
        grad_entropy[i] != 0.0f ? gradient_row(row, out, vocab, s, inv_t, ln, g, h, H, 1, &out_max[i])
                                : gradient_row(row, out, vocab, s, inv_t, ln, g, h, H, 0, &out_max[i]);
    out_probability_sum[i] = probability_sum;
    /* The caller checked the ids; the guard keeps a bad one from writing outside the row all the same. */
    if ((unsigned)tokens[i] < (unsigned)vocab) out[tokens[i]] += grad_logp[i] * inverse_temperature;
  }
}

/*
 * Scalar float64 e^x and log x, once per position (the predicted loss gradient below), where libm is not at hand:
 *   e^x = 2^n·e^r, n = round(x/ln 2), r = x − n·ln2 (Cody–Waite, ln2_hi with 32 significant bits), e^r by its Taylor
 *     series to r^13/13! (|r| ≤ 0.35: the next term is below 2^-60 of the sum); 0 below −745, +Infinity above 709.78;
 *   log x = k·ln 2 + 2·atanh(u), x = 2^k·f with f in [√½, √2), u = (f − 1)/(f + 1), |u| ≤ 0.172, atanh(u) by its
 *     series to u^23 (the next term is below 2^-58 of the sum); for normal, finite x > 0 only (the caller's sums ≥ 1).
 * Both are within a few ulps of float64: what they decide (a clip branch) is checked against the reference's.
 */
static double exp_f64(double x) {
  if (!(x > -745.0)) return x != x ? x : 0.0;
  if (x > 709.78) return __builtin_inf();
  double n = __builtin_nearbyint(x * 1.4426950408889634);
  double r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10;
  double term = 1.0, sum = 1.0;
  for (int k = 1; k <= 13; k++) {
    term *= r / k;
    sum += term;
  }
  long long e = (long long)n;
  /* 2^n as two factors, each a normal float64, for n in [−1075, 1024]. */
  long long e1 = e / 2, e2 = e - e1;
  union { unsigned long long bits; double value; } s1 = {(unsigned long long)(e1 + 1023) << 52},
                                                   s2 = {(unsigned long long)(e2 + 1023) << 52};
  return sum * s1.value * s2.value;
}

static double log_f64(double x) {
  union { double value; unsigned long long bits; } v = {x};
  long long k = (long long)((v.bits >> 52) & 0x7ff) - 1023;
  v.bits = (v.bits & 0x000fffffffffffffULL) | 0x3ff0000000000000ULL; /* f in [1, 2) */
  double f = v.value;
  if (f > 1.4142135623730951) {
    f *= 0.5;
    k += 1;
  }
  double u = (f - 1.0) / (f + 1.0), u2 = u * u, term = u, sum = u;
  for (int j = 3; j <= 23; j += 2) {
    term *= u2;
    sum += term / j;
  }
  return k * 0.6931471805599453 + 2.0 * sum;
}

/*
 * The loss gradient at one position predicted from its own values, for the clip objective at the token level
 * (src/loss/clip-term.ts and src/loss/policy-loss.ts, in float64): log ρ = clamp(logp − old, lo, hi), ρ = e^log ρ,
 * ∂loss/∂logp = w·∂ℓ/∂log ρ inside the clamp (0 outside), ℓ = max(−Aρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high)) with ρ
 * capped at δ in the unclipped branch and the loss of A < 0 bounded at −A·c (dual clip). params: 1 − ε_low,
 * 1 + ε_high, δ, c, lo, hi (±Infinity where an option is off), then 1 where there are no old log-probs (ρ = 1).
 */
static double clip_gradient(double logp, double old, double a, double w, const double *params) {
  double raw = params[7] != 0.0 ? 0.0 : logp - old;
  if (!(raw >= params[4] && raw <= params[5])) return 0.0;
  double ratio = exp_f64(raw);
  double low = params[0], high = params[1];
  double clipped_ratio = ratio < low ? low : ratio > high ? high : ratio;
  int capped = ratio > params[2];
  double unclipped = -a * (capped ? params[2] : ratio);
  double clipped = -a * clipped_ratio;
  int clipped_branch = clipped > unclipped;
  double loss = clipped_branch ? clipped : unclipped;
  double d_log_ratio = (clipped_branch ? clipped_ratio == ratio : !capped) ? -a * ratio : 0.0;
  if (a < 0 && loss > -a * params[3]) d_log_ratio = 0.0;
  return w * d_log_ratio;
}

/*
 * The forward statistics (as forward_stats) and, in the same visit of each row, its gradient under a loss gradient
 * predicted from the position's own values (clip_gradient, at the log-prob these statistics give), so that the
 * logits are read from memory once: the row's e^d are kept in its gradient row between the two. h[i] is the
 * predicted ∂loss/∂entropy (the entropy bonus's, a constant per position). out_g[i] is the gradient predicted (in
 * float64; the row uses it rounded to float32), which the caller compares with the reference's loss gradient before
 * it keeps the rows. Rows with active[i] = 0,
 * or a predicted gradient of 0 (g = h = 0), are zeroed; a row whose max is not finite gets s = w = 0 (reported by
 * the caller). params: clip_gradient's six, 1/τ in float64, clip_gradient's last, then 1 where the loss gradient
 * is given rather than predicted: g = weight[i] (tokenLogProbsBackward without saved statistics).
 */
__attribute__((export_name("forward_backward"))) void forward_backward(
    const float *logits, float *grad, int positions, int vocab, float inverse_temperature, int with_entropy,
    const u8 *active, const int *tokens, const double *old_logp, const double *advantage, const double *weight,
    const float *grad_entropy, const double *params, float *out_max, double *out_sum, double *out_weighted,
    double *out_g) {
  const v128_t inv_t = wasm_f32x4_splat(inverse_temperature);
  for (int i = 0; i < positions; i++) {
    const float *row = logits + (unsigned)i * (unsigned)vocab;
    float *out = grad + (unsigned)i * (unsigned)vocab;
    out_g[i] = 0;
    if (!active[i]) {
      __builtin_memset(out, 0, (unsigned long)vocab * sizeof(float));
      continue;
    }
    float m = row_max(row, vocab);
    out_max[i] = m;
    out_sum[i] = 0;
    out_weighted[i] = 0;
    if (!(m - m == 0.0f)) continue;
    const v128_t shift = wasm_f32x4_splat(m);
    /* Into out_sum and out_weighted: the address of a local would put it on the stack, which the threads share. */
    if (with_entropy)
      row_sums(row, vocab, shift, inv_t, 1, out, &out_sum[i], &out_weighted[i]);
    else
      row_sums(row, vocab, shift, inv_t, 0, out, &out_sum[i], &out_weighted[i]);
    double sum = out_sum[i], weighted = out_weighted[i];
    double log_sum = log_f64(sum);
    unsigned token = (unsigned)tokens[i] < (unsigned)vocab ? (unsigned)tokens[i] : 0; /* the caller checked the ids */
    double logp = ((double)row[token] - (double)m) * params[6] - log_sum;
    double predicted = params[8] != 0.0 ? weight[i] : clip_gradient(logp, old_logp[i], advantage[i], weight[i], params);
    float g = (float)predicted, h = grad_entropy[i];
    out_g[i] = predicted;
    if (g == 0.0f && h == 0.0f) {
      __builtin_memset(out, 0, (unsigned long)vocab * sizeof(float));
      continue;
    }
    float inverse_sum = (float)(1.0 / sum);
    int v = 0;
    if (h == 0.0f) {
      /* −g·p/τ, p = e^d/s: one product per entry. */
      const v128_t scale = wasm_f32x4_splat(-g * inverse_temperature * inverse_sum);
      for (; v + 4 <= vocab; v += 4) wasm_v128_store(out + v, wasm_f32x4_mul(wasm_v128_load(out + v), scale));
      for (; v < vocab; v++) out[v] *= -g * inverse_temperature * inverse_sum;
    } else {
      /* (−g·p − h·p·(log p + H))/τ, log p = d − log s, the entropy term 0 where p = 0. */
      const float entropy = (float)(log_sum - weighted / sum);
      const v128_t ln = wasm_f32x4_splat((float)log_sum), is = wasm_f32x4_splat(inverse_sum);
      const v128_t gv = wasm_f32x4_splat(g), hv = wasm_f32x4_splat(h), H = wasm_f32x4_splat(entropy);
      for (; v + 4 <= vocab; v += 4) {
        v128_t p = wasm_f32x4_mul(wasm_v128_load(out + v), is);
        v128_t log_p = wasm_f32x4_sub(wasm_f32x4_mul(wasm_f32x4_sub(wasm_v128_load(row + v), shift), inv_t), ln);
        v128_t upstream = wasm_f32x4_mul(gv, p);
        v128_t entropy_term = wasm_f32x4_mul(wasm_f32x4_mul(hv, p), wasm_f32x4_add(log_p, H));
        upstream = wasm_f32x4_add(upstream, wasm_v128_and(entropy_term, wasm_f32x4_gt(p, wasm_f32x4_splat(0.0f))));
        wasm_v128_store(out + v, wasm_f32x4_mul(wasm_f32x4_neg(upstream), inv_t));
      }
      for (; v < vocab; v++) {
        float p = out[v] * inverse_sum;
        float log_p = (row[v] - m) * inverse_temperature - (float)log_sum;
        float upstream = g * p + (p > 0.0f ? h * p * (log_p + entropy) : 0.0f);
        out[v] = -upstream * inverse_temperature;
      }
    }
    out[token] += g * inverse_temperature;
  }
}

/* e^x of n float32 values x ≤ 0 (exp4_nonpositive), for the tests of its accuracy. */
__attribute__((export_name("exp_nonpositive_f32"))) void exp_nonpositive_f32(const float *in, float *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, exp4_nonpositive(wasm_v128_load(in + i)));
  for (; i < n; i++) out[i] = wasm_f32x4_extract_lane(exp4_nonpositive(wasm_f32x4_splat(in[i])), 0);
}

/* e^x of n float32 values (exp4, four at a time): for the tests of its accuracy. */
__attribute__((export_name("exp_f32"))) void exp_f32(const float *in, float *out, int n) {
  int i = 0;
  for (; i + 4 <= n; i += 4) wasm_v128_store(out + i, exp4(wasm_v128_load(in + i)));
  for (; i < n; i++) out[i] = wasm_f32x4_extract_lane(exp4(wasm_f32x4_splat(in[i])), 0);
}
