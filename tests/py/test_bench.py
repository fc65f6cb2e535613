"""`ringkeeper bench` end to end: short runs against Ringkeeper and against Java ZooKeeper, checking
that the JSON report holds sane, non-zero figures."""

import json
import os
import subprocess
import time

import pytest

from servers import RINGKEEPER, Server, java_zookeeper_available


def bench(server, tmp_path, *extra):
    out = tmp_path / "bench.json"
    cmd = [RINGKEEPER, "bench", "--hosts", server.hosts, "--duration", "1s", "--warmup", "300ms",
           "--keys", "50", "--json", str(out), *extra]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    first = run.stdout.splitlines()[0]
    assert first.startswith("throughput ") and " p99 " in first, run.stdout
    return json.loads(out.read_text()), run.stdout


def check_sane(report, expect_rate=None):
    assert report["throughput_ops_per_s"] > 0
    lat = report["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p999"] <= lat["max"], lat
    assert report["ops"] > 0 and report["errors"] == {}
    assert report["generator_cpu_s_per_1000_ops"] > 0
    if expect_rate:
        assert 0.7 * expect_rate <= report["throughput_ops_per_s"] <= 1.1 * expect_rate, report["throughput_ops_per_s"]


KINDS = ["ringkeeper"] + (["zookeeper"] if java_zookeeper_available() else [])


@pytest.mark.parametrize("kind", KINDS)
def test_closed_loop_mixed(kind, server_factory, tmp_path):
    s = server_factory(kind=kind)
    report, _ = bench(s, tmp_path, "--workload", "get=3,set=1,create-delete=1,exists=1,children=1,multi=1")
    check_sane(report)
    assert report["outstanding"] == 32 and report["offered_rate_ops_per_s"] is None
    by_op = report["latency_ms_by_op"]
    assert set(by_op) == {"get", "set", "create-delete", "exists", "children", "multi"}, by_op
    for op, lat in by_op.items():
        assert 0 < lat["p50"] <= lat["p99"] <= lat["max"] <= report["latency_ms"]["max"], (op, lat)


@pytest.mark.parametrize("kind", KINDS)
def test_open_loop_hits_its_rate(kind, server_factory, tmp_path):
    s = server_factory(kind=kind)
    report, _ = bench(s, tmp_path, "--workload", "get", "--rate", "500")
    check_sane(report, expect_rate=500)
    assert report["offered_rate_ops_per_s"] == 500
    assert "latency_ms_by_op" not in report  # one kind of operation: the whole is its figure


def test_ramp_finds_a_sustainable_rate(server, tmp_path):
    out = tmp_path / "ramp.json"
    cmd = [RINGKEEPER, "bench", "--hosts", server.hosts, "--workload", "get", "--ramp", "--rate", "200",
           "--ramp-step", "1s", "--slo-p99-ms", "0.000001", "--keys", "10", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    # An impossible objective: the first step already misses it, so nothing is sustainable.
    assert report["highest_sustainable_ops_per_s"] is None
    assert len(report["steps"]) == 1 and report["steps"][0]["sustained"] is False
    assert "no step met" in run.stdout


def test_unknown_workload_is_a_clear_error(server):
    run = subprocess.run([RINGKEEPER, "bench", "--hosts", server.hosts, "--workload", "teleport"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "unknown operation 'teleport'" in run.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("workload", ["ephemeral-churn", "session-storm", "lock", "watch"])
def test_scenario_workloads(kind, workload, server_factory, tmp_path):
    s = server_factory(kind=kind)
    report, _ = bench(s, tmp_path, "--workload", workload, "--sessions", "4", "--outstanding", "4")
    check_sane(report)
    if workload == "ephemeral-churn":
        # Every create was deleted again, or went with its session: no ephemeral is left.
        from kazoo.client import KazooClient
        zk = KazooClient(hosts=s.hosts)
        zk.start(timeout=10)
        try:
            for parent in zk.get_children("/rkbench/scratch"):
                assert zk.get_children(f"/rkbench/scratch/{parent}") == [], parent
        finally:
            zk.stop()
            zk.close()


@pytest.mark.parametrize("workload", ["get", "session-storm", "watch"])
def test_an_operation_budget_ends_the_run_and_sets_its_length(workload, server, tmp_path):
    """With --ops the run ends when the budget is spent, and the throughput is the budget over
    the time it took: not over --duration, nor rounded up to whole seconds."""
    out = tmp_path / "ops.json"
    cmd = [RINGKEEPER, "bench", "--hosts", server.hosts, "--workload", workload, "--ops", "1500",
           "--duration", "120s", "--warmup", "0s", "--sessions", "4", "--outstanding", "4",
           "--keys", "10", "--json", str(out)]
    t0 = time.monotonic()
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=100)
    wall = time.monotonic() - t0
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    assert report["ops"] >= 1500, report
    # The measured part lies inside the process's life, which the budget cut short.
    assert 0 < report["measured_s"] < wall < 60, (report["measured_s"], wall)
    assert report["throughput_ops_per_s"] == pytest.approx(report["ops"] / report["measured_s"], rel=1e-6)


def test_sessions_over_several_servers_report_latency_by_server(server_factory, tmp_path):
    a, b = server_factory(), server_factory()
    out = tmp_path / "hosts.json"
    cmd = [RINGKEEPER, "bench", "--hosts", f"{a.hosts},{b.hosts}", "--workload", "get", "--sessions", "4",
           "--duration", "1s", "--warmup", "200ms", "--keys", "10", "--json", str(out)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    report = json.loads(out.read_text())
    by_host = report["latency_ms_by_host"]
    assert set(by_host) == {a.hosts, b.hosts}, by_host
    for host, lat in by_host.items():
        assert 0 < lat["p50"] <= lat["p99"] <= report["latency_ms"]["max"], (host, lat)
        assert f"\n  {host}: p50 " in run.stdout, run.stdout


def test_an_operation_budget_of_zero_is_refused(server):
    run = subprocess.run([RINGKEEPER, "bench", "--hosts", server.hosts, "--ops", "0"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode != 0 and "--ops" in run.stderr, run.stderr


def test_report_writes_markdown_and_plots(server, tmp_path):
    report_dir = tmp_path / "report"
    cmd = [RINGKEEPER, "bench", "--hosts", server.hosts, "--workload", "get", "--ramp", "--rate", "20000",
           "--ramp-step", "1s", "--slo-p99-ms", "1000", "--keys", "10", "--report", str(report_dir)]
    # A lenient objective from a high start: the ramp ends when the server saturates, in a few steps.
    run = subprocess.run(cmd + ["--json", str(tmp_path / "r.json")], capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr
    md = (report_dir / "report.md").read_text()
    assert ("Highest sustainable rate" in md or "No step met" in md) and "| 20000 ops/s offered |" in md, md
    for png in ("throughput.png", "latency-vs-load.png"):
        data = (report_dir / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000, png
        assert f"]({png})" in md
