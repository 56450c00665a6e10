"""Subscribing on the public status page by text message: a number, a code, no account.

- ``GET /status/subscribe/sms`` — the form: a mobile number and the components
  (``?component=`` pre-checks them), with a CSRF token. Shown when
  ``customers.sms_channel`` is set.
- ``POST /status/subscribe/sms`` — a refused number says why (400). The same
  limits as the e-mail form (per number and per client network an hour, 429),
  and, because every text costs money (SMS pumping), the verification codes are
  capped per number and in total a day (``customers.limits``, counted in the
  state DB) and per client network a day (in memory). Then a 6-digit code is
  texted through the outbox and the answer is the code form — the same page
  for a new, a pending and a subscribed number (a subscribed one is texted
  nothing: whoever asked learns nothing, and no text is spent on it).
- ``POST /status/subscribe/sms/verify`` — the code and the form's signed token
  (a ``confirm`` token of ``notify.subscribers.Keys``): right → subscribed; wrong,
  expired or tried too often → the sentence beside the form (400).

A subscriber stops by replying STOP / 退订 (``web.sms_inbound``) or from the
manage link. Every form carries a CSRF token.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request, url_for
from flask_babel import gettext as _

from notify import customer_messages, subscribers
from notify.subscribers import AddressRefused, LimitReached, TokenRefused
from web import guard
from web.i18n import lang_tag
from web.rate_limit import WindowLimit, network_of
from web.status import public_services, subscriptions_open
from web.status_subscribe import (
    Refused,
    _address_sentence,
    _answering,
    _choices,
    _limit,
    _limits,
    _names,
    _notifications,
    _page,
    _retry_later,
    _token,
)
from web.views import current_services

bp = Blueprint("status_subscribe_sms", __name__)

DAY_LIMIT_EXTENSION = "dialwatch.sms_code_limit"
"""A ``WindowLimit`` over a day: verification codes per client network."""


def _form_open() -> None:
    if not subscriptions_open(public_services(), "sms"):
        raise Refused(503, _("Subscriptions by text message are not available here."))


def _number_sentence(exc: AddressRefused) -> str:
    text = str(exc)
    if text == "text messages need a mobile number":
        return _("Text messages need a mobile number.")
    if text.startswith("this is not"):
        return _("This is not a mobile number we can text.")
    return _address_sentence(exc)  # the components' sentences, shared with the e-mail form


def _code_sentence(exc: TokenRefused) -> str:
    text = str(exc)
    if "expired" in text:
        return _("This code has expired: ask for a new one.")
    if "too many" in text:
        return _("Too many wrong codes: ask for a new one.")
    if "not the code" in text:
        return _("This is not the code we sent.")
    return _("This form has expired: ask for a new code.")


def _day_limit() -> WindowLimit:
    return current_app.extensions[DAY_LIMIT_EXTENSION]


@bp.get("/status/subscribe/sms")
@guard.public
@_answering
def subscribe_page() -> tuple[Response, int]:
    _form_open()
    return _page("subscribe_sms.html", mode="number", choices=_choices(),
                 chosen=request.args.getlist("component"), number="", message="")  # fmt: skip


@bp.post("/status/subscribe/sms")
@guard.public
@_answering
def subscribe_submit() -> tuple[Response, int]:
    _form_open()
    service = _notifications()
    svc = current_services()
    choices = _choices()
    number = request.form.get("number", "")
    chosen = request.form.getlist("component")

    def again(status: int, message: str) -> tuple[Response, int]:
        return _page("subscribe_sms.html", status, mode="number", choices=choices,
                     chosen=chosen, number=number, message=message)  # fmt: skip

    try:
        normalized = subscribers.normalize("sms", number)
    except AddressRefused as exc:
        return again(400, _number_sentence(exc))
    limits = _limits()
    network = "network:" + network_of(guard.client_address())
    hourly = {
        "number:" + service.subscriber_keys.digest("sms", normalized): limits.per_address_per_hour,
        network: limits.per_network_per_hour,
    }
    daily = {"codes:" + network: limits.sms_codes_per_network_per_day}
    wait = _limit().take(hourly)
    if wait <= 0:
        wait = _day_limit().take(daily)
        if wait > 0:
            _limit().give_back(hourly)
    if wait > 0:
        sentence = _("Too many requests for this number or from your network: try again later.")
        return _retry_later(again(429, sentence), wait)
    now = svc.clock()
    lang = lang_tag()
    try:
        asked = subscribers.subscribe(
            guard.repo(), service.subscriber_keys, "sms", number, chosen, lang,
            known=[c.id for c in choices], at=now,
        )  # fmt: skip
    except AddressRefused as exc:
        _limit().give_back(hourly)
        _day_limit().give_back(daily)
        return again(400, _number_sentence(exc))
    token = _token("confirm", asked.subscriber.id)
    if asked.confirm:
        try:
            code = subscribers.issue_code(
                guard.repo(), service.subscriber_keys, asked.subscriber.id, at=now,
                per_day=limits.sms_codes_per_number_per_day,
                total_per_day=limits.sms_codes_per_day,
            )  # fmt: skip
        except LimitReached:
            _day_limit().give_back(daily)
            return again(429, _("No more codes can be sent today: try again tomorrow."))
        written = customer_messages.sms_code(lang, svc.config().site.name, code)
        try:
            service.to_subscriber(asked.subscriber.id, written.subject, written.text, at=now)
        except ValueError:  # the customers: section changed under us
            raise Refused(503, _("Subscriptions by text message are not available here.")) from None
    return _page("subscribe_sms.html", mode="code", token=token, message="")


@bp.post("/status/subscribe/sms/verify")
@guard.public
@_answering
def verify() -> tuple[Response, int]:
    _form_open()
    service = _notifications()
    now = current_services().clock()
    token = request.form.get("token", "")
    code = request.form.get("code", "")
    try:
        subscriber_id = service.subscriber_keys.read(token, "confirm", now)
    except TokenRefused:
        raise Refused(400, _("This form has expired: ask for a new code.")) from None
    try:
        row = subscribers.check_code(guard.repo(), service.subscriber_keys, subscriber_id, code,
                                     at=now)  # fmt: skip
    except TokenRefused as exc:
        return _page("subscribe_sms.html", 400, mode="code", token=token,
                     message=_code_sentence(exc))  # fmt: skip
    except ValueError:  # not a text-message subscriber at all
        raise Refused(400, _("This form has expired: ask for a new code.")) from None
    return _page(
        "subscription.html", mode="confirm", token=token, done=True,
        components=_names(_choices(), row.components),
        manage=url_for("status_subscribe.manage_page", token=_token("manage", row.id)),
        message="",
    )  # fmt: skip
