"""Event types written to the log, the shape of their data, and the alerts they raise, defined once.

Central servers rely on these names (docs/events.md, docs/schemas/events.json); the alerts go
out on the kiosk's ``alerts`` topic (docs/mqtt.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

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


class Part(StrEnum):
    """The parts whose working or failed state the kiosk reports (``health`` events, state)."""

    CAMERA = "camera"
    SCANNER = "scanner"  # a 2D code scanner (``[scanner]``); always ok where none is fitted
    THERMOMETER = "thermometer"
    LOG = "log"
    LOG_CAPACITY = "log_capacity"
    OPERATOR_STATE = "operator_state"


@dataclass(frozen=True)
class EventHeader:
    """What every event carries besides its data, in the log and on the wire: its id, its
    ``seq`` (per kiosk, gapless, never reused), the run of the kiosk that logged it, when
    (UTC epoch ms, and whether the clock was synchronised), and its :class:`EventType` value.
    """

    event_id: str
    seq: int
    boot_id: str
    ts_ms: int
    clock_synced: bool
    type: str


class LoggedEvent(Protocol):
    """What the alert rules read of an event (a log row or an event received over MQTT)."""

    @property
    def type(self) -> str:
        """The event's :class:`EventType` value."""
        ...

    @property
    def data(self) -> Mapping[str, Any]:
        """The event's data, parsed."""
        ...


Alert = tuple[str, str]  # (name, detail): the ``alert`` and ``detail`` of an alerts message


def _fever(data: Mapping[str, Any]) -> Alert | None:
    return ("fever", "fever confirmed on retest") if data.get("reason") == "fever" else None


def _part_failed(data: Mapping[str, Any]) -> Alert | None:
    if data.get("ok") is not False:
        return None
    part = data.get("part")
    name = "log_near_capacity" if part == Part.LOG_CAPACITY else "sensor_fault"
    return name, f"{part}: {data.get('detail', '')}"


def _tailgating(data: Mapping[str, Any]) -> Alert | None:
    if data.get("by") != "none":
        return None
    return "tailgating", "a passage nobody was granted: tailgating or a forced turnstile"


def _fire_alarm(data: Mapping[str, Any]) -> Alert | None:
    return ("fire_alarm", "fire alarm active: gate released") if data.get("active") else None


def _document_refused(data: Mapping[str, Any]) -> Alert | None:
    if data.get("accepted") is not False:
        return None
    return "document_refused", f"{data.get('kind')} list refused: {data.get('reason')}"


# The event types that can raise an alert: a word their data's JSON text must contain to raise
# one (a cheap test before parsing it), and the rule reading the parsed data. Keyed by the plain
# values, which the sync looks up for every event it sends (a str key is found at once).
_ALERT_RULES: dict[str, tuple[str, Callable[[Mapping[str, Any]], Alert | None]]] = {
    EventType.DECISION.value: ("fever", _fever),
    EventType.HEALTH.value: ("false", _part_failed),
    EventType.FIRE_ALARM.value: ("true", _fire_alarm),
    EventType.DOCUMENT.value: ("false", _document_refused),
    EventType.PASSAGE.value: ('"none"', _tailgating),
}


def alert_pretests() -> dict[str, str]:
    """Per event type that can raise an alert, the word its data's JSON text must contain
    to raise one (what :func:`may_alert` tests), for a store to select candidates."""
    return {type: word for type, (word, _rule) in _ALERT_RULES.items()}


def may_alert(type: str, data_json: str) -> bool:
    """Whether an event of this type with this data (as JSON text) may raise an alert: a cheap
    test on the text; when it is False, :func:`alert_for` returns None for the event."""
    rule = _ALERT_RULES.get(type)
    return rule is not None and rule[0] in data_json


def alert_for(event: LoggedEvent) -> Alert | None:
    """The alert (name, detail) an event raises, or None."""
    rule = _ALERT_RULES.get(event.type)
    return None if rule is None else rule[1](event.data)


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
