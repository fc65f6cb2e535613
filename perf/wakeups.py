#!/usr/bin/env python3
"""Counts the executor watchdog's forced wake-ups (src/watchdog.rs) in the one setting where
they have been seen: a 5-member Ringkeeper ensemble with no quorum anywhere (one member killed,
the other four split 2 and 2 by silenced links) while clients keep reconnecting to the members.
Each forced wake-up is an executor that slept through its own 10 ms timer (glommio 0.9), cut
short by the watchdog. A diagnostic for whoever chases that bug, not a benchmark.

Usage: perf/wakeups.py [--seconds 150] [--no-clients] [--burn 2]

`--burn N` runs N CPU-bound processes beside it for the whole run: an executor kept off its core
for longer than its 5 ms preemption slice is the suspected trigger.
"""

import argparse
import logging
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "py"))
os.environ.setdefault("RINGKEEPER_BIN", os.path.join(ROOT, "target", "release", "ringkeeper"))
from servers import Ensemble  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=150)
    ap.add_argument("--no-clients", action="store_true")
    ap.add_argument("--burn", type=int, default=0)
    a = ap.parse_args()
    logging.getLogger("kazoo").setLevel(logging.CRITICAL)
    from kazoo.client import KazooClient
    from kazoo.retry import KazooRetry

    ens = Ensemble(voters=5, partitionable=True)
    clients = []
    burn = "import time\nend = time.time() + %f\nwhile time.time() < end: pass\n" % (a.seconds + 60)
    burners = [subprocess.Popen([sys.executable, "-c", burn]) for _ in range(a.burn)]
    try:
        leader = ens.leader()
        others = [i for i in ens.ids if i != leader]
        dead = others[1]
        ens.kill9(dead)
        ens.partition([leader, others[0]], others[2:])
        live = [i for i in ens.ids if i != dead]
        if not a.no_clients:
            for i in live:
                z = KazooClient(hosts=f"127.0.0.1:{ens.port(i)}", timeout=4,
                                connection_retry=KazooRetry(max_tries=-1, max_delay=0.2))
                z.start_async()
                clients.append(z)
        time.sleep(a.seconds)
        print(f"{a.seconds:.0f} s without a quorum, clients {'off' if a.no_clients else 'reconnecting'}, "
              f"{a.burn} CPU burners:")
        for i in live:
            lines = [line for line in ens.read_log(i).splitlines() if "has not run its" in line]
            idle = [line.split("idle_ms=")[1].split()[0] for line in lines]
            woken = [line.split("woken_ms_ago=")[1].split()[0] for line in lines if "woken_ms_ago=" in line]
            print(f"  member {i}: {len(lines)} forced wake-ups, idle ms {' '.join(idle[:20])}; "
                  f"the timer task woken but not run: {' '.join(woken[:20])}")
    finally:
        for b in burners:
            b.kill()
            b.wait()
        for z in clients:
            z.stop()
            z.close()
        ens.stop()


if __name__ == "__main__":
    main()
