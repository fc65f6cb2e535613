"""`ringkeeper import` (issue 10, item 4): a Java ZooKeeper 3.8 server filled by a seeded
workload (persistent, ephemeral, sequential, container and TTL nodes, ACLs, multi, sets and
deletes, several snapshots and logs, a session still open), stopped, imported; Ringkeeper
started on the result must answer every read exactly as the Java server did. Damaged inputs
are refused with the file and offset named, and nothing is written then."""

import glob
import os
import random
import shutil
import subprocess
import tempfile

import pytest
from kazoo.client import KazooClient
from kazoo.security import ACL, Id, make_digest_acl

from helpers import create_container, create_ttl
from servers import RINGKEEPER, Server, java_zookeeper_available

pytestmark = pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper is not installed")

SEED = int(os.environ.get("IMPORT_SEED", "11"))


def fill(hosts, holder, seed=SEED, count=700):
    """The seeded workload; `holder` keeps its session (and its ephemerals) open."""
    rnd = random.Random(seed)
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/app", b"root")
        for i in range(count):
            p = f"/app/n{i}"
            zk.create(p, bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 40))))
            r = rnd.random()
            if r < 0.2:
                zk.set(p, b"v2")
            elif r < 0.3:
                zk.delete(p)
            elif r < 0.35:
                zk.create(f"{p}/child", b"c")
        for _ in range(5):
            zk.create("/seq/s-", b"x", sequence=True, makepath=True)
        holder.create("/eph", b"mine", ephemeral=True)
        holder.create("/app/eph-seq-", b"", ephemeral=True, sequence=True)
        create_container(zk, "/box")
        zk.create("/box/in", b"")
        create_ttl(zk, "/ttl", 3_600_000, b"t")
        zk.create("/acl", b"a", acl=[make_digest_acl("u", "p", all=True), ACL(1, Id("world", "anyone"))])
        zk.create("/ipacl", b"", acl=[ACL(31, Id("ip", "127.0.0.1")), ACL(1, Id("world", "anyone"))])
        zk.create("/reacl", b"")
        zk.set_acls("/reacl", [ACL(31, Id("world", "anyone")), ACL(1, Id("ip", "127.0.0.2"))])
        t = zk.transaction()
        t.create("/m1", b"1")
        t.create("/m2", b"2")
        t.set_data("/app", b"multi")
        t.commit()
        zk.create("/null", None)
    finally:
        zk.stop()
        zk.close()


def walk(hosts):
    """Every znode's data, Stat, ACLs and children."""
    zk = KazooClient(hosts=hosts, timeout=10)
    zk.start(timeout=30)
    try:
        out = {}
        todo = ["/"]
        while todo:
            path = todo.pop()
            data, stat = zk.get(path)
            acls, _ = zk.get_acls(path)
            children = sorted(zk.get_children(path))
            out[path] = (data, tuple(stat), sorted((a.perms, a.id.scheme, a.id.id) for a in acls), children)
            todo.extend(path.rstrip("/") + "/" + c for c in children)
        return out
    finally:
        zk.stop()
        zk.close()


def java_data_dir(tmp):
    """A stopped Java server's dataDir after the workload, and what it answered before it
    stopped."""
    srv = Server("zookeeper", "extendedTypesEnabled=true\nsnapCount=150")
    holder = KazooClient(hosts=srv.hosts, timeout=30)
    holder.start(timeout=15)
    try:
        fill(srv.hosts, holder)
        before = walk(srv.hosts)
        session = holder.client_id[0]
        srv.proc.terminate()
        srv.proc.wait(timeout=30)
        holder.stop()
        data = os.path.join(tmp, "java")
        shutil.copytree(os.path.join(srv.dir, "data"), data)
    finally:
        try:
            holder.stop()
        finally:
            holder.close()
            srv.stop()
    return data, before, session


def do_import(src, dest, *extra):
    return subprocess.run([RINGKEEPER, "import", "--from", src, "--to", dest, *extra], capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def java_dir():
    tmp = tempfile.mkdtemp(prefix="rk-py-import-")
    data, before, session = java_data_dir(tmp)
    yield data, before, session
    shutil.rmtree(tmp, ignore_errors=True)


def test_imported_data_answers_every_read_as_java_did(java_dir, tmp_path):
    data, before, session = java_dir
    v2 = os.path.join(data, "version-2")
    assert len(glob.glob(os.path.join(v2, "snapshot.*"))) >= 3, os.listdir(v2)
    assert len(glob.glob(os.path.join(v2, "log.*"))) >= 3, os.listdir(v2)
    dest = str(tmp_path / "rk")
    r = do_import(data, dest)
    assert r.returncode == 0, r.stderr
    assert "imported" in r.stdout
    srv = Server("ringkeeper", f"dataDir={dest}")
    try:
        after = walk(srv.hosts)
        assert set(after) == set(before), (set(before) ^ set(after))
        diffs = [(p, before[p], after[p]) for p in before if before[p] != after[p]]
        assert diffs == [], diffs[:5]
        # The session that was open still owns its ephemerals.
        assert before["/eph"][1][7] == session
        # Writes go on after the last imported zxid.
        zk = KazooClient(hosts=srv.hosts, timeout=10)
        zk.start(timeout=15)
        last = max(s[1][1] for s in before.values())
        assert zk.create("/after-import", b"", include_data=True)[1].czxid > last
        zk.stop()
        zk.close()
    finally:
        srv.stop()


def test_the_version_2_folder_and_a_separate_log_dir_may_be_named(java_dir, tmp_path):
    data, before, _ = java_dir
    snaps = tmp_path / "snaps" / "version-2"
    logs = tmp_path / "logs" / "version-2"
    snaps.mkdir(parents=True)
    logs.mkdir(parents=True)
    for f in glob.glob(os.path.join(data, "version-2", "*")):
        shutil.copy(f, logs if os.path.basename(f).startswith("log.") else snaps)
    dest = str(tmp_path / "rk")
    r = do_import(str(snaps), dest, "--from-log-dir", str(tmp_path / "logs"))
    assert r.returncode == 0, r.stderr
    srv = Server("ringkeeper", f"dataDir={dest}")
    try:
        assert walk(srv.hosts) == before
    finally:
        srv.stop()


def damaged_copy(data, tmp_path):
    copy = str(tmp_path / "damaged")
    shutil.copytree(data, copy)
    return copy


def test_a_flipped_byte_in_a_log_is_refused_naming_file_and_offset(java_dir, tmp_path):
    data, _, _ = java_dir
    copy = damaged_copy(data, tmp_path)
    newest_log = sorted(glob.glob(os.path.join(copy, "version-2", "log.*")), key=lambda p: int(p.rsplit(".", 1)[1], 16))[-1]
    with open(newest_log, "r+b") as f:
        f.seek(16 + 12 + 20)  # inside the first entry's txn bytes
        b = f.read(1)
        f.seek(16 + 12 + 20)
        f.write(bytes([b[0] ^ 0xFF]))
    dest = str(tmp_path / "rk")
    r = do_import(copy, dest)
    assert r.returncode == 1
    assert newest_log in r.stderr and "offset 16" in r.stderr and "checksum" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(dest, "rk-snap")) or os.listdir(os.path.join(dest, "rk-snap")) == []


def test_truncated_snapshots_are_refused_and_an_older_whole_one_is_used(java_dir, tmp_path):
    data, before, _ = java_dir
    copy = damaged_copy(data, tmp_path)
    snaps = sorted(glob.glob(os.path.join(copy, "version-2", "snapshot.*")), key=lambda p: int(p.rsplit(".", 1)[1], 16))
    # Only the newest damaged: ZooKeeper would start from the one before it and its logs.
    with open(snaps[-1], "r+b") as f:
        f.truncate(os.path.getsize(snaps[-1]) // 2)
    dest = str(tmp_path / "rk")
    r = do_import(copy, dest)
    assert r.returncode == 0, r.stderr
    assert snaps[-1] in r.stderr, "the damaged snapshot is named"
    srv = Server("ringkeeper", f"dataDir={dest}")
    try:
        assert walk(srv.hosts) == before
    finally:
        srv.stop()
    # Every one damaged: refused, naming the newest and where it breaks.
    for s in snaps:
        with open(s, "r+b") as f:
            f.truncate(os.path.getsize(s) // 2)
    dest2 = str(tmp_path / "rk2")
    r = do_import(copy, dest2)
    assert r.returncode == 1
    assert snaps[-1] in r.stderr and "offset" in r.stderr, r.stderr
    assert not os.path.exists(os.path.join(dest2, "rk-snap"))


def test_import_never_writes_over_ringkeeper_data(java_dir, tmp_path):
    data, _, _ = java_dir
    dest = str(tmp_path / "rk")
    assert do_import(data, dest).returncode == 0
    r = do_import(data, dest)
    assert r.returncode == 1 and "already holds Ringkeeper data" in r.stderr


def test_inspect_reads_java_logs_and_snapshots(java_dir, tmp_path):
    data, before, session = java_dir
    v2 = os.path.join(data, "version-2")
    by_zxid = lambda pattern: sorted(glob.glob(os.path.join(v2, pattern)), key=lambda p: int(p.rsplit(".", 1)[1], 16))
    snap = by_zxid("snapshot.*")[-1]
    r = subprocess.run([RINGKEEPER, "inspect", "snapshot", snap], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"Java ZooKeeper snapshot {snap}")
    assert f"session {session:#x}" in r.stdout
    assert "\n/app czxid 0x" in r.stdout and "\n/zookeeper/quota " in r.stdout, r.stdout[:500]
    log = by_zxid("log.*")[0]
    r = subprocess.run([RINGKEEPER, "inspect", "log", log], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "zxid 0x1 " in r.stdout and "CreateSession" in r.stdout and "checksums verified" in r.stdout
    bad = str(tmp_path / os.path.basename(log))
    shutil.copy(log, bad)
    with open(bad, "r+b") as f:
        f.seek(40)
        b = f.read(1)
        f.seek(40)
        f.write(bytes([b[0] ^ 1]))
    r = subprocess.run([RINGKEEPER, "inspect", "log", bad], capture_output=True, text=True, timeout=60)
    assert r.returncode == 1 and bad in r.stderr and "offset 16" in r.stderr, r.stderr
