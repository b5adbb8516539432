#!/usr/bin/env bash
# The test command: builds everything (the executables too — the process-level tests start
# real `cohortd` and `cohort` processes), runs the whole test suite, then the throughput
# regression gate (Scripts/perf-gate.sh: about 3 minutes). Arguments go to `swift test`
# (e.g. `--filter ClusterTests`); a run with arguments is a partial one and skips the gate.
set -euo pipefail
cd "$(dirname "$0")/.."
# C code (BoringSSL inside swift-crypto, our shims) is optimised even in this debug build: the key
# agreement tests verify tens of thousands of Ed25519 signatures, three times faster at -O2.
swift build --build-tests -Xcc -O2
swift test --skip-build "$@"
if [ "$#" -eq 0 ]; then
  Scripts/perf-gate.sh
fi
