#!/usr/bin/env bash
# bench/coseg_errors (docs/coseg.md, "Where the Jaccard is lost"): on a small
# synth coseg test set and the same images with class masks, predictions whose
# answers are known by construction (the true masks, the largest other object,
# nothing, and a mix of them counted by hand); on a trained model's masks from
# `siamese segment`, the same Jaccard as `siamese eval`; bad input stops it
# with one line.
set -u
cd "$(dirname "$0")/.."
NAME=e2e_coseg_errors
. tests/lib_e2e.sh
E=${BUILD:-build}/bench/coseg_errors
[ -x "$E" ] || { echo "$NAME: $E not built (make test-build)"; echo "0 passed, 1 failed"; exit 1; }

# 8 test pairs of 48x48 (pairs 3 and 7 without a common object), twice: object and class masks
G=(--pairs 40 --side 48 --seed 3)
check "synth coseg" "$S" synth coseg --out "$T/tr" --test-out "$T/te" "${G[@]}"
check "synth coseg --class-masks" "$S" synth coseg --class-masks --out "$T/ctr" --test-out "$T/cte" "${G[@]}"

# field KIND TEXT FILE: the number after the first TEXT on the line of KIND
field() { grep "^$1: " "$3" | grep -o "$2 [0-9.na]*" | head -1 | awk '{print $NF}'; }
want() { # description, expected, actual
  if [ "$2" = "$3" ]; then ok; else bad "$1: want '$2', got '$3'"; fi
}

# ---- predictions with known answers --------------------------------------------
for kind in right other empty; do
  mkdir -p "$T/$kind"
  "$E" "$T/te" "$T/cte" "$T/$kind" --write "$kind" >/dev/null 2>"$T/err" || bad "--write $kind: $(cat "$T/err")"
  # --unseen 200: every class counts as seen, so one line holds all 12 images
  "$E" "$T/te" "$T/cte" "$T/$kind" --unseen 200 >"$T/$kind.txt" 2>&1 || bad "$kind: $(cat "$T/$kind.txt")"
done
grep -q '^8 pairs: 12 images with a common object (12 seen, 0 unseen), 4 without$' "$T/right.txt" && ok ||
  bad "counts: $(head -1 "$T/right.txt")"
want "right: Jaccard" 1.0000 "$(field seen Jaccard "$T/right.txt")"
want "right: picked" 1.0000 "$(field seen 'object picked' "$T/right.txt")"
want "right: without other objects" 1.0000 "$(field seen "other objects' pixels" "$T/right.txt")"
want "right: on the common object" 1.0000 "$(field seen 'marked pixels' "$T/right.txt")"
want "right: nothing predicted for the pairs without" 1.0000 "$(field none 'empty predictions' "$T/right.txt")"
want "other: Jaccard" 0.0000 "$(field seen Jaccard "$T/other.txt")"
want "other: picked" 0.0000 "$(field seen 'object picked' "$T/other.txt")"
grep -q '^seen: marked pixels 0.0000 on the common object, 1.0000 on other objects, 0.0000 on background; empty predictions 0.0000$' \
  "$T/other.txt" && ok || bad "other: all marked pixels on other objects: $(cat "$T/other.txt")"
want "other: pairs without, objects marked" 0.0000 "$(field none 'empty predictions' "$T/other.txt")"
want "empty: Jaccard" 0.0000 "$(field seen Jaccard "$T/empty.txt")"
grep -q '^seen: marked pixels nan on the common object, nan on other objects, nan on background; empty predictions 1.0000$' \
  "$T/empty.txt" && ok || bad "empty: nothing marked: $(cat "$T/empty.txt")"
# the mix: pair 0 right, pairs 1, 2 empty, the rest the other object; pairs 3
# and 7 have no common object, so 2 of 12 images are picked, with Jaccard 1
mkdir -p "$T/mix"
cp "$T/other"/* "$T/mix/" && cp "$T/right"/pair-0-* "$T/mix/" && cp "$T/empty"/pair-[12]-* "$T/mix/"
"$E" "$T/te" "$T/cte" "$T/mix" --unseen 200 >"$T/mix.txt" 2>&1
want "mix: Jaccard" 0.1667 "$(field seen Jaccard "$T/mix.txt")"
grep -q '^seen: 12 images, Jaccard 0.1667, object picked 0.1667 (Jaccard 1.0000 picked, 0.0000 not), ' "$T/mix.txt" && ok ||
  bad "mix: $(head -2 "$T/mix.txt")"
want "mix: empty predictions 4 of 12" 0.3333 "$(sed -n 's/^seen: marked.*empty predictions \([0-9.]*\)$/\1/p' "$T/mix.txt")"
# --pairs 1: pair 0 alone
"$E" "$T/te" "$T/cte" "$T/mix" --pairs 1 --unseen 200 >"$T/one.txt" 2>&1 &&
  grep -q '^1 pairs: 2 images with a common object (2 seen, 0 unseen), 0 without$' "$T/one.txt" && ok ||
  bad "--pairs 1: $(head -1 "$T/one.txt")"
# without --pairs the pairs are read while both masks are there: pair 2 without its b mask ends them
# at 2 pairs (its a mask was counted before)
mkdir -p "$T/half" && cp "$T/right"/* "$T/half/" && rm "$T/half/pair-2-b.mask.png"
"$E" "$T/te" "$T/cte" "$T/half" --unseen 200 >"$T/half.txt" 2>&1 &&
  grep -q '^2 pairs: 4 images with a common object (4 seen, 0 unseen), 0 without$' "$T/half.txt" && ok ||
  bad "a pair with one mask is not counted: $(head -1 "$T/half.txt")"

# ---- a trained model's masks: the Jaccard of siamese eval -------------------------
R=(--set run.dir="$T/run" --set data.train="$T/tr" --set data.test="$T/te" --set data.shape= --set init.from=
  --set train.steps=2 --set sampler.batch=8 --set train.eval=0 --set optim.warmup_steps=0 --set checkpoint.every=0)
if "$S" train configs/coseg-fmnist.ini "${R[@]}" >"$T/train.log" 2>&1; then ok; else
  bad "train 2 steps: $(tail -2 "$T/train.log")"
fi
M="$T/run/model.smpi"
check "segment" "$S" segment "$M" --data "$T/te" --out "$T/seg" --pairs 8
check "eval" "$S" eval "$M" --data "$T/te" --train "$T/tr" --json "$T/e.json"
"$E" "$T/te" "$T/cte" "$T/seg" >"$T/seg.txt" 2>&1 || bad "on segment's masks: $(cat "$T/seg.txt")"
js() { sed -n "s/.*\"$1\": \([-0-9.e]*\).*/\1/p" "$T/e.json" | awk '{printf "%.4f", $1}'; }
nseen=$(sed -n 's/.*"pairs_seen": \([0-9]*\).*/\1/p' "$T/e.json")
if [ "$nseen" -gt 0 ]; then
  want "seen Jaccard as eval" "$(js jaccard_seen)" "$(field seen Jaccard "$T/seg.txt")"
else ok; fi
want "Jaccard of all 12 as eval" "$(js jaccard)" \
  "$("$E" "$T/te" "$T/cte" "$T/seg" --unseen 200 | sed -n 's/^seen: .*Jaccard \([0-9.]*\), object.*/\1/p')"
want "empty, no common object, as eval" "$(js empty_none)" "$(field none 'empty predictions' "$T/seg.txt")"

# ---- --features: picking with the true object regions, against numpy -----------
# random ReLU-ed features (3 x 4 x 4 for 48 x 48: cells of 12 x 12 pixels)
# pooled per object by a numpy loop over the class masks --write classes gives
PY=${PYTHON:-/usr/bin/python3}   # with numpy (make deps)
if "$PY" -c "import numpy" 2>/dev/null; then
  mkdir -p "$T/cls"
  check "--write classes" "$E" "$T/te" "$T/cte" "$T/cls" --write classes
  mkdir -p "$T/cls-big"
  expect_error "--write classes past its bound" "are more than 1000 values: use a smaller test set" 1 \
    env COSEG_ERRORS_MAX_VALUES=1000 "$E" "$T/te" "$T/cte" "$T/cls-big" --write classes
  [ -z "$(ls "$T/cls-big")" ] && ok || bad "--write classes past its bound wrote $(ls "$T/cls-big")"
  ref=$("$PY" - "$T" <<'PY'
import sys, numpy as np
t = sys.argv[1]
C = np.load(t + "/cls/classes.npy").astype(int).reshape(-1, 48, 48)
P = np.load(t + "/cls/pairs.npy").astype(int)
rng = np.random.default_rng(5)
F = rng.standard_normal((len(C), 3, 4, 4)).astype(np.float32)
np.save(t + "/feat.emb.npy", F.reshape(len(C), -1))
def objects(i):
    out = {}
    for c in range(1, 256):
        w = (C[i] == c).reshape(4, 12, 4, 12).sum(axis=(1, 3))
        if w.sum():
            v = (np.maximum(F[i].astype(np.float64), 0) * w).sum(axis=(1, 2))
            out[c] = v / np.linalg.norm(v) if np.linalg.norm(v) > 0 else v
    return out
got = {0: [], 1: []}
for a, b, same in P:
    if not same:
        continue
    A, B = objects(a), objects(b)
    # the common class: the one of both images
    k = (set(A) & set(B)).pop()
    for X, Y in ((A, B), (B, A)):
        sc = {c: max(float(X[c] @ Y[d]) for d in Y) for c in X}
        got[k - 1 >= 8].append(all(sc[k] > sc[c] for c in X if c != k))
print("%.4f %.4f" % tuple(np.mean(got[u]) if got[u] else float("nan") for u in (0, 1)))
PY
)
  "$E" "$T/te" "$T/cte" "$T/right" --features "$T/feat" --feature-shape 3x4x4 >"$T/f.txt" 2>&1
  [ -n "${VERBOSE:-}" ] && echo "numpy $ref; $(tail -1 "$T/f.txt")"
  want "--features against numpy" "$ref" \
    "$(sed -n 's/.*features: object picked \([0-9.na]*\) seen, \([0-9.na]*\) unseen$/\1 \2/p' "$T/f.txt")"
  "$PY" -c "import numpy as np, sys; np.save(sys.argv[1], np.ones((16, 48), np.float32))" "$T/flat.emb.npy"
  "$E" "$T/te" "$T/cte" "$T/right" --features "$T/flat" --feature-shape 3x4x4 >"$T/flat.txt" 2>&1
  grep -q "features: object picked 0.0000 seen" "$T/flat.txt" && ok || bad "equal features: ties pick nothing: $(tail -2 "$T/flat.txt")"
  expect_error "features of another size" "expected 16 x 12 float32" 1 \
    "$E" "$T/te" "$T/cte" "$T/right" --features "$T/flat" --feature-shape 3x2x2
else
  echo "skip: --features checks ($PY has no numpy)"
fi
expect_error "features alone" "--features PREFIX and --feature-shape CxHxW go together" 1 \
  "$E" "$T/te" "$T/cte" "$T/right" --features "$T/feat"
expect_error "cells that do not divide" "--feature-shape 3x5x4: expected CxHxW with H and W dividing the images' 48x48" 1 \
  "$E" "$T/te" "$T/cte" "$T/right" --features "$T/feat" --feature-shape 3x5x4

# ---- bad input -------------------------------------------------------------------
check "synth seed 4" "$S" synth coseg --class-masks --out "$T/ctr4" --test-out "$T/cte4" --pairs 40 --side 48 --seed 4
expect_error "another seed" "differ in sample" 1 "$E" "$T/te" "$T/cte4" "$T/right"
expect_error "class masks as the test set" "not a co-segmentation test set" 1 "$E" "$T/cte" "$T/cte" "$T/right"
expect_error "test set as the class masks" "with class masks: make it with" 1 "$E" "$T/te" "$T/te" "$T/right"
mkdir -p "$T/gone" && cp "$T/right"/* "$T/gone/" && rm "$T/gone/pair-5-b.mask.png"
expect_error "a missing mask" "pair-5-b.mask.png: cannot open" 1 "$E" "$T/te" "$T/cte" "$T/gone" --pairs 8
mkdir -p "$T/none"
expect_error "no masks at all" "no pair-0-a.mask.png" 1 "$E" "$T/te" "$T/cte" "$T/none"
check "synth 32" "$S" synth coseg --out "$T/t32" --test-out "$T/t32te" --pairs 40 --side 32 --seed 3
check "synth 32 classes" "$S" synth coseg --class-masks --out "$T/c32" --test-out "$T/c32te" --pairs 40 --side 32 --seed 3
mkdir -p "$T/small" && "$E" "$T/t32te" "$T/c32te" "$T/small" --write right >/dev/null 2>&1
expect_error "a mask of another size" "32x32 with 1 channels, expected a 48x48 grey mask" 1 "$E" "$T/te" "$T/cte" "$T/small"
expect_error "more pairs than the set" "--pairs 9: " 1 "$E" "$T/te" "$T/cte" "$T/right" --pairs 9
expect_error "bad --unseen" "--unseen 8,x" 2 "$E" "$T/te" "$T/cte" "$T/right" --unseen 8,x
expect_error "bad --write" "bad option --write wrong" 2 "$E" "$T/te" "$T/cte" "$T/right" --write wrong

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
