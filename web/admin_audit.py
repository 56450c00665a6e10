"""``/admin/audit``: the audit log — filters, pages, CSV export, and "verify the chain now".

Admins only, and read-only: nothing here writes to the log. The filters
(time range in the site timezone, actor, action, object) are the API's
(``web.api_audit.audit_filter``); the page shows them newest first, a page at a
time (``queries.audit_page``); the export streams every matching entry as CSV
(``queries.audit_entries`` a batch at a time, ``monitor.audit_csv`` cell by
cell, formula-safe), so a year of entries never sits in memory. The verify
button walks the chain as ``dialwatch audit verify`` does and shows the first
broken entry, or OK and the head.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, render_template, stream_with_context
from flask_babel import gettext as _

from monitor import audit, audit_csv
from monitor.audit import ChainCheck, Head
from monitor.store import queries
from web import params
from web.admin import query_args, url_with
from web.api_audit import AuditFilter, audit_filter
from web.guard import require, services
from web.i18n import valid_timezone

bp = Blueprint("admin_audit", __name__, url_prefix="/admin")


def as_json(value: Mapping[str, Any]) -> str:
    """An entry's before/after as one line of JSON (autoescaped by the template)."""
    return json.dumps(dict(value), ensure_ascii=False, sort_keys=True, default=str)


PER_PAGE = 50


def _zone() -> ZoneInfo:
    return ZoneInfo(valid_timezone(services().config().site.timezone))


def _page(
    error: str | None = None, code: int = 200, check: tuple[ChainCheck, Head] | None = None
) -> tuple[str, int]:
    svc = services()
    args = query_args()
    tz = _zone()
    try:
        flt, page = audit_filter(args, tz, PER_PAGE)
    except params.ParamError as exc:
        flt, page = AuditFilter(), queries.Page(1, PER_PAGE)
        error, code = str(exc), 400
    rows, total = queries.audit_page(svc.db, page=page.page, per_page=page.per_page, **flt.query())
    raw = {k: v[0] for k, v in args.items()}
    # A datetime-local field shows only its own form: 2026-12-01 or ...+08:00 would look
    # empty while it filters, so the field gets the time it means, in the site timezone.
    for name, value in (("from", flt.since), ("to", flt.until)):
        if value is not None:
            raw[name] = datetime.fromtimestamp(value, tz).strftime("%Y-%m-%dT%H:%M:%S")
    return (
        render_template(
            "admin_audit.html",
            rows=rows,
            total=total,
            page=page,
            last_page=max(1, -(-total // page.per_page)),
            flt=flt,
            raw=raw,
            csv_url=url_with(
                "admin_audit.audit_export",
                {k: v for k, v in args.items() if k not in ("page", "per_page")},
            ),
            url_with=lambda **changes: url_with("admin_audit.audit_page", args, **changes),
            # The page after the check keeps the filters it was asked from.
            verify_url=url_with("admin_audit.verify_chain", args),
            check=check,
            as_json=as_json,
            error=error,
        ),
        code,
    )


@bp.get("/audit")
@require("admin")
def audit_page() -> tuple[str, int]:
    return _page()


@bp.get("/audit.csv")
@require("admin")
def audit_export() -> Response | tuple[str, int]:
    args = {k: v for k, v in query_args().items() if k not in ("page", "per_page")}
    tz = _zone()
    try:
        flt, _page_unused = audit_filter(args, tz)
    except params.ParamError as exc:
        return render_template("error.html", code=400, message=str(exc)), 400
    rows = queries.audit_entries(services().db, **flt.query())
    response = Response(stream_with_context(audit_csv.lines(rows, tz)), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="dialwatch-audit.csv"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/audit/verify")
@require("admin")
def verify_chain() -> tuple[str, int]:
    engine = services().db
    if engine.dialect.name == "postgresql":
        # One snapshot for the whole walk, as `dialwatch audit verify` takes: a retention
        # batch committing between two reads must not look like a gap.
        engine = engine.execution_options(isolation_level="REPEATABLE READ")
    with engine.connect() as conn:
        check = audit.verify(conn)
        head = audit.head(conn)
    if check.broken_at is not None:
        return _page(_("The audit chain is broken."), 200, (check, head))
    return _page(check=(check, head))
