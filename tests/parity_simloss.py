#!/usr/bin/python3
"""PyTorch side of tests/test_simloss.c (run by that test; not alone).

Usage: parity_simloss.py DIR infonce|ms SYMMETRIC MINE T ALPHA BETA BASE EPS K

Reads DIR/E.npy (N, D) float32 and DIR/labels.npy (N) int32, computes the
mean loss over the pool with torch autograd in float64 from the published
definitions (written here independently of the C code), and writes
DIR/lossK.npy (1, 1) and DIR/gradK.npy (N, D), the gradient of the mean.
  infonce: every ordered pair (a, p) of one label, p != a (SYMMETRIC 0:
    only p > a): -log softmax over {p} and every row of another label, of
    the similarities e_a . e_j / T; mean over the terms.
  ms: multi-similarity (Wang et al. 2019) with its miner (MINE 1: negative
    kept if s + EPS > min positive s, positive kept if s - EPS < max
    negative s); per anchor 1/ALPHA log(1 + sum exp(-ALPHA (s - BASE))) +
    1/BETA log(1 + sum exp(BETA (s - BASE))); mean over all anchors.
Exit status 77: torch cannot be imported.
"""
import sys

try:
    import numpy as np
    import torch
except ImportError as exc:
    print(f"parity_simloss: cannot import torch/numpy with {sys.executable} ({exc}); "
          "`make deps` (run by `make test`) installs Debian's python3-torch", file=sys.stderr)
    sys.exit(77)

d, kind = sys.argv[1], sys.argv[2]
sym, mine = int(sys.argv[3]), int(sys.argv[4])
t, alpha, beta, base, eps = (float(v) for v in sys.argv[5:10])
k = sys.argv[10]
E = torch.tensor(np.load(f"{d}/E.npy"), dtype=torch.float64, requires_grad=True)
y = torch.tensor(np.load(f"{d}/labels.npy").astype(np.int64))
n = E.shape[0]
S = E @ E.T
same = y[:, None] == y[None, :]
eye = torch.eye(n, dtype=torch.bool)
pos = same & ~eye
neg = ~same
terms = []
if kind == "infonce":
    z = S / t
    for a in range(n):
        negs = z[a][neg[a]]
        for p in range(n):
            if not pos[a, p] or (not sym and p < a):
                continue
            logits = torch.cat([z[a, p].reshape(1), negs])
            terms.append(-torch.log_softmax(logits, 0)[0])
    loss = torch.stack(terms).mean()
else:
    for a in range(n):
        sp, sn = S[a][pos[a]], S[a][neg[a]]
        if mine:
            minp = sp.min() if len(sp) else torch.tensor(float("inf"), dtype=torch.float64)
            maxn = sn.max() if len(sn) else torch.tensor(float("-inf"), dtype=torch.float64)
            sp_k, sn_k = sp[sp - eps < maxn], sn[sn + eps > minp]
        else:
            sp_k, sn_k = sp, sn
        lp = torch.log1p(torch.exp(-alpha * (sp_k - base)).sum()) / alpha
        ln = torch.log1p(torch.exp(beta * (sn_k - base)).sum()) / beta
        terms.append(lp + ln)
    loss = torch.stack(terms).mean()
loss.backward()
np.save(f"{d}/loss{k}.npy", np.array([[loss.item()]], dtype=np.float32))
np.save(f"{d}/grad{k}.npy", E.grad.numpy().astype(np.float32))
