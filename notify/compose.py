"""What the sender renders a delivery with: its notices' facts from the state DB, in words.

The facts are those staff need and nothing they must not see in a chat
group: the incident's number, title, severity, target's name, cause, ETA,
times in the site's timezone, a console link and, for a page, a signed
acknowledge link (``notify.ack_links``). Internal notes and probe details
stay in the console.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from monitor.store import queries
from notify import ack_links
from notify.messages import Writer, duration_words, local_time
from notify.outbox import DeliveryRow
from notify.sender import Recipient, Rendered

PAGE_KINDS = frozenset({"opened", "escalated"})


@dataclass(frozen=True)
class Composer:
    writer: Writer
    site: str
    timezone: str
    language: str
    """The site's language, for a person who has none."""
    base_url: str
    """Where the console is, for links (``https://noc.example.cn``)."""
    ack_key: bytes
    ack_lifetime: float
    target_names: Callable[[], Mapping[str, str]]

    def __call__(self, conn: Connection, delivery: DeliveryRow, person: Recipient) -> Rendered:
        language = getattr(person, "language", None) or self.language
        names = self.target_names()
        notices = []
        for notice in delivery.notices:
            facts: dict[str, Any] = {"kind": notice.kind, "level": notice.level, "by": notice.by}
            if notice.incident_id is not None:
                facts.update(self._incident(conn, notice.incident_id, names))
                if notice.kind in PAGE_KINDS:
                    token = ack_links.sign(
                        self.ack_key, notice.incident_id, delivery.person_id,
                        delivery.created_at, self.ack_lifetime,
                    )  # fmt: skip
                    facts["ack_url"] = f"{self.base_url}/ack/{token}"
            notices.append(facts)
        kind = delivery.kind
        context = {
            "site": self.site,
            "person": getattr(person, "name", None) or person.id,
            "console": f"{self.base_url}/incidents",
        }
        written = self.writer.write(kind, language, notices, context)
        return Rendered(written.subject, written.text, written.html, written.language)

    def _incident(
        self, conn: Connection, incident_id: int, names: Mapping[str, str]
    ) -> dict[str, Any]:
        row = queries.incident(conn, incident_id)
        if row is None:
            return {"incident_id": incident_id, "title": "", "target": "", "url": ""}
        duration = (row.resolved_at - row.opened_at) if row.resolved_at is not None else None
        return {
            "incident_id": row.id,
            "title": row.title,
            "severity": str(row.severity),
            "target": names.get(row.root_target_id, row.root_target_id),
            "cause": row.cause or "",
            "eta": local_time(row.eta, self.timezone),
            "opened_at": local_time(row.opened_at, self.timezone),
            "resolved_at": local_time(row.resolved_at, self.timezone),
            "duration": duration_words(duration) if duration is not None else "",
            "url": f"{self.base_url}/incidents/{row.id}",
        }
