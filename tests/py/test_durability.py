"""Durability over real processes: restarts from a snapshot plus the log after it, the `snap`
four-letter word and `ringkeeper inspect snapshot`, a corrupt snapshot, autopurge, a torn log tail
written by hand, and a full disk."""

import glob
import os
import re
import subprocess
import tempfile
import time

import pytest
from kazoo.client import KazooClient
from kazoo.retry import KazooRetry

import jute
from jute import W
from servers import RINGKEEPER, four_letter

OPEN_ACL = [(31, "world", "anyone")]


def mntr(port):
    out = {}
    for line in four_letter(port, "mntr").splitlines():
        k, _, v = line.partition("\t")
        out[k] = v
    return out


def wait_for(cond, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def snapshots(srv):
    return sorted(glob.glob(os.path.join(srv.data_dir(), "rk-snap", "snapshot.*[0-9a-f]")))


def segments(srv):
    return sorted(glob.glob(os.path.join(srv.data_dir(), "rk-log", "log.*[0-9a-f]")))


def create(c, path, data=b"", flags=0):
    err, zxid, _ = c.call(jute.CREATE, bytes(W().str(path).buf(data).acls(OPEN_ACL).int(flags).b))[1]
    assert err == 0, (path, err)
    return zxid


def get(c, path):
    err, _, r = c.call(jute.GET_DATA, bytes(W().str(path).bool(False).b))[1]
    return err, (r.buf() if err == 0 else None)


def start_fails(srv):
    """Runs the server on its dataDir expecting it to refuse; returns (exit code, stderr)."""
    out = subprocess.run(srv.cmd, capture_output=True, text=True, timeout=60, cwd=srv.dir)
    return out.returncode, out.stderr


def tree_of(zk, root):
    """Every node below `root`: path -> (data, stat)."""
    out = {}
    for name in zk.get_children(root):
        path = f"{root}/{name}"
        out[path] = zk.get(path)
    return out


def test_restart_loads_the_newest_snapshot_and_replays_only_the_log_after_it(server_factory):
    srv = server_factory("snapCount=100\nmaxSessionTimeout=30000")
    zk = KazooClient(hosts=srv.hosts, timeout=20, connection_retry=KazooRetry(max_tries=-1))
    zk.start()
    try:
        zk.create("/s")
        for i in range(300):
            zk.create(f"/s/n{i:03}", f"value {i}".encode() * 10)
        for i in range(0, 300, 7):
            zk.set(f"/s/n{i:03}", b"changed")
        for i in range(0, 300, 11):
            zk.delete(f"/s/n{i:03}")
        zk.create("/s/seq-", b"", sequence=True)
        zk.create("/s/mine", b"ephemeral", ephemeral=True)
        wait_for(lambda: int(mntr(srv.port)["zk_rk_snapshot_count"]) >= 3, "three snapshots")
        zk.create("/s/after-last-snapshot", b"tail")
        before = tree_of(zk, "/s")
        top = max(stat.mzxid for _, stat in before.values())

        srv.kill9_and_restart()

        # kazoo resumes the same session on the restarted server.
        after = KazooRetry(max_tries=-1, max_delay=0.5)(tree_of, zk, "/s")
        assert after.keys() == before.keys()
        for path, (data, stat) in before.items():
            assert after[path] == (data, stat), path
        assert after["/s/mine"][1].ephemeralOwner == zk.client_id[0], "the live session keeps its ephemeral"
        log = srv.read_log()
        assert "snapshot loaded" in log, log
        replayed = [int(n) for n in re.findall(r"transaction log read txns=(\d+)", log)]
        assert replayed and replayed[-1] < 150, f"only the txns after the snapshot are replayed: {replayed}"
        assert zk.create("/s/new") and zk.exists("/s/new").czxid > top, "zxids continue"
    finally:
        zk.stop()
        zk.close()


def test_snap_writes_a_snapshot_inspect_reads_and_a_corrupt_one_falls_back_to_the_log(server_factory):
    srv = server_factory()
    c = jute.Conn(srv.port)
    for i in range(50):
        create(c, f"/i{i}", f"data {i}".encode())
    c.close()
    answer = four_letter(srv.port, "snap")
    m = re.search(r"snapshot (\S+)\nzxid 0x([0-9a-f]+)\nnodes (\d+)", answer)
    assert m, answer
    path, nodes = m.group(1), int(m.group(3))
    assert os.path.exists(path) and nodes == 54, answer  # 50 + /, /zookeeper, quota, config

    out = subprocess.run([RINGKEEPER, "inspect", "snapshot", path], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "checksums verified" in out.stdout and "\n/i49\n" in out.stdout, out.stdout[:500]
    assert "dataLength = 7" in out.stdout

    srv.kill9()
    raw = bytearray(open(path, "rb").read())
    raw[len(raw) // 2] ^= 0x40
    open(path, "wb").write(raw)
    out = subprocess.run([RINGKEEPER, "inspect", "snapshot", path], capture_output=True, text=True)
    assert out.returncode == 1 and path in out.stderr and "offset" in out.stderr, out.stderr

    srv.restart()
    assert "snapshot is unusable" in srv.read_log()
    c = jute.Conn(srv.port)
    for i in range(50):
        assert get(c, f"/i{i}") == (0, f"data {i}".encode()), "the log still had everything"
    c.close()


def test_autopurge_keeps_the_newest_snapshots_and_the_log_they_need(server_factory):
    srv = server_factory("preAllocSize=64")  # 64 KiB segments: several per snapshot
    c = jute.Conn(srv.port)
    for round_no in range(5):
        for i in range(20):
            create(c, f"/r{round_no}-{i}", bytes([round_no]) * 4000)
        assert "zxid" in four_letter(srv.port, "snap")
    c.close()
    assert len(snapshots(srv)) == 5
    segs_before = segments(srv)
    assert len(segs_before) >= 6, segs_before

    srv.kill9()
    with open(srv.cfg_path, "a") as f:
        f.write("autopurge.purgeInterval=1\nautopurge.snapRetainCount=3\n")
    srv.restart()  # the purge runs at startup, then every hour
    wait_for(lambda: len(snapshots(srv)) == 3, "the purge at startup")
    kept = snapshots(srv)
    oldest_kept = int(kept[0].rsplit(".", 1)[1], 16)
    segs = segments(srv)
    assert len(segs) < len(segs_before), "segments only older snapshots needed are gone"
    firsts = [int(s.rsplit(".", 1)[1], 16) for s in segs]
    assert firsts[0] <= oldest_kept + 1, "the segment holding the txn after the oldest kept snapshot stays"

    # The oldest kept snapshot plus the remaining log still rebuild everything.
    srv.kill9()
    for newer in kept[1:]:
        os.remove(newer)
    srv.restart()
    c = jute.Conn(srv.port)
    for round_no in range(5):
        assert get(c, f"/r{round_no}-19") == (0, bytes([round_no]) * 4000)
    c.close()

    # Without any snapshot the purged log has a gap: refuse to start rather than lose data.
    srv.kill9()
    for snap in snapshots(srv):
        os.remove(snap)
    code, err = start_fails(srv)
    assert code == 1 and "txns are missing" in err, err
    srv.proc = subprocess.Popen(["true"])  # nothing left running


def test_a_torn_tail_written_by_hand_is_dropped_and_logged(server_factory):
    srv = server_factory()
    c = jute.Conn(srv.port)
    for i in range(30):
        create(c, f"/t{i}", b"x" * 100)
    c.close()
    srv.kill9()
    seg = segments(srv)[-1]
    out = subprocess.run([RINGKEEPER, "inspect", "log", seg], capture_output=True, text=True)
    end = int(re.search(r"end at offset (\d+) \(clean", out.stdout).group(1))
    raw = bytearray(open(seg, "rb").read())
    torn = raw[4096:4096 + 60]  # the start of a real record: a length, a CRC, half a payload
    raw[end:end + len(torn)] = torn
    open(seg, "wb").write(raw)
    out = subprocess.run([RINGKEEPER, "inspect", "log", seg], capture_output=True, text=True)
    assert f"torn tail at offset {end}" in out.stdout, out.stdout[-300:]

    srv.restart()
    assert "torn tail" in srv.read_log()
    c = jute.Conn(srv.port)
    for i in range(30):
        assert get(c, f"/t{i}") == (0, b"x" * 100)
    create(c, "/after-repair")
    c.close()
    out = subprocess.run([RINGKEEPER, "inspect", "log", seg], capture_output=True, text=True)
    # The torn bytes were zeroed, and appends went on from where the valid records end.
    assert "(clean; CRCs verified)" in out.stdout and "/after-repair" in out.stdout, out.stdout[-500:]


@pytest.fixture
def small_tmpfs():
    mnt = tempfile.mkdtemp(prefix="rk-full-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", mnt], capture_output=True)
    if r.returncode != 0:
        os.rmdir(mnt)
        pytest.skip(f"cannot mount a tmpfs here (needs root): {r.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", mnt])
    os.rmdir(mnt)


def test_a_full_disk_stops_the_server_and_loses_nothing_acknowledged(server_factory, small_tmpfs):
    # 1 MiB segments on a 3 MiB filesystem: the third segment cannot be zero-filled.
    srv = server_factory(f"dataDir={small_tmpfs}/data")
    c = jute.Conn(srv.port)
    acked = []
    for i in range(100):
        data = bytes([i]) * 100_000
        try:
            create(c, f"/big{i}", data)
        except (OSError, ConnectionError, AssertionError):
            break
        acked.append((f"/big{i}", data))
    assert srv.proc.wait(timeout=30) == 2, "a write error is final: exit code 2"
    log = srv.read_log()
    assert "No space left on device" in log and "stopping" in log, log[-2000:]
    assert len(acked) >= 10, len(acked)

    subprocess.run(["mount", "-o", "remount,size=64m", small_tmpfs], check=True)
    srv.restart()
    c = jute.Conn(srv.port)
    for path, data in acked:
        assert get(c, path) == (0, data), f"acknowledged {path} lost"
    c.close()
    srv.stop()  # before the tmpfs goes away


def test_a_separate_data_log_dir_holds_the_log_and_data_dir_the_snapshots(server_factory):
    log_dir = tempfile.mkdtemp(prefix="rk-logdir-")
    srv = server_factory(f"dataLogDir={log_dir}")
    try:
        c = jute.Conn(srv.port)
        create(c, "/before", b"1")
        assert "zxid" in four_letter(srv.port, "snap")
        create(c, "/after", b"2")
        c.close()
        assert glob.glob(os.path.join(log_dir, "rk-log", "log.*")), "segments go to dataLogDir"
        assert not os.path.exists(os.path.join(srv.data_dir(), "rk-log"))
        assert len(snapshots(srv)) == 1, "snapshots go to dataDir"
        srv.kill9_and_restart()
        assert "snapshot loaded" in srv.read_log()
        c = jute.Conn(srv.port)
        assert get(c, "/before") == (0, b"1") and get(c, "/after") == (0, b"2")
        c.close()
    finally:
        srv.stop()
        subprocess.run(["rm", "-rf", log_dir])
