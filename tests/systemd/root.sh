#!/usr/bin/env bash
# The Debian root that tests/systemd/test_service_under_systemd.py boots with systemd-nspawn, so that a real
# systemd (PID 1 of its own container) runs `edgeclf service install`'s unit: restart after kill -9, the
# watchdog on a stalled camera, status and uninstall.
#
# Prints the root's folder, building it first when missing: Debian 12 (bookworm, amd64, as Raspberry Pi OS
# Bookworm's systemd 252) with systemd and python3 (the libraries a venv's Python needs), made once with
# mmdebstrap from the host's Debian mirror under $EDGECLF_SYSTEMD_CACHE (default ~/.cache/edgeclf/systemd),
# in a folder named by a hash of its recipe; a changed recipe builds a new root and removes the old one. The
# test boots it on an overlay in its temporary folder, so the root itself is never changed.
# `root.sh --prepare` only builds it, installing mmdebstrap and systemd-container first when missing (make test
# starts that in the background). Where it cannot be built it prints one 'skipped: ...' line saying why and
# exits 3.
set -euo pipefail

cache=${EDGECLF_SYSTEMD_CACHE:-$HOME/.cache/edgeclf/systemd}
suite=bookworm
packages=systemd,systemd-sysv,python3
# Units a throwaway test container has no use for: a login prompt on its console, timers for apt and disks.
mask="getty@tty1.service console-getty.service apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer fstrim.timer e2scrub_reap.service"
RECIPE_VERSION=1  # bump to rebuild the root

skip() { echo "skipped: $*"; exit 3; }

[ "$(uname -m)" = x86_64 ] || skip "the systemd test root is made for an x86_64 host; this one is $(uname -m)"
[ "$(id -u)" = 0 ] || skip "needs root for mmdebstrap and systemd-nspawn; run it as root"
if ! command -v mmdebstrap >/dev/null || ! command -v systemd-nspawn >/dev/null; then
  # Only the make step installs packages; the test never does.
  [ "${1:-}" = --prepare ] || skip "mmdebstrap or systemd-nspawn is missing: apt-get install mmdebstrap systemd-container"
  command -v apt-get >/dev/null || skip "mmdebstrap and systemd-nspawn (Debian's systemd-container) are missing and there is no apt-get"
  echo "systemd test root: installing mmdebstrap systemd-container" >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap systemd-container) >/dev/null 2>&1 \
    || skip "apt-get install mmdebstrap systemd-container failed"
fi

source "$(dirname "$0")/../debian-root.sh"  # mirror, build_root

mkdir -p "$cache"
key=$(printf '%s\n' "$RECIPE_VERSION" "$suite" "$packages" "$mask" | sha256sum | cut -c1-12)
root=$cache/$suite-$key
build_root "systemd test root" "$root" "$cache/build.log" "$suite" --variant=minbase --include="$packages" \
  --customize-hook="chroot \"\$1\" systemctl mask $mask" \
  || skip "could not build the Debian root with mmdebstrap (see $cache/build.log)"
[ "${1:-}" = --prepare ] || echo "$root"
