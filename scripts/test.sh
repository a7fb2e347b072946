#!/usr/bin/env bash
# Every check of the project, as CI runs it: dependencies, formatting, clippy (native and
# wasm32), the native tests on the present adapter (Mesa lavapipe without a GPU), a bounded
# fuzzing run of every parser of untrusted bytes, the kernel checks again without subgroup
# operations, the desktop app's UI tests (egui_kittest) and the app itself under Xvfb, the
# browser tests in headless Chromium, and the studio page driven end to end (Playwright).
# Runs every step even after a failure, prints a summary, exits non-zero if any step failed.
set -uo pipefail
cd "$(dirname "$0")/.."

export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/bitdance-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
# A one-off build gains nothing from incremental caches, which doubled the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

if ! bash scripts/install-deps.sh; then
  echo "test.sh: installing dependencies failed" >&2
  exit 1
fi

summary=()
failed=0
step() {
  local name=$1 start=$SECONDS status
  shift
  echo
  echo "==> $name: $*"
  if "$@"; then status=PASS; else status=FAIL; failed=1; fi
  summary+=("$(printf '%-4s %5ds  %s' "$status" $((SECONDS - start)) "$name")")
}

browser_tests() {
  CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
    CHROMEDRIVER="$(command -v chromedriver)" WASM_BINDGEN_TEST_TIMEOUT=300 \
    cargo test --target wasm32-unknown-unknown -p bitdance-web --test browser
}


total=$SECONDS
step "format" cargo fmt --all -- --check
step "generated shaders" sh -c "python3 scripts/gen_matmul.py --check && python3 scripts/gen_conv.py --check"
step "clippy (native)" cargo clippy --workspace --all-targets -- -D warnings
step "clippy (wasm32)" cargo clippy --target wasm32-unknown-unknown -p bitdance-web --all-targets -- -D warnings
step "native tests" cargo test
# Every parser of untrusted bytes under mutation fuzzing, 15 s per target (4 targets): no panic,
# no abort, no allocation over the caps (fuzz/README.md).
step "fuzz (bounded)" sh -c "cargo test -p bitdance-fuzz --quiet && cargo run -p bitdance-fuzz --quiet -- --seconds 15"
# The same kernel checks on the portable kernel forms (no subgroup operations), as on the web.
step "kernel checks without subgroups" env BITDANCE_SUBGROUPS=0 cargo test -p bitdance-tests --test conformance
step "desktop UI tests" cargo test -p bitdance-desktop
step "desktop app under Xvfb" bash scripts/desktop-smoke.sh
step "browser tests" browser_tests
step "web studio (Playwright)" bash scripts/web-e2e.sh

echo
echo "==> summary ($((SECONDS - total)) s)"
printf '  %s\n' "${summary[@]}"
echo "  disk: target $(du -sh "${CARGO_TARGET_DIR:-target}" 2>/dev/null | cut -f1), $(df -h --output=avail . | tail -1 | tr -d ' ') free"
if ((failed)); then
  echo "test.sh: FAILED"
  exit 1
fi
echo "test.sh: all passed"
