"""Hostile-client probes, shared by tests/py/test_hostile.py (which asserts bounds) and
perf/attack.py (which reports figures at a chosen size, against Ringkeeper or Java ZooKeeper).

Each probe attacks a server on loopback through raw sockets. A `Monitor` samples, meanwhile, the
server's RSS and open descriptors (from /proc, by pid) and the latency of an innocent client that
asks `ruok` every 20 ms on a fresh connection, as a health check would.
"""

import os
import select
import socket
import struct
import threading
import time

import jute
from jute import W
from servers import four_letter

OPEN = [(31, "world", "anyone")]


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def ruok_ms(port, timeout=5.0):
    """Milliseconds for `ruok` on a new connection, or None when it failed."""
    start = time.monotonic()
    try:
        got = four_letter(port, "ruok", timeout=timeout)
    except OSError:
        return None
    return (time.monotonic() - start) * 1000 if got == "imok" else None


def percentile(values, p):
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Monitor:
    """Samples RSS, descriptors and an innocent client's `ruok` latency until stopped."""

    def __init__(self, pid, port, every=0.02):
        self.pid, self.port, self.every = pid, port, every
        self.rss_base = rss_bytes(pid)
        self.fds_base = open_fds(pid)
        self.rss, self.fds, self.ruok, self.failed = [], [], [], 0
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                self.rss.append(rss_bytes(self.pid))
                self.fds.append(open_fds(self.pid))
            except (OSError, RuntimeError):
                pass
            ms = ruok_ms(self.port)
            if ms is None:
                self.failed += 1
            else:
                self.ruok.append(ms)
            self._stop.wait(self.every)

    def stop(self, min_seconds=1.0):
        """Stops sampling, after at least `min_seconds` of it."""
        left = self.started + min_seconds - time.monotonic()
        if left > 0:
            time.sleep(left)
        self._stop.set()
        self._thread.join(timeout=10)
        return self.report()

    def report(self):
        return {
            "rss_base_mib": self.rss_base / 2**20,
            "rss_max_mib": max(self.rss, default=self.rss_base) / 2**20,
            "rss_growth_mib": (max(self.rss, default=self.rss_base) - self.rss_base) / 2**20,
            "fds_base": self.fds_base,
            "fds_max": max(self.fds, default=self.fds_base),
            "ruok_p99_ms": percentile(self.ruok, 99),
            "ruok_max_ms": max(self.ruok, default=None),
            "ruok_count": len(self.ruok),
            "ruok_failed": self.failed,
        }


def _frame(payload):
    return struct.pack(">i", len(payload)) + payload


def _request(xid, opcode, body):
    return _frame(struct.pack(">ii", xid, opcode) + body)


def read_reply(sock):
    """(xid, zxid, err, body) of the next reply, skipping watch events."""
    def exact(n):
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed by the server")
            out += chunk
        return out
    while True:
        n = struct.unpack(">i", exact(4))[0]
        body = exact(n)
        xid, zxid, err = struct.unpack_from(">iqi", body)
        if xid != -1:
            return xid, zxid, err, body[16:]


def closed_by_peer(sock, timeout):
    """True when the server closes `sock` (FIN or reset) within `timeout` seconds. Reads nothing:
    a probe that never reads must not start reading to find out."""
    poller = select.poll()
    poller.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        if poller.poll(left * 1000):
            return True


# ---- probes -------------------------------------------------------------------------------------

def half_open(port, count, partial_bytes=0, frame_len=45):
    """Opens `count` connections that send a connect frame's 4-byte length (`frame_len`) and then
    only `partial_bytes` of its body. Returns the sockets (the caller closes them)."""
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(struct.pack(">i", frame_len) + b"\0" * partial_bytes)
        socks.append(s)
    return socks


def wait_all_closed(socks, timeout):
    """Seconds until the server has closed every socket, or None if some stayed open."""
    start = time.monotonic()
    for s in socks:
        left = timeout - (time.monotonic() - start)
        if left <= 0 or not closed_by_peer(s, left):
            return None
    return time.monotonic() - start


def fill_tree(port, parent, count, data=b"", batch=500):
    """Creates `parent` and `count` children under it, in multis of `batch` creates, pipelined."""
    c = jute.Conn(port)
    c.call(jute.CREATE, bytes(W().str(parent).buf(b"").acls(OPEN).int(0).b))
    sent = 0
    inflight = 0
    xid = 100
    while sent < count or inflight:
        while sent < count and inflight < 8:
            w = W()
            for i in range(sent, min(sent + batch, count)):
                w.int(jute.CREATE).bool(False).int(-1).str(f"{parent}/n{i:07d}").buf(data).acls(OPEN).int(0)
            w.int(-1).bool(True).int(-1)
            xid += 1
            c.s.sendall(_request(xid, jute.MULTI, bytes(w.b)))
            sent = min(sent + batch, count)
            inflight += 1
        _, _, err, _ = read_reply(c.s)
        assert err == 0, f"fill multi failed: {err}"
        inflight -= 1
    c.close()


def create_node(port, path, data):
    c = jute.Conn(port)
    _, (err, _, _) = c.call(jute.CREATE, bytes(W().str(path).buf(data).acls(OPEN).int(0).b))
    c.close()
    return err


def multiread_amplify(port, path, ops):
    """One multiRead of `ops` getData of `path`. Returns (err, ms, request bytes, reply bytes);
    err is None when the connection closed instead."""
    w = W()
    for _ in range(ops):
        w.int(jute.GET_DATA).bool(False).int(-1).str(path).bool(False)
    w.int(-1).bool(True).int(-1)
    body = bytes(w.b)
    c = jute.Conn(port, timeout_ms=30000)
    start = time.monotonic()
    c.s.settimeout(60)
    c.s.sendall(_request(1, jute.MULTI_READ, body))
    try:
        _, _, err, reply = read_reply(c.s)
    except (ConnectionError, OSError):
        err, reply = None, b""
    ms = (time.monotonic() - start) * 1000
    c.close()
    return err, ms, len(body), len(reply)


def never_read(port, conns, requests_each, path, rcvbuf=4096):
    """Opens `conns` sessions that each pipeline `requests_each` getData of `path` and then never
    read. Returns the sockets (the caller closes them)."""
    socks = []
    for _ in range(conns):
        c = jute.Conn(port, timeout_ms=30000)
        c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        payload = b"".join(_request(i + 1, jute.GET_DATA, bytes(W().str(path).bool(False).b))
                           for i in range(requests_each))
        c.s.settimeout(10)
        try:
            c.s.sendall(payload)
        except OSError:
            pass
        socks.append(c.s)
    return socks


def acl_stall(port, entries, parent="/no/such/parent"):
    """A create with `entries` distinct digest ACL entries under a missing parent. Returns
    (err, ms from sending the last byte to the reply)."""
    acl = [(31, "digest", f"u{i}:h") for i in range(entries)]
    body = bytes(W().str(f"{parent}/n").buf(b"").acls(acl).int(0).b)
    c = jute.Conn(port, timeout_ms=30000)
    c.s.settimeout(60)
    c.s.sendall(_request(1, jute.CREATE, body))
    start = time.monotonic()
    try:
        _, _, err, _ = read_reply(c.s)
    except (ConnectionError, OSError):
        err = None
    ms = (time.monotonic() - start) * 1000
    c.close()
    return err, ms


def acl_check_stall(port, entries, requests, identities=31):
    """A node whose ACL has `entries` digest entries that match nobody and READ for anyone last,
    read `requests` times, pipelined, by a session with `identities` digest identities: every
    read checks the whole ACL. Returns ms until all were answered."""
    acl = [(31, "digest", f"u{i}:h") for i in range(entries)] + [(1, "world", "anyone")]
    c = jute.Conn(port, timeout_ms=30000)
    c.s.settimeout(120)
    _, (err, _, _) = c.call(jute.CREATE, bytes(W().str("/wide-acl").buf(b"v").acls(acl).int(0).b))
    assert err in (0, -110), err
    for i in range(identities):
        c.call(jute.AUTH, bytes(W().int(0).str("digest").buf(f"x{i}:pw".encode()).b), xid=-4)
    payload = b"".join(_request(i + 1, jute.GET_DATA, bytes(W().str("/wide-acl").bool(False).b))
                       for i in range(requests))
    start = time.monotonic()
    c.s.sendall(payload)
    for _ in range(requests):
        _, _, err, _ = read_reply(c.s)
        assert err == 0, err
    ms = (time.monotonic() - start) * 1000
    c.close()
    return ms


def count_stall(port, path, requests):
    """`requests` pipelined getAllChildrenNumber(path). Returns (counts, ms until all answered)."""
    c = jute.Conn(port, timeout_ms=30000)
    c.s.settimeout(120)
    payload = b"".join(_request(i + 1, jute.GET_ALL_CHILDREN, bytes(W().str(path).b)) for i in range(requests))
    start = time.monotonic()
    c.s.sendall(payload)
    counts = []
    for _ in range(requests):
        _, _, err, reply = read_reply(c.s)
        counts.append(struct.unpack(">i", reply[:4])[0] if err == 0 else ("err", err))
    ms = (time.monotonic() - start) * 1000
    c.close()
    return counts, ms


def snap_flood(port, count):
    """Asks `snap` `count` times in a row. Returns the answers."""
    return [four_letter(port, "snap", timeout=60) for _ in range(count)]
