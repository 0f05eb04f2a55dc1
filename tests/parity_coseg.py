#!/usr/bin/python3
"""PyTorch side of tests/test_coseg_train.c (run by that test; not alone).

Usage: /usr/bin/python3 tests/parity_coseg.py CONFIG CASE_DIR

CONFIG is the co-segmentation config the C test trained; the network is
built from its layer sections by bench/torch_coseg.py's twin (Net), the loss
is its mask_loss ([loss] mask). CASE_DIR holds the C side's first step:
  meta.txt     "shape C H W", "images N", "lr LR", "weight_decay WD",
               "view NAME OFFSET COUNT DIM..." per parameter tensor
  x.npy        (N, C*H*W) float32, the normalised batch [a; b]
  target.npy   (N, H*W) float32, 0/1 targets (empty for a pair without a
               common object)
  params.npy   (1, P) float32, the initial parameter arena
Writes torch_logits.npy (N, H*W), torch_loss.npy (1, 1), torch_grads.npy
(1, P) and torch_new_params.npy (1, P) (after one torch.optim.Adam step
with the C side's lr and weight decay, added to the gradient as C's Adam
does), in the arena layout. Exit status 77: torch cannot be
imported.
"""
import os
import sys

try:
    import numpy as np
    import torch
except ImportError as exc:  # the C test turns this into a failure with advice
    print(f"parity_coseg: cannot import torch/numpy with {sys.executable} ({exc}); "
          "`make deps` (run by `make test`) installs Debian's python3-torch", file=sys.stderr)
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "bench"))
sys.path.insert(0, HERE)
import parity_torch  # noqa: E402
import torch_coseg  # noqa: E402


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    cfg, d = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    meta = parity_torch.read_meta(os.path.join(d, "meta.txt"))
    C, H, W = (int(s) for s in meta["shape"])
    n = int(meta["images"][0])
    lr, wd = float(meta["lr"][0]), float(meta["weight_decay"][0])
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy"))).reshape(n, C, H, W)
    target = torch.from_numpy(np.load(os.path.join(d, "target.npy"))).reshape(n, 1, H, W)
    arena = np.load(os.path.join(d, "params.npy")).reshape(-1)

    sections = torch_coseg.read_config(cfg)
    model = torch_coseg.Net(sections, C)
    named = {k[len("mods."):]: p for k, p in model.named_parameters()}
    parity_torch.load_arena(named, meta["views"], arena, "parity_coseg")
    kind = dict(sections).get("loss", {}).get("mask", "bce")
    z = model(x)
    loss = torch_coseg.mask_loss(z, target, kind)
    model.zero_grad()
    loss.backward()
    grads = np.zeros_like(arena)
    for name, off, count, _ in meta["views"]:
        grads[off:off + count] = named[name].grad.detach().numpy().reshape(-1)
    torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd).step()
    new = np.zeros_like(arena)
    for name, off, count, _ in meta["views"]:
        new[off:off + count] = named[name].detach().numpy().reshape(-1)
    np.save(os.path.join(d, "torch_logits.npy"), z.detach().numpy().reshape(n, H * W).astype(np.float32))
    np.save(os.path.join(d, "torch_loss.npy"), np.array([[loss.item()]], dtype=np.float32))
    np.save(os.path.join(d, "torch_grads.npy"), grads.reshape(1, -1))
    np.save(os.path.join(d, "torch_new_params.npy"), new.reshape(1, -1))
    print(f"parity_coseg: torch {torch.__version__}, {n} images, {kind} loss {loss.item():.6f}")


if __name__ == "__main__":
    main()
