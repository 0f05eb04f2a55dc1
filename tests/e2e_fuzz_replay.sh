#!/usr/bin/env bash
# e2e_fuzz_replay: every fuzz harness (fuzz/fuzz_*.c), built with the
# project's compiler as $BUILD/fuzz/replay_NAME, reads every input of its
# corpus fuzz/corpus/NAME once: the seeds and the inputs that once crashed a
# decoder (regress-*). A decoder that FATALs, crashes or breaks a harness
# property on any of them fails here, in every `make test`, without clang.
# The coverage-guided runs themselves are `make fuzz` (docs/testing.md).
set -u
cd "$(dirname "$0")/.."
BUILD=${SIAMESE_BUILD:-build}
pass=0 fail=0
for src in fuzz/fuzz_*.c; do
  name=${src#fuzz/fuzz_}; name=${name%.c}
  bin=$BUILD/fuzz/replay_$name
  if [ ! -x "$bin" ]; then fail=$((fail + 1)); echo "FAIL: $bin not built (make test-build)"; continue; fi
  want=$(find "fuzz/corpus/$name" -type f ! -name '.*' | wc -l)
  out=$(timeout 300 "$bin" "fuzz/corpus/$name" 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && [ "$want" -gt 0 ] && grep -qx "replayed $want inputs" <<<"$out"; then
    pass=$((pass + 1))
  else
    fail=$((fail + 1))
    echo "FAIL: $name: exit $rc over $want inputs of fuzz/corpus/$name:"
    tail -n 5 <<<"$out" | sed 's/^/    /'
  fi
done
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
