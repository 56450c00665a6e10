"""Subscribing on the public status page by e-mail: no account, no JavaScript, zh-CN and en.

- ``GET /status/subscribe`` — the form: the address, a checkbox per component
  (``?component=`` from the status page's own form pre-checks them) and a CSRF
  token. The status page itself is one snapshot shared by every visitor, so
  it carries no token: its form leads here.
- ``POST /status/subscribe`` — a refused address says why beside the form
  (400); too many requests for one address or from one client network (an
  IPv6 /64 counts as one) in an hour is a 429; otherwise the confirm link
  (a new or pending address) or the manage link (subscribed already) is
  mailed, and the answer is the same page either way: nobody learns from it
  who is subscribed.
- ``/status/confirm/<token>`` — GET shows a button, only its POST confirms
  (mail scanners open links).
- ``/status/manage/<token>`` — change the components, or unsubscribe.
- ``/status/unsubscribe/<token>`` — GET shows a button; POST unsubscribes,
  also as the RFC 8058 one-click POST a mail client sends with no cookie and
  no CSRF token (the signed token is the authentication: ``guard.signed_link``).

Links are ``notify.subscribers.Keys`` tokens; a bad one is a 400 page saying
why, never a 500. Every form but the one-click one carries a CSRF token.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response, current_app, render_template, request, url_for
from flask_babel import gettext as _

from monitor.incident_actions import Conflict
from monitor.store.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING
from monitor.store.repository import NotFound
from notify import customer_messages, subscribers
from notify.customer_settings import SubscribeLimits
from notify.service import Notifications
from notify.subscribers import AddressRefused, Purpose, SubscriberRow, TokenRefused
from web import guard
from web.i18n import lang_tag
from web.rate_limit import WindowLimit, network_of
from web.status import Choice, public_services, subscribe_choices, subscriptions_open
from web.views import current_services

bp = Blueprint("status_subscribe", __name__)

LIMIT_EXTENSION = "dialwatch.subscribe_limit"


class Refused(Exception):
    """A request this blueprint answers with a page: the status and the sentence."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- the sentences of notify, in the page's language ------------------------------------
def _address_sentence(exc: AddressRefused) -> str:
    text = str(exc)
    if text == "this is not an e-mail address":
        return _("This is not an e-mail address.")
    if text == "choose at least one component":
        return _("Choose at least one component.")
    if text.startswith("at most "):
        return _("Choose at most %(count)s components.", count=subscribers.MAX_COMPONENTS)
    if text.startswith("no component "):
        return _("One of the components chosen is not on this status page.")
    return text  # a sentence notify added since: English rather than nothing


def _token_sentence(exc: TokenRefused) -> str:
    text = str(exc)
    if "expired" in text:
        return _("This link has expired: subscribe again for a new one.")
    if "something else" in text:
        return _("This link is for something else.")
    return _("This link is not one of ours.")


def _conflict_sentence(exc: Conflict) -> str:
    if "ended" in str(exc):
        return _("This subscription has ended: subscribe again.")
    return str(exc)


# -- helpers ----------------------------------------------------------------------------
def _notifications() -> Notifications:
    service = current_services().notifications
    if service is None:
        raise Refused(503, _("Subscriptions are not available on this status page."))
    return service


def _limit() -> WindowLimit:
    return current_app.extensions[LIMIT_EXTENSION]


def _limits() -> SubscribeLimits:
    customers = getattr(current_services().config(), "customers", None)
    return customers.limits if customers is not None else SubscribeLimits()


def _base_url() -> str:
    """Where the links in mails point: the notification service's one rule
    (``web.base_url``, else the listener). Never the request's Host header: this form
    is public, and a forged Host would send the owner a link to elsewhere."""
    return _notifications().base_url


def _token(purpose: Purpose, subscriber_id: int) -> str:
    return _notifications().subscriber_keys.token(
        subscriber_id, purpose, current_services().clock()
    )


def _link(purpose: Purpose, subscriber_id: int) -> str:
    """A link for a mail (the same paths as the routes below)."""
    return f"{_base_url()}/status/{purpose}/{_token(purpose, subscriber_id)}"


def _page(template: str, status: int = 200, **context: Any) -> tuple[Response, int]:
    """A page with a token or a visitor's CSRF token in it: kept by no cache."""
    response = Response(render_template(template, **context), mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response, status


def _refused(exc: Refused) -> tuple[Response, int]:
    return _page("subscription.html", exc.status, mode="refused", message=exc.message)


def _answering(view: Callable[..., tuple[Response, int]]) -> Callable[..., tuple[Response, int]]:
    """Turns a ``Refused`` (and a link notify refuses) into its page."""

    @functools.wraps(view)
    def answer(**kwargs: Any) -> tuple[Response, int]:
        try:
            return view(**kwargs)
        except Refused as exc:
            return _refused(exc)
        except TokenRefused as exc:
            return _refused(Refused(400, _token_sentence(exc)))
        except NotFound:
            return _refused(Refused(404, _("This subscription no longer exists.")))
        except Conflict as exc:
            return _refused(Refused(409, _conflict_sentence(exc)))

    return answer


def _subscriber(token: str, purpose: Purpose) -> SubscriberRow:
    service = _notifications()
    subscriber_id = service.subscriber_keys.read(token, purpose, current_services().clock())
    with guard.repo().reading() as conn:
        return subscribers.get(conn, subscriber_id)


def _names(choices: list[Choice], ids: tuple[str, ...] | list[str]) -> list[str]:
    by_id = {c.id: c.name for c in choices}
    return [by_id[i] for i in ids if i in by_id]


def _choices() -> list[Choice]:
    return subscribe_choices(current_services().config(), lang_tag())


def _form_open() -> None:
    """The subscribe form is where the status page is: a private one has none for strangers."""
    if not subscriptions_open(public_services(), "email"):
        raise Refused(503, _("Subscriptions are not available on this status page."))


def _sms_open() -> bool:
    return subscriptions_open(current_services(), "sms")


def _push_config(choices: list[Choice]) -> dict[str, Any] | None:
    # Imported here: the push blueprint builds on this one's helpers.
    from web.status_subscribe_push import config_for_page

    return config_for_page(choices)


def _retry_later(answer: tuple[Response, int], wait: float) -> tuple[Response, int]:
    """A form's 429 page, saying when to try again."""
    answer[0].headers["Retry-After"] = str(int(wait) + 1)
    return answer


# -- subscribe --------------------------------------------------------------------------
@bp.get("/status/subscribe")
@guard.public
@_answering
def subscribe_page() -> tuple[Response, int]:
    _form_open()
    choices = _choices()
    return _page(
        "subscribe.html",
        choices=choices,
        chosen=request.args.getlist("component"),
        address="",
        message="",
        sms_open=_sms_open(),
        push_config=_push_config(choices),
    )


@bp.post("/status/subscribe")
@guard.public
@_answering
def subscribe_submit() -> tuple[Response, int]:
    _form_open()
    service = _notifications()
    svc = current_services()
    cfg = svc.config()
    lang = lang_tag()
    choices = _choices()
    address = request.form.get("address", "")
    chosen = request.form.getlist("component")

    def again(status: int, message: str) -> tuple[Response, int]:
        return _page("subscribe.html", status, choices=choices, chosen=chosen, address=address,
                     message=message, sms_open=_sms_open(), push_config=_push_config(choices))  # fmt: skip

    try:
        normalized = subscribers.normalize("email", address)
    except AddressRefused as exc:
        return again(400, _address_sentence(exc))
    limits = _limits()
    counted = {
        "address:" + service.subscriber_keys.digest("email", normalized): (
            limits.per_address_per_hour
        ),
        "network:" + network_of(guard.client_address()): limits.per_network_per_hour,
    }
    wait = _limit().take(counted)
    if wait > 0:
        sentence = _("Too many requests for this address or from your network: try again later.")
        return _retry_later(again(429, sentence), wait)
    now = svc.clock()
    try:
        asked = subscribers.subscribe(
            guard.repo(), service.subscriber_keys, "email", address, chosen, lang,
            known=[c.id for c in choices], at=now,
        )  # fmt: skip
    except AddressRefused as exc:
        _limit().give_back(counted)  # nothing was asked: it does not count
        return again(400, _address_sentence(exc))
    if asked.confirm:
        written = customer_messages.confirmation(
            lang, cfg.site.name, _names(choices, asked.subscriber.components),
            _link("confirm", asked.subscriber.id),
        )  # fmt: skip
    else:
        written = customer_messages.manage_link(
            lang, cfg.site.name, _link("manage", asked.subscriber.id)
        )
    try:
        service.to_subscriber(asked.subscriber.id, written.subject, written.text, at=now)
    except ValueError:  # the customers: section changed under us
        raise Refused(503, _("Subscriptions are not available on this status page.")) from None
    # The same page for a new, a pending and a subscribed address.
    return _page("subscription.html", mode="sent", message="")


# -- confirm ----------------------------------------------------------------------------
@bp.get("/status/confirm/<token>")
@guard.public
@_answering
def confirm_page(token: str) -> tuple[Response, int]:
    row = _subscriber(token, "confirm")
    if row.state not in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING):
        raise Refused(409, _("This subscription has ended: subscribe again."))
    return _page(
        "subscription.html",
        mode="confirm",
        token=token,
        done=row.state == SUBSCRIBER_ACTIVE,
        components=_names(_choices(), row.components),
        message="",
    )


@bp.post("/status/confirm/<token>")
@guard.public
@_answering
def confirm_submit(token: str) -> tuple[Response, int]:
    row = _subscriber(token, "confirm")
    row = subscribers.confirm(guard.repo(), row.id, at=current_services().clock())
    return _page(
        "subscription.html",
        mode="confirm",
        token=token,
        done=True,
        components=_names(_choices(), row.components),
        manage=url_for("status_subscribe.manage_page", token=_token("manage", row.id)),
        message="",
    )


# -- manage -----------------------------------------------------------------------------
@bp.get("/status/manage/<token>")
@guard.public
@_answering
def manage_page(token: str) -> tuple[Response, int]:
    row = _subscriber(token, "manage")
    if row.state not in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING):
        raise Refused(409, _("This subscription has ended: subscribe again."))
    return _page("subscription.html", mode="manage", token=token, choices=_choices(),
                 chosen=list(row.components), message="", saved=False)  # fmt: skip


@bp.post("/status/manage/<token>")
@guard.public
@_answering
def manage_submit(token: str) -> tuple[Response, int]:
    row = _subscriber(token, "manage")
    now = current_services().clock()
    if request.form.get("action") == "unsubscribe":
        subscribers.unsubscribe(guard.repo(), row.id, at=now)
        return _page("subscription.html", mode="unsubscribed", message="")
    choices = _choices()
    chosen = request.form.getlist("component")
    try:
        row = subscribers.set_components(
            guard.repo(), row.id, chosen, known=[c.id for c in choices], at=now
        )
    except AddressRefused as exc:
        return _page("subscription.html", 400, mode="manage", token=token, choices=choices,
                     chosen=chosen, message=_address_sentence(exc), saved=False)  # fmt: skip
    return _page("subscription.html", mode="manage", token=token, choices=choices,
                 chosen=list(row.components), message="", saved=True)  # fmt: skip


# -- unsubscribe ------------------------------------------------------------------------
@bp.get("/status/unsubscribe/<token>")
@guard.public
@_answering
def unsubscribe_page(token: str) -> tuple[Response, int]:
    row = _subscriber(token, "unsubscribe")
    ended = row.state not in (SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING)
    return _page("subscription.html", mode="unsubscribed" if ended else "unsubscribe",
                 token=token, message="")  # fmt: skip


@bp.post("/status/unsubscribe/<token>")
@guard.public
@guard.signed_link
@_answering
def unsubscribe_submit(token: str) -> tuple[Response, int]:
    """Our page's button, or a mail client's one-click POST (``List-Unsubscribe=One-Click``,
    RFC 8058): either way the signed token says who, and the answer is 200."""
    subscriber_id = _notifications().subscriber_keys.read(
        token, "unsubscribe", current_services().clock()
    )
    with contextlib.suppress(NotFound):  # erased by an admin: they hear nothing already
        subscribers.unsubscribe(guard.repo(), subscriber_id, at=current_services().clock())
    return _page("subscription.html", mode="unsubscribed", message="")
