#!/usr/bin/env bash
# Throughput of one daemon: one `cohort flood` sender and one listener on it (see
# flood-cluster.sh, which this runs with DAEMONS=1). Writes Results/flood-one-daemon/.
#
#   Experiments/flood-one-daemon.sh                  # sizes 100 1024 8192 65536, 5 runs each
#   SIZES="1024" REPEATS=3 Experiments/flood-one-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DAEMONS=1 OUT=Results/flood-one-daemon exec Experiments/flood-cluster.sh
