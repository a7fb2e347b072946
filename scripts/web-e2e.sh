#!/usr/bin/env bash
# The studio page's end-to-end tests (web/e2e/studio.mjs) in headless Debian Chromium: builds
# the page (scripts/web-build.sh --dev), makes a small model with the CLI (one fine-tuning step
# from the default model on eight bundled digits) for the open-a-file test, then drives the
# page with playwright-core (the same eight digits are the fine-tuning test's folder). Needs scripts/install-deps.sh.
# Usage: scripts/web-e2e.sh [--screenshots DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/web-build.sh --dev
work=$(mktemp -d -t bitdance-e2e.XXXXXX)
trap 'rm -rf "$work"' EXIT
for class in 0-0 1-1; do
  mkdir -p "$work/data/$class"
  cp assets/datasets/mnist/train/$class/000{0,1,2,3}.png "$work/data/$class/"
done
cargo run --quiet -p bitdance-cli -- finetune --init assets/model/default.safetensors \
  --data "$work/data" --out "$work/run" --steps 1 --batch 2 --sample-every 0 --no-flip >/dev/null
mv "$work/run/model.safetensors" "$work/digits-finetuned.safetensors"
node web/e2e/studio.mjs "$work/digits-finetuned.safetensors" "$work/data" "$@"
