"""Service management (issue 10, item 5): SIGTERM stops a server cleanly (exit 0, nothing
acknowledged lost, sockets closed), `ringkeeper status` prints what `zkServer.sh status` prints,
and the systemd unit in packaging/ passes systemd's own checker."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest
from kazoo.client import KazooClient

from servers import RINGKEEPER, Ensemble, Server, free_port, java_zookeeper_available

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ZKSERVER_SH = "/usr/share/zookeeper/bin/zkServer.sh"


class Writer:
    """Creates /w/PREFIX-N through `hosts` as fast as the server acknowledges (up to `limit`, a
    few hundred in flight) until the first failure, recording which creates were acknowledged."""

    def __init__(self, hosts, prefix="a", limit=20000):
        self.zk = KazooClient(hosts=hosts, timeout=10)
        self.zk.start(timeout=15)
        self.zk.ensure_path("/w")
        self.prefix = prefix
        self.acked = []
        self.limit = limit
        self.halt = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        n = 0
        inflight = []
        while n < self.limit and not self.halt.is_set():
            while len(inflight) < 200 and n < self.limit:
                path = f"/w/{self.prefix}-{n}"
                inflight.append((path, self.zk.create_async(path, b"x")))
                n += 1
            path, result = inflight.pop(0)
            try:
                result.get(timeout=15)
                self.acked.append(path)
            except Exception:
                self.halt.set()
        for path, result in inflight:
            try:
                result.get(timeout=15)
                self.acked.append(path)
            except Exception:
                pass

    def wait_acked(self, count, timeout=30):
        for _ in range(int(timeout * 20)):
            if len(self.acked) >= count or not self.thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert len(self.acked) >= count, f"only {len(self.acked)} creates acknowledged"

    def finish(self):
        self.halt.set()
        self.thread.join(timeout=60)
        try:
            self.zk.stop()
            self.zk.close()
        except Exception:
            pass
        return list(self.acked)


def refused(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def all_present(hosts, paths):
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    try:
        present = set(zk.get_children("/w"))
    finally:
        zk.stop()
        zk.close()
    return [p for p in paths if p.rsplit("/", 1)[1] not in present]


def test_sigterm_under_write_load_exits_0_and_keeps_every_acknowledged_write():
    srv = Server("ringkeeper")
    try:
        w = Writer(srv.hosts)
        w.wait_acked(300)
        srv.proc.send_signal(signal.SIGTERM)
        assert srv.proc.wait(timeout=30) == 0, srv.read_log()
        acked = w.finish()
        assert "SIGTERM: stopping" in srv.read_log()
        assert "stopped: the transaction log is synced" in srv.read_log()
        assert refused(srv.port), "the client port still accepts after the server stopped"
        srv.restart()
        assert all_present(srv.hosts, acked) == [], "acknowledged creates lost across SIGTERM"
    finally:
        srv.stop()


def test_sigint_on_an_idle_server_exits_0():
    srv = Server("ringkeeper")
    try:
        srv.proc.send_signal(signal.SIGINT)
        assert srv.proc.wait(timeout=30) == 0, srv.read_log()
        assert "SIGINT: stopping" in srv.read_log()
    finally:
        srv.stop()


def test_sigterm_of_the_leader_exits_0_and_the_others_go_on():
    ens = Ensemble(voters=3)
    try:
        w = Writer(ens.hosts())
        w.wait_acked(300)
        leader = ens.leader()
        ens.procs[leader].send_signal(signal.SIGTERM)
        assert ens.procs[leader].wait(timeout=30) == 0, ens.read_log(leader)
        acked = w.finish()
        others = [i for i in ens.ids if i != leader]
        ens.wait_serving(others, timeout=30)
        after = Writer(ens.hosts(others), prefix="b")
        after.wait_acked(100)
        acked += after.finish()
        assert all_present(ens.hosts(others), acked) == []
        ens.start(leader)
        assert all_present(ens.hosts([leader]), acked) == [], "the restarted member lacks acknowledged creates"
    finally:
        ens.stop()


def status(cfg):
    r = subprocess.run([RINGKEEPER, "status", "--config", cfg], capture_output=True, text=True, timeout=30)
    return r.returncode, r.stdout


def test_status_prints_what_zkserver_sh_prints():
    srv = Server("ringkeeper")
    try:
        code, out = status(srv.cfg_path)
        assert code == 0
        assert out == (f"Client port found: {srv.port}. Client address: 127.0.0.1. Client SSL: false.\n"
                       "Mode: standalone\n")
        srv.proc.terminate()
        assert srv.proc.wait(timeout=30) == 0
        code, out = status(srv.cfg_path)
        assert code == 1
        assert out.endswith("Error contacting service. It is probably not running.\n")
    finally:
        srv.stop()


def test_status_of_ensemble_members_names_their_modes():
    ens = Ensemble(voters=3)
    try:
        modes = {}
        for i in ens.ids:
            code, out = status(os.path.join(ens.dirs[i], "zoo.cfg"))
            assert code == 0, out
            first, mode = out.splitlines()
            assert first == f"Client port found: {ens.port(i)}. Client address: 127.0.0.1. Client SSL: false."
            modes[i] = mode
        assert sorted(modes.values()) == ["Mode: follower", "Mode: follower", "Mode: leader"]
    finally:
        ens.stop()


@pytest.mark.skipif(not (java_zookeeper_available() and os.path.exists(ZKSERVER_SH)),
                    reason="Java ZooKeeper's zkServer.sh is not installed")
def test_status_matches_zkserver_sh_for_the_same_config():
    for kind in ("zookeeper", "ringkeeper"):
        srv = Server(kind)
        try:
            conf_dir = os.path.dirname(srv.cfg_path)
            # Debian's zkServer.sh takes the config file after the command.
            zk = subprocess.run([ZKSERVER_SH, "status", srv.cfg_path], capture_output=True, text=True,
                                timeout=60, env={**os.environ, "ZOO_LOG_DIR": conf_dir})
            rk_code, rk_out = status(srv.cfg_path)
            assert (rk_code, rk_out) == (zk.returncode, zk.stdout), (kind, zk.stderr)
        finally:
            srv.stop()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_the_systemd_unit_passes_systemd_analyze_verify():
    with open(os.path.join(ROOT, "packaging", "ringkeeper.service")) as f:
        unit = f.read()
    assert "ExecStart=/usr/local/bin/ringkeeper serve --config /etc/ringkeeper/zoo.cfg" in unit
    d = tempfile.mkdtemp(prefix="rk-unit-")
    try:
        path = os.path.join(d, "ringkeeper.service")
        with open(path, "w") as f:
            # The binary this test run built, where the unit names the installed one.
            f.write(unit.replace("/usr/local/bin/ringkeeper", os.path.abspath(RINGKEEPER)))
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ringkeeper.service" not in r.stderr, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_sigterm_stops_an_ensemble_member_under_full_load():
    """A member takes SIGTERM while a load generator keeps 256 writes outstanding: it still stops
    (the stop is looked at before the next append, and only what was queued then is written)."""
    ens = Ensemble(voters=3)
    bench = subprocess.Popen([RINGKEEPER, "bench", "--hosts", ens.hosts(), "--workload", "set", "--outstanding",
                              "256", "--sessions", "32", "--duration", "12s", "--warmup", "0s"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        for i in ens.ids:
            if i != ens.leader():
                victim = i
                break
        ens.procs[victim].send_signal(signal.SIGTERM)
        assert ens.procs[victim].wait(timeout=20) == 0, ens.read_log(victim)
        leader = ens.leader()
        ens.procs[leader].send_signal(signal.SIGTERM)
        assert ens.procs[leader].wait(timeout=20) == 0, ens.read_log(leader)
    finally:
        bench.kill()
        bench.wait()
        ens.stop()


def executor_cores(pid):
    """The cores the executor threads of process `pid` may run on."""
    cores = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            if f.read().startswith(("rk-core", "rk-front", "rk-pipeline")):
                cores |= os.sched_getaffinity(int(tid))
    return cores


def test_members_sharing_a_machine_are_pinned_to_different_cores():
    # As the README runs them: three `serve --config` on one machine, pinned (the default).
    allowed = sorted(os.sched_getaffinity(0))
    ens = Ensemble(pin=True)
    try:
        each = max(1, len(allowed) // 3)
        for rank, i in enumerate(ens.ids):
            want = {allowed[(rank * each + k) % len(allowed)] for k in range(each)}
            assert executor_cores(ens.procs[i].pid) == want, f"member {i}"
        # Two or more cores: the members do not all crowd onto one.
        used = set().union(*(executor_cores(p.pid) for p in ens.procs.values()))
        assert len(used) == min(len(allowed), 3 * each)
    finally:
        ens.stop()


def test_a_pinned_server_stays_on_the_cpus_it_was_given(tmp_path):
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        pytest.skip("needs two CPUs to give the server one that is not the first")
    cpu = allowed[-1]
    port = free_port()
    (tmp_path / "zoo.cfg").write_text(f"dataDir={tmp_path}/data\nclientPort={port}\n"
                                      "clientPortAddress=127.0.0.1\nadmin.enableServer=false\n")
    proc = subprocess.Popen(["taskset", "-c", str(cpu), RINGKEEPER, "serve", "--config", str(tmp_path / "zoo.cfg")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not executor_cores(proc.pid):
            assert proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.1)
        # Its core 0 is the first CPU it may use, not the machine's CPU 0.
        assert executor_cores(proc.pid) == {cpu}
    finally:
        proc.terminate()
        proc.wait(timeout=20)
