#!/usr/bin/env bash
# The main job: build Cohort (release) and run `cohort demo` — a local cluster on embedded
# defaults, clients joining a group, an ordered exchange, its check and its throughput.
# Extra arguments go to `cohort demo` (e.g. --clients 8 --messages 5000 --size 1024).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product cohortd
swift build -c release --product cohort
exec .build/release/cohort demo "$@"
