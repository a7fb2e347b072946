#!/usr/bin/env bash
# Starts the desktop studio under a virtual display (Xvfb, 1280x800), lets it open the GPU and
# the default model, presses Ctrl+Enter (Generate; xdotool), and takes a screenshot; fails unless the window
# drew the studio and an image (the screenshot is not flat). Needs scripts/install-deps.sh.
# Usage: scripts/desktop-smoke.sh [SCREENSHOT.png]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --quiet -p bitdance-desktop
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
home=$(mktemp -d -t bitdance-home.XXXXXX)
trap 'rm -rf "$home"' EXIT
shot=${1:-$home/screenshot.png}  # removed with the home unless a path is given
BITDANCE_HOME=$home xvfb-run -a -s "-screen 0 1280x800x24" bash -c '
  "$0" & app=$!
  for _ in $(seq 60); do xdotool search --name BitDance >/dev/null 2>&1 && break; sleep 1; done
  sleep 8
  # Generate by its shortcut (Ctrl+Enter), as a person at the keyboard would: no coordinates
  # for a layout change to break.
  win=$(xdotool search --name BitDance | head -1)
  xdotool windowactivate --sync "$win" 2>/dev/null || xdotool windowfocus --sync "$win"
  xdotool key --clearmodifiers ctrl+Return
  sleep 15
  import -window root "$1"
  kill $app' "$target_dir/debug/bitdance-desktop" "$shot"
spread=$(identify -format '%[fx:standard_deviation]' "$shot")
kept=$(find "$home/bitdance" -name '*.png' | wc -l)
echo "desktop screenshot: pixel spread $spread, images kept $kept${1:+ (screenshot: $1)}"
python3 -c "import sys; sys.exit(0 if float('$spread') > 0.05 else 1)" || { echo "the window looks empty" >&2; exit 1; }
[[ $kept -ge 1 ]] || { echo "Generate made no image" >&2; exit 1; }
