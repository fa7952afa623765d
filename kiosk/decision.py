"""The decision core: pure functions from facts to a decision. No I/O, no clocks.

Checks run in a fixed order and the first failure wins:

1. lockdown (the entrance is closed by an operator);
2. the credential (gate and checkin modes): too large, malformed, unknown, expired;
3. the temperature (gate mode with a thermometer, and screen mode):
   sensor fault → refer to the guard; nobody at the sensor → deny, try again;
   confirmed fever → deny and alarm;
4. otherwise grant (checkin mode: checked in, the relay never moves).

Each outcome carries stable reason codes (for events, counters and the MQTT
stream) and a message in Vietnamese and English for the person at the door.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from kiosk.credentials import CredentialCheck, CredentialStatus
from kiosk.sensors.measurement import Measurement, TemperatureStatus


class Outcome(StrEnum):
    """What happens to the person."""

    GRANT = "grant"
    DENY = "deny"
    REFER = "refer"  # sent to the guard: the kiosk cannot decide safely


class Reason(StrEnum):
    """Stable, machine-readable reason codes. Never rename one: central servers count them."""

    OK = "ok"
    CHECKED_IN = "checked_in"
    LOCKDOWN = "lockdown"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    MALFORMED_CREDENTIAL = "malformed_credential"
    UNKNOWN_CREDENTIAL = "unknown_credential"
    EXPIRED_CREDENTIAL = "expired_credential"
    SENSOR_FAULT = "sensor_fault"
    NO_PERSON_AT_SENSOR = "no_person_at_sensor"
    FEVER = "fever"
    LOG_UNAVAILABLE = "log_unavailable"


MESSAGES: dict[Reason, tuple[str, str]] = {
    Reason.OK: ("Mời vào", "Welcome, please enter"),
    Reason.CHECKED_IN: ("Đã điểm danh", "Checked in"),
    Reason.LOCKDOWN: ("Lối vào đang tạm đóng", "Entrance closed"),
    Reason.PAYLOAD_TOO_LARGE: ("Mã QR không hợp lệ", "Invalid code"),
    Reason.MALFORMED_CREDENTIAL: ("Mã QR không hợp lệ", "Invalid code"),
    Reason.UNKNOWN_CREDENTIAL: ("Mã chưa được đăng ký", "Code not registered"),
    Reason.EXPIRED_CREDENTIAL: ("Thẻ đã hết hạn", "Pass expired"),
    Reason.SENSOR_FAULT: (
        "Lỗi máy đo nhiệt: vui lòng gặp bảo vệ",
        "Thermometer fault: please see the guard",
    ),
    Reason.NO_PERSON_AT_SENSOR: (
        "Vui lòng đứng trước máy đo nhiệt rồi quét lại",
        "Please stand in front of the sensor and scan again",
    ),
    Reason.FEVER: ("Nhiệt độ cao: vui lòng gặp bảo vệ", "Fever: please see the guard"),
    Reason.LOG_UNAVAILABLE: (
        "Lỗi hệ thống: vui lòng gặp bảo vệ",
        "System fault: please see the guard",
    ),
}

_CREDENTIAL_REASONS: dict[CredentialStatus, Reason] = {
    CredentialStatus.TOO_LARGE: Reason.PAYLOAD_TOO_LARGE,
    CredentialStatus.MALFORMED: Reason.MALFORMED_CREDENTIAL,
    CredentialStatus.UNKNOWN: Reason.UNKNOWN_CREDENTIAL,
    CredentialStatus.EXPIRED: Reason.EXPIRED_CREDENTIAL,
}


@dataclass(frozen=True)
class Decision:
    """The result of one decision: outcome, reason code and the words for the person."""

    outcome: Outcome
    reason: Reason
    opens_gate: bool

    @property
    def message_vi(self) -> str:
        """The Vietnamese message for the display."""
        return MESSAGES[self.reason][0]

    @property
    def message_en(self) -> str:
        """The English message for the display."""
        return MESSAGES[self.reason][1]


def decide(
    mode: str,
    credential: CredentialCheck | None,
    temperature: Measurement | None,
    *,
    lockdown: bool = False,
) -> Decision:
    """Decide for one person.

    ``credential`` is None in screen mode; ``temperature`` is None when no
    measurement is required (checkin mode, or a kiosk without a thermometer) or
    when the credential already failed. A gate or checkin decision without a
    credential, or a screen decision without a temperature, is a programming
    error and raises ValueError.
    """
    if mode not in ("gate", "screen", "checkin"):
        raise ValueError(f"unknown mode {mode!r}")
    if mode != "screen" and credential is None:
        raise ValueError(f"{mode} mode decides on a credential")
    if mode == "screen" and temperature is None:
        raise ValueError("screen mode decides on a temperature")
    if lockdown and mode != "checkin":
        return Decision(Outcome.DENY, Reason.LOCKDOWN, opens_gate=False)
    if credential is not None and credential.status is not CredentialStatus.VALID:
        return Decision(Outcome.DENY, _CREDENTIAL_REASONS[credential.status], opens_gate=False)
    if mode == "checkin":
        return Decision(Outcome.GRANT, Reason.CHECKED_IN, opens_gate=False)
    if temperature is not None:
        if temperature.status is TemperatureStatus.FAULT:
            return Decision(Outcome.REFER, Reason.SENSOR_FAULT, opens_gate=False)
        if temperature.status is TemperatureStatus.NO_PERSON:
            return Decision(Outcome.DENY, Reason.NO_PERSON_AT_SENSOR, opens_gate=False)
        if temperature.status is TemperatureStatus.FEVER:
            return Decision(Outcome.DENY, Reason.FEVER, opens_gate=False)
    return Decision(Outcome.GRANT, Reason.OK, opens_gate=True)


def when_log_unavailable() -> Decision:
    """The decision that replaces any other when it cannot be written durably."""
    return Decision(Outcome.REFER, Reason.LOG_UNAVAILABLE, opens_gate=False)
