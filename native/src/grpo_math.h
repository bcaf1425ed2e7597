// The per-element and per-token math of the CUDA kernels, as __host__ __device__ functions: the kernels call
// them on the GPU, and the host executor (engine.cu, "hostReference") calls the very same functions on the CPU,
// thread by emulated thread, so that CI machines without a GPU check this code against the TypeScript reference.
// Only the launch wrappers, the warp shuffles and the memory transfers are left that a CPU cannot run.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#ifdef __CUDACC__
#include <vector_types.h>
#define GR_HD __host__ __device__ __forceinline__
#define GR_UNROLL _Pragma("unroll")
#else
#define GR_UNROLL
#define GR_HD inline
struct alignas(16) uint4 {
  unsigned int x, y, z, w;
};
#endif

namespace grpo {

// ---------------------------------------------------------------------------------------------------------------
// bfloat16: the upper 16 bits of a float32. Widening is exact; narrowing rounds to nearest, ties to even.

GR_HD float bits_to_float(uint32_t u) {
#ifdef __CUDA_ARCH__
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
#endif
}

GR_HD uint32_t float_to_bits(float f) {
#ifdef __CUDA_ARCH__
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
#endif
}

GR_HD float bf16_to_float(uint16_t b) { return bits_to_float(static_cast<uint32_t>(b) << 16); }

GR_HD uint16_t float_to_bf16(float f) {
  uint32_t u = float_to_bits(f);
  // NaN: a quiet NaN of the same sign (adding the rounding bias could carry a NaN's payload into +-Infinity).
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>(((u >> 16) & 0x8000u) | 0x7fc0u);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

/** A 64-bit mixer (MurmurHash3's finaliser): the benchmark's and the self-check's data, the same on GPU and CPU. */
GR_HD uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return x;
}

/** Logits are float32 (float) or bfloat16 (uint16_t bits); every kernel computes in float32. */
GR_HD float to_float(float x) { return x; }
GR_HD float to_float(uint16_t x) { return bf16_to_float(x); }
GR_HD void store(float* out, float x) { *out = x; }
GR_HD void store(uint16_t* out, float x) { *out = float_to_bf16(x); }

/**
 * e^x for the per-logit work (x <= 0 there): the hardware's 2^x of x·log2(e), two instructions on the GPU where
 * the accurate expf takes about ten, which would leave a bfloat16 pass short of memory bandwidth. CUDA documents
 * __expf to within 2 + 1.2·|x| ulp; for the terms that count (x > -16) that is under 2e-6 relative, well inside
 * the float32 tolerances (1e-5). The host executor rounds x·log2(e) to float32 the same way.
 */
GR_HD float fast_exp(float x) {
#ifdef __CUDA_ARCH__
  return __expf(x);
#else
  return exp2f(x * 1.44269504f);
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// Online logsumexp with entropy, kept so that (x - max) - log sum stays exact at any magnitude of the logits x: the
// running max m is over the logits as given (not divided by tau, so that x/tau never overflows), d = (x - m)/tau <= 0,
// s = sum e^d and w = sum e^d d. Then log p = (x - m)/tau - log s, the entropy is H = log s - w / s, and the
// logsumexp of x/tau is m/tau + log s, formed in double by the callers: m ("shift") and log s ("log sum") are
// carried apart, because in float32 the sum of a logit of 3e38 and log 4 is the logit. A NaN or +Infinity logit
// makes the state bad (s = NaN): the row's logsumexp is then NaN, as the reference reports it ("holds NaN or
// +Infinity"); a row of -Infinity only is empty (m = -Infinity) and gives log s = -Infinity ("every logit is
// -Infinity"). Terms with e^d = 0 (-Infinity logits, or logits so far below the max that e^d underflows; their d
// may be -Infinity) add nothing: 0 * Infinity must not reach a sum.

struct Stats {
  float m;
  float s;
  float w;
};

GR_HD Stats stats_empty() { return Stats{-INFINITY, 0.f, 0.f}; }

GR_HD bool stats_bad(const Stats& a) { return a.s != a.s; }

/**
 * (s, w) relative to a max moved up by -delta * tau (delta <= 0, possibly -Infinity), with r = e^delta: nothing left
 * when r underflows (or nothing was there).
 */
GR_HD void rescale(float& s, float& w, float delta, float r) {
  if (delta == 0.f) return;
  if (s == 0.f || r == 0.f) {
    s = 0.f;
    w = 0.f;
    return;
  }
  w = r * (w + delta * s);
  s = s * r;
}

GR_HD void stats_add(Stats& a, float x, float inv_t) {
  if (stats_bad(a)) return;
  if (x != x || x == INFINITY) {
    a.s = NAN;
    return;
  }
  if (x == -INFINITY) return;
  if (x > a.m) {
    if (a.m == -INFINITY) {
      a.s = 0.f;
      a.w = 0.f;
    } else {
      const float delta = (a.m - x) * inv_t;
      rescale(a.s, a.w, delta, fast_exp(delta));
    }
    a.s += 1.f;
    a.m = x;
  } else {
    const float d = (x - a.m) * inv_t;
    const float e = fast_exp(d);
    a.s += e;
    a.w += e > 0.f ? e * d : 0.f;
  }
}

/**
 * K logits at once (one 16-byte load): the state is rescaled at most once, to the largest of them, and then every
 * logit is added without a branch. The same sums as K calls of stats_add, up to rounding; a NaN or +Infinity among
 * them makes the state bad, as there.
 */
template <int K>
GR_HD void stats_add_vector(Stats& a, const float (&x)[K], float inv_t) {
  if (stats_bad(a)) return;
  float top = -INFINITY;
  bool bad = false;
GR_UNROLL
  for (int j = 0; j < K; ++j) {
    bad |= (x[j] != x[j]) | (x[j] == INFINITY);
    top = top > x[j] ? top : x[j];
  }
  if (bad) {
    a.s = NAN;
    return;
  }
  if (top == -INFINITY) return;
  if (top > a.m) {
    if (a.m == -INFINITY) {
      a.s = 0.f;
      a.w = 0.f;
    } else {
      const float delta = (a.m - top) * inv_t;
      rescale(a.s, a.w, delta, fast_exp(delta));
    }
    a.m = top;
  }
GR_UNROLL
  for (int j = 0; j < K; ++j) {
    const float d = (x[j] - a.m) * inv_t;
    const float e = fast_exp(d);
    a.s += e;
    a.w += e > 0.f ? e * d : 0.f;
  }
}

/**
 * Symmetric in its arguments up to rounding. nvcc contracts the rescaling's products into FMAs, so the two lanes of
 * a butterfly exchange can differ in the last bit on the GPU (not on the CPU); only lane 0's result is used.
 */
GR_HD Stats stats_merge(const Stats& a, const Stats& b, float inv_t) {
  if (stats_bad(a) || stats_bad(b)) return Stats{0.f, NAN, 0.f};
  if (a.m == -INFINITY) return b;
  if (b.m == -INFINITY) return a;
  const float m = a.m > b.m ? a.m : b.m;
  Stats ra = a, rb = b;
  const float da = (a.m - m) * inv_t;
  const float db = (b.m - m) * inv_t;
  rescale(ra.s, ra.w, da, expf(da));
  rescale(rb.s, rb.w, db, expf(db));
  return Stats{m, ra.s + rb.s, ra.w + rb.w};
}

/** The row's shift (its largest logit), log sum and entropy; see above for the bad and empty rows. */
GR_HD void stats_finish(const Stats& a, float& shift, float& log_sum, float& entropy) {
  shift = a.m;
  if (stats_bad(a)) {
    log_sum = NAN;
    entropy = NAN;
    return;
  }
  if (a.m == -INFINITY) {
    log_sum = -INFINITY;
    entropy = NAN;
    return;
  }
  log_sum = logf(a.s);
  entropy = log_sum - a.w / a.s;
}

// ---------------------------------------------------------------------------------------------------------------
// How a block's threads split one row of the vocabulary: a scalar head up to the first 16-byte boundary, 16-byte
// vectors (4 float32 or 8 bfloat16 logits) strided over the threads, and a scalar tail. Rows of any length and
// alignment work; the vectors make the loads coalesce into 16-byte transactions.

template <typename T>
struct Partition {
  static constexpr int kVec = 16 / sizeof(T);
  int64_t head;
  int64_t vectors;
  int64_t tail_start;
};

template <typename T>
GR_HD Partition<T> partition(const T* row, int64_t vocab) {
  Partition<T> p;
  const uint64_t misalignment = reinterpret_cast<uint64_t>(row) % 16;
  int64_t head = misalignment == 0 ? 0 : static_cast<int64_t>((16 - misalignment) / sizeof(T));
  if (head > vocab) head = vocab;
  p.head = head;
  p.vectors = (vocab - head) / Partition<T>::kVec;
  p.tail_start = head + p.vectors * Partition<T>::kVec;
  return p;
}

template <typename T>
union Vec {
  uint4 raw;
  T e[16 / sizeof(T)];
};

/** One thread's share of a row's statistics (thread t of n), in the order the GPU thread visits it. */
template <typename T>
GR_HD Stats thread_stats(const T* row, int64_t vocab, float inv_t, int t, int n) {
  Stats s = stats_empty();
  const Partition<T> p = partition(row, vocab);
  for (int64_t v = t; v < p.head; v += n) stats_add(s, to_float(row[v]), inv_t);
  const uint4* vectors = reinterpret_cast<const uint4*>(row + p.head);
  for (int64_t k = t; k < p.vectors; k += n) {
    Vec<T> q;
    q.raw = vectors[k];
    float x[Partition<T>::kVec];
GR_UNROLL
    for (int j = 0; j < Partition<T>::kVec; ++j) x[j] = to_float(q.e[j]);
    stats_add_vector(s, x, inv_t);
  }
  for (int64_t v = p.tail_start + t; v < vocab; v += n) stats_add(s, to_float(row[v]), inv_t);
  return s;
}

/** A row's statistics as the gradient reads them: log p_v = (x_v - shift)/tau - log_sum. */
struct RowStats {
  float shift;
  float log_sum;
  float entropy;
};

/**
 * What one thread's share of a gradient row saw, for a pass over saved statistics to check that they describe the
 * logits: bits (kCheckInvalid: a NaN or +Infinity logit; kCheckSeen: a logit that is not -Infinity) and the sum of
 * the probabilities it computed (1 over the row when the statistics are the row's).
 */
struct RowCheck {
  unsigned bits;
  float probability_sum;
};
enum CheckBits : unsigned { kCheckInvalid = 1, kCheckEmpty = 2, kCheckMismatch = 4, kCheckSeen = 16 };
/** How far a row's probabilities may sum from 1 before its saved statistics are taken for another row's. */
constexpr float kMismatchTolerance = 1e-3f;

GR_HD void check_add(RowCheck& c, float x, float p) {
  c.bits |= (x != x || x == INFINITY) ? kCheckInvalid : 0u;
  c.bits |= x != -INFINITY ? kCheckSeen : 0u;
  c.probability_sum += p;
}

/** The flags of a row from its threads' merged check (kCheckInvalid, kCheckEmpty, kCheckMismatch, or 0). */
GR_HD unsigned check_flags(const RowCheck& c) {
  if (c.bits & kCheckInvalid) return kCheckInvalid;
  if (!(c.bits & kCheckSeen)) return kCheckEmpty;
  const float off = c.probability_sum - 1.f;
  return (off <= kMismatchTolerance && off >= -kMismatchTolerance) ? 0u : kCheckMismatch;
}

/**
 * dL/dz_v of L = g logp + h H, divided by the temperature: (g (1[v = token] - p) - h p (log p + H)) / tau, the
 * expression of tokenLogProbsBackward in the reference, with log p from the shift and the log sum.
 */
GR_HD float grad_element(float x, bool is_token, const RowStats& r, float g, float h, float inv_t, RowCheck& c) {
  const float log_p = (x - r.shift) * inv_t - r.log_sum;
  const float p = fast_exp(log_p);
  check_add(c, x, p);
  // p = 0 (-Infinity logits, and those whose probability underflows) has no entropy term: it would be 0 * Infinity.
  const float entropy_term = (h == 0.f || p == 0.f) ? 0.f : -h * p * (log_p + r.entropy);
  float out = (-g * p + entropy_term) * inv_t;
  if (is_token) out += g * inv_t;
  return out;
}

/** One thread's share of a row's gradient; `out` must have the same alignment modulo 16 as `row`. */
template <typename T>
GR_HD RowCheck thread_grad(const T* row, T* out, int64_t vocab, int64_t token, const RowStats& r, float g, float h, float inv_t, int t,
                           int n) {
  RowCheck c{0u, 0.f};
  const Partition<T> p = partition(row, vocab);
  for (int64_t v = t; v < p.head; v += n) store(out + v, grad_element(to_float(row[v]), v == token, r, g, h, inv_t, c));
  const uint4* vectors = reinterpret_cast<const uint4*>(row + p.head);
  uint4* out_vectors = reinterpret_cast<uint4*>(out + p.head);
  for (int64_t k = t; k < p.vectors; k += n) {
    Vec<T> q;
    Vec<T> o;
    q.raw = vectors[k];
    const int64_t base = p.head + k * Partition<T>::kVec;
GR_UNROLL
    for (int j = 0; j < Partition<T>::kVec; ++j) {
      store(&o.e[j], grad_element(to_float(q.e[j]), base + j == token, r, g, h, inv_t, c));
    }
    out_vectors[k] = o.raw;
  }
  for (int64_t v = p.tail_start + t; v < vocab; v += n) {
    store(out + v, grad_element(to_float(row[v]), v == token, r, g, h, inv_t, c));
  }
  return c;
}

/** The fallback when the gradient's alignment differs from the logits' (scalar loads and stores). */
template <typename T>
GR_HD RowCheck thread_grad_scalar(const T* row, T* out, int64_t vocab, int64_t token, const RowStats& r, float g, float h, float inv_t,
                                  int t, int n) {
  RowCheck c{0u, 0.f};
  for (int64_t v = t; v < vocab; v += n) store(out + v, grad_element(to_float(row[v]), v == token, r, g, h, inv_t, c));
  return c;
}

// ---------------------------------------------------------------------------------------------------------------
// The policy loss per token, in float64: src/loss/policy-loss.ts (accumulate), objectives.ts and kl.ts, line for
// line, so that the device's per-token results equal the reference's up to the rounding of exp.

// src/cuda/loss.ts (NATIVE_OBJECTIVES) names these; test/native-objectives.test.ts checks them against OBJECTIVE_CODE.
enum Objective { kClip = 0, kCispo = 1, kSapo = 2, kReinforce = 3, kObjectiveCount };
enum RatioLevel { kToken = 0, kSequence = 1, kSequenceToken = 2 };
// A "+" kind (straight-through, verl 1dda039) is its base kind + kKlStraightThrough: the base kind's value, the
// slope logp - ref (src/loss/kl.ts).
enum KlKind { kNoKl = -1, kK1 = 0, kAbs = 1, kK2 = 2, kK3 = 3, kKlStraightThrough = 4, kKlKindCount = 8 };
enum Flags : uint8_t { kClipped = 1, kDualClipped = 2, kLowClipped = 4, kHighClipped = 8 };

struct LossConfig {
  int objective;
  int ratio_level;
  /** 1 - clipLow and 1 + clipHigh. */
  double low;
  double high;
  /** TRL's delta; +Infinity when off. */
  double delta;
  int has_dual_clip;
  double dual_clip;
  /** The log-ratio clamp; +-Infinity when off. */
  double clamp_low;
  double clamp_high;
  int kl_kind;
  int kl_clamp;
  int kl_importance;
  double kl_coef;
  /** entropyCoef > 0: the bonus term and its gradient dloss/dentropy. */
  int entropy_bonus;
  double entropy_coef;
  double sapo_positive;
  double sapo_negative;
};

/** The GRPO-RoC paper's loss (lossPresets.paper): PPO clip 0.2 / 0.28 on token ratios, no KL, no dual clip. */
inline LossConfig paper_loss_config() {
  LossConfig c{};
  c.objective = kClip;
  c.ratio_level = kToken;
  c.low = 0.8;
  c.high = 1.28;
  c.delta = INFINITY;
  c.clamp_low = -INFINITY;
  c.clamp_high = INFINITY;
  c.kl_kind = kNoKl;
  c.sapo_positive = 1;
  c.sapo_negative = 1.05;
  return c;
}

struct TokenResult {
  /** The policy term after the importance weight (perTokenLoss). */
  double loss;
  /** dloss/dlogp of this token, without the part that reaches it through its row's sequence ratio. */
  double grad;
  /** This token's share of dloss/dlog(rho_b), spread over the row afterwards. */
  double row_grad;
  double kl;
  double grad_entropy;
  double ratio;
  /** What approxKl subtracts: the token's log-ratio (clamped at token level). */
  double approx;
  uint8_t flags;
};

GR_HD void token_objective(const LossConfig& c, double logp, double ratio, double a, double& loss, double& d_log_ratio,
                           double& d_logp, uint8_t& flags) {
  flags = 0;
  switch (c.objective) {
    case kClip: {
      const double clipped_ratio = ratio < c.low ? c.low : ratio > c.high ? c.high : ratio;
      const bool capped = ratio > c.delta;
      const double unclipped_ratio = capped ? c.delta : ratio;
      const double unclipped = -a * unclipped_ratio;
      const double clipped = -a * clipped_ratio;
      if (unclipped >= clipped) {
        loss = unclipped;
        d_log_ratio = capped ? 0.0 : -a * ratio;
      } else {
        loss = clipped;
        d_log_ratio = clipped_ratio == ratio ? -a * ratio : 0.0;
      }
      d_logp = 0.0;
      if (clipped > unclipped) flags |= kClipped;
      if (c.has_dual_clip && a < 0) {
        const double bound = -a * c.dual_clip;
        if (loss > bound) {
          loss = bound;
          d_log_ratio = 0.0;
          flags |= kDualClipped;
        }
      }
      if (unclipped_ratio < c.low && a < 0) flags |= kLowClipped;
      if (unclipped_ratio > c.high && a > 0) flags |= kHighClipped;
      return;
    }
    case kCispo: {
      const double weight = ratio < c.low ? c.low : ratio > c.high ? c.high : ratio;
      loss = -weight * a * logp;
      d_log_ratio = 0.0;
      d_logp = -weight * a;
      if (weight != ratio) flags |= kClipped;
      if (ratio < c.low && a < 0) flags |= kLowClipped;
      if (ratio > c.high && a > 0) flags |= kHighClipped;
      return;
    }
    case kSapo: {
      const double tau = a > 0 ? c.sapo_positive : c.sapo_negative;
      const double sigma = 1.0 / (1.0 + exp(-tau * (ratio - 1.0)));
      loss = (-a * sigma * 4.0) / tau;
      // sigma (1 - sigma) rho -> 0 as rho -> Infinity (1 - sigma falls like e^-tau rho), but 0 * Infinity would be NaN.
      const double one_minus_sigma = 1.0 - sigma;
      d_log_ratio = one_minus_sigma == 0.0 ? 0.0 : -a * 4.0 * sigma * one_minus_sigma * ratio;
      d_logp = 0.0;
      return;
    }
    case kReinforce:
    default:  // the addon refuses codes past kObjectiveCount before any kernel runs
      loss = -a * logp;
      d_log_ratio = 0.0;
      d_logp = -a;
      return;
  }
}

GR_HD void kl_base(int kind, int clamp, double logp, double ref, double& value, double& d_logp) {
  const double diff = logp - ref;
  switch (kind) {
    case kK1:
      value = diff;
      d_logp = 1.0;
      return;
    case kAbs:
      value = fabs(diff);
      d_logp = diff > 0 ? 1.0 : diff < 0 ? -1.0 : diff;
      return;
    case kK2:
      value = 0.5 * diff * diff;
      d_logp = diff;
      return;
    default: {
      double x = -diff;
      double x_slope = -1.0;
      if (clamp && (x < -20 || x > 20)) {
        x = x < -20 ? -20.0 : 20.0;
        x_slope = 0.0;
      }
      const double ex = exp(x);
      double v = ex - x - 1.0;
      double slope = (ex - 1.0) * x_slope;
      if (clamp && (v < -10 || v > 10)) {
        v = v < -10 ? -10.0 : 10.0;
        slope = 0.0;
      }
      value = v;
      d_logp = slope;
      return;
    }
  }
}

GR_HD void kl_penalty(int kind, int clamp, double logp, double ref, double& value, double& d_logp) {
  const bool straight_through = kind >= kKlStraightThrough;
  kl_base(straight_through ? kind - kKlStraightThrough : kind, clamp, logp, ref, value, d_logp);
  if (straight_through) d_logp = logp - ref;
}

/**
 * TRL's importance-corrected KL: the estimate and its slope in logp, each times rho = e^log_ratio, computed so that
 * a product that is finite stays finite (src/loss/kl.ts, klTimesRatio): k3's e^x rho is e^(x + log rho), and a zero
 * estimate or slope times rho is 0 whatever rho.
 */
GR_HD void kl_times_ratio(int kind, int clamp, double logp, double ref, double log_ratio, double& value, double& d_logp) {
  const double ratio = exp(log_ratio);
  if ((kind == kK3 || kind == kK3 + kKlStraightThrough) && !clamp) {
    const double x = ref - logp;
    const double e = exp(x + log_ratio);
    value = e - (x + 1.0) * ratio;
    // k3+ keeps k3's value and takes the straight-through slope (logp - ref) rho.
    const double diff = logp - ref;
    d_logp = kind == kK3 ? ratio - e : diff == 0.0 ? 0.0 : diff * ratio;
    return;
  }
  kl_penalty(kind, clamp, logp, ref, value, d_logp);
  value = value == 0.0 ? 0.0 : value * ratio;
  d_logp = d_logp == 0.0 ? 0.0 : d_logp * ratio;
}

/**
 * One valid token: `sequence_log_ratio` is its row's mean log-ratio (sequence levels), `w` and `ew` its row's
 * aggregation weights for the policy term and the entropy bonus. A term that overflows float64 is left non-finite
 * for the host to report as the reference does (src/cuda/backend.ts); a zero advantage or importance weight
 * contributes exactly 0 even where the ratio overflowed.
 */
GR_HD void token_loss(const LossConfig& c, double logp, double old_logp, double sequence_log_ratio, double advantage,
                      double ref_logp, double importance, double entropy, double w, double ew, TokenResult& r) {
  (void)entropy;
  const bool sequence_level = c.ratio_level != kToken;
  const bool through_row = c.ratio_level == kSequence;
  const double token_log_ratio = logp - old_logp;
  const double raw = sequence_level ? sequence_log_ratio : token_log_ratio;
  const bool inside = raw >= c.clamp_low && raw <= c.clamp_high;
  const double log_ratio = inside ? raw : raw < c.clamp_low ? c.clamp_low : c.clamp_high;
  const double ratio = exp(log_ratio);
  double loss, d_log_ratio, d_logp;
  uint8_t flags;
  token_objective(c, logp, ratio, advantage, loss, d_log_ratio, d_logp, flags);
  r.loss = loss * importance;
  double via_ratio = inside ? w * importance * d_log_ratio : 0.0;
  double via_logp = w * importance * d_logp;
  const double terms = r.loss + via_ratio + via_logp;
  if (terms - terms != 0.0 && (advantage == 0.0 || importance == 0.0)) {
    // 0 * Infinity gave NaN: a zero advantage or weight contributes exactly 0.
    r.loss = 0.0;
    via_ratio = 0.0;
    via_logp = 0.0;
  }
  r.row_grad = through_row ? via_ratio : 0.0;
  r.grad = (through_row ? 0.0 : via_ratio) + via_logp;
  r.kl = 0.0;
  if (c.kl_kind != kNoKl) {
    double value, slope;
    if (c.kl_importance) {
      // TRL multiplies the KL by the ratio without detaching it, so the ratio's own gradient comes along.
      kl_times_ratio(c.kl_kind, c.kl_clamp, logp, ref_logp, log_ratio, value, slope);
      if (sequence_level) {
        if (inside) r.row_grad += w * c.kl_coef * value;
      } else if (inside) {
        slope += value;
      }
    } else {
      kl_penalty(c.kl_kind, c.kl_clamp, logp, ref_logp, value, slope);
    }
    r.kl = value;
    r.grad += w * c.kl_coef * slope;
  }
  r.grad_entropy = c.entropy_bonus ? -(ew * c.entropy_coef) : 0.0;
  r.ratio = ratio;
  r.approx = sequence_level ? token_log_ratio : log_ratio;
  r.flags = flags;
}

}  // namespace grpo
