# lib_e2e: what the end-to-end scripts share (source it from one of them
# after `cd` to the repository root): S (the binary, SIAMESE overrides), T (a
# temporary directory removed at exit), the pass/fail counters, `check` (a
# command must succeed) and `expect_error` (a command must fail with one
# stderr line). NAME is the script's name, for messages and the directory.
S=${SIAMESE:-./siamese}
T=$(mktemp -d "/tmp/siamese-$NAME.XXXXXX")
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, then a command that must succeed
  local what=$1; shift
  if "$@" >/dev/null 2>"$T/check.err"; then ok; else bad "$what: $(head -c 300 "$T/check.err")"; fi
}
# expect_error NAME WANT STATUS CMD...: exit STATUS and exactly one stderr
# line, containing WANT (VERBOSE=1 prints it).
expect_error() {
  local name=$1 want=$2 status=$3; shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$? n first
  n=$(wc -l <"$T/stderr")
  first=$(head -n 1 "$T/stderr")
  [ -n "${VERBOSE:-}" ] && echo "$name: $first"
  if [ $rc -eq "$status" ] && [ "$n" -eq 1 ] && [[ "$first" == *"$want"* ]]; then ok; else
    bad "$name: exit $rc, $n stderr lines, want '$want' in: $first"
  fi
}
[ -x "$S" ] || { echo "$NAME: $S not built (make siamese)"; echo "0 passed, 1 failed"; exit 1; }
export OPENBLAS_NUM_THREADS=1
