#!/usr/bin/env python3
"""Look-alike separation of a tracking network's embeddings (docs/tracking.md).

usage: bench/lookalike.py PREFIX [--partners FILE] [--save-partners FILE] [--pairs N]

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


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__.strip().split('\n')[2])
    prefix, partners_in, partners_out, npairs = argv[1], None, None, 200
    i = 2
    while i < len(argv):
        if argv[i] in ('--partners', '--save-partners', '--pairs') and i + 1 < len(argv):
            if argv[i] == '--partners':
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
    # AUC = P(same < other) by the rank sum, ties counted half
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
    auc = (rank_other - no * (no + 1) / 2.0) / (len(same) * no)
    print('%s: look-alike ROC AUC %.4f (%d targets, %d same-target and %d look-alike pairs)' %
          (prefix, auc, used, len(same), no))


if __name__ == '__main__':
    main(sys.argv)
