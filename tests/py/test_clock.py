"""A step of a server's wall clock (an NTP correction, an operator's `date -s`) must not expire
live sessions, keep dead ones alive, or make a leader drop its followers: ZooKeeper times
sessions and peers on an elapsed-time clock and uses wall time only for znode stamps (ctime,
mtime) and TTLs. Each server here runs under libfaketime (Debian's `faketime`), whose offset
the test moves by rewriting a file; the monotonic clock is left alone, as a real step leaves it.
"""

import os
import re
import time

import pytest
from kazoo.client import KazooClient

import jute
from helpers import wait_until
from servers import Ensemble, Server, four_letter

LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
TWO_HOURS_MS = 2 * 3600 * 1000

pytestmark = pytest.mark.skipif(not os.path.exists(LIBFAKETIME),
                                reason="libfaketime is not installed (Debian package faketime)")


class FakeWallClock:
    """The wall-clock offset of the processes started with `env`."""

    def __init__(self, path):
        self.path = path
        self.set("+0")
        self.env = dict(os.environ, LD_PRELOAD=LIBFAKETIME, FAKETIME_TIMESTAMP_FILE=path,
                        FAKETIME_DONT_FAKE_MONOTONIC="1", FAKETIME_CACHE_DURATION="1")

    def set(self, offset):
        with open(self.path + ".tmp", "w") as f:
            f.write(offset + "\n")
        os.replace(self.path + ".tmp", self.path)
        # libfaketime rereads the file at most once a second.
        time.sleep(1.5)


def started(hosts, timeout=4.0):
    zk = KazooClient(hosts=hosts, timeout=timeout)
    zk.start(timeout=20)
    return zk


def test_a_wall_clock_step_neither_expires_live_sessions_nor_keeps_dead_ones(tmp_path):
    clock = FakeWallClock(str(tmp_path / "offset"))
    # tickTime=200: sessions may ask for 400-4000 ms.
    s = Server("ringkeeper", env=clock.env)
    live = started(s.hosts)
    try:
        before = live.client_id
        live.create("/live-e", ephemeral=True)
        # Forward by two hours: a deadline kept in wall time would have passed for every session.
        clock.set("+2h")
        time.sleep(3 * 4.0)  # three session timeouts, the client pinging all along
        assert live.client_id == before and live.connected
        assert live.exists("/live-e") is not None
        # Stamps follow the wall clock, as ZooKeeper's do.
        live.create("/stamped")
        ctime = live.exists("/stamped").ctime
        assert abs(ctime - (time.time() * 1000 + TWO_HOURS_MS)) < 60_000, ctime

        # Back by four hours: a session whose client went away must still end within its
        # timeout (a wall-time deadline would now lie hours ahead).
        dead = jute.Conn(s.port, timeout_ms=2000)
        body = jute.W().str("/dead-e").buf(b"").int(1).int(31).str("world").str("anyone").int(1)
        _, (err, _, _) = dead.call(1, bytes(body.b))
        assert err == 0
        clock.set("-2h")
        dead.close()  # no closeSession: only expiry removes its ephemeral
        assert wait_until(lambda: live.exists("/dead-e") is None, timeout=2.0 + 6.0), \
            "a dropped session outlived its timeout after the wall clock went back"
        assert live.client_id == before and live.exists("/live-e") is not None
    finally:
        live.stop()
        live.close()
        s.stop()


def zxid_epoch(port):
    m = re.search(r"Zxid: 0x([0-9a-f]+)", four_letter(port, "srvr"))
    return int(m.group(1), 16) >> 32


def test_a_wall_clock_step_on_the_leader_keeps_its_followers_and_sessions(tmp_path):
    clocks = {i: FakeWallClock(str(tmp_path / f"offset{i}")) for i in (1, 2, 3)}
    ens = Ensemble(voters=3, env={i: c.env for i, c in clocks.items()})
    zk = None
    try:
        leader = ens.leader()
        follower = next(i for i in ens.ids if i != leader)
        zk = started(f"127.0.0.1:{ens.port(follower)}")
        before = zk.client_id
        zk.create("/e", ephemeral=True)
        epoch = zxid_epoch(ens.port(leader))  # once a txn of this epoch is in
        elections = ens.read_log(leader).count("looking: electing a leader")
        # The leader jumps two hours ahead: with its peers timed in wall time, every follower
        # would look silent past syncLimit (and every session past its timeout).
        clocks[leader].set("+2h")
        time.sleep(5.0)  # syncLimit is 5 ticks of 200 ms; sessions time out after 4 s
        assert ens.mode(leader) == "leader" and zxid_epoch(ens.port(leader)) == epoch, \
            "the leader lost its followers over a wall-clock step"
        zk.create("/after")
        assert zk.client_id == before and zk.exists("/e") is not None
        # And back: still the same leader, and writes go on.
        clocks[leader].set("-2h")
        time.sleep(2.0)
        zk.set("/after", b"x")
        assert ens.mode(leader) == "leader" and zxid_epoch(ens.port(leader)) == epoch
        assert ens.read_log(leader).count("looking: electing a leader") == elections
    finally:
        if zk:
            zk.stop()
            zk.close()
        ens.stop()
