#!/usr/bin/env bash
# e2e_color: colour images and masks from the command line. A generated
# co-segmentation-like tree (RGB PNG images, palette PNG masks in a mirrored
# tree) imported with --color --masks; inspect's per-channel statistics and
# its --png / --ppm / --pgm dumps checked byte by byte; a tiny model trained
# on 3-channel inputs, evaluated, embedded and exported (per-channel
# normalisation in the checkpoint and the export metadata; a forward pass in
# Python over the exported weights, normalised by that metadata, gives the
# embeddings `siamese embed` wrote), and trained
# under mpirun -np 1 and 2 to equal weights; import --format mot --color
# crops of a hand-made RGB frame byte by byte; missing and mis-sized masks
# and bad [data] mean lists refused with one line.
# Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
NAME=e2e_color
. tests/lib_e2e.sh

# ---- a tree: 6 classes x 6 images of 12x12 RGB, each with a disc mask ----------
python3 - "$T" <<'PY'
import os, random, struct, sys, zlib
T = sys.argv[1]
def png(path, w, h, ctype, rows, pal=None):
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
    if pal: data += chunk(b"PLTE", pal)
    data += chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b"")
    open(path, "wb").write(data)
rng = random.Random(7)
for c in range(6):
    os.makedirs(f"{T}/img/c{c}"); os.makedirs(f"{T}/mask/c{c}")
    colour = [rng.randrange(256) for _ in range(3)]
    for k in range(6):
        cy, cx, r = rng.randrange(3, 9), rng.randrange(3, 9), 3
        inside = [[(y - cy) ** 2 + (x - cx) ** 2 <= r * r for x in range(12)] for y in range(12)]
        rows = [bytes(v for x in range(12) for v in (colour if inside[y][x] else [rng.randrange(60)] * 3))
                for y in range(12)]
        png(f"{T}/img/c{c}/{k}.png", 12, 12, 2, rows)
        mrows = [bytes(2 if inside[y][x] else 0 for x in range(12)) for y in range(12)]
        png(f"{T}/mask/c{c}/{k}.png", 12, 12, 3, mrows, pal=bytes([0, 0, 0, 255, 0, 0, 0, 255, 0]))
# the reference for the dumps: image 3 of class 2, and its mask
import json
json.dump({"c": 2, "k": 3}, open(f"{T}/ref.json", "w"))
PY
check "import --color --masks" $S import --format folder --root "$T/img" --masks "$T/mask" --color \
  --out "$T/tr.lmdb" --split-by sample --test-fraction 0.34 --test-out "$T/te.lmdb"
$S inspect "$T/tr.lmdb" >"$T/insp"
check "inspect: 3x12x12" grep -Eq '^shape +3x12x12 ' "$T/insp"
check "inspect: per-channel mean and std" grep -Eq '^mean +[0-9.]+ \(per channel [0-9.]+, [0-9.]+, [0-9.]+\)$' "$T/insp"
check "inspect: masks" grep -Eq '^masks +yes' "$T/insp"
check "inspect --verify" $S inspect "$T/tr.lmdb" --verify
# sample 8 of tr.lmdb: --names tells which file it is; the dumps must equal that file and its mask
name=$($S inspect "$T/tr.lmdb" --names | awk -F'\t' '$1 == 8 {print $3}')
check "dump --png" $S inspect "$T/tr.lmdb" --dump 8 --png "$T/d.png"
check "dump --ppm" $S inspect "$T/tr.lmdb" --dump 8 --ppm "$T/d.ppm"
check "dump --pgm" $S inspect "$T/tr.lmdb" --dump 8 --pgm "$T/d.pgm"
check "the dumps hold the image (RGB) and its mask (0 / 255) below it" python3 - "$T" "$name" <<'PY'
import struct, sys, zlib
T, name = sys.argv[1], sys.argv[2]
def read_png(path):
    d = open(path, "rb").read(); pos, idat, hdr, pal = 8, b"", None, None
    while pos < len(d):
        n, = struct.unpack(">I", d[pos:pos + 4]); t = d[pos + 4:pos + 8]; body = d[pos + 8:pos + 8 + n]; pos += 12 + n
        if t == b"IHDR": hdr = struct.unpack(">IIBBBBB", body)
        if t == b"IDAT": idat += body
    w, h, depth, ctype = hdr[:4]; ch = {0: 1, 2: 3, 3: 1}[ctype]; raw = zlib.decompress(idat); rows = []; prev = bytes(w * ch)
    for y in range(h):
        f, line = raw[y * (w * ch + 1)], bytearray(raw[y * (w * ch + 1) + 1:(y + 1) * (w * ch + 1)])
        for i in range(len(line)):
            a = line[i - ch] if i >= ch else 0; b = prev[i]; c = prev[i - ch] if i >= ch else 0
            p = a + b - c; pr = a if abs(p - a) <= abs(p - b) and abs(p - a) <= abs(p - c) else b if abs(p - b) <= abs(p - c) else c
            line[i] = (line[i] + [0, a, b, (a + b) // 2, pr][f]) & 255
        rows.append(bytes(line)); prev = line
    return w, h, ctype, rows
w, h, ctype, img = read_png(f"{T}/img/{name}")
_, _, _, mask = read_png(f"{T}/mask/{name}")
want = b"".join(img) + b"".join(bytes(v for m in r for v in [255 if m else 0] * 3) for r in mask)
dw, dh, dct, drows = read_png(f"{T}/d.png")
assert (dw, dh, dct) == (12, 24, 2) and b"".join(drows) == want, "png"
ppm = open(f"{T}/d.ppm", "rb").read()
assert ppm == b"P6\n12 24\n255\n" + want, "ppm"
pgm = open(f"{T}/d.pgm", "rb").read()
planes = [bytes(r[x * 3 + c] for r in img for x in range(12)) for c in range(3)]
assert pgm == b"P5\n12 48\n255\n" + b"".join(planes) + bytes(255 if m else 0 for r in mask for m in r), "pgm"
PY

# ---- a 3-channel model -------------------------------------------------------------
check "train on 3-channel inputs" $S train configs/tiny.ini --set run.dir="$T/run" --set data.train="$T/tr.lmdb" \
  --set data.test="$T/te.lmdb" --set sampler.p=4 --set sampler.k=3 --set train.steps=6 --set train.eval=1
check "the checkpoint keeps a mean and std per channel" \
  bash -c "$S inspect '$T/run/model.smpi' | grep -Eq '^  mean=[0-9.e-]+,[0-9.e-]+,[0-9.e-]+$'"
$S inspect "$T/run/model.smpi" | sed -n 's/^  mean=//p' >"$T/ck.mean"
$S inspect "$T/tr.lmdb" | sed -n 's/^mean .*(per channel \(.*\))$/\1/p' >"$T/ds.mean"
check "their values are the training set's" python3 -c "
import sys
a = [float(v) for v in open(sys.argv[1]).read().split(',')]
b = [float(v) for v in open(sys.argv[2]).read().split(',')]
assert len(a) == 3 and len(b) == 3 and all(abs(x - y) < 1e-6 for x, y in zip(a, b)), (a, b)" "$T/ck.mean" "$T/ds.mean"
check "eval" $S eval "$T/run/model.smpi" --data "$T/te.lmdb" --json "$T/e.json"
check "embed" $S embed "$T/run/model.smpi" --data "$T/te.lmdb" --out "$T/emb"
check "export" $S export "$T/run/model.smpi" --out "$T/m.safetensors"
check "export metadata: three means and stds, conv1 takes 3 channels" python3 - "$T" <<'PY'
import json, struct, sys
b = open(sys.argv[1] + "/m.safetensors", "rb").read(); n, = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n])
assert len(h["__metadata__"]["input_mean"].split(",")) == 3 and len(h["__metadata__"]["input_std"].split(",")) == 3
assert h["conv1.weight"]["shape"][1] == 3
PY
for np in 1 2; do
  check "3-channel model under mpirun -np $np" mpirun --oversubscribe -np $np $S train configs/tiny.ini \
    --set run.dir="$T/np$np" --set data.train="$T/tr.lmdb" --set sampler.p=4 --set sampler.k=3 \
    --set train.steps=6 --set train.eval=0
done
check "1 rank and 2 ranks end with the same weights" $S inspect "$T/np1/model.smpi" --compare "$T/np2/model.smpi" \
  --tol 1e-5
check "the export and its normalisation give embed's embeddings (a forward in Python)" python3 - "$T" "$S" <<'PY'
# tiny.ini: conv 3x3 (4 filters, no padding), relu, maxpool 2, flatten, linear 16, l2norm
import json, math, struct, subprocess, sys
T = sys.argv[1]
b = open(T + "/m.safetensors", "rb").read(); n, = struct.unpack("<Q", b[:8]); h = json.loads(b[8:8 + n])
def tensor(k):
    o0, o1 = h[k]["data_offsets"]; d = b[8 + n + o0:8 + n + o1]
    return list(struct.unpack("<%df" % (len(d) // 4), d)), h[k]["shape"]
mean = [float(v) for v in h["__metadata__"]["input_mean"].split(",")]
std = [float(v) for v in h["__metadata__"]["input_std"].split(",")]
cw, (F, C, K, _) = tensor("conv1.weight"); cb, _ = tensor("conv1.bias")
lw, (D, I) = tensor("fc1.weight"); lb, _ = tensor("fc1.bias")
e = open(T + "/emb.emb.npy", "rb").read(); hl, = struct.unpack("<H", e[8:10]); emb = e[10 + hl:]
worst = 0
for i in range(3):
    subprocess.run([sys.argv[2], "inspect", T + "/te.lmdb", "--dump", str(i),
                    "--ppm", T + "/s.ppm"], check=True, capture_output=True)
    p = open(T + "/s.ppm", "rb").read()[len(b"P6\n12 24\n255\n"):]
    x = [[[(p[(y * 12 + xx) * 3 + c] / 255 - mean[c]) / std[c] for xx in range(12)] for y in range(12)] for c in range(3)]
    S = 12 - K + 1
    conv = [[[max(0.0, cb[f] + sum(cw[((f * C + c) * K + u) * K + v] * x[c][y + u][xx + v]
              for c in range(C) for u in range(K) for v in range(K))) for xx in range(S)] for y in range(S)] for f in range(F)]
    pool = [max(conv[f][2 * y + u][2 * xx + v] for u in (0, 1) for v in (0, 1))
            for f in range(F) for y in range(S // 2) for xx in range(S // 2)]
    assert len(pool) == I
    z = [lb[d] + sum(lw[d * I + k] * pool[k] for k in range(I)) for d in range(D)]
    norm = math.sqrt(sum(v * v for v in z))
    want = struct.unpack("<%df" % D, emb[i * D * 4:(i + 1) * D * 4])
    worst = max(worst, max(abs(v / norm - w) for v, w in zip(z, want)))
assert worst < 1e-4, worst
PY
check "train with one mean for every channel" $S train configs/tiny.ini --set run.dir="$T/run2" \
  --set data.train="$T/tr.lmdb" --set data.mean=0.5 --set data.std=0.25,0.25,0.5 --set sampler.p=4 \
  --set sampler.k=3 --set train.steps=2 --set train.eval=0
check "... stored per channel" bash -c "$S inspect '$T/run2/model.smpi' | grep -q '^  mean=0.5,0.5,0.5$'"

# ---- import --format mot --color: crops of a hand-made 8x6 RGB frame ----------------
python3 - "$T" <<'PY'
import os, struct, sys, zlib
T = sys.argv[1] + "/seq"
os.makedirs(T + "/img1"); os.makedirs(T + "/gt")
open(T + "/seqinfo.ini", "w").write("[Sequence]\nname=hand\nimDir=img1\nframeRate=30\nseqLength=1\n"
                                    "imWidth=8\nimHeight=6\nimExt=.png\n")
px = lambda y, x: (10 * x + y, 100 + 20 * y, 250 - 30 * x)
def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
rows = [bytes(v for x in range(8) for v in px(y, x)) for y in range(6)]
open(T + "/img1/000001.png", "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 6, 8, 2, 0, 0, 0))
  + chunk(b"IDAT", zlib.compress(b"".join(b"\0" + r for r in rows))) + chunk(b"IEND", b""))
# one box: file x 3, y 2 (1-based) = column 2, row 1; 3 wide, 2 high
open(T + "/gt/gt.txt", "w").write("1,7,3,2,3,2,1,1,1\n")
crop = [px(y, x) for y in (1, 2) for x in (2, 3, 4)]
open(sys.argv[1] + "/crop.ppm", "wb").write(b"P6\n3 2\n255\n" + bytes(v for p in crop for v in p))
luma = bytes((299 * r + 587 * g + 114 * b + 500) // 1000 for r, g, b in crop)
open(sys.argv[1] + "/crop.pgm", "wb").write(b"P5\n3 2\n255\n" + luma)
PY
check "import --format mot --color" $S import --format mot --root "$T/seq" --out "$T/mot3.lmdb" --resize 2x3 --color
check "mot --color: 3 channels" bash -c "$S inspect '$T/mot3.lmdb' | grep -Eq '^shape +3x2x3 '"
check "mot --color: the crop's RGB pixels" bash -c "$S inspect '$T/mot3.lmdb' --dump 0 --ppm '$T/m3.ppm' &&
  cmp '$T/m3.ppm' '$T/crop.ppm'"
check "import --format mot (grey)" $S import --format mot --root "$T/seq" --out "$T/mot1.lmdb" --resize 2x3
check "mot grey: the crop's luma" bash -c "$S inspect '$T/mot1.lmdb' --dump 0 --pgm '$T/m1.pgm' &&
  cmp '$T/m1.pgm' '$T/crop.pgm'"

# ---- bad input --------------------------------------------------------------------------
expect_error "two means for three channels" "[data] mean = '0.5,0.4': give 0" 2 \
  $S train configs/tiny.ini --set run.dir="$T/run3" --set data.train="$T/tr.lmdb" --set data.mean=0.5,0.4
expect_error "a malformed std" "[data] std = '1,,2'" 2 \
  $S train configs/tiny.ini --set run.dir="$T/run3" --set data.train="$T/tr.lmdb" --set data.std=1,,2
cp -r "$T/mask" "$T/mask2"; rm "$T/mask2/c3/4.png"
expect_error "a missing mask" "c3/4.png: no mask for this image: expected $T/mask2/c3/4.png" 1 \
  $S import --format folder --root "$T/img" --masks "$T/mask2" --out "$T/x.lmdb"
cp "$T/img/c0/0.png" "$T/mask2/c3/4.png"; python3 -c "
import struct,zlib,sys
def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d) & 0xffffffff)
open(sys.argv[1], 'wb').write(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 5, 4, 8, 0, 0, 0, 0)) +
  chunk(b'IDAT', zlib.compress(bytes(4 * 6))) + chunk(b'IEND', b''))" "$T/mask2/c3/4.png"
expect_error "a mis-sized mask" "mask2/c3/4.png: mask is 4x5 (HxW) but its image" 1 \
  $S import --format folder --root "$T/img" --masks "$T/mask2" --out "$T/x.lmdb"
check "nothing left of the failed imports" test ! -e "$T/x.lmdb" -a -z "$(compgen -G "$T/x.lmdb.tmp-*")"
expect_error "--masks with omniglot" "--masks goes with --format folder" 1 \
  $S import --format omniglot --root "$T/img" --masks "$T/mask" --out "$T/x.lmdb"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
