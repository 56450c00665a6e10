"""The ``email`` channel: one message handed to an SMTP server, with text and HTML parts.

```yaml
channels:
  - id: mail
    kind: email
    from: "NOC <noc@example.cn>"
    smtp: {host: smtp.example.cn, port: 465, tls: implicit, username: noc, password: "${file:/etc/dialwatch/secrets/smtp}"}
```

One SMTP dialog per message (stdlib ``smtplib``): connect (``tls: implicit``:
TLS from the first byte; ``starttls``: upgrade before anything is sent, and
refuse a server that does not offer it; ``none``: plain, for a relay on this
machine or a trusted segment), EHLO, AUTH when a username is configured,
MAIL FROM, RCPT TO, DATA. The whole dialog is bounded by ``smtp.timeout``:
before each read or write the socket is given what is left of it.

The ``Message-ID`` is derived from the delivery id, so a resend of the same
delivery (after a timeout, or after a crash mid-send) carries the same id and
the recipient's mail system can show it once.

What the server answers decides what a failure is (RFC 5321 §4.2.1): a 5xx
reply is permanent, a 4xx reply, a timeout, a refused or broken connection is
transient. A server that cannot do what the config asks (no STARTTLS, no
AUTH, a certificate that does not verify) fails permanently: a resend would
meet the same server.
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
import ssl
import threading
import time
from email import policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.config import Bool, FieldValueError, StrictModel, Timeout
from core.errors import describe_os_error
from core.net.tls import check_ca_file, client_context
from core.observation import ErrorClass
from notify.channels.base import ChannelConfig, DeliveryError, Message, Receipt, shortened

DEFAULT_PORTS = {"implicit": 465, "starttls": 587, "none": 25}


class SmtpConfig(StrictModel):
    """The SMTP server mail is handed to: the site's relay or a provider's submission port."""

    host: Annotated[str, Field(min_length=1)]
    """Name or address of the server."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """TCP port; default: 465 for ``tls: implicit``, 587 for ``starttls``, 25 for ``none``."""
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    """``starttls``: upgrade the connection (refused if the server does not offer it);
    ``implicit``: TLS from the start (port 465); ``none``: plain text, only for a relay
    on this machine or a trusted segment (no password may be sent this way)."""
    username: str | None = None
    """Log in as this user (AUTH) before sending; default: no login."""
    password: str | None = None
    """The user's password; write it as ``${file:/path}`` or ``${ENV}``. Never logged."""
    timeout: Timeout = 10.0
    """Longest one message may take, from connecting to the server's answer to DATA."""
    verify_tls: Bool = True
    """Check the server's certificate and name; turn off only for a lab server."""
    ca_file: str | None = None
    """PEM file of the CA that signed the server's certificate (default: the system's)."""
    helo: str | None = None
    """The name this appliance gives in EHLO; default: the machine's host name."""

    @field_validator("ca_file")
    @classmethod
    def _ca_file(cls, value: str | None) -> str | None:
        return check_ca_file(value)

    @model_validator(mode="after")
    def _auth(self) -> SmtpConfig:
        if self.password is not None and self.username is None:
            raise FieldValueError("password", "a password needs a username")
        if self.username is not None and self.password is None:
            raise FieldValueError("password", "required when a username is given")
        if self.username is not None and self.tls == "none":
            raise FieldValueError(
                "username",
                "a login over tls: none would send the password in clear text; "
                "use tls: starttls or tls: implicit",
            )
        return self

    @property
    def server(self) -> str:
        """``host:port`` for messages."""
        return f"{self.host}:{self.port or DEFAULT_PORTS[self.tls]}"


def _mailbox(value: str) -> str:
    """``NOC <noc@example.cn>`` or ``noc@example.cn``: one address, one line."""
    if "\r" in value or "\n" in value:
        raise ValueError("must be one line")
    _, address = parseaddr(value)
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        raise ValueError("must be an e-mail address, like NOC <noc@example.cn>")
    return value


class EmailChannelConfig(ChannelConfig):
    """E-mail through an SMTP server: a text part and, when the message has one, an HTML part."""

    model_config = ConfigDict(extra="forbid", frozen=True, serialize_by_alias=True)

    kind: Literal["email"]
    smtp: SmtpConfig
    """The server that takes the mail."""
    from_: str = Field(alias="from")
    """The sender: ``NOC <noc@example.cn>`` (the server may require its own address)."""
    reply_to: str | None = None
    """Where replies go, when not to ``from``."""
    message_id_domain: str | None = None
    """The part after ``@`` in each ``Message-ID``; default: the domain of ``from``."""

    @field_validator("from_", "reply_to")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        return None if value is None else _mailbox(value)

    @property
    def sender(self) -> str:
        """The envelope sender (MAIL FROM): the address in ``from``."""
        return parseaddr(self.from_)[1]


def message_id(delivery_id: str, domain: str) -> str:
    """The ``Message-ID`` of a delivery: the same for every attempt, unique per delivery.

    A digest rather than the id itself, so any id makes a valid ``Message-ID``
    and the header does not show how deliveries are numbered.
    """
    digest = hashlib.sha256(delivery_id.encode()).hexdigest()[:32]
    return f"<dw.{digest}@{domain}>"


def build_message(config: EmailChannelConfig, message: Message) -> EmailMessage:
    """The MIME message: multipart/alternative (text, then HTML) or text alone.

    Raises DeliveryError (permanent) when the recipient's address cannot be written.
    """
    if not message.email:
        raise DeliveryError("the recipient has no e-mail address", permanent=True)
    try:
        recipient = Address(display_name=message.name or "", addr_spec=message.email)
        mail = _headers(config, message, recipient)
    except (ValueError, IndexError, MessageError) as exc:
        raise DeliveryError(
            f"cannot address a message to {message.email!r}: {exc}", permanent=True
        ) from None
    mail.set_content(message.text, charset="utf-8")
    if message.html is not None:
        mail.add_alternative(message.html, subtype="html", charset="utf-8")
    # After the content: set_content() clears every Content-* header set before it.
    mail["Content-Language"] = message.language
    return mail


def _headers(config: EmailChannelConfig, message: Message, recipient: Address) -> EmailMessage:
    mail = EmailMessage(policy=policy.SMTP)
    # One line: a line break in a subject would end the header (and could start another).
    mail["Subject"] = " ".join(message.subject.split())
    mail["From"] = config.from_
    mail["To"] = recipient
    if config.reply_to:
        mail["Reply-To"] = config.reply_to
    mail["Date"] = formatdate(usegmt=True)
    domain = config.message_id_domain or config.sender.rpartition("@")[2]
    mail["Message-ID"] = message_id(message.delivery_id, domain)
    # RFC 3834: an automatic message; vacation responders must not answer it.
    mail["Auto-Submitted"] = "auto-generated"
    unsubscribe = message.data.get("unsubscribe_url")
    if isinstance(unsubscribe, str) and unsubscribe.startswith(("https://", "http://")):
        # RFC 2369 and RFC 8058: mail clients show an unsubscribe button that POSTs
        # "List-Unsubscribe=One-Click" to the link, with no page in between.
        mail["List-Unsubscribe"] = f"<{unsubscribe}>"
        mail["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    mail["X-Dialwatch-Delivery"] = message.delivery_id
    return mail


IDLE_FOR = 30.0
"""Seconds a logged-in session is kept for the next message (servers drop idle ones
after a minute or more)."""
MAX_IDLE = 16


class _Deadline:
    """Gives the socket what is left of one overall deadline before every read and write.

    ``smtplib`` has only a per-operation timeout: a server answering each
    command just before it would keep a message busy for many timeouts.
    """

    deadline: float = 0.0
    sock: socket.socket | None

    def _left(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        return left

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(host, port, min(timeout, self._left()))  # type: ignore[misc]

    def send(self, s: Any) -> None:
        if self.sock is not None:
            self.sock.settimeout(self._left())
        super().send(s)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        if self.sock is not None:
            self.sock.settimeout(self._left())
        return super().getreply()  # type: ignore[misc]


class _SMTP(_Deadline, smtplib.SMTP):
    pass


class _SMTPS(_Deadline, smtplib.SMTP_SSL):
    pass


class EmailChannel:
    """Sends each message in its own SMTP dialog (no pooled connections to go stale)."""

    def __init__(self, config: EmailChannelConfig) -> None:
        self.config = config
        self._context: ssl.SSLContext | None = None
        # Logged-in sessions kept open between messages (a burst of customer notices
        # would otherwise pay a connect, EHLO, STARTTLS and login per message).
        self._idle: list[tuple[float, smtplib.SMTP]] = []
        self._idle_lock = threading.Lock()

    def _take(self) -> smtplib.SMTP | None:
        now = time.monotonic()
        with self._idle_lock:
            while self._idle:
                since, client = self._idle.pop()
                if now - since < IDLE_FOR:
                    return client
                _close(client)
        return None

    def _give(self, client: smtplib.SMTP) -> None:
        with self._idle_lock:
            if len(self._idle) < MAX_IDLE:
                self._idle.append((time.monotonic(), client))
                return
        _close(client)

    def __repr__(self) -> str:
        return f"EmailChannel({self.config.id!r}, {self.config.smtp.server})"

    def _tls(self) -> ssl.SSLContext:
        if self._context is None:
            smtp = self.config.smtp
            try:
                self._context = client_context(smtp.verify_tls, smtp.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise DeliveryError(
                    f"cannot use the CA file {smtp.ca_file}: {exc}",
                    permanent=True,
                    error_class=ErrorClass.TLS,
                ) from None
        return self._context

    def send(self, message: Message) -> Receipt:
        mail = build_message(self.config, message)
        smtp = self.config.smtp
        recipient = str(message.email)
        needs_utf8 = not (self.config.sender + recipient).isascii()
        try:  # before connecting: a message that cannot be written is never half sent
            body = mail.as_bytes(policy=policy.SMTPUTF8 if needs_utf8 else policy.SMTP)
        except (ValueError, UnicodeError, MessageError) as exc:
            raise DeliveryError(
                f"cannot write the message to {recipient}: {exc}", permanent=True
            ) from None
        client = self._take()
        if client is not None:
            client.deadline = time.monotonic() + smtp.timeout  # type: ignore[attr-defined]
            try:
                return self._transaction(client, mail, body, recipient, needs_utf8, reused=True)
            except _Stale:
                client = None  # the server closed the idle session: a fresh one below
        return self._transaction(None, mail, body, recipient, needs_utf8, reused=False)

    def _transaction(
        self, client: smtplib.SMTP | None, mail: EmailMessage, body: bytes, recipient: str,
        needs_utf8: bool, *, reused: bool,
    ) -> Receipt:  # fmt: skip
        smtp = self.config.smtp
        step = "MAIL FROM" if client is not None else "connect"
        done = False
        try:
            if client is None:
                # Not smtplib's default (socket.getfqdn()): that is a reverse lookup, unbounded.
                helo = smtp.helo or socket.gethostname()
                if smtp.tls == "implicit":
                    client = _SMTPS(local_hostname=helo, context=self._tls())
                else:
                    client = _SMTP(local_hostname=helo)
                client.timeout = smtp.timeout
                # smtplib names the TLS server from the constructor's host only (not connect's).
                client._host = smtp.host
                client.deadline = time.monotonic() + smtp.timeout
                client.connect(smtp.host, smtp.port or DEFAULT_PORTS[smtp.tls])
                step = "EHLO"
                client.ehlo_or_helo_if_needed()
                if smtp.tls == "starttls":
                    step = "STARTTLS"
                    if not client.has_extn("starttls"):
                        raise DeliveryError(
                            f"the SMTP server {smtp.server} does not offer STARTTLS "
                            "(tls: starttls refuses to send in clear text)",
                            permanent=True,
                            error_class=ErrorClass.TLS,
                        )
                    client.starttls(context=self._tls())
                    step = "EHLO"
                    client.ehlo_or_helo_if_needed()
                if smtp.username is not None:
                    step = "AUTH"
                    if not client.has_extn("auth"):
                        raise DeliveryError(
                            f"the SMTP server {smtp.server} offers no login (AUTH); "
                            "remove username, or check the port",
                            permanent=True,
                            error_class=ErrorClass.AUTH,
                        )
                    client.login(smtp.username, smtp.password or "")
            options: list[str] = []
            if needs_utf8:
                if not client.has_extn("smtputf8"):
                    raise DeliveryError(
                        f"the address {recipient} needs SMTPUTF8, which {smtp.server} does not offer",
                        permanent=True,
                        error_class=ErrorClass.RESPONSE,
                    )
                options.append("SMTPUTF8")
            step = "MAIL FROM"
            try:
                reply = client.mail(self.config.sender, options)
            except (smtplib.SMTPServerDisconnected, ConnectionError):
                if reused:
                    raise _Stale() from None
                raise
            if reused and reply[0] != 250:
                # A kept session the server no longer keeps (421, or 503 after it lost the
                # session's EHLO): the answer of a fresh session is the one that counts.
                raise _Stale()
            _expect(reply, (250,), step, smtp.server)
            step = f"RCPT TO <{recipient}>"
            _expect(client.rcpt(recipient), (250, 251), step, smtp.server)
            step = "DATA"
            code, answer = client.data(body)
            text = answer.decode("utf-8", "replace")
            done = True
            return Receipt(str(mail["Message-ID"]), shortened(f"{code} {text}"))
        except (DeliveryError, _Stale):
            raise
        except smtplib.SMTPResponseException as exc:
            raise _refused(exc.smtp_code, exc.smtp_error, step, smtp.server) from None
        except smtplib.SMTPServerDisconnected as exc:
            if isinstance(exc.__context__, TimeoutError) or isinstance(exc, TimeoutError):
                raise _timeout(smtp.server, smtp.timeout, step) from None
            raise DeliveryError(
                f"the SMTP server {smtp.server} closed the connection during {step}",
                permanent=False,
                error_class=ErrorClass.PROTOCOL,
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(
                f"the SMTP server {smtp.server} does not support {step}: {exc}",
                permanent=True,
                error_class=ErrorClass.RESPONSE,
            ) from None
        except smtplib.SMTPException as exc:  # "No suitable authentication method found" ...
            raise DeliveryError(
                f"SMTP with {smtp.server} failed during {step}: {exc}",
                permanent=True,
                error_class=ErrorClass.PROTOCOL,
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise DeliveryError(
                f"TLS with the SMTP server {smtp.server} failed: "
                f"{exc.verify_message or 'certificate not trusted'}",
                permanent=True,
                error_class=ErrorClass.TLS,
            ) from None
        except ssl.SSLError as exc:
            # A handshake that speaks no TLS at all is the config's port or tls mode.
            wrong = "WRONG_VERSION_NUMBER" in str(exc)
            reason = "the server does not speak TLS there" if wrong else str(exc)[:120]
            raise DeliveryError(
                f"TLS with the SMTP server {smtp.server} failed: {reason}",
                permanent=wrong,
                error_class=ErrorClass.TLS,
            ) from None
        except TimeoutError:
            raise _timeout(smtp.server, smtp.timeout, step) from None
        except OSError as exc:
            detail, error_class = describe_os_error(exc)
            raise DeliveryError(
                f"the SMTP server {smtp.server}: {detail}",
                permanent=False,
                error_class=error_class,
            ) from None
        finally:
            if client is not None:
                if done:
                    self._give(client)  # ready for the next MAIL FROM
                else:
                    _close(client)


class _Stale(Exception):
    """A kept session the server closed meanwhile: open a new one and send again."""


def _expect(reply: tuple[int, bytes], codes: tuple[int, ...], step: str, server: str) -> None:
    code, text = reply
    if code not in codes:
        raise _refused(code, text, step, server)


def _refused(code: int, text: bytes | str, step: str, server: str) -> DeliveryError:
    answer = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    answer = shortened(f"{code} {answer}")
    if 400 <= code < 500:
        return DeliveryError(
            f"the SMTP server {server} answered {answer} to {step}; it may take it later",
            permanent=False,
            error_class=ErrorClass.RESPONSE,
        )
    what = "refused the login" if step == "AUTH" else f"refused {step}"
    return DeliveryError(
        f"the SMTP server {server} {what}: {answer}",
        permanent=True,
        error_class=ErrorClass.AUTH if step == "AUTH" else ErrorClass.RESPONSE,
    )


def _timeout(server: str, timeout: float, step: str) -> DeliveryError:
    return DeliveryError(
        f"no answer from the SMTP server {server} within {timeout:g}s (during {step})",
        permanent=False,
        error_class=ErrorClass.TIMEOUT,
    )


def _close(client: smtplib.SMTP) -> None:
    """QUIT while the connection is open (within what is left of the deadline), then close;
    a failure here changes nothing: the message was accepted or refused before."""
    try:
        if client.sock is not None:
            client.quit()
    except (smtplib.SMTPException, OSError):
        pass
    finally:
        client.close()
