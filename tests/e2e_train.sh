#!/usr/bin/env bash
# End to end through the command line: import a slice of Fashion-MNIST
# (Debian's dataset-fashion-mnist), train the tiny config as one process and
# under mpirun -np 2, then eval, embed, export and inspect the checkpoint;
# bad configs and bad overrides get a one-line error with the line number.
set -u
cd "$(dirname "$0")/.."
S=./siamese
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-train.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/train.lmdb" --split-by sample --test-fraction 0.2 --test-out "$T/test.lmdb" --seed 3 >/dev/null
check '[ -d "$T/train.lmdb" ] && [ -d "$T/test.lmdb" ]' "import with a split"
$S pairs "$T/train.lmdb" --pairs 2000 --seed 1 >/dev/null
SETS=(--set data.train="$T/train.lmdb" --set data.test="$T/test.lmdb" --set eval.pairs=2000
      --set eval.train_pairs=500 --set eval.trials=200 --set train.eval=1)

# One process: files, a falling loss, the evaluation.
$S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/run1" >"$T/out1" 2>"$T/err1"
check '[ $? -eq 0 ]' "single-process train exits 0 ($(tail -2 "$T/err1"))"
for f in config.ini metrics.csv timing.csv model.smpi eval.json ckpt-0000000030.smpi; do
  check '[ -s "$T/run1/$f" ]' "run dir has $f"
done
check '[ "$(wc -l < "$T/run1/metrics.csv")" -eq 31 ]' "metrics.csv has a header and 30 rows"
check '[ "$(ls "$T/run1" | grep -c "^ckpt-")" -eq 2 ]' "checkpoint.keep = 2 keeps two checkpoints"
first=$(awk -F, 'NR>=2 && NR<=6 {s+=$3} END {print s/5}' "$T/run1/metrics.csv")
last=$(awk -F, 'NR>=27 {s+=$3} END {print s/(NR-26)}' "$T/run1/metrics.csv")
check 'awk -v a="$first" -v b="$last" "BEGIN{exit !(b < a)}"' "loss falls ($first -> $last)"
r1=$(grep -o '"recall_at_1": [0-9.]*' "$T/run1/eval.json" | awk '{print $2}')
check 'awk -v r="$r1" "BEGIN{exit !(r > 0.4)}"' "Recall@1 after 30 tiny steps beats chance by far ($r1)"
check 'grep -q "^effective config:" "$T/out1" && grep -q "^step 30/30" "$T/out1"' "progress and effective config printed"
check 'grep -q "data wait" "$T/out1"' "time breakdown summary printed"

# eval from the checkpoint alone gives the training run's numbers.
$S eval "$T/run1/model.smpi" --data "$T/test.lmdb" --json "$T/e.json" >"$T/eval.out" 2>&1
check '[ $? -eq 0 ]' "siamese eval exits 0"
r2=$(grep -o '"recall_at_1": [0-9.]*' "$T/e.json" | awk '{print $2}')
check '[ "$r1" = "$r2" ]' "eval of model.smpi repeats the run's Recall@1 ($r1 vs $r2)"
check 'grep -q "ROC AUC" "$T/eval.out" && grep -q "5-way 1-shot" "$T/eval.out"' "eval table"

# embed and export.
$S embed "$T/run1/model.smpi" --data "$T/test.lmdb" --out "$T/emb" >/dev/null 2>&1
check '[ -s "$T/emb.emb.npy" ] && [ -s "$T/emb.labels.npy" ]' "embed writes both .npy files"
check 'head -c 128 "$T/emb.emb.npy" | grep -aq "(2000, 16)"' "embeddings are 2000 x 16"
$S export "$T/run1/model.smpi" --out "$T/w.safetensors" >/dev/null 2>&1
check 'head -c 65536 "$T/w.safetensors" | grep -aq "\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":\[4,1,3,3\]"' \
  "safetensors names and shapes from the config"
$S inspect "$T/run1/model.smpi" >"$T/insp" 2>&1
check '[ $? -eq 0 ] && grep -q params "$T/insp"' "inspect verifies the checkpoint"

# --debug: gradient check of the real model, replica checksums every step.
$S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/dbg" --set train.steps=3 --set train.eval=0 \
  --debug >"$T/dbg.out" 2>&1
check 'grep -q "debug: gradient check" "$T/dbg.out" && ! grep -q SUSPICIOUS "$T/dbg.out"' "--debug gradient check passes"
# ... and on 2 ranks with the sharded optimizer, whose gradient reduction
# leaves each rank only its shard (the check gathers the rest).
mpirun -np 2 --oversubscribe $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/dbg2" --set train.steps=3 \
  --set train.eval=0 --set optim.shard=1 --debug >"$T/dbg2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "debug: gradient check" "$T/dbg2.out" && ! grep -q SUSPICIOUS "$T/dbg2.out"' \
  "--debug gradient check passes on 2 sharded ranks"

# Two ranks: the same losses as one rank (global mining).
mpirun -np 2 --oversubscribe $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/run2" \
  --set train.eval=0 >"$T/out2" 2>&1
check '[ $? -eq 0 ]' "mpirun -np 2 train exits 0"
check '[ "$(wc -l < "$T/run2/ranks.csv")" -eq 3 ] && awk -F, "NR>1 && (\$3 != 2 || \$5 != 28 || \$13 <= 0) {exit 1}
  NR==1 && \$8 != \"imbalance_s\" {exit 1}" "$T/run2/ranks.csv"' "ranks.csv: a row per rank, 28 timed steps each"
check 'grep -q "2 ranks	step 0	siamese train configs/tiny.ini .*run.dir=$T/run2" "$T/run2/command.log"' \
  "command.log records the version, rank count and command line"
check 'paste -d, "$T/run1/metrics.csv" "$T/run2/metrics.csv" | awk -F, "NR>1 { d = \$3 - \$11; if (d < 0) d = -d;
  if (d > 1e-5 * (\$3 > 1 ? \$3 : 1)) exit 1 }"' "2-rank losses equal 1-rank losses"
check '$S inspect "$T/run1/model.smpi" --compare "$T/run2/model.smpi" --tol 1e-4 >/dev/null' \
  "2-rank final weights equal 1-rank weights within 1e-4"

# Bad configs: one line, with the file and line, exit 2.
printf '[run]\nseed = 1\nspeed = 2\n[relu]\n' >"$T/bad1.ini"
$S train "$T/bad1.ini" >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q "bad1.ini:3: unknown key .speed." "$T/e" && [ "$(wc -l < "$T/e")" -eq 1 ]' \
  "unknown key: one line naming file:line ($(cat "$T/e"))"
printf '[optim]\nlr = fast\n[relu]\n' >"$T/bad2.ini"
$S train "$T/bad2.ini" 2>"$T/e" >/dev/null; rc=$?
check '[ $rc -eq 2 ] && grep -q "bad2.ini:2: \[optim\] lr = .fast." "$T/e"' "bad value names the line"
$S train configs/tiny.ini --set optim.lr=-1 2>"$T/e" >/dev/null; rc=$?
check '[ $rc -eq 2 ] && grep -q "optim.lr=-1" "$T/e"' "bad --set named"
$S train configs/fmnist-triplet.ini --set data.train="$T/train.lmdb" --set data.shape=1x105x105 2>"$T/e" >/dev/null; rc=$?
check '[ $rc -eq 2 ] && grep -q "is 1x28x28 but the config.s \[data\] shape is 1x105x105" "$T/e"' \
  "dataset shape vs config ($(cat "$T/e"))"
$S train configs/tiny.ini --set data.train="$T/nothere.lmdb" 2>"$T/e" >/dev/null; rc=$?
check '[ $rc -eq 2 ] && grep -q "nothere.lmdb" "$T/e"' "missing dataset named"
printf '[conv2d]\nfilters = 2\nsize = 40\n' >"$T/bad3.ini"
$S train "$T/bad3.ini" --set data.train="$T/train.lmdb" 2>"$T/e" >/dev/null; rc=$?
check '[ $rc -eq 2 ] && grep -q "bad3.ini:1: \[conv2d\] conv2d1: kernel 40 does not fit" "$T/e"' \
  "layer that does not fit its input ($(cat "$T/e"))"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
