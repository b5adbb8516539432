#!/usr/bin/env bash
# Soak: runs the deterministic simulator over many seeds in a release build, on every core.
#   Scripts/soak.sh [SEEDS [FIRST_SEED]]      (defaults: 100000 seeds from 1)
# Prints failing seeds with their replay commands; the last line is the JSON summary, also kept
# in Results/simulation-soak/summary.json with meta.json (revision, machine, seeds, wall time).
# Exit status 1 if any property broke.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-100000}"
first="${2:-1}"
OUT=Results/simulation-soak
swift build -c release --product cohort
mkdir -p "$OUT"
start=$(date +%s)
status=0
.build/release/cohort simulate --seeds "$seeds" --seed "$first" | tee "$OUT/run.log" || status=$?
tail -1 "$OUT/run.log" > "$OUT/summary.json"
rm "$OUT/run.log"
python3 - "$OUT" "$seeds" "$first" "$(( $(date +%s) - start ))" <<'PY'
import json, os, platform, subprocess, sys, datetime
out, seeds, first, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!Results"],
                       capture_output=True, text=True).stdout.strip() != ""
json.dump({"experiment": "simulation-soak", "revision": revision + ("-dirty" if dirty else ""),
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"system": platform.platform(), "cores": os.cpu_count()},
           "seeds": {"first": first, "count": seeds}, "wall_seconds": seconds},
          open(os.path.join(out, "meta.json"), "w"), indent=2)
PY
exit "$status"
