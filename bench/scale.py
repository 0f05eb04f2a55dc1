#!/usr/bin/env python3
"""scale: the dataset-size figures of docs/scale.md. For each (N, CLASSES)
it writes a synthetic idx pair with build/bench/gen_scale, then times
`siamese import`, `siamese inspect --verify` and a one-step `siamese train`
(configs/tiny.ini, PK p=8 k=4): the time from the start of `train` to its
first step line, and each command's peak anonymous RSS (RssAnon of
/proc/PID/status polled every 20 ms: the process's own memory, not the
mapped dataset pages). Prints one line per command and per dataset.
  usage: bench/scale.py WORKDIR N:CLASSES [N:CLASSES ...]
  e.g.   nice -n 10 bench/scale.py /tmp/scale 10000000:10 4000000:1000000
SIAMESE_BIN runs another build of siamese (default: ./siamese), e.g. to
compare a change with main's.
WORKDIR is removed dataset by dataset (the files are large: 0.8 KB per
sample for the idx file, about as much for the LMDB)."""
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S = os.environ.get("SIAMESE_BIN", os.path.join(ROOT, "siamese"))
GEN = os.path.join(ROOT, os.environ.get("SIAMESE_BUILD", "build"), "bench", "gen_scale")


def rss_anon_kb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def run(args, first_line=None):
    """Runs args; returns (seconds, seconds to the first stdout line starting
    with first_line or None, peak RssAnon in MB, stdout)."""
    t0 = time.monotonic()
    p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=dict(os.environ, OPENBLAS_NUM_THREADS="1"))
    peak = [0]

    def poll():
        while p.poll() is None:
            peak[0] = max(peak[0], rss_anon_kb(p.pid))
            time.sleep(0.02)

    th = threading.Thread(target=poll)
    th.start()
    first, out = None, []
    for line in p.stdout:
        out.append(line)
        if first_line and first is None and line.startswith(first_line):
            first = time.monotonic() - t0
    err = p.stderr.read()
    p.wait()
    th.join()
    if p.returncode:
        sys.exit(f"scale: {' '.join(args)}: exit {p.returncode}: {err.strip()[-400:]}")
    return time.monotonic() - t0, first, peak[0] / 1024, "".join(out)


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    work = sys.argv[1]
    for spec in sys.argv[2:]:
        n, classes = (int(x) for x in spec.split(":"))
        d = os.path.join(work, f"n{n}-c{classes}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        img, lab, db = os.path.join(d, "img"), os.path.join(d, "lab"), os.path.join(d, "d.lmdb")
        t, _, _, _ = run([GEN, str(n), str(classes), img, lab])
        print(f"{n} samples, {classes} classes: generated in {t:.1f} s", flush=True)
        t, _, mb, _ = run([S, "import", "--format", "idx", "--images", img, "--labels", lab, "--out", db])
        size = os.path.getsize(os.path.join(db, "data.mdb")) / 2**30
        print(f"  import: {t:.1f} s, {n / t:.0f} samples/s, peak RssAnon {mb:.0f} MB, LMDB {size:.2f} GiB",
              flush=True)
        os.remove(img)
        t, _, mb, _ = run([S, "inspect", db, "--verify"])
        print(f"  inspect --verify: {t:.1f} s, {n / t:.0f} samples/s, peak RssAnon {mb:.0f} MB", flush=True)
        sets = ["data.train=" + db, "data.test=", "run.dir=" + os.path.join(d, "run"), "train.steps=1",
                "train.log_every=1", "checkpoint.every=0", "sampler.p=8", "sampler.k=4"]
        args = [S, "train", os.path.join(ROOT, "configs", "tiny.ini")]
        for s in sets:
            args += ["--set", s]
        t, first, mb, _ = run(args, "step 1/")
        print(f"  train: first step after {first:.2f} s (whole run {t:.2f} s), peak RssAnon {mb:.0f} MB",
              flush=True)
        shutil.rmtree(d)


if __name__ == "__main__":
    main()
