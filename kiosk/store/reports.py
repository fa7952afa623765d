"""Reports from the local event log (pure: they are handed the events)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from kiosk.events import EventType
from kiosk.store.records import Event


@dataclass(frozen=True)
class Attendee:
    """One pass checked in to a meeting: pseudonymous subject, kind, first check-in."""

    subject: str
    kind: str | None
    credential: str | None
    first_seen: datetime


def attendance(events: Iterable[Event], meeting: str) -> list[Attendee]:
    """Who checked in to ``meeting``, once per pass, in order of arrival."""
    seen: dict[str, Attendee] = {}
    for event in events:
        data = event.data
        if (
            event.type != EventType.DECISION
            or data.get("mode") != "checkin"
            or data.get("meeting") != meeting
            or data.get("outcome") != "grant"
        ):
            continue
        subject = data.get("subject")
        if not isinstance(subject, str) or subject in seen:
            continue
        credential = data.get("credential") or {}
        seen[subject] = Attendee(
            subject,
            credential.get("kind"),
            credential.get("type"),
            datetime.fromtimestamp(event.ts_ms / 1000).astimezone(),
        )
    return sorted(seen.values(), key=lambda a: a.first_seen)
