#!/usr/bin/python3
"""perf: this project's training step against PyTorch, side by side. Run
through bench/perf.sh (which builds and checks the data); see there.

Every contender of a scenario is started once, warms up, then blocks on a
FIFO gate (no CPU used while waiting). The driver then runs ROUNDS rounds;
in each it opens the gate of one contender at a time (rotating the order)
for a window of STEPS steps and reads back its wall time, so the contenders
alternate under the same background load. FMA peak: bench/fma_peak, run
between the rounds too (best of all). Reports the median img/s over the
windows, the median of the per-round ratios (paired, robust against load
drift), GFLOP/s (GEMM work of a training pass x img/s), its fraction of the
measured FMA peak, and peak RSS per process (ru_maxrss)."""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Worker:
    """One contender: a process (or an mpirun job) behind FIFO gates."""

    def __init__(self, name, cmd, ranks, tmp, env):
        self.name, self.ranks = name, ranks
        self.gate = tempfile.mkdtemp(dir=tmp, prefix=name.replace(" ", "_") + "-")
        for r in range(ranks):
            os.mkfifo(os.path.join(self.gate, "go.%d" % r))
        cmd = [c.replace("@GATE@", self.gate) for c in cmd]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
                                  cwd=ROOT, env=env)
        self.flops = None
        self.windows, self.rss = [], []
        while True:
            line = self._line()
            if line.startswith("flops_per_image"):
                self.flops = float(line.split()[1])
            if line == "ready":
                break
        self.go = [open(os.path.join(self.gate, "go.%d" % r), "w") for r in range(ranks)]

    def _line(self):
        line = self.p.stdout.readline()
        if not line:
            sys.exit("perf: %s exited early (status %s)" % (self.name, self.p.wait()))
        return line.strip()

    def window(self, steps):
        for g in self.go:
            g.write("%d\n" % steps)
            g.flush()
        while True:
            f = self._line().split()
            if f[0] == "window":
                ips = float(f[3]) / float(f[2])
                self.windows.append(ips)
                return ips

    def stop(self):
        for g in self.go:
            g.write("q\n")
            g.close()
        for line in self.p.stdout:
            f = line.split()
            if f and f[0] == "rss":
                self.rss.append(float(f[2]) / 1024.0)
        self.p.wait()


def fma_peak(build):
    out = subprocess.run([os.path.join(build, "bench", "fma_peak"), "5"], capture_output=True, text=True,
                         check=True).stdout.split()
    return float(out[1])


def scenario(title, contenders, a, env, peak):
    """contenders: (name, command, ranks, ddp); ddp: torch processes started
    one per rank (rank 0 reports), else one command (plain or mpirun)."""
    print("\n== %s" % title, flush=True)
    tmp = tempfile.mkdtemp(prefix="siamese-perf-")
    ws = [(DdpWorker if ddp else Worker)(n, c, r, tmp, env) for n, c, r, ddp in contenders]
    for k in range(a.rounds):
        order = ws[k % len(ws):] + ws[:k % len(ws)]
        for w in order:
            w.window(a.steps)
        peak.append(fma_peak(a.build))
        print("  round %d: %s" % (k + 1, ", ".join("%s %.0f" % (w.name, w.windows[-1]) for w in ws)),
              flush=True)
    for w in ws:
        w.stop()
    return ws


def report(title, ws, base, flops, peak):
    print("\n%s (median of windows; ratio = median of per-round ratios of %s to each)" % (title, base.name))
    print("  %-28s %9s %8s %9s %8s %10s" % ("contender", "img/s", "ratio", "GFLOP/s", "% peak", "RSS MB"))
    for w in ws:
        ips = statistics.median(w.windows)
        ratio = statistics.median([b / x for b, x in zip(base.windows, w.windows)])
        gf = ips * flops / 1e9
        print("  %-28s %9.0f %8.2f %9.1f %7.1f%% %10s" % (
            w.name, ips, ratio, gf, 100 * gf / peak, "/".join("%.0f" % r for r in w.rss)))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build-bench"))
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=15)
    ap.add_argument("--only", default="triplet,pair,2ranks")
    ap.add_argument("--no-torch-off", action="store_true", help="skip PyTorch with oneDNN off")
    a = ap.parse_args()
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if os.geteuid() == 0:
        env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    ours = os.path.join(a.build, "bench", "bench_train")
    torch = ["/usr/bin/python3", os.path.join(ROOT, "bench", "torch_ref.py")]
    only = a.only.split(",")
    peak = [fma_peak(a.build)]
    results = []
    mkl = [1] if a.no_torch_off else [1, 0]
    for recipe in ("triplet", "pair"):
        if recipe not in only:
            continue
        cfg = "configs/fmnist-%s.ini" % recipe
        cs = [("ours %s" % recipe, [ours, "--config", cfg, "--gate", "@GATE@"], 1, False)]
        for m in mkl:
            cs.append(("torch %s onednn %s" % (recipe, "on" if m else "off"),
                       torch + ["--recipe", recipe, "--mkldnn", str(m), "--gate", "@GATE@"], 1, False))
        ws = scenario("%s, 1 process x 1 thread, batch 256" % recipe, cs, a, env, peak)
        results.append(("%s recipe, 1 process x 1 thread, batch 256 (P=8 x K=32 / 128 pairs)" % recipe, ws))
    if "2ranks" in only:
        cfg = "configs/fmnist-triplet.ini"
        mpi = ["mpirun", "-np", "2", "--bind-to", "none"]
        cs = [("ours triplet 2 ranks", mpi + [ours, "--config", cfg, "--set", "sampler.k=64", "--gate", "@GATE@"], 2,
               False),
              ("ours triplet 1 rank", [ours, "--config", cfg, "--gate", "@GATE@"], 1, False)]
        for m in mkl:
            cs.append(("torch DDP gloo 2 onednn %s" % ("on" if m else "off"),
                       torch + ["--recipe", "triplet", "--mkldnn", str(m), "--world", "2", "--gate", "@GATE@"], 2, True))
        ws = scenario("triplet, 2 processes x 1 thread", cs, a, env, peak)
        results.append(("triplet, 2 processes x 1 thread, 256 images per process; ours: global PK batch "
                        "P=8 x K=64 = 512, global batch-all mining; torch DDP: local P=8 x K=32 per rank, "
                        "local mining", ws))
    pk = max(peak)
    print("\nmeasured FMA peak (bench/fma_peak, best of %d runs): %.1f GFLOP/s per core" % (len(peak), pk))
    for title, ws in results:
        report(title, ws, ws[0], ws[0].flops, pk)


class DdpWorker(Worker):
    """torch DDP: two python processes; rank 0 reports."""

    def __init__(self, name, cmd, ranks, tmp, env):
        self.name, self.ranks = name, ranks
        self.gate = tempfile.mkdtemp(dir=tmp, prefix="ddp-")
        for r in range(ranks):
            os.mkfifo(os.path.join(self.gate, "go.%d" % r))
        cmd = [c.replace("@GATE@", self.gate) for c in cmd]
        self.others = [subprocess.Popen(cmd + ["--rank", str(r)], stdout=subprocess.DEVNULL,
                                        stdin=subprocess.DEVNULL, cwd=ROOT, env=env) for r in range(1, ranks)]
        self.p = subprocess.Popen(cmd + ["--rank", "0"], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                  text=True, cwd=ROOT, env=env)
        self.flops, self.windows, self.rss = None, [], []
        while self._line() != "ready":
            pass
        self.go = [open(os.path.join(self.gate, "go.%d" % r), "w") for r in range(ranks)]

    def stop(self):
        Worker.stop(self)
        for o in self.others:
            o.wait()


if __name__ == "__main__":
    main()
