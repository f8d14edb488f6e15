#!/usr/bin/env bash
# pinata set-up on a fresh Debian 12 machine (as root).
#
#   ./setup.sh run    install packages, build, build the guest image, `pinata start`
#   ./setup.sh test   install packages, build, build the guest image, run the whole test suite
#
# Each step is skipped when it has nothing to do. The guest image is cached outside the
# clone ($PINATA_CACHE, default ~/.cache/pinata), keyed by its inputs.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
build=${PINATA_BUILD_DIR:-$here/build}
jobs=$(nproc)

say() { printf '\n==> %s\n' "$*"; }

packages=(
  build-essential cmake g++ pkg-config libgtest-dev libexpected-dev libssl-dev
  qemu-system-x86 qemu-utils debootstrap cpio xz-utils zstd e2fsprogs kmod
  busybox-static curl clang libclang-rt-14-dev python3 iproute2 libgit2-dev git zlib1g-dev \
  libslirp-dev iperf3
)

install_packages() {
  local missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing packages: ${missing[*]}"
    if [ "$(id -u)" != 0 ]; then
      echo "setup.sh: installing packages needs root (run it as root or with sudo)" >&2
      exit 1
    fi
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
  if ! command -v docker >/dev/null; then
    # Only the client: Debian's docker.io package also holds dockerd, which the host doesn't need.
    say "installing the docker CLI from Debian's docker.io package"
    local tmp
    tmp=$(mktemp -d)
    (cd "$tmp" && apt-get download -q docker.io && dpkg-deb -x docker.io_*.deb root)
    install -m 0755 "$tmp/root/usr/bin/docker" /usr/local/bin/docker
    rm -rf "$tmp"
  fi
}

build_all() {
  say "building (cmake, $jobs jobs)"
  cmake -S "$here" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$build" -j "$jobs"
}

build_fuzzers() {
  say "fuzz build (clang, libFuzzer + ASan/UBSan)"
  CC=clang CXX=clang++ cmake -S "$here" -B "$here/build-fuzz" -DPINATA_FUZZ=ON \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$here/build-fuzz" -j "$jobs" --target fuzzers
}

build_guest() {
  say "guest image"
  "$here/guest/build.sh" --init "$build/src/guest/pinata-init"
}

case "${1:-}" in
  run)
    install_packages
    build_all
    build_guest
    ln -sf "$build/src/cli/pinata" /usr/local/bin/pinata 2>/dev/null || true
    ln -sf "$build/src/daemon/pinatad" /usr/local/bin/pinatad 2>/dev/null || true
    say "pinata start"
    exec "$build/src/cli/pinata" start
    ;;
  test)
    install_packages
    build_all
    build_fuzzers
    build_guest
    say "tests (unit, fuzz, integration, e2e)"
    cd "$build"
    exec ctest --output-on-failure --timeout 1800
    ;;
  *)
    echo "usage: $0 run|test" >&2
    exit 2
    ;;
esac
