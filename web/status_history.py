"""The status page's incident history and its Atom feed (public, like ``/status``).

- ``/status/incidents``: resolved incidents of the shown components, newest
  first, ``?page=`` by ``PER_PAGE``;
- ``/status/incidents/<id>``: one incident (open or resolved) with its
  published customer updates — never the staff timeline or internal notes;
- ``/status/feed.atom``: the open and the latest resolved incidents, one entry
  each with its customer updates, served from a snapshot like the page.

Every text comes from ``web.status``'s read model (``Publisher``, the same
redaction as the page); an incident that touches no shown component, was
merged into its parent's or lasted no time is a 404 here, as on the page it is
not shown.
"""

from __future__ import annotations

import time
import uuid

from flask import Blueprint, Flask, Response, abort, current_app, render_template, request, url_for
from flask_babel import gettext as _

from monitor.store import queries
from web import guard, params
from web.components import STATE_LABELS
from web.i18n import iso, lang_tag
from web.services import WebServices
from web.status import (
    PublicIncident,
    Publisher,
    cache_control,
    public_services,
    shown_components,
    snapshot,
    status_view,
)
from web.status_snapshot import Rendered, conditional_response
from web.views import current_services

bp = Blueprint("status_history", __name__)
bp.record_once(lambda state: state.app.url_map.converters.setdefault("id", params.IdConverter))

PER_PAGE = 20
"""Resolved incidents per history page."""
FEED_RESOLVED = 30
"""Resolved incidents in the feed, besides the open ones."""
MAX_UPDATES = 200
"""Customer updates shown under one incident on its page."""


def _bad_request(exc: Exception) -> tuple[str, int]:
    return render_template("error.html", code=400, message=str(exc)), 400


@bp.get("/status/incidents")
@guard.public
def incident_list() -> str | tuple[str, int]:
    svc = public_services()
    args = request.args.to_dict(flat=False)
    try:
        params.reject_unknown(args, ("page", "lang"))
        number = params.integer(args, "page", 1, 1, 1_000_000)
    except params.ParamError as exc:
        return _bad_request(exc)
    cfg = svc.config()
    shown = shown_components(cfg)
    members = [i for ids in shown.members.values() for i in ids]
    page = queries.Page(number, PER_PAGE)
    result = queries.status_history(svc.db, members, page)
    publisher = Publisher.of(cfg, lang_tag())
    updates = queries.customer_updates(svc.db, [r.id for r in result.items])
    return render_template(
        "status_incidents.html",
        incidents=[publisher.incident(r, updates.get(r.id, ())) for r in result.items],
        page=page,
        total=result.total,
        last_page=max(1, -(-result.total // PER_PAGE)),
    )


@bp.get("/status/incidents/<id:incident_id>")
@guard.public
def incident_page(incident_id: int) -> str:
    svc = public_services()
    publisher = Publisher.of(svc.config(), lang_tag())
    row = queries.customer_incident(svc.db, incident_id)
    if row is None or not publisher.is_public(row):
        abort(404)
    updates = queries.customer_updates(svc.db, [row.id], per_incident=MAX_UPDATES)
    return render_template(
        "status_incident.html",
        incident=publisher.incident(row, updates[row.id]),
        state_labels=STATE_LABELS,
        now=time.time(),
    )


# -- the feed -------------------------------------------------------------------------
@bp.get("/status/feed.atom")
@guard.public
def feed() -> Response:
    svc = public_services()
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    lang, root = lang_tag(), request.script_root
    rendered = snapshot(app, ("feed", lang, root), lambda: _render_feed(app, lang, root))
    return conditional_response(
        rendered, "application/atom+xml", cache_control(svc), vary=("Accept-Language", "Cookie")
    )


def _base_url(svc: WebServices) -> str:
    """Where the feed's links point: the notifications' one rule (``web.base_url``, else
    the listener), else ``web.base_url``, else '' (links relative to the feed, which Atom
    allows). Never the request's Host: the feed is one snapshot for every reader."""
    if svc.notifications is not None:
        return svc.notifications.base_url
    return (svc.config().web.base_url or "").rstrip("/")


def entry_id(site: str, incident_id: int) -> str:
    """An entry's permanent Atom id: the same for an incident however the site is reached."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"dialwatch:{site}:incident:{incident_id}").urn


def _render_feed(app: Flask, lang: str, script_root: str) -> Rendered:
    """The feed as a reader with nothing but ``?lang=`` gets it (see ``web.status``)."""
    with (
        app.app_context(),
        app.test_request_context(
            "/status/feed.atom",
            base_url=f"http://status.invalid{script_root}",
            query_string={"lang": lang},
        ),
    ):
        svc = current_services()
        cfg = svc.config()
        view = status_view(svc, lang)
        shown = shown_components(cfg)
        members = [i for ids in shown.members.values() for i in ids]
        resolved = queries.status_history(svc.db, members, queries.Page(1, FEED_RESOLVED)).items
        publisher = Publisher.of(cfg, lang)
        updates = queries.customer_updates(svc.db, [r.id for r in resolved])
        entries: list[PublicIncident] = [
            *view.open_incidents,
            *(publisher.incident(r, updates.get(r.id, ())) for r in resolved),
        ]
        entries.sort(key=lambda i: i.updated_at, reverse=True)
        base = _base_url(svc)
        site = cfg.site.name
        xml = render_template(
            "status_feed.xml",
            iso=iso,
            title=_("Incidents") + " · " + site,
            site=site,
            feed_id=uuid.uuid5(uuid.NAMESPACE_URL, f"dialwatch:{site}:status-feed").urn,
            updated=max([i.updated_at for i in entries], default=view.now),
            self_url=base + url_for("status_history.feed", lang=lang),
            page_url=base + url_for("status.status_page", lang=lang),
            entries=[
                (
                    i,
                    entry_id(site, i.id),
                    base + url_for("status_history.incident_page", incident_id=i.id, lang=lang),
                )
                for i in entries
            ],
        )
        return Rendered.of(xml.encode("utf-8"))
