#!/usr/bin/env bash
# Configures and builds kindling with CMake and Ninja.
#
#   scripts/build.sh [extra cmake -D options...]
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo:
# optimised, with line tables), JOBS (default: the core count), CCACHE_DIR,
# KINDLING_CCACHE=0 to build without ccache, TARGETS (space-separated) to
# build only those targets.
# The binary is $BUILD_DIR/src/exe/kindling.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-RelWithDebInfo}"
jobs="${JOBS:-$(nproc)}"

# ccache, when installed, keeps compiled objects outside the checkout
# (CCACHE_DIR, default /var/cache/kindling-ccache), so a fresh clone on the
# same machine (CI) recompiles only what changed.
launcher=()
if command -v ccache >/dev/null 2>&1 && [ "${KINDLING_CCACHE:-1}" != 0 ]; then
  export CCACHE_DIR="${CCACHE_DIR:-/var/cache/kindling-ccache}"
  if ! mkdir -p "$CCACHE_DIR" 2>/dev/null || [ ! -w "$CCACHE_DIR" ]; then
    export CCACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/kindling-ccache"
    mkdir -p "$CCACHE_DIR"
  fi
  # Paths relative to the checkout, so clones in other directories hit too.
  export CCACHE_BASEDIR="$PWD" CCACHE_NOHASHDIR=1
  export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-8G}"
  launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "${launcher[@]}" "$@"
targets=()
for target in ${TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build_dir" --parallel "$jobs" "${targets[@]}"
