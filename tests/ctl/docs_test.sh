#!/usr/bin/env bash
# The generated manual pages and completions (ctl/doc): they render without warnings, name every
# command and option of rsrmemctl's --help and every setting of scripts/env.template, and the
# completions parse and complete in scripted shells (bash's own, zsh with its completion
# builtins replaced by functions that print what they are given); then `meson install` puts them, the
# pkg-config file and the header where a C build finds them, and the dashboards and alert rules
# under share/rsrmem/grafana, the library in libdir/rsrmem where the installed rsrmemctl finds it.
#   docs_test.sh RSRMEMCTL DOC_DIR ENV_TEMPLATE BUILD_DIR
set -euo pipefail
ctl=$1 doc=$2 template=$3 build=$4
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

for page in "$doc/rsrmemctl.1" "$doc/librsrmem.7"; do
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=100 man --warnings -l "$page" 2>&1 >/dev/null || true)
  [ -z "$warnings" ] || fail "$page renders with warnings: $warnings"
done
text=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$doc/rsrmemctl.1" 2>/dev/null)
commands=$("$ctl" --help | sed -n '/^Subcommands:/,/^$/p' | awk 'NF && $1 != "Subcommands:" {print $1}')
[ "$(echo "$commands" | wc -l)" -ge 20 ] || fail "too few commands in --help: $commands"
for c in $commands; do
  grep -q "^   $c\$" <<<"$text" || fail "rsrmemctl.1 has no section for $c"
  # The command's own section: from its heading to the next one.
  section=$(awk -v c="   $c" '$0 == c {on = 1; next} on && /^   [a-z]/ {exit} on' <<<"$text")
  for flag in $("$ctl" "$c" --help | grep -oE '^  -{1,2}[a-z][-a-z]*(,--[a-z][-a-z]*)?' | tr ',' ' '); do
    [ "$flag" = -h ] || [ "$flag" = --help ] || grep -qE -- "(^|[ ,])$flag( |,|\$)" <<<"$section" ||
      fail "rsrmemctl.1: the section of $c lacks $flag"
  done
done
grep -q "EXIT STATUS" <<<"$text" || fail "rsrmemctl.1 has no EXIT STATUS"
lib=$(LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$doc/librsrmem.7" 2>/dev/null)
while IFS='=' read -r key default; do
  grep -q "^       $key\$" <<<"$lib" || fail "librsrmem.7 lacks $key"
  [ -z "$default" ] || grep -qF "Default: $default." <<<"$lib" || fail "librsrmem.7 lacks the default of $key ($default)"
done < <(grep -E '^RSR_[A-Z_]+=' "$template")
for f in rsrmem_present rsrmem_cache_hit rsrmem_cache_miss rsrmem_scope_begin rsrmem_memory_headers; do
  grep -q "$f" <<<"$lib" || fail "librsrmem.7 lacks $f"
done

# bash: parses, and completes commands and a command's options.
bash -n "$doc/rsrmemctl" || fail "bash completion does not parse"
complete_bash() {
  bash -c 'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _rsrmemctl; printf "%s\n" "${COMPREPLY[@]}" | sort | xargs' _ "$doc/rsrmemctl" "$@"
}
[ "$(complete_bash rsrmemctl sta)" = "start-profiling stats status" ] || fail "bash: 'sta' gave '$(complete_bash rsrmemctl sta)'"
[ "$(complete_bash rsrmemctl --pid 1 diff --a)" = "--as" ] || fail "bash: 'diff --a' gave '$(complete_bash rsrmemctl --pid 1 diff --a)'"
[ "$(complete_bash rsrmemctl --for)" = "--format" ] || fail "bash: '--for' gave '$(complete_bash rsrmemctl --for)'"
# zsh: parses, and completes in a scripted zsh whose completion builtins print what they get.
zsh -n "$doc/_rsrmemctl" || fail "zsh completion does not parse"
complete_zsh() {
  zsh -fc '
    _describe() { print -rl -- "${(@)${(P)2}%%:*}"; }
    compadd() { shift; print -rl -- "$@"; }
    _arguments() { print -r -- "words[1]=$words[1] CURRENT=$CURRENT"; print -rl -- "$@"; }
    _files() { print -r -- "(files)"; }
    file=$1; shift; words=("$@"); CURRENT=$#
    source "$file"' _ "$doc/_rsrmemctl" "$@"
}
z=$(complete_zsh rsrmemctl sta)
for c in $commands; do grep -qx "$c" <<<"$z" || fail "zsh: no $c among the commands offered"; done
z=$(complete_zsh rsrmemctl --pid 1 diff --a)
grep -qx "words\[1\]=diff CURRENT=2" <<<"$z" || fail "zsh: diff's arguments not given as their own command line: $z"
grep -qx -- "--as:value: " <<<"$z" || fail "zsh: diff's --as not offered as taking a value: $z"
grep -qx -- "--format" <<<"$(complete_zsh rsrmemctl --f)" || fail "zsh: --format not offered"

# Installed: man pages, completions, header and pkg-config file where tools look for them.
dest=$(mktemp -d)
trap 'rm -rf "$dest"' EXIT
meson install -C "$build" --destdir "$dest" --no-rebuild --quiet >/dev/null
option() { meson introspect "$build" --buildoptions | python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"]==sys.argv[1]][0])' "$1"; }
prefix=$(option prefix) libdir=$(option libdir) sysconfdir=$(option sysconfdir)
for f in share/man/man1/rsrmemctl.1 share/man/man7/librsrmem.7 share/bash-completion/completions/rsrmemctl \
         share/zsh/vendor-completions/_rsrmemctl include/rsrmem.h share/pkgconfig/rsrmem.pc \
         share/rsrmem/grafana/rsr-memory-overview.json share/rsrmem/grafana/rsr-memory-details.json \
         share/rsrmem/grafana/alerts.yml share/rsrmem/grafana/prometheus.yml \
         share/rsrmem/grafana/provisioning/dashboards/rsrmem.yaml share/rsrmem/systemd/rsrmem-preload.conf \
         lib/systemd/system/rsrmem-exporter.service lib/sysusers.d/rsrmem.conf lib/tmpfiles.d/rsrmem.conf \
         "$libdir/rsrmem/librsrmem.so" "$libdir/rsrmem/librsrmem-heap.so" bin/rsrmemctl; do
  [ -f "$dest$prefix/$f" ] || fail "not installed: $prefix/$f"
done
case $sysconfdir in /*) etc=$sysconfdir ;; *) etc=$prefix/$sysconfdir ;; esac
[ -f "$dest$etc/default/rsrmem-exporter" ] || fail "not installed: $etc/default/rsrmem-exporter"
# Nothing on the loader's search path: the library is preloaded by its path only.
found=$(find "$dest" -name 'librsrmem*.so' -not -path "*/$libdir/rsrmem/*")
[ -z "$found" ] || fail "a library outside $libdir/rsrmem: $found"
# The installed rsrmemctl finds the installed library from its own place, and the page names it.
preloaded=$("$dest$prefix/bin/rsrmemctl" run -- sh -c 'echo "$LD_PRELOAD"; grep -c "/rsrmem/librsrmem.so" /proc/$$/maps') ||
  fail "the installed rsrmemctl run failed: $preloaded"
[ "$(head -n 1 <<<"$preloaded")" = "$dest$prefix/$libdir/rsrmem/librsrmem.so" ] ||
  fail "the installed rsrmemctl preloads $(head -n 1 <<<"$preloaded"), not the installed library"
[ "$(tail -n 1 <<<"$preloaded")" -ge 1 ] || fail "the installed library is not mapped in the program run"
LC_ALL=C.UTF-8 MANWIDTH=200 man -l "$doc/librsrmem.7" 2>/dev/null | grep -q "LD_PRELOAD=$prefix/$libdir/rsrmem/librsrmem.so service" ||
  fail "librsrmem.7's synopsis does not give the installed library's path"
cflags=$(PKG_CONFIG_PATH=$dest$prefix/share/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags rsrmem)
printf '#include <rsrmem.h>\nint main(void) { return rsrmem_present(); }\n' > "$dest/api.c"
cc $cflags -o "$dest/api" "$dest/api.c" || fail "cc \$(pkg-config --cflags rsrmem) cannot build against rsrmem.h"
[ ! -x "$dest/api" ] || "$dest/api" || fail "rsrmem_present() is not 0 without the library"

[ "$failures" = 0 ] && echo "docs: all checks passed"
exit $((failures > 0))
