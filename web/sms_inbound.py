"""``POST /hooks/sms/<channel id>``: customers' replies to our texts (STOP, 退订) from the provider.

Public (a provider has no session), without CSRF (it posts no form of ours)
but never unauthenticated: ``notify.channels.sms.inbound.read_reply`` checks
the provider's signature over the URL we are known by (``web.base_url``) before
anything is read. A stop word from a subscribed number unsubscribes it
(``notify.subscribers.stop_by_reply``); anything else is answered and ignored.
The answer is what the provider expects: Twilio an empty TwiML document, a
gateway ``{"ok": true}``. Refusals are 4xx with the reason; the number and the
text are never logged.
"""

from __future__ import annotations

import logging

from flask import Blueprint, Response, jsonify, request

from notify import subscribers
from notify.channels.sms.inbound import InboundRefused, read_reply
from web import guard
from web.views import current_services, json_error

bp = Blueprint("sms_inbound", __name__)
log = logging.getLogger(__name__)

MAX_BODY = 16 * 1024


@bp.post("/hooks/sms/<channel_id>")
@guard.public
@guard.provider_callback
def reply(channel_id: str) -> tuple[Response, int]:
    svc = current_services()
    service = svc.notifications
    config = next(
        (c for c in svc.config().channels if c.id == channel_id and c.kind == "sms"), None
    )
    if service is None or config is None:
        return json_error("no SMS channel of that name takes replies here", 404)
    if (request.content_length or 0) > MAX_BODY:
        return json_error("the request is too large", 413)
    body = request.get_data(cache=True)
    url = service.base_url + request.full_path.rstrip("?")
    try:
        got = read_reply(config, url, request.headers, request.form.to_dict(), body)
    except InboundRefused as exc:
        return json_error(str(exc), exc.status)
    stopped = subscribers.stop_by_reply(
        guard.repo(), service.subscriber_keys, got.number, got.text, at=svc.clock()
    )
    if stopped:
        log.info("a text-message subscriber replied with a stop word: unsubscribed")
    if getattr(config, "provider", None) == "twilio":
        twiml = '<?xml version="1.0" encoding="UTF-8"?><Response></Response>'
        return Response(twiml, mimetype="text/xml"), 200
    return jsonify(ok=True, stopped=stopped), 200
