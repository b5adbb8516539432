#!/usr/bin/env bash
# The test command: builds everything (the executables too — the process-level tests start
# real `cohortd` and `cohort` processes) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build --build-tests
swift test --skip-build "$@"
