#!/usr/bin/env bash
# Installs the system packages the tests need on Debian (12 "bookworm" and later) or a derivative with apt: a Vulkan
# driver for WebGPU (Mesa's lavapipe), Chromium for the browser example, clang 14 and wasm-ld 14 to
# rebuild the wasm kernel, Jupyter's client packages for the notebooks
# (they bring python3, which the Python example needs) and a font for the demo's chart. `npm test` skips what needs a
# missing one, and its closing summary names this script; .ci/run runs it before `npm ci` and `npm test`.
#
#   sudo bash scripts/install-test-deps.sh     (or without sudo: it calls sudo itself for apt-get)
#
# Each step is idempotent and quiet: nothing is fetched when it is already there, and apt's log is printed only on
# failure. Not installed here: the CUDA toolkit (nvcc, for the CUDA addon: `npm run build:cuda`) and an NVIDIA GPU.
set -euo pipefail

sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else sudo="unavailable"; fi
fi
lists_fresh=0

# apt_install LABEL [APT-GET OPTIONS...] -- PACKAGES...: installs quietly, printing apt's log only on failure.
apt_install() {
  local label="$1" options=() log
  shift
  while [ "$1" != "--" ]; do options+=("$1"); shift; done
  shift
  if [ "$sudo" = unavailable ]; then
    echo "$label: not root and no sudo: cannot install $*" >&2
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "$label: no apt-get (this script knows Debian's packages only): install $* with your system's package manager" >&2
    return 1
  fi
  log="$(mktemp)"
  if [ "$lists_fresh" = 0 ]; then
    if ! $sudo apt-get update -qq >"$log" 2>&1; then cat "$log" >&2; rm -f "$log"; echo "$label: apt-get update failed" >&2; return 1; fi
    lists_fresh=1
  fi
  if ! $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${options[@]}" "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "$label: installing $* failed" >&2
    return 1
  fi
  rm -f "$log"
}

# WebGPU in Node (the `webgpu` package, Dawn) needs a Vulkan driver; CI machines have no GPU, so it is lavapipe,
# Mesa's CPU Vulkan driver. Debian 12's own Mesa 22 lavapipe is rejected by Dawn: Mesa 25 comes from
# bookworm-backports, on the same mirror as the machine's other Debian sources.
install_vulkan_driver() {
  local have codename target=()
  have="$(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || true)"
  if [ -n "$have" ] && dpkg --compare-versions "$have" ge 23 && dpkg-query -W libvulkan1 >/dev/null 2>&1; then
    echo "vulkan: mesa-vulkan-drivers $have already installed"
    return 0
  fi
  codename="$(. /etc/os-release 2>/dev/null && echo "${VERSION_CODENAME:-}")"
  if [ "$codename" = bookworm ] && [ "$sudo" != unavailable ]; then
    target=(-t bookworm-backports)
    if ! grep -rqs --include='*.list' --include='*.sources' 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
      # The mirror the machine already uses for Debian (deb822 or one-line format), else deb.debian.org.
      local mirror
      mirror="$(grep -hs -m1 '^URIs:' /etc/apt/sources.list.d/debian.sources | awk '{print $2}' || true)"
      [ -n "$mirror" ] || mirror="$(grep -hs -m1 -E '^deb\s+\S+\s+bookworm\s' /etc/apt/sources.list | awk '{print $2}' || true)"
      [ -n "$mirror" ] || mirror="http://deb.debian.org/debian"
      printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$mirror" |
        $sudo tee /etc/apt/sources.list.d/grpo-roc-backports.sources >/dev/null
      echo "vulkan: added bookworm-backports ($mirror)"
      lists_fresh=0
    fi
  fi
  apt_install vulkan "${target[@]}" -- mesa-vulkan-drivers libvulkan1
  echo "vulkan: mesa-vulkan-drivers $(dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null || echo 'not installed')"
}

# The browser example's test (test/browser.test.ts) drives Debian's Chromium headless through playwright-core
# (which downloads no browser); WebGPU runs there on Chromium's bundled SwiftShader.
install_chromium() {
  if [ -x /usr/bin/chromium ]; then
    echo "chromium: already installed"
    return 0
  fi
  apt_install chromium --no-install-recommends -- chromium
  echo "chromium: installed $(dpkg-query -W -f='${Version}' chromium 2>/dev/null || echo '?')"
}

# The notebooks (TypeScript, tslab kernel) run headlessly through scripts/run-notebooks.py under Debian's python3
# with Jupyter's client packages; the demo's PNG chart needs a font.
install_jupyter_and_fonts() {
  if /usr/bin/python3 -c "import nbclient, nbformat, jupyter_client, ipykernel" 2>/dev/null && [ -d /usr/share/fonts/truetype/dejavu ]; then
    echo "jupyter: python3-nbclient and fonts already installed"
    return 0
  fi
  apt_install jupyter --no-install-recommends -- python3-nbclient python3-nbformat python3-jupyter-client python3-ipykernel fonts-dejavu-core
  echo "jupyter: installed python3-nbclient $(dpkg-query -W -f='${Version}' python3-nbclient 2>/dev/null || echo '?')"
}

# The wasm backend's kernel is committed built; test/wasm-kernel.test.ts rebuilds it from native/wasm/logprobs.c with
# Debian's clang 14 and wasm-ld 14 (scripts/build-wasm.sh) and checks that the bytes are the same.
install_wasm_toolchain() {
  if command -v clang-14 >/dev/null 2>&1 && command -v wasm-ld-14 >/dev/null 2>&1; then
    echo "wasm toolchain: clang-14 and wasm-ld-14 already installed"
    return 0
  fi
  apt_install "wasm toolchain" --no-install-recommends -- clang-14 lld-14
  echo "wasm toolchain: installed clang-14 $(dpkg-query -W -f='${Version}' clang-14 2>/dev/null || echo '?')"
}

install_vulkan_driver
install_chromium
install_wasm_toolchain
install_jupyter_and_fonts
