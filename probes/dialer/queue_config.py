"""Config models of the dialer's live queue sources: Asterisk AMI and HTTP.

They join ``probes.dialer.config.Source`` (told apart by ``type``). A target
with a queue source judges ``QUEUE_RULES`` thresholds (``calls_waiting``,
``longest_wait``, ``agents_available``, ``calls_per_minute``) instead of the
CDR window's; ``window``, ``min_attempts`` and ``max_trunks`` do not apply.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from core.config import Bool, FieldValueError, StrictModel
from probes.dialer.jsonpath import PathSyntaxError, has_wildcard, parse

QUEUE_FIELDS = (
    "calls_waiting",
    "longest_wait",
    "agents_logged_in",
    "agents_available",
    "agents_on_call",
    "agents_paused",
    "calls_total",
)
"""What a JSON endpoint can give per queue (``calls_waiting`` is required)."""


def _no_line_breaks(value: str, what: str) -> str:
    if any(c in value for c in "\r\n"):
        raise ValueError(f"{what} must not contain a line break")
    return value


class AmiSource(StrictModel):
    """Asterisk's manager interface: ``QueueSummary`` and ``QueueStatus`` each poll."""

    type: Literal["ami"]
    host: str
    """Asterisk's address (``manager.conf`` ``bindaddr``)."""
    port: int = Field(5038, ge=1, le=65535)
    """AMI TCP port (``manager.conf`` ``port``)."""
    username: str
    """The ``[user]`` section in ``manager.conf``; it needs ``read = agent`` (or ``reporting``)."""
    secret: str
    """Its ``secret``; write it as ``${file:…}`` or ``${ENV}``."""
    queues: list[str] = Field(default_factory=list)
    """Only these queues (``queues.conf`` names); empty: every queue Asterisk has."""
    max_queues: int = Field(32, ge=1, le=256)
    """At most this many queues get their own series (busiest first); the rest are ``other``."""

    @field_validator("username", "secret", "host")
    @classmethod
    def _one_line(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be empty")
        return _no_line_breaks(value, "the value")

    @field_validator("queues")
    @classmethod
    def _queue_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name.strip():
                raise ValueError("a queue name must not be empty")
            _no_line_breaks(name, "a queue name")
        return value


class HttpSource(StrictModel):
    """Any dialer endpoint over HTTP(S): JSON picked by paths, or VICIdial's non-agent API."""

    type: Literal["http"]
    url: str
    """``http://`` or ``https://`` only. For ``format: vicidial``, the ``non_agent_api.php`` URL."""
    format: Literal["json", "vicidial"] = "json"
    """``json``: values picked by ``queues``/``queue_name``/``fields`` paths; ``vicidial``: the
    non-agent API's ``in_group_status`` / ``user_group_status`` pipe-delimited lines."""
    username: str | None = None
    """``json``: HTTP basic auth user. ``vicidial``: the API ``user``."""
    password: str | None = None
    """``json``: HTTP basic auth password. ``vicidial``: the API ``pass``. Use ``${file:…}``."""
    token: str | None = None
    """``json``: sent as ``Authorization: Bearer …``. Use ``${file:…}`` or ``${ENV}``."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers (e.g. ``Accept``)."""
    verify_tls: Bool = True
    """Check the server's certificate and name (``https``)."""
    ca_file: str | None = None
    """PEM bundle of CAs to trust instead of the system's."""
    queues: str | None = None
    """``json``: path to the queue objects, e.g. ``data.queues[*]``; unset: the document is one
    queue-less whole and ``fields`` are paths from its root."""
    queue_name: str = "name"
    """``json``: path, inside one queue object, to its name; ``@key`` for the object key when
    ``queues`` ends in ``[*]`` over an object."""
    fields: dict[str, str] = Field(default_factory=dict)
    """``json``: metric -> path inside one queue object (``calls_waiting`` required). Metrics:
    calls_waiting, longest_wait (s), agents_logged_in, agents_available, agents_on_call,
    agents_paused, calls_total (a counter; calls per minute come from its growth)."""
    function: Literal["in_group_status", "user_group_status"] = "in_group_status"
    """``vicidial``: which non-agent API function to call."""
    groups: list[str] = Field(default_factory=list)
    """``vicidial``: in-groups (or user groups) to ask about, one request each; each is a queue."""
    max_queues: int = Field(32, ge=1, le=256)
    """At most this many queues get their own series (busiest first); the rest are ``other``."""
    max_bytes: int = Field(4 * 1024 * 1024, ge=1024)
    """Largest response body read; more is an error."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https"):
            raise ValueError("must be an http:// or https:// URL")
        if not parts.hostname:
            raise ValueError("needs a host, e.g. https://dialer.example/api/queues")
        if parts.username or parts.password:
            raise ValueError("put credentials in username/password or token, not in the URL")
        return value

    @field_validator("queues")
    @classmethod
    def _queues_path(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                steps = parse(value)
            except PathSyntaxError as exc:
                raise ValueError(str(exc)) from None
            if not has_wildcard(steps):
                raise ValueError("must reach several queues with [*], e.g. data.queues[*]")
        return value

    @field_validator("queue_name")
    @classmethod
    def _name_path(cls, value: str) -> str:
        if value != "@key":
            cls._single_path(value)
        return value

    @field_validator("fields")
    @classmethod
    def _fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = sorted(set(value) - set(QUEUE_FIELDS))
        if unknown:
            raise ValueError(
                f"unknown metric {', '.join(repr(n) for n in unknown)}; "
                f"allowed: {', '.join(QUEUE_FIELDS)}"
            )
        for name, path in value.items():
            try:
                cls._single_path(path)
            except ValueError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return value

    @staticmethod
    def _single_path(path: str) -> None:
        try:
            steps = parse(path)
        except PathSyntaxError as exc:
            raise ValueError(str(exc)) from None
        if has_wildcard(steps):
            raise ValueError(f"{path!r} must reach one value ([*] belongs in queues)")

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            _no_line_breaks(f"{key}{text}", "a header")
            if key.lower() == "authorization":
                raise ValueError("set Authorization through username/password or token")
        return value

    @model_validator(mode="after")
    def _per_format(self) -> HttpSource:
        if self.format == "json":
            if "calls_waiting" not in self.fields:
                raise FieldValueError("fields", "needs at least calls_waiting: <path>")
            if self.groups:
                raise FieldValueError("groups", "only for format: vicidial")
            if self.queue_name == "@key" and self.queues is None:
                raise FieldValueError("queue_name", "@key needs queues: <path ending in [*]>")
            if self.token is not None and self.username is not None:
                raise FieldValueError("token", "give either token or username/password")
        else:
            if not self.groups:
                raise FieldValueError("groups", "name the in-groups (or user groups) to watch")
            if self.username is None or self.password is None:
                raise FieldValueError("username", "the non-agent API needs username and password")
            if self.fields or self.queues is not None or self.token is not None:
                raise FieldValueError(
                    "fields", "fields, queues and token are only for format: json"
                )
        if (self.username is None) != (self.password is None):
            raise FieldValueError("password", "give username and password together")
        return self
