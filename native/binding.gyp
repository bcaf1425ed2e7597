# grpo_roc_cuda.node: the N-API glue (addon.cc) and the self-check (self_check.cc), built by g++, and the kernels
# (engine.cu, nvcc), linked with the static CUDA runtime, so that the addon needs only the NVIDIA driver at run time.
# native/build.mjs runs node-gyp on this file with the CUDA toolkit it found (GRPO_ROC_CUDA_HOME), the GPU code to
# build (GRPO_ROC_CUDA_ARCHS, and nvcc's flags for it in GRPO_ROC_CUDA_GENCODE) and an explicit --nodedir, so
# nothing is downloaded.
#
# By default code for sm_80 (A100; also runs on sm_86/sm_89) and sm_90 (H100/H200), and compute_90 PTX that the
# driver compiles for newer GPUs: one nvcc call, ~10 s. The static C++ and CUDA runtimes' symbols stay inside the
# addon (--exclude-libs), and so do the addon's own (-fvisibility=hidden): it exports N-API's entry points only, so
# nothing in it can clash with another copy in the process (PyTorch's CUDA runtime, another addon's libstdc++). The
# file is stripped.
{
  "variables": {
    "cuda_home%": "<!(echo ${GRPO_ROC_CUDA_HOME:-/usr/local/cuda})",
    "cuda_lib%": "<!(echo ${GRPO_ROC_CUDA_LIB:-${GRPO_ROC_CUDA_HOME:-/usr/local/cuda}/lib64})",
    "cuda_archs%": "<!(echo ${GRPO_ROC_CUDA_ARCHS:-sm_80 sm_90 compute_90})",
    "cuda_gencode%": "<!(echo ${GRPO_ROC_CUDA_GENCODE:--gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90 -gencode arch=compute_90,code=compute_90})",
  },
  "targets": [
    {
      "target_name": "grpo_roc_cuda",
      "sources": ["src/addon.cc", "src/self_check.cc", "src/engine.cu"],
      "include_dirs": ["<(cuda_home)/include"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-fvisibility=hidden", "-Wall", "-Wno-unused-function"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17", "-std=gnu++20"],
      "rules": [
        {
          "rule_name": "nvcc",
          "extension": "cu",
          "inputs": ["src/grpo_math.h", "src/engine.h"],
          "outputs": ["<(INTERMEDIATE_DIR)/<(RULE_INPUT_ROOT).o"],
          "action": [
            "<(cuda_home)/bin/nvcc", "-c", "-O3", "-std=c++17", "-Xcompiler", "-fPIC,-fvisibility=hidden",
            "<!@(echo <(cuda_gencode))",
            "-DGRPO_ROC_ARCHITECTURES=\"<(cuda_archs)\"",
            "-o", "<@(_outputs)", "<(RULE_INPUT_PATH)"
          ],
          "message": "nvcc <(RULE_INPUT_PATH)",
          "process_outputs_as_sources": 1
        }
      ],
      "libraries": ["<(cuda_lib)/libcudart_static.a", "-ldl", "-lrt", "-lpthread"],
      "ldflags": ["-static-libstdc++", "-static-libgcc", "-Wl,--exclude-libs,ALL", "-s"]
    }
  ]
}
