"""Event types written to the log and the shape of a decision event, defined once.

Central servers rely on these names (docs/events.md, docs/schemas/events.json).
"""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kiosk.config import KioskConfig
    from kiosk.decide.decision import Decision
    from kiosk.decide.entrance import Assessment
    from kiosk.sensors.measurement import Measurement


class EventType(StrEnum):
    """The ``type`` column of the event log and of the MQTT event stream."""

    DECISION = "decision"  # one person: outcome, reason, pseudonymous subject, temperature
    PASSAGE = "passage"  # the passage sensor saw someone go through; data: {"by", "grant"}
    FIRE_ALARM = "fire_alarm"  # the fire-alarm input changed; data: {"active": bool}
    KIOSK_STARTED = "kiosk_started"  # data: version, mode, degraded parts
    KIOSK_STOPPED = "kiosk_stopped"  # a clean shutdown
    COMMAND = "command"  # an accepted operator command: data: {"id", "command", "args"}
    DOCUMENT = "document"  # a signed trust/revocation list: data: kind, accepted, version, reason
    HEALTH = "health"  # a part failed or recovered; data: {"part": str, "ok": bool, "detail": str}
    GRANT_UNUSED = "grant_unused"  # hold mode: nobody passed on a grant; data: see below


def passage_event_data(by: str, grant: str | None) -> dict[str, Any]:
    """The ``data`` of a passage event: what let the person through (``by``: ``grant``,
    ``operator``, ``fire_alarm`` or ``none``, the last an unauthorised passage) and the
    event id of the grant it used."""
    return {"by": by, "grant": grant}


def grant_unused_data(grant: str, subject: str | None, direction: str, area: str) -> dict[str, Any]:
    """The ``data`` of a grant_unused event: the grant (its decision's event id) expired with
    nobody through, so the subject is still where they were."""
    return {"grant": grant, "subject": subject, "direction": direction, "area": area}


def decision_event_data(
    config: KioskConfig,
    decision: Decision,
    assessment: Assessment | None,
    measurement: Measurement | None,
    *,
    decision_ms: float,
    clock_synced: bool,
) -> dict[str, Any]:
    """The ``data`` of a decision event: outcome, reason, pseudonymous subject, temperature.

    Never a name, a badge id or a QR payload: the subject is already a pseudonym.
    """
    data: dict[str, Any] = {
        "mode": config.kiosk.mode,
        "outcome": decision.outcome.value,
        "reason": decision.reason.value,
        "direction": "entry" if assessment is None else assessment.direction,
        "area": config.kiosk.area,
        "subject": None if assessment is None else assessment.subject,
        "credential": None,
        "temperature": None,
        "clock_synced": clock_synced,
        "decision_ms": round(decision_ms, 1),
    }
    if config.kiosk.mode == "checkin":
        data["meeting"] = config.kiosk.meeting
    if assessment is not None:
        credential = assessment.credential
        data["credential"] = {
            "status": credential.status.value,
            "kind": credential.kind,
            "type": credential.credential_type,
            "unsigned": credential.unsigned,
            "pass_id": credential.pass_id,
        }
    if measurement is not None:
        data["temperature"] = {
            "status": measurement.status.value,
            "celsius": _rounded(measurement.celsius),
            "ambient_c": _rounded(measurement.ambient_c),
            "stable": measurement.stable,
            "retested": measurement.retested,
            "samples": measurement.samples,
        }
    return data


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
