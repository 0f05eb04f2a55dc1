#!/usr/bin/env python3
"""scaling_model: the measured scaling table of bench/scaling.sh and a model
that predicts weak-scaling efficiency of siamese-mpi for 8 .. 1024 ranks.
Python 3 standard library only.

  scaling_model.py measured OUT [--warm 3]
      reads OUT/runs.csv, OUT/runs/*/timing.csv, OUT/bench_*.txt (written by
      bench/scaling.sh), prints the 1-vs-2-rank table and writes
      OUT/measured.json (the model's inputs).
  scaling_model.py predict [--measured OUT/measured.json] [options]
      prints the model's tables; without --measured it uses the figures
      measured when the model was written (DEFAULTS below).
  scaling_model.py hybrid [--measured OUT/measured.json] [--perf PERF.txt] [options]
      strong scaling at a fixed global batch (default 4096 images) on nodes
      of 64 cores: one rank per core against one rank per node with a
      thread per core (nn/parallel), 8 .. 1024 nodes. --perf: the thread
      efficiencies measured by bench/perf.sh's hybrid scenarios (its output).
  scaling_model.py strong [--measured OUT/measured.json] [options]
      strong scaling at fixed global batches of 1k .. 64k images on 8 .. 1024
      ranks: exact global mining, local mining, the hard-class exchange,
      optimizer replicated or sharded (bench/scaling_strong.py).

The model (assumptions in docs/scaling.md and in --help):
  T(p) = compute + mining(N = B p) + exchange(p) + exposed allreduce(p)
  efficiency(p) = T(1) / T(p)   (weak scaling: B images per rank fixed)
"""
import argparse
import csv
import json
import math
import os
import re
import statistics
import sys

# Measured on the 2-vCPU development VM (docs/scaling.md, 2026-11-28); used
# when predict runs without --measured. Times in seconds. Compute: the 10th
# percentile of the 1-rank steps; mining: the median of three runs' fits
# (24, 27, 40 ns: the host's noise reaches CPU time too).
DEFAULTS = {  # bench/scaling.sh --reps 5, 2026-11-28 17:27 UTC (run D in bench/results/scaling-2026-11-28.md)
    "fmnist_compute_per_image": 1.685e-4,  # forward + backward, one core, s/image (p10 of 1-rank steps)
    "fmnist_optimizer_per_param": 2.26e-9,  # SGD momentum step, s/parameter
    "mining_per_anchor_row": 8.8e-9,       # global batch-all, s per anchor per pool row (D 64, K 32)
    "koch_compute_per_image": 0.0449,      # forward + backward at 105x105, s/image
    "koch_optimizer_per_param": 2.18e-9,
    "shm_latency": 0.81e-6,                # this machine, 2 ranks, 8-byte allreduce
    "shm_bandwidth": 5.70e9,               # bytes/s, bus bandwidth of a 1 MiB allreduce
    "step_cv_1rank": 0.037,                # step-time variation of one rank here (information only)
    # Threads (bench/perf.sh hybrid scenario; bench_train --profile):
    "thread_eff": 0.95,                    # 2 threads' rate / the two-core limit (the target until measured)
    "koch_thread_eff": 0.95,               # the same for Koch's network (perf.sh's koch scenario)
    "region_cost": 5e-6,                   # s per parallel run handed to the workers (wake-up + join)
    "fmnist_regions": 42,                  # parallel runs per step, fmnist-small, 256 images (bench_train --profile)
    "koch_regions": 55,                    # the same, Koch, 32 images
    # [mining] pool = classes (bench/bench_mining_classes): per anchor class
    # and step, the copy of its pool and one loss call on it, beyond the
    # mining itself (an assumption until measured in a quiet window).
    "classes_per_class": 10e-6,
}

FMNIST_PARAMS = 330944     # conv1 832 + conv2 51264 + fc1 262400 + fc2 16448
KOCH_PARAMS = 38951745     # conv 6464 + 401536 + 262272 + 524544, fc1 37752832, head 4097
BUCKET_FLOATS = 64000      # [dist] bucket_kfloats = 64 (the default)
NETWORKS = [("10 Gb/s", 10e9 / 8, 5e-6), ("100 Gb/s", 100e9 / 8, 2e-6)]
RANKS = [8, 16, 32, 64, 128, 256, 512, 1024]


# ---- measured -------------------------------------------------------------------

def read_timing(path, warm):
    """Rows of a timing.csv after the warm-up steps, as dicts of floats."""
    with open(path, newline="") as f:
        rows = [{k: float(v) for k, v in r.items()} for r in csv.DictReader(f)]
    return rows[min(warm, len(rows) // 2):]  # short (Koch) runs keep half


def pct(xs, q):
    """The q-quantile (0..1) of xs, linear interpolation."""
    s = sorted(xs)
    if not s:
        return float("nan")
    i = q * (len(s) - 1)
    lo = int(math.floor(i))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (i - lo)


def run_summary(rows, images_per_rank):
    step = [r["step_s"] for r in rows]
    tot = sum(step)
    comp = [(r["forward_s"] + r["backward_s"]) / images_per_rank for r in rows]
    return {
        "steps": len(rows),
        "step_median": statistics.median(step),
        "step_p10": pct(step, 0.1),
        "compute_per_image_median": statistics.median(comp),
        "compute_per_image_p10": pct(comp, 0.1),
        "optimizer_median": statistics.median(r["optimizer_s"] for r in rows),
        "step_cv": statistics.pstdev(step) / statistics.mean(step),
        "phase_median": {k: statistics.median(r[k] for r in rows) for k in rows[0] if k.endswith("_s")},
        "share": {k: sum(r[k] for r in rows) / tot for k in
                  ("data_s", "forward_s", "imbalance_s", "exchange_mining_s", "backward_s", "allreduce_wait_s", "optimizer_s")},
    }


def indep_summary(runs2, images_per_rank):
    """Two independent 1-rank runs at once, steps paired by index: the
    per-step max is the step a 2-rank job with free communication would
    take; the per-step mean is one rank's own pace with both cores busy."""
    n = min(len(x) for x in runs2)
    a, b = runs2[0][:n], runs2[1][:n]
    mx = [max(x["step_s"], y["step_s"]) for x, y in zip(a, b)]
    mean = [0.5 * (x["step_s"] + y["step_s"]) for x, y in zip(a, b)]
    s = run_summary(a + b, images_per_rank)
    s.update({"steps": n, "step_median": statistics.median(mx), "step_p10": pct(mx, 0.1),
              "indep_median": statistics.median(mean), "indep_p10": pct(mean, 0.1)})
    return s


def parse_bench(out):
    """Key figures of bench_allreduce.txt and bench_step_comm.txt, if present."""
    b = {}
    p = os.path.join(out, "bench_allreduce.txt")
    if os.path.exists(p):
        txt = open(p).read()
        m = re.search(r"latency, 8 bytes: ([0-9.]+) us", txt)
        if m:
            b["shm_latency"] = float(m.group(1)) * 1e-6
        for line in txt.splitlines():
            f = line.split()
            if len(f) == 5 and f[0] == "1048576":
                b["shm_bandwidth"] = float(f[3]) * 1e9
    p = os.path.join(out, "bench_step_comm.txt")
    if os.path.exists(p):
        solo = []
        for line in open(p):
            f = line.split()
            if not f:
                continue
            is_solo = f[0] == "solo"
            if is_solo:
                f = f[1:]
            kv = dict(x.split("=", 1) for x in f[1:] if "=" in x)
            vals = {f[i]: float(f[i + 1]) for i in range(len(f) - 1) if f[i] in ("min", "median", "cpu_min")}
            if f[0] == "mining_batch_all" and is_solo:
                solo.append((int(kv["N"]), int(kv["Na"]), vals["cpu_min"]))
            elif f[0] == "mining_batch_all":
                b.setdefault("mining_2ranks", []).append((int(kv["N"]), vals["cpu_min"]))
            elif not is_solo and "min" in vals:
                name = f[0] + ("_bucket" + kv["bucket"] if "bucket" in kv else "")
                b[name] = vals["min"]
        if solo:  # least squares through the origin, t = c Na N, N >= 1024
            pts = [(na * n, t) for n, na, t in solo if n >= 1024] or [(na * n, t) for n, na, t in solo]
            b["mining_per_anchor_row"] = sum(x * t for x, t in pts) / sum(x * x for x, _ in pts)
            b["mining_solo"] = [(n, t) for n, _, t in solo]
    return b


def cmd_measured(args):
    out = args.out
    runs = list(csv.DictReader(open(os.path.join(out, "runs.csv"), newline="")))
    per = {}  # (name, bind) -> list of (rep, summary)
    loads = []
    for r in runs:
        rdir = os.path.join(out, "runs", "%s-%s-%s" % (r["name"], r["bind"], r["rep"]))
        paths = ([os.path.join(rdir, "r%d" % k, "timing.csv") for k in (0, 1)] if r["name"] == "2indep"
                 else [os.path.join(rdir, "timing.csv")])
        if r["status"] != "0" or not all(os.path.exists(x) for x in paths):
            print("skipped failed run %s %s %s" % (r["name"], r["bind"], r["rep"]))
            continue
        if r["name"] == "2indep":
            s = indep_summary([read_timing(x, args.warm) for x in paths], int(r["images_per_rank"]))
        else:
            rows = read_timing(path=paths[0], warm=args.warm)
            if len(rows) < 2:
                continue
            s = run_summary(rows, int(r["images_per_rank"]))
        s["load"] = float(r["load_before"])
        loads.append(s["load"])
        per.setdefault((r["name"], r["bind"]), []).append((r["rep"], s))

    res = {"configs": {}, "ratios": {}, "loads": loads}
    binds = sorted({b for _, b in per}, key=lambda x: (x != "core", x))
    for (name, bind), lst in per.items():
        ss = [s for _, s in lst]
        res["configs"]["%s/%s" % (name, bind)] = {
            "runs": len(ss),
            "step_median": statistics.median(s["step_median"] for s in ss),
            "step_p10": statistics.median(s["step_p10"] for s in ss),
            "compute_per_image_median": statistics.median(s["compute_per_image_median"] for s in ss),
            "compute_per_image_p10": min(s["compute_per_image_p10"] for s in ss),
            "optimizer_median": statistics.median(s["optimizer_median"] for s in ss),
            "xm_share": statistics.median(s["share"]["exchange_mining_s"] for s in ss),
            "ar_share": statistics.median(s["share"]["allreduce_wait_s"] for s in ss),
            "data_share": statistics.median(s["share"]["data_s"] for s in ss),
            "load": statistics.median(s["load"] for s in ss),
            "indep_median": statistics.median(s.get("indep_median", s["step_median"]) for s in ss),
            "step_cv": statistics.median(s["step_cv"] for s in ss),
            "phase_median": {k: statistics.median(s["phase_median"][k] for s in ss) for k in ss[0]["phase_median"]},
        }

    def ratio(base, other, factor, key):
        """Median over rounds of base/(factor other), rounds paired by rep."""
        b = dict(per.get(base, []))
        o = dict(per.get(other, []))
        xs = [b[k].get(key, b[k]["step_median"]) / (factor * o[k].get(key, o[k]["step_median"])) for k in b if k in o]
        return statistics.median(xs) if xs else float("nan"), xs

    print("Measured on this machine (%d runs; 1-minute load average during the runs: median %.1f, range %.1f-%.1f)"
          % (sum(len(v) for v in per.values()), statistics.median(loads), min(loads), max(loads)))
    print("step = median over rounds of each run's median step time; p10 = 10th percentile of the steps"
          " (the least-disturbed ones)")
    hdr = "%-18s %5s %9s %9s %9s %10s %8s %8s %7s" % ("config", "runs", "step_ms", "p10_ms", "img/s",
                                                       "fwd+bwd/img", "xchg+mine", "ar_wait", "load")
    print(hdr)
    print("-" * len(hdr))
    order = ["1r", "2weak", "2strong", "2indep", "koch1r", "koch2weak"]
    glob_img = {"1r": 256, "2weak": 512, "2strong": 256, "2indep": 512}
    for bind in binds:
        for name in order:
            c = res["configs"].get("%s/%s" % (name, bind))
            if not c:
                continue
            imgs = glob_img.get(name)
            if imgs is None:
                r0 = [r for r in runs if r["name"] == name][0]
                imgs = int(r0["images_per_rank"]) * int(r0["np"])
            c["images_per_s"] = imgs / c["step_median"]
            print("%-18s %5d %9.1f %9.1f %9.0f %8.3f ms %7.2f%% %7.2f%% %7.1f" % (
                name + "/" + bind, c["runs"], 1e3 * c["step_median"], 1e3 * c["step_p10"], c["images_per_s"],
                1e3 * c["compute_per_image_median"], 100 * c["xm_share"], 100 * c["ar_share"], c["load"]))
    print()
    print("Median ms per step by phase (median over rounds of each run's median; the phases' medians need not add up"
          " to the step's):")
    cols = ["data_s", "forward_s", "imbalance_s", "exchange_mining_s", "backward_s", "allreduce_wait_s", "optimizer_s", "step_s"]
    print("%-18s" % "config" + "".join(" %10s" % c[:-2].replace("exchange_mining", "xchg+mine")
                                       .replace("allreduce_wait", "ar_wait") for c in cols))
    for bind in binds:
        for name in order:
            c = res["configs"].get("%s/%s" % (name, bind))
            if c:
                print("%-18s" % (name + "/" + bind) + "".join(" %10.1f" % (1e3 * c["phase_median"][k]) for k in cols))
    print()
    print("Efficiencies (ratios within each round of alternating runs, median over rounds; [per round]):")
    for bind in binds:
        for label, base, other, f, key in [
                ("weak   (T1 / T2, 256 img/rank)", "1r", "2weak", 1, "step_median"),
                ("weak, p10 steps", "1r", "2weak", 1, "step_p10"),
                ("strong (T1 / 2 T2, 256 global)", "1r", "2strong", 2, "step_median"),
                ("strong, p10 steps", "1r", "2strong", 2, "step_p10"),
                ("control: T1 / max of 2 indep.", "1r", "2indep", 1, "step_median"),
                ("  both cores busy: T1 / T_indep", "1r", "2indep", 1, "indep_median"),
                ("  trainer: max of 2 indep. / T2", "2indep", "2weak", 1, "step_median"),
                ("Koch weak (T1 / T2)", "koch1r", "koch2weak", 1, "step_median"),
                ("compute/img 1r vs 2weak", "1r", "2weak", 1, "compute_per_image_median")]:
            if (base, bind) not in per or (other, bind) not in per:
                continue
            m, xs = ratio((base, bind), (other, bind), f, key)
            res["ratios"]["%s|%s" % (label, bind)] = m
            print("  %-34s bind=%-4s %6.1f%%   [%s]" % (label, bind, 100 * m, " ".join("%.1f" % (100 * x) for x in xs)))
    print("  (compute/img: fwd+bwd time per image at 1 rank / at 2 ranks; below 100% = the same work runs slower"
          " when both vCPUs are busy)")
    print("  (control: 2indep = two independent 1-rank runs at once, steps paired; its per-step max is a 2-rank"
          " step with free communication, so weak = control x trainer)")
    # Images per CPU-second of the whole job (user + sys of mpirun and its
    # ranks, start-up included): on a dedicated machine this ratio equals the
    # weak efficiency; on a loaded one it does not charge the job for the
    # time other processes held the cores, but does charge MPI's busy waiting.
    cpu = {}
    for r in runs:
        if r["status"] == "0" and r["cpu_s"] and r["name"] != "2indep":
            steps = len(read_timing(os.path.join(out, "runs", "%s-%s-%s" % (r["name"], r["bind"], r["rep"]),
                                                 "timing.csv"), 0))
            imgs = int(r["images_per_rank"]) * int(r["np"]) * steps
            cpu.setdefault((r["name"], r["bind"]), {})[r["rep"]] = imgs / float(r["cpu_s"])
    for bind in binds:
        for label, base, other in [("weak, images per CPU-second", "1r", "2weak"),
                                   ("strong, images per CPU-second", "1r", "2strong"),
                                   ("Koch weak, images per CPU-second", "koch1r", "koch2weak")]:
            b, o = cpu.get((base, bind), {}), cpu.get((other, bind), {})
            xs = [o[k] / b[k] for k in b if k in o]
            if xs:
                res["ratios"]["%s|%s" % (label, bind)] = statistics.median(xs)
                print("  %-34s bind=%-4s %6.1f%%   [%s]" % (label, bind, 100 * statistics.median(xs),
                                                           " ".join("%.1f" % (100 * x) for x in xs)))
    print("  (per CPU-second: the job's throughput per CPU-second it got, 2 ranks / 1 rank; MPI's busy waiting"
          " counts as work)")

    bench = parse_bench(out)
    res["bench"] = {k: v for k, v in bench.items()}
    if bench:
        print()
        print("Benchmarks (2 ranks, shared memory): allreduce latency %.2f us, bus bandwidth at 1 MiB %.2f GB/s" % (
            1e6 * bench.get("shm_latency", float("nan")), 1e-9 * bench.get("shm_bandwidth", float("nan"))))
        for k in sorted(bench):
            if k.startswith(("allgather", "reduce_scatter", "allreduce_loss", "gradsync")):
                print("  %-44s %10.3f ms (min)" % (k, 1e3 * bench[k]))
        if "mining_per_anchor_row" in bench:
            print("  global batch-all mining, one rank alone: %.1f ns per anchor per pool row (CPU time, fit N >= 1024)"
                  % (1e9 * bench["mining_per_anchor_row"]))
        if "mining_2ranks" in bench and "mining_solo" in bench:
            solo = dict(bench["mining_solo"])
            r = [t / solo[n] for n, t in bench["mining_2ranks"] if n in solo]
            if r:
                print("  the same mining on both vCPUs at once costs %.2fx the CPU time of one alone (median over N)"
                      % statistics.median(r))
                res["bench"]["smt_slowdown"] = statistics.median(r)

    # The model's inputs: the least-disturbed (10th percentile) compute of
    # the 1-rank runs: the figure a dedicated core gives, and the one that
    # makes the predicted efficiency the most pessimistic (less compute to
    # hide communication behind).
    inp = dict(DEFAULTS)
    one = [c for k, c in res["configs"].items() if k.startswith("1r/")]
    if one:
        inp["fmnist_compute_per_image"] = min(c["compute_per_image_p10"] for c in one)
        inp["fmnist_optimizer_per_param"] = min(c["optimizer_median"] for c in one) / FMNIST_PARAMS
    kone = [c for k, c in res["configs"].items() if k.startswith("koch1r/")]
    if kone:
        inp["koch_compute_per_image"] = min(c["compute_per_image_p10"] for c in kone)
        inp["koch_optimizer_per_param"] = min(c["optimizer_median"] for c in kone) / KOCH_PARAMS
    if one:
        inp["step_cv_1rank"] = statistics.median(c["step_cv"] for c in one)
    for k in ("mining_per_anchor_row", "shm_latency", "shm_bandwidth"):
        if k in bench:
            inp[k] = bench[k]
    res["model_inputs"] = inp
    with open(os.path.join(out, "measured.json"), "w") as f:
        json.dump(res, f, indent=1, sort_keys=True)
    print()
    print("model inputs (written to %s):" % os.path.join(out, "measured.json"))
    for k in sorted(inp):
        print("  %-28s %.4g" % (k, inp[k]))


# ---- the model ---------------------------------------------------------------------

def lg(p):
    return math.ceil(math.log2(p)) if p > 1 else 0


def allreduce(n, p, a, bw, algo):
    """Seconds for an allreduce of n bytes on p ranks (Hockney: a + bytes/bw
    per message). ring: 2(p-1) a + 2 (p-1)/p n / bw; rabenseifner (reduce-
    scatter by recursive halving + allgather by recursive doubling):
    2 log2 p a + 2 (p-1)/p n / bw; recursive doubling (small messages):
    log2 p (a + n / bw). 'best' takes the cheapest, as a tuned MPI chooses."""
    if p == 1:
        return 0.0
    ring = 2 * (p - 1) * a + 2 * (p - 1) / p * n / bw
    rab = 2 * lg(p) * a + 2 * (p - 1) / p * n / bw
    rd = lg(p) * (a + n / bw)
    return {"ring": ring, "rabenseifner": rab, "best": min(ring, rab, rd)}[algo]


def allgather(n_total, p, a, bw):
    """Recursive doubling (ring has the same bandwidth term, more latency)."""
    return 0.0 if p == 1 else lg(p) * a + (p - 1) / p * n_total / bw


def reduce_scatter(n_total, p, a, bw):
    """Recursive halving; the additions are counted in pool_memory."""
    return 0.0 if p == 1 else lg(p) * a + (p - 1) / p * n_total / bw


def buckets(nparams, bucket):
    full, rest = divmod(nparams, bucket)
    return [bucket] * full + ([rest] if rest else [])


def step_time(m, p, a, bw, inp, args):
    """Seconds per step of model m on p ranks; a dict of the parts."""
    sp = args.rank_speedup
    B = m["images_per_rank"]
    comp = (B * inp[m["cpi"]] + m["params"] * inp[m["opt"]]) / sp
    bwd = comp * m["bwd_fraction"]
    mine = xchg = pool = 0.0
    if m["mining"] != "none":
        N = m["anchors"] * (p if m["mining"] == "global" else 1)
        mine = inp["mining_per_anchor_row"] * m["anchors"] * N / sp
        if m["mining"] == "global" and p > 1:
            D = m["D"]
            xchg = (allgather(N * D * 4, p, a, bw) + allgather(N * 4, p, a, bw)
                    + reduce_scatter(N * D * 4, p, a, bw))
            # memset + scale of the (N, D) pool gradient and the reduction's
            # additions: 3 passes at the assumed memory bandwidth.
            pool = 3 * N * D * 4 / args.mem_bw / sp
    # Scalars every step: loss statistics (5 doubles) and the stop flag.
    scal = allreduce(40, p, a, bw, args.allreduce) + allreduce(4, p, a, bw, args.allreduce)
    bl = buckets(m["params"], m["bucket"])
    ar = sum(allreduce(4 * n, p, a, bw, args.allreduce) for n in bl)
    # Best case overlap: everything but the last bucket (the first layers,
    # final last) hides behind the backward pass.
    ar_ovl = max(allreduce(4 * bl[-1], p, a, bw, args.allreduce), ar - bwd)
    # Stragglers: every step waits for the slowest of p ranks. With per-rank
    # step times normal with coefficient of variation cv, the expected max
    # exceeds the mean by about cv sqrt(2 ln p) (0 unless --jitter-cv).
    if p > 1 and args.jitter_cv > 0:
        comp *= 1 + args.jitter_cv * math.sqrt(2 * math.log(p))
    return {"comp": comp, "mine": mine + pool, "xchg": xchg + scal, "ar": ar, "ar_ovl": ar_ovl, "nb": len(bl)}


PERF_SCENARIOS = {"triplet, hybrid:": "thread_eff", "Koch 105x105": "koch_thread_eff"}
PERF_CONTROL = "ours 2 x 1 rank x 1 thread, indep."


def perf_thread_eff(path):
    """The thread efficiencies in the output of bench/perf.sh (or perf.py)
    with its hybrid scenarios: the ratio column of the two-core limit's row
    (median over rounds of 1 rank x 2 threads / two independent 1-thread
    processes) in the report of each scenario. {} if none is there."""
    found, key = {}, None
    for line in open(path):
        if not line.startswith(" "):
            key = next((k for t, k in PERF_SCENARIOS.items() if line.lstrip("= ").startswith(t)), None)
        elif key and line.strip().startswith(PERF_CONTROL):
            f = line.strip()[len(PERF_CONTROL):].split()
            if len(f) >= 2 and not line.strip().startswith("round"):
                found[key] = float(f[1])
    return found


def model_inputs(args):
    """DEFAULTS, then measured.json's inputs (--measured), then the thread
    efficiencies of a perf.sh output (--perf, hybrid only), then --set
    KEY=VALUE."""
    inp = dict(DEFAULTS)
    src = "built-in defaults (measured when the model was written)"
    if args.measured:
        inp.update(json.load(open(args.measured))["model_inputs"])
        src = args.measured
    if getattr(args, "perf", None):
        eff = perf_thread_eff(args.perf)
        if "thread_eff" not in eff:
            sys.exit("scaling_model: --perf %s: no '%s' row under a 'triplet, hybrid' report (run bench/perf.sh"
                     " --only hybrid and save its output)" % (args.perf, PERF_CONTROL))
        eff.setdefault("koch_thread_eff", eff["thread_eff"])
        inp.update(eff)
        src += ", thread efficiency from %s" % args.perf
    for kv in args.set or []:
        k, v = kv.split("=", 1)
        if k not in inp:
            sys.exit("scaling_model: --set %s: unknown input (one of %s)" % (k, ", ".join(sorted(inp))))
        inp[k] = float(v)
    return inp, src


def cmd_predict(args):
    inp, src = model_inputs(args)
    models = [
        {"name": "fmnist-small, global batch-all mining", "params": FMNIST_PARAMS, "images_per_rank": 256,
         "anchors": 256, "D": 64, "mining": "global", "cpi": "fmnist_compute_per_image",
         "opt": "fmnist_optimizer_per_param", "bwd_fraction": 0.6, "bucket": args.bucket or BUCKET_FLOATS},
        {"name": "fmnist-small, local mining (scope = local)", "params": FMNIST_PARAMS, "images_per_rank": 256,
         "anchors": 256, "D": 64, "mining": "local", "cpi": "fmnist_compute_per_image",
         "opt": "fmnist_optimizer_per_param", "bwd_fraction": 0.6, "bucket": args.bucket or BUCKET_FLOATS},
        {"name": "Koch 105x105, 128 pairs/rank", "params": KOCH_PARAMS, "images_per_rank": 256, "anchors": 0,
         "D": 4096, "mining": "none", "cpi": "koch_compute_per_image", "opt": "koch_optimizer_per_param",
         "bwd_fraction": 0.6, "bucket": args.bucket or BUCKET_FLOATS},
        {"name": "Koch 105x105, 128 pairs/rank, bucket_kfloats = 4000", "params": KOCH_PARAMS,
         "images_per_rank": 256, "anchors": 0, "D": 4096, "mining": "none", "cpi": "koch_compute_per_image",
         "opt": "koch_optimizer_per_param", "bwd_fraction": 0.6, "bucket": 4000000},
    ]
    nets = [(n, bw * args.link_efficiency, a) for n, bw, a in NETWORKS]
    print("Scaling model, weak scaling (fixed images per rank), one rank = one core as measured%s" %
          ("" if args.rank_speedup == 1 else ", ranks %gx faster than measured" % args.rank_speedup))
    print("inputs from %s:" % src)
    print("  fmnist fwd+bwd %.3f ms/image, Koch fwd+bwd %.1f ms/image, mining %.1f ns/(anchor x pool row),"
          " optimizer %.2f / %.2f ns/param" % (
              1e3 * inp["fmnist_compute_per_image"], 1e3 * inp["koch_compute_per_image"],
              1e9 * inp["mining_per_anchor_row"], 1e9 * inp["fmnist_optimizer_per_param"],
              1e9 * inp["koch_optimizer_per_param"]))
    print("  networks: %s (x %.2f of line rate); allreduce: %s; memory bandwidth %.0f GB/s" % (
        ", ".join("%s latency %g us" % (n, a * 1e6) for n, _, a in NETWORKS), args.link_efficiency,
        args.allreduce, args.mem_bw / 1e9))
    if args.jitter_cv > 0:
        print("  stragglers: compute x (1 + %.3f sqrt(2 ln p))" % args.jitter_cv)
    print("  eff = T(1)/T(p) with the allreduce fully exposed (no overlap); eff_ovl = with all but the last bucket"
          " hidden behind backward")
    for m in models:
        base = step_time(m, 1, 0, 1, inp, args)
        t1 = base["comp"] + base["mine"]
        print()
        print("%s: %d params, %d buckets of <= %d floats, T(1) = %.1f ms" % (
            m["name"], m["params"], base["nb"], m["bucket"], 1e3 * t1))
        hdr = "%-9s %6s %10s %10s %10s %10s %7s %7s" % ("network", "ranks", "compute_ms", "mining_ms", "exchange_ms",
                                                        "allred_ms", "eff", "eff_ovl")
        print(hdr)
        for net, bw, a in nets:
            for p in RANKS:
                s = step_time(m, p, a, bw, inp, args)
                tp = s["comp"] + s["mine"] + s["xchg"] + s["ar"]
                to = s["comp"] + s["mine"] + s["xchg"] + s["ar_ovl"]
                print("%-9s %6d %10.1f %10.1f %10.2f %10.2f %6.1f%% %6.1f%%" % (
                    net, p, 1e3 * s["comp"], 1e3 * s["mine"], 1e3 * s["xchg"], 1e3 * s["ar"],
                    100 * t1 / tp, 100 * t1 / to))
    # Faster ranks: compute, mining and the optimizer S times faster (a
    # multi-core or GPU rank), the network unchanged.
    print()
    print("Faster ranks (compute, mining and optimizer divided by S; eff with the allreduce exposed):")
    hdr = "%-52s %5s" % ("model", "S") + "".join(" %9s" % ("%s p=%d" % (n.split()[0] + "G", p))
                                                 for n, _, _ in nets for p in (64, 1024))
    print(hdr)
    keep = args.rank_speedup
    for m in models:
        for S in (1, 10, 100):
            args.rank_speedup = S
            b1 = step_time(m, 1, 0, 1, inp, args)
            t1 = b1["comp"] + b1["mine"]
            cells = []
            for net, bw, a in nets:
                for p in (64, 1024):
                    s = step_time(m, p, a, bw, inp, args)
                    cells.append(" %8.1f%%" % (100 * t1 / (s["comp"] + s["mine"] + s["xchg"] + s["ar"])))
            print("%-52s %5d%s" % (m["name"], S, "".join(cells)))
    args.rank_speedup = keep

    # The model against this machine: p = 2 on shared memory.
    print()
    m = models[0]
    s = step_time(m, 2, inp["shm_latency"], inp["shm_bandwidth"], inp, args)
    b1 = step_time(m, 1, 0, 1, inp, args)
    t1 = b1["comp"] + b1["mine"]
    t2 = s["comp"] + s["mine"] + s["xchg"] + s["ar"]
    print("check, this machine (shared memory, latency %.2f us, %.1f GB/s): fmnist-small global mining at p = 2:"
          " predicted weak efficiency %.1f%%, exchange + mining + allreduce %.2f%% of the step" % (
              1e6 * inp["shm_latency"], 1e-9 * inp["shm_bandwidth"], 100 * t1 / t2,
              100 * (s["mine"] + s["xchg"] + s["ar"]) / t2))


# ---- the hybrid layout: one rank per node, a thread per core -------------------------

HYB_NODES = [8, 16, 32, 64, 128, 256, 512, 1024]


def flat_allreduce(n, p, share, a, bw):
    """Allreduce of n bytes over p ranks, `share` of them per node on one
    NIC, with node-contiguous ranks (flat MPI). Ring: one link per node
    crosses the NIC, 2(p-1) a + 2(p-1)/p n / bw; the logarithmic algorithms
    (Rabenseifner, recursive doubling) exchange across nodes from every rank
    at once: the NIC's bandwidth is shared by the node's ranks. The cheapest."""
    if p == 1:
        return 0.0
    ring = 2 * (p - 1) * a + 2 * (p - 1) / p * n / bw
    return min(ring, allreduce(n, p, a, bw / share, "best"))


def flat_allgather(n_total, p, share, a, bw):
    """The same for an allgather (or reduce-scatter) of n_total bytes."""
    if p == 1:
        return 0.0
    return min((p - 1) * a + (p - 1) / p * n_total / bw, allgather(n_total, p, a, bw / share))


def hybrid_step(m, nodes, cores, per_node, a, bw, inp, args):
    """Seconds per step at a fixed global batch on `nodes` nodes of `cores`
    cores: per_node = 0 for one rank per core (flat MPI, the node's ranks
    share its NIC; with args.hier a node-aware MPI reduces inside the node
    first), 1 for one rank per node with `cores` threads. None when a rank
    would get less than one item of the batch. Returns (seconds, images per
    rank, threads used)."""
    G, item = args.global_batch, m["per_item"]
    p = nodes if per_node else nodes * cores
    if G // item < p:
        return None
    b = G / p  # images per rank
    T = cores if per_node else 1
    t_img, t_opt, P = inp[m["cpi"]], inp[m["opt"]], m["params"]
    share = 1 if per_node else cores
    # Image-level parallelism only (conservative: the weight-gradient tiles
    # and GEMM blocks split further): min(T, b) threads at thread_eff.
    used = min(T, b) if per_node else 1
    eff = inp[m["teff"]] if used > 1 else 1.0
    comp = b * t_img / (used * eff)
    # Every rank applies the whole update; memory-bound: threads help up to
    # the node's bandwidth.
    comp += P * t_opt / (min(T, args.node_bw_cores) if per_node else 1)
    if per_node:
        comp += inp["region_cost"] * inp[m["regions"]]
    mine = xchg = 0.0
    if m["mining"] != "none":
        N = G if m["mining"] == "global" else b
        mine = inp["mining_per_anchor_row"] * b * N
        if per_node:  # anchor rows in chunks of 8 over the threads
            mine /= min(T, max(1.0, b / 8)) * eff
        if m["mining"] == "global" and p > 1:
            D = m["D"]
            pool = 2 * N * D * 4 + N * 4  # embeddings and labels in, dE out
            if per_node or not args.hier:
                xchg = flat_allgather(pool, p, share, a, bw)
            else:  # gather to one rank per node, exchange between nodes, share in memory
                xchg = flat_allgather(pool, nodes, 1, a, bw) + 2 * pool / args.mem_bw
    scal = 2 * allreduce(40, p, a, bw, "best")  # loss statistics and the stop flag
    bl = buckets(P, m["bucket"])
    if per_node or not args.hier:
        ar = sum(flat_allreduce(4 * n, p, share, a, bw) for n in bl)
    else:  # node-aware: reduce into one rank per node, allreduce over nodes, broadcast back
        ar = sum(flat_allreduce(4 * n, nodes, 1, a, bw) for n in bl) + 2 * 4 * P / args.mem_bw
    return comp + mine + xchg + scal + ar, b, used


def hybrid_markdown(models, nets, inp, args):
    """The tables of docs/scaling.md: per model, step ms and efficiency of a
    rank per core and of a rank per node, on both networks."""
    G, cores = args.global_batch, args.cores
    for m in models:
        ideal1 = G * inp[m["cpi"]] + m["params"] * inp[m["opt"]]
        if m["mining"] == "global":
            ideal1 += inp["mining_per_anchor_row"] * G * G
        print()
        print("%s, global batch %d, ms per step (efficiency):" % (m["name"], G))
        print()
        print("| nodes | images per rank: per core / per node | " + " | ".join(
            "%s: rank per core | rank per node | speed-up" % net for net, _, _ in nets) + " |")
        print("|" + "---:|" * (2 + 3 * len(nets)))
        for n in HYB_NODES:
            ideal = ideal1 / (n * cores)
            cells = []
            A0 = hybrid_step(m, n, cores, 0, 0, 1, inp, args)
            B0 = hybrid_step(m, n, cores, 1, 0, 1, inp, args)
            imgs = "%s / %g" % ("%g" % A0[1] if A0 else "-", B0[1])
            for net, bw, a in nets:
                A = hybrid_step(m, n, cores, 0, a, bw, inp, args)
                B = hybrid_step(m, n, cores, 1, a, bw, inp, args)
                cells.append(("%.1f (%.1f %%)" % (1e3 * A[0], 100 * ideal / A[0])) if A else "-")
                cells.append("%.1f (%.1f %%)" % (1e3 * B[0], 100 * ideal / B[0]))
                cells.append("%.1fx" % (A[0] / B[0]) if A else "-")
            print("| %d | %s | %s |" % (n, imgs, " | ".join(cells)))


def cmd_hybrid(args):
    inp, src = model_inputs(args)
    G, cores = args.global_batch, args.cores
    models = [
        {"name": "fmnist-small, global batch-all mining", "params": FMNIST_PARAMS, "per_item": 1, "D": 64,
         "mining": "global", "cpi": "fmnist_compute_per_image", "opt": "fmnist_optimizer_per_param",
         "regions": "fmnist_regions", "teff": "thread_eff", "bucket": BUCKET_FLOATS},
        {"name": "fmnist-small, local mining", "params": FMNIST_PARAMS, "per_item": 1, "D": 64, "mining": "local",
         "cpi": "fmnist_compute_per_image", "opt": "fmnist_optimizer_per_param", "regions": "fmnist_regions",
         "teff": "thread_eff", "bucket": BUCKET_FLOATS},
        {"name": "Koch 105x105 (pairs)", "params": KOCH_PARAMS, "per_item": 2, "D": 4096, "mining": "none",
         "cpi": "koch_compute_per_image", "opt": "koch_optimizer_per_param", "regions": "koch_regions",
         "teff": "koch_thread_eff", "bucket": BUCKET_FLOATS},
    ]
    print("Hybrid layout: fixed global batch %d images, nodes of %d cores; one rank per core (flat MPI%s) against"
          " one rank per node x %d threads" % (G, cores, ", node-aware" if args.hier else "", cores))
    print("inputs from %s: thread efficiency %.2f (Koch %.2f), %.1f us per parallel run, memory-bound update up"
          " to %d cores" % (src, inp["thread_eff"], inp["koch_thread_eff"], 1e6 * inp["region_cost"],
                            args.node_bw_cores))
    print("eff = the work of one core (images x fwd+bwd, one update, the mining) / (nodes x cores x step time);"
          " '-' = fewer items than ranks")
    nets = [(n, bw * args.link_efficiency, a) for n, bw, a in NETWORKS]
    if args.markdown:
        hybrid_markdown(models, nets, inp, args)
        return
    rows = []
    for m in models:
        ideal1 = G * inp[m["cpi"]] + m["params"] * inp[m["opt"]]
        if m["mining"] == "global":
            ideal1 += inp["mining_per_anchor_row"] * G * G
        for net, bw, a in nets:
            print()
            print("%s, %s" % (m["name"], net))
            print("  %6s | %9s %10s %7s | %9s %7s %10s %7s | %8s" % (
                "nodes", "img/rank", "step ms", "eff", "img/rank", "threads", "step ms", "eff", "speed-up"))
            for n in HYB_NODES:
                ideal = ideal1 / (n * cores)
                A = hybrid_step(m, n, cores, 0, a, bw, inp, args)
                B = hybrid_step(m, n, cores, 1, a, bw, inp, args)
                ca = ("%9.2f %10.2f %6.1f%%" % (A[1], 1e3 * A[0], 100 * ideal / A[0])) if A else "%9s %10s %7s" % (
                    "-", "-", "-")
                cb = ("%9.1f %7.0f %10.2f %6.1f%%" % (B[1], B[2], 1e3 * B[0], 100 * ideal / B[0])) if B else "-"
                sp = "%7.2fx" % (A[0] / B[0]) if A and B else "%8s" % "-"
                print("  %6d | %s | %s | %s" % (n, ca, cb, sp))
                rows.append((m["name"], net, n, A, B))
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd")
    a = sub.add_parser("measured", help="summarise a bench/scaling.sh output directory")
    a.add_argument("out")
    a.add_argument("--warm", type=int, default=3, help="warm-up steps to leave out (default 3)")
    b = sub.add_parser("predict", help="print the model's tables")
    b.add_argument("--measured", help="measured.json written by 'measured'")
    b.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one model input")
    b.add_argument("--allreduce", choices=["best", "ring", "rabenseifner"], default="best")
    b.add_argument("--link-efficiency", type=float, default=0.9,
                   help="fraction of the line rate a large message reaches (default 0.9)")
    b.add_argument("--mem-bw", type=float, default=10e9, help="bytes/s of one core's memory passes (default 10e9)")
    b.add_argument("--rank-speedup", type=float, default=1.0,
                   help="ranks this many times faster than the measured core (e.g. a multi-core or GPU rank)")
    b.add_argument("--bucket", type=int, default=0, help="gradient bucket in floats (default 64000)")
    b.add_argument("--jitter-cv", type=float, default=0.0,
                   help="per-rank step-time coefficient of variation: steps wait for the slowest rank (default 0)")
    h = sub.add_parser("hybrid", help="one rank per node with threads against one rank per core")
    h.add_argument("--measured", help="measured.json written by 'measured'")
    h.add_argument("--perf", metavar="PERF_TXT",
                   help="the saved output of bench/perf.sh (--only hybrid,koch): thread_eff and koch_thread_eff "
                        "from its hybrid reports")
    h.add_argument("--set", action="append", metavar="KEY=VALUE", help="override one model input")
    h.add_argument("--global-batch", type=int, default=4096, help="images per global batch (default 4096)")
    h.add_argument("--cores", type=int, default=64, help="cores per node (default 64)")
    h.add_argument("--hier", action="store_true", help="one rank per core with a node-aware MPI (reduce in the node)")
    h.add_argument("--node-bw-cores", type=int, default=8,
                   help="cores whose memory bandwidth the node's equals: the update's speed-up limit (default 8)")
    h.add_argument("--link-efficiency", type=float, default=0.9,
                   help="fraction of the line rate a large message reaches (default 0.9)")
    h.add_argument("--mem-bw", type=float, default=10e9, help="bytes/s of one core's memory passes (default 10e9)")
    h.add_argument("--markdown", action="store_true", help="print the tables of docs/scaling.md")
    import scaling_strong
    scaling_strong.add_parser(sub)
    args = ap.parse_args()
    if args.cmd is None:
        ap.error("say 'measured OUT', 'predict', 'hybrid' or 'strong'")
    if args.cmd == "strong":
        scaling_strong.cmd_strong(args)
    elif args.cmd == "measured":
        cmd_measured(args)
    elif args.cmd == "hybrid":
        cmd_hybrid(args)
    else:
        cmd_predict(args)


if __name__ == "__main__":
    main()
