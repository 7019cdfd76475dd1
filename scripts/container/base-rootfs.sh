#!/usr/bin/env bash
# Builds a stand-in for `python:3.11-slim-bookworm` as a rootfs tarball: `base-rootfs.sh TARBALL`.
# No image registry is reachable here, so the container tests `docker import` this tarball under
# that name. Debian bookworm's python3 is 3.11; python3-venv gives it the venv + pip the real slim
# image has, so the Dockerfile runs unchanged on both. Idempotent: an existing TARBALL is kept.
set -euo pipefail

[[ $# -eq 1 ]] || {
  echo "usage: $0 TARBALL" >&2
  exit 2
}
tarball=$1
[[ -s "$tarball" ]] && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v debootstrap >/dev/null; then
  echo "base-rootfs.sh: needs root and debootstrap (scripts/install-tools.sh installs it)" >&2
  exit 1
fi

# The Debian mirror this machine already uses (deb822 `URIs:` or one-line `deb URI suite`),
# skipping the security archive, which carries no full suite.
mirror() {
  local files=() f
  # apt reads only these names; anything else in the folder is switched off.
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  [[ ${#files[@]} -gt 0 ]] || return 0
  grep -hE '^(URIs:|deb )' "${files[@]}" |
    sed -E 's/^URIs:[[:space:]]*//; s/^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' |
    tr ' ' '\n' | grep -E '^https?://.*/debian/?$' | sed -n '1p'
}

url=$(mirror)
[[ -n "$url" ]] || {
  echo "base-rootfs.sh: no Debian mirror found in /etc/apt/sources.list*" >&2
  exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$(dirname "$tarball")"
if ! debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
  bookworm "$work/rootfs" "$url" >"$work/debootstrap.log" 2>&1; then
  echo "base-rootfs.sh: debootstrap failed; last log lines:" >&2
  tail -n 20 "$work/debootstrap.log" >&2
  exit 1
fi
# Slim images carry no apt lists or caches; neither does the stand-in.
rm -rf "$work/rootfs/var/lib/apt/lists/"* "$work/rootfs/var/cache/apt/"*
tar -C "$work/rootfs" -cf "$work/base.tar" .
mv "$work/base.tar" "$tarball"
