"""Checkpoint round trip with the official PyTorch code (run by hand, never in CI): a model
file written by this runtime (e.g. assets/model/default.safetensors or RUN/model.safetensors,
official names, `vae.*` included, config in the metadata) loads into the official
`src.model_parallel.BitDance` with load_state_dict(strict=True); the official state dict is
written back as safetensors (RUN_back.safetensors), which `bitdance generate --weights` reads,
and its tensors equal the original ones.

    PYTHONPATH=$PYLIB python3 scripts/reference/roundtrip.py \
        --official $OFFICIAL/imagenet_gen --model assets/model/default.safetensors
"""

import argparse
import json
import os
import struct
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import export_fixtures as ef  # noqa: E402
from export_train_fixtures import load  # noqa: E402


def metadata(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)).get("__metadata__", {})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--official", required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    sys.path.insert(0, os.path.abspath(args.official))
    import src.model as m1
    import src.model_parallel as mp
    import src.qae as qae

    c = json.loads(metadata(args.model)["bitdance.config"])
    ae = c["vae"]
    ddconfig = {"double_z": False, "z_channels": ae["z_channels"], "in_channels": 3,
                "out_ch": 3, "ch": ae["ch"], "ch_mult": ae["ch_mult"],
                "num_res_blocks": ae["num_res_blocks"]}
    m1.VQModel = mp.VQModel = lambda _d, n: qae.VQModel(ddconfig, n)
    kw = dict(dim=c["dim"], n_layer=c["n_layer"], n_head=c["n_head"],
              diff_layers=c["diff_layers"], diff_dim=c["diff_dim"],
              diff_adanln_layers=c["diff_adanln_layers"], latent_dim=c["latent_dim"],
              down_size=c["down_size"], patch_size=c["patch_size"],
              resolution=c["resolution"], cls_token_num=c["cls_token_num"],
              num_classes=c["num_classes"], diff_batch_mul=4)
    if c["parallel_num"] == 1:
        model = m1.BitDance(**kw)
    else:
        model = mp.BitDance(**kw, parallel_num=c["parallel_num"], parallel_mode="patch")
    ours = load(args.model)
    model.load_state_dict(ours, strict=True)
    print(f"{args.model}: {len(ours)} tensors loaded with load_state_dict(strict=True)")
    back = model.state_dict()
    assert set(back) == set(ours)
    for k, v in back.items():
        assert torch.equal(v.float(), ours[k]), k
    out = os.path.splitext(args.model)[0] + "_back.safetensors"
    ef.save(out, dict(back), {"bitdance.config": json.dumps(c)})
    print(f"official state dict written back to {out}; every tensor equal")


if __name__ == "__main__":
    main()
