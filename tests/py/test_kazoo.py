"""Ringkeeper through kazoo's client API: CRUD and stats, watches, transactions, ACLs, sessions,
containers and TTL nodes. Each test gets a fresh server (the `server` / `server_factory` fixtures)."""

import base64
import hashlib
import queue
import threading
import time

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import (
    BadVersionError,
    ConnectionLoss,
    NoAuthError,
    NoChildrenForEphemeralsError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
    RuntimeInconsistency,
    UnimplementedError,
)
from kazoo.protocol.states import EventType, KeeperState
from kazoo.recipe.watchers import ChildrenWatch, DataWatch
from kazoo.security import (
    CREATOR_ALL_ACL,
    OPEN_ACL_UNSAFE,
    READ_ACL_UNSAFE,
    Permissions,
    make_acl,
    make_digest_acl,
    make_digest_acl_credential,
)

from helpers import (
    PausableProxy,
    add_watch_wire,
    create_container,
    create_ttl,
    record_all_watch_events,
    wait_until,
)

JUTE_MAX_BUFFER = 0xFFFFF  # default jute.maxbuffer: 1 MiB - 1
# Wire-level event types (kazoo's Watch.type): 1 created, 2 deleted, 3 data changed, 4 children changed.
CREATED, DELETED, CHANGED, CHILD = 1, 2, 3, 4


@pytest.fixture
def zk(server, clients):
    return clients(server.hosts)


# --------------------------------------------------------------------------------------------- CRUD


def test_create_get_set_delete_with_stats(zk):
    path, stat = zk.create("/node", b"v0", include_data=True)
    assert path == "/node"
    assert stat.version == 0 and stat.cversion == 0 and stat.aversion == 0
    assert stat.dataLength == 2 and stat.numChildren == 0
    assert stat.czxid == stat.mzxid == stat.pzxid
    assert stat.ephemeralOwner == 0
    assert stat.ctime == stat.mtime
    # ctime is wall-clock milliseconds
    assert abs(stat.ctime / 1000.0 - time.time()) < 60

    data, got = zk.get("/node")
    assert data == b"v0"
    assert got == stat

    new = zk.set("/node", b"value-1")
    assert new.version == 1
    assert new.dataLength == 7
    assert new.czxid == stat.czxid
    assert new.mzxid > stat.mzxid
    assert new.mtime >= stat.mtime
    assert new.ctime == stat.ctime
    assert zk.get("/node") == (b"value-1", new)
    assert zk.exists("/node") == new

    # Zxids grow strictly with each write.
    newer = zk.set("/node", b"")
    assert newer.version == 2 and newer.mzxid > new.mzxid and newer.dataLength == 0
    assert zk.get("/node")[0] == b""

    zk.delete("/node")
    assert zk.exists("/node") is None
    with pytest.raises(NoNodeError):
        zk.get("/node")


def test_parent_stat_tracks_children(zk):
    zk.create("/p")
    before = zk.exists("/p")
    _, child = zk.create("/p/c1", include_data=True)
    after = zk.exists("/p")
    assert after.numChildren == 1
    assert after.cversion == before.cversion + 1
    assert after.pzxid == child.czxid
    assert after.version == before.version  # children do not change the parent's data version
    assert after.mzxid == before.mzxid
    zk.delete("/p/c1")
    gone = zk.exists("/p")
    assert gone.numChildren == 0
    assert gone.cversion == before.cversion + 2
    assert gone.pzxid > child.czxid


def test_versions_are_checked(zk):
    zk.create("/v", b"a")
    with pytest.raises(BadVersionError):
        zk.set("/v", b"b", version=1)
    assert zk.get("/v")[0] == b"a"
    st = zk.set("/v", b"b", version=0)
    assert st.version == 1
    with pytest.raises(BadVersionError):
        zk.set("/v", b"c", version=0)
    with pytest.raises(BadVersionError):
        zk.delete("/v", version=0)
    assert zk.exists("/v") is not None
    zk.delete("/v", version=1)
    assert zk.exists("/v") is None


def test_error_codes(zk):
    zk.create("/e", b"x")
    with pytest.raises(NodeExistsError):
        zk.create("/e", b"y")
    assert zk.get("/e")[0] == b"x"
    with pytest.raises(NoNodeError):
        zk.create("/missing/child")
    with pytest.raises(NoNodeError):
        zk.set("/missing", b"")
    with pytest.raises(NoNodeError):
        zk.delete("/missing")
    with pytest.raises(NoNodeError):
        zk.get_children("/missing")
    zk.create("/e/kid")
    with pytest.raises(NotEmptyError):
        zk.delete("/e")
    assert zk.get_children("/e") == ["kid"]
    zk.delete("/e", recursive=True)
    assert zk.exists("/e") is None


def test_ensure_path_and_makepath(zk):
    zk.ensure_path("/a/b/c")
    for p in ("/a", "/a/b", "/a/b/c"):
        assert zk.exists(p) is not None
    # idempotent
    zk.ensure_path("/a/b/c")
    assert zk.get_children("/a/b") == ["c"]
    zk.create("/x/y/z", b"deep", makepath=True)
    assert zk.get("/x/y/z")[0] == b"deep"
    assert zk.get("/x/y")[0] == b""


def test_get_children_with_data(zk):
    zk.create("/kids")
    names = {f"k{i}" for i in range(5)}
    for n in names:
        zk.create(f"/kids/{n}", n.encode())
    children, stat = zk.get_children("/kids", include_data=True)
    assert set(children) == names
    assert stat.numChildren == 5
    assert stat.cversion == 5
    assert stat == zk.exists("/kids")
    assert sorted(zk.get_children("/kids")) == sorted(names)
    assert "zookeeper" in zk.get_children("/")


def test_sequential_node_names(zk):
    zk.create("/seq")
    a = zk.create("/seq/n-", b"", sequence=True)
    b = zk.create("/seq/n-", b"", sequence=True)
    c = zk.create("/seq/other-", b"", sequence=True)
    assert a == "/seq/n-0000000000"
    assert b == "/seq/n-0000000001"
    # The counter belongs to the parent, not to the prefix.
    assert c == "/seq/other-0000000002"
    # A name that is just the suffix.
    assert zk.create("/seq/", sequence=True) == "/seq/0000000003"
    for name in zk.get_children("/seq"):
        suffix = name[-10:]
        assert suffix.isdigit() and len(suffix) == 10


def test_sequence_counter_counts_created_children_only(zk):
    """The suffix is the number of children ever created under the parent: deletes (and data changes)
    do not advance it, although they do advance cversion. Java ZooKeeper 3.8 behaves the same."""
    zk.create("/p")
    for c in "abc":
        zk.create("/p/" + c)
    for c in "abc":
        zk.delete("/p/" + c)
    assert zk.exists("/p").cversion == 6
    first = zk.create("/p/s-", sequence=True)
    assert first == "/p/s-0000000003"
    zk.delete(first)
    zk.set("/p", b"data")
    assert zk.create("/p/s-", sequence=True) == "/p/s-0000000004"
    # Inside a transaction: create+delete of a plain child still counts the create.
    tx = zk.transaction()
    tx.create("/p/x")
    tx.delete("/p/x")
    tx.create("/p/q-", sequence=True)
    assert tx.commit() == ["/p/x", True, "/p/q-0000000006"]
    assert zk.create("/p/e-", ephemeral=True, sequence=True) == "/p/e-0000000007"
    # Another parent has its own counter.
    zk.create("/q")
    assert zk.create("/q/", sequence=True) == "/q/0000000000"


def test_ephemeral_nodes_vanish_when_client_stops(server, clients):
    owner = clients(server.hosts)
    other = clients(server.hosts)
    other.create("/eph-parent")
    _, stat = owner.create("/eph-parent/e", b"mine", ephemeral=True, include_data=True)
    assert stat.ephemeralOwner == owner.client_id[0]
    assert stat.ephemeralOwner != 0
    assert other.exists("/eph-parent/e").ephemeralOwner == owner.client_id[0]
    owner.stop()
    assert other.exists("/eph-parent/e") is None
    assert other.get_children("/eph-parent") == []


def test_no_children_for_ephemerals(zk):
    zk.create("/eph", ephemeral=True)
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child")
    with pytest.raises(NoChildrenForEphemeralsError):
        zk.create("/eph/child-", sequence=True)
    assert zk.get_children("/eph") == []


def test_large_data_up_to_frame_limit(zk):
    """jute.maxbuffer (1 MiB - 1 by default) bounds the whole request frame, as in Java ZooKeeper:
    a create whose frame is exactly 0xfffff bytes is accepted, one byte more drops the connection."""
    path = "/big"
    # Frame without its length prefix: xid 4 + type 4 + path (4+len) + data (4+n) + acl count 4
    # + world:anyone ACL (4 + 4+5 + 4+6) + flags 4 = 47 + len(path) + n.
    n = JUTE_MAX_BUFFER - (47 + len(path))
    data = bytes(i % 251 for i in range(n))
    zk.create(path, data)
    got, stat = zk.get(path)
    assert stat.dataLength == n
    assert got == data
    # A read reply larger than the request limit is fine too.
    new = data[::-1]
    zk.set(path, new)
    assert zk.get(path)[0] == new

    with pytest.raises(ConnectionLoss):
        zk.create("/bi2", b"z" * (n + 1))  # same path length, one byte over
    assert wait_until(lambda: zk.connected, 10)
    assert zk.exists("/bi2") is None
    assert zk.exists(path).dataLength == n


# ------------------------------------------------------------------------------------------- Watches


def test_data_watch_fires_once(server, clients, zk):
    other = clients(server.hosts)
    zk.create("/w", b"0")
    events = queue.Queue()
    data, _ = zk.get("/w", watch=events.put)
    assert data == b"0"
    other.set("/w", b"1")
    ev = events.get(timeout=5)
    assert ev.type == EventType.CHANGED
    assert ev.path == "/w"
    assert ev.state == KeeperState.CONNECTED
    other.set("/w", b"2")
    other.set("/w", b"3")
    # Watches are one-shot: no second event. A sync round trip flushes any pending notification.
    zk.sync("/w")
    time.sleep(0.2)
    assert events.empty()


def test_child_watch_fires_on_create_and_delete(server, clients, zk):
    other = clients(server.hosts)
    zk.create("/cw")
    events = queue.Queue()
    assert zk.get_children("/cw", watch=events.put) == []
    other.create("/cw/a")
    ev = events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.CHILD, "/cw")
    # Data changes on the child or parent do not trigger a child watch.
    zk.get_children("/cw", watch=events.put)
    other.set("/cw", b"data")
    other.set("/cw/a", b"data")
    zk.sync("/cw")
    time.sleep(0.2)
    assert events.empty()
    other.delete("/cw/a")
    ev = events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.CHILD, "/cw")


def test_exists_watch_on_missing_node_fires_created(server, clients, zk):
    other = clients(server.hosts)
    events = queue.Queue()
    assert zk.exists("/later", watch=events.put) is None
    other.create("/later", b"x")
    ev = events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.CREATED, "/later")


def test_delete_fires_deleted_for_data_and_exists_watches(server, clients, zk):
    other = clients(server.hosts)
    zk.create("/d")
    data_events, exists_events, child_events = queue.Queue(), queue.Queue(), queue.Queue()
    zk.get("/d", watch=data_events.put)
    zk.exists("/d", watch=exists_events.put)
    zk.get_children("/d", watch=child_events.put)
    other.delete("/d")
    for q in (data_events, exists_events, child_events):
        ev = q.get(timeout=5)
        assert (ev.type, ev.path) == (EventType.DELETED, "/d")
    # Parent's child watch sees CHILD.
    zk.create("/d2")
    parent_events = queue.Queue()
    zk.get_children("/", watch=parent_events.put)
    other.delete("/d2")
    ev = parent_events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.CHILD, "/")


def test_watch_is_seen_before_the_new_data(server, clients, zk):
    """Ordering guarantee: a client receives the watch event before any reply showing the change."""
    other = clients(server.hosts)
    received = record_all_watch_events(zk)  # appended by kazoo's reader thread, in wire order
    zk.create("/ord", b"0")
    for round_ in range(1, 21):
        zk.get("/ord", watch=lambda ev: None)
        expected = (CHANGED, "/ord")
        before = received.count(expected)
        other.set("/ord", str(round_).encode())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            data, _ = zk.get("/ord")
            if data == str(round_).encode():
                # The reply carrying the new value was read after the notification.
                assert received.count(expected) == before + 1, round_
                break
        else:
            pytest.fail("the change never became visible")


def test_datawatch_and_childrenwatch_helpers(server, clients, zk):
    other = clients(server.hosts)
    zk.create("/h", b"start")
    data_seen = []
    children_seen = []
    lock = threading.Lock()

    @DataWatch(zk, "/h")
    def on_data(data, stat):
        with lock:
            data_seen.append((data, stat.version if stat else None))

    @ChildrenWatch(zk, "/h")
    def on_children(children):
        with lock:
            children_seen.append(sorted(children))

    assert wait_until(lambda: data_seen and children_seen)
    other.set("/h", b"one")
    assert wait_until(lambda: (b"one", 1) in data_seen)
    other.set("/h", b"two")
    assert wait_until(lambda: (b"two", 2) in data_seen)
    other.create("/h/a")
    assert wait_until(lambda: ["a"] in children_seen)
    other.create("/h/b")
    assert wait_until(lambda: ["a", "b"] in children_seen)
    other.delete("/h/a")
    assert wait_until(lambda: children_seen[-1] == ["b"])
    with lock:
        assert data_seen[0] == (b"start", 0)
        assert data_seen[-1] == (b"two", 2)
        assert children_seen[0] == []
    other.delete("/h", recursive=True)
    assert wait_until(lambda: data_seen[-1] == (None, None))


def test_persistent_watches_public_api(server, clients, zk):
    try:
        from kazoo.protocol.states import AddWatchMode
    except ImportError:
        pytest.skip("this kazoo has no add_watch/AddWatchMode (see test_persistent_watches_on_the_wire)")
    other = clients(server.hosts)
    zk.create("/pw")
    rec_events, events = [], []
    zk.add_watch("/pw", lambda ev: rec_events.append((ev.type, ev.path)), AddWatchMode.PERSISTENT_RECURSIVE)
    zk.add_watch("/pw", lambda ev: events.append((ev.type, ev.path)), AddWatchMode.PERSISTENT)
    other.create("/pw/a")
    other.create("/pw/a/b")
    other.set("/pw/a/b", b"1")
    other.set("/pw/a/b", b"2")
    other.set("/pw", b"x")
    other.delete("/pw/a/b")
    expected_rec = [
        (EventType.CREATED, "/pw/a"),
        (EventType.CREATED, "/pw/a/b"),
        (EventType.CHANGED, "/pw/a/b"),
        (EventType.CHANGED, "/pw/a/b"),
        (EventType.CHANGED, "/pw"),
        (EventType.DELETED, "/pw/a/b"),
    ]
    assert wait_until(lambda: len(rec_events) >= len(expected_rec))
    assert rec_events == expected_rec
    assert wait_until(lambda: len(events) >= 2)
    assert events == [(EventType.CHILD, "/pw"), (EventType.CHANGED, "/pw")]


def test_persistent_watches_on_the_wire(server, clients, zk):
    """addWatch (opcode 106) sent through kazoo's own request path, since kazoo 2.11 has no public
    add_watch. Persistent watches survive firing; recursive ones cover descendants and get no
    children-changed events."""
    other = clients(server.hosts)
    events = record_all_watch_events(zk)
    zk.create("/pw")
    zk.create("/solo")
    assert add_watch_wire(zk, "/pw", 1) is True  # PERSISTENT_RECURSIVE
    assert add_watch_wire(zk, "/solo", 0) is True  # PERSISTENT
    assert add_watch_wire(zk, "/not-yet", 0) is True  # may be set on a missing node
    other.create("/pw/a")
    other.create("/pw/a/b")
    other.set("/pw/a/b", b"1")
    other.set("/pw/a/b", b"2")
    other.set("/pw", b"x")
    other.delete("/pw/a/b")
    other.create("/solo/kid")
    other.set("/solo", b"1")
    other.set("/solo", b"2")
    other.set("/solo/kid", b"not watched")
    other.delete("/solo/kid")
    other.create("/not-yet")
    other.delete("/not-yet")
    other.create("/elsewhere")
    zk.sync("/")
    expected = [
        (CREATED, "/pw/a"),
        (CREATED, "/pw/a/b"),
        (CHANGED, "/pw/a/b"),
        (CHANGED, "/pw/a/b"),
        (CHANGED, "/pw"),
        (DELETED, "/pw/a/b"),
        (CHILD, "/solo"),
        (CHANGED, "/solo"),
        (CHANGED, "/solo"),
        (CHILD, "/solo"),
        (CREATED, "/not-yet"),
        (DELETED, "/not-yet"),
    ]
    assert wait_until(lambda: len(events) >= len(expected))
    time.sleep(0.1)
    assert events == expected


# -------------------------------------------------------------------------------------- Transactions


def test_transaction_success(zk):
    zk.create("/t")
    zk.create("/t/old", b"o")
    zk.create("/t/gone")
    tx = zk.transaction()
    tx.create("/t/new", b"n")
    tx.set_data("/t/old", b"o2", version=0)
    tx.check("/t/old", 1)
    tx.delete("/t/gone")
    tx.create("/t/s-", sequence=True)
    results = tx.commit()
    assert len(results) == 5
    assert results[0] == "/t/new"
    assert results[1].version == 1 and results[1].dataLength == 2
    assert results[2] is True
    assert results[3] is True
    assert results[4] == "/t/s-0000000003"  # fourth child ever created under /t
    assert zk.get("/t/new")[0] == b"n"
    assert zk.get("/t/old")[0] == b"o2"
    assert zk.exists("/t/gone") is None
    # All ops share one zxid.
    assert zk.exists("/t/new").czxid == zk.exists("/t/old").mzxid == zk.exists("/t/s-0000000003").czxid


def test_transaction_failure_rolls_back(zk):
    zk.create("/t", b"orig")
    before = zk.exists("/t")
    tx = zk.transaction()
    tx.create("/t/a", b"a")
    tx.set_data("/t", b"changed")
    tx.check("/t", 0)  # fails: set_data above bumped the version to 1 within the transaction
    tx.create("/t/b")
    results = tx.commit()
    assert len(results) == 4
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], RolledBackError)
    assert isinstance(results[2], BadVersionError)
    assert isinstance(results[3], RuntimeInconsistency)
    assert zk.exists("/t/a") is None
    assert zk.exists("/t/b") is None
    assert zk.get("/t") == (b"orig", before)

    tx = zk.transaction()
    tx.create("/t/c")
    tx.create("/t/c")
    results = tx.commit()
    assert isinstance(results[0], RolledBackError)
    assert isinstance(results[1], NodeExistsError)
    assert zk.exists("/t/c") is None

    tx = zk.transaction()
    tx.delete("/missing")
    tx.create("/t/d")
    results = tx.commit()
    assert isinstance(results[0], NoNodeError)
    assert isinstance(results[1], RuntimeInconsistency)
    assert zk.exists("/t/d") is None
    assert zk.get("/t") == (b"orig", before)


# ------------------------------------------------------------------------------------- ACLs and auth


def test_digest_acl_and_auth(server, clients):
    alice = clients(server.hosts, auth_data=[("digest", "alice:pw")])
    bob = clients(server.hosts)
    acl = make_digest_acl("alice", "pw", all=True)
    alice.create("/secret", b"s3cret", acl=[acl])
    assert alice.get("/secret")[0] == b"s3cret"
    with pytest.raises(NoAuthError):
        bob.get("/secret")
    with pytest.raises(NoAuthError):
        bob.set("/secret", b"x")
    with pytest.raises(NoAuthError):
        bob.create("/secret/kid")
    with pytest.raises(NoAuthError):
        bob.get_children("/secret")
    # Wrong password is a different identity.
    bob.add_auth("digest", "alice:wrong")
    with pytest.raises(NoAuthError):
        bob.get("/secret")
    bob.add_auth("digest", "alice:pw")
    assert bob.get("/secret")[0] == b"s3cret"

    acls, stat = alice.get_acls("/secret")
    assert acls == [acl]
    assert acls[0].id.id == make_digest_acl_credential("alice", "pw")
    assert acls[0].perms == Permissions.ALL
    assert stat.aversion == 0


def test_exists_checks_read_permission(server, clients):
    """Current ZooKeeper releases check READ on exists (FinalRequestProcessor in 3.8.6 and 3.9.4);
    Debian's 3.8.0 does not. Ringkeeper follows the current rule."""
    alice = clients(server.hosts, auth_data=[("digest", "alice:pw")])
    bob = clients(server.hosts)
    _, created = alice.create("/secret", b"s3cret", acl=[make_digest_acl("alice", "pw", all=True)], include_data=True)
    with pytest.raises(NoAuthError):
        bob.get("/secret")
    with pytest.raises(NoAuthError):
        bob.exists("/secret")
    assert alice.exists("/secret") == created
    assert bob.exists("/nothing-here") is None


def test_acl_permissions_are_separate(server, clients):
    owner = clients(server.hosts)
    owner.add_auth("digest", "owner:pw")
    other = clients(server.hosts)
    acl = [make_digest_acl("owner", "pw", all=True), make_acl("world", "anyone", read=True, create=True)]
    owner.create("/mixed", b"data", acl=acl)
    assert other.get("/mixed")[0] == b"data"
    other.create("/mixed/kid")  # CREATE granted
    with pytest.raises(NoAuthError):
        other.set("/mixed", b"x")  # WRITE not granted
    with pytest.raises(NoAuthError):
        other.delete("/mixed/kid")  # DELETE (on the parent) not granted
    with pytest.raises(NoAuthError):
        other.set_acls("/mixed", OPEN_ACL_UNSAFE)  # ADMIN not granted
    owner.delete("/mixed/kid")
    with pytest.raises(BadVersionError):
        owner.set_acls("/mixed", READ_ACL_UNSAFE, version=1)
    stat = owner.set_acls("/mixed", READ_ACL_UNSAFE, version=0)
    assert stat.aversion == 1
    assert stat.version == 0  # data version untouched
    assert other.get_acls("/mixed")[0] == READ_ACL_UNSAFE
    # The owner lost ADMIN with that ACL; the ACL check comes before the version check.
    with pytest.raises(NoAuthError):
        owner.set_acls("/mixed", OPEN_ACL_UNSAFE, version=0)


def test_creator_all_acl_becomes_the_authenticated_identity(server, clients):
    zk = clients(server.hosts)
    anon = clients(server.hosts)
    from kazoo.exceptions import InvalidACLError

    with pytest.raises(InvalidACLError):
        anon.create("/no-auth", acl=CREATOR_ALL_ACL)
    zk.add_auth("digest", "carol:pw")
    zk.create("/carol", b"c", acl=CREATOR_ALL_ACL)
    acls, _ = zk.get_acls("/carol")
    assert [(a.perms, a.id.scheme, a.id.id) for a in acls] == [
        (Permissions.ALL, "digest", make_digest_acl_credential("carol", "pw"))
    ]
    with pytest.raises(NoAuthError):
        anon.get("/carol")


def test_super_digest_reads_everything(server_factory, clients):
    digest = base64.b64encode(hashlib.sha1(b"super:secret").digest()).decode()
    srv = server_factory(f"DigestAuthenticationProvider.superDigest=super:{digest}")
    owner = clients(srv.hosts, auth_data=[("digest", "dave:pw")])
    owner.create("/locked", b"dave's", acl=[make_digest_acl("dave", "pw", all=True)])
    nobody = clients(srv.hosts)
    with pytest.raises(NoAuthError):
        nobody.get("/locked")
    wrong_super = clients(srv.hosts, auth_data=[("digest", "super:not-the-secret")])
    with pytest.raises(NoAuthError):
        wrong_super.get("/locked")
    root = clients(srv.hosts)
    root.add_auth("digest", "super:secret")
    assert root.get("/locked")[0] == b"dave's"
    root.set("/locked", b"overwritten")
    root.create("/locked/kid")
    root.delete("/locked/kid")
    assert owner.get("/locked")[0] == b"overwritten"
    root.delete("/locked")
    assert owner.exists("/locked") is None


# ------------------------------------------------------------------------------------------ Sessions


def _state_recorder(zk):
    states = []
    zk.add_listener(states.append)
    return states


def test_session_resumed_by_client_id_then_closed(server, clients):
    proxy = PausableProxy(server.port)
    try:
        a = clients(proxy.hosts, timeout=4)
        observer = clients(server.hosts)
        a.create("/eph-a", b"a", ephemeral=True)
        sid, pw = a.client_id
        # Cut A off silently so it cannot take the session back while B holds it.
        proxy.freeze()
        b = clients(server.hosts, client_id=(sid, pw))
        assert b.connected
        assert b.client_id == (sid, pw)
        assert b.exists("/eph-a").ephemeralOwner == sid
        b.create("/eph-b", ephemeral=True)
        assert observer.exists("/eph-b").ephemeralOwner == sid
        deleted = queue.Queue()
        observer.exists("/eph-a", watch=deleted.put)
        observer.exists("/eph-b", watch=deleted.put)
        # Closing the session from B deletes every ephemeral the session owns.
        b.stop()
        evs = [deleted.get(timeout=5), deleted.get(timeout=5)]
        assert {(e.type, e.path) for e in evs} == {(EventType.DELETED, "/eph-a"), (EventType.DELETED, "/eph-b")}
        assert observer.exists("/eph-a") is None and observer.exists("/eph-b") is None
        # The closed session cannot be resumed again.
        c = clients(server.hosts, client_id=(sid, pw))
        assert c.client_id[0] != sid
    finally:
        proxy.close()


def test_resuming_session_elsewhere_disconnects_old_connection(server, clients):
    """Regression: Ringkeeper before 6667cf8 kept the old connection open and serving the session after
    another connection resumed it; Java ZooKeeper closes it."""
    proxy = PausableProxy(server.port)
    try:
        a = clients(proxy.hosts, timeout=4)
        sid, pw = a.client_id
        states = _state_recorder(a)
        proxy.freeze()
        b = clients(server.hosts, client_id=(sid, pw))
        assert b.client_id[0] == sid
        b.create("/from-b", ephemeral=True)
        b.stop()  # closes the session
        proxy.thaw()
        # A's old connection must be gone: A notices, reconnects, and learns its session has expired.
        assert wait_until(lambda: KazooState.LOST in states, 10), states
        assert wait_until(lambda: a.connected and a.client_id[0] != sid, 10)
    finally:
        proxy.close()


def test_wrong_password_does_not_resume_session(server, clients):
    a = clients(server.hosts)
    sid, pw = a.client_id
    bad = bytes((x ^ 0xFF) for x in pw)
    b = clients(server.hosts, client_id=(sid, bad), start=False)
    b.start_async()
    # The server answers with timeout 0 (expired); kazoo then starts a fresh session.
    assert wait_until(lambda: b.connected and b.client_id[0] != sid, 10)
    b.create("/b-own", ephemeral=True)
    assert b.exists("/b-own").ephemeralOwner == b.client_id[0]
    # The real session is unaffected.
    a.create("/still-here", ephemeral=True)
    assert a.exists("/still-here").ephemeralOwner == sid


def test_session_expires_when_client_goes_silent(server, clients):
    proxy = PausableProxy(server.port)
    try:
        a = clients(proxy.hosts, timeout=1.0)
        observer = clients(server.hosts)
        sid = a.client_id[0]
        a.create("/short-lived", ephemeral=True)
        states = _state_recorder(a)
        deleted = queue.Queue()
        observer.exists("/short-lived", watch=deleted.put)
        frozen_at = time.monotonic()
        proxy.freeze()
        ev = deleted.get(timeout=8)
        elapsed = time.monotonic() - frozen_at
        assert (ev.type, ev.path) == (EventType.DELETED, "/short-lived")
        # Not before the negotiated timeout (1 s requested, within [400 ms, 4 s]), and not much after.
        assert 0.8 <= elapsed <= 5, elapsed
        proxy.thaw()
        assert wait_until(lambda: KazooState.LOST in states, 15)
        # kazoo starts a new session after the loss.
        assert wait_until(lambda: a.connected and a.client_id and a.client_id[0] != sid, 10)
        assert a.exists("/short-lived") is None
    finally:
        proxy.close()


def test_session_timeout_is_clamped_to_max(server, clients):
    """Requesting 100 s gives at most maxSessionTimeout (20 ticks = 4 s): a silent client's ephemerals
    are gone well before 100 s."""
    proxy = PausableProxy(server.port)
    try:
        a = clients(proxy.hosts, timeout=100)
        observer = clients(server.hosts)
        a.create("/clamped", ephemeral=True)
        deleted = queue.Queue()
        observer.exists("/clamped", watch=deleted.put)
        start = time.monotonic()
        proxy.freeze()
        ev = deleted.get(timeout=10)
        elapsed = time.monotonic() - start
        assert ev.type == EventType.DELETED
        assert 3.0 <= elapsed <= 8.0, elapsed
    finally:
        proxy.close()


def test_reconnect_keeps_session_ephemerals_and_auth(server, clients):
    proxy = PausableProxy(server.port)
    try:
        a = clients(proxy.hosts, timeout=4, auth_data=[("digest", "eve:pw")])
        other = clients(server.hosts)
        sid = a.client_id[0]
        a.create("/keep", b"0", ephemeral=True)
        a.create("/private", b"p", acl=[make_digest_acl("eve", "pw", all=True)])
        other.create("/watched", b"0")
        states = _state_recorder(a)
        seen = []
        DataWatch(a, "/watched", lambda data, stat: seen.append(data))
        assert wait_until(lambda: seen == [b"0"])
        # Change the node while A cannot hear about it, then break A's connection.
        proxy.freeze()
        other.set("/watched", b"1")
        proxy.drop_all()
        proxy.thaw()
        assert wait_until(lambda: KazooState.SUSPENDED in states, 10)
        assert wait_until(lambda: states[-1] == KazooState.CONNECTED, 10)
        assert KazooState.LOST not in states
        assert a.client_id[0] == sid
        assert other.exists("/keep").ephemeralOwner == sid
        assert a.exists("/keep").ephemeralOwner == sid
        # kazoo re-reads after reconnecting, so the DataWatch catches up with the missed change.
        assert wait_until(lambda: seen[-1] == b"1", 5), seen
        # Auth is re-sent on the new connection.
        assert a.get("/private")[0] == b"p"
        # And new watches work on the new connection.
        other.set("/watched", b"2")
        assert wait_until(lambda: seen[-1] == b"2", 5), seen
    finally:
        proxy.close()


def test_stop_deletes_ephemerals_and_others_see_deleted(server, clients):
    a = clients(server.hosts)
    b = clients(server.hosts)
    a.create("/members")
    a.create("/members/a-", ephemeral=True, sequence=True)
    a.create("/solo-eph", ephemeral=True)
    child_events, node_events = queue.Queue(), queue.Queue()
    assert len(b.get_children("/members", watch=child_events.put)) == 1
    b.get("/solo-eph", watch=node_events.put)
    a.stop()
    ev = node_events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.DELETED, "/solo-eph")
    ev = child_events.get(timeout=5)
    assert (ev.type, ev.path) == (EventType.CHILD, "/members")
    assert b.get_children("/members") == []
    assert b.exists("/solo-eph") is None


# ------------------------------------------------------------------------------ Containers and TTLs


def test_container_removed_after_last_child_deleted(server_factory, clients):
    srv = server_factory("znode.container.checkIntervalMs=100")
    zk = clients(srv.hosts)
    path, stat = create_container(zk, "/box")
    assert path == "/box"
    assert stat.ephemeralOwner == 0
    # A never-used container stays (its child count never went above zero).
    time.sleep(0.5)
    assert zk.exists("/box") is not None
    zk.create("/box/item", b"x")
    time.sleep(0.4)
    assert zk.exists("/box") is not None  # has a child: kept
    zk.delete("/box/item")
    assert wait_until(lambda: zk.exists("/box") is None, 5)
    # Containers behave as ordinary parents otherwise, and a plain node is never reaped.
    zk.create("/plain")
    zk.create("/plain/kid")
    zk.delete("/plain/kid")
    time.sleep(0.5)
    assert zk.exists("/plain") is not None


def test_ttl_node_expires(server_factory, clients):
    srv = server_factory("extendedTypesEnabled=true\nznode.container.checkIntervalMs=100")
    zk = clients(srv.hosts)
    path, stat = create_ttl(zk, "/ttl", 300, b"t")
    assert path == "/ttl"
    assert zk.get("/ttl")[0] == b"t"
    seq_path, _ = create_ttl(zk, "/ttl-seq-", 300, sequence=True)
    assert seq_path.startswith("/ttl-seq-") and seq_path[len("/ttl-seq-"):].isdigit()
    assert len(seq_path) == len("/ttl-seq-") + 10
    zk.create("/plain")
    start = time.monotonic()
    assert wait_until(lambda: zk.exists("/ttl") is None and zk.exists(seq_path) is None, 5)
    assert time.monotonic() - start >= 0.1
    assert zk.exists("/plain") is not None


def test_ttl_node_with_children_is_kept(server_factory, clients):
    srv = server_factory("extendedTypesEnabled=true\nznode.container.checkIntervalMs=100")
    zk = clients(srv.hosts)
    create_ttl(zk, "/ttlp", 200)
    zk.create("/ttlp/kid")
    time.sleep(0.8)
    assert zk.exists("/ttlp") is not None
    zk.delete("/ttlp/kid")
    assert wait_until(lambda: zk.exists("/ttlp") is None, 5)


def test_ttl_unimplemented_without_extended_types(zk):
    with pytest.raises(UnimplementedError):
        create_ttl(zk, "/ttl", 300)
    assert zk.exists("/ttl") is None
