#!/usr/bin/env bash
# e2e_hostile: what a hostile or careless user types, through the command
# line (issue 15): extra arguments, hex and malformed values in --set,
# checkpoints whose CRCs are valid but whose content is not (huge sections,
# a config claiming a huge layer, all-NaN parameters, absurd state values),
# and a dataset with bad records met in training ([data] on_bad_record).
# Each must end in one line on stderr naming the file or key, a non-zero
# exit, and no output file.
set -u
cd "$(dirname "$0")/.."
S=./siamese
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-hostile.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }
# expect_error STATUS PATTERN DESCRIPTION -- CMD...: the command exits with
# STATUS and prints exactly one line on stderr, matching PATTERN.
expect_error() {
  local want=$1 pat=$2 what=$3
  shift 4
  "$@" >"$T/out" 2>"$T/err"
  local rc=$?
  check '[ $rc -eq $want ] && [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q -- "$pat" "$T/err"' \
    "$what: exit $rc (want $want), stderr: $(head -c 400 "$T/err")"
}

# ---- arguments and --set values
expect_error 2 "unexpected argument 'extra'" "siamese version extra" -- $S version extra
check '$S version | grep -q "^siamese-mpi"' "siamese version still works"
$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/d.lmdb" --resize 12x12 >/dev/null
SETS=(--set data.train="$T/d.lmdb" --set data.test= --set run.dir="$T/run" --set train.steps=2)
expect_error 2 "lr = '0x10': expected a number" "--set optim.lr=0x10 (hex)" -- \
  $S train configs/tiny.ini "${SETS[@]}" --set optim.lr=0x10
expect_error 2 "momentum = ' 0.5'" "--set optim.momentum=' 0.5' (space)" -- \
  $S train configs/tiny.ini "${SETS[@]}" --set "optim.momentum= 0.5"
expect_error 2 "seed = '+1'" "--set run.seed=+1" -- $S train configs/tiny.ini "${SETS[@]}" --set run.seed=+1
expect_error 2 "shape = '1x12x12x': expected CxHxW" "--set data.shape=1x12x12x" -- \
  $S train configs/tiny.ini "${SETS[@]}" --set data.shape=1x12x12x
check '[ ! -e "$T/run" ]' "no run directory after refused configs"

# ---- configs implying absurd memory: refused before anything is allocated
$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/f.lmdb" >/dev/null
FM=(--set data.train="$T/f.lmdb" --set data.test= --set run.dir="$T/mem" --set train.steps=1)
expect_error 2 "training needs .* GB per rank for batches of 256 images (node fc1: .*more than the limit of .*shrink fc1" \
  "fc1.out=16777216 conv1.filters=65536: the figure and the node" -- \
  $S train configs/fmnist-triplet.ini "${FM[@]}" --set fc1.out=16777216 --set conv1.filters=65536
expect_error 2 "(node conv1: .*MemAvailable\|(node conv1: .*cgroup\|(node conv1: .*SLURM" "conv1.filters=65536 conv1.pad=64" -- \
  $S train configs/fmnist-triplet.ini "${FM[@]}" --set conv1.filters=65536 --set conv1.pad=64
expect_error 2 "more than the limit of 0.1 MB (\[run\] max_memory = 0.0001)" "run.max_memory = 0.0001" -- \
  $S train configs/tiny.ini "${FM[@]}" --set run.max_memory=0.0001
expect_error 2 "f.lmdb: its class index (10000 samples, 10 classes) needs 0.08 MB, more than the limit of 0.05 MB (\[run\] max_memory = 5e-05)" \
  "run.max_memory = 0.00005: the class index checked before it is read" -- \
  $S train configs/tiny.ini "${FM[@]}" --set run.max_memory=0.00005
expect_error 2 "limit of 0.01 GB\|limit of 10.5 MB (\[run\] max_memory = 0: SLURM_MEM_PER_NODE 0.01 GB / 1 rank on the node)" \
  "SLURM_MEM_PER_NODE=10 (MB)" -- env SLURM_MEM_PER_NODE=10 $S train configs/fmnist-triplet.ini "${FM[@]}"
env SLURM_MEM_PER_NODE=10 mpirun -np 2 --oversubscribe $S train configs/fmnist-triplet.ini "${FM[@]}" >"$T/out" 2>"$T/err"; rc=$?
check '[ $rc -eq 2 ] && grep -q "SLURM_MEM_PER_NODE 0.01 GB / 2 ranks on the node" "$T/err"' \
  "mpirun -np 2: the limit divided by the ranks on the node: $(grep siamese "$T/err" | head -c 400)"
check '[ ! -e "$T/mem" ]' "no run directory after a refused memory estimate"

# ---- bad records in training: the stored CRC of every 16th record is wrong
mdb_dump -s samples "$T/d.lmdb" | awk '/^HEADER=END$/ {body = 1; print; next}
  body && length($0) == 17 {last = substr($0, 17, 1); print; getline
    if (last == "3") $0 = substr($0, 1, 41) (substr($0, 42, 2) == "00" ? "01" : "00") substr($0, 44)}
  {print}' | grep -v "^db_pagesize=" >"$T/samples.dump"
cp -r "$T/d.lmdb" "$T/bad.lmdb" && mdb_load -s samples -f "$T/samples.dump" "$T/bad.lmdb"
BAD=(--set data.train="$T/bad.lmdb" --set data.test= --set train.steps=4 --set checkpoint.every=2)
$S train configs/tiny.ini "${BAD[@]}" --set run.dir="$T/bad-stop" >"$T/out" 2>"$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "^siamese: $T/bad.lmdb: samples key [0-9]*: CRC-32 mismatch.*on_bad_record = skip" "$T/err"' \
  "on_bad_record = stop: exit 1 naming the key: $(tail -2 "$T/err")"
$S train configs/tiny.ini "${BAD[@]}" --set run.dir="$T/bad1" --set data.on_bad_record=skip >"$T/out" 2>"$T/err"; rc=$?
check '[ $rc -eq 0 ] && grep -q "samples key [0-9]*: CRC-32 mismatch.*skipped (\[data\] on_bad_record = skip): sample [0-9]* of its class" "$T/err"' \
  "on_bad_record = skip: warns and trains on: $(tail -2 "$T/err")"
mpirun -np 2 --oversubscribe $S train configs/tiny.ini "${BAD[@]}" --set run.dir="$T/bad2" \
  --set data.on_bad_record=skip >"$T/out" 2>"$T/err"; rc=$?
check '[ $rc -eq 0 ] && awk -F, "NR > 1 {print \$3}" "$T/bad1/metrics.csv" >"$T/l1" &&
  awk -F, "NR > 1 {print \$3}" "$T/bad2/metrics.csv" >"$T/l2" && [ "$(wc -l <"$T/l1")" -eq 4 ] &&
  paste "$T/l1" "$T/l2" | awk "{d = \$1 - \$2; if (d < 0) d = -d; if (d > 1e-5 * (\$1 < 0 ? -\$1 : \$1) + 1e-7) exit 1}"' \
  "skip: the 4 losses of -np 2 equal -np 1's: $(paste "$T/l1" "$T/l2" | tr '\n' ' ') $(tail -2 "$T/err")"
# on_bad_record may change on resume (and then applies)
$S train configs/tiny.ini "${BAD[@]}" --set run.dir="$T/bad1" --set train.steps=8 --set run.max_memory=50 \
  --resume auto >"$T/out" 2>"$T/err"; rc=$?
check '[ $rc -eq 1 ] && grep -q "data.on_bad_record: skip -> stop" "$T/out" && grep -Eq "run.max_memory: 0 -> (50|5e\+01)" "$T/out" && grep -q "on_bad_record = skip" "$T/err"' \
  "resume with on_bad_record = stop and max_memory = 50: accepted, then stops at a bad record: $(tail -2 "$T/err")"

# ---- checkpoints with valid CRCs and hostile content (made from the legacy
# fixture by tests/test_ckpt_bounds, whose unit tests cover every section)
B=${SIAMESE_BUILD:-build}/tests/test_ckpt_bounds
FX=$PWD/tests/fixtures/legacy
CK=$FX/a-step10.smpi
$B --zeros "$CK" "$T/zcfg.smpi" config 3221225472
expect_error 1 "section 'config' claims 3221225472 bytes once inflated, but a config section holds at most" \
  "inspect: a config section of 3 GiB of zeros" -- $S inspect "$T/zcfg.smpi"
$B --zeros "$CK" "$T/zstate.smpi" state 3221225472
for cmd in "eval --data $T/d.lmdb" "export --out $T/x.safetensors" "embed --data $T/d.lmdb --out $T/emb"; do
  expect_error 1 "section 'state' claims 3221225472 bytes" "${cmd%% *}: a state section of 3 GiB of zeros" -- \
    $S ${cmd%% *} "$T/zstate.smpi" ${cmd#* }
done
$B --config "$CK" "$T/huge.smpi" fc1.out=16777216 conv1.filters=65536
expect_error 1 "config section builds another model than its topology section" \
  "export: a config claiming a 73 GB model" -- $S export "$T/huge.smpi" --out "$T/x.safetensors"
$B --nan "$CK" "$T/nan.smpi"
expect_error 1 "6544 of its 6544 parameters are not finite" "eval: all-NaN parameters" -- \
  $S eval "$T/nan.smpi" --data "$T/d.lmdb"
$B --state "$CK" "$T/world.smpi" world=0
expect_error 1 "state world=0 is not an integer in 1..1048576" "eval: world=0" -- \
  $S eval "$T/world.smpi" --data "$T/d.lmdb"
check '[ ! -e "$T/x.safetensors" ] && [ ! -e "$T/emb.emb.npy" ]' "no output file from refused checkpoints"
# train --resume of the same files (the fixture's own data and config)
cd "$T" || exit 1
$OLDPWD/siamese import --format idx --images $FX/train-images-idx3-ubyte.gz --labels $FX/train-labels-idx1-ubyte.gz \
  --out train.lmdb >/dev/null
cp $FX/a.ini .
for f in nan world zstate; do
  expect_error 2 "cannot resume: .*$f.smpi" "train --resume $f.smpi" -- $OLDPWD/siamese train a.ini --set data.test= --resume "$f.smpi"
done
$OLDPWD/siamese train a.ini --set data.test= --resume nan.smpi 2>&1 | grep -q "parameters are not finite (NaN or inf; the first in conv1.weight)"
check '[ $? -eq 0 ]' "train --resume of all-NaN parameters names the tensor"
check '[ ! -e run-a/metrics.csv ]' "a refused resume trains nothing"
cd "$OLDPWD" || exit 1

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
