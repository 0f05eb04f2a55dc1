#!/usr/bin/env bash
# Keeps README true: its config reference equals `siamese train --schema`,
# every subcommand it lists answers --help, and every config key appears in
# the reference. `bash tests/e2e_readme.sh --update` rewrites the table.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
schema=$(./siamese train --schema)
if [ "${1:-}" = --update ]; then
  awk -v s="$schema" '/<!-- schema:begin -->/ {print; print s; skip=1; next}
       /<!-- schema:end -->/ {skip=0} !skip {print}' README.md >README.md.new && mv README.md.new README.md
fi
block=$(awk '/<!-- schema:begin -->/ {on=1; next} /<!-- schema:end -->/ {on=0} on' README.md)
if [ "$block" = "$schema" ]; then ok; else bad "README config reference differs from ./siamese train --schema (run: bash tests/e2e_readme.sh --update)"; fi
for c in import pairs inspect train eval embed export version; do
  if ./siamese "$c" --help >/dev/null 2>&1 && grep -q "siamese $c" README.md; then ok; else bad "subcommand $c: --help or README entry"; fi
done
for f in configs/*.ini; do
  if grep -q "\`$f\`" README.md; then ok; else bad "README does not list $f"; fi
done
grep -q "make demo" README.md && grep -q "make test" README.md && ok || bad "README shows make demo and make test"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
