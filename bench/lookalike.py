#!/usr/bin/env python3
"""Look-alike separation of a tracking network's embeddings (docs/tracking.md).

usage: bench/lookalike.py PREFIX [--partners FILE] [--save-partners FILE] [--pairs N]
                         [--crossings ROOT [--crossing-iou T]]

PREFIX is what `siamese embed CHECKPOINT --data DB --out PREFIX` wrote for a
dataset of `siamese import --format mot` (sample names SEQUENCE/FRAME/ID).
Every target of a sequence is paired with a look-alike of the same sequence:
by default target 1 with target 2 (synth mot gives the first two targets of a
sequence the same Fashion-MNIST class); with --partners FILE the pairs listed
there ("SEQUENCE ID PARTNER" per line); --save-partners FILE pairs each target
with the target whose mean embedding is nearest (for this network) and writes
those pairs. For each target, N same-target crop pairs (at least 5 frames
apart) and N crop pairs with its partner are drawn (seeded); the ROC AUC is
the probability that a same-target pair is closer than a partner pair.
--crossings ROOT pairs crops at crossings instead, from the ground truth of
ROOT/SEQUENCE/gt/gt.txt (scored boxes: non-zero flag, class 1): for every
frame in which target a's box has IoU > T (default 0.2) with target b's and
both are cropped, three crops of a from frames where a's box overlaps no
other (at least 5 frames away) are paired with a's crop (same target) and
b's crop (the other) of that frame.
Plain Python (no numpy): the .npy reader takes float32 2-D arrays only.
"""
import math
import random
import struct
import sys
from array import array


def read_npy(path):
    try:
        raw = open(path, 'rb').read()
    except OSError as e:
        sys.exit('lookalike: %s: %s' % (path, e.strerror))
    try:
        if raw[:6] != b'\x93NUMPY':
            raise ValueError
        hlen = struct.unpack('<H', raw[8:10])[0]
        header = raw[10:10 + hlen].decode('latin1')
        if "'<f4'" not in header or 'False' not in header:
            raise ValueError
        shape = header.split("'shape':")[1].split('(')[1].split(')')[0]
        n, d = (int(x) for x in shape.split(',') if x.strip())
        if len(raw) < 10 + hlen + 4 * n * d:
            raise ValueError
    except (ValueError, IndexError, struct.error):
        sys.exit('lookalike: %s: not a float32 .npy file of n x d (as siamese embed writes)' % path)
    a = array('f')
    a.frombytes(raw[10 + hlen:10 + hlen + 4 * n * d])
    return a, n, d


def iou(a, b):
    iw = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    ih = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def crossing_pairs(root, thr, crops, rng):
    """(anchor, same, other) row triples at the crossings of root's ground truth."""
    at = {}
    for (seq, tid), lst in crops.items():
        for f, k in lst:
            at[(seq, f, tid)] = k
    out = []
    for seq in sorted(set(t[0] for t in crops)):
        path = '%s/%s/gt/gt.txt' % (root, seq)
        try:
            lines = open(path).read().splitlines()
        except OSError as e:
            sys.exit('lookalike: %s: %s' % (path, e.strerror))
        frames = {}
        for no, line in enumerate(lines, 1):
            f = line.split(',')
            try:
                fr, tid, box, flag = int(f[0]), str(int(f[1])), [float(v) for v in f[2:6]], int(float(f[6]))
                cls = int(float(f[7])) if len(f) > 7 else 1
            except (ValueError, IndexError):
                sys.exit('lookalike: %s line %d: want frame,id,x,y,w,h,flag,class,...' % (path, no))
            if flag != 0 and cls == 1:
                frames.setdefault(fr, []).append((tid, box))
        free, cross = {}, []
        for fr in sorted(frames):
            bs = frames[fr]
            for ta, ba in bs:
                ov = [(tb, iou(ba, bb)) for tb, bb in bs if tb != ta]
                if all(v == 0 for _, v in ov):
                    free.setdefault(ta, []).append(fr)
                cross += [(fr, ta, tb) for tb, v in ov if v > thr]
        for fr, ta, tb in cross:
            ka, kb = at.get((seq, fr, ta)), at.get((seq, fr, tb))
            anchors = [g for g in free.get(ta, []) if abs(g - fr) >= 5 and (seq, g, ta) in at]
            if ka is None or kb is None or not anchors:
                continue
            for _ in range(3):
                out.append((at[(seq, rng.choice(anchors), ta)], ka, kb))
    return out


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__.strip().split('\n')[2])
    prefix, partners_in, partners_out, npairs = argv[1], None, None, 200
    cross_root, cross_iou = None, 0.2
    i = 2
    while i < len(argv):
        if argv[i] in ('--partners', '--save-partners', '--pairs', '--crossings', '--crossing-iou') \
                and i + 1 < len(argv):
            if argv[i] == '--crossings':
                cross_root = argv[i + 1]
            elif argv[i] == '--crossing-iou':
                try:
                    cross_iou = float(argv[i + 1])
                except ValueError:
                    cross_iou = -1
                if not 0 <= cross_iou < 1:
                    sys.exit('lookalike: --crossing-iou wants a number in [0, 1), not %s' % argv[i + 1])
            elif argv[i] == '--partners':
                partners_in = argv[i + 1]
            elif argv[i] == '--save-partners':
                partners_out = argv[i + 1]
            elif argv[i + 1].isdigit() and int(argv[i + 1]) > 0:
                npairs = int(argv[i + 1])
            else:
                sys.exit('lookalike: --pairs wants a positive integer, not %s' % argv[i + 1])
            i += 2
        else:
            sys.exit('lookalike: unknown argument %s' % argv[i])
    emb, n, d = read_npy(prefix + '.emb.npy')
    try:
        names = open(prefix + '.names.txt').read().split()
    except OSError as e:
        sys.exit('lookalike: %s.names.txt: %s' % (prefix, e.strerror))
    if len(names) != n:
        sys.exit('lookalike: %s.names.txt has %d names for %d rows' % (prefix, len(names), n))
    crops = {}
    for k, name in enumerate(names):
        f = name.split('/')
        if len(f) != 3 or not f[1].isdigit():
            sys.exit('lookalike: %s.names.txt line %d: %s is not SEQUENCE/FRAME/ID' % (prefix, k + 1, name))
        seq, frame, tid = f
        crops.setdefault((seq, tid), []).append((int(frame), k))
    row = lambda k: emb[k * d:(k + 1) * d]
    dist = lambda x, y: math.sqrt(sum((p - q) * (p - q) for p, q in zip(x, y)))
    targets = sorted(t for t in crops if len(crops[t]) >= 10)
    if cross_root:
        trip = crossing_pairs(cross_root, cross_iou, crops, random.Random(1))
        if not trip:
            sys.exit('lookalike: no crossing (IoU > %g) with crops of %s in %s' % (cross_iou, prefix, cross_root))
        same = [dist(row(a), row(s)) for a, s, _ in trip]
        other = [dist(row(a), row(o)) for a, _, o in trip]
        print('%s: crossing ROC AUC %.4f (IoU > %g, %d same-target and %d other-target pairs)' %
              (prefix, rank_auc(same, other), cross_iou, len(same), len(other)))
        return
    partner = {}
    if partners_in:
        try:
            lines = open(partners_in).read().splitlines()
        except OSError as e:
            sys.exit('lookalike: %s: %s' % (partners_in, e.strerror))
        for no, line in enumerate(lines, 1):
            f = line.split()
            if len(f) != 3:
                sys.exit('lookalike: %s line %d: want SEQUENCE ID PARTNER' % (partners_in, no))
            partner[(f[0], f[1])] = (f[0], f[2])
    elif partners_out:
        mean = {}
        for t in targets:
            m = [0.0] * d
            for _, k in crops[t]:
                for j, v in enumerate(row(k)):
                    m[j] += v
            mean[t] = [v / len(crops[t]) for v in m]
        for t in targets:
            others = [o for o in targets if o[0] == t[0] and o != t]
            if others:
                partner[t] = min(others, key=lambda o: dist(mean[t], mean[o]))
        with open(partners_out, 'w') as f:
            for t in sorted(partner):
                f.write('%s %s %s\n' % (t[0], t[1], partner[t][1]))
    else:
        for seq, tid in targets:
            if tid in ('1', '2'):
                partner[(seq, tid)] = (seq, '2' if tid == '1' else '1')
    rng = random.Random(1)
    same, other = [], []
    used = 0
    for t in targets:
        if t not in partner or partner[t] not in crops:
            continue
        used += 1
        a, b = crops[t], crops[partner[t]]
        for _ in range(npairs):
            (f1, k1), (f2, k2) = rng.choice(a), rng.choice(a)
            if abs(f1 - f2) >= 5:
                same.append(dist(row(k1), row(k2)))
        for _ in range(npairs):
            other.append(dist(row(rng.choice(a)[1]), row(rng.choice(b)[1])))
    if not same or not other:
        sys.exit('lookalike: no target of %s has a partner' % prefix)
    print('%s: look-alike ROC AUC %.4f (%d targets, %d same-target and %d look-alike pairs)' %
          (prefix, rank_auc(same, other), used, len(same), len(other)))


def rank_auc(same, other):
    """P(same < other) by the rank sum, ties counted half."""
    pooled = sorted([(v, 0) for v in same] + [(v, 1) for v in other])
    rank_other, k = 0.0, 0
    while k < len(pooled):
        j = k
        while j < len(pooled) and pooled[j][0] == pooled[k][0]:
            j += 1
        mid = (k + 1 + j) / 2.0
        rank_other += mid * sum(1 for x in pooled[k:j] if x[1] == 1)
        k = j
    no = len(other)
    return (rank_other - no * (no + 1) / 2.0) / (len(same) * no)


if __name__ == '__main__':
    main(sys.argv)
