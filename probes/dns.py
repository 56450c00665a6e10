"""``dns`` probe: does a DNS server answer a query, how fast, and with what?

One query per poll (A, AAAA, CNAME, MX, SRV or TXT) to a configured server or
to the system's resolvers (``/etc/resolv.conf``), over UDP with a retry over
TCP when the answer is truncated. The answer can be required to contain, or
to equal, given values. NXDOMAIN, SERVFAIL, REFUSED, an empty answer and a
timeout are failures with a sentence. dnspython does the wire format; it is
imported by the functions that use it, not with the model, so an engine
without dns targets does not carry it (~2-3 MB in the engine; memory at
10,000 targets, bench/RESULTS.md).
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Literal

from pydantic import Field, field_validator, model_validator

from core.config import Duration, FieldValueError, TargetBase
from core.errors import describe_os_error
from core.net.address import split_host_port
from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext

if TYPE_CHECKING:
    import dns.message

RecordType = Literal["A", "AAAA", "CNAME", "MX", "SRV", "TXT"]
SHOWN_ANSWERS = 5
"""At most this many answers are listed in the detail text."""

_RCODE_SENTENCES = {
    "NXDOMAIN": "{name} does not exist (NXDOMAIN)",
    "SERVFAIL": "the server could not resolve {name} (SERVFAIL)",
    "REFUSED": "the server refused to answer for {name} (REFUSED)",
}


def parse_server(value: str) -> tuple[str, int]:
    """``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::53`` or ``[2001:db8::53]:5353``."""
    try:
        return str(ipaddress.ip_address(value)), 53
    except ValueError:
        pass
    try:
        host, port = split_host_port(value)
        return str(ipaddress.ip_address(host)), port
    except ValueError:
        raise ValueError(
            "must be an IP address with an optional port: 192.0.2.53, 192.0.2.53:5353, "
            "[2001:db8::53]:5353"
        ) from None


def _name_text(value: str) -> str:
    return value.rstrip(".").lower()


def normalize(record_type: str, value: str) -> str:
    """One answer or expected value in the form answers are compared and shown in.

    Raises ValueError when an expected value cannot be such a record.
    """
    if record_type in ("A", "AAAA"):
        family = "IPv4" if record_type == "A" else "IPv6"
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            raise ValueError(f"{value!r} is not an {family} address") from None
        if (address.version == 4) != (record_type == "A"):
            raise ValueError(f"{value!r} is not an {family} address")
        return str(address)
    if record_type == "CNAME":
        return _name_text(value.strip())
    if record_type in ("MX", "SRV"):
        parts = value.split()
        numbers = 1 if record_type == "MX" else 3
        if len(parts) != numbers + 1 or not all(p.isdigit() for p in parts[:numbers]):
            shape = "10 mail.example.com" if record_type == "MX" else "10 5 5060 sip.example.com"
            raise ValueError(f"{value!r} is not an {record_type} answer like {shape!r}")
        return " ".join([*parts[:numbers], _name_text(parts[numbers])])
    return value  # TXT: compared exactly


class DnsTarget(TargetBase):
    kind: Literal["dns"]
    query: str
    """The name to look up, fully qualified (``crm.example.com``); search domains are not applied."""
    record_type: RecordType = "A"
    """A, AAAA, CNAME, MX, SRV or TXT."""
    server: str | None = None
    """IP address (and port) of the DNS server to ask; default: the system's resolvers."""
    expect_contains: list[str] = Field(default_factory=list)
    """Values the answer must include (each of them; others may be there too)."""
    expect_equals: list[str] | None = None
    """The answer must be exactly these values, in any order."""
    warn_answer_time: Duration | None = None
    """Answers slower than this make the observation ``warn``."""

    @field_validator("query")
    @classmethod
    def _query(cls, value: str) -> str:
        import dns.exception
        import dns.name

        try:
            dns.name.from_text(value)
        except dns.exception.DNSException as exc:
            raise ValueError(f"not a valid DNS name ({exc})") from None
        return value

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None:
            parse_server(value)
        return value

    @model_validator(mode="after")
    def _expectations(self) -> DnsTarget:
        if self.expect_contains and self.expect_equals is not None:
            raise FieldValueError(
                "expect_equals", "give expect_contains or expect_equals, not both"
            )
        for key in ("expect_contains", "expect_equals"):
            for value in getattr(self, key) or ():
                try:
                    normalize(self.record_type, value)
                except ValueError as exc:
                    raise FieldValueError(key, str(exc)) from None
        return self


def answers_of(response: dns.message.Message, record_type: str) -> list[str]:
    """Records of the asked type in the answer section (after any CNAME chain), normalized."""
    import dns.rdatatype

    rdtype = dns.rdatatype.from_text(record_type)
    found: list[str] = []
    for rrset in response.answer:
        if rrset.rdtype != rdtype:
            continue
        for rdata in rrset:
            if record_type == "TXT":
                text = b"".join(rdata.strings).decode("utf-8", errors="replace")
            else:
                text = rdata.to_text()
            found.append(normalize(record_type, text))
    return sorted(found)  # servers rotate record order; a stable order reads better


def expectation_problem(target: DnsTarget, answers: list[str]) -> str | None:
    """Why the answer is not the expected one, or None."""
    got = ", ".join(answers) or "nothing"
    if target.expect_contains:
        missing = [
            v for v in target.expect_contains if normalize(target.record_type, v) not in answers
        ]
        if missing:
            return f"the answer lacks {', '.join(missing)} (got {got})"
    if target.expect_equals is not None:
        expected = sorted({normalize(target.record_type, v) for v in target.expect_equals})
        if sorted(set(answers)) != expected:
            return f"the answer is {got}, expected exactly {', '.join(expected) or 'nothing'}"
    return None


def system_servers() -> list[tuple[str, int]]:
    """The nameservers of /etc/resolv.conf (read each poll: it changes under DHCP/VPNs)."""
    import dns.resolver

    try:
        resolver = dns.resolver.Resolver(configure=True)
    except dns.resolver.NoResolverConfiguration:
        return []
    return [(str(ns), resolver.port) for ns in resolver.nameservers]


def _where(server: tuple[str, int]) -> str:
    host, port = server
    host = f"[{host}]" if ":" in host else host
    return host if port == 53 else f"{host}:{port}"


def _summary(answers: list[str], record_type: str) -> str:
    shown = ", ".join(answers[:SHOWN_ANSWERS])
    more = f" and {len(answers) - SHOWN_ANSWERS} more" if len(answers) > SHOWN_ANSWERS else ""
    noun = "record" if len(answers) == 1 else "records"
    return f"{len(answers)} {record_type} {noun}: {shown}{more}"


def judge(
    target: DnsTarget, response: dns.message.Message, server: tuple[str, int], elapsed: float
) -> Observation:
    """Pure: the observation for a response that arrived."""
    import dns.rcode

    answers = answers_of(response, target.record_type)
    point = MetricPoint("dns", {"answer_ms": round(elapsed * 1000, 3), "answers": len(answers)})
    timing = f"in {elapsed * 1000:.1f} ms from {_where(server)}"
    rcode = response.rcode()
    name = _name_text(target.query)
    if rcode != dns.rcode.NOERROR:
        text = dns.rcode.to_text(rcode)
        sentence = _RCODE_SENTENCES.get(text, "the server answered {rcode} for {name}").format(
            name=name, rcode=text
        )
        return Observation.fail(f"{sentence} {timing}", ErrorClass.RESPONSE, (point,), elapsed)
    if not answers:
        return Observation.fail(
            f"{name} has no {target.record_type} records {timing}",
            ErrorClass.RESPONSE,
            (point,),
            elapsed,
        )
    summary = f"{_summary(answers, target.record_type)} {timing}"
    if (problem := expectation_problem(target, answers)) is not None:
        return Observation.fail(f"{problem}, {timing}", ErrorClass.RESPONSE, (point,), elapsed)
    if target.warn_answer_time is not None and elapsed > target.warn_answer_time:
        limit_ms = target.warn_answer_time * 1000
        detail = f"{summary} (slower than {limit_ms:g} ms)"
        return Observation(Status.WARN, detail, (point,), elapsed, ErrorClass.THRESHOLD)
    return Observation.ok(summary, (point,), elapsed)


async def check(target: DnsTarget, ctx: ProbeContext) -> Observation:
    import dns.asyncquery
    import dns.exception
    import dns.message
    import dns.name

    servers = [parse_server(target.server)] if target.server else system_servers()
    if not servers:
        return Observation.fail(
            "no DNS server configured and none in /etc/resolv.conf", ErrorClass.RESOLVE
        )
    query = dns.message.make_query(dns.name.from_text(target.query), target.record_type)
    deadline = time.monotonic() + ctx.timeout
    failures: list[tuple[str, ErrorClass]] = []
    # Like a stub resolver: the next server is asked only when one does not answer.
    for index, server in enumerate(servers):
        budget = (deadline - time.monotonic()) / (len(servers) - index)
        started = time.perf_counter()
        try:
            response, _ = await dns.asyncquery.udp_with_fallback(
                query, server[0], timeout=max(budget, 0.01), port=server[1]
            )
        except dns.exception.Timeout:
            failures.append(
                (
                    f"no answer from {_where(server)} within {round(budget, 2):g}s",
                    ErrorClass.TIMEOUT,
                )
            )
            continue
        except OSError as exc:
            detail, error_class = describe_os_error(exc)
            failures.append((f"{detail} at {_where(server)}", error_class))
            continue
        except dns.exception.DNSException as exc:
            failures.append(
                (
                    f"{_where(server)} sent an answer that is not valid DNS ({exc})",
                    ErrorClass.PROTOCOL,
                )
            )
            continue
        return judge(target, response, server, time.perf_counter() - started)
    detail = "; ".join(sentence for sentence, _ in failures)
    return Observation.fail(detail, failures[-1][1])
