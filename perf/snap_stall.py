#!/usr/bin/env python3
"""What syncing a member by SNAP costs the leader's writes: a 3-member Java ZooKeeper ensemble,
then a 3-member Ringkeeper ensemble (one after the other, in one run), each filled with N znodes
of 100 B; a follower is killed, its dataDir emptied (its `myid` kept) and started again, so the
leader must send it the whole tree; meanwhile a probe on the leader writes every 10 ms. Reported:
the probe's longest gap between successful writes from the restart until the member serves, and
how long the member took to serve. Writes results.json and results.md to
perf/results/snap-stall-<UTC date and time>/.

Usage: perf/snap_stall.py [--znodes 500000] [--rounds 2]
"""

import argparse
import datetime
import json
import os
import shutil
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
import restart  # noqa: E402
from compare import ROOT, four_letter, ratio  # noqa: E402
from ensemble import Ensemble  # noqa: E402


def probe_gaps(port, stop, ok_times):
    from kazoo.client import KazooClient

    zk = KazooClient(hosts=f"127.0.0.1:{port}", timeout=30)
    zk.start(timeout=30)
    zk.ensure_path("/probe")
    while not stop.is_set():
        try:
            zk.set("/probe", b"x")
            ok_times.append(time.monotonic())
        except Exception:
            pass
        time.sleep(0.01)
    zk.stop()
    zk.close()


def one_round(ens, timeout_s=300):
    leader = ens.leader()
    victim = next(i for i in ens.ids if i != leader)
    ens.procs[victim].kill()
    ens.procs[victim].wait()
    data = os.path.join(ens.dirs[victim], "data")
    for name in os.listdir(data):
        if name != "myid":
            p = os.path.join(data, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
    stop = threading.Event()
    ok_times = []
    t = threading.Thread(target=probe_gaps, args=(ens.ports[leader][0], stop, ok_times), daemon=True)
    t.start()
    time.sleep(1.5)
    started = time.monotonic()
    ens.start(victim)
    deadline = time.time() + timeout_s
    while ens.mode(victim) not in ("follower", "leader"):
        if time.time() > deadline:
            raise RuntimeError(f"{ens.kind} member {victim} did not come back; see {ens.dirs[victim]}")
        time.sleep(0.01)
    serving_ms = (time.monotonic() - started) * 1000
    time.sleep(1.0)
    stop.set()
    t.join()
    window = [x for x in ok_times if x >= started - 0.5]
    gap = max((b - a) * 1000 for a, b in zip(window, window[1:])) if len(window) > 1 else float("inf")
    return {"longest_write_gap_ms": gap, "member_serving_ms": serving_ms, "probe_writes": len(window)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--znodes", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--kinds", default="zookeeper,ringkeeper")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    compare.ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = a.out or os.path.join(ROOT, "perf", "results", f"snap-stall-{stamp}")
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rk-perf-snap-", dir=os.environ.get("PERF_TMPDIR"))
    results = {}
    zk_version = "?"
    try:
        for kind in a.kinds.split(","):
            ens = Ensemble(kind, workdir)
            try:
                if kind == "zookeeper":
                    zk_version = four_letter(ens.ports[1][0], "srvr").splitlines()[0].split(": ", 1)[1].split("-")[0]
                fill_s = restart.populate(ens.ports[ens.leader()][0], a.znodes, 100)
                print(f"{kind}: filled {a.znodes} znodes in {fill_s:.1f} s", flush=True)
                results[kind] = []
                for n in range(a.rounds):
                    r = one_round(ens)
                    results[kind].append(r)
                    print(f"{kind} round {n + 1}: longest write gap {r['longest_write_gap_ms']:.0f} ms, "
                          f"member serving after {r['member_serving_ms']:.0f} ms", flush=True)
            finally:
                ens.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    meta = compare.run_meta("perf/snap_stall.py", zk_version)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "znodes": a.znodes, "rounds": results}, f, indent=1)
    lines = [
        f"Syncing a wiped follower by SNAP: 3-member ensembles of Ringkeeper and Java ZooKeeper {zk_version}, "
        f"each with {a.znodes} znodes of 100 B, one after the other in one run on {meta['date']}.",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
        "A probe on the leader writes every 10 ms; its longest gap from the restart until the member serves:",
        "",
        "| kind | longest write gap, each round (ms) | member serving after (ms) |",
        "|---|---|---|",
    ]
    for kind, rs in results.items():
        gaps = ", ".join(f"{r['longest_write_gap_ms']:.0f}" for r in rs)
        serving = ", ".join(f"{r['member_serving_ms']:.0f}" for r in rs)
        lines.append(f"| {kind} | {gaps} | {serving} |")
    if len(results) == 2:
        worst = {k: max(r["longest_write_gap_ms"] for r in rs) for k, rs in results.items()}
        lines += ["", f"Worst gap Ringkeeper / worst gap ZooKeeper: "
                      f"**{ratio(worst['ringkeeper'], worst['zookeeper']):.2f}**."]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
