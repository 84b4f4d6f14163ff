#!/usr/bin/env bash
# Installs the Debian 12 packages padhook needs to build, test and benchmark.
# Only missing packages are installed; prints nothing when all are present.
#   scripts/install-deps.sh           build and test dependencies
#   scripts/install-deps.sh --peers   also the tools bench/peers.sh compares
#                                     padhook with, and gnuplot for its plots
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build pkg-config g++ clang
  libelf-dev libdw-dev libcli11-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  valgrind binutils lld gdb
  python3 libclang-rt-14-dev
)
# python3: the tracer's end-to-end tests. libclang-rt-14-dev: libFuzzer for the
# clang build's fuzz tests (and LLVM XRay's runtime for bench/peers.sh).
# bench/peers.sh also needs: uftrace, uprobes through bpftrace, plots.
PEERS_PACKAGES=(uftrace bpftrace gnuplot-nox)
case ${1:-} in
  "") ;;
  --peers) PACKAGES+=("${PEERS_PACKAGES[@]}") ;;
  *) echo "usage: $0 [--peers]" >&2; exit 2 ;;
esac

die() { echo "install-deps: $*" >&2; exit 1; }

command -v dpkg-query >/dev/null 2>&1 ||
  die "dpkg-query not found: this script supports Debian 12 (bookworm) and derivatives only"

missing=()
for pkg in "${PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 ||
    die "not root and sudo not found; install as root: apt-get install ${missing[*]}"
  SUDO=(sudo)
fi

echo "install-deps: installing ${missing[*]}" >&2
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1; then
  cat "$log" >&2
  die "apt-get update failed (output above)"
fi
if ! "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  die "apt-get install failed for: ${missing[*]} (output above)"
fi
