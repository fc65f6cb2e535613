"""Shared helpers for the kazoo test files: bounded waiting, client bookkeeping, a pausable TCP proxy,
and the few ZooKeeper requests that kazoo 2.11 has no public API for (createContainer, createTTL, addWatch)."""

import select
import socket
import threading
import time
from collections import namedtuple

from kazoo.client import KazooClient
from kazoo.protocol.serialization import int_struct, long_struct, read_string, stat_struct, write_buffer, write_string
from kazoo.protocol.states import ZnodeStat
from kazoo.security import OPEN_ACL_UNSAFE

from servers import free_port


def wait_until(pred, timeout=5.0, interval=0.02):
    """Poll `pred` until it is truthy or `timeout` seconds pass; returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Clients:
    """Makes started KazooClients and stops/closes all of them at teardown."""

    def __init__(self):
        self.made = []

    def __call__(self, hosts, timeout=4.0, start=True, **kw):
        zk = KazooClient(hosts=hosts, timeout=timeout, **kw)
        self.made.append(zk)
        if start:
            zk.start(timeout=10)
        return zk

    def close_all(self):
        for zk in self.made:
            try:
                zk.stop()
                zk.close()
            except Exception:
                pass


class PausableProxy:
    """A loopback TCP proxy in front of a server. `freeze()` stops forwarding bytes in both directions
    without closing anything (the server sees a silent client, the client a silent server); `thaw()`
    resumes; `drop_all()` closes every current connection (the client sees a connection loss)."""

    def __init__(self, upstream_port, port=None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", port or free_port()))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.running = threading.Event()
        self.running.set()
        self.frozen = threading.Event()
        self.lock = threading.Lock()
        self.conns = []
        self.threads = []
        t = threading.Thread(target=self._accept_loop, daemon=True)
        t.start()
        self.threads.append(t)

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def _accept_loop(self):
        self.listener.settimeout(0.05)
        while self.running.is_set():
            try:
                c, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            t = threading.Thread(target=self._pump, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _pump(self, client_sock):
        try:
            up = socket.create_connection(self.upstream, timeout=2)
        except OSError:
            client_sock.close()
            return
        pair = (client_sock, up)
        with self.lock:
            self.conns.append(pair)
        peer = {client_sock: up, up: client_sock}
        try:
            while self.running.is_set():
                if self.frozen.is_set():
                    time.sleep(0.01)
                    continue
                r, _, _ = select.select([client_sock, up], [], [], 0.05)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    peer[s].sendall(data)
        except OSError:
            return
        finally:
            for s in pair:
                try:
                    s.close()
                except OSError:
                    pass
            with self.lock:
                if pair in self.conns:
                    self.conns.remove(pair)

    def freeze(self):
        self.frozen.set()

    def thaw(self):
        self.frozen.clear()

    def drop_all(self):
        with self.lock:
            conns = list(self.conns)
        for pair in conns:
            for s in pair:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.running.clear()
        self.frozen.clear()
        self.drop_all()
        self.listener.close()
        for t in self.threads:
            t.join(timeout=2)


# ---- Requests kazoo 2.11 lacks a public API for. They go through KazooClient._call, the same path
# kazoo's own create()/get() use, so framing, xids and error mapping are kazoo's.

CONTAINER_FLAG = 4
PERSISTENT_WITH_TTL_FLAG = 5
PERSISTENT_SEQUENTIAL_WITH_TTL_FLAG = 6


def _create_body(path, data, acl, flags):
    b = bytearray()
    b.extend(write_string(path))
    b.extend(write_buffer(data))
    b.extend(int_struct.pack(len(acl)))
    for a in acl:
        b.extend(int_struct.pack(a.perms) + write_string(a.id.scheme) + write_string(a.id.id))
    b.extend(int_struct.pack(flags))
    return b


def _read_create2_response(buf, offset):
    path, offset = read_string(buf, offset)
    return path, ZnodeStat._make(stat_struct.unpack_from(buf, offset))


class CreateContainerRequest(namedtuple("CreateContainerRequest", "path data acl flags")):
    type = 19

    def serialize(self):
        return _create_body(self.path, self.data, self.acl, self.flags)

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_create2_response(buf, offset)


class CreateTTLRequest(namedtuple("CreateTTLRequest", "path data acl flags ttl")):
    type = 21

    def serialize(self):
        b = _create_body(self.path, self.data, self.acl, self.flags)
        b.extend(long_struct.pack(self.ttl))
        return b

    @classmethod
    def deserialize(cls, buf, offset):
        return _read_create2_response(buf, offset)


class AddWatchRequest(namedtuple("AddWatchRequest", "path mode")):
    type = 106

    def serialize(self):
        return write_string(self.path) + int_struct.pack(self.mode)

    @classmethod
    def deserialize(cls, buf, offset):
        return True


def _call(zk, request, timeout=10):
    result = zk.handler.async_result()
    zk._call(request, result)
    return result.get(timeout=timeout)


def create_container(zk, path, value=b""):
    """Creates a container znode; uses kazoo's create(container=True) when this kazoo has it."""
    try:
        return zk.create(path, value, container=True)
    except TypeError:
        return _call(zk, CreateContainerRequest(path, value, OPEN_ACL_UNSAFE, CONTAINER_FLAG))


def create_ttl(zk, path, ttl_ms, value=b"", sequence=False):
    """Creates a TTL znode; uses kazoo's create(ttl=...) when this kazoo has it."""
    try:
        return zk.create(path, value, ttl=ttl_ms, sequence=sequence)
    except TypeError:
        flags = PERSISTENT_SEQUENTIAL_WITH_TTL_FLAG if sequence else PERSISTENT_WITH_TTL_FLAG
        return _call(zk, CreateTTLRequest(path, value, OPEN_ACL_UNSAFE, flags, ttl_ms))


def record_all_watch_events(zk):
    """Records every watch notification this client receives as (type, path), including ones kazoo has
    no registered watcher for (persistent watches), by wrapping the connection's event reader."""
    events = []
    conn = zk._connection
    original = conn._read_watch_event

    def reader(buffer, offset):
        from kazoo.protocol.serialization import Watch
        watch, _ = Watch.deserialize(buffer, offset)
        events.append((watch.type, watch.path))
        return original(buffer, offset)

    conn._read_watch_event = reader
    return events


def add_watch_wire(zk, path, mode):
    """addWatch (opcode 106) sent through kazoo's request machinery; mode 0 = PERSISTENT, 1 = PERSISTENT_RECURSIVE."""
    return _call(zk, AddWatchRequest(path, mode))
