"""The HTTP endpoints of issue 10: Prometheus `/metrics` (parsed by the prometheus_client
package's parser, values checked against what the test did) and the AdminServer's `/commands`,
compared field by field with Java ZooKeeper 3.8's Jetty AdminServer for the same state."""

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from kazoo.client import KazooClient
from prometheus_client.parser import text_string_to_metric_families

import servers
from servers import Ensemble, Server, free_ports, four_letter, java_zookeeper_available

SERVLET_JAR = "/usr/share/java/servlet-api.jar"


def http(port, path, method="GET"):
    """(status, content type or None, body text)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read().decode()


def scrape(port):
    status, ctype, text = http(port, "/metrics")
    assert status == 200 and ctype.startswith("text/plain"), (status, ctype)
    samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples, name, **labels):
    return samples[(name, tuple(sorted(labels.items())))]


def mntr(port):
    return dict(line.split("\t", 1) for line in four_letter(port, "mntr").splitlines() if "\t" in line)


def test_metrics_report_what_the_clients_did():
    mport, = free_ports(1)
    srv = Server("ringkeeper", "metricsProvider.className=org.apache.zookeeper.metrics.prometheus."
                               f"PrometheusMetricsProvider\nmetricsProvider.httpPort={mport}\n"
                               "metricsProvider.httpHost=127.0.0.1")
    zk = KazooClient(hosts=srv.hosts, timeout=10)
    zk.start(timeout=15)
    try:
        before = scrape(mport)
        zk.create("/m", b"")
        for i in range(50):
            zk.create(f"/m/n{i}", b"x" * 10)
        for i in range(30):
            zk.get(f"/m/n{i}", watch=lambda e: None)
        zk.create("/m/eph", b"", ephemeral=True)
        zk.exists("/m/none", watch=lambda e: None)
        after = scrape(mport)
        stats = mntr(srv.port)
        assert value(after, "znode_count") == int(stats["zk_znode_count"]) == value(before, "znode_count") + 52
        assert value(after, "ephemerals_count") == 1
        assert value(after, "watch_count") == 31
        assert value(after, "num_alive_connections") == 1
        assert value(after, "rk_request_latency_seconds_count", op="create") == 52
        assert value(after, "rk_request_latency_seconds_count", op="getData") == 30
        assert value(after, "rk_request_latency_seconds_bucket", op="create", le="+Inf") == 52
        assert value(after, "updatelatency_count") == 52
        assert value(after, "readlatency_count") == 31  # 30 getData and one exists
        fsyncs = value(after, "rk_log_fsyncs_total")
        assert fsyncs >= 1 and fsyncs <= value(after, "rk_log_synced_txns_total")
        assert value(after, "rk_log_synced_txns_total") - value(before, "rk_log_synced_txns_total") >= 52
        assert value(after, "fsynctime_count") == fsyncs == value(after, "rk_group_commit_txns_count")
        assert value(after, "rk_group_commit_txns_sum") == value(after, "rk_log_synced_txns_total")
        threads = {dict(k[1])["thread"] for k in after if k[0] == "rk_thread_cpu_seconds_total"}
        # glommio appends its executor id to the name (rk-pipeline-1).
        assert any(t.startswith(("rk-core0", "rk-pipeline")) for t in threads), threads
        assert all(v >= 0 for k, v in after.items() if k[0] == "rk_thread_cpu_seconds_total")
        status, _, _ = http(mport, "/nosuch")
        assert status == 404
    finally:
        zk.stop()
        zk.close()
        srv.stop()


def test_metrics_are_off_unless_asked_for_and_ringkeeper_key_turns_them_on():
    off, on = free_ports(2)
    srv = Server("ringkeeper", f"metricsProvider.httpPort={off}")
    try:
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(f"http://127.0.0.1:{off}/metrics", timeout=3)
    finally:
        srv.stop()
    srv = Server("ringkeeper", f"ringkeeper.metricsEnabled=true\nmetricsProvider.httpPort={on}")
    try:
        assert value(scrape(on), "znode_count") >= 1
    finally:
        srv.stop()


def test_a_taken_metrics_port_stops_the_server_naming_the_key(tmp_path):
    import socket
    import subprocess
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    d = str(tmp_path)
    client, = free_ports(1)
    cfg = os.path.join(d, "zoo.cfg")
    with open(cfg, "w") as f:
        f.write(f"dataDir={d}/data\nclientPort={client}\nclientPortAddress=127.0.0.1\nadmin.enableServer=false\n"
                f"ringkeeper.metricsEnabled=true\nmetricsProvider.httpHost=127.0.0.1\n"
                f"metricsProvider.httpPort={taken.getsockname()[1]}\n")
    try:
        r = subprocess.run([servers.RINGKEEPER, "serve", "--config", cfg, "--no-pin"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 1
        assert "metricsProvider.httpPort" in r.stderr, r.stderr
    finally:
        taken.close()


def admin_server(kind, monkeypatch):
    port, = free_ports(1)
    if kind == "zookeeper":
        monkeypatch.setattr(servers, "JAVA_ZK_CLASSPATH", servers.JAVA_ZK_CLASSPATH + ":" + SERVLET_JAR)
    srv = Server(kind, f"admin.enableServer=true\nadmin.serverPort={port}\nadmin.serverAddress=127.0.0.1")
    return srv, port


def same_state(hosts):
    """Two sessions: A with an ephemeral, a data watch and an exists watch; B with two data
    watches (one on the path A watches)."""
    a = KazooClient(hosts=hosts, timeout=10)
    b = KazooClient(hosts=hosts, timeout=10)
    a.start(timeout=15)
    b.start(timeout=15)
    a.create("/app/a", b"1", makepath=True)
    a.create("/app/b", b"2")
    a.create("/app/eph", b"", ephemeral=True)
    a.get("/app/a", watch=lambda e: None)
    a.exists("/app/missing", watch=lambda e: None)
    b.exists("/app/a", watch=lambda e: None)
    b.get("/app/b", watch=lambda e: None)
    return a, b


COMMANDS = ["configuration", "conf", "config", "connection_stat_reset", "crst", "connections", "cons", "dirs",
            "dump", "environment", "env", "envi", "get_trace_mask", "gtmk", "hash", "initial_configuration", "icfg",
            "is_read_only", "isro", "last_snapshot", "lsnp", "leader", "lead", "monitor", "mntr",
            "observer_connection_stat_reset", "orst", "observers", "obsr", "ruok", "server_stats", "srvr",
            "stat_reset", "srst", "stats", "stat", "system_properties", "sysp", "voting_view", "watch_summary",
            "wchs", "watches", "wchc", "watches_by_path", "wchp", "zabstate", "nosuch", "RUOK"]
# Fields whose values are the server's own (ids, times, sizes, paths, the JVM): compared by kind.
OWN_VALUES = {"configuration", "connections", "dirs", "dump", "environment", "initial_configuration",
              "last_snapshot", "monitor", "server_stats", "stats", "system_properties", "watches",
              "watches_by_path"}


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return ["list"]
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    return type(v).__name__


@pytest.mark.skipif(not (java_zookeeper_available() and os.path.exists(SERVLET_JAR)),
                    reason="Java ZooKeeper or the servlet API jar (libservlet-api-java) is not installed")
def test_admin_server_answers_as_java_zookeepers(monkeypatch):
    answers = {}
    for kind in ("zookeeper", "ringkeeper"):
        srv, port = admin_server(kind, monkeypatch)
        a, b = same_state(srv.hosts)
        try:
            got = {c: http(port, f"/commands/{c}") for c in COMMANDS}
            got["/commands"] = http(port, "/commands")
            got["/nosuch"] = http(port, "/nosuch")
            got["POST ruok"] = http(port, "/commands/ruok", method="POST")
            got["r%75ok"] = http(port, "/commands/r%75ok")
            with open(srv.cfg_path) as f:
                got["cfg"] = f.read()
            got["port"] = srv.port
            answers[kind] = got
        finally:
            for c in (a, b):
                c.stop()
                c.close()
            srv.stop()
    zk, rk = answers["zookeeper"], answers["ringkeeper"]
    # Status codes and content types, for every command, alias and bad path.
    for c in COMMANDS + ["/nosuch", "POST ruok", "r%75ok"]:
        assert rk[c][0] == zk[c][0], (c, rk[c][0], zk[c][0])
        assert (rk[c][1] or "").split(";")[0] == (zk[c][1] or "").split(";")[0], (c, rk[c][1], zk[c][1])
    # The command list: the same commands, as links.
    assert rk["/commands"][0] == 200
    # The same list, but for 3.9's `snapshot`, which 3.8 lacks.
    ours = rk["/commands"][2].replace('<a href="/commands/snapshot">snapshot</a>\n<br/>\n', "")
    assert ours == zk["/commands"][2]
    for c in COMMANDS:
        zj, rj = json.loads(zk[c][2]), json.loads(rk[c][2])
        primary = zj["command"]
        assert rj["command"] == primary, c
        assert list(rj)[-2:] == list(zj)[-2:], (c, list(rj), list(zj))
        if primary == "monitor":
            # Java 3.8 reports ~500 metrics; every one Ringkeeper reports is ZooKeeper's (or its own rk_).
            extra = [k for k in rj if k not in zj and not k.startswith("rk_")]
            assert extra == [], extra
            for k in ("znode_count", "watch_count", "ephemerals_count", "outstanding_requests",
                      "num_alive_connections", "server_state", "version"):
                assert shape(rj[k]) == shape(zj[k]), k
            assert rj["watch_count"] == zj["watch_count"] == 4
            assert rj["ephemerals_count"] == zj["ephemerals_count"] == 1
        elif primary in ("server_stats", "stats"):
            assert list(rj) == list(zj), c
            # Java's inner order comes from reflection and changes between JVM runs.
            assert sorted(rj["server_stats"]) == sorted(zj["server_stats"])
            assert {k: shape(v) for k, v in rj["server_stats"].items()} == \
                   {k: shape(v) for k, v in zj["server_stats"].items()}
        elif primary == "system_properties":
            keys = list(rj)[:-2]
            assert keys == sorted(keys) and list(rj)[-2:] == ["command", "error"]
            assert rj["zookeeper.admin.serverPort"] == zj["zookeeper.admin.serverPort"].__class__(
                rj["zookeeper.admin.serverPort"])
            # QuorumPeerConfig's own keys are not system properties; the others are.
            assert "zookeeper.tickTime" not in rj and "zookeeper.tickTime" not in zj
            assert rj["zookeeper.preAllocSize"] == zj["zookeeper.preAllocSize"] == "1024"
        elif primary in OWN_VALUES:
            assert list(rj) == list(zj), (c, list(rj), list(zj))
            assert shape(rj) == shape(zj) or primary in ("dump", "watches", "environment"), c
        else:
            # Same keys, same order, same values.
            assert rj == zj, (c, rj, zj)
            assert list(rj) == list(zj), c
    # Values that follow from the clients' state.
    for kind in ("zookeeper", "ringkeeper"):
        j = {c: json.loads(answers[kind][c][2]) for c in ("dump", "watches", "watches_by_path", "connections",
                                                           "configuration", "initial_configuration", "environment")}
        assert sorted(j["dump"]["session_id_to_ephemeral_paths"].values()) == [["/app/eph"]], kind
        assert sorted(sorted(p) for p in j["watches"]["session_id_to_watched_paths"].values()) == \
               [["/app/a", "/app/b"], ["/app/a", "/app/missing"]], kind
        assert sorted(j["watches_by_path"]["path_to_session_ids"]) == ["/app/a", "/app/b", "/app/missing"]
        assert len(j["connections"]["connections"]) == 2, kind
        assert j["configuration"]["client_port"] == answers[kind]["port"]
        assert j["configuration"]["tick_time"] == 200
        assert j["initial_configuration"]["initial_configuration"] == answers[kind]["cfg"], kind
        assert list(j["environment"])[:3] == ["zookeeper.version", "host.name", "java.version"]
    # Pretty printing as Jackson's: byte for byte where the values agree.
    assert rk["ruok"][2] == zk["ruok"][2]
    assert rk["watch_summary"][2] == zk["watch_summary"][2]


def admin_json(port, command):
    status, ctype, body = http(port, f"/commands/{command}")
    assert status == 200 and ctype == "application/json", (command, status, ctype)
    return json.loads(body)


def test_admin_server_on_an_ensemble_names_the_leader():
    ens = Ensemble(voters=3, admin=True)
    try:
        leader = ens.leader()
        zk = KazooClient(hosts=ens.hosts(), timeout=10)
        zk.start(timeout=15)
        zk.create("/written", b"")
        zk.stop()
        zk.close()
        for i in ens.ids:
            port = ens.admin_ports[i]
            for _ in range(100):  # a follower applies the create once the COMMIT reaches it
                if admin_json(port, "zabstate")["zab_epoch"] >= 1:
                    break
                time.sleep(0.05)
            lead = admin_json(port, "leader")
            assert (lead["is_leader"], lead["leader_id"], lead["leader_ip"]) == (i == leader, leader, "127.0.0.1")
            zab = admin_json(port, "zabstate")
            assert (zab["myid"], zab["is_leader"], zab["voting"], zab["zabstate"]) == (i, i == leader, True,
                                                                                         "broadcast")
            assert zab["client_address"] == f"127.0.0.1:{ens.port(i)}"
            zxid = int(zab["last_zxid"], 16)
            assert (zxid >> 32, zxid & 0xffffffff) == (zab["zab_epoch"], zab["zab_counter"])
            assert zab["zab_epoch"] >= 1 and zab["zab_counter"] >= 1
            view = admin_json(port, "voting_view")["current_config"]
            assert sorted(view) == ["1", "2", "3"]
            for j in ens.ids:
                _, quorum, election = ens.ports[j]
                assert view[str(j)]["server_addresses"] == [f"127.0.0.1:{quorum}"]
                assert view[str(j)]["election_addresses"] == [f"127.0.0.1:{election}"]
                assert view[str(j)]["client_address"] == f"127.0.0.1:{ens.port(j)}"
                assert view[str(j)]["learner_type"] == "participant"
            assert admin_json(port, "initial_configuration")["initial_configuration"] is None
            assert admin_json(port, "monitor")["server_state"] == ("leader" if i == leader else "follower")
        # Alone, a member elects forever: commands that need a serving server say so.
        last = [i for i in ens.ids if i != leader][0]
        for i in ens.ids:
            if i != last:
                ens.kill9(i)
        for _ in range(100):
            if ens.mode(last) is None:
                break
            time.sleep(0.05)
        ruok = admin_json(ens.admin_ports[last], "ruok")
        assert ruok == {"command": "ruok",
                        "error": "This ZooKeeper instance is not currently serving requests"}
        assert admin_json(ens.admin_ports[last], "zabstate") == {"voting": False, "zabstate": "",
                                                                "command": "zabstate", "error": None}
    finally:
        ens.stop()


def http_auth(port, path, authorization=None):
    """(status, headers, body bytes)."""
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}")
    if authorization:
        req.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.skipif(not java_zookeeper_available(), reason="Java ZooKeeper is not installed")
def test_admin_snapshot_streams_what_java_zookeeper_loads(tmp_path):
    """ZooKeeper 3.9's `snapshot` command: credentials checked against the ACL of `/`, then the
    tree streamed in Java's own snapshot format, which a Java server started on it serves."""
    from kazoo.security import ACL, Id, make_digest_acl
    from test_import import walk
    port, = free_ports(1)
    srv = Server("ringkeeper", f"admin.enableServer=true\nadmin.serverPort={port}\nadmin.serverAddress=127.0.0.1")
    zk = KazooClient(hosts=srv.hosts, timeout=10)
    zk.start(timeout=15)
    try:
        zk.create("/app/a", b"1", makepath=True)
        zk.create("/app/b", None)
        zk.create("/secret", b"s", acl=[make_digest_acl("u", "p", all=True), ACL(1, Id("world", "anyone"))])
        for i in range(50):
            zk.create(f"/app/a/n{i}", bytes([i]) * i)
        zk.set("/app/a", b"2")
        zk.delete("/app/a/n7")
        status, _, body = http_auth(port, "/commands/snapshot")
        assert (status, json.loads(body)["error"]) == (401, "Auth info is missing for the command")
        status, _, body = http_auth(port, "/commands/snap", "bogus x")
        assert (status, json.loads(body)) == (401, {"command": "snap", "error": "Not authenticated"})
        status, headers, body = http_auth(port, "/commands/snapshot?streaming=false", "digest u:p")
        assert status == 200 and json.loads(body) == {"command": "snapshot", "error": None}
        assert int(headers["snapshot_size"]) > 1000
        status, headers, snap = http_auth(port, "/commands/snapshot", "digest u:p")
        assert status == 200 and headers["Content-Type"] == "application/octet-stream"
        assert int(headers["snapshot_size"]) == len(snap) and snap[:4] == b"ZKSN"
        zxid = int(headers["last_zxid"], 16)
        before = walk(srv.hosts)
        # Only every permission on `/` may take it.
        zk.set_acls("/", [make_digest_acl("u", "p", all=True), ACL(1, Id("world", "anyone"))])
        status, _, body = http_auth(port, "/commands/snapshot", "digest x:y")
        assert (status, json.loads(body)["error"]) == (403, "Not authorized")
        assert http_auth(port, "/commands/snapshot", "digest u:p")[0] == 200
    finally:
        zk.stop()
        zk.close()
        srv.stop()
    # A Java server started on that one file serves the same tree.
    data = tmp_path / "java"
    (data / "version-2").mkdir(parents=True)
    (data / "version-2" / f"snapshot.{zxid:x}").write_bytes(snap)
    java = Server("zookeeper", f"dataDir={data}")
    try:
        after = walk(java.hosts)
        for path in set(before) | set(after):
            if path.startswith("/zookeeper"):
                continue  # each server keeps its own /zookeeper/config
            assert before.get(path) == after.get(path), path
    finally:
        java.stop()


def test_admin_snapshot_can_be_turned_off():
    port, = free_ports(1)
    srv = Server("ringkeeper", f"admin.enableServer=true\nadmin.serverPort={port}\nadmin.serverAddress=127.0.0.1\n"
                               "admin.snapshot.enabled=false")
    try:
        status, _, body = http_auth(port, "/commands/snapshot", "digest u:p")
        assert (status, json.loads(body)) == (503, {"command": "snapshot", "error": None})
    finally:
        srv.stop()
