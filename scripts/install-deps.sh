#!/usr/bin/env bash
# Installs every build, test and benchmark dependency on a fresh Debian 12 machine.
# Idempotent: safe to run again. Needs root (CI and the dev machines run as root).
set -euo pipefail
cd "$(dirname "$0")/.."

export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

packages=(
  build-essential g++ cmake ninja-build pkg-config clang-format ccache
  libssl-dev libzstd-dev libcurl4-openssl-dev libpqxx-dev libpq-dev libpugixml-dev
  nlohmann-json3-dev libcli11-dev libhowardhinnant-date-dev tzdata libspdlog-dev libfmt-dev libcpp-httplib-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  postgresql postgresql-client pgbackrest e2fsprogs xfsprogs btrfs-progs openssl
  nodejs npm
  restic borgbackup time
  # promtool (tests/api/metrics_test.cc checks /metrics with it); Debian 12
  # ships it only inside the prometheus package (its server is turned off below).
  prometheus
  # bench/api_load.sh: HTTP load against the API.
  wrk
  # The Debian package test (tests/packaging): dpkg-shlibdeps and
  # systemd-analyze verify.
  dpkg-dev systemd
  # The dashboard's browser tests (tests/browser): headless Chromium, driven
  # by playwright-core from npm.
  chromium
  # The canary guest (guest/build-image.sh) and its VMs (src/runtime): QEMU,
  # busybox-static for the initramfs, kmod (depmod, modprobe) to order the
  # kernel modules, xz for the kernel's payload, binutils to strip the canary.
  qemu-system-x86 busybox-static cpio kmod xz-utils binutils
)
missing=()
for p in "${packages[@]}"; do
  # NodeSource's nodejs bundles npm and conflicts with Debian's npm package.
  if [ "$p" = npm ] && command -v npm >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# Only promtool is wanted: where systemd runs, the package enabled and started
# a Prometheus server.
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet prometheus 2>/dev/null; then
  $SUDO systemctl disable prometheus >/dev/null 2>&1 || true
  $SUDO systemctl stop prometheus >/dev/null 2>&1 || true
fi

# The S3 test server (checks SigV4 signatures); installed into tests/s3/node_modules.
if [ ! -d tests/s3/node_modules/@20minutes/s3rver ]; then
  (cd tests/s3 && npm ci --no-audit --no-fund --loglevel=error)
fi
# playwright-core for the browser tests (it drives Debian's Chromium; it
# downloads no browser of its own).
if [ ! -d tests/browser/node_modules/playwright-core ]; then
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
fi
