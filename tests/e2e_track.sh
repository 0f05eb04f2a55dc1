#!/usr/bin/env bash
# e2e_track: the tracking commands from the command line on a short synthetic
# sequence made from Debian's Fashion-MNIST test set: synth mot, track
# (online and batch, motion/IoU only), track-fit, mot-eval (one sequence by
# directory and by gt.txt, a root of sequences, JSON), mot-draw (PNG of the
# right size), import --format mot (counts and names against gt.txt), a tiny
# matching network trained a few steps (two-tower and early fusion),
# track-fit and track with its checkpoint (also relinked with its own link
# model, track velocities and joins over long gaps, uncrossed, mended and joined behind another
# track; --behind also without a network), and every command's bad
# input: one stderr line naming the file and line or option, a non-zero
# exit, no output file.
# Runs from the repo root with ./siamese built. Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
S=${SIAMESE:-./siamese}
T=$(mktemp -d /tmp/siamese-e2e-track.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, then a command that must succeed
  local what=$1; shift
  if "$@" >"$T/out.log" 2>&1; then ok; else bad "$what: $(tail -n 2 "$T/out.log")"; fi
}
# expect_error NAME WANT OUT CMD...: non-zero exit, one stderr line with WANT, no OUT
expect_error() {
  local name=$1 want=$2 out=$3; shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$? n first
  n=$(wc -l <"$T/stderr")
  first=$(head -n 1 "$T/stderr")
  if [ $rc -ne 0 ] && [ "$n" -eq 1 ] && [[ "$first" == *"$want"* ]]; then ok; else
    bad "$name: exit $rc, $n stderr lines, want '$want' in: $first"
  fi
  if [ -n "$out" ] && [ -e "$out" ]; then bad "$name: $out left behind"; else ok; fi
}
# field NAME: a column of the COMBINED (or only) row of a mot-eval table on stdin
field() { awk -v k="$1" 'NR == 1 {for (i = 1; i <= NF; i++) c[$i] = i; next} {v = $(c[k])} END {print v}'; }
ge() { awk -v a="$1" -v b="$2" 'BEGIN {exit !(a + 0 >= b + 0)}'; }

[ -x "$S" ] || { echo "e2e_track: $S not built (make siamese)"; echo "0 passed, 1 failed"; exit 1; }

check "synth mot" "$S" synth mot --out "$T/seq" --seed 101 --sequences 2 --frames 60 --split test
Q=$T/seq/synth-0101
[ -f "$Q/seqinfo.ini" ] && [ -f "$Q/img1/000060.png" ] && [ ! -e "$Q/img1/000061.png" ] && ok || bad "layout of $Q"
mkdir -p "$T/on" "$T/ba"
for q in "$T"/seq/*/; do
  n=$(basename "$q")
  check "track online $n" "$S" track --appearance none --seq "$q" --out "$T/on/$n.txt"
  check "track batch $n" "$S" track --appearance none --seq "$q" --out "$T/ba/$n.txt" --mode batch
done
# results are MOTChallenge lines with positive ids
awk -F, 'NF != 10 || $2 < 1 {bad = 1} END {exit bad}' "$T/on/synth-0101.txt" && ok || bad "result format"
for m in on ba; do
  "$S" mot-eval --gt-root "$T/seq" --res-root "$T/$m" >"$T/eval.txt" || bad "mot-eval $m"
  mota=$(field MOTA <"$T/eval.txt") idf1=$(field IDF1 <"$T/eval.txt")
  # the motion/IoU tracker on an easy minute of synthetic data: far above chance
  ge "$mota" 70 && ge "$idf1" 60 && ok || bad "$m: MOTA $mota IDF1 $idf1 (want >= 70, >= 60)"
done
# one sequence: by directory and by its gt.txt, the same numbers; JSON
"$S" mot-eval --gt "$Q" --res "$T/on/synth-0101.txt" --json "$T/e.json" | tail -n 1 >"$T/a.txt"
"$S" mot-eval --gt "$Q/gt/gt.txt" --res "$T/on/synth-0101.txt" | tail -n 1 >"$T/b.txt"
cmp -s "$T/a.txt" "$T/b.txt" && ok || bad "mot-eval --gt DIR and --gt DIR/gt/gt.txt differ"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); r=d['combined']['all']; assert 0 < r['IDF1'] <= 1 and r['GT'] > 0" \
  "$T/e.json" && ok || bad "mot-eval --json"
# perfect result: the ground truth itself
awk -F, '{printf "%s,%s,%s,%s,%s,%s,1,-1,-1,-1\n", $1, $2, $3, $4, $5, $6}' "$Q/gt/gt.txt" >"$T/perfect.txt"
"$S" mot-eval --gt "$Q" --res "$T/perfect.txt" >"$T/p.txt"
[ "$(field MOTA <"$T/p.txt")" = 100.0 ] && [ "$(field IDF1 <"$T/p.txt")" = 100.0 ] && ok || bad "gt as result: $(tail -1 "$T/p.txt")"
# track-fit and a tracker run with its combiner
check "track-fit" "$S" track-fit --appearance none --seq "$T/seq/synth-0101" --seq "$T/seq/synth-0102" --out "$T/c.txt"
grep -q '^w7 = ' "$T/c.txt" && ok || bad "combiner file"
check "track --combiner" "$S" track --appearance none --seq "$Q" --out "$T/c-res.txt" --combiner "$T/c.txt" --mode batch
# --extrapolate 3: the batch tracks' detections unchanged, ends extended by boxes of score 0 that stay
# inside the 320x240 frame (1-based: x + w <= 321)
check "track --extrapolate" "$S" track --appearance none --seq "$Q" --out "$T/x-res.txt" --mode batch --extrapolate 3
dets() { awk -F, '$7 > 0 {print $1, $2, $3, $4, $5, $6}' "$1" | sort; }
[ "$(dets "$T/x-res.txt")" = "$(dets "$T/ba/synth-0101.txt")" ] && ok || bad "--extrapolate changed the tracks"
awk -F, -v n="$(wc -l <"$T/ba/synth-0101.txt")" '$3 < 1 || $4 < 1 || $3 + $5 > 321.01 || $4 + $6 > 241.01 {out++}
  END {exit !(NR > n && out == 0)}' "$T/x-res.txt" && ok || bad "--extrapolate: no boxes added, or outside the frame"
# --behind: the baseline's tracks joined behind another; a cover no box exceeds changes nothing
check "track --behind" "$S" track --appearance none --seq "$Q" --out "$T/b-res.txt" --mode batch --behind 50
"$S" mot-eval --gt "$Q" --res "$T/b-res.txt" >"$T/be.txt" && ge "$(field MOTA <"$T/be.txt")" 70 && ok \
  || bad "batch tracker with --behind: $(tail -1 "$T/be.txt")"
check "track --behind-cover 1" "$S" track --appearance none --seq "$Q" --out "$T/b2-res.txt" --mode batch \
  --behind 50 --behind-cover 1
cmp -s "$T/b2-res.txt" "$T/ba/synth-0101.txt" && ok || bad "--behind with an unreachable cover changed the tracks"
expect_error "track --behind online" "--behind needs --mode batch" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --behind 50
expect_error "track --behind-cover 2" "--behind-cover 2: expected a number in [0, 1]" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --mode batch --behind 50 --behind-cover 2
# bench_track --oracle: the perfect association keeps every identity
B=${SIAMESE_BUILD:-build}/bench/bench_track
if [ -x "$B" ]; then
  "$B" --oracle "$T/seq" --mode batch --extrapolate 3 >"$T/or.txt" 2>&1
  awk '/perfect association/ {for (i = 1; i < NF; i++) if ($i == "IDsw") s = $(i + 1); found = 1}
    END {exit !(found && s == 0)}' "$T/or.txt" && grep -q "^ground truth: " "$T/or.txt" && ok \
    || bad "bench_track --oracle: $(cat "$T/or.txt")"
fi
# mot-draw: 320x240 frame, zoom 2 -> 640x480 RGB PNG
check "mot-draw" "$S" mot-draw --seq "$Q" --frame 30 --boxes "$T/on/synth-0101.txt" --out "$T/f.png"
python3 -c "import struct,sys; d=open(sys.argv[1],'rb').read(33); assert d[:8]==b'\x89PNG\r\n\x1a\n'; w,h,b,c=struct.unpack('>IIBB',d[16:26]); assert (w,h,b,c)==(640,480,8,2)" \
  "$T/f.png" && ok || bad "mot-draw PNG size"

# the siamese tracker: ground-truth crops, a tiny network trained a few steps,
# track-fit and track with its checkpoint
check "import --format mot" "$S" import --format mot --root "$T/seq" --out "$T/crops.lmdb" --resize 12x12 \
  --min-visibility 0.5 --jitter 0.05 --copies 2
want=$(awk -F, '$7 != 0 && $8 == 1 && $9 >= 0.5' "$T"/seq/*/gt/gt.txt | wc -l)
ids=$(for q in "$T"/seq/*/; do awk -F, -v q="$(basename "$q")" '$7 != 0 && $8 == 1 && $9 >= 0.5 {print q "/" $2}' "$q/gt/gt.txt"; done | sort -u | wc -l)
"$S" inspect "$T/crops.lmdb" --names >"$T/inspect.txt"
grep -q "^count  *$((2 * want))\$" "$T/inspect.txt" && grep -q "^classes  *$ids\$" "$T/inspect.txt" && ok \
  || bad "import --format mot: want $((2 * want)) samples of $ids classes: $(grep -E '^(count|classes)' "$T/inspect.txt" | tr '\n' ' ')"
grep -qP '^1\t0\tsynth-0101/000001/\d+/j1$' "$T/inspect.txt" && ok || bad "import --format mot: sample names"
check "train a tiny matching network" env OPENBLAS_NUM_THREADS=1 "$S" train configs/tiny.ini --set data.train="$T/crops.lmdb" \
  --set data.test= --set run.dir="$T/run" --set train.steps=20 --set train.eval=0
CK=$T/run/model.smpi
check "track-fit CHECKPOINT" "$S" track-fit "$CK" --seq "$T/seq/synth-0101" --seq "$T/seq/synth-0102" --out "$T/cc.txt"
grep -q '^appearance = 1' "$T/cc.txt" && grep -q 'network score alone' "$T/out.log" && ok || bad "track-fit with a network"
for m in online batch; do
  check "track CHECKPOINT $m" "$S" track "$CK" --seq "$Q" --out "$T/s-$m.txt" --combiner "$T/cc.txt" --mode $m
  grep -q "embedding .* frames/s" "$T/out.log" && ok || bad "track CHECKPOINT reports frames per second"
  "$S" mot-eval --gt "$Q" --res "$T/s-$m.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
    || bad "siamese tracker $m: $(tail -1 "$T/se.txt")"
done
# an ensemble of one network twice scores pairs as the network alone (the
# root mean of two equal squared distances): the same tracks
check "track CHECKPOINT,CHECKPOINT" "$S" track "$CK,$CK" --seq "$Q" --out "$T/e-batch.txt" --combiner "$T/cc.txt" \
  --mode batch
cmp -s "$T/e-batch.txt" "$T/s-batch.txt" && ok || bad "an ensemble of one network twice tracks as the network alone"
expect_error "an empty checkpoint in a list" "expected checkpoints separated by commas" "$T/e2.txt" \
  "$S" track "$CK," --seq "$Q" --out "$T/e2.txt"
check "track --relink" "$S" track "$CK" --seq "$Q" --out "$T/r-batch.txt" --combiner "$T/cc.txt" --mode batch \
  --relink 1 --gallery 5
"$S" mot-eval --gt "$Q" --res "$T/r-batch.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
  || bad "relinked batch tracker: $(tail -1 "$T/se.txt")"
# the relink flow's own link model, fitted on the scores and velocities that flow sees
check "track-fit --relink-from" "$S" track-fit "$CK" --seq "$T/seq/synth-0101" --seq "$T/seq/synth-0102" \
  --out "$T/rc.txt" --relink-from "$T/cc.txt" --gallery 5 --relink-motion 1
grep -q 'gallery means of 5 after the flow with' "$T/rc.txt" && grep -q '^appearance = 1' "$T/rc.txt" && ok \
  || bad "track-fit --relink-from: $(head -1 "$T/rc.txt")"
# the chosen batch settings (docs/tracking.md), the base of --uncross and --mend below
CHOSEN=(--combiner "$T/cc.txt" --mode batch --relink 1 --gallery 5 --relink-combiner "$T/rc.txt" --relink-motion 1
  --merge-gap 30)
check "track --relink-combiner --relink-motion --merge-gap" "$S" track "$CK" --seq "$Q" --out "$T/r2-batch.txt" \
  "${CHOSEN[@]}"
"$S" mot-eval --gt "$Q" --res "$T/r2-batch.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
  || bad "relinked batch tracker with its own model: $(tail -1 "$T/se.txt")"
# the first flow's model as the relink model: the tracks of --relink alone
check "track --relink-combiner (the same model)" "$S" track "$CK" --seq "$Q" --out "$T/r3-batch.txt" \
  --combiner "$T/cc.txt" --mode batch --relink 1 --gallery 5 --relink-combiner "$T/cc.txt"
cmp -s "$T/r3-batch.txt" "$T/r-batch.txt" && ok || bad "--relink-combiner with the --combiner changed the tracks"
expect_error "--relink-combiner without --relink" "--relink-combiner needs a CHECKPOINT, --mode batch and --relink N" \
  "$T/x.txt" "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --combiner "$T/cc.txt" --mode batch --relink-combiner "$T/rc.txt"
expect_error "geometry-only relink combiner" "c.txt was fitted without an appearance score" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --combiner "$T/cc.txt" --mode batch --relink 1 --relink-combiner "$T/c.txt"
expect_error "track --merge-gate 0" "--merge-gate 0: expected a number" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode batch --merge-gap 30 --merge-gate 0
# --merge-gap joins beyond the flow's --max-gap, in batch with a network: elsewhere it was ignored
for args in "--mode online --merge-gap 30" "--mode batch --merge-gap 15" "--mode batch --max-gap 20 --merge-gap 20"; do
  expect_error "track $args" "--merge-gap ${args##* } needs a CHECKPOINT, --mode batch and a gap above --max-gap" \
    "$T/x.txt" "$S" track "$CK" --seq "$Q" --out "$T/x.txt" $args
done
expect_error "track --merge-gap without a network" "--merge-gap 30 needs a CHECKPOINT" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --mode batch --merge-gap 30
# uncrossing after the chosen settings; a margin no mean score difference reaches changes nothing
UNCROSS=(--uncross 10 --uncross-margin 0.3)
check "track --uncross" "$S" track "$CK" --seq "$Q" --out "$T/u-batch.txt" "${CHOSEN[@]}" "${UNCROSS[@]}"
"$S" mot-eval --gt "$Q" --res "$T/u-batch.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
  || bad "uncrossed batch tracker: $(tail -1 "$T/se.txt")"
check "track --uncross-margin 1e6" "$S" track "$CK" --seq "$Q" --out "$T/u2-batch.txt" "${CHOSEN[@]}" \
  --uncross 10 --uncross-margin 1e6
cmp -s "$T/u2-batch.txt" "$T/r2-batch.txt" && ok || bad "--uncross with an unreachable margin changed the tracks"
# uncrossing and mending need a network and the batch tracker
for opt in "--uncross 10" "--mend 30"; do
  expect_error "track $opt online" "${opt% *} needs a CHECKPOINT and --mode batch" "$T/x.txt" \
    "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode online $opt
  expect_error "track $opt without a network" "${opt% *} needs a CHECKPOINT and --mode batch" "$T/x.txt" \
    "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --mode batch $opt
done
expect_error "track --uncross-iou 2" "--uncross-iou 2: expected a number in [0, 1]" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode batch --uncross 10 --uncross-iou 2
# mending broken tracks after uncrossing; a score no gallery reaches changes nothing
check "track --mend" "$S" track "$CK" --seq "$Q" --out "$T/m-batch.txt" "${CHOSEN[@]}" "${UNCROSS[@]}" \
  --mend 30 --mend-score -0.5
"$S" mot-eval --gt "$Q" --res "$T/m-batch.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
  || bad "mended batch tracker: $(tail -1 "$T/se.txt")"
check "track --mend-score 1e6" "$S" track "$CK" --seq "$Q" --out "$T/m2-batch.txt" "${CHOSEN[@]}" "${UNCROSS[@]}" \
  --mend 30 --mend-score 1e6
cmp -s "$T/m2-batch.txt" "$T/u-batch.txt" && ok || bad "--mend with an unreachable score changed the tracks"
expect_error "track --mend-score x" "--mend-score x: expected a number" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode batch --mend 30 --mend-score x
# joins behind another track after uncrossing, rivals told apart by the network
check "track CHECKPOINT --behind" "$S" track "$CK" --seq "$Q" --out "$T/b-batch.txt" "${CHOSEN[@]}" "${UNCROSS[@]}" \
  --behind 50 --behind-margin 0.1
"$S" mot-eval --gt "$Q" --res "$T/b-batch.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
  || bad "batch tracker with --behind: $(tail -1 "$T/se.txt")"
check "track CHECKPOINT --behind-cover 1" "$S" track "$CK" --seq "$Q" --out "$T/b3-batch.txt" "${CHOSEN[@]}" \
  "${UNCROSS[@]}" --behind 50 --behind-cover 1
cmp -s "$T/b3-batch.txt" "$T/u-batch.txt" && ok || bad "--behind with an unreachable cover changed the tracks"
expect_error "track --behind-margin -1" "--behind-margin -1: expected a number" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode batch --behind 50 --behind-margin -1
# options that act only through another are refused alone (they changed nothing)
for args in "--uncross-iou 0.3|--uncross N" "--uncross-margin 0.3|--uncross N" "--mend-score -0.5|--mend N" \
  "--merge-gate 0.6|--merge-gap N" "--behind-cover 0.3|--behind N" "--behind-margin 0.1|--behind N" \
  "--relink-motion 1|--relink N or --merge-gap N"; do
  opt=${args%|*}
  expect_error "track $opt alone" "${opt% *} acts only with ${args#*|}: add it, or leave ${opt% *} out" "$T/x.txt" \
    "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode batch $opt
done
expect_error "track --relink online" "--relink needs a CHECKPOINT and --mode batch" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --mode online --relink 1
expect_error "track --relink without a network" "--relink needs a CHECKPOINT and --mode batch" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --mode batch --relink 1
# the first flow's options go with --relink-from (alone they changed nothing)
for opt in "--gate 0.3" "--gallery 3" "--gallery-score best" "--entry-cost 2" "--skip-cost 1" "--relink-motion 1"; do
  expect_error "track-fit $opt without --relink-from" "${opt% *} shapes the first flow of --relink-from" "$T/y.txt" \
    "$S" track-fit "$CK" --seq "$Q" --out "$T/y.txt" $opt
done
expect_error "track-fit --relink-from without a network" "--relink-from needs a CHECKPOINT" "$T/y.txt" \
  "$S" track-fit --appearance none --seq "$Q" --out "$T/y.txt" --relink-from "$T/cc.txt"
expect_error "track-fit --relink-from a geometry-only combiner" "was fitted without an appearance score" "$T/y.txt" \
  "$S" track-fit "$CK" --seq "$Q" --out "$T/y.txt" --relink-from "$T/c.txt"
expect_error "track-fit --gallery 0" "--gallery 0: expected a whole number" "$T/y.txt" \
  "$S" track-fit "$CK" --seq "$Q" --out "$T/y.txt" --relink-from "$T/cc.txt" --gallery 0
# the early-fusion form: the two crops stacked as one input, a pair-level logit
check "pairs for the stacked network" "$S" pairs "$T/crops.lmdb" --pairs 2000
cat >"$T/stacked.ini" <<EOF
[run]
dir = $T/run-st
[data]
train = $T/crops.lmdb
[sampler]
mode = pairs
batch = 16
[concat]
name = stacked
input = input@a, input@b
[conv2d]
filters = 4
size = 3
[relu]
[flatten]
[linear]
name = logit
out = 1
[loss]
type = bce
input = logit
[train]
steps = 20
eval = 0
EOF
check "train a tiny stacked network" env OPENBLAS_NUM_THREADS=1 "$S" train "$T/stacked.ini"
check "track-fit stacked CHECKPOINT" "$S" track-fit "$T/run-st/model.smpi" --seq "$T/seq/synth-0101" \
  --seq "$T/seq/synth-0102" --out "$T/cs.txt"
grep -q '^appearance = 1' "$T/cs.txt" && ok || bad "track-fit with a stacked network"
expect_error "a stacked network in an ensemble" "an ensemble needs networks that embed each image" "$T/e3.txt" \
  "$S" track "$CK,$T/run-st/model.smpi" --seq "$Q" --out "$T/e3.txt"
for m in online batch; do
  check "track stacked CHECKPOINT $m" "$S" track "$T/run-st/model.smpi" --seq "$Q" --out "$T/st-$m.txt" \
    --combiner "$T/cs.txt" --mode $m
  grep -qE "; [0-9]+ pairs scored" "$T/out.log" && ok || bad "track with a stacked network reports its pairs"
  "$S" mot-eval --gt "$Q" --res "$T/st-$m.txt" >"$T/se.txt" && ge "$(field MOTA <"$T/se.txt")" 60 && ok \
    || bad "stacked siamese tracker $m: $(tail -1 "$T/se.txt")"
done
expect_error "geometry-only combiner with a network" "fit one with this CHECKPOINT" "$T/x.txt" \
  "$S" track "$CK" --seq "$Q" --out "$T/x.txt" --combiner "$T/c.txt"
expect_error "network combiner without one" "fit one with --appearance none" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --combiner "$T/cc.txt"
expect_error "import --format mot without ground truth" "neither a sequence with gt/gt.txt" "$T/y.lmdb" \
  "$S" import --format mot --root "$T/on" --out "$T/y.lmdb"
expect_error "import --format mot --min-visibility" "--min-visibility 2" "$T/y.lmdb" \
  "$S" import --format mot --root "$Q" --out "$T/y.lmdb" --min-visibility 2

# bad input
cp -r "$Q" "$T/bad"
printf '1,-1,10,10,20,20,0.9,-1,-1,-1\n2,-1,ten,10,20,20,0.9,-1,-1,-1\n' >"$T/bad/det/det.txt"
expect_error "malformed det line" "bad/det/det.txt:2: malformed" "$T/x.txt" \
  "$S" track --appearance none --seq "$T/bad" --out "$T/x.txt"
printf '61,-1,10,10,20,20,0.9,-1,-1,-1\n' >"$T/bad/det/det.txt"
expect_error "frame past the sequence" "det.txt:1: frame 61 is outside" "$T/x.txt" \
  "$S" track --appearance none --seq "$T/bad" --out "$T/x.txt"
printf '1,-1,400,10,20,20,0.9,-1,-1,-1\n' >"$T/bad/det/det.txt"
expect_error "box outside the frame" "lies wholly outside the 320x240 frame" "$T/x.txt" \
  "$S" track --appearance none --seq "$T/bad" --out "$T/x.txt"
printf '1,-1,10,10,0,20,0.9,-1,-1,-1\n' >"$T/bad/det/det.txt"
expect_error "box without area" "det.txt:1: box has no area" "$T/x.txt" \
  "$S" track --appearance none --seq "$T/bad" --out "$T/x.txt"
expect_error "track needs a checkpoint or --appearance" "--appearance none" "$T/x.txt" \
  "$S" track --seq "$Q" --out "$T/x.txt"
expect_error "track with both" "give a CHECKPOINT" "$T/x.txt" \
  "$S" track "$T/run/model.smpi" --appearance none --seq "$Q" --out "$T/x.txt"
expect_error "track --mode" "--mode sideways" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --mode sideways
expect_error "track --gate" "--gate 2" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --gate 2
printf 'b = 1\nw12 = 3\n' >"$T/badc.txt"
expect_error "bad combiner" "badc.txt:2: unknown key 'w12'" "$T/x.txt" \
  "$S" track --appearance none --seq "$Q" --out "$T/x.txt" --combiner "$T/badc.txt"
expect_error "mot-eval missing result" "nothing/synth-0101.txt: cannot open" "" \
  "$S" mot-eval --gt-root "$T/seq" --res-root "$T/nothing"
printf '1,1,10,10,20,20,1,-1,-1,-1\n1,1,40,10,20,20,1,-1,-1,-1\n' >"$T/dup.txt"
expect_error "duplicate id in a result" "dup.txt:2: id 1 appears twice in frame 1" "" \
  "$S" mot-eval --gt "$Q" --res "$T/dup.txt"
expect_error "synth into an existing directory" "already exists" "" \
  "$S" synth mot --out "$T/seq" --sequences 1 --frames 5
expect_error "synth unknown kind" "unknown kind 'coins'" "" "$S" synth coins --out "$T/z"
expect_error "mot-draw frame past the end" "--frame 61" "$T/g.png" \
  "$S" mot-draw --seq "$Q" --frame 61 --out "$T/g.png"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
