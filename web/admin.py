"""What the admin pages share: form fields, the query string of a page, the done-notice.

The pages themselves: ``web.admin_users`` (users and their sessions),
``web.admin_tokens`` (API tokens), ``web.admin_audit`` (the audit log). Each
is admin-only (``@require("admin")``) and changes things only through
``web.actions.perform`` with the ``monitor.staff`` functions the CLI calls, so
a change from a page is checked and audited exactly as one from a shell.
"""

from __future__ import annotations

from urllib.parse import urlencode

from flask import flash, request, url_for

MAX_FIELD = 300
"""Characters read of a form field (a password has at most 256; names far fewer)."""


def field(name: str, limit: int = MAX_FIELD) -> str:
    """A form field, clipped: the monitor functions refuse a bad value with the reason."""
    return request.form.get(name, "")[:limit]


def query_args() -> dict[str, list[str]]:
    """The query string without empty values (the filter forms submit empty fields) and
    without ``lang`` (the language switch keeps it itself)."""
    args = {
        k: [v for v in vs if v.strip()]
        for k, vs in request.args.to_dict(flat=False).items()
        if k != "lang"
    }
    return {k: vs for k, vs in args.items() if vs}


def url_with(endpoint: str, args: dict[str, list[str]], **changes: object) -> str:
    """``endpoint``'s URL with ``args``, some changed (None removes one)."""
    out = dict(args)
    for key, value in changes.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = [str(value)]
    return url_for(endpoint) + ("?" + urlencode(out, doseq=True) if out else "")


def done(message: str) -> None:
    """A notice for the page the browser is sent to next (Post/Redirect/Get)."""
    flash(message, "done")
