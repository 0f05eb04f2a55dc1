#!/usr/bin/python3
"""coseg_ceiling: how often could a co-segmentation model pick the common
object at best, given a perfect segmentation of every object? (docs/coseg.md,
"A ceiling".) It trains an object classifier on the crops
build/bench/coseg_crops writes (every object of the training images, seen
classes), then on the test pairs with a common object picks in each image
the object whose class posterior best matches one of the partner's objects.

  coseg_ceiling.py train PREFIX --out MODEL.pt [--steps N] [--seed S]
                   [--width W] [--channels 2|1] [--batch B]
  coseg_ceiling.py eval TEST_PREFIX --model MODEL.pt [--out PROBS.npy]
  coseg_ceiling.py pick TEST_PREFIX --probs PROBS.npy [--control none|shuffle|truth|uniform]
                   [--mix L] [--jp J --jn J]
  coseg_ceiling.py features FEAT_PREFIX CLASSES.npy --test-prefix TEST_PREFIX
                   --train-feat PREFIX --train-classes CLASSES.npy --train-images N
                   --shape CxHxW --out PROBS.npy   (the model's own features: features_main)

PREFIX.crops.npy (objects, 2, S, S) uint8: the image around the object and
its visible pixels; PREFIX.objects.npy (objects, 6): sample, class, ...;
PREFIX.pairs.npy (pairs, 3): sample a, sample b, common object 0/1.

The classifier: a small CNN (conv + batch norm + ReLU, 32-64-128-256
channels, three 2 x 2 max pools, global average pool, linear to the 8 seen
classes), SGD with Nesterov momentum 0.9, weight decay 5e-4, a linear
warm-up over 300 steps to 0.1 and a cosine to 0, batches of 128 drawn by a
seeded permutation per epoch, random horizontal flips and shifts of up to
2 px (both channels together). One thread. `--channels 1` gives it the image
only (not told which pixels are the object's).

Pickers (test pairs with a common object, each image on its own):
  product: the class c maximising max_i pA_i(c) * max_j pB_j(c), then in
           each image the object with the highest p(c);
  match:   in each image the object i maximising max_j sum_c p_i(c) q_j(c)
           (the chance that i and the partner's object j share a class).
An image counts as picked when the object chosen is the common one; ties
count as not picked. Run with /usr/bin/python3 (Debian's numpy and torch).
"""
import argparse
import sys
import time

import numpy as np

SEEN = 8
NAMES = ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def load(prefix):
    crops = np.load(prefix + ".crops.npy", mmap_mode="r")
    objects = np.load(prefix + ".objects.npy")
    pairs = np.load(prefix + ".pairs.npy")
    return crops, objects, pairs


def make_net(width, channels):
    import torch.nn as nn

    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    w = width
    layers = (block(channels, w) + [nn.MaxPool2d(2)] + block(w, 2 * w) + block(2 * w, 2 * w) + [nn.MaxPool2d(2)] +
              block(2 * w, 4 * w) + block(4 * w, 4 * w) + [nn.MaxPool2d(2)] + block(4 * w, 8 * w) +
              [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8 * w, SEEN)])
    return nn.Sequential(*layers)


def to_input(torch, batch, channels):
    x = torch.from_numpy(np.array(batch[:, :channels])).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last)


def train_main(a):
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    rng = np.random.default_rng(a.seed)
    crops, objects, _ = load(a.prefix)
    cls = objects[:, 1].astype(np.int64)
    keep = np.nonzero(cls < SEEN)[0]
    print("training objects: %d of %d (seen classes); counts %s" %
          (len(keep), len(cls), np.bincount(cls[keep], minlength=SEEN).tolist()), flush=True)
    t0 = time.time()
    data = np.asarray(crops)  # into memory
    print("loaded %s in %.1f s" % (data.shape, time.time() - t0), flush=True)
    net = make_net(a.width, a.channels).to(memory_format=torch.channels_last)
    decay = [p for n, p in net.named_parameters() if p.ndim > 1]
    rest = [p for n, p in net.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": rest, "weight_decay": 0}],
                          lr=a.lr, momentum=0.9, nesterov=True)
    warm = 300
    order, pos = rng.permutation(keep), 0
    s = data.shape[-1]
    t0 = time.time()
    loss_avg, acc_avg = 0.0, 0.0
    for step in range(a.steps):
        lr = a.lr * (step + 1) / warm if step < warm else \
            a.lr * 0.5 * (1 + np.cos(np.pi * (step - warm) / max(1, a.steps - warm)))
        for g in opt.param_groups:
            g["lr"] = lr
        if pos + a.batch > len(order):
            order, pos = rng.permutation(keep), 0
        idx = np.sort(order[pos:pos + a.batch])
        pos += a.batch
        b = data[idx]
        # augmentation: flips and shifts of up to 2 px, the same for both channels
        flip = rng.random(len(idx)) < 0.5
        b[flip] = b[flip][..., ::-1]
        pad = np.pad(b, ((0, 0), (0, 0), (2, 2), (2, 2)))
        dy, dx = rng.integers(0, 5, len(idx)), rng.integers(0, 5, len(idx))
        b = np.stack([pad[k, :, dy[k]:dy[k] + s, dx[k]:dx[k] + s] for k in range(len(idx))])
        x = to_input(torch, b, a.channels)
        y = torch.from_numpy(cls[idx])
        net.train()
        out = net(x)
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_avg = 0.98 * loss_avg + 0.02 * loss.item()
        acc_avg = 0.98 * acc_avg + 0.02 * (out.argmax(1) == y).float().mean().item()
        if (step + 1) % 250 == 0 or step + 1 == a.steps:
            print("step %d lr %.4f loss %.4f acc %.4f (running) %.0f s" %
                  (step + 1, lr, loss_avg, acc_avg, time.time() - t0), flush=True)
        if (step + 1) % 1000 == 0 or step + 1 == a.steps:
            torch.save({"state": net.state_dict(), "width": a.width, "channels": a.channels, "step": step + 1,
                        "seed": a.seed}, a.out)
    print("trained %d steps in %.0f s" % (a.steps, time.time() - t0), flush=True)


def posteriors(torch, net, crops, channels, flip):
    out = []
    net.eval()
    with torch.no_grad():
        for i in range(0, len(crops), 512):
            b = np.asarray(crops[i:i + 512])
            x = to_input(torch, b, channels)
            p = torch.softmax(net(x), 1)
            if flip:
                p = 0.5 * (p + torch.softmax(net(torch.flip(x, [3])), 1))
            out.append(p.numpy())
    return np.concatenate(out).astype(np.float64)


def accuracy_report(p, cls, pixels=None):
    seen = cls < SEEN
    pred = p.argmax(1)
    acc = float(np.mean(pred[seen] == cls[seen]))
    print("per-object accuracy, seen classes: %.4f (%d objects)" % (acc, seen.sum()))
    if pixels is not None:  # by the object's visible pixels
        edges = [0, 100, 200, 300, 500, 800, 5000]
        print("by visible pixels: " + ", ".join(
            "%d-%d: %.3f (%d)" % (lo, hi, np.mean(pred[m] == cls[m]), m.sum())
            for lo, hi in zip(edges, edges[1:])
            for m in [seen & (pixels >= lo) & (pixels < hi)] if m.any()))
    print("confusion (rows: true class, percent of its objects; columns: predicted)")
    print("%-11s" % "" + "".join("%9s" % NAMES[c][:8] for c in range(SEEN)) + "   acc")
    for t in range(10):
        r = pred[cls == t]
        if not len(r):
            continue
        h = np.bincount(r, minlength=SEEN) / len(r) * 100
        print("%-11s" % NAMES[t] + "".join("%9.1f" % v for v in h) +
              ("  %.3f" % (h[t] / 100) if t < SEEN else "  (unseen)"))
    return acc


def eval_main(a):
    import torch
    torch.set_num_threads(1)
    ck = torch.load(a.model)
    net = make_net(ck["width"], ck["channels"]).to(memory_format=torch.channels_last)
    net.load_state_dict(ck["state"])
    crops, objects, _ = load(a.prefix)
    cls = objects[:, 1].astype(np.int64)
    print("model %s: %d steps, seed %d, width %d, %d channels" %
          (a.model, ck["step"], ck["seed"], ck["width"], ck["channels"]))
    for flip in (False, True):
        t0 = time.time()
        p = posteriors(torch, net, crops, ck["channels"], flip)
        print("== %s (%.1f s)" % ("with the mirrored crop averaged" if flip else "one view", time.time() - t0))
        accuracy_report(p, cls, objects[:, 2])
        if a.out:
            np.save(a.out if not flip else a.out.replace(".npy", "") + "-flip.npy", p.astype(np.float32))


def image_objects(objects):
    """sample -> list of object rows (the rows of one sample are contiguous)."""
    by = {}
    for r, s in enumerate(objects[:, 0].astype(np.int64)):
        by.setdefault(int(s), []).append(r)
    return by


def pick_rates(p, objects, pairs, unseen_ok=False):
    """For each test image of a pair with a common object: (class of the
    common object, picked by product, picked by match)."""
    cls = objects[:, 1].astype(np.int64)
    by = image_objects(objects)
    rows = []
    for a_, b_, same in pairs:
        if not same:
            continue
        A, B = by[int(a_)], by[int(b_)]
        common = set(cls[A]) & set(cls[B])
        assert len(common) == 1, (a_, b_, common)
        k = common.pop()
        if k >= SEEN and not unseen_ok:
            continue
        PA, PB = p[A], p[B]
        # product
        score = PA.max(0) * PB.max(0)
        c = int(score.argmax())
        for X, objs in ((PA, A), (PB, B)):
            col = X[:, c]
            i = int(col.argmax())
            prod_ok = cls[objs[i]] == k and np.sum(col == col[i]) == 1
            rows.append([k, prod_ok, 0])
        # match
        S = PA @ PB.T  # chance that A's object i and B's object j share a class
        for X, objs, best in ((PA, A, S.max(1)), (PB, B, S.max(0))):
            i = int(best.argmax())
            ok = cls[objs[i]] == k and np.sum(best == best[i]) == 1
            rows[-2 if X is PA else -1][2] = ok
    return np.array(rows, dtype=np.int64)


def pick_main(a):
    objects = np.load(a.prefix + ".objects.npy")
    pairs = np.load(a.prefix + ".pairs.npy")
    p = np.load(a.probs).astype(np.float64)
    cls = objects[:, 1].astype(np.int64)
    rng = np.random.default_rng(a.seed)
    if a.control == "shuffle":  # every object gets another object's posterior: chance
        p = p[rng.permutation(len(p))]
    elif a.control == "truth":  # one-hot true classes (unseen objects: uniform): every image picked
        q = np.full((len(p), SEEN), 1.0 / SEEN)
        q[cls < SEEN] = np.eye(SEEN)[cls[cls < SEEN]]
        p = q
    elif a.control == "uniform":  # all equal: ties everywhere, nothing picked
        p = np.full_like(p, 1.0 / p.shape[1])
    if a.mix > 0:  # towards the truth: (1 - mix) p + mix one-hot (unseen objects: uniform)
        q = np.full((len(p), SEEN), 1.0 / SEEN)
        q[cls < SEEN] = np.eye(SEEN)[cls[cls < SEEN]]
        p = (1 - a.mix) * p + a.mix * q
    seen = cls < SEEN
    acc = float(np.mean(p[seen].argmax(1) == cls[seen])) if seen.any() else float("nan")
    r = pick_rates(p, objects, pairs)
    n = len(r)
    prod, match = r[:, 1].mean(), r[:, 2].mean()
    print("%s (control %s, mix %g): per-object accuracy %.4f; %d seen images with a common object; "
          "picked: product %.4f, match %.4f" % (a.probs, a.control, a.mix, acc, n, prod, match))
    ru = pick_rates(p, objects, pairs, unseen_ok=True)
    ru = ru[ru[:, 0] >= SEEN]
    if len(ru):
        print("unseen classes (the classifier knows only the seen ones): %d images; picked: product %.4f, match %.4f" %
              (len(ru), ru[:, 1].mean(), ru[:, 2].mean()))
    r = np.concatenate([r, ru])
    print("class        images  product  match")
    for k in range(10):
        s = r[:, 0] == k
        if not s.any():
            continue
        print("%-11s  %6d  %7.4f  %6.4f" % (NAMES[k], s.sum(), r[s, 1].mean(), r[s, 2].mean()))
    # objects per image of these pairs: chance level of a blind pick
    by = image_objects(objects)
    cnt = []
    for a_, b_, same in pairs:
        if same:
            for s_ in (a_, b_):
                cnt.append(len(by[int(s_)]))
    print("objects per such image (all pairs with a common object): mean %.3f; 1/count averaged %.4f" %
          (np.mean(cnt), np.mean(1.0 / np.array(cnt))))
    for name, v in (("product", prod), ("match", match)):
        print("%s: Jaccard with perfect outlines %.4f; with outlines of Jaccard %.3f when picked and %.3f when "
              "not: %.4f" % (name, v, a.jp, a.jn, v * a.jp + (1 - v) * a.jn))


def features_main(a):
    """The model's own features: pool the feature map (siamese embed's
    PREFIX.emb.npy, C x H x W per image, after a ReLU) over each object's
    true pixels as coseg_errors --features does, then (1) the cosine picker
    of coseg_errors (checks this pooling against its number), (2) a linear
    softmax classifier on the pooled features of the training objects,
    its posteriors on the test objects given to the pickers above."""
    import torch
    torch.set_num_threads(1)
    fc, fh, fw = (int(v) for v in a.shape.split("x"))

    def pooled(feat_prefix, classes_npy, nimg):
        F_ = np.load(feat_prefix + ".emb.npy", mmap_mode="r")
        C = np.load(classes_npy, mmap_mode="r")
        side = int(round(np.sqrt(C.shape[1])))
        bh, bw = side // fh, side // fw
        vecs, labs, samp = [], [], []
        for i in range(nimg):
            c = np.asarray(C[i]).astype(np.int64).reshape(fh, bh, fw, bw)
            f = np.maximum(np.asarray(F_[i], dtype=np.float64).reshape(fc, fh, fw), 0)
            for v in np.unique(c):
                if v == 0:
                    continue
                wgt = (c == v).sum(axis=(1, 3))
                x = (f * wgt).sum(axis=(1, 2))
                nn_ = np.linalg.norm(x)
                vecs.append(x / nn_ if nn_ > 0 else x)
                labs.append(v - 1)
                samp.append(i)
        return np.array(vecs), np.array(labs), np.array(samp)

    te_objects = np.load(a.test_prefix + ".objects.npy")
    te_pairs = np.load(a.test_prefix + ".pairs.npy")
    ntest = int(te_objects[:, 0].max()) + 1
    Xt, yt, st = pooled(a.feat, a.classes, ntest)
    # the rows come out in the same order as coseg_crops' objects (sample, class ascending)
    assert np.array_equal(st, te_objects[:, 0].astype(np.int64)) and np.array_equal(yt, te_objects[:, 1]), \
        "pooled objects differ from the crops' objects"
    # (1) cosine picker on the pooled features, as coseg_errors --features
    by = image_objects(te_objects)
    ok, tot = 0, 0
    for a_, b_, same in te_pairs:
        if not same:
            continue
        A, B = by[int(a_)], by[int(b_)]
        k = (set(yt[A]) & set(yt[B])).pop()
        if k >= SEEN:
            continue
        S = Xt[A] @ Xt[B].T
        for best, objs in ((S.max(1), A), (S.max(0), B)):
            i = int(best.argmax())
            ok += yt[objs[i]] == k and np.sum(best == best[i]) == 1
            tot += 1
    print("cosine picker on the pooled features: %.4f of %d seen images" % (ok / tot, tot), flush=True)
    # (2) a linear softmax classifier on training objects' pooled features
    Xr, yr, _ = pooled(a.train_feat, a.train_classes, a.train_images)
    keep = yr < SEEN
    Xr, yr = torch.from_numpy(Xr[keep]).float(), torch.from_numpy(yr[keep])
    torch.manual_seed(1)
    lin = torch.nn.Linear(fc, SEEN)
    opt = torch.optim.Adam(lin.parameters(), lr=0.01)
    for epoch in range(a.epochs):
        perm = torch.randperm(len(yr))
        for i in range(0, len(yr), 256):
            j = perm[i:i + 256]
            loss = torch.nn.functional.cross_entropy(lin(Xr[j] * a.scale), yr[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        acc_tr = (lin(Xr * a.scale).argmax(1) == yr).float().mean().item()
        p = torch.softmax(lin(torch.from_numpy(Xt).float() * a.scale), 1).double().numpy()
    print("linear classifier on %d training objects' pooled features: training accuracy %.4f" % (len(yr), acc_tr))
    accuracy_report(p, yt, te_objects[:, 2])
    np.save(a.out, p.astype(np.float32))
    print("wrote", a.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("prefix")
    t.add_argument("--out", required=True)
    t.add_argument("--steps", type=int, default=9000)
    t.add_argument("--seed", type=int, default=1)
    t.add_argument("--width", type=int, default=32)
    t.add_argument("--channels", type=int, default=2, choices=(1, 2))
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--lr", type=float, default=0.1)
    e = sub.add_parser("eval")
    e.add_argument("prefix")
    e.add_argument("--model", required=True)
    e.add_argument("--out")
    p = sub.add_parser("pick")
    p.add_argument("prefix")
    p.add_argument("--probs", required=True)
    p.add_argument("--control", default="none", choices=("none", "shuffle", "truth", "uniform"))
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--mix", type=float, default=0.0, help="move the posteriors this far towards the true classes")
    p.add_argument("--jp", type=float, default=0.775, help="Jaccard of a picked image (the model's outlines)")
    p.add_argument("--jn", type=float, default=0.0, help="Jaccard of an image not picked")
    f = sub.add_parser("features")
    f.add_argument("feat", help="siamese embed PREFIX of the test images")
    f.add_argument("classes", help="classes.npy of the test images (coseg_errors --write classes)")
    f.add_argument("--test-prefix", required=True, help="coseg_crops PREFIX of the test images")
    f.add_argument("--train-feat", required=True)
    f.add_argument("--train-classes", required=True)
    f.add_argument("--train-images", type=int, required=True)
    f.add_argument("--shape", required=True)
    f.add_argument("--epochs", type=int, default=20)
    f.add_argument("--scale", type=float, default=10.0)
    f.add_argument("--out", required=True)
    a = ap.parse_args()
    {"train": train_main, "eval": eval_main, "pick": pick_main, "features": features_main}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
