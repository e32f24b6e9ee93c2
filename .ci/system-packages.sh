#!/usr/bin/env bash
# Install the Debian packages listed in $1 (one per line, # comments) that are missing.
# As root (CI, containers) they are installed with apt-get; otherwise the missing ones are
# named, with the command to install them, and the tests that need them skip themselves.
set -euo pipefail
list=${1:-system-packages.txt}
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$list" | grep -v '^$' || true)
[ ${#wanted[@]} -eq 0 ] && exit 0
missing=()
for pkg in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "note: missing Debian packages: ${missing[*]}" >&2
  echo "      install them with: sudo apt-get install -y ${missing[*]}" >&2
  echo "      (the tests that need them are skipped until then)" >&2
fi
