#!/usr/bin/env bash
# Builds the `wasm` backend's kernel (native/wasm/logprobs.c) with Debian's clang 14 and wasm-ld 14
# (`apt-get install clang-14 lld-14`), in two variants of the same source:
#
#   native/wasm/logprobs-shared.wasm  imports a *shared* memory (atomics, bulk memory): the build worker threads use,
#                                     one WebAssembly.Memory for every thread (Node; browsers when cross-origin
#                                     isolated). Up to 4 GiB (--max-memory), the most wasm32 addresses.
#   native/wasm/logprobs.wasm         imports an ordinary memory: one thread, where shared memory is not allowed
#                                     (a browser page without cross-origin isolation).
#
# Both import their memory (env.memory) rather than export it: the caller creates it (shared or not), sizes and grows
# it, and every thread's instance is given the same one. Then it writes src/wasm/module.generated.ts, both modules
# in base64, so that the package loads them in Node and in browsers alike (no file read, no fetch).
#
# The output is reproducible: no debug information, names or producers section (--strip-all), so the same clang
# gives the same bytes; test/wasm-kernel.test.ts rebuilds with --check and compares them with the committed files.
#
#   bash scripts/build-wasm.sh          build and write the files
#   bash scripts/build-wasm.sh --check  build into a temporary folder; exit 1 if any byte differs from the committed
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
clang="${CLANG:-clang-14}"
check=0
[ "${1:-}" = "--check" ] && check=1

out="$root/native/wasm"
generated="$root/src/wasm/module.generated.ts"
if [ "$check" = 1 ]; then
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  out="$tmp"
  generated="$tmp/module.generated.ts"
fi

common=(--target=wasm32 -O3 -msimd128 -fno-math-errno -ffreestanding -nostdlib -Wall -Wextra -Werror
  -Wl,--no-entry -Wl,--import-memory -Wl,--export=__heap_base -Wl,--strip-all)
"$clang" "${common[@]}" -matomics -mbulk-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 \
  -o "$out/logprobs-shared.wasm" "$root/native/wasm/logprobs.c"
"$clang" "${common[@]}" -mbulk-memory -Wl,--max-memory=4294967296 \
  -o "$out/logprobs.wasm" "$root/native/wasm/logprobs.c"

{
  echo "// Written by scripts/build-wasm.sh from native/wasm/logprobs.c: do not edit. The two builds of the kernel, base64."
  echo "/** Imports a shared memory: worker threads over one WebAssembly.Memory. */"
  echo "export const SHARED_MODULE_BASE64 ="
  echo "  \"$(base64 -w0 "$out/logprobs-shared.wasm")\";"
  echo "/** Imports an ordinary memory: one thread, where shared memory is not allowed. */"
  echo "export const SINGLE_MODULE_BASE64 ="
  echo "  \"$(base64 -w0 "$out/logprobs.wasm")\";"
} >"$generated"

if [ "$check" = 1 ]; then
  status=0
  for file in logprobs-shared.wasm logprobs.wasm; do
    cmp -s "$out/$file" "$root/native/wasm/$file" || { echo "native/wasm/$file differs from a rebuild" >&2; status=1; }
  done
  cmp -s "$generated" "$root/src/wasm/module.generated.ts" ||
    { echo "src/wasm/module.generated.ts differs from a rebuild" >&2; status=1; }
  exit "$status"
fi
echo "built native/wasm/logprobs-shared.wasm ($(wc -c <"$out/logprobs-shared.wasm") bytes), native/wasm/logprobs.wasm ($(wc -c <"$out/logprobs.wasm") bytes), src/wasm/module.generated.ts"
