#!/usr/bin/env bash
# The CUDA benchmark on a GPU machine that has nvcc, nvidia-smi and python3 with PyTorch, but no Node and no
# internet. Run from the repository root:
#
#   bash bench/gpu/run-on-gpu.sh OUT_DIR        (e.g. "$OUT")
#
# 1. records the machine (nvidia-smi, nvcc --version);
# 2. builds native/src/bench_main.cc + engine.cu into native/build/bench/grpo_roc_bench, with the addon's flags
#    (sm_80, sm_90, compute_90 PTX);
# 3. runs it on [4, 4096, 151936] logits already in GPU memory, float32 then bfloat16: the fused token log-probs +
#    GRPO-RoC loss forward and backward, the copy-bandwidth bound, peak extra device memory, max error vs float64;
# 4. runs the PyTorch eager peer (bench/peer_torch_cuda.py) on the same shape and dtypes;
# 5. if a Node binary is at hand ($NODE, or node on PATH) with node_modules and the built addon, also runs the
#    cuda conformance suite and the bfloat16 tests on the GPU;
# 6. writes summary.md / summary.json (bench/gpu/summarize.py): the rows of bench/RESULTS.md's table.
#
# Everything goes to OUT_DIR as JSON and text. About 1-3 minutes on an H100 (each step has its own timeout; the
# whole stays under 5 minutes). Exit status: 0 when both benchmarks and both peers measured, 1 otherwise (what did
# run is still in OUT_DIR). Shape and runs can be changed with GRPO_ROC_BENCH_SHAPE="4 4096 151936" and
# GRPO_ROC_BENCH_ITERATIONS=10.
set -uo pipefail

out="${1:?usage: bash bench/gpu/run-on-gpu.sh OUT_DIR}"
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 1
mkdir -p "$out"
out="$(cd "$out" && pwd)"
log() { echo "[run-on-gpu $(date +%H:%M:%S)] $*" | tee -a "$out/run.log"; }
status=0
read -r rows cols vocab <<<"${GRPO_ROC_BENCH_SHAPE:-4 4096 151936}"
iterations="${GRPO_ROC_BENCH_ITERATIONS:-10}"
shape=(--rows "$rows" --cols "$cols" --vocab "$vocab" --iterations "$iterations" --warmup 2)

# 1. The machine.
log "shape [$rows, $cols, $vocab], $iterations timed runs after 2 warm-up runs"
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || log "nvidia-smi failed (see nvidia-smi.txt)"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total,clocks.max.memory --format=csv >"$out/gpu.csv" 2>&1 || true
NVCC="${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}"
PYTHON="${PYTHON:-python3}"
"$NVCC" --version >"$out/nvcc-version.txt" 2>&1 || log "no nvcc at $NVCC"
"$PYTHON" -c 'import torch, sys; print(torch.__version__, torch.version.cuda, torch.cuda.is_available())' >"$out/torch-version.txt" 2>&1 || true

# 2. Build.
bindir=native/build/bench
mkdir -p "$bindir"
log "building $bindir/grpo_roc_bench with $NVCC"
if ! timeout 240 "$NVCC" -O3 -std=c++17 \
  -gencode arch=compute_80,code=sm_80 -gencode 'arch=compute_90,code=[sm_90,compute_90]' \
  '-DGRPO_ROC_ARCHITECTURES="sm_80 sm_90 compute_90"' -Inative/src \
  native/src/bench_main.cc native/src/engine.cu -o "$bindir/grpo_roc_bench" >"$out/build.log" 2>&1; then
  log "build failed: $(tail -5 "$out/build.log")"
  status=1
fi

# 3. grpo-roc.
for dtype in float32 bfloat16; do
  if [ -x "$bindir/grpo_roc_bench" ]; then
    log "grpo-roc $dtype"
    timeout 150 "$bindir/grpo_roc_bench" --dtype "$dtype" "${shape[@]}" --json "$out/grpo-roc-$dtype.json" >"$out/grpo-roc-$dtype.txt" 2>&1
    rc=$?
    cat "$out/grpo-roc-$dtype.txt" | tee -a "$out/run.log"
    [ "$rc" -eq 0 ] || { log "grpo_roc_bench $dtype exited $rc"; status=1; }
  fi
done

# 4. PyTorch eager.
for dtype in float32 bfloat16; do
  log "PyTorch eager $dtype"
  timeout 150 "$PYTHON" bench/peer_torch_cuda.py --dtype "$dtype" "${shape[@]}" --json "$out/torch-$dtype.json" >"$out/torch-$dtype.txt" 2>&1
  rc=$?
  [ "$rc" -eq 0 ] || { log "peer_torch_cuda $dtype exited $rc: $(tail -2 "$out/torch-$dtype.txt")"; status=1; }
done

# 5. The conformance suite on the GPU, when Node is at hand (it is not on a bare GPU machine).
NODE_BIN="${NODE:-$(command -v node || true)}"
if [ -n "$NODE_BIN" ] && [ -f node_modules/vitest/vitest.mjs ] && [ -f native/build/Release/grpo_roc_cuda.node ]; then
  log "conformance on the GPU with $NODE_BIN"
  timeout 240 "$NODE_BIN" node_modules/vitest/vitest.mjs run test/conformance/cuda.test.ts test/cuda-bfloat16.test.ts \
    --reporter=verbose >"$out/conformance.txt" 2>&1
  log "conformance exited $? (see conformance.txt)"
else
  log "conformance on the GPU not run: needs a Node binary (\$NODE), node_modules and native/build/Release/grpo_roc_cuda.node"
fi

# 6. Summary.
"$PYTHON" bench/gpu/summarize.py "$out" | tee -a "$out/run.log"
log "done in ${SECONDS} s, status $status"
exit "$status"
