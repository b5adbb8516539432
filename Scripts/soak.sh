#!/usr/bin/env bash
# Soak: runs the deterministic simulator over many seeds in a release build, on every core, in
# chunks of CHUNK seeds (default 1000), and can be stopped and resumed (across sessions):
#   Scripts/soak.sh [SEEDS [FIRST_SEED]]      (defaults: 100000 seeds from 1)
#   SEMANTICS=vs Scripts/soak.sh ...          VS clients (the flush layer), recorded apart under
#                                             Results/simulation-soak-vs/
#   ARCHITECTURE=integrated-vs Scripts/soak.sh  the security architecture's real engines and
#                                             hooks with VS clients, under
#                                             Results/simulation-soak-integrated-vs/
#
# Every finished chunk is appended to Results/simulation-soak/chunks.csv with the revision of the
# simulated code: the last commit that touched what `cohort simulate` runs (the pure cores in
# CohortCore but `DaemonCore`, which the simulator does not drive — it drives `GroupService`
# directly —, the simulator and checkers in CohortSimulation, the CohortCrypto kit and the CohortSecurity architectures it links and
# its C shims, and the simulate command). Commits of docs, figures, the daemon core and shell, the
# client library or experiments do not restart a soak; any change to the simulated code does.
#
# The binary of each revision soaked is kept in .build/soak/REVISION/cohort, so a soak of an
# older revision can be finished after the code moved on: REVISION=<full hash> Scripts/soak.sh. A chunk already recorded for that
# revision is skipped. The binary is copied before the run, so rebuilding meanwhile changes
# nothing. Failing seeds are printed with their replay commands (and kept in the chunk logs
# under Results/simulation-soak/failures/). At the end, Results/simulation-soak/summary.json
# totals every recorded chunk of the revision. Exit status 1 if any property broke.
# SUMMARY_ONLY=1 Scripts/soak.sh writes that summary alone (of a soak that was stopped), running
# nothing (with the same SEMANTICS, ARCHITECTURE and REVISION as the soak).
set -euo pipefail
cd "$(dirname "$0")/.."
seeds="${1:-100000}"
first="${2:-1}"
chunk="${CHUNK:-1000}"
semantics="${SEMANTICS:-evs}"
architecture="${ARCHITECTURE:-plain}"
case "$semantics" in
  evs) OUT=Results/simulation-soak ;;
  vs) OUT=Results/simulation-soak-vs ;;
  *) echo "SEMANTICS is evs or vs" >&2; exit 2 ;;
esac
if [ "$architecture" != plain ]; then
  semantics=vs
  OUT=Results/simulation-soak-$architecture
fi
simulated=(Sources/CohortCore ':(exclude)Sources/CohortCore/Daemon' Sources/CohortSimulation
           Sources/CohortCrypto Sources/COpenSSL Sources/CGMP Sources/CohortSecurity Sources/cohort/SimulateCommand.swift)
revision=${REVISION:-$(git log -1 --format=%H -- "${simulated[@]}")}
kept=.build/soak/$revision/cohort
status=0
if [ -z "${SUMMARY_ONLY:-}" ]; then
if [ -z "${REVISION:-}" ]; then
  if [ -n "$(git status --porcelain --untracked-files=no -- "${simulated[@]}")" ]; then
    echo "the simulated code has uncommitted changes: commit them first, so the soak is of a revision" >&2
    exit 2
  fi
  swift build -c release --product cohort
  mkdir -p "$(dirname "$kept")"
  cp .build/release/cohort "$kept"
elif [ ! -x "$kept" ]; then
  echo "no binary kept for revision $revision in $kept: check that revision out and soak it there" >&2
  exit 2
fi
mkdir -p "$OUT/failures"
binary=$(mktemp -d)/cohort
cp "$kept" "$binary"
[ -f "$OUT/chunks.csv" ] || echo "revision,first_seed,seeds,violations,seconds,finished" > "$OUT/chunks.csv"
start=$first
end=$((first + seeds - 1))
while [ "$start" -le "$end" ]; do
  count=$chunk
  [ $((start + count - 1)) -gt "$end" ] && count=$((end - start + 1))
  if grep -q "^$revision,$start,$count," "$OUT/chunks.csv"; then
    start=$((start + count))
    continue
  fi
  began=$(date +%s)
  log=$(mktemp)
  "$binary" simulate --semantics "$semantics" --architecture "$architecture" --seeds "$count" --seed "$start" > "$log" || true
  violations=$(tail -1 "$log" | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["violations"]))')
  grep FAILED "$log" || true
  if [ "$violations" != 0 ]; then
    cp "$log" "$OUT/failures/$revision-$start.log"
    status=1
  fi
  rm "$log"
  echo "$revision,$start,$count,$violations,$(( $(date +%s) - began )),$(date -u +%FT%TZ)" >> "$OUT/chunks.csv"
  echo "seeds $start-$((start + count - 1)): $violations violations"
  start=$((start + count))
done
fi
python3 - "$OUT" "$revision" "$semantics" "$architecture" <<'PY'
import csv, json, os, platform, sys, datetime
out, revision, semantics, architecture = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
rows = [r for r in csv.DictReader(open(os.path.join(out, "chunks.csv"))) if r["revision"] == revision]
seeds = sorted((int(r["first_seed"]), int(r["seeds"])) for r in rows)
covered, ranges = 0, []
for first, count in seeds:
    if ranges and first <= ranges[-1][1] + 1:
        ranges[-1][1] = max(ranges[-1][1], first + count - 1)
    else:
        ranges.append([first, first + count - 1])
covered = sum(b - a + 1 for a, b in ranges)
summary = {"experiment": "simulation-soak", "semantics": semantics, "architecture": architecture, "revision": revision,
           "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
           "machine": {"system": platform.platform(), "cores": os.cpu_count()},
           "seeds": covered, "seed_ranges": ranges,
           "violations": sum(int(r["violations"]) for r in rows),
           "seconds": sum(int(r["seconds"]) for r in rows),
           "command": f"cohort simulate --semantics {semantics} --architecture {architecture} --seeds CHUNK --seed S, release build of the revision"}
json.dump(summary, open(os.path.join(out, "summary.json"), "w"), indent=2)
print(json.dumps(summary))
PY
exit "$status"
