#!/usr/bin/env bash
# The portable code paths: the library and the kernel tests built for plain
# x86-64 (SSE2, no AVX / AVX-512), warning-free under -Werror, then run. On
# an AVX-512 machine the rest of the suite exercises the AVX-512 kernels;
# this keeps the C fallbacks that other CPUs run built and correct.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
tmp=$(mktemp -d /tmp/siamese-portable.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
progs="test_mining test_mining_pairs test_convblock test_layers test_config"
targets=""
for p in $progs; do targets="$targets $tmp/tests/$p"; done
if make -s -j2 BUILD="$tmp" ARCH=-march=x86-64 $targets >"$tmp/build.log" 2>&1; then
  ok
else
  bad "build with ARCH=-march=x86-64 failed: $(grep -m1 -E 'error|warning' "$tmp/build.log")"
fi
export OPENBLAS_NUM_THREADS=1
for p in $progs; do
  if [ -x "$tmp/tests/$p" ] && out=$("$tmp/tests/$p" 2>&1) && echo "$out" | tail -n 1 | grep -q ' 0 failed$'; then
    ok
  else
    bad "$p built for -march=x86-64: $(echo "${out:-not built}" | tail -n 1)"
  fi
done
# The portable build must not use AVX-512 code: its objects hold no zmm registers.
if [ -f "$tmp/mining/triplet.o" ] && ! objdump -d "$tmp/mining/triplet.o" "$tmp/nn/convblock.o" | grep -q zmm; then
  ok
else
  bad "the -march=x86-64 objects contain AVX-512 (zmm) code"
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
