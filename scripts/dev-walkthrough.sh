#!/usr/bin/env bash
# Backup and restore through a running `kindling dev` (scripts/dev.sh in
# another shell), with the CLI's API commands only:
#   create a project and its 1 GiB volume (an ext4 image on one worker), write
#   64 MiB of data into the image, back it up (following the progress),
#   restore the backup to the other worker, and check that the image there is
#   bit-identical and gone from the first worker; then the round with a
#   running workload: deploy the canary guest on a second project, write
#   records through the edge, back up with --stop-workload (the worker stops
#   the workload and starts it again), write more records, restore the first
#   backup to the other worker with --stop-workload --validate (the records
#   are checked inside a guest before the image is used), check through the
#   edge that exactly the first records are back, and run the validation
#   checklist (kindling admin validate, canary included); then show the
#   servers and the audit trail.
#
#   scripts/dev-walkthrough.sh [--state-dir DIR]     (default /var/tmp/kindling-dev)
#
# Reads KINDLING_URL, KINDLING_API_KEY and KINDLING_EDGE_URL from the
# environment, else from DIR/dev.env. The workload round needs workers with a
# VM runtime (kindling dev's default when the build made the canary guest);
# without, it is skipped with a message. Exits non-zero at the first failed
# step.
set -euo pipefail
cd "$(dirname "$0")/.."

state_dir="${KINDLING_DEV_STATE_DIR:-/var/tmp/kindling-dev}"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --state-dir) state_dir="$2"; shift 2 ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
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

step "a running workload: the canary guest, answering through the edge"
if ! "$kindling" servers list --all --json | json 'all((s.get("runtime") or "").startswith(("qemu-microvm", "cloud-hypervisor")) for s in d if s.get("heartbeat_health") == "healthy") or sys.exit(1)' >/dev/null 2>&1; then
  echo "the workers run no workloads (no VM runtime or no canary guest): round skipped"
else
  canary=$("$kindling" project create --name "canary-$(date +%s)" --json | json 'd["id"]')
  "$kindling" volume create --project "$canary" --size-gb 1 >/dev/null
  for _ in $(seq 100); do
    [[ $("$kindling" volume show --project "$canary" --json | json 'd["health"]') == healthy ]] && break
    sleep 0.2
  done
  host=$("$kindling" project deploy --project "$canary" --image canary --follow --json | json 'd["hostname"]')
  edge() { curl -sS --fail-with-body -H "Host: $host" "$@"; }
  for i in 1 2 3 4 5; do edge -X POST --data "record $i" "$KINDLING_EDGE_URL/records" >/dev/null; done
  echo "5 records written through $KINDLING_EDGE_URL (Host: $host): $(edge "$KINDLING_EDGE_URL/records/verify")"

  step "back it up while it runs: the worker stops the workload and starts it again"
  op=$("$kindling" volume backup --project "$canary" --stop-workload --follow --json)
  canary_backup=$(json 'd["backup_id"]' <<<"$op")
  op_id=$(json 'd["id"]' <<<"$op")
  for _ in $(seq 300); do
    op=$("$kindling" operation show "$op_id" --json)
    [[ $(json '"workload_restarted" in (d.get("result") or {})' <<<"$op") == True ]] && break
    sleep 0.2
  done
  echo "backup $canary_backup; workload back after $(json 'd["result"].get("downtime_ms")' <<<"$op") ms"
  for i in 6 7; do edge -X POST --data "record $i" "$KINDLING_EDGE_URL/records" >/dev/null; done
  echo "2 more records: $(edge "$KINDLING_EDGE_URL/records/verify")"

  step "restore the backup to the other worker, validated in a guest first"
  holder=$("$kindling" volume show --project "$canary" --json | json 'd["server_id"]')
  other=$("$kindling" servers list --all --json |
    json '[s["id"] for s in d if s["id"] != "'"$holder"'" and s.get("heartbeat_health") == "healthy"][0]')
  op=$("$kindling" volume restore --project "$canary" --backup "$canary_backup" --target-server "$other" \
    --stop-workload --validate --follow --json)
  op_id=$(json 'd["id"]' <<<"$op")
  for _ in $(seq 300); do
    op=$("$kindling" operation show "$op_id" --json)
    [[ $(json '"workload_restarted" in (d.get("result") or {})' <<<"$op") == True ]] && break
    sleep 0.2
  done
  echo "validation $(json 'json.dumps(d["result"].get("validation"))' <<<"$op"); workload back on $(json 'd["result"].get("workload_server_id")' <<<"$op") after $(json 'd["result"].get("downtime_ms")' <<<"$op") ms"
  verify=""
  for _ in $(seq 50); do
    verify=$(edge "$KINDLING_EDGE_URL/records/verify" 2>/dev/null || true)
    [[ "$verify" == *'"records":5'* ]] && break
    sleep 0.2
  done
  echo "through the edge: $verify"
  [[ "$verify" == '{"records":5,"intact":5,"damaged":[]}' ]] || { echo "expected exactly the 5 records of the backup" >&2; exit 1; }

  step "the validation checklist, canary and in-guest record check included"
  "$kindling" admin validate --canary-project "$canary" --volume-project "$canary"
fi

step "servers and audit trail"
"$kindling" servers list --all
"$kindling" audit list --limit 8
echo
echo "bit-identical: yes"
