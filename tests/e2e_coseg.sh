#!/usr/bin/env bash
# e2e_coseg: object co-segmentation from the command line. `siamese synth
# coseg`: bad arguments fail with exit 2 and one line, a bad source with exit
# 1 naming the file, and neither dataset is left behind; a small real run
# from Debian's Fashion-MNIST gives the datasets its options ask for (inspect
# --verify reads every record). Runs from the repo root with ./siamese built.
# Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
S=${SIAMESE:-./siamese}
FM=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-coseg.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

# expect_error NAME CODE WANT CMD...: exit CODE, one stderr line containing
# WANT, and no dataset (nor .tmp-*) under $T/out*.
expect_error() {
  local name=$1 code=$2 want=$3; shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$? n first
  n=$(wc -l <"$T/stderr")
  first=$(head -n 1 "$T/stderr")
  if [ $rc -eq "$code" ] && [ "$n" -eq 1 ] && [[ "$first" == *"$want"* ]]; then ok; else
    bad "$name: exit $rc (want $code), $n stderr lines, want '$want' in: $first"
  fi
  if compgen -G "$T/out*" >/dev/null; then bad "$name: left $(ls -d "$T"/out*)"; rm -rf "$T"/out*; else ok; fi
}

[ -x "$S" ] || { echo "e2e_coseg: $S not built (make siamese)"; echo "0 passed, 1 failed"; exit 1; }

# ---- synth coseg: bad arguments and sources ----------------------------------
A=(--out "$T/out-train" --test-out "$T/out-test")
expect_error "other kind" 2 "unknown kind 'segment' (known: mot, coseg)" "$S" synth segment "${A[@]}"
expect_error "no test-out" 2 "--out DB and --test-out DB are required" "$S" synth coseg --out "$T/out-train"
expect_error "side 31" 2 "--side 31: expected a whole number in [32, 512]" "$S" synth coseg "${A[@]}" --side 31
expect_error "side junk" 2 "--side 64x: expected a whole number" "$S" synth coseg "${A[@]}" --side 64x
expect_error "pairs 0" 2 "--pairs 0: expected a whole number in [1, 1e8]" "$S" synth coseg "${A[@]}" --pairs 0
expect_error "seed -1" 2 "--seed -1: expected a whole number" "$S" synth coseg "${A[@]}" --seed -1
expect_error "no value" 2 "--seed needs a value" "$S" synth coseg "${A[@]}" --seed
expect_error "unknown option" 2 "unexpected argument '--colour'" "$S" synth coseg "${A[@]}" --colour x
expect_error "no source" 1 "$T/none/train-labels-idx1-ubyte.gz: cannot open" \
  "$S" synth coseg "${A[@]}" --fmnist "$T/none"
mkdir -p "$T/src"
cp "$FM"/* "$T/src/" && printf 'junk' >"$T/src/t10k-labels-idx1-ubyte.gz"
expect_error "damaged test labels" 1 "$T/src/t10k-labels-idx1-ubyte.gz" \
  "$S" synth coseg "${A[@]}" --fmnist "$T/src" --pairs 4
mkdir -p "$T/exists"
expect_error "existing test-out" 1 "already exists" "$S" synth coseg --out "$T/out-train" --test-out "$T/exists"
"$S" synth coseg --help | grep -q "usage: siamese synth coseg" && ok || bad "synth --help"

# ---- a small real run ---------------------------------------------------------
if "$S" synth coseg --out "$T/tr" --test-out "$T/te" --pairs 40 --side 48 --seed 3 >"$T/log" 2>&1; then ok; else
  bad "synth run: $(cat "$T/log")"
fi
"$S" inspect "$T/tr" --verify >"$T/tr.txt" 2>&1 && ok || bad "inspect --verify train: $(tail -1 "$T/tr.txt")"
"$S" inspect "$T/te" --verify >"$T/te.txt" 2>&1 && ok || bad "inspect --verify test: $(tail -1 "$T/te.txt")"
grep -q '^count *80$' "$T/tr.txt" && grep -q '^pairs *40$' "$T/tr.txt" && grep -q '^count *16$' "$T/te.txt" &&
  grep -q '^pairs *8$' "$T/te.txt" && ok || bad "40 / 8 pairs of 2 images each"
grep -q '^shape *1x48x48' "$T/tr.txt" && grep -q '^masks *yes' "$T/tr.txt" && ok || bad "1x48x48 with masks"
grep -Eq '^ +8 +0 +bag$' "$T/tr.txt" && grep -Eq '^ +9 +0 +ankle-boot$' "$T/tr.txt" && ok ||
  bad "no bag or ankle boot in training"
"$S" synth coseg --out "$T/tr2" --test-out "$T/te2" --pairs 40 --side 48 --seed 3 >/dev/null 2>&1
"$S" inspect "$T/tr" --dump 17 --pgm "$T/a.pgm" >/dev/null && "$S" inspect "$T/tr2" --dump 17 --pgm "$T/b.pgm" >/dev/null &&
  cmp -s "$T/a.pgm" "$T/b.pgm" && ok || bad "the same seed gives the same images"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
