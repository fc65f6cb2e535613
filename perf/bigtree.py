#!/usr/bin/env python3
"""Writes against a large tree: Java ZooKeeper and Ringkeeper, one after the other, each filled
with 1,000,000 znodes of 100 B (as perf/restart.py fills them), then `ringkeeper bench --workload
set --outstanding 32` for 20 s. With a small snapCount both servers snapshot all the time, which
shows what snapshots cost the write path.

Usage: perf/bigtree.py [--snap-count 100000000] [--znodes 1000000]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart  # noqa: E402
from compare import BIN, ZK_CP, ensure_tools, free_port  # noqa: E402


def server(kind, workdir, snap_count):
    port = free_port()
    d = os.path.join(workdir, kind)
    os.makedirs(d + "/data", exist_ok=True)
    cfg = f"{d}/zoo.cfg"
    with open(cfg, "w") as f:
        f.write(f"tickTime=2000\ndataDir={d}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n"
                f"maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                f"globalOutstandingLimit=100000\nsnapCount={snap_count}\n")
    if kind == "zookeeper":
        cmd = ["java", "-Xmx4g", "-cp", ZK_CP, f"-Dzookeeper.log.dir={d}", "-Djute.maxbuffer=4194304",
               "org.apache.zookeeper.server.ZooKeeperServerMain", cfg]
    else:
        cmd = [BIN, "serve", "--config", cfg]
    proc = subprocess.Popen(cmd, stdout=open(d + "/server.log", "a"), stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while not restart.read_ok(port, "/zookeeper", 0):
        if time.time() > deadline or proc.poll() is not None:
            raise RuntimeError(f"{kind} did not start; see {d}/server.log")
        time.sleep(0.1)
    return proc, port, d


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snap-count", type=int, default=100_000_000)
    ap.add_argument("--znodes", type=int, default=1_000_000)
    args = ap.parse_args()
    ensure_tools()
    work = tempfile.mkdtemp(prefix="rk-bigtree-", dir=os.environ.get("PERF_TMPDIR"))
    for kind in ("zookeeper", "ringkeeper"):
        proc, port, d = server(kind, work, args.snap_count)
        try:
            restart.populate(port, args.znodes, 100)
            time.sleep(10)
            out = f"{d}/bench.json"
            subprocess.run([BIN, "bench", "--hosts", f"127.0.0.1:{port}", "--workload", "set",
                            "--outstanding", "32", "--sessions", "32", "--duration", "20s", "--warmup", "2s",
                            "--json", out, "--root", "/rkbench-set"], check=True, stdout=subprocess.DEVNULL)
            j = json.load(open(out))
            lat = j["latency_ms"]
            print(f"{kind}: snapCount={args.snap_count} {j['throughput_ops_per_s']:.0f} ops/s "
                  f"p50 {lat['p50']} p99 {lat['p99']} p99.9 {lat['p999']} max {lat['max']} ms", flush=True)
        finally:
            proc.kill()
            proc.wait()
    print(f"server logs under {work}")


if __name__ == "__main__":
    main()
