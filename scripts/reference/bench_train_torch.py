"""PyTorch CPU reference for `bitdance bench train --config tiny`: official next-patch BitDance
training steps (forward from cached latents, backward, grad clip 1.0, AdamW (0.9, 0.95) wd 0.05,
EMA) at the `tiny` config, batch 16, diff_batch_mul 4, fp32. Run by hand, never in CI:

    PYTHONPATH=$PYLIB python3 scripts/reference/bench_train_torch.py \
        --official $OFFICIAL/imagenet_gen [--threads 1] [--steps 10]
"""

import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures as ef  # noqa: E402  (stubs flash_attn and torch.compile on import)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sys.path.insert(0, os.path.abspath(args.official))
    import src.model_parallel as mp
    import src.qae as qae

    ddconfig = {"double_z": False, "z_channels": 32, "in_channels": 3, "out_ch": 3, "ch": 32,
                "ch_mult": [1, 2, 2], "num_res_blocks": 1}
    mp.VQModel = lambda _d, n: qae.VQModel(ddconfig, n)
    model = mp.BitDance(dim=128, n_layer=4, n_head=4, diff_layers=2, diff_dim=128,
                        diff_adanln_layers=1, latent_dim=32, down_size=4, patch_size=1,
                        resolution=32, diff_batch_mul=4, cls_token_num=4, num_classes=10,
                        parallel_num=4, parallel_mode="patch", perturb_rate=0.1)
    model.train()
    params = [p for n, p in model.named_parameters() if not n.startswith("vae.")]
    ema = [p.detach().clone() for p in params]
    opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05)
    latents = torch.sign(torch.randn(args.batch, 32, 8, 8)).contiguous(
        memory_format=torch.channels_last)
    labels = torch.arange(args.batch) % 10

    def step():
        loss = model(latents, labels, cached=True)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - 0.999)

    for _ in range(2):
        step()
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sps = args.steps / (time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {args.threads} thread(s): {sps:.3f} steps/s "
          f"({sps * args.batch:.1f} images/s), tiny, batch {args.batch}, diff_batch_mul 4")


if __name__ == "__main__":
    main()
