#!/usr/bin/env bash
# How long `siamese report` takes on a 10^4-point test set: imports the
# Fashion-MNIST test set (10000 images, Debian's dataset-fashion-mnist),
# trains configs/tiny.ini for 200 steps on it (report off), then times the
# report of that run on all 10000 images: evaluation, retrieval, PCA and the
# t-SNE of all 10^4 points. Prints wall and CPU (user + system) seconds and
# the report's own per-part times (the t-SNE's is in the map's caption).
# Run it on a quiet machine: on a loaded one the wall time is several times
# the CPU time. OUT keeps the files.
#   bash bench/report.sh [OUT]
set -eu
cd "$(dirname "$0")/.."
make -s siamese
OUT=${1:-$(mktemp -d /tmp/siamese-bench-report.XXXXXX)}
mkdir -p "$OUT"
F=/usr/share/datasets/fashion-mnist
export OPENBLAS_NUM_THREADS=1
[ -d "$OUT/test.lmdb" ] || ./siamese import --format idx --images $F/t10k-images-idx3-ubyte.gz \
  --labels $F/t10k-labels-idx1-ubyte.gz --out "$OUT/test.lmdb" >/dev/null
rm -rf "$OUT/run"
./siamese train configs/tiny.ini --set data.train="$OUT/test.lmdb" --set data.test="$OUT/test.lmdb" \
  --set run.dir="$OUT/run" --set train.steps=200 --set train.eval=0 --set train.report=0 >/dev/null
/usr/bin/time -f "report of 10000 test points: %e s wall, %U s user + %S s system CPU, %M KB peak memory" \
  ./siamese report "$OUT/run" --out "$OUT/report.html"
ls -l "$OUT/report.html"
