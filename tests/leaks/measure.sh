#!/bin/sh
# Leak-detection quality figures for the README, measured by hand:
#   LEAK-QUALITY detection_delay_checks median=M max=X runs=R false_positives=F checks=K
# R runs of the planted leak (tests/leaks/programs/service.cc), each measured in check intervals
# from the leak becoming significant to register_session first appearing in check_leaks; F
# indicators counted by the background checks of two leak-free `steady` processes over K checks.
# See tests/leaks/quality_test.cc and planted.h for the method.
#
# Usage: tests/leaks/measure.sh [builddir] [runs] [steady_seconds]
#   defaults: build-leaks, 10 runs, 60 s of steady checks (about 65 s on 2 cores)
set -eu
build=${1:-build-leaks}
runs=${2:-10}
steady=${3:-60}
# Only what the measurement needs, so an unrelated broken target does not stop it.
meson compile -C "$build" rsrmem service steady leaks-quality >/dev/null
LEAK_QUALITY_RUNS=$runs LEAK_QUALITY_STEADY_S=$steady \
  meson test -C "$build" --no-rebuild --suite leaks leaks-quality --timeout-multiplier 10 -v 2>&1 |
  grep -E '^(LEAK-QUALITY|\[ run|\[ steady|\[  (FAILED|PASSED) )' || true
