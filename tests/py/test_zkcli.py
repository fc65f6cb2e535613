"""Java ZooKeeper's own shell, zkCli.sh (Debian package), against Ringkeeper."""

import os
import subprocess

import pytest

ZKCLI = "/usr/share/zookeeper/bin/zkCli.sh"

pytestmark = pytest.mark.skipif(not os.path.exists(ZKCLI), reason="zkCli.sh (Debian zookeeper-bin) not installed")


def cli(server, *args):
    out = subprocess.run([ZKCLI, "-server", server.hosts, *args], capture_output=True, text=True, timeout=60)
    return out.stdout + out.stderr


def test_zkcli_commands(server):
    assert "Created /cli" in cli(server, "create", "/cli", "hello")
    assert "Created /cli/child" in cli(server, "create", "/cli/child", "c")
    out = cli(server, "get", "/cli")
    assert "hello" in out
    out = cli(server, "ls", "/cli")
    assert "[child]" in out
    out = cli(server, "stat", "/cli")
    assert "numChildren = 1" in out and "dataLength = 5" in out and "cversion = 1" in out
    cli(server, "set", "/cli", "world")
    assert "dataVersion = 1" in cli(server, "stat", "/cli")
    out = cli(server, "create", "-s", "-e", "/cli/seq-", "x")
    assert "Created /cli/seq-0000000001" in out
    out = cli(server, "delete", "/cli")
    assert "not empty" in out.lower()
    out = cli(server, "getAcl", "/cli")
    assert "'world,'anyone" in out and ": cdrwa" in out
    out = cli(server, "create", "/cli", "again")
    assert "Node already exists" in out
    cli(server, "deleteall", "/cli")
    assert "Node does not exist" in cli(server, "get", "/cli")


def test_zkcli_ttl_container_and_acl(server_factory):
    s = server_factory("extendedTypesEnabled=true")
    assert "Created /t" in cli(s, "create", "-t", "100000", "/t", "v")
    assert "Created /box" in cli(s, "create", "-c", "/box")
    cli(s, "setAcl", "/t", "world:anyone:r")
    assert "Insufficient permission" in cli(s, "set", "/t", "x") or "NoAuth" in cli(s, "set", "/t", "x")
    assert "ephemeralOwner = 0x0" in cli(s, "stat", "/box")
