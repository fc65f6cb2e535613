#!/usr/bin/env python3
"""How far this machine lets a 3-member ensemble go, against Java ZooKeeper, in one run: the
figures behind the targets issue 9 has not met (3x ZooKeeper's writes at 1 and 32 outstanding,
a p99 at most half of ZooKeeper's for reads at 32).

Started at once and measured interleaved (cells of --duration, --rounds rounds, means reported):
- a Java ZooKeeper ensemble and a Ringkeeper ensemble, as perf/ensemble.py runs them;
- a Ringkeeper ensemble with forceSync=no: the same hops between processes without a durable
  write, so the most its writes could gain from the disk;
- a standalone Ringkeeper server: one durable write and no replication, what a write costs
  without the hops.
Writes (set) at 1 and 32 outstanding go to every kind; reads (get) at 32 go to both ensembles
twice, with the 32 sessions spread over the three members and all on member 2, to show how much
of the read tail comes from the members taking turns on two cores rather than from serving.

Usage: perf/ensemble_floor.py [--rounds 3] [--duration 4s] [--warmup 1s]
Writes results.json and results.md to perf/results/ensemble-floor-<UTC date and time>/.
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
from compare import ROOT, Server, bench_json, four_letter, ratio  # noqa: E402
from ensemble import Ensemble  # noqa: E402

# (cell name, workload, outstanding, targets: kind and where its sessions go, "spread" over the
# members, a member id, or "one" for the standalone server)
CELLS = [
    ("set@1", "set", 1, [("zookeeper", "spread"), ("ringkeeper", "spread"), ("nosync", "spread"),
                          ("standalone", "one")]),
    ("set@32", "set", 32, [("zookeeper", "spread"), ("ringkeeper", "spread"), ("nosync", "spread"),
                            ("standalone", "one")]),
    ("get@32", "get", 32, [("zookeeper", "spread"), ("zookeeper", 2), ("ringkeeper", "spread"),
                            ("ringkeeper", 2)]),
]

LABELS = {
    "zookeeper": "Java ZooKeeper ensemble",
    "ringkeeper": "Ringkeeper ensemble",
    "nosync": "Ringkeeper ensemble, forceSync=no",
    "standalone": "Ringkeeper standalone",
}


def hosts_of(servers, kind, where):
    s = servers[kind]
    if where == "one":
        return f"127.0.0.1:{s.port}"
    if where == "spread":
        return s.hosts()
    return f"127.0.0.1:{s.ports[where][0]}"


def where_label(where):
    if where == "one":
        return "one server"
    return "sessions on all members" if where == "spread" else f"sessions on member {where} only"


def mean(xs):
    return sum(xs) / len(xs)


def write_md(meta, rows, path):
    lines = [
        f"Ensemble floor, one run on {meta['date']}. Machine: {meta['machine']}. "
        f"Command: `{meta['command']}`. Java ZooKeeper {meta['zookeeper_version']}.",
        "",
        "Means of the rounds (each cell measured once a round, interleaved).",
        "",
        "| cell | server | where | ops/s | p50 ms | p99 ms | ops/s / ZooKeeper ensemble's |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for cell, _, _, targets in CELLS:
        zk = rows[f"{cell} zookeeper spread"]
        for kind, where in targets:
            r = rows[f"{cell} {kind} {where}"]
            lines.append(f"| {cell} | {LABELS[kind]} | {where_label(where)} | {r['ops']:.0f} | "
                         f"{r['p50']:.3f} | {r['p99']:.3f} | {ratio(r['ops'], zk['ops']):.2f} |")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", default="4s")
    ap.add_argument("--warmup", default="1s")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    compare.ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = a.out or os.path.join(ROOT, "perf", "results", f"ensemble-floor-{stamp}")
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rk-perf-floor-", dir=os.environ.get("PERF_TMPDIR"))
    servers = {}
    samples = {}
    try:
        servers["zookeeper"] = Ensemble("zookeeper", workdir)
        servers["ringkeeper"] = Ensemble("ringkeeper", workdir)
        servers["nosync"] = Ensemble("ringkeeper", workdir, extra_cfg="forceSync=no\n", name="nosync")
        servers["standalone"] = Server("ringkeeper", os.path.join(workdir, "standalone"))
        zk_version = four_letter(servers["zookeeper"].ports[1][0], "srvr").splitlines()[0].split(": ", 1)[1]
        for rnd in range(a.rounds):
            for cell, workload, outstanding, targets in CELLS:
                for kind, where in targets:
                    key = f"{cell} {kind} {where}"
                    out_json = os.path.join(outdir, f"{key.replace(' ', '-').replace('@', '-')}-{rnd}.json")
                    j = bench_json(hosts_of(servers, kind, where), workload, outstanding, a.duration, a.warmup,
                                   out_json)
                    samples.setdefault(key, []).append(
                        (j["throughput_ops_per_s"], j["latency_ms"]["p50"], j["latency_ms"]["p99"]))
                    print(f"round {rnd + 1} {key:>36}: {j['throughput_ops_per_s']:>8.0f} ops/s "
                          f"p50 {j['latency_ms']['p50']:.3f} p99 {j['latency_ms']['p99']:.3f} ms", flush=True)
    finally:
        for s in servers.values():
            s.stop()
        if os.environ.get("PERF_KEEP"):
            print(f"kept the servers' directories and logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    rows = {k: {"ops": mean([x[0] for x in v]), "p50": mean([x[1] for x in v]), "p99": mean([x[2] for x in v]),
                "each": v} for k, v in samples.items()}
    meta = compare.run_meta("perf/ensemble_floor.py", zk_version.split("-")[0])
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=1)
    print(write_md(meta, rows, os.path.join(outdir, "results.md")))


if __name__ == "__main__":
    main()
