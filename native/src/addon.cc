// N-API glue for grpo_roc_cuda.node: typed arrays in, the engine on a worker thread (the GPU work never blocks
// the event loop), a promise out. Plain node_api.h, so the package needs no node-addon-api dependency. Every
// engine failure (a CUDA error with its name and string, a bad argument) rejects the promise with an Error; no
// call returns zeros for work it did not do. Argument validation that users see happens in src/cuda/backend.ts;
// the checks here only keep a wrong call from reading out of bounds.
#define NAPI_VERSION 8
#include <node_api.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine.h"
#include "grpo_math.h"
#include "self_check.h"

namespace {

class ArgumentError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

#define NAPI_OK(call)                                                                 \
  do {                                                                                \
    if ((call) != napi_ok) throw ArgumentError(std::string("N-API call failed: ") + #call); \
  } while (0)

struct TypedArray {
  void* data = nullptr;
  size_t length = 0;
  napi_typedarray_type type = napi_uint8_array;
};

/** Reads the properties of one call's argument object, keeping every typed array it hands out alive. */
class Args {
 public:
  Args(napi_env env, napi_value object, std::vector<napi_ref>& refs) : env_(env), object_(object), refs_(refs) {
    napi_valuetype type;
    NAPI_OK(napi_typeof(env, object, &type));
    if (type != napi_object) throw ArgumentError("expected an argument object");
  }

  napi_value get(const char* key) const {
    napi_value value;
    NAPI_OK(napi_get_named_property(env_, object_, key, &value));
    return value;
  }

  bool has(const char* key) const {
    napi_valuetype type;
    NAPI_OK(napi_typeof(env_, get(key), &type));
    return type != napi_undefined && type != napi_null;
  }

  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    double v;
    if (napi_get_value_double(env_, get(key), &v) != napi_ok) throw ArgumentError(std::string(key) + ": expected a number");
    return v;
  }

  int64_t integer(const char* key, int64_t fallback) const {
    const double v = number(key, static_cast<double>(fallback));
    // 2^53: beyond it a double is no exact integer (and casting a huge double to int64 is undefined).
    if (!(v >= 0) || std::floor(v) != v || v > 9007199254740992.0) {
      throw ArgumentError(std::string(key) + ": expected a non-negative integer (at most 2^53)");
    }
    return static_cast<int64_t>(v);
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    bool v;
    if (napi_get_value_bool(env_, get(key), &v) != napi_ok) throw ArgumentError(std::string(key) + ": expected a boolean");
    return v;
  }

  std::string string(const char* key, const char* fallback) const {
    if (!has(key)) return fallback;
    char buffer[64];
    size_t n;
    if (napi_get_value_string_utf8(env_, get(key), buffer, sizeof buffer, &n) != napi_ok) {
      throw ArgumentError(std::string(key) + ": expected a string");
    }
    return std::string(buffer, n);
  }

  /** A typed array of `type` with exactly `length` elements (any length when length is SIZE_MAX); null if absent and optional. */
  template <typename T>
  T* array(const char* key, napi_typedarray_type type, size_t length, bool optional = false) const {
    if (!has(key)) {
      if (optional) return nullptr;
      throw ArgumentError(std::string(key) + ": missing");
    }
    const TypedArray a = typed(key);
    if (a.type != type) throw ArgumentError(std::string(key) + ": wrong typed array type");
    if (length != SIZE_MAX && a.length != length) {
      throw ArgumentError(std::string(key) + ": expected " + std::to_string(length) + " elements, got " + std::to_string(a.length));
    }
    return static_cast<T*>(a.data);
  }

  TypedArray typed(const char* key) const {
    napi_value value = get(key);
    bool is_typed;
    NAPI_OK(napi_is_typedarray(env_, value, &is_typed));
    if (!is_typed) throw ArgumentError(std::string(key) + ": expected a typed array");
    TypedArray a;
    napi_value buffer;
    size_t offset;
    NAPI_OK(napi_get_typedarray_info(env_, value, &a.type, &a.length, &a.data, &buffer, &offset));
    napi_ref ref;
    NAPI_OK(napi_create_reference(env_, value, 1, &ref));
    refs_.push_back(ref);
    return a;
  }

 private:
  napi_env env_;
  napi_value object_;
  std::vector<napi_ref>& refs_;
};

/** a * b for sizes, refusing a product that overflows (so that a length check cannot be fooled by wrap-around). */
int64_t checked_product(int64_t a, int64_t b, const char* what) {
  if (a != 0 && b > INT64_MAX / a) throw ArgumentError(std::string(what) + ": too large");
  return a * b;
}

/**
 * Every token id the kernels will read (where `active` is 1, or everywhere when it is null) lies in [0, vocab).
 * The JS side validates ids before calling; this keeps a direct or buggy call from reading outside a logits row.
 */
void check_token_ids(const int32_t* tokens, const uint8_t* active, size_t n, int64_t vocab) {
  for (size_t i = 0; i < n; ++i) {
    if (active != nullptr && active[i] == 0) continue;
    if (tokens[i] < 0 || static_cast<int64_t>(tokens[i]) >= vocab) {
      throw ArgumentError("tokens[" + std::to_string(i) + "]: id " + std::to_string(tokens[i]) + " is outside [0, " + std::to_string(vocab) +
                          ") (the vocabulary size)");
    }
  }
}

napi_value make_number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}
napi_value make_string(napi_env env, const std::string& s) {
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}
napi_value make_bool(napi_env env, bool v) {
  napi_value out;
  napi_get_boolean(env, v, &out);
  return out;
}
void set(napi_env env, napi_value object, const char* key, napi_value value) { napi_set_named_property(env, object, key, value); }

void throw_error(napi_env env, const std::string& message, const char* code) { napi_throw_error(env, code, message.c_str()); }

/** One call on a worker thread: `run` there, then `done` builds the resolved value on the main thread. */
struct Work {
  napi_async_work work = nullptr;
  napi_deferred deferred = nullptr;
  std::vector<napi_ref> refs;
  std::function<void()> run;
  std::function<napi_value(napi_env)> done;
  std::string error;
  std::string code;
};

void execute(napi_env, void* data) {
  Work* w = static_cast<Work*>(data);
  try {
    w->run();
  } catch (const grpo::CudaError& e) {
    w->error = e.what();
    w->code = "ERR_GRPO_ROC_CUDA";
  } catch (const std::exception& e) {
    w->error = e.what();
    w->code = "ERR_GRPO_ROC_CUDA_ENGINE";
  } catch (...) {
    w->error = "unknown failure in the CUDA engine";
    w->code = "ERR_GRPO_ROC_CUDA_ENGINE";
  }
}

void complete(napi_env env, napi_status status, void* data) {
  std::unique_ptr<Work> w(static_cast<Work*>(data));
  if (status != napi_ok && w->error.empty()) {
    w->error = "the CUDA call was cancelled";
    w->code = "ERR_GRPO_ROC_CUDA_ENGINE";
  }
  if (w->error.empty()) {
    napi_value value = w->done ? w->done(env) : nullptr;
    if (value == nullptr) napi_get_undefined(env, &value);
    napi_resolve_deferred(env, w->deferred, value);
  } else {
    napi_value message, code, error;
    napi_create_string_utf8(env, w->error.c_str(), w->error.size(), &message);
    napi_create_string_utf8(env, w->code.c_str(), w->code.size(), &code);
    napi_create_error(env, code, message, &error);
    napi_reject_deferred(env, w->deferred, error);
  }
  for (napi_ref ref : w->refs) napi_delete_reference(env, ref);
  napi_delete_async_work(env, w->work);
}

/**
 * Parses the call's arguments with `prepare` (on the main thread; it fills `w.run` and maybe `w.done`), then
 * queues the work; returns its promise. A bad argument throws synchronously, as a TypeError.
 */
napi_value queue(napi_env env, napi_callback_info info, const char* name, const std::function<void(Args&, Work&)>& prepare) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  auto w = std::make_unique<Work>();
  try {
    if (argc < 1) throw ArgumentError("expected an argument object");
    Args args(env, argv[0], w->refs);
    prepare(args, *w);
  } catch (const std::exception& e) {
    for (napi_ref ref : w->refs) napi_delete_reference(env, ref);
    napi_throw_type_error(env, "ERR_GRPO_ROC_CUDA_ARGUMENT", (std::string(name) + ": " + e.what()).c_str());
    return nullptr;
  }
  napi_value promise, resource_name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  napi_create_async_work(env, nullptr, resource_name, execute, complete, w.get(), &w->work);
  napi_queue_async_work(env, w->work);
  w.release();
  return promise;
}

grpo::Common common(const Args& a) {
  grpo::Common c;
  const std::string exec = a.string("exec", "device");
  if (exec == "device") {
    c.exec = grpo::Exec::Device;
  } else if (exec == "host") {
    c.exec = grpo::Exec::Host;
  } else {
    throw ArgumentError("exec: expected \"device\" or \"host\"");
  }
  c.chunk_bytes = static_cast<size_t>(a.integer("chunkBytes", 0));
  return c;
}

/** The logits: a Float32Array, or a Uint16Array of bfloat16 bits; shape [positions, vocab]. */
grpo::LogitsView logits(const Args& a) {
  grpo::LogitsView l;
  l.positions = a.integer("positions", 0);
  l.vocab = a.integer("vocab", 0);
  if (l.vocab < 1) throw ArgumentError("vocab: must be at least 1");
  // Token ids are int32, and a launch has one block per position (at most 2^31 - 1 blocks).
  if (l.vocab > INT32_MAX) throw ArgumentError("vocab: at most 2^31 - 1 (token ids are int32)");
  if (l.positions > INT32_MAX) throw ArgumentError("positions: at most 2^31 - 1");
  const TypedArray t = a.typed("logits");
  if (t.type == napi_float32_array) {
    l.bf16 = false;
  } else if (t.type == napi_uint16_array) {
    l.bf16 = true;
  } else {
    throw ArgumentError("logits: expected a Float32Array or a Uint16Array of bfloat16 bits");
  }
  if (t.length != static_cast<size_t>(checked_product(l.positions, l.vocab, "positions * vocab"))) {
    throw ArgumentError("logits: length is not positions * vocab");
  }
  l.data = t.data;
  return l;
}

/** The gradient's destination: the logits' own type, or a Float32Array for bfloat16 logits (widened). */
grpo::GradSink grad_sink(const Args& a, const grpo::LogitsView& l) {
  const TypedArray t = a.typed("grad");
  if (t.length != static_cast<size_t>(l.positions * l.vocab)) throw ArgumentError("grad: length is not positions * vocab");
  grpo::GradSink s;
  s.data = t.data;
  if (t.type == napi_float32_array) {
    s.widen = l.bf16;
  } else if (t.type == napi_uint16_array && l.bf16) {
    s.widen = false;
  } else {
    throw ArgumentError("grad: expected a Float32Array (or a Uint16Array for bfloat16 logits)");
  }
  return s;
}

std::shared_ptr<grpo::LossConfig> loss_config(const Args& a) {
  auto c = std::make_shared<grpo::LossConfig>();
  c->objective = static_cast<int>(a.number("objective", 0));
  c->ratio_level = static_cast<int>(a.number("ratioLevel", 0));
  c->low = a.number("low", 0.8);
  c->high = a.number("high", 1.28);
  c->delta = a.number("delta", INFINITY);
  c->has_dual_clip = a.boolean("hasDualClip", false) ? 1 : 0;
  c->dual_clip = a.number("dualClip", 0);
  c->clamp_low = a.number("clampLow", -INFINITY);
  c->clamp_high = a.number("clampHigh", INFINITY);
  c->kl_kind = static_cast<int>(a.number("klKind", -1));
  c->kl_clamp = a.boolean("klClamp", false) ? 1 : 0;
  c->kl_importance = a.boolean("klImportance", false) ? 1 : 0;
  c->kl_coef = a.number("klCoef", 0);
  c->entropy_bonus = a.boolean("entropyBonus", false) ? 1 : 0;
  c->entropy_coef = a.number("entropyCoef", 0);
  c->sapo_positive = a.number("sapoPositive", 1);
  c->sapo_negative = a.number("sapoNegative", 1.05);
  if (c->objective < 0 || c->objective >= grpo::kObjectiveCount) throw ArgumentError("objective: unknown");
  if (c->ratio_level < 0 || c->ratio_level > 2) throw ArgumentError("ratioLevel: unknown");
  if (c->kl_kind < -1 || c->kl_kind >= grpo::kKlKindCount) throw ArgumentError("klKind: unknown");
  return c;
}

grpo::LossInputs loss_inputs(const Args& a, bool with_entropy) {
  grpo::LossInputs in;
  in.rows = a.integer("rows", 0);
  in.cols = a.integer("cols", 0);
  if (in.rows > INT32_MAX) throw ArgumentError("rows: at most 2^31 - 1");
  const size_t n = static_cast<size_t>(checked_product(in.rows, in.cols, "rows * cols"));
  const size_t rows = static_cast<size_t>(in.rows);
  in.mask = a.array<uint8_t>("mask", napi_uint8_array, n);
  in.row_tokens = a.array<int32_t>("rowTokens", napi_int32_array, rows);
  in.row_weights = a.array<double>("rowWeights", napi_float64_array, rows);
  in.entropy_weights = a.array<double>("entropyWeights", napi_float64_array, rows, true);
  in.old_logp = a.array<double>("oldLogp", napi_float64_array, n, true);
  in.per_token_advantages = a.boolean("perTokenAdvantages", false);
  in.advantages = a.array<double>("advantages", napi_float64_array, in.per_token_advantages ? n : rows);
  in.ref_logp = a.array<double>("refLogp", napi_float64_array, n, true);
  in.importance = a.array<double>("importanceWeights", napi_float64_array, n, true);
  if (with_entropy) in.entropy = a.array<double>("entropy", napi_float64_array, n, true);
  return in;
}

grpo::LossOutputs loss_outputs(const Args& a, size_t n, const grpo::LossConfig& c) {
  grpo::LossOutputs out;
  out.loss = a.array<double>("outLoss", napi_float64_array, n);
  out.grad = a.array<double>("outGrad", napi_float64_array, n);
  out.kl = a.array<double>("outKl", napi_float64_array, n, c.kl_kind == grpo::kNoKl);
  out.grad_entropy = a.array<double>("outGradEntropy", napi_float64_array, n, !c.entropy_bonus);
  out.ratio = a.array<double>("outRatio", napi_float64_array, n);
  out.approx = a.array<double>("outApprox", napi_float64_array, n);
  out.flags = a.array<uint8_t>("outFlags", napi_uint8_array, n);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

napi_value Probe(napi_env env, napi_callback_info) {
  const grpo::ProbeResult p = grpo::probe();
  napi_value out;
  napi_create_object(env, &out);
  set(env, out, "ok", make_bool(env, p.ok));
  set(env, out, "errorName", make_string(env, p.error_name));
  set(env, out, "errorString", make_string(env, p.error_string));
  set(env, out, "failedCall", make_string(env, p.failed_call));
  set(env, out, "deviceCount", make_number(env, p.device_count));
  set(env, out, "name", make_string(env, p.device_name));
  set(env, out, "major", make_number(env, p.major));
  set(env, out, "minor", make_number(env, p.minor));
  set(env, out, "totalMemory", make_number(env, static_cast<double>(p.total_memory)));
  set(env, out, "freeMemory", make_number(env, static_cast<double>(p.free_memory)));
  set(env, out, "runtimeVersion", make_number(env, p.runtime_version));
  set(env, out, "driverVersion", make_number(env, p.driver_version));
  return out;
}

napi_value BuildInfo(napi_env env, napi_callback_info) {
  const grpo::BuildInfo b = grpo::build_info();
  napi_value out;
  napi_create_object(env, &out);
  set(env, out, "threads", make_number(env, b.threads));
  set(env, out, "architectures", make_string(env, b.architectures));
  return out;
}

napi_value Forward(napi_env env, napi_callback_info info) {
  return queue(env, info, "forward", [](Args& a, Work& w) {
    grpo::ForwardArgs f;
    f.common = common(a);
    f.logits = logits(a);
    const size_t P = static_cast<size_t>(f.logits.positions);
    f.tokens = a.array<int32_t>("tokens", napi_int32_array, P);
    f.active = a.array<uint8_t>("active", napi_uint8_array, P);
    check_token_ids(f.tokens, f.active, P, f.logits.vocab);
    f.inv_temperature = static_cast<float>(a.number("invTemperature", 1));
    f.logp = a.array<double>("outLogp", napi_float64_array, P);
    f.lse = a.array<double>("outLse", napi_float64_array, P);
    f.entropy = a.array<double>("outEntropy", napi_float64_array, P, true);
    w.run = [f] { grpo::forward(f); };
  });
}

napi_value Backward(napi_env env, napi_callback_info info) {
  return queue(env, info, "backward", [](Args& a, Work& w) {
    grpo::BackwardArgs b;
    b.common = common(a);
    b.logits = logits(a);
    const size_t P = static_cast<size_t>(b.logits.positions);
    b.tokens = a.array<int32_t>("tokens", napi_int32_array, P);
    b.active = a.array<uint8_t>("active", napi_uint8_array, P);
    check_token_ids(b.tokens, b.active, P, b.logits.vocab);
    b.inv_temperature = static_cast<float>(a.number("invTemperature", 1));
    b.g = a.array<double>("gradLogp", napi_float64_array, P);
    b.h = a.array<double>("gradEntropy", napi_float64_array, P, true);
    b.saved_lse = a.array<double>("savedLse", napi_float64_array, P, true);
    b.saved_entropy = a.array<double>("savedEntropy", napi_float64_array, P, true);
    if (b.saved_lse != nullptr && b.saved_entropy == nullptr) throw ArgumentError("savedEntropy: required with savedLse");
    b.lse_out = a.array<double>("outLse", napi_float64_array, P, true);
    b.check_out = a.array<uint8_t>("outChecks", napi_uint8_array, P, true);
    b.check_sum_out = a.array<double>("outCheckSums", napi_float64_array, P, true);
    if (b.check_sum_out != nullptr && b.check_out == nullptr) throw ArgumentError("outChecks: required with outCheckSums");
    b.grad = grad_sink(a, b.logits);
    w.run = [b] { grpo::backward(b); };
  });
}

napi_value PolicyLoss(napi_env env, napi_callback_info info) {
  return queue(env, info, "policyLoss", [](Args& a, Work& w) {
    auto config = loss_config(a);
    grpo::PolicyLossArgs p;
    p.common = common(a);
    p.in = loss_inputs(a, true);
    const size_t n = static_cast<size_t>(p.in.rows * p.in.cols);
    p.logp = a.array<double>("logp", napi_float64_array, n);
    p.out = loss_outputs(a, n, *config);
    w.run = [p, config]() mutable {
      p.config = config.get();
      grpo::policy_loss(p);
    };
  });
}

napi_value Fused(napi_env env, napi_callback_info info) {
  return queue(env, info, "fused", [](Args& a, Work& w) {
    auto config = loss_config(a);
    auto result = std::make_shared<grpo::FusedResult>();
    grpo::FusedArgs f;
    f.common = common(a);
    f.logits = logits(a);
    f.in = loss_inputs(a, false);
    const size_t P = static_cast<size_t>(f.logits.positions);
    if (static_cast<size_t>(f.in.rows * f.in.cols) != P) throw ArgumentError("rows * cols must equal positions");
    f.tokens = a.array<int32_t>("tokens", napi_int32_array, P);
    // The fused pass reads the token of every position its mask selects.
    check_token_ids(f.tokens, f.in.mask, P, f.logits.vocab);
    f.inv_temperature = static_cast<float>(a.number("invTemperature", 1));
    f.logp = a.array<double>("outLogp", napi_float64_array, P);
    f.lse = a.array<double>("outLse", napi_float64_array, P);
    f.entropy = a.array<double>("outEntropy", napi_float64_array, P, true);
    f.out = loss_outputs(a, P, *config);
    f.grad = grad_sink(a, f.logits);
    w.run = [f, config, result]() mutable {
      f.config = config.get();
      *result = grpo::fused(f);
    };
    w.done = [result](napi_env env) {
      napi_value out;
      napi_create_object(env, &out);
      set(env, out, "stop", make_number(env, static_cast<int>(result->stop)));
      set(env, out, "position", make_number(env, static_cast<double>(result->position)));
      set(env, out, "peakBytes", make_number(env, static_cast<double>(result->peak_bytes)));
      return out;
    };
  });
}

napi_value Bench(napi_env env, napi_callback_info info) {
  return queue(env, info, "bench", [](Args& a, Work& w) {
    grpo::BenchArgs b;
    b.rows = a.integer("rows", 4);
    b.cols = a.integer("cols", 4096);
    b.vocab = a.integer("vocab", 151936);
    b.bf16 = a.string("dtype", "float32") == "bfloat16";
    b.iterations = static_cast<int>(std::min<int64_t>(a.integer("iterations", 10), 100000));
    b.warmup = static_cast<int>(std::min<int64_t>(a.integer("warmup", 2), 100000));
    b.seed = static_cast<uint64_t>(a.integer("seed", 1));
    if (b.iterations < 1) throw ArgumentError("iterations: must be at least 1");
    if (b.vocab < 1 || b.vocab > INT32_MAX) throw ArgumentError("vocab: must be in [1, 2^31 - 1]");
    if (checked_product(b.rows, b.cols, "rows * cols") > INT32_MAX) throw ArgumentError("rows * cols: at most 2^31 - 1");
    checked_product(checked_product(b.rows, b.cols, "rows * cols"), b.vocab * 4, "rows * cols * vocab");
    auto result = std::make_shared<grpo::BenchResult>();
    w.run = [b, result] { *result = grpo::bench(b); };
    w.done = [result](napi_env env) {
      const grpo::BenchResult& r = *result;
      napi_value out;
      napi_create_object(env, &out);
      set(env, out, "device", make_string(env, r.device));
      set(env, out, "logitsBytes", make_number(env, r.logits_bytes));
      set(env, out, "fusedMs", make_number(env, r.fused_ms));
      set(env, out, "fusedMinMs", make_number(env, r.fused_min_ms));
      set(env, out, "statsMs", make_number(env, r.stats_ms));
      set(env, out, "lossMs", make_number(env, r.loss_ms));
      set(env, out, "gradMs", make_number(env, r.grad_ms));
      set(env, out, "copyMs", make_number(env, r.copy_ms));
      set(env, out, "copyGBps", make_number(env, r.copy_gbps));
      set(env, out, "boundMs", make_number(env, r.bound_ms));
      set(env, out, "peakExtraBytes", make_number(env, r.peak_extra_bytes));
      set(env, out, "leakedBytes", make_number(env, r.leaked_bytes));
      set(env, out, "maxAbsErrLogp", make_number(env, r.max_abs_err_logp));
      set(env, out, "maxAbsErrGrad", make_number(env, r.max_abs_err_grad));
      set(env, out, "checkedPositions", make_number(env, r.checked_positions));
      return out;
    };
  });
}

/** self_check.cc's cases on { exec }: { exec, ok, cases: [{ name, ok, compared, worst, detail }] }. */
napi_value SelfCheck(napi_env env, napi_callback_info info) {
  return queue(env, info, "selfCheck", [](Args& a, Work& w) {
    const grpo::Exec exec = common(a).exec;
    auto report = std::make_shared<grpo::CheckReport>();
    w.run = [exec, report] { *report = grpo::self_check(exec); };
    w.done = [report](napi_env env) {
      napi_value out, cases;
      napi_create_object(env, &out);
      set(env, out, "exec", make_string(env, report->exec));
      set(env, out, "ok", make_bool(env, report->ok));
      napi_create_array_with_length(env, report->cases.size(), &cases);
      for (size_t i = 0; i < report->cases.size(); ++i) {
        const grpo::CheckCase& c = report->cases[i];
        napi_value item;
        napi_create_object(env, &item);
        set(env, item, "name", make_string(env, c.name));
        set(env, item, "ok", make_bool(env, c.ok));
        set(env, item, "compared", make_number(env, static_cast<double>(c.compared)));
        set(env, item, "worst", make_number(env, c.worst));
        set(env, item, "detail", make_string(env, c.detail));
        napi_set_element(env, cases, static_cast<uint32_t>(i), item);
      }
      set(env, out, "cases", cases);
      return out;
    };
  });
}

/** One of the kernels' bf16 conversions on the CPU, for the bit-exactness test (synchronous): a typed array in, one out. */
template <typename In, typename Out>
napi_value convert(napi_env env, napi_callback_info info, napi_typedarray_type in_type, napi_typedarray_type out_type, const char* expected,
                   void (*conversion)(const In*, Out*, size_t)) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  napi_typedarray_type type;
  size_t length;
  void* data;
  napi_value buffer;
  size_t offset;
  if (argc < 1 || napi_get_typedarray_info(env, argv[0], &type, &length, &data, &buffer, &offset) != napi_ok || type != in_type) {
    throw_error(env, expected, "ERR_GRPO_ROC_CUDA_ARGUMENT");
    return nullptr;
  }
  napi_value out_buffer, out;
  void* out_data;
  napi_create_arraybuffer(env, length * sizeof(Out), &out_data, &out_buffer);
  napi_create_typedarray(env, out_type, length, out_buffer, 0, &out);
  conversion(static_cast<const In*>(data), static_cast<Out*>(out_data), length);
  return out;
}

napi_value FloatToBf16(napi_env env, napi_callback_info info) {
  return convert<float, uint16_t>(env, info, napi_float32_array, napi_uint16_array, "floatToBf16: expected a Float32Array",
                                  grpo::float_to_bf16_host);
}

napi_value Bf16ToFloat(napi_env env, napi_callback_info info) {
  return convert<uint16_t, float>(env, info, napi_uint16_array, napi_float32_array, "bf16ToFloat: expected a Uint16Array",
                                  grpo::bf16_to_float_host);
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor properties[] = {
      {"probe", nullptr, Probe, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"buildInfo", nullptr, BuildInfo, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"forward", nullptr, Forward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"backward", nullptr, Backward, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"policyLoss", nullptr, PolicyLoss, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"fused", nullptr, Fused, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"bench", nullptr, Bench, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"selfCheck", nullptr, SelfCheck, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"floatToBf16", nullptr, FloatToBf16, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"bf16ToFloat", nullptr, Bf16ToFloat, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, sizeof properties / sizeof properties[0], properties);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
