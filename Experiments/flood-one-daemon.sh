#!/usr/bin/env bash
# Throughput of one daemon: one `cohort flood` sender and one `cohort flood --receive-only`
# listener, both over TCP, AGREED, for several message sizes, REPEATS runs each, in two sender
# modes: `self-paced` (spflooder's default: the sender also receives its own messages and keeps
# at most 4 MiB in flight) and `write-only` (spflooder's -wo: paced by the daemon's
# backpressure only). The listener's receive rate is the figure.
# Writes Results/flood-one-daemon/throughput.csv and meta.json (revision, machine, parameters).
#
#   Experiments/flood-one-daemon.sh                  # sizes 100 1024 8192 65536, 5 runs each
#   SIZES="1024" REPEATS=3 Experiments/flood-one-daemon.sh
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-"100 1024 8192 65536"}
REPEATS=${REPEATS:-5}
MODES=${MODES:-"self-paced write-only"}
OUT=Results/flood-one-daemon
BIN=.build/release

swift build -c release --product cohortd >/dev/null
swift build -c release --product cohort >/dev/null
mkdir -p "$OUT"
WORK=$(mktemp -d)
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN/cohort" cluster --base-port "$PORT" --dir "$WORK" > "$WORK/cluster.out" 2>&1 &
CLUSTER=$!
trap 'kill $CLUSTER 2>/dev/null; wait $CLUSTER 2>/dev/null; rm -rf "$WORK"' EXIT
for _ in $(seq 100); do grep -q "cluster running" "$WORK/cluster.out" && break; sleep 0.1; done
DAEMON="127.0.0.1:$PORT"

count_for() {  # enough messages for a few seconds per run
  if [ "$1" -le 1024 ]; then echo 400000; elif [ "$1" -le 8192 ]; then echo 100000; else echo 20000; fi
}

echo "mode,size,run,messages,sender_msgs_per_second,sender_mb_per_second,listener_msgs_per_second,listener_mb_per_second,loadavg" > "$OUT/throughput.csv"
for mode in $MODES; do
for size in $SIZES; do
  count=$(count_for "$size")
  flag=""; [ "$mode" = "write-only" ] && flag="--write-only"
  for run in $(seq "$REPEATS"); do
    "$BIN/cohort" flood --daemon "$DAEMON" --name listener --group flood --receive-only \
      --count "$count" --size "$size" --json > "$WORK/listener.json" &
    LISTENER=$!
    # Start sending once the listener is in the group.
    for _ in $(seq 200); do
      "$BIN/cohort" status --daemon "$DAEMON" --json | grep -q '"#listener#d1"' && break; sleep 0.05
    done
    "$BIN/cohort" flood --daemon "$DAEMON" --name sender --group flood $flag --count "$count" --size "$size" --json > "$WORK/sender.json"
    wait "$LISTENER"
    python3 - "$mode" "$size" "$run" "$WORK/sender.json" "$WORK/listener.json" >> "$OUT/throughput.csv" <<'PY'
import json, sys
mode, size, run, sender, listener = sys.argv[1], sys.argv[2], sys.argv[3], json.load(open(sys.argv[4])), json.load(open(sys.argv[5]))
load = open("/proc/loadavg").read().split()[0]
print(f"{mode},{size},{run},{sender['messages']},{sender['msgs_per_second']:.0f},{sender['mb_per_second']:.1f},"
      f"{listener['msgs_per_second']:.0f},{listener['mb_per_second']:.1f},{load}")
PY
    tail -1 "$OUT/throughput.csv"
  done
done
done

python3 - "$OUT" "$SIZES" "$REPEATS" "$MODES" <<'PY'
import csv, json, os, platform, statistics, subprocess, sys, datetime
out, sizes, repeats, modes = sys.argv[1], sys.argv[2].split(), int(sys.argv[3]), sys.argv[4].split()
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
    "experiment": "flood-one-daemon", "revision": revision + ("-dirty" if dirty else ""),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"system": platform.platform(), "cores": os.cpu_count(), "loadavg_after": open("/proc/loadavg").read().split()[:3]},
    "parameters": {"daemons": 1, "senders": 1, "listeners": 1, "service": "agreed", "transport": "tcp",
                   "sizes": [int(s) for s in sizes], "repeats": repeats, "modes": modes, "window_bytes": 4 * 1024 * 1024},
    "medians": medians,
}
json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=2)
for key, m in medians.items():
    print(f"{key}: median sender {m['sender_msgs_per_second']:.0f} msg/s {m['sender_mb_per_second']:.1f} MB/s; "
          f"listener {m['listener_msgs_per_second']:.0f} msg/s {m['listener_mb_per_second']:.1f} MB/s")
PY
