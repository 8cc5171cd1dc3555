#!/usr/bin/env bash
# The systemd files (scripts/systemd) as systemd reads them: `systemd-analyze verify` finds
# nothing to say about the exporter's unit, nor about a service with the preload drop-in; the
# sysusers and tmpfiles lines parse; and the exporter's command line is one rsrmemctl accepts.
#   systemd_test.sh RSRMEMCTL UNIT_DIR SOURCE_DIR
set -euo pipefail
ctl=$1 built=$2 src=$(cd "$3" && pwd)
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The exporter, its rsrmemctl the one built here (verify wants an executable that exists).
sed "s|^ExecStart=[^ ]*/rsrmemctl|ExecStart=$ctl|" "$built/rsrmem-exporter.service" > "$work/rsrmem-exporter.service"
grep -q "^ExecStart=$ctl serve --all --listen \${RSRMEM_LISTEN}$" "$work/rsrmem-exporter.service" || fail "unexpected ExecStart"
out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify --man=no "$work/rsrmem-exporter.service" 2>&1) ||
  fail "systemd-analyze verify --man=no rsrmem-exporter.service failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify --man=no rsrmem-exporter.service says: $out"

# A service with the drop-in.
printf '[Service]\nExecStart=/bin/sleep 60\n' > "$work/demo.service"
mkdir "$work/demo.service.d"
cp "$built/rsrmem-preload.conf" "$work/demo.service.d/rsrmem.conf"
out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify --man=no "$work/demo.service" 2>&1) ||
  fail "systemd-analyze verify --man=no of a service with the drop-in failed: $out"
[ -z "$out" ] || fail "systemd-analyze verify --man=no of a service with the drop-in says: $out"
# ...and the drop-in was read: a bad key in it is reported.
echo "NoSuchKey=1" >> "$work/demo.service.d/rsrmem.conf"
out=$(cd "$work" && SYSTEMD_UNIT_PATH="$work:" systemd-analyze verify --man=no "$work/demo.service" 2>&1 || true)
grep -q "NoSuchKey" <<<"$out" || fail "the drop-in was not read by systemd-analyze: $out"
grep -q "^Environment=LD_PRELOAD=/.*/librsrmem.so$" "$built/rsrmem-preload.conf" || fail "no LD_PRELOAD in the drop-in"

# sysusers and tmpfiles: systemd's own parsers, in a scratch root.
mkdir -p "$work/root/etc" "$work/root/run"
touch "$work/root/etc/passwd" "$work/root/etc/group"
out=$(systemd-sysusers --root="$work/root" "$src/rsrmem.sysusers" 2>&1) || fail "systemd-sysusers: $out"
grep -q "^rsrmem:" "$work/root/etc/passwd" || fail "systemd-sysusers made no rsrmem user: $out"
out=$(systemd-tmpfiles --root="$work/root" --create "$src/rsrmem.tmpfiles" 2>&1) || fail "systemd-tmpfiles: $out"
[ -d "$work/root/run/rsrmem" ] || fail "systemd-tmpfiles made no /run/rsrmem: $out"

# The exporter's command line, as rsrmemctl parses it (a port taken at once: it exits 2).
"$ctl" serve --all --listen 127.0.0.1:notaport >/dev/null 2>&1 && fail "serve accepted a bad --listen"
"$ctl" serve --help >/dev/null || fail "rsrmemctl has no serve"

[ "$failures" = 0 ] && echo "systemd: all checks passed"
exit $((failures > 0))
