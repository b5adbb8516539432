#!/usr/bin/env bash
# The test command: builds everything (the executables too — the process-level tests start
# real `cohortd` and `cohort` processes) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
# C code (BoringSSL inside swift-crypto, our shims) is optimised even in this debug build: the key
# agreement tests verify tens of thousands of Ed25519 signatures, three times faster at -O2.
swift build --build-tests -Xcc -O2
swift test --skip-build "$@"
