#!/usr/bin/env bash
# The Debian package: builds it with cpack from the build directory given,
# unpacks it into a scratch root (dpkg-deb -x), and checks what is in it:
# the binary runs, the docs are there, /etc/kindling/kindling.env is a 0640 conffile, the
# maintainer scripts are there and parse, and systemd-analyze verify accepts
# the unit (its ExecStart pointed at the unpacked binary).
# Usage: deb_package_test.sh BUILD_DIR
set -euo pipefail
build_dir=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

(cd "$build_dir" && cpack -G DEB -B "$work/out" >"$work/cpack.log" 2>&1) ||
  { cat "$work/cpack.log" >&2; fail "cpack failed"; }
deb=$(ls "$work"/out/kindling_*.deb)
echo "built $(basename "$deb")"

root="$work/root"
dpkg-deb -x "$deb" "$root"
dpkg-deb -e "$deb" "$work/control"

# The binary, runnable.
[ -x "$root/usr/bin/kindling" ] || fail "/usr/bin/kindling missing"
"$root/usr/bin/kindling" --help >/dev/null || fail "kindling --help failed"
# The documentation the unit points at.
for doc in README.md backup-and-restore.md operations.md; do
  [ -f "$root/usr/share/doc/kindling/$doc" ] || fail "/usr/share/doc/kindling/$doc missing"
done
# The settings: a conffile, not readable by others.
env_file="$root/etc/kindling/kindling.env"
[ -f "$env_file" ] || fail "/etc/kindling/kindling.env missing"
[ "$(stat -c %a "$env_file")" = 640 ] || fail "kindling.env mode $(stat -c %a "$env_file"), not 640"
grep -qx /etc/kindling/kindling.env "$work/control/conffiles" || fail "kindling.env is no conffile"
grep -q '^KINDLING_COMPONENTS=' "$env_file" || fail "kindling.env sets no components"
# The maintainer scripts.
for script in postinst prerm postrm; do
  [ -x "$work/control/$script" ] || fail "$script missing or not executable"
  sh -n "$work/control/$script" || fail "$script does not parse"
done
grep -q 'adduser --system' "$work/control/postinst" || fail "postinst creates no system user"
grep -q '^Depends:.*adduser' "$work/control/control" || fail "no dependency on adduser"
# The unit.
unit="$root/usr/lib/systemd/system/kindling.service"
[ -f "$unit" ] || fail "kindling.service missing"
grep -qx 'ExecStart=/usr/bin/kindling serve' "$unit" || fail "unexpected ExecStart"
grep -qx 'User=kindling' "$unit" || fail "the service does not run as kindling"
grep -qx 'Restart=on-failure' "$unit" || fail "no Restart=on-failure"
grep -qx 'EnvironmentFile=/etc/kindling/kindling.env' "$unit" || fail "no EnvironmentFile"
mkdir -p "$work/units"
sed "s|^ExecStart=/usr/bin/kindling|ExecStart=$root/usr/bin/kindling|" "$unit" \
  >"$work/units/kindling.service"
(cd "$work/units" && systemd-analyze verify --man=no "$work/units/kindling.service") \
  >"$work/verify.log" 2>&1 || { cat "$work/verify.log" >&2; fail "systemd-analyze verify"; }
if [ -s "$work/verify.log" ]; then
  cat "$work/verify.log" >&2
  fail "systemd-analyze verify printed warnings"
fi
echo "PASS"
