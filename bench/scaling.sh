#!/usr/bin/env bash
# scaling.sh: distributed-training benchmarks of siamese-mpi on this machine,
# then the scaling model. Runs, ALTERNATING so that a noisy machine hurts all
# configurations alike (1 rank, 2 ranks weak, 2 ranks strong, 1 rank, ...):
#   1r      1 rank,  fmnist-triplet, PK 8x32  = 256 images per step
#   2weak   2 ranks, PK 8x64  = 512 global, 256 per rank (same local batch)
#   2strong 2 ranks, PK 8x32  = 256 global, 128 per rank (same global batch)
#   2indep  the control: two independent 1-rank runs of 1r at once (no MPI
#           between them); the per-step max of the two is what a 2-rank job
#           would take if it communicated for free
# for each binding asked (--bind-to core / none), then the Koch network on a
# synthetic 105x105 dataset (1 and 2 ranks, a few steps, small batch: its
# compute per image), bench_allreduce and bench_step_comm (collective and
# mining costs). Every run's timing.csv is kept under OUT/runs/; the tables
# are made by bench/scaling_model.py (measured OUT, then predict).
# Fashion-MNIST has 10 classes, so the weak 2-rank batch is 8 x 64 rather
# than 16 x 32 (global batch-all mining then has 63 positives per anchor).
#
# Usage: bench/scaling.sh [--steps N] [--reps R] [--bind core|none|both]
#                         [--out DIR] [--koch-steps N] [--koch-batch PAIRS]
#                         [--koch-reps R] [--no-koch] [--no-bench]
# Env: SIAMESE (binary, default ./siamese), BUILD (dir with bench/ binaries,
#      built if missing; default build), DATA (fmnist train LMDB, imported if
#      missing; default data/fmnist-train.lmdb), FMNIST (idx files folder).
set -euo pipefail
cd "$(dirname "$0")/.."

STEPS=30 REPS=3 BIND=both OUT=/tmp/siamese-scaling KOCH=1 KOCH_STEPS=5 KOCH_BATCH=8 KOCH_REPS=2 BENCH=1
SIAMESE=${SIAMESE:-./siamese}
BUILD=${BUILD:-build}
DATA=${DATA:-data/fmnist-train.lmdb}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
WARM=3 # warm-up steps left out of every statistic (scaling_model.py)

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    --steps) STEPS=$2; shift 2 ;;
    --reps) REPS=$2; shift 2 ;;
    --bind) BIND=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --koch-steps) KOCH_STEPS=$2; shift 2 ;;
    --koch-batch) KOCH_BATCH=$2; shift 2 ;;
    --koch-reps) KOCH_REPS=$2; shift 2 ;;
    --no-koch) KOCH=0; shift ;;
    --no-bench) BENCH=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "scaling.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
case $BIND in core) BINDS=core ;; none) BINDS=none ;; both) BINDS="core none" ;;
  *) echo "scaling.sh: --bind must be core, none or both, not '$BIND'" >&2; exit 2 ;; esac
for v in STEPS REPS KOCH_STEPS KOCH_BATCH KOCH_REPS; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "scaling.sh: ${v,,} must be a positive integer, not '${!v}'" >&2; exit 2; }
done
[ "$STEPS" -gt $((WARM + 2)) ] || { echo "scaling.sh: --steps must be > $((WARM + 2))" >&2; exit 2; }
[ -x "$SIAMESE" ] || { echo "scaling.sh: $SIAMESE not found: run 'make siamese' or set SIAMESE" >&2; exit 2; }

# One thread per rank: these runs measure ranks (bench/perf.sh's hybrid
# scenario measures threads).
export OPENBLAS_NUM_THREADS=1 SIAMESE_THREADS=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi

# A run replaces the results of an earlier one in OUT (runs.csv used to be
# appended to, which mixed two runs' steps in one table); a directory that
# holds something else is refused rather than emptied.
if [ -d "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/runs.csv" ]; then
  echo "scaling.sh: $OUT is not empty and holds no earlier scaling.sh run: choose another --out" >&2
  exit 2
fi
rm -rf "$OUT/runs" "$OUT/logs" "$OUT/runs.csv" "$OUT"/measured.* "$OUT/model.txt" "$OUT"/bench_*.txt
mkdir -p "$OUT/runs" "$OUT/logs"
if [ ! -d "$DATA" ]; then
  echo "importing Fashion-MNIST into $DATA"
  "$SIAMESE" import --format idx --out "$DATA" \
    --images "$FMNIST/train-images-idx3-ubyte.gz" --labels "$FMNIST/train-labels-idx1-ubyte.gz"
fi

# The machine is shared: keep the load next to every number.
load() { cut -d' ' -f1 /proc/loadavg; }
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "host: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
  echo "uptime at start: $(uptime)"
  echo "steps $STEPS reps $REPS binds '$BINDS' warm-up $WARM; commit $(git rev-parse --short HEAD 2>/dev/null || echo ?)"
} > "$OUT/machine.txt"
cat "$OUT/machine.txt"
echo "name,np,bind,rep,images_per_rank,load_before,load_after,wall_s,cpu_s,status" > "$OUT/runs.csv"

# run NAME NP BIND REP IMAGES_PER_RANK CONFIG [--set ...]: one training run.
run() {
  local name=$1 np=$2 bind=$3 rep=$4 ipr=$5 cfg=$6
  shift 6
  local dir="$OUT/runs/$name-$bind-$rep" l0 t0 t1 rc=0
  rm -rf "$dir"
  l0=$(load)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$OUT/logs/$name-$bind-$rep.cpu" \
    mpirun -np "$np" --bind-to "$bind" "$SIAMESE" train "$cfg" --set train.eval=0 --set checkpoint.every=0 \
    --set dist.checksum_every=0 --set "run.dir=$dir" "$@" > "$OUT/logs/$name-$bind-$rep.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  local cpu
  cpu=$(tail -n 1 "$OUT/logs/$name-$bind-$rep.cpu" | awk '{ print $1 + $2 }')
  echo "$name,$np,$bind,$rep,$ipr,$l0,$(load),$(echo "$t1 - $t0" | bc),$cpu,$rc" >> "$OUT/runs.csv"
  printf '  %-8s np=%d bind=%-4s rep %d: %s (load %s)\n' "$name" "$np" "$bind" "$rep" \
    "$(grep -m1 '^time per step' "$OUT/logs/$name-$bind-$rep.log" | sed 's/ = .*;/;/' || echo "FAILED, exit $rc")" "$l0"
  rm -f "$dir"/*.smpi
}

# run_indep BIND REP: the control. Two independent 1-rank trainings at once,
# one per core (taskset for bind core), no MPI between them: what the machine
# alone does to two ranks that must wait for each other at every step.
run_indep() {
  local bind=$1 rep=$2 dir="$OUT/runs/2indep-$1-$2" l0 t0 t1 rc=0
  rm -rf "$dir"
  mkdir -p "$dir"
  l0=$(load)
  t0=$(date +%s.%N)
  /usr/bin/time -f '%U %S' -o "$OUT/logs/2indep-$bind-$rep.cpu" bash -c '
    out=$1 bind=$2 bin=$3; shift 3
    for r in 0 1; do
      pin=(); [ "$bind" = core ] && pin=(taskset -c "$r")
      "${pin[@]}" "$bin" train "$@" --set train.eval=0 --set checkpoint.every=0 --set dist.checksum_every=0 \
        --set "run.dir=$out/r$r" > "$out/r$r.log" 2>&1 &
    done
    st=0; for j in $(jobs -p); do wait "$j" || st=1; done; exit $st' _ "$dir" "$bind" "$SIAMESE" "${FM[@]}" --set sampler.p=8 --set sampler.k=32 || rc=$?
  t1=$(date +%s.%N)
  echo "2indep,2,$bind,$rep,256,$l0,$(load),$(echo "$t1 - $t0" | bc),$(tail -n 1 "$OUT/logs/2indep-$bind-$rep.cpu" \
    | awk '{ print $1 + $2 }'),$rc" >> "$OUT/runs.csv"
  printf '  %-8s np=2 bind=%-4s rep %d: two 1-rank runs at once, exit %d (load %s)\n' 2indep "$bind" "$rep" "$rc" "$l0"
  rm -f "$dir"/r*/*.smpi
}

FM=(configs/fmnist-triplet.ini --set "data.train=$DATA" --set "train.steps=$STEPS")
echo "== fmnist-triplet: $REPS rounds of 1r / 2weak / 2strong / 2indep per binding, $STEPS steps each"
for rep in $(seq 1 "$REPS"); do
  for bind in $BINDS; do
    run 1r 1 "$bind" "$rep" 256 "${FM[@]}" --set sampler.p=8 --set sampler.k=32
    run 2weak 2 "$bind" "$rep" 256 "${FM[@]}" --set sampler.p=8 --set sampler.k=64
    run 2strong 2 "$bind" "$rep" 128 "${FM[@]}" --set sampler.p=8 --set sampler.k=32
    run_indep "$bind" "$rep"
  done
done

if [ "$KOCH" = 1 ]; then
  KDB="$OUT/koch.lmdb"
  SIAMESE=$SIAMESE bench/koch_data.sh "$KDB"
  KO=(configs/koch-omniglot.ini --set "data.train=$KDB" --set data.test= --set "train.steps=$KOCH_STEPS")
  echo "== Koch 105x105 (synthetic): $KOCH_REPS rounds of 1 rank / 2 ranks weak, $KOCH_BATCH pairs per rank, $KOCH_STEPS steps"
  kbind=${BINDS%% *}
  for rep in $(seq 1 "$KOCH_REPS"); do
    run koch1r 1 "$kbind" "$rep" $((2 * KOCH_BATCH)) "${KO[@]}" --set "sampler.batch=$KOCH_BATCH"
    run koch2weak 2 "$kbind" "$rep" $((2 * KOCH_BATCH)) "${KO[@]}" --set "sampler.batch=$((2 * KOCH_BATCH))"
  done
fi

if [ "$BENCH" = 1 ]; then
  for b in bench_allreduce bench_step_comm; do
    [ -x "$BUILD/bench/$b" ] || make -s BUILD="$BUILD" "$BUILD/bench/$b"
  done
  echo "== bench_allreduce and bench_step_comm, 2 ranks (load $(load))"
  mpirun -np 2 --bind-to "${BINDS%% *}" "$BUILD/bench/bench_allreduce" > "$OUT/bench_allreduce.txt" 2>&1
  mpirun -np 2 --bind-to "${BINDS%% *}" "$BUILD/bench/bench_step_comm" > "$OUT/bench_step_comm.txt" 2>&1
  "$BUILD/bench/bench_step_comm" --koch 0 | sed 's/^/solo /' >> "$OUT/bench_step_comm.txt"
fi
echo "uptime at end: $(uptime)" >> "$OUT/machine.txt"
tail -n 1 "$OUT/machine.txt"

python3 bench/scaling_model.py measured "$OUT" --warm "$WARM" | tee "$OUT/measured.txt"
python3 bench/scaling_model.py predict --measured "$OUT/measured.json" | tee "$OUT/model.txt"
