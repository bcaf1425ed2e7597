// The kernels checked where they run, with no Node and no test framework: `grpo_roc_bench --check` on a bare GPU
// machine, and the addon's selfCheck() (test/cuda-self-check.test.ts). Each case runs an engine entry point on one
// executor and compares what comes back with an independent float64 computation of the same math (token
// log-probs, logsumexp, entropy, the gradient into the logits) or, for the policy loss and the fused pass, with
// the host executor, which the conformance suite checks against the TypeScript reference.
#pragma once

#include <string>
#include <vector>

#include "engine.h"

namespace grpo {

struct CheckCase {
  std::string name;
  bool ok = true;
  /** Entries compared. */
  long long compared = 0;
  /** The largest |got - want| / (atol + rtol |want|): at most 1 passes. */
  double worst = 0;
  /** The first entry that failed, in words (empty when ok). */
  std::string detail;
};

struct CheckReport {
  std::string exec;
  bool ok = true;
  std::vector<CheckCase> cases;
};

/**
 * Runs every case on `exec`. The policy-loss cases compare the device with the host executor, so they run on the
 * device only. Throws only what the engine throws (a CUDA error, no device).
 */
CheckReport self_check(Exec exec);

}  // namespace grpo
