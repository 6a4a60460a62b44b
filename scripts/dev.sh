#!/usr/bin/env bash
# The main job on a fresh machine: installs the dependencies, builds, and runs
# `kindling dev` — a private PostgreSQL, the API, two workers running
# workloads in microVMs, an edge, with a local backup store — in the foreground
# until Ctrl-C. Once ready (--canary), the canary guest runs in a project named
# canary and answers through the edge; dev prints how, with curl commands.
#
#   scripts/dev.sh [kindling dev flags...]   e.g. --state-dir /var/tmp/kd --listen 127.0.0.1:9090
#
# When ready it prints KINDLING_URL, KINDLING_API_KEY, KINDLING_DSN and KINDLING_EDGE_URL on
# stdout (also kept in <state-dir>/dev.env); scripts/dev-walkthrough.sh, run in
# another shell, backs up a volume and restores it to the other worker.
# Build output goes to stderr.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh >&2
scripts/build.sh >&2
exec build/src/exe/kindling dev --canary "$@"
