// The CUDA kernels and the orchestration around them (see engine.h). One orchestration, two executors: the GPU,
// and the CPU running each kernel's per-thread code for every emulated thread of every block, in the order of the
// GPU's reductions (warp butterflies, then across warps), so that everything but the launches, the shuffles and
// the copies is exercised on machines without a GPU.
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <vector>

#include "engine.h"
#include "grpo_math.h"

namespace grpo {

/** Threads per block of the vocabulary kernels: 16 warps, ~75 float4 loads each for V = 151936. */
constexpr int kThreads = 512;
/** Threads per block of the [B, T] loss kernels. */
constexpr int kLossThreads = 256;

#ifndef GRPO_ROC_ARCHITECTURES
#define GRPO_ROC_ARCHITECTURES "unknown"
#endif

BuildInfo build_info() { return BuildInfo{kThreads, GRPO_ROC_ARCHITECTURES}; }

static void check(cudaError_t status, const char* where) {
  if (status != cudaSuccess) {
    // Clears the error when it is not sticky, so that the next call starts clean.
    cudaGetLastError();
    throw CudaError(cudaGetErrorName(status), cudaGetErrorString(status), where);
  }
}

/**
 * The grid of a launch with one block per position (or per row): a grid's x dimension holds at most 2^31 - 1
 * blocks. [4, 4096] positions is 16384 blocks; the check keeps a wrapped-around unsigned cast from ever launching
 * a wrong grid. The element offsets inside the kernels are int64 (B*T*V = 2.5e9 overflows int32).
 */
static unsigned grid_blocks(int64_t blocks, const char* what) {
  if (blocks < 1 || blocks > 0x7fffffffLL) {
    throw std::runtime_error(std::string(what) + ": " + std::to_string(blocks) + " blocks is outside a grid's range [1, 2^31 - 1]");
  }
  return static_cast<unsigned>(blocks);
}

// ---------------------------------------------------------------------------------------------------------------
// Per-row and per-token bodies, shared by the kernels and the host executor.

/** Where the statistics kernel writes each position's results (executor memory). */
struct RowOut {
  double* logp;
  double* lse;
  double* entropy;
  /** The row's largest logit and log sum e^((x - shift)/tau): what the gradient reads (see grpo_math.h). */
  float* shift;
  float* log_sum;
};

template <typename T>
GR_HD void row_epilogue(const Stats& s, const T* row, int64_t token, float inv_t, int64_t pos, const RowOut& o) {
  float shift, log_sum, entropy;
  stats_finish(s, shift, log_sum, entropy);
  // In double: (x - shift)/tau of logits near +-3.4e38 apart is finite there, where float32 overflows.
  const double x = to_float(row[token]);
  o.logp[pos] = (x - shift) * inv_t - log_sum;
  o.lse[pos] = static_cast<double>(shift) * inv_t + log_sum;
  o.entropy[pos] = entropy;
  o.shift[pos] = shift;
  o.log_sum[pos] = log_sum;
}

GR_HD void inactive_epilogue(int64_t pos, const RowOut& o) {
  o.logp[pos] = 0.0;
  o.lse[pos] = NAN;
  o.entropy[pos] = 0.0;
  o.shift[pos] = 0.f;
  o.log_sum[pos] = NAN;
}

struct GradRow {
  const int32_t* tokens;
  const uint8_t* active;
  const float* shift;
  const float* log_sum;
  const double* entropy;
  const double* g;
  const double* h;
  float inv_t;
  /** Per position, when the pass checks what it reads (see RowCheck): the merged bits and probability sums. */
  unsigned* check_bits;
  float* check_sums;
};

/** One thread's share of a row's gradient, and what it saw of the row (nothing for an inactive row). */
template <typename T>
GR_HD RowCheck grad_row_thread(const T* row, T* out, int64_t vocab, int64_t pos, const GradRow& r, int t, int n) {
  if (!r.active[pos]) {
    for (int64_t v = t; v < vocab; v += n) store(out + v, 0.f);
    return RowCheck{0u, 0.f};
  }
  const RowStats stats{r.shift[pos], r.log_sum[pos], r.entropy != nullptr ? static_cast<float>(r.entropy[pos]) : 0.f};
  const float g = static_cast<float>(r.g[pos]);
  const float h = r.h != nullptr ? static_cast<float>(r.h[pos]) : 0.f;
  const int64_t token = r.tokens[pos];
  if (reinterpret_cast<uint64_t>(row) % 16 == reinterpret_cast<uint64_t>(out) % 16) {
    return thread_grad(row, out, vocab, token, stats, g, h, r.inv_t, t, n);
  }
  return thread_grad_scalar(row, out, vocab, token, stats, g, h, r.inv_t, t, n);
}

/** The [B, T] loss's inputs and outputs where the loss kernels read them (device or host memory). */
struct LossData {
  int64_t rows;
  int64_t cols;
  const uint8_t* mask;
  const int32_t* row_tokens;
  const double* w;
  const double* ew;
  const double* old_logp;
  const double* advantages;
  int per_token_advantages;
  const double* ref_logp;
  const double* importance;
  const double* entropy;
  const double* logp;
  double* sequence;
  double* row_grad;
  LossOutputs out;
};

GR_HD double sequence_term(const LossData& d, int64_t i) {
  if (!d.mask[i]) return 0.0;
  return d.old_logp != nullptr ? d.logp[i] - d.old_logp[i] : 0.0;
}

GR_HD void token_body(const LossConfig& c, const LossData& d, int64_t i) {
  if (!d.mask[i]) {
    d.out.loss[i] = 0.0;
    d.out.grad[i] = 0.0;
    if (d.out.kl != nullptr) d.out.kl[i] = 0.0;
    if (d.out.grad_entropy != nullptr) d.out.grad_entropy[i] = 0.0;
    d.out.ratio[i] = 0.0;
    d.out.approx[i] = 0.0;
    d.out.flags[i] = 0;
    d.row_grad[i] = 0.0;
    return;
  }
  const int64_t b = i / d.cols;
  const double logp = d.logp[i];
  // Without oldLogp the reference takes logp itself: the log-ratio is exactly 0.
  const double old_logp = d.old_logp != nullptr ? d.old_logp[i] : logp;
  const double advantage = d.per_token_advantages ? d.advantages[i] : d.advantages[b];
  const double ref = d.ref_logp != nullptr ? d.ref_logp[i] : 0.0;
  const double importance = d.importance != nullptr ? d.importance[i] : 1.0;
  const double entropy = d.entropy != nullptr ? d.entropy[i] : 0.0;
  const double sequence = c.ratio_level != kToken ? d.sequence[b] : 0.0;
  const double ew = d.ew != nullptr ? d.ew[b] : 0.0;
  TokenResult r;
  token_loss(c, logp, old_logp, sequence, advantage, ref, importance, entropy, d.w[b], ew, r);
  d.out.loss[i] = r.loss;
  d.out.grad[i] = r.grad;
  if (d.out.kl != nullptr) d.out.kl[i] = r.kl;
  if (d.out.grad_entropy != nullptr) d.out.grad_entropy[i] = r.grad_entropy;
  d.out.ratio[i] = r.ratio;
  d.out.approx[i] = r.approx;
  d.out.flags[i] = r.flags;
  d.row_grad[i] = r.row_grad;
}

// ---------------------------------------------------------------------------------------------------------------
// Kernels

__device__ __forceinline__ Stats shuffle_xor(const Stats& s, int offset) {
  return Stats{__shfl_xor_sync(0xffffffffu, s.m, offset), __shfl_xor_sync(0xffffffffu, s.s, offset),
               __shfl_xor_sync(0xffffffffu, s.w, offset)};
}

/** The block's merged statistics, valid in thread 0: butterflies within each warp, then across the warps. */
__device__ __forceinline__ Stats block_merge(Stats s, float inv_t) {
  __shared__ Stats per_warp[kThreads / 32];
  for (int offset = 16; offset > 0; offset >>= 1) s = stats_merge(s, shuffle_xor(s, offset), inv_t);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) per_warp[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < kThreads / 32 ? per_warp[lane] : stats_empty();
    for (int offset = 16; offset > 0; offset >>= 1) s = stats_merge(s, shuffle_xor(s, offset), inv_t);
  }
  return s;
}

/** One block per position: the row's statistics and the log-prob of the token, online over the vocabulary. */
template <typename T>
__global__ void __launch_bounds__(kThreads) stats_kernel(const T* __restrict__ logits, int64_t vocab, int64_t row0,
                                                         const int32_t* __restrict__ tokens, const uint8_t* __restrict__ active,
                                                         float inv_t, RowOut o) {
  const int64_t pos = row0 + blockIdx.x;
  if (!active[pos]) {
    if (threadIdx.x == 0) inactive_epilogue(pos, o);
    return;
  }
  const T* row = logits + static_cast<int64_t>(blockIdx.x) * vocab;
  Stats s = thread_stats(row, vocab, inv_t, threadIdx.x, kThreads);
  s = block_merge(s, inv_t);
  if (threadIdx.x == 0) row_epilogue(s, row, tokens[pos], inv_t, pos, o);
}

/** One block per position: the gradient row, one read of the logits and one write (and, checking, one sum). */
template <typename T>
__global__ void __launch_bounds__(kThreads) grad_kernel(const T* __restrict__ logits, T* __restrict__ out, int64_t vocab,
                                                        int64_t row0, GradRow r) {
  const int64_t offset = static_cast<int64_t>(blockIdx.x) * vocab;
  const int64_t pos = row0 + blockIdx.x;
  RowCheck c = grad_row_thread(logits + offset, out + offset, vocab, pos, r, threadIdx.x, kThreads);
  if (r.check_bits == nullptr) return;
  // Each warp's share, then one atomic per warp (16 per row, against 512 per thread).
  for (int offset = 16; offset > 0; offset >>= 1) {
    c.bits |= __shfl_xor_sync(0xffffffffu, c.bits, offset);
    c.probability_sum += __shfl_xor_sync(0xffffffffu, c.probability_sum, offset);
  }
  if ((threadIdx.x & 31) == 0 && r.active[pos]) {
    atomicOr(&r.check_bits[pos], c.bits);
    atomicAdd(&r.check_sums[pos], c.probability_sum);
  }
}

__device__ double block_sum(double x) {
  __shared__ double per_warp[kLossThreads / 32];
  __shared__ double total;
  for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) per_warp[warp] = x;
  __syncthreads();
  if (warp == 0) {
    x = lane < kLossThreads / 32 ? per_warp[lane] : 0.0;
    for (int offset = 16; offset > 0; offset >>= 1) x += __shfl_xor_sync(0xffffffffu, x, offset);
    if (lane == 0) total = x;
  }
  __syncthreads();
  return total;
}

/** One block per row: the row's mean log-ratio (sequence-level ratios). */
__global__ void __launch_bounds__(kLossThreads) sequence_kernel(LossData d) {
  const int64_t b = blockIdx.x;
  double sum = 0.0;
  for (int64_t t = threadIdx.x; t < d.cols; t += kLossThreads) sum += sequence_term(d, b * d.cols + t);
  sum = block_sum(sum);
  if (threadIdx.x == 0) d.sequence[b] = d.row_tokens[b] > 0 ? sum / d.row_tokens[b] : 0.0;
}

__global__ void __launch_bounds__(kLossThreads) token_kernel(LossConfig c, LossData d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * kLossThreads + threadIdx.x;
  if (i < d.rows * d.cols) token_body(c, d, i);
}

/** One block per row: dloss/dlog(rho_b), spread evenly over the row's valid tokens (log rho_b is their mean). */
__global__ void __launch_bounds__(kLossThreads) row_grad_kernel(LossData d) {
  const int64_t b = blockIdx.x;
  double sum = 0.0;
  for (int64_t t = threadIdx.x; t < d.cols; t += kLossThreads) sum += d.row_grad[b * d.cols + t];
  sum = block_sum(sum);
  if (sum == 0.0 || d.row_tokens[b] == 0) return;
  const double share = sum / d.row_tokens[b];
  for (int64_t t = threadIdx.x; t < d.cols; t += kLossThreads) {
    const int64_t i = b * d.cols + t;
    if (d.mask[i]) d.out.grad[i] += share;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Executors

class Executor {
 public:
  virtual ~Executor() = default;
  void* alloc(size_t bytes, const char* what) {
    void* p = raw_alloc(bytes == 0 ? 16 : bytes, what);
    current_ += bytes;
    peak_ = std::max(peak_, current_);
    sizes_.emplace_back(p, bytes);
    return p;
  }
  void release(void* p) {
    for (auto it = sizes_.begin(); it != sizes_.end(); ++it) {
      if (it->first == p) {
        current_ -= it->second;
        sizes_.erase(it);
        break;
      }
    }
    raw_release(p);
  }
  size_t peak() const { return peak_; }
  virtual void to_device(void* dst, const void* src, size_t bytes, const char* what) = 0;
  virtual void to_host(void* dst, const void* src, size_t bytes, const char* what) = 0;
  virtual size_t default_chunk_bytes() = 0;
  virtual void stats(const void* logits, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const int32_t* tokens,
                     const uint8_t* active, float inv_t, const RowOut& out) = 0;
  virtual void grad(const void* logits, void* out, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const GradRow& r) = 0;
  virtual void loss(const LossConfig& c, const LossData& d) = 0;
  virtual void sync(const char* what) = 0;

 protected:
  virtual void* raw_alloc(size_t bytes, const char* what) = 0;
  virtual void raw_release(void* p) = 0;

 private:
  size_t current_ = 0;
  size_t peak_ = 0;
  std::vector<std::pair<void*, size_t>> sizes_;
};

class DeviceExecutor final : public Executor {
 public:
  void to_device(void* dst, const void* src, size_t bytes, const char* what) override {
    if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice), what);
  }
  void to_host(void* dst, const void* src, size_t bytes, const char* what) override {
    if (bytes > 0) check(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost), what);
  }
  size_t default_chunk_bytes() override {
    if (const char* env = std::getenv("GRPO_ROC_CUDA_CHUNK_BYTES")) {
      const long long v = std::atoll(env);
      if (v > 0) return static_cast<size_t>(v);
    }
    size_t free_bytes = 0, total = 0;
    check(cudaMemGetInfo(&free_bytes, &total), "cudaMemGetInfo");
    return std::max<size_t>(size_t{64} << 20, std::min<size_t>(size_t{1} << 30, free_bytes / 4));
  }
  void stats(const void* logits, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const int32_t* tokens, const uint8_t* active,
             float inv_t, const RowOut& out) override {
    if (rows == 0) return;
    if (bf16) {
      stats_kernel<uint16_t><<<grid_blocks(rows, "the statistics kernel"), kThreads>>>(static_cast<const uint16_t*>(logits), vocab, row0, tokens,
                                                                        active, inv_t, out);
    } else {
      stats_kernel<float><<<grid_blocks(rows, "the statistics kernel"), kThreads>>>(static_cast<const float*>(logits), vocab, row0, tokens, active,
                                                                     inv_t, out);
    }
    check(cudaGetLastError(), "launching the statistics kernel");
  }
  void grad(const void* logits, void* out, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const GradRow& r) override {
    if (rows == 0) return;
    if (bf16) {
      grad_kernel<uint16_t><<<grid_blocks(rows, "the gradient kernel"), kThreads>>>(static_cast<const uint16_t*>(logits), static_cast<uint16_t*>(out),
                                                                       vocab, row0, r);
    } else {
      grad_kernel<float><<<grid_blocks(rows, "the gradient kernel"), kThreads>>>(static_cast<const float*>(logits), static_cast<float*>(out), vocab,
                                                                    row0, r);
    }
    check(cudaGetLastError(), "launching the gradient kernel");
  }
  void loss(const LossConfig& c, const LossData& d) override {
    const int64_t n = d.rows * d.cols;
    if (n == 0) return;
    if (c.ratio_level != kToken) {
      sequence_kernel<<<grid_blocks(d.rows, "the sequence-ratio kernel"), kLossThreads>>>(d);
      check(cudaGetLastError(), "launching the sequence-ratio kernel");
    }
    token_kernel<<<grid_blocks((n + kLossThreads - 1) / kLossThreads, "the per-token loss kernel"), kLossThreads>>>(c, d);
    check(cudaGetLastError(), "launching the per-token loss kernel");
    if (c.ratio_level != kToken) {
      row_grad_kernel<<<grid_blocks(d.rows, "the row-gradient kernel"), kLossThreads>>>(d);
      check(cudaGetLastError(), "launching the row-gradient kernel");
    }
  }
  void sync(const char* what) override { check(cudaDeviceSynchronize(), what); }

 protected:
  void* raw_alloc(size_t bytes, const char* what) override {
    void* p = nullptr;
    check(cudaMalloc(&p, bytes), what);
    return p;
  }
  void raw_release(void* p) override { cudaFree(p); }
};

/** The kernels' per-thread code on the CPU, block by block, each block's threads emulated in order. */
class HostExecutor final : public Executor {
 public:
  void to_device(void* dst, const void* src, size_t bytes, const char*) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
  }
  void to_host(void* dst, const void* src, size_t bytes, const char*) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
  }
  size_t default_chunk_bytes() override { return size_t{64} << 20; }
  void stats(const void* logits, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const int32_t* tokens, const uint8_t* active,
             float inv_t, const RowOut& out) override {
    if (bf16) {
      stats_rows(static_cast<const uint16_t*>(logits), rows, vocab, row0, tokens, active, inv_t, out);
    } else {
      stats_rows(static_cast<const float*>(logits), rows, vocab, row0, tokens, active, inv_t, out);
    }
  }
  void grad(const void* logits, void* out, bool bf16, int64_t rows, int64_t vocab, int64_t row0, const GradRow& r) override {
    if (bf16) {
      grad_rows(static_cast<const uint16_t*>(logits), static_cast<uint16_t*>(out), rows, vocab, row0, r);
    } else {
      grad_rows(static_cast<const float*>(logits), static_cast<float*>(out), rows, vocab, row0, r);
    }
  }
  void loss(const LossConfig& c, const LossData& d) override {
    if (c.ratio_level != kToken) {
      for (int64_t b = 0; b < d.rows; ++b) {
        double sum = 0.0;
        for (int64_t t = 0; t < d.cols; ++t) sum += sequence_term(d, b * d.cols + t);
        d.sequence[b] = d.row_tokens[b] > 0 ? sum / d.row_tokens[b] : 0.0;
      }
    }
    for (int64_t i = 0; i < d.rows * d.cols; ++i) token_body(c, d, i);
    if (c.ratio_level != kToken) {
      for (int64_t b = 0; b < d.rows; ++b) {
        double sum = 0.0;
        for (int64_t t = 0; t < d.cols; ++t) sum += d.row_grad[b * d.cols + t];
        if (sum == 0.0 || d.row_tokens[b] == 0) continue;
        const double share = sum / d.row_tokens[b];
        for (int64_t t = 0; t < d.cols; ++t) {
          if (d.mask[b * d.cols + t]) d.out.grad[b * d.cols + t] += share;
        }
      }
    }
  }
  void sync(const char*) override {}

 protected:
  void* raw_alloc(size_t bytes, const char* what) override {
    // 16-byte aligned like cudaMalloc's 256, so that rows split into head, vectors and tail as on the device.
    void* p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
    if (p == nullptr) throw std::runtime_error(std::string("out of host memory in ") + what);
    return p;
  }
  void raw_release(void* p) override { std::free(p); }

 private:
  /** Lane i of a warp after the butterfly: merge(own, partner) for offsets 16, 8, 4, 2, 1, as __shfl_xor_sync. */
  static Stats butterfly(Stats (&lanes)[32], float inv_t) {
    for (int offset = 16; offset > 0; offset >>= 1) {
      Stats next[32];
      for (int lane = 0; lane < 32; ++lane) next[lane] = stats_merge(lanes[lane], lanes[lane ^ offset], inv_t);
      std::copy(next, next + 32, lanes);
    }
    return lanes[0];
  }

  template <typename T>
  static void stats_rows(const T* logits, int64_t rows, int64_t vocab, int64_t row0, const int32_t* tokens, const uint8_t* active,
                         float inv_t, const RowOut& out) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = row0 + r;
      if (!active[pos]) {
        inactive_epilogue(pos, out);
        continue;
      }
      const T* row = logits + r * vocab;
      Stats per_warp[32];
      for (int warp = 0; warp < 32; ++warp) per_warp[warp] = stats_empty();
      for (int warp = 0; warp < kThreads / 32; ++warp) {
        Stats lanes[32];
        for (int lane = 0; lane < 32; ++lane) lanes[lane] = thread_stats(row, vocab, inv_t, warp * 32 + lane, kThreads);
        per_warp[warp] = butterfly(lanes, inv_t);
      }
      const Stats s = butterfly(per_warp, inv_t);
      row_epilogue(s, row, tokens[pos], inv_t, pos, out);
    }
  }

  template <typename T>
  static void grad_rows(const T* logits, T* out, int64_t rows, int64_t vocab, int64_t row0, const GradRow& r) {
    for (int64_t k = 0; k < rows; ++k) {
      const int64_t pos = row0 + k;
      RowCheck row{0u, 0.f};
      for (int t = 0; t < kThreads; ++t) {
        const RowCheck c = grad_row_thread(logits + k * vocab, out + k * vocab, vocab, pos, r, t, kThreads);
        row.bits |= c.bits;
        row.probability_sum += c.probability_sum;
      }
      if (r.check_bits != nullptr && r.active[pos]) {
        r.check_bits[pos] |= row.bits;
        r.check_sums[pos] += row.probability_sum;
      }
    }
  }
};

/** The GPU is used by one call at a time: each call sizes its chunks to the memory it finds free. */
static std::recursive_mutex device_mutex;

struct Session {
  std::unique_lock<std::recursive_mutex> lock;
  std::unique_ptr<Executor> executor;
  explicit Session(Exec exec) {
    if (exec == Exec::Device) {
      lock = std::unique_lock<std::recursive_mutex>(device_mutex);
      executor = std::make_unique<DeviceExecutor>();
    } else {
      executor = std::make_unique<HostExecutor>();
    }
  }
};

/** A buffer of the executor's memory, released on every path out (including a thrown CUDA error). */
class Buffer {
 public:
  Buffer(Executor& e, size_t bytes, const char* what) : e_(&e), p_(e.alloc(bytes, what)) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() {
    if (p_ != nullptr) e_->release(p_);
  }
  template <typename T>
  T* as() const {
    return static_cast<T*>(p_);
  }

 private:
  Executor* e_;
  void* p_;
};

/** An optional host array on the executor (null stays null). */
template <typename T>
static std::unique_ptr<Buffer> upload(Executor& e, const T* host, size_t count, const char* what) {
  if (host == nullptr) return nullptr;
  auto buffer = std::make_unique<Buffer>(e, count * sizeof(T), what);
  e.to_device(buffer->as<void>(), host, count * sizeof(T), what);
  return buffer;
}

template <typename T>
static T* ptr(const std::unique_ptr<Buffer>& b) {
  return b ? b->as<T>() : nullptr;
}

static size_t element_bytes(const LogitsView& l) { return l.bf16 ? 2 : 4; }

/** The statistics of every position on the executor: what the statistics kernel writes and the gradient reads. */
struct RowBuffers {
  Buffer logp, lse, entropy, shift, log_sum;
  RowBuffers(Executor& e, int64_t positions)
      : logp(e, positions * sizeof(double), "allocating logp"),
        lse(e, positions * sizeof(double), "allocating logsumexp"),
        entropy(e, positions * sizeof(double), "allocating entropy"),
        shift(e, positions * sizeof(float), "allocating the rows' shifts"),
        log_sum(e, positions * sizeof(float), "allocating the rows' log sums") {}
  RowOut out() const { return RowOut{logp.as<double>(), lse.as<double>(), entropy.as<double>(), shift.as<float>(), log_sum.as<float>()}; }
  void download(Executor& e, int64_t positions, double* logp_out, double* lse_out, double* entropy_out) const {
    const size_t bytes = static_cast<size_t>(positions) * sizeof(double);
    if (logp_out != nullptr) e.to_host(logp_out, logp.as<void>(), bytes, "copying logp to the host");
    if (lse_out != nullptr) e.to_host(lse_out, lse.as<void>(), bytes, "copying logsumexp to the host");
    if (entropy_out != nullptr) e.to_host(entropy_out, entropy.as<void>(), bytes, "copying entropy to the host");
  }
};

/**
 * Saved logsumexps (lse = shift/tau + log sum) as the gradient reads them: shift a float32 near lse * tau, and the
 * log sum the rest. False when some active position's cannot be exact: beyond |lse| = 2^24 the float32 shift is
 * more than an ulp of 1 away from the row's largest logit (and a float64 logsumexp near 3e38 has lost the log sum
 * altogether: 3e38 + log 4 = 3e38), or a value is not finite; then the pass computes the statistics from the
 * logits instead. (src/webgpu/float32.ts, savedShift, is the same rule, with the JS side's knowledge of tau.)
 */
static bool saved_shifts(const BackwardArgs& a, std::vector<float>& shift, std::vector<float>& log_sum) {
  const int64_t P = a.logits.positions;
  shift.assign(P, 0.f);
  log_sum.assign(P, 0.f);
  const double inv_t = a.inv_temperature;
  for (int64_t i = 0; i < P; ++i) {
    if (!a.active[i]) continue;
    const double lse = a.saved_lse[i];
    if (!(std::fabs(lse) <= 16777216.0) || !std::isfinite(a.saved_entropy[i])) return false;
    const float s = static_cast<float>(lse / inv_t);
    if (!std::isfinite(s)) return false;
    shift[i] = s;
    log_sum[i] = static_cast<float>(lse - static_cast<double>(s) * inv_t);
  }
  return true;
}

/**
 * Whether the gradient of one position fits float32: |g|/tau + |h|/tau (1/e + ln V) bounds its entries (p |log p| <=
 * 1/e, H <= ln V).
 */
static bool gradient_fits(double g, double h, float inv_t, int64_t vocab) {
  const double reach = std::fabs(g) * inv_t + std::fabs(h) * inv_t * (0.36787944117144233 + std::log(static_cast<double>(vocab)));
  return reach <= 3.4028234663852886e38;
}

/** Rows of logits per chunk: `per_row` bytes each, within the chunk budget, at least one. */
static int64_t chunk_rows(const Common& c, Executor& e, int64_t positions, size_t per_row) {
  const size_t budget = c.chunk_bytes > 0 ? c.chunk_bytes : e.default_chunk_bytes();
  const int64_t rows = static_cast<int64_t>(std::max<size_t>(1, budget / std::max<size_t>(1, per_row)));
  return std::min<int64_t>(rows, std::max<int64_t>(1, positions));
}

/**
 * The logits a pass reads, chunk by chunk: device-resident logits are used in place; host logits are copied into
 * one chunk buffer, or into one buffer holding them all (then a second pass reads them without copying again).
 */
class LogitsChunks {
 public:
  LogitsChunks(Executor& e, const Common& c, const LogitsView& l, size_t per_row_extra)
      : e_(e), l_(l), elt_(element_bytes(l)) {
    if (l.on_device) {
      rows_ = std::max<int64_t>(1, l.positions);
      return;
    }
    rows_ = chunk_rows(c, e, l.positions, l.vocab * elt_ + per_row_extra);
    buffer_ = std::make_unique<Buffer>(e, static_cast<size_t>(rows_) * l.vocab * elt_, "allocating the logits chunk");
  }
  int64_t rows() const { return rows_; }
  /** The device pointer of rows [row0, row0 + n). */
  const void* load(int64_t row0, int64_t n) {
    const size_t offset = static_cast<size_t>(row0) * l_.vocab * elt_;
    if (l_.on_device) return static_cast<const char*>(l_.data) + offset;
    if (loaded_ != row0) {
      e_.to_device(buffer_->as<void>(), static_cast<const char*>(l_.data) + offset, static_cast<size_t>(n) * l_.vocab * elt_,
                   "copying logits to the device");
      loaded_ = row0;
    }
    return buffer_->as<void>();
  }

 private:
  Executor& e_;
  LogitsView l_;
  size_t elt_;
  int64_t rows_ = 1;
  int64_t loaded_ = -1;
  std::unique_ptr<Buffer> buffer_;
};

/** Where a chunk's gradient is written on the executor, and its copy to the host sink. */
class GradChunks {
 public:
  GradChunks(Executor& e, const LogitsView& l, const GradSink& sink, int64_t rows) : e_(e), l_(l), sink_(sink), elt_(element_bytes(l)) {
    if (!l.on_device) buffer_ = std::make_unique<Buffer>(e, static_cast<size_t>(rows) * l.vocab * elt_, "allocating the gradient chunk");
  }
  void* target(int64_t row0) {
    if (l_.on_device) return static_cast<char*>(sink_.data) + static_cast<size_t>(row0) * l_.vocab * elt_;
    return buffer_->as<void>();
  }
  void flush(int64_t row0, int64_t n) {
    if (l_.on_device) return;
    const size_t count = static_cast<size_t>(n) * l_.vocab;
    if (sink_.widen) {
      staging_.resize(count);
      e_.to_host(staging_.data(), buffer_->as<void>(), count * 2, "copying the gradient to the host");
      float* out = static_cast<float*>(sink_.data) + static_cast<size_t>(row0) * l_.vocab;
      for (size_t k = 0; k < count; ++k) out[k] = bf16_to_float(staging_[k]);
    } else {
      e_.to_host(static_cast<char*>(sink_.data) + static_cast<size_t>(row0) * l_.vocab * elt_, buffer_->as<void>(), count * elt_,
                 "copying the gradient to the host");
    }
  }

 private:
  Executor& e_;
  LogitsView l_;
  GradSink sink_;
  size_t elt_;
  std::unique_ptr<Buffer> buffer_;
  std::vector<uint16_t> staging_;
};

// ---------------------------------------------------------------------------------------------------------------
// Entry points

void forward(const ForwardArgs& a) {
  const int64_t P = a.logits.positions;
  if (P == 0) return;
  Session session(a.common.exec);
  Executor& e = *session.executor;
  auto tokens = upload(e, a.tokens, P, "copying tokens");
  auto active = upload(e, a.active, P, "copying the mask");
  RowBuffers rows(e, P);
  LogitsChunks chunks(e, a.common, a.logits, 0);
  for (int64_t row0 = 0; row0 < P; row0 += chunks.rows()) {
    const int64_t n = std::min(chunks.rows(), P - row0);
    e.stats(chunks.load(row0, n), a.logits.bf16, n, a.logits.vocab, row0, ptr<int32_t>(tokens), ptr<uint8_t>(active), a.inv_temperature,
            rows.out());
  }
  e.sync("the statistics kernel");
  rows.download(e, P, a.logp, a.lse, a.entropy);
}

void backward(const BackwardArgs& a) {
  const int64_t P = a.logits.positions;
  if (P == 0) return;
  Session session(a.common.exec);
  Executor& e = *session.executor;
  auto tokens = upload(e, a.tokens, P, "copying tokens");
  auto active = upload(e, a.active, P, "copying the mask");
  auto g = upload(e, a.g, P, "copying dL/dlogp");
  auto h = upload(e, a.h, P, "copying dL/dentropy");
  std::vector<float> saved_shift, saved_log_sum;
  const bool saved = a.saved_lse != nullptr && saved_shifts(a, saved_shift, saved_log_sum);
  RowBuffers rows(e, P);
  if (saved) {
    e.to_device(rows.shift.as<void>(), saved_shift.data(), P * sizeof(float), "copying the saved shifts");
    e.to_device(rows.log_sum.as<void>(), saved_log_sum.data(), P * sizeof(float), "copying the saved log sums");
    e.to_device(rows.entropy.as<void>(), a.saved_entropy, P * sizeof(double), "copying the saved entropy");
  }
  std::unique_ptr<Buffer> check_bits, check_sums;
  if (a.check_out != nullptr) {
    const std::vector<unsigned> zeros(P, 0u);
    check_bits = upload(e, zeros.data(), P, "clearing the row checks");
    check_sums = upload(e, reinterpret_cast<const float*>(zeros.data()), P, "clearing the row sums");
  }
  const size_t elt = element_bytes(a.logits);
  LogitsChunks chunks(e, a.common, a.logits, a.logits.vocab * elt);
  GradChunks grads(e, a.logits, a.grad, chunks.rows());
  const GradRow r{ptr<int32_t>(tokens), ptr<uint8_t>(active), rows.shift.as<float>(), rows.log_sum.as<float>(), rows.entropy.as<double>(),
                  ptr<double>(g),        ptr<double>(h),      a.inv_temperature,      ptr<unsigned>(check_bits), ptr<float>(check_sums)};
  for (int64_t row0 = 0; row0 < P; row0 += chunks.rows()) {
    const int64_t n = std::min(chunks.rows(), P - row0);
    const void* in = chunks.load(row0, n);
    if (!saved) e.stats(in, a.logits.bf16, n, a.logits.vocab, row0, r.tokens, r.active, a.inv_temperature, rows.out());
    e.grad(in, grads.target(row0), a.logits.bf16, n, a.logits.vocab, row0, r);
    grads.flush(row0, n);
  }
  e.sync("the gradient kernel");
  if (a.lse_out != nullptr) {
    if (saved) {
      std::copy(a.saved_lse, a.saved_lse + P, a.lse_out);
    } else {
      rows.download(e, P, nullptr, a.lse_out, nullptr);
    }
  }
  if (a.check_out != nullptr) {
    std::vector<unsigned> bits(P);
    std::vector<float> sums(P);
    e.to_host(bits.data(), check_bits->as<void>(), P * sizeof(unsigned), "copying the row checks to the host");
    e.to_host(sums.data(), check_sums->as<void>(), P * sizeof(float), "copying the row sums to the host");
    for (int64_t i = 0; i < P; ++i) {
      a.check_out[i] = a.active[i] ? static_cast<uint8_t>(check_flags(RowCheck{bits[i], sums[i]})) : 0;
      if (a.check_sum_out != nullptr) a.check_sum_out[i] = sums[i];
    }
  }
}

/** The loss inputs on the executor, and the buffers of its outputs. */
struct LossBuffers {
  std::unique_ptr<Buffer> mask, row_tokens, w, ew, old_logp, advantages, ref_logp, importance, entropy, sequence, row_grad;
  std::unique_ptr<Buffer> loss, grad, kl, grad_entropy, ratio, approx, flags;

  LossBuffers(Executor& e, const LossConfig& c, const LossInputs& in, bool with_entropy_input) {
    const size_t n = static_cast<size_t>(in.rows * in.cols);
    mask = upload(e, in.mask, n, "copying the mask");
    row_tokens = upload(e, in.row_tokens, in.rows, "copying row counts");
    w = upload(e, in.row_weights, in.rows, "copying row weights");
    ew = upload(e, in.entropy_weights, in.rows, "copying entropy weights");
    old_logp = upload(e, in.old_logp, n, "copying oldLogp");
    advantages = upload(e, in.advantages, in.per_token_advantages ? n : in.rows, "copying advantages");
    ref_logp = upload(e, in.ref_logp, n, "copying refLogp");
    importance = upload(e, in.importance, n, "copying importance weights");
    if (with_entropy_input) entropy = upload(e, in.entropy, n, "copying entropy");
    sequence = std::make_unique<Buffer>(e, in.rows * sizeof(double), "allocating sequence ratios");
    row_grad = std::make_unique<Buffer>(e, n * sizeof(double), "allocating row gradients");
    loss = std::make_unique<Buffer>(e, n * sizeof(double), "allocating the per-token loss");
    grad = std::make_unique<Buffer>(e, n * sizeof(double), "allocating dloss/dlogp");
    if (c.kl_kind != kNoKl) kl = std::make_unique<Buffer>(e, n * sizeof(double), "allocating the per-token KL");
    if (c.entropy_bonus) grad_entropy = std::make_unique<Buffer>(e, n * sizeof(double), "allocating dloss/dentropy");
    ratio = std::make_unique<Buffer>(e, n * sizeof(double), "allocating ratios");
    approx = std::make_unique<Buffer>(e, n * sizeof(double), "allocating log-ratios");
    flags = std::make_unique<Buffer>(e, n, "allocating clip flags");
  }

  LossData data(const LossInputs& in, const double* logp, const double* entropy_override) const {
    LossData d;
    d.rows = in.rows;
    d.cols = in.cols;
    d.mask = ptr<uint8_t>(mask);
    d.row_tokens = ptr<int32_t>(row_tokens);
    d.w = ptr<double>(w);
    d.ew = ptr<double>(ew);
    d.old_logp = ptr<double>(old_logp);
    d.advantages = ptr<double>(advantages);
    d.per_token_advantages = in.per_token_advantages ? 1 : 0;
    d.ref_logp = ptr<double>(ref_logp);
    d.importance = ptr<double>(importance);
    d.entropy = entropy_override != nullptr ? entropy_override : ptr<double>(entropy);
    d.logp = logp;
    d.sequence = ptr<double>(sequence);
    d.row_grad = ptr<double>(row_grad);
    d.out = LossOutputs{ptr<double>(loss), ptr<double>(grad), ptr<double>(kl), ptr<double>(grad_entropy), ptr<double>(ratio),
                        ptr<double>(approx), ptr<uint8_t>(flags)};
    return d;
  }

  void download(Executor& e, const LossInputs& in, const LossOutputs& out) const {
    const size_t n = static_cast<size_t>(in.rows * in.cols);
    e.to_host(out.loss, loss->as<void>(), n * sizeof(double), "copying the per-token loss to the host");
    e.to_host(out.grad, grad->as<void>(), n * sizeof(double), "copying dloss/dlogp to the host");
    if (out.kl != nullptr && kl) e.to_host(out.kl, kl->as<void>(), n * sizeof(double), "copying the per-token KL to the host");
    if (out.grad_entropy != nullptr && grad_entropy) {
      e.to_host(out.grad_entropy, grad_entropy->as<void>(), n * sizeof(double), "copying dloss/dentropy to the host");
    }
    e.to_host(out.ratio, ratio->as<void>(), n * sizeof(double), "copying ratios to the host");
    e.to_host(out.approx, approx->as<void>(), n * sizeof(double), "copying log-ratios to the host");
    e.to_host(out.flags, flags->as<void>(), n, "copying clip flags to the host");
  }
};

void policy_loss(const PolicyLossArgs& a) {
  if (a.in.rows * a.in.cols == 0) return;
  Session session(a.common.exec);
  Executor& e = *session.executor;
  LossBuffers buffers(e, *a.config, a.in, true);
  auto logp = upload(e, a.logp, static_cast<size_t>(a.in.rows * a.in.cols), "copying logp");
  e.loss(*a.config, buffers.data(a.in, ptr<double>(logp), nullptr));
  e.sync("the loss kernels");
  buffers.download(e, a.in, a.out);
}

FusedResult fused(const FusedArgs& a) {
  FusedResult result;
  const int64_t P = a.logits.positions;
  if (P == 0) return result;
  Session session(a.common.exec);
  Executor& e = *session.executor;
  const LossConfig& c = *a.config;
  auto tokens = upload(e, a.tokens, P, "copying tokens");
  LossBuffers loss(e, c, a.in, false);
  RowBuffers rows(e, P);
  const uint8_t* active = ptr<uint8_t>(loss.mask);
  const size_t elt = element_bytes(a.logits);
  LogitsChunks chunks(e, a.common, a.logits, a.logits.vocab * elt);

  // Pass 1: the statistics of every selected position.
  for (int64_t row0 = 0; row0 < P; row0 += chunks.rows()) {
    const int64_t n = std::min(chunks.rows(), P - row0);
    e.stats(chunks.load(row0, n), a.logits.bf16, n, a.logits.vocab, row0, ptr<int32_t>(tokens), active, a.inv_temperature, rows.out());
  }
  e.sync("the statistics kernel");
  rows.download(e, P, a.logp, a.lse, a.entropy);
  // The checks the reference makes between its steps, in its order: a row whose logsumexp is not finite, then a
  // log-ratio that is not finite (a -Infinity logit at the token, or a non-finite oldLogp).
  for (int64_t i = 0; i < P; ++i) {
    if (a.in.mask[i] && !std::isfinite(a.lse[i])) return FusedResult{Stop::BadLogits, i, e.peak()};
  }
  for (int64_t i = 0; i < P; ++i) {
    if (!a.in.mask[i]) continue;
    const double x = a.logp[i] - (a.in.old_logp != nullptr ? a.in.old_logp[i] : a.logp[i]);
    if (x - x != 0) return FusedResult{Stop::NonFiniteLogRatio, i, e.peak()};
  }

  // The loss over [B, T], on the executor, from pass 1's log-probs and entropy.
  const LossData d = loss.data(a.in, rows.logp.as<double>(), c.entropy_bonus ? rows.entropy.as<double>() : nullptr);
  e.loss(c, d);
  e.sync("the loss kernels");
  loss.download(e, a.in, a.out);
  // The loss is float64; its gradients enter the gradient pass as float32.
  for (int64_t i = 0; i < P; ++i) {
    if (!a.in.mask[i]) continue;
    const double h = a.out.grad_entropy != nullptr ? a.out.grad_entropy[i] : 0.0;
    if (!gradient_fits(a.out.grad[i], h, a.inv_temperature, a.logits.vocab)) return FusedResult{Stop::GradientOverflow, i, e.peak()};
  }

  // Pass 2: the gradient, one more read of the logits (none when they all fit in one chunk) and one write.
  GradChunks grads(e, a.logits, a.grad, chunks.rows());
  const GradRow r{ptr<int32_t>(tokens), active,     rows.shift.as<float>(), rows.log_sum.as<float>(), rows.entropy.as<double>(),
                  d.out.grad,           d.out.grad_entropy, a.inv_temperature, nullptr,               nullptr};
  for (int64_t row0 = 0; row0 < P; row0 += chunks.rows()) {
    const int64_t n = std::min(chunks.rows(), P - row0);
    e.grad(chunks.load(row0, n), grads.target(row0), a.logits.bf16, n, a.logits.vocab, row0, r);
    grads.flush(row0, n);
  }
  e.sync("the gradient kernel");
  result.peak_bytes = e.peak();
  return result;
}

// ---------------------------------------------------------------------------------------------------------------
// Probe

ProbeResult probe() {
  ProbeResult p;
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  const auto fail = [&](cudaError_t status, const char* call) {
    p.ok = false;
    p.error_name = cudaGetErrorName(status);
    p.error_string = cudaGetErrorString(status);
    p.failed_call = call;
    cudaGetLastError();
    return p;
  };
  cudaRuntimeGetVersion(&p.runtime_version);
  cudaDriverGetVersion(&p.driver_version);
  cudaError_t status = cudaGetDeviceCount(&p.device_count);
  if (status != cudaSuccess) {
    p.device_count = 0;
    return fail(status, "cudaGetDeviceCount");
  }
  if (p.device_count == 0) return fail(cudaErrorNoDevice, "cudaGetDeviceCount");
  int device = 0;
  if ((status = cudaGetDevice(&device)) != cudaSuccess) return fail(status, "cudaGetDevice");
  cudaDeviceProp prop;
  if ((status = cudaGetDeviceProperties(&prop, device)) != cudaSuccess) return fail(status, "cudaGetDeviceProperties");
  p.device_name = prop.name;
  p.major = prop.major;
  p.minor = prop.minor;
  p.total_memory = prop.totalGlobalMem;
  if ((status = cudaMemGetInfo(&p.free_memory, &p.total_memory)) != cudaSuccess) return fail(status, "cudaMemGetInfo");
  // A device this build has no kernel image for (sm_80 and sm_90 code, compute_90 PTX) fails here, not later.
  cudaFuncAttributes attributes;
  if ((status = cudaFuncGetAttributes(&attributes, stats_kernel<float>)) != cudaSuccess) return fail(status, "cudaFuncGetAttributes");
  p.ok = true;
  return p;
}

static std::string cuda_version(int v) { return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10); }

std::string describe_probe_failure(const ProbeResult& p) {
  const std::string error = p.error_name + " (" + p.error_string + ") from " + p.failed_call;
  if (p.failed_call == "cudaFuncGetAttributes") {
    return "no CUDA device this build can run on: " + p.device_name + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) +
           ") has no kernel image among " + GRPO_ROC_ARCHITECTURES + ": " + error;
  }
  // cudaErrorInsufficientDriver means either no driver at all (cudaDriverGetVersion gives 0) or one older than
  // the runtime this build links.
  if (p.error_name == "cudaErrorInsufficientDriver" && p.driver_version > 0) {
    return "CUDA driver too old (driver " + cuda_version(p.driver_version) + ", runtime " + cuda_version(p.runtime_version) +
           "; update the NVIDIA driver): " + error;
  }
  std::string reason = "no CUDA device: " + error;
  if (p.driver_version == 0) reason += "; no NVIDIA driver is installed (cudaDriverGetVersion reports 0)";
  return reason;
}

// ---------------------------------------------------------------------------------------------------------------
// bf16 through the kernels' own functions

void float_to_bf16_host(const float* in, uint16_t* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = float_to_bf16(in[i]);
}
void bf16_to_float_host(const uint16_t* in, float* out, size_t n) {
  for (size_t i = 0; i < n; ++i) out[i] = bf16_to_float(in[i]);
}

// ---------------------------------------------------------------------------------------------------------------
// Benchmark on device-resident logits

/** Logits in [-6, 6] (triangular), a few spikes of 12 so that some rows are peaked. */
GR_HD float bench_logit(uint64_t seed, uint64_t i, int64_t vocab) {
  const uint64_t h = mix(seed ^ mix(i));
  const float u1 = static_cast<float>(h & 0xffffff) / 16777216.f;
  const float u2 = static_cast<float>((h >> 24) & 0xffffff) / 16777216.f;
  return (i % static_cast<uint64_t>(vocab)) % 9973 == 17 ? 12.f : 6.f * (u1 + u2 - 1.f);
}

template <typename T>
__global__ void fill_kernel(T* logits, uint64_t n, int64_t vocab, uint64_t seed) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    store(logits + i, bench_logit(seed, i, vocab));
  }
}

namespace {
struct Event {
  cudaEvent_t e = nullptr;
  Event() { check(cudaEventCreate(&e), "cudaEventCreate"); }
  ~Event() { cudaEventDestroy(e); }
  void record() { check(cudaEventRecord(e), "cudaEventRecord"); }
};
double elapsed_ms(const Event& a, const Event& b) {
  float ms = 0;
  check(cudaEventSynchronize(b.e), "cudaEventSynchronize");
  check(cudaEventElapsedTime(&ms, a.e, b.e), "cudaEventElapsedTime");
  return ms;
}
/** std::max(err, x) drops a NaN x; a NaN on the GPU must show in the reported error, not hide behind it. */
double max_keeping_nan(double err, double x) { return err != err || x <= err ? err : x; }
struct DeviceMemory {
  void* p = nullptr;
  DeviceMemory(size_t bytes, const char* what) { check(cudaMalloc(&p, bytes), what); }
  ~DeviceMemory() { cudaFree(p); }
};
}  // namespace

BenchResult bench(const BenchArgs& a) {
  BenchResult out;
  std::lock_guard<std::recursive_mutex> lock(device_mutex);
  const ProbeResult p = probe();
  if (!p.ok) throw std::runtime_error(describe_probe_failure(p));
  out.device = p.device_name + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")";
  const int64_t P = a.rows * a.cols;
  const int64_t V = a.vocab;
  const size_t elt = a.bf16 ? 2 : 4;
  const size_t bytes = static_cast<size_t>(P) * V * elt;
  out.logits_bytes = static_cast<double>(bytes);

  DeviceMemory logits(bytes, "allocating the benchmark logits");
  DeviceMemory grad(bytes, "allocating the benchmark gradient");
  if (a.bf16) {
    fill_kernel<uint16_t><<<4096, 256>>>(static_cast<uint16_t*>(logits.p), static_cast<uint64_t>(P) * V, V, a.seed);
  } else {
    fill_kernel<float><<<4096, 256>>>(static_cast<float*>(logits.p), static_cast<uint64_t>(P) * V, V, a.seed);
  }
  check(cudaGetLastError(), "launching the fill kernel");
  check(cudaDeviceSynchronize(), "filling the benchmark logits");

  // The GRPO-RoC paper loss (clip 0.2 / 0.28, token-mean) on advantages +1/-1 by row; the old policy is set below.
  std::vector<int32_t> tokens(P);
  std::vector<uint8_t> mask(P, 1);
  std::vector<double> advantages(a.rows), old_logp(P), w(a.rows, 1.0 / static_cast<double>(P));
  std::vector<int32_t> row_tokens(a.rows, static_cast<int32_t>(a.cols));
  for (int64_t i = 0; i < P; ++i) tokens[i] = static_cast<int32_t>(mix(a.seed + 7 * i) % static_cast<uint64_t>(V));
  for (int64_t b = 0; b < a.rows; ++b) advantages[b] = (b % 2 == 0) ? 1.0 : -1.0;
  const LossConfig c = paper_loss_config();
  std::vector<double> logp(P), lse(P), entropy(P), loss(P), g(P), ratio(P), approx(P);
  std::vector<uint8_t> flags(P);
  FusedArgs f;
  f.common.exec = Exec::Device;
  f.logits = LogitsView{logits.p, a.bf16, true, P, V};
  f.tokens = tokens.data();
  f.config = &c;
  f.in.rows = a.rows;
  f.in.cols = a.cols;
  f.in.mask = mask.data();
  f.in.row_tokens = row_tokens.data();
  f.in.row_weights = w.data();
  f.in.advantages = advantages.data();
  f.logp = logp.data();
  f.lse = lse.data();
  f.entropy = entropy.data();
  f.out = LossOutputs{loss.data(), g.data(), nullptr, nullptr, ratio.data(), approx.data(), flags.data()};
  f.grad = GradSink{grad.p, false};

  // Every timed call must have run both passes: a stop (a bad row, a non-finite log-ratio) would time half the work.
  const auto require_full = [](const FusedResult& r, const char* what) {
    if (r.stop != Stop::None) {
      const char* why = r.stop == Stop::BadLogits ? "bad logits" : r.stop == Stop::NonFiniteLogRatio ? "a non-finite log-ratio" : "a gradient beyond float32";
      throw std::runtime_error(std::string("the benchmark's fused pass stopped early (") + why +
                               " at position " + std::to_string(r.position) + ") in " + what);
    }
  };
  // An old policy within ±0.4 of the current one: ratios from e^-0.4 = 0.67 to e^0.4 = 1.49, so that a good share
  // of them leave the clip range [0.8, 1.28] and both branches of the clipped objective are timed.
  require_full(fused(f), "the first call");
  for (int64_t i = 0; i < P; ++i) old_logp[i] = logp[i] + 0.8 * (static_cast<double>(mix(a.seed * 31 + i) % 1000) / 1000.0 - 0.5);
  f.in.old_logp = old_logp.data();

  size_t free_before = 0, total = 0;
  check(cudaMemGetInfo(&free_before, &total), "cudaMemGetInfo");
  Event start, stop;
  std::vector<double> times;
  for (int k = 0; k < a.warmup + a.iterations; ++k) {
    start.record();
    const FusedResult r = fused(f);
    stop.record();
    require_full(r, "a timed call");
    out.peak_extra_bytes = std::max(out.peak_extra_bytes, static_cast<double>(r.peak_bytes));
    const double ms = elapsed_ms(start, stop);
    if (k >= a.warmup) times.push_back(ms);
  }
  double sum = 0;
  for (double t : times) sum += t;
  out.fused_ms = times.empty() ? 0 : sum / times.size();
  out.fused_min_ms = times.empty() ? 0 : *std::min_element(times.begin(), times.end());

  // The kernels one by one, on the same data (statistics, loss, gradient), each timed over the iterations.
  {
    DeviceExecutor e;
    auto d_tokens = upload(e, tokens.data(), P, "tokens");
    auto d_active = upload(e, mask.data(), P, "mask");
    LossBuffers lb(e, c, f.in, false);
    RowBuffers rows(e, P);
    const LossData d = lb.data(f.in, rows.logp.as<double>(), nullptr);
    const GradRow r{ptr<int32_t>(d_tokens), ptr<uint8_t>(d_active), rows.shift.as<float>(), rows.log_sum.as<float>(), rows.entropy.as<double>(),
                    d.out.grad,             nullptr,                 1.f,                    nullptr,                  nullptr};
    double stats_total = 0, loss_total = 0, grad_total = 0;
    Event e0, e1, e2, e3;
    for (int k = 0; k < a.warmup + a.iterations; ++k) {
      e0.record();
      e.stats(logits.p, a.bf16, P, V, 0, r.tokens, r.active, 1.f, rows.out());
      e1.record();
      e.loss(c, d);
      e2.record();
      e.grad(logits.p, grad.p, a.bf16, P, V, 0, r);
      e3.record();
      if (k >= a.warmup) {
        stats_total += elapsed_ms(e0, e1);
        loss_total += elapsed_ms(e1, e2);
        grad_total += elapsed_ms(e2, e3);
      }
    }
    out.stats_ms = stats_total / std::max(1, a.iterations);
    out.loss_ms = loss_total / std::max(1, a.iterations);
    out.grad_ms = grad_total / std::max(1, a.iterations);
  }

  // The copy bandwidth: device-to-device copies of the logits (each reads and writes `bytes`), averaged over the
  // same number of runs as the fused call, so that the ratio to the bound compares a mean with a mean.
  {
    Event e0, e1;
    double total = 0;
    for (int k = 0; k < a.warmup + a.iterations; ++k) {
      e0.record();
      check(cudaMemcpy(grad.p, logits.p, bytes, cudaMemcpyDeviceToDevice), "cudaMemcpy device to device");
      e1.record();
      const double ms = elapsed_ms(e0, e1);
      if (k >= a.warmup) total += ms;
    }
    out.copy_ms = total / std::max(1, a.iterations);
    out.copy_gbps = 2.0 * static_cast<double>(bytes) / (out.copy_ms * 1e-3) / 1e9;
    out.bound_ms = 3.0 * static_cast<double>(bytes) / (out.copy_gbps * 1e9) * 1e3;
  }

  // Correctness on the GPU: a few positions against float64 on the host, after one more fused call.
  require_full(fused(f), "the checked call");
  // Six positions spread over the batch (fewer, without repeats, when the batch is smaller).
  std::vector<int64_t> checks;
  for (const int64_t i : {int64_t{0}, int64_t{1}, P / 3, P / 2, P - 2, P - 1}) {
    if (i >= 0 && i < P && std::find(checks.begin(), checks.end(), i) == checks.end()) checks.push_back(i);
  }
  std::vector<uint16_t> row16(V);
  std::vector<float> row32(V), grow32(V);
  std::vector<uint16_t> grow16(V);
  double err_logp = 0, err_grad = 0;
  for (int64_t i : checks) {
    const size_t offset = static_cast<size_t>(i) * V * elt;
    if (a.bf16) {
      check(cudaMemcpy(row16.data(), static_cast<char*>(logits.p) + offset, V * 2, cudaMemcpyDeviceToHost), "copy row");
      check(cudaMemcpy(grow16.data(), static_cast<char*>(grad.p) + offset, V * 2, cudaMemcpyDeviceToHost), "copy grad row");
      for (int64_t v = 0; v < V; ++v) {
        row32[v] = bf16_to_float(row16[v]);
        grow32[v] = bf16_to_float(grow16[v]);
      }
    } else {
      check(cudaMemcpy(row32.data(), static_cast<char*>(logits.p) + offset, V * 4, cudaMemcpyDeviceToHost), "copy row");
      check(cudaMemcpy(grow32.data(), static_cast<char*>(grad.p) + offset, V * 4, cudaMemcpyDeviceToHost), "copy grad row");
    }
    double m = -INFINITY;
    for (int64_t v = 0; v < V; ++v) m = std::max(m, static_cast<double>(row32[v]));
    double s = 0;
    for (int64_t v = 0; v < V; ++v) s += std::exp(row32[v] - m);
    const double l = m + std::log(s);
    err_logp = max_keeping_nan(err_logp, std::fabs((row32[tokens[i]] - l) - logp[i]));
    for (int64_t v = 0; v < V; ++v) {
      const double expected = g[i] * ((v == tokens[i] ? 1.0 : 0.0) - std::exp(row32[v] - l));
      const double rounded = a.bf16 ? static_cast<double>(bf16_to_float(float_to_bf16(static_cast<float>(expected)))) : expected;
      err_grad = max_keeping_nan(err_grad, std::fabs(grow32[v] - rounded));
    }
  }
  out.max_abs_err_logp = err_logp;
  out.max_abs_err_grad = err_grad;
  out.checked_positions = static_cast<int>(checks.size());

  size_t free_after = 0;
  check(cudaMemGetInfo(&free_after, &total), "cudaMemGetInfo");
  out.leaked_bytes = free_before > free_after ? static_cast<double>(free_before - free_after) : 0.0;
  return out;
}

}  // namespace grpo
