#!/usr/bin/env bash
# The Debian packages built by scripts/package (which has lintian check them), installed on a
# system that has never seen rsrmem: an overlay of this machine's root file
# system (its changes kept in a scratch directory, the machine itself untouched), entered with
# chroot in a private mount namespace, with the checkout and the build tree hidden. There:
#   - dpkg installs librsrmem, rsrmem and librsrmem-dev; the exporter's user exists, its unit is
#     enabled, and its command, run as its user with its environment, answers /metrics;
#   - the installed rsrmemctl runs a program under the installed library (found at its installed
#     path, nothing else around) and names the function that holds its memory;
#   - man finds and renders both pages, bash completes rsrmemctl, a C program builds with
#     `pkg-config --cflags rsrmem`;
#   - dpkg --purge removes them and leaves no file behind.
# Outside: the debug symbols are split off (the installed objects are stripped, the -dbgsym
# packages hold their build ids).
#   package_test.sh SOURCE_ROOT PACKAGE_DIR    (PACKAGE_DIR: where `scripts/package` wrote them;
#                                               scripts/test builds them beside the test suite)
set -euo pipefail
src=$1 out=$2
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

if [ "$(id -u)" != 0 ]; then
  echo "package_test: installing packages into an overlay root takes root; skipped"
  exit 77
fi

version=$(sed -n '1s/^rsrmem (\([^)]*\)).*/\1/p' "$src/debian/changelog")
arch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
for p in librsrmem rsrmem librsrmem-dbgsym rsrmem-dbgsym; do
  [ -f "$out/${p}_${version}_$arch.deb" ] || fail "no package $p"
done
[ -f "$out/librsrmem-dev_${version}_all.deb" ] || fail "no package librsrmem-dev"
[ "$failures" = 0 ] || { echo "run scripts/package $out first"; exit 1; }

scratch=$(mktemp -d /var/tmp/rsrmem-package-test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT

# Debug symbols: the installed objects carry no symbol table nor DWARF, and each one's build id
# has its .debug file in the -dbgsym package.
for p in librsrmem rsrmem librsrmem-dbgsym rsrmem-dbgsym; do
  dpkg-deb -x "$out/${p}_${version}_$arch.deb" "$scratch/x"
done
for obj in usr/bin/rsrmemctl "usr/lib/$multiarch/rsrmem/librsrmem.so" "usr/lib/$multiarch/rsrmem/librsrmem-heap.so"; do
  sections=$(readelf -S -W "$scratch/x/$obj")
  ! grep -qE '\.(symtab|debug_info) ' <<<"$sections" || fail "$obj is not stripped"
  id=$(readelf -n "$scratch/x/$obj" | awk '/Build ID:/ {print $3}')
  debug="$scratch/x/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  [ -n "$id" ] && [ -f "$debug" ] || { fail "$obj: no debug file for build id '$id'"; continue; }
  readelf -S -W "$debug" 2>/dev/null | grep -q '\.debug_info ' || fail "$debug holds no DWARF"
done

# The system: this machine's root, read-only below a scratch upper layer.
mkdir "$scratch/upper" "$scratch/work" "$scratch/root"
cat >"$scratch/inside.sh" <<'INSIDE'
#!/bin/sh
# Runs in the overlay root. Prints FAIL lines; the exit status is the number of failures.
set -u
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
version=$1 multiarch=$2
lib=/usr/lib/$multiarch/rsrmem/librsrmem.so
export PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive

[ ! -e /usr/bin/rsrmemctl ] && [ ! -e "$lib" ] || fail "rsrmem is installed already on this machine"
cd /mnt/packages
dpkg -i librsrmem_"$version"_*.deb rsrmem_"$version"_*.deb librsrmem-dev_"$version"_all.deb >/tmp/dpkg-i.log 2>&1 ||
  { cat /tmp/dpkg-i.log; fail "dpkg -i failed"; exit "$failures"; }
cd /

# The exporter's user, its unit enabled (started on boot), its settings as a conffile.
getent passwd rsrmem >/dev/null || fail "no user rsrmem after installing"
[ -L /etc/systemd/system/multi-user.target.wants/rsrmem-exporter.service ] ||
  fail "rsrmem-exporter.service is not enabled"
grep -qx /etc/default/rsrmem-exporter /var/lib/dpkg/info/rsrmem.conffiles ||
  fail "/etc/default/rsrmem-exporter is not a conffile"

# rsrmemctl run with the installed library and nothing else around.
[ "$(command -v rsrmemctl)" = /usr/bin/rsrmemctl ] || fail "rsrmemctl is not /usr/bin/rsrmemctl"
mkdir -m 700 /tmp/sockets /tmp/prog
cp /mnt/hold.c /tmp/prog/ && cc -g -O1 -o /tmp/prog/hold /tmp/prog/hold.c || fail "cannot build the test program"
export RSR_SOCKET_DIR=/tmp/sockets
rsrmemctl run -- /tmp/prog/hold >/tmp/run.log 2>&1 &
runner=$!
pid=""
for _ in $(seq 1 100); do
  pid=$(ls /tmp/sockets 2>/dev/null | sed -n 's/^\([0-9]*\)\.sock$/\1/p' | head -n 1)
  [ -n "$pid" ] && break
  sleep 0.1
done
if [ -z "$pid" ]; then
  fail "the program run by the installed rsrmemctl never answered: $(cat /tmp/run.log)"
else
  sleep 0.5
  grep -q " $lib\$" "/proc/$pid/maps" || fail "the installed library is not mapped in the program"
  grep -q " /usr/lib/$multiarch/rsrmem/librsrmem-heap.so\$" "/proc/$pid/maps" ||
    fail "the private heap's loader is not mapped in the program"
  status=$(rsrmemctl --pid "$pid" status 2>&1) || fail "rsrmemctl status failed: $status"
  echo "$status" | grep -q "library *rsrmem $version " || fail "status does not name the library $version: $status"
  summary=$(rsrmemctl --pid "$pid" memory-summary --top 1 2>&1) || fail "memory-summary failed: $summary"
  echo "$summary" | grep -q "in keep_blocks (hold.c:5)" || fail "memory-summary does not name keep_blocks: $summary"
  kill -TERM "$pid"
fi
wait "$runner" 2>/dev/null

# The exporter as its unit starts it: the unit's user, its Environment= lines and command line
# (the sandboxing needs a running systemd, which a chroot has not), /run/rsrmem as tmpfiles made
# it. It answers /metrics.
unit=$(dpkg -L rsrmem | grep '/systemd/system/rsrmem-exporter.service$')
[ -d /run/rsrmem ] || fail "/run/rsrmem was not made"
user=$(sed -n 's/^User=//p' "$unit")
environment=$(sed -n 's/^Environment=//p' "$unit")
command=$(sed -n 's/^ExecStart=//p' "$unit")
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# shellcheck disable=SC2086  # the unit's assignments, one word each
env -i PATH="$PATH" $environment RSRMEM_LISTEN="127.0.0.1:$port" \
  setpriv --reuid="$user" --regid="$user" --init-groups sh -c "exec $command" >/tmp/exporter.log 2>&1 &
exporter=$!
answer=""
for _ in $(seq 1 50); do
  answer=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/metrics") && [ "$answer" = 200 ] && break
  sleep 0.1
done
[ "$answer" = 200 ] || fail "the exporter, started as its unit says, did not answer /metrics ($answer): $(cat /tmp/exporter.log)"
[ "$(ps -o user= -p "$exporter")" = "$user" ] || fail "the exporter does not run as $user"
kill -TERM "$exporter" 2>/dev/null
wait "$exporter" 2>/dev/null

# Manual pages, completion, the C API through pkg-config.
for page in rsrmemctl librsrmem; do
  path=$(man -w "$page" 2>/dev/null) || { fail "man does not find $page"; continue; }
  warnings=$(MANWIDTH=100 man --warnings -l "$path" 2>&1 >/dev/null)
  [ -z "$warnings" ] || fail "man -l $path: $warnings"
done
MANWIDTH=200 man -l "$(man -w librsrmem)" 2>/dev/null | grep -q "LD_PRELOAD=$lib service" ||
  fail "librsrmem(7) does not give the installed library's path"
completed=$(bash -c '. /usr/share/bash-completion/completions/rsrmemctl
  COMP_WORDS=(rsrmemctl sta); COMP_CWORD=1; _rsrmemctl; printf "%s\n" "${COMPREPLY[@]}" | sort | paste -sd " "')
[ "$completed" = "start-profiling stats status" ] || fail "bash completes 'rsrmemctl sta' to '$completed'"
printf '#include <rsrmem.h>\nint main(void) { return rsrmem_present(); }\n' >/tmp/prog/api.c
cc $(pkg-config --cflags rsrmem) -o /tmp/prog/api /tmp/prog/api.c || fail "cannot build with pkg-config --cflags rsrmem"

# Removed and purged: nothing of them is left (checked outside, on the overlay's upper layer).
rm -rf /tmp/prog /tmp/sockets /tmp/*.log
dpkg --purge librsrmem-dev rsrmem librsrmem >/tmp/dpkg-purge.log 2>&1 || { cat /tmp/dpkg-purge.log; fail "dpkg --purge failed"; }
[ -z "$(dpkg-query -W -f='${Package} ${Status}\n' 'librsrmem*' 'rsrmem*' 2>/dev/null | grep -v not-installed)" ] ||
  fail "packages still known to dpkg after the purge"
exit "$failures"
INSIDE
chmod +x "$scratch/inside.sh"

# A private mount namespace: the overlay and its mounts vanish with it.
status=0
unshare --mount --propagation private /bin/sh -eu -c '
  scratch=$1 src=$2 out=$3 version=$4 multiarch=$5
  root=$scratch/root
  mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/upper,workdir=$scratch/work" "$root"
  mount --rbind /dev "$root/dev"
  mount -t proc proc "$root/proc"
  mount -t tmpfs tmpfs "$root/tmp"
  mount -t tmpfs tmpfs "$root/run"
  # The checkout, the build tree and this scratch directory are not there.
  for hidden in "$src" "$out" "$scratch"; do
    if [ -d "$root$hidden" ]; then mount -t tmpfs -o ro tmpfs "$root$hidden"; fi
  done
  mount -t tmpfs tmpfs "$root/mnt"
  mkdir "$root/mnt/packages"
  cp "$out"/*.deb "$root/mnt/packages/"
  cp "$src/tests/package/hold.c" "$scratch/inside.sh" "$root/mnt/"
  chroot "$root" /mnt/inside.sh "$version" "$multiarch"
' package-test "$scratch" "$(realpath "$src")" "$(realpath "$out")" "$version" "$multiarch" || status=$?
[ "$status" = 0 ] || fail "$status check(s) failed in the installed system"

# What the packages' life left on the system: files the overlay's upper layer holds that the
# machine does not have. Allowed: dpkg's and man-db's own records, and what Debian keeps on
# purpose (the system user in /etc/passwd and friends: policy keeps users of purged packages).
left=$(cd "$scratch/upper" && find . -mindepth 1 \( -type f -o -type l -o -type c \) -printf '%P\n' |
  grep -vE '^(var/lib/dpkg/|var/log/|var/cache/(man|debconf|ldconfig)/|etc/(passwd|group|shadow|gshadow)-?$|etc/ld\.so\.cache$)' |
  while read -r f; do
    if [ -c "$scratch/upper/$f" ]; then echo "$f (removed from the machine)"; elif [ ! -e "/$f" ]; then echo "$f"; fi
  done)
[ -z "$left" ] || fail "left behind after the purge: $left"
(cd "$scratch/upper" && find . -mindepth 1 -type d -printf '%P\n') | while read -r d; do
  [ -e "/$d" ] || echo "$d"
done >"$scratch/dirs"
[ ! -s "$scratch/dirs" ] || fail "directories left behind after the purge: $(tr '\n' ' ' <"$scratch/dirs")"

[ "$failures" = 0 ] && echo "package: all checks passed"
exit $((failures > 0))
