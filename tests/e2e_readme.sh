#!/usr/bin/env bash
# Keeps README and docs true: the config reference in docs/config.md equals
# `siamese train --schema`, every subcommand answers --help and is listed in
# README.md and docs/commands.md, every config is listed, and README stays a
# front page; docs/siamese.1 (the man page) equals the --help texts. `bash
# tests/e2e_readme.sh --update` rewrites the table and the man page.
set -u
cd "$(dirname "$0")/.."
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
schema=$(./siamese train --schema)
if [ "${1:-}" = --update ]; then
  awk -v s="$schema" '/<!-- schema:begin -->/ {print; print s; skip=1; next}
       /<!-- schema:end -->/ {skip=0} !skip {print}' docs/config.md >docs/config.md.new && mv docs/config.md.new docs/config.md
fi
# The siamese(1) man page: the text of --help and of every command's --help.
man_page() {
  local esc='s/\\/\\e/g; s/^\./\\\&./; s/^'"'"'/\\\&'"'"'/'
  echo '.TH SIAMESE 1 "" "'"$(./siamese version | head -n 1)"'" "User Commands"'
  echo '.SH NAME'
  echo 'siamese \- train, evaluate and use siamese networks, on one process or under MPI'
  echo '.SH SYNOPSIS'
  echo '.nf'
  ./siamese --help 2>&1 | sed "$esc"
  echo '.fi'
  for c in $(./siamese --help 2>&1 | awk '/^commands:/ {on = 1; next} on && /^  [a-z]/ {print $1}'); do
    echo ".SH $(tr a-z- A-Z_ <<<"$c")"
    echo '.nf'
    ./siamese "$c" --help 2>&1 | sed "$esc"
    echo '.fi'
  done
  echo '.SH SEE ALSO'
  echo 'README.md and docs/ of the siamese-mpi sources: commands.md, config.md, graph.md, formats.md.'
}
if [ "${1:-}" = --update ]; then man_page >docs/siamese.1; fi
if [ "$(man_page)" = "$(cat docs/siamese.1 2>/dev/null)" ]; then ok; else bad "docs/siamese.1 differs from the --help texts (run: bash tests/e2e_readme.sh --update)"; fi
if command -v groff >/dev/null; then
  if groff -man -Tutf8 -ww docs/siamese.1 2>&1 >/dev/null | grep -q .; then bad "groff warns about docs/siamese.1"; else ok; fi
fi
block=$(awk '/<!-- schema:begin -->/ {on=1; next} /<!-- schema:end -->/ {on=0} on' docs/config.md)
if [ "$block" = "$schema" ]; then ok; else bad "docs/config.md config reference differs from ./siamese train --schema (run: bash tests/e2e_readme.sh --update)"; fi
for c in import pairs inspect train eval embed export report synth track track-fit mot-eval mot-draw version; do
  if ./siamese "$c" --help >/dev/null 2>&1 && grep -q "siamese $c" README.md && grep -q "siamese $c" docs/commands.md; then ok
  else bad "subcommand $c: --help, or its README / docs/commands.md entry"; fi
done
for f in configs/*.ini; do
  if grep -q "\`$f\`" README.md; then ok; else bad "README does not list $f"; fi
done
grep -q "make demo" README.md && grep -q "make test" README.md && ok || bad "README shows make demo and make test"
n=$(wc -l <README.md)
[ "$n" -le 260 ] && ok || bad "README.md has $n lines: it is the front page (at most about 250); move detail to docs/"
for l in $(grep -o '](docs/[a-z0-9_.-]*)' README.md | sed 's/](\(.*\))/\1/' | sort -u); do
  [ -f "$l" ] && ok || bad "README links to missing $l"
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
