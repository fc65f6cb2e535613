"""Ringkeeper ensembles as real processes on loopback, each member started from a plain zoo.cfg
with `server.N` lines and a `myid`: election, writes through any member, global sessions, kill -9
of the leader under write load, quorum loss and return, members that fell behind caught up by
DIFF, SNAP and TRUNC, an observer, and zkCli.sh against the whole connect string."""

import contextlib
import os
import signal
import socket
import struct
import re
import subprocess
import threading
import time
import urllib.request

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NodeExistsError
from kazoo.retry import KazooRetry

from helpers import wait_until
from servers import Ensemble, four_letter, java_zookeeper_available

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"


@pytest.fixture
def ensemble_factory():
    made = []

    def make(**kw):
        e = Ensemble(**kw)
        made.append(e)
        return e

    yield make
    for e in made:
        e.stop()


def client(hosts, timeout=6, **kw):
    """A started client that reconnects through a member's failure; `zk.retry(...)` also retries
    a request (a retried create may then find its node: callers catch NodeExistsError)."""
    zk = KazooClient(hosts=hosts, timeout=timeout, connection_retry=KazooRetry(max_tries=-1, max_delay=0.2),
                     command_retry=KazooRetry(max_tries=50, max_delay=0.2), **kw)
    zk.start(timeout=20)
    return zk


@contextlib.contextmanager
def synced_on(ens, i, path):
    """A client on member `i` only, after a sync of `path`: it sees what the leader had."""
    z = client(f"127.0.0.1:{ens.port(i)}")
    try:
        z.sync(path)
        yield z
    finally:
        z.stop()
        z.close()


def modes(ens):
    return {i: ens.mode(i) for i in ens.ids}


def test_three_members_elect_one_leader_and_serve_writes_through_any_member(ensemble_factory):
    ens = ensemble_factory(voters=3, metrics=True)
    m = modes(ens)
    assert sorted(m.values()) == ["follower", "follower", "leader"], m
    zks = {i: client(f"127.0.0.1:{ens.port(i)}") for i in ens.ids}
    try:
        # A session's id carries the id of the member that created it, in its top byte.
        for i, zk in zks.items():
            assert zk.client_id[0] >> 56 == i, (i, hex(zk.client_id[0]))
        zks[1].create("/app", b"v1")
        zks[2].set("/app", b"v2")
        for i in ens.ids:
            zks[i].create(f"/app/n-{i}-", b"", sequence=True)
        zks[3].create("/app/eph", b"", ephemeral=True)
        for i, zk in zks.items():
            zk.sync("/app")
            data, stat = zk.get("/app")
            assert data == b"v2" and stat.version == 1, (i, data, stat)
            assert len(zk.get_children("/app")) == 4, i
            # zxids carry the epoch: the first leader's is 1.
            assert stat.mzxid >> 32 == 1
        # A follower commits what it has durable once the leader says its own log has it too
        # (two of three), without waiting for the COMMIT, which mostly comes later; the
        # leader itself commits on ACKs only.
        follower = next(i for i in (1, 2) if m[i] == "follower")
        for r in [zks[follower].create_async(f"/app/burst-{n}", b"") for n in range(300)]:
            r.get(timeout=30)

        def early(i):
            counters = dict(line.split("\t", 1) for line in four_letter(ens.port(i), "mntr").splitlines()
                            if "\t" in line)
            return int(counters["zk_rk_txns_committed_on_leader_synced"])

        assert early(follower) > 0
        assert early(ens.leader()) == 0

        def exported(i):
            text = urllib.request.urlopen(f"http://127.0.0.1:{ens.metrics_ports[i]}/metrics", timeout=5).read()
            return next(float(line.split()[1]) for line in text.decode().splitlines()
                        if line.startswith("rk_txns_committed_on_leader_synced_total "))

        # The same counter in the Prometheus exposition (it can only have grown since).
        assert exported(follower) >= early(follower) > 0
        assert exported(ens.leader()) == 0
        # A watch set through one member fires for a write through another.
        fired = threading.Event()
        zks[1].get("/app", watch=lambda ev: fired.set())
        zks[3].set("/app", b"v3")
        assert fired.wait(5)
        # The ephemeral's session closes on member 3: it goes everywhere.
        zks[3].stop()
        zks[3].close()
        for i in (1, 2):
            zks[i].sync("/app")
            assert zks[i].exists("/app/eph") is None, i
        mntr = four_letter(ens.port(ens.leader()), "mntr")
        assert "zk_server_state\tleader" in mntr
    finally:
        for zk in zks.values():
            zk.stop()
            zk.close()


class _Writer:
    """Creates `parent`/wNNNNN through `zk` in a thread of its own until stopped (at most `limit`),
    recording each acknowledged path and the gaps between acknowledgements."""

    def __init__(self, zk, parent, limit, data=b"x"):
        self.acked = []
        self.gaps = []
        self._stop = threading.Event()

        def run():
            last_ok = time.monotonic()
            n = 0
            while not self._stop.is_set() and n < limit:
                path = f"{parent}/w{n:05d}"
                try:
                    zk.create(path, data)
                    self.acked.append(path)
                except NodeExistsError:
                    self.acked.append(path)  # a retry of a create that had gone through
                except Exception:
                    time.sleep(0.01)
                    continue
                now = time.monotonic()
                self.gaps.append(now - last_ok)
                last_ok = now
                n += 1

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def more(self, n, timeout):
        """Whether `n` more writes are acknowledged within `timeout` seconds."""
        before = len(self.acked)
        return wait_until(lambda: len(self.acked) >= before + n, timeout=timeout)

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=30)


def _assert_on_every_member(ens, parent, acked):
    """Every acknowledged path under `parent` is on every member (each read after a sync)."""
    for i in ens.ids:
        with synced_on(ens, i, parent) as z:
            have = set(z.get_children(parent))
        missing = [p for p in acked if p.rsplit("/", 1)[1] not in have]
        assert not missing, (i, missing[:5])


def test_kill9_of_the_leader_under_write_load_loses_no_acknowledged_write(ensemble_factory):
    ens = ensemble_factory(voters=3)
    zk = client(ens.hosts())
    zk.create("/load", b"")
    w = _Writer(zk, "/load", 3000)
    assert w.more(100, timeout=30)
    session = zk.client_id
    old = ens.leader()
    ens.kill9(old)
    assert w.more(100, timeout=30), "writes resumed after the leader died"
    new = ens.leader()
    assert new is not None and new != old
    # The writer's session lived through the failover (a new leader expires nobody).
    assert zk.client_id == session
    w.stop()
    ens.start(old)
    # Every acknowledged write is on every member, the old leader included.
    _assert_on_every_member(ens, "/load", w.acked)
    zk.stop()
    zk.close()
    print(f"longest gap between acknowledged writes across the failover: {max(w.gaps) * 1000:.0f} ms")


def test_sessions_on_followers_live_while_their_clients_ping_and_expire_when_they_stop(ensemble_factory):
    from helpers import PausableProxy

    ens = ensemble_factory(voters=3)
    follower = next(i for i in ens.ids if ens.mode(i) == "follower")
    proxy = PausableProxy(ens.port(follower))
    try:
        # A 1 s session on a follower: only the leader expires sessions, and it hears of this
        # one's pings from the follower's ping answers.
        live = client(f"127.0.0.1:{ens.port(follower)}", timeout=1.0)
        gone = KazooClient(hosts=proxy.hosts, timeout=1.0)
        gone.start(timeout=10)
        live.create("/s-live", b"", ephemeral=True)
        gone.create("/s-gone", b"", ephemeral=True)
        # The second client goes silent (its connection stays open but carries nothing).
        proxy.freeze()
        time.sleep(3.0)
        observer = client(f"127.0.0.1:{ens.port(ens.leader())}")
        assert wait_until(lambda: observer.exists("/s-gone") is None, timeout=10), "the silent session expired"
        assert observer.exists("/s-live") is not None, "the pinging session on a follower lives"
        observer.stop()
        observer.close()
        live.stop()
        live.close()
        gone.stop()
        gone.close()
    finally:
        proxy.close()


def test_losing_quorum_stops_service_and_it_resumes_when_quorum_returns(ensemble_factory):
    ens = ensemble_factory(voters=3)
    zk = client(ens.hosts())
    zk.create("/q", b"before")
    zk.stop()
    zk.close()
    leader = ens.leader()
    others = [i for i in ens.ids if i != leader]
    ens.kill9(others[0])
    ens.kill9(others[1])
    # Alone, the leader stops serving within syncLimit, and says so.
    assert wait_until(lambda: ens.mode(leader) is None, timeout=10), ens.mode(leader)
    assert "not currently serving" in four_letter(ens.port(leader), "srvr")
    lone = KazooClient(hosts=f"127.0.0.1:{ens.port(leader)}", timeout=2)
    with pytest.raises(Exception):
        lone.start(timeout=2)
    lone.close()
    ens.start(others[0], wait=False)
    ens.wait_serving([leader, others[0]])
    zk = client(ens.hosts([leader, others[0]]))
    assert zk.get("/q")[0] == b"before"
    zk.set("/q", b"after")
    zk.stop()
    zk.close()


@pytest.mark.parametrize("kind,voters,cut", [("ringkeeper", 3, "leader"), ("ringkeeper", 3, "follower"),
                                              ("ringkeeper", 5, "leader+follower"), ("zookeeper", 3, "leader")])
def test_a_partitioned_minority_commits_nothing_while_the_majority_goes_on(ensemble_factory, kind, voters, cut):
    """A minority (the leader, a follower, or of five members the leader and a follower) is cut
    off from the others: all quorum and election traffic between the sides goes silent,
    connections open, as across a real partition. Writes sent to the minority are never
    acknowledged and never reach the majority; the majority (electing a new leader if needed)
    commits writes; the minority stops serving; once healed, every member serves and agrees."""
    ens = ensemble_factory(voters=voters, partitionable=True, kind=kind)
    leader = ens.leader()
    followers = [i for i in ens.ids if i != leader]
    minority = {"leader": [leader], "follower": followers[:1], "leader+follower": [leader, followers[0]]}[cut]
    rest = [i for i in ens.ids if i not in minority]
    setup = client(ens.hosts())
    setup.create("/p", b"")
    setup.stop()
    setup.close()
    cut_off = []
    for i in minority:
        z = KazooClient(hosts=f"127.0.0.1:{ens.port(i)}", timeout=4,
                        connection_retry=KazooRetry(max_tries=-1, max_delay=0.2))
        z.start(timeout=20)
        cut_off.append(z)
    zrest = client(ens.hosts(rest))
    try:
        for z in cut_off:
            z.sync("/p")
        ens.partition(minority, rest)
        time.sleep(0.2)  # every pump has seen the freeze (one may be inside a 50 ms select)
        lost = [z.create_async(f"/p/lone{n}-{k}", b"") for n, z in enumerate(cut_off) for k in range(5)]
        # The majority side commits (through a new leader, when the old one is cut off).
        for k in range(20):
            try:
                zrest.retry(zrest.create, f"/p/rest{k}", b"")
            except NodeExistsError:
                pass  # a retried create whose first try took effect
        assert wait_until(lambda: any(ens.mode(i) == "leader" for i in rest), timeout=30), modes(ens)
        # The minority stops serving once it has heard nothing from a quorum for syncLimit.
        assert wait_until(lambda: all(ens.mode(i) is None for i in minority), timeout=20), modes(ens)
        # None of its writes was acknowledged, and none reached the majority.
        assert not any(a.ready() and a.successful() for a in lost), [a.ready() and a.get() for a in lost]
        for i in rest:
            with synced_on(ens, i, "/p") as z:
                assert sorted(z.get_children("/p")) == sorted(f"rest{k}" for k in range(20)), i
        ens.heal()
        ens.wait_serving()
        assert sorted(modes(ens).values()) == ["follower"] * (voters - 1) + ["leader"], modes(ens)
        seen = {}
        for i in ens.ids:
            with synced_on(ens, i, "/p") as z:
                seen[i] = sorted(z.get_children("/p"))
        assert all(v == seen[rest[0]] for v in seen.values()), seen
        assert all(f"rest{k}" in seen[rest[0]] for k in range(20)), seen
        if cut != "follower":
            # A cut-off leader's own unacknowledged txns were dropped (TRUNC) when it rejoined.
            # (A follower's forwarded requests, held in the silenced connection, may still reach
            # the leader after the heal, as across a real partition: they were never
            # acknowledged, so ZooKeeper allows either outcome for them.)
            assert not any(c.startswith("lone0-") for c in seen[rest[0]]), seen
    finally:
        for z in cut_off + [zrest]:
            z.stop()
            z.close()


def _try_bind(sock, port):
    try:
        sock.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False


def _sync_lines(ens, i, kind):
    return [line for line in ens.read_log(i).splitlines() if f"by {kind}" in line]


def test_a_member_behind_is_caught_up_by_diff_and_far_behind_by_snap(ensemble_factory):
    ens = ensemble_factory(voters=3)
    leader = ens.leader()
    lagging = next(i for i in ens.ids if i != leader)
    zk = client(ens.hosts([i for i in ens.ids if i != lagging]))
    zk.create("/lag", b"")
    ens.kill9(lagging)
    for n in range(20):
        zk.create(f"/lag/a{n}", b"")
    diffs = len(_sync_lines(ens, leader, "DIFF"))
    ens.start(lagging)
    assert len(_sync_lines(ens, leader, "DIFF")) > diffs
    ens.kill9(lagging)
    # More than the leader keeps for DIFF (500 txns): a snapshot.
    for n in range(600):
        zk.create(f"/lag/b{n}", b"")
    ens.start(lagging)
    assert _sync_lines(ens, leader, "SNAP"), ens.read_log(leader)[-2000:]
    assert "installed the leader's snapshot" in ens.read_log(lagging)
    # Between Ringkeeper servers, SNAP carries Ringkeeper's own snapshot format.
    assert re.search(r'sent the snapshot for SNAP.*format="ringkeeper"', ens.read_log(leader))
    # The leader's log says how the learner was synced and how long it took.
    assert re.search(r'in step \(UPTODATE sent\) learner=\d+ how="SNAP" txns=0 ms=\d+', ens.read_log(leader))
    assert re.search(r'in step \(UPTODATE sent\) learner=\d+ how="DIFF" txns=20 ms=\d+', ens.read_log(leader))
    with synced_on(ens, lagging, "/lag") as z:
        assert len(z.get_children("/lag")) == 620
    # And it comes back from its own disk (the installed snapshot plus its log) after a kill.
    ens.kill9(lagging)
    zk.create("/lag/c", b"")
    ens.start(lagging)
    with synced_on(ens, lagging, "/lag") as z:
        assert len(z.get_children("/lag")) == 621
    zk.stop()
    zk.close()


def _deposed_leader_rejoins(ens, leader, notice_timeout):
    """`leader` logs a txn no follower acknowledges (its quorum port frozen, so its proposal
    reaches nobody) and dies with it in its log; once the others elected a leader and before
    anything is written in the new epoch, it comes back. Returns the new leader and a client
    of the old one's session (stop it when done)."""
    zk = client(f"127.0.0.1:{ens.port(leader)}")
    zk.create("/t", b"committed")
    ens.proxies[leader].freeze()
    time.sleep(0.2)  # every pump has seen the freeze (one may be inside a 50 ms select)
    lost = zk.create_async("/t/lost", b"never acknowledged")
    time.sleep(0.5)  # logged and synced on the leader
    assert not lost.ready()
    ens.kill9(leader)
    others = [i for i in ens.ids if i != leader]
    # They notice within syncLimit (their connections to it go through the frozen proxy).
    assert wait_until(lambda: any(ens.mode(i) == "leader" for i in others), timeout=notice_timeout), modes(ens)
    ens.wait_serving(others)
    new = ens.leader()
    # Its extra txn is past the end of the new leader's log: it is told to drop it (TRUNC).
    ens.proxies[leader].drop_all()
    ens.proxies[leader].thaw()
    ens.start(leader)
    ens.wait_serving()
    return new, zk


def _assert_truncated_everywhere(ens, deposed, zk):
    """No member has the deposed leader's txn, and it stays dropped after a restart (on disk)."""
    for i in ens.ids:
        with synced_on(ens, i, "/t") as z:
            assert z.exists("/t/lost") is None, i
            assert z.get("/t")[0] == b"committed"
    zk.stop()
    zk.close()
    ens.kill9(deposed)
    ens.start(deposed)
    with synced_on(ens, deposed, "/t") as z:
        assert z.exists("/t/lost") is None


def test_a_deposed_leaders_uncommitted_txn_is_truncated_when_it_rejoins(ensemble_factory):
    ens = ensemble_factory(voters=3, proxied=True)
    leader = ens.leader()
    new, zk = _deposed_leader_rejoins(ens, leader, notice_timeout=20)
    assert _sync_lines(ens, new, "TRUNC"), ens.read_log(new)[-2000:]
    assert "log truncated to the leader's history" in ens.read_log(leader), ens.read_log(leader)[-3000:]
    _assert_truncated_everywhere(ens, leader, zk)


def test_an_observer_serves_reads_forwards_writes_and_never_votes(ensemble_factory):
    ens = ensemble_factory(voters=3, observers=1)
    obs = 4
    assert ens.mode(obs) == "observer"
    z = client(f"127.0.0.1:{ens.port(obs)}")
    z.create("/o", b"from the observer")
    other = client(f"127.0.0.1:{ens.port(1)}")
    other.sync("/o")
    assert other.get("/o")[0] == b"from the observer"
    other.set("/o", b"to the observer")
    z.sync("/o")
    assert z.get("/o")[0] == b"to the observer"
    assert "zk_server_state\tobserver" in four_letter(ens.port(obs), "mntr")
    z.stop()
    z.close()
    other.stop()
    other.close()
    # With two voters down, the observer does not make a quorum: nobody serves.
    leader = ens.leader()
    down = [i for i in (1, 2, 3) if i != leader]
    for i in down:
        ens.kill9(i)
    assert wait_until(lambda: ens.mode(leader) is None and ens.mode(obs) is None, timeout=10), modes(ens)


@pytest.mark.skipif(not os.path.exists(ZKCLI), reason="zkCli.sh (zookeeper-bin) is not installed")
def test_zkcli_against_the_whole_connect_string(ensemble_factory):
    ens = ensemble_factory(voters=3)

    def zkcli(*args):
        out = subprocess.run([ZKCLI, "-server", ens.hosts(), *args], capture_output=True, text=True,
                             timeout=60)
        return out.stdout + out.stderr

    zkcli("create", "/cli", "hello")
    out = zkcli("get", "/cli")
    assert re.search(r"^hello$", out, re.M), out
    with synced_on(ens, 2, "/cli") as z:
        assert z.get("/cli")[0] == b"hello"


def test_a_taken_election_port_stops_the_member_with_exit_code_1(ensemble_factory):
    ens = ensemble_factory(voters=3)
    victim = next(i for i in ens.ids if i != ens.leader())
    ens.kill9(victim)
    import socket

    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # A member killed a moment ago may hold its listening sockets until its rings are torn down.
    assert wait_until(lambda: _try_bind(blocker, ens.ports[victim][2]), timeout=10)
    blocker.listen(1)
    try:
        out = subprocess.run(ens.cmd(victim), capture_output=True, text=True, timeout=60, cwd=ens.dirs[victim])
        assert out.returncode == 1, out.stderr[-2000:]
        assert f"server.{victim}" in out.stderr and "election port" in out.stderr, out.stderr[-2000:]
    finally:
        blocker.close()


def test_five_members_survive_two_failures_and_not_three(ensemble_factory):
    ens = ensemble_factory(voters=5)
    assert sorted(modes(ens).values()) == ["follower"] * 4 + ["leader"], modes(ens)
    zk = client(ens.hosts())
    zk.create("/five", b"1")
    leader = ens.leader()
    down = [leader] + [i for i in ens.ids if i != leader][:1]
    for i in down:
        ens.kill9(i)
    up = [i for i in ens.ids if i not in down]
    ens.wait_serving(up)
    zk.retry(zk.set, "/five", b"2")
    ens.kill9(up[0])
    assert wait_until(lambda: all(ens.mode(i) is None for i in up[1:]), timeout=15), modes(ens)
    zk.stop()
    zk.close()
    for i in down + [up[0]]:
        ens.start(i, wait=False)
    ens.wait_serving()
    for i in ens.ids:
        with synced_on(ens, i, "/five") as z:
            assert z.get("/five")[0] == b"2", i


def test_members_snapshot_on_their_own_and_restart_from_snapshot_and_log(ensemble_factory):
    ens = ensemble_factory(voters=3, extra_cfg="snapCount=100\nadmin.rateLimiterIntervalInMS=0")
    zk = client(ens.hosts())
    zk.create("/snapped", b"")
    for n in range(300):
        zk.create(f"/snapped/n{n}", b"x")
    snaps = lambda i: [f for f in os.listdir(os.path.join(ens.data_dir(i), "rk-snap"))
                       if re.fullmatch(r"snapshot\.[0-9a-f]{16}", f)]
    assert wait_until(lambda: all(snaps(i) for i in ens.ids), timeout=20), {i: snaps(i) for i in ens.ids}
    # The snap word works on a member, as on a standalone server.
    answer = four_letter(ens.port(1), "snap")
    assert re.search(r"snapshot\.[0-9a-f]{16}|busy", answer), answer
    victim = next(i for i in ens.ids if i != ens.leader())
    ens.kill9(victim)
    try:
        zk.retry(zk.create, "/snapped/after", b"")
    except NodeExistsError:
        pass  # a retry of a create that had gone through
    ens.start(victim)
    assert "snapshot loaded" in ens.read_log(victim)
    with synced_on(ens, victim, "/snapped") as z:
        assert len(z.get_children("/snapped")) == 301
    zk.stop()
    zk.close()


@contextlib.contextmanager
def moved_session(ens, old_member, new_member, path):
    """A raw session opened on `old_member` (creating `path` with b"0"), then resumed on
    `new_member`, which makes that member its owner: yields (old, new) connections."""
    import jute

    old = jute.Conn(ens.port(old_member), timeout_ms=6000)
    new = None
    try:
        body = jute.W().str(path).buf(b"0").acls([(31, "world", "anyone")]).int(0).b
        _, (err, _, _) = old.call(jute.CREATE, bytes(body))
        assert err == 0
        new = jute.Conn(ens.port(new_member), timeout_ms=6000, session_id=old.session_id, passwd=old.passwd)
        assert new.session_id == old.session_id and new.timeout > 0, "resumed on the other member"
        yield old, new
    finally:
        old.close()
        if new:
            new.close()


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_a_session_resumed_on_another_member_moves_and_its_old_connection_gets_closed_on_write(
        ensemble_factory, kind):
    """ZooKeeper's session-move rule, checked against Java ZooKeeper too: a session resumed on
    another member (which asks the leader, REVALIDATE) belongs to that member; a write through
    its old connection is refused with SESSIONMOVED, which closes that connection unanswered."""
    import jute

    ens = ensemble_factory(voters=3, kind=kind)
    leader = ens.leader()
    a, b = [i for i in ens.ids if i != leader]
    with moved_session(ens, a, b, "/sm") as (old, new):
        with pytest.raises(ConnectionError):
            old.call(jute.SET_DATA, bytes(jute.W().str("/sm").buf(b"old").int(-1).b))
        _, (err, _, _) = new.call(jute.SET_DATA, bytes(jute.W().str("/sm").buf(b"new").int(-1).b))
        assert err == 0
        _, (err, _, r) = new.call(jute.GET_DATA, bytes(jute.W().str("/sm").bool(False).b))
        assert err == 0 and r.buf() == b"new", "the old connection's write did nothing"


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
@pytest.mark.parametrize("old_on", ["follower", "leader"])
def test_requests_pipelined_behind_a_moved_write_close_only_that_connection(ensemble_factory, kind, old_on):
    """A write and a sync sent back to back on a moved session's old connection: the write is
    refused (SESSIONMOVED closes the connection unanswered) and the sync, answered after it, must
    not find the refused write still queued; every member keeps running and serving."""
    import jute

    ens = ensemble_factory(voters=3, kind=kind)
    leader = ens.leader()
    followers = [i for i in ens.ids if i != leader]
    old_member = followers[0] if old_on == "follower" else leader
    with moved_session(ens, old_member, followers[1], "/pm") as (old, new):
        old._send(struct.pack(">ii", 100, jute.SET_DATA) + bytes(jute.W().str("/pm").buf(b"old").int(-1).b))
        old._send(struct.pack(">ii", 101, jute.SYNC) + bytes(jute.W().str("/pm").b))
        with pytest.raises((ConnectionError, OSError)):
            while True:
                old._recv()  # nothing is answered before the close
        time.sleep(0.5)
        for i in ens.ids:
            assert ens.procs[i].poll() is None, f"member {i} exited: {ens.read_log(i)[-3000:]}"
        _, (err, _, r) = new.call(jute.GET_DATA, bytes(jute.W().str("/pm").bool(False).b))
        assert err == 0 and r.buf() == b"0", "the moved write did nothing"


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
@pytest.mark.parametrize("request_kind", ["read", "ping"])
def test_a_moved_sessions_old_connection_on_the_leader_is_closed_at_its_next_request(
        ensemble_factory, kind, request_kind):
    """On the leader every request of a session is checked against its owner, reads and pings
    too (followers check only writes): once the session is resumed on a follower, its old
    connection on the leader is closed unanswered at its next request. Checked against Java."""
    import jute

    ens = ensemble_factory(voters=3, kind=kind)
    leader = ens.leader()
    follower = next(i for i in ens.ids if i != leader)
    with moved_session(ens, leader, follower, "/mr") as (old, new):
        time.sleep(0.3)  # the leader has taken the revalidation
        with pytest.raises((ConnectionError, OSError)):
            if request_kind == "read":
                old.call(jute.GET_DATA, bytes(jute.W().str("/mr").bool(False).b))
            else:
                old._send(struct.pack(">ii", -2, 11))
                old._recv()
        _, (err, _, r) = new.call(jute.GET_DATA, bytes(jute.W().str("/mr").bool(False).b))
        assert err == 0 and r.buf() == b"0", "the session lives on, on the follower"


def test_a_full_disk_stops_the_leader_and_the_others_elect_a_new_one_losing_nothing(ensemble_factory):
    """Every dataDir a 64 MiB tmpfs; the leader's shrunk to 3 MiB (its log takes 1 MiB segments,
    zero-filled: the third cannot be). Writes of 100 KB fill it: the leader stops with exit code
    2, the other two elect a leader, and every acknowledged write is on both of them."""
    try:
        ens = ensemble_factory(voters=3, tmpfs_mb=64)
    except RuntimeError as e:
        pytest.skip(str(e))
    leader = ens.leader()
    others = [i for i in ens.ids if i != leader]
    ens.resize_data(leader, 3)
    zk = client(ens.hosts(others), timeout=10)
    acked = []
    try:
        zk.create("/full", b"")
        for n in range(60):
            path = f"/full/n{n}"
            try:
                zk.retry(zk.create, path, bytes([n]) * 100_000)
            except NodeExistsError:
                pass  # a retried create that had landed
            acked.append(path)
            if ens.procs[leader].poll() is not None:
                break
        assert ens.procs[leader].wait(timeout=30) == 2, "a write error is final: exit code 2"
        log = ens.read_log(leader)
        assert "No space left on device" in log and "stopping" in log, log[-2000:]
        assert wait_until(lambda: ens.leader() in others, timeout=20), "a new leader"
        # Writes go on, and nothing acknowledged was lost.
        zk.retry(zk.create, "/full/after", b"")
        for i in others:
            with synced_on(ens, i, "/full") as z:
                have = set(z.get_children("/full"))
                missing = [p for p in acked + ["/full/after"] if p.rsplit("/", 1)[1] not in have]
                assert not missing, (i, missing)
    finally:
        zk.stop()
        zk.close()


def test_a_member_with_a_corrupt_log_refuses_to_start_naming_file_and_offset(ensemble_factory):
    ens = ensemble_factory(voters=3)
    victim = next(i for i in ens.ids if i != ens.leader())
    zk = client(ens.hosts())
    for n in range(20):
        zk.create(f"/c{n}", b"x")
    zk.stop()
    zk.close()
    ens.kill9(victim)
    log_dir = os.path.join(ens.data_dir(victim), "rk-log")
    seg = os.path.join(log_dir, sorted(os.listdir(log_dir))[0])
    with open(seg, "r+b") as f:
        f.seek(4096 + 40)  # inside the first record, with good records after it
        b = f.read(1)
        f.seek(4096 + 40)
        f.write(bytes([b[0] ^ 0x55]))
    ens.start(victim, wait=False)
    assert ens.procs[victim].wait(timeout=30) == 1
    log = ens.read_log(victim)
    assert seg in log and "corrupt record at offset 4096" in log, log[-2000:]
    # The others serve on.
    assert ens.mode(ens.leader()) == "leader"


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_mntr_shows_the_leaders_learners_as_zookeeper_does(ensemble_factory, kind):
    ens = ensemble_factory(voters=3, observers=1, kind=kind)

    def mntr(i):
        return dict(line.split("\t", 1) for line in four_letter(ens.port(i), "mntr").splitlines() if "\t" in line)

    want = {"zk_server_state": "leader", "zk_peer_state": "leading - broadcast", "zk_learners": "3",
            "zk_synced_followers": "2", "zk_synced_non_voting_followers": "0", "zk_synced_observers": "1",
            "zk_pending_syncs": "0"}
    leader = ens.leader()
    assert wait_until(lambda: all(mntr(leader).get(k) == v for k, v in want.items()), timeout=10), mntr(leader)
    # ZooKeeper's counters of the syncs this server served as leader: each learner is counted
    # once, by DIFF (or TRUNC) or by SNAP, when its sync starts. Java's "synced" learners above
    # include one still agreeing on the epoch (it counts as synced until its ack deadline), so
    # the counts may trail them for a moment. A Ringkeeper leader brings every learner in by a
    # DIFF of nothing. A Java leader does that for learners that come during the election; one
    # that comes after the new epoch began (zxid (e, 0), no txn behind it) is at 0, below
    # anything it can DIFF from, and gets a SNAP of the empty tree. Every server shows them.
    def syncs(m):
        return int(m["zk_diff_count"]) + int(m["zk_snap_count"])

    assert wait_until(lambda: syncs(mntr(leader)) >= 3, timeout=10), mntr(leader)
    if kind == "ringkeeper":
        assert mntr(leader)["zk_snap_count"] == "0", mntr(leader)
    for i in ens.ids:
        assert "zk_diff_count" in mntr(i) and "zk_snap_count" in mntr(i), (i, mntr(i))
    assert int(mntr(leader)["zk_leader_uptime"]) >= 0
    for i in ens.ids:
        if i == leader:
            continue
        m = mntr(i)
        state = "observer" if i in ens.observer_ids else "follower"
        assert m["zk_server_state"] == state, m
        assert m["zk_peer_state"] == ("observing" if state == "observer" else "following") + " - broadcast", m
        assert "zk_learners" not in m and "zk_synced_followers" not in m, m


@pytest.mark.parametrize("window", ["memory", "log", "factor-off"])
def test_a_member_thousands_of_txns_behind_a_large_tree_is_caught_up_by_diff(ensemble_factory, window):
    """Past ZooKeeper's 500 in-memory txns, a DIFF still beats SNAP while the txns come to less
    than 0.33 of the tree (`snapshotSizeFactor`). The leader keeps a window of recent txns in
    memory; with a small learner queue (`ringkeeper.learnerQueueBytes` of 4 MiB, a window of
    about 1,260 txns) the
    older ones are read back from its log, as ZooKeeper reads them (`txnLogSyncEnabled`): here
    about 3,700 of 5,000, more than the window and the learner's queue hold, since they are read
    from the log again as the learner's connection takes them. With ZooKeeper's
    `snapshotSizeFactor=-1` no DIFF goes past 500 txns, and none is read from the log: SNAP."""
    extra = {"memory": "", "log": "ringkeeper.learnerQueueBytes=4194304",
             "factor-off": "ringkeeper.learnerQueueBytes=4194304\nsnapshotSizeFactor=-1"}[window]
    behind = 5000 if window == "log" else 1500
    ens = ensemble_factory(voters=3, extra_cfg=extra)
    leader = ens.leader()
    lagging = next(i for i in ens.ids if i != leader)
    zk = client(ens.hosts([i for i in ens.ids if i != lagging]))
    try:
        zk.create("/big")
        for n in range(20):
            zk.create(f"/big/n{n}", b"x" * 100_000)  # a 2 MB tree
        zk.create("/small", b"")
        # The member to lag must have the big creates on its disk first: it is not needed for
        # their quorum, so it can trail, and a follower applies a committed txn that its own
        # log write has not finished yet. Behind by them too, its DIFF would pass 0.33 of the
        # tree, and SNAP would be the right choice. A sync there and a stop (SIGTERM, which
        # finishes the log's writes) make sure of it.
        with synced_on(ens, lagging, "/small") as z:
            assert z.exists("/small")
        ens.procs[lagging].terminate()
        assert ens.procs[lagging].wait(timeout=10) == 0
        for r in [zk.set_async("/small", b"%010d" % n) for n in range(behind)]:
            r.get(timeout=30)
        ens.start(lagging)
        synced = re.findall(r'in step \(UPTODATE sent\) learner=%d how="(\w+)" txns=(\d+)' % lagging,
                            ens.read_log(leader))
        want = "SNAP" if window == "factor-off" else "DIFF"
        assert synced and synced[-1][0] == want, synced
        assert want == "SNAP" or int(synced[-1][1]) >= behind, synced
        log = ens.read_log(leader)
        read_back = re.findall(r"read txns back from the log for a DIFF.* learner=%d txns=(\d+)" % lagging, log)
        streamed = re.findall(r"sent a DIFF's txns from the log learner=Some\(%d\)" % lagging, log)
        counters = dict(line.split("\t", 1) for line in four_letter(ens.port(leader), "mntr").splitlines()
                        if "\t" in line)
        counted = "zk_snap_count" if window == "factor-off" else "zk_diff_count"
        assert int(counters[counted]) >= 1, counters
        if window == "log":
            # More than the window holds (the old cap) came from the log.
            assert read_back and int(read_back[-1]) >= 3000 and streamed, log[-3000:]
        else:
            assert not read_back and not streamed, log[-3000:]
        with synced_on(ens, lagging, "/small") as z:
            data, stat = z.get("/small")
            assert stat.version == behind and data == b"%010d" % (behind - 1)
    finally:
        zk.stop()
        zk.close()


def quorum_links(port):
    """Established TCP connections on the local side of quorum port `port`."""
    out = subprocess.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"],
                         capture_output=True, text=True, check=True).stdout
    return sum(1 for line in out.splitlines() if line.strip())


def test_a_learner_that_stops_reading_is_cut_off_at_its_queue_bound_and_catches_up(ensemble_factory):
    """The leader queues at most ringkeeper.learnerQueueBytes of txns for a learner that does not
    read (ZooKeeper's queue has no bound: a stuck follower grows the leader's heap); past it the
    connection is closed, the others keep committing, and the learner syncs again once it runs."""
    # The queue's floor is 4 x jute.maxbuffer: 2 MB here.
    ens = ensemble_factory(voters=3, extra_cfg="syncLimit=100\nringkeeper.learnerQueueBytes=2000000\n"
                                               "jute.maxbuffer=500000")
    leader = ens.leader()
    stuck = next(i for i in ens.ids if i != leader)
    zk = client(ens.hosts([i for i in ens.ids if i != stuck]))
    value = b"v" * 400_000
    os.kill(ens.procs[stuck].pid, signal.SIGSTOP)
    try:
        # About 24 MB: more than the kernel's socket buffers hold, then the queue's 2 MB.
        for n in range(60):
            zk.create(f"/big{n}", value)
        assert wait_until(lambda: "quorum connection's queue is full; closing it" in ens.read_log(leader),
                          timeout=10), ens.read_log(leader)[-3000:]
        # And it is closed for real, though the stuck learner reads nothing: only the other
        # follower's connection stays (a writer stuck on a full socket would hold the queue).
        assert wait_until(lambda: quorum_links(ens.ports[leader][1]) == 1, timeout=10), \
            quorum_links(ens.ports[leader][1])
    finally:
        os.kill(ens.procs[stuck].pid, signal.SIGCONT)
    try:
        with synced_on(ens, stuck, "/") as z:
            for n in range(60):
                data, _ = z.get(f"/big{n}")
                assert data == value, n
    finally:
        zk.stop()
        zk.close()


def notification(state, leader, zxid, election_epoch, peer_epoch):
    """An election notification as it goes on the wire (version 2, empty config), framed."""
    body = struct.pack(">iqqqqii", state, leader, zxid, election_epoch, peer_epoch, 2, 0)
    return struct.pack(">i", len(body)) + body


def test_votes_right_behind_the_election_opening_are_all_read(ensemble_factory):
    """A server that dials writes its opening and then the votes queued for the link, and one
    read can take the opening and part of a vote. Member 1, alone and looking, is dialed by a
    stand-in for member 2 that writes its opening, a stale vote and the start of a vote for 2,
    then the rest: member 1 must take the vote for 2 and answer on that link with a vote for 2.
    (Dropping the partial vote misaligned the stream and broke the link; an ensemble's first
    election took about a second while links broke and were dialled again.)"""
    ens = ensemble_factory(voters=3)
    for i in ens.ids:
        ens.kill9(i)
    elections = ens.read_log(1).count("looking: electing a leader")
    ens.start(1, wait=False)
    # Once it looks its election port is served (before, a startup check may hold the port).
    assert wait_until(lambda: ens.read_log(1).count("looking: electing a leader") > elections, timeout=20)
    s = socket.create_connection(("127.0.0.1", ens.ports[1][2]), timeout=5)
    try:
        addr = f"127.0.0.1:{ens.ports[2][2]}".encode()
        opening = struct.pack(">qqi", -65536, 2, len(addr)) + addr
        for_1 = notification(0, 1, 0, 0, 1)  # an older election's: answered, changes nothing
        for_2 = notification(0, 2, 1 << 40, 99, 99)  # a later epoch: it beats member 1's own
        s.sendall(opening + for_1 + for_2[:10])
        time.sleep(0.3)
        s.sendall(for_2[10:])
        buf = b""
        leaders = []
        deadline = time.time() + 5
        while 2 not in leaders and time.time() < deadline:
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                continue
            assert chunk, f"member 1 closed the link; it saw {leaders}: {ens.read_log(1)[-2000:]}"
            buf += chunk
            while len(buf) >= 4 and len(buf) >= 4 + struct.unpack(">i", buf[:4])[0]:
                n = struct.unpack(">i", buf[:4])[0]
                leaders.append(struct.unpack(">q", buf[8:16])[0])
                buf = buf[4 + n:]
        assert 2 in leaders, leaders
    finally:
        s.close()


def assert_replicated(ens, path, value):
    """Creates `path` through the whole connect string and reads it back on every member."""
    zk = client(ens.hosts())
    try:
        zk.create(path, value)
        for i in ens.ids:
            with synced_on(ens, i, path) as z:
                assert z.get(path)[0] == value, i
    finally:
        zk.stop()
        zk.close()


def listening_on(port):
    """The local addresses TCP listeners on `port` are bound to."""
    out = subprocess.run(["ss", "-Hltn", f"( sport = :{port} )"], capture_output=True, text=True,
                         check=True).stdout
    return sorted(line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if line.strip())


@pytest.mark.parametrize("all_ips", [True, False])
def test_quorum_listen_on_all_ips_binds_the_quorum_and_election_ports_to_every_address(
        ensemble_factory, all_ips):
    """ZooKeeper's quorumListenOnAllIPs (containers whose server lines name an address the host
    does not own): the quorum and election ports listen on the wildcard address; without it, on
    the server line's address only. The ensemble works either way."""
    ens = ensemble_factory(voters=3, extra_cfg=f"quorumListenOnAllIPs={str(all_ips).lower()}")
    want = ["0.0.0.0"] if all_ips else ["127.0.0.1"]
    for i in ens.ids:
        for port in ens.ports[i][1:]:
            assert listening_on(port) == want, (i, port, listening_on(port))
    assert_replicated(ens, "/all-ips", b"x")


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_server_lines_in_a_dynamic_config_file(ensemble_factory, kind):
    """ZooKeeper 3.5+'s split config, as a reconfig-era install has it: zoo.cfg names a
    dynamicConfigFile holding the server.N lines. Checked against Java too."""
    ens = ensemble_factory(voters=3, kind=kind, dynamic=True)
    assert_replicated(ens, "/dyn", b"d")
    assert sorted(ens.mode(i) for i in ens.ids) == ["follower", "follower", "leader"]


def test_server_lines_in_both_files_are_refused_naming_the_key(tmp_path):
    """With dynamicConfigFile set, a server.N line in zoo.cfg is refused, as ZooKeeper refuses it
    ("must be in a separate dynamic config file"); here with exit code 1 and the key named."""
    import servers

    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "myid").write_text("1\n")
    (tmp_path / "zoo.cfg.dynamic").write_text(
        "server.1=127.0.0.1:21812:21813;21811\nserver.2=127.0.0.1:21822:21823;21821\n")
    (tmp_path / "zoo.cfg").write_text(
        f"tickTime=200\ndataDir={tmp_path}/data\ndynamicConfigFile={tmp_path}/zoo.cfg.dynamic\n"
        "server.1=127.0.0.1:21812:21813\n")
    r = subprocess.run([servers.RINGKEEPER, "serve", "--config", str(tmp_path / "zoo.cfg"), "--no-pin"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r
    assert "server.1" in r.stderr and "dynamic config file" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_a_leader_told_leader_serves_no_takes_no_clients_and_the_others_do(ensemble_factory, kind):
    """ZooKeeper's `leaderServes=no`: the leader coordinates and refuses client connections (its
    four-letter words that need a serving server say it is not serving); clients of the whole
    connect string land on the other members, and so it stays after a failover."""
    ens = ensemble_factory(voters=3, kind=kind, leader_serves=False)
    leader = ens.leader()
    assert leader is not None
    not_serving = "This ZooKeeper instance is not currently serving requests\n"
    assert four_letter(ens.port(leader), "srvr") == not_serving
    assert four_letter(ens.port(leader), "ruok") == "imok"
    for i in ens.ids:
        if i != leader:
            assert "Mode: follower" in four_letter(ens.port(i), "srvr")
    # A client of the leader alone never gets a session.
    alone = KazooClient(hosts=f"127.0.0.1:{ens.port(leader)}", timeout=2,
                        connection_retry=KazooRetry(max_tries=2, delay=0.1))
    with pytest.raises(Exception):
        alone.start(timeout=3)
    alone.stop()
    alone.close()
    zk = client(ens.hosts())
    try:
        assert zk.client_id[0] >> 56 != leader, "the session was made by a follower"
        zk.create("/ls", b"one")
        # The leader leaves; of the two left, the new leader refuses clients too, and the client
        # ends up on the one member that takes them.
        ens.kill9(leader)
        assert wait_until(lambda: ens.leader() not in (None, leader), timeout=30)
        second = ens.leader()
        zk.retry(zk.set, "/ls", b"two")
        assert zk.get("/ls")[0] == b"two"
        assert four_letter(ens.port(second), "srvr") == not_serving
        (last,) = [i for i in ens.ids if i not in (leader, second)]
        stat = four_letter(ens.port(last), "cons")
        assert "sid=0x%x" % zk.client_id[0] in stat, stat
    finally:
        zk.stop()
        zk.close()


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper is not installed")
def test_a_java_follower_far_behind_is_caught_up_by_a_diff_streamed_from_the_leaders_log(ensemble_factory):
    """A Java ZooKeeper follower (member 1) 4,000 txns behind a Ringkeeper leader whose window in
    memory holds about 1,260 (a 4 MiB learner queue) is sent a DIFF: most of it read from the
    leader's log as the connection takes it, packets Java's learner must read as its own
    leader's."""
    ens = ensemble_factory(voters=3, java_ids=[1],
                           extra_cfg="syncLimit=50\ninitLimit=100\nringkeeper.learnerQueueBytes=4194304")
    assert ens.mode(1) == "follower" and ens.leader() in (2, 3), modes(ens)
    leader = ens.leader()
    zk = client(ens.hosts([2, 3]))
    try:
        zk.create("/big")
        for n in range(10):
            zk.create(f"/big/n{n}", b"x" * 100_000)  # a 1 MB tree
        zk.create("/small", b"")
        with synced_on(ens, 1, "/small") as z:
            assert z.exists("/small")
        time.sleep(1)  # the Java member's own log write of them, before the kill
        ens.kill9(1)
        behind = 4000
        for r in [zk.set_async("/small", b"%010d" % n) for n in range(behind)]:
            r.get(timeout=30)
        ens.start(1)
        with synced_on(ens, 1, "/small") as z:
            data, stat = z.get("/small")
            assert stat.version == behind and data == b"%010d" % (behind - 1)
            assert z.get("/big/n9")[0] == b"x" * 100_000
        log = ens.read_log(leader)
        synced = re.findall(r'in step \(UPTODATE sent\) learner=1 how="(\w+)" txns=(\d+)', log)
        assert synced and synced[-1][0] == "DIFF" and int(synced[-1][1]) >= behind, synced
        read_back = re.findall(r"read txns back from the log for a DIFF.* learner=1 txns=(\d+)", log)
        assert read_back and int(read_back[-1]) >= 2500, log[-3000:]
        assert re.search(r"sent a DIFF's txns from the log learner=Some\(1\)", log), log[-3000:]
    finally:
        zk.stop()
        zk.close()


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper is not installed")
def test_a_java_follower_among_ringkeeper_members_votes_replicates_and_is_caught_up_by_diff(ensemble_factory):
    """Server-to-server traffic is ZooKeeper's own: a Java ZooKeeper 3.8 member (member 1) in a
    Ringkeeper ensemble takes part in elections, follows a Ringkeeper leader, replicates writes
    made through any member, resumes sessions made on the other kind, when 300 txns behind is
    caught up by the leader's DIFF, and when far behind by its SNAP, in ZooKeeper's format."""
    # A JVM warming up can pause past a syncLimit of 1 s (ticks are 200 ms here), and the
    # learner is dropped and synced again: 10 s of syncLimit keeps the syncs this test counts
    # to the ones it causes.
    ens = ensemble_factory(voters=3, java_ids=[1], extra_cfg="syncLimit=50\ninitLimit=100")
    zks = {i: client(f"127.0.0.1:{ens.port(i)}") for i in ens.ids}
    try:
        for i, zk in zks.items():
            zk.create(f"/from{i}", b"%d" % i)
        for i, zk in zks.items():
            zk.sync("/")
            assert sorted(zk.get_children("/")) == ["from1", "from2", "from3", "zookeeper"], i
            assert zk.get("/from1")[0] == b"1"
    finally:
        for zk in zks.values():
            zk.stop()
            zk.close()
    assert ens.mode(1) == "follower" and ens.leader() in (2, 3), modes(ens)
    # A session made on one kind is resumed on the other (both derive its password as
    # ZooKeeper does) and its ephemeral is its own there.
    for made_on, moved_to in [(1, 2), (3, 1)]:
        first = client(f"127.0.0.1:{ens.port(made_on)}")
        sid, passwd = first.client_id
        moved = KazooClient(hosts=f"127.0.0.1:{ens.port(moved_to)}", timeout=6, client_id=(sid, passwd))
        try:
            moved.start(timeout=20)
            assert moved.client_id[0] == sid, (made_on, moved_to)
            moved.create(f"/eph-{made_on}", b"", ephemeral=True)
            assert moved.exists(f"/eph-{made_on}").ephemeralOwner == sid
        finally:
            moved.stop()
            moved.close()
            first.stop()
            first.close()
    ens.kill9(1)
    zk = client(f"127.0.0.1:{ens.port(2)}")
    try:
        zk.create("/lag")
        for r in [zk.create_async(f"/lag/n{n}", b"v") for n in range(300)]:
            r.get(timeout=30)
        ens.start(1)
        with synced_on(ens, 1, "/lag") as z:
            assert len(z.get_children("/lag")) == 300
            assert z.get("/from3")[0] == b"3"
        # Far behind (600 txns of 1 KiB, more than 0.33 of the tree): SNAP, which the Java
        # learner reads as its own leader's.
        ens.kill9(1)
        leader = ens.leader()
        zk.create("/far")
        for r in [zk.create_async(f"/far/n{n}", b"x" * 1024) for n in range(600)]:
            r.get(timeout=30)
        ens.start(1)
        with synced_on(ens, 1, "/far") as z:
            assert len(z.get_children("/far")) == 600
            assert len(z.get_children("/lag")) == 300
            assert z.get("/far/n599")[0] == b"x" * 1024
        assert re.search(r'sent the snapshot for SNAP.*format="zookeeper"', ens.read_log(leader)), \
            ens.read_log(leader)[-3000:]
        # The Ringkeeper leader sent the Java follower none of Ringkeeper's own packets
        # (LeaderSynced), which it would log as unknown.
        assert "Unknown packet type" not in ens.read_log(1), ens.read_log(1)[-3000:]
    finally:
        zk.stop()
        zk.close()


def _stat_fields(stat):
    return (stat.czxid, stat.mzxid, stat.pzxid, stat.version, stat.cversion, stat.aversion,
            stat.numChildren, stat.dataLength, stat.ephemeralOwner)


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper (Debian zookeeper) not installed")
def test_a_ringkeeper_follower_of_a_java_leader_is_caught_up_by_its_snap_while_writes_go_on(ensemble_factory):
    """Members 2 and 3 run Java ZooKeeper, so one of them leads. Member 1, a Ringkeeper server
    far behind, is sent a SNAP in ZooKeeper's format while writes go on: Java serializes its
    tree while it commits, so the snapshot may already hold txns that follow it. Member 1 ends
    with the leader's tree, node for node, and comes back to it from its own disk after a kill."""
    # The Java leader would DIFF from its on-disk log; `snapshotSizeFactor=-1` (which Java takes
    # as the property zookeeper.snapshotSizeFactor, and Ringkeeper reads as Java does) turns
    # that off, so 600 txns behind its 500 in memory is SNAP.
    ens = ensemble_factory(voters=3, java_ids=[2, 3],
                           extra_cfg="syncLimit=50\ninitLimit=100\nsnapshotSizeFactor=-1")
    assert ens.leader() in (2, 3) and ens.mode(1) == "follower", modes(ens)
    zk = client(ens.hosts([2, 3]))
    try:
        zk.create("/snap")
        ens.kill9(1)
        for r in [zk.create_async(f"/snap/n{n}", b"x" * 1024) for n in range(600)]:
            r.get(timeout=30)
        stop = threading.Event()
        acked = []

        def writer():
            n = 0
            while not stop.is_set() and n < 5000:
                try:
                    zk.create(f"/snap/w{n}", b"w")
                    zk.set_data(f"/snap/n{n % 600}", b"y")
                    acked.append(n)
                except Exception:  # noqa: BLE001 - a retried create finds its node; counted below
                    pass
                n += 1

        t = threading.Thread(target=writer)
        t.start()
        try:
            wait_until(lambda: len(acked) >= 20, timeout=30)
            ens.start(1)
            time.sleep(0.5)
        finally:
            stop.set()
            t.join()
        log = ens.read_log(1)
        assert re.search(r'received the leader.s snapshot.*format="zookeeper"', log), log[-3000:]

        def same_as_the_leader():
            zk.sync("/snap")
            want = sorted(zk.get_children("/snap"))
            assert all(f"w{n}" in want for n in acked)
            with synced_on(ens, 1, "/snap") as z:
                assert sorted(z.get_children("/snap")) == want
                assert _stat_fields(z.exists("/snap")) == _stat_fields(zk.exists("/snap"))
                for name in want[::37] + ["n0", "n599"]:
                    got, stat = z.get(f"/snap/{name}")
                    assert (got, _stat_fields(stat)) == (lambda d, s: (d, _stat_fields(s)))(*zk.get(f"/snap/{name}")), name

        same_as_the_leader()
        # From its own disk: the snapshot it installed, then its log.
        ens.kill9(1)
        zk.create("/snap/after")
        ens.start(1)
        same_as_the_leader()
    finally:
        zk.stop()
        zk.close()


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper (Debian zookeeper) not installed")
@pytest.mark.parametrize("to", ["ringkeeper", "java"])
def test_an_ensemble_moves_to_the_other_kind_one_server_at_a_time_under_writes(ensemble_factory, to):
    """A rolling migration as an operator would do it: three Java ZooKeeper 3.8 members, and one
    at a time (the followers, then the leader) stopped and started again as Ringkeeper from the
    same zoo.cfg and dataDir, while a client writes through the whole connect string; and back
    from Ringkeeper to Java the same way. Each new member starts with nothing of its own (the
    other kind's files are left alone) and is synced by the current leader, of either kind. At
    the end a member of the new kind leads, and every acknowledged write is on every member."""
    ens = ensemble_factory(voters=3, java_ids=[1, 2, 3] if to == "ringkeeper" else [],
                           extra_cfg="syncLimit=50\ninitLimit=100")
    zk = client(ens.hosts())
    zk.create("/move", b"")
    w = _Writer(zk, "/move", 20000, data=b"x" * 100)
    try:
        assert w.more(100, timeout=30)
        leader = ens.leader()
        for i in [i for i in ens.ids if i != leader] + [leader]:
            ens.procs[i].terminate()  # SIGTERM, as an operator stops a server
            ens.procs[i].wait(timeout=30)
            if to == "ringkeeper":
                ens.java_ids.discard(i)
            else:
                ens.java_ids.add(i)
            ens.start(i)
            assert w.more(100, timeout=60), f"writes go on after member {i}"
    finally:
        w.stop()
    assert ens.java_ids == (set() if to == "ringkeeper" else {1, 2, 3})
    assert ens.leader() is not None, modes(ens)
    _assert_on_every_member(ens, "/move", w.acked)
    zk.stop()
    zk.close()


def _lead_with(ens, want, tries=4):
    """Makes member `want` the leader: the current leader is killed and restarted (its log is as
    long as the others', so the larger id wins the election) until `want` leads."""
    for _ in range(tries):
        leader = ens.leader()
        if leader == want:
            return
        ens.kill9(leader)
        ens.wait_serving([i for i in ens.ids if i != leader])
        ens.start(leader)
    assert ens.leader() == want, modes(ens)


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper (Debian zookeeper) not installed")
@pytest.mark.parametrize("deposed", ["java", "ringkeeper"])
def test_a_deposed_leader_of_the_other_kind_is_truncated_when_it_rejoins(ensemble_factory, deposed):
    """TRUNC across the kinds: member 3 leads (a Java server among Ringkeeper members, or the
    other way round), logs a txn no follower acknowledges, and dies. The other two elect a
    leader of the other kind, which tells member 3 to drop that txn when it returns."""
    java_ids = [3] if deposed == "java" else [1, 2]
    # initLimit at 5 s: two Java members left alone can elect a leader that one of them does not
    # follow (it moved on to the next election round); that leader gives up after initLimit
    # and they elect again (seen in 1 of about 8 runs, with 20 s of initLimit).
    ens = ensemble_factory(voters=3, proxied=True, java_ids=java_ids, extra_cfg="syncLimit=50\ninitLimit=25")
    _lead_with(ens, 3)
    # With syncLimit at 10 s, the followers notice the silent leader within 12 s or so.
    new, zk = _deposed_leader_rejoins(ens, 3, notice_timeout=60)
    assert new in (1, 2), modes(ens)
    if deposed == "java":
        assert _sync_lines(ens, new, "TRUNC"), ens.read_log(new)[-2000:]
    else:
        assert "log truncated to the leader's history" in ens.read_log(3), ens.read_log(3)[-3000:]
    _assert_truncated_everywhere(ens, 3, zk)


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper (Debian zookeeper) not installed")
@pytest.mark.parametrize("observer_kind", ["java", "ringkeeper"])
def test_an_observer_of_the_other_kind_is_synced_gets_informs_and_forwards_writes(ensemble_factory, observer_kind):
    """An observer under voters of the other kind: a Java observer of three Ringkeeper voters,
    or a Ringkeeper observer of three Java voters. It is synced by the leader (DIFF, and SNAP
    when far behind), follows by INFORM, forwards its clients' writes, and never votes."""
    java_ids = [4] if observer_kind == "java" else [1, 2, 3]
    ens = ensemble_factory(voters=3, observers=1, java_ids=java_ids, extra_cfg="syncLimit=50\ninitLimit=100")
    obs = 4
    assert ens.mode(obs) == "observer", modes(ens)
    z = client(f"127.0.0.1:{ens.port(obs)}")
    other = client(f"127.0.0.1:{ens.port(1)}")
    try:
        z.create("/o", b"from the observer")
        other.sync("/o")
        assert other.get("/o")[0] == b"from the observer"
        other.set("/o", b"to the observer")
        z.sync("/o")
        assert z.get("/o")[0] == b"to the observer"
        # Far behind: 600 txns of 1 KiB while it is down, then back.
        ens.kill9(obs)
        for r in [other.create_async(f"/o/n{n}", b"x" * 1024) for n in range(600)]:
            r.get(timeout=30)
        ens.start(obs)
        with synced_on(ens, obs, "/o") as zo:
            assert len(zo.get_children("/o")) == 600
            zo.create("/o/after", b"")
        other.sync("/o")
        assert other.exists("/o/after") is not None
    finally:
        z.stop()
        z.close()
        other.stop()
        other.close()
    # An observer does not count for a quorum: with two voters down nobody serves.
    leader = ens.leader()
    for i in [i for i in (1, 2, 3) if i != leader]:
        ens.kill9(i)
    assert wait_until(lambda: ens.mode(leader) is None and ens.mode(obs) is None, timeout=30), modes(ens)
