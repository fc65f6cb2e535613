#!/usr/bin/env python3
"""`ringkeeper import` of a big Java ZooKeeper dataDir: Java ZooKeeper 3.8 filled with
1,000,000 znodes of 100 B (as perf/restart.py fills them, so its log holds the creates and its
snapshots the tree), stopped; then `ringkeeper import` timed, and Ringkeeper started on the
result, with a read of the last znode checked. Also reports Java ZooKeeper's own restart time on
its dataDir, for scale.

Usage: perf/import.py [--znodes 1000000] [--snap-count 100000]
Java ZooKeeper is restarted on its dataDir only after the import: its startup writes a new
snapshot, which would leave the import nothing to replay.
Writes perf/results/import-<UTC date and time>/results.json and results.md.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import restart  # noqa: E402
from bigtree import server  # noqa: E402
from compare import BIN, ROOT, ensure_tools, free_port, run_meta  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--snap-count", type=int, default=100_000)
    a = ap.parse_args()
    ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = os.path.join(ROOT, "perf", "results", f"import-{stamp}")
    os.makedirs(outdir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="rk-import-", dir=os.environ.get("PERF_TMPDIR"))
    result = {}
    try:
        proc, port, d = server("zookeeper", work, a.snap_count)
        try:
            t = time.time()
            restart.populate(port, a.znodes, 100)
            result["fill_s"] = round(time.time() - t, 1)
        finally:
            proc.terminate()
            proc.wait(timeout=120)
        java_dir = os.path.join(d, "data")
        v2 = os.path.join(java_dir, "version-2")
        result["java_files"] = sorted(os.listdir(v2))
        result["java_bytes"] = sum(os.path.getsize(os.path.join(v2, f)) for f in os.listdir(v2))
        dest = os.path.join(work, "rk-data")
        t = time.time()
        r = subprocess.run([BIN, "import", "--from", java_dir, "--to", dest], capture_output=True, text=True,
                           timeout=3600)
        result["import_s"] = round(time.time() - t, 2)
        result["import_stdout"] = r.stdout.strip()
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        # Ringkeeper on the imported dataDir, until it answers the same read.
        cfg = os.path.join(work, "rk.cfg")
        port3 = free_port()
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={dest}\nclientPort={port3}\nclientPortAddress=127.0.0.1\n"
                    f"admin.enableServer=false\n")
        t = time.time()
        rk = subprocess.Popen([BIN, "serve", "--config", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 300
            while not restart.read_ok(port3, restart.last_path(a.znodes), 100):
                if time.time() > deadline or rk.poll() is not None:
                    raise RuntimeError("Ringkeeper did not serve the imported data")
                time.sleep(0.05)
            result["ringkeeper_start_s"] = round(time.time() - t, 2)
        finally:
            rk.terminate()
            rk.wait(timeout=60)
        # Java ZooKeeper's own restart on its dataDir, until it answers a read of the last znode.
        proc, port2, _ = None, None, None
        t = time.time()
        proc, port2, _ = server("zookeeper", work, a.snap_count)
        while not restart.read_ok(port2, restart.last_path(a.znodes), 100):
            time.sleep(0.05)
        result["java_restart_s"] = round(time.time() - t, 2)
        proc.terminate()
        proc.wait(timeout=120)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    meta = run_meta("perf/import.py", "3.8")
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "znodes": a.znodes, **result}, f, indent=1)
    md = (f"Import of a Java ZooKeeper dataDir with {a.znodes} znodes of 100 B ({result['java_bytes'] / 2**20:.0f} MiB "
          f"of snapshots and logs), {meta['date']}, {meta['machine']}.\n\n"
          f"| step | s |\n|---|---:|\n"
          f"| `ringkeeper import` | {result['import_s']} |\n"
          f"| Ringkeeper start on the result, until the last znode reads | {result['ringkeeper_start_s']} |\n"
          f"| Java ZooKeeper restart on its own dataDir, same read | {result['java_restart_s']} |\n\n"
          f"`{result['import_stdout']}`\n")
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
