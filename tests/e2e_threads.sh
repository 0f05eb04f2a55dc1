#!/usr/bin/env bash
# Threads through the command line: the thread count's rules as siamese
# version and the trainer's first line report them (SIAMESE_THREADS,
# [run] threads, SLURM_CPUS_PER_TASK, the affinity mask over the ranks
# sharing it: mpirun -np 4 --bind-to none on this machine's CPUs), bad
# values refused with one line; a run killed at 4 threads and resumed at 1
# (run.threads changed on resume, recorded in resume.log) ends bit-equal to
# an uninterrupted 2-thread run, weights, optimizer state and metrics.csv;
# the summary's per-layer times with the threads' share; eval and embed give
# the same bits at 1 and 3 threads.
set -u
cd "$(dirname "$0")/.."
S=./siamese
# The siamese of the test build, with the kill seam (tests/fixture_hooks.c), for the killed run.
K=$PWD/${SIAMESE_BUILD:-build}/siamese-test
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-threads.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset SIAMESE_THREADS SLURM_CPUS_PER_TASK
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

# ---- the count's rules, as siamese version reports them
cpus=$(python3 -c 'import os; print(len(os.sched_getaffinity(0)))') # not nproc: it obeys OMP_NUM_THREADS
v=$($S version | grep '^threads:')
check '[ "$v" = "threads: $cpus per rank ($cpus CPU$([ "$cpus" -gt 1 ] && echo s) / 1 rank); OpenBLAS runs single-threaded inside them" ]' \
  "one process takes every CPU of its mask: '$v'"
v=$(SIAMESE_THREADS=3 $S version | grep '^threads:')
check '[[ "$v" == "threads: 3 per rank (SIAMESE_THREADS)"* ]]' "SIAMESE_THREADS: '$v'"
v=$(SLURM_CPUS_PER_TASK=5 $S version | grep '^threads:')
check '[[ "$v" == "threads: 5 per rank (SLURM_CPUS_PER_TASK)"* ]]' "SLURM_CPUS_PER_TASK: '$v'"
v=$(SIAMESE_THREADS=2 SLURM_CPUS_PER_TASK=5 $S version | grep '^threads:')
check '[[ "$v" == "threads: 2 per rank (SIAMESE_THREADS)"* ]]' "SIAMESE_THREADS before SLURM_CPUS_PER_TASK: '$v'"
want=$((cpus / 4)); [ $want -lt 1 ] && want=1
v=$(mpirun -np 4 --oversubscribe --bind-to none $S version 2>&1 | grep '^threads:')
check '[[ "$v" == "threads: $want per rank ($cpus CPU"*" / 4 ranks)"* ]]' \
  "mpirun -np 4 --bind-to none: the mask's $cpus CPUs over 4 ranks, not $cpus threads each: '$v'"
SIAMESE_THREADS=0 $S version >"$T/v0" 2>"$T/v0.err"
rc=$?
check '[ $rc -eq 2 ] && [ "$(cat "$T/v0.err")" = "siamese version: SIAMESE_THREADS='"'0'"': expected a whole number of threads from 1 to 1024" ]' \
  "SIAMESE_THREADS=0 refused in one line, exit 2 ($rc): $(cat "$T/v0.err")"
SIAMESE_THREADS=0 $S train configs/tiny.ini >/dev/null 2>"$T/t0.err"
rc=$?
check '[ $rc -eq 2 ] && grep -q "SIAMESE_THREADS=.0.: expected a whole number" "$T/t0.err"' \
  "train refuses SIAMESE_THREADS=0, exit 2 ($rc): $(tail -1 "$T/t0.err")"

# ---- training: threads change no bit, also across a resume
$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/train.lmdb" --split-by sample --test-fraction 0.2 --test-out "$T/test.lmdb" --seed 3 >/dev/null
SETS=(--set data.train="$T/train.lmdb" --set data.test= --set train.steps=24 --set checkpoint.every=8
      --set conv1.filters=16 --set fc1.out=256)
SIAMESE_THREADS=2 $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/ref" >"$T/ref.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "1 rank x 2 threads (SIAMESE_THREADS)" "$T/ref.out"' \
  "2-thread reference run, its first line says so: $(head -1 "$T/ref.out")"
check 'grep -q "^per layer (rank 0, ms per step, forward + backward, share of the threads.* conv1 [0-9.]*+[0-9.]* ([0-9]*%)" "$T/ref.out"' \
  "the summary gives per-layer times and the threads' share"
SIAMESE_TEST_KILL_STEP=13 $K train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/k" --set run.threads=4 \
  >"$T/k1.out" 2>&1
rc=$?
check '[ $rc -ne 0 ] && grep -q "1 rank x 4 threads (\[run\] threads)" "$T/k1.out"' \
  "[run] threads = 4 run killed after step 13 (exit $rc)"
$S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/k" --set run.threads=1 --resume auto >"$T/k2.out" 2>&1
rc=$?
check '[ $rc -eq 0 ] && grep -q "1 rank x 1 thread (\[run\] threads)" "$T/k2.out"' "resumed with [run] threads = 1 (exit $rc)"
check 'grep -q "changed: run.threads: 4 -> 1" "$T/k/resume.log"' "resume.log records run.threads 4 -> 1"
$S inspect "$T/k/model.smpi" --compare "$T/ref/model.smpi" --tol 0 >"$T/cmp" 2>&1 && cmp -s "$T/k/metrics.csv" "$T/ref/metrics.csv"
rc=$?
check '[ $rc -eq 0 ]' "4 threads, killed, resumed at 1 thread = uninterrupted 2 threads, bit for bit: $(tr '\n' ' ' <"$T/cmp")"

# ---- eval and embed: the same bits for any thread count
for t in 1 3; do
  SIAMESE_THREADS=$t $S eval "$T/ref/model.smpi" --data "$T/test.lmdb" --pairs 500 --trials 50 --json "$T/e$t.json" >/dev/null 2>&1
  SIAMESE_THREADS=$t $S embed "$T/ref/model.smpi" --data "$T/test.lmdb" --out "$T/emb$t" >/dev/null 2>&1
done
check 'diff <(grep -v seconds "$T/e1.json") <(grep -v seconds "$T/e3.json") >/dev/null && grep -q recall_at_1 "$T/e1.json" &&
       cmp -s "$T/emb1.emb.npy" "$T/emb3.emb.npy"' "eval.json (but its time) and embeddings equal at 1 and 3 threads"
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
