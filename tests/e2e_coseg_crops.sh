#!/usr/bin/env bash
# bench/coseg_crops (docs/coseg.md, "A ceiling"): every object of a small
# synth coseg set with class masks, against a numpy re-implementation of the
# crop (the square around the visible pixels, bilinear) from the images
# `siamese inspect --dump` writes and the class masks `coseg_errors --write
# classes` writes; --samples; bad input stops it with one line and no files.
# Then bench/coseg_ceiling.py's pickers on posteriors worked out by hand, and
# its controls on the generated set (true classes pick every image, equal
# posteriors none).
set -u
cd "$(dirname "$0")/.."
NAME=e2e_coseg_crops
. tests/lib_e2e.sh
B=${BUILD:-build}/bench
E=$B/coseg_crops
[ -x "$E" ] && [ -x "$B/coseg_errors" ] || {
  echo "$NAME: $E or coseg_errors not built (make test-build)"; echo "0 passed, 1 failed"; exit 1; }
PY=${PYTHON:-/usr/bin/python3} # with numpy (make deps)

# 8 test pairs of 48x48 (16 images), object and class masks
G=(--pairs 40 --side 48 --seed 3)
check "synth coseg" "$S" synth coseg --out "$T/tr" --test-out "$T/te" "${G[@]}"
check "synth coseg --class-masks" "$S" synth coseg --class-masks --out "$T/ctr" --test-out "$T/cte" "${G[@]}"

"$E" "$T/cte" "$T/c" --size 16 --margin 0.25 >"$T/out.txt" 2>&1 || bad "coseg_crops: $(cat "$T/out.txt")"
grep -q "^16 samples: [0-9]* objects as 16x16 crops in $T/c.crops.npy; 8 pairs$" "$T/out.txt" && ok ||
  bad "summary line: $(cat "$T/out.txt")"
"$E" "$T/cte" "$T/c5" --size 16 --margin 0.25 --samples 5 >"$T/out5.txt" 2>&1 || bad "--samples 5: $(cat "$T/out5.txt")"

if "$PY" -c "import numpy" 2>/dev/null; then
  mkdir -p "$T/cls"
  check "--write classes" "$B/coseg_errors" "$T/te" "$T/cte" "$T/cls" --write classes
  for i in $(seq 0 15); do check "dump $i" "$S" inspect "$T/cte" --dump "$i" --pgm "$T/img$i.pgm"; done
  res=$("$PY" - "$T" <<'PY'
import re, sys, numpy as np
t = sys.argv[1]
def pgm(path):  # the image: the top 48 rows (its class mask is drawn below it)
    raw = open(path, "rb").read()
    m = re.match(rb"P5\s+(\d+)\s+(\d+)\s+255\s", raw)
    w, h = int(m.group(1)), int(m.group(2))
    return np.frombuffer(raw[m.end():], np.uint8)[:w * h].reshape(h, w)[:48].astype(np.float64)
C = np.load(t + "/cls/classes.npy").astype(int).reshape(-1, 48, 48)
crops, objs, pairs = (np.load(t + "/c." + k + ".npy") for k in ("crops", "objects", "pairs"))
S, M = 16, 0.25
def bilinear(p, y, x):
    y0, x0 = int(np.floor(y)), int(np.floor(x))
    v = 0.0
    for dy in (0, 1):
        for dx in (0, 1):
            yy, xx = y0 + dy, x0 + dx
            wgt = (y - y0 if dy else 1 - (y - y0)) * (x - x0 if dx else 1 - (x - x0))
            if 0 <= yy < 48 and 0 <= xx < 48:
                v += wgt * p[yy, xx]
    return v
rows, ref = [], []
for i in range(16):
    img = pgm("%s/img%d.pgm" % (t, i))
    for c in range(1, 256):
        ys, xs = np.nonzero(C[i] == c)
        if not len(ys):
            continue
        side = (max(ys.max() - ys.min(), xs.max() - xs.min()) + 1) * (1 + 2 * M)
        cy, cx = (ys.min() + ys.max() + 1) / 2, (xs.min() + xs.max() + 1) / 2
        top, left, step = cy - side / 2, cx - side / 2, side / S
        plane = np.where(C[i] == c, 255.0, 0.0)
        out = np.zeros((2, S, S))
        for oy in range(S):
            for ox in range(S):
                sy, sx = top + (oy + 0.5) * step - 0.5, left + (ox + 0.5) * step - 0.5
                out[0, oy, ox], out[1, oy, ox] = bilinear(img, sy, sx), bilinear(plane, sy, sx)
        rows.append([i, c - 1, len(ys), left, top, side])
        ref.append(out)
rows, ref = np.array(rows, np.float32), np.array(ref)
d = np.abs(crops.astype(np.float64) - ref)
P = np.load(t + "/cls/pairs.npy")
print("objects", int(np.array_equal(rows, objs)), "shape", int(crops.shape == (len(rows), 2, S, S)),
      "within1", int(d.max() <= 0.5 + 1e-9), "pairs", int(np.array_equal(P, pairs)),
      "mask-on-object", int(all(crops[k, 1].max() == 255 for k in range(len(rows)))))
c5, o5, p5 = (np.load(t + "/c5." + k + ".npy") for k in ("crops", "objects", "pairs"))
n5 = int(np.sum(objs[:, 0] < 5))
print("samples5", int(np.array_equal(o5, objs[:n5]) and np.array_equal(c5, crops[:n5])
                      and np.array_equal(p5, pairs[(pairs[:, 0] < 5) & (pairs[:, 1] < 5)])))
PY
)
  for k in objects shape within1 pairs mask-on-object samples5; do
    grep -q "$k 1" <<<"$res" && ok || bad "numpy reference, $k: $res"
  done

  # ---- the pickers, worked by hand ----------------------------------------------
  # pair 0: image 0 holds classes 0, 1, image 1 classes 1, 2 (common 1); pair 1:
  # image 2 holds 3, 4, image 3 holds 4, 5 (common 4); pair 2 has none (skipped).
  # product: pair 0: max pA * max pB = 0.06, 0.45, 0 for classes 0-2: class 1,
  # its best object in each image the right one; pair 1: 0.07 (3), 0.30 (4), 0.27
  # (5): class 4, right in both. match: pair 0 right in both; pair 1: A's objects
  # score 0.34 (class 3, against B's class 5) and 0.30: wrong; B's 0.30 and 0.34:
  # wrong. So product 1.0000 and match 0.5000. Per object, 7 of 8 right (the
  # second object's 0.5 / 0.5 tie goes to class 0, the first).
  "$PY" - "$T" <<'PY'
import sys, numpy as np
t = sys.argv[1]
o = np.zeros((8, 6), np.float32)
o[:, 0] = [0, 0, 1, 1, 2, 2, 3, 3]
o[:, 1] = [0, 1, 1, 2, 3, 4, 4, 5]
p = np.zeros((8, 8), np.float32)
p[0, [0, 1]] = 0.6, 0.4
p[1, [0, 1]] = 0.5, 0.5
p[2, [0, 1]] = 0.1, 0.9
p[3, 2] = 1
p[4, [3, 5]] = 0.7, 0.3
p[5, [4, 3]] = 0.6, 0.4
p[6, [4, 5]] = 0.5, 0.5
p[7, [5, 3]] = 0.9, 0.1
np.save(t + "/hand.objects.npy", o)
np.save(t + "/hand.pairs.npy", np.array([[0, 1, 1], [2, 3, 1], [0, 3, 0]], np.float32))
np.save(t + "/hand.probs.npy", p)
PY
  CE=bench/coseg_ceiling.py
  "$PY" $CE pick "$T/hand" --probs "$T/hand.probs.npy" >"$T/hand.txt" 2>&1
  grep -q "per-object accuracy 0.8750; 4 seen images with a common object; picked: product 1.0000, match 0.5000$" "$T/hand.txt" && ok ||
    bad "pickers by hand: $(head -3 "$T/hand.txt")"
  grep -q "^product: Jaccard with perfect outlines 1.0000; with outlines of Jaccard 0.775 when picked and 0.000 when not: 0.7750$" \
    "$T/hand.txt" && ok || bad "implied Jaccard: $(cat "$T/hand.txt")"
  # controls on the generated set: any posteriors file of the right length
  "$PY" -c "import numpy as np, sys; np.save(sys.argv[1], np.full((int(sys.argv[2]), 8), 0.125, np.float32))" \
    "$T/flat.npy" "$("$PY" -c "import numpy as np, sys; print(len(np.load(sys.argv[1])))" "$T/c.objects.npy")"
  for ctl in truth:1.0000 uniform:0.0000; do
    "$PY" $CE pick "$T/c" --probs "$T/flat.npy" --control "${ctl%%:*}" >"$T/ctl.txt" 2>&1
    grep -q "picked: product ${ctl#*:}, match ${ctl#*:}$" "$T/ctl.txt" && ok || bad "control $ctl: $(head -2 "$T/ctl.txt")"
  done
else
  echo "skip: numpy checks ($PY has no numpy)"
fi

# ---- bad input -------------------------------------------------------------------
expect_error "object masks" "not a grey dataset with class masks" 1 "$E" "$T/te" "$T/x"
expect_error "no such directory" "$T/no/x.crops.npy: cannot write" 1 "$E" "$T/cte" "$T/no/x"
ls "$T"/x.* "$T"/no 2>/dev/null | grep -q . && bad "files left after the errors: $(ls "$T"/x.* "$T"/no)" || ok
expect_error "bad --size" "--size 4: expected a whole number in [8, 128]" 2 "$E" "$T/cte" "$T/y" --size 4
expect_error "bad --margin" "--margin x: expected a number in [0, 1]" 2 "$E" "$T/cte" "$T/y" --margin x
expect_error "bad option" "bad option --sides 3" 2 "$E" "$T/cte" "$T/y" --sides 3
ls "$T"/y.* 2>/dev/null | grep -q . && bad "files left after bad options" || ok

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
