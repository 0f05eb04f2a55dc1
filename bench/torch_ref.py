#!/usr/bin/python3
"""torch_ref: the PyTorch twin of bench_train. fmnist-small (docs/
reference-models.md), the same batch, loss and SGD as configs/fmnist-*.ini,
one intra-op thread (--threads N for more), a few real Fashion-MNIST batches
loaded once and cycled (data loading is not timed). Run with /usr/bin/python3
(the one with torch).

  triplet: PK batch P=8 x K=32 (256 images), L2-normalised embeddings,
           batch-all triplet loss (mean over the active triplets, margin 0.2)
  pair:    128 pairs (half same-class) = 256 images, |e1 - e2| -> linear
           64->1, BCE with logits
  SGD lr 0.05, momentum 0.9, weight decay 5e-4 on every parameter.
  koch:    configs/koch-omniglot.ini: Koch et al.'s network at 105x105 on
           random images (the work does not depend on the pixels), --pairs
           pairs (default 16) = 2 x pairs images, L1 head, BCE with logits
           plus the config's L2 terms (conv 2e-4, fc1 1e-3), SGD lr 0.001
           momentum 0.5.

With --world 2 it is one rank of PyTorch DDP (gloo, file:// store in the
gate dir): each rank trains on its own local batch of 256 images with the
loss of its local batch (mining inside the local batch), gradients averaged
by DDP. Output lines as bench_train's: "window STEPS SECONDS IMAGES" (rank
0, seconds of the slowest rank), "ready" after the warm-up and "rss RANK KB" at the end.

  torch_ref.py --recipe triplet|pair|koch [--mkldnn 0|1] [--threads N]
               [--rank R --world W] [--gate DIR | --windows W --steps S]
               [--warmup N] [--batches N] [--pairs N]
"""
import argparse
import gzip
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

DATA = "/usr/share/datasets/fashion-mnist"


def load_fmnist():
    with gzip.open(os.path.join(DATA, "train-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(DATA, "train-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)
    return x, y


def normalise(px):
    return torch.from_numpy((px.astype(np.float32) / 255.0 - 0.2860) / 0.3530)


def make_batches(recipe, n, seed, p=8, k=32, pairs=128):
    if recipe == "koch":
        g = torch.Generator().manual_seed(seed)
        return [(torch.rand(2 * pairs, 1, 105, 105, generator=g),
                 (torch.arange(pairs) % 2 == 0).float().view(-1, 1)) for _ in range(n)]
    x, y = load_fmnist()
    by_class = [np.nonzero(y == c)[0] for c in range(10)]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        if recipe == "triplet":
            classes = rng.choice(10, p, replace=False)
            ids = np.concatenate([rng.choice(by_class[c], k, replace=False) for c in classes])
            out.append((normalise(x[ids]), torch.from_numpy(y[ids])))
        else:
            a, b, same = [], [], []
            for i in range(pairs):
                ca = rng.integers(10)
                cb = ca if i % 2 == 0 else (ca + 1 + rng.integers(9)) % 10
                a.append(rng.choice(by_class[ca]))
                b.append(rng.choice(by_class[cb]))
                same.append(1.0 if ca == cb else 0.0)
            ids = np.array(a + b)
            out.append((normalise(x[ids]), torch.tensor(same).view(-1, 1)))
    return out


class Encoder(nn.Module):
    def __init__(self, l2norm):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5)
        self.conv2 = nn.Conv2d(32, 64, 5)
        self.fc1 = nn.Linear(1024, 256)
        self.fc2 = nn.Linear(256, 64)
        self.l2norm = l2norm

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.relu(self.fc1(x.flatten(1)))
        x = self.fc2(x)
        return F.normalize(x, dim=1) if self.l2norm else x


class PairNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = Encoder(False)
        self.head = nn.Linear(64, 1)

    def forward(self, x):
        e = self.enc(x)
        h = e.shape[0] // 2
        return self.head((e[:h] - e[h:]).abs())


class KochNet(nn.Module):
    """configs/koch-omniglot.ini: 4 conv layers, a 4096-d sigmoid embedding,
    |e1 - e2| -> linear -> logit."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 64, 10)
        self.conv2 = nn.Conv2d(64, 128, 7)
        self.conv3 = nn.Conv2d(128, 128, 4)
        self.conv4 = nn.Conv2d(128, 256, 4)
        self.fc1 = nn.Linear(9216, 4096)
        self.head = nn.Linear(4096, 1)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = F.max_pool2d(F.relu(self.conv3(x)), 2)
        x = F.relu(self.conv4(x))
        e = torch.sigmoid(self.fc1(x.flatten(1)))
        h = e.shape[0] // 2
        return self.head((e[:h] - e[h:]).abs())

    def l2(self):
        convs = (self.conv1, self.conv2, self.conv3, self.conv4)
        return 2e-4 * sum((c.weight ** 2).sum() for c in convs) + 1e-3 * (self.fc1.weight ** 2).sum()


def batch_all_loss(e, labels, margin=0.2):
    """Every valid (a, p, n) of the batch; mean over the active triplets.
    Distances as the spec: sqrt(max(|a|^2 + |b|^2 - 2 a.b, 1e-12)). PK
    batches have K-1 positives and N-K negatives per anchor, so the valid
    triplets form an (N, K-1, N-K) block (no N^3 mask)."""
    n = e.shape[0]
    sq = (e * e).sum(1)
    d = (sq[:, None] + sq[None, :] - 2.0 * e @ e.t()).clamp(min=1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(n, dtype=torch.bool)
    pos_idx = (same & ~eye).nonzero()[:, 1].view(n, -1)
    neg_idx = (~same).nonzero()[:, 1].view(n, -1)
    dap = d.gather(1, pos_idx)
    dan = d.gather(1, neg_idx)
    t = (dap[:, :, None] - dan[:, None, :] + margin).clamp(min=0)
    count = (t > 0).sum().clamp(min=1)
    return t.sum() / count


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--recipe", default="triplet", choices=["triplet", "pair", "koch"])
    ap.add_argument("--mkldnn", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1, help="intra-op threads")
    ap.add_argument("--pairs", type=int, default=16, help="koch: pairs per step")
    ap.add_argument("--rank", type=int, default=0)
    ap.add_argument("--world", type=int, default=1)
    ap.add_argument("--gate")
    ap.add_argument("--windows", type=int, default=0)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--batches", type=int, default=4)
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.set_num_interop_threads(1)
    torch.backends.mkldnn.enabled = bool(a.mkldnn)
    torch.manual_seed(1 + a.rank)
    dist = None
    if a.world > 1:
        import torch.distributed as dist
        dist.init_process_group("gloo", init_method="file://" + os.path.join(a.gate, "store"),
                                rank=a.rank, world_size=a.world)
    model = PairNet() if a.recipe == "pair" else KochNet() if a.recipe == "koch" else Encoder(True)
    if dist:
        model = nn.parallel.DistributedDataParallel(model)
    if a.recipe == "koch":
        opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.5)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    batches = make_batches(a.recipe, a.batches, 100 + a.rank, pairs=a.pairs if a.recipe == "koch" else 128)
    images = 2 * a.pairs if a.recipe == "koch" else 256
    bce = nn.BCEWithLogitsLoss()
    k = 0

    def step():
        nonlocal k
        x, t = batches[k % len(batches)]
        k += 1
        opt.zero_grad(set_to_none=True)
        out = model(x)
        loss = batch_all_loss(out, t) if a.recipe == "triplet" else bce(out, t)
        if a.recipe == "koch":
            loss = loss + (model.module if dist else model).l2()
        loss.backward()
        opt.step()

    def window(n):
        if dist:
            dist.barrier()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        sec, cpu = time.perf_counter() - t0, time.process_time() - c0
        if dist:
            v = torch.tensor([sec, cpu])
            dist.all_reduce(v, op=dist.ReduceOp.MAX)
            sec, cpu = float(v[0]), float(v[1])
        if a.rank == 0:
            print("window %d %.6f %d %.6f" % (n, sec, n * images * a.world, cpu), flush=True)

    if a.rank == 0:
        print("torch %s threads %d mkldnn %d" % (torch.__version__, torch.get_num_threads(),
                                                 torch.backends.mkldnn.enabled), flush=True)
    for _ in range(a.warmup):
        step()
    if dist:
        dist.barrier()
    if a.rank == 0:
        print("ready", flush=True)
    for _ in range(a.windows):
        window(a.steps)
    if a.gate:
        with open(os.path.join(a.gate, "go.%d" % a.rank)) as f:
            for line in f:
                if line.startswith("q"):
                    break
                window(int(line))
    # Every rank reports its own peak RSS, then leaves without a collective
    # (a rank that exits first must not leave the other one waiting).
    print("rss %d %.0f" % (a.rank, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss), flush=True)
    os._exit(0)

if __name__ == "__main__":
    sys.exit(main())
