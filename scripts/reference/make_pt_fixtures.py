"""Writes the small .pt fixtures of the converter tests (run by hand, never in CI):
    PYTHONPATH=$PYLIB python3 scripts/reference/make_pt_fixtures.py tests/fixtures/pt
- checkpoint.pt: {'model': sd, 'ema': sd2, 'optimizer': {...}, 'args': Namespace, 'steps': 5}
  with f32, f16 and bf16 tensors, a transposed (non-contiguous) one and one viewing an offset
  of a shared storage; expected.json holds the same tensors (f32 values) to compare against.
- bare.pt: a bare state dict.
- malicious.pt: an object whose __reduce__ calls os.system (must be refused, never run).
- shared.pt: {'model': sd, 'ema': sd}, the same dict object twice (pickle writes the second as
  a memo reference to the dict it memoized before filling it).
"""
import argparse
import os
import sys

import torch
import json


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def main(out):
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    shared = torch.randn(20, generator=g)
    sd = {
        "layers.0.w": torch.randn(3, 4, generator=g),
        "layers.0.half": torch.randn(2, 3, generator=g).half(),
        "layers.0.bf": torch.randn(4, generator=g).bfloat16(),
        "layers.0.t": base.t(),
        "layers.0.view": shared[5:11].view(2, 3),
        "vae.decoder.conv_in.weight": torch.randn(2, 2, 3, 3, generator=g),
    }
    ema = {k: v * 2 for k, v in sd.items()}
    ckpt = {
        "model": sd,
        "ema": ema,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(3)}}, "param_groups": [{"lr": 1e-4}]},
        "args": argparse.Namespace(lr=1e-4, model="tiny"),
        "steps": 5,
    }
    torch.save(ckpt, os.path.join(out, "checkpoint.pt"))
    torch.save({"module." + k: v for k, v in sd.items()}, os.path.join(out, "bare.pt"))
    torch.save({"model": Evil()}, os.path.join(out, "malicious.pt"))
    torch.save({"model": sd, "ema": sd}, os.path.join(out, "shared.pt"))
    expected = {k: {"shape": list(v.shape), "data": v.float().flatten().tolist()}
                for k, v in sd.items()}
    expected.update({"ema." + k: {"shape": list(v.shape), "data": v.float().flatten().tolist()}
                     for k, v in ema.items()})
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)


if __name__ == "__main__":
    main(sys.argv[1])
