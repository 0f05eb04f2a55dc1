#!/usr/bin/env bash
# siamese report end to end: train writes report.html at the end (2 ranks,
# after model.smpi), [train] report = 0 turns it off and may change on
# resume, a report that cannot be written only warns; `siamese report` on one
# run (validated during training: curves from its eval.csv), on a run without test data,
# on two runs overlaid, on 25 classes (20 colours, the rest grey), on a
# Koch-head pair run, on contrastive, InfoNCE, multi-similarity and
# two-tower graph runs, on co-segmentation runs (a model and its ablation
# side by side: the mask metrics equal eval's, overlays of seeded test
# pairs), on a tracking run with its results (scores equal to
# mot-eval's, frames with track ids), and its bad arguments; then every
# report is opened in one headless Chromium (tests/report_browser.py): no
# console errors, the expected figures in the DOM with their number of
# points, thumbnails and frames decoded, hover values, a screenshot that is
# not blank.
set -u
cd "$(dirname "$0")/.."
S=$PWD/siamese
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-report.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$2"; fi; }
browser() { # report screenshot args... [--next report screenshot args...]: adds the script's counts to ours
  local out p f
  out=$(/usr/bin/python3 tests/report_browser.py "$@" 2>&1)
  echo "$out" | grep -v '^[0-9]* passed' >&2
  p=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' | tail -1)
  f=$(echo "$out" | sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' | tail -1)
  if [ -z "$p" ]; then bad "browser check did not finish: $(echo "$out" | tail -3)"; return; fi
  pass=$((pass + p)) fail=$((fail + f))
}

$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/train.lmdb" --split-by sample --test-fraction 0.1 --test-out "$T/test.lmdb" --seed 3 >/dev/null
SETS=(--set data.train="$T/train.lmdb" --set data.test="$T/test.lmdb" --set eval.pairs=2000
      --set eval.train_pairs=500 --set eval.trials=200 --set train.eval=1 --set train.steps=40)

# Two ranks, validated every 10 steps (eval.csv), report at the end (the default).
mpirun -np 2 --oversubscribe $S train configs/tiny.ini "${SETS[@]}" --set eval.data="$T/test.lmdb" --set eval.every=10 \
  --set run.dir="$T/a" >"$T/a.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/a/report.html" ]' "train writes report.html ($(tail -2 "$T/a.out"))"
check 'grep -q "^report: wrote $T/a/report.html" "$T/a.out"' "train says where the report is"
check '[ "$T/a/report.html" -nt "$T/a/model.smpi" ] && [ "$T/a/report.html" -nt "$T/a/eval.json" ]' \
  "the report comes after model.smpi and eval.json"
# No test data: the report draws what the run holds.
$S train configs/tiny.ini "${SETS[@]}" --set data.test= --set train.eval=0 --set run.dir="$T/b" >"$T/b.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/b/report.html" ]' "a run without test data gets a report too"
# [train] eval = 0: the report at the end adds no evaluation of its own.
$S train configs/tiny.ini "${SETS[@]}" --set train.eval=0 --set train.steps=10 --set run.dir="$T/noeval" >"$T/noeval.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/noeval/report.html" ] && ! grep -q "report: evaluating" "$T/noeval.out" &&
  grep -q "not evaluated at its end" "$T/noeval/report.html"' "train.eval = 0: a report of the run's files only"
# [train] report = 0, then switched on when resuming.
$S train configs/tiny.ini "${SETS[@]}" --set train.report=0 --set train.steps=20 --set run.dir="$T/c" \
  >"$T/c.out" 2>&1
check '[ $? -eq 0 ] && [ ! -e "$T/c/report.html" ]' "train.report = 0: no report"
$S train configs/tiny.ini "${SETS[@]}" --set train.steps=30 --set run.dir="$T/c" --resume auto >"$T/c2.out" 2>&1
check '[ $? -eq 0 ] && grep -q "train.report: 0 -> 1" "$T/c2.out" && [ -s "$T/c/report.html" ]' \
  "train.report may change on resume ($(grep resume "$T/c2.out" | head -2))"
# A report that cannot be written is a warning; the run still succeeds.
mkdir -p "$T/d/report.html"
$S train configs/tiny.ini "${SETS[@]}" --set train.steps=5 --set run.dir="$T/d" >"$T/d.out" 2>&1
check '[ $? -eq 0 ] && grep -q "warning: report not written" "$T/d.out" && [ -s "$T/d/model.smpi" ]' \
  "a failed report only warns ($(grep -i report "$T/d.out" | tail -1))"
check '! ls "$T"/*/ | grep -q "tmp-"' "no temporary files left"

# The command.
$S report "$T/a" "$T/c" --out "$T/ac.html" --no-tsne >"$T/r2.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/ac.html" ]' "siamese report of two runs"
$S report "$T/a" "$T/c" >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 1 ] && grep -q -- "--out" "$T/e" && [ "$(wc -l <"$T/e")" -eq 1 ]' "two runs need --out ($(cat "$T/e"))"
$S report "$T/nope" >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 1 ] && grep -q "$T/nope" "$T/e" && [ "$(wc -l <"$T/e")" -eq 1 ]' "a missing run dir is named ($(cat "$T/e"))"
$S report >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ]' "no run dir: exit 2"
$S report "$T/a" --points 2 >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--points 2" "$T/e"' "bad --points ($(cat "$T/e"))"
$S report "$T/a" --data "$T/nope.lmdb" --out "$T/nodata.html" --no-tsne >"$T/o" 2>&1
check '[ $? -eq 0 ]' "a report whose --data does not open still succeeds"

# One run on its own: its validation curves draw every metric column of its
# eval.csv (4 passes).
check '[ "$(head -1 "$T/a/eval.csv")" = step,recall_at_1,map_at_r,nway_accuracy ] && [ "$(wc -l <"$T/a/eval.csv")" -eq 5 ]' \
  "run a validated 4 times ($(head -1 "$T/a/eval.csv"))"
$S report "$T/a" --out "$T/a1.html" --points 500 >"$T/r1.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/a1.html" ]' "siamese report RUN --out ($(tail -1 "$T/r1.out"))"
# 25 classes: the 20 largest get colours on the map, the other 5 are grey.
/usr/bin/python3 - "$T/many" <<'PY'
import os, sys
for c in range(25):
    d = os.path.join(sys.argv[1], "class%02d" % c)
    os.makedirs(d)
    for i in range(8):
        px = bytes(((x * (c + 3) + y * (i + 1) * 7 + 40 * (x // 4 == c % 3)) % 256) for y in range(12) for x in range(12))
        open(os.path.join(d, "%d.pgm" % i), "wb").write(b"P5\n12 12\n255\n" + px)
PY
$S import --format folder --root "$T/many" --out "$T/many-train.lmdb" --split-by sample --test-fraction 0.25 \
  --test-out "$T/many-test.lmdb" --seed 1 >/dev/null
$S train configs/tiny.ini --set data.train="$T/many-train.lmdb" --set data.test="$T/many-test.lmdb" \
  --set train.steps=10 --set train.eval=1 --set eval.pairs=200 --set eval.train_pairs=100 --set eval.trials=50 \
  --set run.dir="$T/many-run" >"$T/many.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/many-run/report.html" ]' "a 25-class run gets a report ($(tail -1 "$T/many.out"))"

# A pair run with Koch's head: its histogram is of head logits.
$S pairs "$T/train.lmdb" --pairs 2000 --seed 1 >/dev/null
$S train configs/tiny.ini "${SETS[@]}" --set head.type=koch --set loss.type=bce --set sampler.mode=pairs \
  --set sampler.batch=32 --set mining.strategy=none --set train.steps=20 --set run.dir="$T/koch" >"$T/koch.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/koch/report.html" ]' "a Koch-head pair run gets a report ($(tail -1 "$T/koch.out"))"

# A contrastive pair run (Hadsell et al.), an InfoNCE and a multi-similarity
# run over PK batches, and a two-tower graph (|emb@a - emb@b| -> linear ->
# one logit, Koch-style, as a graph): each run kind gets its report.
$S train configs/tiny.ini "${SETS[@]}" --set loss.type=contrastive --set loss.margin=1 --set sampler.mode=pairs \
  --set sampler.batch=32 --set mining.strategy=none --set train.steps=20 --set run.dir="$T/contrastive" >"$T/contrastive.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/contrastive/report.html" ]' "a contrastive pair run gets a report ($(tail -1 "$T/contrastive.out"))"
for loss in infonce multi_similarity; do
  $S train configs/tiny.ini "${SETS[@]}" --set loss.type=$loss --set mining.strategy=none --set train.steps=20 \
    --set run.dir="$T/$loss" >"$T/$loss.out" 2>&1
  check '[ $? -eq 0 ] && [ -s "$T/$loss/report.html" ]' "a $loss run gets a report ($(tail -1 "$T/$loss.out"))"
done
$S train tests/fixtures/graph/two-tower.ini "${SETS[@]}" --set train.steps=10 --set run.dir="$T/towers" >"$T/towers.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/towers/report.html" ]' "a two-tower graph run gets a report ($(tail -1 "$T/towers.out"))"

# Co-segmentation: a model and its ablation (no correlation), 2 steps each on
# a small generated task; their reports score the masks as eval does and
# draw 4 seeded test pairs; side by side in one report; without the
# evaluation at the end, the panel says where the masks come from.
$S synth coseg --out "$T/coseg-train.lmdb" --test-out "$T/coseg-test.lmdb" --pairs 40 --side 32 --seed 3 >/dev/null
CS=(--set data.train="$T/coseg-train.lmdb" --set data.test="$T/coseg-test.lmdb" --set data.shape= --set train.steps=2
    --set sampler.batch=8 --set train.eval=1 --set optim.warmup_steps=0 --set checkpoint.every=0 --set init.from=)
$S train configs/coseg-fmnist.ini "${CS[@]}" --set run.dir="$T/coseg" >"$T/coseg.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/coseg/report.html" ] && [ "$T/coseg/report.html" -nt "$T/coseg/eval.json" ]' \
  "a co-segmentation run gets a report after its eval.json ($(tail -1 "$T/coseg.out"))"
$S train configs/coseg-fmnist-nocorr.ini "${CS[@]}" --set run.dir="$T/coseg-nocorr" >"$T/nocorr.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/coseg-nocorr/report.html" ]' "the ablation gets a report ($(tail -1 "$T/nocorr.out"))"
$S train configs/coseg-fmnist.ini "${CS[@]}" --set train.eval=0 --set run.dir="$T/coseg-noeval" >"$T/o" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/coseg-noeval/report.html" ]' "a co-segmentation run without evaluation gets a report"
$S report "$T/coseg" "$T/coseg-nocorr" --out "$T/coseg2.html" >"$T/o" 2>&1
check '[ $? -eq 0 ] && grep -q "report: evaluating the masks of $T/coseg-nocorr/model.smpi" "$T/o"' \
  "siamese report of a model and its ablation ($(tail -1 "$T/o"))"
$S eval "$T/coseg-nocorr/model.smpi" --data "$T/coseg-test.lmdb" --json "$T/nocorr-eval.json" >/dev/null 2>&1
jkey() { sed -n "s/^ *\"$2\": \([-0-9.e]*\),*$/\1/p" "$1"; }
J1=$(printf %.4g "$(jkey "$T/coseg/eval.json" jaccard_seen)") P1=$(printf %.4g "$(jkey "$T/coseg/eval.json" precision_seen)")
J2=$(printf %.4g "$(jkey "$T/nocorr-eval.json" jaccard_seen)") W2=$(printf %.4g "$(jkey "$T/nocorr-eval.json" wrong_pixels_none)")
check '[ -n "$J1" ] && [ -n "$J2" ] && [ -n "$W2" ]' "the mask metrics of eval.json and siamese eval ($J1 $P1 $J2 $W2)"

# Early fusion (the two images stacked as channels, one logit per pair): no
# per-image embedding, so no retrieval examples and no map, said so.
$S train tests/fixtures/graph/early-fusion.ini "${SETS[@]}" --set train.steps=6 --set run.dir="$T/fusion" >"$T/fusion.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/fusion/report.html" ]' "an early-fusion run gets a report ($(tail -1 "$T/fusion.out"))"

# A tracking run: a tiny network trained on the crops of one synthetic
# sequence (tested on the other's), both sequences tracked with it; its
# report scores the results as mot-eval does and draws frames with track ids.
$S synth mot --out "$T/seq" --seed 101 --sequences 2 --frames 40 --split test >/dev/null
$S import --format mot --root "$T/seq/synth-0101" --out "$T/mot-train.lmdb" --resize 12x12 >/dev/null
$S import --format mot --root "$T/seq/synth-0102" --out "$T/mot-test.lmdb" --resize 12x12 >/dev/null
$S train configs/tiny.ini --set data.train="$T/mot-train.lmdb" --set data.test="$T/mot-test.lmdb" \
  --set train.steps=10 --set train.eval=1 --set eval.pairs=200 --set eval.train_pairs=100 --set eval.trials=50 \
  --set run.dir="$T/mot" >"$T/mot.out" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/mot/report.html" ]' "a tracking run gets a report ($(tail -1 "$T/mot.out"))"
mkdir -p "$T/res"
for q in synth-0101 synth-0102; do
  $S track "$T/mot/model.smpi" --seq "$T/seq/$q" --out "$T/res/$q.txt" >/dev/null 2>&1 || bad "track $q"
done
$S report "$T/mot" --gt-root "$T/seq" --res-root "$T/res" --out "$T/track.html" --no-tsne >"$T/o" 2>&1
check '[ $? -eq 0 ] && [ -s "$T/track.html" ]' "siamese report --gt-root --res-root ($(tail -1 "$T/o"))"
$S mot-eval --gt-root "$T/seq" --res-root "$T/res" >"$T/mot-eval.txt"
MOTA=$(awk '$1 == "COMBINED" {print $2}' "$T/mot-eval.txt") IDF1=$(awk '$1 == "COMBINED" {print $4}' "$T/mot-eval.txt")
check '[ -n "$MOTA" ] && [ -n "$IDF1" ]' "mot-eval's combined row ($(tail -1 "$T/mot-eval.txt"))"
$S report "$T/mot" --res-root "$T/res" --gt-root "$T/seq" --res-root "$T/res" --out "$T/x.html" >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q "one per run" "$T/e" && [ ! -e "$T/x.html" ]' "--res-root twice for one run ($(cat "$T/e"))"
$S report "$T/mot" --gt-root "$T/nope" --res-root "$T/res" --out "$T/nogt.html" --no-tsne >"$T/o" 2>&1
check '[ $? -eq 0 ] && grep -q "$T/nope: cannot open the ground-truth root" "$T/nogt.html"' \
  "a ground-truth root that does not open is said in the report"
printf '1,1,10,10,0,20,1,-1,-1,-1\n' >"$T/res-bad.txt"
mkdir -p "$T/res-bad" && cp "$T/res/synth-0101.txt" "$T/res-bad/" && cp "$T/res-bad.txt" "$T/res-bad/synth-0102.txt"
$S report "$T/mot" --gt-root "$T/seq" --res-root "$T/res-bad" --out "$T/badres.html" --no-tsne >"$T/o" 2>&1
check '[ $? -eq 0 ] && grep -q "Sequence synth-0102 not scored: $T/res-bad/synth-0102.txt:1: box has no area" "$T/badres.html" &&
  [ "$(grep -o "<tr><td>synth-0101" "$T/badres.html" | wc -l)" -eq 1 ]' \
  "a damaged result file is named with its line, the other sequence still scored"
$S report "$T/mot" --res-root "$T/res" --out "$T/x.html" >"$T/o" 2>"$T/e"; rc=$?
check '[ $rc -eq 2 ] && grep -q -- "--gt-root" "$T/e" && [ ! -e "$T/x.html" ]' "--res-root needs --gt-root ($(cat "$T/e"))"

# In the browser: every report in one Chromium.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! /usr/bin/python3 -c 'import selenium, PIL' 2>/dev/null
then
  bad "headless Chromium missing: install chromium chromium-driver python3-selenium python3-pil (make test does)"
else
  FIGS=loss,active,hardness,lr,grad_norm,images_per_s,valid-recall_at_1,valid-map_at_r,valid-nway_accuracy,timing,rank-waiting,roc
  FIGS=$FIGS,histogram,recall,map-pca,map-tsne
  browser "$T/a1.html" "$T/a1.png" --figures $FIGS --thumbs 72 --missing 0 --series loss=2 --series timing=7 \
    --points loss=40 --points valid-map_at_r=4 --points valid-nway_accuracy=4 --points map-pca=500 --points map-tsne=500 \
    --sections summary,curves,validation,timing,evaluation,retrieval,map,config --absent tracking \
    --next "$T/many-run/report.html" "$T/many.png" --figures map-pca,map-tsne --legend map-pca=20 \
    --legend map-tsne=20 --contains "map-pca=the other 5 classes" --thumbs 72 --points map-pca=50 \
    --next "$T/koch/report.html" "$T/koch.png" --figures loss,roc,histogram,recall,map-pca,map-tsne \
    --contains "histogram=head logit" --contains "histogram=best on training pairs" --thumbs 72 --missing 0 \
    --points loss=20 \
    --next "$T/b/report.html" "$T/b.png" --figures loss,timing --absent roc,histogram,map-pca,map-tsne,rank-waiting \
    --missing 1 --thumbs 0 \
    --next "$T/ac.html" "$T/ac.png" --figures loss,roc-all,recall-all,map-pca --absent map-tsne --series loss=4 \
    --series roc-all=3 \
    --next "$T/nodata.html" "$T/nodata.png" --figures loss,recall --absent roc,map-pca --missing 1 \
    --next "$T/fusion/report.html" "$T/fusion.png" --figures loss,roc,histogram --absent map-pca,map-tsne \
    --thumbs 0 --missing 2 --contains "retrieval=no per-image embedding" --contains "map=no per-image embedding" \
    --contains "evaluation=computes on the two images" \
    --next "$T/mot/report.html" "$T/mot.png" --sections tracking --frames 0 --missing 1 \
    --contains "tracking=--res-root" \
    --next "$T/contrastive/report.html" "$T/contrastive.png" --figures loss,roc,histogram,recall,map-pca,map-tsne \
    --contains "histogram=Euclidean distance" --thumbs 72 --missing 0 --points loss=20 --absent coseg,tracking \
    --next "$T/infonce/report.html" "$T/infonce.png" --figures loss,roc,histogram,recall,map-pca,map-tsne \
    --thumbs 72 --missing 0 --points loss=20 \
    --next "$T/multi_similarity/report.html" "$T/ms.png" --figures loss,roc,histogram,recall,map-pca,map-tsne \
    --thumbs 72 --missing 0 --points loss=20 \
    --next "$T/towers/report.html" "$T/towers.png" --figures loss,roc,histogram,recall,map-pca,map-tsne \
    --contains "histogram=head logit" --contains "evaluation=the logit of the model's pair head" --thumbs 72 \
    --missing 0 --points loss=10 \
    --next "$T/coseg/report.html" "$T/coseg.png" --figures loss,timing,coseg-bars --rows coseg-metrics=9 \
    --imgs coseg-overlays=8x96 --contains "coseg-metrics=$J1" --contains "coseg-metrics=$P1" \
    --sections coseg,evaluation,retrieval,map --absent roc,histogram,recall,map-pca,map-tsne,tracking \
    --contains "evaluation=predicts masks, not embeddings" --contains "map=predicts masks, not embeddings" \
    --contains "retrieval=predicts masks, not embeddings" --thumbs 0 --full \
    --next "$T/coseg-noeval/report.html" "$T/coseg-noeval.png" --sections coseg --absent coseg-bars,coseg-overlays \
    --contains "coseg=not evaluated at its end" \
    --next "$T/coseg2.html" "$T/coseg2.png" --figures loss,coseg-compare-bars --sections coseg-compare,coseg \
    --rows coseg-compare-metrics=9 --imgs coseg-compare-overlays=16x96 --contains "coseg-compare-metrics=$J2" \
    --contains "coseg-compare-metrics=$W2" --series loss=4 --absent compare,roc-all --full \
    --next "$T/track.html" "$T/track.png" --figures loss,roc,map-pca --sections tracking --frames 6 --missing 0 \
    --rows tracking-scores=3 --contains "tracking-scores=$MOTA" --contains "tracking-scores=$IDF1"
fi

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
