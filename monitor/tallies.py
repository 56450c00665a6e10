"""Tallies: how many of each kind of event happened since the appliance was installed.

A ``DbSubscriber`` of the dispatcher adds one to the counter ``events.<kind>``
(``StateRepository.add_counters``) for every event, in the transaction that
moves its cursor, so each event is counted exactly once, across crashes too.
The counts outlive what retention deletes: after a year, the incidents of the
first months are gone, but ``events.opened`` still says how many there were.
One counter per event kind, so the table never grows beyond a few rows (it
needs no retention).
"""

from __future__ import annotations

from monitor.dispatcher import DbSubscriber
from monitor.events import Event
from monitor.store.repository import StateRepository

SUBSCRIBER = "tallies"
PREFIX = "events."


def count_event(repo: StateRepository, event: Event) -> None:
    """Count one event (on the subscriber's thread, inside its cursor's transaction)."""
    repo.add_counters({PREFIX + event.kind.value: 1})


def tallies_subscriber() -> DbSubscriber:
    """The subscriber; from the first event still in the outbox when it first runs."""
    return DbSubscriber(SUBSCRIBER, count_event, "beginning")
