"""Start Ringkeeper or Java ZooKeeper on a free loopback port for tests, and stop them by pid."""

import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RINGKEEPER = os.environ.get("RINGKEEPER_BIN", os.path.join(ROOT, "target", "debug", "ringkeeper"))
# The hostile-client tests bound latency and memory, which only a release build can promise.
RINGKEEPER_RELEASE = os.environ.get("RINGKEEPER_RELEASE_BIN",
                                    os.path.join(ROOT, "target", "release", "ringkeeper"))
JAVA_ZK_CLASSPATH = "/etc/zookeeper/conf:/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar"
SERVLET_JAR = "/usr/share/java/servlet-api.jar"


def free_port():
    """A free loopback port below the kernel's ephemeral range (32768 and up), so a listener
    cannot collide with some client's ephemeral port."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(20000, 32000)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port in 20000..32000")


def free_ports(n):
    """`n` distinct free ports (`free_port` alone may hand out one port twice)."""
    ports = []
    while len(ports) < n:
        p = free_port()
        if p not in ports:
            ports.append(p)
    return ports


def four_letter(port, word, timeout=5.0):
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(word.encode())
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out.decode()
            out += chunk


class Server:
    """A running server; `kind` is "ringkeeper" or "zookeeper"."""

    def __init__(self, kind, extra_cfg="", binary=None, port=None, env=None):
        self.kind = kind
        self.env = env
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix=f"rk-py-{kind}-")
        cfg = (
            f"tickTime=200\ndataDir={self.dir}/data\nclientPort={self.port}\n"
            f"clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\npreAllocSize=1024\n"
            f"admin.rateLimiterIntervalInMS=0\n{extra_cfg}\n"
        )
        self.cfg_path = os.path.join(self.dir, "zoo.cfg")
        with open(self.cfg_path, "w") as f:
            f.write(cfg)
        self.log = open(os.path.join(self.dir, "server.log"), "w")
        if kind == "ringkeeper":
            cmd = [binary or RINGKEEPER, "serve", "--config", self.cfg_path, "--no-pin"]
        elif kind == "zookeeper":
            cmd = ["java", "-Xmx512m", "-cp", JAVA_ZK_CLASSPATH, f"-Dzookeeper.log.dir={self.dir}",
                   "org.apache.zookeeper.server.ZooKeeperServerMain", self.cfg_path]
        else:
            raise ValueError(kind)
        self.cmd = cmd
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir, env=env)
        self._wait_ready()

    @property
    def pid(self):
        return self.proc.pid

    def kill9_and_restart(self):
        """SIGKILL (no shutdown path runs), then start again on the same dataDir and port."""
        self.kill9()
        self.restart()

    def kill9(self):
        self.proc.kill()
        self.proc.wait()

    def restart(self):
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     env=self.env)
        self._wait_ready()

    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def hosts(self):
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self):
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.kind} exited: {self.read_log()}")
            try:
                # ruok answers before Java ZooKeeper serves; srvr shows a Mode only once it does.
                if "Mode: " in four_letter(self.port, "srvr", timeout=1):
                    return
            except OSError:
                pass
            time.sleep(0.1)
        # Nobody will stop a server its test never got: end it here.
        self.proc.kill()
        self.proc.wait()
        raise RuntimeError(f"{self.kind} not ready: {self.read_log()}")

    def read_log(self):
        with open(os.path.join(self.dir, "server.log")) as f:
            return f.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def java_zookeeper_available():
    return os.path.exists("/usr/share/java/zookeeper.jar") and shutil.which("java") is not None


class Ensemble:
    """Ensemble members on loopback (Ringkeeper's, or Java ZooKeeper's with `kind="zookeeper"`, or both with
    Java on the members in `java_ids`),
    each from a plain zoo.cfg with `server.N` lines and a `myid` file. With `proxied=True` every
    member reaches the others' quorum ports through a PausableProxy per member (`proxy(i)`), so a
    test can silence one member's quorum traffic; each member then has its own config (its own
    line real, the others' through the proxies). With `partitionable=True` every member reaches
    each other member's quorum and election ports through proxies of its own for that pair, so
    `partition([1], [2, 3])` silences all traffic between the groups (in both directions; the
    connections stay open, as across a real partition) and `heal()` lets it flow again. With `tmpfs_mb`, each member's dataDir is a
    tmpfs of that size (root only: a RuntimeError otherwise), which a test can shrink with
    `resize_data(i, mb)` to fill one member's disk. With `leader_serves=False` the members have
    `leaderServes=no` and an AdminServer each, through which a member's role is read (the
    leader's four-letter words say it is not serving)."""

    def __init__(self, voters=3, observers=0, extra_cfg="", proxied=False, kind="ringkeeper", tmpfs_mb=None,
                 env=None, dynamic=False, admin=False, leader_serves=True, java_ids=(), partitionable=False,
                 pin=False, metrics=False):
        from helpers import PausableProxy

        # Environment per member id (the others inherit this one's).
        self.env = env or {}
        # Ringkeeper members pinned to cores as `serve` does by default (else `--no-pin`).
        self.pin = pin

        self.kind = kind
        # Members that run Java ZooKeeper in a Ringkeeper ensemble (a mixed one).
        self.java_ids = set(java_ids)
        self.leader_serves = leader_serves
        if not leader_serves:
            admin = True
            extra_cfg += "\nleaderServes=no\n"
        n = voters + observers
        self.ids = list(range(1, n + 1))
        self.observer_ids = set(self.ids[voters:])
        # Every port at once, the proxies' too: a proxy that picked its own port could take one
        # chosen for a member that has not bound it yet.
        pairs = [(i, j) for i in self.ids for j in self.ids if i != j] if partitionable else []
        flat = free_ports(3 * n + (n if proxied else 0) + 2 * len(pairs) + (n if admin else 0)
                          + (n if metrics else 0))
        self.ports = {i: tuple(flat[3 * k:3 * k + 3]) for k, i in enumerate(self.ids)}  # client, quorum, election
        spare = iter(flat[3 * n:])
        # With `admin`, each member's AdminServer on a port of its own.
        self.admin_ports = {i: next(spare) for i in self.ids} if admin else {}
        # With `metrics`, each member's Prometheus `/metrics` on a port of its own.
        self.metrics_ports = {i: next(spare) for i in self.ids} if metrics else {}
        self.proxies = {i: PausableProxy(self.ports[i][1], next(spare)) for i in self.ids} if proxied else {}
        # (from, to): the proxies `from` reaches `to`'s quorum and election ports through.
        self.pair_proxies = {(i, j): (PausableProxy(self.ports[j][1], next(spare)),
                                      PausableProxy(self.ports[j][2], next(spare))) for i, j in pairs}
        self.dirs = {i: tempfile.mkdtemp(prefix=f"rk-py-ens{i}-") for i in self.ids}
        self.procs = {}
        self.logs = {}
        self.mounts = []
        for i in self.ids:
            if tmpfs_mb:
                mnt = os.path.join(self.dirs[i], "data")
                os.makedirs(mnt)
                r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={tmpfs_mb}m", "tmpfs", mnt],
                                   capture_output=True)
                if r.returncode != 0:
                    self.stop()
                    raise RuntimeError(f"cannot mount a tmpfs: {r.stderr.decode().strip()}")
                self.mounts.append(mnt)
        for i in self.ids:
            lines = []
            for j in self.ids:
                client, quorum, election = self.ports[j]
                if j != i and proxied:
                    quorum = self.proxies[j].port
                if j != i and partitionable:
                    quorum, election = (p.port for p in self.pair_proxies[(i, j)])
                kind = ":observer" if j in self.observer_ids else ""
                lines.append(f"server.{j}=127.0.0.1:{quorum}:{election}{kind};127.0.0.1:{client}")
            if dynamic:
                # ZooKeeper 3.5's split config: the server lines in a file of their own.
                dyn = os.path.join(self.dirs[i], "zoo.cfg.dynamic")
                with open(dyn, "w") as f:
                    f.write("\n".join(lines) + "\n")
                lines = [f"dynamicConfigFile={dyn}"]
            cfg = (
                f"tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={self.dirs[i]}/data\n"
                f"clientPort={self.ports[i][0]}\nclientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\n"
                f"preAllocSize=1024\nadmin.enableServer=false\n" + "\n".join(lines) + f"\n{extra_cfg}\n"
            )
            if admin:
                cfg += (f"admin.enableServer=true\nadmin.serverAddress=127.0.0.1\n"
                        f"admin.serverPort={self.admin_ports[i]}\n")
            if metrics:
                cfg += ("metricsProvider.className=org.apache.zookeeper.metrics.prometheus."
                        f"PrometheusMetricsProvider\nmetricsProvider.httpHost=127.0.0.1\n"
                        f"metricsProvider.httpPort={self.metrics_ports[i]}\n")
            os.makedirs(os.path.join(self.dirs[i], "data"), exist_ok=True)
            with open(os.path.join(self.dirs[i], "data", "myid"), "w") as f:
                f.write(f"{i}\n")
            with open(os.path.join(self.dirs[i], "zoo.cfg"), "w") as f:
                f.write(cfg)
            self.logs[i] = open(os.path.join(self.dirs[i], "server.log"), "a")
        for i in self.ids:
            self.start(i, wait=False)
        try:
            self.wait_serving(self.ids)
        except BaseException:
            self.stop()  # a member that never served must not outlive the caller
            raise

    def cmd(self, i):
        cfg = os.path.join(self.dirs[i], "zoo.cfg")
        if self.kind == "zookeeper" or i in self.java_ids:
            # Java's AdminServer needs the servlet API (Debian's libservlet-api-java).
            cp = JAVA_ZK_CLASSPATH + (":" + SERVLET_JAR if self.admin_ports else "")
            return ["java", "-Xmx512m", "-cp", cp, f"-Dzookeeper.log.dir={self.dirs[i]}",
                    "org.apache.zookeeper.server.quorum.QuorumPeerMain", cfg]
        return [RINGKEEPER, "serve", "--config", cfg] + ([] if self.pin else ["--no-pin"])

    def start(self, i, wait=True):
        self.procs[i] = subprocess.Popen(self.cmd(i), stdout=self.logs[i], stderr=subprocess.STDOUT,
                                         cwd=self.dirs[i], env=self.env.get(i))
        if wait:
            self.wait_serving([i])

    def kill9(self, i):
        self.procs[i].kill()
        self.procs[i].wait()

    def port(self, i):
        return self.ports[i][0]

    def hosts(self, ids=None):
        return ",".join(f"127.0.0.1:{self.port(i)}" for i in (ids or self.ids))

    def data_dir(self, i):
        return os.path.join(self.dirs[i], "data")

    def mode(self, i):
        """`leader`, `follower`, `observer`, or None (down or not serving)."""
        if not self.leader_serves:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_ports[i]}/commands/srvr",
                                            timeout=1) as r:
                    return (json.load(r).get("server_stats") or {}).get("server_state")
            except (OSError, ValueError):
                return None
        try:
            out = four_letter(self.port(i), "srvr", timeout=1)
        except OSError:
            return None
        for line in out.splitlines():
            if line.startswith("Mode: "):
                return line[len("Mode: "):]
        return None

    def leader(self):
        for i in self.ids:
            if self.procs[i].poll() is None and self.mode(i) == "leader":
                return i
        return None

    def wait_serving(self, ids=None, timeout=60):
        """Waits until every member in `ids` (default: every running one) serves."""
        serving = ("leader", "follower", "observer")
        want = ids or self.ids
        deadline = time.time() + timeout
        while time.time() < deadline:
            want = ids or [i for i in self.ids if self.procs[i].poll() is None]
            for i in want:
                if self.procs[i].poll() is not None:
                    raise RuntimeError(f"member {i} exited: {self.read_log(i)}")
            if all(self.mode(i) in serving for i in want):
                return
            time.sleep(0.05)
        modes = {i: self.mode(i) for i in self.ids}
        # The tail of the log of each waited-for member that does not serve, so that a failure in
        # CI says why without the members' directories (which `stop` removes).
        tails = "".join(f"\n--- member {i}'s log, last lines:\n" + "\n".join(self.read_log(i).splitlines()[-40:])
                        for i in want if modes[i] not in serving)
        raise RuntimeError("not serving: " + " | ".join(f"{i}: {m}" for i, m in modes.items()) + tails)

    def partition(self, *groups):
        """Silences all quorum and election traffic between members of different groups (needs
        `partitionable=True`); members in no group are cut off from every group."""
        side = {i: k for k, g in enumerate(groups) for i in g}
        for (i, j), pair in self.pair_proxies.items():
            if side.get(i, ("alone", i)) != side.get(j, ("alone", j)):
                for p in pair:
                    p.freeze()

    def heal(self):
        for pair in self.pair_proxies.values():
            for p in pair:
                p.thaw()

    def read_log(self, i):
        with open(os.path.join(self.dirs[i], "server.log")) as f:
            return f.read()

    def stop(self):
        for i, p in self.procs.items():
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for p in self.proxies.values():
            p.close()
        for pair in self.pair_proxies.values():
            for p in pair:
                p.close()
        for f in self.logs.values():
            f.close()
        for m in self.mounts:
            subprocess.run(["umount", m], capture_output=True)
        if not os.environ.get("RK_KEEP_DIRS"):  # set it to look at a failed test's members
            for d in self.dirs.values():
                shutil.rmtree(d, ignore_errors=True)

    def resize_data(self, i, mb):
        """Resizes member `i`'s tmpfs dataDir (see `tmpfs_mb`)."""
        subprocess.run(["mount", "-o", f"remount,size={mb}m", os.path.join(self.dirs[i], "data")], check=True)
