#!/usr/bin/env bash
# Checkpoints, exact resume and preemption, through the command line:
# - kill -9 of one rank under mpirun -np 2 at several steps (mid-epoch and at
#   an epoch boundary), resume each time: final weights, optimizer state and
#   metrics bit-equal to an uninterrupted run;
# - SIGUSR1 (hook, and a real signal to one rank's pid), SIGTERM: exit 75 with
#   a checkpoint, resume bit-equal; a second SIGINT stops at once;
# - resume from 2 ranks onto 1 and onto 3: equal to rounding;
# - [optim] shard = 1: kill -9 + resume bit-equal to the unsharded run; its
#   checkpoint resumed on 3 ranks, sharded or not, the same bits;
# - a damaged newest checkpoint is skipped with a warning naming it;
# - topology and unsafe config changes are refused naming the keys; safe
#   ones (optim.lr) are allowed and reported;
# - a save onto a full filesystem (a small tmpfs) keeps the old checkpoints;
# - with [augment] distortions: kill -9 + resume bit-equal, and the
#   augmented run differs from the plain one; the same with [mining]
#   pool = classes, whose pool cannot change on resume;
# - validation during training ([eval] data, every, metric): eval.csv rows
#   at every N steps and the end, best.smpi = the checkpoint of the best
#   row's step, both bit-equal after kill -9 + resume; eval.data and
#   eval.metric cannot change on resume.
set -u
cd "$(dirname "$0")/.."
# The siamese of the test build: with the kill / signal seams (tests/fixture_hooks.c).
S=$PWD/${SIAMESE_BUILD:-build}/siamese-test
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-resume.XXXXXX)
cleanup() { mountpoint -q "$T/full" 2>/dev/null && umount "$T/full"; rm -rf "$T"; }
trap cleanup EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
MPI="mpirun --oversubscribe"
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/data.lmdb" >/dev/null
# 10000 images, 400 per step: 25 steps per epoch; 60 steps cross two epoch
# boundaries; checkpoints every 7 steps, so a kill loses up to 6 steps.
SETS=(--set data.train="$T/data.lmdb" --set data.test= --set sampler.p=10 --set sampler.k=40
      --set train.steps=60 --set checkpoint.every=7 --set checkpoint.keep=3 --set train.eval=0
      --set dist.checksum_every=1)
train() { # run dir, np, extra args...
  local dir=$1 np=$2; shift 2
  $MPI -np "$np" "$S" train configs/tiny.ini "${SETS[@]}" --set run.dir="$dir" "$@"
}
same() { # two run dirs: final weights + optimizer state and metrics bit-equal
  "$S" inspect "$1/model.smpi" --compare "$2/model.smpi" --tol 0 >/dev/null && cmp -s "$1/metrics.csv" "$2/metrics.csv"
}

train "$T/ref" 2 >"$T/ref.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/ref/model.smpi" ]' "uninterrupted 2-rank reference run"

# kill -9 of rank 1 at steps 9 (mid-epoch), 25 (epoch boundary) and 47.
rc_all=""
SIAMESE_TEST_KILL_STEP=9 SIAMESE_TEST_RANK=1 train "$T/k" 2 >"$T/k1.out" 2>&1; rc_all="$rc_all $?"
SIAMESE_TEST_KILL_STEP=25 SIAMESE_TEST_RANK=1 train "$T/k" 2 --resume auto >"$T/k2.out" 2>&1; rc_all="$rc_all $?"
SIAMESE_TEST_KILL_STEP=47 SIAMESE_TEST_RANK=1 train "$T/k" 2 --resume auto >"$T/k3.out" 2>&1; rc_all="$rc_all $?"
check '[ "$(echo $rc_all | tr " " "\n" | grep -c "^0$")" -eq 0 ]' "each killed run fails (exit codes:$rc_all)"
check 'grep -q "resume: .*ckpt-0000000021.smpi at step 21" "$T/k3.out"' "the second resume starts from step 21"
train "$T/k" 2 --resume auto >"$T/k4.out" 2>&1
check '[ $? -eq 0 ]' "final resume finishes"
check 'grep -q "resume: .*at step 42" "$T/k4.out"' "the last resume starts from step 42"
check 'same "$T/ref" "$T/k"' "after three kill -9 + resume: weights, optimizer and metrics bit-equal"

# SIGUSR1 raised on rank 1 after step 12: checkpoint at 12, exit 75.
SIAMESE_TEST_SIGNAL_STEP=12 SIAMESE_TEST_RANK=1 train "$T/s" 2 >"$T/s1.out" 2>&1; rc=$?
check '[ $rc -eq 75 ]' "signal stop exits 75 ($rc)"
check '[ -s "$T/s/ckpt-0000000012.smpi" ] && grep -q "stopped by a signal at step 12" "$T/s1.out"' \
  "signal stop writes the checkpoint of step 12"
train "$T/s" 2 --resume auto >"$T/s2.out" 2>&1
check '[ $? -eq 0 ] && same "$T/ref" "$T/s"' "signal -> checkpoint -> resume is bit-equal"

# A real SIGTERM to one rank's process, wherever it lands.
train "$T/r" 2 --set train.steps=100000 >"$T/r1.out" 2>&1 &
mp=$!
for _ in $(seq 1 100); do
  pid=$(pgrep -f "${S##*/} train configs/tiny.ini.*run.dir=$T/r" | grep -v "^$mp$" | while read -r p; do
        [ "$(cat /proc/"$p"/comm 2>/dev/null)" = "${S##*/}" ] && echo "$p"; done | tail -n 1)
  [ -n "$pid" ] && [ -s "$T/r/config.ini" ] && break
  sleep 0.1
done
sleep 1
if [ -n "$pid" ]; then kill -TERM "$pid"; else bad "no rank process found to signal"; pkill -KILL -f "run.dir=$T/r " ; fi
wait $mp; rc=$?
check '[ $rc -eq 75 ] && ls "$T/r"/ckpt-*.smpi >/dev/null 2>&1' "SIGTERM to one rank: exit 75 with a checkpoint ($rc)"
stop=$(ls "$T/r" | grep '^ckpt-' | sort | tail -n 1)
check '"$S" inspect "$T/r/$stop" >/dev/null' "that checkpoint verifies ($stop)"

# Second SIGINT stops at once: no checkpoint of a later step appears.
$S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/i" --set train.steps=100000 --set checkpoint.every=0 \
  >"$T/i.out" 2>&1 &
ip=$!
for _ in $(seq 1 100); do [ -s "$T/i/config.ini" ] && break; sleep 0.1; done
kill -INT $ip; kill -INT $ip
wait $ip; rc=$?
check '[ $rc -eq 130 ] || [ $rc -eq 75 ]' "double SIGINT ends the run ($rc)"

# World size change: the 2-rank checkpoint of step 49 resumed on 1 and on 3.
for np in 1 3; do
  mkdir -p "$T/w$np" && cp "$T/ref/ckpt-0000000049.smpi" "$T/w$np/"
  train "$T/w$np" $np --resume auto >"$T/w$np.out" 2>&1
  check '[ $? -eq 0 ] && "$S" inspect "$T/ref/model.smpi" --compare "$T/w$np/model.smpi" --tol 1e-4 >/dev/null' \
    "resume from 2 ranks onto $np equals the uninterrupted run to rounding"
done

# [optim] shard = 1: kill -9 at step 25 and resume, bit-equal to the unsharded
# reference; its (whole-state) checkpoint of step 21 resumed on 3 ranks,
# sharded and not, bit-equal to each other.
SIAMESE_TEST_KILL_STEP=25 SIAMESE_TEST_RANK=1 train "$T/sh" 2 --set optim.shard=1 >"$T/sh1.out" 2>&1
for d in sh3a sh3b; do mkdir -p "$T/$d" && cp "$T/sh/ckpt-0000000021.smpi" "$T/$d/"; done
train "$T/sh" 2 --resume auto --set optim.shard=1 >"$T/sh2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "resume: .*at step 21" "$T/sh2.out" && same "$T/ref" "$T/sh"' \
  "optim.shard = 1: kill -9 + resume bit-equal to the unsharded run"
train "$T/sh3a" 3 --resume auto --set optim.shard=1 >"$T/sh3a.out" 2>&1; a=$?
train "$T/sh3b" 3 --resume auto --set optim.shard=0 >"$T/sh3b.out" 2>&1; b=$?
check '[ $a -eq 0 ] && [ $b -eq 0 ] && grep -q "optim.shard: 1 -> 0" "$T/sh3b.out" && same "$T/sh3a" "$T/sh3b"' \
  "a sharded 2-rank checkpoint resumed on 3 ranks: sharded and unsharded bit-equal"

# Damaged newest checkpoint: skipped with a warning naming it.
mkdir -p "$T/d"
cp "$T/ref/ckpt-0000000049.smpi" "$T/ref/ckpt-0000000056.smpi" "$T/d/"
printf '\x55' | dd of="$T/d/ckpt-0000000056.smpi" bs=1 seek=3000 conv=notrunc 2>/dev/null
train "$T/d" 2 --resume auto >"$T/d.out" 2>&1
check '[ $? -eq 0 ] && grep -q "ckpt-0000000056.smpi" "$T/d.out" && grep -q "resume: .*at step 49" "$T/d.out"' \
  "damaged newest checkpoint skipped with a warning naming it"
check '"$S" inspect "$T/ref/model.smpi" --compare "$T/d/model.smpi" --tol 0 >/dev/null' \
  "resuming from the older one still ends bit-equal"
printf 'XXXX' | dd of="$T/bad.smpi" bs=1 2>/dev/null
train "$T/e" 1 --resume "$T/bad.smpi" >"$T/e.out" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q "bad.smpi" "$T/e.out"' "--resume of a damaged file is refused naming it"

# Config changes on resume.
mkdir -p "$T/c" && cp "$T/ref/ckpt-0000000049.smpi" "$T/c/"
train "$T/c" 1 --resume auto --set fc1.out=32 >"$T/c1.out" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q "fc1.out: 16 vs 32" "$T/c1.out"' "topology change refused naming the key"
train "$T/c" 1 --resume auto --set loss.margin=0.5 >"$T/c2.out" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q "loss.margin: 0.2 -> 0.5" "$T/c2.out"' "unsafe change refused naming the key"
train "$T/c" 1 --resume auto --set optim.lr=0.01 >"$T/c3.out" 2>&1; rc=$?
check '[ $rc -eq 0 ] && grep -q "changed on resume (recorded): .*optim.lr: 0.05 -> 0.01" "$T/c3.out" &&
  grep -q "optim.lr: 0.05 -> 0.01" "$T/c/resume.log"' \
  "safe change (optim.lr) allowed and reported"

# Augmentation keyed by (seed, step, global position): kill -9 of rank 0
# at step 16 and resume give the uninterrupted run's bits; 2 ranks.
AUG=(--set augment.rotate=10 --set augment.rotate_p=0.5 --set augment.shear=0.3 --set augment.shear_p=0.5
     --set augment.scale_min=0.8 --set augment.scale_max=1.2 --set augment.translate=2 --set augment.crop_pad=1)
train "$T/aref" 2 "${AUG[@]}" --set train.steps=30 >"$T/aref.out" 2>&1
check '[ $? -eq 0 ] && ! cmp -s "$T/aref/metrics.csv" <(head -n 31 "$T/ref/metrics.csv")' \
  "augmented reference run finishes, and its losses differ from the plain run's"
SIAMESE_TEST_KILL_STEP=16 train "$T/ak" 2 "${AUG[@]}" --set train.steps=30 >"$T/ak1.out" 2>&1
train "$T/ak" 2 "${AUG[@]}" --set train.steps=30 --resume auto >"$T/ak2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "at step 14" "$T/ak2.out" && same "$T/aref" "$T/ak"' \
  "augmented run: kill -9 at step 16, resume from 14: weights, optimizer and metrics bit-equal"

# [mining] pool = classes (3 of the 9 other classes): kill -9 of rank 1 at
# step 16 and resume give the uninterrupted run's bits; the pool cannot
# change on resume.
CLS=(--set mining.pool=classes --set mining.classes=3 --set train.steps=30)
train "$T/cref" 2 "${CLS[@]}" >"$T/cref.out" 2>&1
check '[ $? -eq 0 ] && ! cmp -s "$T/cref/metrics.csv" <(head -n 31 "$T/ref/metrics.csv")' \
  "hard-class run finishes, and its losses differ from exact mining's"
SIAMESE_TEST_KILL_STEP=16 SIAMESE_TEST_RANK=1 train "$T/ck" 2 "${CLS[@]}" >"$T/ck1.out" 2>&1
train "$T/ck" 2 "${CLS[@]}" --resume auto >"$T/ck2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "at step 14" "$T/ck2.out" && same "$T/cref" "$T/ck"' \
  "hard-class run: kill -9 at step 16, resume from 14: weights, optimizer and metrics bit-equal"
train "$T/ck" 2 --set train.steps=30 --resume auto >"$T/ck3.out" 2>&1; rc=$?
check '[ $rc -ne 0 ] && grep -q "mining.pool: classes -> exact" "$T/ck3.out"' \
  "resume of a hard-class run with pool = exact refused naming the key"

# Validation during training on a held-out sample split (1,000 images).
$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/vtrain.lmdb" --split-by sample --test-fraction 0.1 --test-out "$T/val.lmdb" >/dev/null
VAL=(--set data.train="$T/vtrain.lmdb" --set eval.data="$T/val.lmdb" --set eval.every=10 --set eval.metric=nway_accuracy
     --set eval.nway=5 --set eval.trials=300 --set train.steps=40 --set checkpoint.keep=100)
train "$T/vref" 2 "${VAL[@]}" --set checkpoint.every=10 >"$T/vref.out" 2>&1
check '[ $? -eq 0 ] && [ "$(head -n 1 "$T/vref/eval.csv")" = step,nway_accuracy,recall_at_1,map_at_r ] &&
  [ "$(tail -n +2 "$T/vref/eval.csv" | cut -d, -f1 | tr "\n" " ")" = "10 20 30 40 " ]' \
  "eval.csv: header with the chosen metric first, a row every 10 steps and at the end"
bstep=$(tail -n +2 "$T/vref/eval.csv" | sort -t, -k2,2gr -k1,1n | head -n 1 | cut -d, -f1)
bfile=$(printf '%s/vref/ckpt-%010d.smpi' "$T" "$bstep")
check '[ -n "$bstep" ] && "$S" inspect "$T/vref/best.smpi" --compare "$bfile" --tol 0 >/dev/null &&
  grep -q "validation: 4 passes" "$T/vref.out"' "best.smpi holds the weights of the best row's step ($bstep)"
check '"$S" inspect "$T/vref/best.smpi" | grep -q "^  step=$bstep$"' "best.smpi records that step"
SIAMESE_TEST_KILL_STEP=26 train "$T/vk" 2 "${VAL[@]}" --set checkpoint.every=7 >"$T/vk1.out" 2>&1
train "$T/vk" 2 "${VAL[@]}" --set checkpoint.every=7 --resume auto >"$T/vk2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "at step 21" "$T/vk2.out" && cmp -s "$T/vref/eval.csv" "$T/vk/eval.csv" &&
  same "$T/vref" "$T/vk" && "$S" inspect "$T/vref/best.smpi" --compare "$T/vk/best.smpi" --tol 0 >/dev/null' \
  "validation: kill -9 at step 26, resume from 21: eval.csv, best.smpi and the model bit-equal"
train "$T/vk" 1 "${VAL[@]}" --set checkpoint.every=7 --set train.steps=50 --set eval.metric=recall_at_1 \
  --resume auto >"$T/vk3.out" 2>&1; rc=$?
check '[ $rc -eq 2 ] && grep -q "eval.metric: nway_accuracy -> recall_at_1" "$T/vk3.out"' \
  "changing the validation metric on resume is refused naming it"

# Full filesystem: a 176 KiB tmpfs as the run dir (two checkpoints and the small files fit).
mkdir -p "$T/full"
if mount -t tmpfs -o size=176k tmpfs "$T/full" 2>/dev/null; then
  $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/full/run" --set checkpoint.every=2 \
    --set checkpoint.keep=100 >"$T/f.out" 2>&1; rc=$?
  check '[ $rc -ne 0 ] && grep -q "checkpoint not saved" "$T/f.out"' "a save onto a full disk stops the run (on_error=stop)"
  n=0 okc=0
  for f in "$T/full/run"/ckpt-*.smpi; do n=$((n + 1)); "$S" inspect "$f" >/dev/null 2>&1 && okc=$((okc + 1)); done
  check '[ $n -ge 2 ] && [ $n -eq $okc ] && ! ls "$T/full/run" | grep -q tmp-' "earlier checkpoints intact ($okc/$n), no temp file"
  rm -rf "$T/full/run"
  $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/full/run" --set checkpoint.every=2 \
    --set checkpoint.keep=100 --set checkpoint.on_error=warn --set train.steps=30 >"$T/f2.out" 2>&1
  check 'grep -q "checkpoint not saved (earlier ones are intact)" "$T/f2.out" && grep -q "step 30/30" "$T/f2.out"' \
    "on_error=warn goes on training after a failed save"
  umount "$T/full"
else
  echo "SKIPPED (not counted): cannot mount a tmpfs here for the full-disk checks"
fi

# The siamese users run has no test seams: the kill variable is ignored.
SIAMESE_TEST_KILL_STEP=2 "$PWD/siamese" train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/nohook" \
  --set train.steps=3 >/dev/null 2>&1
check '[ $? -eq 0 ] && [ -s "$T/nohook/model.smpi" ]' "./siamese ignores SIAMESE_TEST_KILL_STEP (no test seams)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
