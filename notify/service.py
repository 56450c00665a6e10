"""Paging as one service for the running appliance: channels from the config, the paging subscriber,
the sender and its clock, rebuilt on every reload.

The one place that sends notifications is the sender (``notify.sender``);
this module only builds what it needs from the config and the appliance
(state DB, key file, clock, fault log) and keeps it current.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from core.clock import Clock
from core.secret_box import SecretBox
from monitor.faults import Faults
from monitor.store.models import SUBSCRIBER_ACTIVE, SUBSCRIBER_PENDING
from monitor.store.repository import StateRepository
from notify import outbox, subscribers
from notify.channels import ChannelOff, build_channel
from notify.channels.base import Channel, ChannelContext, DeliveryError, Message, Receipt
from notify.compose import Composer
from notify.customer_notices import CustomerNotices
from notify.heartbeat import run_heartbeat
from notify.messages import Writer, read_templates
from notify.outbox import Notice
from notify.paging import Paging, Roster, overrides_at
from notify.roster import roster_of
from notify.schedules import Override, on_call_at
from notify.sender import Recipient, Sender
from notify.settings import PagingConfig
from notify.subscribers import Keys

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubscriberRecipient:
    """A status page subscriber as the sender sees a recipient: an address, a language."""

    id: str
    email: str | None = None
    phone: str | None = None
    language: str = "zh-CN"
    name: str | None = None
    user: str | None = None
    push_subscription: str | None = None
    """The browser's subscription as JSON (a web push subscriber)."""


@dataclass(frozen=True)
class Built:
    channels: dict[str, Channel]
    disabled: dict[str, str]
    roster: Roster
    composer: Composer


def paging_of(config: Any) -> PagingConfig:
    """The ``paging:`` section (its defaults for a config of a schema without it)."""
    return getattr(config, "paging", None) or PagingConfig()


class Notifications:
    """Owns the paging subscriber and the sender; ``apply(config)`` on start and reload."""

    def __init__(
        self,
        repo: StateRepository,
        box: SecretBox,
        config: Callable[[], Any],
        *,
        clock: Clock,
        faults: Faults,
        listen: tuple[str, int],
        data_dir: Path | None = None,
    ) -> None:
        self.repo = repo
        self.data_dir = data_dir
        self.clock = clock
        self.config = config
        self.faults = faults
        self.listen = listen
        self.ack_key = box.derive_key("ack-link")
        self.subscriber_keys = Keys.of(box)
        self._built = self._build(config())
        self.paging = Paging(lambda: self._built.roster, on_delivery=self._wake)
        self.customers = CustomerNotices(
            config, self.subscriber_keys, lambda: self.base_url, wake=self._wake
        )
        paging_config = paging_of(config())
        self.sender = Sender(
            repo,
            channels=self._built.channels,
            disabled=self._built.disabled,
            people=self.recipient,
            render=lambda conn, d, p: self._built.composer(conn, d, p),
            clock=clock,
            retry=paging_config.retry_policy(),
            rate=paging_config.rate(),
            concurrency=paging_config.concurrency,
            faults=faults,
            tick=lambda now: (self.paging.tick(repo, now), self.customers.tick(repo, now)),
            degraded_after=paging_config.degraded_after,
            extra_data=self._extra_data,
            on_gone=self._gone,
        )
        self._clock = clock
        self._heartbeat: asyncio.Task[None] | None = None

    @property
    def base_url(self) -> str:
        """Where links in messages point (``web.base_url``, else the listener), without a
        trailing slash: the one rule for pages' and customers' links."""
        return self._built.composer.base_url

    def recipient(self, recipient_id: str) -> Recipient | None:
        """A person of the config, or a status page subscriber (``subscriber:<id>``, whose
        address is opened only here, to send)."""
        kind, _, ident = recipient_id.partition(":")
        if kind != "subscriber" or not ident.isdigit():
            return self._built.roster.people.get(recipient_id)
        with self.repo.reading() as conn:
            try:
                row, address = subscribers.opened(conn, self.subscriber_keys, int(ident))
            except LookupError:
                return None
        if row.state != SUBSCRIBER_ACTIVE and row.state != SUBSCRIBER_PENDING:
            return None
        return SubscriberRecipient(
            recipient_id,
            email=address if row.channel == "email" else None,
            phone=address if row.channel == "sms" else None,
            push_subscription=address if row.channel == "webpush" else None,
            language=row.language,
        )

    def to_subscriber(self, subscriber_id: int, subject: str, text: str, at: float) -> int:
        """Queue a written message for one subscriber over the ``customers:`` channel of
        their kind; returns the delivery id. ValueError when no such channel is set."""
        customers = getattr(self.config(), "customers", None)
        with self.repo.transaction() as conn:
            row = subscribers.get(conn, subscriber_id)
            channel = customers.channel_for(row.channel) if customers is not None else None
            if channel is None:
                raise ValueError(f"no customers.{row.channel}_channel is set")
            delivery = outbox.add(conn, f"subscriber:{subscriber_id}", [Notice("customer", None)],
                                  [channel], at, subject=subject, text=text)  # fmt: skip
        self._wake()
        return delivery

    def _gone(self, conn: Connection, recipient_id: str, reason: str, at: float) -> None:
        kind, _, ident = recipient_id.partition(":")
        if kind == "subscriber" and ident.isdigit():
            subscribers.retire(self.repo, int(ident), reason, at=at)
            log.info("subscriber %s retired: %s", ident, reason)

    def _extra_data(self, delivery: outbox.DeliveryRow) -> dict[str, Any]:
        kind, _, ident = delivery.person_id.partition(":")
        if kind != "subscriber" or not ident.isdigit():
            return {}
        token = self.subscriber_keys.token(int(ident), "unsubscribe", self.clock.time())
        # "url": what a push opens on a click: the status page, never a console page.
        return {"unsubscribe_url": f"{self.base_url}/status/unsubscribe/{token}", "url": "/status"}

    def _wake(self) -> None:
        self.sender.wake()

    def _build(self, config: Any) -> Built:
        channels: dict[str, Channel] = {}
        disabled: dict[str, str] = {}
        context = ChannelContext(
            state=self.repo,
            data_dir=self.data_dir,
            base_url=config.web.base_url,
            clock=self.clock.time,
        )
        for entry in getattr(config, "channels", []):
            try:
                channels[entry.id] = build_channel(entry, context)
            except Exception as exc:  # one bad channel is off; the others work
                reason = str(exc) if isinstance(exc, ChannelOff) else f"{type(exc).__name__}: {exc}"
                disabled[entry.id] = reason
                log.error("channel %s is disabled: %s", entry.id, reason)
                self.faults.report(f"channel:{entry.id}", f"disabled: {reason}")
        paging = paging_of(config)
        web = config.web
        host, port = self.listen
        base = (web.base_url or f"http://{host if ':' not in host else f'[{host}]'}:{port}").rstrip(
            "/"
        )
        templates = {}
        try:
            templates = read_templates(paging.templates)
        except OSError as exc:
            self.faults.report("notify:templates", f"cannot read {paging.templates}: {exc}")
        composer = Composer(
            writer=Writer(templates, report=lambda p: self.faults.report("notify:templates", p)),
            site=config.site.name,
            timezone=config.site.timezone,
            language=config.site.language,
            base_url=base,
            ack_key=self.ack_key,
            ack_lifetime=paging.ack_link_lifetime,
            target_names=config.target_names,
        )
        return Built(channels, disabled, roster_of(config), composer)

    def apply(self, config: Any) -> None:
        """A reloaded config: channels, people, policies and templates as it says."""
        built = self._build(config)
        self._built = built
        self.sender.channels = built.channels
        self.sender.disabled = built.disabled
        self.sender.retry = paging_of(config).retry_policy()
        self.sender.rate = paging_of(config).rate()
        self.sender.degraded_after = paging_of(config).degraded_after
        self.sender.wake()

    async def start(self) -> None:
        await self.sender.start()
        self._heartbeat = asyncio.create_task(
            run_heartbeat(lambda: paging_of(self.config()).heartbeat, self._clock, self.faults),
            name="notify-heartbeat",
        )

    async def stop(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        await self.sender.stop()

    # -- for the console and the API ------------------------------------------------
    def channel(self, channel_id: str) -> Channel | None:
        return self._built.channels.get(channel_id)

    def disabled(self) -> dict[str, str]:
        return dict(self._built.disabled)

    def alerts(self) -> dict[str, str]:
        """What the appliance's own health check warns about: each channel that is off or
        degraded, as ``channel:<id>`` → a sentence (an engine alert source)."""
        found = {
            f"channel:{cid}": f"channel {cid} is disabled: {reason}"
            for cid, reason in self._built.disabled.items()
        }
        for cid, sentence in self.sender.degraded.items():
            if cid in self._built.channels:  # a channel removed by a reload is no alert
                found[f"channel:{cid}"] = sentence
        return found

    def overrides(self, conn: Connection, now: float) -> list[Override]:
        """The on-call overrides in force now or later (made in the console)."""
        return overrides_at(conn, now)

    @property
    def roster(self) -> Roster:
        return self._built.roster

    def tell(self, recipients: Sequence[str], subject: str, text: str, at: float) -> list[str]:
        """Queue a written message (a runbook's ``notify`` step) for ``person:<id>`` and
        whoever is on call now for ``schedule:<id>``, through the outbox and each person's
        channels in order; returns the people it was queued for. ValueError naming a
        recipient that is not in the config."""
        roster = self._built.roster
        subject = " ".join(subject.split())[:200]
        with self.repo.transaction() as conn:
            overrides = overrides_at(conn, at)
            people: list[str] = []
            for recipient in recipients:
                kind, _, ident = recipient.partition(":")
                if kind == "person":
                    if ident not in roster.people:
                        raise ValueError(f"no person '{ident}' in people:")
                    found: str | None = ident
                elif kind == "schedule":
                    if ident not in roster.schedules:
                        raise ValueError(f"no schedule '{ident}' in schedules:")
                    found = on_call_at(roster.schedules[ident], at, overrides)
                else:
                    raise ValueError(f"{recipient!r}: use person:<id> or schedule:<id>")
                if found is not None and found not in people:
                    people.append(found)
            for person_id in people:
                person = roster.people[person_id]
                outbox.add(conn, person_id, [Notice("message", None)], list(person.contact), at,
                           subject=subject, text=text + "\n")  # fmt: skip
        if people:
            self._wake()
        return people

    def send_test(self, channel_id: str, person_id: str | None, actor: str, at: float) -> Receipt:
        """Send a test message over one channel, to one person (or the channel alone: a
        webhook); raises DeliveryError (or KeyError for an unknown channel/person)."""
        if channel_id in self._built.disabled:
            raise DeliveryError(
                f"channel '{channel_id}' is disabled: {self._built.disabled[channel_id]}",
                permanent=True,
            )
        channel = self._built.channels[channel_id]
        person = self._built.roster.people[person_id] if person_id else None
        config = self.config()
        language = (person.language if person else None) or config.site.language
        written = self._built.composer.writer.write(
            "test",
            language,
            [],
            {"site": config.site.name, "person": person.name if person else channel_id},
        )
        fields: dict[str, Any] = {}
        if person is not None:
            fields = {
                "name": person.name,
                "email": person.email,
                "phone": person.phone,
                "user": person.user,
            }
        message = Message(
            delivery_id=f"test-{channel_id}-{int(at * 1000)}",
            subject=written.subject,
            text=written.text,
            html=written.html,
            language=written.language,  # type: ignore[arg-type]
            data={"kind": "test", "by": actor},
            **fields,
        )
        return channel.send(message)
