#!/usr/bin/env bash
# Soak: runs the deterministic simulator over many seeds in a release build, on every core.
#   Scripts/soak.sh [SEEDS [FIRST_SEED]]      (defaults: 100000 seeds from 1)
# Prints failing seeds with their replay commands; the last line is the JSON summary. Exit
# status 1 if any property broke.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-100000}"
first="${2:-1}"
swift build -c release --product cohort
exec .build/release/cohort simulate --seeds "$seeds" --seed "$first"
