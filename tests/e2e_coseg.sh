#!/usr/bin/env bash
# e2e_coseg: object co-segmentation from the command line. `siamese synth
# coseg`: bad arguments fail with exit 2 and one line, a bad source with exit
# 1 naming the file, and neither dataset is left behind; a small real run
# from Debian's Fashion-MNIST gives the datasets its options ask for (inspect
# --verify reads every record), and more training pairs keep the test set; a few training steps of the recipe
# (configs/coseg-fmnist-pretrain.ini on single objects, then
# configs/coseg-fmnist.ini and its ablation from that encoder) on it, [init]
# from and its errors, the end-of-training and `siamese eval` measures (equal; pair counts;
# --tta 2 recorded, other N refused),
# `siamese segment` from a dataset and from two image files (PNG sizes), and
# their bad input. Runs from the repo root with ./siamese built.
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
# More training pairs (the recipe's --pairs 100000 --test-pairs 2000) keep the
# test set of the default --test-pairs (pairs / 5) and extend the training set:
# pair i depends on the seed and i only. Every image and mask, and the labels.
"$S" synth coseg --out "$T/tr3" --test-out "$T/te3" --pairs 70 --test-pairs 8 --side 48 --seed 3 >/dev/null 2>&1 &&
  "$S" inspect "$T/tr3" --verify >"$T/tr3.txt" 2>&1 && grep -q '^pairs *70$' "$T/tr3.txt" && ok ||
  bad "synth --pairs 70 --test-pairs 8: $(tail -1 "$T/tr3.txt")"
same_samples() { # DB1 DB2 COUNT: samples 0 .. COUNT-1 dump alike, names and labels alike
  local i
  for ((i = 0; i < $3; i++)); do
    "$S" inspect "$1" --dump $i --pgm "$T/s1.pgm" >/dev/null 2>&1 &&
      "$S" inspect "$2" --dump $i --pgm "$T/s2.pgm" >/dev/null 2>&1 && cmp -s "$T/s1.pgm" "$T/s2.pgm" || return 1
  done
  cmp -s <("$S" inspect "$1" --names | grep -P '^\d+\t' | head -n "$3") \
    <("$S" inspect "$2" --names | grep -P '^\d+\t' | head -n "$3")
}
same_samples "$T/te" "$T/te3" 16 && ok || bad "--pairs 70 --test-pairs 8 changed the test set of --pairs 40"
same_samples "$T/tr" "$T/tr3" 80 && ok || bad "--pairs 70: its first 40 pairs differ from --pairs 40's"
"$S" synth coseg --out "$T/tr4" --test-out "$T/te4" --pairs 70 --side 48 --seed 3 >/dev/null 2>&1
same_samples "$T/te" "$T/te4" 16 && ok || bad "--pairs 70's first 8 test pairs differ from --pairs 40's"
same_samples "$T/tr" "$T/te" 16 && bad "same_samples finds the training and test images alike" || ok

# ---- a few training steps, eval and segment -------------------------------------
# png_size FILE: "W H" from the IHDR chunk.
png_size() { od -An -tu1 -j16 -N8 "$1" | awk '{print $3 * 256 + $4, $7 * 256 + $8}'; }
# The recipe: the encoder pretrained on single objects (synth coseg --objects
# 1), then co-segmentation from it ([init] from).
"$S" synth coseg --out "$T/one" --test-out "$T/one-te" --pairs 40 --side 48 --objects 1 >/dev/null 2>&1 &&
  "$S" inspect "$T/one" --verify >"$T/one.txt" 2>&1 && grep -Eq '^ +8 +0 +bag$' "$T/one.txt" && ok ||
  bad "synth coseg --objects 1: $(tail -1 "$T/one.txt")"
P=(--set run.dir="$T/pre" --set data.train="$T/one" --set data.test="$T/one-te" --set data.shape= --set train.steps=2
  --set sampler.p=4 --set sampler.k=2 --set train.eval=0 --set optim.warmup_steps=0)
if OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist-pretrain.ini "${P[@]}" >"$T/pre.log" 2>&1; then ok; else
  bad "train coseg-fmnist-pretrain on 48x48: $(tail -3 "$T/pre.log")"
fi
# bench/nn_confusion.py on the pretraining's embeddings (runs), and on six
# hand-placed ones whose nearest neighbours are worked out by hand: classes
# 0 0 1 1 2 2; 0a's neighbour is 1a (10 degrees away, 0b 12), the rest their twin.
PY=${PYTHON:-/usr/bin/python3}   # with numpy (make deps)
if "$PY" -c "import numpy" 2>/dev/null; then
  "$S" embed "$T/pre/model.smpi" --data "$T/one-te" --out "$T/pe" >/dev/null 2>&1 &&
    "$PY" bench/nn_confusion.py "$T/pe" >"$T/conf.txt" 2>&1 && grep -q '^16 samples, Recall@1 ' "$T/conf.txt" && ok ||
    bad "nn_confusion.py on embed's output: $(tail -2 "$T/conf.txt")"
  "$PY" - "$T/hand" <<'PY'
import sys, numpy as np
a = np.radians([0, -12, 10, 18, 90, 100])
np.save(sys.argv[1] + ".emb.npy", np.stack([np.cos(a), np.sin(a)], 1).astype(np.float32))
np.save(sys.argv[1] + ".labels.npy", np.array([0, 0, 1, 1, 2, 2], np.int32))
PY
  "$PY" bench/nn_confusion.py "$T/hand" shirt,coat,bag >"$T/hand.txt" 2>&1
  grep -q '^6 samples, Recall@1 0.8333$' "$T/hand.txt" && grep -Eq '^shirt +50.0 +50.0 +0.0 +0.500 +coat \(50.0 %\)$' "$T/hand.txt" &&
    grep -Eq '^ +bag +0.0 +0.0 +100.0 +1.000 ' "$T/hand.txt" && grep -q '^  shirt / coat: 25.0 %$' "$T/hand.txt" && ok ||
    bad "nn_confusion.py on hand-placed embeddings: $(cat "$T/hand.txt")"
  "$PY" bench/nn_confusion.py --only 0,1 "$T/hand" >"$T/hand2.txt" 2>&1 && grep -q '^4 samples, Recall@1 0.7500$' "$T/hand2.txt" &&
    ! grep -q '^ *2 ' "$T/hand2.txt" && ok || bad "nn_confusion.py --only 0,1: $(cat "$T/hand2.txt")"
  "$PY" bench/nn_confusion.py "$T/none" >"$T/o" 2>"$T/e"; [ $? -ne 0 ] && [ "$(wc -l <"$T/e")" -eq 1 ] &&
    grep -q "run \`siamese embed" "$T/e" && ok || bad "nn_confusion.py without files: $(cat "$T/e")"
else
  echo "skip: nn_confusion.py checks ($PY has no numpy)"
fi
R=(--set run.dir="$T/run" --set data.train="$T/tr" --set data.test="$T/te" --set data.shape=
  --set train.steps=2 --set sampler.batch=8 --set train.eval=1 --set optim.warmup_steps=0 --set init.from="$T/pre/model.smpi")
if OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist.ini "${R[@]}" >"$T/train.log" 2>&1; then ok; else
  bad "train coseg-fmnist on 48x48: $(tail -3 "$T/train.log")"
fi
grep -q "^init: 10 layers from $T/pre/model.smpi\$" "$T/train.log" && ok ||
  bad "the recipe starts from the pretraining's 10 encoder layers: $(grep '^init' "$T/train.log")"
OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist-nocorr.ini "${R[@]}" --set run.dir="$T/run-nc" --set train.eval=0 \
  >"$T/nc.log" 2>&1 && grep -q "^init: 10 layers from $T/pre/model.smpi\$" "$T/nc.log" && ok ||
  bad "the ablation starts from the same encoder: $(tail -3 "$T/nc.log")"
M="$T/run/model.smpi"
# The test set: 8 pairs, i mod 4 = 3 without a common object.
grep -q '"pairs_none": 2,' "$T/run/eval.json" && grep -q '"pairs": 8,' "$T/run/eval.json" &&
  [ $(($(sed -n 's/.*"pairs_seen": \([0-9]*\).*/\1/p;s/.*"pairs_unseen": \([0-9]*\).*/\1/p' "$T/run/eval.json" |
    paste -sd+))) -eq 6 ] && ok || bad "end-of-training eval.json: 6 pairs with a common object, 2 without"
"$S" eval "$M" --data "$T/te" --json "$T/e.json" >"$T/eval.txt" 2>&1 && ok || bad "eval: $(cat "$T/eval.txt")"
grep -v seconds "$T/e.json" >"$T/e1" && grep -v seconds "$T/run/eval.json" >"$T/e2" && cmp -s "$T/e1" "$T/e2" &&
  ok || bad "eval gives the numbers of the end-of-training evaluation"
grep -q 'Jaccard' "$T/eval.txt" && grep -q '"jaccard_unseen"' "$T/e.json" && ok || bad "eval prints and writes Jaccard"
"$S" eval "$M" --data "$T/te" --pairs 3 --json "$T/e3.json" >/dev/null 2>&1 && grep -q '"pairs": 3,' "$T/e3.json" &&
  ok || bad "eval --pairs 3"
# --tta 2: every pair also mirrored left-right (test_coseg_train checks the logits); the JSON says so
"$S" eval "$M" --data "$T/te" --tta 2 --json "$T/et.json" >"$T/et.txt" 2>&1 && grep -q '"tta_views": 2,' "$T/et.json" &&
  grep -q '"tta_views": 1,' "$T/e.json" && grep -q '"pairs": 8,' "$T/et.json" && grep -q 'mirrored left-right' "$T/et.txt" &&
  ok || bad "eval --tta 2 on a co-segmentation model: $(cat "$T/et.txt")"
expect_error "eval --tta 3 on co-segmentation" 2 "--tta 3: a co-segmentation model takes --tta 2 only" \
  "$S" eval "$M" --data "$T/te" --tta 3
expect_error "eval --tta 2 --tta-set on co-segmentation" 2 "--tta-set does not apply" \
  "$S" eval "$M" --data "$T/te" --tta 2 --tta-set augment.rotate=5
"$S" segment "$M" --data "$T/te" --out "$T/segt" --pairs 3 --tta 2 >/dev/null 2>&1 && [ "$(ls "$T/segt" | wc -l)" -eq 13 ] &&
  "$S" segment "$M" --image "$T/a.pgm" --image "$T/b.pgm" --out "$T/segt2" --tta 2 >/dev/null 2>&1 &&
  [ -f "$T/segt2/b.mask.png" ] && ok || bad "segment --tta 2 (--data and --image)"
expect_error "segment --tta 4" 2 "--tta 4: a co-segmentation model takes --tta 2 only" \
  "$S" segment "$M" --data "$T/te" --out "$T/out-s" --tta 4
"$S" segment "$M" --data "$T/te" --out "$T/seg" --pairs 3 >"$T/seg.txt" 2>&1 && ok || bad "segment: $(cat "$T/seg.txt")"
[ "$(ls "$T/seg" | wc -l)" -eq 13 ] && [ "$(png_size "$T/seg/pair-2-b.overlay.png")" = "48 48" ] &&
  [ "$(png_size "$T/seg/overview.png")" = "$((4 * 96 + 5 * 4)) $((3 * 96 + 4 * 4))" ] && ok ||
  bad "segment --pairs 3: 12 pictures of 48x48 and a 4-column overview ($(ls "$T/seg" | wc -l) files)"
"$S" segment "$M" --image "$T/a.pgm" --image "$T/b.pgm" --out "$T/seg2" >/dev/null 2>&1 &&
  [ "$(png_size "$T/seg2/b.mask.png")" = "48 48" ] && [ -f "$T/seg2/a.overlay.png" ] && ok || bad "segment --image"
printf 'junk' >"$T/junk.png"
expect_error "segment one image" 2 "either --data DB or --image A --image B" "$S" segment "$M" --image "$T/a.pgm" --out "$T/out-s"
expect_error "segment bad image" 1 "$T/junk.png" "$S" segment "$M" --image "$T/a.pgm" --image "$T/junk.png" --out "$T/out-s"
expect_error "segment pairs 0" 2 "--pairs 0: expected a whole number" "$S" segment "$M" --data "$T/te" --out "$T/out-s" --pairs 0
"$S" synth coseg --out "$T/s32" --test-out "$T/s32t" --pairs 4 --side 32 >/dev/null 2>&1
expect_error "eval other shape" 1 "but the model takes 1x48x48" "$S" eval "$M" --data "$T/s32t"
expect_error "segment other shape" 1 "but the model takes 1x48x48" "$S" segment "$M" --data "$T/s32t" --out "$T/out-s"

# ---- [init] from: fine-tuning from a checkpoint's layers of the same names ---------
F=("${R[@]}" --set run.dir="$T/run-from" --set train.eval=0)
OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist.ini "${F[@]}" --set init.from="$M" >"$T/from.log" 2>&1 &&
  grep -q "^init: 22 layers from $M\$" "$T/from.log" && ok || bad "init.from: $(tail -3 "$T/from.log")"
expect_error "init.from missing" 2 "[init] from: $T/none.smpi: cannot open" \
  "$S" train configs/coseg-fmnist.ini "${F[@]}" --set init.from="$T/none.smpi"
expect_error "init.from shapes" 2 "layer dec0 has other shapes: dec0.weight is 64x289x3x3 here but 64x290x3x3 there" \
  "$S" train configs/coseg-fmnist.ini "${F[@]}" --set init.from="$M" --set corr.max=0

# ---- per-position class pretraining: --class-masks, [loss] mask = class -----------
"$S" synth coseg --class-masks --out "$T/cl" --test-out "$T/cl-te" --pairs 40 --side 48 --seed 3 >/dev/null 2>&1 &&
  "$S" inspect "$T/cl" --verify >"$T/cl.txt" 2>&1 && grep -q '^masks *class masks' "$T/cl.txt" && ok ||
  bad "synth coseg --class-masks: $(tail -1 "$T/cl.txt")"
"$S" inspect "$T/cl" --dump 17 --pgm "$T/c.pgm" >/dev/null && cmp -s -n $((13 + 48 * 48)) "$T/a.pgm" "$T/c.pgm" &&
  ! cmp -s "$T/a.pgm" "$T/c.pgm" && ok || bad "--class-masks draws the same images, other masks"
C=(--set run.dir="$T/cls" --set data.train="$T/cl" --set data.test="$T/cl-te" --set data.shape= --set train.steps=2
  --set sampler.batch=4 --set train.eval=1 --set optim.warmup_steps=0 --set checkpoint.every=0)
if OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist-classes.ini "${C[@]}" >"$T/cls.log" 2>&1; then ok; else
  bad "train coseg-fmnist-classes on 48x48: $(tail -3 "$T/cls.log")"
fi
grep -q '"class_accuracy"' "$T/cls/eval.json" && grep -q '"positions": 576,' "$T/cls/eval.json" && ok ||
  bad "class maps scored at the end: 16 test images x 6 x 6 positions"
"$S" eval "$T/cls/model.smpi" --data "$T/cl-te" --pairs 5 --json "$T/ce.json" >"$T/ce.txt" 2>&1 &&
  grep -q '^class maps, 5 images' "$T/ce.txt" && grep -q '"positions": 180,' "$T/ce.json" && ok ||
  bad "eval of a class-map model: $(cat "$T/ce.txt")"
expect_error "eval class maps on object masks" 1 "has no class masks" "$S" eval "$T/cls/model.smpi" --data "$T/te"
expect_error "eval --tta 2 on class maps" 2 "--tta 2: a class-map model is scored by its positions' classes" \
  "$S" eval "$T/cls/model.smpi" --data "$T/cl-te" --tta 2
OPENBLAS_NUM_THREADS=1 "$S" train configs/coseg-fmnist.ini "${R[@]}" --set run.dir="$T/run-cl" --set train.eval=0 \
  --set init.from="$T/cls/model.smpi" >"$T/runcl.log" 2>&1 &&
  grep -q "^init: 10 layers from $T/cls/model.smpi\$" "$T/runcl.log" && ok ||
  bad "co-segmentation from the class pretraining's 10 encoder layers: $(tail -3 "$T/runcl.log")"
expect_error "eval co-segmentation on class masks" 1 "cl-te has class masks (every object by class)" \
  "$S" eval "$T/run-cl/model.smpi" --data "$T/cl-te"
# segment on class masks draws no "true" masks (they mark every object): a 2-column overview
"$S" segment "$T/run-cl/model.smpi" --data "$T/cl-te" --pairs 3 --out "$T/segcl" >/dev/null 2>&1 &&
  [ "$(png_size "$T/segcl/overview.png")" = "$((2 * 96 + 3 * 4)) $((3 * 96 + 4 * 4))" ] && ok ||
  bad "segment on class masks: a 2-column overview ($(png_size "$T/segcl/overview.png"))"
"$S" report "$T/run-cl" --data "$T/cl-te" --out "$T/clrep.html" --no-tsne >"$T/clrep.txt" 2>&1 &&
  grep -q "has class masks (every object by class): the overlays need the common object" "$T/clrep.html" && ok ||
  bad "report of a co-segmentation run on class masks: $(tail -2 "$T/clrep.txt")"
expect_error "mask = class on object masks" 2 "object masks, not class masks" \
  "$S" train configs/coseg-fmnist-classes.ini "${C[@]}" --set data.train="$T/tr"
expect_error "mask = bce on class masks" 2 "has class masks" \
  "$S" train configs/coseg-fmnist.ini "${R[@]}" --set run.dir="$T/run-x" --set data.train="$T/cl"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
