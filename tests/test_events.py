"""Tests for the alert rules beside the event types (kiosk.events)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kiosk.events import EventType, alert_for, may_alert
from kiosk.mqtt.protocol import WireEvent
from kiosk.store.eventlog import Event

CASES: list[tuple[EventType, dict[str, Any], str | None]] = [
    (EventType.DECISION, {"outcome": "deny", "reason": "fever"}, "fever"),
    (EventType.DECISION, {"outcome": "grant", "reason": "ok", "subject": "fever"}, None),
    (EventType.HEALTH, {"part": "log_capacity", "ok": False, "detail": "d"}, "log_near_capacity"),
    (EventType.HEALTH, {"part": "camera", "ok": False, "detail": "no frames"}, "sensor_fault"),
    (EventType.HEALTH, {"part": "camera", "ok": True, "detail": "false alarm"}, None),
    (EventType.PASSAGE, {"by": "none", "grant": None}, "tailgating"),
    (EventType.PASSAGE, {"by": "grant", "grant": "none"}, None),
    (EventType.FIRE_ALARM, {"active": True}, "fire_alarm"),
    (EventType.FIRE_ALARM, {"active": False}, None),
    (
        EventType.DOCUMENT,
        {"kind": "trust", "accepted": False, "reason": "stale"},
        "document_refused",
    ),
    (EventType.DOCUMENT, {"kind": "trust", "accepted": True, "reason": None}, None),
    (EventType.KIOSK_STARTED, {"ok": False, "active": True, "reason": "fever"}, None),
]


@pytest.mark.parametrize(("type_", "data", "alert"), CASES)
def test_alert_rules_read_the_data_and_the_cheap_pretest_never_hides_an_alert(
    type_: EventType, data: dict[str, Any], alert: str | None
) -> None:
    logged = Event("e-1", 7, "boot", 0, True, type_.value, data)
    wire = WireEvent("e-1", 7, "boot", 0, True, type_.value, data)

    got = alert_for(logged)

    assert (got[0] if got else None) == alert
    assert alert_for(wire) == got
    if alert is not None:  # the pretest may pass events that raise none, never the reverse
        assert may_alert(type_.value, json.dumps(data))


def test_only_alerting_types_pass_the_pretest() -> None:
    text = json.dumps({"ok": False, "active": True, "by": "none", "reason": "fever"})
    passing = {kind for kind in EventType if may_alert(kind.value, text)}
    assert passing == {
        EventType.DECISION,
        EventType.HEALTH,
        EventType.PASSAGE,
        EventType.FIRE_ALARM,
        EventType.DOCUMENT,
    }
