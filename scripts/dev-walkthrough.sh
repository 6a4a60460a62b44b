#!/usr/bin/env bash
# Backup and restore through a running `kindling dev` (scripts/dev.sh in
# another shell), with the CLI's API commands only:
#   create a project and its 1 GiB volume (an ext4 image on one worker), write
#   64 MiB of data into the image, back it up (following the progress),
#   restore the backup to the other worker, and check that the image there is
#   bit-identical and gone from the first worker; then show the servers and
#   the audit trail.
#
#   scripts/dev-walkthrough.sh [--state-dir DIR]     (default /var/tmp/kindling-dev)
#
# Reads KINDLING_URL and KINDLING_API_KEY from the environment, else from
# DIR/dev.env. Exits non-zero at the first failed step.
set -euo pipefail
cd "$(dirname "$0")/.."

state_dir="${KINDLING_DEV_STATE_DIR:-/var/tmp/kindling-dev}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --state-dir) state_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
kindling="${KINDLING_BIN:-build/src/exe/kindling}"
[[ -x "$kindling" ]] || { echo "no $kindling: run scripts/dev.sh first" >&2; exit 1; }
if [[ -z "${KINDLING_URL:-}" || -z "${KINDLING_API_KEY:-}" ]]; then
  [[ -r "$state_dir/dev.env" ]] || { echo "kindling dev is not running on $state_dir (no dev.env): start scripts/dev.sh" >&2; exit 1; }
  set -a; source "$state_dir/dev.env"; set +a
fi
json() { python3 -c "import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); print($1)"; }
step() { printf '\n== %s\n' "$*" >&2; }

step "project and volume"
project=$("$kindling" project create --name "walkthrough-$(date +%s)" --json | json 'd["id"]')
"$kindling" volume create --project "$project" --size-gb 1 >/dev/null
for _ in $(seq 100); do
  volume_json=$("$kindling" volume show --project "$project" --json)
  [[ $(json 'd["health"]' <<<"$volume_json") == healthy ]] && break
  sleep 0.2
done
volume=$(json 'd["id"]' <<<"$volume_json")
first=$(json 'd["server_id"]' <<<"$volume_json")
first_dir=$(grep -l "$first" "$state_dir"/worker-*/server-id | xargs dirname)
image="$first_dir/volumes/$volume.img"
echo "volume $volume on server $first ($image)"

step "write 64 MiB into the image (the volume is cold: no workload holds it)"
head -c $((64 * 1024 * 1024)) /dev/urandom |
  dd of="$image" bs=1M seek=512 conv=notrunc,fsync status=none
source_sha=$(sha256sum "$image" | cut -d' ' -f1)
echo "image SHA-256 $source_sha"

step "back it up"
backup=$("$kindling" volume backup --project "$project" --follow --json | json 'd["backup_id"]')
"$kindling" volume backups --project "$project"

step "restore it to the other worker"
second=$("$kindling" servers list --all --json |
  json '[s["id"] for s in d if s["id"] != "'"$first"'" and s.get("heartbeat_health") == "healthy"][0]')
"$kindling" volume restore --project "$project" --backup "$backup" --target-server "$second" --follow
second_dir=$(grep -l "$second" "$state_dir"/worker-*/server-id | xargs dirname)
restored="$second_dir/volumes/$volume.img"
restored_sha=$(sha256sum "$restored" | cut -d' ' -f1)
echo "restored image $restored SHA-256 $restored_sha"
[[ "$restored_sha" == "$source_sha" ]] || { echo "MISMATCH" >&2; exit 1; }
for _ in $(seq 50); do [[ -e "$image" ]] || break; sleep 0.2; done
[[ ! -e "$image" ]] || { echo "the first worker still has $image" >&2; exit 1; }
echo "old copy on the first worker removed"

step "validation checklist: servers and audit trail"
"$kindling" servers list --all
"$kindling" audit list --limit 8
echo
echo "bit-identical: yes"
