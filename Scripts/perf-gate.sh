#!/usr/bin/env bash
# Throughput regression gate, run by Scripts/test.sh after the tests (so by CI). Two checks of
# the in-process message path (cohort-path-bench: three daemon cores wired in memory, 1 KiB and
# 64 KiB AGREED messages, sender on d1, a listener on d2 and on d3) against the committed
# baseline Experiments/baselines/message-path.json:
#  1. instructions per message, counted by valgrind (callgrind): they do not swing with the
#     machine's load, so the tolerance is tight (2 %). Counted as the difference of a short and a
#     long run, so start-up (forming the ring, the daemons' key agreement) does not count. Counted
#     for `plain` (keys "1024", "65536") and for the sealed path of `integrated-vs`
#     ("integrated-vs/1024", ...: VS clients that seal and open every message, the daemons
#     running its engine).
#  2. a wall-clock ratio measured within one run: time per message divided by the time of a fixed
#     reference workload run in between (cohort-path-bench --ratio); load slows both alike, so
#     the ratio holds still to about 10 % on this shared machine; the tolerance is wide (50 %)
#     and catches what instruction counts miss (cache misses, syscalls, waiting).
#   Scripts/perf-gate.sh              check (exit 1 on a regression)
#   Scripts/perf-gate.sh --update     write the baseline from this build (Scripts/update-baseline.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
BASELINE=Experiments/baselines/message-path.json
swift build -c release --product cohort-path-bench >/dev/null
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# valgrind cannot read the release build's debug information: count on a copy without it.
strip -g -o "$work/bench" .build/release/cohort-path-bench
count() {  # architecture size messages -> instructions of one run
  SWIFT_DETERMINISTIC_HASHING=1 valgrind --tool=callgrind --callgrind-out-file="$work/out" \
    "$work/bench" --architecture "$1" --sizes "$2" --repeats 1 --messages "$3" 2>&1 | awk '/Collected/ { print $4 }'
}
results=()
for architecture in plain integrated-vs; do
  prefix=""
  [ "$architecture" = plain ] || prefix="$architecture/"
  for size in 1024 65536; do
    # The bench sends messages/20 at 64 KiB.
    short=2000; long=6000
    [ "$size" -ge 65536 ] && { short=20000; long=60000; }
    a=$(count "$architecture" "$size" "$short"); b=$(count "$architecture" "$size" "$long")
    sent=$(( size >= 65536 ? (long - short) / 20 : long - short ))
    results+=("instructions:$prefix$size=$(( (b - a) / sent ))")
  done
done
while IFS=, read -r size _ ratio; do
  [ "$size" = size ] || results+=("ratio:$size=$ratio")
done < <("$work/bench" --sizes 1024,65536 --messages 60000 --repeats 5 --ratio)
python3 - "$BASELINE" "${1:-check}" "${results[@]}" <<'PY'
import json, subprocess, sys
path, mode, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
measured = {"instructions": {}, "ratio": {}}
for pair in pairs:
    kind_size, value = pair.split("=")
    kind, size = kind_size.split(":")
    measured[kind][size] = int(value) if kind == "instructions" else float(value)
if mode == "--update":
    revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    json.dump({"instructions_per_message": measured["instructions"], "tolerance": 0.02,
               "wallclock_ratio": measured["ratio"], "wallclock_tolerance": 0.5, "revision": revision,
               "how": "Scripts/perf-gate.sh: valgrind callgrind of cohort-path-bench (difference of two runs); "
                      "cohort-path-bench --ratio (time per message / reference workload, median of 5)"},
              open(path, "w"), indent=2)
    print("baseline written:", measured)
    sys.exit(0)
baseline = json.load(open(path))
failed = False
checks = [("instructions per message", measured["instructions"], baseline["instructions_per_message"], baseline["tolerance"]),
          ("wall-clock ratio", measured["ratio"], baseline["wallclock_ratio"], baseline["wallclock_tolerance"])]
for what, values, base_values, tolerance in checks:
    for size, value in values.items():
        if size not in base_values:
            failed = True
            print(f"message path, {size} B, {what}: {value:.6g}, no baseline: write one with Scripts/update-baseline.sh")
            continue
        base = base_values[size]
        change = value / base - 1
        verdict = "ok" if change <= tolerance else "REGRESSION"
        failed |= verdict != "ok"
        print(f"message path, {size} B, {what}: {value:.6g}, baseline {base:.6g} ({change:+.1%}, limit +{tolerance:.0%}): {verdict}")
if failed:
    print("slower than the baseline allows: find the change that costs it, or update the baseline on purpose with Scripts/update-baseline.sh")
sys.exit(1 if failed else 0)
PY
