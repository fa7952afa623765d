"""What the tests of central's reports share: decision events as kiosks log them, a site's
day of traffic and a roster naming part of it."""

from __future__ import annotations

import json
import uuid
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from kiosk.central import EventRow, Store, roster
from kiosk.central.rosterfile import Holder

ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
HANG, DUC, GUEST = "s-0000000000000000hang", "s-00000000000000000duc", "s-000000000000000guest"


def decision(
    outcome: str = "grant",
    reason: str = "ok",
    subject: str | None = HANG,
    *,
    kind: str | None = "staff",
    celsius: float | None = 36.6,
    direction: str = "entry",
    mode: str = "gate",
    meeting: str | None = None,
) -> dict[str, Any]:
    """A decision event's data as :func:`kiosk.events.decision_event_data` writes it."""
    data: dict[str, Any] = {
        "mode": mode,
        "outcome": outcome,
        "reason": reason,
        "direction": direction,
        "area": "main",
        "subject": subject,
        "credential": None
        if kind is None
        else {"status": "valid", "kind": kind, "type": "pass", "unsigned": False},
        "temperature": None
        if celsius is None
        else {"status": "fever" if reason == "fever" else "normal", "celsius": celsius},
        "clock_synced": True,
        "decision_ms": 700.0,
    }
    if meeting is not None:
        data["meeting"] = meeting
    return data


def local_ms(day: date, hh: int, mm: int, ss: int = 0, zone: ZoneInfo = ZONE) -> int:
    """Epoch milliseconds of a local time of ``day``."""
    return int(datetime.combine(day, time(hh, mm, ss), zone).timestamp() * 1000)


def store_events(
    store: Store, site: str, kiosk: str, events: list[tuple[int, dict[str, Any]]], type: str = ""
) -> None:
    """Store ``(ts_ms, data)`` decision events of one kiosk, seq 1, 2, 3 …"""
    store.insert_batch(
        EventRow(
            str(uuid.uuid4()),
            site,
            kiosk,
            seq,
            "boot-1",
            ts_ms,
            True,
            type or "decision",
            False,
            1,
            json.dumps(data),
            ts_ms,
        )
        for seq, (ts_ms, data) in enumerate(events, start=1)
    )


def a_day(store: Store, site: str, day: date) -> None:
    """A day at the site: Hằng in early and at noon, Đức (a fever, then in), an unknown code
    and a stranger not in the roster in; Hằng's exit; the evening before and the next
    midnight, which are other days."""
    store_events(
        store,
        site,
        "gate-1",
        [
            (local_ms(day, 0, 0) - 1, decision()),  # the day before, 23:59:59.999
            (local_ms(day, 0, 0), decision()),
            (local_ms(day, 8, 1, 5), decision("deny", "fever", DUC, celsius=38.4)),
            (local_ms(day, 8, 3), decision(subject=DUC, celsius=37.1)),
            (
                local_ms(day, 9, 0),
                decision("deny", "unknown_credential", None, kind=None, celsius=None),
            ),
            (local_ms(day, 12, 0), decision(subject=GUEST, kind="visitor")),
            (local_ms(day, 17, 30), decision(direction="exit", celsius=None)),
            (local_ms(day, 23, 59, 59), decision("refer", "sensor_fault", HANG, celsius=None)),
        ],
    )
    store_events(
        store,
        site,
        "gate-2",
        [
            (local_ms(day, 12, 0, 1), decision()),
            (local_ms(day, 13, 0), decision("deny", "fever", GUEST, kind="visitor")),
            (local_ms(day, 24 - 1, 59, 59) + 1000, decision()),  # the next day's midnight
        ],
    )


def name_people(store: Store, site: str) -> None:
    """The roster names Hằng and Đức, not the guest."""
    holders = [
        Holder(HANG, "Nguyễn Thị Hằng", "Phòng Kế toán", "staff", None, 2),
        Holder(DUC, "Trần Văn Đức", "Ban Giám đốc", "staff", None, 3),
    ]
    roster.replace(store, site, "import", holders, "hr", 0)
