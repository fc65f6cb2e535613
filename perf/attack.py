#!/usr/bin/env python3
"""Hostile clients, at a chosen size, against Ringkeeper and (with --servers) Java ZooKeeper side by
side: for each probe, the server's RSS growth, its open descriptors and an innocent client's `ruok`
latency (p99 and max, a fresh connection every 20 ms) while the probe runs, plus what the probe
itself saw. The probes are tests/py/attacks.py, the same ones tests/py/test_hostile.py asserts
bounds with.

Probes:
  half-open     N connections that send a connect frame's length and nothing more, and 20 that
                announce a 1 MiB connect frame and send 60 KB of it; time until the server closed
                them all (limit: the connect timeout, 10 s by default in both servers)
  multiread     one multiRead of K getData of a 1,000,000-byte node (a request of a few KB whose
                reply would be K MB)
  never-read    C sessions that each pipeline R getData of that node and never read; held H s
  acl           a create with E distinct digest ACL entries under a missing parent; time to answer
  acl-read      a node whose ACL has E digest entries matching nobody (READ for anyone last), read
                G times, pipelined, by a session with 31 identities
  count         T znodes under one parent, then Q pipelined getAllChildrenNumber("/") and of that
                parent; time until all are answered

Usage: perf/attack.py [--servers ringkeeper,zookeeper] [--half-open 400] [--multiread-ops 400]
                      [--never-read-conns 8] [--never-read-requests 100] [--hold-s 5]
                      [--acl-entries 20000] [--acl-reads 500] [--count-znodes 100000]
                      [--count-requests 20] [--probes half-open,multiread,never-read,acl,acl-read,count]
Writes perf/results/<UTC time>-attack/results.json and results.md.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
import attacks  # noqa: E402
from servers import RINGKEEPER_RELEASE, Server  # noqa: E402

BIG = 1_000_000


def start(kind):
    # Both with the connection limit off, so the probes meet the limits under test, not maxClientCnxns.
    return Server(kind, "maxClientCnxns=0", binary=RINGKEEPER_RELEASE if kind == "ringkeeper" else None)


def probe_half_open(srv, a):
    mon = attacks.Monitor(srv.pid, srv.port)
    socks = attacks.half_open(srv.port, a.half_open)
    big = attacks.half_open(srv.port, 20, partial_bytes=60_000, frame_len=1_048_000)
    try:
        closed_s = attacks.wait_all_closed(big + socks, timeout=a.connect_timeout_s + 5)
        rep = mon.stop()
    finally:
        for s in socks + big:
            s.close()
    rep["result"] = (f"all {len(socks) + len(big)} closed after {closed_s:.1f} s" if closed_s is not None
                     else f"still open {a.connect_timeout_s + 5:.0f} s later")
    return rep


def probe_multiread(srv, a):
    attacks.create_node(srv.port, "/attack-big", b"x" * BIG)
    mon = attacks.Monitor(srv.pid, srv.port)
    err, ms, req, reply = attacks.multiread_amplify(srv.port, "/attack-big", a.multiread_ops)
    rep = mon.stop()
    what = "connection closed" if err is None else f"err {err}"
    rep["result"] = f"{req} B request: {what}, {reply} B reply, {ms:.0f} ms"
    return rep


def probe_never_read(srv, a):
    attacks.create_node(srv.port, "/attack-big", b"x" * BIG)
    mon = attacks.Monitor(srv.pid, srv.port)
    socks = attacks.never_read(srv.port, a.never_read_conns, a.never_read_requests, "/attack-big")
    try:
        time.sleep(a.hold_s)
        closed = sum(attacks.closed_by_peer(s, 0.01) for s in socks)
        rep = mon.stop()
    finally:
        for s in socks:
            s.close()
    rep["result"] = f"{closed} of {len(socks)} connections closed by the server within {a.hold_s:.0f} s"
    return rep


def probe_acl(srv, a):
    mon = attacks.Monitor(srv.pid, srv.port)
    err, ms = attacks.acl_stall(srv.port, a.acl_entries)
    rep = mon.stop()
    rep["result"] = f"err {err} after {ms:.0f} ms"
    return rep


def probe_acl_read(srv, a):
    mon = attacks.Monitor(srv.pid, srv.port)
    ms = attacks.acl_check_stall(srv.port, min(a.acl_entries, 30_000), a.acl_reads)
    rep = mon.stop()
    rep["result"] = f"{a.acl_reads} reads answered in {ms:.0f} ms"
    return rep


def probe_count(srv, a):
    attacks.fill_tree(srv.port, "/attack-tree", a.count_znodes)
    mon = attacks.Monitor(srv.pid, srv.port)
    _, root_ms = attacks.count_stall(srv.port, "/", a.count_requests)
    _, sub_ms = attacks.count_stall(srv.port, "/attack-tree", a.count_requests)
    rep = mon.stop()
    rep["result"] = (f"{a.count_requests} x getAllChildrenNumber: '/' in {root_ms:.0f} ms, "
                     f"'/attack-tree' in {sub_ms:.0f} ms")
    return rep


PROBES = {"half-open": probe_half_open, "multiread": probe_multiread, "never-read": probe_never_read,
          "acl": probe_acl, "acl-read": probe_acl_read, "count": probe_count}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--servers", default="ringkeeper")
    p.add_argument("--probes", default=",".join(PROBES))
    p.add_argument("--half-open", type=int, default=400)
    p.add_argument("--connect-timeout-s", type=float, default=10.0)
    p.add_argument("--multiread-ops", type=int, default=400)
    p.add_argument("--never-read-conns", type=int, default=8)
    p.add_argument("--never-read-requests", type=int, default=100)
    p.add_argument("--hold-s", type=float, default=5.0)
    p.add_argument("--acl-entries", type=int, default=20_000)
    p.add_argument("--acl-reads", type=int, default=500)
    p.add_argument("--count-znodes", type=int, default=100_000)
    p.add_argument("--count-requests", type=int, default=20)
    a = p.parse_args()
    if "ringkeeper" in a.servers:
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    rows = []
    for name in a.probes.split(","):
        for kind in a.servers.split(","):
            srv = start(kind)
            try:
                print(f"{name} against {kind} ...", flush=True)
                rep = PROBES[name](srv, a)
            finally:
                srv.stop()
            rep.update(probe=name, server=kind)
            rows.append(rep)
            print(f"  RSS +{rep['rss_growth_mib']:.0f} MiB, fds max {rep['fds_max']}, ruok p99 "
                  f"{fmt(rep['ruok_p99_ms'])} max {fmt(rep['ruok_max_ms'])} ms; {rep['result']}", flush=True)
    when = datetime.datetime.now(datetime.timezone.utc)
    out_dir = os.path.join(ROOT, "perf", "results", when.strftime("%Y-%m-%dT%H%MZ") + "-attack")
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump({"args": vars(a), "rows": rows}, f, indent=1)
    md = [f"Hostile-client probes, {when:%Y-%m-%d %H:%M} UTC, {platform.node()}: "
          f"`perf/attack.py {' '.join(sys.argv[1:])}`", "",
          "| probe | server | RSS growth (MiB) | fds max (base) | innocent ruok p99 / max (ms) | failed ruok | what the probe saw |",
          "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        md.append(f"| {r['probe']} | {r['server']} | {r['rss_growth_mib']:.0f} | {r['fds_max']} ({r['fds_base']}) | "
                  f"{fmt(r['ruok_p99_ms'])} / {fmt(r['ruok_max_ms'])} | {r['ruok_failed']} | {r['result']} |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    print(f"\nwritten to {out_dir}")


def fmt(v):
    return "-" if v is None else f"{v:.1f}"


if __name__ == "__main__":
    main()
