#!/usr/bin/env bash
# The main job on a fresh machine: installs the dependencies, builds, and runs
# `kindling demo` (build a 1 GiB sparse volume image, back it up, change 2%,
# back up again, restore, verify, compare SHA-256).
#
#   scripts/demo.sh [demo flags...]     e.g. --size-mib 4096 --dir /var/tmp/demo --json
#
# Build output goes to stderr, so stdout holds only the demo's report.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh >&2
scripts/build.sh >&2
exec build/src/exe/kindling demo "$@"
