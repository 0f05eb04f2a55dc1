#!/usr/bin/env bash
# e2e_protocol: sample names and the one-shot protocols from the command line,
# on a generated Omniglot-like tree (the ten evaluation alphabets of Koch's
# protocol plus two others, 20 characters x 3 drawings of 12x12): import with
# names and --split-by group, inspect --names, embed's names.txt, a tiny
# model trained for a few steps, eval --protocol koch with --save-trials, the
# same trials scored again through --trials-file (same accuracy), and bad
# trials files and options refused with one line. Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
NAME=e2e_protocol
. tests/lib_e2e.sh

# ---- the tree: characters of one alphabet share a base pattern plus their own ----
python3 - "$T/root" <<'PY'
import os, random, sys
root = sys.argv[1]
groups = ["Atlantean", "Ge_ez", "Glagolitic", "Gurmukhi", "Kannada", "Malayalam", "Manipuri",
          "Old_Church_Slavonic_(Cyrillic)", "Tengwar", "Tibetan", "Angelic", "Keble"]
rng = random.Random(5)
n = 0
for g in groups:
    for c in range(1, 21):
        n += 1
        d = os.path.join(root, g, "character%02d" % c)
        os.makedirs(d)
        base = [rng.randrange(256) for _ in range(144)]
        for k in range(1, 4):
            px = bytes(max(0, min(255, b + rng.randrange(-20, 21))) for b in base)
            with open(os.path.join(d, "%04d_%02d.png" % (n, k)), "wb") as f:
                f.write(b"P5\n12 12\n255\n" + px)
PY
check "import the tree" $S import --format omniglot --root "$T/root" --out "$T/all.lmdb"
check "import split by group" $S import --format omniglot --root "$T/root" --out "$T/bg.lmdb" \
  --split-by group --test-fraction 0.25 --test-out "$T/ev.lmdb" --seed 2
$S inspect "$T/ev.lmdb" >"$T/ev.txt"
check "3 of 12 groups (60 classes) held out" grep -Eq '^classes +60$' "$T/ev.txt"
check "held-out classes come in whole groups of 20" \
  test "$(awk '$1 ~ /^[0-9]+$/ && NF == 3 {split($3, a, "/"); n[a[1]]++} END {for (g in n) if (n[g] != 20) bad = 1; print length(n) + 0 (bad ? "x" : "")}' "$T/ev.txt")" = 3
check "import --mirror" $S import --format omniglot --root "$T/root" --out "$T/mir.lmdb" --mirror
check "--mirror: 480 classes, the mirrored after the 240" bash -c "$S inspect '$T/mir.lmdb' | grep -Eq '^classes +480$' && $S inspect '$T/mir.lmdb' | grep -Eq '^ +240 +3 +Angelic/character01@mirror$'"
$S inspect "$T/all.lmdb" --names >"$T/names.txt"
check "inspect: names yes" grep -Eq '^names +yes$' "$T/names.txt"
check "inspect --names: id, label, name" grep -Pq '^0\t0\tAngelic/character01/0201_01.png$' "$T/names.txt"
check "inspect --names: 720 samples" test "$(grep -Pc '^[0-9]+\t[0-9]+\t' "$T/names.txt")" -eq 720
$S inspect "$T/all.lmdb" --dump 5 --pgm "$T/s5.pgm" >"$T/dump.txt"
check "inspect --dump names the sample" grep -q 'sample 5 Angelic/character02/0202_03.png, label 1' "$T/dump.txt"

# ---- a model, its embeddings and names ------------------------------------------------
check "train a tiny model" $S train configs/tiny.ini --set run.dir="$T/run" --set data.train="$T/all.lmdb" \
  --set data.test= --set sampler.p=8 --set sampler.k=3 --set train.steps=4 --set checkpoint.every=0
M=$T/run/model.smpi
check "embed" $S embed "$M" --data "$T/all.lmdb" --out "$T/emb"
check "names.txt: one name per sample, in sample order" \
  cmp "$T/emb.names.txt" <(grep -P '^[0-9]+\t' "$T/names.txt" | cut -f3)

# ---- Koch's protocol, saved and scored again ---------------------------------------------
check "eval --protocol koch" $S eval "$M" --data "$T/all.lmdb" --protocol koch --trials 200 \
  --save-trials "$T/koch.trials" --json "$T/koch.json"
J() { python3 -c "import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(v if not isinstance(v, float) else repr(v))" "$@"; }
check "json: 20-way 1-shot, 200 trials, paired" test "$(J "$T/koch.json" within_group_nway) $(J "$T/koch.json" within_group_kshot) $(J "$T/koch.json" within_group_trials) $(J "$T/koch.json" within_group_drawings)" = "20 1 200 paired"
check "json: trials from the 10 evaluation alphabets only" \
  python3 -c "import json,sys; b=json.load(open(sys.argv[1]))['within_group_by_group']; assert set(b) <= set('Atlantean Ge_ez Glagolitic Gurmukhi Kannada Malayalam Manipuri Old_Church_Slavonic_(Cyrillic) Tengwar Tibetan'.split()) and len(b) >= 8 and sum(v['trials'] for v in b.values()) == 200" "$T/koch.json"
check "json: accuracy inside its 95% interval" \
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); assert 0 <= j['within_group_ci95_low'] <= j['within_group_accuracy'] <= j['within_group_ci95_high'] <= 1" "$T/koch.json"
check "saved trials: 200 lines of query, 20 supports, answer" \
  test "$(grep -v '^#' "$T/koch.trials" | awk -F'\t' 'NF == 22' | wc -l)" -eq 200
check "saved trials: supports share one drawing, the query has another" \
  test -z "$(grep -Pv '^(#|kshot)' "$T/koch.trials" | awk -F'\t' '{d = substr($2, length($2) - 5); for (i = 3; i <= 21; i++) if (substr($i, length($i) - 5) != d) print; if (substr($1, length($1) - 5) == d) print}')"
check "eval --trials-file" $S eval "$M" --data "$T/all.lmdb" --trials-file "$T/koch.trials" --json "$T/file.json"
check "the file's trials score as when drawn" test "$(J "$T/koch.json" within_group_accuracy)" = "$(J "$T/file.json" trials_file_accuracy)"
check "eval prints the interval" bash -c "$S eval '$M' --data '$T/all.lmdb' --within-group --nway 5 --trials 50 | grep -q '5-way 1-shot within group .*(50 trials, 95% interval'"

# ---- test-time augmentation ----------------------------------------------------------------
check "eval --tta 1" $S eval "$M" --data "$T/all.lmdb" --protocol koch --trials 200 --tta 1 --json "$T/tta1.json"
check "--tta 1 scores as without" test "$(J "$T/koch.json" within_group_accuracy)" = "$(J "$T/tta1.json" within_group_accuracy)"
check "eval --tta 4 with distortions given" $S eval "$M" --data "$T/all.lmdb" --protocol koch --trials 200 --tta 4 \
  --tta-set augment.rotate=10 --tta-set augment.translate=2 --json "$T/tta4.json"
$S eval "$M" --data "$T/all.lmdb" --protocol koch --trials 200 --tta 4 --tta-set augment.rotate=10 \
  --tta-set augment.translate=2 --json "$T/tta4b.json" >/dev/null 2>&1
check "--tta 4 repeats exactly" test "$(J "$T/tta4.json" within_group_accuracy) $(J "$T/tta4.json" recall_at_1)" = \
  "$(J "$T/tta4b.json" within_group_accuracy) $(J "$T/tta4b.json" recall_at_1)"
check "--tta 4 changes the embeddings (Recall@1)" test "$(J "$T/tta4.json" recall_at_1)" != "$(J "$T/koch.json" recall_at_1)"
expect_error "--tta without distortions" "--tta 3: the checkpoint's [augment] distorts nothing" 2 \
  $S eval "$M" --data "$T/all.lmdb" --tta 3
expect_error "--tta-set alone" "--tta-set changes the views of --tta N" 2 \
  $S eval "$M" --data "$T/all.lmdb" --tta-set augment.rotate=5
expect_error "--tta-set outside [augment]" "--tta-set optim.lr=1: expected augment.KEY=VALUE" 2 \
  $S eval "$M" --data "$T/all.lmdb" --tta 2 --tta-set optim.lr=1
expect_error "--tta-set: a bad value" "--tta-set: --set augment.rotate=500" 2 \
  $S eval "$M" --data "$T/all.lmdb" --tta 2 --tta-set augment.rotate=500
expect_error "--tta 0" "--tta 0: expected a whole number in [1, 1000]" 2 $S eval "$M" --data "$T/all.lmdb" --tta 0

# ---- bad input ------------------------------------------------------------------------------
{ head -n 3 "$T/koch.trials"; head -n 4 "$T/koch.trials" | tail -n 1 | sed 's/^[^\t]*\t/Atlantean\/character99\/0000_01.png\t/'; } >"$T/bad.trials"
expect_error "trials file: unknown name" "bad.trials:4: field 1: no sample named 'Atlantean/character99/0000_01.png'" 1 \
  $S eval "$M" --data "$T/all.lmdb" --trials-file "$T/bad.trials"
printf 'kshot 1\nonly-one-field\n' >"$T/junk.trials"
expect_error "trials file: a bad line" "junk.trials:2: 'only-one-field' is neither a trial" 1 \
  $S eval "$M" --data "$T/all.lmdb" --trials-file "$T/junk.trials"
expect_error "koch on a set without its alphabets" "has no group 'Atlantean'" 1 \
  $S eval "$M" --data "$T/bg.lmdb" --protocol koch --trials 10
expect_error "koch with other groups" "--protocol koch fixes" 2 \
  $S eval "$M" --data "$T/all.lmdb" --protocol koch --groups Keble
expect_error "an unknown drawing rule" "--drawings some" 2 $S eval "$M" --data "$T/all.lmdb" --drawings some
expect_error "--save-trials alone" "add --within-group" 2 $S eval "$M" --data "$T/all.lmdb" --save-trials "$T/x"
for c in 1 2 3; do mkdir -p "$T/nod/Grp/char$c"; for f in a b; do cp "$T/root/Keble/character01/0221_01.png" "$T/nod/Grp/char$c/$f.png"; done; done
check "import a tree without drawing numbers" $S import --format omniglot --root "$T/nod" --out "$T/nod.lmdb"
expect_error "paired drawings need drawing indices" "'Grp/char1/a.png' has no drawing index" 1 \
  $S eval "$M" --data "$T/nod.lmdb" --drawings paired --nway 2 --trials 5
check "any drawings work there" $S eval "$M" --data "$T/nod.lmdb" --within-group --nway 3 --trials 5

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
