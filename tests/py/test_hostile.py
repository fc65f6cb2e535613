"""Issue 8: defects found by testing as users and attackers would, each shown through real sockets
against the real binary.

Compatibility: null data, paths outside the BMP, starting on a port a stopped server leaves in
TIME_WAIT. Resources: half-open connects, multiRead amplification, clients that never read, CPU
stalls (a huge ACL, getAllChildrenNumber over a big tree), four-letter words, the session-secret
file. The resource tests run the release build (bounds on latency and memory are a release
build's to keep) and watch the server's RSS and an innocent client's `ruok` latency throughout
(attacks.Monitor); perf/attack.py runs the same probes at any size and reports the figures.
"""

import os
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pytest
from kazoo.exceptions import BadArgumentsError

import attacks
import jute
from jute import W
from servers import RINGKEEPER, RINGKEEPER_RELEASE, Server, four_letter, free_port, java_zookeeper_available

RSS_GROWTH_MAX_MIB = 160
# An innocent client's `ruok` during an attack: about 20 ms here at worst, 105 ms once in CI on a
# busy machine. What the bound must catch is a core held by the attacker, which stalled the
# innocent for 1.5 s (huge ACLs before the front yielded between requests) or for the whole
# attack (unsliced walks, unbounded queues).
INNOCENT_MS_MAX = 300
ONE_MIB_NODE = 1_000_000  # fits in jute.maxbuffer (1 MiB - 1) with its request header


@pytest.fixture
def release():
    """Starts release-build servers with extra zoo.cfg lines."""
    if not os.path.exists(RINGKEEPER_RELEASE):
        pytest.fail(f"{RINGKEEPER_RELEASE} missing: run `cargo build --release` first")
    started = []

    def make(extra=""):
        s = Server("ringkeeper", extra, binary=RINGKEEPER_RELEASE)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


def assert_innocent_unharmed(report):
    assert report["ruok_count"] >= 5, report
    assert report["ruok_failed"] == 0, report
    assert report["ruok_max_ms"] < INNOCENT_MS_MAX, report


# ---- compatibility ------------------------------------------------------------------------------

def test_null_data_stays_null_through_multi_log_snapshot_restart_and_inspect(server, clients):
    zk = clients(server.hosts)
    zk.create("/null", None)
    zk.create("/empty", b"")
    assert zk.get("/null")[0] is None
    assert zk.get("/empty")[0] == b""
    zk.set("/empty", None)
    zk.set("/null", b"")
    assert zk.get("/empty")[0] is None and zk.get("/null")[0] == b""
    # multi and multiRead with null buffers (kazoo's transactions refuse None): raw requests.
    c = jute.Conn(server.port)
    w = W().int(jute.CREATE).bool(False).int(-1).str("/in-multi").buf(None).acls(attacks.OPEN).int(0)
    w.int(jute.SET_DATA).bool(False).int(-1).str("/null").buf(None).int(-1).int(-1).bool(True).int(-1)
    _, (err, _, _) = c.call(jute.MULTI, bytes(w.b))
    assert err == 0
    assert zk.get("/in-multi")[0] is None and zk.get("/null")[0] is None
    w = W().int(jute.GET_DATA).bool(False).int(-1).str("/null").bool(False)
    w.int(jute.GET_DATA).bool(False).int(-1).str("/empty").bool(False).int(-1).bool(True).int(-1)
    _, (err, _, r) = c.call(jute.MULTI_READ, bytes(w.b))
    assert err == 0
    r.int(), r.bool(), r.int()
    assert r.buf() is None
    r.stat()
    r.int(), r.bool(), r.int()
    assert r.buf() is None
    c.close()
    # Only the log holds these (no snapshot yet), then only a snapshot does.
    server.kill9_and_restart()
    zk2 = clients(server.hosts)
    assert [zk2.get(p)[0] for p in ("/null", "/empty", "/in-multi")] == [None, None, None]
    assert "zxid" in four_letter(server.port, "snap")
    log_dir = os.path.join(server.data_dir(), "rk-log")
    logs = [subprocess.run([RINGKEEPER, "inspect", "log", os.path.join(log_dir, f)], capture_output=True,
                           text=True, check=True).stdout for f in sorted(os.listdir(log_dir)) if f.startswith("log.0")]
    assert any("data: None" in out for out in logs), logs
    snap_dir = os.path.join(server.data_dir(), "rk-snap")
    newest = sorted(f for f in os.listdir(snap_dir) if not f.endswith(".tmp"))[-1]
    out = subprocess.run([RINGKEEPER, "inspect", "snapshot", os.path.join(snap_dir, newest)],
                         capture_output=True, text=True, check=True).stdout
    block = out[out.index("/null\n"):].split("\n/", 1)[0]
    assert "data = null" in block, block
    assert "data = null" not in out[out.index("/zookeeper\n"):].split("\n/", 1)[0]
    zk2.stop()
    server.kill9_and_restart()
    zk3 = clients(server.hosts)
    assert zk3.get("/in-multi")[0] is None and zk3.exists("/in-multi").dataLength == 0


@pytest.mark.parametrize("name", ["\U0001F600", "a\U00010000", "\U0010FFFF", "x\U0001F4A9y"])
def test_paths_outside_the_bmp_are_refused_as_zookeeper_refuses_them(server, clients, name):
    zk = clients(server.hosts)
    with pytest.raises(BadArgumentsError):
        zk.create("/" + name, b"")
    zk.create("/\u00e9\u4e2d\ud7ff", b"")  # BMP characters outside the refused ranges are fine
    assert set(zk.get_children("/")) == {"zookeeper", "\u00e9\u4e2d\ud7ff"}


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper (Debian package) not installed")
def test_starts_on_the_port_java_zookeeper_just_left(clients):
    zk_server = Server("zookeeper")
    port = zk_server.port
    try:
        for _ in range(3):
            # closeSession makes the server close the socket first: its end stays in TIME_WAIT.
            zk = clients(zk_server.hosts)
            zk.create("/x", b"", ephemeral=True, sequence=True)
            zk.stop()
            zk.close()
    finally:
        zk_server.stop()
    time_wait = subprocess.run(["ss", "-tan", "state", "time-wait", f"( sport = :{port} )"],
                               capture_output=True, text=True).stdout
    rk = Server("ringkeeper", port=port)
    try:
        assert rk.port == port
        zk = clients(rk.hosts)
        zk.create("/after-zookeeper", b"ok")
        assert zk.get("/after-zookeeper")[0] == b"ok", time_wait
    finally:
        rk.stop()


def test_a_port_with_a_live_listener_is_still_refused():
    with socket.socket() as holder:
        port = free_port()
        holder.bind(("127.0.0.1", port))
        holder.listen(1)
        with tempfile.TemporaryDirectory() as d:
            cfg = os.path.join(d, "zoo.cfg")
            with open(cfg, "w") as f:
                f.write(f"dataDir={d}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n")
            out = subprocess.run([RINGKEEPER, "serve", "--config", cfg, "--no-pin"], capture_output=True,
                                 text=True, timeout=30)
    assert out.returncode == 1
    assert "another server is listening" in out.stderr


# ---- resources ----------------------------------------------------------------------------------

def test_half_open_connects_are_closed_within_the_connect_timeout(release):
    srv = release("nio.sessionlessCnxnTimeout=1000\nmaxClientCnxns=0")
    mon = attacks.Monitor(srv.pid, srv.port)
    length_only = attacks.half_open(srv.port, 200)
    # A connect frame announced at 1 MiB and cut short: refused for its size at once.
    big = attacks.half_open(srv.port, 20, partial_bytes=60_000, frame_len=1_048_000)
    try:
        assert attacks.wait_all_closed(big, timeout=0.9) is not None, "oversized connect frames not closed"
        closed_after = attacks.wait_all_closed(length_only, timeout=3.0)
        assert closed_after is not None, "half-open connects still open 3 s after a 1 s connect timeout"
        time.sleep(0.3)
        report = mon.stop()
    finally:
        for s in length_only + big:
            s.close()
    assert report["fds_max"] <= report["fds_base"] + 230, report
    assert open_fds_settle(srv.pid, report["fds_base"] + 10), "descriptors not given back"
    assert_innocent_unharmed(report)
    assert int(mntr(srv.port)["zk_rk_connections_closed_by_limits"]) >= 200


def open_fds_settle(pid, bound, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if attacks.open_fds(pid) <= bound:
            return True
        time.sleep(0.05)
    return False


def mntr(port):
    return dict(line.split("\t", 1) for line in four_letter(port, "mntr").splitlines() if "\t" in line)


def test_a_multiread_whose_reply_no_client_could_accept_is_refused_without_building_it(release):
    srv = release()
    assert attacks.create_node(srv.port, "/big", b"x" * ONE_MIB_NODE) == 0
    mon = attacks.Monitor(srv.pid, srv.port)
    err, ms, request_bytes, _ = attacks.multiread_amplify(srv.port, "/big", 400)
    report = mon.stop()
    assert request_bytes < 8000
    assert err == -5, f"expected MARSHALLINGERROR, got {err}"
    assert report["rss_growth_mib"] < RSS_GROWTH_MAX_MIB, report
    assert_innocent_unharmed(report)
    # One getData of the node is still answered (its reply is only a little over jute.maxbuffer).
    err, _, _, reply_bytes = attacks.multiread_amplify(srv.port, "/big", 1)
    assert err == 0 and reply_bytes > ONE_MIB_NODE


def test_clients_that_never_read_are_paused_then_closed_and_hold_little_memory(release):
    srv = release("ringkeeper.clientWriteStallMs=3000")
    assert attacks.create_node(srv.port, "/big", b"x" * ONE_MIB_NODE) == 0
    mon = attacks.Monitor(srv.pid, srv.port)
    socks = attacks.never_read(srv.port, conns=8, requests_each=100, path="/big")
    try:
        time.sleep(2.0)
        during = mon.report()
        # Their output stalls for clientWriteStallMs, then the server closes them.
        closed = all(attacks.closed_by_peer(s, 6.0) for s in socks)
        report = mon.stop()
    finally:
        for s in socks:
            s.close()
    assert during["rss_growth_mib"] < RSS_GROWTH_MAX_MIB, during
    assert report["rss_growth_mib"] < RSS_GROWTH_MAX_MIB, report
    assert closed, "connections whose output stalled were not closed"
    assert_innocent_unharmed(report)
    assert int(mntr(srv.port)["zk_rk_connections_closed_by_limits"]) >= 8


def test_the_server_wide_output_budget_closes_the_biggest_queue(release):
    srv = release("ringkeeper.serverOutputBudgetBytes=3000000\nringkeeper.clientWriteStallMs=60000")
    assert attacks.create_node(srv.port, "/big", b"x" * ONE_MIB_NODE) == 0
    socks = attacks.never_read(srv.port, conns=6, requests_each=20, path="/big")
    try:
        closed = sum(attacks.closed_by_peer(s, 3.0) for s in socks)
    finally:
        for s in socks:
            s.close()
    assert closed >= 1, "no connection closed although the output budget was spent"
    assert "ringkeeper.serverOutputBudgetBytes" in srv.read_log()


def test_a_huge_acl_under_a_missing_parent_is_answered_at_once(release):
    srv = release()
    mon = attacks.Monitor(srv.pid, srv.port)
    err, ms = attacks.acl_stall(srv.port, 20_000)
    report = mon.stop()
    assert err == -101, f"expected NONODE, got {err}"
    assert ms < 100, f"{ms:.0f} ms for the NoNode answer"
    assert_innocent_unharmed(report)


def test_reads_of_a_node_with_a_huge_acl_do_not_stall_other_clients(release):
    srv = release()
    mon = attacks.Monitor(srv.pid, srv.port)
    attacks.acl_check_stall(srv.port, 30_000, 500)
    report = mon.stop()
    assert_innocent_unharmed(report)


def test_get_all_children_number_never_stalls_the_core(release):
    srv = release()
    attacks.fill_tree(srv.port, "/t", 100_000)
    counts, ms = attacks.count_stall(srv.port, "/", 20)
    assert counts == [100_004] * 20, counts[:3]  # /t, its children, /zookeeper and its two
    assert ms < 100, f"{ms:.0f} ms for 20 getAllChildrenNumber('/')"
    # Below the root it is a walk, run in slices: other clients go on being served.
    mon = attacks.Monitor(srv.pid, srv.port)
    counts, ms = attacks.count_stall(srv.port, "/t", 20)
    report = mon.stop()
    assert counts == [100_000] * 20
    assert_innocent_unharmed(report)


def test_a_count_still_being_walked_keeps_its_place_and_lets_its_connection_close(release):
    srv = release("maxClientCnxns=3")
    attacks.fill_tree(srv.port, "/t", 20_000)
    gacn = attacks._request(1, jute.GET_ALL_CHILDREN, bytes(W().str("/t").b))
    c = jute.Conn(srv.port)
    c.s.sendall(gacn + attacks._request(2, jute.CLOSE_SESSION, b""))
    first, second = attacks.read_reply(c.s), attacks.read_reply(c.s)
    assert (first[0], first[2], struct.unpack(">i", first[3])[0]) == (1, 0, 20_000)
    assert (second[0], second[2]) == (2, 0), "closeSession answered after the count"
    assert attacks.closed_by_peer(c.s, 5.0)
    c.close()
    # Clients that go away with counts being walked give their connection slots back.
    for _ in range(6):
        gone = jute.Conn(srv.port)
        gone.s.sendall(gacn * 3)
        gone.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            fresh = [jute.Conn(srv.port) for _ in range(3)]
            break
        except (ConnectionError, OSError):
            assert time.monotonic() < deadline, "connection slots never given back"
            time.sleep(0.2)
    for f in fresh:
        _, (err, _, _) = f.call(jute.EXISTS, bytes(W().str("/t").bool(False).b))
        assert err == 0
        f.close()


def test_the_embedded_default_enables_only_words_that_reveal_no_data(tmp_path):
    if attacks.ruok_ms(2181, timeout=0.5) is not None or port_taken(2181):
        pytest.skip("something already listens on 127.0.0.1:2181")
    proc = subprocess.Popen([RINGKEEPER, "serve", "--no-pin"], cwd=tmp_path, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while attacks.ruok_ms(2181, timeout=0.5) is None:
            assert time.monotonic() < deadline, "the embedded default never served"
            time.sleep(0.1)
        for word in ["ruok", "srvr", "mntr", "conf", "isro", "dirs"]:
            assert "not in the whitelist" not in four_letter(2181, word), word
        for word in ["dump", "wchp", "wchc", "wchs", "cons", "stat", "envi", "snap", "crst", "srst"]:
            assert "is not executed because it is not in the whitelist" in four_letter(2181, word), word
        assert not os.path.exists(tmp_path / "ringkeeper-data" / "rk-snap") or \
            not os.listdir(tmp_path / "ringkeeper-data" / "rk-snap")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def port_taken(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def test_a_connection_holds_at_most_32_identities(server):
    c = jute.Conn(server.port)
    # The connection's ip identity, then 31 digests.
    for i in range(31):
        _, (err, _, _) = c.call(jute.AUTH, bytes(W().int(0).str("digest").buf(f"user{i}:pw".encode()).b), xid=-4)
        assert err == 0, i
    _, (err, _, _) = c.call(jute.WHO_AM_I, b"")
    assert err == 0
    _, (err, _, _) = c.call(jute.AUTH, bytes(W().int(0).str("digest").buf(b"one-too-many:pw").b), xid=-4)
    assert err == -115, "AUTHFAILED"
    assert attacks.closed_by_peer(c.s, 5.0)
    c.close()


def test_snap_runs_at_most_once_per_interval(release):
    srv = release("admin.rateLimiterIntervalInMS=60000")
    answers = attacks.snap_flood(srv.port, 5)
    assert "zxid" in answers[0], answers[0]
    assert all("snap refused" in a and "admin.rateLimiterIntervalInMS" in a for a in answers[1:]), answers
    snaps = [f for f in os.listdir(os.path.join(srv.data_dir(), "rk-snap")) if not f.endswith(".tmp")]
    assert len(snaps) == 1, snaps


def test_the_session_secret_is_private_and_nothing_is_world_writable(server, clients):
    zk = clients(server.hosts)
    zk.create("/n", b"v")
    assert "zxid" in four_letter(server.port, "snap")
    secret = os.path.join(server.data_dir(), "rk-session-secret")
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    for root, dirs, files in os.walk(server.data_dir()):
        for name in dirs + files:
            mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
            assert mode & 0o002 == 0, f"{name} is world-writable ({mode:o})"
    # A key left readable by an older version is made private at the next start.
    os.chmod(secret, 0o644)
    server.kill9_and_restart()
    assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
    assert clients(server.hosts).get("/n")[0] == b"v"


def test_the_session_secret_stays_private_under_a_permissive_umask(tmp_path):
    port = free_port()
    cfg = tmp_path / "zoo.cfg"
    cfg.write_text(f"dataDir={tmp_path}/data\nclientPort={port}\nclientPortAddress=127.0.0.1\n")
    proc = subprocess.Popen(["sh", "-c", f"umask 000 && exec {RINGKEEPER} serve --config {cfg} --no-pin"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while "Mode: " not in try_word(port, "srvr"):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        secret = tmp_path / "data" / "rk-session-secret"
        assert stat.S_IMODE(os.stat(secret).st_mode) == 0o600
        for root, dirs, files in os.walk(tmp_path / "data"):
            for name in dirs + files:
                mode = stat.S_IMODE(os.stat(os.path.join(root, name)).st_mode)
                assert mode & 0o022 == 0, f"{name} is writable by others ({mode:o})"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def try_word(port, word):
    try:
        return four_letter(port, word, timeout=0.5)
    except OSError:
        return ""
