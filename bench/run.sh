#!/usr/bin/env bash
# Side-by-side benchmark: kindling vs restic 0.14 vs borg 1.2 on one sparse
# volume image, all stores on the same filesystem, in one run.
#
#   bench/run.sh [--size-gib 4] [--data-gib 1] [--out DIR] [--s3] [--warm]
#                [--kindling PATH] [--kindling-level N] [--seed N] [--tools LIST]
#                [--change 0.02] [--mutate-block BYTES] [--keep] [--vm-runs N]
#                [--fs xfs|btrfs|host]
#
# Steps, each timed with /usr/bin/time (wall seconds, peak RSS):
#   full         first backup of the image
#   incremental  back up again after overwriting 2% of the image
#   nochange     back up again with nothing changed (restic skips the file by
#                its metadata; borg 1.2 reads it again, as it never keeps the
#                newest file of a backup in its files cache; kindling reads
#                nothing through its changed-block tracking)
#   restore      restore the latest backup to a new file; its SHA-256 must equal
#                the image's
# Floors: `cat image > /dev/null` (full and incremental) and
# `cp --sparse=always --reflink=never` (restore; cp 9 would otherwise clone the
# file on XFS and btrfs); also, computed rather than run, one core's SHA-256
# over the allocated bytes (`openssl speed`): every tool hashes each data byte
# once to name its chunks (kindling never hashes holes). Stored bytes: `du -sb`
# of each store after the step.
# Prints a Markdown table, kindling's read path per backup (read_path,
# fallback, bytes_read, bytes_skipped, chunks_skipped, snapshot_ms, diff_ms,
# duration_ms from its --json result; the JSON of each step is kept as
# DIR/kindling-STEP.json), the target ratios (PASS/MISS) and kindling's ratio to
# each floor; also writes them to bench/out/results.md (or DIR/results.md).
# Targets besides the ratios: the incremental's kindling bytes_read is at most
# (1 MiB writes of the change) x 2 x chunk size (a write can straddle two
# chunks), and, where the filesystem clones, at most the chunks that hold a
# change x chunk size (counted exactly: the image is cloned before the change
# and the two compared chunk by chunk, outside the timed steps); with
# --size-gib >= 32, kindling's no-change backup takes <= 0.5 s wall, e.g.
#   bench/run.sh --tools kindling --size-gib 32 --data-gib 8 --fs xfs
#
# --fs        where the work directory (image, snapshots, every tool's store,
#             restores) lives; all tools share it:
#             xfs    a fresh XFS (mkfs.xfs -m reflink=1) on a loop device over a
#                    sparse file DIR/fs.img, sized for the image, the stores and
#                    a restore, mounted on DIR/work (-o discard, so deleted files
#                    free the backing file's space; the loop device uses direct
#                    I/O, so reads and writes are cached once); unmounted and
#                    removed on exit, failed or not (--keep leaves it mounted)
#             btrfs  the same with mkfs.btrfs
#             host   DIR/work on whatever filesystem DIR is on (ext4 here: no
#                    reflink, so kindling reads every data chunk each backup)
#             default: xfs when running as root with mkfs.xfs and losetup,
#             else host (with a note in the results)
# --warm      page cache kept: the image is read once before every step
#             instead of the cache being dropped, so the ratios show CPU cost
#             (default: cold, the cache dropped before every step)
# --kindling-level  zstd level for kindling backups (default: kindling's own)
# --tools     comma list of kindling,restic,borg,vm (default all); e.g. the RSS
#             check at 32 GiB: bench/run.sh --size-gib 32 --tools kindling
#             vm: the microVM section: boot-to-ready and clean-stop times of
#             the canary guest on the runtime detected here (build/bench/vm_bench,
#             guest from build/guest); alone, with a small image for the floors:
#             bench/run.sh --tools vm --size-gib 0.25 --data-gib 0.1
#             api: the API load benchmark alone (bench/api_load.sh, wrk against
#             a private kindling dev; its table goes to DIR/api_load.md)
#             gc: garbage collection alone, over a synthetic store of a million
#             live chunk ids (build/bench/gc_bench: time, peak RSS; DIR/gc.md)
# --vm-runs   boots in the microVM section (default 3)
# --s3        also back up and restore with kindling against the S3 test server
#             (tests/s3/server.js, needs node and tests/s3/node_modules)
# --keep      keep the work directory (image, stores) for inspection
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

size_gib=4
data_gib=1
out_dir="$root/bench/out"
use_s3=0
kindling="$root/build/src/exe/kindling"
seed=1
tools="kindling,restic,borg,vm"
vm_runs=3
change=0.02
mutate_block=$((1024 * 1024))
keep=0
warm=0
kindling_level=""
fs_type=""

usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --size-gib) size_gib="$2"; shift 2 ;;
    --data-gib) data_gib="$2"; shift 2 ;;
    --out) out_dir="$2"; shift 2 ;;
    --s3) use_s3=1; shift ;;
    --kindling) kindling="$2"; shift 2 ;;
    --kindling-level) kindling_level="$2"; shift 2 ;;
    --warm) warm=1; shift ;;
    --seed) seed="$2"; shift 2 ;;
    --tools) tools="$2"; shift 2 ;;
    --change) change="$2"; shift 2 ;;
    --mutate-block) mutate_block="$2"; shift 2 ;;
    --keep) keep=1; shift ;;
    --vm-runs) vm_runs="$2"; shift 2 ;;
    --fs) fs_type="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

has_tool() { [[ ",$tools," == *",$1,"* ]]; }
die() { echo "bench: $*" >&2; exit 1; }

# The API load benchmark needs no image: it runs on its own.
if [[ "$tools" == api ]]; then
  exec "$here/api_load.sh" --kindling "$kindling" --out "$out_dir/api_load.md"
fi
has_tool api && die "--tools api runs alone (bench/api_load.sh); leave it out of the list"
# So does garbage collection over a synthetic store of a million chunk ids.
if [[ "$tools" == gc ]]; then
  gc_bench="$(dirname "$(dirname "$(dirname "$kindling")")")/bench/gc_bench"
  [[ -x "$gc_bench" ]] || die "$gc_bench is not built (cmake --build build --target gc_bench)"
  mkdir -p "$out_dir"
  "$gc_bench" | tee "$out_dir/gc.md"
  exit "${PIPESTATUS[0]}"
fi
has_tool gc && die "--tools gc runs alone (build/bench/gc_bench); leave it out of the list"

# ---------------------------------------------------------------------------
# Preconditions
[[ -x /usr/bin/time ]] || die "GNU time (/usr/bin/time) is required"
command -v python3 >/dev/null || die "python3 is required (table, JSON)"
if has_tool kindling || [[ $use_s3 == 1 ]]; then
  [[ -x "$kindling" ]] || die "kindling binary not found at $kindling (build it: cmake -S . -B build -G Ninja && ninja -C build kindling, or pass --kindling PATH)"
  "$kindling" backup create --help >/dev/null || die "$kindling does not run"
fi
if has_tool restic; then command -v restic >/dev/null || die "restic is not installed"; fi
if has_tool borg; then command -v borg >/dev/null || die "borg is not installed"; fi
vm_bench="$root/build/bench/vm_bench"
guest_dir="$root/build/guest"
if has_tool vm; then
  [[ -x "$vm_bench" ]] || die "vm_bench not found at $vm_bench (build it: cmake --build build --target vm_bench)"
  [[ -f "$guest_dir/vmlinux" && -f "$guest_dir/initramfs.cpio.gz" ]] ||
    die "no canary guest in $guest_dir (build it: cmake --build build --target guest_image)"
fi

size_bytes=$(python3 -c "print(int(float('$size_gib') * 2**30))")
data_bytes_target=$(python3 -c "print(int(float('$data_gib') * 2**30))")
(( data_bytes_target <= size_bytes )) || die "--data-gib exceeds --size-gib"

# Where the work directory lives (--fs).
fs_note=""
if [[ -z "$fs_type" ]]; then
  if [[ $EUID == 0 ]] && command -v mkfs.xfs >/dev/null && command -v losetup >/dev/null; then
    fs_type=xfs
  else
    fs_type=host
    fs_note="host filesystem by default: a loop-mounted XFS needs root, mkfs.xfs and losetup (here: $([[ $EUID == 0 ]] && echo root || echo "not root"), mkfs.xfs $(command -v mkfs.xfs >/dev/null && echo found || echo missing)); without reflink kindling takes no snapshot and reads every data chunk"
  fi
fi
case "$fs_type" in
  xfs|btrfs)
    [[ $EUID == 0 ]] || die "--fs $fs_type needs root (losetup, mount)"
    command -v "mkfs.$fs_type" >/dev/null || die "--fs $fs_type needs mkfs.$fs_type"
    command -v losetup >/dev/null || die "--fs $fs_type needs losetup"
    ;;
  host) ;;
  *) die "--fs must be xfs, btrfs or host (got $fs_type)" ;;
esac

mkdir -p "$out_dir"
out_dir="$(cd "$out_dir" && pwd)"
work="$out_dir/work"
results_tsv="$out_dir/results.tsv"
results_md="$out_dir/results.md"
log="$out_dir/run.log"
fs_backing="$out_dir/fs.img"
if mountpoint -q "$work" 2>/dev/null; then
  die "$work is still mounted (a run with --keep?): umount $work, losetup -d its loop device, rm $fs_backing"
fi
rm -rf "$work" "$fs_backing"
mkdir -p "$work"
: > "$results_tsv"
: > "$log"
rm -f "$out_dir"/kindling-*.json "$out_dir/mutate.tsv"

s3_pid=""
loop_dev=""
fs_mounted=0
cleanup() {
  local rc=$?
  if [[ -n "$s3_pid" ]]; then kill "$s3_pid" 2>/dev/null || true; wait "$s3_pid" 2>/dev/null || true; fi
  cd / || true
  if [[ $keep == 0 ]]; then
    if [[ $fs_mounted == 1 ]]; then
      # Nothing of the work directory is kept: unmount rather than delete file by file.
      umount "$work" 2>/dev/null || { sleep 1; umount "$work" 2>/dev/null; } ||
        umount -l "$work" 2>/dev/null || echo "bench: could not unmount $work" >&2
    fi
    if [[ -n "$loop_dev" ]]; then losetup -d "$loop_dev" 2>/dev/null || echo "bench: could not detach $loop_dev" >&2; fi
    rm -f "$fs_backing"
    rm -rf "$work"
  elif [[ -n "$loop_dev" ]]; then
    echo "bench: kept $work mounted ($loop_dev over $fs_backing); remove with:" \
      "umount $work && losetup -d $loop_dev && rm $fs_backing" >&2
  fi
  if [[ $rc != 0 ]]; then echo "bench: failed (exit $rc); see $log" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

note() { echo "$*" | tee -a "$log" >&2; }

if [[ $fs_type != host ]]; then
  # Size of the loop filesystem: after the change the image holds at most
  # data + change x size; each store at most that again (less, compressed);
  # the clones (kindling's snapshots, the pre-change clone for the exact
  # changed-chunk count) keep the overwritten ranges; one restore at a time
  # (restic 0.14 writes holes out as zeros: the apparent size); plus 10% and
  # 2 GiB for metadata and logs. The backing file is sparse and the mount
  # discards, so only what is written takes space on the host.
  n_stores=0
  for t in kindling restic borg; do if has_tool "$t"; then n_stores=$((n_stores + 1)); fi; done
  if [[ $use_s3 == 1 ]]; then n_stores=$((n_stores + 1)); fi
  fs_bytes=$(python3 - "$size_bytes" "$data_bytes_target" "$change" "$n_stores" \
      "$(has_tool restic && echo 1 || echo 0)" <<'PY'
import sys
size, data, change, n_stores, restic = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5] == "1"
after = min(size, data + change * size)
restore = size if restic else after
need = after * (1 + n_stores) + 2 * change * size + restore
need = need * 1.1 + 2 * 2**30
print(int(need) // 2**20 * 2**20)
PY
)
  host_avail=$(df --output=avail -B1 "$out_dir" | tail -n 1 | tr -d ' ')
  if (( host_avail < fs_bytes )); then
    note "warning: the $fs_type filesystem may fill up to $((fs_bytes / 2**30)) GiB but $out_dir has $((host_avail / 2**30)) GiB free"
  fi
  truncate -s "$fs_bytes" "$fs_backing"
  loop_dev=$(losetup --find --show --direct-io=on "$fs_backing" 2>>"$log") ||
    loop_dev=$(losetup --find --show "$fs_backing") || die "losetup $fs_backing failed"
  dio=$(losetup -n -O DIO "$loop_dev" 2>/dev/null | tr -d ' ')
  case "$fs_type" in
    xfs) mkfs.xfs -q -f -m reflink=1 "$loop_dev" >>"$log" 2>&1 || die "mkfs.xfs failed; see $log" ;;
    btrfs) mkfs.btrfs -q -f "$loop_dev" >>"$log" 2>&1 || die "mkfs.btrfs failed; see $log" ;;
  esac
  mount -o discard "$loop_dev" "$work" || die "mounting $loop_dev on $work failed"
  fs_mounted=1
  fs_note="$fs_type made fresh for this run ($( [[ $fs_type == xfs ]] && echo 'mkfs.xfs -m reflink=1' || echo mkfs.btrfs)) on $loop_dev (direct I/O $([[ $dio == 1 ]] && echo on || echo off)) over a sparse $((fs_bytes / 2**30)) GiB file on the host's $(df --output=fstype "$out_dir" | tail -n 1 | tr -d ' '), mounted -o discard on the work directory"
  note "work directory: $fs_note"
else
  [[ -n "$fs_note" ]] || fs_note="host filesystem ($(df --output=fstype "$out_dir" | tail -n 1 | tr -d ' ')) under $out_dir (--fs host)"
  note "work directory: $fs_note"
fi

# ---------------------------------------------------------------------------
# Page cache: drop it between steps when allowed (root on a host); otherwise
# evict the files a step will read with posix_fadvise(DONTNEED), which any user
# may do for files it can open.
cache_mode=""
drop_cache() {
  sync
  if [[ $warm == 1 ]]; then
    cache_mode="warm (--warm): not dropped; the image was read once (cat) before every step"
    cat "$image" > /dev/null
    return
  fi
  if (echo 3 > /proc/sys/vm/drop_caches) 2>/dev/null; then
    cache_mode="dropped (echo 3 > /proc/sys/vm/drop_caches) before every step"
    return
  fi
  cache_mode="not droppable here (no permission for /proc/sys/vm/drop_caches); evicted the image, stores and restored files with posix_fadvise(DONTNEED) before every step"
  python3 - "$work" <<'EOF'
import os, sys
for top in sys.argv[1:]:
    for dirpath, _, files in os.walk(top):
        for name in files:
            path = os.path.join(dirpath, name)
            try:
                fd = os.open(path, os.O_RDONLY)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
EOF
}

# ---------------------------------------------------------------------------
# Build the image generator.
make_image="$root/build/bench/make_image"
if [[ ! -x "$make_image" || "$make_image" -ot "$here/make_image.cc" ]]; then
  make_image="$out_dir/make_image"
  if [[ ! -x "$make_image" || "$make_image" -ot "$here/make_image.cc" ]]; then
    note "compiling $here/make_image.cc"
    c++ -O2 -std=c++20 -o "$make_image" "$here/make_image.cc"
  fi
fi

image="$work/volume.img"
note "building image: ${size_gib} GiB apparent, ${data_gib} GiB data, seed $seed"
"$make_image" create --out "$image" --size "$size_bytes" --data "$data_bytes_target" --seed "$seed" | tee -a "$log" >&2

allocated() { echo $(( $(stat -c '%b' "$1") * $(stat -c '%B' "$1") )); }
sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------
# Measurement: run a command under /usr/bin/time; record a row.
# record TOOL STEP STORE_DIR(or -) CMD...
current_apparent=0
current_data=0
record() {
  local tool="$1" step="$2" store="$3"
  shift 3
  local tf="$work/time.out"
  drop_cache
  note "[$step] $tool: $*"
  if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" >>"$log" 2>&1; then
    cat "$tf" >>"$log" 2>/dev/null || true
    die "$tool $step failed; see $log"
  fi
  local wall rss stored="-"
  read -r wall rss < <(tail -n 1 "$tf")
  if [[ "$store" != "-" ]]; then stored=$(du -sb "$store" | cut -f1); fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$tool" "$step" "$wall" "$rss" "$stored" \
    "$current_apparent" "$current_data" >> "$results_tsv"
  note "        wall ${wall}s, peak RSS ${rss} KiB, stored ${stored}"
}

check_restored() {
  local tool="$1" file="$2"
  local got
  got=$(sha_of "$file")
  if [[ "$got" != "$image_sha" ]]; then
    printf '%s\tsha256\tMISMATCH\n' "$tool" >> "$out_dir/checks.tsv"
    die "$tool restored an image whose SHA-256 $got differs from $image_sha"
  fi
  printf '%s\tsha256\tok\n' "$tool" >> "$out_dir/checks.tsv"
  note "        restored SHA-256 matches (${got:0:16}...), allocated $(allocated "$file") bytes"
}
: > "$out_dir/checks.tsv"

# Tool set-up.
export RESTIC_PASSWORD="kindling-bench-password"
export RESTIC_CACHE_DIR="$work/restic-cache"
export BORG_PASSPHRASE="kindling-bench-password"
export BORG_BASE_DIR="$work/borg-base"
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=no
export BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
restic_repo="$work/restic-repo"
borg_repo="$work/borg-repo"
kindling_store="$work/kindling-store"
kindling_key="$work/kindling.key"

if has_tool kindling; then
  "$kindling" store init --store "file://$kindling_store" --key-file "$kindling_key" --quiet >>"$log" 2>&1
fi
if has_tool restic; then restic -r "$restic_repo" init >>"$log" 2>&1; fi
if has_tool borg; then borg init --encryption=repokey-blake2 "$borg_repo" >>"$log" 2>&1; fi

# Runs a command with stdout to a file: `to_file FILE CMD...` (exec keeps the
# measured process the tool itself).
to_file=(sh -c 'out=$1; shift; exec "$@" > "$out"' sh)
kindling_level_args=()
if [[ -n "$kindling_level" ]]; then kindling_level_args=(--compression-level "$kindling_level"); fi
backup_id_of() { tail -n 1 "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["backup_id"])'; }

backup_step() {
  local step="$1" archive="$2"
  current_apparent=$(stat -c '%s' "$image")
  current_data=$(allocated "$image")
  # Nothing to read when nothing changed: no read floor for the no-change step.
  if [[ $step != nochange ]]; then
    record "cat (read floor)" "$step" - "${to_file[@]}" /dev/null cat "$image"
  fi
  if has_tool kindling; then
    record kindling "$step" "$kindling_store" "${to_file[@]}" "$work/kindling-$step.json" \
      "$kindling" backup create --store "file://$kindling_store" --key-file "$kindling_key" \
      --volume-id bench --image "$image" --progress none --json "${kindling_level_args[@]}"
    backup_id_of "$work/kindling-$step.json" > "$work/kindling-last-id"
    tail -n 1 "$work/kindling-$step.json" > "$out_dir/kindling-$step.json"
    note "        $(python3 - "$out_dir/kindling-$step.json" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))
print("kindling: " + ", ".join(f"{k} {j.get(k)}" for k in (
    "read_path", "fallback", "bytes_read", "bytes_skipped", "chunks_skipped",
    "snapshot_ms", "diff_ms", "duration_ms")))
PY
)"
  fi
  if has_tool restic; then
    record restic "$step" "$restic_repo" restic -r "$restic_repo" backup --compression auto "$image"
  fi
  if has_tool borg; then
    # --sparse: borg 1.2 skips holes with the fixed chunker; without it borg
    # would be charged for reading holes as zeros.
    record borg "$step" "$borg_repo" borg create --sparse --compression zstd,3 \
      --chunker-params fixed,4194304 "$borg_repo::$archive" "$image"
  fi
}

# One core's SHA-256 throughput (bytes/s), for the digest floor.
sha256_rate() {
  openssl speed -evp sha256 -bytes 4194304 -seconds 2 2>/dev/null |
    awk '$1 == "sha256" { v = $NF; sub(/k$/, "", v); printf "%.0f\n", v * 1000 }'
}

# ---------------------------------------------------------------------------
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
sha_rate=$(sha256_rate || true)
note "one core's SHA-256: ${sha_rate:-unknown} bytes/s"
note "image SHA-256 ..."
image_sha=$(sha_of "$image")
backup_step full full

# The change. Where the filesystem clones, the image is cloned first so that the
# chunks holding a change can be counted exactly afterwards (outside the timed
# steps; the clone is removed before the incremental).
premutate="$work/premutate.img"
exact_changed=""
if has_tool kindling && cp --reflink=always "$image" "$premutate" 2>/dev/null; then :; else rm -f "$premutate"; fi
note "overwriting ${change} of the image (blocks of $mutate_block bytes, seed $seed)"
mutate_out=$("$make_image" mutate --image "$image" --fraction "$change" --block "$mutate_block" --seed "$seed")
echo "$mutate_out" | tee -a "$log" >&2
mutate_writes=$(sed -n 's/.* in \([0-9]*\) writes of up to.*/\1/p' <<<"$mutate_out")
[[ -n "$mutate_writes" ]] || die "cannot read the number of writes from make_image mutate: $mutate_out"
if [[ -f "$premutate" ]]; then
  chunk_size=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["chunk_size"])' \
    "$out_dir/kindling-full.json")
  note "counting the chunks that hold a change (the image against its clone from before the change) ..."
  t0=$(date +%s.%N)
  exact_changed=$(python3 - "$premutate" "$image" "$chunk_size" <<'PY'
import os, sys
before, after, chunk = sys.argv[1], sys.argv[2], int(sys.argv[3])
# Chunks with data in either file (SEEK_DATA/SEEK_HOLE); the rest are holes in
# both and cannot differ.
chunks = set()
for path in (before, after):
    fd = os.open(path, os.O_RDONLY)
    size, off = os.fstat(fd).st_size, 0
    while off < size:
        try:
            start = os.lseek(fd, off, os.SEEK_DATA)
        except OSError:
            break
        end = os.lseek(fd, start, os.SEEK_HOLE)
        chunks.update(range(start // chunk, (end - 1) // chunk + 1))
        off = end
    os.close(fd)
fa, fb = os.open(before, os.O_RDONLY), os.open(after, os.O_RDONLY)
changed = sum(1 for c in sorted(chunks)
              if os.pread(fa, chunk, c * chunk) != os.pread(fb, chunk, c * chunk))
print(changed)
PY
)
  rm -f "$premutate"
  note "        $exact_changed chunks of $chunk_size bytes hold a change ($(python3 -c "print(f'{$(date +%s.%N) - $t0:.1f}')") s to count)"
fi
if [[ -n "$exact_changed" ]]; then exact_note="-"
elif ! has_tool kindling; then exact_note="kindling not run"
else exact_note="not counted: the $fs_type filesystem cannot clone the image (cp --reflink=always)"; fi
printf '%s\t%s\t%s\t%s\n' "$mutate_writes" "$mutate_block" "${exact_changed:--}" "$exact_note" \
  > "$out_dir/mutate.tsv"
image_sha=$(sha_of "$image")
backup_step incremental incremental
# Again with nothing changed.
backup_step nochange nochange

# Restores: each into its own fresh directory, checked, then removed.
restore_dir="$work/restore"
current_apparent=$(stat -c '%s' "$image")
current_data=$(allocated "$image")
mkdir -p "$restore_dir/cp"
# --reflink=never: cp 9 clones by default where it can (XFS, btrfs), which is no copy.
record "cp --sparse=always (floor)" restore - cp --sparse=always --reflink=never "$image" "$restore_dir/cp/volume.img"
check_restored "cp --sparse=always" "$restore_dir/cp/volume.img"
rm -rf "$restore_dir/cp"
# kindling fsyncs the restored image before renaming it into place; cp, restic
# and borg do not. This second floor includes the fsync (coreutils `sync FILE`).
mkdir -p "$restore_dir/cp"
record "cp --sparse=always + sync (floor)" restore - sh -c 'cp --sparse=always --reflink=never "$1" "$2" && exec sync "$2"' \
  sh "$image" "$restore_dir/cp/volume.img"
rm -rf "$restore_dir/cp"
if has_tool kindling; then
  mkdir -p "$restore_dir/kindling"
  kid=$(cat "$work/kindling-last-id")
  record kindling restore "$kindling_store" "$kindling" backup restore --store "file://$kindling_store" \
    --key-file "$kindling_key" --backup "$kid" --volume-id bench --to "$restore_dir/kindling/volume.img" \
    --progress none
  check_restored kindling "$restore_dir/kindling/volume.img"
  rm -rf "$restore_dir/kindling"
fi
if has_tool restic; then
  mkdir -p "$restore_dir/restic"
  # restic 0.14 has no --sparse on restore: it writes holes out as zeros.
  record restic restore "$restic_repo" restic -r "$restic_repo" restore latest --target "$restore_dir/restic"
  check_restored restic "$restore_dir/restic$image"
  rm -rf "$restore_dir/restic"
fi
if has_tool borg; then
  mkdir -p "$restore_dir/borg"
  record borg restore "$borg_repo" sh -c 'cd "$1" && exec borg extract --sparse "$2"' sh \
    "$restore_dir/borg" "$borg_repo::incremental"
  check_restored borg "$restore_dir/borg$image"
  rm -rf "$restore_dir/borg"
fi

# ---------------------------------------------------------------------------
# Optional: kindling against the S3 test server.
if [[ $use_s3 == 1 ]]; then
  command -v node >/dev/null || die "--s3 needs node"
  [[ -f "$root/tests/s3/server.js" && -d "$root/tests/s3/node_modules/@20minutes/s3rver" ]] ||
    die "--s3 needs tests/s3/server.js and tests/s3/node_modules (npm ci in tests/s3)"
  mkdir -p "$work/s3-data"
  KINDLING_S3_DIR="$work/s3-data" KINDLING_S3_BUCKET=bench KINDLING_S3_ACCESS_KEY=BENCHKEY \
    KINDLING_S3_SECRET_KEY=bench-secret node --openssl-legacy-provider "$root/tests/s3/server.js" \
    > "$work/s3.port" 2>>"$log" &
  s3_pid=$!
  for _ in $(seq 1 300); do
    grep -q '^PORT ' "$work/s3.port" 2>/dev/null && break
    kill -0 "$s3_pid" 2>/dev/null || die "S3 test server exited; see $log"
    sleep 0.1
  done
  port=$(sed -n 's/^PORT //p' "$work/s3.port")
  [[ -n "$port" ]] || die "S3 test server did not report a port"
  note "S3 test server on 127.0.0.1:$port (pid $s3_pid)"
  export AWS_ACCESS_KEY_ID=BENCHKEY AWS_SECRET_ACCESS_KEY=bench-secret AWS_REGION=us-east-1
  s3_args=(--store "s3://bench/kindling" --s3-endpoint "http://127.0.0.1:$port" --key-file "$work/kindling-s3.key")
  "$kindling" store init "${s3_args[@]}" --quiet >>"$log" 2>&1
  current_apparent=$(stat -c '%s' "$image")
  current_data=$(allocated "$image")
  record "kindling (S3)" full "$work/s3-data" "${to_file[@]}" "$work/kindling-s3.json" \
    "$kindling" backup create "${s3_args[@]}" --volume-id bench --image "$image" --progress none --json
  s3_id=$(backup_id_of "$work/kindling-s3.json")
  mkdir -p "$restore_dir/s3"
  record "kindling (S3)" restore "$work/s3-data" "$kindling" backup restore "${s3_args[@]}" \
    --backup "$s3_id" --volume-id bench --to "$restore_dir/s3/volume.img" --progress none
  check_restored "kindling (S3)" "$restore_dir/s3/volume.img"
  rm -rf "$restore_dir/s3"
fi

# ---------------------------------------------------------------------------
# microVM: the canary guest's boot-to-ready and clean-stop times.
vm_json="$out_dir/vm.json"
rm -f "$vm_json"
if has_tool vm; then
  note "[vm] $vm_runs boots of the canary guest"
  mkdir -p "$work/vm"
  # On a filesystem that clones files: live backups of a running canary,
  # the VM paused for each clone (pause length over 20 backups).
  pause_args=()
  if [[ "$fs_type" == xfs || "$fs_type" == btrfs ]]; then pause_args=(--pause-backups 20); fi
  "$vm_bench" --guest "$guest_dir" --runs "$vm_runs" --work "$work/vm" "${pause_args[@]}" \
    > "$vm_json" 2>>"$log" || die "vm_bench failed; see $log"
  note "        $(cat "$vm_json")"
fi

# ---------------------------------------------------------------------------
# Report.
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
python3 - "$results_tsv" "$results_md" "$size_gib" "$data_gib" "$seed" "$change" "$mutate_block" \
  "$cache_mode" "$(nproc)" "$(restic version 2>/dev/null | head -1 || true)" \
  "$(borg --version 2>/dev/null || true)" "$("$kindling" --version 2>/dev/null || echo kindling)" \
  "$load_start" "$load_end" "${sha_rate:-0}" "${kindling_level:-default}" "$vm_json" \
  "$out_dir" "$fs_note" <<'EOF'
import json, os, statistics, sys
(tsv, md, size_gib, data_gib, seed, change, block, cache_mode, cores, restic_v, borg_v,
 kindling_v, load_start, load_end, sha_rate, kindling_level, vm_json, out_dir,
 fs_note) = sys.argv[1:20]
sha_rate = float(sha_rate or 0)
rows = []
for line in open(tsv):
    tool, step, wall, rss, stored, apparent, data = line.rstrip("\n").split("\t")
    rows.append(dict(tool=tool, step=step, wall=float(wall), rss_kib=int(rss),
                     stored=None if stored == "-" else int(stored),
                     apparent=int(apparent), data=int(data)))

def find(tool, step):
    for r in rows:
        if r["tool"] == tool and r["step"] == step:
            return r
    return None

out = []
out.append(f"# kindling side-by-side benchmark\n")
out.append(f"Image: {size_gib} GiB apparent, ~{data_gib} GiB data (random 30%, text 30%, "
           f"binary from /usr/bin 25%, written zeros 10%, duplicates 5%; holes between), seed {seed}. "
           f"Incremental: {float(change)*100:g}% of the apparent size overwritten with random bytes "
           f"in {int(block)//1024} KiB blocks at random 4 KiB-aligned offsets.  ")
out.append(f"No change: backed up again right after the incremental, nothing changed (restic skips "
           f"the file by its size, times and inode; borg 1.2 reads and deduplicates it again, as it "
           f"never keeps the newest file of a backup in its files cache, and here that is the image; "
           f"kindling reads only what the extent maps show changed).  ")
out.append(f"Work directory (image, snapshots, every store, restores): {fs_note}. The restore "
           f"floors run `cp --sparse=always --reflink=never` (cp 9 would clone on XFS and btrfs).  ")
out.append(f"Machine: {cores} cores; load average (1/5/15 min) {load_start} at start, "
           f"{load_end} at end (other work on the machine skews wall times). "
           f"Page cache: {cache_mode}.  ")
out.append(f"Versions: {kindling_v}; {restic_v}; {borg_v}. restic: `backup --compression auto`, "
           f"`restore latest` (0.14 has no sparse restore); borg: `init --encryption=repokey-blake2`, "
           f"`create --sparse --compression zstd,3 --chunker-params fixed,4194304`, `extract --sparse`; "
           f"kindling: 4 MiB chunks, zstd level {kindling_level}, default threads.  ")
out.append("Stored bytes count the repository only (restic and borg local caches excluded). MB = 10^6 bytes. MB/s (apparent) = image apparent size / wall; MB/s (data) = image "
           "allocated bytes (st_blocks) / wall. Stored bytes = `du -sb` of the store after the step.\n")
out.append("| tool | step | wall s | MB/s (apparent) | MB/s (data) | peak RSS MiB | stored bytes |")
out.append("|---|---|---:|---:|---:|---:|---:|")
for r in rows:
    mbs_a = r["apparent"] / 1e6 / r["wall"] if r["wall"] > 0 else float("inf")
    mbs_d = r["data"] / 1e6 / r["wall"] if r["wall"] > 0 else float("inf")
    stored = f"{r['stored']:,}" if r["stored"] is not None else "-"
    out.append(f"| {r['tool']} | {r['step']} | {r['wall']:.2f} | {mbs_a:,.0f} | {mbs_d:,.0f} | "
               f"{r['rss_kib']/1024:.1f} | {stored} |")
out.append("")

# kindling's own account of each backup (its --json result).
kjson = {}
for step in ("full", "incremental", "nochange"):
    path = os.path.join(out_dir, f"kindling-{step}.json")
    if os.path.exists(path):
        kjson[step] = json.load(open(path))
if kjson:
    out.append("kindling's read path per backup, from its `--json` result (bytes_read: image bytes "
               "read; bytes_skipped: data bytes not read because the extent maps of the previous "
               "and this backup's snapshots show them unchanged; the JSON of each step is in "
               "kindling-STEP.json beside this file):\n")
    out.append("| step | read_path | fallback | bytes_read | bytes_skipped | chunks_skipped | "
               "snapshot_ms | diff_ms | duration_ms |")
    out.append("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for step, j in kjson.items():
        num = lambda key: f"{j[key]:,}" if isinstance(j.get(key), int) else str(j.get(key, "-"))
        out.append(f"| {step} | {j.get('read_path', '-')} | {j.get('fallback') or '-'} | "
                   f"{num('bytes_read')} | {num('bytes_skipped')} | {num('chunks_skipped')} | "
                   f"{num('snapshot_ms')} | {num('diff_ms')} | {num('duration_ms')} |")
    out.append("")

targets = []  # (name, value text, limit text, result)
def ratio(name, num, den, limit, kind="wall", info=False):
    limit_text = "-" if info else f"<= {limit:g}"
    if num is None or den is None:
        targets.append((name, "-", limit_text, "n/a (tool not run)"))
        return
    a = num[kind] if kind == "wall" else num["stored"]
    b = den[kind] if kind == "wall" else den["stored"]
    if b == 0:
        targets.append((name, "-", limit_text, "n/a (zero denominator)"))
        return
    value = a / b
    result = "info" if info else "PASS" if value <= limit else "MISS"
    targets.append((name, f"{value:.3f}", limit_text, result))

k = lambda s: find("kindling", s)
ratio("full backup: kindling / restic wall", k("full"), find("restic", "full"), 0.25)
ratio("incremental: kindling / restic wall", k("incremental"), find("restic", "incremental"), 0.1)
ratio("incremental: kindling / borg wall", k("incremental"), find("borg", "incremental"), 0.4)
ratio("restore: kindling / restic wall", k("restore"), find("restic", "restore"), 0.3)
ratio("restore: kindling / cp --sparse=always wall", k("restore"),
      find("cp --sparse=always (floor)", "restore"), 2.0)
ratio("restore: kindling / (cp --sparse=always + sync) wall (info)", k("restore"),
      find("cp --sparse=always + sync (floor)", "restore"), 2.0)
ratio("stored bytes after full: kindling / restic", k("full"),
      find("restic", "full"), 1.0, kind="stored")
ratio("stored bytes after incremental: kindling / restic", k("incremental"),
      find("restic", "incremental"), 1.0, kind="stored")

# What the incremental read: at most the chunks that hold a change. make_image
# writes blocks of `block` bytes at 4 KiB-aligned offsets, so a write touches at
# most floor((block - 1) / chunk) + 2 chunks (two for a 1 MiB write in 4 MiB
# chunks); where the filesystem clones, the changed chunks were also counted
# exactly by comparing the image with its clone from before the change.
inc = kjson.get("incremental")
mutate_tsv = os.path.join(out_dir, "mutate.tsv")
if inc is not None and os.path.exists(mutate_tsv):
    writes, mblock, exact, exact_note = open(mutate_tsv).read().rstrip("\n").split("\t")
    writes, mblock, chunk = int(writes), int(mblock), int(inc["chunk_size"])
    per_write = (mblock - 1) // chunk + 2
    bound = writes * per_write * chunk
    read = int(inc["bytes_read"])
    targets.append((f"incremental: kindling bytes_read <= {writes} writes x {per_write} x "
                    f"{chunk // 2**20} MiB chunk (conservative)", f"{read:,}", f"<= {bound:,}",
                    "PASS" if read <= bound else "MISS"))
    if exact != "-":
        limit = int(exact) * chunk
        targets.append((f"incremental: kindling bytes_read <= {int(exact)} chunks holding a change "
                        f"x {chunk // 2**20} MiB (exact count)", f"{read:,}", f"<= {limit:,}",
                        "PASS" if read <= limit else "MISS"))
    else:
        targets.append(("incremental: kindling bytes_read <= chunks holding a change x chunk size "
                        "(exact count)", f"{read:,}", "-", f"n/a ({exact_note})"))

# No-change backup of a large image (the target is stated for 32 GiB holding 8 GiB).
nc = k("nochange")
nc_name = "no-change backup: kindling wall s"
if nc is None:
    targets.append((nc_name, "-", "<= 0.5", "n/a (kindling not run)"))
elif float(size_gib) >= 32:
    targets.append((nc_name, f"{nc['wall']:.2f}", "<= 0.5", "PASS" if nc["wall"] <= 0.5 else "MISS"))
else:
    targets.append((nc_name + " (info)", f"{nc['wall']:.2f}", "<= 0.5",
                    "n/a (target stated for images >= 32 GiB)"))
ratio("no-change backup: kindling / restic wall (info)", nc, find("restic", "nochange"), 1.0, info=True)

krows = [r for r in rows if r["tool"].startswith("kindling")]
if krows:
    peak = max(r["rss_kib"] for r in krows) / 1024
    targets.append(("kindling peak RSS over all steps (MiB)", f"{peak:.1f}", "<= 128",
                    "PASS" if peak <= 128 else "MISS"))
out.append("| target | value | limit | result |")
out.append("|---|---:|---:|---|")
for name, value, limit, result in targets:
    out.append(f"| {name} | {value} | {limit} | {result} |")

# kindling against the floors of each step: what reading (or copying) the
# image costs, and what one core's SHA-256 over the apparent size costs.
floors = {
    "full": ["cat (read floor)"],
    "incremental": ["cat (read floor)"],
    "restore": ["cp --sparse=always (floor)", "cp --sparse=always + sync (floor)"],
}
floor_rows = []
for step, names in floors.items():
    kr = k(step)
    if kr is None:
        continue
    for name in names:
        fr = find(name, step)
        if fr is not None and fr["wall"] > 0:
            floor_rows.append((step, name, fr["wall"], kr["wall"] / fr["wall"]))
    if sha_rate > 0:
        # Every tool hashes each data byte at least once (chunk ids); kindling
        # never hashes holes, so its floor is the allocated bytes, not the
        # apparent size.
        digest_s = kr["data"] / sha_rate
        floor_rows.append((step, f"SHA-256 of the allocated bytes on one core "
                           f"({sha_rate / 1e6:,.0f} MB/s, computed)", digest_s,
                           kr["wall"] / digest_s))
        # With changed-block tracking kindling hashes only what it reads.
        j = kjson.get(step)
        if j is not None and j.get("read_path") == "changed-blocks" and j.get("bytes_read"):
            digest_s = j["bytes_read"] / sha_rate
            floor_rows.append((step, f"SHA-256 of kindling's bytes_read on one core "
                               f"({sha_rate / 1e6:,.0f} MB/s, computed)", digest_s,
                               kr["wall"] / digest_s))
if floor_rows:
    out.append("")
    out.append("| step | floor | floor s | kindling / floor |")
    out.append("|---|---|---:|---:|")
    for step, name, wall, value in floor_rows:
        out.append(f"| {step} | {name} | {wall:.2f} | {value:.2f} |")

s3 = [r for r in rows if r["tool"] == "kindling (S3)"]
if s3:
    out.append("")
    for r in s3:
        out.append(f"kindling against the S3 test server (s3rver, node, localhost), {r['step']}: "
                   f"{r['wall']:.2f} s, {r['apparent']/1e6/r['wall']:,.0f} MB/s apparent, "
                   f"{r['data']/1e6/r['wall']:,.0f} MB/s data, peak RSS {r['rss_kib']/1024:.1f} MiB.")
if os.path.exists(vm_json):
    vm = json.load(open(vm_json))
    runs = vm["runs"]
    out.append("")
    out.append(f"## microVM: the canary guest ({vm['runtime']})\n")
    out.append(f"{len(runs)} boots of the canary guest (QEMU microvm, 128 MiB, 1 vCPU, Debian's "
               f"kernel as uncompressed vmlinux, busybox initramfs), each on a fresh 64 MiB ext4 "
               f"volume. Boot-to-ready: Start until /healthz answers 200 through the forwarded "
               f"port. Clean stop: ACPI power button until QEMU exits (the guest stops the canary "
               f"and unmounts the volume first); outcomes: "
               f"{', '.join(sorted(set(r['outcome'] for r in runs)))}. "
               f"Runtime detection: {'; '.join(vm['notes'])}.\n")
    out.append("| measure | min s | median s | max s |")
    out.append("|---|---:|---:|---:|")
    for key, label in (("ready_ms", "boot-to-ready"), ("stop_ms", "clean stop")):
        values = [r[key] / 1000 for r in runs]
        out.append(f"| {label} | {min(values):.2f} | {statistics.median(values):.2f} | "
                   f"{max(values):.2f} |")
    pause = vm.get("pause")
    if pause and "runs" in pause:
        out.append("")
        out.append(f"Live backups of a running canary while a client writes records to it: "
                   f"{pause['backups']} backups, each pausing the VM (QMP stop) for the reflink "
                   f"clone, then backing up the clone (changed blocks after the first). The last "
                   f"backup, restored and booted, holds {pause['restored_intact']} of "
                   f"{pause['restored_records']} records intact "
                   f"({pause['records_written']} written in all).\n")
        out.append("| measure | p50 ms | max ms | limit | result |")
        out.append("|---|---:|---:|---:|---|")
        ok = pause["pause_max_ms"] <= 50
        out.append(f"| VM pause for the clone | {pause['pause_p50_ms']} | {pause['pause_max_ms']} "
                   f"| <= 50 | {'PASS' if ok else 'MISS'} |")
    elif pause:
        out.append(f"\nLive backups failed: {pause.get('error', '?')}")
text = "\n".join(out) + "\n"
open(md, "w").write(text)
print(text)
EOF
note "results written to $results_md"
