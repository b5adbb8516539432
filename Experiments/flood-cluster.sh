#!/usr/bin/env bash
# Throughput of a local server group: DAEMONS `cohortd` processes (default 3), one `cohort flood`
# sender on d1 and one `cohort flood --receive-only` listener on each other daemon (on d1 when
# DAEMONS=1), all over TCP, AGREED, for several message sizes, REPEATS runs each, in two sender
# modes: `self-paced` (spflooder's default: the sender also receives its own messages and keeps
# at most 4 MiB in flight) and `write-only` (spflooder's -wo: paced by the daemons' backpressure
# only). The figure is the slowest listener's receive rate.
# Writes $OUT/throughput.csv and meta.json (revision, machine, parameters, medians).
#
#   Experiments/flood-cluster.sh                            # 3 daemons, sizes 100 1024 8192 65536, 5 runs
#   DAEMONS=3 SIZES="1024 65536" REPEATS=3 MODES=write-only Experiments/flood-cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DAEMONS=${DAEMONS:-3}
SIZES=${SIZES:-"100 1024 8192 65536"}
REPEATS=${REPEATS:-5}
MODES=${MODES:-"self-paced write-only"}
OUT=${OUT:-Results/flood-$DAEMONS-daemons}
BIN=${BIN:-.build/release}  # another build to compare: BIN=/path/to/dir

swift build -c release --product cohortd >/dev/null
swift build -c release --product cohort >/dev/null
mkdir -p "$OUT"
WORK=$(mktemp -d)
PORT=$(python3 - "$DAEMONS" <<'PY'
import socket, sys
n = 2 * int(sys.argv[1])
for _ in range(100):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); base = s.getsockname()[1]; s.close()
    try:
        held = []
        for p in range(base, base + n):
            t = socket.socket(); t.bind(("127.0.0.1", p)); held.append(t)
        for t in held: t.close()
        print(base); break
    except OSError:
        for t in held: t.close()
PY
)
"$BIN/cohort" cluster --daemons "$DAEMONS" --base-port "$PORT" --dir "$WORK" > "$WORK/cluster.out" 2>&1 &
CLUSTER=$!
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 300); do grep -q "cluster running" "$WORK/cluster.out" && break; sleep 0.1; done
grep -q "cluster running" "$WORK/cluster.out" || { cat "$WORK/cluster.out"; exit 1; }
SENDER_DAEMON="127.0.0.1:$PORT"
LISTENERS=()
if [ "$DAEMONS" -eq 1 ]; then LISTENERS=(1); else for i in $(seq 2 "$DAEMONS"); do LISTENERS+=("$i"); done; fi

count_for() {  # enough messages for a few seconds per run
  if [ "$1" -le 1024 ]; then echo 400000; elif [ "$1" -le 8192 ]; then echo 100000; else echo 20000; fi
}

echo "mode,size,run,messages,sender_msgs_per_second,sender_mb_per_second,listener_msgs_per_second,listener_mb_per_second,loadavg" > "$OUT/throughput.csv"
for mode in $MODES; do
for size in $SIZES; do
  count=$(count_for "$size")
  flag=""; [ "$mode" = "write-only" ] && flag="--write-only"
  for run in $(seq "$REPEATS"); do
    PIDS=()
    for i in "${LISTENERS[@]}"; do
      "$BIN/cohort" flood --daemon "127.0.0.1:$((PORT + 2 * (i - 1)))" --name "listener$i" --group flood --receive-only \
        --count "$count" --size "$size" --json > "$WORK/listener$i.json" &
      PIDS+=($!)
    done
    # Start sending once every listener is in the group (views reach every daemon).
    for _ in $(seq 200); do
      status=$("$BIN/cohort" status --daemon "$SENDER_DAEMON" --json)
      ready=1; for i in "${LISTENERS[@]}"; do echo "$status" | grep -q "\"#listener$i#d$i\"" || ready=0; done
      [ "$ready" = 1 ] && break; sleep 0.05
    done
    "$BIN/cohort" flood --daemon "$SENDER_DAEMON" --name sender --group flood $flag --count "$count" --size "$size" --json > "$WORK/sender.json"
    for pid in "${PIDS[@]}"; do wait "$pid"; done
    python3 - "$mode" "$size" "$run" "$WORK/sender.json" "$WORK"/listener*.json >> "$OUT/throughput.csv" <<'PY'
import json, sys
mode, size, run, sender = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4]))
listeners = [json.load(open(path)) for path in sys.argv[5:]]
slowest = min(listeners, key=lambda l: l["msgs_per_second"])
load = open("/proc/loadavg").read().split()[0]
print(f"{mode},{size},{run},{sender['messages']},{sender['msgs_per_second']:.0f},{sender['mb_per_second']:.1f},"
      f"{slowest['msgs_per_second']:.0f},{slowest['mb_per_second']:.1f},{load}")
PY
    rm -f "$WORK"/listener*.json
    tail -1 "$OUT/throughput.csv"
  done
done
done

python3 - "$OUT" "$SIZES" "$REPEATS" "$MODES" "$DAEMONS" <<'PY'
import csv, json, os, platform, statistics, subprocess, sys, datetime
out, sizes, repeats, modes, daemons = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4].split(), int(sys.argv[5])
rows = list(csv.DictReader(open(os.path.join(out, "throughput.csv"))))
medians = {}
for mode in modes:
    for size in sizes:
        runs = [r for r in rows if r["size"] == size and r["mode"] == mode]
        medians[f"{mode}/{size}"] = {k: statistics.median(float(r[k]) for r in runs)
                                     for k in ("sender_msgs_per_second", "sender_mb_per_second", "listener_msgs_per_second", "listener_mb_per_second")}
revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
# The experiment's own output under Results/ does not make the build dirty.
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!Results"],
                       capture_output=True, text=True).stdout.strip() != ""
meta = {
    "experiment": os.path.basename(out.rstrip("/")), "revision": revision + ("-dirty" if dirty else ""),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"system": platform.platform(), "cores": os.cpu_count(), "loadavg_after": open("/proc/loadavg").read().split()[:3]},
    "parameters": {"daemons": daemons, "senders": 1, "listeners": max(1, daemons - 1), "sender_daemon": "d1",
                   "service": "agreed", "transport": "tcp", "sizes": [int(s) for s in sizes], "repeats": repeats,
                   "modes": modes, "window_bytes": 4 * 1024 * 1024, "figure": "slowest listener"},
    "medians": medians,
}
json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=2)
for key, m in medians.items():
    print(f"{key}: median sender {m['sender_msgs_per_second']:.0f} msg/s {m['sender_mb_per_second']:.1f} MB/s; "
          f"slowest listener {m['listener_msgs_per_second']:.0f} msg/s {m['listener_mb_per_second']:.1f} MB/s")
PY
