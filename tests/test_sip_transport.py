"""The sip probe's sockets against local scripted responders (test tools, not SIP peers).

SIPp cannot be told to send garbage, stray answers or half a TCP message, so
these tests use small local responders named as such: they read our request
and send back exactly the bytes a test scripts.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from core.observation import ErrorClass, Observation, Status
from probes.base import ProbeContext
from probes.sip import SipTarget, check
from probes.sip.transport import SHARED_KEY, UdpEndpoints
from tests.peers import free_port


def sip_target(uri: str, **fields: object) -> SipTarget:
    return SipTarget.model_validate({"id": "trunk-a", "kind": "sip", "uri": uri, **fields})


def header(request: bytes, name: str) -> str:
    for line in request.decode().split("\r\n"):
        key, _, value = line.partition(":")
        if key.lower() == name.lower():
            return value.strip()
    raise KeyError(name)


def answer(request: bytes, code: int = 200, reason: str = "OK", **replace: str) -> bytes:
    """A response to ``request`` echoing its Via, From, To, Call-ID and CSeq; ``replace`` overrides."""
    values = {
        "Via": header(request, "Via"),
        "From": header(request, "From"),
        "To": header(request, "To") + ";tag=responder",
        "Call-ID": header(request, "Call-ID"),
        "CSeq": header(request, "CSeq"),
    }
    values.update({k.replace("_", "-"): v for k, v in replace.items()})
    lines = [f"SIP/2.0 {code} {reason}", *(f"{k}: {v}" for k, v in values.items())]
    return ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()


GARBAGE = [
    b"\x00\xff\x13\x37 not sip at all",
    b"SIP/2.0 200 OK\r\nVia: broken",
    b"HTTP/1.1 200 OK\r\n\r\n",
    b"OPTIONS sip:dialwatch@127.0.0.1 SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n",
    b"\r\n\r\n",
]


@dataclass
class ScriptedUdpResponder(asyncio.DatagramProtocol):
    """A local UDP responder (test tool): answers each request with ``script(request)``."""

    script: Callable[[bytes], list[bytes]]
    requests: list[tuple[bytes, tuple[str, int]]] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.requests.append((data, addr))
        assert self.transport is not None
        for datagram in self.script(data):
            self.transport.sendto(datagram, addr)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]


async def start_udp_responder(
    script: Callable[[bytes], list[bytes]], host: str = "127.0.0.1"
) -> ScriptedUdpResponder:
    loop = asyncio.get_running_loop()
    _, responder = await loop.create_datagram_endpoint(
        lambda: ScriptedUdpResponder(script), local_addr=(host, 0)
    )
    return responder


def run(test: Callable[[ProbeContext], Awaitable[object]]) -> object:
    async def main() -> object:
        ctx = ProbeContext(target_id="trunk-a", timeout=4.0)
        try:
            return await test(ctx)
        finally:
            await ctx.shared.aclose()

    return asyncio.run(main())


def endpoints_of(ctx: ProbeContext) -> UdpEndpoints:
    endpoints = ctx.shared.get(SHARED_KEY)
    assert isinstance(endpoints, UdpEndpoints)
    return endpoints


def test_garbage_and_stray_answers_are_ignored_until_the_real_answer_arrives() -> None:
    def script(request: bytes) -> list[bytes]:
        return [
            *GARBAGE,
            answer(request, 200, "OK", Via="SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKsomeoneelse"),
            answer(request, 200, "OK", CSeq=header(request, "CSeq").replace("OPTIONS", "INVITE")),
            answer(request, 486, "Busy Here", Via=header(request, "Via") + ";x=1", CSeq="1 BYE"),
            answer(request, 200, "OK"),
        ]

    async def test(ctx: ProbeContext) -> tuple[Observation, int, int]:
        responder = await start_udp_responder(script)
        observation = await check(sip_target(f"sip:127.0.0.1:{responder.port}"), ctx)
        (endpoint,) = endpoints_of(ctx).endpoints()
        return observation, endpoint.malformed, endpoint.unmatched

    observation, malformed, unmatched = run(test)  # type: ignore[misc]
    assert observation.status is Status.OK, observation.detail
    assert malformed == 5  # binary, cut-off, HTTP, a request, a CRLF keep-alive
    assert unmatched == 3  # another branch, an INVITE CSeq, a BYE CSeq
    assert (
        next(p for p in observation.metrics if p.measurement == "sip").fields["retransmissions"]
        == 0
    )


def test_only_garbage_times_out_without_crashing_and_retransmits_identical_bytes() -> None:
    async def test(ctx: ProbeContext) -> tuple[Observation, ScriptedUdpResponder]:
        responder = await start_udp_responder(lambda request: GARBAGE)
        observation = await check(sip_target(f"sip:127.0.0.1:{responder.port}", timeout="1s"), ctx)
        return observation, responder

    observation, responder = run(test)  # type: ignore[misc]
    assert observation.status is Status.FAIL
    assert observation.error_class is ErrorClass.TIMEOUT
    assert observation.detail == "no answer to OPTIONS after 1 retransmission (1.0 s)"
    first, second = (data for data, _ in responder.requests)
    assert first == second


def test_a_100_trying_without_final_answer_is_a_timeout_that_says_so() -> None:
    def script(request: bytes) -> list[bytes]:
        return [answer(request, 100, "Trying")]

    async def test(ctx: ProbeContext) -> Observation:
        responder = await start_udp_responder(script)
        return await check(sip_target(f"sip:127.0.0.1:{responder.port}", timeout="1s"), ctx)

    observation = run(test)
    assert isinstance(observation, Observation)
    assert observation.error_class is ErrorClass.TIMEOUT
    assert observation.detail == (
        "only 100 Trying, no final answer to OPTIONS after 1 retransmission (1.0 s)"
    )


def test_targets_with_the_same_fixed_source_port_share_one_socket() -> None:
    source_port = free_port(socket.SOCK_DGRAM)

    async def test(ctx: ProbeContext) -> tuple[list[Observation], ScriptedUdpResponder, int]:
        responder = await start_udp_responder(lambda request: [answer(request)])
        targets = [
            sip_target(
                f"sip:127.0.0.1:{responder.port}",
                id=f"trunk-{i}",
                source_address="127.0.0.1",
                source_port=source_port,
            )
            for i in range(3)
        ]
        observations = await asyncio.gather(*(check(t, ctx) for t in targets))
        return list(observations), responder, len(endpoints_of(ctx).endpoints())

    observations, responder, sockets = run(test)  # type: ignore[misc]
    assert [o.status for o in observations] == [Status.OK] * 3
    assert sockets == 1
    assert {addr for _, addr in responder.requests} == {("127.0.0.1", source_port)}
    for request, _ in responder.requests:
        assert header(request, "Via").startswith(f"SIP/2.0/UDP 127.0.0.1:{source_port};branch=")


@pytest.mark.parametrize(
    ("transport", "kind"), [("udp", socket.SOCK_DGRAM), ("tcp", socket.SOCK_STREAM)]
)
def test_a_source_port_taken_by_another_program_is_a_probe_error_not_a_peer_failure(
    transport: str, kind: int
) -> None:
    with socket.socket(socket.AF_INET, kind) as squatter:
        squatter.bind(("127.0.0.1", 0))
        if kind == socket.SOCK_STREAM:
            squatter.listen()
        taken = squatter.getsockname()[1]

        async def test(ctx: ProbeContext) -> Observation:
            target = sip_target(
                f"sip:127.0.0.1:{free_port(kind)}",
                transport=transport,
                source_address="127.0.0.1",
                source_port=taken,
            )
            return await check(target, ctx)

        observation = run(test)
    assert isinstance(observation, Observation)
    assert observation.status is Status.ERROR
    assert observation.detail.startswith(f"cannot send from 127.0.0.1:{taken} (")


def test_shared_resources_reused_by_a_later_event_loop_reopen_the_fixed_source_port() -> None:
    # The engine keeps one loop, but a CLI may run several asyncio.run() with one context.
    source_port = free_port(socket.SOCK_DGRAM)
    ctx = ProbeContext(target_id="trunk-a", timeout=4.0)

    async def probe_once() -> Observation:
        responder = await start_udp_responder(lambda request: [answer(request)])
        target = sip_target(
            f"sip:127.0.0.1:{responder.port}", source_address="127.0.0.1", source_port=source_port
        )
        return await check(target, ctx)

    first = asyncio.run(probe_once())
    second = asyncio.run(probe_once())
    asyncio.run(ctx.shared.aclose())
    assert (first.status, second.status) == (Status.OK, Status.OK), second.detail


def test_icmp_refusal_reaches_only_the_probe_that_caused_it() -> None:
    closed_port = free_port(socket.SOCK_DGRAM)

    async def test(ctx: ProbeContext) -> list[Observation]:
        responder = await start_udp_responder(lambda request: [answer(request)])
        live = sip_target(f"sip:127.0.0.1:{responder.port}", id="live")
        dead = sip_target(f"sip:127.0.0.1:{closed_port}", id="dead")
        return list(await asyncio.gather(check(live, ctx), check(dead, ctx), check(live, ctx)))

    live1, dead, live2 = run(test)  # type: ignore[misc]
    assert (live1.status, live2.status) == (Status.OK, Status.OK)
    assert (dead.status, dead.error_class) == (Status.FAIL, ErrorClass.REFUSED)


def test_ipv6_targets_are_answered_and_refused_like_ipv4_ones() -> None:
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        closed_port = s.getsockname()[1]

    async def test(ctx: ProbeContext) -> tuple[Observation, Observation, bytes]:
        responder = await start_udp_responder(lambda request: [answer(request)], host="::1")
        live = await check(sip_target(f"sip:[::1]:{responder.port}"), ctx)
        dead = await check(sip_target(f"sip:[::1]:{closed_port}"), ctx)
        return live, dead, responder.requests[0][0]

    live, dead, request = run(test)  # type: ignore[misc]
    assert live.status is Status.OK, live.detail
    assert (dead.status, dead.error_class) == (Status.FAIL, ErrorClass.REFUSED)
    assert header(request, "Via").startswith("SIP/2.0/UDP [::1]:")


def test_cseq_increases_from_one_probe_to_the_next_of_a_target() -> None:
    async def test(ctx: ProbeContext) -> list[str]:
        responder = await start_udp_responder(lambda request: [answer(request)])
        target = sip_target(f"sip:127.0.0.1:{responder.port}")
        for _ in range(3):
            await check(target, ctx)
        return [header(data, "CSeq") for data, _ in responder.requests]

    assert run(test) == ["1 OPTIONS", "2 OPTIONS", "3 OPTIONS"]


@pytest.mark.parametrize("uri", ["sip:nothing.invalid", "sip:no-such-host.invalid:5060"])
def test_an_unresolvable_host_fails_as_resolve(uri: str) -> None:
    async def test(ctx: ProbeContext) -> Observation:
        return await check(sip_target(uri, timeout="2s"), ctx)

    observation = run(test)
    assert isinstance(observation, Observation)
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.RESOLVE)
    assert "nothing.invalid" in observation.detail or "no-such-host.invalid" in observation.detail


# -- TCP ----------------------------------------------------------------------

TcpHandler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    return await reader.readuntil(b"\r\n\r\n")


def run_tcp(handler: TcpHandler, timeout: str = "1s") -> Observation:
    """Probe a local scripted TCP responder (test tool) that runs ``handler`` per connection."""

    async def test(ctx: ProbeContext) -> Observation:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            target = sip_target(f"sip:127.0.0.1:{port};transport=tcp", timeout=timeout)
            return await check(target, ctx)
        finally:
            server.close()

    observation = run(test)
    assert isinstance(observation, Observation)
    return observation


def test_tcp_answer_in_pieces_after_keepalives_and_a_stray_message_is_ok() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await read_request(reader)
        assert header(request, "Via").startswith("SIP/2.0/TCP 127.0.0.1:")
        final = answer(request, 200, "OK").replace(
            b"Content-Length: 0\r\n\r\n", b"Content-Type: text/plain\r\nl: 11\r\n\r\nhello world"
        )
        parts = [
            b"\r\n\r\n",
            answer(request, 200, "OK", Via="SIP/2.0/TCP h;branch=z9hG4bKstray"),
            answer(request, 100, "Trying")[:17],
            answer(request, 100, "Trying")[17:],
            final[:40],
            final[40:-5],
            final[-5:],
        ]
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        await reader.read()

    observation = run_tcp(handler)
    assert observation.status is Status.OK, observation.detail
    assert (
        next(p for p in observation.metrics if p.measurement == "sip").fields["status_code"] == 200
    )


def test_a_silent_tcp_peer_times_out() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    observation = run_tcp(handler)
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.TIMEOUT)
    assert observation.detail == "no answer to OPTIONS over TCP within 1.0 s"


def test_a_tcp_peer_that_hangs_up_without_answering_fails_as_protocol() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"\x00garbage\r\n\r\n")
        writer.close()

    observation = run_tcp(handler)
    assert (observation.status, observation.error_class) == (Status.FAIL, ErrorClass.PROTOCOL)
