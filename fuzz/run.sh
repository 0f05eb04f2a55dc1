#!/usr/bin/env bash
# Runs the libFuzzer harnesses of build-fuzz/fuzz/ (built by `make
# fuzz-build`), one after the other, each with ASan + UBSan, a memory limit
# and a per-input time limit, starting from its seed corpus fuzz/corpus/NAME
# (read only: new inputs go to a work directory). A crash, leak, timeout or
# out-of-memory of any harness fails the run; its input is kept as
# OUT/NAME-crash-* (or -leak-, -timeout-, -oom-) and named on stderr. Each
# harness prints one line: executions, coverage (edges), features, corpus.
#
# usage: fuzz/run.sh [NAME ...]        (default: every harness)
# environment (defaults):
#   FUZZ_SECONDS=60     time per harness        FUZZ_RUNS=          stop after this many inputs instead
#   FUZZ_RSS_MB=2048    memory limit            FUZZ_TIMEOUT=10     seconds per input
#   FUZZ_SEED=          libFuzzer's random seed (CI fixes it: the same inputs are tried on every run,
#                       so CI fails on a regression, not on a lucky draw; campaigns leave it random)
#   FUZZ_OUT=           keep the work corpora and artifacts there (default: a temp dir, removed unless
#                       something failed); a long campaign reuses its corpus across runs
#   FUZZ_BUILD=build-fuzz
set -u
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
runs=${FUZZ_RUNS:-}
rss=${FUZZ_RSS_MB:-2048}
tmo=${FUZZ_TIMEOUT:-10}
out=${FUZZ_OUT:-}
keep=1
if [ -z "$out" ]; then out=$(mktemp -d /tmp/siamese-fuzz.XXXXXX); keep=0; fi
mkdir -p "$out"
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in fuzz/fuzz_*.c; do n=${f#fuzz/fuzz_}; names+=("${n%.c}"); done
fi
# A 32 MB quarantine (ASan's default is 256 MB) keeps every freed block of
# an input poisoned through that input (each allocates far less), and runs
# the harnesses 1.3-2.5x faster: a smaller pool stays mapped, where the
# default one is re-faulted page by page.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:quarantine_size_mb=32}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export OPENBLAS_NUM_THREADS=1
failed=0
for name in "${names[@]}"; do
  bin=$build/fuzz/fuzz_$name
  if [ ! -x "$bin" ]; then echo "fuzz: $bin is not built (make fuzz-build)" >&2; failed=1; continue; fi
  work=$out/corpus-$name
  mkdir -p "$work"
  seeds=()
  [ -d "fuzz/corpus/$name" ] && seeds=("fuzz/corpus/$name")
  dict=()
  [ -f "fuzz/$name.dict" ] && dict=(-dict="fuzz/$name.dict")
  limit=(-max_total_time="$secs")
  [ -n "${FUZZ_SEED:-}" ] && limit+=(-seed="$FUZZ_SEED")
  [ -n "$runs" ] && limit=(-runs="$runs")
  log=$out/$name.log
  t0=$SECONDS
  "$bin" "${limit[@]}" -rss_limit_mb="$rss" -malloc_limit_mb="$rss" -timeout="$tmo" -print_final_stats=1 \
    -artifact_prefix="$out/$name-" "${dict[@]}" "$work" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([0-9]*\/[0-9a-zA-Z]*\).*/\1/p' <<<"$last")
  # libFuzzer keeps slow inputs (slow-unit-*) without failing: on a loaded
  # machine any input can be slow. -timeout is the bound that fails.
  art=$(ls "$out/$name-"* 2>/dev/null | grep -v -- '-slow-unit-' | head -n 1)
  slow=$(ls "$out/$name-slow-unit-"* 2>/dev/null | wc -l)
  [ "$slow" -gt 0 ] && echo "fuzz $name: $slow slow input(s) kept in $out (not a failure)" && keep=1
  if [ $rc -ne 0 ] || [ -n "$art" ]; then
    failed=1
    echo "fuzz $name: FAILED (exit $rc) after ${execs:-?} executions in $((SECONDS - t0)) s; input: ${art:-none}" >&2
    grep -E 'ERROR|SUMMARY|runtime error|property failed|siamese:' "$log" | head -n 8 | sed 's/^/    /' >&2
    keep=1
  else
    printf 'fuzz %-8s ok: %s executions in %d s, coverage %s edges, %s features, corpus %s\n' "$name" \
      "${execs:-?}" $((SECONDS - t0)) "${cov:-?}" "${ft:-?}" "${corp:-?}"
  fi
done
if [ $keep -eq 1 ]; then echo "fuzz: corpora, logs and artifacts in $out"; else rm -rf "$out"; fi
exit $failed
