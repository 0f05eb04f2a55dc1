#!/usr/bin/env bash
# bench/lookalike.py (docs/tracking.md): the look-alike ROC AUC of embeddings
# written as `siamese embed` writes them, on hand-made 1-d embeddings whose
# answers are worked out here: targets far apart give 1, identical
# embeddings (every distance 0, ties counted half) 0.5; --save-partners
# pairs each target with the one of nearest mean in its own sequence;
# --partners reads those pairs back; --crossings pairs crops at hand-placed
# ground-truth crossings (1 when apart, 0.5 when the other target's crop
# stands in); bad files stop it with one line.
set -u
cd "$(dirname "$0")/.."
NAME=e2e_lookalike
. tests/lib_e2e.sh
L=bench/lookalike.py
command -v python3 >/dev/null || { echo "$NAME: no python3"; echo "0 passed, 0 failed"; exit 0; }

# PREFIX, then "SEQ ID VALUE" triples: 20 crops per target (frames 1..20), 1-d embedding VALUE
mk() {
  python3 - "$@" <<'EOF'
import struct, sys
pre, rows = sys.argv[1], sys.argv[2:]
names, vals = [], []
for i in range(0, len(rows), 3):
    for f in range(1, 21):
        names.append('%s/%d/%s' % (rows[i], f, rows[i + 1]))
        vals.append(float(rows[i + 2]))
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (%d, 1), }" % len(vals)
hdr += ' ' * (63 - len(hdr) % 64) + '\n'
with open(pre + '.emb.npy', 'wb') as f:
    f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())
    f.write(struct.pack('<%df' % len(vals), *vals))
open(pre + '.names.txt', 'w').write('\n'.join(names) + '\n')
EOF
}
auc() { python3 "$L" "$@" 2>&1 | sed -n 's/.*ROC AUC \([0-9.]*\) (\([0-9]*\) targets.*/\1 \2/p'; }
want() { # description, expected, actual
  if [ "$2" = "$3" ]; then ok; else bad "$1: want '$2', got '$3'"; fi
}

# targets 1 and 2 of two sequences; same-target distances 0, look-alike 3: AUC 1
mk "$T/far" s1 1 0 s1 2 3 s2 1 5 s2 2 8 s2 3 5
want "separated look-alikes" "1.0000 4" "$(auc "$T/far")"
# all crops equal: every distance 0, ties count half
mk "$T/same" s1 1 1 s1 2 1
want "identical embeddings" "0.5000 2" "$(auc "$T/same")"
# nearest mean: in s1 target 1 (0) pairs with 3 (1), 2 (5) with 3, 3 with 1; s2 has one target only
mk "$T/near" s1 1 0 s1 2 5 s1 3 1 s2 1 9
check "save partners" python3 "$L" "$T/near" --save-partners "$T/p.txt"
want "partners written" "s1 1 3|s1 2 3|s1 3 1" "$(paste -sd'|' "$T/p.txt")"
# those partners on far-apart data: every look-alike distance > 0 = every same-target distance
want "partners read back" "1.0000 3" "$(auc "$T/near" --partners "$T/p.txt")"
# s1's 1 and 2 are the pair without --partners; its 3 and s2's 1 have none
want "default pair" "1.0000 2" "$(auc "$T/near")"

# --crossings: targets 1 and 2 of s1 (frames 1..20) are 10x10 boxes far apart, except frames 10 and
# 11 where 2 sits 5 px right of 1 (IoU 50/150 = 0.33): 2 frames x 2 targets x 3 anchors = 12 pairs
# of each kind; the anchors come from the free frames at least 5 away (1-5 and 15-20 for frame 10)
mkdir -p "$T/gt/s1/gt"
for f in $(seq 1 20); do
  x2=200; [ "$f" = 10 ] || [ "$f" = 11 ] && x2=105
  printf '%d,1,100,100,10,10,1,1,1\n%d,2,%d,100,10,10,1,1,1\n' "$f" "$f" "$x2"
done >"$T/gt/s1/gt/gt.txt"
grep '^s1/' "$T/far.names.txt" >"$T/cr.names.txt"
python3 - "$T/cr" <<'EOF2'
import struct, sys
# s1's 40 crops of far: target 1 at 0, target 2 at 3; in -show target 1's frames 10-11 at 3
pre = sys.argv[1]
hdr = "{'descr': '<f4', 'fortran_order': False, 'shape': (40, 1), }"
hdr += ' ' * (63 - len(hdr) % 64) + '\n'
vals = [0.0] * 20 + [3.0] * 20
for v, name in (('sep', vals), ('show', [3.0 if f in (10, 11) else 0.0 for f in range(1, 21)] + [3.0] * 20)):
    with open(pre + '-' + v + '.emb.npy', 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(hdr)) + hdr.encode())
        f.write(struct.pack('<40f', *name))
EOF2
cp "$T/cr.names.txt" "$T/cr-sep.names.txt"; cp "$T/cr.names.txt" "$T/cr-show.names.txt"
cauc() { python3 "$L" "$@" 2>&1 | sed -n 's/.*crossing ROC AUC \([0-9.]*\) (IoU > [0-9.]*, \([0-9]*\) same-target and \([0-9]*\) other.*/\1 \2 \3/p'; }
# apart at the crossing: same-target distance 0, other 3: AUC 1
want "crossings, separated" "1.0000 12 12" "$(cauc "$T/cr-sep" --crossings "$T/gt")"
# target 1's crossing crops embed as target 2 (the other shows): every pair ties, AUC 0.5
want "crossings, the other shows" "0.5000 12 12" "$(cauc "$T/cr-show" --crossings "$T/gt")"
expect_error "no crossing above the IoU" "no crossing (IoU > 0.5)" 1 python3 "$L" "$T/cr-sep" --crossings "$T/gt" --crossing-iou 0.5
expect_error "bad --crossing-iou" "--crossing-iou wants a number in [0, 1), not 1" 1 \
  python3 "$L" "$T/cr-sep" --crossings "$T/gt" --crossing-iou 1
expect_error "no ground truth" "nogt/s1/gt/gt.txt:" 1 python3 "$L" "$T/cr-sep" --crossings "$T/nogt"

mk "$T/bad" s1 1 0 s1 2 1
head -c 20 "$T/bad.emb.npy" >"$T/trunc.emb.npy"; cp "$T/bad.names.txt" "$T/trunc.names.txt"
expect_error "not npy" "trunc.emb.npy: not a float32 .npy" 1 python3 "$L" "$T/trunc"
head -n 5 "$T/bad.names.txt" >"$T/short.names.txt"; cp "$T/bad.emb.npy" "$T/short.emb.npy"
expect_error "names count" "short.names.txt has 5 names for 40 rows" 1 python3 "$L" "$T/short"
mk "$T/lone" s1 1 0 s1 3 1
expect_error "no pair" "no target of" 1 python3 "$L" "$T/lone"
expect_error "unknown option" "unknown argument --bogus" 1 python3 "$L" "$T/far" --bogus

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
