"""SMTP peers for the email channel: real ``aiosmtpd`` servers on loopback, each in its own thread.

``smtp_server(handler, ...)`` starts one on a free port, optionally with
STARTTLS (``tls_context``), implicit TLS (``ssl_context``) and required
logins (``users``), and stops it at the end. The handlers decide how it
behaves:

- ``Accepting``: takes every message and keeps what it received (the raw
  message, the envelope, whether the session was TLS and who logged in);
- ``Refusing``: answers RCPT TO with the reply it is given (a 550 or a 451);
- ``Hanging``: takes the message and never answers the end of DATA (the
  controller's stop cancels the wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.peers import free_port

QUEUED = "250 2.0.0 Ok: queued as DW0001"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    tls: bool
    """The session had switched to TLS (STARTTLS) before the message."""
    login: str | None
    """Who logged in (AUTH), or None."""

    @property
    def message(self) -> EmailMessage:
        parsed = BytesParser(policy=policy.default).parsebytes(self.raw)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class Accepting:
    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        self.received.append(
            Received(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                envelope.original_content or envelope.content,
                session.ssl is not None,
                login,
            )
        )
        return QUEUED


@dataclass
class Refusing:
    reply: str = "550 5.1.1 <nobody@example.cn>: Recipient address rejected: no such user"
    asked: int = 0

    async def handle_RCPT(  # noqa: N802
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self.asked += 1
        return self.reply


@dataclass
class Hanging:
    reached_data: int = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.reached_data += 1
        await asyncio.sleep(3600)  # cancelled by the controller's stop
        return QUEUED


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int


def server_tls(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


@contextlib.contextmanager
def smtp_server(
    handler: Any,
    *,
    tls_context: ssl.SSLContext | None = None,
    ssl_context: ssl.SSLContext | None = None,
    users: dict[str, str] | None = None,
    port: int | None = None,
) -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 (STARTTLS with ``tls_context``, implicit TLS with
    ``ssl_context``; logins required with ``users``), stopped at the end."""

    def authenticator(
        server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and users is not None
            and users.get(data.login.decode()) == data.password.decode()
        )
        # handled=False: aiosmtpd answers 535 itself (the default, True, means "I answered").
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    port = port or free_port()
    kwargs: dict[str, Any] = {}
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=True)
    if users is not None:
        # aiosmtpd knows only its own STARTTLS as TLS; behind implicit TLS it must be told.
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=ssl_context is None,
        )
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, ssl_context=ssl_context, **kwargs
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port)
    finally:
        controller.stop()
