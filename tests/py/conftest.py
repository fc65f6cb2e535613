import pytest

from helpers import Clients
from servers import Server


@pytest.fixture
def server():
    """A fresh Ringkeeper server per test."""
    s = Server("ringkeeper")
    yield s
    s.stop()


@pytest.fixture
def server_factory():
    """Start servers with extra zoo.cfg lines: server_factory("minSessionTimeout=400")."""
    started = []

    def make(extra="", kind="ringkeeper", binary=None):
        s = Server(kind, extra, binary)
        started.append(s)
        return s

    yield make
    for s in started:
        s.stop()


@pytest.fixture
def clients():
    """Makes started KazooClients (clients(hosts)) and stops them at teardown."""
    c = Clients()
    yield c
    c.close_all()
