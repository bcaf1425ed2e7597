// The engine behind the N-API addon: plain C++ (no CUDA types), so that addon.cc compiles with the host compiler
// alone. Every entry runs on an Executor: the GPU ("device"), or the CPU running the kernels' own code thread by
// emulated thread ("host", what CI checks without a GPU). The orchestration (chunking, the two passes, the loss
// in between, the checks) is the same code for both.
#pragma once

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace grpo {

/** A CUDA runtime error, with the error's name and string and what was being done. */
class CudaError : public std::runtime_error {
 public:
  CudaError(const std::string& name, const std::string& text, const std::string& where)
      : std::runtime_error("CUDA error " + name + " (" + text + ") in " + where), name_(name) {}
  const std::string& name() const { return name_; }

 private:
  std::string name_;
};

enum class Exec { Device, Host };

struct ProbeResult {
  bool ok = false;
  /** When not ok: the CUDA error's name and string, and the call that failed. */
  std::string error_name;
  std::string error_string;
  std::string failed_call;
  int device_count = 0;
  std::string device_name;
  int major = 0;
  int minor = 0;
  size_t total_memory = 0;
  size_t free_memory = 0;
  int runtime_version = 0;
  int driver_version = 0;
};

/** Never throws: no driver, no device or no kernel image for the device come back as errors. */
ProbeResult probe();

/**
 * Why a failed probe cannot run, in the words src/cuda/addon.ts (deviceReason) uses: "no CUDA device: …",
 * "CUDA driver too old (driver X, runtime Y): …" (cudaErrorInsufficientDriver with a driver present), or "no CUDA
 * device this build can run on: …" (no kernel image for the device).
 */
std::string describe_probe_failure(const ProbeResult& p);

/** The build's constants, for the JS side and the tests. */
struct BuildInfo {
  int threads;
  const char* architectures;
};
BuildInfo build_info();

/**
 * Logits [positions, vocab], row-major, float32 or bfloat16 (the raw bits), on the host (copied to the device in
 * chunks) or already on the device (bench).
 */
struct LogitsView {
  const void* data = nullptr;
  bool bf16 = false;
  bool on_device = false;
  int64_t positions = 0;
  int64_t vocab = 0;
};

/**
 * Where the gradient goes: same dtype and residence as the logits, except that bfloat16 gradients bound for the
 * host may be widened to float32 (`widen`: the JS side returns a Float32Array).
 */
struct GradSink {
  void* data = nullptr;
  bool widen = false;
};

struct Common {
  Exec exec = Exec::Device;
  /** Bytes of logits (plus gradient) one chunk may hold on the device; 0: the default. */
  size_t chunk_bytes = 0;
};

/** Token log-probs: logp, logsumexp, entropy per position (NaN logsumexp where `active` is 0). */
struct ForwardArgs {
  Common common;
  LogitsView logits;
  const int32_t* tokens = nullptr;
  const uint8_t* active = nullptr;
  float inv_temperature = 1.f;
  double* logp = nullptr;
  double* lse = nullptr;
  double* entropy = nullptr;
};
void forward(const ForwardArgs& a);

/**
 * The gradient into the logits from dL/dlogp (g) and dL/dentropy (h, optional). Statistics from `saved_lse` /
 * `saved_entropy` when given and exact (one read of the logits; a float64 logsumexp beyond 2^32 has lost the log sum
 * of the row, and then they are computed), else computed first per chunk (two reads); `lse_out` receives the
 * logsumexps so the caller can report a bad row. With `check_out`, each active row's check of what the pass read
 * (grpo_math.h, check_flags: 1 NaN or +Infinity, 2 only -Infinity, 4 saved statistics that do not describe the
 * logits, their probabilities summing to `check_sum_out`). Rows where `active` is 0 get exactly 0.
 */
struct BackwardArgs {
  Common common;
  LogitsView logits;
  const int32_t* tokens = nullptr;
  const uint8_t* active = nullptr;
  float inv_temperature = 1.f;
  const double* g = nullptr;
  const double* h = nullptr;
  const double* saved_lse = nullptr;
  const double* saved_entropy = nullptr;
  double* lse_out = nullptr;
  uint8_t* check_out = nullptr;
  double* check_sum_out = nullptr;
  GradSink grad;
};
void backward(const BackwardArgs& a);

/** The policy loss's per-token inputs [rows, cols] and per-row weights, all float64, host memory. */
struct LossInputs {
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* mask = nullptr;
  /** Valid tokens per row. */
  const int32_t* row_tokens = nullptr;
  const double* row_weights = nullptr;
  const double* entropy_weights = nullptr;
  /** null: on-policy (the log-ratio is 0). */
  const double* old_logp = nullptr;
  const double* advantages = nullptr;
  bool per_token_advantages = false;
  const double* ref_logp = nullptr;
  const double* importance = nullptr;
  /** The entropy input of the loss (policyLoss); the fused pass uses its own. */
  const double* entropy = nullptr;
};

struct LossOutputs {
  double* loss = nullptr;
  double* grad = nullptr;
  double* kl = nullptr;
  double* grad_entropy = nullptr;
  double* ratio = nullptr;
  double* approx = nullptr;
  uint8_t* flags = nullptr;
};

struct LossConfig;

/** The per-token loss terms and dloss/dlogp on the device, from host logp [rows, cols]. */
struct PolicyLossArgs {
  Common common;
  const LossConfig* config = nullptr;
  LossInputs in;
  const double* logp = nullptr;
  LossOutputs out;
};
void policy_loss(const PolicyLossArgs& a);

/**
 * Why the fused pass stopped before its backward pass, for the JS side to raise the reference's error: a bad row of
 * logits, a log-ratio that is not finite, or a loss gradient that the float32 gradient pass cannot hold.
 */
enum class Stop { None = 0, BadLogits = 1, NonFiniteLogRatio = 2, GradientOverflow = 3 };

/**
 * The fused loss from the logits: pass 1 (statistics), the loss on the device, pass 2 (gradient). `mask` of the
 * loss inputs selects the positions; the forward results and the loss outputs come back to the host.
 */
struct FusedArgs {
  Common common;
  LogitsView logits;
  const int32_t* tokens = nullptr;
  float inv_temperature = 1.f;
  const LossConfig* config = nullptr;
  LossInputs in;
  double* logp = nullptr;
  double* lse = nullptr;
  double* entropy = nullptr;
  LossOutputs out;
  GradSink grad;
};
struct FusedResult {
  Stop stop = Stop::None;
  int64_t position = -1;
  /** The most device memory the call held at once, beyond the logits and the gradient (host logits: the chunks). */
  size_t peak_bytes = 0;
};
FusedResult fused(const FusedArgs& a);

/** The benchmark of the fused pass on device-resident logits (bench/cuda.bench.ts, native/src/bench_main.cc). */
struct BenchArgs {
  int64_t rows = 4;
  int64_t cols = 4096;
  int64_t vocab = 151936;
  bool bf16 = false;
  int iterations = 10;
  int warmup = 2;
  uint64_t seed = 1;
};
struct BenchResult {
  std::string device;
  double logits_bytes = 0;
  double fused_ms = 0;
  double fused_min_ms = 0;
  double stats_ms = 0;
  double loss_ms = 0;
  double grad_ms = 0;
  double copy_ms = 0;
  double copy_gbps = 0;
  double bound_ms = 0;
  /** The fused call's own device memory at its peak (O(B T)), and what was not given back after the runs. */
  double peak_extra_bytes = 0;
  double leaked_bytes = 0;
  double max_abs_err_logp = 0;
  double max_abs_err_grad = 0;
  int checked_positions = 0;
};
BenchResult bench(const BenchArgs& a);

/** bf16 conversions through the kernels' functions, for the bit-exactness test. */
void float_to_bf16_host(const float* in, uint16_t* out, size_t n);
void bf16_to_float_host(const uint16_t* in, float* out, size_t n);

}  // namespace grpo
