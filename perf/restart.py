#!/usr/bin/env python3
"""Restart time and memory per znode: Java ZooKeeper (Debian's package) and Ringkeeper, side by side
in one run, on the same data.

Each server is started empty and filled with N znodes of B bytes (default 1,000,000 of 100 B) under
1,000 parents, written as pipelined multis. Then, alternating between the servers, each is killed
with SIGKILL and restarted, and the time from spawning the process to the first successful read of
the last znode written is measured:
  - "log": the first restart, with no snapshot newer than the data (ZooKeeper replays its log and,
    as it always does on startup, writes a snapshot before serving; Ringkeeper replays its log);
  - "snapshot": later restarts, after a snapshot holds everything (ZooKeeper's startup snapshot;
    Ringkeeper's `snap` four-letter word), repeated --repeat times; the median is reported.
RSS (VmRSS) is read when empty, after filling, and after each restart. Memory per znode is
(RSS filled - RSS empty) / N.

Usage: perf/restart.py [--znodes 1000000] [--data-bytes 100] [--repeat 3] [--zk-heap 4g]
Writes perf/results/<UTC time>-restart/results.json and results.md.
"""

import argparse
import datetime
import json
import os
import platform
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "perf"))
from compare import BIN, ZK_CP, ensure_tools, four_letter, free_port  # noqa: E402, F401

sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
from jute import W  # noqa: E402  (the tests' jute encoder)

CREATE, MULTI, GET_DATA = 1, 14, 4
OPEN_ACL = [(31, "world", "anyone")]


class Conn:
    """A minimal pipelining client: send many requests, then read their replies in order."""

    def __init__(self, port, timeout_s=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.xid = 0
        self._send(bytes(W().int(0).long(0).int(30000).long(0).buf(b"\0" * 16).bool(False).b))
        self._recv()

    def _send(self, payload):
        self.s.sendall(struct.pack(">i", len(payload)) + payload)

    def _exact(self, n):
        out = bytearray()
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return bytes(out)

    def _recv(self):
        (n,) = struct.unpack(">i", self._exact(4))
        return self._exact(n)

    def send(self, opcode, body):
        self.xid += 1
        self._send(struct.pack(">ii", self.xid, opcode) + body)

    def reply(self):
        """(err, body) of the next reply."""
        r = self._recv()
        _xid, _zxid, err = struct.unpack(">iqi", r[:16])
        return err, r[16:]

    def close(self):
        self.s.close()


def multi_create(paths, data):
    w = W()
    for p in paths:
        w.int(CREATE).bool(False).int(-1)
        w.str(p).buf(data).acls(OPEN_ACL).int(0)
    w.int(-1).bool(True).int(-1)
    return bytes(w.b)


def populate(port, znodes, data_bytes, parents=1000, per_multi=200, in_flight=16):
    c = Conn(port)
    c.send(CREATE, bytes(W().str("/r").buf(b"").acls(OPEN_ACL).int(0).b))
    for i in range(parents):
        c.send(CREATE, bytes(W().str(f"/r/b{i:04}").buf(b"").acls(OPEN_ACL).int(0).b))
    for _ in range(parents + 1):
        err, _ = c.reply()
        assert err == 0, err
    data = b"d" * data_bytes
    paths = (f"/r/b{i % parents:04}/n{i:07}" for i in range(znodes))
    pending = 0
    sent = 0
    started = time.time()
    while sent < znodes:
        batch = [next(paths) for _ in range(min(per_multi, znodes - sent))]
        c.send(MULTI, multi_create(batch, data))
        sent += len(batch)
        pending += 1
        if pending >= in_flight:
            err, _ = c.reply()
            assert err == 0, err
            pending -= 1
    while pending:
        err, _ = c.reply()
        assert err == 0, err
        pending -= 1
    c.close()
    return time.time() - started


def last_path(znodes, parents=1000):
    i = znodes - 1
    return f"/r/b{i % parents:04}/n{i:07}"


def read_ok(port, path, data_bytes):
    try:
        c = Conn(port, timeout_s=2)
        c.send(GET_DATA, bytes(W().str(path).bool(False).b))
        err, body = c.reply()
        c.close()
        return err == 0 and struct.unpack(">i", body[:4])[0] == data_bytes
    except OSError:
        return False


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class Server:
    def __init__(self, kind, workdir, zk_heap):
        self.kind = kind
        self.port = free_port()
        self.dir = os.path.join(workdir, kind)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        self.cfg = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={self.dir}/data\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    f"maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                    f"globalOutstandingLimit=100000\n")
        if kind == "zookeeper":
            self.cmd = ["java", f"-Xmx{zk_heap}", "-cp", ZK_CP, f"-Dzookeeper.log.dir={self.dir}",
                        "-Djute.maxbuffer=4194304", "org.apache.zookeeper.server.ZooKeeperServerMain", self.cfg]
        else:
            self.cmd = [BIN, "serve", "--config", self.cfg]
        self.log = open(os.path.join(self.dir, "server.log"), "a")
        self.proc = None

    def start(self, probe_path=None, data_bytes=0):
        """Spawns the server; returns seconds until it serves (reads `probe_path` when given)."""
        started = time.time()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = started + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited; see {self.dir}/server.log")
            if probe_path is None:
                try:
                    if "Mode: " in four_letter(self.port, "srvr"):
                        return time.time() - started
                except OSError:
                    pass
            elif read_ok(self.port, probe_path, data_bytes):
                return time.time() - started
            time.sleep(0.01)
        raise RuntimeError(f"{self.kind} did not serve within 600 s")

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def rss(self):
        return rss_mib(self.proc.pid)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--znodes", type=int, default=1_000_000)
    ap.add_argument("--data-bytes", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--zk-heap", default="4g")
    args = ap.parse_args()
    ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = os.path.join(ROOT, "perf", "results", f"{stamp}-restart")
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rk-restart-", dir=os.environ.get("PERF_TMPDIR"))
    servers = [Server("zookeeper", workdir, args.zk_heap), Server("ringkeeper", workdir, args.zk_heap)]
    probe = last_path(args.znodes)
    res = {s.kind: {"restart_snapshot_s": [], "rss_after_snapshot_restart_mib": []} for s in servers}
    try:
        for s in servers:
            s.start()
            time.sleep(1)
            r = res[s.kind]
            r["rss_empty_mib"] = s.rss()
            secs = populate(s.port, args.znodes, args.data_bytes)
            r["populate_s"] = secs
            time.sleep(2)
            r["rss_filled_mib"] = s.rss()
            r["bytes_per_znode"] = (r["rss_filled_mib"] - r["rss_empty_mib"]) * 1024 * 1024 / args.znodes
            print(f"{s.kind}: filled {args.znodes} znodes in {secs:.1f} s; RSS {r['rss_empty_mib']:.0f} -> "
                  f"{r['rss_filled_mib']:.0f} MiB", flush=True)
        for s in servers:
            s.kill9()
            t = s.start(probe, args.data_bytes)
            res[s.kind]["restart_log_s"] = t
            res[s.kind]["rss_after_log_restart_mib"] = s.rss()
            print(f"{s.kind}: restart replaying the log: {t:.2f} s", flush=True)
        rk = servers[1]
        with socket.create_connection(("127.0.0.1", rk.port), timeout=600) as conn:
            conn.sendall(b"snap")
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
        print(answer.decode().strip().replace("\n", "; "), flush=True)
        for rep in range(args.repeat):
            for s in servers:
                s.kill9()
                t = s.start(probe, args.data_bytes)
                res[s.kind]["restart_snapshot_s"].append(t)
                res[s.kind]["rss_after_snapshot_restart_mib"].append(s.rss())
                print(f"{s.kind}: restart from a snapshot #{rep + 1}: {t:.2f} s, RSS {s.rss():.0f} MiB", flush=True)
        snaps = {s.kind: sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(os.path.join(s.dir, "data"))
                             for f in fs if "snap" in f) for s in servers}
    finally:
        for s in servers:
            if s.proc and s.proc.poll() is None:
                s.kill9()
    zk, rk = res["zookeeper"], res["ringkeeper"]
    for r in (zk, rk):
        r["restart_snapshot_median_s"] = statistics.median(r["restart_snapshot_s"])
    meta = {
        "utc": stamp, "znodes": args.znodes, "data_bytes": args.data_bytes, "repeat": args.repeat,
        "zk_jvm": f"-Xmx{args.zk_heap} (default collector)", "host": platform.node(), "cpus": os.cpu_count(),
        "snapshot_dir_bytes": snaps,
    }
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "results": res}, f, indent=2)
    lines = [
        f"# Restart and memory with {args.znodes:,} znodes of {args.data_bytes} B ({stamp})",
        "",
        f"Java ZooKeeper 3.8 (JVM {meta['zk_jvm']}) and Ringkeeper (release build), one after the other",
        f"on this {os.cpu_count()}-core machine. Restart = spawn to first successful read of the last znode.",
        "",
        "| measure | ZooKeeper | Ringkeeper | ZooKeeper / Ringkeeper |",
        "|---|---|---|---|",
        f"| restart, replaying the log (s) | {zk['restart_log_s']:.2f} | {rk['restart_log_s']:.2f} | "
        f"{zk['restart_log_s'] / rk['restart_log_s']:.1f}x |",
        f"| restart from a snapshot, median of {args.repeat} (s) | {zk['restart_snapshot_median_s']:.2f} | "
        f"{rk['restart_snapshot_median_s']:.2f} | {zk['restart_snapshot_median_s'] / rk['restart_snapshot_median_s']:.1f}x |",
        f"| RSS empty (MiB) | {zk['rss_empty_mib']:.0f} | {rk['rss_empty_mib']:.0f} | |",
        f"| RSS filled (MiB) | {zk['rss_filled_mib']:.0f} | {rk['rss_filled_mib']:.0f} | "
        f"{zk['rss_filled_mib'] / rk['rss_filled_mib']:.1f}x |",
        f"| memory per znode (B) = (filled - empty) / N | {zk['bytes_per_znode']:.0f} | {rk['bytes_per_znode']:.0f} | "
        f"{zk['bytes_per_znode'] / rk['bytes_per_znode']:.1f}x |",
        f"| RSS after a snapshot restart (MiB) | {statistics.median(zk['rss_after_snapshot_restart_mib']):.0f} | "
        f"{statistics.median(rk['rss_after_snapshot_restart_mib']):.0f} | |",
        f"| snapshot files on disk (MiB) | {snaps['zookeeper'] / 2**20:.0f} | {snaps['ringkeeper'] / 2**20:.0f} | |",
        f"| fill time (s) | {zk['populate_s']:.1f} | {rk['populate_s']:.1f} | |",
        "",
    ]
    with open(os.path.join(outdir, "results.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    print(f"written to {outdir}")


if __name__ == "__main__":
    main()
