#!/usr/bin/env bash
# Runs every test, as CI does:
#   1. installs the dependencies (scripts/install-deps.sh),
#   2. builds build/ (optimised), build-asan/ (AddressSanitizer +
#      UndefinedBehaviorSanitizer, -DKINDLING_SANITIZE=ON) and build-tsan/
#      (ThreadSanitizer, the engine, db, reconcile and http tests only),
#   3. runs ctest in the first two and the TSan test binaries, printing the
#      output of failing tests.
# The sanitizer run leaves out the tests named *Slow* (the SIGKILL loops of
# tests/cli, which only repeat under ASan what the first run checked) and
# *Drill* (the control-plane restore drills of tests/service, which drive
# pgBackRest and PostgreSQL more than kindling's code, and the canary guest
# drills of tests/runtime, which boot microVMs whose static guest binary is not
# built with sanitizers); every other test, all
# unit tests included, runs in both. Exits non-zero if any
# build or test fails.
#
# Environment: JOBS (default: the core count), SKIP_ASAN=1 to run only build/,
# BUILD_DIR / ASAN_BUILD_DIR to use other build directories.
#
# The ThreadSanitizer step (KINDLING_TSAN=0 skips it) builds build-tsan/
# (-DKINDLING_SANITIZE=thread; TSAN_BUILD_DIR to use another directory) with
# only the engine, db, reconcile and http test binaries, the layers where
# threads meet (http: the API's connection loop), and runs those binaries
# (tests whose names end in Slow or Drill left out, as under ASan; a name that only contains the word, such as
# StoreProviderTest.ASlowOpenBlocks..., still runs). See tests/tsan.supp for
# what is suppressed and why.
set -euo pipefail
cd "$(dirname "$0")/.."

jobs="${JOBS:-$(nproc)}"
export JOBS="$jobs"
build_dir="${BUILD_DIR:-build}"
asan_build_dir="${ASAN_BUILD_DIR:-build-asan}"
tsan_build_dir="${TSAN_BUILD_DIR:-build-tsan}"
tsan_targets="engine_tests db_tests reconcile_tests http_tests"

scripts/install-deps.sh

echo "==> $build_dir/ (RelWithDebInfo)"
BUILD_DIR="$build_dir" scripts/build.sh
if [ "${SKIP_ASAN:-0}" != 1 ]; then
  echo "==> $asan_build_dir/ (ASan + UBSan)"
  BUILD_DIR="$asan_build_dir" scripts/build.sh -DKINDLING_SANITIZE=ON -DKINDLING_BUILD_BENCH=OFF
fi
if [ "${KINDLING_TSAN:-1}" = 1 ]; then
  echo "==> $tsan_build_dir/ (TSan: $tsan_targets)"
  BUILD_DIR="$tsan_build_dir" TARGETS="$tsan_targets" scripts/build.sh \
    -DKINDLING_SANITIZE=thread -DKINDLING_BUILD_BENCH=OFF
fi

# Sanitizers: fail on the first report, with a stack trace; children (the CLI
# tests run the kindling binary) inherit these.
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1}"
# Leaks inside libpq/libpqxx on broken connections are suppressed (tests/lsan.supp).
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$PWD/tests/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

status=0
echo "==> ctest in $build_dir/"
if ! (cd "$build_dir" && ctest --output-on-failure --no-tests=error --parallel "$jobs"); then
  status=1
fi
if [ "${SKIP_ASAN:-0}" != 1 ]; then
  # Names ending in Slow or Drill, and the *DrillTest suites (they boot VMs):
  # not under the sanitizers. A name with "Slow" inside (ASlowOpen...) runs.
  echo "==> ctest in $asan_build_dir/ (without the Slow and Drill tests)"
  if ! (cd "$asan_build_dir" && ctest --output-on-failure --no-tests=error --parallel "$jobs" \
          --exclude-regex 'Slow$|Drill$|DrillTest[.]'); then
    status=1
  fi
fi

if [ "${KINDLING_TSAN:-1}" = 1 ]; then
  echo "==> $tsan_build_dir/ test binaries (TSan, without *Slow and *Drill tests)"
  # The binaries, not ctest: only these targets were built, and one process
  # per binary is much faster under TSan than one per test.
  for target in $tsan_targets; do
    if ! TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}" \
        "$tsan_build_dir/tests/$target" --gtest_filter='-*Slow:*Drill' --gtest_brief=1; then
      echo "==> TSan: $target failed" >&2
      status=1
    fi
  done
fi

# The failures again, at the end where a truncated log still shows them:
# each failed test's assertion messages (from ctest's LastTest.log).
failure_digest() {
  local dir="$1" log="$1/Testing/Temporary/LastTest.log" failed="$1/Testing/Temporary/LastTestsFailed.log"
  [ -s "$failed" ] && [ -f "$log" ] || return 0
  echo "==> failures in $dir/:"
  cut -d: -f2- "$failed" | while read -r name; do
    echo "--- $name"
    awk -v name="$name" '
      $0 ~ ("Testing: " name "$") { inside = 1; next }
      inside && index($0, "\"" name "\" end time:") == 1 { exit }
      inside && /Failure$/ { more = 6 }
      inside && (more-- > 0 || /^\[  FAILED|ERROR|Sanitizer|runtime error/) { print; shown++ }
      inside && shown > 60 { exit }' "$log"
  done
}

if [ "$status" -eq 0 ]; then
  echo "==> all tests passed"
else
  failure_digest "$build_dir"
  [ "${SKIP_ASAN:-0}" = 1 ] || failure_digest "$asan_build_dir"
  echo "==> TESTS FAILED" >&2
fi
exit "$status"
