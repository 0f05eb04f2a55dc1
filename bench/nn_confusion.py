#!/usr/bin/python3
"""nn_confusion: which classes an embedding confuses (docs/coseg.md). Reads
`siamese embed`'s PREFIX.emb.npy and PREFIX.labels.npy and, leaving each
sample out of its own search, takes its nearest neighbour by cosine
similarity (the embeddings are l2-normalised, so it is Recall@1's
neighbour). Prints the confusion matrix (rows: true class, columns: the
neighbour's class, percent of the row), each class's Recall@1, the
most frequent wrong neighbour class per class and the class pairs whose
samples take each other's neighbours most often.
  usage: bench/nn_confusion.py [--only IDS] PREFIX [CLASS_NAMES]
CLASS_NAMES: comma-separated names of the classes 0, 1, ... (optional).
--only IDS: keep only the samples of these classes (comma-separated ids,
e.g. the training classes), in the search too.
Needs numpy."""
import sys

import numpy as np


def main():
    args = sys.argv[1:]
    only = None
    if len(args) >= 2 and args[0] == "--only":
        try:
            only = [int(v) for v in args[1].split(",")]
        except ValueError:
            sys.exit(f"nn_confusion: --only {args[1]}: expected comma-separated class ids, e.g. 0,1,2")
        args = args[2:]
    if len(args) not in (1, 2):
        sys.exit(__doc__)
    prefix = args[0]
    try:
        E = np.load(prefix + ".emb.npy").astype(np.float64)
        y = np.load(prefix + ".labels.npy").astype(np.int64)
    except OSError as e:
        sys.exit(f"nn_confusion: {e}: run `siamese embed CHECKPOINT --data DB --out {prefix}` first")
    if E.ndim == 2 and len(E) == len(y) and only is not None:
        keep = np.isin(y, only)
        E, y = E[keep], y[keep]
    if E.ndim != 2 or len(E) != len(y) or len(y) < 2:
        sys.exit(f"nn_confusion: {prefix}.emb.npy and .labels.npy do not match ({E.shape}, {y.shape})")
    n = np.linalg.norm(E, axis=1, keepdims=True)
    E = E / np.maximum(n, 1e-12)
    classes = sorted(set(y.tolist()))
    names = args[1].split(",") if len(args) == 2 else []
    name = lambda c: names[c] if c < len(names) else str(c)
    nn = np.empty(len(y), dtype=np.int64)
    for s in range(0, len(y), 512):
        S = E[s:s + 512] @ E.T
        S[np.arange(len(S)), np.arange(s, s + len(S))] = -np.inf
        nn[s:s + 512] = S.argmax(axis=1)
    pred = y[nn]
    K = max(classes) + 1
    M = np.zeros((K, K), dtype=np.int64)
    np.add.at(M, (y, pred), 1)
    w = max(len(name(c)) for c in classes)
    print(f"{len(y)} samples, Recall@1 {np.mean(pred == y):.4f}")
    print(" " * (w + 2) + " ".join(f"{name(c)[:5]:>5}" for c in classes) + "  R@1  most confused with")
    for c in classes:
        row = M[c]
        tot = max(row.sum(), 1)
        off = row.copy()
        off[c] = 0
        worst = int(off.argmax())
        most = f"{name(worst)} ({100 * off[worst] / tot:.1f} %)" if off[worst] else "none"
        print(f"{name(c):>{w}}  " + " ".join(f"{100 * row[d] / tot:5.1f}" for d in classes) +
              f"  {row[c] / tot:.3f}  {most}")
    pairs = []
    for i, a in enumerate(classes):
        for b in classes[i + 1:]:
            na, nb = max(M[a].sum(), 1), max(M[b].sum(), 1)
            pairs.append(((M[a, b] / na + M[b, a] / nb) / 2, a, b))
    pairs.sort(reverse=True)
    print("most confused pairs (mean of both directions):")
    for v, a, b in pairs[:6]:
        print(f"  {name(a)} / {name(b)}: {100 * v:.1f} %")


if __name__ == "__main__":
    main()
