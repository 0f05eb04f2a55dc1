#!/usr/bin/env bash
# koch_data.sh: a synthetic 105x105 dataset for timing Koch's network
# (configs/koch-omniglot.ini) without Omniglot: 20 classes of 10 random
# images and 2000 pairs (the content does not change the work of a dense
# network). Used by bench/perf.sh and bench/scaling.sh.
#   bench/koch_data.sh OUT.lmdb      (SIAMESE: the binary, default ./siamese)
# Does nothing if OUT.lmdb exists.
set -euo pipefail
OUT=${1:?usage: bench/koch_data.sh OUT.lmdb}
SIAMESE=${SIAMESE:-./siamese}
[ -d "$OUT" ] && exit 0
PGM=$(mktemp -d /tmp/siamese-koch-pgm.XXXXXX)
trap 'rm -rf "$PGM"' EXIT
python3 - "$PGM" <<'PY'
import os, random, sys
random.seed(1)
for c in range(20):
    d = os.path.join(sys.argv[1], "c%02d" % c)
    os.makedirs(d, exist_ok=True)
    for i in range(10):
        with open(os.path.join(d, "%02d.pgm" % i), "wb") as f:
            f.write(b"P5\n105 105\n255\n" + bytes(random.randrange(256) for _ in range(105 * 105)))
PY
"$SIAMESE" import --format folder --root "$PGM" --out "$OUT" > /dev/null
"$SIAMESE" pairs "$OUT" --pairs 2000 > /dev/null
