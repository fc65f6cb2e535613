"""A raw ZooKeeper wire client for the differential test: it sends jute requests and returns the
raw reply header and a decoded body, so replies from two servers can be compared field by field."""

import socket
import struct

CREATE, DELETE, EXISTS, GET_DATA, SET_DATA, GET_ACL, SET_ACL, GET_CHILDREN, SYNC = 1, 2, 3, 4, 5, 6, 7, 8, 9
PING, GET_CHILDREN2, CHECK, MULTI, CREATE2, CHECK_WATCHES, REMOVE_WATCHES = 11, 12, 13, 14, 15, 17, 18
CREATE_CONTAINER, CREATE_TTL, MULTI_READ, AUTH, GET_EPHEMERALS, GET_ALL_CHILDREN, ADD_WATCH = 19, 21, 22, 100, 103, 104, 106
CLOSE_SESSION = -11
WHO_AM_I, SET_WATCHES = 107, 101


class W:
    def __init__(self):
        self.b = bytearray()

    def int(self, v):
        self.b += struct.pack(">i", v)
        return self

    def long(self, v):
        self.b += struct.pack(">q", v)
        return self

    def bool(self, v):
        self.b += b"\x01" if v else b"\x00"
        return self

    def buf(self, v):
        if v is None:
            return self.int(-1)
        self.int(len(v))
        self.b += v
        return self

    def str(self, v):
        # surrogatepass: a lone surrogate goes out as the bytes Java decodes as malformed.
        return self.buf(v.encode("utf-8", "surrogatepass"))

    def acls(self, acls):
        self.int(len(acls))
        for perms, scheme, ident in acls:
            self.int(perms).str(scheme).str(ident)
        return self


class R:
    def __init__(self, b):
        self.b, self.p = b, 0

    def int(self):
        v = struct.unpack_from(">i", self.b, self.p)[0]
        self.p += 4
        return v

    def long(self):
        v = struct.unpack_from(">q", self.b, self.p)[0]
        self.p += 8
        return v

    def bool(self):
        v = self.b[self.p] != 0
        self.p += 1
        return v

    def buf(self):
        n = self.int()
        if n < 0:
            return None
        v = bytes(self.b[self.p:self.p + n])
        self.p += n
        return v

    def str(self):
        v = self.buf()
        return None if v is None else v.decode("utf-8", "surrogatepass")

    def stat(self):
        f = [self.long(), self.long(), self.long(), self.long(), self.int(), self.int(), self.int(),
             self.long(), self.int(), self.int(), self.long()]
        keys = ["czxid", "mzxid", "ctime", "mtime", "version", "cversion", "aversion", "ephemeralOwner",
                "dataLength", "numChildren", "pzxid"]
        return dict(zip(keys, f))

    def strs(self):
        return [self.str() for _ in range(max(self.int(), 0))]

    def left(self):
        return len(self.b) - self.p


class Conn:
    def __init__(self, port, timeout_ms=10000, session_id=0, passwd=b"\0" * 16):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.xid = 0
        req = W().int(0).long(0).int(timeout_ms).long(session_id).buf(passwd).bool(False)
        self._send(bytes(req.b))
        r = R(self._recv())
        r.int()
        self.timeout, self.session_id, self.passwd = r.int(), r.long(), r.buf()

    def _send(self, payload):
        self.s.sendall(struct.pack(">i", len(payload)) + payload)

    def _recv_exact(self, n):
        out = b""
        while len(out) < n:
            chunk = self.s.recv(n - len(out))
            if not chunk:
                raise ConnectionError("closed")
            out += chunk
        return out

    def _recv(self):
        n = struct.unpack(">i", self._recv_exact(4))[0]
        return self._recv_exact(n)

    def call(self, opcode, body=b"", xid=None):
        """Returns (events, (err, zxid, body_reader)); events are (type, state, path) seen first."""
        if xid is None:
            self.xid += 1
            xid = self.xid
        self._send(struct.pack(">ii", xid, opcode) + body)
        events = []
        while True:
            r = R(self._recv())
            rxid, zxid, err = r.int(), r.long(), r.int()
            if rxid == -1:
                events.append((r.int(), r.int(), r.str()))
                continue
            assert rxid == xid, (rxid, xid)
            return events, (err, zxid, r)

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass
