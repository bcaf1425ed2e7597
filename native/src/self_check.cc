// See self_check.h. Plain C++ on the engine's public entry points: what it checks is what a caller gets back,
// after the copies, the chunking and the kernels.
#include "self_check.h"

#include <cmath>
#include <cstdio>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "grpo_math.h"

namespace grpo {
namespace {

double uniform(uint64_t seed, uint64_t i) { return static_cast<double>(mix(seed ^ mix(i)) >> 11) * 0x1p-53; }

/** Logits [positions, vocab] as the engine receives them: float32, or bfloat16 bits, `offset` elements in. */
struct Logits {
  int64_t positions;
  int64_t vocab;
  bool bf16;
  int64_t offset;
  std::vector<float> f32;
  std::vector<uint16_t> bits;

  Logits(int64_t p, int64_t v, bool b, int64_t off, uint64_t seed) : positions(p), vocab(v), bf16(b), offset(off) {
    const size_t n = static_cast<size_t>(p * v + off);
    if (bf16) {
      bits.assign(n, 0);
    } else {
      f32.assign(n, 0.f);
    }
    // [-4, 4], with a logit of 9 in every 97 so that some rows are peaked.
    for (int64_t i = 0; i < p * v; ++i) set(i / v, i % v, i % 97 == 13 ? 9.f : static_cast<float>(8 * uniform(seed, i) - 4));
  }
  void set(int64_t pos, int64_t v, float x) {
    const size_t k = static_cast<size_t>(offset + pos * vocab + v);
    if (bf16) {
      bits[k] = float_to_bf16(x);
    } else {
      f32[k] = x;
    }
  }
  /** The logit as the kernels read it. */
  float at(int64_t pos, int64_t v) const {
    const size_t k = static_cast<size_t>(offset + pos * vocab + v);
    return bf16 ? bf16_to_float(bits[k]) : f32[k];
  }
  LogitsView view() const {
    const void* data = bf16 ? static_cast<const void*>(bits.data() + offset) : static_cast<const void*>(f32.data() + offset);
    return LogitsView{data, bf16, false, positions, vocab};
  }
};

/**
 * Token log-prob, logsumexp and entropy of one row of logits / tau, in float64 from the same float32 inputs, with
 * the row's largest logit m and log sum e^((x - m)/tau) kept apart: logits near 3e38 would lose log 4 in m/tau + log 4
 * even in float64.
 */
struct OracleRow {
  double logp;
  double lse;
  double entropy;
  double shift;
  double log_sum;
};

OracleRow oracle_row(const Logits& l, int64_t pos, int32_t token, float inv_t) {
  double m = -INFINITY;
  bool bad = false;
  for (int64_t v = 0; v < l.vocab; ++v) {
    const double x = l.at(pos, v);
    if (std::isnan(x) || x == INFINITY) bad = true;
    if (x > m) m = x;
  }
  const double x_token = l.at(pos, token);
  if (bad) return OracleRow{NAN, NAN, NAN, NAN, NAN};
  if (m == -INFINITY) return OracleRow{x_token - m, -INFINITY, NAN, m, -INFINITY};
  double s = 0, w = 0;
  for (int64_t v = 0; v < l.vocab; ++v) {
    const double x = l.at(pos, v);
    if (x == -INFINITY) continue;
    const double d = (x - m) * inv_t;
    s += std::exp(d);
    w += std::exp(d) * d;
  }
  const double log_sum = std::log(s);
  return OracleRow{(x_token - m) * inv_t - log_sum, m * inv_t + log_sum, log_sum - w / s, m, log_sum};
}

/** dL/dz_v for L = g logp + h H, in float64. */
double oracle_grad(float z, bool is_token, const OracleRow& r, double g, double h, float inv_t) {
  const double log_p = (z - r.shift) * inv_t - r.log_sum;
  const double p = std::exp(log_p);
  const double entropy_term = (h == 0 || p == 0) ? 0.0 : -h * p * (log_p + r.entropy);
  return (g * ((is_token ? 1.0 : 0.0) - p) + entropy_term) * inv_t;
}

struct Tolerance {
  double atol;
  double rtol;
};
// float32 accumulation over the vocabulary, and logsumexp / entropy rounded to float32 (|lse| up to ~12 here).
constexpr Tolerance kStats{3e-5, 3e-6};
constexpr Tolerance kGradFloat{2e-6, 2e-5};
// A float32 gradient a hair away from a bfloat16 rounding boundary may round to the neighbour: one bf16 ulp, which
// is 1/128 of a value at the bottom of its binade; 1/64 leaves room for the float32 difference on top of it.
constexpr Tolerance kGradBf16{2e-6, 1.0 / 64};
// The loss kernels compute in float64; the device's exp and summation order differ from the CPU's by a few ulps.
constexpr Tolerance kLoss{1e-12, 1e-10};

/** Accumulates one case's comparisons; NaN matches NaN and an infinity matches itself, and nothing else. */
class Comparison {
 public:
  explicit Comparison(std::string name) { c_.name = std::move(name); }

  void value(const char* what, int64_t index, double got, double want, Tolerance t) {
    ++c_.compared;
    double err;
    if (std::isnan(want)) {
      err = std::isnan(got) ? 0 : INFINITY;
    } else if (std::isinf(want)) {
      err = got == want ? 0 : INFINITY;
    } else {
      err = std::isfinite(got) ? std::fabs(got - want) / (t.atol + t.rtol * std::fabs(want)) : INFINITY;
    }
    if (err > c_.worst) c_.worst = err;
    if (err > 1 && c_.ok) {
      char text[256];
      std::snprintf(text, sizeof text, "%s[%lld]: got %.9g, want %.9g (atol %.1e, rtol %.1e)", what, static_cast<long long>(index), got,
                    want, t.atol, t.rtol);
      c_.ok = false;
      c_.detail = text;
    }
  }

  void exact(const char* what, int64_t index, double got, double want) { value(what, index, got, want, Tolerance{0, 0}); }

  CheckCase done() const { return c_; }

 private:
  CheckCase c_;
};

// ---------------------------------------------------------------------------------------------------------------
// Token log-probs and their backward, against float64

struct Shape {
  const char* name;
  int64_t positions;
  int64_t vocab;
  /** Elements before the logits in their array: a misaligned start on the host. */
  int64_t offset;
  float temperature;
  size_t chunk_bytes;
};

const Shape kShapes[] = {
    {"vocab 1", 9, 1, 0, 1.f, 0},
    {"vocab 7, temperature 0.7, misaligned", 13, 7, 1, 0.7f, 0},
    {"vocab 1000", 37, 1000, 0, 1.f, 0},
    {"vocab 4099, one row per chunk", 11, 4099, 3, 1.f, 4096},
    {"vocab 65, temperature 1.3, a few rows per chunk", 24, 65, 0, 1.3f, 2080},
};

/** A case's tokens, mask (every fifth position left out) and upstream gradients. */
struct TokenInputs {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> active;
  std::vector<double> g, h;

  TokenInputs(const Logits& l, uint64_t seed) : tokens(l.positions), active(l.positions), g(l.positions), h(l.positions) {
    for (int64_t i = 0; i < l.positions; ++i) {
      tokens[i] = static_cast<int32_t>(mix(seed + 3 * i) % static_cast<uint64_t>(l.vocab));
      active[i] = i % 5 == 3 ? 0 : 1;
      g[i] = 2 * uniform(seed + 1, i) - 1;
      h[i] = uniform(seed + 2, i) - 0.5;
    }
  }
};

/** A -Infinity logit beside one position's token, and one at another position's token (logp = -Infinity). */
void add_minus_infinities(Logits& l, const TokenInputs& in) {
  if (l.vocab < 2 || l.positions < 5) return;
  l.set(2, (in.tokens[2] + 1) % l.vocab, -INFINITY);
  l.set(4, in.tokens[4], -INFINITY);
}

void compare_forward(Comparison& cmp, const Logits& l, const TokenInputs& in, float inv_t, const std::vector<double>& logp,
                     const std::vector<double>& lse, const std::vector<double>& entropy) {
  for (int64_t i = 0; i < l.positions; ++i) {
    if (!in.active[i]) {
      cmp.exact("logp (masked)", i, logp[i], 0);
      cmp.exact("logsumexp (masked)", i, lse[i], NAN);
      cmp.exact("entropy (masked)", i, entropy[i], 0);
      continue;
    }
    const OracleRow want = oracle_row(l, i, in.tokens[i], inv_t);
    cmp.value("logp", i, logp[i], want.logp, kStats);
    cmp.value("logsumexp", i, lse[i], want.lse, kStats);
    cmp.value("entropy", i, entropy[i], want.entropy, kStats);
  }
}

CheckCase forward_case(Exec exec, const std::string& name, const Logits& l, const TokenInputs& in, float inv_t, size_t chunk_bytes) {
  std::vector<double> logp(l.positions), lse(l.positions), entropy(l.positions);
  ForwardArgs a;
  a.common = Common{exec, chunk_bytes};
  a.logits = l.view();
  a.tokens = in.tokens.data();
  a.active = in.active.data();
  a.inv_temperature = inv_t;
  a.logp = logp.data();
  a.lse = lse.data();
  a.entropy = entropy.data();
  forward(a);
  Comparison cmp(name);
  compare_forward(cmp, l, in, inv_t, logp, lse, entropy);
  return cmp.done();
}

/** The gradient as float32 values, however the engine returned it (bfloat16 bits, or widened). */
std::vector<float> run_backward(BackwardArgs a, bool widen) {
  const size_t n = static_cast<size_t>(a.logits.positions * a.logits.vocab);
  std::vector<float> grad(n);
  std::vector<uint16_t> bits;
  if (a.logits.bf16 && !widen) {
    bits.resize(n);
    a.grad = GradSink{bits.data(), false};
  } else {
    a.grad = GradSink{grad.data(), a.logits.bf16};
  }
  backward(a);
  if (!bits.empty()) {
    for (size_t k = 0; k < n; ++k) grad[k] = bf16_to_float(bits[k]);
  }
  return grad;
}

CheckCase backward_case(Exec exec, const std::string& name, const Logits& l, const TokenInputs& in, float inv_t, size_t chunk_bytes,
                        bool saved, bool widen) {
  const int64_t P = l.positions;
  std::vector<OracleRow> want(P);
  std::vector<double> saved_lse(P), saved_entropy(P), lse_out(P);
  for (int64_t i = 0; i < P; ++i) {
    want[i] = oracle_row(l, i, in.tokens[i], inv_t);
    saved_lse[i] = in.active[i] ? want[i].lse : NAN;
    saved_entropy[i] = in.active[i] ? want[i].entropy : 0;
  }
  BackwardArgs a;
  a.common = Common{exec, chunk_bytes};
  a.logits = l.view();
  a.tokens = in.tokens.data();
  a.active = in.active.data();
  a.inv_temperature = inv_t;
  a.g = in.g.data();
  a.h = saved ? in.h.data() : nullptr;
  a.saved_lse = saved ? saved_lse.data() : nullptr;
  a.saved_entropy = saved ? saved_entropy.data() : nullptr;
  a.lse_out = saved ? nullptr : lse_out.data();
  const std::vector<float> grad = run_backward(a, widen);

  Comparison cmp(name);
  const Tolerance t = l.bf16 ? kGradBf16 : kGradFloat;
  for (int64_t i = 0; i < P; ++i) {
    if (!saved && in.active[i]) cmp.value("logsumexp", i, lse_out[i], want[i].lse, kStats);
    for (int64_t v = 0; v < l.vocab; ++v) {
      const size_t k = static_cast<size_t>(i * l.vocab + v);
      double expected = 0;
      if (in.active[i]) expected = oracle_grad(l.at(i, v), v == in.tokens[i], want[i], in.g[i], saved ? in.h[i] : 0.0, inv_t);
      if (l.bf16) expected = bf16_to_float(float_to_bf16(static_cast<float>(expected)));
      cmp.value("gradient", static_cast<int64_t>(k), grad[k], expected, t);
    }
  }
  return cmp.done();
}

/** Rows the reference reports as bad or edge cases: NaN, +Infinity, all -Infinity, one finite logit, a masked NaN. */
CheckCase special_rows_case(Exec exec, bool bf16) {
  Logits l(8, 33, bf16, 0, 91);
  TokenInputs in(l, 92);
  add_minus_infinities(l, in);
  l.set(1, 5, NAN);
  l.set(2, 0, INFINITY);
  for (int64_t v = 0; v < l.vocab; ++v) l.set(3, v, -INFINITY);
  for (int64_t v = 1; v < l.vocab; ++v) l.set(5, v, -INFINITY);
  l.set(6, 7, NAN);
  in.active[6] = 0;
  l.set(7, l.vocab - 1, -INFINITY);
  l.set(7, 3, 80.f);
  return forward_case(exec, std::string("forward, special rows, ") + (bf16 ? "bfloat16" : "float32"), l, in, 1.f, 0);
}

/**
 * Logits near the float32 range (and +-1e30 beside ordinary ones), where the statistics must keep (x - max) - log sum
 * exact: rows of 3e38 only, +-1e30 and 0 mixed, 3.4e38 beside -3.4e38 (a token whose log-prob, -6.8e38 / tau, only
 * float64 holds), a 1e30 at the token, -3.4e38 only.
 */
void add_huge_rows(Logits& l, const TokenInputs& in) {
  for (int64_t v = 0; v < l.vocab; ++v) {
    l.set(0, v, 3e38f);
    l.set(1, v, v % 3 == 0 ? 1e30f : v % 3 == 1 ? -1e30f : 0.f);
    l.set(4, v, -3.4e38f);
  }
  l.set(2, (in.tokens[2] + 1) % l.vocab, 3.4e38f);
  l.set(2, in.tokens[2], -3.4e38f);
  l.set(3, in.tokens[3], 1e30f);
}

/** The forward and backward passes (fresh and over saved statistics) on huge logits, at temperature 1/inv_t. */
void huge_logits_cases(Exec exec, bool bf16, float inv_t, const std::function<void(CheckCase)>& add) {
  Logits l(7, 37, bf16, 1, 53);
  TokenInputs in(l, 59);
  for (int64_t i = 0; i < l.positions; ++i) in.active[i] = 1;
  add_huge_rows(l, in);
  char where[96];
  std::snprintf(where, sizeof where, "logits near the float32 range, temperature %g, %s", 1.0 / inv_t, bf16 ? "bfloat16" : "float32");
  add(forward_case(exec, std::string("forward, ") + where, l, in, inv_t, 0));
  add(backward_case(exec, std::string("backward, ") + where, l, in, inv_t, 0, false, false));
  add(backward_case(exec, std::string("backward, saved statistics, ") + where, l, in, inv_t, 0, true, false));
}

/**
 * A backward pass over saved statistics checks what it reads: logits that became NaN, +Infinity or -Infinity only,
 * or changed (their probabilities no longer sum to 1), are flagged per row; rows left alone are not.
 */
CheckCase saved_checks_case(Exec exec) {
  Logits l(6, 70, false, 0, 61);
  TokenInputs in(l, 67);
  for (int64_t i = 0; i < l.positions; ++i) in.active[i] = i == 5 ? 0 : 1;
  const int64_t P = l.positions;
  std::vector<double> saved_lse(P), saved_entropy(P);
  for (int64_t i = 0; i < P; ++i) {
    const OracleRow r = oracle_row(l, i, in.tokens[i], 1.f);
    saved_lse[i] = in.active[i] ? r.lse : 0;
    saved_entropy[i] = in.active[i] ? r.entropy : 0;
  }
  l.set(1, 3, NAN);
  l.set(2, 9, INFINITY);
  for (int64_t v = 0; v < l.vocab; ++v) l.set(3, v, -INFINITY);
  for (int64_t v = 0; v < l.vocab; ++v) l.set(4, v, l.at(4, v) + (v % 2 == 0 ? 1.f : 0.f));
  l.set(5, 0, NAN);
  std::vector<uint8_t> checks(P, 255);
  std::vector<double> sums(P);
  BackwardArgs a;
  a.common = Common{exec, 0};
  a.logits = l.view();
  a.tokens = in.tokens.data();
  a.active = in.active.data();
  a.g = in.g.data();
  a.saved_lse = saved_lse.data();
  a.saved_entropy = saved_entropy.data();
  a.check_out = checks.data();
  a.check_sum_out = sums.data();
  run_backward(a, false);
  Comparison cmp("backward, saved statistics, its checks of the logits it reads");
  const uint8_t want[] = {0, kCheckInvalid, kCheckInvalid, kCheckEmpty, kCheckMismatch, 0};
  for (int64_t i = 0; i < P; ++i) cmp.exact("row check", i, checks[i], want[i]);
  cmp.value("probability sum", 0, sums[0], 1.0, Tolerance{1e-5, 0});
  return cmp.done();
}

// ---------------------------------------------------------------------------------------------------------------
// The policy loss and the fused pass, against the host executor

struct NamedConfig {
  const char* name;
  LossConfig config;
  bool per_token_advantages;
};

std::vector<NamedConfig> loss_configs() {
  const LossConfig paper = paper_loss_config();
  std::vector<NamedConfig> out{{"clip 0.2/0.28 (paper)", paper, false}};
  LossConfig c = paper;
  c.has_dual_clip = 1;
  c.dual_clip = 3;
  c.kl_kind = kK3;
  c.kl_coef = 0.04;
  c.entropy_bonus = 1;
  c.entropy_coef = 0.01;
  out.push_back({"dual clip 3, k3 KL, entropy bonus", c, false});
  c = paper;
  c.delta = 1.1;
  c.kl_kind = kK1;
  c.kl_clamp = 1;
  c.kl_importance = 1;
  c.kl_coef = 0.1;
  out.push_back({"TRL delta 1.1, k1 KL times the ratio", c, false});
  c = paper;
  c.ratio_level = kSequence;
  c.kl_kind = kK2;
  c.kl_importance = 1;
  c.kl_coef = 0.05;
  out.push_back({"sequence ratio (GSPO), k2 KL times the ratio", c, false});
  c = paper;
  c.ratio_level = kSequenceToken;
  c.clamp_low = -0.1;
  c.clamp_high = 0.1;
  out.push_back({"sequence-token ratio, log-ratio clamp 0.1", c, false});
  c = paper;
  c.objective = kCispo;
  c.kl_kind = kAbs;
  c.kl_coef = 0.02;
  out.push_back({"CISPO, abs KL, per-token advantages", c, true});
  c = paper;
  c.objective = kSapo;
  out.push_back({"SAPO", c, false});
  c = paper;
  c.objective = kReinforce;
  out.push_back({"REINFORCE", c, false});
  return out;
}

/** [rows, cols] loss inputs: a mask with holes and one empty row, old and reference policies within +-0.4. */
struct LossData64 {
  int64_t rows = 5;
  int64_t cols = 17;
  std::vector<uint8_t> mask;
  std::vector<int32_t> row_tokens;
  std::vector<double> w, ew, old_logp, advantages, ref_logp, importance, entropy, logp;

  explicit LossData64(uint64_t seed) {
    const int64_t n = rows * cols;
    mask.resize(n);
    row_tokens.assign(rows, 0);
    old_logp.resize(n);
    advantages.resize(n);
    ref_logp.resize(n);
    importance.resize(n);
    entropy.resize(n);
    logp.resize(n);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t b = i / cols;
      mask[i] = (b == 2 || (i % cols) > 13 - b) ? 0 : 1;
      row_tokens[b] += mask[i];
      logp[i] = -3 * uniform(seed, i);
      old_logp[i] = logp[i] + 0.8 * (uniform(seed + 1, i) - 0.5);
      ref_logp[i] = logp[i] + 0.6 * (uniform(seed + 2, i) - 0.5);
      importance[i] = 0.5 + uniform(seed + 3, i);
      entropy[i] = 3 * uniform(seed + 4, i);
      advantages[i] = 2 * uniform(seed + 5, i) - 1;
    }
    int64_t total = 0;
    for (int32_t k : row_tokens) total += k;
    for (int64_t b = 0; b < rows; ++b) {
      w.push_back(row_tokens[b] > 0 ? 1.0 / static_cast<double>(total) : 0.0);
      ew.push_back(row_tokens[b] > 0 ? 1.0 / static_cast<double>(rows * row_tokens[b]) : 0.0);
    }
  }

  LossInputs inputs(const NamedConfig& c, bool with_importance) const {
    LossInputs in;
    in.rows = rows;
    in.cols = cols;
    in.mask = mask.data();
    in.row_tokens = row_tokens.data();
    in.row_weights = w.data();
    in.entropy_weights = ew.data();
    in.old_logp = old_logp.data();
    in.advantages = advantages.data();
    in.per_token_advantages = c.per_token_advantages;
    in.ref_logp = c.config.kl_kind != kNoKl ? ref_logp.data() : nullptr;
    in.importance = with_importance ? importance.data() : nullptr;
    in.entropy = entropy.data();
    return in;
  }
};

/** The loss outputs of one run, with their storage. */
struct LossResult {
  std::vector<double> loss, grad, kl, grad_entropy, ratio, approx;
  std::vector<uint8_t> flags;
  explicit LossResult(size_t n) : loss(n), grad(n), kl(n), grad_entropy(n), ratio(n), approx(n), flags(n) {}
  LossOutputs outputs(const LossConfig& c) {
    return LossOutputs{loss.data(), grad.data(), c.kl_kind != kNoKl ? kl.data() : nullptr,
                       c.entropy_bonus ? grad_entropy.data() : nullptr, ratio.data(), approx.data(), flags.data()};
  }
};

void compare_loss(Comparison& cmp, const LossResult& got, const LossResult& want, Tolerance t) {
  for (size_t i = 0; i < got.loss.size(); ++i) {
    const auto k = static_cast<int64_t>(i);
    cmp.value("loss", k, got.loss[i], want.loss[i], t);
    cmp.value("dloss/dlogp", k, got.grad[i], want.grad[i], t);
    cmp.value("kl", k, got.kl[i], want.kl[i], t);
    cmp.value("dloss/dentropy", k, got.grad_entropy[i], want.grad_entropy[i], t);
    cmp.value("ratio", k, got.ratio[i], want.ratio[i], t);
    cmp.value("log-ratio", k, got.approx[i], want.approx[i], t);
    cmp.exact("clip flags", k, got.flags[i], want.flags[i]);
  }
}

CheckCase policy_loss_case(const NamedConfig& c, bool with_importance) {
  const LossData64 data(17);
  const LossInputs in = data.inputs(c, with_importance);
  const size_t n = static_cast<size_t>(data.rows * data.cols);
  LossResult device(n), host(n);
  for (const auto& [exec, result] : {std::pair<Exec, LossResult*>{Exec::Device, &device}, {Exec::Host, &host}}) {
    PolicyLossArgs a;
    a.common.exec = exec;
    a.config = &c.config;
    a.in = in;
    a.logp = data.logp.data();
    a.out = result->outputs(c.config);
    policy_loss(a);
  }
  Comparison cmp(std::string("policy loss, ") + c.name + (with_importance ? ", importance weights" : ""));
  compare_loss(cmp, device, host, kLoss);
  return cmp.done();
}

/**
 * The fused pass on `exec`: where it stops, then its statistics and its gradient against float64 (from the
 * dloss/dlogp and dloss/dentropy it computed), and on the device its loss outputs against the host executor's.
 */
CheckCase fused_case(Exec exec, const std::string& name, const NamedConfig& c, Logits& l, size_t chunk_bytes, float inv_t,
                     Stop expected_stop, int64_t expected_position, const std::function<void(Logits&, LossData64&)>& spoil) {
  LossData64 data(23);
  const TokenInputs tokens(l, 29);
  if (spoil) spoil(l, data);
  const LossInputs in = data.inputs(c, false);
  const size_t P = static_cast<size_t>(l.positions);
  struct Run {
    std::vector<double> logp, lse, entropy;
    LossResult loss;
    std::vector<float> grad;
    FusedResult result;
    Run(size_t p, size_t n) : logp(p), lse(p), entropy(p), loss(p), grad(n) {}
  };
  const auto run = [&](Exec on) {
    Run r(P, P * l.vocab);
    FusedArgs a;
    a.common = Common{on, chunk_bytes};
    a.logits = l.view();
    a.tokens = tokens.tokens.data();
    a.inv_temperature = inv_t;
    a.config = &c.config;
    a.in = in;
    a.logp = r.logp.data();
    a.lse = r.lse.data();
    a.entropy = r.entropy.data();
    a.out = r.loss.outputs(c.config);
    a.grad = GradSink{r.grad.data(), l.bf16};
    r.result = fused(a);
    return r;
  };
  const Run got = run(exec);
  Comparison cmp(name);
  cmp.exact("stop", 0, static_cast<double>(got.result.stop), static_cast<double>(expected_stop));
  cmp.exact("stop position", 0, static_cast<double>(got.result.position), static_cast<double>(expected_position));
  if (expected_stop != Stop::None) return cmp.done();
  const Tolerance t = l.bf16 ? kGradBf16 : kGradFloat;
  for (size_t i = 0; i < P; ++i) {
    const auto k = static_cast<int64_t>(i);
    const OracleRow want = oracle_row(l, k, tokens.tokens[i], inv_t);
    if (data.mask[i]) {
      cmp.value("logp", k, got.logp[i], want.logp, kStats);
      cmp.value("logsumexp", k, got.lse[i], want.lse, kStats);
      cmp.value("entropy", k, got.entropy[i], want.entropy, kStats);
    }
    const double g = got.loss.grad[i];
    const double h = c.config.entropy_bonus ? got.loss.grad_entropy[i] : 0.0;
    for (int64_t v = 0; v < l.vocab; ++v) {
      double expected = data.mask[i] ? oracle_grad(l.at(k, v), v == tokens.tokens[i], want, g, h, inv_t) : 0.0;
      if (l.bf16) expected = bf16_to_float(float_to_bf16(static_cast<float>(expected)));
      cmp.value("gradient", k * l.vocab + v, got.grad[i * l.vocab + v], expected, t);
    }
  }
  // The loss sees float32 statistics that differ by a few ulps between the two executors: their tolerance.
  if (exec == Exec::Device) compare_loss(cmp, got.loss, run(Exec::Host).loss, Tolerance{kStats.atol, 1e-4});
  return cmp.done();
}

}  // namespace

CheckReport self_check(Exec exec) {
  CheckReport report;
  report.exec = exec == Exec::Device ? "device" : "host";
  const auto add = [&](CheckCase c) {
    report.ok = report.ok && c.ok;
    report.cases.push_back(std::move(c));
  };
  for (const bool bf16 : {false, true}) {
    const std::string dtype = bf16 ? "bfloat16" : "float32";
    for (const Shape& s : kShapes) {
      Logits l(s.positions, s.vocab, bf16, s.offset, 7 + s.vocab);
      const TokenInputs in(l, 11 + s.vocab);
      add_minus_infinities(l, in);
      const float inv_t = 1.f / s.temperature;
      const std::string where = std::string(s.name) + ", " + dtype;
      add(forward_case(exec, "forward, " + where, l, in, inv_t, s.chunk_bytes));
      add(backward_case(exec, "backward, " + where, l, in, inv_t, s.chunk_bytes, false, false));
      add(backward_case(exec, "backward, saved statistics, entropy gradient, " + where, l, in, inv_t, s.chunk_bytes, true, false));
      if (bf16) add(backward_case(exec, "backward, widened to float32, " + where, l, in, inv_t, s.chunk_bytes, false, true));
    }
    add(special_rows_case(exec, bf16));
    for (const float inv_t : {1.f, 2.f, 0.5f}) huge_logits_cases(exec, bf16, inv_t, add);
  }
  add(saved_checks_case(exec));
  const std::vector<NamedConfig> configs = loss_configs();
  for (const bool bf16 : {false, true}) {
    const std::string dtype = bf16 ? ", bfloat16" : ", float32";
    for (const NamedConfig& c : {configs[0], configs[1], configs[3]}) {
      Logits l(85, 1000, bf16, 1, 31);
      add(fused_case(exec, std::string("fused, ") + c.name + dtype, c, l, 0, 1.f, Stop::None, -1, nullptr));
    }
    Logits chunked(85, 333, bf16, 0, 37);
    add(fused_case(exec, "fused, 5 rows per chunk, temperature 0.8" + dtype, configs[1], chunked, 5 * 333 * (bf16 ? 2 : 4) * 2, 1.25f,
                   Stop::None, -1, nullptr));
    Logits bad(85, 64, bf16, 0, 41);
    add(fused_case(exec, "fused, a NaN logit stops it" + dtype, configs[0], bad, 0, 1.f, Stop::BadLogits, 20,
                   [](Logits& l, LossData64&) { l.set(20, 9, NAN); }));
    Logits inf(85, 64, bf16, 0, 43);
    add(fused_case(exec, "fused, a non-finite log-ratio stops it" + dtype, configs[0], inf, 0, 1.f, Stop::NonFiniteLogRatio, 18,
                   [](Logits&, LossData64& d) { d.old_logp[18] = -INFINITY; }));
  }
  // The loss kernels alone: on the host they are what the conformance suite checks, so only the device is compared.
  if (exec == Exec::Device) {
    for (const NamedConfig& c : configs) {
      add(policy_loss_case(c, false));
      add(policy_loss_case(c, true));
    }
  }
  return report;
}

}  // namespace grpo
