"""The ``kamailio`` step against a real Kamailio dispatcher, over the ctl socket and
JSON-RPC: set_state read back, list into data, and failures in Kamailio's own words —
a refusal is not retried, an unreachable proxy is."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.clock import SYSTEM_CLOCK
from runbooks.engine import render_step
from runbooks.kamailio import CtlDispatcher
from runbooks.steps.base import StepContext, StepFailed, StepResult, StepServices
from runbooks.steps.kamailio import KamailioStep, KamailioStepConfig
from tests.peers import free_port
from tests.peers.kamailio import Kamailio, kamailio_dispatcher

PRIMARY, BACKUP = "sip:127.0.0.1:5091", "sip:127.0.0.1:5092"


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kamailio]:
    with kamailio_dispatcher(tmp_path_factory.mktemp("kam"), [(PRIMARY, 10), (BACKUP, 5)]) as k:
        yield k


def way(proxy: Kamailio, how: str) -> dict[str, Any]:
    if how == "ctl":
        return {"kind": "kamailio", "ctl": f"unix:{proxy.ctl}"}
    return {"kind": "kamailio", "rpc": f"http://127.0.0.1:{proxy.tcp_port}/RPC"}


def run(fields: dict[str, Any], values: dict[str, Any] | None = None) -> StepResult:
    config = render_step(
        KamailioStepConfig.model_validate({"kind": "kamailio", **fields}), values or {}
    )
    ctx = StepContext(
        run_id=1, runbook_id="rb", position=0, target_id=None, incident_id=None,
        started_by="rule:r", deadline=SYSTEM_CLOCK.monotonic() + 10, clock=SYSTEM_CLOCK,
        services=StepServices(), log=lambda _line: None,
    )  # fmt: skip
    return asyncio.run(KamailioStep(config).run(ctx))


@pytest.mark.peer
@pytest.mark.parametrize("how", ["ctl", "rpc"])
def test_set_state_takes_a_destination_out_and_reads_it_back(proxy: Kamailio, how: str) -> None:
    done = run(
        {"proxy": way(proxy, how), "action": "set_state", "state": "i",
         "destination": "sip:{{ params.ip }}:5091"},
        {"params": {"ip": "127.0.0.1"}},
    )  # fmt: skip
    assert done.summary.startswith(f"{PRIMARY} is IX in set 1")
    assert CtlDispatcher(str(proxy.ctl)).list()[0].flags == "IX"
    run({"proxy": way(proxy, how), "action": "set_state", "state": "a", "destination": PRIMARY})
    listed = run({"proxy": way(proxy, how), "action": "list"})
    assert [d["uri"] for d in listed.data["destinations"]] == [PRIMARY, BACKUP]
    assert all(d["active"] for d in listed.data["destinations"])


@pytest.mark.peer
@pytest.mark.parametrize("how", ["ctl", "rpc"])
def test_a_wrong_destination_is_refused_in_kamailios_words_and_not_retried(
    proxy: Kamailio, how: str
) -> None:
    with pytest.raises(StepFailed) as raised:
        run({"proxy": way(proxy, how), "action": "set_state", "state": "i",
             "destination": "sip:198.51.100.7:5060"})  # fmt: skip
    assert "State Update Failed" in raised.value.reason
    assert raised.value.retry is False


@pytest.mark.peer
def test_reload_and_a_second_one_too_soon_is_retried_later(tmp_path: Path) -> None:
    with kamailio_dispatcher(tmp_path, [(PRIMARY, 10)]) as fresh:
        done = run({"proxy": way(fresh, "ctl"), "action": "reload"})
        assert done.summary.startswith("dispatcher reloaded")
        with pytest.raises(StepFailed) as raised:  # Kamailio's reload_delta: 5 s by default
            run({"proxy": way(fresh, "rpc"), "action": "reload"})
    assert "Ongoing reload" in raised.value.reason and raised.value.retry is True


@pytest.mark.peer
def test_an_unreachable_proxy_fails_and_may_be_retried(tmp_path: Path) -> None:
    rpc = {"kind": "kamailio", "rpc": f"http://127.0.0.1:{free_port()}/RPC", "timeout": "1s"}
    with pytest.raises(StepFailed) as raised:
        run({"proxy": rpc, "action": "list"})
    assert "JSON-RPC" in raised.value.reason and raised.value.retry is True
    ctl = {"kind": "kamailio", "ctl": f"unix:{tmp_path / 'no.ctl'}"}
    with pytest.raises(StepFailed) as raised:
        run({"proxy": ctl, "action": "list"})
    assert "kamcmd" in raised.value.reason or "kamailio" in raised.value.reason


def test_the_config_needs_state_and_destination_and_a_known_state() -> None:
    proxy = {"kind": "kamailio", "ctl": "unix:/run/k.ctl"}
    with pytest.raises(ValueError, match="set_state needs state"):
        KamailioStepConfig.model_validate(
            {"kind": "kamailio", "proxy": proxy, "action": "set_state"}
        )
    with pytest.raises(ValueError, match="state must be one of"):
        KamailioStepConfig.model_validate({"kind": "kamailio", "proxy": proxy,
                                           "action": "set_state", "state": "x", "destination": PRIMARY})  # fmt: skip


def test_the_plan_names_the_command_and_never_the_password() -> None:
    config = KamailioStepConfig.model_validate({
        "kind": "kamailio", "action": "set_state", "state": "i", "destination": PRIMARY,
        "proxy": {"kind": "kamailio", "rpc": "http://127.0.0.1:5080/RPC",
                  "username": "dw", "password": "kam-Secret-55"},
    })  # fmt: skip
    [line] = KamailioStep(config).plan()
    assert (
        line == f"kamailio (JSON-RPC http://127.0.0.1:5080/RPC): dispatcher.set_state i 1 {PRIMARY}"
    )
    assert "kam-Secret-55" not in line
