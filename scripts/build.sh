#!/usr/bin/env bash
# Configures and builds kindling with CMake and Ninja.
#
#   scripts/build.sh [extra cmake -D options...]
#
# Environment: BUILD_DIR (default build), BUILD_TYPE (default RelWithDebInfo:
# optimised, with symbols), JOBS (default: the core count).
# The binary is $BUILD_DIR/src/exe/kindling.
set -euo pipefail
cd "$(dirname "$0")/.."

build_dir="${BUILD_DIR:-build}"
build_type="${BUILD_TYPE:-RelWithDebInfo}"
jobs="${JOBS:-$(nproc)}"

cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE="$build_type" "$@"
cmake --build "$build_dir" --parallel "$jobs"
