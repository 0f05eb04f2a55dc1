#!/usr/bin/env bash
# End to end on a real SLURM: slurm/local-cluster.sh starts munged, slurmctld
# and two slurmd (fake nodes n1, n2 on 127.0.0.1; its own state dir and ports,
# so a developer's cluster is left alone), runs its self-test, then:
#   smoke    slurm/smoke.sbatch on -N2 (sbatch --wait): srun --mpi=pmix reaches
#            every task, a tiny model trains, exits 0, a checkpoint verifies
#   srun     slurm/train.sbatch, hybrid: 2 nodes x 1 rank x 2 threads (-c 2):
#            USR1 to the batch shell (as --signal=B:USR1 sends it) -> the ranks
#            checkpoint, exit 75 -> the job requeues itself -> the rerun
#            resumes from that checkpoint and finishes
#   mpirun   the same with SIAMESE_LAUNCHER=mpirun
#   limit    a real time limit (-t 1, --signal=B:USR1@15): checkpoint, exit
#            75, requeue, resume, finish
#   limitcap the same with SIAMESE_MAX_REQUEUES=0: checkpoint, exit 75, no
#            requeue
# srun, mpirun and limit end bit-equal (weights, optimizer state, metrics)
# to an uninterrupted run of the same length and world size (1 thread per
# rank: so the 2-thread jobs also check that threads change no bit).
#   cancel   scancel while training: checkpoint, exit 75, no requeue
#   sweep    slurm/sweep.sbatch as a 2-task array: each run takes its overrides
#   stall    rank 1 of 2 stops itself (SIGSTOP): the watchdog ends the job
#            with 76, the job requeues itself, resumes and finishes
# The first run of srun/mpirun/limit trains "forever" ([train] steps = 1000000);
# once it has checkpointed, the test shortens [train] steps in its config (a
# key that may change on resume) so the rerun stops 40 steps after the
# checkpoint, whatever the machine's speed. The training jobs run at once.
# Needs root (daemons); takes about a minute, at most 3. Skipped (0 passed,
# 0 failed) when not root or with SIAMESE_SKIP_SLURM=1.
set -u
cd "$(dirname "$0")/.." || exit 1
pass=0 fail=0
check() { # status message
  if [ "$1" -eq 0 ]; then pass=$((pass + 1)); echo "ok   $2"; else fail=$((fail + 1)); echo "FAIL $2"; fi
}
finish() { echo "$pass passed, $fail failed"; [ "$fail" -eq 0 ]; exit; }

if [ "${SIAMESE_SKIP_SLURM:-0}" = 1 ]; then echo "skipped: SIAMESE_SKIP_SLURM=1"; finish; fi
if [ "$(id -u)" -ne 0 ]; then echo "skipped: starting SLURM daemons needs root"; finish; fi
[ -x ./siamese ] || { check 1 "./siamese exists (run make first)"; finish; }

tmp=$(mktemp -d /tmp/siamese-e2e-slurm.XXXXXX)
chmod 755 "$tmp" # munged runs as user munge and must reach its socket directory
export SIAMESE_SLURM_ROOT=$tmp/cluster
export SIAMESE_SLURM_CTLD_PORT=${SIAMESE_SLURM_CTLD_PORT:-6917}
export SIAMESE_SLURM_NODE_PORT=${SIAMESE_SLURM_NODE_PORT:-17101}
export SIAMESE_SLURM_NODES=2
export SIAMESE_SLURM_CPUS=8 # 16 SLURM CPUs on this machine, so the training jobs run at once
cluster() { bash slurm/local-cluster.sh "$@"; }
# shellcheck disable=SC2317 # called from the trap
cleanup() {
  cluster down >/dev/null 2>&1 || echo "warning: local-cluster.sh down failed; state in $tmp kept" >&2
  [ -n "$(ls "$SIAMESE_SLURM_ROOT/run" 2>/dev/null)" ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

job_field() { timeout 5 scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
terminal() {
  case $1 in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED) return 0 ;; esac
  return 1
}
newest_ckpt() { find "$1" -maxdepth 1 -name 'ckpt-*.smpi' 2>/dev/null | sort | tail -n 1; }

# ---- the cluster
t0=$SECONDS
out=$(timeout 240 bash slurm/local-cluster.sh up 2>&1)
rc=$?
check $rc "local-cluster.sh up in $((SECONDS - t0)) s"
[ $rc -eq 0 ] || { echo "$out"; finish; }
eval "$(cluster env)"

t0=$SECONDS
timeout 150 bash slurm/local-cluster.sh selftest >"$tmp/selftest.out" 2>&1
sed 's/^/    /' "$tmp/selftest.out"
line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$tmp/selftest.out" | tail -n 1)
if [ -n "$line" ]; then
  p=${line%% passed*} f=${line#*passed, } f=${f%% failed}
  pass=$((pass + p)) fail=$((fail + f))
  echo "     selftest: $line in $((SECONDS - t0)) s"
else
  check 1 "local-cluster.sh selftest printed no result"
fi

# ---- smoke: trains when `siamese train` exists, else only checks the launch
mode=launch
./siamese train --help >/dev/null 2>&1 && mode=train
t0=$SECONDS
smoke=$tmp/smoke
mkdir -p "$smoke"
SIAMESE_SMOKE=$mode SIAMESE_SMOKE_DIR=$smoke timeout 150 \
  sbatch --wait -o "$tmp/smoke.out" slurm/smoke.sbatch >/dev/null 2>"$tmp/smoke.err"
rc=$?
[ $rc -eq 0 ] && grep -q '^smoke: OK' "$tmp/smoke.out"
check $? "smoke.sbatch ($mode) with sbatch --wait: exit $rc in $((SECONDS - t0)) s"
[ $rc -eq 0 ] || sed 's/^/    /' "$tmp/smoke.out" "$tmp/smoke.err"
if [ "$mode" != train ] || [ ! -f "$smoke/smoke.ini" ]; then
  # Until `siamese train` works, only the launch is checked; the tests below
  # need a trainer that checkpoints on USR1/TERM and exits 75.
  echo "note: training tests skipped (siamese train unavailable or the smoke run failed)"
  finish
fi

# ---- training jobs: submitted together, driven by one polling loop
forever() { # name -> a copy of the smoke config that trains until stopped
  sed -e 's/^steps = .*/steps = 1000000/' -e 's/^log_every = .*/log_every = 200/' \
    -e 's/^every = .*/every = 1000000/' "$smoke/smoke.ini" >"$tmp/$1.ini"
}
declare -A jid stage
submit() { # name [env=value ...] -- sbatch options
  local name=$1 envs=()
  shift
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  forever "$name"
  jid[$name]=$(env "${envs[@]}" SIAMESE_RUN_DIR="$tmp/run-$name" \
    sbatch --parsable -o "$tmp/$name.out" "$@" slurm/train.sbatch "$tmp/$name.ini")
  stage[$name]=0
  [ -n "${jid[$name]}" ] || { check 1 "$name: sbatch refused the job"; unset "jid[$name]"; }
}
t0=$SECONDS
submit srun -- -N 2 --ntasks-per-node=1 -c 2 -t 5
submit mpirun SIAMESE_LAUNCHER=mpirun -- -N 2 --ntasks-per-node=1 -c 2 -t 5
# SLURM sends the warning at one of its ~30 s checks once about N+30 s or less
# remain: @15 arrives 15-45 s in, well after the trainer has set its handlers.
submit limit -- -N 1 -n 1 -c 1 -t 1 --signal=B:USR1@15
submit limitcap SIAMESE_MAX_REQUEUES=0 -- -N 1 -n 1 -c 1 -t 1 --signal=B:USR1@15
submit cancel -- -N 1 -n 1 -c 1 -t 5
# stall: rank 1 of 2 stops itself (SIGSTOP) after step 30 of the first run
# only; the watchdog ([dist] timeout = 8) ends the job with 76, the script
# requeues it, and the rerun resumes from the step-20 checkpoint and finishes.
# The test build's siamese has the stop seam (tests/fixture_hooks.c).
sed -e 's/^steps = .*/steps = 60/' -e 's/^every = .*/every = 20/' -e 's/^log_every = .*/log_every = 10/' \
  "$smoke/smoke.ini" >"$tmp/stall.ini"
printf '\n[dist]\ntimeout = 8\n' >>"$tmp/stall.ini"
jid[stall]=$(SIAMESE_BIN=${SIAMESE_BUILD:-build}/siamese-test SIAMESE_TEST_STOP_STEP=30 SIAMESE_TEST_RANK=1 SIAMESE_TEST_ONCE=$tmp/stall.once \
  SIAMESE_RUN_DIR=$tmp/run-stall sbatch --parsable -o "$tmp/stall.out" -N 2 --ntasks-per-node=1 -c 1 -t 5 \
  slurm/train.sbatch "$tmp/stall.ini")
stage[stall]=0
[ -n "${jid[stall]}" ] || { check 1 "stall: sbatch refused the job"; unset "jid[stall]"; }
printf 'optim.lr=0.01\n# a comment\noptim.lr=0.02 loss.margin=0.3\n' >"$tmp/sweep.txt"
aid=$(SIAMESE_SWEEP_DIR=$tmp/sweep sbatch --parsable --array=0-1 -N 1 -n 1 -c 1 -t 5 \
  -o "$tmp/sweep-%a.out" slurm/sweep.sbatch "$smoke/smoke.ini" "$tmp/sweep.txt")
if [ -n "$aid" ]; then
  jid[sweep0]=${aid}_0 jid[sweep1]=${aid}_1 stage[sweep0]=0 stage[sweep1]=0
else
  check 1 "sweep: sbatch refused the array job"
fi

# stage 0 running, 1 signalled, 2 checkpointed (config shortened), 3 ended
end=$((SECONDS + 140))
while [ $SECONDS -lt $end ]; do
  busy=0
  for name in "${!jid[@]}"; do
    [ "${stage[$name]}" -eq 3 ] && continue
    busy=1
    id=${jid[$name]} log=$tmp/$name.out st=$(job_field "${jid[$name]}" JobState)
    if terminal "$st"; then # (a job still completing shows COMPLETING)
      stage[$name]=3
      continue
    fi
    case $name:${stage[$name]} in
      srun:0 | mpirun:0) # the handlers are in place once the trainer says where it resumes
        grep -q '^resume: no checkpoint' "$log" 2>/dev/null &&
          scancel --batch --signal=USR1 "$id" && stage[$name]=1 ;;
      srun:1 | mpirun:1 | limit:0)
        if grep -q 'step exited with code 75' "$log"; then
          ck=$(newest_ckpt "$tmp/run-$name") step=${ck##*ckpt-} step=$((10#${step%.smpi}))
          sed -i "s/^steps = .*/steps = $((step + 40))/" "$tmp/$name.ini"
          stage[$name]=2
        fi ;;
      cancel:0)
        grep -q '^resume: no checkpoint' "$log" 2>/dev/null && scancel "$id" && stage[$name]=1 ;;
    esac
  done
  [ $busy -eq 0 ] && break
  sleep 0.3
done
echo "     training jobs ended after $((SECONDS - t0)) s"

for name in srun mpirun limit; do
  [ -n "${jid[$name]:-}" ] || continue
  id=${jid[$name]} log=$tmp/$name.out run=$tmp/run-$name
  st=$(job_field "$id" JobState) restarts=$(job_field "$id" Restarts) code=$(job_field "$id" ExitCode)
  ck=$(newest_ckpt "$run")
  [ "$st" = COMPLETED ] && [ "$restarts" = 1 ] && [ "$code" = 0:0 ] &&
    grep -q 'step exited with code 75' "$log" && grep -q 'requeued (restart 1)' "$log" &&
    grep -q '^resume: .*ckpt-[0-9]*\.smpi at step [0-9]' "$log" && grep -q 'training finished' "$log" &&
    [ -f "$run/model.smpi" ] && ./siamese inspect "$ck" >/dev/null 2>&1
  check $? "$name: USR1 -> checkpoint -> requeue -> resume -> done: $st, restarts $restarts, exit $code, last $(basename "${ck:-none}")"
  [ "$st" = COMPLETED ] || tail -n 25 "$log" | sed 's/^/    /'
  if [ "$name" != limit ]; then
    [ "$(grep -c '2 ranks x 2 threads (SLURM_CPUS_PER_TASK)' "$log")" -eq 2 ]
    check $? "$name: both starts ran 2 nodes x 1 rank x 2 threads (-c 2)"
  fi
  # The requeued run equals an uninterrupted one of the same length, bit for
  # bit (same world size; the config now holds the final steps).
  np=2; [ "$name" = limit ] && np=1
  if [ "$st" = COMPLETED ]; then
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1 \
      mpirun -np $np --oversubscribe ./siamese train "$tmp/$name.ini" --set run.dir="$tmp/ref-$name" \
      >"$tmp/ref-$name.out" 2>&1 &&
      ./siamese inspect "$run/model.smpi" --compare "$tmp/ref-$name/model.smpi" --tol 0 >"$tmp/cmp-$name" 2>&1 &&
      cmp -s "$run/metrics.csv" "$tmp/ref-$name/metrics.csv"
    check $? "$name: requeued run bit-equal to an uninterrupted run (weights, optimizer, metrics): $(tr '\n' ' ' <"$tmp/cmp-$name" 2>/dev/null)"
  fi
done

id=${jid[stall]:-} log=$tmp/stall.out
if [ -n "$id" ]; then
  st=$(job_field "$id" JobState) restarts=$(job_field "$id" Restarts) code=$(job_field "$id" ExitCode)
  [ "$st" = COMPLETED ] && [ "$restarts" = 1 ] && grep -q 'step exited with code 76' "$log" &&
    grep -q 'rank 1 (no answer: stopped, dead or unreachable)' "$log" &&
    grep -q 'a rank stopped making progress (exit 76.*requeued (restart 1)' "$log" &&
    grep -q '^resume: .*ckpt-0000000020\.smpi at step 20' "$log" && grep -q 'training finished' "$log" &&
    [ -f "$tmp/run-stall/model.smpi" ]
  check $? "stall: SIGSTOP of rank 1 -> watchdog, exit 76 -> requeue -> resume at step 20 -> done: $st, restarts $restarts, exit $code"
  [ "$st" = COMPLETED ] || tail -n 25 "$log" | sed 's/^/    /'
fi

id=${jid[limitcap]:-} log=$tmp/limitcap.out
if [ -n "$id" ]; then
  st=$(job_field "$id" JobState) code=$(job_field "$id" ExitCode) ck=$(newest_ckpt "$tmp/run-limitcap")
  [ "$st" = FAILED ] && [ "$code" = 75:0 ] && grep -q 'SIGUSR1: asking the ranks' "$log" &&
    grep -q 'SIAMESE_MAX_REQUEUES=0' "$log" && [ "$(job_field "$id" Restarts)" = 0 ] &&
    ./siamese inspect "$ck" >/dev/null 2>&1
  check $? "limitcap: time-limit USR1 -> checkpoint, exit 75, not requeued (cap 0): $st, exit $code, $(basename "${ck:-none}")"
  [ "$st" = FAILED ] || tail -n 15 "$log" | sed 's/^/    /'
fi

id=${jid[cancel]:-} log=$tmp/cancel.out
if [ -n "$id" ]; then
  st=$(job_field "$id" JobState) ck=$(newest_ckpt "$tmp/run-cancel")
  [ "$st" = CANCELLED ] && [ "$(job_field "$id" Restarts)" = 0 ] &&
    grep -q 'step exited with code 75' "$log" && grep -q 'terminated by SLURM' "$log" &&
    ./siamese inspect "$ck" >/dev/null 2>&1
  check $? "cancel: scancel -> checkpoint, exit 75, not requeued: $st, $(basename "${ck:-none}")"
  [ "$st" = CANCELLED ] || tail -n 15 "$log" | sed 's/^/    /'
fi
for i in 0 1; do
  [ -n "${jid[sweep$i]:-}" ] || continue
  st=$(job_field "${jid[sweep$i]}" JobState) run=$tmp/sweep/$i
  want=(0.01 0.02)
  [ "$st" = COMPLETED ] && [ -f "$run/model.smpi" ] &&
    grep -qx "lr = ${want[$i]}" "$run/config.ini" 2>/dev/null
  check $? "sweep task $i: $st, run dir $run has model.smpi and lr = ${want[$i]}"
  [ "$st" = COMPLETED ] || tail -n 15 "$tmp/sweep-$i.out" | sed 's/^/    /'
done
grep -qx 'margin = 0.3' "$tmp/sweep/1/config.ini" 2>/dev/null
check $? "sweep task 1 also took loss.margin=0.3"
finish
