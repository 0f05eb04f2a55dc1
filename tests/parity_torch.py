#!/usr/bin/python3
"""PyTorch side of tests/test_torch_parity.c (run by that test; not alone).

Usage: /usr/bin/python3 tests/parity_torch.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR was written by the C test and holds one recipe's first step:
  meta.txt      "recipe triplet|pair", "shape C H W", "images N",
                "view NAME OFFSET COUNT DIM..." per parameter tensor
  x.npy         (N, C*H*W) float32, the normalised batch the C trainer used
  pixels.npy    (N*C*H*W) int32, the raw uint8 pixels of the same images
  labels.npy    (N) int32 (triplet); same.npy (N/2) int32 (pair)
  params.npy    (1, P) float32, the initial parameter arena
This script builds fmnist-small from docs/reference-models.md
with torch.nn, loads the arena into it by view name, computes the recipe's
loss, backward and one torch.optim.SGD step, all in float32, and writes
  torch_x.npy (N, C*H*W), torch_emb.npy (N, 64), torch_loss.npy (1, 1),
  torch_grads.npy (1, P), torch_new_params.npy (1, P)
in the arena layout. Exit status 77: torch cannot be imported.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # the C test turns this into a failure with advice
    print(f"parity_torch: cannot import torch/numpy with {sys.executable} ({exc}); "
          "`make deps` (run by `make test`) installs Debian's python3-torch", file=sys.stderr)
    sys.exit(77)

# The spec's recipe constants (docs/reference-models.md "Recipes", "Numerical
# conventions"). Deliberately not read from the C side.
MEAN, STD = 0.2860, 0.3530
MARGIN = 0.2
LR, MOMENTUM, WEIGHT_DECAY = 0.05, 0.9, 5e-4


class FmnistSmall(nn.Module):
    """fmnist-small; normalise = the L2 normalisation of the triplet recipe."""

    def __init__(self, normalise, koch_head):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.fc1 = nn.Linear(1024, 256)
        self.fc2 = nn.Linear(256, 64)
        self.normalise = normalise
        if koch_head:
            self.head = nn.Linear(64, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2, 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2, 2)
        x = torch.flatten(x, 1)  # NCHW order: c*16 + h*4 + w
        x = F.relu(self.fc1(x))
        e = self.fc2(x)
        if self.normalise:
            e = e / torch.clamp(e.norm(dim=1, keepdim=True), min=1e-12)
        return e


def triplet_batch_all(e, labels):
    """Mean of max(d_ap - d_an + m, 0) over the active valid triplets."""
    sq = (e * e).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (e @ e.t())
    d = torch.sqrt(torch.clamp(d2, min=1e-12))
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(len(labels), dtype=torch.bool)
    pos = same & ~eye
    neg = ~same
    valid = pos[:, :, None] & neg[:, None, :]  # (a, p, n)
    terms = torch.relu(d[:, :, None] - d[:, None, :] + MARGIN) * valid
    active = (terms > 0).sum()
    return terms.sum() / active.clamp(min=1), int(valid.sum()), int(active)


def triplet_batch_hard(e, labels):
    """For information only: batch-hard loss on the same embeddings."""
    d = torch.cdist(e, e)
    same = labels[:, None] == labels[None, :]
    hardest_pos = torch.where(same, d, torch.zeros_like(d)).max(dim=1).values
    hardest_neg = torch.where(same, torch.full_like(d, float("inf")), d).min(dim=1).values
    return torch.relu(hardest_pos - hardest_neg + MARGIN).mean()


def pair_bce(e, same, head):
    B = len(same)
    diff = torch.abs(e[:B] - e[B:])
    logits = head(diff).squeeze(1)
    return F.binary_cross_entropy_with_logits(logits, same.float())


def read_meta(path):
    meta = {"views": []}
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "view":
                meta["views"].append((tok[1], int(tok[2]), int(tok[3]), tuple(int(s) for s in tok[4:])))
            else:
                meta[tok[0]] = tok[1:]
    return meta


def load_arena(named, views, arena, who):
    """Copies the C parameter arena into the named torch parameters by the
    meta's views (each C name must be a torch parameter of the same shape)."""
    names = [v[0] for v in views]
    if sorted(names) != sorted(named):
        raise SystemExit(f"{who}: C views {sorted(names)} != torch parameters {sorted(named)}")
    with torch.no_grad():
        for name, off, count, shape in views:
            p = named[name]
            if tuple(p.shape) != shape:
                raise SystemExit(f"{who}: {name}: C shape {shape}, torch {tuple(p.shape)}")
            p.copy_(torch.from_numpy(arena[off:off + count].reshape(shape)))


def pool_near_tie(model, x):
    """Smallest gap between the two largest values of a live 2x2 max-pool
    window, relative to the largest activation. Below ~1e-7 the C code's
    float sums may pick another argmax than torch's, and the gradients then
    differ for a reason that is no bug: the test data has no such window
    (a failure with a tiny gap here means: pick another data seed)."""
    gaps = []
    with torch.no_grad():
        a = F.relu(model.conv1(x))
        for k in range(2):
            if k == 1:
                a = F.relu(model.conv2(F.max_pool2d(a, 2, 2)))
            w = F.unfold(a.reshape(-1, 1, a.shape[2], a.shape[3]), 2, stride=2)
            top = w.topk(2, dim=1).values
            live = top[:, 0, :] > 0
            gap = ((top[:, 0, :] - top[:, 1, :]) / a.max())[live]
            gaps.append(gap.min().item() if gap.numel() else 1.0)
    return min(gaps)


def run_case(d):
    meta = read_meta(os.path.join(d, "meta.txt"))
    recipe = meta["recipe"][0]
    C, H, W = (int(s) for s in meta["shape"])
    n = int(meta["images"][0])
    x_np = np.load(os.path.join(d, "x.npy"))
    pixels = np.load(os.path.join(d, "pixels.npy")).reshape(n, C * H * W)
    arena = np.load(os.path.join(d, "params.npy")).reshape(-1)
    assert x_np.dtype == np.float32 and x_np.shape == (n, C * H * W), x_np.shape

    # The spec's input normalisation, in float32, from the raw pixels.
    px = torch.from_numpy(pixels.astype(np.float32))
    x_ref = (px / 255.0 - MEAN) / STD
    np.save(os.path.join(d, "torch_x.npy"), x_ref.numpy().astype(np.float32))

    model = FmnistSmall(normalise=(recipe == "triplet"), koch_head=(recipe == "pair"))
    named = dict(model.named_parameters())
    load_arena(named, meta["views"], arena, "parity_torch")

    x = torch.from_numpy(x_np).reshape(n, C, H, W)
    tie = pool_near_tie(model, x)
    print(f"parity_torch: {recipe}: smallest relative top-2 gap of a max-pool window {tie:.2g}"
          + (" -- a near tie: argmax may differ from the C code; choose another data seed" if tie < 1e-7 else ""))
    e = model(x)
    if recipe == "triplet":
        labels = torch.from_numpy(np.load(os.path.join(d, "labels.npy")).astype(np.int64))
        loss, valid, active = triplet_batch_all(e, labels)
        with torch.no_grad():
            hard = triplet_batch_hard(e, labels).item()
        info = f"{valid} valid triplets, {active} active; batch-hard loss here {hard:.4f}"
    else:
        same = torch.from_numpy(np.load(os.path.join(d, "same.npy")).astype(np.int64))
        loss = pair_bce(e, same, model.head)
        info = f"{len(same)} pairs, {int(same.sum())} same"
    model.zero_grad()
    loss.backward()

    grads = np.zeros_like(arena)
    for name, off, count, _ in meta["views"]:
        grads[off:off + count] = named[name].grad.detach().numpy().reshape(-1)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    opt.step()
    new = np.zeros_like(arena)
    for name, off, count, _ in meta["views"]:
        new[off:off + count] = named[name].detach().numpy().reshape(-1)

    np.save(os.path.join(d, "torch_emb.npy"), e.detach().numpy().astype(np.float32))
    np.save(os.path.join(d, "torch_loss.npy"), np.array([[loss.item()]], dtype=np.float32))
    np.save(os.path.join(d, "torch_grads.npy"), grads.reshape(1, -1))
    np.save(os.path.join(d, "torch_new_params.npy"), new.reshape(1, -1))
    print(f"parity_torch: {recipe}: torch {torch.__version__}, loss {loss.item():.6f} ({info})")


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    for d in sys.argv[1:]:
        run_case(d)


if __name__ == "__main__":
    main()
