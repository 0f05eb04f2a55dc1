#!/usr/bin/env bash
# A real SLURM cluster on this one machine, for testing the sbatch scripts:
# a private munged, slurmctld and one slurmd per fake node (n1, n2, ...) on
# 127.0.0.1, from Debian's packages (installed with apt-get if missing).
# It is not a production setup: no cgroups, no accounting, fast timers, and
# every daemon runs as root. All state lives under $SIAMESE_SLURM_ROOT.
#
# usage: slurm/local-cluster.sh up | down | status | selftest | env
#   up        install if needed, start (or keep) the daemons, wait for idle nodes
#   down      cancel jobs, stop the daemons this script started (by pid file)
#   status    show daemons, nodes and jobs; exit 0 only if all are up
#   selftest  a --wrap job, a 2-rank MPI job over srun --mpi=pmix, a requeue
#   env       print the exports a shell needs to submit jobs (eval "$(... env)")
# environment (defaults):
#   SIAMESE_SLURM_ROOT=/var/lib/siamese-slurm   state, logs, config, pid files
#   SIAMESE_SLURM_NODES=2      fake nodes n1..nN   SIAMESE_SLURM_CPUS=$(nproc) per node
#   SIAMESE_SLURM_CTLD_PORT=6817                  SIAMESE_SLURM_NODE_PORT=17001 (n1; n2 = +1 ...)
#   SIAMESE_SLURM_MEM_MB=auto  memory per node    SIAMESE_SLURM_NO_INSTALL=0
#   SIAMESE_SLURM_MPI_DEFAULT=none (strict, as at most sites: scripts say --mpi=pmix)
# Clients find the config through SLURM_CONF=$ROOT/etc/slurm.conf (printed by
# `env`); `up` also links /etc/slurm/slurm.conf to it when that path is free.
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin

ROOT=${SIAMESE_SLURM_ROOT:-/var/lib/siamese-slurm}
NODES=${SIAMESE_SLURM_NODES:-2}
CPUS=${SIAMESE_SLURM_CPUS:-$(nproc)}
CTLD_PORT=${SIAMESE_SLURM_CTLD_PORT:-6817}
NODE_PORT=${SIAMESE_SLURM_NODE_PORT:-17001}
MEM_MB=${SIAMESE_SLURM_MEM_MB:-auto}
NO_INSTALL=${SIAMESE_SLURM_NO_INSTALL:-0}
MPI_DEFAULT=${SIAMESE_SLURM_MPI_DEFAULT:-none}
CONF=$ROOT/etc/slurm.conf
RUN=$ROOT/run
MUNGE_DIR=$ROOT/munge
MUNGE_SOCKET=$MUNGE_DIR/munge.socket
SYS_CONF=/etc/slurm/slurm.conf
PMIX_LIB=/usr/lib/x86_64-linux-gnu/pmix2/lib/libpmix.so
export SLURM_CONF=$CONF

say() { printf 'local-cluster: %s\n' "$*"; }
die() { printf 'local-cluster: error: %s\n' "$*" >&2; exit 1; }

for v in NODES CPUS CTLD_PORT NODE_PORT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "SIAMESE_SLURM_$v='${!v}' is not a positive integer"
done
[[ $ROOT == /* ]] || die "SIAMESE_SLURM_ROOT='$ROOT' must be an absolute path"

# ---------------------------------------------------------------- processes
# A process is "ours" only if its pid file names it and /proc/PID/comm matches;
# a zombie counts as stopped (its ports and files are already released).
pid_of() { # pidfile comm -> prints pid if alive and named comm
  local pid state
  [ -r "$1" ] || return 1
  pid=$(tr -dc '0-9' <"$1")
  [ -n "$pid" ] && [ -r "/proc/$pid/comm" ] || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] || return 1
  state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null) || return 1
  [ "$state" != Z ] && [ -n "$state" ] || return 1
  echo "$pid"
}

pid_gone() { # pid -> true if no live process with that pid
  local state
  state=$(awk '/^State:/ {print $2}' "/proc/$1/status" 2>/dev/null) || return 0
  [ -z "$state" ] || [ "$state" = Z ]
}

wait_gone() { # seconds pid... -> true if all went within the time
  local end=$((SECONDS + $1)) p left; shift
  while :; do
    left=0
    for p in "$@"; do pid_gone "$p" || left=1; done
    [ $left -eq 0 ] && return 0
    [ $SECONDS -ge $end ] && return 1
    sleep 0.05
  done
}

stop_pids() { # label pid... : TERM, wait <= 15 s, KILL, wait <= 5 s
  local label=$1; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  wait_gone 15 "$@" && return 0
  say "$label did not stop on TERM within 15 s; sending KILL to $*"
  kill -KILL "$@" 2>/dev/null || true
  wait_gone 5 "$@" || say "warning: $label ($*) still present after KILL"
}

node_names() { local i; for ((i = 1; i <= NODES; i++)); do echo "n$i"; done; }

# slurmstepd processes left behind by our slurmd: a slurmstepd is ours if it
# holds our slurmd log open (it inherits that descriptor), not by name alone.
our_stepds() {
  local d f pid
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    [ "$(cat "$d/comm" 2>/dev/null)" = slurmstepd ] || continue
    for f in "$d"/fd/*; do
      case $(readlink "$f" 2>/dev/null) in
        "$ROOT"/log/slurmd-*) pid_gone "$pid" || echo "$pid"; break ;;
      esac
    done
  done
}

# ---------------------------------------------------------------- install
need_install() {
  local b
  for b in slurmctld slurmd sbatch srun scontrol munged mungekey; do
    command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || return 0
  done
  [ -e "$PMIX_LIB" ] || return 0   # the pmix plugin dlopen()s this (from libpmix-dev)
  return 1
}

install_packages() {
  need_install || return 0
  [ "$NO_INSTALL" = 1 ] && die "SLURM/munge/libpmix-dev missing and SIAMESE_SLURM_NO_INSTALL=1"
  [ "$(id -u)" -eq 0 ] || die "SLURM packages missing; as root run: apt-get install --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge libpmix-dev"
  local pkgs=(slurm-wlm slurmctld slurmd slurm-client munge libpmix-dev) try
  local apt=(apt-get -o DPkg::Lock::Timeout=60 -y -qq)
  say "installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  for try in 1 2 3; do
    if "${apt[@]}" install --no-install-recommends "${pkgs[@]}" >"$ROOT/log/apt.log" 2>&1; then
      need_install && die "packages installed but a binary or $PMIX_LIB is still missing"
      return 0
    fi
    say "apt-get install failed (try $try of 3); refreshing package lists"
    "${apt[@]}" update >>"$ROOT/log/apt.log" 2>&1 || sleep 3
  done
  tail -n 20 "$ROOT/log/apt.log" >&2
  die "could not install ${pkgs[*]} (log: $ROOT/log/apt.log)"
}

# ---------------------------------------------------------------- munge
start_munge() {
  if pid_of "$RUN/munged.pid" munged >/dev/null; then return 0; fi
  id munge >/dev/null 2>&1 || die "user 'munge' missing (is the munge package installed?)"
  mkdir -p "$MUNGE_DIR"
  chown -R munge:munge "$MUNGE_DIR"; chmod 0755 "$MUNGE_DIR" # -R: the uid may differ after a reinstall
  if [ ! -s "$MUNGE_DIR/munge.key" ]; then
    runuser -u munge -- mungekey --create --keyfile="$MUNGE_DIR/munge.key" >/dev/null
  fi
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" "$MUNGE_DIR/munged.pid"
  runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" \
    --key-file="$MUNGE_DIR/munge.key" --pid-file="$MUNGE_DIR/munged.pid" \
    --log-file="$MUNGE_DIR/munged.log" --seed-file="$MUNGE_DIR/munged.seed" ||
    die "munged did not start; see $MUNGE_DIR/munged.log"
  local end=$((SECONDS + 10))
  until [ -S "$MUNGE_SOCKET" ] && [ -s "$MUNGE_DIR/munged.pid" ]; do
    [ $SECONDS -ge $end ] && die "munged socket $MUNGE_SOCKET did not appear within 10 s"
    sleep 0.05
  done
  cp "$MUNGE_DIR/munged.pid" "$RUN/munged.pid"
  munge --socket="$MUNGE_SOCKET" -n | unmunge --socket="$MUNGE_SOCKET" >/dev/null ||
    die "munge credential round trip failed; see $MUNGE_DIR/munged.log"
}

# ---------------------------------------------------------------- config
mem_per_node() {
  if [ "$MEM_MB" != auto ]; then echo "$MEM_MB"; return; fi
  # every fake node reports the whole machine; declare 80 % split over the nodes
  awk -v n="$NODES" '/^MemTotal:/ {printf "%d\n", $2 / 1024 * 0.8 / n}' /proc/meminfo
}

write_config() { # prints the config text
  local last=$((NODE_PORT + NODES - 1)) ports
  if [ "$NODES" -eq 1 ]; then ports=$NODE_PORT; else ports="[$NODE_PORT-$last]"; fi
  cat <<EOF
# written by slurm/local-cluster.sh: a test cluster on one machine (edit the script, not this file)
ClusterName=siamese-local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire sets the hold of a requeued job (expire + 1 s); the default 120 s is too slow for tests
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
MpiDefault=$MPI_DEFAULT
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5,bf_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=500
ReturnToService=2
JobRequeue=1
MailProg=/bin/true
# trust the CPUs and memory below even where they exceed the machine's
SlurmdParameters=config_overrides
StateSaveLocation=$ROOT/ctld
SlurmdSpoolDir=$ROOT/spool/%n
# one TmpFS per fake node: the pmix plugin makes <TmpFS>/spmix_appdir_<uid>_<job>.<step> on each
TmpFS=$ROOT/tmp/%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd-%n.pid
SlurmctldLogFile=$ROOT/log/slurmctld.log
SlurmdLogFile=$ROOT/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=n[1-$NODES] NodeAddr=127.0.0.1 Port=$ports CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$(mem_per_node) State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

link_sys_conf() { # /etc/slurm/slurm.conf -> ours, only if that path is free or already ours
  if [ -L "$SYS_CONF" ] && [ "$(readlink "$SYS_CONF")" = "$CONF" ]; then return 0; fi
  if [ -e "$SYS_CONF" ] || [ -L "$SYS_CONF" ]; then
    say "note: $SYS_CONF exists and is not ours; clients need SLURM_CONF=$CONF"
    return 0
  fi
  mkdir -p "$(dirname "$SYS_CONF")" && ln -s "$CONF" "$SYS_CONF"
}

unlink_sys_conf() {
  if [ -L "$SYS_CONF" ] && [ "$(readlink "$SYS_CONF")" = "$CONF" ]; then rm -f "$SYS_CONF"; fi
}

# ---------------------------------------------------------------- daemons
daemons_alive() {
  local n
  pid_of "$RUN/munged.pid" munged >/dev/null || return 1
  pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null || return 1
  for n in $(node_names); do pid_of "$RUN/slurmd-$n.pid" slurmd >/dev/null || return 1; done
}

nodes_idle() { # all nodes idle (or mixed/allocated: they answer) within $1 s
  local end=$((SECONDS + $1)) states
  while :; do
    states=$(timeout 5 sinfo -h -N -o '%t' 2>/dev/null) || states=
    if [ -n "$states" ] && ! grep -qvE '^(idle|mix|alloc|comp)$' <<<"$states"; then
      return 0
    fi
    [ $SECONDS -ge $end ] && return 1
    sleep 0.1
  done
}

port_busy() { # port -> true if something listens on it
  if command -v ss >/dev/null 2>&1; then
    [ -n "$(ss -Htln "sport = :$1" 2>/dev/null)" ]
  else
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
  fi
}

start_slurm() {
  local n i p
  for ((i = 0; i <= NODES; i++)); do
    if [ $i -eq 0 ]; then p=$CTLD_PORT; else p=$((NODE_PORT + i - 1)); fi
    port_busy "$p" && die "port $p is in use by another program (another SLURM?); set SIAMESE_SLURM_CTLD_PORT / SIAMESE_SLURM_NODE_PORT"
  done
  slurmctld -f "$CONF" -c ||
    die "slurmctld did not start; see $ROOT/log/slurmctld.log"
  for n in $(node_names); do
    slurmd -f "$CONF" -N "$n" ||
      die "slurmd -N $n did not start; see $ROOT/log/slurmd-$n.log"
  done
  if ! nodes_idle 60; then
    timeout 5 sinfo -N >&2 || true
    tail -n 15 "$ROOT/log/slurmctld.log" "$ROOT"/log/slurmd-*.log >&2 || true
    die "nodes did not become idle within 60 s"
  fi
}

cmd_up() {
  local t0=$SECONDS n new
  [ "$(id -u)" -eq 0 ] || die "run as root (the daemons need it)"
  mkdir -p "$ROOT"/{etc,ctld,run,log,selftest}
  for n in $(node_names); do mkdir -p "$ROOT/spool/$n" "$ROOT/tmp/$n"; chmod 1777 "$ROOT/tmp/$n"; done
  install_packages
  new=$(write_config)
  if [ -f "$CONF" ] && [ "$new" = "$(cat "$CONF")" ] && daemons_alive && nodes_idle 15; then
    link_sys_conf
    say "already up with this config (SLURM_CONF=$CONF)"
    return 0
  fi
  if daemons_alive || [ -n "$(ls "$RUN" 2>/dev/null)" ]; then
    say "restarting (config changed or a daemon is missing)"
    stop_all quiet
  fi
  printf '%s\n' "$new" >"$CONF"
  # a failed start leaves no daemon behind (the logs stay in $ROOT/log)
  trap 'if [ $? -ne 0 ]; then say "start failed: stopping what was started"; stop_all quiet; fi' EXIT
  start_munge
  start_slurm
  link_sys_conf
  trap - EXIT
  say "up in $((SECONDS - t0)) s: nodes $(node_names | paste -sd, -), SLURM_CONF=$CONF"
}

stop_all() { # [quiet]
  local pid pids=() n jobs end
  if pid_of "$RUN/slurmctld.pid" slurmctld >/dev/null; then
    jobs=$(timeout 10 squeue -h -o %i 2>/dev/null | sort -u | tr '\n' ' ') || jobs=
    if [ -n "${jobs// /}" ]; then
      # shellcheck disable=SC2086 # a list of job ids
      timeout 10 scancel $jobs 2>/dev/null || true
      end=$((SECONDS + 20))
      while [ -n "$(timeout 5 squeue -h -o %i 2>/dev/null)" ] && [ $SECONDS -lt $end ]; do sleep 0.2; done
    fi
  fi
  for n in "$RUN"/slurmd-*.pid; do   # every node started, even if NODES changed since
    pid=$(pid_of "$n" slurmd) && pids+=("$pid")
  done
  stop_pids slurmd "${pids[@]}"
  mapfile -t pids < <(our_stepds)
  stop_pids slurmstepd "${pids[@]}"
  pid=$(pid_of "$RUN/slurmctld.pid" slurmctld) && stop_pids slurmctld "$pid"
  pid=$(pid_of "$RUN/munged.pid" munged) && stop_pids munged "$pid"
  rm -f "$RUN"/*.pid
  [ "${1:-}" = quiet ] || say "down"
}

cmd_down() {
  [ -d "$ROOT" ] || { say "nothing to stop ($ROOT does not exist)"; return 0; }
  stop_all
  unlink_sys_conf
}

cmd_status() {
  local n ok=0 pid
  for n in munged slurmctld $(node_names | sed 's/^/slurmd-/'); do
    local comm=${n%%-*}
    if pid=$(pid_of "$RUN/$n.pid" "$comm"); then
      printf '  %-12s running (pid %s)\n' "$n" "$pid"
    else
      printf '  %-12s stopped\n' "$n"; ok=1
    fi
  done
  if [ $ok -eq 0 ]; then
    timeout 5 sinfo -N || ok=1
    timeout 5 squeue || ok=1
  fi
  echo "SLURM_CONF=$CONF"
  return $ok
}

# ---------------------------------------------------------------- selftest
job_field() { # jobid field
  timeout 5 scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1
}

wait_job() { # jobid seconds -> prints the final state; 1 on time-out
  local end=$((SECONDS + $2)) st=
  while [ $SECONDS -lt $end ]; do
    st=$(job_field "$1" JobState)
    case $st in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$st"; return 0 ;;
    esac
    sleep 0.2
  done
  echo "still-${st:-unknown}"; return 1
}

wait_running() { # jobid seconds
  local end=$((SECONDS + $2))
  while [ $SECONDS -lt $end ]; do
    [ "$(job_field "$1" JobState)" = RUNNING ] && return 0
    sleep 0.2
  done
  return 1
}

cmd_selftest() {
  local d=$ROOT/selftest pass=0 fail=0 t0 jid st out
  check() { # cond-status message
    if [ "$1" -eq 0 ]; then pass=$((pass + 1)); say "ok   $2"; else fail=$((fail + 1)); say "FAIL $2"; fi
  }
  daemons_alive || die "the cluster is not up; run: $0 up"
  export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo
  mkdir -p "$d"; rm -f "$d"/*.out
  local sb=(sbatch --parsable -D "$d" -o "$d/%x-%j.out")

  # 1. a --wrap job
  t0=$SECONDS
  # shellcheck disable=SC2016 # expanded by the job, not here
  jid=$("${sb[@]}" -J wrap --wrap 'echo "wrap job $SLURM_JOB_ID on $SLURMD_NODENAME"')
  st=$(wait_job "$jid" 60) || true
  out=$(cat "$d/wrap-$jid.out" 2>/dev/null || true)
  [ "$st" = COMPLETED ] && grep -q "^wrap job $jid on n" <<<"$out"
  check $? "--wrap job $jid: $st in $((SECONDS - t0)) s: ${out:-no output}"

  # 2. 2-rank MPI over srun --mpi=pmix, one rank per node when there are 2 nodes
  t0=$SECONDS
  cat >"$d/hello.c" <<'EOF'
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
int main(int argc, char **argv) {
    int rank, size, sum = 0;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    int one = rank + 1;
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    const char *node = getenv("SLURMD_NODENAME");
    printf("rank %d of %d on %s sum %d\n", rank, size, node ? node : "?", sum);
    MPI_Finalize();
    return 0;
}
EOF
  local nflag=(-N 1 -n 2)
  [ "$NODES" -ge 2 ] && nflag=(-N 2 --ntasks-per-node=1)
  if mpicc -o "$d/hello" "$d/hello.c" 2>"$d/mpicc.log"; then
    jid=$("${sb[@]}" -J mpi "${nflag[@]}" --wrap "srun --mpi=pmix $d/hello")
    st=$(wait_job "$jid" 60) || true
    out=$(cat "$d/mpi-$jid.out" 2>/dev/null || true)
    [ "$st" = COMPLETED ] && grep -q '^rank 0 of 2 on n1 sum 3' <<<"$out" &&
      grep -q "^rank 1 of 2 on n$([ "$NODES" -ge 2 ] && echo 2 || echo 1) sum 3" <<<"$out"
    check $? "2-rank srun --mpi=pmix job $jid (${nflag[*]}): $st in $((SECONDS - t0)) s: $(tr '\n' ';' <<<"$out")"
  else
    check 1 "mpicc hello.c failed: $(head -n 3 "$d/mpicc.log")"
  fi

  # 3. requeue: the first run waits to be requeued, the second one finishes
  t0=$SECONDS
  # shellcheck disable=SC2016
  jid=$("${sb[@]}" -J requeue --requeue --open-mode=append --wrap \
    'echo "run ${SLURM_RESTART_COUNT:-0}"; if [ "${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then sleep 60; fi')
  if wait_running "$jid" 30 && timeout 10 scontrol requeue "$jid"; then
    st=$(wait_job "$jid" 60) || true
  else
    st="not-requeued"
  fi
  out=$(cat "$d/requeue-$jid.out" 2>/dev/null || true)
  [ "$st" = COMPLETED ] && [ "$(job_field "$jid" Restarts)" = 1 ] &&
    grep -q '^run 0' <<<"$out" && grep -q '^run 1' <<<"$out"
  check $? "requeue of job $jid: $st, restarts $(job_field "$jid" Restarts), in $((SECONDS - t0)) s"

  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}

cmd_env() {
  echo "export SLURM_CONF=$CONF"
  echo "export OMPI_MCA_btl_tcp_if_include=lo OMPI_MCA_oob_tcp_if_include=lo"
  [ "$(id -u)" -eq 0 ] && echo "export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"
  return 0
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  selftest) cmd_selftest ;;
  env) cmd_env ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2 ;;
esac
