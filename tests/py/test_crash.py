"""Crash test over real processes: clients write under load, the server is killed with SIGKILL at
seeded random moments, restarted on the same dataDir, and checked: every acknowledged write is
there, and every write is either wholly there or not at all (a multi of create+setData never
half-applied). Snapshots are taken every few hundred txns, so kills land during snapshot writes
and restarts load a snapshot plus the log after it. Bounded: a few rounds of a few seconds each."""

import os
import random
import threading
import time

import jute
from jute import W
from servers import Server

ROUNDS = int(os.environ.get("CRASH_ROUNDS", "4"))
WRITERS = 4


def writer(port, wid, rnd_seed, acked, stop):
    """Writes multis (create a node, then set its data) until the connection dies; records the
    acknowledged ones."""
    rnd = random.Random(rnd_seed)
    try:
        c = jute.Conn(port, timeout_ms=30000)
    except OSError:
        return
    n = 0
    while not stop.is_set():
        n += 1
        path = f"/crash/w{wid}-{rnd_seed}-{n}"
        data = f"{path}:{rnd.randrange(10**9)}".encode()
        body = W()
        body.int(jute.CREATE).bool(False).int(-1).str(path).buf(b"").acls([(31, "world", "anyone")]).int(0)
        body.int(jute.SET_DATA).bool(False).int(-1).str(path).buf(data).int(0)
        body.int(-1).bool(True).int(-1)
        try:
            _, (err, _zxid, r) = c.call(jute.MULTI, bytes(body.b))
        except (OSError, ConnectionError, AssertionError):
            return  # the server died mid-request: this write is not acknowledged
        t, _, e = r.int(), r.bool(), r.int()
        assert err == 0 and t == jute.CREATE and e == 0, (err, t, e)
        acked.append((path, data))
    c.close()


def test_acknowledged_writes_survive_repeated_kill_9(server_factory):
    srv = server_factory("maxSessionTimeout=30000\nsnapCount=300")
    c = jute.Conn(srv.port)
    c.call(jute.CREATE, bytes(W().str("/crash").buf(b"").acls([(31, "world", "anyone")]).int(0).b))
    c.close()
    rnd = random.Random(int(os.environ.get("CRASH_SEED", "5")))
    acked = []
    for rnd_no in range(ROUNDS):
        stop = threading.Event()
        threads = [threading.Thread(target=writer, args=(srv.port, w, rnd.randrange(10**6), acked, stop))
                   for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(rnd.uniform(0.3, 1.5))
        srv.kill9_and_restart()  # under load, at a random moment
        stop.set()
        for t in threads:
            t.join(timeout=30)
            assert not t.is_alive()
        # Every acknowledged write is back, whole; nothing else under /crash is half-applied.
        c = jute.Conn(srv.port)
        _, (err, _, r) = c.call(jute.GET_CHILDREN, bytes(W().str("/crash").bool(False).b))
        assert err == 0
        present = set(r.strs())
        for path, data in acked:
            name = path.rsplit("/", 1)[1]
            assert name in present, f"round {rnd_no}: acknowledged {path} lost"
        for name in present:
            _, (err, _, r) = c.call(jute.GET_DATA, bytes(W().str(f"/crash/{name}").bool(False).b))
            assert err == 0
            data = r.buf()
            version = r.stat()["version"]
            assert version == 1 and data.startswith(f"/crash/{name}:".encode()), \
                f"round {rnd_no}: /crash/{name} half-applied (version {version}, data {data!r})"
        c.close()
    assert len(acked) > 100, f"too little load to mean anything: {len(acked)} acknowledged writes"
    assert "snapshot loaded" in srv.read_log(), "no restart started from a snapshot"
