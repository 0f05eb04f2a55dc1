#!/usr/bin/env bash
# e2e_ckpt_fullfs: checkpoint saves on a real full filesystem (a 256 KiB
# tmpfs) and on a read-only one (the same tmpfs remounted ro), driven by
# `test_checkpoint --fill DIR` and `--readonly DIR`. Needs mount(2) (root);
# where mounting is not permitted those checks are reported as SKIPPED and not
# counted. The fill also runs on a plain directory with the test-only
# SIAMESE_FAULT_WRITE_LIMIT, which works everywhere. Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
BUILD=${SIAMESE_BUILD:-build}
bin=$BUILD/tests/test_checkpoint
pass=0 fail=0
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
skipped() { echo "SKIPPED (not counted): $*"; }

# Runs the driver and adds its own "N passed, N failed" to ours.
driver() { # label, command...
  local label=$1 out rc line p f
  shift
  echo "== $label"
  out=$("$@" 2>&1); rc=$?
  sed 's/^/    /' <<<"$out"
  line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' <<<"$out" | tail -n 1)
  if [ -z "$line" ]; then bad "$label: no result line (exit $rc)"; return; fi
  p=${line%% passed*}
  f=${line#*, }; f=${f%% failed*}
  pass=$((pass + p)); fail=$((fail + f))
  if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then bad "$label: exit status $rc"; fi
}

if [ ! -x "$bin" ]; then
  bad "$bin not built (make test-build)"
  echo "$pass passed, $fail failed"
  exit 1
fi
work=$(mktemp -d /tmp/e2e-ckpt.XXXXXX)
mnt=$work/mnt
mounted=0
cleanup() {
  if [ "$mounted" = 1 ]; then umount "$mnt" 2>/dev/null || umount -l "$mnt"; fi
  mounted=0
  rm -rf "$work"
}
trap cleanup EXIT
trap 'cleanup; exit 1' INT TERM
mkdir -p "$mnt" "$work/plain"
unset SIAMESE_FAULT_WRITE_LIMIT SIAMESE_FAULT_FSYNC

if merr=$(mount -t tmpfs -o size=256k,mode=0755 tmpfs "$mnt" 2>&1); then
  mounted=1
  echo "mounted a 256 KiB tmpfs at $mnt"
  driver "real full filesystem (tmpfs 256k)" "$bin" --fill "$mnt"
  if rerr=$(mount -o remount,ro "$mnt" 2>&1); then
    driver "read-only filesystem (tmpfs remounted ro)" "$bin" --readonly "$mnt"
  else
    skipped "read-only filesystem: remount ro not permitted: ${rerr//$'\n'/ }"
  fi
else
  skipped "real full filesystem and read-only filesystem: mount not permitted here (${merr//$'\n'/ })"
fi

driver "injected ENOSPC (SIAMESE_FAULT_WRITE_LIMIT=200000)" \
  env SIAMESE_FAULT_WRITE_LIMIT=200000 "$bin" --fill "$work/plain"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
