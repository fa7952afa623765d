"""Hand-made passages for the tests of who is inside and of the trace: decision and
grant_unused events as kiosks log them (kiosk.events), stored through Store.insert_batch."""

from __future__ import annotations

import itertools
import json
import uuid
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.central import EventRow, Store
from kiosk.central.rosterfile import Holder

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")  # the default site time zone: UTC+7
_seq = itertools.count(1)


def at(text: str) -> int:
    """Epoch ms of a local time of the site, e.g. ``2026-12-01 09:00``."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZONE).timestamp() * 1000)


def decision(
    subject: str,
    ts_ms: int,
    *,
    kiosk: str = "k1",
    site: str = "s1",
    direction: str = "entry",
    area: str = "main",
    outcome: str = "grant",
    kind: str = "staff",
    meeting: str | None = None,
    event_id: str | None = None,
) -> EventRow:
    """A decision event as a kiosk logs it (kiosk.events.decision_event_data's shape)."""
    data: dict[str, Any] = {
        "mode": "checkin" if meeting else "gate",
        "outcome": outcome,
        "reason": "ok" if outcome == "grant" else "unknown_credential",
        "direction": direction,
        "area": area,
        "subject": subject,
        "credential": {"status": "valid", "kind": kind, "type": "badge", "unsigned": False},
        "temperature": None,
    }
    if meeting:
        data["meeting"] = meeting
    return _row(site, kiosk, ts_ms, "decision", data, event_id)


def unused(
    subject: str, ts_ms: int, *, direction: str, kiosk: str = "k1", area: str = "main"
) -> EventRow:
    """A grant_unused event: the grant in ``direction`` expired with nobody through."""
    data = {"grant": str(uuid.uuid4()), "subject": subject, "direction": direction, "area": area}
    return _row("s1", kiosk, ts_ms, "grant_unused", data, None)


def _row(
    site: str, kiosk: str, ts_ms: int, kind: str, data: dict[str, Any], event_id: str | None
) -> EventRow:
    return EventRow(
        event_id or str(uuid.uuid4()),
        site,
        kiosk,
        next(_seq),
        "boot-1",
        ts_ms,
        True,
        kind,
        False,
        1,
        json.dumps(data),
        ts_ms,
    )


def put(store: Store, *rows: EventRow) -> None:
    """Store the events as the ingest does."""
    assert store.insert_batch(rows).conflicts == []


def person(subject: str, name: str, unit: str = "Phòng Kế toán", kind: str = "staff") -> Holder:
    """A roster holder for a subject."""
    return Holder(subject, name, unit, kind, None, 0)
