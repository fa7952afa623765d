"""What the event log hands out: events, as read for people or as sent, and its statistics.

Both event records extend :class:`kiosk.events.EventHeader`, which the MQTT ``WireEvent`` extends
too. :class:`Event` adds the data, parsed, and the row's outbox marks: what reports, the status
page and ``kiosk events`` read. :class:`OutboxEvent` adds the data as the stored JSON text
instead: the sync splices that text into its messages unparsed, which halves its cost per event
(docs/performance.md).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from kiosk.events import EventHeader


@dataclass(frozen=True)
class Event(EventHeader):
    """One logged event, its data parsed, with when it was sent and confirmed (if it was)."""

    data: dict[str, Any]
    sent_at_ms: int | None = None
    confirmed_at_ms: int | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict with the field names above (for ``kiosk events --json``)."""
        return asdict(self)


@dataclass(frozen=True)
class OutboxEvent(EventHeader):
    """An unconfirmed event as the sync sends it: its data left as the stored JSON text."""

    data_json: str


@dataclass(frozen=True)
class LogStats:
    """Size and backlog of the log, for the status page and the MQTT ``state`` topic."""

    rows: int
    unconfirmed: int
    oldest_unconfirmed_ts_ms: int | None
    last_seq: int
    capacity: int
    near_capacity: bool  # events waiting for central fill warn_ratio of capacity
    over_capacity: bool
    dropped_unconfirmed: int = 0  # events dropped before central confirmed them, ever
