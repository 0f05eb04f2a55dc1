#!/bin/bash
# perf.sh: ONE command for the training-speed comparison with PyTorch:
#     bash bench/perf.sh [--rounds N] [--steps N] [--only triplet,pair,2ranks,hybrid,koch]
#                        [--no-torch-off] [--koch-pairs N] [--koch-steps N]
#                        [--old OTHER_BUILD/bench/bench_train]
# (--old: the triplet and pair steps, and the hybrid and koch scenarios' 1 rank x
# 2 threads and x 1 thread, of this build against another build's
# bench_train, e.g. an older commit's, alternating window by window.)
# Builds bench_train and fma_peak into build-bench/ (or $BUILD), imports
# Fashion-MNIST into data/ if missing, prints the per-layer profile of one
# step (bench_train --profile: forward and backward of every layer, mining,
# allreduce, optimizer), then runs bench/perf.py: this project's training
# step (bench/bench_train.c: the real trainer_step) and its PyTorch twin
# (bench/torch_ref.py under /usr/bin/python3, oneDNN on and off), same model,
# batch, loss and SGD, 1 thread each, alternating window by window after a
# warm-up: the triplet recipe, the pair recipe, and 2 processes (mpirun -np 2,
# global mining, weak and strong scaling) against PyTorch DDP (gloo) x 2 and
# against two independent 1-process runs at once (what the machine gives two
# busy cores, with no communication at all); the hybrid scenarios: 1 rank x 2
# threads against that two-core limit, against 2 ranks x 1 thread on the same
# global batch and against PyTorch with 2 intra-op threads, for fmnist-small
# (triplet, batch 256) and Koch's 105x105 network (koch, on a synthetic
# dataset made by bench/koch_data.sh; --koch-pairs pairs per step).
# Both sides train on 4 real Fashion-MNIST batches loaded once and cycled
# (loading is not timed). Prints img/s (median of windows), paired ratios,
# img/s by CPU time, GEMM GFLOP/s per core, % of the FMA peak measured by
# bench/fma_peak.c, and peak RSS per process. About 25 minutes on 2 cores
# (--only hybrid,koch: about 12).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build-bench}
# One thread per process unless a contender says otherwise (perf.py).
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 SIAMESE_THREADS=1
if [ "$(id -u)" = 0 ]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
make -s BUILD="$BUILD" "$BUILD/bench/bench_train" "$BUILD/bench/fma_peak" >/dev/null
[ -x ./siamese ] || make -s BUILD="$BUILD" siamese >/dev/null
FM=/usr/share/datasets/fashion-mnist
mkdir -p data
if [ ! -e data/fmnist-train.lmdb/data.mdb ]; then
    ./siamese import --format idx --images $FM/train-images-idx3-ubyte.gz \
        --labels $FM/train-labels-idx1-ubyte.gz --out data/fmnist-train.lmdb
fi
if ! ./siamese inspect data/fmnist-train.lmdb | grep -q '^pairs *[1-9]'; then
    ./siamese pairs data/fmnist-train.lmdb --pairs 30000 --seed 1
fi
KOCH_DB=data/koch-synthetic.lmdb
bench/koch_data.sh "$KOCH_DB"
quiet() { grep -v '^\(flops\|images\|ready\|rss\)'; }
echo "== per-layer profile of one step, triplet, 1 process"
"$BUILD/bench/bench_train" --config configs/fmnist-triplet.ini --profile 30 | quiet
echo "== per-layer profile of one step, triplet, 2 ranks (global PK 8 x 64, rank 0)"
mpirun -np 2 --bind-to none "$BUILD/bench/bench_train" --config configs/fmnist-triplet.ini --set sampler.k=64 \
    --profile 30 | quiet
echo "== per-layer profile of one step, pair, 1 process"
"$BUILD/bench/bench_train" --config configs/fmnist-pair.ini --profile 30 | quiet
echo "== per-layer profile of one step, triplet, 1 rank x 2 threads (threads: share of the threads' time working)"
SIAMESE_THREADS=2 "$BUILD/bench/bench_train" --config configs/fmnist-triplet.ini --profile 30 | quiet
echo "== per-layer profile of one step, Koch 105x105, 16 pairs, 1 rank x 2 threads"
SIAMESE_THREADS=2 "$BUILD/bench/bench_train" --config configs/koch-omniglot.ini --set data.train=$KOCH_DB \
    --set sampler.batch=16 --warmup 1 --batches 2 --profile 3 | quiet
exec /usr/bin/python3 bench/perf.py --build "$BUILD" --koch-data "$KOCH_DB" "$@"
