#!/usr/bin/python3
"""torch_coseg: the PyTorch twin of a co-segmentation config (configs/
coseg-fmnist.ini by default). It reads the config's layer sections (the
graph syntax of docs/graph.md: conv2d, batchnorm, relu, maxpool, avgpool,
correlation, concat, deconv2d, upsample, sigmoid) and builds the same
network as one nn.Module over the rows [images a; images b], with the same
mask loss (per-pixel BCE on logits, or soft Dice, averaged over pixels and
images; an image of a pair without a common object has an empty target)
and the config's optimizer (SGD with momentum and weight decay, or Adam /
AdamW). One thread, oneDNN on unless --mkldnn 0. It trains on batches
written by build/bench/coseg_batches (the C sampler's real batches, loaded
once and cycled: loading is not timed).

Output lines as bench_train's: "window STEPS SECONDS IMAGES CPU" per timed
window, "ready" after the warm-up, "rss 0 KB" at the end. Modes as
torch_ref.py: --windows W --steps S, or --gate DIR (reads step counts or
"q" from the FIFO DIR/go.0). Run with /usr/bin/python3 (the one with torch).

glibc's malloc returns every large freed tensor to the system, so each step
faults its activations in afresh (about a fifth of the twin's CPU time,
docs/coseg.md): unless --pin-malloc 0, the twin first pins glibc's mmap and
trim thresholds (mallopt) so that freed memory is reused, as the C trainer's
preallocated buffers are.

  torch_coseg.py --config configs/coseg-fmnist.ini --batches PREFIX
                 [--mkldnn 0|1] [--pin-malloc 0|1] [--gate DIR | --windows W --steps S] [--warmup N]
"""
import argparse
import configparser
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

LAYERS = {"conv2d", "batchnorm", "relu", "maxpool", "avgpool", "correlation", "concat", "deconv2d",
          "upsample", "sigmoid"}


def read_config(path):
    """The config's sections in order: [(type, {key: value})], duplicates kept."""
    sections, cur = [], None
    with open(path) as f:
        for raw in f:
            line = raw.split(";")[0].split("#")[0].strip()
            if not line:
                continue
            if line.startswith("["):
                cur = {}
                sections.append((line.strip("[]").strip(), cur))
            elif cur is not None and "=" in line:
                k, v = line.split("=", 1)
                cur[k.strip()] = v.strip()
    return sections


def correlation(fa, fb, d, cosine=False, with_max=False):
    """out[:, k, i, j] = <fa[:, :, i, j], fb[:, :, i + dy, j + dx]> / C for
    the (2d+1)^2 displacements k = (dy + d) (2d+1) + (dx + d), zero outside
    the map: one batched matrix product of every pair of positions, then a
    gather of the displacements (no third-party correlation package).
    cosine: each position's channel vector l2-normalised first and no / C
    ([correlation] normalize = cosine); with_max: one more channel, each
    position's largest value over the displacements inside the map (max = 1)."""
    B, C, H, W = fa.shape
    D = 2 * d + 1
    key = (H, W, D)
    idx = correlation.cache.get(key)
    if idx is None:
        idx = torch.full((D * D, H * W), H * W, dtype=torch.long)
        for k in range(D * D):
            dy, dx = k // D - d, k % D - d
            for i in range(H):
                for j in range(W):
                    if 0 <= i + dy < H and 0 <= j + dx < W:
                        idx[k, i * W + j] = (i + dy) * W + j + dx
        idx = idx.t().contiguous()
        correlation.cache[key] = idx
    if cosine:
        fa, fb = F.normalize(fa, dim=1, eps=1e-12), F.normalize(fb, dim=1, eps=1e-12)
    s = torch.bmm(fa.reshape(B, C, H * W).transpose(1, 2), fb.reshape(B, C, H * W))
    if not cosine:
        s = s / C
    gidx = idx.unsqueeze(0).expand(B, -1, -1)
    out = torch.gather(torch.cat([s, s.new_zeros(B, H * W, 1)], 2), 2, gidx)
    out = out.transpose(1, 2).reshape(B, D * D, H, W)
    if with_max:
        inside = torch.gather(torch.cat([s, s.new_full((B, H * W, 1), float("-inf"))], 2), 2, gidx)
        out = torch.cat([out, inside.max(2).values.reshape(B, 1, H, W)], 1)
    return out


correlation.cache = {}


class Net(nn.Module):
    """The config's graph: nodes in order, each reading earlier nodes (or
    the input); the output is the loss's input node."""

    def __init__(self, sections, in_ch):
        super().__init__()
        self.nodes, self.mods = [], nn.ModuleDict()
        ch = {"input": in_ch}
        prev, count, self.loss_input = "input", {}, None
        for typ, kv in sections:
            if typ == "loss":
                self.loss_input = kv.get("input") or None
            if typ not in LAYERS:
                continue
            count[typ] = count.get(typ, 0) + 1
            name = kv.get("name") or "%s%d" % (typ, count[typ])
            ins = [s.strip() for s in (kv.get("input") or prev).split(",")]
            if any("@" in s for s in ins):
                raise SystemExit("torch_coseg: %s reads a half (%s): only per-image graphs are supported"
                                 % (name, kv["input"]))
            c = ch[ins[0]]
            if typ == "conv2d":
                f = int(kv["filters"])
                self.mods[name] = nn.Conv2d(c, f, int(kv.get("size", 3)), int(kv.get("stride", 1)),
                                            int(kv.get("pad", 0)))
                c = f
            elif typ == "deconv2d":
                f = int(kv["filters"])
                self.mods[name] = nn.ConvTranspose2d(c, f, int(kv.get("size", 2)), int(kv.get("stride", 2)),
                                                     int(kv.get("pad", 0)))
                c = f
            elif typ == "batchnorm":
                self.mods[name] = nn.BatchNorm2d(c, eps=float(kv.get("eps", 1e-5)),
                                                 momentum=float(kv.get("momentum", 0.1)))
            elif typ == "correlation":
                c = (2 * int(kv["displacement"]) + 1) ** 2 + int(kv.get("max", 0))
            elif typ == "concat":
                c = sum(ch[s] for s in ins)
            self.nodes.append((typ, name, ins, kv))
            ch[name] = c
            prev = name
        self.out = self.loss_input or prev

    def forward(self, x):
        val = {"input": x}
        half = x.shape[0] // 2
        for typ, name, ins, kv in self.nodes:
            a = val[ins[0]]
            if typ in ("conv2d", "deconv2d", "batchnorm"):
                y = self.mods[name](a)
            elif typ == "relu":
                y = F.relu(a)
            elif typ == "sigmoid":
                y = torch.sigmoid(a)
            elif typ == "maxpool":
                y = F.max_pool2d(a, int(kv.get("size", 2)), int(kv.get("stride", kv.get("size", 2))))
            elif typ == "avgpool":
                y = F.adaptive_avg_pool2d(a, 1)
            elif typ == "upsample":
                mode = kv.get("mode", "nearest")
                y = F.interpolate(a, scale_factor=int(kv.get("factor", 2)), mode=mode,
                                  align_corners=False if mode == "bilinear" else None)
            elif typ == "correlation":
                d = int(kv["displacement"])
                fa, fb = a[:half], a[half:]
                opt = {"cosine": kv.get("normalize", "none") == "cosine", "with_max": int(kv.get("max", 0)) == 1}
                y = torch.cat([correlation(fa, fb, d, **opt), correlation(fb, fa, d, **opt)], 0)
            elif typ == "concat":
                y = torch.cat([val[s] for s in ins], 1)
            val[name] = y
        return val[self.out]


def mask_loss(z, target, kind):
    if kind == "dice":
        p = torch.sigmoid(z).flatten(1)
        t = target.flatten(1)
        return (1 - (2 * (p * t).sum(1) + 1) / (p.sum(1) + t.sum(1) + 1)).mean()
    return F.binary_cross_entropy_with_logits(z, target)


def pin_malloc():
    """glibc: large blocks from the heap (mmap threshold 32 MiB, its maximum),
    freed memory kept (trim threshold 1 GiB) with 256 MiB of top padding."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    ok = (libc.mallopt(M_MMAP_THRESHOLD, 32 << 20) and libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
          and libc.mallopt(M_TOP_PAD, 256 << 20))
    if not ok:
        sys.exit("torch_coseg: mallopt refused a threshold (not glibc?): run with --pin-malloc 0")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default="configs/coseg-fmnist.ini")
    ap.add_argument("--batches", required=True, help="PREFIX of coseg_batches' PREFIX.x.npy, .mask.npy")
    ap.add_argument("--mkldnn", type=int, default=1)
    ap.add_argument("--pin-malloc", type=int, default=1)
    ap.add_argument("--gate")
    ap.add_argument("--windows", type=int, default=0)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    a = ap.parse_args()

    if a.pin_malloc:
        pin_malloc()
    torch.set_num_threads(1)
    torch.set_num_interop_threads(1)
    torch.backends.mkldnn.enabled = bool(a.mkldnn)
    torch.manual_seed(1)
    sections = read_config(a.config)
    cfg = {typ: kv for typ, kv in sections if typ not in LAYERS}
    x = np.load(a.batches + ".x.npy")        # (batches * 2B, C*H*W), normalised
    t = np.load(a.batches + ".mask.npy")     # (batches * 2B, H*W), 0/1 targets
    shape = [int(v) for v in open(a.batches + ".shape").read().split()]  # batches, 2B, C, H, W
    nb, rows, C, H, W = shape
    xs = torch.from_numpy(x).view(nb, rows, C, H, W)
    ts = torch.from_numpy(t).view(nb, rows, 1, H, W)
    model = Net(sections, C)
    opt_kv = cfg.get("optim", {})
    kind = opt_kv.get("type", "sgd")
    lr = float(opt_kv.get("lr", 0.01))
    wd = float(opt_kv.get("weight_decay", 0))
    if kind == "sgd":
        opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=float(opt_kv.get("momentum", 0.9)),
                              weight_decay=wd)
    elif kind == "adamw":
        opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=wd)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=wd)
    loss_kind = cfg.get("loss", {}).get("mask", "bce")
    k = 0

    def step():
        nonlocal k
        i = k % nb
        k += 1
        opt.zero_grad(set_to_none=True)
        loss = mask_loss(model(xs[i]), ts[i], loss_kind)
        loss.backward()
        opt.step()

    def window(n):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(n):
            step()
        print("window %d %.6f %d %.6f" % (n, time.perf_counter() - t0, n * rows, time.process_time() - c0),
              flush=True)

    print("torch %s threads %d mkldnn %d" % (torch.__version__, torch.get_num_threads(),
                                             torch.backends.mkldnn.enabled), flush=True)
    for _ in range(a.warmup):
        step()
    print("ready", flush=True)
    for _ in range(a.windows):
        window(a.steps)
    if a.gate:
        with open(os.path.join(a.gate, "go.0")) as f:
            for line in f:
                if line.startswith("q"):
                    break
                window(int(line))
    print("rss 0 %.0f" % resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, flush=True)
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
