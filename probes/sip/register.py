"""REGISTER probe: can we authenticate to the registrar, and who is registered?

Default (query): one REGISTER *without* Contact (RFC 3261 §10.2.3). The
registrar authenticates us (digest, see ``digest``) and answers 200 with the
account's current bindings, changing nothing — so a probe can never take
over or drop the PBX's own registration. With ``register_cycle: true`` (a
dedicated test account only) the probe registers its own Contact, checks that
the registrar lists it, and removes it again with ``expires=0``.

The password goes only into the digest; it never appears in a detail, a
metric or a log line.
"""

from __future__ import annotations

import asyncio
import secrets

from core.observation import ErrorClass, MetricPoint, Observation, Status
from probes.base import ProbeContext
from probes.sip.classify import classify, metric_point
from probes.sip.config import RegisterOptions, SipTarget
from probes.sip.digest import Challenge, DigestError, authorization, choose_challenge
from probes.sip.message import (
    SipResponse,
    build_request,
    contact_uri,
    format_host,
    header_params,
    name_addr_uri,
    parse_uri,
)
from probes.sip.session import Session
from probes.sip.transaction import Outcome

MEASUREMENT = "sip_register"
MAX_CHALLENGES = 3
"""A stale nonce may be re-challenged once or twice; more is a loop."""


class AuthFailed(Exception):
    """The registrar did not accept our credentials; the message is the detail sentence."""

    def __init__(self, detail: str, outcome: Outcome | None = None) -> None:
        super().__init__(detail)
        self.outcome = outcome or Outcome()
        """The last transaction (its 401/407 gives the ``sip`` point its status code)."""


def registrar_uri(target_uri: str) -> str:
    """Request-URI of a REGISTER: the target URI without its user part (RFC 3261 §10.2)."""
    uri = parse_uri(target_uri)
    text = f"{uri.scheme}:{format_host(uri.host)}"
    if uri.port is not None:
        text += f":{uri.port}"
    for name, value in uri.params.items():
        text += f";{name}={value}" if value else f";{name}"
    return text


def binding_expiries(response: SipResponse) -> list[tuple[str, int]]:
    """(contact URI, seconds left) for every binding a 200 to REGISTER lists."""
    default = response.header("expires")
    bindings: list[tuple[str, int]] = []
    for value in response.header_values("contact"):
        if value.strip() == "*":
            continue
        expires = header_params(value).get("expires", default or "")
        bindings.append((name_addr_uri(value), int(expires) if expires.isdigit() else 0))
    return bindings


def _same_contact(a: str, b: str) -> bool:
    try:
        ua, ub = parse_uri(a), parse_uri(b)
    except ValueError:
        return a == b
    return (ua.user, ua.host, ua.effective_port) == (ub.user, ub.host, ub.effective_port)


class Registration:
    """One run's REGISTER dialogue with the registrar: same Call-ID, CSeq counting up."""

    def __init__(
        self, target: SipTarget, options: RegisterOptions, session: Session, deadline: float
    ) -> None:
        self.target = target
        self.options = options
        self.session = session
        self.deadline = deadline
        self.uri = registrar_uri(target.uri)
        parsed = parse_uri(target.uri)
        scheme = "sips" if parsed.scheme == "sips" else "sip"
        self.aor = f"{scheme}:{options.username}@{format_host(options.domain or parsed.host)}"
        self.call_id = f"{secrets.token_hex(16)}@{format_host(session.local_host)}"
        self.from_tag = secrets.token_hex(8)
        self.cseq = 0
        self.auth_rounds = 0
        self.retransmissions = 0
        self.contact = contact_uri(
            self.uri,
            options.username,
            format_host(session.local_host),
            session.local_port,
            session.transport,
        )

    async def send(self, contact_header: str | None) -> Outcome:
        """REGISTER, answering digest challenges; the final Outcome, or AuthFailed."""
        loop = asyncio.get_running_loop()
        credentials: str | None = None
        answered: Challenge | None = None
        for _ in range(MAX_CHALLENGES + 1):
            self.cseq += 1
            headers = []
            if contact_header is not None:
                headers.append(f"Contact: {contact_header}")
            if credentials is not None:
                headers.append(credentials)
            request = build_request(
                method="REGISTER",
                request_uri=self.uri,
                transport=self.session.transport,
                local_host=self.session.local_host,
                local_port=self.session.local_port,
                from_user=self.options.username,
                from_domain="",
                from_uri=self.aor,
                to_uri=self.aor,
                user_agent=self.target.user_agent,
                cseq=self.cseq,
                call_id=self.call_id,
                from_tag=self.from_tag,
                contact=False,
                headers=headers,
            )
            remaining = max(self.deadline - loop.time(), 0.001)
            outcome = await self.session.transact(request, remaining)
            self.retransmissions += outcome.retransmissions
            response = outcome.response
            if response is None or response.status not in (401, 407):
                return outcome
            header = "www-authenticate" if response.status == 401 else "proxy-authenticate"
            try:
                challenge = choose_challenge(
                    list(response.headers.get(header, ())), self.options.realm
                )
            except DigestError as exc:
                raise AuthFailed(
                    f"cannot authenticate {self.options.username}: {exc}", outcome
                ) from None
            if answered is not None and not challenge.stale:
                raise AuthFailed(
                    f"the registrar rejected the credentials of {self.options.username}: it "
                    f"answered {response.status} again after our digest answer "
                    "(a 401 loop: wrong password or user name)",
                    outcome,
                )
            answered = challenge
            self.auth_rounds += 1
            name = "Authorization" if response.status == 401 else "Proxy-Authorization"
            value = authorization(
                challenge,
                method="REGISTER",
                uri=self.uri,
                username=self.options.auth_username or self.options.username,
                password=str(self.options.password),
            )
            credentials = f"{name}: {value}"
        raise AuthFailed(
            f"the registrar kept answering with stale nonces for {self.options.username}"
        )


def _point(registered: bool, bindings: list[tuple[str, int]], rounds: int) -> MetricPoint:
    return MetricPoint(
        MEASUREMENT,
        {
            "registered": 1 if registered else 0,
            "bindings": len(bindings),
            "expires_s": min((e for _, e in bindings), default=0),
            "auth_rounds": rounds,
        },
    )


def _describe(bindings: list[tuple[str, int]]) -> str:
    shown = ", ".join(f"{uri} expires in {expires} s" for uri, expires in bindings[:3])
    more = f" and {len(bindings) - 3} more" if len(bindings) > 3 else ""
    word = "binding" if len(bindings) == 1 else "bindings"
    return f"{len(bindings)} {word}: {shown}{more}"


async def register(
    target: SipTarget, ctx: ProbeContext, session: Session, timer_f: float, peer: str
) -> Observation:
    """Query the account's bindings (default) or run a register/unregister cycle."""
    options = target.registration
    assert options is not None
    loop = asyncio.get_running_loop()
    started = loop.time()
    registration = Registration(target, options, session, started + timer_f)
    user = options.username
    try:
        if options.register_cycle:
            outcome = await registration.send(f"<{registration.contact}>;expires={options.expires}")
        else:
            outcome = await registration.send(None)
    except AuthFailed as exc:
        return Observation.fail(
            str(exc),
            ErrorClass.AUTH,
            (metric_point(exc.outcome, up=True), _point(False, [], registration.auth_rounds)),
            latency=exc.outcome.rtt,
        )
    response = outcome.response
    if response is None or not 200 <= response.status < 300:
        failure = _failure(outcome, session.transport, timer_f, target, peer, user)
        return Observation(
            failure.status,
            failure.detail,
            (*failure.metrics, _point(False, [], registration.auth_rounds)),
            failure.latency,
            failure.error_class,
        )
    counted = Outcome(
        response=response,
        rtt=outcome.rtt,
        retransmissions=registration.retransmissions,
        elapsed=outcome.elapsed,
    )
    bindings = binding_expiries(response)
    rounds = registration.auth_rounds
    latency = outcome.rtt
    if not options.register_cycle:
        if bindings:
            detail = f"{user} authenticated; registered with {_describe(bindings)}"
            status = Status.OK
        else:
            detail = f"{user} authenticated; no binding is registered for it"
            status = Status.WARN if options.warn_no_binding else Status.OK
        return Observation(
            status,
            detail,
            (metric_point(counted, up=True), _point(bool(bindings), bindings, rounds)),
            latency,
            ErrorClass.RESPONSE if status is Status.WARN else None,
        )
    ours = [(uri, e) for uri, e in bindings if _same_contact(uri, registration.contact)]
    # Always try to remove our binding, even if the registrar did not list it.
    try:
        removal = await registration.send(f"<{registration.contact}>;expires=0")
    except AuthFailed as exc:
        removal = None
        removal_problem = str(exc)
    else:
        removal_problem = ""
        if removal.response is None or not 200 <= removal.response.status < 300:
            removal_problem = classify(
                removal,
                transport=session.transport,
                timeout=timer_f,
                warn_codes=(),
                method="REGISTER",
            ).detail
    points = (metric_point(counted, up=True), _point(bool(ours), ours or bindings, rounds))
    if not ours:
        return Observation(
            Status.WARN,
            f"{user} registered, but the registrar's answer did not list our contact "
            f"{registration.contact}",
            points,
            latency,
            ErrorClass.PROTOCOL,
        )
    if removal_problem:
        return Observation(
            Status.WARN,
            f"{user} registered for {ours[0][1]} s, but unregistering failed: {removal_problem}",
            points,
            latency,
            ErrorClass.RESPONSE,
        )
    assert removal is not None
    return Observation(
        Status.OK,
        f"{user} registered {registration.contact} for {ours[0][1]} s and unregistered it again",
        points,
        latency,
    )


def _failure(
    outcome: Outcome, transport: str, timer_f: float, target: SipTarget, peer: str, user: str
) -> Observation:
    response = outcome.response
    if response is not None and response.status == 403:
        return Observation.fail(
            f"the registrar refused {user}: {response.status} {response.reason} "
            "(account disabled, wrong user name, or not allowed from this address)",
            ErrorClass.AUTH,
            (metric_point(outcome, up=True),),
            latency=outcome.rtt,
        )
    return classify(
        outcome, transport=transport, timeout=timer_f, warn_codes=(), peer=peer, method="REGISTER"
    )
