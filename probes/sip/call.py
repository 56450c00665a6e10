"""The opt-in test call: INVITE a test number, time ringing and answer, then hang up.

Calls cost money and occupy a line, so a call is placed only when the target
has a ``test_call`` block, and at most once per ``rate_limit`` (the time of
the last attempt is kept in probe state, which survives restarts).

One call (RFC 3261 §13, §17.1.1, §9, §15), over UDP from the target's shared
socket (so a carrier's ip:port whitelist applies to it too), or over its own
TCP/TLS connection (then without retransmissions):

1. INVITE with a small SDP offer (PCMU/PCMA; no media is sent), retransmitted
   per Timer A (T1, doubling) until any response.
2. The first 180/183 gives the **post-dial delay**; a 2xx the **answer
   delay**. A 2xx is acknowledged (ACK along the Record-Route set, to the
   remote Contact), and after ``hangup_after`` the call is ended with BYE.
3. No answer within ``ring_timeout``: CANCEL (only after a provisional
   response, as §9.1 requires), then ACK the 487. An answer that races the
   CANCEL is acknowledged and hung up, never left open.
4. A final error (4xx–6xx) is acknowledged on the INVITE's branch (§17.1.1.3).

In-dialog requests go to the first Route's address when the peer
record-routed (a proxy such as Kamailio), else to the Contact's address, and
to the INVITE's destination when either is a host name.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import secrets
from dataclasses import dataclass, field
from typing import Any, Protocol

from probes.sip.config import SipTarget, TestCallOptions
from probes.sip.message import (
    SipParseError,
    SipResponse,
    build_request,
    format_host,
    frame_stream,
    name_addr_uri,
    new_branch,
    parse_response,
    parse_uri,
)
from probes.sip.session import StreamSession
from probes.sip.transaction import T1, T2, PeerClosedError

BYE_TIMEOUT = 2.0
"""How long BYE and CANCEL are retransmitted before we give up on their answer."""


@dataclass
class CallResult:
    """What happened to one test call."""

    post_dial_delay: float | None = None
    """Seconds from INVITE to the first 180/183."""
    answer_delay: float | None = None
    """Seconds from INVITE to the 2xx."""
    final: SipResponse | None = None
    """The INVITE's final response (2xx, 487 after our CANCEL, or an error)."""
    first_response: SipResponse | None = None
    cancelled: bool = False
    hung_up: bool = False
    """Our BYE got a 2xx."""
    error: OSError | None = None
    retransmissions: int = 0
    problems: list[str] = field(default_factory=list)
    """Teardown trouble worth telling (BYE unanswered...)."""


class _CallSink:
    """Receives every response for the call's branches from the shared UDP endpoint."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[SipResponse | OSError] = asyncio.Queue()

    def accepts(self, response: SipResponse) -> bool:
        cseq = response.cseq
        return cseq is not None and cseq[1] in ("INVITE", "CANCEL", "BYE")

    def on_response(self, response: SipResponse) -> None:
        self.queue.put_nowait(response)

    def on_error(self, error: OSError) -> None:
        self.queue.put_nowait(error)


def sdp_offer(local_host: str, rtp_port: int) -> bytes:
    """A minimal audio offer: PCMU and PCMA, telephone-event. We never send media."""
    family = "IP6" if ":" in local_host else "IP4"
    session = secrets.randbelow(2**31)
    return (
        "v=0\r\n"
        f"o=dialwatch {session} {session} IN {family} {local_host}\r\n"
        "s=Dialwatch test call\r\n"
        f"c=IN {family} {local_host}\r\n"
        "t=0 0\r\n"
        f"m=audio {rtp_port} RTP/AVP 0 8 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:8 PCMA/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=sendrecv\r\n"
    ).encode()


def call_uri(target_uri: str, number: str) -> str:
    """The INVITE's Request-URI: the test number at the target's host, port and parameters."""
    uri = parse_uri(target_uri)
    text = f"{uri.scheme}:{number}@{format_host(uri.host)}"
    if uri.port is not None:
        text += f":{uri.port}"
    for name, value in uri.params.items():
        text += f";{name}={value}" if value else f";{name}"
    return text


def _address(uri_text: str, fallback: tuple[Any, ...]) -> tuple[Any, ...]:
    """sockaddr of a URI with an IP host; ``fallback`` for a host name."""
    try:
        uri = parse_uri(uri_text)
        ip = ipaddress.ip_address(uri.host)
    except ValueError:
        return fallback
    if ip.version == 6:
        return (str(ip), uri.effective_port, 0, 0)
    return (str(ip), uri.effective_port)


class CallChannel(Protocol):
    """Where a call's requests go and its responses come from (a UDP endpoint or a stream)."""

    @property
    def local_address(self) -> tuple[str, int]: ...

    def register(self, branch: str, txn: _CallSink) -> None: ...

    def unregister(self, branch: str) -> None: ...

    def send(self, data: bytes, addr: tuple[Any, ...]) -> None: ...


class StreamCallChannel:
    """A call over one TCP or TLS connection: every response read is routed by branch.

    In-dialog requests go over the same connection whatever the Route set
    says: the proxy at its other end record-routed us and relays them.
    """

    def __init__(self, session: StreamSession) -> None:
        self.session = session
        self.sinks: dict[str, _CallSink] = {}
        self._reader = asyncio.ensure_future(self._read())

    @property
    def local_address(self) -> tuple[str, int]:
        return self.session.local_host, self.session.local_port

    def register(self, branch: str, txn: _CallSink) -> None:
        self.sinks[branch] = txn

    def unregister(self, branch: str) -> None:
        self.sinks.pop(branch, None)

    def send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.session.writer.write(data)

    async def _read(self) -> None:
        buffer = bytearray()
        error: OSError | None = None
        while error is None:
            try:
                chunk = await self.session.reader.read(65536)
            except OSError as exc:
                error = exc
                break
            if not chunk:
                error = PeerClosedError(errno.ECONNRESET, "the peer closed the connection")
                break
            buffer += chunk
            while True:
                try:
                    message = frame_stream(buffer)
                except SipParseError:
                    buffer.clear()
                    break
                if message is None:
                    break
                try:
                    response = parse_response(message)
                except SipParseError:
                    continue  # a request from the peer (e.g. its own BYE): not ours to answer
                sink = self.sinks.get(response.top_via_branch or "")
                if sink is not None and sink.accepts(response):
                    sink.on_response(response)
        for sink in set(self.sinks.values()):
            sink.on_error(error)

    async def close(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        await self.session.close()


class TestCall:
    """One INVITE dialogue over a UDP endpoint (retransmitting) or a stream (not)."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(
        self,
        target: SipTarget,
        options: TestCallOptions,
        endpoint: CallChannel,
        sockaddr: tuple[Any, ...],
        local_host: str,
        transport: str = "udp",
    ) -> None:
        self.target = target
        self.options = options
        self.endpoint = endpoint
        self.transport = transport
        self.reliable = transport != "udp"
        """TCP/TLS: no retransmissions (RFC 3261 §17.1.1.2 Timer A is for UDP only)."""
        self.sockaddr = sockaddr
        self.local_host = local_host
        self.local_port = endpoint.local_address[1]
        self.loop = asyncio.get_running_loop()
        self.sink = _CallSink()
        self.uri = call_uri(target.uri, options.number)
        self.call_id = f"{secrets.token_hex(16)}@{format_host(local_host)}"
        self.from_tag = secrets.token_hex(8)
        self.branch = new_branch()
        self.cseq = 1
        self.result = CallResult()
        self.started = 0.0
        self.to_tag: str | None = None
        self._branches: list[str] = []

    def _build(
        self,
        method: str,
        *,
        branch: str,
        cseq: int,
        request_uri: str | None = None,
        to_tag: str | None = None,
        routes: list[str] | None = None,
        body: bytes = b"",
    ) -> bytes:
        headers = [f"Route: {route}" for route in routes or ()]
        if body:
            headers.append("Content-Type: application/sdp")
        request = build_request(
            method=method,
            request_uri=request_uri or self.uri,
            transport=self.transport,
            local_host=self.local_host,
            local_port=self.local_port,
            from_user=self.target.from_user,
            from_domain=self.target.from_domain or self.local_host,
            user_agent=self.target.user_agent,
            cseq=cseq,
            branch=branch,
            call_id=self.call_id,
            from_tag=self.from_tag,
            to_uri=self.uri.split(";", 1)[0],
            to_tag=to_tag,
            contact=method == "INVITE",
            headers=headers,
            body=body,
        )
        return request.data

    def _listen(self, branch: str) -> None:
        self.endpoint.register(branch, self.sink)
        self._branches.append(branch)

    def _send(self, data: bytes, sockaddr: tuple[Any, ...] | None = None) -> None:
        self.endpoint.send(data, sockaddr or self.sockaddr)

    async def _next(self, until: float) -> SipResponse | OSError | None:
        remaining = until - self.loop.time()
        if remaining <= 0:
            return None
        try:
            return await asyncio.wait_for(self.sink.queue.get(), remaining)
        except TimeoutError:
            return None

    def _note_invite(self, response: SipResponse) -> None:
        """Record what an INVITE response tells (timings, To tag, final)."""
        now = self.loop.time() - self.started
        if self.result.first_response is None:
            self.result.first_response = response
        if response.to_tag:
            self.to_tag = response.to_tag
        if response.status in (180, 183) and self.result.post_dial_delay is None:
            self.result.post_dial_delay = now
        if response.status >= 200 and self.result.final is None:
            self.result.final = response
            if response.status < 300:
                self.result.answer_delay = now

    async def run(self, deadline: float) -> CallResult:
        """Place the call; never returns with the call still up (unless the peer vanished)."""
        try:
            await self._run(deadline)
        except OSError as exc:
            self.result.error = exc
        finally:
            for branch in self._branches:
                self.endpoint.unregister(branch)
        return self.result

    async def _run(self, deadline: float) -> None:
        self.started = self.loop.time()
        ring_until = min(self.started + self.options.ring_timeout, deadline)
        invite = self._build(
            "INVITE",
            branch=self.branch,
            cseq=self.cseq,
            body=sdp_offer(self.local_host, self.local_port + 2),
        )
        self._listen(self.branch)
        self._send(invite)
        interval = T1
        next_send: float | None = None if self.reliable else self.started + interval
        while self.result.final is None:
            now = self.loop.time()
            if now >= ring_until:
                break
            until = min(ring_until, next_send) if next_send is not None else ring_until
            message = await self._next(until)
            if isinstance(message, OSError):
                self.result.error = message
                return
            if message is None:
                if next_send is not None and self.loop.time() >= next_send:
                    # Timer A: retransmit until any response arrives (§17.1.1.2).
                    self._send(invite)
                    self.result.retransmissions += 1
                    interval *= 2
                    next_send += interval
                continue
            if message.cseq is not None and message.cseq[1] == "INVITE":
                next_send = None  # any response stops INVITE retransmissions
                self._note_invite(message)
        if self.result.final is None:
            await self._cancel(deadline)
        final = self.result.final
        if final is None:
            return
        if final.status < 300:
            await self._ack_and_bye(final, deadline)
        else:
            # ACK for a non-2xx final response: same branch, the response's To tag.
            self._send(self._build("ACK", branch=self.branch, cseq=1, to_tag=final.to_tag))

    async def _cancel(self, deadline: float) -> None:
        """CANCEL once a provisional response has come; wait for the INVITE's final answer."""
        while self.result.first_response is None:
            message = await self._next(deadline)
            if message is None:
                self.result.problems.append(
                    "the INVITE got no response at all, so it could not be cancelled"
                )
                return
            if isinstance(message, OSError):
                self.result.error = message
                return
            if message.cseq is not None and message.cseq[1] == "INVITE":
                self._note_invite(message)
        if self.result.final is not None:
            return  # answered or refused while we waited for the first response
        cancel = self._build("CANCEL", branch=self.branch, cseq=1)
        self._send(cancel)
        self.result.cancelled = True
        cancel_answered = False
        interval = T1
        next_send = self.loop.time() + interval
        final_until = min(self.loop.time() + 64 * T1, deadline)
        while self.result.final is None:
            retransmitting = not cancel_answered and not self.reliable
            until = min(next_send, final_until) if retransmitting else final_until
            message = await self._next(until)
            if isinstance(message, OSError):
                self.result.error = message
                return
            if message is None:
                if self.loop.time() >= final_until:
                    self.result.problems.append("the INVITE got no final response after CANCEL")
                    return
                if not cancel_answered and not self.reliable and self.loop.time() >= next_send:
                    self._send(cancel)
                    interval = min(interval * 2, T2)
                    next_send += interval
                continue
            method = message.cseq[1] if message.cseq else ""
            if method == "CANCEL" and message.status >= 200:
                cancel_answered = True
            elif method == "INVITE":
                self._note_invite(message)

    async def _ack_and_bye(self, final: SipResponse, deadline: float) -> None:
        routes = list(reversed(final.header_values("record-route")))
        contact_values = final.header_values("contact")
        remote = name_addr_uri(contact_values[0]) if contact_values else self.uri
        if routes:
            first = name_addr_uri(routes[0])
            next_hop = _address(first, self.sockaddr)
            if ";lr" not in first.lower():
                # Strict router (RFC 2543 style): it wants to be the Request-URI.
                routes = [*routes[1:], f"<{remote}>"]
                remote = first
        else:
            next_hop = _address(remote, self.sockaddr)
        to_tag = final.to_tag
        ack = self._build(
            "ACK",
            branch=new_branch(),
            cseq=1,
            request_uri=remote,
            to_tag=to_tag,
            routes=routes,
        )
        self._send(ack, next_hop)
        await asyncio.sleep(max(min(self.options.hangup_after, deadline - self.loop.time()), 0))
        bye_branch = new_branch()
        self._listen(bye_branch)
        self.cseq += 1
        bye = self._build(
            "BYE",
            branch=bye_branch,
            cseq=self.cseq,
            request_uri=remote,
            to_tag=to_tag,
            routes=routes,
        )
        self._send(bye, next_hop)
        interval = T1
        next_send = self.loop.time() + interval
        bye_until = self.loop.time() + BYE_TIMEOUT
        while True:
            message = await self._next(min(next_send, bye_until))
            if isinstance(message, OSError):
                self.result.problems.append(f"BYE failed ({message.strerror or message})")
                return
            if message is None:
                if self.loop.time() >= bye_until:
                    self.result.problems.append(
                        f"BYE got no answer within {BYE_TIMEOUT:g} s; the call may still be up"
                    )
                    return
                if not self.reliable:
                    self._send(bye, next_hop)
                    self.result.retransmissions += 1
                interval = min(interval * 2, T2)
                next_send += interval
                continue
            method = message.cseq[1] if message.cseq else ""
            if method == "INVITE" and message.status < 300:
                self._send(ack, next_hop)  # the 200 was retransmitted: our ACK was lost
            elif method == "BYE" and message.status >= 200:
                self.result.hung_up = message.status < 300
                if not self.result.hung_up:
                    self.result.problems.append(
                        f"BYE was answered {message.status} {message.reason}".strip()
                    )
                return


MEASUREMENT = "sip_call"


@dataclass(frozen=True, slots=True)
class CallSummary:
    """A test call in the probe's words: does it change the status, and what to say."""

    status: str
    """``ok``, ``warn`` or ``fail``."""
    detail: str
    error_class: str | None
    fields: dict[str, float | int]


def summarize(result: CallResult, options: TestCallOptions) -> CallSummary:
    """Pure: the sentence, status and ``sip_call`` fields for one call."""
    fields: dict[str, float | int] = {
        "status_code": result.final.status if result.final else 0,
        "answered": 1 if result.answer_delay is not None else 0,
        "cancelled": 1 if result.cancelled else 0,
        "retransmissions": result.retransmissions,
    }
    if result.post_dial_delay is not None:
        fields["post_dial_delay_ms"] = round(result.post_dial_delay * 1000, 3)
    if result.answer_delay is not None:
        fields["answer_ms"] = round(result.answer_delay * 1000, 3)
    who = f"test call to {options.number}"
    parts: list[str] = []
    if result.post_dial_delay is not None:
        parts.append(f"ringing after {result.post_dial_delay * 1000:.0f} ms")
    if result.answer_delay is not None:
        parts.append(f"answered after {result.answer_delay * 1000:.0f} ms")
        parts.append("hung up" if result.hung_up else "hang-up not confirmed")
    elif result.cancelled and result.final is not None and result.final.status == 487:
        parts.append(f"not answered within {options.ring_timeout:g} s, cancelled")
    status, error_class = "ok", None
    if result.error is not None:
        reason = result.error.strerror or str(result.error)
        return CallSummary("fail", f"{who} failed: {reason}", "refused", fields)
    final = result.final
    if final is not None and final.status >= 300 and not (result.cancelled and final.status == 487):
        phrase = f"{final.status} {final.reason}".strip()
        if final.status in (486, 600):
            return CallSummary("warn", f"{who}: the number is busy ({phrase})", "response", fields)
        return CallSummary("fail", f"{who} was refused: {phrase}", "response", fields)
    if result.first_response is None:
        return CallSummary(
            "fail",
            f"{who}: no answer to INVITE within {options.ring_timeout:g} s",
            "timeout",
            fields,
        )
    if result.post_dial_delay is None and result.answer_delay is None:
        parts.insert(0, "no ringing (180/183)")
    limit = options.warn_post_dial_delay
    if limit is not None and (result.post_dial_delay or result.answer_delay or 0) > limit:
        status, error_class = "warn", "threshold"
        parts.append(f"post-dial delay above {limit * 1000:g} ms")
    detail = f"{who}: " + ", ".join(parts)
    if result.problems:
        detail += "; " + "; ".join(result.problems)
        if status == "ok":
            status, error_class = "warn", "protocol"
    return CallSummary(status, detail, error_class, fields)
