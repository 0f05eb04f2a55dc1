#!/usr/bin/env bash
# e2e_watchdog: a rank that stops making progress ends the job with exit
# status 76 and one line per rank still able to act, naming the late ranks
# and their phases, instead of a hang ([dist] timeout, dist/watchdog.c):
#   -np 2, rank 1 stops itself (SIGSTOP) after step 5: no answer from rank 1
#   -np 3, rank 2 stopped: rank 2 named, ranks 0-1 waiting in a phase
#   -np 3, rank 1's step-8 data never comes: rank 1 late "in data of step 8"
#   one process whose data never comes: the run named, exit 76
# then a resume of the stopped run with another timeout (dist.* may change)
# finishes. The stops come from the test hooks SIAMESE_TEST_STOP_STEP and
# SIAMESE_TEST_HANG_STEP (docs/formats.md).
set -u
cd "$(dirname "$0")/.."
# The siamese of the test build: with the stop / hang seams (tests/fixture_hooks.c).
S=$PWD/${SIAMESE_BUILD:-build}/siamese-test
F=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-watchdog.XXXXXX)
trap 'rm -rf "$T"' EXIT
[ -n "${KEEP:-}" ] && trap - EXIT
export OPENBLAS_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1
pass=0 fail=0
check() { if eval "$1"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $2" >&2; fi; }

$S import --format idx --images $F/t10k-images-idx3-ubyte.gz --labels $F/t10k-labels-idx1-ubyte.gz \
  --out "$T/d.lmdb" --resize 12x12 >/dev/null
# 8 s: above any start-up or step of the tiny model on a loaded machine.
SETS=(--set data.train="$T/d.lmdb" --set data.test= --set train.steps=100000 --set dist.timeout=8
      --set checkpoint.every=2 --set train.log_every=1000)

# stall NAME NP ENV... : trains until the watchdog ends it; rc, secs, $T/NAME.err
stall() {
  local name=$1 np=$2
  shift 2
  local t0=$SECONDS
  if [ "$np" -gt 0 ]; then
    env "$@" timeout 120 mpirun -np "$np" "$S" train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/$name" \
      >"$T/$name.out" 2>"$T/$name.err"
  else
    env "$@" timeout 120 "$S" train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/$name" \
      >"$T/$name.out" 2>"$T/$name.err"
  fi
  rc=$? secs=$((SECONDS - t0))
  grep '^siamese: .*stopped making progress' "$T/$name.err" >"$T/$name.lines"
}

stall stop2 2 SIAMESE_TEST_STOP_STEP=5 SIAMESE_TEST_RANK=1
check '[ $rc -eq 76 ] && [ $secs -lt 60 ]' "-np 2, rank 1 stopped: exit $rc after $secs s (want 76, not a hang)"
check '[ "$(wc -l <"$T/stop2.lines")" -eq 1 ] && grep -q "^siamese: \[rank 0\] a rank stopped making progress: step 5 has lasted .* late: rank 1 (no answer: stopped, dead or unreachable); waiting: rank 0 in optimizer of step 5" "$T/stop2.lines"' \
  "-np 2: rank 0 names rank 1 as late and itself waiting: $(head -c 600 "$T/stop2.lines")"

stall stop3 3 SIAMESE_TEST_STOP_STEP=5 SIAMESE_TEST_RANK=2
check '[ $rc -eq 76 ] && [ $secs -lt 60 ]' "-np 3, rank 2 stopped: exit $rc after $secs s"
check 'grep -q "late: rank 2 (no answer: stopped, dead or unreachable); waiting: ranks 0-1 in optimizer of step 5" "$T/stop3.lines" && ! grep -q "\[rank 2\]" "$T/stop3.lines"' \
  "-np 3: ranks 0 and 1 name rank 2: $(head -c 600 "$T/stop3.lines")"

stall hang3 3 SIAMESE_TEST_HANG_STEP=7 SIAMESE_TEST_RANK=1
check '[ $rc -eq 76 ] && [ $secs -lt 60 ]' "-np 3, rank 1 stuck reading: exit $rc after $secs s"
check 'n=$(wc -l <"$T/hang3.lines"); [ "$n" -ge 1 ] && [ "$(grep -c "late: rank 1 in data of step 8 ([0-9.]* s); waiting: ranks 0, 2 in exchange of step 8" "$T/hang3.lines")" -eq "$n" ]' \
  "-np 3: every rank that prints (rank 1's own watchdog too) names rank 1 in data of step 8: $(head -c 900 "$T/hang3.lines")"

stall hang1 0 SIAMESE_TEST_HANG_STEP=3
check '[ $rc -eq 76 ] && grep -q "^siamese: the run stopped making progress: step 4 has lasted .*(now in data)" "$T/hang1.lines"' \
  "one process stuck reading: exit $rc, $(head -c 400 "$T/hang1.lines")"

# A process stopped (SIGSTOP: Ctrl-Z, a debugger, mpirun before it ends a job)
# for longer than the timeout and continued has not stalled: its watchdog
# leaves the stopped time out and the run goes on to the end.
SIAMESE_TEST_STOP_STEP=5 $S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/cont" --set train.steps=12 --set dist.timeout=3 \
  >"$T/cont.out" 2>"$T/cont.err" &
pid=$!
t0=$SECONDS
until [ "$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)" = T ] || [ $((SECONDS - t0)) -gt 60 ]; do sleep 0.2; done
stopped=$(awk '{print $3}' /proc/$pid/stat 2>/dev/null)
sleep 6
kill -CONT $pid
wait $pid
rc=$?
check '[ "$stopped" = T ] && [ $rc -eq 0 ] && ! grep -q "stopped making progress" "$T/cont.err" && grep -q "ckpt-0000000012" <(ls "$T/cont")' \
  "a process stopped 6 s past a 3 s timeout and continued runs to its end: state $stopped, exit $rc, $(tail -c 400 "$T/cont.err")"

# The stopped run resumes from its newest checkpoint with another timeout.
$S train configs/tiny.ini "${SETS[@]}" --set run.dir="$T/stop2" --set train.steps=12 --set dist.timeout=300 \
  --resume auto >"$T/resume.out" 2>"$T/resume.err"
check '[ $? -eq 0 ] && grep -q "^resume: .*ckpt-0000000004.smpi at step 4" "$T/resume.out" && grep -Eq "dist.timeout: 8 -> (300|3e\+02)$" "$T/resume.out"' \
  "the stalled run resumes from step 4 with dist.timeout changed: $(tail -3 "$T/resume.err")"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
