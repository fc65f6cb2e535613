#!/usr/bin/env python3
"""Side by side: a 3-member Java ZooKeeper ensemble and a 3-member Ringkeeper ensemble on this
machine, one run, the same load generator (`ringkeeper bench`, its sessions spread over all three
members), then leader failover: a probe writes every 10 ms through the whole connect string while
the leader is killed with SIGKILL, and the longest gap between successful writes is reported.
Writes results.json and results.md to perf/results/ensemble-<UTC date and time>/.

Usage: perf/ensemble.py [--duration 10s] [--warmup 3s] [--workloads get,set,create-delete,mixed]
                        [--outstanding 1,32,256] [--failovers 3]

Both ensembles run at once (interleaved measurements, so drift in machine load hits both), every
member with its dataDir on the same device, tickTime 2000, initLimit 10, syncLimit 5. On a machine
with fewer cores than members the members share cores: the figures compare the two servers under
the same squeeze, not what either does on dedicated machines.
"""

import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402
from compare import BIN, ROOT, ZK_CP, bench_json, four_letter, ratio  # noqa: E402
from servers import free_ports  # noqa: E402


class Ensemble:
    """Three members of one kind ("zookeeper" or "ringkeeper") on loopback."""

    def __init__(self, kind, workdir, n=3, extra_cfg="", name=None):
        self.kind = kind
        self.ids = list(range(1, n + 1))
        flat = free_ports(3 * n)
        self.ports = {i: tuple(flat[3 * k:3 * k + 3]) for k, i in enumerate(self.ids)}
        self.dirs = {}
        self.cmds = {}
        self.procs = {}
        self.logs = {}
        lines = "".join(
            f"server.{i}=127.0.0.1:{q}:{e}\n" for i, (_, q, e) in self.ports.items())
        for i in self.ids:
            d = os.path.join(workdir, f"{name or kind}{i}")
            os.makedirs(os.path.join(d, "data"), exist_ok=True)
            with open(os.path.join(d, "data", "myid"), "w") as f:
                f.write(f"{i}\n")
            cfg = os.path.join(d, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write(f"tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={d}/data\n"
                        f"clientPort={self.ports[i][0]}\nclientPortAddress=127.0.0.1\nmaxClientCnxns=0\n"
                        f"4lw.commands.whitelist=*\nadmin.enableServer=false\nglobalOutstandingLimit=100000\n"
                        + extra_cfg + lines)
            if kind == "zookeeper":
                self.cmds[i] = ["java", "-Xms1g", "-Xmx1g", "-cp", ZK_CP, f"-Dzookeeper.log.dir={d}",
                                "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
            else:
                self.cmds[i] = [BIN, "serve", "--config", cfg]  # pinned, as the README runs them
            self.dirs[i] = d
            self.logs[i] = open(os.path.join(d, "server.log"), "a")
        for i in self.ids:
            self.start(i)
        try:
            self.wait_serving(self.ids)
        except BaseException:
            self.stop()  # a member that never served must not outlive the caller
            raise

    def start(self, i):
        self.procs[i] = subprocess.Popen(self.cmds[i], stdout=self.logs[i], stderr=subprocess.STDOUT)

    def mode(self, i):
        try:
            for line in four_letter(self.ports[i][0], "srvr").splitlines():
                if line.startswith("Mode: "):
                    return line[6:]
        except OSError:
            pass
        return None

    def wait_serving(self, ids, timeout=120):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if all(self.mode(i) in ("leader", "follower") for i in ids):
                return
            time.sleep(0.1)
        raise RuntimeError(f"{self.kind} ensemble not serving; see {self.dirs}")

    def leader(self):
        return next(i for i in self.ids if self.mode(i) == "leader")

    def hosts(self):
        return ",".join(f"127.0.0.1:{self.ports[i][0]}" for i in self.ids)

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for f in self.logs.values():
            f.close()


def failover(ens, probe_s=3.0, after_s=8.0):
    """Kills the leader (SIGKILL) while a probe writes every 10 ms through the whole connect
    string; returns the longest gap between successful writes, in ms, and restarts the member."""
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    zk = KazooClient(hosts=ens.hosts(), timeout=10,
                     connection_retry=KazooRetry(max_tries=-1, delay=0.01, max_delay=0.05, max_jitter=0.0))
    zk.start(timeout=30)
    zk.ensure_path("/probe")
    stop = threading.Event()
    ok_times = []

    def probe():
        while not stop.is_set():
            try:
                zk.set("/probe", b"x")
                ok_times.append(time.monotonic())
            except Exception:
                pass
            time.sleep(0.01)

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    time.sleep(probe_s)
    victim = ens.leader()
    killed_at = time.monotonic()
    ens.procs[victim].kill()
    ens.procs[victim].wait()
    time.sleep(after_s)
    stop.set()
    t.join()
    zk.stop()
    zk.close()
    before = [x for x in ok_times if x <= killed_at]
    after = [x for x in ok_times if x > killed_at]
    if not after:
        gap = float("inf")
    else:
        gap = (after[0] - (before[-1] if before else killed_at)) * 1000
        series = [before[-1]] + after if before else after
        gap = max(gap, max((b - a) * 1000 for a, b in zip(series, series[1:])))
    ens.start(victim)
    ens.wait_serving(ens.ids)
    return gap


def write_table(rows, failovers, path, meta):
    lines = [
        f"3-member Ringkeeper ensemble / 3-member Java ZooKeeper {meta['zookeeper_version']} ensemble, "
        f"side by side in one run on {meta['date']}.",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`. Sessions spread over all members.",
        "Throughput ratio > 1 and latency ratio < 1 favour Ringkeeper.",
        "",
        "| workload | outstanding | ZK ops/s | RK ops/s | throughput RK/ZK | p50 ZK / RK ms | p99 ZK / RK ms | p99 RK/ZK |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        zk, rk = r["zookeeper"], r["ringkeeper"]
        zl, rl = zk["latency_ms"], rk["latency_ms"]
        lines.append(
            f"| {r['workload']} | {r['outstanding']} | {zk['throughput_ops_per_s']:.0f} | "
            f"{rk['throughput_ops_per_s']:.0f} | **{ratio(rk['throughput_ops_per_s'], zk['throughput_ops_per_s']):.2f}** | "
            f"{zl['p50']:.3f} / {rl['p50']:.3f} | {zl['p99']:.3f} / {rl['p99']:.3f} | {ratio(rl['p99'], zl['p99']):.2f} |")
    mixes = [r for r in rows if "latency_ms_by_op" in r["zookeeper"] and "latency_ms_by_op" in r["ringkeeper"]]
    if mixes:
        # A mix's p99 is mostly its slower kind's tail (mixed: a tenth are writes, so the writes' p90).
        lines += ["", "Mixes by kind of operation, ms:", "",
                  "| workload | outstanding | kind | p50 ZK / RK | p90 ZK / RK | p99 ZK / RK |",
                  "|---|---:|---|---|---|---|"]
        for r in mixes:
            zk, rk = r["zookeeper"]["latency_ms_by_op"], r["ringkeeper"]["latency_ms_by_op"]
            for op in sorted(set(zk) & set(rk)):
                z, k = zk[op], rk[op]
                lines.append(f"| {r['workload']} | {r['outstanding']} | {op} | {z['p50']:.3f} / {k['p50']:.3f} | "
                             f"{z['p90']:.3f} / {k['p90']:.3f} | {z['p99']:.3f} / {k['p99']:.3f} |")
    if failovers:
        zk, rk = failovers["zookeeper"], failovers["ringkeeper"]
        lines += ["", "Leader failover (SIGKILL of the leader; longest gap between successful writes of a probe "
                      "writing every 10 ms through the whole connect string), ms:", "",
                  "| kind | each run | worst |", "|---|---|---:|",
                  f"| Java ZooKeeper | {', '.join(f'{g:.0f}' for g in zk)} | {max(zk):.0f} |",
                  f"| Ringkeeper | {', '.join(f'{g:.0f}' for g in rk)} | {max(rk):.0f} |",
                  "", f"Worst Ringkeeper / worst ZooKeeper: **{ratio(max(rk), max(zk)):.2f}**."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="3s")
    ap.add_argument("--workloads", default="get,set,create-delete,mixed")
    ap.add_argument("--outstanding", default="1,32,256")
    ap.add_argument("--failovers", type=int, default=3)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    compare.ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = a.out or os.path.join(ROOT, "perf", "results", f"ensemble-{stamp}")
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rk-perf-ens-", dir=os.environ.get("PERF_TMPDIR"))
    ensembles = {}
    rows = []
    failovers = {"zookeeper": [], "ringkeeper": []}
    try:
        for kind in ("zookeeper", "ringkeeper"):
            ensembles[kind] = Ensemble(kind, workdir)
        zk_version = four_letter(ensembles["zookeeper"].ports[1][0], "srvr").splitlines()[0].split(": ", 1)[1].split("-")[0]
        for workload in [w for w in a.workloads.split(",") if w]:
            for outstanding in [int(n) for n in a.outstanding.split(",")]:
                row = {"workload": workload, "outstanding": outstanding}
                for kind in ("zookeeper", "ringkeeper"):
                    out_json = os.path.join(outdir, f"{workload}-{outstanding}-{kind}.json")
                    row[kind] = bench_json(ensembles[kind].hosts(), workload, outstanding, a.duration, a.warmup,
                                           out_json)
                    print(f"{workload:>14} {outstanding:>4} {kind:>10}: {row[kind]['throughput_ops_per_s']:>9.0f} ops/s "
                          f"p99 {row[kind]['latency_ms']['p99']:.3f} ms", flush=True)
                rows.append(row)
        for n in range(a.failovers):
            for kind in ("zookeeper", "ringkeeper"):
                gap = failover(ensembles[kind])
                failovers[kind].append(gap)
                print(f"failover {n + 1} {kind:>10}: longest gap {gap:.0f} ms", flush=True)
    finally:
        for e in ensembles.values():
            e.stop()
        if os.environ.get("PERF_KEEP"):
            print(f"kept the members' directories and logs in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    meta = compare.run_meta("perf/ensemble.py", zk_version)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows, "failover_ms": failovers}, f, indent=1)
    print(write_table(rows, failovers if a.failovers else None, os.path.join(outdir, "results.md"), meta))


if __name__ == "__main__":
    main()
