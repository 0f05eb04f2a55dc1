#!/usr/bin/env bash
# Checkpoints written by an older siamese keep working (tests/fixtures/legacy,
# made by the code of commit 7546d17, see the README there): for two models
# (A: triplet over a fused conv block, padded conv, sigmoid, linears, l2norm;
# B: Koch head, strided conv, overlapping pooling, Adam) the step-10
# checkpoints must evaluate to the recorded numbers, embed to the recorded
# embeddings (1e-5), export the recorded tensors bit for bit, and resume to
# step 20 with the recorded per-step losses, learning rates and gradient
# norms and the recorded final evaluation. The first resumed step must match
# to 1e-5 relative (the state is restored exactly); later steps to 1e-3 and
# the final evaluation to 1e-4: the code now sums some terms in another
# order (GEMMs in blocks and ordered chunk sums, for any thread count), and
# ten steps of SGD through hinges and ReLUs turn rounding into ~1e-4.
set -u
cd "$(dirname "$0")/.."
S=$PWD/siamese
FX=$PWD/tests/fixtures/legacy
T=$(mktemp -d /tmp/siamese-e2e-legacy.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }

# floats of two .npy files (same 128-byte header) within rel. tolerance
npy_close() { # a b tol
  cmp -s <(head -c 128 "$1") <(head -c 128 "$2") || return 1
  paste <(od -An -v -t f4 -j 128 -w4 "$1") <(od -An -v -t f4 -j 128 -w4 "$2") |
    awk -v t="$3" '{ d = $1 - $2; if (d < 0) d = -d; s = ($2 < 0 ? -$2 : $2); if (s < 1) s = 1;
                     if (d > t * s) bad++; n++ } END { exit !(n > 0 && bad == 0) }'
}
# every "key": number of the recorded eval.json ($2) equals the new one's ($1)
# within $3 (seconds left out; keys the newer code adds are not compared)
json_close() {
  awk -F: -v t="$3" 'FNR == 1 { f++ } !/:/ || /seconds/ || /\[/ { next } { gsub(/[ ,]/, "") }
    f == 1 { v[$1] = $2; next } { if (!($1 in v)) bad++; d = v[$1] - $2; if (d < 0) d = -d; if (d > t) bad++; n++ }
    END { exit !(n > 10 && bad == 0) }' "$1" "$2"
}

# the tensors of a safetensors file have the recorded names, shapes and
# bytes (first 16 hex digits of their SHA-256)
tensors_match() {
  python3 - "$1" "$2" <<"PY"
import hashlib, json, struct, sys
b = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
want = [l.split() for l in open(sys.argv[2])]
for name, shape, digest in want:
    v = h[name]
    s, e = v["data_offsets"]
    got = ("x".join(map(str, v["shape"])), hashlib.sha256(b[8 + n + s:8 + n + e]).hexdigest()[:16])
    if got != (shape, digest):
        sys.exit("%s: %s, recorded %s" % (name, got, (shape, digest)))
PY
}

cd "$T"
$S import --format idx --images $FX/train-images-idx3-ubyte.gz --labels $FX/train-labels-idx1-ubyte.gz \
  --out train.lmdb >/dev/null && $S import --format idx --images $FX/test-images-idx3-ubyte.gz \
  --labels $FX/test-labels-idx1-ubyte.gz --out test.lmdb >/dev/null
check '[ -d train.lmdb ] && [ -d test.lmdb ]' "import of the fixture's idx files"

for m in a b; do
  ck=$FX/$m-step10.smpi
  $S inspect "$ck" >insp.$m 2>&1
  check '[ $? -eq 0 ] && grep -q "all CRCs ok" insp.$m' "$m: inspect verifies the old checkpoint"
  $S eval "$ck" --data test.lmdb --train train.lmdb --json e10.$m.json >eval.$m 2>&1
  check '[ $? -eq 0 ] && json_close e10.$m.json $FX/$m-step10.eval.json 1e-6' \
    "$m: eval of the old checkpoint gives the recorded numbers ($(tr -d '\n' <e10.$m.json))"
  $S embed "$ck" --data test.lmdb --out emb.$m >/dev/null 2>&1
  check '[ $? -eq 0 ] && npy_close emb.$m.emb.npy $FX/$m-step10.emb.npy 1e-5' \
    "$m: embeddings of the old checkpoint equal the recorded ones"
  $S export "$ck" --out $m.safetensors >/dev/null 2>&1
  check '[ $? -eq 0 ] && tensors_match $m.safetensors $FX/$m-step10.tensors' \
    "$m: export names, shapes and bytes of the recorded tensors"

  # resume from step 10 to 20: the old run's rows 10..19 and final evaluation
  cp $FX/$m.ini . && mkdir -p run-$m && cp "$ck" run-$m/ckpt-0000000010.smpi
  $S train $m.ini --resume auto >train.$m 2>&1
  check '[ $? -eq 0 ]' "$m: resume of the old checkpoint runs ($(tail -2 train.$m))"
  check 'paste -d, run-$m/metrics.csv $FX/$m-metrics.csv | awk -F, "NR > 1 {
    for (k = 3; k <= 8; k++) { a = \$k; b = \$(k + 8); d = a - b; if (d < 0) d = -d; s = (b < 0 ? -b : b);
      if (s < 1e-3) s = 1e-3; if (d > (NR <= 12 ? 1e-5 : 1e-3) * s) bad++ } if (\$1 != \$9) bad++; n++ }
    END { exit !(n == 20 && bad == 0) }"' "$m: resumed steps equal the old uninterrupted run's"
  check 'json_close run-$m/eval.json $FX/$m-final.eval.json 1e-4' "$m: final evaluation equals the old run's"

  # a run of 0 steps saves the initial weights: each scheme draws what the old code drew
  for sc in he koch torch; do
    rm -rf run-i && $S train $m.ini --set run.dir=run-i --set train.steps=0 --set train.epochs=0 \
      --set train.eval=0 --set init.scheme=$sc >/dev/null 2>&1 && $S export run-i/model.smpi --out i.st >/dev/null 2>&1
    check '[ $? -eq 0 ] && tensors_match i.st $FX/$m-init-$sc.tensors' "$m: init.scheme = $sc gives the old initial weights"
  done
done

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
