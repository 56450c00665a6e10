"""Per-trunk statistics over a window kept in probe state: RTT mean and deviation, loss, codes.

The pure summary is checked against hand-computed numbers; then real probes
against SIPp (one of them through a relay that drops the first datagram)
fill a window across runs the way the engine does, sharing ``ctx.state``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import pytest

from core.observation import Observation
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from probes.sip.stats import STATE_KEY, summarize
from tests.peers import free_port
from tests.peers.sipp import DroppingUdpRelay, sipp_options_uas


@pytest.mark.parametrize(
    ("window", "fields"),
    [
        pytest.param([], {"loss_pct": 0.0, "window": 0}, id="empty"),
        pytest.param(
            [[10.0, 0, 200]],
            {"loss_pct": 0.0, "window": 1, "rtt_avg_ms": 10.0, "responses_2xx": 1},
            id="one-answer-no-deviation-yet",
        ),
        pytest.param(
            [[10.0, 0, 200], [30.0, 0, 200], [None, 1, 0], [520.0, 1, 200]],
            # mean of 10, 30, 520 = 186.667; population deviation = 235.84
            {
                "loss_pct": 50.0,
                "window": 4,
                "rtt_avg_ms": 186.667,
                "rtt_dev_ms": 235.844,
                "responses_2xx": 3,
                "responses_none": 1,
            },
            id="timeout-and-retransmission-are-loss",
        ),
        pytest.param(
            [[None, 0, 0], [5.0, 0, 503], [4.0, 0, 403], [6.0, 0, 500]],
            {
                "loss_pct": 0.0,
                "window": 4,
                "rtt_avg_ms": 5.0,
                "rtt_dev_ms": 0.816,
                "responses_none": 1,
                "responses_4xx": 1,
                "responses_5xx": 2,
            },
            id="refusal-is-not-loss-and-codes-count-by-class",
        ),
    ],
)
def test_a_window_summarizes_to_rtt_deviation_loss_and_response_counts(
    window: list[list[object]], fields: dict[str, object]
) -> None:
    assert summarize(window) == fields  # type: ignore[arg-type]


def run(target: SipTarget, state: dict[str, object]) -> Observation:
    async def probe() -> Observation:
        ctx = ProbeContext(target_id=target.id, timeout=target.timeout, state=state)
        try:
            return await check(target, ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(probe())


def point(observation: Observation, measurement: str = "sip") -> dict[str, object]:
    return dict(next(p for p in observation.metrics if p.measurement == measurement).fields)


def codes(observation: Observation) -> dict[str, object]:
    return {k: v for k, v in point(observation).items() if k.startswith("responses_")}


@pytest.mark.peer
def test_probes_fill_a_window_that_survives_in_state_and_stays_bounded(tmp_path: Path) -> None:
    with (
        sipp_options_uas(tmp_path) as uas,
        DroppingUdpRelay(("127.0.0.1", uas.port), drop_first=1) as relay,
    ):
        state: dict[str, object] = {}
        uri = f"sip:127.0.0.1:{relay.port}"
        target = SipTarget.model_validate(
            {"id": "trunk-a", "kind": "sip", "uri": uri, "timeout": "2s", "stats_window": 3}
        )
        first = run(target, state)  # first datagram dropped: answered after a retransmission
        second = run(target, state)
        # The state is what the engine persists: it must survive a JSON round trip.
        state = json.loads(json.dumps(state))
        third = run(target, state)
        fourth = run(target, state)
    assert point(first)["retransmissions"] == 1
    assert point(first)["loss_pct"] == 100.0
    assert point(second)["loss_pct"] == 50.0
    fields = point(third)
    assert fields["window"] == 3 and fields["loss_pct"] == pytest.approx(33.333)
    assert float(fields["rtt_avg_ms"]) >= 500 / 3  # type: ignore[arg-type]
    assert float(fields["rtt_dev_ms"]) > 100  # type: ignore[arg-type]  # one sample waited ≥ 500 ms
    assert codes(third) == {"responses_2xx": 3}
    assert point(fourth)["window"] == 3  # bounded: the first probe has left the window
    assert point(fourth)["loss_pct"] == 0.0
    assert len(state[STATE_KEY][""]) == 3  # type: ignore[index]


@pytest.mark.peer
def test_a_refused_probe_counts_in_the_window_but_not_as_loss() -> None:
    state: dict[str, object] = {}
    dead = f"sip:127.0.0.1:{free_port(socket.SOCK_DGRAM)}"
    target = SipTarget.model_validate(
        {"id": "trunk-b", "kind": "sip", "uri": dead, "timeout": "1s"}
    )
    observation = run(target, state)
    assert point(observation)["loss_pct"] == 0.0
    assert codes(observation) == {"responses_none": 1}
