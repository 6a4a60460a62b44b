#!/usr/bin/env bash
# Builds the canary guest from Debian packages: an uncompressed kernel
# (vmlinux, taken out of linux-image-6.1.*-amd64's bzImage) and an initramfs
# (gzip'd cpio) with busybox-static, the kernel modules the guest needs, the
# canary binary and guest/init.
#
#   guest/build-image.sh --out DIR --canary PATH
#
# Writes DIR/vmlinux and DIR/initramfs.cpio.gz (each replaced atomically) and
# keeps its work under DIR/work. The kernel package is downloaded with
# `apt-get download` (never installed) into $KINDLING_GUEST_CACHE (default
# /var/cache/kindling-guest, outside the checkout so that fresh clones on one
# machine, e.g. CI runs, do not download it again); when apt cannot resolve or
# fetch the current package, the newest cached one is used.
# Needs: apt-get, dpkg-deb, depmod and modprobe (kmod), xz, cpio, gzip, strip and a
# static /bin/busybox (busybox-static); scripts/install-deps.sh installs them.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out=""
canary=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --canary) canary="$2"; shift 2 ;;
    *) echo "usage: $0 --out DIR --canary PATH" >&2; exit 2 ;;
  esac
done
die() { echo "guest/build-image.sh: $*" >&2; exit 1; }
[[ -n "$out" && -n "$canary" ]] || die "usage: --out DIR --canary PATH"
[[ -x "$canary" ]] || die "canary binary $canary is missing"
for tool in apt-get dpkg-deb depmod modprobe xz cpio gzip flock strip readelf; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x "/usr/sbin/$tool" || -x "/sbin/$tool" ]] ||
    die "$tool is missing (run scripts/install-deps.sh)"
done
export PATH="$PATH:/usr/sbin:/sbin"
busybox=/bin/busybox
[[ -x "$busybox" ]] || die "$busybox is missing (install busybox-static)"
# The initramfs has no dynamic loader: busybox must be the static build.
if LC_ALL=C readelf -lW "$busybox" 2>/dev/null | grep -q 'INTERP'; then
  die "$busybox is dynamically linked (install busybox-static instead of busybox)"
fi
if LC_ALL=C readelf -lW "$canary" 2>/dev/null | grep -q 'INTERP'; then
  die "$canary is dynamically linked; the guest needs a static build"
fi

mkdir -p "$out/work"
out="$(cd "$out" && pwd)"
work="$out/work"

# --- the kernel package ------------------------------------------------------
cache="${KINDLING_GUEST_CACHE:-/var/cache/kindling-guest}"
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w "$cache" ]]; then
  cache="${XDG_CACHE_HOME:-$HOME/.cache}/kindling-guest"
  mkdir -p "$cache"
fi
# One download at a time per cache (two build directories may build at once).
exec 9>"$cache/.lock"
flock 9
# linux-image-amd64 depends on the current ABI's package, e.g.
# linux-image-6.1.0-57-amd64.
package=$(apt-cache depends linux-image-amd64 2>/dev/null |
  sed -n 's/^ *Depends: \(linux-image-6\.1\.[0-9][0-9.]*-[0-9][0-9]*-amd64\)$/\1/p' | head -n 1)
newest_cached() {
  local pattern="$1"
  # No match is an empty answer, not a failure (set -e, pipefail).
  { ls -1 "$cache"/$pattern 2>/dev/null || true; } | sort -V | tail -n 1
}
deb=""
if [[ -n "$package" ]]; then
  deb=$(newest_cached "${package}_*_amd64.deb")
  if [[ -z "$deb" ]]; then
    echo "guest: downloading $package into $cache" >&2
    apt_opts=()
    # As root, apt drops to _apt for downloads, which cannot write the cache.
    [[ "$(id -u)" -eq 0 ]] && apt_opts=(-o APT::Sandbox::User=root)
    if (cd "$cache" && apt-get download -q "${apt_opts[@]}" "$package" >&2); then
      deb=$(newest_cached "${package}_*_amd64.deb")
      # Older kernels are not used again.
      for old in "$cache"/linux-image-6.1.*-amd64_*_amd64.deb; do
        [[ "$old" == "$deb" ]] || rm -f "$old"
      done
    else
      echo "guest: downloading $package failed; trying the cache" >&2
    fi
  fi
fi
if [[ -z "$deb" ]]; then
  deb=$(newest_cached "linux-image-6.1.*-amd64_*_amd64.deb")
  [[ -n "$deb" ]] || die "no linux-image-6.1.*-amd64 package: apt-cache does not know \
linux-image-amd64 (run apt-get update) and $cache has none"
  echo "guest: using cached $(basename "$deb")" >&2
fi
flock -u 9

# --- vmlinux and the modules, once per kernel package ------------------------
# Modules the guest loads, with their dependencies (hard and soft, e.g. ext4's
# soft dependency on crc32c) in load order from modprobe --show-depends.
wanted_modules=(virtio_mmio virtio_blk virtio_net ext4 button evdev)
kernel_key="$(basename "$deb" .deb)-$(echo "${wanted_modules[*]}" | cksum | cut -d' ' -f1)"
kernel_dir="$work/kernel-$kernel_key"
if [[ ! -f "$kernel_dir/done" ]]; then
  rm -rf "$work"/kernel-* "$work/unpack"
  echo "guest: unpacking $(basename "$deb")" >&2
  dpkg-deb -x "$deb" "$work/unpack"
  vmlinuz=$(ls -1 "$work"/unpack/boot/vmlinuz-* | head -n 1)
  kver="${vmlinuz##*/vmlinuz-}"
  mkdir -p "$kernel_dir.tmp/modules"

  # bzImage: the setup header says where the compressed kernel is. The
  # protected-mode part starts after (setup_sects + 1) * 512 bytes
  # (setup_sects at 0x1f1, 0 meaning 4); payload_offset (0x248) and
  # payload_length (0x24c) locate the payload inside it (boot protocol 2.08+).
  u8() { od -An -tu1 -j "$2" -N1 "$1" | tr -d ' '; }
  u32() { od -An -tu4 -j "$2" -N4 "$1" | tr -d ' '; }
  [[ "$(od -An -c -j $((0x202)) -N4 "$vmlinuz" | tr -d ' ')" == HdrS ]] ||
    die "$vmlinuz is not a bzImage"
  setup_sects=$(u8 "$vmlinuz" $((0x1f1)))
  [[ "$setup_sects" -eq 0 ]] && setup_sects=4
  payload_offset=$(u32 "$vmlinuz" $((0x248)))
  payload_length=$(u32 "$vmlinuz" $((0x24c)))
  start=$(( (setup_sects + 1) * 512 + payload_offset ))
  magic=$(od -An -tx1 -j "$start" -N6 "$vmlinuz" | tr -d ' ')
  # Debian builds with CONFIG_KERNEL_XZ; the payload ends with the
  # uncompressed size (4 bytes), which --single-stream ignores.
  [[ "$magic" == fd377a585a00 ]] || die "payload of $vmlinuz is not xz (magic $magic)"
  dd if="$vmlinuz" bs=1M iflag=skip_bytes,count_bytes skip="$start" count="$payload_length" \
    status=none | xz -dc --single-stream > "$kernel_dir.tmp/vmlinux"
  [[ "$(od -An -c -N4 "$kernel_dir.tmp/vmlinux" | tr -d ' ')" == '177ELF' ]] ||
    die "the payload of $vmlinuz is not an ELF kernel"

  depmod -b "$work/unpack" "$kver"
  : > "$kernel_dir.tmp/load-order"
  for module in "${wanted_modules[@]}"; do
    modprobe -d "$work/unpack" -S "$kver" --show-depends "$module" |
      while read -r verb path _; do
        [[ "$verb" == insmod ]] || continue  # "builtin ..." needs nothing
        name=$(basename "$path")
        name="${name%.ko*}"
        grep -qx "$name" "$kernel_dir.tmp/load-order" && continue
        case "$path" in
          *.ko) cp "$path" "$kernel_dir.tmp/modules/$name.ko" ;;
          *.ko.xz) xz -dc "$path" > "$kernel_dir.tmp/modules/$name.ko" ;;
          *) die "unexpected module file $path" ;;
        esac
        echo "$name" >> "$kernel_dir.tmp/load-order"
      done
  done
  echo "$kver" > "$kernel_dir.tmp/version"
  touch "$kernel_dir.tmp/done"
  mv "$kernel_dir.tmp" "$kernel_dir"
  rm -rf "$work/unpack"
fi

# --- the initramfs -------------------------------------------------------------
root="$work/root"
rm -rf "$root"
mkdir -p "$root"/{bin,dev,proc,sys,run,tmp,etc/acpi,lib/modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [[ "$applet" == busybox ]] || ln -s busybox "$root/bin/$applet"
done
cp "$kernel_dir"/modules/*.ko "$root/lib/modules/"
cp "$kernel_dir/load-order" "$root/lib/modules/load-order"
install -m 0755 "$here/init" "$root/init"
install -m 0755 "$here/power-button" "$root/etc/acpi/power-button"
echo "PWRF power-button" > "$root/etc/acpid.conf"
# Without debug info: the guest decompresses the initramfs with an emulated
# CPU under TCG, where every megabyte costs boot time.
strip -o "$root/bin/kindling-canary" "$canary"
chmod 0755 "$root/bin/kindling-canary"
(cd "$root" && find . -mindepth 1 | LC_ALL=C sort |
  cpio -o -H newc -R 0:0 --quiet) > "$work/initramfs.cpio"
gzip -n -6 -c "$work/initramfs.cpio" > "$out/initramfs.cpio.gz.tmp"
cp "$kernel_dir/vmlinux" "$out/vmlinux.tmp"
mv "$out/initramfs.cpio.gz.tmp" "$out/initramfs.cpio.gz"
mv "$out/vmlinux.tmp" "$out/vmlinux"
echo "guest: $out/vmlinux ($(cat "$kernel_dir/version")), $out/initramfs.cpio.gz" \
  "($(stat -c %s "$out/initramfs.cpio.gz") bytes; modules: $(tr '\n' ' ' < "$kernel_dir/load-order"))" >&2
