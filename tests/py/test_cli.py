"""`ringkeeper cli` against zkCli.sh (issue 10, item 1): the same commands, run one at a time
against a fresh server each, must print the same stdout and stderr and exit with the same code;
against Ringkeeper and against Java ZooKeeper. Then the interactive shell as a person uses it,
in tmux: prompt, line editing, history and redo, tab completion of commands and paths, and watch
events printed as they arrive."""

import os
import re
import shutil
import subprocess
import time

import pytest
from kazoo.client import KazooClient
from kazoo.security import make_digest_acl

from servers import RINGKEEPER, Server, java_zookeeper_available

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"
have_zkcli = os.path.exists(ZKCLI) and java_zookeeper_available()

# Run in order against a fresh server; each case's state follows from the ones before.
CASES = [
    ["create", "/a", "hello"],
    ["create", "/a", "again"],
    ["create", "-s", "/a/seq", "x"],
    ["create", "-c", "/cont"],
    ["create", "-t", "10000", "/ttl", "x"],
    ["create", "/acl", "x", "world:anyone:r"],
    ["create", "/noparent/x"],
    ["create", "/badacl", "x", "garbage"],
    ["create", "/badperm", "x", "world:anyone:rz"],
    ["create"],
    ["create", "/n"],
    ["create", "/empty", ""],
    ["create", "-c", "-e", "/x"],
    ["create", "-t", "abc", "/x"],
    ["create", "-t", "1000", "-e", "/x"],
    ["create", "-t", "0", "/x", "y"],
    ["create", "a", "x"],
    ["create", "/a/", "x"],
    ["create", "-z", "/x"],
    ["create", "-s", "/es", "x"],
    ["create", "/multi", "x", "world:anyone:r,ip:127.0.0.1:cdrwa"],
    ["create", "/a/child", "c"],
    ["ls", "/"],
    ["ls", "-s", "/a"],
    ["ls", "-R", "/a"],
    ["ls", "/nonexistent"],
    ["ls"],
    ["ls", "-x", "/"],
    ["ls", "/a/child"],
    ["ls", "/", "watch"],
    ["get", "/a"],
    ["get", "-s", "/a"],
    ["get", "/n"],
    ["get", "-s", "/cont"],
    ["get", "/empty"],
    ["get", "/nonexistent"],
    ["get"],
    ["get", "a"],
    ["set", "/a", "world"],
    ["set", "-s", "/a", "again"],
    ["set", "-v", "99", "/a", "x"],
    ["set", "-v", "2", "/a", "y"],
    ["set", "/acl", "x"],
    ["set", "/a"],
    ["set", "/nonexistent", "x"],
    ["stat", "/a"],
    ["stat", "/nonexistent"],
    ["stat", "/"],
    ["stat"],
    ["delete", "-v", "99", "/a"],
    ["delete", "/a"],
    ["delete", "/nonexistent"],
    ["delete", "/"],
    ["delete"],
    ["getAcl", "/acl"],
    ["getAcl", "-s", "/acl"],
    ["getAcl", "/multi"],
    ["getAcl", "/nonexistent"],
    ["setAcl", "/acl", "world:anyone:cdrwa"],
    ["setAcl", "/empty", "world:anyone:cdrwa"],
    ["setAcl", "-s", "/empty", "world:anyone:cdrw"],
    ["setAcl", "/empty", "garbage"],
    ["setAcl"],
    ["sync", "/"],
    ["sync"],
    ["getAllChildrenNumber", "/"],
    ["getAllChildrenNumber", "/nonexistent"],
    ["getEphemerals", "/"],
    ["whoami"],
    ["addauth"],
    ["addWatch", "/a"],
    ["addWatch", "-m", "BOGUS", "/a"],
    ["removewatches", "/nowatch"],
    ["removewatches"],
    ["deleteall", "/a"],
    ["deleteall", "/nonexistent"],
    ["deleteall"],
    ["ls", "/"],
    ["foo", "bar"],
    ["redo", "0"],
]

DATE = re.compile(r"^(ctime|mtime) = \w{3} \w{3} \d\d \d\d:\d\d:\d\d \w+ \d{4}$", re.M)
# Each one-shot run leaves a session behind that expires some seconds later (zkCli does not
# close it), and each expiry takes a zxid at a moment of its own: zxids are set aside too.
ZXID = re.compile(r"^(cZxid|mZxid|pZxid) = 0x[0-9a-f]+$", re.M)


def run(cli, server, words):
    """(exit code, stdout after the connect preamble, stderr without the JVM's log noise)."""
    r = subprocess.run(cli + ["-server", server.hosts] + words, capture_output=True, text=True, timeout=60)
    # zkCli prints "Connecting to ...", then its watcher prints "\nWATCHER::" and the connect
    # event from the event thread, which can land between the lines of the command's own
    # output: each piece is taken out where it is, not everything before the last.
    out = r.stdout.split("\n", 1)[-1] if r.stdout.startswith("Connecting to ") else r.stdout
    for piece in ("\nWATCHER::\n", "\nWatchedEvent state:SyncConnected type:None path:null\n"):
        out = out.replace(piece, "", 1)
    err = "".join(line + "\n" for line in r.stderr.splitlines() if not line.startswith("SLF4J:"))
    # The times are the servers' own; their format is compared, then the values set aside.
    assert all(DATE.match(line) for line in out.splitlines() if line.startswith(("ctime =", "mtime ="))), out
    out = DATE.sub(r"\1 = <date>", out)
    out = ZXID.sub(r"\1 = <zxid>", out)
    return r.returncode, out, err


def transcript(kind, cli):
    srv = Server(kind, "extendedTypesEnabled=true")
    try:
        return [run(cli, srv, words) for words in CASES]
    finally:
        srv.stop()


@pytest.mark.skipif(not have_zkcli, reason="zkCli.sh (Debian zookeeper-bin) not installed")
@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_cli_prints_what_zkcli_prints(kind):
    java = transcript(kind, [ZKCLI])
    ours = transcript(kind, [RINGKEEPER, "cli"])
    diffs = []
    for words, want, got in zip(CASES, java, ours):
        if want != got:
            diffs.append(f"{' '.join(words)!r}:\n  zkCli: {want!r}\n  ours:  {got!r}")
    assert not diffs, f"{len(diffs)} of {len(CASES)} differ:\n" + "\n".join(diffs)


def test_cli_exit_codes_and_connection_loss():
    srv = Server("ringkeeper")
    try:
        cli = [RINGKEEPER, "cli", "-server", srv.hosts]
        assert subprocess.run(cli + ["create", "/x", "1"], capture_output=True, timeout=30).returncode == 0
        r = subprocess.run(cli + ["get", "/missing"], capture_output=True, text=True, timeout=30)
        assert (r.returncode, r.stderr) == (1, "Node does not exist: /missing\n")
        r = subprocess.run(cli + ["nosuch"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 127 and "Command not found" in r.stderr
        port = srv.port
    finally:
        srv.stop()
    started = time.time()
    r = subprocess.run([RINGKEEPER, "cli", "-server", f"127.0.0.1:{port}", "ls", "/"], capture_output=True,
                       text=True, timeout=60)
    assert (r.returncode, r.stderr) == (1, "KeeperErrorCode = ConnectionLoss for /\n")
    assert time.time() - started < 30, "a closed port is reported, not waited on for the session timeout"


class Tmux:
    """An interactive `ringkeeper cli` in a tmux pane."""

    def __init__(self, cmd):
        self.name = f"rkcli{os.getpid()}{int(time.time() * 1000) % 100000}"
        # The pane outlives the shell, so what it printed last can still be read.
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", "200", "-y", "50", f"{cmd}; sleep 60"],
                       check=True)

    def keys(self, *keys):
        """tmux key names: Enter, Tab, Up, C-a, ..."""
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def type(self, text):
        subprocess.run(["tmux", "send-keys", "-t", self.name, "-l", text], check=True)

    def screen(self):
        return subprocess.run(["tmux", "capture-pane", "-p", "-S", "-200", "-t", self.name], capture_output=True,
                              text=True, check=True).stdout

    def wait_for(self, text, timeout=15):
        deadline = time.time() + timeout
        while time.time() < deadline:
            s = self.screen()
            if text in s:
                return s
            time.sleep(0.05)
        raise AssertionError(f"{text!r} never appeared:\n{self.screen()}")

    def close(self):
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
@pytest.mark.parametrize("kind", ["ringkeeper", "zookeeper"])
def test_interactive_cli_as_a_person_uses_it(kind):
    if kind == "zookeeper" and not java_zookeeper_available():
        pytest.skip("Java ZooKeeper is not installed")
    srv = Server(kind)
    other = KazooClient(hosts=srv.hosts, timeout=10)
    other.start(timeout=15)
    t = Tmux(f"{RINGKEEPER} cli -server {srv.hosts}")
    try:
        prompt = f"[zk: {srv.hosts}(CONNECTED) 0]"
        t.wait_for(prompt)
        t.type("create /app hello")
        t.keys("Enter")
        t.wait_for("Created /app")
        # Tab completes a command name, then a path.
        t.type("ge")
        t.keys("Tab")
        t.wait_for(f"{prompt[:-2]}1] get")
        t.type(" -w /ap")
        t.keys("Tab")
        t.wait_for("get -w /app")
        t.keys("Enter")
        t.wait_for("[zk: " + srv.hosts + "(CONNECTED) 2]")
        s = t.screen()
        assert "get -w /app" in s and "\nhello\n" in s, s
        # A watch event from another client's change, printed while the prompt waits.
        other.set("/app", b"changed")
        t.wait_for("WatchedEvent state:SyncConnected type:NodeDataChanged path:/app")
        assert "WATCHER::" in t.screen()
        # Line editing: Ctrl-A to the start, then fix a typo'd command.
        t.type("xls /")
        t.keys("C-a", "DC", "Enter")
        t.wait_for("[app, zookeeper]")
        # Up arrow recalls the last line.
        t.keys("Up", "Enter")
        t.wait_for("[zk: " + srv.hosts + "(CONNECTED) 4]")
        t.type("history")
        t.keys("Enter")
        s = t.wait_for("4 - history")
        for line in ["0 - create /app hello", "1 - get -w /app", "2 - ls /", "3 - ls /"]:
            assert line in s, s
        t.type("redo 0")
        t.keys("Enter")
        t.wait_for("Node already exists: /app")
        t.type("quit")
        t.keys("Enter")
        t.wait_for("WatchedEvent state:Closed type:None path:null")
    finally:
        t.close()
        other.stop()
        other.close()
        srv.stop()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_a_reconnect_keeps_the_shells_watches_and_credentials():
    """The server restarts under an interactive shell: its session resumes, the watch it had
    set is registered again (setWatches) and fires, and its addauth credentials are sent again."""
    srv = Server("ringkeeper", "maxSessionTimeout=60000")
    other = KazooClient(hosts=srv.hosts, timeout=10)
    other.start(timeout=15)
    other.create("/w", b"1")
    other.create("/dig", b"secret", acl=[make_digest_acl("u", "p", all=True)])
    other.stop()
    other.close()
    t = Tmux(f"{RINGKEEPER} cli -timeout 30000 -server {srv.hosts}")
    try:
        t.wait_for(f"[zk: {srv.hosts}(CONNECTED) 0]")
        t.type("addauth digest u:p")
        t.keys("Enter")
        t.type("get -w /w")
        t.keys("Enter")
        t.wait_for(f"[zk: {srv.hosts}(CONNECTED) 2]")
        srv.kill9_and_restart()
        t.wait_for("WatchedEvent state:Disconnected type:None path:null")
        deadline = time.time() + 30
        while t.screen().count("WatchedEvent state:SyncConnected type:None path:null") < 2:
            assert time.time() < deadline, t.screen()
            time.sleep(0.05)
        other = KazooClient(hosts=srv.hosts, timeout=10)
        other.start(timeout=15)
        other.set("/w", b"2")
        t.wait_for("WatchedEvent state:SyncConnected type:NodeDataChanged path:/w")
        t.type("get /dig")
        t.keys("Enter")
        t.wait_for("\nsecret\n")
        other.stop()
        other.close()
    finally:
        t.close()
        srv.stop()
