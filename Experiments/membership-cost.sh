#!/usr/bin/env bash
# Simulated cost of a daemon membership change and of steady-state ordering, for 3, 5 and 13
# daemons (DAEMONS), over SEEDS seeds each: `cohort simulate --membership-cost` on a lossless
# network where every message takes 1 ms, one daemon cut off and then healed, two clients per
# daemon sending every ~4 ms. Writes Results/membership-cost/membership-cost.csv (one row per
# seed and size) and meta.json (revision, machine, medians).
#
#   Experiments/membership-cost.sh
#   DAEMONS="3 5" SEEDS="1 2" Experiments/membership-cost.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DAEMONS=${DAEMONS:-"3 5 13"}
SEEDS=${SEEDS:-"1 2 3 4 5"}
OUT=Results/membership-cost
swift build -c release --product cohort >/dev/null
mkdir -p "$OUT"
echo "daemons,seed,peer_messages_per_client_message,peer_messages_per_item,partition_ms,partition_after_detection_ms,partition_messages,merge_ms,merge_messages" > "$OUT/membership-cost.csv"
for daemons in $DAEMONS; do
  for seed in $SEEDS; do
    .build/release/cohort simulate --membership-cost --daemons "$daemons" --seed "$seed" | tail -1 | python3 -c '
import json, sys
seed = sys.argv[1]
keys = ["peer_messages_per_client_message", "peer_messages_per_item", "partition_ms", "partition_after_detection_ms",
        "partition_messages", "merge_ms", "merge_messages"]
for row in json.load(sys.stdin)["membership_cost"]:
    print(",".join([str(row["daemons"]), seed] + [str(round(row[key], 3)) for key in keys]))
' "$seed" | tee -a "$OUT/membership-cost.csv"
  done
done
python3 - "$OUT" <<'PY'
import csv, json, os, platform, statistics, subprocess, sys, datetime
out = sys.argv[1]
rows = list(csv.DictReader(open(os.path.join(out, "membership-cost.csv"))))
keys = [k for k in rows[0] if k not in ("daemons", "seed")]
medians = {d: {k: statistics.median(float(r[k]) for r in rows if r["daemons"] == d) for k in keys}
           for d in sorted({r["daemons"] for r in rows}, key=int)}
revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!Results"],
                       capture_output=True, text=True).stdout.strip() != ""
meta = {
    "experiment": "membership-cost", "revision": revision + ("-dirty" if dirty else ""),
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "machine": {"system": platform.platform(), "cores": os.cpu_count()},
    "parameters": {"network": "lossless, 1 ms per message", "clients_per_daemon": 2, "client_send_interval_ms": 4,
                   "token_loss_timeout_ms": 200, "consensus_timeout_ms": 150, "join_interval_ms": 30,
                   "seeds": sorted({int(r["seed"]) for r in rows})},
    "medians": medians,
}
json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=2)
for d, m in medians.items():
    print(f"{d} daemons: " + ", ".join(f"{k} {v:.2f}" for k, v in m.items()))
PY
