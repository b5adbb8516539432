#!/usr/bin/env python3
"""Draws the figures of Cohort's experiments: every Results/<experiment>/<name>.csv written by
cohort-experiments becomes Results/<experiment>/<name>.png next to it.

    pip install -r Scripts/requirements-plot.txt     # matplotlib, once
    Scripts/plot.py                                   # every result
    Scripts/plot.py Results/throughput/daemons-3.csv  # one
"""
import csv
import glob
import os
import statistics
import sys
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def size_label(size):
    return f"{size // 1024} KiB" if size >= 1024 and size % 1024 == 0 else f"{size} B"


def throughput(path, data):
    """Median msg/s and MB/s of the slowest listener against message size, one line per
    architecture and sender mode."""
    series = defaultdict(lambda: defaultdict(list))
    for r in data:
        series[(r["architecture"], r["mode"])][int(r["size"])].append(r)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for (architecture, mode), by_size in sorted(series.items()):
        sizes = sorted(by_size)
        label = f"{architecture}, {mode}"
        left.plot(sizes, [statistics.median(float(r["listener_msgs_per_second"]) for r in by_size[s]) / 1000 for s in sizes],
                  marker="o", label=label)
        right.plot(sizes, [statistics.median(float(r["listener_mb_per_second"]) for r in by_size[s]) for s in sizes],
                   marker="o", label=label)
    for axis, ylabel in ((left, "thousand messages/s"), (right, "MB/s")):
        axis.set_xscale("log", base=2)
        sizes = sorted({int(r["size"]) for r in data})
        axis.set_xticks(sizes, [size_label(s) for s in sizes])
        axis.set_xlabel("message size")
        axis.set_ylabel(ylabel)
        axis.grid(True, alpha=0.3)
        axis.set_ylim(bottom=0)
    left.legend()
    return fig, "Throughput (slowest listener, median of runs)"


def latency(path, data):
    """Latency percentiles of the slowest receiver against offered load, per architecture."""
    fig, axis = plt.subplots(figsize=(7, 4.2))
    by_architecture = defaultdict(lambda: defaultdict(list))
    for r in data:
        by_architecture[r["architecture"]][int(r["rate"])].append(r)
    for architecture, by_rate in sorted(by_architecture.items()):
        rates = sorted(by_rate)
        for column, style in (("p50_us", "o-"), ("p99_us", "s--"), ("p999_us", "^:")):
            axis.plot(rates, [max(float(r[column]) for r in by_rate[rate]) for rate in rates], style,
                      label=f"{architecture} {column[:-3].replace('p999', 'p99.9')}")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("offered load (messages/s)")
    axis.set_ylabel("one-way latency (µs)")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    return fig, "Delivery latency (slowest receiver)"


def membership(path, data):
    """Median time of each membership change per cluster size."""
    fig, axis = plt.subplots(figsize=(7, 4.2))
    events = ["partition", "merge", "crash", "restart"]
    groups = sorted({(r["architecture"], int(r["daemons"])) for r in data})
    width = 0.8 / max(1, len(groups))
    for i, (architecture, daemons) in enumerate(groups):
        values = [statistics.median(float(r["milliseconds"]) for r in data
                                    if r["architecture"] == architecture and int(r["daemons"]) == daemons and r["event"] == e)
                  if any(r["event"] == e for r in data) else 0 for e in events]
        axis.bar([x + i * width for x in range(len(events))], values, width, label=f"{architecture}, {daemons} daemons")
    axis.set_xticks([x + width * (len(groups) - 1) / 2 for x in range(len(events))], events)
    axis.set_ylabel("milliseconds until d1 is in the new configuration")
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend()
    return fig, "Cost of a daemon membership change (median)"


def membership_simulated(path, data):
    """Median virtual time of a cut and of a heal, and the peer messages each takes, per size."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    sizes = sorted({int(r["daemons"]) for r in data})

    def med(size, column):
        return statistics.median(float(r[column]) for r in data if int(r["daemons"]) == size)

    x = range(len(sizes))
    for offset, (column, label) in enumerate((("partition_ms", "one daemon cut off"), ("merge_ms", "cut healed"))):
        left.bar([i + offset * 0.4 for i in x], [med(s, column) for s in sizes], 0.4, label=label)
        messages = column.replace("_ms", "_messages")
        right.bar([i + offset * 0.4 for i in x], [med(s, messages) for s in sizes], 0.4, label=label)
    for axis, ylabel in ((left, "virtual milliseconds to the new configuration"), (right, "peer messages")):
        axis.set_xticks([i + 0.2 for i in x], [f"{s} daemons" for s in sizes])
        axis.set_ylabel(ylabel)
        axis.grid(True, axis="y", alpha=0.3)
    left.legend()
    return fig, "Simulated membership change (median of seeds)"


PLOTTERS = {"throughput": throughput, "latency": latency, "membership": membership,
            "membership-simulated": membership_simulated}


def plot(path):
    experiment = os.path.basename(os.path.dirname(os.path.abspath(path)))
    plotter = PLOTTERS.get(experiment)
    data = rows(path)
    if plotter is None or not data:
        return None
    fig, title = plotter(path, data)
    fig.suptitle(f"{title} — {experiment}/{os.path.basename(path)}")
    fig.tight_layout()
    out = os.path.splitext(path)[0] + ".png"
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(paths):
    if not paths:
        root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Results")
        paths = sorted(p for e in PLOTTERS for p in glob.glob(os.path.join(root, e, "*.csv")))
    for path in paths:
        out = plot(path)
        print(f"{path} -> {out}" if out else f"{path}: no plot for this experiment")


if __name__ == "__main__":
    main(sys.argv[1:])
