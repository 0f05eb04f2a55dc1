#!/usr/bin/env bash
# augment.sh: does [augment] show in the training step? (issue 12: data wait
# below 1 % of the step at 28x28 on 2 ranks, and 2-rank throughput with
# augmentation at least 0.9 of without.) Trains CONFIG on NP ranks for STEPS
# steps with its [augment] section and with every distortion off, in
# alternating rounds (so both see the same machine), and prints each run's
# data wait share and img/s from rank 0's closing "time per step" line, then
# the medians and the ratio with/without. A config without distortions gets
# Koch's set for the "with" runs.
# Usage: bash bench/augment.sh [CONFIG] [ROUNDS] [STEPS]
#   env: NP (2), DATA (overrides [data] train), OUT (directory, a temp one by default)
set -u
cd "$(dirname "$0")/.."
CONFIG=${1:-configs/omniglot-28.ini} ROUNDS=${2:-3} STEPS=${3:-300} NP=${NP:-2}
OUT=${OUT:-$(mktemp -d /tmp/siamese-bench-augment.XXXXXX)}
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
[ -x ./siamese ] || { echo "bench/augment.sh: build ./siamese first (make)"; exit 1; }
[ -f "$CONFIG" ] || { echo "bench/augment.sh: $CONFIG: no such config"; exit 1; }
OFF=(--set augment.rotate=0 --set augment.shear=0 --set augment.scale_min=1 --set augment.scale_max=1
     --set augment.translate=0 --set augment.hflip=0 --set augment.crop_pad=0)
KOCH=(--set augment.rotate=10 --set augment.rotate_p=0.5 --set augment.shear=0.3 --set augment.shear_p=0.5
      --set augment.scale_min=0.8 --set augment.scale_max=1.2 --set augment.scale_p=0.5
      --set augment.translate=2 --set augment.translate_p=0.5)
ON=()
# The config's own distortions, or Koch's when it has none.
if ! grep -Eq '^\s*(rotate|shear|translate|crop_pad|hflip|scale_min|scale_max)\s*=\s*[^0 ]' "$CONFIG"; then ON=("${KOCH[@]}"); fi
COMMON=(--set train.steps="$STEPS" --set train.eval=0 --set checkpoint.every=0 --set eval.every=0 --set eval.data=)
[ -n "${DATA:-}" ] && COMMON+=(--set data.train="$DATA")
echo "# bench/augment.sh $CONFIG, $NP ranks, $STEPS steps, $ROUNDS rounds, $(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-5s %12s %10s %10s\n' round aug "data wait %" "img/s" "ms/step"
run() { # round, on|off, args...
  local r=$1 what=$2; shift 2
  local log="$OUT/$what-$r.log"
  mpirun -np "$NP" --oversubscribe ./siamese train "$CONFIG" "${COMMON[@]}" --set run.dir="$OUT/run-$what-$r" "$@" \
    >"$log" 2>&1 || { echo "bench/augment.sh: run failed, see $log"; tail -5 "$log"; exit 1; }
  local line; line=$(grep '^time per step' "$log")
  local ms wait ips
  ms=$(sed -E 's/.*: ([0-9.]+) ms = .*/\1/' <<<"$line")
  wait=$(sed -E 's/.*data wait ([0-9.]+)%.*/\1/' <<<"$line")
  ips=$(sed -E 's/.*; ([0-9.]+) img\/s.*/\1/' <<<"$line")
  printf '%-6s %-5s %12s %10s %10s\n' "$r" "$what" "$wait" "$ips" "$ms"
  echo "$what $wait $ips" >>"$OUT/rows"
}
: >"$OUT/rows"
for r in $(seq 1 "$ROUNDS"); do
  if [ $((r % 2)) -eq 1 ]; then run "$r" on "${ON[@]}"; run "$r" off "${OFF[@]}"
  else run "$r" off "${OFF[@]}"; run "$r" on "${ON[@]}"; fi
done
awk '
  function median(a, n,   i, j, t) { for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
                                     return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
  $1 == "on" { w[++n] = $2; on[n] = $3 } $1 == "off" { off[++m] = $3 }
  END { mw = median(w, n); mon = median(on, n); moff = median(off, m)
        printf "median: data wait with augmentation %.2f %% of the step (target < 1 %%); %.0f img/s with, %.0f without: ratio %.3f (target >= 0.9)\n", mw, mon, moff, mon / moff }' "$OUT/rows"
echo "logs in $OUT"
