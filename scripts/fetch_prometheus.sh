#!/usr/bin/env bash
# Unpack Debian's prometheus package (promtool, prometheus) into DIR without installing it, so no
# Prometheus service starts on this machine. Used by `make test` (promtool checks deploy/) and by
# scripts/docker_check.sh (promtool, and the server for the live scrape).
set -euo pipefail
dir=$(realpath -m "$1")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
if ! apt-get download -qq prometheus 2>/dev/null; then
    # A fresh machine may not have the package lists yet; only root can fetch them.
    [[ $(id -u) == 0 ]] || { echo "apt-get download prometheus failed (run apt-get update)" >&2; exit 1; }
    apt-get update -qq && apt-get download -qq prometheus 2>/dev/null
fi
# dpkg-deb -x creates DIR but not its parents (.cache/ is absent on a fresh clone).
rm -rf "$dir"
mkdir -p "$dir"
dpkg-deb -x prometheus_*.deb "$dir"
