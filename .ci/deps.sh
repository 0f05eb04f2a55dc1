#!/usr/bin/env bash
# Installs the Debian packages siamese-mpi needs, only those missing.
# As root it runs apt-get; otherwise it prints the exact command and stops.
# DEPS_EXTRA adds packages (the test target adds python3-torch for parity).
set -euo pipefail
pkgs="openmpi-bin libopenmpi-dev libopenblas-dev liblmdb-dev lmdb-utils zlib1g-dev
libinih-dev libpng-dev libjpeg62-turbo-dev dataset-fashion-mnist ${DEPS_EXTRA:-}"
missing=()
for p in $pkgs; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
cmd="apt-get install -y --no-install-recommends ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "siamese: missing Debian packages: ${missing[*]}" >&2
  echo "siamese: run as root: apt-get update && $cmd" >&2
  exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine has no package lists; refresh once, retry on a busy lock.
for try in 1 2 3; do
  if apt-get -o DPkg::Lock::Timeout=120 update -qq && \
     apt-get -o DPkg::Lock::Timeout=120 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    exit 0
  fi
  echo "deps: apt-get failed (try $try of 3), retrying" >&2
  sleep 5
done
echo "siamese: could not install ${missing[*]}; run: apt-get update && $cmd" >&2
exit 1
