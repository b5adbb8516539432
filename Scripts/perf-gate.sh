#!/usr/bin/env bash
# Throughput regression gate on figures that do not swing with the machine's load: valgrind's
# instruction count per message of the in-process message path (cohort-path-bench: three daemon
# cores wired in memory, 1 KiB and 64 KiB AGREED messages), against the committed baseline in
# Experiments/baselines/message-path.json. Fails when a size costs more than the baseline times
# (1 + tolerance). Instructions per message are the difference of a short and a long run, so
# start-up (forming the ring) does not count.
#   Scripts/perf-gate.sh              check
#   Scripts/perf-gate.sh --update     write the baseline from this build (Scripts/update-baseline.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=Experiments/baselines/message-path.json
swift build -c release --product cohort-path-bench >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind cannot read the release build's debug information: count on a copy without it.
strip -g -o "$work/bench" .build/release/cohort-path-bench
count() {  # size messages -> instructions of one run
  SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --callgrind-out-file="$work/out" \
    "$work/bench" --sizes "$1" --repeats 1 --messages "$2" 2>&1 | awk '/Collected/ { print $4 }'
}
results=()
for size in 1024 65536; do
  # The bench sends messages/20 at 64 KiB.
  short=2000; long=6000
  [ "$size" -ge 65536 ] && { short=20000; long=60000; }
  a=$(count "$size" "$short"); b=$(count "$size" "$long")
  sent=$(( size >= 65536 ? (long - short) / 20 : long - short ))
  results+=("$size=$(( (b - a) / sent ))")
done
python3 - "$BASELINE" "${1:-check}" "${results[@]}" <<'PY'
import json, subprocess, sys
path, mode, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
measured = {size: int(value) for size, value in (pair.split("=") for pair in pairs)}
if mode == "--update":
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    json.dump({"instructions_per_message": measured, "tolerance": 0.02, "revision": revision,
               "how": "Scripts/perf-gate.sh: valgrind callgrind of cohort-path-bench, difference of two runs"},
              open(path, "w"), indent=2)
    print("baseline written:", measured)
    sys.exit(0)
baseline = json.load(open(path))
tolerance, failed = baseline["tolerance"], False
for size, value in measured.items():
    base = baseline["instructions_per_message"][size]
    ratio = value / base
    verdict = "ok" if ratio <= 1 + tolerance else "REGRESSION"
    failed |= verdict != "ok"
    print(f"message path, {size} B: {value} instructions per message, baseline {base} ({ratio - 1:+.1%}): {verdict}")
if failed:
    print(f"more than {tolerance:.0%} above the baseline: find the change that costs it, or update the baseline on purpose with Scripts/update-baseline.sh")
sys.exit(1 if failed else 0)
PY
