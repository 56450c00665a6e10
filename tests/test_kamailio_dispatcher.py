"""The dispatcher client (runbooks/kamailio.py) against a real Kamailio: over the ctl
socket with kamcmd and over JSON-RPC, with and without basic auth in front."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.net.http import basic_auth
from runbooks.kamailio import (
    CtlDispatcher,
    Destination,
    Dispatcher,
    KamailioError,
    RpcDispatcher,
)
from tests.peers import free_port
from tests.peers.kamailio import Kamailio, kamailio_dispatcher

PRIMARY, BACKUP = "sip:127.0.0.1:5071", "sip:127.0.0.1:5072"
AUTH = basic_auth("noc", "kam-Secret-55")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    workdir = tmp_path_factory.mktemp("kamailio")
    with kamailio_dispatcher(workdir, [(PRIMARY, 10), (BACKUP, 5)]) as instance:
        yield instance


def clients(proxy: Kamailio) -> dict[str, Dispatcher]:
    return {
        "ctl": CtlDispatcher(str(proxy.ctl)),
        "rpc": RpcDispatcher(f"http://127.0.0.1:{proxy.tcp_port}/RPC"),
    }


@pytest.mark.peer
@pytest.mark.parametrize("way", ["ctl", "rpc"])
def test_list_and_set_state_round_trip(proxy: Kamailio, way: str) -> None:
    client = clients(proxy)[way]
    assert client.list() == [Destination(1, PRIMARY, "AX", 10), Destination(1, BACKUP, "AX", 5)]
    assert "updated" in client.set_state("i", 1, PRIMARY)
    [primary, backup] = client.list()
    assert (primary.flags, primary.active, primary.probing) == ("IX", False, False)
    assert backup.active
    # The other way in sees the same state: it is the proxy's, not the client's.
    other = clients(proxy)["rpc" if way == "ctl" else "ctl"]
    assert not other.list()[0].active
    client.set_state("a", 1, PRIMARY)
    assert client.list()[0].flags == "AX"


@pytest.mark.peer
@pytest.mark.parametrize("way", ["ctl", "rpc"])
def test_a_destination_not_in_the_set_fails_with_kamailios_words(proxy: Kamailio, way: str) -> None:
    with pytest.raises(KamailioError) as raised:
        clients(proxy)[way].set_state("i", 1, "sip:198.51.100.7:5060")
    assert "500 - State Update Failed" in raised.value.reason


def test_a_state_kamailio_does_not_know_is_refused_before_sending() -> None:
    with pytest.raises(KamailioError, match="state 'x' is not one of"):
        CtlDispatcher("/nonexistent.ctl").set_state("x", 1, PRIMARY)


@pytest.mark.peer
def test_an_unreachable_proxy_says_so_either_way(tmp_path: Path) -> None:
    with pytest.raises(KamailioError) as ctl:
        CtlDispatcher(str(tmp_path / "no.ctl"), timeout=2).list()
    assert "kamcmd dispatcher.list on unix:" in ctl.value.reason
    with pytest.raises(KamailioError) as rpc:
        RpcDispatcher(f"http://127.0.0.1:{free_port()}/RPC", timeout=2).list()
    assert "kamailio JSON-RPC" in rpc.value.reason and "refused" in rpc.value.reason


@pytest.mark.peer
def test_basic_auth_in_front_of_json_rpc(tmp_path: Path) -> None:
    with kamailio_dispatcher(tmp_path, [(PRIMARY, 10)], basic_auth=AUTH) as guarded:
        url = f"http://127.0.0.1:{guarded.tcp_port}/RPC"
        with pytest.raises(KamailioError, match="answered 401: the proxy in front wants"):
            RpcDispatcher(url).list()
        with pytest.raises(KamailioError, match="401"):
            RpcDispatcher(url, username="noc", password="wrong").list()
        authed = RpcDispatcher(url, username="noc", password="kam-Secret-55")
        assert [d.uri for d in authed.list()] == [PRIMARY]
        assert "kam-Secret-55" not in repr(authed)
