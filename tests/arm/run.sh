#!/usr/bin/env bash
# make test-arm: the runtime's tests, `edgeclf doctor` and the cross-architecture agreement test in
# emulated Raspberry Pi OS roots (qemu user mode + chroot), installed from this checkout as a Pi user would:
#
#   arm64-trixie    Raspberry Pi OS 64-bit (Debian 13, Python 3.13): python3 -m venv, pip install .
#   armhf-bookworm  Raspberry Pi OS 32-bit (Debian 12, Python 3.11): apt's python3-numpy and python3-opencv,
#                   a --system-site-packages venv, pip install tflite-runtime==2.14.0, pip install --no-deps .
#
# `run.sh --prepare` only builds missing roots (make test starts it in the background first).
# Each root is built once with mmdebstrap under $EDGECLF_ARM_CACHE (default ~/.cache/edgeclf/arm), in a
# folder named by a hash of its recipe: a changed recipe builds a new root and removes the old one. A
# failed mirror download is retried. Emulated float math is software: timings here mean nothing and are
# never reported. Where this cannot run (not root, no binfmt_misc, no qemu) it prints one
# 'skipped: make test-arm: ...' line saying why and exits 0; a failing test exits 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${EDGECLF_ARM_CACHE:-$HOME/.cache/edgeclf/arm}
targets=${EDGECLF_ARM_TARGETS:-arm64-trixie armhf-bookworm}
host_python=${EDGECLF_HOST_PYTHON:-$repo/.venv/bin/python}  # writes the x86 reference (needs the toolchain)
tflite_python=$repo/.venv-tflite/bin/python  # x86 scores with tflite-runtime (make install-tflite-runtime)
RECIPE_VERSION=1  # bump to rebuild every root

skip() { echo "skipped: make test-arm: $*"; exit 0; }

# What each root is made of: arch, Debian suite, apt packages.
recipe() {
  case $1 in
    arm64-trixie) echo "arm64 trixie python3,python3-venv,python3-pip,ca-certificates" ;;
    armhf-bookworm) echo "armhf bookworm python3,python3-venv,python3-pip,ca-certificates,python3-numpy,python3-opencv" ;;
    *) echo "test-arm: unknown target '$1'; use arm64-trixie or armhf-bookworm" >&2; exit 2 ;;
  esac
}

# The runtime install a Pi user runs, in the root, from /root/edgeclf; $1 is the venv.
install_commands() {
  case $2 in
    arm64-trixie) echo "test -x $1/bin/python || python3 -m venv $1
      $1/bin/pip install -q . pytest" ;;
    armhf-bookworm) echo "test -x $1/bin/python || python3 -m venv --system-site-packages $1
      $1/bin/pip install -q tflite-runtime==2.14.0 click pyyaml flatbuffers paho-mqtt pytest
      $1/bin/pip install -q --no-deps ." ;;
  esac
}

check_host() {
  [ "$(uname -m)" = x86_64 ] || skip "the emulated roots are set up for an x86_64 host; this one is $(uname -m)"
  [ "$(id -u)" = 0 ] || skip "needs root for mmdebstrap, chroot and bind mounts; run it as root (sudo make test-arm)"
  if ! command -v mmdebstrap >/dev/null || ! command -v update-binfmts >/dev/null || ! [ -e /usr/bin/qemu-aarch64-static ]; then
    command -v apt-get >/dev/null || skip "qemu-user-static, binfmt-support and mmdebstrap are missing and there is no apt-get"
    echo "test-arm: installing qemu-user-static binfmt-support mmdebstrap"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user-static binfmt-support mmdebstrap) \
      >/dev/null 2>&1 || skip "apt-get install qemu-user-static binfmt-support mmdebstrap failed"
  fi
  [ -e /proc/sys/fs/binfmt_misc/register ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null \
    || skip "binfmt_misc is not mounted and cannot be (a container without it?), so ARM binaries cannot run here"
  for entry in qemu-aarch64 qemu-arm; do
    grep -qx enabled "/proc/sys/fs/binfmt_misc/$entry" 2>/dev/null || update-binfmts --enable "$entry" >/dev/null 2>&1 || true
    grep -qx enabled "/proc/sys/fs/binfmt_misc/$entry" 2>/dev/null \
      || skip "binfmt_misc has no enabled $entry entry (update-binfmts --enable $entry failed)"
  done
  command -v unshare >/dev/null && command -v chroot >/dev/null || skip "unshare and chroot (util-linux, coreutils) are missing"
  [ -x "$host_python" ] || skip "no toolchain venv at $host_python to write the x86 reference; run make install first"
}

source "$here/../debian-root.sh"  # mirror, build_root

# A short hash of this checkout's files under the given paths (tracked and new, not ignored): names and contents.
sources_hash() {
  (cd "$repo" && git ls-files -z -co --exclude-standard "$@" | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)
}

# Prints the root folder of a target, building it first when its recipe has none yet. One builder per
# target at a time (flock): a root that `--prepare` is building in the background is waited for.
ensure_root() {
  local target=$1 arch suite packages key root
  read -r arch suite packages <<<"$(recipe "$target")"
  key=$(printf '%s\n' "$RECIPE_VERSION" "$arch" "$suite" "$packages" | sha256sum | cut -c1-12)
  root=$cache/$target-$key
  build_root "test-arm ($target, $arch)" "$root" "$cache/$target.build.log" "$suite" --arch="$arch" \
    --variant=minbase --include="$packages" || return 1
  echo "$root"
}

# The board each root emulates: its /proc/cpuinfo and the qemu CPU whose features (AT_HWCAP, which
# XNNPACK reads besides /proc/cpuinfo) match it. qemu's default "max" CPU claims dot product and i8mm
# next to a Pi's cpuinfo, and XNNPACK's int8 kernels then computed garbage under qemu 7.2 (all one class).
board_cpu() {
  case $1 in
    pi4-arm64) echo cortex-a72 ;;  # Raspberry Pi 4 (Pi OS 64-bit)
    pi5-arm64) echo cortex-a76 ;;  # Raspberry Pi 5: int8 dot product (asimddp)
    pi2-armhf) echo cortex-a7 ;;   # Raspberry Pi 2 (Pi OS 32-bit; a Pi 3 runs the same armv7 userland)
  esac
}

# Runs a command in the root as on that board: its own /proc with the board's /proc/cpuinfo over it
# and a /sys/devices/system/cpu of four cores, so our code and XNNPACK's CPU detection see an ARM CPU
# (the x86 host's would crash XNNPACK's cpuinfo under emulation). The mounts die with the namespace.
in_root() {
  local board=$1 root=$2; shift 2
  QEMU_CPU=$(board_cpu "$board") unshare --mount --propagation private -- bash -euc '
    root=$1 cpuinfo=$2 cpus=$3; shift 3
    mount -t proc proc "$root/proc"
    mount --rbind /dev "$root/dev"
    mount --bind "$cpuinfo" "$root/proc/cpuinfo"
    mkdir -p "$root/sys/devices/system/cpu"
    mount --bind "$cpus" "$root/sys/devices/system/cpu"
    exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin QEMU_CPU="$QEMU_CPU" \
      PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 PIP_ROOT_USER_ACTION=ignore "$@"
  ' _ "$root" "$here/cpuinfo-$board" "$cache/sys-cpu" "$@"
}

# Installs this checkout into the root's venv and runs the runtime tests, doctor and the agreement test.
run_target() {
  local target=$1 root venv backend board
  root=$(ensure_root "$target")
  venv=/opt/edgeclf-venv-$(sha256sum "$repo/pyproject.toml" | cut -c1-12)  # new dependencies, new venv
  backend=ai_edge_litert board=pi4-arm64
  [ "$target" = armhf-bookworm ] && backend=tflite_runtime board=pi2-armhf
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"  # the registry's CA as the host sees it
  find "$root/opt" -maxdepth 1 -name 'edgeclf-venv-*' ! -path "$root$venv" -exec rm -rf {} +
  rm -rf "$root/root/edgeclf" "$root/root/reference"
  mkdir -p "$root/root/edgeclf"
  (cd "$repo" && git ls-files -z -co --exclude-standard | tar --null --ignore-failed-read -T - -cf -) | tar -xf - -C "$root/root/edgeclf"
  cp -r "$reference" "$root/root/reference"
  echo "== $target as $board: $(in_root "$board" "$root" python3 -c 'import platform, sys; print(platform.machine(), "Python", sys.version.split()[0])')"
  in_root "$board" "$root" bash -euc "cd /root/edgeclf
    if [ -e $venv/.package-$package ]; then
      echo 'installed: $venv already holds this checkout (package sources $package)'
    else
      rm -f $venv/.package-*
      $(install_commands "$venv" "$target")
      touch $venv/.package-$package
    fi
    $venv/bin/edgeclf doctor
    $venv/bin/edgeclf doctor --json > /dev/null
    # the tests run against the installed package: from a folder without the checkout's edgeclf/
    rm -rf /root/run && mkdir /root/run && cp -r tests /root/run/ && cd /root/run
    EDGECLF_EXPECT_BACKEND=$backend EDGECLF_ARM_REFERENCE=/root/reference \
      $venv/bin/python -m pytest -q -rs tests/runtime -p no:cacheprovider
    echo 'cross-architecture agreement (max |difference| from the x86 scores of the same interpreter):'
    cat /root/reference/agreement.json"
  if [ "$target" = arm64-trixie ]; then  # the Pi 5's int8 dot-product kernels too
    echo "== $target as pi5-arm64: agreement with x86"
    in_root pi5-arm64 "$root" bash -euc "cd /root/run
      EDGECLF_ARM_REFERENCE=/root/reference $venv/bin/python -m pytest -q -rs tests/runtime/test_cross_arch.py \
        -p no:cacheprovider
      cat /root/reference/agreement.json"
  fi
}

check_host
mkdir -p "$cache/sys-cpu"
if [ "${1:-}" = --prepare ]; then  # make test builds missing roots while the x86 tests run
  for target in $targets; do ensure_root "$target" >/dev/null & done
  wait
  exit 0
fi
for f in present possible online; do echo 0-3 > "$cache/sys-cpu/$f"; done
# The x86 scores, rewritten when the code or models they come from change.
reference=$cache/reference-$(sources_hash runtime toolchain tests/arm tests/fixtures/digits_tiny tests/fixtures/cross_arch \
  benchmarks/_photos.py)
# What pip builds the package from: while it is unchanged, a root's installed package is this checkout's and pip
# (minutes under emulation) is not run again.
package=$(sources_hash pyproject.toml README.md edgeclf runtime calibration toolchain)
if [ ! -e "$reference/reference-ai_edge_litert.json" ]; then
  echo "test-arm: x86 reference scores (float32 and int8 models on 120 real photos)"
  rm -rf "$cache"/reference-*
  "$host_python" "$here/reference.py" "$reference.tmp" >"$cache/reference.log" 2>&1 \
    || { tail -20 "$cache/reference.log"; exit 1; }
  mv "$reference.tmp" "$reference"
fi
if [ -x "$tflite_python" ] && [ ! -e "$reference/reference-tflite_runtime.json" ]; then  # what the armv7 root runs
  "$tflite_python" "$here/reference.py" --scores "$reference" >>"$cache/reference.log" 2>&1 \
    || { tail -20 "$cache/reference.log"; exit 1; }
fi

# Both targets at once (each mostly waits on emulation or the network), then their logs in order.
pids=()
for target in $targets; do
  run_target "$target" >"$cache/$target.log" 2>&1 &
  pids+=($!)
done
status=0
i=0
for target in $targets; do
  if wait "${pids[$i]}"; then result=passed; else result=FAILED; status=1; fi
  cat "$cache/$target.log"
  echo "== $target: $result"
  i=$((i + 1))
done
exit $status
