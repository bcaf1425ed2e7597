// grpo_roc_bench: the engine's benchmark (bench() in engine.cu: the fused token log-probs + GRPO-RoC loss forward
// and backward on logits already in GPU memory) and its self-check (self_check.cc: the kernels' results against
// float64 and against the host executor) without Node, for GPU machines that have nvcc but no Node. It is what
// bench/gpu/run-on-gpu.sh builds and runs; bench/cuda.bench.ts runs the same bench() through the addon.
//
//   nvcc -O3 -std=c++17 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=[sm_90,compute_90] \
//        -DGRPO_ROC_ARCHITECTURES='"sm_80 sm_90 compute_90"' native/src/bench_main.cc native/src/self_check.cc \
//        native/src/engine.cu -o grpo_roc_bench
//   ./grpo_roc_bench --check device --json check.json
//   ./grpo_roc_bench --dtype bfloat16 --json bf16.json
//
// Exit status: 0 measured (or every check passed); 1 bad arguments; 2 no usable CUDA device (the probe's reason on
// stderr, and in the JSON file as {"ok": false, "reason": ...}); 3 a CUDA or engine error during the run; 4 a
// check failed. Nothing is ever printed as a measurement that was not measured.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>

#include "engine.h"
#include "self_check.h"

namespace {

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buffer[8];
          std::snprintf(buffer, sizeof buffer, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
          out += buffer;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

/** JSON has no NaN or Infinity: a non-finite figure is written as null, so that the rest of the file still reads. */
std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  char buffer[64];
  std::snprintf(buffer, sizeof buffer, "%.17g", v);
  return buffer;
}

bool write_file(const char* path, const std::string& text) {
  if (path == nullptr) return true;
  FILE* f = std::fopen(path, "w");
  if (f == nullptr) {
    std::fprintf(stderr, "grpo_roc_bench: cannot write %s\n", path);
    return false;
  }
  std::fputs(text.c_str(), f);
  std::fclose(f);
  return true;
}

void usage() {
  std::fprintf(stderr,
               "usage: grpo_roc_bench [--dtype float32|bfloat16] [--rows 4] [--cols 4096] [--vocab 151936]\n"
               "                      [--iterations 10] [--warmup 2] [--seed 1] [--json FILE]\n"
               "       grpo_roc_bench --check device|host [--json FILE]\n");
}

/** A run that measured nothing: the reason on stderr and in the JSON file; returns `status`. */
int not_run(const char* json, const std::string& head, const std::string& why, const std::string& reason, int status) {
  std::fprintf(stderr, "grpo_roc_bench: %s: %s\n", why.c_str(), reason.c_str());
  write_file(json, head + "  \"ok\": false,\n  \"reason\": " + json_string(reason) + "\n}\n");
  return status;
}

/** --check: every self-check case, a line each, and the JSON report. */
int run_check(grpo::Exec exec, const char* json) {
  const std::string head = "{\n  \"tool\": \"grpo_roc_bench --check\",\n  \"exec\": \"" +
                           std::string(exec == grpo::Exec::Device ? "device" : "host") + "\",\n";
  std::string device = "the CPU (host executor)";
  if (exec == grpo::Exec::Device) {
    const grpo::ProbeResult p = grpo::probe();
    if (!p.ok) return not_run(json, head, "not checked", grpo::describe_probe_failure(p), 2);
    device = p.device_name + " (sm_" + std::to_string(p.major) + std::to_string(p.minor) + ")";
  }
  grpo::CheckReport report;
  try {
    report = grpo::self_check(exec);
  } catch (const std::exception& e) {
    return not_run(json, head, "the self-check failed on " + device, std::string("failed: ") + e.what(), 3);
  }
  int failed = 0;
  std::string cases;
  for (const grpo::CheckCase& c : report.cases) {
    failed += c.ok ? 0 : 1;
    std::printf("%s  %s (%lld compared, worst %.3g of tolerance)%s%s\n", c.ok ? "ok  " : "FAIL", c.name.c_str(), c.compared, c.worst,
                c.ok ? "" : ": ", c.detail.c_str());
    cases += std::string(cases.empty() ? "" : ",\n") + "    {\"name\": " + json_string(c.name) + ", \"ok\": " + (c.ok ? "true" : "false") +
             ", \"compared\": " + std::to_string(c.compared) + ", \"worst\": " + json_number(c.worst) +
             ", \"detail\": " + json_string(c.detail) + "}";
  }
  std::printf("grpo_roc_bench --check on %s: %zu cases, %d failed\n", device.c_str(), report.cases.size(), failed);
  const std::string out = head + "  \"ok\": " + (report.ok ? "true" : "false") + ",\n  \"device\": " + json_string(device) +
                          ",\n  \"cases\": [\n" + cases + "\n  ]\n}\n";
  if (!write_file(json, out)) return 3;
  return report.ok ? 0 : 4;
}

}  // namespace

int main(int argc, char** argv) {
  grpo::BenchArgs a;
  const char* json = nullptr;
  const char* check = nullptr;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      usage();
      return 0;
    }
    if (i + 1 >= argc) {
      usage();
      return 1;
    }
    const char* value = argv[++i];
    char* end = nullptr;
    const long long n = std::strtoll(value, &end, 10);
    const bool integer = end != value && *end == '\0' && n >= 0;
    if (arg == "--dtype") {
      if (std::strcmp(value, "float32") != 0 && std::strcmp(value, "bfloat16") != 0) {
        usage();
        return 1;
      }
      a.bf16 = std::strcmp(value, "bfloat16") == 0;
    } else if (arg == "--json") {
      json = value;
    } else if (arg == "--check") {
      if (std::strcmp(value, "device") != 0 && std::strcmp(value, "host") != 0) {
        usage();
        return 1;
      }
      check = value;
    } else if (!integer) {
      std::fprintf(stderr, "grpo_roc_bench: %s needs a non-negative integer, got %s\n", arg.c_str(), value);
      return 1;
    } else if (arg == "--rows") {
      a.rows = n;
    } else if (arg == "--cols") {
      a.cols = n;
    } else if (arg == "--vocab") {
      a.vocab = n;
    } else if (arg == "--iterations") {
      a.iterations = static_cast<int>(n);
    } else if (arg == "--warmup") {
      a.warmup = static_cast<int>(n);
    } else if (arg == "--seed") {
      a.seed = static_cast<uint64_t>(n);
    } else {
      usage();
      return 1;
    }
  }
  if (check != nullptr) return run_check(std::strcmp(check, "device") == 0 ? grpo::Exec::Device : grpo::Exec::Host, json);
  if (a.rows < 1 || a.cols < 1 || a.vocab < 1 || a.iterations < 1 || a.rows > 0x7fffffffLL || a.cols > 0x7fffffffLL ||
      a.vocab > 0x7fffffffLL || a.rows * a.cols > 0x7fffffffLL) {
    std::fprintf(stderr, "grpo_roc_bench: need rows, cols, vocab, iterations >= 1, vocab and rows * cols < 2^31\n");
    return 1;
  }
  const char* dtype = a.bf16 ? "bfloat16" : "float32";
  const std::string shape = "[" + std::to_string(a.rows) + ", " + std::to_string(a.cols) + ", " + std::to_string(a.vocab) + "]";
  const std::string head = "{\n  \"tool\": \"grpo_roc_bench\",\n  \"dtype\": \"" + std::string(dtype) + "\",\n  \"shape\": [" +
                           std::to_string(a.rows) + ", " + std::to_string(a.cols) + ", " + std::to_string(a.vocab) + "],\n";

  const grpo::ProbeResult p = grpo::probe();
  if (!p.ok) return not_run(json, head, "not measured", grpo::describe_probe_failure(p), 2);

  grpo::BenchResult r;
  try {
    r = grpo::bench(a);
  } catch (const std::exception& e) {
    return not_run(json, head, "the benchmark failed on " + p.device_name, std::string("failed: ") + e.what(), 3);
  }

  const double positions = static_cast<double>(a.rows * a.cols);
  std::printf("grpo_roc_bench on %s: %s logits %s (%.2f GB), fused token log-probs + GRPO-RoC loss, forward + backward\n",
              r.device.c_str(), dtype, shape.c_str(), r.logits_bytes / 1e9);
  std::printf("  fused            %9.3f ms mean, %9.3f ms min over %d runs\n", r.fused_ms, r.fused_min_ms, a.iterations);
  std::printf("  kernels          statistics %.3f ms, loss %.3f ms, gradient %.3f ms\n", r.stats_ms, r.loss_ms, r.grad_ms);
  std::printf("  bound            %9.3f ms (read logits twice + write the gradient once at %.0f GB/s device copy bandwidth)\n",
              r.bound_ms, r.copy_gbps);
  std::printf("  ratio to bound   %9.3f (target <= 1.5)\n", r.fused_ms / r.bound_ms);
  std::printf("  peak extra       %9.3f MiB (%.1f bytes per position), not given back: %.0f bytes\n", r.peak_extra_bytes / 1048576.0,
              r.peak_extra_bytes / positions, r.leaked_bytes);
  std::printf("  max |error|      logp %.3g, gradient %.3g (vs float64 on %d positions)\n", r.max_abs_err_logp, r.max_abs_err_grad,
              r.checked_positions);

  std::string out = head;
  out += "  \"ok\": true,\n";
  out += "  \"device\": " + json_string(r.device) + ",\n";
  out += "  \"driverVersion\": " + std::to_string(p.driver_version) + ",\n";
  out += "  \"runtimeVersion\": " + std::to_string(p.runtime_version) + ",\n";
  out += "  \"iterations\": " + std::to_string(a.iterations) + ",\n";
  out += "  \"warmup\": " + std::to_string(a.warmup) + ",\n";
  const std::pair<const char*, double> fields[] = {
      {"logitsBytes", r.logits_bytes},       {"fusedMs", r.fused_ms},           {"fusedMinMs", r.fused_min_ms},
      {"statsMs", r.stats_ms},               {"lossMs", r.loss_ms},             {"gradMs", r.grad_ms},
      {"copyMs", r.copy_ms},                 {"copyGBps", r.copy_gbps},         {"boundMs", r.bound_ms},
      {"ratioToBound", r.fused_ms / r.bound_ms}, {"peakExtraBytes", r.peak_extra_bytes}, {"leakedBytes", r.leaked_bytes},
      {"maxAbsErrLogp", r.max_abs_err_logp}, {"maxAbsErrGrad", r.max_abs_err_grad}, {"checkedPositions", static_cast<double>(r.checked_positions)},
  };
  const size_t count = sizeof fields / sizeof fields[0];
  for (size_t i = 0; i < count; ++i) {
    out += "  \"" + std::string(fields[i].first) + "\": " + json_number(fields[i].second) + (i + 1 < count ? ",\n" : "\n");
  }
  out += "}\n";
  return write_file(json, out) ? 0 : 3;
}
