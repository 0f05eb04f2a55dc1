#!/usr/bin/env bash
# e2e_hostile: what a hostile or careless user types, through the command
# line (issue 15): extra arguments, hex and malformed values in --set,
# checkpoints whose CRCs are valid but whose content is not (huge sections,
# a config claiming a huge layer, all-NaN parameters, absurd state values).
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

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
