"""``/ack/<token>``: acknowledge an incident from the link in a page, without logging in.

``GET`` shows what would be acknowledged and a button; only the ``POST``
from that page acknowledges (mail scanners and chat previews open links,
and must not acknowledge pages). The link is signed, names one incident and
one person and expires (``notify.ack_links``); the acknowledgement is made
as that person's console user, through the monitor's own function, and is
audited with the client address. The form carries a CSRF token like every
other.
"""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from flask_babel import gettext as _

from monitor import audit, incident_actions
from monitor.store import queries
from notify import ack_links
from web import guard
from web.guard import client_address
from web.views import current_services

bp = Blueprint("ack", __name__)


def _link(token: str) -> tuple[ack_links.AckLink | None, str]:
    service = current_services().notifications
    if service is None:
        return None, _("Paging is not running in this process.")
    try:
        return ack_links.verify(service.ack_key, token, current_services().clock()), ""
    except ack_links.BadLink as exc:
        return None, _translate(str(exc))


def _translate(reason: str) -> str:
    if "expired" in reason:
        return _("This acknowledge link has expired; acknowledge in the console instead.")
    if "altered" in reason:
        return _("This acknowledge link has been altered or was made by another appliance.")
    return _("This is not an acknowledge link of this appliance.")


@bp.get("/ack/<token>")
@guard.public
def ack_page(token: str) -> tuple[str, int] | str:
    link, problem = _link(token)
    if link is None:
        return render_template("ack.html", problem=problem, incident=None, token=token), 400
    incident = queries.incident(current_services().db, link.incident_id)
    if incident is None:
        abort(404)
    return render_template("ack.html", problem="", incident=incident, token=token, done=False)


@bp.post("/ack/<token>")
@guard.public
def ack_submit(token: str) -> tuple[str, int] | str:
    link, problem = _link(token)
    if link is None:
        return render_template("ack.html", problem=problem, incident=None, token=token), 400
    service = current_services().notifications
    assert service is not None
    person = service.roster.people.get(link.person_id)
    if person is None:
        message = _("The person this link was sent to is no longer in the config.")
        return render_template("ack.html", problem=message, incident=None, token=token), 400
    actor = f"user:{person.user}"
    repo = guard.repo()
    now = current_services().clock()
    status = 200
    try:
        with repo.transaction() as conn:
            incident_actions.acknowledge(repo, actor, link.incident_id, at=now)
            audit.record(
                conn,
                at=now,
                actor=actor,
                address=client_address(),
                action="incident.acknowledge",
                object=f"incident:{link.incident_id}",
                detail="from the acknowledge link in a page",
            )
        problem = ""
    except incident_actions.Conflict as exc:
        problem, status = str(exc), 409
    except incident_actions.NotFound:
        abort(404)
    incident = queries.incident(current_services().db, link.incident_id)
    return (
        render_template(
            "ack.html", problem=problem, incident=incident, token=token, done=not problem
        ),
        status,
    )
