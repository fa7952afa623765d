"""Who is inside: the area's occupancy, today's visitors, and each subject's last entry.

Every kiosk of a site feeds this from the granted decisions it sees: its own, as it makes
them, and its neighbours', from their event stream over MQTT (the same durable, de-duplicated
stream central receives). A passage counts once however often its event arrives. The state
starts afresh each local day: a pass that entered yesterday and never scanned out is not
counted as inside today.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from kiosk.rules import EntranceFacts


@dataclass(frozen=True)
class Passage:
    """One granted entry or exit."""

    event_id: str
    subject: str
    kind: str
    area: str
    direction: str  # "entry" or "exit"
    at: datetime


def passage_from_event(event_id: str, ts_ms: int, data: dict[str, Any]) -> Passage | None:
    """The passage a logged decision records, if it is a granted entry or exit with a subject."""
    if data.get("outcome") != "grant" or data.get("direction") not in ("entry", "exit"):
        return None
    subject, credential = data.get("subject"), data.get("credential") or {}
    if not isinstance(subject, str) or not isinstance(credential, dict):
        return None
    at = datetime.fromtimestamp(ts_ms / 1000).astimezone()
    return Passage(
        event_id,
        subject,
        str(credential.get("kind")),
        str(data.get("area", "")),
        data["direction"],
        at,
    )


class AreaState:
    """Occupancy of one area and the site's visitors today; thread-safe and idempotent."""

    def __init__(self, area: str, today: date) -> None:
        self.area = area
        self._lock = threading.Lock()
        self._day = today
        self._seen: set[str] = set()
        self._inside: dict[str, datetime] = {}  # subject -> time of the entry
        self._visitors: set[str] = set()

    def record(self, passage: Passage) -> None:
        """Apply a passage (from any kiosk of the site); a repeated event is ignored."""
        with self._lock:
            day = passage.at.date()
            if day != self._day:
                if day < self._day:
                    return
                self._reset(day)
            if passage.event_id in self._seen:
                return
            self._seen.add(passage.event_id)
            if passage.direction == "entry" and passage.kind == "visitor":
                self._visitors.add(passage.subject)
            if passage.area != self.area:
                return
            if passage.direction == "entry":
                self._inside[passage.subject] = passage.at
            else:
                self._inside.pop(passage.subject, None)

    def facts(self, subject: str | None, now: datetime) -> EntranceFacts:
        """What the rules need to know about ``subject`` at ``now``."""
        today = now.astimezone().date()
        with self._lock:
            if today != self._day:
                self._reset(today)
            return EntranceFacts(
                occupancy=len(self._inside),
                visitors_today=len(self._visitors),
                last_entry_at=self._inside.get(subject) if subject else None,
            )

    def is_inside(self, subject: str) -> bool:
        """Whether ``subject`` entered the area today and has not left."""
        with self._lock:
            return subject in self._inside

    def _reset(self, day: date) -> None:
        self._day = day
        self._seen.clear()
        self._inside.clear()
        self._visitors.clear()
