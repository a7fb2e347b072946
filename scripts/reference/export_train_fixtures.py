"""Training-step parity fixtures from the OFFICIAL BitDance PyTorch code (run by hand, never in
CI), next to those of export_fixtures.py (whose stubs and helpers it reuses):

  tests/fixtures/parity/tiny_{1x,4x}.train.safetensors
    fixture.tokens  [B, T, 32]  the cached latents' tokens in the model's token order
    fixture.classes [B]         class ids
    draws.inputs    [B, T, 32]  the tokens after the official bit-flip perturbation
    draws.classes   [B]         the classes after the official class dropout
    draws.t         [N]         the head's flow times, one per sample (N = mul * B * T / p)
    draws.noise     [N * p, 32] the head's Gaussian noise
    expect.loss     [1]         the official training loss
    grad.<name>                 d loss / d parameter for every trainable parameter

The official forward runs in train mode (perturb_rate 0.1, class dropout 0.1,
diff_batch_mul 2) with the random calls of the model and head modules (rand_like, rand, randn,
randn_like) answered by draws made here, so the Rust test can replay them exactly.

    PYTHONPATH=$PYLIB python3 scripts/reference/export_train_fixtures.py \
        --official $OFFICIAL/imagenet_gen --out tests/fixtures/parity
"""

import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures as ef  # noqa: E402  (stubs flash_attn and torch.compile on import)

MUL = 2
RATE = 0.1


def load(path):
    """Minimal safetensors reader (F16/F32, no numpy)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        dtype = {"F16": torch.float16, "F32": torch.float32}[info["dtype"]]
        t = torch.frombuffer(bytearray(data[a:b]), dtype=dtype).reshape(info["shape"])
        out[name] = t.float()
    return out


class Draws:
    """Proxy for `torch` in the model and head modules: rand_like / rand / randn /
    randn_like answered from a seeded generator, with what they returned recorded."""

    def __init__(self, seed):
        self.gen = torch.Generator().manual_seed(seed)
        self.log = []

    def __getattr__(self, name):
        return getattr(torch, name)

    def rand_like(self, x, **_):
        v = torch.rand(x.shape, generator=self.gen)
        self.log.append(("rand_like", x.detach().clone(), v))
        return v

    def rand(self, *shape, **_):
        v = torch.rand(*shape, generator=self.gen)
        self.log.append(("rand", None, v))
        return v

    def randn(self, *shape, **_):
        v = torch.randn(*shape, generator=self.gen)
        self.log.append(("randn", None, v))
        return v

    def randn_like(self, x, **_):
        v = torch.randn(x.shape, generator=self.gen)
        self.log.append(("randn_like", None, v))
        return v


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--out", default="tests/fixtures/parity")
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.diff_head as dh1
    import src.diff_head_parallel as dhp
    import src.model as m1
    import src.model_parallel as mp
    import src.qae as qae

    ddconfig = {"double_z": False, "z_channels": ef.AE["z_channels"], "in_channels": 3,
                "out_ch": 3, "ch": ef.AE["ch"], "ch_mult": ef.AE["ch_mult"],
                "num_res_blocks": ef.AE["num_res_blocks"]}
    m1.VQModel = mp.VQModel = lambda _d, n: qae.VQModel(ddconfig, n)

    for name in ("tiny_1x", "tiny_4x"):
        res, p, cls, diff_layers, adanln = ef.MODELS[name]
        kw = dict(dim=ef.DIM, n_layer=ef.N_LAYER, n_head=ef.N_HEAD, diff_layers=diff_layers,
                  diff_dim=ef.DIFF_DIM, diff_adanln_layers=adanln, latent_dim=ef.LATENT,
                  down_size=16, patch_size=1, resolution=res, diff_batch_mul=MUL,
                  cls_token_num=cls, num_classes=ef.NUM_CLASSES, perturb_rate=RATE)
        if p == 1:
            model, mod, head_mod = m1.BitDance(**kw), m1, dh1
        else:
            model = mp.BitDance(**kw, parallel_num=p, parallel_mode="patch")
            mod, head_mod = mp, dhp
        weights = load(f"{args.out}/{name}.safetensors")
        weights.update(load(f"{args.out}/tiny_ae.safetensors"))
        model.load_state_dict(weights, strict=True)
        model.train()
        model.class_dropout_prob = 0.1
        draws = Draws(300 + p)
        mod.torch = draws
        head_mod.torch = draws
        captured = {}
        real_head_forward = model.head.forward

        def head(target, x):
            captured["target"] = target.detach().clone()
            return real_head_forward(target, x)

        model.head.forward = head
        g = res // 16
        T, B = g * g, 2
        gen = torch.Generator().manual_seed(400 + p)
        latents = torch.sign(torch.randn(B, ef.LATENT, g, g, generator=gen))
        latents = latents.contiguous(memory_format=torch.channels_last)
        labels = torch.tensor([2, 9])
        loss = model(latents, labels, cached=True)
        loss.backward()
        mod.torch = torch
        head_mod.torch = torch

        kinds = [k for k, _, _ in draws.log]
        assert kinds == ["rand_like", "rand_like", "rand", "randn", "randn_like"], kinds
        (_, x, r1), (_, _, r2), (_, _, drop), (_, _, tn), (_, _, e) = draws.log
        inputs = x * torch.where(r1 < RATE * r2, -1.0, 1.0)
        classes = torch.where(drop < 0.1, ef.NUM_CLASSES, labels)
        t = (tn * model.head.P_std + model.head.P_mean).sigmoid()
        out = {
            "fixture.tokens": captured["target"][: B * T // p].reshape(B, T, ef.LATENT),
            "fixture.classes": labels.float(),
            "draws.inputs": inputs.reshape(B, T, ef.LATENT),
            "draws.classes": classes.float(),
            "draws.t": t,
            "draws.noise": e.reshape(-1, ef.LATENT),
            "expect.loss": loss.detach().reshape(1),
        }
        for pname, prm in model.named_parameters():
            if not pname.startswith("vae.") and prm.grad is not None:
                out[f"grad.{pname}"] = prm.grad
        meta = {"source": f"official {mod.__name__}.BitDance training forward + backward",
                "diff_batch_mul": str(MUL), "perturb_rate": str(RATE)}
        ef.save(f"{args.out}/{name}.train.safetensors", out, meta)
        print(name, "loss", loss.item(), "dropped", classes.tolist())


if __name__ == "__main__":
    main()
