#!/usr/bin/python3
"""perf: this project's training step against PyTorch, side by side. Run
through bench/perf.sh (which builds and checks the data); see there.

Every contender of a scenario is started once, warms up, then blocks on a
FIFO gate (no CPU used while waiting). The driver then runs ROUNDS rounds;
in each it opens the gate of one contender at a time (rotating the order)
for a window of STEPS steps and reads back its wall and CPU time, so the
contenders alternate under the same background load. FMA peak: bench/
fma_peak between the rounds (best of all). Reports per contender: median
img/s over the windows (wall clock), the median of the per-round ratios of
the first contender to it (paired, robust against load drift), img/s by CPU
time (the slowest process's CPU seconds: robust against other programs on
the machine, MPI busy-waiting included), GEMM GFLOP/s per core (GEMM work of
a training pass x img/s / processes), its fraction of the measured FMA peak,
and peak RSS per process (ru_maxrss)."""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLOPS_PER_IMAGE = 23175168  # fmnist-small training pass, from bench_train


class C:
    """A contender: name, command, ranks (processes), ddp (one torch process
    per rank started here), indep (`ranks` independent copies of a
    1-process command), threads per process (SIAMESE_THREADS for ours; the
    command carries torch's)."""

    def __init__(self, name, cmd, ranks=1, ddp=False, indep=False, threads=1):
        self.name, self.cmd, self.ranks, self.ddp, self.indep, self.threads = name, cmd, ranks, ddp, indep, threads


class Worker:
    """One contender: a command (one process or an mpirun job) whose rank 0
    reports on stdout; with ddp, one process per rank started here; with
    indep, `ranks` independent copies of a 1-process command, each with its
    own gate, opened together (a window's rate: all their images over the
    slowest one's time, i.e. a job whose ranks communicate for free)."""

    def __init__(self, c, tmp, env):
        name, cmd, ranks, ddp, indep = c.name, c.cmd, c.ranks, c.ddp, c.indep
        env = dict(env, SIAMESE_THREADS=str(c.threads))
        self.name, self.ranks, self.cores, self.flops = name, ranks, ranks * c.threads, None
        copies = ranks if indep else 1
        gates = [tempfile.mkdtemp(dir=tmp, prefix="gate-") for _ in range(copies)]
        fifos = ["go.0"] if indep else ["go.%d" % r for r in range(ranks)]
        for g in gates:
            for f in fifos:
                os.mkfifo(os.path.join(g, f))
        cmds = [[c.replace("@GATE@", g) for c in cmd] for g in gates]
        if ddp:
            cmds = [cmds[0] + ["--rank", str(r)] for r in range(ranks)]
        self.procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, cwd=ROOT,
                                       env=env) for c in cmds]
        self.readers = self.procs if indep else self.procs[:1]
        self.wall, self.cpu, self.rss, self.round_peak = [], [], [], []
        for p in self.readers:
            while True:
                line = self._line(p)
                if line == "ready":
                    break
                if line.startswith("flops_per_image"):
                    self.flops = float(line.split()[1])
        self.go = [open(os.path.join(g, f), "w") for g in gates for f in fifos]

    def _line(self, p):
        line = p.stdout.readline()
        if not line:
            sys.exit("perf: %s exited early (status %s)" % (self.name, p.wait()))
        return line.strip()

    def window(self, steps):
        for g in self.go:
            g.write("%d\n" % steps)
            g.flush()
        images = sec = cpu = 0.0
        for p in self.readers:
            while True:
                f = self._line(p).split()
                if f[0] == "window":
                    images += float(f[3])
                    sec, cpu = max(sec, float(f[2])), max(cpu, float(f[4]))
                    break
        self.wall.append(images / sec)
        self.cpu.append(images / cpu)

    def stop(self):
        for g in self.go:
            g.write("q\n")
            g.close()
        for p in self.procs:
            try:
                out, _ = p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            for line in out.splitlines():
                f = line.split()
                if f and f[0] == "rss":
                    self.rss.append(float(f[2]) / 1024.0)


def rate(x):
    """img/s with a decimal below 100 (Koch's network runs a few images a second)."""
    return "%.0f" % x if x >= 100 else "%.1f" % x


def fma_peak(build):
    out = subprocess.run([os.path.join(build, "bench", "fma_peak"), "5"], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[1])


def scenario(title, contenders, a, env, peak, steps=None):
    """contenders: C objects."""
    print("\n== %s" % title, flush=True)
    tmp = tempfile.mkdtemp(prefix="siamese-perf-")
    ws = [Worker(c, tmp, env) for c in contenders]
    flops = next((w.flops for w in ws if w.flops), FLOPS_PER_IMAGE)
    for w in ws:
        w.flops = w.flops or flops
    for k in range(a.rounds):
        for w in ws[k % len(ws):] + ws[:k % len(ws)]:
            w.window(steps or a.steps)
        pk = fma_peak(a.build)
        peak.append(pk)
        for w in ws:
            w.round_peak.append(pk)
        print("  round %d: %s; FMA peak %.1f GFLOP/s" % (
            k + 1, ", ".join("%s %s" % (w.name, rate(w.wall[-1])) for w in ws), pk), flush=True)
    for w in ws:
        w.stop()
    shutil.rmtree(tmp, ignore_errors=True)
    return ws


def report(title, ws, peak):
    base = ws[0]
    print("\n%s\n  (img/s: median of %d windows; ratio: median over rounds of %s / contender)" % (
        title, len(base.wall), base.name))
    print("  (% peak: of the best FMA peak of the whole run; same round: of the FMA peak measured right after\n"
          "  each round, median over rounds; per core = per rank x thread; img/s(CPU): images per CPU-second\n"
          "  of the slowest process, all its threads)")
    print("  %-34s %8s %7s %10s %12s %8s %11s %9s" % ("contender", "img/s", "ratio", "img/s(CPU)", "GFLOP/s/core",
                                                      "% peak", "same round", "RSS MB"))
    for w in ws:
        ips = statistics.median(w.wall)
        ratio = statistics.median([b / x for b, x in zip(base.wall, w.wall)])
        gf = ips * w.flops / 1e9 / w.cores
        same = statistics.median([100 * x * w.flops / 1e9 / w.cores / p
                                  for x, p in zip(w.wall, w.round_peak)])
        print("  %-34s %8s %7.2f %10s %12.1f %7.1f%% %10.1f%% %9s" % (
            w.name, rate(ips), ratio, rate(statistics.median(w.cpu)), gf, 100 * gf / peak, same,
            "/".join("%.0f" % r for r in w.rss)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--only", default="triplet,pair,2ranks,hybrid,koch")
    ap.add_argument("--no-torch-off", action="store_true", help="skip PyTorch with oneDNN off")
    ap.add_argument("--old", metavar="BENCH_TRAIN",
                    help="another build's bench_train (an older commit): the triplet and pair scenarios then "
                         "compare this build with it, window by window, instead of with PyTorch; the ratio "
                         "column is this build's rate over the other's; the hybrid and koch scenarios add its "
                         "1 rank x 2 threads and 1 rank x 1 thread (and leave PyTorch out)")
    ap.add_argument("--koch-data", help="LMDB of 105x105 images for the koch scenario (perf.sh makes one)")
    ap.add_argument("--koch-pairs", type=int, default=16, help="koch: pairs per global batch (default 16)")
    ap.add_argument("--koch-steps", type=int, default=2, help="koch: steps per window (default 2)")
    a = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    ours = [os.path.join(a.build, "bench", "bench_train"), "--gate", "@GATE@"]
    torch = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_ref.py"), "--gate", "@GATE@"]
    mpi = ["mpirun", "-np", "2", "--bind-to", "none"]
    only = a.only.split(",")
    onednn = [1] if a.no_torch_off else [1, 0]
    peak, results = [fma_peak(a.build)], []
    for recipe in ("triplet", "pair"):
        if recipe not in only:
            continue
        cfg = ["--config", "configs/fmnist-%s.ini" % recipe]
        cs = [C("ours %s" % recipe, ours + cfg)]
        if a.old:
            cs.append(C("old %s" % recipe, [a.old, "--gate", "@GATE@"] + cfg))
        for m in ([] if a.old else onednn):
            cs.append(C("torch %s oneDNN %s" % (recipe, "on" if m else "off"),
                        torch + ["--recipe", recipe, "--mkldnn", str(m)]))
        title = "%s recipe, 1 process x 1 thread, batch 256 (%s)" % (
            recipe, "PK 8 x 32, batch-all" if recipe == "triplet" else "128 pairs, BCE")
        results.append((title, scenario(title, cs, a, env, peak)))
    cfg = ["--config", "configs/fmnist-triplet.ini"]
    if "2ranks" in only:
        cs = [C("ours 2 ranks weak (512)", mpi + ours + cfg + ["--set", "sampler.k=64"], 2),
              C("ours 1 rank (256)", ours + cfg),
              C("ours 2 x 1 rank, independent", ours + cfg, 2, indep=True),
              C("ours 1 rank (512, same work)", ours + cfg + ["--set", "sampler.k=64"]),
              C("ours 2 ranks strong (256)", mpi + ours + cfg, 2)]
        for m in onednn:
            cs.append(C("torch DDP gloo x2 oneDNN %s" % ("on" if m else "off"),
                        torch + ["--recipe", "triplet", "--mkldnn", str(m), "--world", "2"], 2, ddp=True))
        title = ("triplet, 2 processes x 1 thread (mpirun -np 2 --bind-to none; global batch-all mining).\n"
                 "  weak: global PK 8 x 64 = 512, 256 images per rank; strong: global PK 8 x 32 = 256, 128 per\n"
                 "  rank; 1 rank (512): the weak run's global batch on one process (the same work); torch DDP\n"
                 "  (gloo, file:// store): 256 images per rank (PK 8 x 32 each), local mining; 2 x 1 rank,\n"
                 "  independent: two 1-rank (256) processes at once, no MPI, all their images over the slower\n"
                 "  one's time: what 2 ranks would give if the distribution cost nothing, on this machine now")
        results.append((title, scenario(title, cs, a, env, peak)))
    hybrid = [("hybrid", cfg, ["--recipe", "triplet"], None,
               "triplet, hybrid: 1 rank x 2 threads against the machine's two-core limit and 2 ranks x 1 thread,\n"
               "  all on the global batch PK 8 x 32 = 256 (the 2 ranks: 128 each, global batch-all mining).\n"
               "  Targets (ratio = 1 rank x 2 threads / contender): >= 0.95 against '2 x 1 rank x 1 thread,\n"
               "  indep.' (two 1-thread processes at once, no MPI: all their images over the slower one's time,\n"
               "  the machine's two-core limit) and >= 0.95 against '2 ranks x 1 thread'. torch: 2 intra-op\n"
               "  threads, the same model, batch and loss")]
    if a.koch_data:
        kp = a.koch_pairs
        kcfg = ["--config", "configs/koch-omniglot.ini", "--set", "data.train=" + a.koch_data, "--set",
                "sampler.batch=%d" % kp, "--warmup", "2", "--batches", "2"]
        hybrid.append(("koch", kcfg, ["--recipe", "koch", "--pairs", str(kp), "--warmup", "2", "--batches", "2"],
                       a.koch_steps,
                       "Koch 105x105 (configs/koch-omniglot.ini, random images), hybrid: 1 rank x 2 threads against\n"
                       "  the machine's two-core limit and 2 ranks x 1 thread, global batch %d pairs (%d images; the\n"
                       "  2 ranks: %d pairs each). Targets: >= 0.95 against both. torch: 2 intra-op threads" % (
                           kp, 2 * kp, kp // 2)))
    for name, c, tc, steps, title in hybrid:
        if name not in only:
            continue
        cs = [C("ours 1 rank x 2 threads", ours + c, threads=2),
              C("ours 2 x 1 rank x 1 thread, indep.", ours + c, 2, indep=True),
              C("ours 2 ranks x 1 thread", mpi + ours + c, 2),
              C("ours 1 rank x 1 thread", ours + c)]
        if a.old:
            old = [a.old, "--gate", "@GATE@"] + c
            cs += [C("old 1 rank x 2 threads", old, threads=2), C("old 1 rank x 1 thread", old)]
        for m in ([] if a.old else onednn):
            cs.append(C("torch 2 threads oneDNN %s" % ("on" if m else "off"),
                        torch + tc + ["--mkldnn", str(m), "--threads", "2"], threads=2))
        results.append((title, scenario(title, cs, a, env, peak, steps)))
    pk = max(peak)
    print("\nmeasured FMA peak (bench/fma_peak, best of %d runs): %.1f GFLOP/s per core" % (len(peak), pk))
    print("GEMM work of a training pass of fmnist-small: %.2f MFLOP per image (Koch's from bench_train)" % (
        FLOPS_PER_IMAGE / 1e6))
    for title, ws in results:
        report(title, ws, pk)


if __name__ == "__main__":
    main()
