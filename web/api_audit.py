"""``GET /api/v1/audit``: the audit log for admins, newest first, filtered and paged.

The filters are the audit page's (``web.admin_audit``): ``actor`` (exactly,
``user:alice``), ``action`` (one action, or every action under a prefix
ending in ``.``: ``user.``), ``object`` (text anywhere in the object),
``from``/``to`` (ISO 8601; ``from <= at < to``; without an offset in the
site timezone, as every time the API reads; ``to`` as a date alone takes that
whole day), ``page`` and ``per_page``.
``audit_filter`` parses them for both, so a bad value is the same 400 with
the same reason on the page and in the API.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from flask import Blueprint, Response, jsonify, request

from monitor.store import queries
from web import guard, params
from web.i18n import iso, valid_timezone
from web.views import current_services, json_error

bp = Blueprint("api_audit", __name__, url_prefix="/api/v1")

AUDIT_PARAMS = ("actor", "action", "object", "from", "to", "page", "per_page")
DEFAULT_PER_PAGE = 50


@dataclass(frozen=True, slots=True)
class AuditFilter:
    """Which entries a page, the API or an export shows; an empty field does not filter."""

    actor: str = ""
    action: str = ""
    object: str = ""
    since: float | None = None
    until: float | None = None

    def query(self) -> dict[str, Any]:
        """The keyword arguments of ``queries.audit_page`` / ``audit_entries``."""
        return {
            "actor": self.actor or None,
            "action": self.action or None,
            "object_like": self.object or None,
            "since": self.since,
            "until": self.until,
        }

    def is_empty(self) -> bool:
        return self == AuditFilter()


def audit_filter(
    args: params.Args, tz: tzinfo, default_per_page: int = DEFAULT_PER_PAGE
) -> tuple[AuditFilter, queries.Page]:
    """The filter and page of ``args``, or ParamError; ``from``/``to`` without an offset
    are read in ``tz``."""
    params.reject_unknown(args, AUDIT_PARAMS)
    flt = AuditFilter(
        actor=params.text(args, "actor"),
        action=params.text(args, "action", 64),
        object=params.text(args, "object"),
        since=params.instant(args, "from", tz),
        until=params.instant(args, "to", tz, end_of_day=True),
    )
    if flt.since is not None and flt.until is not None and flt.until <= flt.since:
        raise params.ParamError("to: must be later than from")
    return flt, params.page(args, default_per_page)


def entry_json(row: queries.AuditRow) -> dict[str, object]:
    body: dict[str, object] = {
        "id": row.id,
        "at": iso(row.at),
        "actor": row.actor,
        "address": row.address,
        "action": row.action,
        "object": row.object,
        "result": row.result,
        "count": row.count,
    }
    # Only where present: most entries have no before/after, and many no detail.
    if row.before is not None:
        body["before"] = dict(row.before)
    if row.after is not None:
        body["after"] = dict(row.after)
    if row.detail:
        body["detail"] = row.detail
    return body


@bp.errorhandler(params.ParamError)
def _bad_param(exc: params.ParamError) -> tuple[Response, int]:
    return json_error(str(exc), 400)


@bp.get("/audit")
@guard.require("admin")
def audit() -> Response:
    # A time without an offset is in the site timezone, as an ETA or an incident filter is.
    tz = ZoneInfo(valid_timezone(current_services().config().site.timezone))
    flt, page = audit_filter(request.args.to_dict(flat=False), tz)
    rows, total = queries.audit_page(
        current_services().db, page=page.page, per_page=page.per_page, **flt.query()
    )
    return jsonify(
        items=[entry_json(r) for r in rows],
        page=page.page,
        per_page=page.per_page,
        total=total,
    )
