#!/usr/bin/env bash
# The CUDA self-check and benchmark on a GPU machine that has nvcc, nvidia-smi and python3 with PyTorch, but no Node
# and no internet. Run from the repository root:
#
#   bash bench/gpu/run-on-gpu.sh OUT_DIR        (e.g. "$OUT")
#
# 1. records the machine (nvidia-smi, nvcc --version);
# 2. builds native/src/bench_main.cc + self_check.cc + engine.cu into native/build/bench/grpo_roc_bench, with the
#    addon's flags (sm_80, sm_90, compute_90 PTX);
# 3. runs its self-check on the GPU (`--check device`: the kernels against float64 and against the host executor);
# 4. runs the benchmark on [4, 4096, 151936] logits already in GPU memory, float32 then bfloat16: the fused token
#    log-probs + GRPO-RoC loss forward and backward, the copy-bandwidth bound, peak extra device memory, max error
#    vs float64;
# 5. runs the PyTorch eager peer (bench/peer_torch_cuda.py) on the same shape and dtypes;
# 6. if a Node binary is at hand ($NODE, or node on PATH) with node_modules and the built addon, also runs the
#    cuda conformance suite and the bfloat16 tests on the GPU.
#
# After every step it rewrites summary.md / summary.json (bench/gpu/summarize.py): the rows of bench/RESULTS.md's
# table, so that a run cut short still leaves what it measured. Everything goes to OUT_DIR as JSON and text. About
# 1-2 minutes on an H100. The whole run has a deadline (GRPO_ROC_GPU_DEADLINE seconds, default 480): each step gets
# its own timeout, cut to what is left, and a step that would start with under 15 s left is skipped and says so.
# Exit status: 0 when the check passed and both benchmarks and both peers measured, 1 otherwise (what did run is
# still in OUT_DIR). Shape and runs can be changed with GRPO_ROC_BENCH_SHAPE="4 4096 151936" and
# GRPO_ROC_BENCH_ITERATIONS=10.
set -uo pipefail

out="${1:?usage: bash bench/gpu/run-on-gpu.sh OUT_DIR}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "[run-on-gpu $(date +%H:%M:%S)] $*" | tee -a "$out/run.log"; }
status=0
deadline="${GRPO_ROC_GPU_DEADLINE:-480}"
read -r rows cols vocab <<<"${GRPO_ROC_BENCH_SHAPE:-4 4096 151936}"
iterations="${GRPO_ROC_BENCH_ITERATIONS:-10}"
shape=(--rows "$rows" --cols "$cols" --vocab "$vocab" --iterations "$iterations" --warmup 2)
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
PYTHON="${PYTHON:-python3}"

summarize() { "$PYTHON" bench/gpu/summarize.py "$out" >"$out/summary.txt" 2>&1 || echo "summarize.py failed: see summary.txt" >>"$out/run.log"; }
trap summarize EXIT

# step NAME LIMIT COMMAND...: runs COMMAND under min(LIMIT, time left) seconds (SIGKILL 5 s after SIGTERM), then
# rewrites the summary; returns the command's status, or 124 when skipped for lack of time.
step() {
  local name="$1" limit="$2"
  shift 2
  local left=$((deadline - SECONDS))
  if [ "$left" -lt 15 ]; then
    log "$name: not run (the run's ${deadline} s deadline is ${left} s away)"
    return 124
  fi
  [ "$limit" -le "$left" ] || limit="$left"
  timeout -k 5 "$limit" "$@"
  local rc=$?
  [ "$rc" -ne 124 ] && [ "$rc" -ne 137 ] || log "$name: stopped after ${limit} s"
  summarize
  return "$rc"
}

# 1. The machine.
log "shape [$rows, $cols, $vocab], $iterations timed runs after 2 warm-up runs, deadline ${deadline} s"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (see nvidia-smi.txt)"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.memory --format=csv >"$out/gpu.csv" 2>&1 || true
"$NVCC" --version >"$out/nvcc-version.txt" 2>&1 || log "no nvcc at $NVCC"
"$PYTHON" -c 'import torch, sys; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' >"$out/torch-version.txt" 2>&1 || true

# 2. Build.
bindir=native/build/bench
mkdir -p "$bindir"
log "building $bindir/grpo_roc_bench with $NVCC"
if ! step build 240 "$NVCC" -O3 -std=c++17 \
  -gencode arch=compute_80,code=sm_80 -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
  '-DGRPO_ROC_ARCHITECTURES="sm_80 sm_90 compute_90"' -Inative/src \
  native/src/bench_main.cc native/src/self_check.cc native/src/engine.cu -o "$bindir/grpo_roc_bench" >"$out/build.log" 2>&1; then
  log "build failed: $(tail -5 "$out/build.log")"
  rm -f "$bindir/grpo_roc_bench"
  status=1
fi

# 3. The self-check on the GPU.
if [ -x "$bindir/grpo_roc_bench" ]; then
  log "self-check on the GPU"
  step check 120 "$bindir/grpo_roc_bench" --check device --json "$out/check.json" >"$out/check.txt" 2>&1
  rc=$?
  tail -1 "$out/check.txt" | tee -a "$out/run.log"
  [ "$rc" -eq 0 ] || { log "grpo_roc_bench --check device exited $rc: $(grep -m3 'FAIL\|not checked\|failed' "$out/check.txt")"; status=1; }
fi

# 4. grpo-roc.
for dtype in float32 bfloat16; do
  if [ -x "$bindir/grpo_roc_bench" ]; then
    log "grpo-roc $dtype"
    step "grpo-roc $dtype" 150 "$bindir/grpo_roc_bench" --dtype "$dtype" "${shape[@]}" --json "$out/grpo-roc-$dtype.json" >"$out/grpo-roc-$dtype.txt" 2>&1
    rc=$?
    tee -a "$out/run.log" <"$out/grpo-roc-$dtype.txt"
    [ "$rc" -eq 0 ] || { log "grpo_roc_bench $dtype exited $rc"; status=1; }
  fi
done

# 5. PyTorch eager.
for dtype in float32 bfloat16; do
  log "PyTorch eager $dtype"
  step "PyTorch $dtype" 150 "$PYTHON" bench/peer_torch_cuda.py --dtype "$dtype" "${shape[@]}" --json "$out/torch-$dtype.json" >"$out/torch-$dtype.txt" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || { log "peer_torch_cuda $dtype exited $rc: $(tail -2 "$out/torch-$dtype.txt")"; status=1; }
done

# 6. The conformance suite on the GPU, when Node is at hand (it is not on a bare GPU machine).
NODE_BIN="${NODE:-$(command -v node || true)}"
if [ -n "$NODE_BIN" ] && [ -x "$NODE_BIN" ] && [ -f node_modules/vitest/vitest.mjs ] && [ -f native/build/Release/grpo_roc_cuda.node ]; then
  log "conformance on the GPU with $NODE_BIN"
  step conformance 240 "$NODE_BIN" node_modules/vitest/vitest.mjs run test/conformance/cuda.test.ts test/cuda-bfloat16.test.ts \
    test/cuda-self-check.test.ts --reporter=verbose >"$out/conformance.txt" 2>&1
  log "conformance exited $? (see conformance.txt)"
else
  log "conformance on the GPU not run: needs a Node binary (\$NODE), node_modules and native/build/Release/grpo_roc_cuda.node"
fi

summarize
cat "$out/summary.txt" | tee -a "$out/run.log"
log "done in ${SECONDS} s, status $status"
exit "$status"
