#!/usr/bin/env python3
"""scaling_strong: the strong-scaling part of bench/scaling_model.py (run it
as `scaling_model.py strong`): a fixed global batch G of 1k .. 64k images on
8 .. 1024 ranks, for the mining modes of the trainer (exact global mining,
local mining, and the hard-class exchange of `[mining] pool = classes`), with
the optimizer replicated on every rank or sharded, one rank per core or one
rank per node of 64 cores with threads. Assumptions in docs/scaling.md.

  T(p) = compute(G/p) + optimizer + mining + exchange + allreduce
  strong efficiency = T(1) / (p T(p)), T(1) the same mode's one-rank time
  for the same global batch (no communication)
"""
import math

from scaling_model import (FMNIST_PARAMS, NETWORKS, allgather, allreduce, buckets, flat_allgather,
                           flat_allreduce, lg, model_inputs)

BATCHES = [1024, 4096, 16384, 65536]
RANKS = [8, 16, 32, 64, 128, 256, 512, 1024]
D = 64          # fmnist-small's embedding
K = 32          # images per class in a PK batch (the recipe's sampler.k)
BUCKET = 64000  # [dist] bucket_kfloats = 64

# name, mining mode, optimizer sharded
MODES = [
    ("exact", "global", False),
    ("exact+shard", "global", True),
    ("classes+shard", "classes", True),
    ("local", "local", False),
]


def mining_cost(mode, b, G, p, a, bw, share, inp, args):
    """(mining seconds, exchange seconds) of one rank holding b of the G
    images. The exchange is the one the mode needs beyond the gradient
    allreduce; a, bw the network, share ranks per NIC."""
    row = inp["mining_per_anchor_row"]
    if mode == "local":
        return row * b * b, 0.0
    if mode == "global":
        # Every anchor against the whole pool; three passes over the (G, D)
        # pool gradient (memset, scale, reduction), whatever p is.
        mine = row * b * G + 3 * G * D * 4 / args.mem_bw
        if p == 1:
            return mine, 0.0
        pool = G * D * 4
        return mine, 2 * flat_allgather(pool, p, share, a, bw) + flat_allgather(G * 4, p, share, a, bw)
    # pool = classes (mining/classes.h, dist/train_classes.c): the labels
    # (an allgather of G ints) and each class's fixed-point sum (C x D int64,
    # allreduced); each local class ranks the C sums (D multiply-adds per
    # pair, counted like a pool row of the mining) and keeps its m nearest;
    # the rank asks the owners of the union of those classes for their rows
    # (an alltoall of one int per rank, Bruck: log2 p messages; then the
    # block ids), receives the rows, mines each local class against its own
    # and its neighbours' (m + 1) K rows (plus a fixed cost per class: the
    # copy of its pool and one loss call), and sends the rows' gradients
    # back by the same messages. The alltoallv's messages go to the owners
    # only (Open MPI's linear alltoallv posts no message for a zero count).
    m = args.classes
    C = max(1, G // K)
    cl = min(C, max(1, math.ceil(b / K)) + (1 if b % K else 0))  # classes whose anchors this rank holds
    rows = min(G, (m + 1) * K)
    mine = row * cl * C + row * b * rows + cl * inp["classes_per_class"] + 3 * cl * rows * D * 4 / args.mem_bw
    if p == 1:
        return mine, 0.0
    cent = flat_allreduce(C * D * 8, p, share, a, bw) + flat_allgather(G * 4, p, share, a, bw)
    counts = lg(p) * (a + p * 4 / 2 / bw)
    # The union of the classes' m nearest (at most all C), of which a share
    # 1/p is its own; each fetched class lives on about ceil(K / b) + 1
    # ranks: one message each way per (class, owner) for the rows and their
    # gradients, one for the request; the volume over the NIC it shares.
    union = min(C, cl * (m + 1))
    owners = min(p - 1, union * (math.ceil(K / b) + 1))
    vol = union * K * D * 4 * (1 - 1 / p)
    fetch = 3 * owners * a + 2 * vol * share / bw
    return mine, cent + counts + fetch


def step(mode, shard, G, p, threads, share, a, bw, inp, args):
    """Seconds per step of one rank (p ranks, `threads` threads each, `share`
    ranks per NIC); None when a rank would hold less than one image."""
    if G < p:
        return None
    b = G / p
    P = FMNIST_PARAMS
    eff = inp["thread_eff"] if threads > 1 else 1.0
    used = min(threads, b)
    comp = b * inp["fmnist_compute_per_image"] / (used * eff if used > 1 else 1)
    opt_par = min(threads, args.node_bw_cores) if threads > 1 else 1
    opt = (P / p if shard else P) * inp["fmnist_optimizer_per_param"] / opt_par
    if threads > 1:
        comp += inp["region_cost"] * inp["fmnist_regions"]
    mine, xchg = mining_cost(mode, b, G, p, a, bw, share, inp, args)
    if threads > 1:
        mine /= min(threads, max(1.0, b / 8)) * eff
    bl = buckets(P, BUCKET)
    # Sharded: a reduce-scatter of the gradients and an allgather of the
    # parameters, the two halves of a Rabenseifner allreduce, plus the
    # clipping norm's scalar; replicated: the cheapest allreduce per bucket.
    if p == 1:
        ar = 0.0
    elif shard:
        ar = sum(2 * flat_allgather(4 * n, p, share, a, bw) for n in bl) + allreduce(8, p, a, bw, "best")
    else:
        ar = sum(flat_allreduce(4 * n, p, share, a, bw) for n in bl)
    scal = 0.0 if p == 1 else 2 * allreduce(40, p, a, bw, "best")
    return {"comp": comp, "opt": opt, "mine": mine, "xchg": xchg + scal, "ar": ar,
            "t": comp + opt + mine + xchg + scal + ar, "b": b}


def serial(mode, shard, G, p, inp, args):
    """T(1): one core doing the work of the p-rank step without communication.
    For exact and hard-class mining that is the one-rank step of the same
    global batch; local mining's work shrinks with p (each rank mines only
    its own G/p images), so its T(1) is p local minings on one core."""
    t = step(mode, shard, G, 1, 1, 1, 0.0, 1.0, inp, args)["t"]
    if mode == "local":
        b = G / p
        t += inp["mining_per_anchor_row"] * (G * b - G * G)
    return t


def hybrid(mode, shard, G, p, a, bw, inp, args):
    """The same p cores as one rank per node of args.cores threads (fewer
    than a node: one rank, p threads, no network)."""
    nodes = max(1, p // args.cores)
    return step(mode, shard, G, nodes, min(p, args.cores), 1, a, bw, inp, args)


def cmd_strong(args):
    inp, src = model_inputs(args)
    nets = [(n, bw * args.link_efficiency, a) for n, bw, a in NETWORKS]
    cores = args.cores
    print("Strong scaling, fmnist-small (D %d, PK with K %d), fixed global batch; inputs from %s" % (D, K, src))
    print("  fwd+bwd %.3f ms/image, optimizer %.2f ns/param, mining %.1f ns/(anchor x pool row), thread efficiency"
          " %.2f; hard-class mode m = %d nearest classes" % (
              1e3 * inp["fmnist_compute_per_image"], 1e9 * inp["fmnist_optimizer_per_param"],
              1e9 * inp["mining_per_anchor_row"], inp["thread_eff"], args.classes))
    print("  eff = T(1) / (p T(p)), p cores: a rank per core (each its own link), or the same p cores as ranks of"
          " %d threads, one per node (fewer than %d: one rank)" % (cores, cores))
    print("  allreduce exposed (no overlap with backward); '-' = fewer images than ranks")
    for net, bw, a in nets:
        if args.net and not net.startswith(args.net):
            continue
        for G in BATCHES:
            t1 = {name: serial(mode, shard, G, 1, inp, args) for name, mode, shard in MODES}
            print()
            print("%s, global batch %d: T(1) %s" % (net, G, ", ".join(
                "%s %.0f ms" % (name, 1e3 * t1[name]) for name, _, _ in MODES[:3])))
            if args.markdown:
                print()
                print("| ranks | " + " | ".join("%s ms (eff)" % n for n, _, _ in MODES) +
                      " | threads, a rank per node: exact+shard | classes+shard |")
                print("|" + "---:|" * (len(MODES) + 3))
            else:
                print("  %6s  " % "ranks" + "".join("%-22s" % n for n, _, _ in MODES) +
                      "| threads, a rank per node: %-10s %s" % ("exact+shard", "classes+shard"))
            for p in RANKS:
                cells = []
                for name, mode, shard in MODES:
                    s = step(mode, shard, G, p, 1, 1, a, bw, inp, args)
                    t = serial(mode, shard, G, p, inp, args)
                    cells.append("-" if s is None else "%.2f (%.1f%%)" % (1e3 * s["t"], 100 * t / (p * s["t"])))
                for name, mode, shard in MODES[1:3]:
                    s = hybrid(mode, shard, G, p, a, bw, inp, args)
                    cells.append("-" if s is None else "%.2f (%.1f%%)" % (1e3 * s["t"], 100 * t1[name] / (p * s["t"])))
                if args.markdown:
                    print("| %d | %s |" % (p, " | ".join(cells)))
                else:
                    print("  %6d  " % p + "".join("%-22s" % c for c in cells[:len(MODES)]) + "| " +
                          "".join("%-22s" % c for c in cells[len(MODES):]))
    if args.detail:
        print()
        print("Parts of a step, ms (100 Gb/s), rank per core:")
        net, bw, a = nets[-1]
        for G, p in ((4096, 64), (65536, 1024)):
            for name, mode, shard in MODES:
                s = step(mode, shard, G, p, 1, 1, a, bw, inp, args)
                if s:
                    print("  G %6d p %5d %-14s compute %.3f optimizer %.3f mining %.3f exchange %.3f allreduce %.3f"
                          " = %.3f" % (G, p, name, 1e3 * s["comp"], 1e3 * s["opt"], 1e3 * s["mine"],
                                       1e3 * s["xchg"], 1e3 * s["ar"], 1e3 * s["t"]))


def add_parser(sub):
    s = sub.add_parser("strong", help="strong scaling at fixed global batches of 1k .. 64k images")
    s.add_argument("--measured", help="measured.json written by 'measured'")
    s.add_argument("--perf", metavar="PERF_TXT",
                   help="the saved output of bench/perf.sh --only hybrid: thread_eff from its hybrid report")
    s.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one model input")
    s.add_argument("--classes", type=int, default=8, help="[mining] classes = m of the hard-class mode (default 8)")
    s.add_argument("--cores", type=int, default=64, help="cores per node for the rank-per-node layout (default 64)")
    s.add_argument("--node-bw-cores", type=int, default=8,
                   help="cores whose memory bandwidth the node's equals: the update's thread limit (default 8)")
    s.add_argument("--link-efficiency", type=float, default=0.9,
                   help="fraction of the line rate a large message reaches (default 0.9)")
    s.add_argument("--mem-bw", type=float, default=10e9, help="bytes/s of one core's memory passes (default 10e9)")
    s.add_argument("--net", choices=["10", "100"], help="only this network (Gb/s)")
    s.add_argument("--markdown", action="store_true", help="print the tables of docs/scaling.md")
    s.add_argument("--detail", action="store_true", help="also print the parts of a step at the two targets")
    return s
