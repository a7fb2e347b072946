#!/usr/bin/env bash
# One check of a machine with a real GPU driver, under 8 minutes once built (the step limits add
# up to 7.8 minutes): the adapter, `bitdance doctor` (every kernel against its f64 reference,
# 16-bit weights included), then the benchmarks as JSON lines: matmul (f32 and f16 weights),
# attention, conv, training (tiny), and generate (B-4x and B-1x at batch 1, random weights, the
# full sampler) with f16 and with f32 linear weights; the B-4x head with 16-bit weights read as
# f16 arrays and packed in u32 words (`f16_form` in its JSON). Needs only the release binary:
# built here unless BITDANCE_BIN names one.
# Usage: bash scripts/gpu-check.sh [OUT.jsonl]   (JSON lines also go to OUT, default gpu-check.jsonl)
set -uo pipefail
cd "$(dirname "$0")/.."
out=${1:-gpu-check.jsonl}
: >"$out"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp/bitdance-xdg-$(id -u)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"

# Built (or brought up to date) here unless BITDANCE_BIN names a binary: a stale release binary
# would report figures of older code.
bin=${BITDANCE_BIN:-}
if [[ -z $bin ]]; then
  cargo build --release -p bitdance-cli || exit 1
  bin=target/release/bitdance
fi

failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Runs one step with a time limit; its JSON lines go to $out as well.
run() {
  local limit=$1
  shift
  echo "==> $*"
  local start=$SECONDS
  timeout "$limit" "$bin" "$@" >"$log" 2>&1
  local status=$?
  cat "$log"
  grep '^{' "$log" >>"$out"
  if ((status != 0)); then
    echo "gpu-check: FAILED ($status) after $((SECONDS - start)) s: $*"
    failed=1
  fi
}

run 50 doctor
# The forms of 16-bit reads the device has (doctor's "16-bit reads ... (checked: ...)" line).
forms=packed
grep -q '^16-bit reads.*checked:.*f16 arrays' "$log" && forms="arrays packed"
run 40 bench matmul --json
run 15 bench attention --json
run 15 bench conv --json
run 40 bench train --json --repeats 20
# The head with 16-bit weights read each way (the default on a GPU with SHADER_F16: f16 arrays).
for form in $forms; do
  BITDANCE_F16=$form run 15 bench head --config B-4x --json --repeats 3
done
for precision in f16 f32; do
  run 60 bench generate --config B-4x --precision $precision --json --repeats 3
  run 80 bench generate --config B-1x --precision $precision --json --repeats 2
done
echo "gpu-check: JSON lines in $out"
exit $failed
