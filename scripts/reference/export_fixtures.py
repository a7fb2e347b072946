"""Golden parity fixtures from the OFFICIAL BitDance PyTorch code (run by hand, never in CI).

Builds tiny configurations of the official architecture (1x `src.model.BitDance`, next-patch 4x
and 16x `src.model_parallel.BitDance` in the default `--parallel-mode patch`) sharing one tiny
binary autoencoder (`src.qae.VQModel`), gives every weight random non-zero values, and writes
to tests/fixtures/parity/:

  tiny_ae.safetensors      `vae.encoder.*`, `vae.decoder.*` (the AR checkpoint's names) and
                           `fixture.ae.*`: encode of images (pre-quantisation latent, signs,
                           GFQ group indices) and decode of ±1 latents.
  <name>.json              the model config in our format (crates/bitdance/src/model/config.rs).
  <name>.safetensors       the AR transformer + head state dict under the official names (the
                           `vae.*` part is in tiny_ae.safetensors, shared by all three models)
                           and `fixture.*` inputs / expected outputs.
  <name>.noise.safetensors the Gaussian draws of the sampling run in the CLI `--noise` format:
                           `x0.{s}` [R, p, latent_dim], `eps.{s}` [steps, R, p, latent_dim].
  time_grid.safetensors    torch.linspace(0, 0.95, N + 1) (`linspace.{N}`) and the grid the
                           sampler really uses after time_shift_sana(., 1) (`shifted.{N}`).

Run (CPU, ~1 minute):

    PYTHONPATH=$PYLIB python3 scripts/reference/export_fixtures.py \
        --official $OFFICIAL/imagenet_gen --out tests/fixtures/parity

with torch 2.7.1 and einops importable (`pip install --target $PYLIB torch==2.7.1 einops`).

The official modules are imported from --official, never copied. Changes made at import time:
  * `torch.compile` is replaced by the identity (the official code decorates the head and the
    cached transformer step with `@torch.compile()`; eager execution is the same computation).
  * `flash_attn` is not installed on CPU: a stub module provides `flash_attn_func` implemented
    with `F.scaled_dot_product_attention` (used by the 1x full-sequence forward only).
  * The AR models hard-code the 460M autoencoder `ddconfig`; `VQModel` in the model modules is
    wrapped to build the official VQModel with the tiny `ddconfig` below instead.
  * `torch` in the sampling modules is replaced by a proxy whose `randn` / `randn_like` record
    each draw in call order (the draws themselves are unchanged).
"""

import argparse
import ctypes
import json
import math
import os
import struct
import sys
import types

import torch
import torch.nn.functional as F

torch.set_num_threads(1)
torch.compile = lambda *a, **k: (a[0] if a and callable(a[0]) else (lambda f: f))

# flash_attn stub: q, k, v [B, L, H, D] -> [B, L, H, D].
_flash = types.ModuleType("flash_attn")


def _flash_attn_func(q, k, v, causal=False, dropout_p=0.0, **_):
    assert dropout_p == 0.0
    o = F.scaled_dot_product_attention(
        q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal
    )
    return o.transpose(1, 2)


_flash.flash_attn_func = _flash_attn_func
sys.modules["flash_attn"] = _flash

AE = {"ch": 32, "ch_mult": [2, 1, 1, 1, 1], "num_res_blocks": 1, "z_channels": 32}
LATENT = 32
NUM_CLASSES = 10
CLASSES = [3, 7]
CFG = 3.0
HEAD_STEPS = 10

MODELS = {
    # name: (resolution, parallel_num, cls_token_num, diff_layers, diff_adanln_layers)
    "tiny_1x": (64, 1, 3, 4, 2),
    "tiny_4x": (64, 4, 4, 2, 1),
    "tiny_16x": (128, 16, 2, 2, 2),
}
DIM, N_LAYER, N_HEAD, DIFF_DIM = 64, 2, 4, 64


def save(path, tensors, metadata=None, half=False):
    """Minimal safetensors writer (F32, or F16 with `half`; no numpy needed)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().to(torch.float32)
        if half:
            assert torch.equal(t.half().float(), t), f"{name} is not f16-exact"
        t = (t.half() if half else t).contiguous().clone()
        # ctypes reads the storage at memory speed (bytes(untyped_storage()) iterates in Python).
        data = ctypes.string_at(t.data_ptr(), t.element_size() * t.numel())
        assert len(data) == t.element_size() * t.numel(), name
        header[name] = {
            "dtype": "F16" if half else "F32",
            "shape": list(t.shape),
            "data_offsets": [offset, offset + len(data)],
        }
        blobs.append(data)
        offset += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    print(f"  {path}: {os.path.getsize(path) / 1024:.0f} KiB, {len(tensors)} tensors")


def randomize(module, gen):
    """Random non-zero weights keeping activations O(1): norm weights 1 + 0.1 N, biases
    0.05 N, matrices and convs N / sqrt(fan_in), embeddings and query tokens 0.5 N; every
    value rounded to f16 (so the weight files store F16 exactly and stay small; the reference
    computes in f32 with exactly those values)."""
    for name, p in module.named_parameters():
        leaf = name.split(".")[-1]
        n = torch.randn(p.shape, generator=gen)
        if "norm" in name and leaf == "weight" and p.dim() == 1:
            v = 1.0 + 0.1 * n
        elif leaf == "bias" or p.dim() == 1:
            v = 0.05 * n
        elif "embedding" in name or "pos_for_diff" in name or name == "query_token":
            v = 0.5 * n
        else:
            fan_in = p[0].numel()
            gain = 0.5 if ("ada_ln" in name or "gamma" in name or "beta" in name) else 1.0
            v = n * gain / math.sqrt(fan_in)
        with torch.no_grad():
            p.copy_(v.half().float())


class NoiseRecorder:
    """Proxy for `torch` inside the sampling modules: records randn / randn_like draws."""

    def __init__(self):
        self.draws = []

    def __getattr__(self, name):
        return getattr(torch, name)

    def randn(self, *a, **k):
        x = torch.randn(*a, **k)
        self.draws.append(x.clone())
        return x

    def randn_like(self, *a, **k):
        x = torch.randn_like(*a, **k)
        self.draws.append(x.clone())
        return x


def our_config(res, p, cls, diff_layers, adanln):
    return {
        "dim": DIM,
        "n_layer": N_LAYER,
        "n_head": N_HEAD,
        "diff_layers": diff_layers,
        "diff_dim": DIFF_DIM,
        "diff_adanln_layers": adanln,
        "latent_dim": LATENT,
        "down_size": 16,
        "patch_size": 1,
        "resolution": res,
        "cls_token_num": cls,
        "num_classes": NUM_CLASSES,
        "parallel_num": p,
        "vae": AE,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True, help="official imagenet_gen directory")
    ap.add_argument("--out", default="tests/fixtures/parity")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.model as m1
    import src.model_parallel as mp
    import src.qae as qae
    import src.sampling as s1
    import src.sampling_parallel as sp

    ddconfig = {
        "double_z": False,
        "z_channels": AE["z_channels"],
        "in_channels": 3,
        "out_ch": 3,
        "ch": AE["ch"],
        "ch_mult": AE["ch_mult"],
        "num_res_blocks": AE["num_res_blocks"],
    }

    def tiny_vq(_ddconfig, num_codebooks):
        return qae.VQModel(ddconfig, num_codebooks)

    m1.VQModel = tiny_vq
    mp.VQModel = tiny_vq
    recorder = NoiseRecorder()
    s1.torch = recorder
    sp.torch = recorder

    os.makedirs(args.out, exist_ok=True)

    # ---- the shared autoencoder ---------------------------------------------------------------
    gen = torch.Generator().manual_seed(1234)
    ae = qae.VQModel(ddconfig, 4).eval()
    randomize(ae, gen)
    out = {f"vae.{k}": v for k, v in ae.state_dict().items()}
    with torch.no_grad():
        # Smooth-ish images in [-1, 1]: low-resolution noise upsampled plus a little detail.
        img = torch.randn(2, 3, 8, 8, generator=gen)
        img = F.interpolate(img, size=(64, 64), mode="bilinear", align_corners=False)
        img = torch.tanh(img + 0.2 * torch.randn(2, 3, 64, 64, generator=gen))
        latent = ae.encoder(img)
        (quant, _, indices), _ = ae.quantize(latent, return_loss_breakdown=True)
        z = torch.sign(torch.randn(2, LATENT, 4, 4, generator=gen))
        dec = ae.decode(z)
    out["fixture.ae.image"] = img
    out["fixture.ae.latent"] = latent
    out["fixture.ae.quant"] = quant
    # GFQ indices: 4 groups of 8 bits, bit j of group g = (latent[8g + j] > 0), little endian;
    # each group's indices flattened over (b, h, w).
    out["fixture.ae.indices"] = torch.stack([i.float() for i in indices])
    out["fixture.ae.decode_in"] = z
    out["fixture.ae.decode_out"] = dec
    weights = {k: v for k, v in out.items() if k.startswith("vae.")}
    save(f"{args.out}/tiny_ae.safetensors", weights, {"source": "official src.qae.VQModel"}, True)
    fixture = {k: v for k, v in out.items() if k.startswith("fixture.")}
    save(f"{args.out}/tiny_ae.fixture.safetensors", fixture)
    ae_state = ae.state_dict()

    # ---- time grid ---------------------------------------------------------------------------
    grid = {}
    for n in (10, 25, 100):
        lin = torch.linspace(0, 1 - 0.05, n + 1, dtype=torch.float32)
        grid[f"linspace.{n}"] = lin
        grid[f"shifted.{n}"] = s1.time_shift_sana(lin, 1.0)
    save(f"{args.out}/time_grid.safetensors", grid)

    # ---- the AR models -----------------------------------------------------------------------
    for mi, (name, (res, p, cls, diff_layers, adanln)) in enumerate(MODELS.items()):
        torch.manual_seed(100 + mi)
        gen = torch.Generator().manual_seed(200 + mi)
        kw = dict(
            dim=DIM,
            n_layer=N_LAYER,
            n_head=N_HEAD,
            diff_layers=diff_layers,
            diff_dim=DIFF_DIM,
            diff_adanln_layers=adanln,
            latent_dim=LATENT,
            down_size=16,
            patch_size=1,
            resolution=res,
            diff_batch_mul=1,
            cls_token_num=cls,
            num_classes=NUM_CLASSES,
        )
        if p == 1:
            model = m1.BitDance(**kw)
        else:
            model = mp.BitDance(**kw, parallel_num=p, parallel_mode="patch")
        model.eval()
        randomize(model, gen)
        model.vae.load_state_dict(ae_state)
        state = {k: v for k, v in model.state_dict().items() if not k.startswith("vae.")}
        fx = {}
        g = res // 16
        T = g * g
        B = 2
        cfg_json = our_config(res, p, cls, diff_layers, adanln)
        with open(f"{args.out}/{name}.json", "w") as f:
            json.dump(cfg_json, f, indent=2)
            f.write("\n")

        with torch.no_grad():
            # Full-sequence (training-style) forward: capture the head's condition.
            labels = torch.tensor([1, NUM_CLASSES])  # a class and the null class
            latents = torch.sign(torch.randn(B, LATENT, g, g, generator=gen))
            # channels_last as the encoder's output in official training: the 1x forward's
            # `target.view(-1, C)` fails on a contiguous NCHW latent (same values either way).
            latents = latents.contiguous(memory_format=torch.channels_last)
            captured = {}

            def capture(target, x):
                captured["target"], captured["cond"] = target, x
                return torch.zeros(())

            model.head.forward = capture
            model(latents, labels, cached=True)
            del model.head.forward
            tokens = captured["target"].reshape(B, T, LATENT)  # model token order
            hidden = captured["cond"].reshape(B, T, DIM)
            fx["fixture.forward.labels"] = labels.float()
            fx["fixture.forward.latents"] = latents
            fx["fixture.forward.tokens"] = tokens
            fx["fixture.forward.hidden"] = hidden

            # The same tokens through the KV cache, as model.sample() feeds them.
            model.enable_kv_cache(B)
            c = model.cls_embedding(labels).view(B, cls, -1)
            steps_out = []
            for i in range(T // p):
                if p == 1:
                    if i == 0:
                        x = model.forward_model(c, 0, cls)
                    else:
                        x = model.proj_in(tokens[:, i - 1 : i, :])
                        x = model.forward_model(x, i + cls - 1, i + cls)
                else:
                    n0 = cls + p - 1
                    if i == 0:
                        q = model.query_token.repeat(B, 1, 1)
                        x = model.forward_model(
                            torch.cat([c, q], dim=1), model.attn_mask[:, :, :n0, :n0], 0, n0
                        )
                    else:
                        x = model.proj_in(tokens[:, (i - 1) * p : i * p, :])
                        s0 = p * (i - 1) + n0
                        x = model.forward_model(
                            x, model.attn_mask[:, :, s0 : s0 + p, : s0 + p], s0, s0 + p
                        )
                steps_out.append(x[:, -p:, :])
            kv = torch.cat(steps_out, dim=1) + model.pos_for_diff.weight
            fx["fixture.kv.hidden"] = kv
            # Fresh caches for the sampling run below.
            for layer in model.layers:
                layer.attention.kv_cache_size = None

            # Head x-prediction for given (x_t, t, condition).
            n = 4
            ts = torch.tensor([0.0, 0.3, 0.7, 0.95])
            x_t = torch.randn(n, p, LATENT, generator=gen)
            cond = torch.randn(n, p, DIM, generator=gen)
            if p == 1:
                head_out = model.head.net(x_t[:, 0], ts, cond[:, 0]).unsqueeze(1)
            else:
                head_out = model.head.net(x_t, ts, cond)
            fx["fixture.head.x_t"] = x_t
            fx["fixture.head.t"] = ts
            fx["fixture.head.cond"] = cond
            fx["fixture.head.out"] = head_out
            from src.diff_head import timestep_embedding

            fx["fixture.head.t_freq"] = timestep_embedding(ts, 256)

            # A whole sampling run with recorded noise.
            decoded_in = {}
            real_decode = model.vae.decode

            def decode_capture(zz):
                decoded_in["z"] = zz.clone()
                return real_decode(zz)

            model.vae.decode = decode_capture
            recorder.draws.clear()
            images = model.sample(
                torch.tensor(CLASSES), HEAD_STEPS, cfg_scale=CFG, cfg_schedule="linear"
            )
            del model.vae.decode
            draws = recorder.draws
            ar_steps = T // p
            assert len(draws) == ar_steps * (HEAD_STEPS + 1), len(draws)
            noise = {}
            for s in range(ar_steps):
                d = draws[s * (HEAD_STEPS + 1) : (s + 1) * (HEAD_STEPS + 1)]
                rows = d[0].shape[0]
                noise[f"x0.{s}"] = d[0].reshape(rows, p, LATENT)
                noise[f"eps.{s}"] = torch.stack(d[1:]).reshape(HEAD_STEPS, rows, p, LATENT)
            z = decoded_in["z"]  # [B, latent, g, g], ±1
            fx["fixture.sample.classes"] = torch.tensor(CLASSES).float()
            fx["fixture.sample.settings"] = torch.tensor([CFG, HEAD_STEPS])
            fx["fixture.sample.latents"] = z
            fx["fixture.sample.images"] = images
        meta = {
            "source": f"official {'src.model' if p == 1 else 'src.model_parallel'}.BitDance",
            "sample": f"classes {CLASSES}, cfg {CFG} linear schedule, {HEAD_STEPS} head steps",
        }
        print(name)
        save(f"{args.out}/{name}.safetensors", state, meta, True)
        save(f"{args.out}/{name}.fixture.safetensors", fx, meta)
        save(f"{args.out}/{name}.noise.safetensors", noise)


if __name__ == "__main__":
    main()
