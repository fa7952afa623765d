"""What the central store holds and hands out: an event row, a kiosk's status and what an
insert did, and the reading of database rows (either dialect) into them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple


class EventRow(NamedTuple):
    """One stored event; ``data`` is the event's JSON text."""

    event_id: str
    site: str
    kiosk: str
    seq: int
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str
    historical: bool
    schema: int
    data: str
    received_at_ms: int


@dataclass(frozen=True)
class KioskStatus:
    """What central knows about one kiosk."""

    site: str
    kiosk: str
    availability: str | None  # online / offline / stopped, None before any status message
    last_seen_ms: int | None
    state: dict[str, Any]  # the kiosk's last retained state
    highest_seq: int
    count: int  # events stored (pruning does not lower it)
    resend_from_seq: int | None  # the last resend asked of this kiosk
    resend_at_ms: int | None

    @property
    def missing(self) -> int:
        """Sequence numbers between 1 and the highest seen that were never stored."""
        return max(0, self.highest_seq - self.count)


SEQ_TAKEN = "seq already stored for another event"  # the two reasons a row is refused
ID_TAKEN = "event_id already stored under another seq"


class Stored(NamedTuple):
    """What :meth:`Store.insert_batch` did: how many rows were new, and the rows refused
    because their kiosk already has that seq or event id for another event."""

    new: int
    conflicts: list[tuple[EventRow, str]]


def state_of(value: object) -> dict[str, Any]:
    """A kiosk's state as read from the database (JSON text, or a dict from PostgreSQL)."""
    if value is None:
        return {}
    loaded = json.loads(value) if isinstance(value, str) else value
    return loaded if isinstance(loaded, dict) else {}


def event_of(row: Sequence[Any]) -> EventRow:
    """An event row as read from the database (``SELECT *`` of ``events``)."""
    event_id, site, kiosk, seq, boot_id, ts_ms, synced, kind, hist, schema, data, received = row
    text = data if isinstance(data, str) else json.dumps(data)
    return EventRow(
        event_id,
        site,
        kiosk,
        seq,
        boot_id,
        ts_ms,
        bool(synced),
        kind,
        bool(hist),
        schema,
        text,
        received,
    )
