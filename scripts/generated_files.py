"""Writes or checks the shader files a generator script produces (shared by gen_*.py)."""

import sys
from pathlib import Path


def write_or_check(files, script):
    """Writes `files` ({path relative to the repository: text}); with --check only compares
    them, naming each stale file and exiting 1."""
    root = Path(__file__).resolve().parent.parent
    check = "--check" in sys.argv
    stale = []
    for rel, text in files.items():
        path = root / rel
        if not check:
            path.write_text(text)
        elif not path.exists() or path.read_text() != text:
            stale.append(rel)
    for rel in stale:
        print(f"{rel} differs from the output of scripts/{script}; run it", file=sys.stderr)
    sys.exit(1 if stale else 0)
