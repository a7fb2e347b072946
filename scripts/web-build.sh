#!/usr/bin/env bash
# Builds the browser studio: the bitdance-web crate for wasm32, then wasm-bindgen --target web
# into web/pkg (git-ignored). Serve web/ with any static server, e.g.
#   python3 -m http.server -d web 8000   and open http://localhost:8000
# Usage: scripts/web-build.sh [--dev]   (--dev: unoptimized profile, faster to build)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
case "${1:-}" in
  "") ;;
  --dev) profile=dev ;;
  *) echo "usage: $0 [--dev]" >&2; exit 2 ;;
esac

lock_version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"/\1/p')
if ! have=$(wasm-bindgen --version 2>/dev/null) || [[ "$have" != "wasm-bindgen $lock_version" ]]; then
  echo "error: wasm-bindgen $lock_version is needed (found: ${have:-none}); run scripts/install-deps.sh" >&2
  exit 1
fi

cargo build --target wasm32-unknown-unknown -p bitdance-web --profile "$profile"
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
out_dir=$([[ $profile == dev ]] && echo debug || echo release)
wasm-bindgen --target web --no-typescript --out-dir web/pkg \
  "$target_dir/wasm32-unknown-unknown/$out_dir/bitdance_web.wasm"
# The bundled fine-tuning sample: 24 images of each Fashion-MNIST class, and their list (awk,
# not head: head exiting early would kill sort with SIGPIPE under pipefail).
sample=web/datasets/fashion-mnist
rm -rf "$sample" && mkdir -p "$sample"
# Folders named without their index ("tshirt", not "0-tshirt"): fine-tuning a model makes them
# classes of their own (a folder named like one of its classes would train that class).
for class_dir in assets/datasets/fashion-mnist/train/*/; do
  class=$(basename "$class_dir")
  class=${class#*-}
  mkdir -p "$sample/$class"
  find "$class_dir" -name '*.png' | sort | awk 'NR <= 24' | xargs -I{} cp {} "$sample/$class/"
done
(cd "$sample" && find . -name '*.png' | sed 's|^\./||' | sort |
  python3 -c 'import json,sys; print(json.dumps({"files": sys.stdin.read().split()}))' > manifest.json)
echo "built web/pkg ($profile) and web/datasets; serve with: python3 -m http.server -d web 8000"
