#!/usr/bin/env bash
# e2e_import: `siamese import / pairs / inspect` from the command line. Every
# bad input must fail with a non-zero exit, one line on stderr naming the
# offending file or key, and no dataset (nor a leftover .tmp-*) behind. Then a
# real import of the Fashion-MNIST test set (--compress), inspect, --dump,
# pairs, a split, and record corruption through mdb_dump/mdb_load (lmdb-utils).
# Runs from the repo root with ./siamese built. Last line: N passed, N failed.
set -u
cd "$(dirname "$0")/.."
S=${SIAMESE:-./siamese} # SIAMESE=path tests another build (e.g. sanitized)
FM=/usr/share/datasets/fashion-mnist
T=$(mktemp -d /tmp/siamese-e2e-import.XXXXXX)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
check() { # description, then a command that must succeed
  local what=$1; shift
  if "$@" >/dev/null; then ok; else bad "$what"; fi
}

# expect_error NAME WANT OUT CMD...: non-zero exit, exactly one stderr line
# containing WANT, and neither OUT nor OUT.tmp-* exists afterwards.
expect_error() {
  local name=$1 want=$2 out=$3; shift 3
  "$@" >"$T/stdout" 2>"$T/stderr"
  local rc=$? n first
  n=$(wc -l <"$T/stderr")
  first=$(head -n 1 "$T/stderr")
  [ -n "${VERBOSE:-}" ] && echo "$name: $first"
  if [ $rc -ne 0 ] && [ "$n" -eq 1 ] && [[ "$first" == *"$want"* ]]; then ok; else
    bad "$name: exit $rc, $n stderr lines, want '$want' in: $first"
  fi
  if [ -n "$out" ] && { [ -e "$out" ] || compgen -G "$out.tmp-*" >/dev/null; }; then
    bad "$name: $out left behind"
  else ok; fi
}

[ -x "$S" ] || { echo "e2e_import: $S not built (make siamese)"; echo "0 passed, 1 failed"; exit 1; }

# ---- inputs ----------------------------------------------------------------
byte() { printf "\\$(printf %03o "$1")"; }
be32() { byte $(($1 >> 24 & 255)); byte $(($1 >> 16 & 255)); byte $(($1 >> 8 & 255)); byte $(($1 & 255)); }
labels() { # N FILE: idx labels 0..9 repeating
  { printf '\x00\x00\x08\x01'; be32 "$1"; for ((i = 0; i < $1; i++)); do byte $((i % 10)); done; } >"$2"
}
images() { # N FILE: idx 8x8 images, pixel = image index
  { printf '\x00\x00\x08\x03'; be32 "$1"; be32 8; be32 8
    for ((i = 0; i < $1; i++)); do head -c 64 /dev/zero | tr '\0' "\\$(printf %03o $((i % 256)))"; done; } >"$2"
}
pgm() { # H W FILE VALUE
  { printf 'P5\n%d %d\n255\n' "$2" "$1"; head -c $(($1 * $2)) /dev/zero | tr '\0' "\\$(printf %03o "$4")"; } >"$3"
}
labels 100 "$T/lab100"; labels 99 "$T/lab99"; images 100 "$T/img100"
gzip -c "$T/img100" >"$T/img100.gz"; gzip -c "$T/lab100" >"$T/lab100.gz"
head -c 3000 "$T/img100" >"$T/imgtrunc"
mkfolder() { # DIR: two classes of 6x5 PGMs
  mkdir -p "$1/cat" "$1/dog"
  for i in 1 2 3; do pgm 6 5 "$1/cat/$i.pgm" $((i * 10)); pgm 6 5 "$1/dog/$i.pgm" $((200 + i)); done
}

# ---- bad inputs ----------------------------------------------------------------
O=$T/out.lmdb
expect_error "missing idx file" "nothere.gz" "$O" \
  $S import --format idx --images "$T/nothere.gz" --labels "$T/lab100" --out "$O"
expect_error "truncated idx images" "imgtrunc" "$O" \
  $S import --format idx --images "$T/imgtrunc" --labels "$T/lab100" --out "$O"
zcat "$FM/t10k-images-idx3-ubyte.gz" | head -c 1000000 | gzip -c >"$T/fm-trunc.gz"
expect_error "truncated gzip idx (Fashion-MNIST)" "fm-trunc.gz" "$O" \
  $S import --format idx --images "$T/fm-trunc.gz" --labels "$FM/t10k-labels-idx1-ubyte.gz" --out "$O"
expect_error "wrong-magic idx (labels as images)" "lab100.gz" "$O" \
  $S import --format idx --images "$T/lab100.gz" --labels "$T/lab100" --out "$O"
expect_error "image/label count mismatch" "lab99" "$O" \
  $S import --format idx --images "$T/img100.gz" --labels "$T/lab99" --out "$O"

mkfolder "$T/f1"; pgm 7 5 "$T/f1/dog/4.pgm" 9
expect_error "image of the wrong size" "4.pgm" "$O" $S import --format folder --root "$T/f1" --out "$O"
mkfolder "$T/f2"; echo "not an image" >"$T/f2/cat/notes.txt"
expect_error "non-image file in a class folder" "notes.txt" "$O" $S import --format folder --root "$T/f2" --out "$O"
mkfolder "$T/f3"; mkdir "$T/f3/emu"
expect_error "empty class folder" "emu" "$O" $S import --format folder --root "$T/f3" --out "$O"
mkfolder "$T/f4"; printf '\x89PNG\r\n\x1a\n\x00\x00' >"$T/f4/cat/broken.png"
expect_error "truncated PNG" "broken.png" "$O" $S import --format folder --root "$T/f4" --out "$O"
expect_error "missing root" "nowhere" "$O" $S import --format folder --root "$T/nowhere" --out "$O"
expect_error "omniglot root one level too low" "1.pgm" "$O" $S import --format omniglot --root "$T/f4" --out "$O"

# ---- a real import: Fashion-MNIST t10k, compressed ------------------------------------
D=$T/fm.lmdb
check "import Fashion-MNIST t10k --compress" \
  $S import --format idx --images "$FM/t10k-images-idx3-ubyte.gz" --labels "$FM/t10k-labels-idx1-ubyte.gz" \
  --out "$D" --compress
$S inspect "$D" >"$T/inspect" 2>"$T/inspect.err"
check "inspect exits 0 with empty stderr" test $? -eq 0 -a ! -s "$T/inspect.err"
check "inspect: count 10000" grep -Eq '^count +10000$' "$T/inspect"
check "inspect: 10 classes" grep -Eq '^classes +10$' "$T/inspect"
check "inspect: compressed" grep -Eq '^compressed +yes$' "$T/inspect"
check "inspect: 1000 per class, 10 lines" test "$(awk '$1 ~ /^[0-9]+$/ && $2 == 1000 && NF == 3' "$T/inspect" | wc -l)" -eq 10
check "inspect: shape 1x28x28" grep -Eq '^shape +1x28x28' "$T/inspect"
check "inspect --dump writes a PGM" $S inspect "$D" --dump 42 --pgm "$T/s42.pgm"
check "dump: 28x28 P5 header" test "$(head -c 13 "$T/s42.pgm" | tr '\n' ' ')" = "P5 28 28 255 "
check "dump: 13 + 784 bytes" test "$(stat -c %s "$T/s42.pgm")" -eq 797
check "inspect --verify" $S inspect "$D" --verify
expect_error "import over an existing dataset" "fm.lmdb" "" \
  $S import --format idx --images "$T/img100" --labels "$T/lab100" --out "$D"
check "existing dataset unchanged" grep -Eq '^count +10000$' <($S inspect "$D")
check "no leftover temporary directory" test -z "$(compgen -G "$D.tmp-*")"

check "pairs --pairs 1000" $S pairs "$D" --pairs 1000 --seed 3
check "pairs --triplets 500" $S pairs "$D" --triplets 500
$S inspect "$D" --verify >"$T/inspect2" 2>&1
check "inspect: 1000 pairs, 500 triplets, verified" \
  grep -Eq '^verified +10000 samples, 1000 pairs, 500 triplets' "$T/inspect2"
expect_error "pairs on a missing dataset" "nodb.lmdb" "" $S pairs "$T/nodb.lmdb" --pairs 10
images 20 "$T/img20"; { printf '\x00\x00\x08\x01'; be32 20; head -c 20 /dev/zero; } >"$T/lab20"
check "one-class import" $S import --format idx --images "$T/img20" --labels "$T/lab20" --out "$T/one.lmdb"
expect_error "pairs on a one-class dataset" "one class" "" $S pairs "$T/one.lmdb" --pairs 10

check "split by class" $S import --format idx --images "$FM/t10k-images-idx3-ubyte.gz" \
  --labels "$FM/t10k-labels-idx1-ubyte.gz" --out "$T/tr.lmdb" --split-by class --test-fraction 0.3 \
  --test-out "$T/te.lmdb" --seed 7
check "split: 7000 train, 3000 test" test "$($S inspect "$T/tr.lmdb" | awk '$1=="count"{print $2}')" = 7000 -a \
  "$($S inspect "$T/te.lmdb" | awk '$1=="count"{print $2}')" = 3000

# ---- damaged datasets ------------------------------------------------------------------
# Rewrites record KEY of `samples` in DB with its hex value edited by SED_EXPR.
corrupt() { # DB KEY SED_EXPR
  local key
  key=$(printf ' %016x' "$2")
  mdb_dump -s samples "$1" >"$T/dump" || return 1
  { sed -n '1,/^HEADER=END$/p' "$T/dump" | grep -v '^db_pagesize='
    grep -A1 -x -- "$key" "$T/dump" | sed -n 1p
    grep -A1 -x -- "$key" "$T/dump" | sed -n 2p | sed -E "$3"
    echo DATA=END; } >"$T/load"
  mdb_load -s samples -f "$T/load" "$1"
}
check "import small uncompressed" $S import --format idx --images "$T/img100" --labels "$T/lab100" --out "$T/c.lmdb"
check "corrupt a pixel of key 7" corrupt "$T/c.lmdb" 7 's/^(.{60})../\1ff/'
expect_error "corrupted record (verify)" "samples key 7" "" $S inspect "$T/c.lmdb" --verify
expect_error "corrupted record (dump)" "samples key 7" "" $S inspect "$T/c.lmdb" --dump 7 --pgm "$T/x.pgm"
check "corrupt the label of key 9 (= classes)" corrupt "$T/c.lmdb" 9 's/^(.{17})../\10a/'
expect_error "label out of range" "samples key 9: label 10 out of range" "" $S inspect "$T/c.lmdb" --dump 9 --pgm "$T/x.pgm"
check "corrupt the size of key 11" corrupt "$T/c.lmdb" 11 's/..$//'
expect_error "short record" "samples key 11" "" $S inspect "$T/c.lmdb" --dump 11 --pgm "$T/x.pgm"
mkdir "$T/junk.lmdb"; head -c 8192 /dev/zero >"$T/junk.lmdb/data.mdb"
expect_error "unreadable LMDB" "junk.lmdb" "" $S inspect "$T/junk.lmdb"
expect_error "inspect a missing dataset" "nothing.lmdb" "" $S inspect "$T/nothing.lmdb"

# ---- help --------------------------------------------------------------------------
for c in import pairs inspect; do
  check "$c --help" bash -c "$S $c --help | grep -q -- '--help'"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
