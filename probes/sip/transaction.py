"""Non-INVITE client transactions (OPTIONS, REGISTER): UDP with RFC 3261 timers, TCP and TLS.

UDP follows the non-INVITE client transaction of RFC 3261 §17.1.2: the
request is sent, Timer E retransmits it after T1 (500 ms), doubling up to T2
(4 s), and at T2 intervals once a provisional response has arrived; Timer F
(the probe's timeout) ends the transaction without an answer. Timers are
``loop.call_later`` handles, not sleeping tasks, so ten thousand transactions
in flight cost ten thousand heap entries and nothing more.

After the final response the transaction is forgotten at once instead of
lingering in "Completed" for Timer K: a retransmitted copy of the response
then arrives for an unknown branch and is counted as unmatched, which is
all Timer K would have done with it.

TCP sends once (the transport is reliable, §17.1.2.1 says no Timer E) and
reads framed messages until a final response matching our branch arrives or
Timer F fires.

RTT: a retransmitted request is identical to the first one, so when its
response arrives we cannot tell which copy it answers (the ambiguity Karn's
algorithm avoids for TCP). We measure from the *first* transmission: the
value is never smaller than the true delay, it is the delay a caller's
INVITE would see on the same path, and the ``retransmissions`` count tells a
reader that the sample includes loss recovery.
"""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Callable
from dataclasses import dataclass

from probes.sip.message import SipParseError, SipResponse, frame_stream, parse_response

T1 = 0.5
"""RFC 3261 round-trip estimate: first retransmission interval."""
T2 = 4.0
"""RFC 3261 cap on the retransmission interval for non-INVITE requests."""


def retransmit_offsets(timer_f: float, t1: float = T1, t2: float = T2) -> list[float]:
    """Seconds after the first send at which Timer E retransmits, before Timer F fires.

    With the defaults and a 4 s timeout: [0.5, 1.5, 3.5] — three retransmissions.
    """
    offsets: list[float] = []
    at, interval = t1, t1
    while at < timer_f:
        offsets.append(at)
        interval = min(interval * 2, t2)
        at += interval
    return offsets


class PeerClosedError(ConnectionResetError):
    """The peer closed the TCP connection before sending a final response."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one transaction ended with; ``classify`` turns it into an Observation."""

    response: SipResponse | None = None
    """The final response, when one arrived."""
    rtt: float | None = None
    """Seconds from the first transmission to the final response."""
    retransmissions: int = 0
    elapsed: float = 0.0
    provisional: SipResponse | None = None
    """The last 1xx seen, kept to explain a timeout after "100 Trying"."""
    error: OSError | None = None
    """A transport error (refused, unreachable) that ended the transaction early."""
    ignored: int = 0
    """Messages that arrived for this transaction but could not be used (TCP only)."""


class UdpClientTransaction:
    """One non-INVITE client transaction over UDP.

    The shared endpoint's dispatcher calls ``on_response`` / ``on_error`` for
    messages carrying this transaction's branch; ``send`` puts the request on
    the wire and may raise ``OSError`` for errors that are ours (no route).
    """

    def __init__(
        self,
        send: Callable[[], None],
        timer_f: float,
        t1: float = T1,
        t2: float = T2,
        method: str = "OPTIONS",
    ) -> None:
        self.method = method
        """The request's method: a response matches only with the same CSeq method."""
        self._send = send
        self._timer_f = timer_f
        self._t1 = t1
        self._t2 = t2
        self._loop = asyncio.get_running_loop()
        self._future: asyncio.Future[Outcome] = self._loop.create_future()
        self._started = 0.0
        self._interval = t1
        self._next_send = 0.0
        self._retransmissions = 0
        self._provisional: SipResponse | None = None
        self._timer_e: asyncio.TimerHandle | None = None

    def accepts(self, response: SipResponse) -> bool:
        # The dispatcher found us by branch; RFC 3261 §17.1.3 also wants the CSeq method.
        cseq = response.cseq
        return cseq is not None and cseq[1] == self.method

    async def run(self) -> Outcome:
        loop = self._loop
        self._started = loop.time()
        try:
            self._send()
        except OSError as exc:
            return Outcome(error=exc)
        # Absolute times, so a late callback does not push every later one back.
        self._next_send = self._started + self._t1
        self._timer_e = loop.call_at(self._next_send, self._fire_timer_e)
        timer_f = loop.call_at(self._started + self._timer_f, self._fire_timer_f)
        try:
            return await self._future
        finally:
            timer_f.cancel()
            if self._timer_e is not None:
                self._timer_e.cancel()

    def on_response(self, response: SipResponse) -> None:
        if self._future.done():
            return
        if response.status < 200:
            # Proceeding: keep retransmitting, now every T2 (§17.1.2.2).
            self._provisional = response
            return
        self._future.set_result(
            Outcome(
                response=response,
                rtt=self._loop.time() - self._started,
                retransmissions=self._retransmissions,
                elapsed=self._loop.time() - self._started,
                provisional=self._provisional,
            )
        )

    def on_error(self, error: OSError) -> None:
        if not self._future.done():
            self._future.set_result(self._end(error=error))

    def _end(self, error: OSError | None = None) -> Outcome:
        return Outcome(
            retransmissions=self._retransmissions,
            elapsed=self._loop.time() - self._started,
            provisional=self._provisional,
            error=error,
        )

    def _fire_timer_e(self) -> None:
        if self._future.done():
            return
        try:
            self._send()
        except OSError as exc:
            self._future.set_result(self._end(error=exc))
            return
        self._retransmissions += 1
        self._interval = self._t2 if self._provisional else min(self._interval * 2, self._t2)
        self._next_send += self._interval
        self._timer_e = self._loop.call_at(self._next_send, self._fire_timer_e)

    def _fire_timer_f(self) -> None:
        if not self._future.done():
            self._future.set_result(self._end())


async def tcp_transaction(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    request: bytes,
    branch: str,
    timer_f: float,
    method: str = "OPTIONS",
    buffer: bytearray | None = None,
) -> Outcome:
    """Send ``request`` on an open connection and read until the matching final response.

    ``buffer`` keeps bytes read past the final response for the next
    transaction on the same connection (REGISTER, then REGISTER with credentials).

    Messages that do not parse, or belong to another transaction, are counted
    and skipped; a message too broken to frame ends the read with a timeout
    rather than a crash.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + timer_f
    provisional: SipResponse | None = None
    ignored = 0
    if buffer is None:
        buffer = bytearray()
    try:
        writer.write(request)
        await writer.drain()
    except OSError as exc:
        return Outcome(error=exc, elapsed=loop.time() - started)
    while True:
        try:
            message = frame_stream(buffer)
        except SipParseError:
            # Content-Length is garbage: we cannot find the next message boundary.
            ignored += 1
            buffer.clear()
            message = None
        if message is not None:
            try:
                response = parse_response(message)
            except SipParseError:
                ignored += 1
                continue
            if not response.matches(branch, method):
                ignored += 1
                continue
            if response.status < 200:
                provisional = response
                continue
            now = loop.time()
            return Outcome(
                response=response,
                rtt=now - started,
                elapsed=now - started,
                provisional=provisional,
                ignored=ignored,
            )
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            chunk = await asyncio.wait_for(reader.read(65536), remaining)
        except TimeoutError:
            break
        except OSError as exc:
            return Outcome(error=exc, elapsed=loop.time() - started, provisional=provisional)
        if not chunk:
            return Outcome(
                error=PeerClosedError(
                    errno.ECONNRESET, "the peer closed the connection without answering"
                ),
                elapsed=loop.time() - started,
                provisional=provisional,
                ignored=ignored,
            )
        buffer += chunk
    return Outcome(elapsed=loop.time() - started, provisional=provisional, ignored=ignored)
