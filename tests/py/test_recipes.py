"""kazoo recipes against Ringkeeper, each driven by several independent clients (one KazooClient per
thread). Every loop is bounded in iterations and time; worker failures are collected and re-raised."""

import threading
import time

import pytest
from kazoo.exceptions import LockTimeout
from kazoo.recipe.barrier import Barrier, DoubleBarrier
from kazoo.recipe.counter import Counter
from kazoo.recipe.election import Election
from kazoo.recipe.lock import Lock, Semaphore
from kazoo.recipe.queue import LockingQueue, Queue

from helpers import wait_until

WORKER_DEADLINE = 30.0  # seconds any worker group may take before the test fails


def run_workers(target, count, *args):
    """Runs target(i, *args) in `count` threads; re-raises the first worker exception; fails if any
    thread is still running after WORKER_DEADLINE."""
    errors = []

    def wrap(i):
        try:
            target(i, *args)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=wrap, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + WORKER_DEADLINE
    for t in threads:
        t.join(max(0.0, deadline - time.monotonic()))
    alive = [t for t in threads if t.is_alive()]
    if errors:
        raise errors[0]
    assert not alive, f"{len(alive)} worker(s) still running after {WORKER_DEADLINE}s"


class Occupancy:
    """Tracks how many workers are inside a section at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.inside = 0
        self.max_inside = 0
        self.entries = 0

    def __enter__(self):
        with self.lock:
            self.inside += 1
            self.entries += 1
            self.max_inside = max(self.max_inside, self.inside)
        return self

    def __exit__(self, *exc):
        with self.lock:
            self.inside -= 1


# --------------------------------------------------------------------------------------------- Lock


def test_lock_mutual_exclusion(server, clients):
    n_clients, iterations = 4, 25
    zks = [clients(server.hosts) for _ in range(n_clients)]
    zks[0].create("/counter", b"0")
    occ = Occupancy()
    order = []

    def worker(i):
        zk = zks[i]
        lock = Lock(zk, "/locks/counter", identifier=f"worker-{i}")
        for _ in range(iterations):
            assert lock.acquire(timeout=20), "lock not acquired in time"
            try:
                with occ:
                    # Read-modify-write through the server without a version check: only mutual
                    # exclusion keeps increments from being lost.
                    value = int(zk.get("/counter")[0])
                    time.sleep(0.001)
                    zk.set("/counter", str(value + 1).encode())
                    order.append(i)
            finally:
                lock.release()

    run_workers(worker, n_clients)
    assert occ.max_inside == 1
    assert occ.entries == n_clients * iterations
    assert int(zks[0].get("/counter")[0]) == n_clients * iterations
    # Every worker got the lock its share of times, and the lock nodes are all gone.
    assert sorted(order.count(i) for i in range(n_clients)) == [iterations] * n_clients
    assert zks[0].get_children("/locks/counter") == []


def test_lock_blocks_until_released_and_contenders(server, clients):
    a, b = clients(server.hosts), clients(server.hosts)
    la = Lock(a, "/lk", identifier="alice")
    lb = Lock(b, "/lk", identifier="bob")
    assert la.acquire(timeout=5)
    with pytest.raises(LockTimeout):
        lb.acquire(timeout=0.3)
    assert lb.acquire(blocking=False) is False
    assert la.contenders() == ["alice"]
    got = threading.Event()

    def take():
        if lb.acquire(timeout=10):
            got.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    assert wait_until(lambda: la.contenders() == ["alice", "bob"], 5)
    time.sleep(0.2)
    assert not got.is_set()
    la.release()
    assert got.wait(5)
    assert lb.contenders() == ["bob"]
    t.join(5)
    # A lock held by a client whose session ends is released.
    b.stop()
    assert la.acquire(timeout=5)
    la.release()


# ----------------------------------------------------------------------------------------- Election


def test_election_one_leader_at_a_time(server, clients):
    n = 3
    zks = [clients(server.hosts) for _ in range(n)]
    elections = [Election(zk, "/election", identifier=f"c{i}") for i, zk in enumerate(zks)]
    occ = Occupancy()
    leaders = []
    released = [threading.Event() for _ in range(n)]
    done = [threading.Event() for _ in range(n)]

    def lead(i):
        with occ:
            leaders.append(i)
            # Stay leader until told to stop (bounded).
            released[i].wait(15)

    def contender(i):
        try:
            elections[i].run(lead, i)
        except Exception:
            # Releasing the lock of a stopped client fails; that contender is gone anyway.
            if zks[i].connected:
                raise
        finally:
            done[i].set()

    threads = [threading.Thread(target=contender, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    assert wait_until(lambda: len(leaders) == 1, 5)
    assert wait_until(lambda: len(zks[0].get_children("/election")) == n, 5)
    assert sorted(elections[0].contenders()) == sorted(f"c{i}" for i in range(n))
    time.sleep(0.3)
    assert len(leaders) == 1 and occ.max_inside == 1

    # The first leader steps down by returning: leadership passes to exactly one other contender.
    first = leaders[0]
    released[first].set()
    assert done[first].wait(5)
    assert wait_until(lambda: len(leaders) == 2, 5)
    second = leaders[1]
    assert second != first
    time.sleep(0.3)
    assert len(leaders) == 2

    assert occ.max_inside == 1
    # The second leader's client stops (its session and election node go away): the last one leads.
    zks[second].stop()
    assert wait_until(lambda: len(leaders) == 3, 5)
    third = leaders[2]
    assert {first, second, third} == set(range(n))
    assert elections[third].contenders() == [f"c{third}"]
    # The stopped leader's function was still "running" locally; let everything finish.
    for ev in released:
        ev.set()
    for t in threads:
        t.join(5)
    # At most two functions overlapped locally: the stopped client's (which had lost its session) and
    # the new leader's. Among live sessions there was only ever one leader.
    assert occ.max_inside <= 2
    assert len(leaders) == 3


# ------------------------------------------------------------------------------------------ Barriers


def test_barrier_holds_until_removed(server, clients):
    n = 4
    zks = [clients(server.hosts) for _ in range(n + 1)]
    owner = zks[-1]
    barrier = Barrier(owner, "/barrier")
    barrier.create()
    assert Barrier(zks[0], "/barrier").wait(timeout=0.2) is False
    passed = []
    results = {}

    def waiter(i):
        results[i] = Barrier(zks[i], "/barrier").wait(timeout=15)
        passed.append((i, time.monotonic()))

    threads = [threading.Thread(target=waiter, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert passed == []
    removed_at = time.monotonic()
    barrier.remove()
    for t in threads:
        t.join(10)
    assert results == {i: True for i in range(n)}
    assert all(at >= removed_at for _, at in passed)
    # Without a barrier node, wait returns at once.
    assert Barrier(zks[0], "/barrier").wait(timeout=1) is True


def test_double_barrier(server, clients):
    n = 3
    zks = [clients(server.hosts) for _ in range(n)]
    entered, left = {}, {}
    started = {}
    leave_go = threading.Event()

    def participant(i):
        # Arrive one after another so the last arrival is clearly later than the first.
        time.sleep(0.25 * i)
        barrier = DoubleBarrier(zks[i], "/double", n, identifier=f"p{i}")
        started[i] = time.monotonic()
        barrier.enter()
        entered[i] = time.monotonic()
        assert leave_go.wait(15)
        time.sleep(0.2 * i)
        barrier.leave()
        left[i] = time.monotonic()

    ts = [threading.Thread(target=participant, args=(i,), daemon=True) for i in range(n)]
    for t in ts:
        t.start()
    assert wait_until(lambda: len(entered) == n, 10)
    # Nobody got in before the last participant arrived.
    last_start = max(started.values())
    assert all(t >= last_start for t in entered.values())
    assert left == {}
    go_at = time.monotonic()
    leave_go.set()
    for t in ts:
        t.join(15)
    assert len(left) == n
    # Nobody got out before the last participant started leaving (it waits 0.2 * (n-1) s first).
    assert min(left.values()) - go_at >= 0.2 * (n - 1) - 0.02
    assert zks[0].exists("/double/ready") is None
    assert zks[0].get_children("/double") == []


# -------------------------------------------------------------------------------------------- Counter


def test_counter_concurrent_increments(server, clients):
    n_clients, iterations = 4, 25
    zks = [clients(server.hosts) for _ in range(n_clients)]

    def worker(i):
        counter = Counter(zks[i], "/counter")
        for _ in range(iterations):
            counter += 1

    run_workers(worker, n_clients)
    assert Counter(zks[0], "/counter").value == n_clients * iterations
    data, stat = zks[0].get("/counter")
    assert int(data) == n_clients * iterations
    # One successful versioned write per increment (plus the initial create).
    assert stat.version == n_clients * iterations

    # Float counter with a decrement.
    fc = Counter(zks[1], "/fcounter", default=0.0)
    fc += 2.5
    fc -= 1.0
    assert Counter(zks[2], "/fcounter", default=0.0).value == 1.5


# --------------------------------------------------------------------------------------------- Queues


def test_queue_items_consumed_exactly_once(server, clients):
    n_items, n_consumers = 60, 4
    producer = clients(server.hosts)
    consumers = [clients(server.hosts) for _ in range(n_consumers)]
    q = Queue(producer, "/queue")
    items = [f"item-{i:03d}".encode() for i in range(n_items)]
    for it in items:
        q.put(it)
    q.put(b"urgent", priority=1)
    assert len(q) == n_items + 1
    # Lower priority value comes first; otherwise FIFO.
    assert Queue(consumers[0], "/queue").get() == b"urgent"
    assert Queue(consumers[0], "/queue").get() == items[0]
    got = [[] for _ in range(n_consumers)]

    def consume(i):
        cq = Queue(consumers[i], "/queue")
        deadline = time.monotonic() + 20
        empty_polls = 0
        while time.monotonic() < deadline and empty_polls < 20:
            value = cq.get()
            if value is None:
                empty_polls += 1
                time.sleep(0.01)
                continue
            got[i].append(value)

    run_workers(consume, n_consumers)
    all_got = [v for g in got for v in g]
    assert len(all_got) == len(set(all_got)) == n_items - 1
    assert sorted(all_got) == items[1:]
    # Each consumer saw its items in queue order.
    for g in got:
        assert g == sorted(g)
    assert len(q) == 0
    assert q.get() is None


def test_locking_queue_items_consumed_exactly_once(server, clients):
    n_items, n_consumers = 40, 4
    producer = clients(server.hosts)
    consumers = [clients(server.hosts) for _ in range(n_consumers)]
    items = [f"job-{i:03d}".encode() for i in range(n_items)]
    LockingQueue(producer, "/lq").put_all(items)
    assert len(LockingQueue(producer, "/lq")) == n_items
    got = [[] for _ in range(n_consumers)]
    occ = {}
    occ_lock = threading.Lock()

    def consume(i):
        lq = LockingQueue(consumers[i], "/lq")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            value = lq.get(timeout=0.5)
            if value is None:
                with occ_lock:
                    if sum(len(g) for g in got) >= n_items:
                        return
                continue
            assert lq.holds_lock()
            with occ_lock:
                # An item is being processed by at most one consumer.
                assert value not in occ, value
                occ[value] = i
            got[i].append(value)
            assert lq.consume() is True
            assert not lq.holds_lock()

    run_workers(consume, n_consumers)
    all_got = [v for g in got for v in g]
    assert len(all_got) == n_items
    assert sorted(all_got) == items
    assert len(LockingQueue(producer, "/lq")) == 0


def test_locking_queue_release_returns_item(server, clients):
    a, b = clients(server.hosts), clients(server.hosts)
    qa, qb = LockingQueue(a, "/lq2"), LockingQueue(b, "/lq2")
    qa.put(b"only")
    assert qa.get(timeout=2) == b"only"
    # Locked by A: B cannot take it.
    assert qb.get(timeout=0.5) is None
    assert qa.release() is True
    assert qb.get(timeout=2) == b"only"
    assert qb.consume() is True
    assert qa.get(timeout=0.3) is None


# ------------------------------------------------------------------------------------------ Semaphore


def test_semaphore_respects_max_leases(server, clients):
    n_clients, max_leases, rounds = 5, 2, 4
    zks = [clients(server.hosts) for _ in range(n_clients)]
    occ = Occupancy()
    holders_seen = []

    def worker(i):
        sem = Semaphore(zks[i], "/sem", identifier=f"w{i}", max_leases=max_leases)
        for _ in range(rounds):
            assert sem.acquire(timeout=20), "lease not acquired in time"
            try:
                with occ:
                    holders = sem.lease_holders()
                    holders_seen.append(len(holders))
                    assert f"w{i}" in holders
                    time.sleep(0.03)
            finally:
                sem.release()

    run_workers(worker, n_clients)
    assert occ.entries == n_clients * rounds
    assert occ.max_inside <= max_leases
    # Under this much contention the semaphore does let two in at once.
    assert occ.max_inside == max_leases
    assert max(holders_seen) <= max_leases
    assert Semaphore(zks[0], "/sem", max_leases=max_leases).lease_holders() == []


def test_semaphore_blocks_at_capacity(server, clients):
    zks = [clients(server.hosts) for _ in range(3)]
    sems = [Semaphore(zk, "/sem2", identifier=f"s{i}", max_leases=2) for i, zk in enumerate(zks)]
    assert sems[0].acquire(timeout=5)
    assert sems[1].acquire(timeout=5)
    with pytest.raises(LockTimeout):
        sems[2].acquire(timeout=0.5)
    assert sems[2].acquire(blocking=False) is False
    assert sorted(sems[2].lease_holders()) == ["s0", "s1"]
    sems[0].release()
    assert sems[2].acquire(timeout=5)
    assert sorted(sems[1].lease_holders()) == ["s1", "s2"]
    # A lease holder's session ending frees its lease.
    zks[1].stop()
    assert sems[0].acquire(timeout=5)
    assert sorted(sems[0].lease_holders()) == ["s0", "s2"]
