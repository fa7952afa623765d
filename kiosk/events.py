"""Event types written to the log, defined once. Central servers rely on these names."""

from __future__ import annotations

from enum import StrEnum


class EventType(StrEnum):
    """The ``type`` column of the event log and of the MQTT event stream."""

    DECISION = "decision"  # one person: outcome, reason, pseudonymous subject, temperature
    PASSAGE = "passage"  # the passage sensor saw someone go through
    FIRE_ALARM = "fire_alarm"  # the fire-alarm input changed; data: {"active": bool}
    KIOSK_STARTED = "kiosk_started"  # data: version, mode, degraded parts
    KIOSK_STOPPED = "kiosk_stopped"  # a clean shutdown
    COMMAND = "command"  # an accepted operator command: data: {"id", "command", "args"}
    DOCUMENT = "document"  # a signed trust/revocation list: data: kind, accepted, version, reason
    HEALTH = "health"  # a part failed or recovered; data: {"part": str, "ok": bool, "detail": str}
