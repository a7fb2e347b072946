#!/usr/bin/env bash
# Installs what the tests need on Debian 12, skipping whatever is already there:
# Mesa lavapipe (Vulkan on the CPU), Chromium + chromedriver (WebGPU on SwiftShader), Xvfb with
# xdotool and ImageMagick (the desktop app under a virtual display), Node.js
# and the page tests' npm packages (playwright-core, web/e2e/package-lock.json), the wasm32
# Rust target, clippy/rustfmt, and wasm-bindgen-cli at the Cargo.lock version.
# With --native only what the CLI needs to run (lavapipe): the README's main job.
# Quiet when all goes well; on failure prints the log and exits non-zero.
set -euo pipefail
native=false
if [[ ${1:-} == "--native" ]]; then native=true; fi
cd "$(dirname "$0")/.."

log=$(mktemp -t bitdance-install.XXXXXX)
trap 'rm -f "$log"' EXIT
run() {
  if ! "$@" >>"$log" 2>&1; then
    echo "install-deps: FAILED: $*" >&2
    tail -n 40 "$log" >&2
    exit 1
  fi
}

sudo=""
if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi

# apt packages (python3 checks the generated shaders and lists the web sample; node and npm drive
# the page tests; both are present on most images already).
packages=(mesa-vulkan-drivers libvulkan1)
if ! $native; then
  packages+=(chromium chromium-driver xvfb xauth xdotool imagemagick)
  command -v python3 >/dev/null || packages+=(python3)
  command -v node >/dev/null || packages+=(nodejs)
  command -v npm >/dev/null || packages+=(npm)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: apt-get install ${missing[*]}"
  run $sudo apt-get update -q
  run $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# Rust: toolchain must exist; target and components are added.
if ! command -v cargo >/dev/null || ! command -v rustup >/dev/null; then
  echo "install-deps: cargo/rustup not found; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
if $native; then
  echo "install-deps: ok (lavapipe)"
  exit 0
fi
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  echo "install-deps: rustup target add wasm32-unknown-unknown"
  run rustup target add wasm32-unknown-unknown
fi
for c in clippy rustfmt; do
  if ! rustup component list --installed | grep -q "^$c"; then
    echo "install-deps: rustup component add $c"
    run rustup component add "$c"
  fi
done

# wasm-bindgen-cli must match the wasm-bindgen crate exactly (about 6 minutes to compile).
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if [[ -z $version ]]; then
  echo "install-deps: no wasm-bindgen in Cargo.lock" >&2
  exit 1
fi
if [[ $(wasm-bindgen --version 2>/dev/null) != "wasm-bindgen $version" ]]; then
  echo "install-deps: cargo install wasm-bindgen-cli $version (several minutes)"
  # --locked can fail on a registry mirror missing a pinned dependency; then resolve afresh.
  cargo install wasm-bindgen-cli --version "$version" --locked >>"$log" 2>&1 ||
    run cargo install wasm-bindgen-cli --version "$version" --force
fi
if [[ $(wasm-bindgen --version 2>/dev/null) != "wasm-bindgen $version" ]]; then
  echo "install-deps: wasm-bindgen $version is installed but not first on PATH ($(command -v wasm-bindgen))" >&2
  exit 1
fi
# The page tests' npm packages, exactly as locked (playwright-core drives Debian's chromium;
# it downloads no browser).
if [[ ! -d web/e2e/node_modules/playwright-core ]] || [[ web/e2e/package-lock.json -nt web/e2e/node_modules ]]; then
  echo "install-deps: npm ci in web/e2e"
  run env PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix web/e2e --no-audit --no-fund
fi
echo "install-deps: ok (lavapipe, chromium $(chromium --version 2>/dev/null | awk '{print $2}'), wasm-bindgen $version)"
