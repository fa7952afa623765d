"""Who is inside: the area's occupancy, today's visitors, and each subject's last passage.

Every kiosk of a site feeds this from the granted decisions it sees: its own, as it makes
them, and its neighbours', from their ``passages`` over MQTT (sent with each of their events
messages, so as durable as the stream central receives), plus the ``grant_unused`` events
that withdraw a grant nobody used.
The state starts afresh each local day: a pass that entered yesterday and never scanned out is
not counted as inside today.

Idempotence without remembering event ids: each subject's state is the newest passage seen
for it, ordered by (time, event id) (last writer wins). An event delivered again, or an older
event arriving late, is not newer than what is known, so it changes nothing, in any order.
Memory is bounded by people, not events: the subjects inside, the visitors of the day, and at
most :data:`OUTSIDE_MARKS` recent marks of people who left (kept so that a late copy of their
entry does not put them back inside).

A passage's time must lie in :data:`TS_MS_RANGE` (1970 up to 2100): anything else is refused
with a ValueError before a date is computed from it, which would overflow far earlier than
the 64-bit integers a message may carry.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, NamedTuple

from kiosk.decide.rules import EntranceFacts

OUTSIDE_MARKS = 10_000  # subjects who left the area, newest kept (late duplicates of theirs)
TS_MS_RANGE = range(0, 4_102_444_800_000)  # a passage's time: from 1970 to before 2100 (UTC)
# A passage dated further ahead of this kiosk's clock is ignored: one from a neighbour whose
# clock runs fast (or a forged one) would otherwise wipe the day or pin a person till midnight.
MAX_AHEAD_S = 300


@dataclass(frozen=True)
class Passage:
    """One granted entry or exit, or the withdrawal of a grant that was not used."""

    event_id: str
    subject: str
    kind: str
    area: str
    direction: str  # "entry" or "exit": where the subject is after this passage
    at: datetime
    granted: bool = True  # False: a correction (``grant_unused``), not a person let through


class _Mark(NamedTuple):
    """A subject's newest known passage, small: one is kept per person."""

    at_ms: int
    tiebreak: (
        int  # CRC-32 of the event id: orders two passages in one millisecond, alike at every kiosk
    )
    granted: bool

    def newer_than(self, other: _Mark | None) -> bool:
        return other is None or (self.at_ms, self.tiebreak) > (other.at_ms, other.tiebreak)

    def at(self) -> datetime:
        return _local(self.at_ms)


def passage_from_event(event_id: str, ts_ms: int, data: dict[str, Any]) -> Passage | None:
    """The passage a logged decision records, if it is a granted entry or exit with a subject."""
    if data.get("outcome") != "grant" or data.get("direction") not in ("entry", "exit"):
        return None
    subject, credential = data.get("subject"), data.get("credential") or {}
    if not isinstance(subject, str) or not isinstance(credential, dict):
        return None
    return Passage(
        event_id,
        subject,
        str(credential.get("kind")),
        str(data.get("area", "")),
        data["direction"],
        _local(ts_ms),
    )


def passage_from_unused(event_id: str, ts_ms: int, data: dict[str, Any]) -> Passage | None:
    """The correction a ``grant_unused`` event makes: the subject is back where they were."""
    subject, direction = data.get("subject"), data.get("direction")
    if not isinstance(subject, str) or direction not in ("entry", "exit"):
        return None
    back = "exit" if direction == "entry" else "entry"
    area = str(data.get("area", ""))
    return Passage(event_id, subject, "", area, back, _local(ts_ms), granted=False)


def _local(ts_ms: int) -> datetime:
    if not isinstance(ts_ms, int) or not TS_MS_RANGE.start <= ts_ms < TS_MS_RANGE.stop:
        raise ValueError(f"a passage at ts_ms {ts_ms} is not between 1970 and 2100")
    return datetime.fromtimestamp(ts_ms / 1000).astimezone()


class AreaState:
    """Occupancy of one area and the site's visitors today; thread-safe and idempotent."""

    def __init__(self, area: str, today: date, clock: Callable[[], float] = time.time) -> None:
        self.area = area
        self.clock = clock  # the wall clock (epoch seconds) a passage may not be ahead of
        self._lock = threading.Lock()
        self._day = today
        self._inside: dict[str, _Mark] = {}  # subject -> their entry
        self._outside: OrderedDict[str, _Mark] = OrderedDict()  # subject -> their exit
        self._visitors: set[str] = set()

    def record(self, passage: Passage) -> None:
        """Apply a passage (from any kiosk of the site); a repeated or older event is ignored,
        and so is one dated more than :data:`MAX_AHEAD_S` ahead of this kiosk's clock."""
        if passage.at.timestamp() > self.clock() + MAX_AHEAD_S:
            return
        with self._lock:
            day = passage.at.date()
            if day != self._day:
                if day < self._day:
                    return
                self._reset(day)
            entry = passage.direction == "entry"
            if entry and passage.granted and passage.kind == "visitor":
                self._visitors.add(passage.subject)
            if passage.area != self.area:
                return
            subject = passage.subject
            at_ms = round(passage.at.timestamp() * 1000)
            mark = _Mark(at_ms, zlib.crc32(passage.event_id.encode()), passage.granted)
            if not mark.newer_than(self._inside.get(subject) or self._outside.get(subject)):
                return
            if entry:
                self._outside.pop(subject, None)
                self._inside[subject] = mark
                return
            self._inside.pop(subject, None)
            self._outside.pop(subject, None)
            self._outside[subject] = mark
            while len(self._outside) > OUTSIDE_MARKS:
                self._outside.popitem(last=False)

    def facts(self, subject: str | None, now: datetime) -> EntranceFacts:
        """What the rules need to know about ``subject`` at ``now``."""
        today = now.astimezone().date()
        with self._lock:
            if today != self._day:
                self._reset(today)
            entry = self._inside.get(subject) if subject else None
            last = entry or (self._outside.get(subject) if subject else None)
            return EntranceFacts(
                occupancy=len(self._inside),
                visitors_today=len(self._visitors),
                last_entry_at=None if entry is None else entry.at(),
                last_grant_at=last.at() if last is not None and last.granted else None,
            )

    def is_inside(self, subject: str) -> bool:
        """Whether ``subject`` entered the area today and has not left."""
        with self._lock:
            return subject in self._inside

    def sizes(self) -> dict[str, int]:
        """How many entries each structure holds (for memory checks)."""
        with self._lock:
            return {
                "inside": len(self._inside),
                "outside": len(self._outside),
                "visitors": len(self._visitors),
            }

    def _reset(self, day: date) -> None:
        self._day = day
        self._inside.clear()
        self._outside.clear()
        self._visitors.clear()
