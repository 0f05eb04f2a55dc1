#!/usr/bin/env bash
# e2e_dist_abort: a failure on one rank ends the whole MPI job promptly, with
# that rank's message, never a hang: replica divergence, FATAL on one rank,
# exit without finalize. Also the Open MPI singleton (no mpirun, world 1).
# Builds tests/helper_diverge.c with mpicc into a temp dir.
set -u
cd "$(dirname "$0")/.."
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_btl=self,vader,tcp
export OPENBLAS_NUM_THREADS=1
BUILD=${SIAMESE_BUILD:-build}
pass=0 fail=0
tmp=$(mktemp -d /tmp/siamese-e2e-abort.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

check() { # description, condition-status
  if [ "$2" -eq 0 ]; then pass=$((pass + 1)); else
    fail=$((fail + 1)); echo "FAIL: $1"
    [ -f "$tmp/err" ] && sed 's/^/    stderr: /' "$tmp/err" | head -n 20
  fi
}

# run NAME TIMEOUT CMD...: stdout in $tmp/out, stderr in $tmp/err, status in rc.
run() {
  local t=$1; shift
  timeout "$t" "$@" >"$tmp/out" 2>"$tmp/err"; rc=$?
}

if ! mpicc -std=c11 -D_GNU_SOURCE -O2 -Wall -Wextra -Werror -o "$tmp/helper" \
    tests/helper_diverge.c dist/comm.c nn/util.c -lpthread -lm 2>"$tmp/err"; then
  check "build helper_diverge" 1
  echo "$pass passed, $fail failed"; exit 1
fi
check "build helper_diverge" 0
h=$tmp/helper

# 1. Rank 2 of 3 diverges at step 1200.
run 60 mpirun -np 3 --oversubscribe "$h" diverge 1200 2
check "diverge: non-zero exit (rc $rc)" "$([ $rc -ne 0 ] && [ $rc -ne 124 ]; echo $?)"
check "diverge: no hang" "$([ $rc -ne 124 ]; echo $?)"
grep -q 'replicas diverged at step 1200: rank 2 differs from rank 0' "$tmp/err"
check "diverge: stderr names rank 2 and step 1200" $?
grep -q '\[rank 0\]' "$tmp/err"
check "diverge: message comes from rank 0" $?
! grep -q 'NOT REACHED' "$tmp/out"
check "diverge: no rank went on" $?

# 2. Ranks 2 and 3 of 4 diverge; the equal check at step 1100 passed first.
run 60 mpirun -np 4 --oversubscribe "$h" diverge 1200 2 3
check "diverge 2 ranks: non-zero exit, no hang (rc $rc)" "$([ $rc -ne 0 ] && [ $rc -ne 124 ]; echo $?)"
grep -q 'replicas diverged at step 1200: ranks 2, 3 differ from rank 0' "$tmp/err"
check "diverge 2 ranks: stderr names ranks 2, 3" $?

# 3. All equal: no abort.
run 60 mpirun -np 3 --oversubscribe "$h" diverge 1200
check "no divergence: runs on (rc $rc, NOT REACHED printed)" \
  "$([ "$(grep -c 'NOT REACHED' "$tmp/out")" -eq 3 ] && [ $rc -eq 0 ]; echo $?)"

# 4. FATAL on rank 1 while the others wait in a barrier.
t0=$(date +%s)
run 60 mpirun -np 3 --oversubscribe "$h" fatal
t1=$(date +%s)
check "fatal rank 1: non-zero exit, no hang (rc $rc, $((t1 - t0))s)" \
  "$([ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $((t1 - t0)) -lt 30 ]; echo $?)"
grep -q '\[rank 1\] tests/helper_diverge.c:[0-9]*: record 42: failed on purpose on rank one' "$tmp/err"
check "fatal rank 1: stderr has rank 1's message" $?

# 5. FATAL from a second thread of rank 1 (the prefetch thread's case).
run 60 mpirun -np 3 --oversubscribe "$h" thread
check "fatal in a thread: non-zero exit, no hang (rc $rc)" \
  "$([ $rc -ne 0 ] && [ $rc -ne 124 ]; echo $?)"
grep -q '\[rank 1\] .*record 7 is corrupt' "$tmp/err"
check "fatal in a thread: stderr has rank 1's message" $?

# 6. Rank 1 calls exit(3) without dist_finalize: the job ends with status 3.
run 60 mpirun -np 3 --oversubscribe "$h" exit
check "exit without finalize: exit status 3, no hang (rc $rc)" "$([ $rc -eq 3 ]; echo $?)"
grep -q '\[rank 1\] exiting (status 3) without dist_finalize' "$tmp/err"
check "exit without finalize: stderr says which rank" $?

# 7. Rank 1 dies of a signal: the launcher ends the job.
run 60 mpirun -np 3 --oversubscribe "$h" crash
check "crash on rank 1: non-zero exit, no hang (rc $rc)" \
  "$([ $rc -ne 0 ] && [ $rc -ne 124 ]; echo $?)"
! grep -q 'NOT REACHED' "$tmp/out"
check "crash on rank 1: no rank went on" $?

# 8. Singleton: no launcher, world 1.
run 60 "$h" solo
check "singleton: exit 0 (rc $rc)" "$([ $rc -eq 0 ]; echo $?)"
grep -q '^world=1 rank=0 ok$' "$tmp/out"
check "singleton: world 1" $?

# 9. Singleton FATAL: exit status 1, the message, no MPI abort banner.
run 60 "$h" nosuchmode
check "singleton fatal: exit 1 (rc $rc)" "$([ $rc -eq 1 ]; echo $?)"
grep -q "^siamese: tests/helper_diverge.c:[0-9]*: unknown mode 'nosuchmode'$" "$tmp/err"
check "singleton fatal: message without rank prefix" $?
! grep -q 'MPI_ABORT' "$tmp/err"
check "singleton fatal: no MPI_ABORT banner" $?

# 10. The MPI unit test program as a singleton, if it is built.
if [ -x "$BUILD/tests/mpi_comm" ]; then
  run 120 "$BUILD/tests/mpi_comm"
  check "mpi_comm singleton: exit 0 (rc $rc)" "$([ $rc -eq 0 ]; echo $?)"
  grep -qE '^[0-9]+ passed, 0 failed$' "$tmp/out"
  check "mpi_comm singleton: all passed" $?
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
