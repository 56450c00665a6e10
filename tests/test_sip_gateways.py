"""Pure rules: several gateways into one observation, and a test call into a sentence."""

from __future__ import annotations

import pytest

from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.sip.call import CallResult, summarize
from probes.sip.config import TestCallOptions
from probes.sip.gateways import combine, tagged
from probes.sip.message import parse_response

OK = Observation(Status.OK, "200 OK in 1.0 ms", (MetricPoint("sip", {"up": 1}),), 0.001)
WARN = Observation(
    Status.WARN,
    "alive, but answered 403 Forbidden to OPTIONS in 2.0 ms",
    (MetricPoint("sip", {"up": 1}),),
    0.002,
    ErrorClass.RESPONSE,
)
TIMEOUT = Observation(
    Status.FAIL,
    "no answer to OPTIONS after 3 retransmissions (4.0 s)",
    (MetricPoint("sip", {"up": 0}),),
    None,
    ErrorClass.TIMEOUT,
)
ERROR = Observation(Status.ERROR, "cannot send from *:5060 (Address already in use)")


@pytest.mark.parametrize(
    ("results", "unresolved", "status", "error_class", "detail", "counts"),
    [
        pytest.param(
            [("a:1", OK)], [], Status.OK, None, "a:1: 200 OK in 1.0 ms", (1, 1), id="one-alive"
        ),
        pytest.param(
            [("a:1", OK), ("b:1", WARN)],
            [],
            Status.WARN,
            ErrorClass.RESPONSE,
            "all 2 gateways answer: a:1 200 OK in 1.0 ms; b:1 alive, but answered 403 Forbidden "
            "to OPTIONS in 2.0 ms",
            (2, 2),
            id="all-alive-one-unhappy",
        ),
        pytest.param(
            [("a:1", OK), ("b:1", OK), ("c:1", TIMEOUT)],
            [],
            Status.WARN,
            ErrorClass.TIMEOUT,
            "2 of 3 gateways answer; c:1: no answer to OPTIONS after 3 retransmissions (4.0 s)",
            (3, 2),
            id="two-of-three-is-degraded",
        ),
        pytest.param(
            [("a:1", TIMEOUT)],
            [("gone:5060", "could not resolve gone")],
            Status.FAIL,
            ErrorClass.TIMEOUT,
            "none of the 2 gateways answers: a:1: no answer to OPTIONS after 3 retransmissions "
            "(4.0 s); gone:5060: could not resolve gone",
            (2, 0),
            id="none-alive",
        ),
        pytest.param(
            [("a:1", ERROR)],
            [],
            Status.ERROR,
            None,
            "cannot send from *:5060 (Address already in use)",
            (1, 0),
            id="probe-could-not-run",
        ),
    ],
)
def test_gateways_combine_into_one_status_and_sentence(
    results: list[tuple[str, Observation]],
    unresolved: list[tuple[str, str]],
    status: Status,
    error_class: ErrorClass | None,
    detail: str,
    counts: tuple[int, int],
) -> None:
    observation = combine([(label, tagged(o, label)) for label, o in results], unresolved)
    assert (observation.status, observation.error_class, observation.detail) == (
        status,
        error_class,
        detail,
    )
    (summary,) = [p for p in observation.metrics if p.measurement == "sip_gateways"]
    assert (summary.fields["total"], summary.fields["up"]) == counts
    assert all(p.tags["gateway"] for p in observation.metrics if p.measurement == "sip")


def response(status: int, reason: str) -> object:
    return parse_response(
        f"SIP/2.0 {status} {reason}\r\nVia: SIP/2.0/UDP h;branch=z9hG4bKx\r\n"
        f"CSeq: 1 INVITE\r\nTo: <sip:1@h>;tag=t\r\n\r\n".encode()
    )


OPTIONS = TestCallOptions(number="100", ring_timeout=8.0, warn_post_dial_delay=3.0)


@pytest.mark.parametrize(
    ("result", "status", "detail"),
    [
        pytest.param(
            CallResult(0.12, 0.5, response(200, "OK"), response(180, "Ringing"), hung_up=True),  # type: ignore[arg-type]
            "ok",
            "test call to 100: ringing after 120 ms, answered after 500 ms, hung up",
            id="answered",
        ),
        pytest.param(
            CallResult(4.0, None, response(487, "Request Terminated"), response(183, "x"), True),  # type: ignore[arg-type]
            "warn",
            "test call to 100: ringing after 4000 ms, not answered within 8 s, cancelled, "
            "post-dial delay above 3000 ms",
            id="slow-ringing",
        ),
        pytest.param(
            CallResult(None, None, None, None),
            "fail",
            "test call to 100: no answer to INVITE within 8 s",
            id="silence",
        ),
        pytest.param(
            CallResult(None, None, response(404, "Not Found"), response(404, "Not Found")),  # type: ignore[arg-type]
            "fail",
            "test call to 100 was refused: 404 Not Found",
            id="refused",
        ),
        pytest.param(
            CallResult(
                0.1,
                0.2,
                response(200, "OK"),  # type: ignore[arg-type]
                response(180, "Ringing"),  # type: ignore[arg-type]
                problems=["BYE got no answer within 2 s; the call may still be up"],
            ),
            "warn",
            "test call to 100: ringing after 100 ms, answered after 200 ms, hang-up not "
            "confirmed; BYE got no answer within 2 s; the call may still be up",
            id="bye-unanswered",
        ),
        pytest.param(
            CallResult(None, 0.3, response(200, "OK"), response(200, "OK"), hung_up=True),  # type: ignore[arg-type]
            "ok",
            "test call to 100: answered after 300 ms, hung up",
            id="answered-without-ringing",
        ),
    ],
)
def test_a_test_call_is_summarized_in_one_sentence(
    result: CallResult, status: str, detail: str
) -> None:
    summary = summarize(result, OPTIONS)
    assert (summary.status, summary.detail) == (status, detail)
    assert summary.fields["answered"] == (1 if result.answer_delay is not None else 0)
