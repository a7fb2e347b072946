"""PyTorch CPU reference for `bitdance bench generate`: the OFFICIAL BitDance-B sampler
(`model.sample`: AR loop with the KV cache, the diffusion head, the autoencoder's decoder) on one
weight file shared with our runtime, fp32, timed after a warm-up. Run by hand, never in CI.

Write a random-weight model once (official constructor, every weight random and O(1) as in the
parity fixtures, F16-exact values stored as F16; 1.4 GB for B-4x with its autoencoder):

    PYTHONPATH=$PYLIB python3 scripts/reference/bench_generate_torch.py \\
        --official $OFFICIAL/imagenet_gen --config B-4x --write-weights b4x.safetensors

Then time both sides on it with the same settings (cfg 3.9, linear schedule, 100 head steps):

    PYTHONPATH=$PYLIB python3 scripts/reference/bench_generate_torch.py \\
        --official $OFFICIAL/imagenet_gen --config B-4x --weights b4x.safetensors --threads 2
    bitdance generate --config B-4x --weights b4x.safetensors -c 7
    bitdance bench generate --config B-4x --weights b4x.safetensors

PYLIB and OFFICIAL as in scripts/reference/README.md. Prints one JSON line: seconds per image
(min and median over `--repeats`, after a warm-up run at 1 head step) and the settings.
"""

import argparse
import json
import os
import statistics
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures as ef  # noqa: E402  (stubs flash_attn and torch.compile on import)

# name: (parallel_num, published cfg); every B model is dim 768, 24 layers, 12 heads, a 6-block
# head of width 768 with 2 adaLN linears, 64 class tokens, 256x256 through the d16c32 autoencoder.
CONFIGS = {"B-1x": (1, 3.2), "B-4x": (4, 3.9), "B-16x": (16, 6.1)}


def build(official, name):
    sys.path.insert(0, os.path.abspath(official))
    import src.model as m1
    import src.model_parallel as mp

    p, _ = CONFIGS[name]
    kw = dict(dim=768, n_layer=24, n_head=12, diff_layers=6, diff_dim=768,
              diff_adanln_layers=2, latent_dim=32, down_size=16, patch_size=1,
              resolution=256, cls_token_num=64, num_classes=1000, diff_batch_mul=1)
    if p == 1:
        return m1.BitDance(**kw)
    return mp.BitDance(**kw, parallel_num=p, parallel_mode="patch")


def read_safetensors(path):
    """name -> float32 tensor of a safetensors file (F32 / F16 / BF16), without numpy."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    header.pop("__metadata__", None)
    dtypes = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}
    out = {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtypes[info["dtype"]])
        out[name] = t.reshape(info["shape"]).to(torch.float32)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="the official repo's imagenet_gen folder")
    ap.add_argument("--config", default="B-4x", choices=sorted(CONFIGS))
    ap.add_argument("--write-weights", help="write a random-weight model here and exit")
    ap.add_argument("--weights", help="the weight file to time (from --write-weights)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--cfg", type=float, help="guidance scale (default: the published one)")
    ap.add_argument("--steps", type=int, default=100, help="head sampling steps per AR step")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build(args.official, args.config).eval()
    if args.write_weights:
        ef.randomize(model, torch.Generator().manual_seed(4))
        state = {k: v for k, v in model.state_dict().items()}
        ef.save(args.write_weights, state, {"source": f"random official BitDance {args.config}"},
                half=True)
        return
    if not args.weights:
        ap.error("give --weights (or --write-weights to make one)")
    state = read_safetensors(args.weights)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # Only non-persistent buffers may be absent; the AR model and the decoder must all load.
    needed = [k for k in missing if not k.startswith("vae.encoder") and "quantize" not in k]
    if needed or unexpected:
        sys.exit(f"{args.weights}: missing {needed[:5]}, unexpected {unexpected[:5]}")
    cfg = args.cfg if args.cfg is not None else CONFIGS[args.config][1]
    cond = torch.arange(args.batch) % 1000

    def sample(steps):
        t0 = time.perf_counter()
        with torch.no_grad():
            img = model.sample(cond, sample_steps=steps, cfg_scale=cfg, cfg_schedule="linear")
        assert torch.isfinite(img).all(), "non-finite image"
        return time.perf_counter() - t0

    sample(1)  # warm-up: allocator, first-call paths
    runs = [sample(args.steps) / args.batch for _ in range(max(1, args.repeats))]
    print(json.dumps({
        "bench": "generate_torch", "config": args.config, "torch": torch.__version__,
        "threads": args.threads, "batch": args.batch, "cfg": cfg, "head_steps": args.steps,
        "seconds_per_image_min": min(runs), "seconds_per_image_median": statistics.median(runs),
        "runs": runs,
    }))


if __name__ == "__main__":
    main()
