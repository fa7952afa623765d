"""What a kiosk tells anyone listening: its retained ``state`` (health), an ``alerts`` message
for each event that needs a human, and each live decision on ``activity``.

Part of the wire contract that :mod:`kiosk.mqtt.protocol` publishes.
"""

from __future__ import annotations

from typing import Any

from kiosk.mqtt.events import WireEvent
from kiosk.mqtt.wire import SCHEMA_VERSION, dumps, load_message


def encode_state(state: dict[str, Any]) -> bytes:
    """The retained health state of a kiosk."""
    return dumps({"v": SCHEMA_VERSION, **state})


def decode_state(payload: bytes) -> dict[str, Any]:
    """A kiosk's health state (the JSON object, ``v`` included)."""
    return load_message(payload, "state")


def encode_activity(outcome: str, reason: str, temperature_c: float | None) -> bytes:
    """One live decision for dashboards and Home Assistant's event entity (no subject)."""
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "event_type": outcome,
            "reason": reason,
            "temperature_c": temperature_c,
        }
    )


def encode_alert(kiosk: str, alert: str, event: WireEvent, detail: str) -> bytes:
    """An alert for a human, derived from a logged event."""
    return dumps(
        {
            "v": SCHEMA_VERSION,
            "kiosk": kiosk,
            "alert": alert,
            "event_id": event.event_id,
            "seq": event.seq,
            "ts_ms": event.ts_ms,
            "historical": event.historical,
            "detail": detail,
        }
    )
