"""The ``http`` step: one HTTP request to an API, its status and JSON answer checked.

```yaml
- kind: http
  id: pause
  method: POST
  url: "https://dialer.example/api/campaigns/{{ params.campaign }}/pause"
  headers: {X-Api-Key: "${DIALER_API_KEY}"}
  json: {reason: "{{ incident.cause }}"}
  expect_status: [200, 202]
  expect_json: {state: paused}
  timeout: 15s
```

The request goes through the appliance's one HTTP client (``core.net.http``):
the step's timeout bounds it, the answer's body is read up to ``max_bytes``,
and a redirect is followed only to the same scheme, host and port, and only
for GET and HEAD — a POST that is redirected is a failure, not a silent GET
elsewhere (urllib3 and browsers turn a 301/302/303 POST into a GET, and a
"pause campaign" that became a GET of some page must not report success).

An answer whose status is not expected is a failure with the status and the
answer's beginning: a 5xx (and 408, 429) may be tried again, another 4xx is
refused for good (``retry=False``). A transport failure (timeout, refused,
reset) may be tried again; a TLS failure or a redirect elsewhere cannot be
fixed by trying again. ``expect_json`` checks values in the JSON answer by
``probes.dialer.jsonpath`` paths (the dialer probe's syntax); a value that
differs is a failure with both values, never retried.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated, Any, Literal
from urllib.parse import urljoin, urlsplit, urlunsplit

from pydantic import ConfigDict, Field, field_validator, model_validator

from core.config import SECRET_KEY_RE, Bool
from core.net import http
from core.net.http import HttpAnswer, HttpFailure, shown_url
from core.observation import ErrorClass
from probes.dialer import jsonpath
from runbooks import template
from runbooks.steps.base import StepConfig, StepContext, StepFailed, StepResult, short, tail

USER_AGENT = "Dialwatch-runbook"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
RETRY_STATUS = frozenset({408, 429})
"""4xx answers that say "later", not "no": tried again like a 5xx."""
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
"""Header names whose values a plan never shows (besides names like ``X-Api-Key``)."""

JsonValue = Any
Status = Annotated[int, Field(ge=100, le=599)]


def _bad_url(url: str) -> str | None:
    """Why ``url`` cannot be requested, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "needs a host, e.g. https://dialer.example/api/campaigns/7/pause"
    if parts.username or parts.password:
        return "put credentials in username/password, not in the URL"
    return None


def _bad_header(name: str, value: str) -> str | None:
    if not name or any(c in name for c in ":\r\n \t"):
        return f"header name {name!r} is not a plain token"
    if any(c in value for c in "\r\n"):
        return f"header {name!r} must not contain a line break"
    return None


def _secret_header(name: str) -> bool:
    return name.lower() in SECRET_HEADERS or bool(SECRET_KEY_RE.search(name.replace("-", "_")))


def _planned_url(url: str) -> str:
    """The URL with the values of secret-looking query keys (``pass``, ``token``…) hidden."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    pairs = []
    for pair in parts.query.split("&"):
        key, sep, value = pair.partition("=")
        hidden = sep and (key.lower() in ("pass", "pwd", "key") or SECRET_KEY_RE.search(key))
        pairs.append(f"{key}=***" if hidden else pair)
    return urlunsplit(parts._replace(query="&".join(pairs)))


class HttpStepConfig(StepConfig):
    """One HTTP request, its answer checked."""

    # ``json`` is the YAML key; the attribute is ``json_body`` (``json`` shadows BaseModel's).
    model_config = ConfigDict(populate_by_name=True)

    kind: Literal["http"]
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    """The HTTP method (upper case)."""
    url: str
    """``http://`` or ``https://``; a template (``{{ params.campaign }}``). Credentials go in
    ``username``/``password``, not here."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Extra request headers; values are templates. ``Content-Type`` here wins over the default."""
    body: str | None = None
    """A text body (a template), sent as ``text/plain; charset=utf-8`` unless ``headers`` say."""
    json_body: JsonValue = Field(None, alias="json")
    """A JSON body (YAML ``json:``): strings inside are templates; sent as ``application/json``.
    Not with ``body``."""
    expect_status: Status | list[Status] | None = None
    """The status (or statuses) that count as success; default any 2xx."""
    expect_json: dict[str, JsonValue] = Field(default_factory=dict)
    """JSON path → the value it must hold in the answer (``{state: paused, "data.ok": true}``);
    paths as in the dialer probe (``data.items[0].id``, ``["a.b"]``), no ``[*]``. String values
    are templates (a rendered value is a string: ``"7"`` does not equal ``7``)."""
    username: str | None = None
    """HTTP basic auth user."""
    password: str | None = None
    """HTTP basic auth password; write it as ``${file:…}`` or ``${ENV}``. Never shown."""
    verify_tls: Bool = True
    """Check the server's certificate and name (``https``)."""
    ca_file: str | None = None
    """PEM bundle of CAs to trust instead of the system's."""
    max_bytes: int = Field(1024 * 1024, ge=1024, le=64 * 1024 * 1024)
    """Largest answer body read; a larger successful answer is a failure."""

    TEMPLATED = ("url", "headers", "body", "json_body", "expect_json")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if not template.is_template(value) and (why := _bad_url(value)):
            raise ValueError(why)
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if why := _bad_header(name, "" if template.is_template(text) else text):
                raise ValueError(why)
        return value

    @field_validator("expect_json")
    @classmethod
    def _paths(cls, value: dict[str, Any]) -> dict[str, Any]:
        for path in value:
            try:
                steps = jsonpath.parse(path)
            except jsonpath.PathSyntaxError as exc:
                raise ValueError(f"expect_json: {exc}") from None
            if jsonpath.has_wildcard(steps):
                raise ValueError(f"expect_json: {path!r} must name one value, not [*]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> HttpStepConfig:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give body (text) or json (an object), not both")
        if self.password is not None and self.username is None:
            raise ValueError("password without username")
        if self.method in ("GET", "HEAD") and (self.body is not None or self.json_body is not None):
            raise ValueError(f"a {self.method} request has no body; use POST, PUT or PATCH")
        return self


def _same(expected: Any, found: Any) -> bool:
    """JSON equality: ``true`` is not ``1``, ``1`` is ``1.0``."""
    if isinstance(expected, bool) or isinstance(found, bool):
        return isinstance(expected, bool) and isinstance(found, bool) and expected == found
    if isinstance(expected, dict) and isinstance(found, dict):
        return expected.keys() == found.keys() and all(
            _same(v, found[k]) for k, v in expected.items()
        )
    if isinstance(expected, list) and isinstance(found, list):
        return len(expected) == len(found) and all(map(_same, expected, found))
    numbers = isinstance(expected, int | float) and isinstance(found, int | float)
    return (numbers or type(expected) is type(found)) and expected == found


def _shown(value: Any) -> str:
    return short(json.dumps(value, ensure_ascii=False), 120)


def _parsed(answer: HttpAnswer) -> Any:
    """The body as JSON when it says (or looks like) it is JSON; None otherwise."""
    kind = answer.headers.get("content-type", "").lower()
    text = answer.body.strip()
    if not text or not ("json" in kind or text[:1] in (b"{", b"[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


class HttpStep:
    def __init__(self, config: HttpStepConfig) -> None:
        self.config = config

    # -- what it would do ----------------------------------------------------------------
    def plan(self) -> list[str]:
        c = self.config
        lines = [f"http {c.method} {_planned_url(c.url)}"]
        if c.username is not None:
            lines.append(f"  basic auth as {c.username!r} (password not shown)")
        for name, value in c.headers.items():
            lines.append(f"  {name}: {'***' if _secret_header(name) else value}")
        if c.json_body is not None:
            lines.append(f"  json: {short(json.dumps(c.json_body, ensure_ascii=False), 400)}")
        elif c.body is not None:
            lines.append(f"  body: {short(c.body, 400)}")
        lines.append(f"  expect status {self._expected_text()}")
        for path, value in c.expect_json.items():
            lines.append(f"  expect {path} = {_shown(value)}")
        return lines

    def _expected_text(self) -> str:
        want = self.config.expect_status
        if want is None:
            return "2xx"
        return str(want) if isinstance(want, int) else " or ".join(map(str, want))

    def _expected(self, status: int) -> bool:
        want = self.config.expect_status
        if want is None:
            return 200 <= status < 300
        return status == want if isinstance(want, int) else status in want

    # -- doing it ------------------------------------------------------------------------
    def _request(self) -> tuple[dict[str, str], bytes | None]:
        c = self.config
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json, */*;q=0.5"}
        payload: bytes | None = None
        if c.json_body is not None:
            headers["Content-Type"] = "application/json"
            payload = json.dumps(c.json_body, ensure_ascii=False).encode()
        elif c.body is not None:
            headers["Content-Type"] = "text/plain; charset=utf-8"
            payload = c.body.encode()
        given = {k.lower() for k in c.headers}
        headers = {k: v for k, v in headers.items() if k.lower() not in given}
        headers.update(c.headers)
        if c.username is not None:
            headers["Authorization"] = http.basic_auth(c.username, c.password or "")
        return headers, payload

    def _scrub(self, text: str) -> str:
        secrets = [self.config.password or ""]
        secrets += [v for k, v in self.config.headers.items() if _secret_header(k)]
        for secret in secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        return text

    async def run(self, ctx: StepContext) -> StepResult:
        c = self.config
        # Rendered values are checked here: the config saw only their templates.
        if why := _bad_url(c.url):
            raise StepFailed(f"url {shown_url(c.url)!r} {why}", retry=False)
        for name, value in c.headers.items():
            if why := _bad_header(name, value):
                raise StepFailed(why, retry=False)
        headers, payload = self._request()
        # core.net.http counts in time.monotonic(); the context's clock may be another.
        deadline = time.monotonic() + ctx.remaining()
        pool = http.shared_pool(ctx.services.shared, c.verify_tls, c.ca_file)
        redirects: Literal["same-origin", "none"] = (
            "same-origin" if c.method in ("GET", "HEAD") else "none"
        )
        where = shown_url(c.url)
        try:
            answer = await asyncio.to_thread(
                http.request,
                pool,
                c.method,
                c.url,
                deadline=deadline,
                max_bytes=c.max_bytes,
                headers=headers,
                body=payload,
                redirects=redirects,
            )
        except HttpFailure as exc:
            retry = exc.error_class not in (ErrorClass.TLS, ErrorClass.RESPONSE)
            raise StepFailed(self._scrub(f"{c.method} failed: {exc.detail}"), retry=retry) from None
        except ValueError as exc:  # a header urllib3 refuses, after rendering
            raise StepFailed(f"{c.method} {where}: {exc}", retry=False) from None
        text = self._scrub(answer.body.decode("utf-8", "replace"))
        status_line = f"HTTP {answer.status} {answer.reason}".rstrip()
        output = tail(f"{status_line}\n{text}" if text else status_line)
        if not self._expected(answer.status):
            said = f": {short(text, 300)}" if text.strip() else ""
            moved = answer.headers.get("location")
            if 300 <= answer.status < 400 and moved:
                said = (
                    f": redirected to {shown_url(urljoin(answer.url, moved))} (a {c.method} "
                    "is not followed; point url at the final address)"
                )
            raise StepFailed(
                f"{c.method} {shown_url(answer.url)}: {status_line}, expected "
                f"{self._expected_text()}{said}",
                output=output,
                retry=answer.status >= 500 or answer.status in RETRY_STATUS,
            )
        document = _parsed(answer)
        self._check_json(document, answer, output)
        return StepResult(
            f"{c.method} {shown_url(answer.url)}: {status_line}",
            output,
            {"status": answer.status, "json": document},
        )

    def _check_json(self, document: Any, answer: HttpAnswer, output: str) -> None:
        c = self.config
        if not c.expect_json:
            return
        where = shown_url(answer.url)
        if document is None:
            kind = answer.headers.get("content-type") or "no Content-Type"
            raise StepFailed(
                f"{c.method} {where}: the answer is not JSON ({kind}), so expect_json "
                "cannot be checked",
                output=output,
                retry=False,
            )
        for path, expected in c.expect_json.items():
            try:
                found = jsonpath.find_one(document, jsonpath.parse(path))
            except jsonpath.PathMissing as exc:
                raise StepFailed(
                    f"{c.method} {where}: expect_json {path}: {exc}", output=output, retry=False
                ) from None
            if not _same(expected, found):
                raise StepFailed(
                    f"{c.method} {where}: {path} is {_shown(found)}, expected {_shown(expected)}",
                    output=output,
                    retry=False,
                )
