#!/bin/sh
# Leak-detection figures for the README, measured by hand:
#   1. the simulation's tables (time to first naming by leak rate and sampling interval, naming
#      over 24 simulated hours, false alarms over 10,000 leak-free checks): leaks-simulation;
#   2. four programs of known memory life under the preload for 5 minutes at 5 s checks and
#      default sampling: leaks-lifecycle;
#   3. what an exit-time checker says of the same programs: each run for a minute under
#      heaptrack, then stopped as a service is (its containers let go of what they hold), and
#      heaptrack_print's "total memory leaked";
#   4. LEAK-QUALITY detection_delay_checks median=M max=X runs=R false_positives=F checks=K:
#      R runs of the planted leak (programs/service.cc) measured in check intervals from the leak
#      becoming significant to register_session first appearing in check_leaks; F indicators
#      counted by the background checks of two leak-free `steady` processes over K checks
#      (quality_test.cc and planted.h say how).
#
# Usage: tests/leaks/measure.sh [builddir] [runs] [steady_seconds] [lifecycle_seconds]
#   defaults: build, 10 runs, 60 s of steady checks, 300 s of lifecycle (about 8 minutes)
set -eu
build=${1:-build}
runs=${2:-10}
steady=${3:-60}
life=${4:-300}
meson compile -C "$build" >/dev/null

echo "== simulation"
RSR_SIM_REPORT=1 "$build/tests/leaks/leaks-simulation" | grep -E '^(\||seed|leak-free|slow|checks every)'

echo "== programs under the preload, ${life} s"
RSR_LIFECYCLE_SECONDS=$life RSR_LIFECYCLE_REPORT=1 \
  meson test -C "$build" --no-rebuild leaks-lifecycle --timeout-multiplier 10 -v 2>&1 |
  grep -E '^\[ lifecycle|\[  (FAILED|PASSED) ' || true

echo "== heaptrack at exit, 60 s each"
if command -v heaptrack >/dev/null 2>&1; then
  out=$(mktemp -d)
  for mode in slow fast sawtooth cache; do
    (sleep 60 | heaptrack -o "$out/$mode" "$build/tests/leaks/lifecycle" "$mode" >/dev/null 2>&1) &
  done
  wait
  for mode in slow fast sawtooth cache; do
    leaked=$(heaptrack_print -f "$out/$mode".* 2>/dev/null | grep -E '^total memory leaked' || echo "?")
    echo "$mode: $leaked"
  done
  rm -rf "$out"
else
  echo "heaptrack not installed"
fi

echo "== planted leak and steady service"
LEAK_QUALITY_RUNS=$runs LEAK_QUALITY_STEADY_S=$steady \
  meson test -C "$build" --no-rebuild --suite leaks leaks-quality --timeout-multiplier 10 -v 2>&1 |
  grep -E '^(LEAK-QUALITY|\[ run|\[ steady|\[  (FAILED|PASSED) )' || true
