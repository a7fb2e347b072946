"""Rewrites a safetensors model file with every F32 tensor stored as F16 (round to nearest
even, Python's struct 'e'), keeping names, shapes and metadata: how the embedded default model
is shipped at half the size. Usage: python3 scripts/half_model.py IN.safetensors OUT.safetensors
"""
import json
import struct
import sys


def main(src, dst):
    with open(src, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out_header, blobs, offset = {}, [], 0
    if "__metadata__" in header:
        out_header["__metadata__"] = header.pop("__metadata__")
    for name in sorted(header):
        info = header[name]
        a, b = info["data_offsets"]
        raw = data[a:b]
        if info["dtype"] == "F32":
            values = struct.unpack(f"<{len(raw) // 4}f", raw)
            raw = struct.pack(f"<{len(values)}e", *values)
            dtype = "F16"
        else:
            dtype = info["dtype"]
        out_header[name] = {"dtype": dtype, "shape": info["shape"],
                            "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(out_header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(dst, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
