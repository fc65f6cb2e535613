#!/usr/bin/env python3
"""Side by side: Java ZooKeeper (Debian's package) and Ringkeeper on this machine, one run, the same
load generator (`ringkeeper bench`), the same matrix. Writes results.json, results.md (a table of
Ringkeeper/ZooKeeper ratios) and PNG plots to perf/results/<UTC date and time>/.

Usage: perf/compare.py [--duration 10s] [--warmup 3s] [--workloads get,set,create-delete,mixed]
                       [--outstanding 1,32,256]

On a fresh Debian machine it installs what it needs first (zookeeper via apt, matplotlib via pip)
and builds Ringkeeper in release mode.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# RINGKEEPER_PERF_BIN names another build to measure (an older commit's, say) in place of this tree's.
BIN = os.environ.get("RINGKEEPER_PERF_BIN") or os.path.join(ROOT, "target", "release", "ringkeeper")
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
from servers import free_port  # noqa: E402  (below 32768, like the tests' ports)
ZK_CP = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"


def sh(*cmd, **kw):
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def ensure_tools():
    if not os.path.exists("/usr/share/java/zookeeper.jar") or shutil.which("java") is None:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        sh("apt-get", "update", "-qq", env=env)
        sh("apt-get", "install", "-y", "-qq", "zookeeper", "default-jre-headless", env=env)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        sh(sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "matplotlib")
    sh("cargo", "build", "--release", "--quiet", cwd=ROOT)


def four_letter(port, word):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(word.encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out.decode()


class Server:
    """Both servers get the same settings: loopback port, dataDir on the same device, tickTime,
    no connection limit, the default snapCount; ZooKeeper keeps its default forceSync=yes."""

    def __init__(self, kind, workdir):
        self.kind = kind
        self.port = free_port()
        self.dir = os.path.join(workdir, kind)
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        cfg = os.path.join(self.dir, "zoo.cfg")
        with open(cfg, "w") as f:
            f.write(f"tickTime=2000\ndataDir={self.dir}/data\nclientPort={self.port}\nclientPortAddress=127.0.0.1\n"
                    f"maxClientCnxns=0\n4lw.commands.whitelist=*\nadmin.enableServer=false\n"
                    f"globalOutstandingLimit=100000\n")
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        if kind == "zookeeper":
            cmd = ["java", "-Xms2g", "-Xmx2g", "-cp", ZK_CP, f"-Dzookeeper.log.dir={self.dir}",
                   "org.apache.zookeeper.server.ZooKeeperServerMain", cfg]
        else:
            cmd = [BIN, "serve", "--config", cfg]
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if "Mode: " in four_letter(self.port, "srvr"):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"{kind} did not start; see {self.dir}/server.log")

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def bench_json(hosts, workload, outstanding, duration, warmup, out_json, sessions=None):
    """Runs `ringkeeper bench` against `hosts` (its sessions spread over them); returns its JSON."""
    sessions = sessions or min(outstanding, 32)
    cmd = [BIN, "bench", "--hosts", hosts, "--workload", workload,
           "--outstanding", str(outstanding), "--sessions", str(sessions), "--duration", duration,
           "--warmup", warmup, "--json", out_json, "--root", f"/rkbench-{workload}"]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=600)
    with open(out_json) as f:
        return json.load(f)


def bench(server, workload, outstanding, duration, warmup, out_json):
    return bench_json(f"127.0.0.1:{server.port}", workload, outstanding, duration, warmup, out_json)


def run_meta(script, zk_version):
    """When, where and how a comparison ran, for its tables."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, "
                   f"{platform.system()} {platform.release()}",
        "command": f"{script} " + " ".join(sys.argv[1:]),
        "zookeeper_version": zk_version,
    }


def ratio(a, b):
    return a / b if b else float("nan")


def write_table(rows, path, meta):
    lines = [
        f"Ringkeeper / Java ZooKeeper {meta['zookeeper_version']}, side by side in one run on {meta['date']}.",
        f"Machine: {meta['machine']}. Command: `{meta['command']}`.",
        "Throughput ratio > 1 and latency ratio < 1 favour Ringkeeper.",
        "",
        "| workload | outstanding | ZK ops/s | RK ops/s | throughput RK/ZK | p50 ZK / RK ms | p99 ZK / RK ms | p99.9 ZK / RK ms | p50 RK/ZK | p99 RK/ZK | p99.9 RK/ZK |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        zk, rk = r["zookeeper"], r["ringkeeper"]
        zl, rl = zk["latency_ms"], rk["latency_ms"]
        note = ""
        lines.append(
            f"| {r['workload']}{note} | {r['outstanding']} | {zk['throughput_ops_per_s']:.0f} | {rk['throughput_ops_per_s']:.0f} | "
            f"**{ratio(rk['throughput_ops_per_s'], zk['throughput_ops_per_s']):.2f}** | "
            f"{zl['p50']:.3f} / {rl['p50']:.3f} | {zl['p99']:.3f} / {rl['p99']:.3f} | {zl['p999']:.3f} / {rl['p999']:.3f} | "
            f"{ratio(rl['p50'], zl['p50']):.2f} | {ratio(rl['p99'], zl['p99']):.2f} | {ratio(rl['p999'], zl['p999']):.2f} |")
    lines += ["",
              "Both servers fdatasync their transaction log before acknowledging a write (ZooKeeper's "
              "forceSync=yes, Ringkeeper's group commit); dataDirs are on the same device. Both take snapshots "
              "every snapCount (default) txns."]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return "\n".join(lines)


def plot(rows, outdir):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['workload']}\n{r['outstanding']}" for r in rows]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 4.5))
    w = 0.4
    ax.bar([i - w / 2 for i in x], [r["zookeeper"]["throughput_ops_per_s"] for r in rows], w, label="Java ZooKeeper")
    ax.bar([i + w / 2 for i in x], [r["ringkeeper"]["throughput_ops_per_s"] for r in rows], w, label="Ringkeeper")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("ops/s")
    ax.set_title("Throughput by workload and outstanding requests")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "throughput.png"), dpi=110)
    fig, ax = plt.subplots(figsize=(max(8, len(rows) * 0.9), 4.5))
    ax.bar([i - w / 2 for i in x], [r["zookeeper"]["latency_ms"]["p99"] for r in rows], w, label="Java ZooKeeper")
    ax.bar([i + w / 2 for i in x], [r["ringkeeper"]["latency_ms"]["p99"] for r in rows], w, label="Ringkeeper")
    ax.set_xticks(list(x), labels, fontsize=8)
    ax.set_ylabel("p99 latency, ms (log scale)")
    ax.set_yscale("log")
    ax.set_title("p99 latency by workload and outstanding requests")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "p99.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", default="10s")
    ap.add_argument("--warmup", default="3s")
    ap.add_argument("--workloads", default="get,set,create-delete,mixed")
    ap.add_argument("--outstanding", default="1,32,256")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    ensure_tools()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H%MZ")
    outdir = a.out or os.path.join(ROOT, "perf", "results", stamp)
    os.makedirs(outdir, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="rk-perf-", dir=os.environ.get("PERF_TMPDIR"))
    servers = {k: Server(k, workdir) for k in ("zookeeper", "ringkeeper")}
    rows = []
    try:
        zk_version = four_letter(servers["zookeeper"].port, "srvr").splitlines()[0].split(": ", 1)[1].split("-")[0]
        for workload in a.workloads.split(","):
            for outstanding in [int(n) for n in a.outstanding.split(",")]:
                row = {"workload": workload, "outstanding": outstanding}
                # Interleaved, ZooKeeper first then Ringkeeper, so drift in machine load hits both.
                for kind in ("zookeeper", "ringkeeper"):
                    out_json = os.path.join(outdir, f"{workload}-{outstanding}-{kind}.json")
                    row[kind] = bench(servers[kind], workload, outstanding, a.duration, a.warmup, out_json)
                    print(f"{workload:>14} {outstanding:>4} {kind:>10}: {row[kind]['throughput_ops_per_s']:>9.0f} ops/s "
                          f"p99 {row[kind]['latency_ms']['p99']:.3f} ms", flush=True)
                rows.append(row)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    meta = run_meta("perf/compare.py", zk_version)
    with open(os.path.join(outdir, "results.json"), "w") as f:
        json.dump({"meta": meta, "rows": rows}, f, indent=2)
    print(write_table(rows, os.path.join(outdir, "results.md"), meta))
    plot(rows, outdir)
    print(f"\nwritten to {outdir}")


if __name__ == "__main__":
    main()
