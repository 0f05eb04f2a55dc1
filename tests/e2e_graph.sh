#!/usr/bin/env bash
# Models as graphs through the command line (docs/graph.md), on the legacy
# fixture's small data set: a batch-norm + dropout model (PK triplets) and a
# two-tower model (pairs, a logit per pair) train under mpirun -np 1, 2, 3
# and 4 to the same losses (1e-5) and weights and running statistics
# (1e-4); a stopped and resumed run equals an uninterrupted one bit for bit
# (dropout masks and running statistics included); inspect shows the graph
# and the buffers; export names the buffers as PyTorch does; eval scores
# pairs with the two-tower model and skips Recall@K for a model without an
# embedding; bad graphs get one line naming file and line.
set -u
cd "$(dirname "$0")/.."
S=$PWD/siamese
FX=$PWD/tests/fixtures/legacy
G=$PWD/tests/fixtures/graph
T=$(mktemp -d /tmp/siamese-e2e-graph.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

$S import --format idx --images $FX/train-images-idx3-ubyte.gz --labels $FX/train-labels-idx1-ubyte.gz \
  --out "$T/train.lmdb" >/dev/null && $S import --format idx --images $FX/test-images-idx3-ubyte.gz \
  --labels $FX/test-labels-idx1-ubyte.gz --out "$T/test.lmdb" >/dev/null &&
  $S pairs "$T/train.lmdb" --pairs 400 --seed 2 >/dev/null
check '[ $? -eq 0 ]' "import and pairs"
SETS=(--set data.train="$T/train.lmdb" --set data.test="$T/test.lmdb" --set train.steps=8 --set checkpoint.every=4
      --set eval.pairs=200 --set eval.train_pairs=100 --set eval.trials=50)

# p ranks = 1 rank: losses (columns 3, 4 of metrics.csv) and final weights.
same_run() { # run dir a, run dir b
  paste -d, "$1/metrics.csv" "$2/metrics.csv" | awk -F, 'NR > 1 { for (k = 3; k <= 4; k++) { d = $k - $(k + 8);
    if (d < 0) d = -d; if (d > 1e-5 * ($k > 1 ? $k : 1)) bad++ } n++ } END { exit !(n == 8 && bad == 0) }' &&
    $S inspect "$1/model.smpi" --compare "$2/model.smpi" --tol 1e-4 >/dev/null
}
for m in bn two-tower; do
  for np in 1 2 3 4; do
    mpirun --oversubscribe -np $np $S train $G/$m.ini "${SETS[@]}" --set run.dir="$T/$m-$np" --set train.eval=$((np == 1)) \
      >"$T/$m-$np.out" 2>&1
    check '[ $? -eq 0 ]' "$m on $np ranks trains ($(tail -2 "$T/$m-$np.out"))"
    [ $np -gt 1 ] && check 'same_run "$T/$m-1" "$T/$m-$np"' "$m: $np ranks equal 1 rank"
  done
done

# Stop at step 4 and resume: the uninterrupted run's metrics and weights, bit for bit.
for m in bn two-tower; do
  mpirun --oversubscribe -np 2 $S train $G/$m.ini "${SETS[@]}" --set run.dir="$T/$m-r" --set train.eval=0 \
    --set train.steps=4 >/dev/null 2>&1 &&
    mpirun --oversubscribe -np 2 $S train $G/$m.ini "${SETS[@]}" --set run.dir="$T/$m-r" --set train.eval=0 \
      --resume auto >/dev/null 2>&1
  check '[ $? -eq 0 ] && cmp -s "$T/$m-r/metrics.csv" "$T/$m-2/metrics.csv" &&
    $S inspect "$T/$m-r/model.smpi" --compare "$T/$m-2/model.smpi" --tol 0 >/dev/null' "$m: resumed run is bit-equal"
done

# inspect: the graph and the buffers.
$S inspect "$T/two-tower-1/model.smpi" >"$T/insp" 2>&1
check 'grep -q "node dist absdiff input=emb@a, emb@b output=16x1x1 rows=pair" "$T/insp" &&
  grep -q "bn1.running_var 4 buffer" "$T/insp" && grep -q "^  logit " "$T/insp"' "inspect shows the graph and buffers"
# export: PyTorch's buffer names; num_batches_tracked a scalar that counted the steps.
$S export "$T/bn-1/model.smpi" --out "$T/bn.st" >/dev/null 2>&1
check '[ $? -eq 0 ] && python3 - "$T/bn.st" <<"PY"
import json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
for k in ("bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn2.num_batches_tracked"):
    assert k in h, k
v = h["bn2.num_batches_tracked"]
assert v["shape"] == [], v
s, e = v["data_offsets"]
assert struct.unpack("<f", b[8 + n + s:8 + n + e])[0] == 8.0
PY' "export names batch norm buffers as PyTorch does"

# eval: the two-tower model scores pairs itself; Recall@K from its embedding.
check 'grep -q "ROC AUC" "$T/two-tower-1.out" && grep -q "Recall@1" "$T/two-tower-1.out"' "two-tower eval at the end"
# early fusion: no embedding, so no Recall@K; embed refuses.
$S train "$G/early-fusion.ini" "${SETS[@]}" --set run.dir="$T/stacked" --set train.eval=1 >"$T/stacked.out" 2>&1
check '[ $? -eq 0 ] && grep -q "ROC AUC" "$T/stacked.out" && ! grep -q "Recall@1" "$T/stacked.out"' \
  "early fusion trains and is evaluated by its pair scores ($(tail -3 "$T/stacked.out"))"
$S embed "$T/stacked/model.smpi" --data "$T/test.lmdb" --out "$T/e" 2>"$T/e.err" >/dev/null
check '[ $? -ne 0 ] && grep -q "no per-image embedding" "$T/e.err"' "embed refuses a model without an embedding"

# Bad graphs: one line with the file and the line.
printf '[conv2d]\nfilters = 2\n[concat]\nname = j\ninput = conv2d1, nope\n' >"$T/bad1.ini"
$S train "$T/bad1.ini" --set data.train="$T/train.lmdb" --set sampler.p=4 --set sampler.k=4 >/dev/null 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q "bad1.ini:3: \[concat\] j: input .nope. is not a layer above" "$T/e" &&
  [ "$(wc -l <"$T/e")" -eq 1 ]' "unknown node: one line ($(cat "$T/e"))"
$S train $G/two-tower.ini --set data.train="$T/train.lmdb" --set sampler.mode=pk --set loss.type=triplet \
  --set mining.strategy=batch_all --set sampler.p=4 --set sampler.k=4 >/dev/null 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q "two-image models need \[sampler\] mode = pairs" "$T/e"' \
  "a two-image model on PK batches is refused ($(cat "$T/e"))"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
