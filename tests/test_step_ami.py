"""The ``ami`` runbook step against the local AMI peer (Asterisk's documented manager protocol)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from pydantic import ValidationError

from core.clock import SYSTEM_CLOCK
from runbooks.steps.ami import AmiStep, AmiStepConfig
from runbooks.steps.base import StepContext, StepFailed, StepResult, StepServices
from tests.peers import free_port
from tests.peers.ami import AmiPeer, ami_peer

__all__ = ["ami_peer"]  # fixture used by name

pytestmark = pytest.mark.peer


def config(peer: AmiPeer | None = None, **fields: Any) -> AmiStepConfig:
    base: dict[str, Any] = {"kind": "ami", "action": "Ping", "username": "dialwatch"}
    if peer is not None:
        base |= {"address": f"127.0.0.1:{peer.port}", "secret": peer.secret}
    return AmiStepConfig.model_validate({**base, **fields})


def context(timeout: float = 5.0) -> StepContext:
    return StepContext(
        run_id=1,
        runbook_id="switch-route",
        position=0,
        target_id=None,
        incident_id=None,
        started_by="test",
        deadline=SYSTEM_CLOCK.monotonic() + timeout,
        clock=SYSTEM_CLOCK,
        services=StepServices(),
        log=lambda _line: None,
    )


def run(step_config: AmiStepConfig, timeout: float = 5.0) -> StepResult:
    return asyncio.run(AmiStep(step_config).run(context(timeout)))


def failure(step_config: AmiStepConfig, timeout: float = 5.0) -> StepFailed:
    with pytest.raises(StepFailed) as caught:
        run(step_config, timeout)
    return caught.value


def test_dbput_succeeds_and_the_value_reaches_asterisk(ami_peer: AmiPeer) -> None:
    result = run(
        config(
            ami_peer,
            action="DBPut",
            headers={"Family": "route", "Key": "campaign-7", "Val": "backup-b"},
        )
    )
    assert ami_peer.db == {("route", "campaign-7"): "backup-b"}
    assert result.summary == "AMI DBPut: Success: Updated database successfully"
    assert result.output == "Response: Success\nMessage: Updated database successfully"
    assert result.data["Message"] == "Updated database successfully"
    sent = [m for m in ami_peer.received if m.get("Action") == "DBPut"]
    assert sent[0]["Family"] == "route" and sent[0]["Val"] == "backup-b"
    # logged in with events off, and logged off politely afterwards
    actions = [m.get("Action") for m in ami_peer.received]
    assert actions == ["Login", "DBPut", "Logoff"]
    assert ami_peer.received[0]["Events"] == "off"


def test_numbers_and_booleans_in_headers_are_sent_as_asterisk_reads_them(
    ami_peer: AmiPeer,
) -> None:
    run(config(ami_peer, action="DBPut", headers={"Family": "seats", "Key": 7, "Val": True}))
    assert ami_peer.db == {("seats", "7"): "true"}


def test_reload_of_a_module_succeeds_and_an_unknown_module_is_refused_for_good(
    ami_peer: AmiPeer,
) -> None:
    assert run(config(ami_peer, action="Reload", headers={"Module": "chan_pjsip.so"})).summary == (
        "AMI Reload: Success: Module Reloaded"
    )
    assert ami_peer.reloads == ["chan_pjsip.so"]
    failed = failure(config(ami_peer, action="Reload", headers={"Module": "chan_nope"}))
    assert failed.reason == "AMI refused Reload: No such module"
    assert failed.retry is False
    assert "Response: Error" in failed.output


def test_an_error_response_carries_its_message(ami_peer: AmiPeer) -> None:
    failed = failure(config(ami_peer, action="DBPut", headers={"Key": "campaign-7"}))
    assert failed.reason == "AMI refused DBPut: No family specified"
    assert failed.retry is False


def test_command_output_keeps_every_line(ami_peer: AmiPeer) -> None:
    ami_peer.commands["dialplan reload"] = "Dialplan reloaded.\nExtensions: 42"
    result = run(config(ami_peer, action="Command", headers={"Command": "dialplan reload"}))
    assert result.output.splitlines()[-2:] == [
        "Output: Dialplan reloaded.",
        "Output: Extensions: 42",
    ]
    unknown = failure(config(ami_peer, action="Command", headers={"Command": "frobnicate"}))
    assert unknown.reason == "AMI refused Command: Command output follows"
    assert "No such command 'frobnicate'" in unknown.output


def test_an_unknown_action_is_refused_with_asterisks_words(ami_peer: AmiPeer) -> None:
    failed = failure(config(ami_peer, action="Frobnicate"))
    assert failed.reason == "AMI refused Frobnicate: Invalid/unknown command"


def test_a_wrong_secret_fails_as_a_refused_login_and_is_not_retried(ami_peer: AmiPeer) -> None:
    failed = failure(config(ami_peer, secret="not-the-secret"))
    assert failed.reason == "AMI login as 'dialwatch' rejected: Authentication failed"
    assert failed.retry is False
    assert "not-the-secret" not in failed.reason
    assert [m.get("Action") for m in ami_peer.received] == ["Login"]


def test_a_closed_port_fails_as_connection_refused_and_may_be_retried() -> None:
    port = free_port()
    failed = failure(config(address=f"127.0.0.1:{port}", secret="x"))
    assert failed.reason == f"AMI at 127.0.0.1:{port}: connection refused"
    assert failed.retry is True


def test_a_peer_that_never_greets_is_given_up_on_at_the_deadline(ami_peer: AmiPeer) -> None:
    ami_peer.mode = "hang_after_connect"
    start = time.monotonic()
    failed = failure(config(ami_peer), timeout=0.5)
    assert time.monotonic() - start < 3
    assert "waiting for its banner" in failed.reason
    assert failed.retry is True


def test_the_plan_shows_the_action_and_never_the_secret(ami_peer: AmiPeer) -> None:
    step = config(
        ami_peer,
        action="Originate",
        headers={"Channel": "PJSIP/8001", "Exten": "100", "Async": True, "Password": "pin-4321"},
    )
    [line] = AmiStep(step).plan()
    assert line == (
        f"ami 127.0.0.1:{ami_peer.port} as 'dialwatch': Action: Originate "
        "Channel: PJSIP/8001 Exten: 100 Async: true Password: ***"
    )
    assert ami_peer.secret not in line
    assert ami_peer.secret not in repr(step)
    assert ami_peer.received == []  # a plan contacts nothing


def test_the_port_defaults_to_5038() -> None:
    step = AmiStep(config(address="pbx.example", secret="x"))
    assert (step.host, step.port) == ("pbx.example", 5038)


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        pytest.param({"address": "h:99999", "secret": "x"}, "port must be", id="bad-port"),
        pytest.param({"address": "h:1", "secret": ""}, "must not be empty", id="empty-secret"),
        pytest.param(
            {"address": "h:1", "secret": "x", "action": "Login"}, "done by the step", id="login"
        ),
        pytest.param(
            {"address": "h:1", "secret": "x", "action": "DB Put"}, "AMI action name", id="space"
        ),
        pytest.param(
            {"address": "h:1", "secret": "x", "headers": {"ActionID": "1"}},
            "written by the step itself",
            id="actionid",
        ),
        pytest.param(
            {"address": "h:1", "secret": "x", "headers": {"Val": "a\r\nAction: Logoff"}},
            "line break",
            id="header-injection",
        ),
        pytest.param(
            {"address": "h:1", "secret": "x", "headers": {"Val": "{{ params.x"}},
            "template",
            id="template-syntax",
        ),
    ],
)
def test_a_bad_config_is_refused_with_a_reason(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError) as error:
        config(**fields)
    assert words in str(error.value)


def test_a_rendered_header_with_a_line_break_is_refused_before_anything_is_sent(
    ami_peer: AmiPeer,
) -> None:
    step = config(ami_peer, action="DBPut", headers={"Family": "route", "Val": "{{ params.v }}"})
    rendered = step.model_copy(
        update={"headers": {"Family": "route", "Val": "x\r\nAction: Logoff"}}
    )
    failed = failure(rendered)
    assert "line break" in failed.reason
    assert failed.retry is False
    assert ami_peer.connections == 0
