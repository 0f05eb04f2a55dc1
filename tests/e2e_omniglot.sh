#!/usr/bin/env bash
# e2e_omniglot: `make omniglot` end to end on a generated Omniglot-like
# folder (images_background/: 12 alphabets x 10 characters x 8 drawings;
# images_evaluation/: Koch's ten evaluation alphabets and two others, 20
# characters x 4 drawings; 28x28 PGM files named like the archives' PNGs),
# with the recipe shortened by OMNIGLOT_SETS: the three datasets (three
# held-out background alphabets... here one, 10 %), training on 2 ranks with
# validation on the held-out alphabet's within-group trials every 8 steps
# (eval.csv, best.smpi), Koch's protocol (10 alphabets, 20-way 1-shot,
# paired drawings, 4000 trials) and all 12 alphabets scored into JSON; a
# second `make omniglot` trains nothing and scores the same; no
# OMNIGLOT_DIR is refused with one line. Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
T=$(mktemp -d /tmp/siamese-e2e-omniglot.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
check() { # description, then a command that must succeed
  local what=$1; shift
  if "$@" >/dev/null 2>"$T/check.err"; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $what: $(head -c 300 "$T/check.err")"; fi
}
BUILD=${SIAMESE_BUILD:-build}
[ -x ./siamese ] || { echo "e2e_omniglot: ./siamese not built"; echo "0 passed, 1 failed"; exit 1; }

python3 - "$T/omni" <<'PY'
import os, random, sys
root = sys.argv[1]
koch = ["Atlantean", "Ge_ez", "Glagolitic", "Gurmukhi", "Kannada", "Malayalam", "Manipuri",
        "Old_Church_Slavonic_(Cyrillic)", "Tengwar", "Tibetan"]
sets = {"images_background": (["Bg%02d" % i for i in range(12)], 10, 8),
        "images_evaluation": (koch + ["Angelic", "Keble"], 20, 4)}
rng = random.Random(3)
n = 0
for part, (alphabets, chars, drawings) in sets.items():
    for a in alphabets:
        for c in range(1, chars + 1):
            n += 1
            d = os.path.join(root, part, a, "character%02d" % c)
            os.makedirs(d)
            # a character: a few strokes (ink 0 on 255), jittered per drawing
            strokes = [(rng.randrange(4, 24), rng.randrange(4, 24), rng.choice((0, 1))) for _ in range(3)]
            for k in range(1, drawings + 1):
                px = bytearray([255] * 784)
                for (x, y, vertical) in strokes:
                    x += rng.randrange(-1, 2); y += rng.randrange(-1, 2)
                    for t in range(-4, 5):
                        xx, yy = (x, y + t) if vertical else (x + t, y)
                        if 0 <= xx < 28 and 0 <= yy < 28: px[yy * 28 + xx] = 0
                with open(os.path.join(d, "%04d_%02d.png" % (n, k)), "wb") as f:
                    f.write(b"P5\n28 28\n255\n" + bytes(px))
PY

export OPENBLAS_NUM_THREADS=1
SETS="--set train.steps=24 --set eval.every=8 --set eval.nway=5 --set eval.trials=200 --set sampler.p=8 --set sampler.k=4 --set checkpoint.every=8"
mk() { make --no-print-directory omniglot BUILD="$BUILD" OMNIGLOT_DIR="$T/omni" DATA="$T/data" RUNS="$T/runs" NP=2 \
          OMNIGLOT_SETS="$SETS" "$@"; }
mk >"$T/make1.out" 2>&1; rc=$?
[ -n "${VERBOSE:-}" ] && cat "$T/make1.out"
R=$T/runs/omniglot-28
check "make omniglot finishes (exit $rc)" test $rc -eq 0
check "the three datasets" test -d "$T/data/omniglot-train-28rm.lmdb" -a -d "$T/data/omniglot-val-28rm.lmdb" \
  -a -d "$T/data/omniglot-eval-28.lmdb"
check "one background alphabet of 12 held out for validation" \
  grep -Eq '^classes +10$' <(./siamese inspect "$T/data/omniglot-val-28rm.lmdb")
check "the other 11 trained on with their three quarter turns, all four mirrored: 880 classes" \
  grep -Eq '^classes +880$' <(./siamese inspect "$T/data/omniglot-train-28rm.lmdb")
check "training on 2 ranks" grep -q "2 ranks" "$T/make1.out"
check "eval.csv: within-group accuracy first, rows at 8, 16, 24" \
  test "$(head -n 1 "$R/eval.csv" | cut -d, -f1-2)" = step,group_nway_accuracy -a \
  "$(tail -n +2 "$R/eval.csv" | cut -d, -f1 | tr '\n' ' ')" = "8 16 24 "
check "best.smpi and model.smpi" test -s "$R/best.smpi" -a -s "$R/model.smpi"
check "validation share printed" grep -q "^validation: 3 passes" "$T/make1.out"
j=$R/koch.json
check "Koch's protocol: 4000 within-group 20-way 1-shot trials, paired drawings, 10 alphabets" \
  python3 -c "
import json, sys; r = json.load(open('$j'))
ok = r['within_group_trials'] == 4000 and r['within_group_nway'] == 20 and r['within_group_kshot'] == 1 \
  and r['within_group_drawings'] == 'paired' and r['within_group_groups'] == 10 \
  and sorted(r['within_group_by_group']) == sorted('Atlantean Ge_ez Glagolitic Gurmukhi Kannada Malayalam Manipuri Old_Church_Slavonic_(Cyrillic) Tengwar Tibetan'.split()) \
  and r['within_group_ci95_low'] <= r['within_group_accuracy'] <= r['within_group_ci95_high']
sys.exit(0 if ok else 1)"
check "all evaluation alphabets: 12 groups, 4000 trials" python3 -c "
import json, sys; r = json.load(open('$R/all20.json'))
sys.exit(0 if r['within_group_trials'] == 4000 and r['within_group_groups'] == 12 else 1)"
check "Koch's protocol again with 16 views a sample, the same trials" python3 -c "
import json, sys; a = json.load(open('$j')); b = json.load(open('$R/koch-tta.json'))
sys.exit(0 if b['tta_views'] == 16 and a['tta_views'] == 1 and b['within_group_trials'] == 4000 and b['within_group_by_group'].keys() == a['within_group_by_group'].keys() else 1)"
check "the model learnt something: Koch accuracy above chance (1/20) by far" python3 -c "
import json, sys; sys.exit(0 if json.load(open('$j'))['within_group_accuracy'] > 0.3 else 1)"
cp "$j" "$T/koch1.json"

mk >"$T/make2.out" 2>&1; rc=$?
check "second make omniglot finishes (exit $rc)" test $rc -eq 0
check "it resumes the finished run and trains nothing" grep -q "done: 0 steps" "$T/make2.out"
check "and scores the same" python3 -c "
import json, sys; a = json.load(open('$T/koch1.json')); b = json.load(open('$j'))
sys.exit(0 if a['within_group_accuracy'] == b['within_group_accuracy'] else 1)"

make --no-print-directory omniglot BUILD="$BUILD" DATA="$T/data" RUNS="$T/runs" >"$T/make3.out" 2>&1; rc=$?
check "no OMNIGLOT_DIR: exit 2 naming it (exit $rc)" test $rc -eq 2
check "  ... one line naming OMNIGLOT_DIR" grep -q "set OMNIGLOT_DIR" "$T/make3.out"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
